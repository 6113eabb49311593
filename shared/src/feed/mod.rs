//! The visits feed: decoding, records, layout and row rules — pure functions of bytes.

pub mod decode;
pub mod layout;
pub mod records;
pub mod rules;
pub mod stream;
pub mod visitors;

pub use decode::{Encoding, decode};
pub use layout::{ErrorCode, LayoutError, VISITS};
pub use rules::{FeedError, Rejected, ValidatedBatch, validate, validate_batch};
pub use stream::{
    BATCH_ROWS, BatchReader, FilePart, Fingerprint, StreamError, fingerprint, validate_file,
};
pub use visitors::{Months, VisitorTally, Visits};
