//! Query strings and form bodies as ordered pairs (`id=1&id=2` keeps both), and the
//! files filter read from them. Bad values are refused with a message naming the
//! parameter, never ignored.

use shared::store::browse::{FileFilter, Page};
use shared::types::AuditStatus;

/// Decoded `key=value` pairs, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `a=1&b=2` (a query string or an `application/x-www-form-urlencoded` body).
    pub fn parse(text: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(text).into_owned().collect())
    }

    /// A request's query string (none: no pairs).
    pub fn of_query(query: Option<String>) -> Self {
        Self::parse(query.unwrap_or_default().as_bytes())
    }

    /// The first value of `key`, trimmed, if not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `key` exactly as sent (a password), if not empty.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key` as an integer, if given.
    pub fn int(&self, key: &str) -> Result<Option<i64>, String> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("{key}: `{v}` is not a number"))
            })
            .transpose()
    }

    /// Which page of a keyset list (`before=ID` or `after=ID`).
    pub fn page(&self) -> Result<Page, String> {
        Ok(match (self.int("before")?, self.int("after")?) {
            (Some(id), _) => Page::Before(id),
            (None, Some(id)) => Page::After(id),
            (None, None) => Page::First,
        })
    }

    /// The files filter: `status` (one, or several by commas), `from`, `to`
    /// (YYYY-MM-DD), `feed`, `q`, `unresolved=1`.
    pub fn filter(&self) -> Result<FileFilter, String> {
        let mut statuses = Vec::new();
        for value in self.all("status").flat_map(|v| v.split(',')) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            statuses.push(AuditStatus::parse(value).ok_or_else(|| {
                format!(
                    "status: `{value}` is not one of {}",
                    AuditStatus::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?);
        }
        let day = |key: &str| {
            self.get(key)
                .map(|v| {
                    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                        .map_err(|_| format!("{key}: `{v}` is not a date (YYYY-MM-DD)"))
                })
                .transpose()
        };
        Ok(FileFilter {
            statuses,
            from: day("from")?,
            to: day("to")?,
            feed: self.get("feed").map(str::to_string),
            text: self.get("q").map(str::to_string),
            unresolved: matches!(self.get("unresolved"), Some("1" | "on" | "true")),
        })
    }
}

/// The filter as a query string (the bookmarkable form of a list), without a page.
pub fn filter_query(filter: &FileFilter) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        q.append_pair("status", &statuses.join(","));
    }
    if let Some(d) = filter.from {
        q.append_pair("from", &d.to_string());
    }
    if let Some(d) = filter.to {
        q.append_pair("to", &d.to_string());
    }
    if let Some(f) = &filter.feed {
        q.append_pair("feed", f);
    }
    if let Some(t) = &filter.text {
        q.append_pair("q", t);
    }
    if filter.unresolved {
        q.append_pair("unresolved", "1");
    }
    q.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_reads_back_what_it_writes() {
        let p = Params::parse(
            b"status=FALLO_LAYOUT,FALLO_SISTEMA&from=2026-11-01&to=2026-11-30&q=report_1%25&unresolved=1&feed=visitas",
        );
        let f = p.filter().unwrap();
        assert_eq!(f.statuses.len(), 2);
        assert_eq!(f.text.as_deref(), Some("report_1%"));
        assert!(f.unresolved);
        let again = Params::parse(filter_query(&f).as_bytes()).filter().unwrap();
        assert_eq!(again, f);
        let bad = Params::parse(b"status=LOADED").filter().unwrap_err();
        assert!(bad.contains("status: `LOADED`"), "{bad}");
        let bad = Params::parse(b"from=24/11/2026").filter().unwrap_err();
        assert!(bad.starts_with("from:"), "{bad}");
        assert!(Params::parse(b"before=x").page().is_err());
    }
}
