//! Which listed files are complete (docs/data-contract.md §1): named like the feed, old enough, and
//! unchanged between two listings taken a stability window apart. Pure: no I/O.

use chrono::{DateTime, Utc};
use regex::Regex;
use shared::source::{RemoteFile, RemoteName, in_flight_name, parse_in_flight};
use std::collections::HashMap;
use std::time::Duration;

/// What the dispatcher makes of one listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Complete: enqueue it (unless already known).
    Ready,
    /// Not a feed file name: ignored.
    Ignored,
    /// Held under an item's in-flight name (whatever the pattern says).
    InFlight {
        /// The item that took it.
        item_id: i64,
        /// Its original name.
        name: String,
    },
    /// A feed file name that is not safe as a local path component.
    Unsafe(String),
    /// Modified less than `min_file_age` ago.
    TooRecent,
    /// Size or mtime changed between the two listings, or gone from the second.
    Changing,
}

/// Classifies the files of the first listing against the second.
pub fn classify(
    first: &[RemoteFile],
    second: &[RemoteFile],
    pattern: &Regex,
    now: DateTime<Utc>,
    min_age: Duration,
) -> Vec<(RemoteFile, Verdict)> {
    let later: HashMap<&str, &RemoteFile> = second.iter().map(|f| (f.name.as_str(), f)).collect();
    let mut out: Vec<(RemoteFile, Verdict)> = first
        .iter()
        .map(|f| {
            let verdict = if let Some((item_id, name)) = parse_in_flight(&f.name) {
                Verdict::InFlight {
                    item_id,
                    name: name.to_string(),
                }
            } else if !pattern.is_match(&f.name) {
                Verdict::Ignored
            } else if let Err(e) = RemoteName::parse(&f.name)
                .and_then(|name| in_flight_name(i64::MAX, &name).map(|_| name))
            {
                // Also refused: a name too long to be taken under an in-flight name.
                Verdict::Unsafe(e.to_string())
            } else if later
                .get(f.name.as_str())
                .is_none_or(|g| (g.size, g.mtime) != (f.size, f.mtime))
            {
                Verdict::Changing
            } else if now
                .signed_duration_since(f.mtime)
                .to_std()
                .unwrap_or_default()
                < min_age
            {
                Verdict::TooRecent
            } else {
                Verdict::Ready
            };
            (f.clone(), verdict)
        })
        .collect();
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, age_secs: i64, now: DateTime<Utc>) -> RemoteFile {
        RemoteFile {
            name: name.into(),
            size,
            mtime: now - chrono::Duration::seconds(age_secs),
        }
    }

    #[test]
    fn only_named_old_enough_and_stable_files_are_ready() {
        let now = Utc::now();
        let pattern = Regex::new(r"^(?:report_[0-9]+\.txt)$").unwrap();
        let first = vec![
            file("report_1.txt", 10, 600, now),
            file("report_2.txt", 10, 600, now),
            file("report_3.txt", 10, 5, now),
            file("report_4.txt", 10, 600, now),
            file("notes.txt", 10, 600, now),
            file("report_x.txt", 10, 600, now),
            file(".visitas-inflight-9-report_5.txt", 10, 600, now),
        ];
        let second = vec![
            file("report_1.txt", 10, 600, now),
            file("report_2.txt", 20, 600, now), // grew
            file("report_3.txt", 10, 5, now),
            // report_4 vanished between the listings
        ];
        let pattern_matching_all = Regex::new(".*").unwrap();
        let in_flight = classify(&first, &second, &pattern_matching_all, now, Duration::ZERO);
        assert_eq!(
            in_flight[0].1,
            Verdict::InFlight {
                item_id: 9,
                name: "report_5.txt".into()
            },
            "never taken for a new file, whatever the pattern"
        );
        let verdicts: Vec<(String, Verdict)> =
            classify(&first, &second, &pattern, now, Duration::from_secs(60))
                .into_iter()
                .map(|(f, v)| (f.name, v))
                .collect();
        assert_eq!(
            verdicts,
            vec![
                (
                    ".visitas-inflight-9-report_5.txt".into(),
                    Verdict::InFlight {
                        item_id: 9,
                        name: "report_5.txt".into()
                    }
                ),
                ("notes.txt".into(), Verdict::Ignored),
                ("report_1.txt".into(), Verdict::Ready),
                ("report_2.txt".into(), Verdict::Changing),
                ("report_3.txt".into(), Verdict::TooRecent),
                ("report_4.txt".into(), Verdict::Changing),
                ("report_x.txt".into(), Verdict::Ignored),
            ]
        );
    }
}
