//! The visits feed service's library: everything the `dispatcher` and `performer` binaries share.
//!
//! # Layout
//! Layers, each using only those listed before it (a test, `shared/tests/layers/`,
//! fails when a module imports one of a later layer or a cycle appears):
//!
//! | layer | what | uses |
//! |---|---|---|
//! | [`types`] | plain types, no I/O: the states of `work_items` and `bitacora_control` and their SQL literals, the claimed item and its fence, origins, file facts, counts, outcomes, the encoding, secrets, storable text | — |
//! | [`feed`] | the pure feed: bytes → records → validated batches (decoding, line and field splitters, layout and header check, rules, visitor tally) | types |
//! | [`local`] | this host: the ETL root and durable moves, the staged file read through the feed, hashing, the host name and clock (the business date), secret files, test-only fault hooks | types, feed |
//! | [`store`] | PostgreSQL: connections and TLS, one module per table (queue, audit, load, partitions, locks, runs, reports, alerts, notices, file checks, set-aside files, performers, console actions), `attempt`, the transactions across queue and audit, and the console's reads | types, feed, local |
//! | [`source`] | the origin directory: SFTP (host key verified) or local, safe remote names | types, local |
//! | [`config`] | the TOML file, composed of the sections the layers above define | all of the above |
//! | [`observe`] | alerts and their life, their outbox's sender (webhook, e-mail), the checks that raise them (expected feeds, a file against its feed's history), logs and metrics | all of the above |
//! | `fixtures` (feature `fixtures`) | the generator of visit files, for tests, the demo and benchmarks | types, feed |
//!
//! Test support behind features: `fixtures` and `fault-hooks` ([`local::fault`]). The
//! binaries (`dispatcher/`, `performer/`) sit on top; `docs/architecture.md` tells how a
//! file flows through all of this.
#![warn(missing_docs)]

pub mod types;

pub mod feed;

pub mod local;

pub mod source;
pub mod store;

pub mod config;

pub mod observe;

#[cfg(feature = "fixtures")]
pub mod fixtures;
