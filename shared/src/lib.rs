//! The visits feed service's library: everything the `dispatcher` and `performer` binaries share.
//!
//! # Layout
//! - [`config`]: the TOML file and `VISITAS_<SECTION>__<KEY>` overrides; [`secret`] keeps
//!   secrets unprintable; [`business_date`] says which day a load belongs to.
//! - [`feed`]: the data contract as code — decoding, records, the layout check, the row
//!   rules (polars) and the two streaming passes over a staged file.
//! - [`source`]: the origin directory, SFTP (host key verified) or local, and safe remote names.
//! - [`queue`]: `work_items` — enqueue, claim under lease, heartbeat, rescue, retry, finish.
//! - [`load`]: the one load transaction; [`copy_writer`] its binary COPY; [`visitor_counts`]
//!   the visitor aggregate it keeps (`visitantes`, `visitas_por_anio`).
//! - [`partitions`]: the monthly partitions of `estadisticas` and `errores`, made ahead and
//!   dropped by retention.
//! - [`audit`]: `bitacora_control` writes other than the load.
//! - [`db`]: the two pools and the embedded migrations; [`paths`]: the ETL root and durable moves.
//! - [`alert`], [`telemetry`]: webhook alerts, logs (stdout and per-day, per-file) and metrics.
//! - [`fixtures`]: the generator of visit files (tests, demo, benchmarks); [`fault`]: test-only pause hooks.
//! - [`hash`], [`host`]: SHA-256 hex and the host name.
#![warn(missing_docs)]

pub mod alert;
pub mod audit;
pub mod business_date;
pub mod config;
pub mod copy_writer;
pub mod db;
pub mod fault;
pub mod feed;
pub mod fixtures;
pub mod hash;
pub mod host;
pub mod load;
pub mod partitions;
pub mod paths;
pub mod queue;
pub mod secret;
pub mod source;
pub mod telemetry;
pub mod visitor_counts;
