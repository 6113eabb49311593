//! Pass 2's reading, as a pure function of any reader: a file's physical lines in
//! batches, line numbers running on, blank lines dropped only at the end of the file
//! (docs/data-contract.md §2, §7). Memory stays bounded by the batch size.

use super::records::{LineReader, OwnedLine};
use crate::types::Encoding;
use std::io::{self, BufRead};

/// Pass 2: the file's lines in batches; blank lines at the end of the file are dropped.
pub struct BatchReader<R> {
    lines: LineReader<R>,
    /// Blank lines not yet known to be in the middle (records) or at the end (ignored).
    blanks: Vec<OwnedLine>,
}

impl<R: BufRead> BatchReader<R> {
    /// Reads lines from `reader` (see [`LineReader`]).
    pub fn new(reader: R, encoding: Encoding) -> Self {
        Self {
            lines: LineReader::new(reader, encoding),
            blanks: Vec::new(),
        }
    }

    /// The first line (the header), or `None` for an empty file.
    pub fn header(&mut self) -> io::Result<Option<OwnedLine>> {
        self.lines.next_line()
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        self.lines.get_ref()
    }

    /// Passes over the lines that end within the first `offset` bytes of the file
    /// (loaded before, by another item); returns how many. An `offset` inside a line is
    /// refused: that line's record was loaded cut short.
    pub fn skip_to(&mut self, offset: u64) -> io::Result<u32> {
        let mut skipped = 0;
        while self.lines.consumed() < offset {
            if self.lines.next_line()?.is_none() {
                break;
            }
            skipped += 1;
        }
        if self.lines.consumed() != offset {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the part loaded before ({offset} bytes) does not end at a line end \
                     (line {} ends at byte {})",
                    skipped + 1,
                    self.lines.consumed()
                ),
            ));
        }
        Ok(skipped)
    }

    /// Up to `max` records (more only to flush blank lines); empty at the end.
    pub fn next_batch(&mut self, max: usize) -> io::Result<Vec<OwnedLine>> {
        let mut batch = Vec::with_capacity(max.min(1 << 16));
        while batch.len() < max {
            match self.lines.next_line()? {
                None => break, // pending blank lines were trailing: ignored
                Some(line) if line.text.trim().is_empty() => self.blanks.push(line),
                Some(line) => {
                    batch.append(&mut self.blanks);
                    batch.push(line);
                }
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_line_numbers_and_drop_only_trailing_blank_lines() {
        let bytes: &[u8] = b"\xEF\xBB\xBFh\r\na\r\n\r\nb\nc\n\n \n";
        let mut r = BatchReader::new(bytes, Encoding::Utf8);
        assert_eq!(r.header().unwrap().unwrap().text, "h");
        let first: Vec<(u32, String)> = r
            .next_batch(2)
            .unwrap()
            .into_iter()
            .map(|l| (l.number, l.text))
            .collect();
        assert_eq!(
            first,
            vec![(2, "a".into()), (3, "".into()), (4, "b".into())]
        );
        let second: Vec<u32> = r.next_batch(2).unwrap().iter().map(|l| l.number).collect();
        assert_eq!(second, vec![5]);
        assert!(r.next_batch(2).unwrap().is_empty());
    }

    #[test]
    fn lines_loaded_before_are_passed_over_and_numbers_run_on() {
        let bytes: &[u8] = b"h\r\na\nb\nc\n";
        let mut r = BatchReader::new(bytes, Encoding::Utf8);
        r.header().unwrap();
        assert_eq!(r.skip_to(7).unwrap(), 2, "a and b end at byte 7");
        let rest: Vec<(u32, String)> = r
            .next_batch(9)
            .unwrap()
            .into_iter()
            .map(|l| (l.number, l.text))
            .collect();
        assert_eq!(rest, vec![(4, "c".into())]);
        let mut r = BatchReader::new(bytes, Encoding::Utf8);
        r.header().unwrap();
        let cut = r.skip_to(6).unwrap_err();
        assert!(
            cut.to_string().contains("does not end at a line end"),
            "{cut}"
        );
    }
}
