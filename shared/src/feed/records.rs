//! Text to records (SPEC §2, §7): a physical line is a record, parsed as RFC 4180.
//!
//! `csv-core` does the parsing; it is lenient where the feed is strict (text after a
//! closing quote, an unterminated quote), so a small check rejects what RFC 4180 forbids.

use csv_core::{ReadFieldResult, Reader};
use std::borrow::Cow;

/// The header's line number; data lines start at 2.
pub const HEADER_LINE: u32 = 1;

/// One physical line after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based physical line number (the header is line 1).
    pub number: u32,
    /// The line as decoded, without its line ending.
    pub text: &'a str,
}

/// Splits decoded text into physical lines (LF or CRLF), dropping blank lines at the end.
pub fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out: Vec<Line<'_>> = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| Line {
            number: i as u32 + 1,
            text: l.strip_suffix('\r').unwrap_or(l),
        })
        .collect();
    while out.last().is_some_and(|l| l.text.trim().is_empty()) {
        out.pop();
    }
    out
}

/// Splits one line into its fields; `None` when the line is not well-formed RFC 4180.
pub struct FieldSplitter {
    reader: Reader,
    buf: Vec<u8>,
}

impl Default for FieldSplitter {
    fn default() -> Self {
        Self {
            reader: Reader::new(),
            buf: vec![0; 4096],
        }
    }
}

impl FieldSplitter {
    /// The fields of `line`, unquoted; `None` if its quoting is malformed.
    pub fn split<'a>(&mut self, line: &'a str) -> Option<Vec<Cow<'a, str>>> {
        if !line.contains('"') {
            // The common case: no unquoting, no copy.
            return Some(line.split(',').map(Cow::Borrowed).collect());
        }
        if !well_formed(line) {
            return None;
        }
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
                            fields.push(unquoted(&line[start..], &mut field)?);
                        }
                        return Some(fields);
                    }
                }
                ReadFieldResult::Field { record_end } => {
                    let raw = &line[start..at];
                    fields.push(unquoted(raw.strip_suffix(',').unwrap_or(raw), &mut field)?);
                    start = at;
                    if record_end {
                        return Some(fields);
                    }
                }
                ReadFieldResult::End => return Some(fields),
            }
        }
    }
}

/// A field as csv-core wrote it to `out`, borrowed from the line instead when its raw
/// text holds no quote (and so is the same bytes).
fn unquoted<'a>(raw: &'a str, out: &mut Vec<u8>) -> Option<Cow<'a, str>> {
    if raw.contains('"') {
        String::from_utf8(std::mem::take(out)).ok().map(Cow::Owned)
    } else {
        out.clear();
        Some(Cow::Borrowed(raw))
    }
}

/// RFC 4180 well-formedness of one line: a field that opens with a quote must close
/// it right before a comma or the end, with `""` as the only quote inside.
/// A quote inside an unquoted field is a literal character (SPEC §7).
fn well_formed(line: &str) -> bool {
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return false, // unterminated quote
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            match bytes.get(i) {
                None => return true,
                Some(b',') => i += 1,
                Some(_) => return false, // text after a closing quote
            }
        } else {
            match bytes[i..].iter().position(|&b| b == b',') {
                None => return true,
                Some(p) => i += p + 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Option<Vec<String>> {
        FieldSplitter::default()
            .split(line)
            .map(|f| f.into_iter().map(Cow::into_owned).collect())
    }

    #[test]
    fn quoted_fields_hold_commas_and_doubled_quotes() {
        assert_eq!(
            split(r#"a,"189.1.1.1,200.2.2.2","say ""hi""",,"#).unwrap(),
            vec!["a", "189.1.1.1,200.2.2.2", r#"say "hi""#, "", ""]
        );
    }

    #[test]
    fn malformed_quoting_is_refused() {
        assert_eq!(split(r#"a,"unterminated"#), None);
        assert_eq!(split(r#"a,"closed"then text,b"#), None);
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
    fn lines_handle_crlf_and_trailing_blank_lines_only() {
        let ls = lines("h\r\na\r\n\r\nb\r\n\r\n  \n");
        let texts: Vec<_> = ls.iter().map(|l| (l.number, l.text)).collect();
        assert_eq!(texts, vec![(1, "h"), (2, "a"), (3, ""), (4, "b")]);
    }
}
