//! The visits feed: decoding, records (one line splitter, one field splitter), layout,
//! row rules, and how messages quote a file — pure functions of bytes.

pub mod decode;
pub mod header;
pub mod layout;
pub mod quote;
pub mod records;
pub mod rules;
pub mod shape;
pub mod stream;
pub mod visitors;

pub use decode::{Encoding, decode};
pub use header::LayoutError;
pub use layout::{ErrorCode, VISITS};
pub use records::OwnedLine;
pub use rules::{FeedError, Rejected, ValidatedBatch, validate, validate_batch};
pub use stream::{
    BATCH_ROWS, BatchReader, EndOfFile, FilePart, Fingerprint, StreamError, check_layout,
    fingerprint, validate_file,
};
pub use visitors::{Months, VisitorTally, Visits};
