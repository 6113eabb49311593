//! Row rules (docs/data-contract.md §4, §7), vectorised with polars: fields are trimmed and nulled as
//! lines are split (zero-copy), then every column is checked and typed as a whole;
//! Rust loops only over rejected rows.

use super::batches::BatchReader;
use super::header::{LayoutError, check_layout};
use super::layout::{Column, ErrorCode, Kind, MAX_EMAIL_CHARS, MAX_TEXT_CHARS};
use super::quote::{VALUE_CHARS, shown};
use super::records::{FieldSplitter, Line, LineReader, OwnedLine};
use super::shape;
use crate::types::Encoding;
use polars::prelude::*;
use std::borrow::Cow;

/// WHATWG "valid e-mail address", narrowed by docs/data-contract.md §4: the domain holds a dot, and
/// the local part neither starts nor ends with a dot nor holds `..`. Applied after lower-casing.
const EMAIL_PATTERN: &str = r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$";
/// Exactly `dd/mm/yyyy HH:mm`; strptime alone accepts one-digit days.
const DATETIME_SHAPE: &str = r"^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}$";
const DATETIME_FORMAT: &str = "%d/%m/%Y %H:%M";
const DIGITS: &str = r"^[0-9]+$";

/// Why a file could not be validated.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The layout is wrong: nothing of the file is loaded.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The rules engine itself failed (a defect, not bad data).
    #[error("rules engine: {0}")]
    Engine(#[from] PolarsError),
}

/// One record that breaks a rule, bound for `errores`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Physical line number.
    pub line: u32,
    /// The first failing rule, in column order.
    pub code: ErrorCode,
    /// Every failing rule of the record.
    pub detail: String,
    /// The line as decoded.
    pub original: String,
}

/// A file that passed the layout check, split into typed valid rows and rejected records.
/// Only [`validate`] builds one, so the loader only ever sees checked data.
pub struct ValidatedBatch {
    valid: DataFrame,
    rejected: Vec<Rejected>,
}

impl ValidatedBatch {
    /// Valid rows: `linea` then the `estadisticas` columns, typed.
    pub fn valid(&self) -> &DataFrame {
        &self.valid
    }

    /// Rejected records, by line.
    pub fn rejected(&self) -> &[Rejected] {
        &self.rejected
    }

    /// The rejected records, taken out of the batch.
    pub fn take_rejected(&mut self) -> Vec<Rejected> {
        std::mem::take(&mut self.rejected)
    }

    /// Records in the file (header and trailing blank lines excluded).
    pub fn total(&self) -> usize {
        self.valid.height() + self.rejected.len()
    }
}

/// Checks the layout, then every record of a whole decoded text, by the same line
/// and field splitters as files; a layout failure loads nothing.
pub fn validate(text: &str, layout: &[Column]) -> Result<ValidatedBatch, FeedError> {
    check_layout(
        &mut LineReader::new(text.as_bytes(), Encoding::Utf8),
        layout,
    )
    .expect("reading a str cannot fail")?;
    let mut reader = BatchReader::new(text.as_bytes(), Encoding::Utf8);
    reader.header().expect("reading a str cannot fail");
    let lines: Vec<OwnedLine> = reader
        .next_batch(usize::MAX)
        .expect("reading a str cannot fail");
    let lines: Vec<Line<'_>> = lines.iter().map(OwnedLine::as_line).collect();
    Ok(validate_batch(&lines, layout)?)
}

/// Checks every record of a batch of lines (the header excluded).
pub fn validate_batch(lines: &[Line<'_>], layout: &[Column]) -> PolarsResult<ValidatedBatch> {
    let mut splitter = FieldSplitter::default();
    let mut rejected = Vec::new();
    let mut kept: Vec<&Line<'_>> = Vec::with_capacity(lines.len());
    let mut fields: Vec<Vec<Cow<'_, str>>> = (0..layout.len())
        .map(|_| Vec::with_capacity(lines.len()))
        .collect();
    for line in lines {
        match shape::fields(&mut splitter, line.text, layout) {
            Ok(values) => {
                for (column, value) in fields.iter_mut().zip(values) {
                    column.push(value);
                }
                kept.push(line);
            }
            Err((code, detail)) => rejected.push(Rejected {
                line: line.number,
                code,
                detail,
                original: line.text.to_string(),
            }),
        }
    }

    let mut columns: Vec<polars::prelude::Column> = Vec::with_capacity(layout.len() + 1);
    columns.push(
        Series::new(
            "linea".into(),
            kept.iter().map(|l| l.number).collect::<Vec<u32>>(),
        )
        .into(),
    );
    for (i, values) in fields.iter().enumerate() {
        let values: Vec<Option<&str>> = values.iter().map(|v| normalised(v)).collect();
        columns.push(Series::new(value_name(i).into(), values).into());
    }
    let checked = DataFrame::new(kept.len(), columns)?
        .lazy()
        .with_columns(parse_exprs(layout))
        .select(rule_exprs(layout))
        .with_column(all_ok(layout))
        .collect()?;

    let ok_columns: Vec<&BooleanChunked> = (0..layout.len())
        .map(|i| checked.column(&ok_name(i)).and_then(|c| c.bool()))
        .collect::<PolarsResult<_>>()?;
    let all_ok = checked.column("all_ok")?.bool()?;
    for (row, ok) in all_ok.iter().enumerate() {
        if ok == Some(true) {
            continue;
        }
        let mut failing = Vec::new();
        for (i, column) in layout.iter().enumerate() {
            if ok_columns[i].get(row) != Some(true) {
                failing.push((column, fields[i][row].as_ref()));
            }
        }
        let line = kept[row];
        rejected.push(Rejected {
            line: line.number,
            code: failing[0].0.error_code(),
            detail: failing
                .iter()
                .map(|(c, v)| {
                    let code = c.error_code().as_str();
                    format!("{}: {code} «{}»", c.header, shown(v, VALUE_CHARS))
                })
                .collect::<Vec<_>>()
                .join("; "),
            original: line.text.to_string(),
        });
    }
    rejected.sort_by_key(|r| r.line);

    let mut keep_cols = vec![col("linea")];
    keep_cols.extend(layout.iter().map(|c| col(c.db_column)));
    let valid = checked
        .lazy()
        .filter(col("all_ok"))
        .select(keep_cols)
        .collect()?;
    Ok(ValidatedBatch { valid, rejected })
}

/// A field as the rules see it (docs/data-contract.md §4): trimmed, and null when empty or `-`.
fn normalised(raw: &str) -> Option<&str> {
    match raw.trim() {
        "" | "-" => None,
        value => Some(value),
    }
}

/// Parses each column that has a type once, for [`rule_exprs`] to use twice (no CSE here).
fn parse_exprs(layout: &[Column]) -> Vec<Expr> {
    let mut exprs = Vec::new();
    for (i, column) in layout.iter().enumerate() {
        let value = col(value_name(i));
        exprs.push(
            match column.kind {
                Kind::Email => value.str().to_lowercase(),
                Kind::DateTime { .. } => {
                    let options = StrptimeOptions {
                        format: Some(DATETIME_FORMAT.into()),
                        strict: false,
                        exact: true,
                        cache: true,
                    };
                    value.str().to_datetime(
                        Some(TimeUnit::Milliseconds),
                        None,
                        options,
                        lit("raise"),
                    )
                }
                Kind::Integer => value.cast(DataType::Int64),
                Kind::Text => continue,
            }
            .alias(parsed_name(i)),
        );
    }
    exprs
}

/// For each column: its typed value (named as in the database) and whether it passed.
fn rule_exprs(layout: &[Column]) -> Vec<Expr> {
    let mut exprs = vec![col("linea")];
    for (i, column) in layout.iter().enumerate() {
        let (value, parsed) = (col(value_name(i)), col(parsed_name(i)));
        let (typed, check) = match column.kind {
            Kind::Email => {
                let check = parsed
                    .clone()
                    .str()
                    .contains(lit(EMAIL_PATTERN), true)
                    .and(parsed.clone().str().len_chars().lt_eq(lit(MAX_EMAIL_CHARS)));
                (parsed, check)
            }
            Kind::DateTime { .. } => {
                let check = value
                    .clone()
                    .str()
                    .contains(lit(DATETIME_SHAPE), true)
                    .and(value.clone().str().contains_literal(lit("/0000 ")).not())
                    .and(parsed.clone().is_not_null());
                (parsed, check)
            }
            Kind::Integer => {
                let check = value
                    .clone()
                    .str()
                    .contains(lit(DIGITS), true)
                    .and(parsed.clone().is_not_null())
                    .and(parsed.clone().lt_eq(lit(i32::MAX as i64)));
                (
                    when(check.clone())
                        .then(parsed)
                        .otherwise(lit(Null {}))
                        .cast(DataType::Int32),
                    check,
                )
            }
            Kind::Text => {
                let check = value.clone().str().len_chars().lt_eq(lit(MAX_TEXT_CHARS));
                (value.clone(), check)
            }
        };
        let nullable = !matches!(
            column.kind,
            Kind::Email | Kind::DateTime { required: true, .. }
        );
        let ok = when(value.is_null())
            .then(lit(nullable))
            .otherwise(check.fill_null(false))
            .alias(ok_name(i));
        exprs.push(typed.alias(column.db_column));
        exprs.push(ok);
    }
    exprs
}

/// True where every column passed.
fn all_ok(layout: &[Column]) -> Expr {
    (0..layout.len())
        .map(|i| col(ok_name(i)))
        .reduce(|a, b| a.and(b))
        .expect("a layout has columns")
        .alias("all_ok")
}

fn value_name(i: usize) -> String {
    format!("value_{i}")
}

fn parsed_name(i: usize) -> String {
    format!("parsed_{i}")
}

fn ok_name(i: usize) -> String {
    format!("ok_{i}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::layout::VISITS;

    const HEADER: &str = "email,jyv,Badmail,Baja,Fecha envio,Fecha open,Opens,Opens virales,Fecha click,Clicks,Clicks virales,Links,IPs,Navegadores,Plataformas";
    const GOOD: [&str; 15] = [
        "Ana@Example.com",
        "x",
        "-",
        "",
        "08/02/2013 18:30",
        "09/02/2013 10:00",
        "3",
        "0",
        "-",
        "",
        "7",
        "http://a",
        "\"189.1.1.1,200.2.2.2\"",
        "Chrome",
        "Linux",
    ];

    /// The outcome of one record whose column `i` holds `value`.
    fn outcome(i: usize, value: &str) -> Option<ErrorCode> {
        let mut fields = GOOD.map(str::to_string);
        fields[i] = value.to_string();
        let batch = validate(&format!("{HEADER}\n{}\n", fields.join(",")), &VISITS).unwrap();
        batch.rejected().first().map(|r| r.code)
    }

    #[test]
    fn every_rule_passes_and_fails() {
        use ErrorCode::*;
        let long = "a".repeat(4097);
        let local = "a".repeat(64);
        let email_254 = format!(
            "{local}@{}.{}.{}.com",
            "b".repeat(61),
            "c".repeat(61),
            "d".repeat(61)
        );
        assert_eq!(email_254.len(), 254);
        let email_255 = format!("a{email_254}");
        let cases: Vec<(usize, &str, Option<ErrorCode>)> = vec![
            (0, " ANA@example.COM ", None),
            (0, &email_254, None),
            (0, &email_255, Some(EmailInvalido)),
            (0, "", Some(EmailInvalido)),
            (0, "-", Some(EmailInvalido)),
            (0, "ana@example", Some(EmailInvalido)),
            (0, ".ana@example.com", Some(EmailInvalido)),
            (0, "ana.@example.com", Some(EmailInvalido)),
            (0, "a..na@example.com", Some(EmailInvalido)),
            (0, "ana@@example.com", Some(EmailInvalido)),
            (0, "ana example@x.com", Some(EmailInvalido)),
            (4, "31/12/2013 23:59", None),
            (4, "29/02/2012 00:00", None),
            (4, "", Some(FechaEnvioInvalida)),
            (4, "31/02/2013 10:00", Some(FechaEnvioInvalida)),
            (4, "08/020/2013 18:30", Some(FechaEnvioInvalida)),
            (4, "8/2/2013 18:30", Some(FechaEnvioInvalida)),
            (4, "08/02/2013 24:00", Some(FechaEnvioInvalida)),
            (4, "08/02/0000 10:00", Some(FechaEnvioInvalida)),
            (4, "2013-02-08 18:30", Some(FechaEnvioInvalida)),
            (5, "", None),
            (5, "-", None),
            (5, "30/02/2013 10:00", Some(FechaOpenInvalida)),
            (8, "01/13/2013 10:00", Some(FechaClickInvalida)),
            (6, "2147483647", None),
            (6, "2147483648", Some(EnteroInvalido)),
            (6, "-1", Some(EnteroInvalido)),
            (6, "1.5", Some(EnteroInvalido)),
            (6, "99999999999999999999999", Some(EnteroInvalido)),
            (10, "abc", Some(EnteroInvalido)),
            (11, &long[1..], None),
            (11, &long, Some(TextoDemasiadoLargo)),
            (14, &long, Some(TextoDemasiadoLargo)),
        ];
        for (i, value, expected) in cases {
            assert_eq!(outcome(i, value), expected, "column {i} = {value:?}");
        }
    }

    #[test]
    fn first_failing_rule_is_the_type_and_detail_lists_all() {
        let mut fields = GOOD.map(str::to_string);
        fields[0] = "bad".into();
        fields[9] = "x".into();
        let batch = validate(&format!("{HEADER}\n{}\n", fields.join(",")), &VISITS).unwrap();
        let r = &batch.rejected()[0];
        assert_eq!((r.line, r.code), (2, ErrorCode::EmailInvalido));
        assert!(
            r.detail.contains("EMAIL_INVALIDO") && r.detail.contains("Clicks: ENTERO_INVALIDO"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn field_count_blank_middle_line_and_typed_values() {
        let good = GOOD.join(",");
        let text = format!(
            "{HEADER}\r\n{good}\r\n\r\na,b\r\n{good},extra\r\n{}\"x\r\n{good}\r\n\r\n",
            &good[..good.len() - 5]
        );
        let batch = validate(&text, &VISITS).unwrap();
        let codes: Vec<_> = batch.rejected().iter().map(|r| (r.line, r.code)).collect();
        use ErrorCode::FieldCount;
        assert_eq!(
            codes,
            vec![
                (3, FieldCount),
                (4, FieldCount),
                (5, FieldCount),
                (6, FieldCount)
            ]
        );
        assert_eq!(batch.valid().height(), 2);
        assert_eq!(batch.total(), 6);
        let v = batch.valid();
        assert_eq!(
            v.column("email").unwrap().str().unwrap().get(0),
            Some("ana@example.com")
        );
        assert_eq!(v.column("badmail").unwrap().str().unwrap().get(0), None);
        assert_eq!(
            v.column("ips").unwrap().str().unwrap().get(0),
            Some("189.1.1.1,200.2.2.2")
        );
        assert_eq!(v.column("opens").unwrap().i32().unwrap().get(0), Some(3));
        assert_eq!(v.column("clicks").unwrap().i32().unwrap().get(0), None);
    }

    #[test]
    fn header_only_is_zero_rows() {
        let batch = validate(&format!("{HEADER}\n"), &VISITS).unwrap();
        assert_eq!(batch.total(), 0);
    }

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
    fn a_bare_cr_inside_a_field_is_data_with_or_without_quotes_on_the_line() {
        let good = GOOD.join(",");
        let plain = good.replace("\"189.1.1.1,200.2.2.2\"", "189.1.1.1");
        for line in [
            good.replace("Chrome", "Chr\rome"),
            plain.replace("Chrome", "Chr\rome"),
        ] {
            let text = format!("{HEADER}\n{line}\n");
            let batch = validate(&text, &VISITS).unwrap();
            assert_eq!((batch.valid().height(), batch.total()), (1, 1), "{line:?}");
            let kept = batch.valid().column("navegadores").unwrap().str().unwrap();
            assert_eq!(kept.get(0), Some("Chr\rome"));
        }
        let found = rejected(&[good.replace("Ana@Example.com", "ana@exam\rple.com")]);
        assert_eq!(
            found[0].2, "email: EMAIL_INVALIDO «ana@exam\\rple.com»",
            "a CR in a value is shown escaped"
        );
    }

    #[test]
    fn rule_details_show_invisible_characters_escaped_and_cut_long_values() {
        let good = GOOD.join(",");
        let found = rejected(&[
            good.replace("Ana@Example.com", "\u{feff}ana@example.com"),
            good.replace("Ana@Example.com", "ana\u{200b}@example.com"),
            good.replace("http://a", &"y".repeat(5000)),
        ]);
        assert_eq!(
            found[0].2,
            "email: EMAIL_INVALIDO «\\u{feff}ana@example.com»"
        );
        assert_eq!(
            found[1].2,
            "email: EMAIL_INVALIDO «ana\\u{200b}@example.com»"
        );
        assert_eq!(
            found[2].2,
            format!("Links: TEXTO_DEMASIADO_LARGO «{}…»", "y".repeat(80))
        );
    }

    // Record-level rules (`super::shape`), seen through the validator.

    #[test]
    fn field_count_details_name_their_rule_and_what_happened() {
        let good = GOOD.join(",");
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
        let good = GOOD.join(",");
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
