//! The staged file, read through the feed: files larger than memory take two streaming
//! passes.
//!
//! Pass 1 ([`fingerprint`]) reads it once for its SHA-256, its size and whether it is
//! valid UTF-8 (which decides the encoding of the whole file, docs/data-contract.md §2).
//! Pass 2 ([`validate_file`]) reads physical lines in batches ([`BatchReader`]), so
//! memory stays bounded by the batch size whatever the file size, while line numbers
//! run on.

use crate::feed::batches::BatchReader;
use crate::feed::header::{self, LayoutError};
use crate::feed::layout::Column;
use crate::feed::records::{Line, LineReader, OwnedLine};
use crate::feed::rules::{ValidatedBatch, validate_batch};
use crate::feed::visitors::{VisitorTally, Visits};
use crate::types::Encoding;
use chrono::NaiveDate;
use polars::prelude::PolarsError;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// Default records per batch (`performer.batch_rows`): with it, peak memory stayed near
/// 1.2 x the file size on 1M rows and about 0.3 x on 5M rows (ops/bench.sh).
pub const BATCH_ROWS: usize = 25_000;
const READ_BUFFER: usize = 1 << 20;

/// Why a staged file could not be read or validated.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading the staged file failed.
    #[error("reading the staged file: {0}")]
    Io(#[from] io::Error),
    /// The rules engine failed (a defect, not bad data).
    #[error("rules engine: {0}")]
    Engine(#[from] PolarsError),
}

/// What pass 1 learns of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// UTF-8 if every byte sequence is valid UTF-8 (BOM aside), else Windows-1252.
    pub encoding: Encoding,
}

/// Pass 1: SHA-256, size and encoding, reading the file once in 1 MiB chunks.
pub fn fingerprint(path: &Path) -> io::Result<Fingerprint> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; READ_BUFFER];
    let (mut size, mut utf8, mut carry) = (0u64, true, Vec::<u8>::new());
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        if utf8 {
            carry.extend_from_slice(&buf[..n]);
            match std::str::from_utf8(&carry) {
                Ok(_) => carry.clear(),
                // A character cut by the chunk boundary: keep its start for the next chunk.
                Err(e) if e.error_len().is_none() => {
                    carry.drain(..e.valid_up_to());
                }
                Err(_) => utf8 = false,
            }
        }
    }
    let encoding = if utf8 && carry.is_empty() {
        Encoding::Utf8
    } else {
        Encoding::Windows1252
    };
    Ok(Fingerprint {
        sha256: crate::local::hash::to_hex(&hasher.finalize()),
        size,
        encoding,
    })
}

/// A reader that hashes and counts every byte read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R> Hashing<R> {
    /// What was read so far: (bytes, SHA-256 hex). At the end of the file, the whole file's.
    fn read_so_far(&self) -> (u64, String) {
        (
            self.bytes,
            crate::local::hash::to_hex(&self.hasher.clone().finalize()),
        )
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The layout check of a staged file (docs/data-contract.md §3), reading only its first line(s).
pub fn check_layout(
    path: &Path,
    encoding: Encoding,
    layout: &[Column],
) -> io::Result<Result<(), LayoutError>> {
    let file = BufReader::with_capacity(64 * 1024, File::open(path)?);
    header::check_layout(&mut LineReader::new(file, encoding), layout)
}

/// What [`validate_file`] hands to the loader, in order.
pub(crate) enum FilePart {
    /// One validated batch of records.
    Rows(ValidatedBatch),
    /// Last, and only once the whole file was read: without it the input is incomplete.
    End(EndOfFile),
}

/// The validator's final part: the file's visitor aggregate, and what pass 2 read, so
/// the loader can check it is exactly what pass 1 hashed.
pub(crate) struct EndOfFile {
    /// The visitor aggregate of the whole file, in e-mail order.
    pub visitors: Vec<(String, Visits)>,
    /// Bytes read by pass 2.
    pub bytes: u64,
    /// SHA-256 (hex) of the bytes read by pass 2.
    pub sha256: String,
}

/// Reads the records after the header in batches and validates each, handing them to
/// `send` in order, then the file's visitor aggregate as of the business date `as_of`
/// (tallied here, beside the loader's COPY); stops early when `send` returns false. The
/// lines within the first `skip` bytes (loaded before by another item) are passed over,
/// though still read and hashed.
pub(crate) fn validate_file(
    path: &Path,
    encoding: Encoding,
    layout: &[Column],
    batch_rows: usize,
    as_of: NaiveDate,
    skip: u64,
    mut send: impl FnMut(Result<FilePart, StreamError>) -> bool,
) {
    let mut run = || -> Result<(), StreamError> {
        // Every byte read is hashed: the loader checks it is exactly what pass 1 hashed.
        let hashing = Hashing {
            inner: File::open(path)?,
            hasher: Sha256::new(),
            bytes: 0,
        };
        let mut reader = BatchReader::new(BufReader::with_capacity(READ_BUFFER, hashing), encoding);
        reader.header()?;
        if skip > 0 {
            reader.skip_to(skip)?;
        }
        let mut visitors = VisitorTally::new(as_of);
        loop {
            let lines = reader.next_batch(batch_rows)?;
            if lines.is_empty() {
                let (bytes, sha256) = reader.get_ref().get_ref().read_so_far();
                send(Ok(FilePart::End(EndOfFile {
                    visitors: visitors.into_sorted(),
                    bytes,
                    sha256,
                })));
                return Ok(());
            }
            let borrowed: Vec<Line<'_>> = lines.iter().map(OwnedLine::as_line).collect();
            crate::local::fault::panic_at("validate");
            let batch = validate_batch(&borrowed, layout)?;
            visitors.add(batch.valid())?;
            if !send(Ok(FilePart::Rows(batch))) {
                return Ok(());
            }
        }
    };
    if let Err(e) = run() {
        send(Err(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("visitas-stream-{name}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn fingerprint_sees_utf8_across_chunk_boundaries_and_falls_back_otherwise() {
        let mut text = "a".repeat(READ_BUFFER - 1).into_bytes();
        text.extend_from_slice("é\n".as_bytes()); // cut by the 1 MiB boundary
        let path = scratch("utf8", &text);
        let f = fingerprint(&path).unwrap();
        assert_eq!((f.encoding, f.size), (Encoding::Utf8, text.len() as u64));
        assert_eq!(f.sha256, crate::local::hash::to_hex(&Sha256::digest(&text)));
        let path = scratch("cp1252", b"Jos\xE9\n");
        assert_eq!(fingerprint(&path).unwrap().encoding, Encoding::Windows1252);
        let path = scratch("truncated", b"ab\xC3");
        assert_eq!(fingerprint(&path).unwrap().encoding, Encoding::Windows1252);
    }
}
