//! `[expect.<feed>]`: what a feed is expected to deliver and what is normal for it — the
//! days and the time by which its files are due, how many, the holidays; and how far a
//! file's volume and error rate may stray from the feed's own history. A feed without a
//! section gets the defaults: no presence check (no `days`/`due_by`), the history checks on.

use super::alerts::Address;
use crate::types::{InvalidSetting, Weekdays};
use chrono::{NaiveDate, NaiveTime};
use serde::Deserialize;

/// What a feed is expected to deliver, and what is normal for its files.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExpectConfig {
    /// The days a delivery is expected (`"mon-sat"`, a cron day-of-week field); none: no presence check.
    pub days: Option<Weekdays>,
    /// The local time (in `business.time_zone`) by which the day's files are due (`"06:30"`).
    #[serde(deserialize_with = "local_time")]
    pub due_by: Option<NaiveTime>,
    /// How many files a day: fewer than `min` is `ARCHIVO_AUSENTE`, more than `max` `ARCHIVOS_DE_MAS`.
    pub files: FileCount,
    /// Days no delivery is expected, whatever `days` says (TOML dates, or `"YYYY-MM-DD"`).
    #[serde(deserialize_with = "dates")]
    pub holidays: Vec<NaiveDate>,
    /// Recipients of this feed's e-mails, instead of `alerts.email.to`.
    pub email_to: Option<Vec<Address>>,
    /// Completed files a file is compared with.
    pub history: u32,
    /// Files of history needed for the statistic (on the same weekday, else in all).
    pub min_history: u32,
    /// The robust z beyond which a file is anomalous.
    pub robust_z: f64,
    /// …and the change in valid rows it must also exceed.
    pub min_rows_change: f64,
    /// …and the change in error rate (percentage points) it must also exceed.
    pub min_error_rate_change: f64,
    /// Static bounds on a file's valid rows, whatever the history.
    pub rows: Option<RowBounds>,
    /// Static bound on a file's error rate, in percent, whatever the history.
    pub max_error_rate: Option<f64>,
}

impl Default for ExpectConfig {
    fn default() -> Self {
        Self {
            days: None,
            due_by: None,
            files: FileCount::default(),
            holidays: Vec::new(),
            email_to: None,
            history: 28,
            min_history: 6,
            robust_z: 3.5,
            min_rows_change: 100.0,
            min_error_rate_change: 5.0,
            rows: None,
            max_error_rate: None,
        }
    }
}

/// `files = { min, max }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileCount {
    /// Fewer files than this by `due_by`: `ARCHIVO_AUSENTE`.
    pub min: u32,
    /// More files than this: `ARCHIVOS_DE_MAS`; none: no upper bound.
    pub max: Option<u32>,
}

impl Default for FileCount {
    fn default() -> Self {
        Self { min: 1, max: None }
    }
}

/// `rows = { min, max }`: static bounds on a file's valid rows.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RowBounds {
    /// Fewer valid rows than this is `VOLUMEN_ANOMALO`.
    pub min: Option<f64>,
    /// More valid rows than this is `VOLUMEN_ANOMALO`.
    pub max: Option<f64>,
}

impl ExpectConfig {
    /// Whether the feed is watched for presence: both `days` and `due_by` set.
    pub fn presence(&self) -> Option<(Weekdays, NaiveTime)> {
        self.days.zip(self.due_by)
    }

    /// Whether a delivery is expected on `day`.
    pub fn expected_on(&self, day: NaiveDate) -> bool {
        self.days.is_some_and(|d| d.contains(day)) && !self.holidays.contains(&day)
    }

    /// The rules across keys.
    pub(crate) fn check(&self) -> Result<(), InvalidSetting> {
        if self.days.is_some() != self.due_by.is_some() {
            return Err(InvalidSetting::new(
                "expect.<feed>.due_by",
                "`days` and `due_by` go together: set both (or neither, for no presence check)",
            ));
        }
        if self.files.max.is_some_and(|max| max < self.files.min) {
            return Err(InvalidSetting::new(
                "expect.<feed>.files",
                format!(
                    "max ({:?}) is below min ({})",
                    self.files.max, self.files.min
                ),
            ));
        }
        if self.min_history < 2 || self.history < self.min_history {
            return Err(InvalidSetting::new(
                "expect.<feed>.min_history",
                format!(
                    "must be at least 2 and at most `history` ({}); it is {}",
                    self.history, self.min_history
                ),
            ));
        }
        if !(self.robust_z > 0.0
            && self.min_rows_change >= 0.0
            && self.min_error_rate_change >= 0.0)
        {
            return Err(InvalidSetting::new(
                "expect.<feed>.robust_z",
                "robust_z must be above 0, and the floors (min_rows_change, min_error_rate_change) 0 or more",
            ));
        }
        Ok(())
    }
}

/// `due_by` from `"HH:MM"` (or `"HH:MM:SS"`).
fn local_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveTime>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    NaiveTime::parse_from_str(&text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(&text, "%H:%M:%S"))
        .map(Some)
        .map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is not a local time (HH:MM, e.g. \"06:30\")"
            ))
        })
}

/// A date as TOML writes it (a date literal, which arrives as a datetime) or as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum DateText {
    Text(String),
    Toml {
        #[serde(rename = "$__toml_private_datetime")]
        value: String,
    },
}

/// `holidays`: dates, unquoted (TOML) or quoted.
fn dates<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<NaiveDate>, D::Error> {
    Vec::<DateText>::deserialize(d)?
        .into_iter()
        .map(|t| {
            let (DateText::Text(text) | DateText::Toml { value: text }) = t;
            text.parse().map_err(|_| {
                serde::de::Error::custom(format!("`{text}` is not a date (YYYY-MM-DD)"))
            })
        })
        .collect()
}
