//! The visitor aggregate of one file (SPEC §5): per e-mail, the first and last
//! `fecha_envio`, the visits, and the visits in the as-of year and month.
//!
//! Tallied row by row as batches pass, in one map keyed by e-mail: every row is looked
//! at once, where regrouping the running aggregate with each batch cost a group-by of
//! every visitor so far per batch (CPU taken from the database backend beside it).

use chrono::{Datelike, NaiveDate};
use polars::prelude::{DataFrame, PlHashMap, PolarsResult};

/// One visitor's visits in a file; times are `fecha_envio` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visits {
    /// Earliest `fecha_envio`.
    pub first: i64,
    /// Latest `fecha_envio`.
    pub last: i64,
    /// Rows of this visitor.
    pub total: i32,
    /// Rows in the as-of calendar year.
    pub in_year: i32,
    /// Rows in the as-of calendar month.
    pub in_month: i32,
}

/// The running aggregate of a file's valid rows.
pub struct VisitorTally {
    year: (i64, i64),
    month: (i64, i64),
    /// polars' map (foldhash): a third of the cost of std's SipHash here.
    by_email: PlHashMap<String, Visits>,
}

impl VisitorTally {
    /// An empty tally counting years and months as of the business date `as_of`.
    pub fn new(as_of: NaiveDate) -> Self {
        let start = |y, m| {
            NaiveDate::from_ymd_opt(y, m, 1)
                .expect("the first of a month exists")
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .timestamp_millis()
        };
        let (y, m) = (as_of.year(), as_of.month());
        let next_month = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        Self {
            year: (start(y, 1), start(y + 1, 1)),
            month: (start(y, m), start(next_month.0, next_month.1)),
            by_email: PlHashMap::default(),
        }
    }

    /// Adds a batch's valid rows (its `email` and `fecha_envio` columns).
    pub fn add(&mut self, valid: &DataFrame) -> PolarsResult<()> {
        let emails = valid.column("email")?.str()?;
        let sent = valid.column("fecha_envio")?.datetime()?.physical();
        let within = |(from, to): (i64, i64), t: i64| i32::from(from <= t && t < to);
        // Both are required columns: a valid row has them.
        for (email, t) in emails.iter().zip(sent.iter()) {
            let (Some(email), Some(t)) = (email, t) else {
                continue;
            };
            let (in_year, in_month) = (within(self.year, t), within(self.month, t));
            match self.by_email.get_mut(email) {
                Some(v) => {
                    v.first = v.first.min(t);
                    v.last = v.last.max(t);
                    v.total += 1;
                    v.in_year += in_year;
                    v.in_month += in_month;
                }
                None => {
                    let visits = Visits {
                        first: t,
                        last: t,
                        total: 1,
                        in_year,
                        in_month,
                    };
                    self.by_email.insert(email.to_owned(), visits);
                }
            }
        }
        Ok(())
    }

    /// The visitors in e-mail order, so the upsert walks the `visitantes` index in order.
    pub fn into_sorted(self) -> Vec<(String, Visits)> {
        let mut all: Vec<_> = self.by_email.into_iter().collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;
    use polars::prelude::*;

    fn ms(text: &str) -> i64 {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn batch(rows: &[(&str, &str)]) -> DataFrame {
        let emails: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let times: Vec<i64> = rows.iter().map(|r| ms(r.1)).collect();
        let sent = Series::new("fecha_envio".into(), times)
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
            .unwrap();
        DataFrame::new(
            rows.len(),
            vec![Series::new("email".into(), emails).into(), sent.into()],
        )
        .unwrap()
    }

    #[test]
    fn tallies_across_batches_with_year_and_month_edges() {
        let mut tally = VisitorTally::new(NaiveDate::from_ymd_opt(2024, 12, 15).unwrap());
        tally
            .add(&batch(&[
                ("b@x.com", "2024-12-31 23:59"),
                ("a@x.com", "2024-11-30 23:59"),
            ]))
            .unwrap();
        tally
            .add(&batch(&[
                ("a@x.com", "2025-01-01 00:00"),
                ("a@x.com", "2024-12-01 00:00"),
                ("b@x.com", "2023-12-31 23:59"),
            ]))
            .unwrap();
        let visits = |first, last, total, in_year, in_month| Visits {
            first: ms(first),
            last: ms(last),
            total,
            in_year,
            in_month,
        };
        assert_eq!(
            tally.into_sorted(),
            vec![
                (
                    "a@x.com".to_string(),
                    visits("2024-11-30 23:59", "2025-01-01 00:00", 3, 2, 1)
                ),
                (
                    "b@x.com".to_string(),
                    visits("2023-12-31 23:59", "2024-12-31 23:59", 2, 1, 1)
                ),
            ]
        );
    }
}
