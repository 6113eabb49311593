//! The visits feed service's library: everything the `dispatcher` and `performer` binaries share.
//!
//! # Layout
//! - [`config`]: the TOML file and `VISITAS_…` overrides; [`secret`] keeps secrets unprintable.
//! - [`feed`]: pure functions of bytes: decoding, records, the layout check and the row rules.
//! - [`source`]: the origin directory, SFTP (host key verified) or local, and safe remote names.
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
pub mod paths;
pub mod queue;
pub mod secret;
pub mod source;
pub mod telemetry;
