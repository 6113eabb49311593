//! The days of the week a feed is expected: `"mon-sat"`, `"mon,wed,fri"`, `"*"`, or a cron
//! day-of-week field (`"1-5"`, `"0,6"`, `"*/2"`; 0 and 7 are Sunday). Parsed once.

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

/// A set of weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Weekdays {
    /// Bit `n` set: day `n` of the week, Monday = 0.
    bits: u8,
}

const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Weekdays {
    /// Every day.
    pub const ALL: Weekdays = Weekdays { bits: 0x7f };

    /// Whether `day` falls on one of these weekdays.
    pub fn contains(self, day: NaiveDate) -> bool {
        self.bits & (1 << day.weekday().num_days_from_monday()) != 0
    }

    /// Parses a day list: names (`mon`…`sun`, `monday`…, any case) or cron numbers (0–7,
    /// Sunday 0 or 7), as single days, ranges (`mon-fri`, `1-5`, wrapping `fri-mon`) and
    /// lists (`,`), with optional steps (`*/2`, `1-5/2`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut bits = 0u8;
        for part in text.split(',').map(str::trim) {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (
                    r,
                    s.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| {
                            format!("`{part}`: the step must be a whole number from 1")
                        })?,
                ),
                None => (part, 1),
            };
            let (first, last) = match range.trim() {
                "*" => (0, 6),
                r => match r.split_once('-') {
                    Some((a, b)) => (day(a)?, day(b)?),
                    None if step == 1 => (day(r)?, day(r)?),
                    None => (day(r)?, 6),
                },
            };
            // Walks from the first day to the last, wrapping past Sunday (`fri-mon`).
            let span = (last + 7 - first) % 7;
            for n in (0..=span).step_by(step) {
                bits |= 1 << ((first + n) % 7);
            }
        }
        if bits == 0 {
            return Err(format!("`{text}` names no day"));
        }
        Ok(Self { bits })
    }
}

/// One day, Monday = 0: a name or its first three letters, or a cron number.
fn day(text: &str) -> Result<usize, String> {
    let t = text.trim().to_ascii_lowercase();
    if let Ok(n) = t.parse::<usize>() {
        return match n {
            // cron: 0 and 7 are Sunday, 1 Monday.
            0 | 7 => Ok(6),
            1..=6 => Ok(n - 1),
            _ => Err(format!(
                "`{text}`: a day number is 0 to 7 (0 and 7: Sunday)"
            )),
        };
    }
    NAMES
        .iter()
        .position(|n| t.len() >= 3 && (t == *n || full_name(n).starts_with(&t)))
        .ok_or_else(|| format!("`{text}` is not a day (mon, tue, … sun, or 0–7)"))
}

fn full_name(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

impl TryFrom<String> for Weekdays {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl std::fmt::Display for Weekdays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days: Vec<&str> = (0..7)
            .filter(|n| self.bits & (1 << n) != 0)
            .map(|n| NAMES[n])
            .collect();
        f.write_str(&days.join(","))
    }
}

/// The weekday of `day`, for messages.
pub fn weekday_name(day: NaiveDate) -> &'static str {
    NAMES[day.weekday().num_days_from_monday() as usize]
}

impl From<Weekday> for Weekdays {
    fn from(day: Weekday) -> Self {
        Self {
            bits: 1 << day.num_days_from_monday(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(text: &str) -> String {
        Weekdays::parse(text).unwrap().to_string()
    }

    #[test]
    fn names_numbers_ranges_lists_and_steps() {
        assert_eq!(days("mon-sat"), "mon,tue,wed,thu,fri,sat");
        assert_eq!(days("MON-FRI"), "mon,tue,wed,thu,fri");
        assert_eq!(days("1-5"), "mon,tue,wed,thu,fri");
        assert_eq!(days("0,6"), "sat,sun");
        assert_eq!(days("7"), "sun");
        assert_eq!(days("*"), "mon,tue,wed,thu,fri,sat,sun");
        assert_eq!(days("*/2"), "mon,wed,fri,sun");
        assert_eq!(days("fri-mon"), "mon,fri,sat,sun");
        assert_eq!(days("monday, wed ,Friday"), "mon,wed,fri");
    }

    #[test]
    fn bad_days_say_what_is_wrong() {
        for bad in ["", "8", "mo", "mon-xyz", "*/0", "funday"] {
            assert!(Weekdays::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn contains_the_right_dates() {
        let weekdays = Weekdays::parse("mon-fri").unwrap();
        let saturday = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        assert!(!weekdays.contains(saturday));
        assert!(weekdays.contains(saturday.pred_opt().unwrap()));
        assert_eq!(weekday_name(saturday), "sat");
    }
}
