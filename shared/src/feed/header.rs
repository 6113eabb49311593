//! The layout check (docs/data-contract.md §3): line 1 must be the feed's header. When it is not, the
//! message says what the operator must fix (a blank line before it, another separator,
//! an empty column, CR line ends, UTF-16, invisible characters shown escaped).

use super::layout::Column;
use super::quote::{VALUE_CHARS, has_invisible, shown};
use super::records::{FieldSplitter, LineReader, Malformed, bare_cr};
use std::borrow::Cow;
use std::io::{self, BufRead};

/// Longest first line the layout check reads: a header is about 140 bytes, so a longer
/// line 1 is not one (and a file of one huge line is never read whole for it).
pub const HEADER_MAX_BYTES: u64 = 64 * 1024;
/// Unexpected header names listed in a message, at most.
const NAMES_LISTED: usize = 5;

/// Why a file's layout is refused (`FALLO_LAYOUT`); the message is for operators and
/// names what to fix. Pieces of the file are quoted with invisible characters escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// No bytes at all.
    #[error("line 1: the file is empty (no header line)")]
    Empty,
    /// Only blank (white-space) lines.
    #[error("line 1: the file holds only blank lines ({lines}), no header line")]
    OnlyBlankLines {
        /// How many.
        lines: u32,
    },
    /// Line 1 is blank but text follows.
    #[error("line 1 is blank: the header must be the first line; {}", blank_first_hint(*.first_text, *.header_there))]
    BlankFirstLine {
        /// The first line with text.
        first_text: u32,
        /// Whether that line is a valid header.
        header_there: bool,
    },
    /// Line 1 has no line end within [`HEADER_MAX_BYTES`].
    #[error(
        "line 1 has no line end in its first {} bytes, so it cannot be the header (15 column names, about 140 characters): the header is missing or the lines do not end in LF or CRLF",
        crate::types::storable::thousands(HEADER_MAX_BYTES as usize)
    )]
    HeaderTooLong,
    /// The file looks UTF-16 (a BOM `FF FE` / `FE FF`, or NULs between the letters).
    #[error(
        "line 1: the file seems to be UTF-16 ({0}); the feed is UTF-8 (or Windows-1252): save it as UTF-8"
    )]
    Utf16(&'static str),
    /// Line 1 holds a CR that is not part of a CRLF line end.
    #[error(
        "line 1 holds a carriage return (`\\r`) not followed by a line feed, at character {at}: lines end in LF or CRLF, so a file whose lines end in CR only (classic Mac) is one long line; convert its line ends to LF or CRLF"
    )]
    BareCr {
        /// 1-based character of the first CR.
        at: usize,
    },
    /// The header line is not well-formed CSV.
    #[error("line 1: the header is not well-formed CSV: {0}")]
    MalformedHeader(Malformed),
    /// Too few or too many columns.
    #[error("line 1: the header has {found} column{}, expected {expected}: {detail}", if *.found == 1 { "" } else { "s" })]
    ColumnCount {
        /// Columns found.
        found: usize,
        /// Columns expected.
        expected: usize,
        /// What is missing or extra, or what the line looks like instead.
        detail: String,
    },
    /// Line 1 holds none of the column names: most likely a data line.
    #[error(
        "line 1 is not the header: none of its fields is a column name of the feed (it begins `{begins}`); is the header missing?"
    )]
    NotAHeader {
        /// The start of line 1, invisible characters escaped.
        begins: String,
    },
    /// A column is renamed or out of place.
    #[error("line 1, column {position}: found `{found}`, expected `{expected}`{hint}")]
    ColumnName {
        /// 1-based column position.
        position: usize,
        /// The name found, invisible characters escaped.
        found: String,
        /// The name expected there.
        expected: &'static str,
        /// What to remove, when the name holds invisible characters.
        hint: &'static str,
    },
}

fn blank_first_hint(first_text: u32, header_there: bool) -> String {
    let blanks = first_text - 1;
    let s = if blanks == 1 { "" } else { "s" };
    if header_there {
        format!("line {first_text} holds the header: remove the {blanks} blank line{s} before it")
    } else {
        format!("the first line with text is line {first_text}")
    }
}

fn invisible_hint(found: &str) -> &'static str {
    if found.contains('\u{feff}') {
        " (`\\u{feff}` is a byte-order mark left in the text, e.g. a second one: remove it)"
    } else if has_invisible(found) {
        " (it holds invisible characters, shown escaped: remove them)"
    } else {
        ""
    }
}

/// Checks the layout from the first line(s) of a file (docs/data-contract.md §3): line 1 must be the
/// header. Reads at most [`HEADER_MAX_BYTES`] of a line; past a blank line 1, reads on
/// to the first line with text, to say where the header is.
pub fn check_layout<R: BufRead>(
    lines: &mut LineReader<R>,
    layout: &[Column],
) -> io::Result<Result<(), LayoutError>> {
    let Some((first, whole)) = lines.next_line_within(HEADER_MAX_BYTES)? else {
        return Ok(Err(LayoutError::Empty));
    };
    if !whole {
        return Ok(Err(utf16(&first.text)
            .or_else(|| bare_cr(&first.text).map(|at| LayoutError::BareCr { at }))
            .unwrap_or(LayoutError::HeaderTooLong)));
    }
    if !first.text.trim().is_empty() {
        return Ok(check_header(&first.text, layout));
    }
    let mut blanks = 1;
    while let Some((line, whole)) = lines.next_line_within(HEADER_MAX_BYTES)? {
        if whole && line.text.trim().is_empty() {
            blanks += 1;
            continue;
        }
        return Ok(Err(LayoutError::BlankFirstLine {
            first_text: line.number,
            header_there: whole && check_header(&line.text, layout).is_ok(),
        }));
    }
    Ok(Err(LayoutError::OnlyBlankLines { lines: blanks }))
}

/// Checks a header line against the layout (names trimmed, case-insensitive).
pub fn check_header(header: &str, layout: &[Column]) -> Result<(), LayoutError> {
    let checked = match FieldSplitter::default().split(header) {
        Ok(names) => check_names(header, &names, layout),
        Err(malformed) => Err(LayoutError::MalformedHeader(malformed)),
    };
    // What most likely went wrong with the whole file says more than which name differs.
    checked.map_err(|e| {
        utf16(header)
            .or_else(|| bare_cr(header).map(|at| LayoutError::BareCr { at }))
            .unwrap_or(e)
    })
}

fn matches(name: &str, column: &Column) -> bool {
    std::iter::once(column.header)
        .chain(column.aliases.iter().copied())
        .any(|h| h.to_lowercase() == name.to_lowercase())
}

fn check_names(header: &str, names: &[Cow<'_, str>], layout: &[Column]) -> Result<(), LayoutError> {
    let names: Vec<&str> = names.iter().map(|n| n.trim()).collect();
    let delimiter = likely_delimiter(header, names.len());
    if delimiter.is_none() && !names.iter().any(|n| layout.iter().any(|c| matches(n, c))) {
        return Err(LayoutError::NotAHeader {
            begins: shown(header, VALUE_CHARS),
        });
    }
    if names.len() != layout.len() {
        return Err(LayoutError::ColumnCount {
            found: names.len(),
            expected: layout.len(),
            detail: count_detail(delimiter, &names, layout),
        });
    }
    for (i, (name, column)) in names.iter().zip(layout).enumerate() {
        if !matches(name, column) {
            return Err(LayoutError::ColumnName {
                position: i + 1,
                found: shown(name, VALUE_CHARS),
                expected: column.header,
                hint: invisible_hint(name),
            });
        }
    }
    Ok(())
}

/// What a header with the wrong number of columns holds instead.
fn count_detail(delimiter: Option<&str>, names: &[&str], layout: &[Column]) -> String {
    if let Some(delimiter) = delimiter {
        return format!(
            "it seems separated by {delimiter}, not commas; the feed is comma-separated (RFC 4180)"
        );
    }
    // Pair each expected column with the first unused name that matches it; the
    // names left over (duplicates included) are unexpected.
    let mut used = vec![false; names.len()];
    let mut missing = Vec::new();
    for column in layout {
        match (0..names.len()).find(|&i| !used[i] && matches(names[i], column)) {
            Some(i) => used[i] = true,
            None => missing.push(format!("`{}`", column.header)),
        }
    }
    let unexpected: Vec<usize> = (0..names.len()).filter(|&i| !used[i]).collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        let mut listed: Vec<String> = unexpected
            .iter()
            .take(NAMES_LISTED)
            .map(|&i| match names[i] {
                "" if i + 1 == names.len() => {
                    format!("column {} (empty: a comma at the end of the line?)", i + 1)
                }
                "" => format!("column {} (empty)", i + 1),
                name => format!("column {} `{}`", i + 1, shown(name, 40)),
            })
            .collect();
        if unexpected.len() > NAMES_LISTED {
            listed.push(format!(
                "and {} more",
                crate::types::storable::thousands(unexpected.len() - NAMES_LISTED)
            ));
        }
        parts.push(format!("unexpected {}", listed.join(", ")));
    }
    parts.join("; ")
}

/// The delimiter a header with the wrong column count seems to use instead of commas.
fn likely_delimiter(header: &str, comma_fields: usize) -> Option<&'static str> {
    [
        ('\t', "tabs (`\\t`)"),
        (';', "semicolons (`;`)"),
        ('|', "vertical bars (`|`)"),
    ]
    .into_iter()
    .map(|(d, name)| (header.split(d).count(), name))
    .filter(|&(n, _)| n > comma_fields && n >= 3)
    .max_by_key(|&(n, _)| n)
    .map(|(_, name)| name)
}

/// Whether line 1 reads as UTF-16 decoded byte by byte, and how it shows.
fn utf16(line: &str) -> Option<LayoutError> {
    if line.starts_with("\u{ff}\u{fe}") {
        return Some(LayoutError::Utf16(
            "little-endian: it starts with the byte-order mark FF FE",
        ));
    }
    if line.starts_with("\u{fe}\u{ff}") {
        return Some(LayoutError::Utf16(
            "big-endian: it starts with the byte-order mark FE FF",
        ));
    }
    let nuls = line.chars().filter(|&c| c == '\0').count();
    (nuls >= 2 && nuls * 3 >= line.chars().count()).then_some(LayoutError::Utf16(
        "no byte-order mark, but a NUL byte between the letters",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::VISITS;
    use crate::types::Encoding;

    const HEADER: &str = "email,jyv,Badmail,Baja,Fecha envio,Fecha open,Opens,Opens virales,Fecha click,Clicks,Clicks virales,Links,IPs,Navegadores,Plataformas";
    const ROW: &str = "ana@example.com,J1,-,,08/02/2013 18:30,,1,0,,0,0,,,,";

    fn check(text: &str) -> Result<(), LayoutError> {
        check_header(text, &VISITS)
    }

    /// The layout check of a whole file, as its message reads (`ok` when it passes).
    fn says(bytes: &[u8]) -> String {
        let encoding = match std::str::from_utf8(bytes) {
            Ok(_) => Encoding::Utf8,
            Err(_) => Encoding::Windows1252,
        };
        match check_layout(&mut LineReader::new(bytes, encoding), &VISITS).unwrap() {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn exact_header_alias_case_and_spaces_pass() {
        assert_eq!(check(HEADER), Ok(()));
        assert_eq!(
            check(&HEADER.replace("jyv", "JK").replace("Opens,", " OPENS ,")),
            Ok(())
        );
        // No-break spaces around a name are white space (trimmed); quoted names unquote.
        assert_eq!(check(&HEADER.replace("Baja", "\u{a0}Baja\u{a0}")), Ok(()));
        assert_eq!(check(&HEADER.replace("IPs", "\"IPs\"")), Ok(()));
        assert_eq!(says(format!("{HEADER}\r\r\n").as_bytes()), "ok");
    }

    #[test]
    fn renamed_reordered_missing_extra_columns_fail() {
        assert!(matches!(
            check(&HEADER.replace("Badmail", "Bad mail")),
            Err(LayoutError::ColumnName { position: 3, .. })
        ));
        assert!(matches!(
            check(&HEADER.replace("Badmail,Baja", "Baja,Badmail")),
            Err(LayoutError::ColumnName { position: 3, .. })
        ));
        assert_eq!(
            says(format!("{}\n", HEADER.replace(",Plataformas", "")).as_bytes()),
            "line 1: the header has 14 columns, expected 15: missing `Plataformas`"
        );
        assert_eq!(
            says(format!("{HEADER},Extra\n").as_bytes()),
            "line 1: the header has 16 columns, expected 15: unexpected column 16 `Extra`"
        );
        assert_eq!(
            says(format!("{}\n", HEADER.replace("jyv", "email")).as_bytes()),
            "line 1, column 2: found `email`, expected `jyv`"
        );
        assert_eq!(
            says(format!("{}\n", HEADER.replace("Baja,", "Baja,email,")).as_bytes()),
            "line 1: the header has 16 columns, expected 15: unexpected column 5 `email`"
        );
    }

    #[test]
    fn empty_blank_and_missing_headers_say_where_the_header_is() {
        assert_eq!(says(b""), "line 1: the file is empty (no header line)");
        assert_eq!(
            says(b" \r\n\t\n\n"),
            "line 1: the file holds only blank lines (3), no header line"
        );
        assert_eq!(
            says(format!("\n\r\n{HEADER}\n{ROW}\n").as_bytes()),
            "line 1 is blank: the header must be the first line; line 3 holds the header: remove the 2 blank lines before it"
        );
        assert_eq!(
            says(format!("\n{ROW}\n").as_bytes()),
            "line 1 is blank: the header must be the first line; the first line with text is line 2"
        );
        assert_eq!(
            says(format!("{ROW}\n{ROW}\n").as_bytes()),
            format!(
                "line 1 is not the header: none of its fields is a column name of the feed (it begins `{ROW}`); is the header missing?"
            )
        );
        let mut no_header = ROW.replace(",,", ",x,");
        no_header.push_str(",more\n");
        assert_eq!(
            says(no_header.as_bytes()),
            format!(
                "line 1 is not the header: none of its fields is a column name of the feed (it begins `{}`); is the header missing?",
                no_header.trim_end()
            )
        );
    }

    #[test]
    fn a_trailing_comma_names_the_empty_column() {
        assert_eq!(
            says(format!("{HEADER},\n").as_bytes()),
            "line 1: the header has 16 columns, expected 15: unexpected column 16 (empty: a comma at the end of the line?)"
        );
    }

    #[test]
    fn tab_semicolon_and_bar_separated_headers_name_their_delimiter() {
        for (d, name) in [
            ('\t', "tabs (`\\t`)"),
            (';', "semicolons (`;`)"),
            ('|', "vertical bars (`|`)"),
        ] {
            let header = HEADER.replace(',', &d.to_string());
            assert_eq!(
                says(format!("{header}\n").as_bytes()),
                format!(
                    "line 1: the header has 1 column, expected 15: it seems separated by {name}, not commas; the feed is comma-separated (RFC 4180)"
                )
            );
        }
    }

    #[test]
    fn invisible_characters_are_shown_escaped() {
        assert_eq!(
            says(format!("\u{feff}\u{feff}{HEADER}\n").as_bytes()),
            "line 1, column 1: found `\\u{feff}email`, expected `email` (`\\u{feff}` is a byte-order mark left in the text, e.g. a second one: remove it)"
        );
        assert_eq!(
            says(format!("{}\n", HEADER.replace("Fecha envio", "Fecha\u{a0}envio")).as_bytes()),
            "line 1, column 5: found `Fecha\\u{a0}envio`, expected `Fecha envio` (it holds invisible characters, shown escaped: remove them)"
        );
        assert_eq!(
            says(format!("{}\n", HEADER.replace("Opens,", "Op\0ens,")).as_bytes()),
            "line 1, column 7: found `Op\\0ens`, expected `Opens` (it holds invisible characters, shown escaped: remove them)"
        );
    }

    #[test]
    fn utf16_files_are_named() {
        let utf16 = |bom: &[u8], big_endian: bool| {
            let mut bytes = bom.to_vec();
            for unit in format!("{HEADER}\r\n{ROW}\r\n").encode_utf16() {
                let b = if big_endian {
                    unit.to_be_bytes()
                } else {
                    unit.to_le_bytes()
                };
                bytes.extend_from_slice(&b);
            }
            says(&bytes)
        };
        let expect = |how: &str| {
            format!(
                "line 1: the file seems to be UTF-16 ({how}); the feed is UTF-8 (or Windows-1252): save it as UTF-8"
            )
        };
        assert_eq!(
            utf16(b"\xFF\xFE", false),
            expect("little-endian: it starts with the byte-order mark FF FE")
        );
        assert_eq!(
            utf16(b"\xFE\xFF", true),
            expect("big-endian: it starts with the byte-order mark FE FF")
        );
        assert_eq!(
            utf16(b"", false),
            expect("no byte-order mark, but a NUL byte between the letters")
        );
    }

    #[test]
    fn cr_line_ends_and_huge_first_lines_are_named() {
        let mac = format!("{HEADER}\r{ROW}\r{ROW}\r");
        let cr_message = format!(
            "line 1 holds a carriage return (`\\r`) not followed by a line feed, at character {}: lines end in LF or CRLF, so a file whose lines end in CR only (classic Mac) is one long line; convert its line ends to LF or CRLF",
            HEADER.len() + 1
        );
        assert_eq!(says(mac.as_bytes()), cr_message);
        // The same with a quote on a line: csv-core no longer ends a record at a CR.
        assert_eq!(says(mac.replace(",J1,", ",\"J1\",").as_bytes()), cr_message);
        assert_eq!(says(mac.repeat(2000).as_bytes()), cr_message);
        let one_line = ROW.repeat(100_000);
        assert_eq!(
            says(one_line.as_bytes()),
            "line 1 has no line end in its first 65,536 bytes, so it cannot be the header (15 column names, about 140 characters): the header is missing or the lines do not end in LF or CRLF"
        );
        assert!(says(format!("{HEADER}\n").as_bytes()) == "ok");
    }

    #[test]
    fn a_long_list_of_unexpected_names_is_cut() {
        let header = format!("{HEADER},{}", "x,".repeat(20_000));
        let message = says(header.as_bytes());
        assert!(
            message.ends_with("unexpected column 16 `x`, column 17 `x`, column 18 `x`, column 19 `x`, column 20 `x`, and 19,996 more"),
            "{message}"
        );
    }
}
