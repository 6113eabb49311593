//! Record-level rules, checked before any column rule (SPEC §4, §7; README, "Data
//! contract: edge cases decided here"): a record is 15 well-formed fields
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

#[cfg(test)]
mod tests {
    use crate::feed::VISITS;
    use crate::feed::rules::validate;

    const HEADER: &str = "email,jyv,Badmail,Baja,Fecha envio,Fecha open,Opens,Opens virales,Fecha click,Clicks,Clicks virales,Links,IPs,Navegadores,Plataformas";
    const GOOD: &str = "Ana@Example.com,x,-,,08/02/2013 18:30,09/02/2013 10:00,3,0,-,,7,http://a,\"189.1.1.1,200.2.2.2\",Chrome,Linux";

    /// The (line, code, detalle) of every rejected record of `records` under the header.
    fn rejected(records: &[String]) -> Vec<(u32, &'static str, String)> {
        let text = format!("{HEADER}\n{}\n", records.join("\n"));
        validate(&text, &VISITS)
            .unwrap()
            .rejected()
            .iter()
            .map(|r| (r.line, r.code.as_str(), r.detail.clone()))
            .collect()
    }

    #[test]
    fn field_count_details_name_their_rule_and_what_happened() {
        let good = GOOD.to_string();
        let plain = good.replace("\"189.1.1.1,200.2.2.2\"", "189.1.1.1");
        let found = rejected(&[
            format!("{good},"),
            format!("{good},,"),
            format!("{good}\r{good}"),
            plain.replace(',', "\t"),
            plain.replace(',', ";"),
            good.replace("Chrome", "\"Chrome"),
            good.replace("Chrome", "\"Chrome\"x"),
            "  ".into(),
            good.clone(),
        ]);
        let expected = [
            "FIELD_COUNT: 16 fields, expected 15 (field 16 is empty: a comma at the end of the line?)",
            "FIELD_COUNT: 17 fields, expected 15 (fields 16–17 are empty: commas at the end of the line?)",
            &format!(
                "FIELD_COUNT: 29 fields, expected 15 (a carriage return (`\\r`) at character {} does not end a line: only LF or CRLF do; two records joined by a CR?)",
                good.chars().count() + 1
            ),
            "FIELD_COUNT: 1 field, expected 15 (the line seems separated by tabs (`\\t`), not commas)",
            "FIELD_COUNT: 1 field, expected 15 (the line seems separated by semicolons (`;`), not commas)",
            "FIELD_COUNT: not well-formed CSV: field 14 opens a quote that is never closed (a quoted field may not span lines)",
            "FIELD_COUNT: not well-formed CSV: text after the closing quote of field 14",
            "FIELD_COUNT: blank line, expected 15 fields",
        ];
        let details: Vec<&str> = found.iter().map(|(_, _, d)| d.as_str()).collect();
        assert_eq!(details, expected);
        assert!(found.iter().all(|(_, code, _)| *code == "FIELD_COUNT"));
    }

    #[test]
    fn a_nul_makes_a_record_caracter_invalido_and_names_its_fields() {
        let good = GOOD.to_string();
        let found = rejected(&[
            good.replace("Chrome", "Chr\0ome").replace("Linux", "\0"),
            good.replace("Chrome", "\"Chr\0ome\""),
            good.replace(",Linux", "\0"),
            "\0".into(),
        ]);
        let note = r"fila_original is escaped: \0 is NUL, \\ is \";
        assert_eq!(
            found,
            vec![
                (
                    2,
                    "CARACTER_INVALIDO",
                    format!(
                        "Navegadores: CARACTER_INVALIDO «Chr\\0ome»; Plataformas: CARACTER_INVALIDO «\\0» (NUL, U+0000: PostgreSQL text cannot store it; {note})"
                    )
                ),
                (
                    3,
                    "CARACTER_INVALIDO",
                    format!(
                        "Navegadores: CARACTER_INVALIDO «Chr\\0ome» (NUL, U+0000: PostgreSQL text cannot store it; {note})"
                    )
                ),
                (
                    4,
                    "FIELD_COUNT",
                    format!(
                        "FIELD_COUNT: 14 fields, expected 15; the line holds NUL characters, which PostgreSQL cannot store: {note}"
                    )
                ),
                (
                    5,
                    "FIELD_COUNT",
                    format!(
                        "FIELD_COUNT: 1 field, expected 15; the line holds NUL characters, which PostgreSQL cannot store: {note}"
                    )
                ),
            ]
        );
    }
}
