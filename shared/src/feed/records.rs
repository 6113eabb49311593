//! Bytes to records (docs/data-contract.md §2, §7): one line splitter and one field splitter, shared by
//! the header check and the row reader.
//!
//! A line ends in LF or CRLF and nothing else: a carriage return not followed by LF is
//! a character of its line, never a line end (in the field splitter too). A record is
//! a physical line, parsed as RFC 4180 by `csv-core`, which is lenient where the feed is
//! strict (text after a closing quote, an unterminated quote), so a small check rejects
//! what RFC 4180 forbids.

use crate::types::Encoding;
use csv_core::{ReadFieldResult, Reader, ReaderBuilder, Terminator};
use std::borrow::Cow;
use std::io::{self, BufRead, Read};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// One physical line after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based physical line number (the header is line 1).
    pub number: u32,
    /// The line as decoded, without its line ending.
    pub text: &'a str,
}

/// One physical line, decoded and owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedLine {
    /// 1-based line number.
    pub number: u32,
    /// The line without its line ending.
    pub text: String,
}

impl OwnedLine {
    /// A borrowed view for the rules.
    pub fn as_line(&self) -> Line<'_> {
        Line {
            number: self.number,
            text: &self.text,
        }
    }
}

/// The line splitter: physical lines, numbered from 1, each without its LF or CRLF and
/// decoded with the file's encoding (a UTF-8 BOM at the start of the file dropped).
pub struct LineReader<R> {
    reader: R,
    encoding: Encoding,
    number: u32,
    consumed: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> LineReader<R> {
    /// Reads `reader`, whose encoding pass 1 decided.
    pub fn new(reader: R, encoding: Encoding) -> Self {
        Self {
            reader,
            encoding,
            number: 0,
            consumed: 0,
            buf: Vec::with_capacity(4096),
        }
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// Bytes of the file the lines read so far took, line ends included.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> io::Result<Option<OwnedLine>> {
        Ok(self.next_line_within(u64::MAX)?.map(|(line, _)| line))
    }

    /// The next line, reading at most `max_bytes` of it: with `false` when the line is
    /// longer (the reader then stands inside it; only the layout check, which stops
    /// there, uses this).
    pub fn next_line_within(&mut self, max_bytes: u64) -> io::Result<Option<(OwnedLine, bool)>> {
        self.buf.clear();
        let read = (&mut self.reader)
            .take(max_bytes)
            .read_until(b'\n', &mut self.buf)?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        self.consumed += read as u64;
        let whole = self.buf.ends_with(b"\n") || (read as u64) < max_bytes;
        let mut bytes = self.buf.as_slice();
        if self.number == 1 {
            bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        }
        if let Some(body) = bytes.strip_suffix(b"\n") {
            // CRLF: the CR belongs to the line end; any other CR is data.
            bytes = body.strip_suffix(b"\r").unwrap_or(body);
        }
        let text = match self.encoding {
            Encoding::Utf8 if whole => String::from_utf8(bytes.to_vec())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            // A line cut short may end inside a character.
            Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Encoding::Windows1252 => encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        };
        let line = OwnedLine {
            number: self.number,
            text,
        };
        Ok(Some((line, whole)))
    }
}

/// Where a line's first carriage return stands (1-based character), if it holds one:
/// after the line end is taken off, every CR left is a bare one.
pub fn bare_cr(text: &str) -> Option<usize> {
    text.find('\r').map(|at| text[..at].chars().count() + 1)
}

/// Why a line is not well-formed RFC 4180.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// A field opens a quote that the line never closes.
    #[error("field {field} opens a quote that is never closed (a quoted field may not span lines)")]
    Unterminated {
        /// 1-based field.
        field: usize,
    },
    /// Something follows a closing quote other than a comma or the line end.
    #[error("text after the closing quote of field {field}")]
    TextAfterQuote {
        /// 1-based field.
        field: usize,
    },
}

/// Splits one line into its fields.
pub struct FieldSplitter {
    reader: Reader,
    buf: Vec<u8>,
}

impl Default for FieldSplitter {
    fn default() -> Self {
        Self {
            // Lines come without their line end, so no byte ends a record: with the
            // default (CRLF) terminator csv-core would end one at a bare CR.
            reader: ReaderBuilder::new()
                .terminator(Terminator::Any(b'\n'))
                .build(),
            buf: vec![0; 4096],
        }
    }
}

impl FieldSplitter {
    /// The fields of `line`, unquoted, or why its quoting is malformed.
    pub fn split<'a>(&mut self, line: &'a str) -> Result<Vec<Cow<'a, str>>, Malformed> {
        if !line.contains('"') {
            // The common case: no unquoting, no copy.
            return Ok(line.split(',').map(Cow::Borrowed).collect());
        }
        well_formed(line)?;
        self.reader.reset();
        let bytes = line.as_bytes();
        let (mut fields, mut field) = (Vec::new(), Vec::new());
        // Where the current field starts in `line`, and how far csv-core has read.
        let (mut start, mut at) = (0, 0);
        loop {
            let (result, read, written) = self.reader.read_field(&bytes[at..], &mut self.buf);
            at += read;
            field.extend_from_slice(&self.buf[..written]);
            match result {
                ReadFieldResult::OutputFull => continue,
                ReadFieldResult::InputEmpty => {
                    // Signal end of input so the last field is delivered.
                    if at == bytes.len() {
                        let (result, _, written) = self.reader.read_field(&[], &mut self.buf);
                        field.extend_from_slice(&self.buf[..written]);
                        if let ReadFieldResult::Field { .. } = result {
                            fields.push(unquoted(&line[start..], &mut field));
                        }
                        return Ok(fields);
                    }
                }
                ReadFieldResult::Field { record_end } => {
                    let raw = &line[start..at];
                    fields.push(unquoted(raw.strip_suffix(',').unwrap_or(raw), &mut field));
                    start = at;
                    if record_end {
                        return Ok(fields);
                    }
                }
                ReadFieldResult::End => return Ok(fields),
            }
        }
    }
}

/// A field as csv-core wrote it to `out`, borrowed from the line instead when its raw
/// text holds no quote (and so is the same bytes).
fn unquoted<'a>(raw: &'a str, out: &mut Vec<u8>) -> Cow<'a, str> {
    if raw.contains('"') {
        // csv-core only removes ASCII quotes from valid UTF-8: the rest stays valid.
        Cow::Owned(String::from_utf8(std::mem::take(out)).expect("unquoting keeps UTF-8"))
    } else {
        out.clear();
        Cow::Borrowed(raw)
    }
}

/// RFC 4180 well-formedness of one line: a field that opens with a quote must close
/// it right before a comma or the end, with `""` as the only quote inside.
/// A quote inside an unquoted field is a literal character (docs/data-contract.md §7).
fn well_formed(line: &str) -> Result<(), Malformed> {
    let bytes = line.as_bytes();
    let (mut i, mut field) = (0, 1);
    loop {
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(Malformed::Unterminated { field }),
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            match bytes.get(i) {
                None => return Ok(()),
                Some(b',') => i += 1,
                Some(_) => return Err(Malformed::TextAfterQuote { field }),
            }
        } else {
            match bytes[i..].iter().position(|&b| b == b',') {
                None => return Ok(()),
                Some(p) => i += p + 1,
            }
        }
        field += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Result<Vec<String>, Malformed> {
        FieldSplitter::default()
            .split(line)
            .map(|f| f.into_iter().map(Cow::into_owned).collect())
    }

    fn read_all(bytes: &[u8], encoding: Encoding) -> Vec<(u32, String)> {
        let mut reader = LineReader::new(bytes, encoding);
        std::iter::from_fn(|| reader.next_line().unwrap())
            .map(|l| (l.number, l.text))
            .collect()
    }

    #[test]
    fn quoted_fields_hold_commas_and_doubled_quotes() {
        assert_eq!(
            split(r#"a,"189.1.1.1,200.2.2.2","say ""hi""",,"#).unwrap(),
            vec!["a", "189.1.1.1,200.2.2.2", r#"say "hi""#, "", ""]
        );
    }

    #[test]
    fn malformed_quoting_is_refused_naming_the_field() {
        assert_eq!(
            split(r#"a,"unterminated"#),
            Err(Malformed::Unterminated { field: 2 })
        );
        assert_eq!(
            split(r#"a,b,"closed"then text,b"#),
            Err(Malformed::TextAfterQuote { field: 3 })
        );
    }

    #[test]
    fn only_quoted_fields_are_copied() {
        let line = r#"a,"b,c",d"#;
        let fields = FieldSplitter::default().split(line).unwrap();
        let borrowed: Vec<bool> = fields
            .iter()
            .map(|f| matches!(f, Cow::Borrowed(_)))
            .collect();
        assert_eq!(borrowed, vec![true, false, true]);
        assert_eq!(fields, vec!["a", "b,c", "d"]);
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_literal() {
        assert_eq!(split(r#"a,b"c,d"#).unwrap(), vec!["a", r#"b"c"#, "d"]);
    }

    #[test]
    fn empty_quoted_last_field() {
        assert_eq!(split(r#"a,"""#).unwrap(), vec!["a", ""]);
    }

    #[test]
    fn a_bare_cr_is_data_whether_or_not_the_line_holds_a_quote() {
        assert_eq!(split("a,b\rc,d").unwrap(), vec!["a", "b\rc", "d"]);
        assert_eq!(split("\"a\",b\rc,d").unwrap(), vec!["a", "b\rc", "d"]);
        assert_eq!(split("a,\"b\rc\",d\r").unwrap(), vec!["a", "b\rc", "d\r"]);
        let fifteen = "\"x\",a,b,c,d\re,f,g,h,i,j,k,l,m,n,o";
        assert_eq!(split(fifteen).unwrap().len(), 15);
        assert_eq!(bare_cr(fifteen), Some(12));
        assert_eq!(bare_cr("no cr"), None);
    }

    #[test]
    fn lines_end_in_lf_or_crlf_and_nothing_else() {
        let read = read_all(
            b"\xEF\xBB\xBFh\r\na\r\n\r\nb\rc\r\r\nd\n\re\xEF\xBB\xBF\r",
            Encoding::Utf8,
        );
        let expected = [
            (1, "h"),
            (2, "a"),
            (3, ""),
            (4, "b\rc\r"),
            (5, "d"),
            (6, "\re\u{feff}\r"),
        ];
        assert_eq!(read, expected.map(|(n, t)| (n, t.to_string())));
        // Old Mac line ends: the whole file is one line.
        assert_eq!(
            read_all(b"h\ra\rb\r", Encoding::Utf8),
            [(1, "h\ra\rb\r".into())]
        );
        assert_eq!(
            read_all(b"\xEF\xBB\xBFJos\xE9\n", Encoding::Windows1252),
            [(1, "Jos\u{e9}".into())]
        );
    }

    #[test]
    fn a_line_read_within_a_limit_says_whether_it_is_whole() {
        let mut reader = LineReader::new(&b"abc\ndefgh\n\xC3\xA9\xC3\xA9"[..], Encoding::Utf8);
        let mut next = || {
            reader
                .next_line_within(4)
                .unwrap()
                .map(|(l, whole)| (l.text, whole))
        };
        assert_eq!(next(), Some(("abc".into(), true)));
        assert_eq!(next(), Some(("defg".into(), false)));
        let mut reader = LineReader::new(&b"\xC3\xA9\xC3\xA9x"[..], Encoding::Utf8);
        let (line, whole) = reader.next_line_within(3).unwrap().unwrap();
        assert_eq!((line.text.as_str(), whole), ("\u{e9}\u{fffd}", false));
        let mut reader = LineReader::new(&b"ab"[..], Encoding::Utf8);
        assert!(reader.next_line_within(4).unwrap().unwrap().1);
    }
}
