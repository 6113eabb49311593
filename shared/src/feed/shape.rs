//! Record-level rules, checked before any column rule (docs/data-contract.md §4, §7):
//! a record is 15 well-formed fields
//! (`FIELD_COUNT`) and PostgreSQL can store every character of it (`CARACTER_INVALIDO`,
//! a NUL). A record that breaks one gets no other check; its `detalle` names the rule
//! and what the line holds instead.

use super::layout::{Column, ErrorCode};
use super::quote::{VALUE_CHARS, shown};
use super::records::{FieldSplitter, Malformed, bare_cr};
use crate::types::storable::is_storable;
use std::borrow::Cow;

/// How `errores.fila_original` is written for a record holding a NUL (see `storable::line`).
const ESCAPED_NOTE: &str = "fila_original is escaped: \\0 is NUL, \\\\ is \\";

/// The fields of a record of the right shape, or its code and `detalle`.
pub fn fields<'a>(
    splitter: &mut FieldSplitter,
    text: &'a str,
    layout: &[Column],
) -> Result<Vec<Cow<'a, str>>, (ErrorCode, String)> {
    let storable = is_storable(text);
    match splitter.split(text) {
        Ok(values) if values.len() == layout.len() && storable => Ok(values),
        Ok(values) if values.len() == layout.len() => Err((
            ErrorCode::CaracterInvalido,
            unstorable_detail(&values, layout),
        )),
        parsed => Err((
            ErrorCode::FieldCount,
            field_count_detail(text, parsed, layout.len(), storable),
        )),
    }
}

/// `errores.detalle` of a `FIELD_COUNT` record: what the line holds instead of 15
/// well-formed fields, and what most likely happened.
fn field_count_detail(
    text: &str,
    parsed: Result<Vec<Cow<'_, str>>, Malformed>,
    expected: usize,
    storable: bool,
) -> String {
    let code = ErrorCode::FieldCount.as_str();
    let mut detail = match parsed {
        _ if text.trim().is_empty() => format!("{code}: blank line, expected {expected} fields"),
        Err(malformed) => format!("{code}: not well-formed CSV: {malformed}"),
        Ok(values) => {
            let n = values.len();
            let mut d = format!(
                "{code}: {n} field{}, expected {expected}",
                if n == 1 { "" } else { "s" }
            );
            if let Some(at) = bare_cr(text) {
                d.push_str(&format!(
                    " (a carriage return (`\\r`) at character {at} does not end a line: only LF or CRLF do; two records joined by a CR?)"
                ));
            } else if n > expected && values[expected..].iter().all(|v| v.trim().is_empty()) {
                let extra = n - expected;
                d.push_str(&if extra == 1 {
                    format!(" (field {n} is empty: a comma at the end of the line?)")
                } else {
                    format!(
                        " (fields {}–{n} are empty: commas at the end of the line?)",
                        expected + 1
                    )
                });
            } else if let Some(name) = [('\t', "tabs (`\\t`)"), (';', "semicolons (`;`)")]
                .into_iter()
                .find(|(d, _)| n < expected && text.split(*d).count() == expected)
                .map(|(_, name)| name)
            {
                d.push_str(&format!(
                    " (the line seems separated by {name}, not commas)"
                ));
            }
            d
        }
    };
    if !storable {
        detail.push_str("; the line holds NUL characters, which PostgreSQL cannot store: ");
        detail.push_str(ESCAPED_NOTE);
    }
    detail
}

/// `errores.detalle` of a `CARACTER_INVALIDO` record: each field holding a NUL.
fn unstorable_detail(values: &[Cow<'_, str>], layout: &[Column]) -> String {
    let code = ErrorCode::CaracterInvalido.as_str();
    let parts: Vec<String> = values
        .iter()
        .zip(layout)
        .filter(|(v, _)| !crate::types::storable::is_storable(v))
        .map(|(v, c)| format!("{}: {code} «{}»", c.header, shown(v, VALUE_CHARS)))
        .collect();
    // Every character of a well-formed line is in a field (a NUL beside a quote makes
    // it malformed), so at least one part names a column.
    format!(
        "{} (NUL, U+0000: PostgreSQL text cannot store it; {ESCAPED_NOTE})",
        parts.join("; ")
    )
}
