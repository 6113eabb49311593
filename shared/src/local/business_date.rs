//! The business date of a load: today in the configured time zone, or `--as-of`.

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;

/// `--as-of` if given, else today in `tz`.
pub fn business_date(as_of: Option<NaiveDate>, tz: Tz) -> NaiveDate {
    as_of.unwrap_or_else(|| Utc::now().with_timezone(&tz).date_naive())
}
