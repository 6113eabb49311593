//! The pure feed: bytes → records → validated batches. Decoding, one line splitter and
//! one field splitter, the layout and its header check, record-level and row rules, the
//! visitor tally, and how messages quote a file. Functions of bytes and values only:
//! reading a staged file is `crate::local::staged`.

pub(crate) mod batches;
pub mod decode;
pub mod header;
pub mod layout;
pub(crate) mod quote;
pub(crate) mod records;
pub mod rules;
pub(crate) mod shape;
pub mod visitors;

pub use decode::decode;
pub use header::LayoutError;
pub use layout::{ErrorCode, VISITS};
pub use rules::{FeedError, Rejected, ValidatedBatch, validate, validate_batch};
pub use visitors::{Months, VisitorTally, Visits};

/// The name of the visits feed: what alerts, `[expect.<feed>]` and the history checks call
/// it. Until feeds are data (issue 22) it is the only feed, and every item is one of its files.
pub const VISITS_FEED: &str = "visitas";

/// The feeds this service loads, by name.
pub const FEEDS: [&str; 1] = [VISITS_FEED];
