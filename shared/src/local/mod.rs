//! This host's side: the ETL root's directories and durable moves, the root's identity
//! mark, the staged file read through the feed (the two passes), file hashing, the host
//! name, the business date (this host's clock), secret files, and the test-only fault
//! hooks.

pub mod business_date;
pub mod fault;
pub mod hash;
pub mod host;
pub mod paths;
pub mod root_mark;
pub(crate) mod secret_file;
pub mod staged;
