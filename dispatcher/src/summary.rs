//! The day's summary (`shared::store::reports::day`) as a table, for the log and for stdout.

use chrono::NaiveDate;
use shared::store::reports::StatusLine;
use std::fmt::Write as _;

/// A fixed-width table for people.
pub fn render(day: NaiveDate, lines: &[StatusLine]) -> String {
    let mut out = format!("Summary of {day}\n");
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>12} {:>12} {:>12}",
        "status", "files", "records", "valid", "errors"
    );
    for l in lines {
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>12} {:>12} {:>12}",
            l.estatus, l.archivos, l.registros_totales, l.registros_validos, l.registros_error
        );
    }
    let total = |f: fn(&StatusLine) -> i64| lines.iter().map(f).sum::<i64>();
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>12} {:>12} {:>12}",
        "total",
        total(|l| l.archivos),
        total(|l| l.registros_totales),
        total(|l| l.registros_validos),
        total(|l| l.registros_error)
    );
    out
}
