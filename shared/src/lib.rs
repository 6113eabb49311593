//! The visits feed service's library: everything the `dispatcher` and `performer` binaries share.
//!
//! # Layout
//! - [`config`]: the TOML file and `VISITAS_<SECTION>__<KEY>` overrides; [`secret`] keeps
//!   secrets unprintable; [`business_date`] says which day a load belongs to.
//! - [`feed`]: the data contract as code — decoding, records (one line and one field
//!   splitter), the header check, record-level and row rules (polars), how messages quote
//!   a file, and the two streaming passes over a staged file.
//! - [`source`]: the origin directory, SFTP (host key verified) or local, and safe remote names.
//! - [`queue`]: `work_items` — enqueue, claim under lease, heartbeat, rescue, retry, finish.
//! - [`load`]: the one load transaction; [`copy_writer`] its binary COPY; [`visitor_counts`]
//!   the visitor aggregate it keeps (`visitantes`, `visitas_por_anio`).
//! - [`partitions`]: the monthly partitions of `estadisticas` and `errores`, made ahead and
//!   dropped by retention.
//! - [`audit`]: `bitacora_control` writes other than the load.
//! - [`db`]: the two pools and the embedded migrations; [`db_tls`]: libpq's sslmode for both; [`paths`]: the ETL root and durable moves.
//! - [`service_lock`]: the dispatcher's lease and the load's row locks, out of the read-only role's reach.
//! - [`alert`], [`telemetry`]: webhook alerts, logs (stdout and per-day, per-file) and metrics.
//! - `fixtures` (feature `fixtures`): the generator of visit files (tests, demo, benchmarks);
//!   [`fault`]: test-only pause hooks (feature `fault-hooks`).
//! - [`storable`]: any text made storable in PostgreSQL and capped, for every message written.
//! - [`hash`], [`host`]: SHA-256 hex and the host name.
#![warn(missing_docs)]

pub mod alert;
pub mod audit;
pub mod business_date;
pub mod config;
pub mod copy_writer;
pub mod db;
pub mod db_tls;
pub mod fault;
pub mod feed;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod hash;
pub mod host;
pub mod load;
pub mod partitions;
pub mod paths;
pub mod queue;
pub mod secret;
pub mod service_lock;
pub mod source;
pub mod storable;
pub mod telemetry;
pub mod visitor_counts;
