//! Which listed files are complete (docs/data-contract.md §1), from what the server shows
//! and our own clock alone: consecutive listings, `source.stability_window_secs` apart,
//! must agree on a file's size and (where the origin shows one) its mtime, for at least
//! `source.min_file_age_secs` as measured here, and at least
//! `source.listings_without_mtime` times when the origin shows no mtime. The server's
//! clock is never compared with ours. With `source.done_marker`, a file is taken only
//! once its marker exists. Pure: the listings and their times come in, verdicts go out.

use chrono::{DateTime, Utc};
use regex::Regex;
use shared::source::{DoneMarker, RemoteFile, RemoteName, in_flight_name, parse_in_flight};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// What the dispatcher makes of one listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Complete: enqueue it (unless already known).
    Ready,
    /// Not a feed file name (or a done marker): ignored.
    Ignored,
    /// Held under an item's in-flight name (whatever the pattern says).
    InFlight {
        /// The item that took it.
        item_id: i64,
        /// Its original name.
        name: String,
    },
    /// Left at the origin for an operator (`set_aside_files`): never enqueued.
    SetAside,
    /// A feed file name that is not safe as a local path component.
    Unsafe(String),
    /// Unchanged so far, but not yet for long enough (or in enough listings).
    NotSettled,
    /// Its done marker does not exist (yet).
    NoMarker,
    /// Size or mtime changed between listings, or it went away.
    Changing,
}

/// The rules of completeness (`[source]`).
#[derive(Debug, Clone)]
pub struct Rules {
    /// A file name must match this in full.
    pub pattern: Regex,
    /// Seen unchanged at least this long, by our clock.
    pub min_age: Duration,
    /// Time between listings.
    pub window: Duration,
    /// Agreeing listings a file needs when the origin shows no mtime.
    pub listings_without_mtime: u32,
    /// The done marker a file needs, if any.
    pub done_marker: Option<DoneMarker>,
}

impl Rules {
    /// How long the listings go on at most: past this, a file that is still changing
    /// waits for a later run. With a done marker, two listings suffice.
    pub fn span(&self) -> Duration {
        if self.done_marker.is_some() {
            return self.window;
        }
        let unknown = self.window * self.listings_without_mtime.saturating_sub(1);
        self.min_age.max(self.window).max(unknown)
    }

    /// Listings a file whose mtime is `mtime` needs, agreeing.
    fn listings_needed(&self, mtime: Option<DateTime<Utc>>) -> u32 {
        if mtime.is_none() && self.done_marker.is_none() {
            self.listings_without_mtime.max(2)
        } else {
            2
        }
    }
}

/// One name's history over the listings: its state now, since when (our clock) and in
/// how many consecutive listings.
#[derive(Debug, Clone)]
struct Seen {
    file: RemoteFile,
    since: Duration,
    agreeing: u32,
    /// Absent from the latest listing.
    gone: bool,
    /// Its state changed during the listings.
    changed: bool,
}

/// The listings of one run, and what they say about each file.
#[derive(Debug)]
pub struct Watch {
    rules: Rules,
    seen: BTreeMap<String, Seen>,
    listings: u32,
    last_at: Duration,
    /// Names in the latest listing (done markers are looked up there).
    present: HashSet<String>,
}

impl Watch {
    /// No listing yet.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            seen: BTreeMap::new(),
            listings: 0,
            last_at: Duration::ZERO,
            present: HashSet::new(),
        }
    }

    /// Adds a listing taken `at` after the first one (our monotonic clock).
    pub fn observe(&mut self, at: Duration, files: &[RemoteFile]) {
        self.listings += 1;
        self.last_at = at;
        self.present = files.iter().map(|f| f.name.clone()).collect();
        for s in self.seen.values_mut() {
            if !self.present.contains(&s.file.name) {
                s.gone = true;
                s.changed = true;
                s.agreeing = 0;
            }
        }
        let first = self.listings == 1;
        for f in files {
            let fresh = Seen {
                file: f.clone(),
                since: at,
                agreeing: 1,
                gone: false,
                changed: !first,
            };
            match self.seen.get_mut(&f.name) {
                Some(s) if !s.gone && s.file.seen() == f.seen() => s.agreeing += 1,
                // Changed, or back after a listing without it: it starts again.
                Some(s) => *s = fresh,
                None => {
                    self.seen.insert(f.name.clone(), fresh);
                }
            }
        }
    }

    /// Whether another listing is worth taking: some feed file is not settled yet and
    /// could still settle within [`Rules::span`].
    pub fn wants_more(&self) -> bool {
        if self.listings < 2 {
            return true;
        }
        if !self.rules.window.is_zero() && self.last_at >= self.rules.span() {
            return false;
        }
        self.seen.iter().any(|(name, s)| {
            !s.gone
                && self.is_feed_file(name)
                && self.settling(s) == Verdict::NotSettled
                && self.hopeful(s)
        })
    }

    /// Whether a file whose state began at `s.since` can still meet the rules before
    /// the listings end.
    fn hopeful(&self, s: &Seen) -> bool {
        let span = self.rules.span();
        if s.since + self.rules.min_age > span {
            return false;
        }
        let needed = self.rules.listings_needed(s.file.mtime);
        let window = self.rules.window.as_secs_f64();
        let possible = if window == 0.0 {
            u32::MAX
        } else {
            ((span - s.since).as_secs_f64() / window).floor() as u32 + 1
        };
        possible >= needed
    }

    /// A name the pattern takes, that is neither an in-flight name nor a done marker.
    fn is_feed_file(&self, name: &str) -> bool {
        self.rules.pattern.is_match(name)
            && parse_in_flight(name).is_none()
            && !self.is_marker(name)
    }

    /// How far a present, unchanged-so-far file is: settled, or not yet.
    fn settling(&self, s: &Seen) -> Verdict {
        let long_enough = self.last_at.saturating_sub(s.since) >= self.rules.min_age;
        let enough = s.agreeing >= self.rules.listings_needed(s.file.mtime);
        if self.rules.done_marker.is_some() || (long_enough && enough) {
            Verdict::Ready
        } else {
            Verdict::NotSettled
        }
    }

    /// Whether `name` is the done marker of a file of the latest listing.
    fn is_marker(&self, name: &str) -> bool {
        let Some(marker) = &self.rules.done_marker else {
            return false;
        };
        self.present
            .iter()
            .any(|f| f != name && marker.marker_of(f) == name && self.rules.pattern.is_match(f))
    }

    /// The done marker `file` needs, when one is configured.
    pub fn marker_of(&self, file: &str) -> Option<String> {
        self.rules.done_marker.as_ref().map(|m| m.marker_of(file))
    }

    /// Every file seen, by name, with its verdict (as of the latest listing); the names
    /// in `set_aside` are left at the origin for an operator. In-flight and set-aside
    /// names no longer there are left out; feed files no longer there are `Changing`.
    pub fn verdicts(&self, set_aside: &HashSet<String>) -> Vec<(RemoteFile, Verdict)> {
        self.seen
            .iter()
            .filter_map(|(name, s)| {
                let verdict = if set_aside.contains(name) {
                    Verdict::SetAside
                } else if let Some((item_id, original)) = parse_in_flight(name) {
                    Verdict::InFlight {
                        item_id,
                        name: original.to_string(),
                    }
                } else if !self.is_feed_file(name) {
                    Verdict::Ignored
                } else if let Err(e) =
                    RemoteName::parse(name).and_then(|n| in_flight_name(i64::MAX, &n).map(|_| n))
                {
                    // Also refused: a name too long to be taken under an in-flight name.
                    Verdict::Unsafe(e.to_string())
                } else if s.gone || (s.changed && s.agreeing < 2) {
                    Verdict::Changing
                } else if self
                    .marker_of(name)
                    .is_some_and(|m| !self.present.contains(&m))
                {
                    Verdict::NoMarker
                } else {
                    self.settling(s)
                };
                let feed = matches!(
                    verdict,
                    Verdict::Changing | Verdict::Ready | Verdict::NotSettled | Verdict::NoMarker
                );
                (!s.gone || feed).then(|| (s.file.clone(), verdict))
            })
            .collect()
    }

    /// How many listings were taken.
    pub fn listings(&self) -> u32 {
        self.listings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, mtime: Option<i64>) -> RemoteFile {
        RemoteFile {
            name: name.into(),
            size,
            mtime: mtime.and_then(|s| DateTime::from_timestamp(s, 0)),
        }
    }

    fn rules(min_age: u64, window: u64) -> Rules {
        Rules {
            pattern: Regex::new(r"^(?:report_[0-9]+\.txt)$").unwrap(),
            min_age: Duration::from_secs(min_age),
            window: Duration::from_secs(window),
            listings_without_mtime: 4,
            done_marker: None,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Lists `listings` (one per `window` seconds) while the watch wants more.
    fn watch(rules: Rules, listings: &[Vec<RemoteFile>]) -> Watch {
        let window = rules.window;
        let mut w = Watch::new(rules);
        for (n, files) in listings.iter().enumerate() {
            if n > 0 && !w.wants_more() {
                break;
            }
            w.observe(window * n as u32, files);
        }
        w
    }

    fn by_name(w: &Watch) -> Vec<(String, Verdict)> {
        w.verdicts(&HashSet::new())
            .into_iter()
            .map(|(f, v)| (f.name, v))
            .collect()
    }

    #[test]
    fn only_named_stable_files_are_ready_whatever_their_mtime_says() {
        let now = Utc::now().timestamp();
        let first = vec![
            file("report_1.txt", 10, Some(now - 600)),
            file("report_2.txt", 10, Some(now - 600)),
            // Written "just now" by a server whose clock is ahead: our clock decides.
            file("report_3.txt", 10, Some(now + 3600)),
            file("report_4.txt", 10, Some(now - 600)),
            file("notes.txt", 10, Some(now - 600)),
            file("report_x.txt", 10, Some(now - 600)),
            file(".visitas-inflight-9-report_5.txt", 10, Some(now - 600)),
        ];
        let mut second = first.clone();
        second[1].size = 20; // grew
        second.remove(3); // report_4 vanished between the listings
        let w = watch(rules(0, 5), &[first, second]);
        assert_eq!(
            by_name(&w),
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
                ("report_3.txt".into(), Verdict::Ready),
                ("report_4.txt".into(), Verdict::Changing),
                ("report_x.txt".into(), Verdict::Ignored),
            ]
        );
    }

    #[test]
    fn a_file_must_be_seen_unchanged_for_the_minimum_age_by_our_clock() {
        let f = || vec![file("report_1.txt", 10, Some(1_000))];
        // Listings every 5 s go on until the file was seen unchanged for 20 s.
        let w = watch(rules(20, 5), &[f(), f(), f(), f(), f(), f(), f()]);
        assert_eq!(w.listings(), 5, "0, 5, 10, 15, 20 s");
        assert_eq!(by_name(&w)[0].1, Verdict::Ready);
        // Changed at 10 s: only 10 s of calm when the listings end at 20 s.
        let changed = vec![file("report_1.txt", 11, Some(1_001))];
        let w = watch(
            rules(20, 5),
            &[f(), f(), changed.clone(), changed.clone(), changed],
        );
        assert_eq!(
            (w.listings(), by_name(&w)[0].1.clone()),
            (3, Verdict::Changing),
            "no use listing on: it cannot settle before the listings end"
        );
    }

    #[test]
    fn without_an_mtime_a_file_needs_more_agreeing_listings() {
        let stalled = || vec![file("report_1.txt", 500, None)];
        let whole = || vec![file("report_1.txt", 900, None)];
        let rules = rules(0, 1);
        assert_eq!(rules.span(), secs(3), "four listings, a second apart");
        // An upload that stalls for two windows, then goes on: never taken as a prefix.
        let w = watch(rules.clone(), &[stalled(), stalled(), stalled(), whole()]);
        assert_eq!(by_name(&w)[0].1, Verdict::Changing);
        let w = watch(rules.clone(), &[stalled(), stalled(), whole(), whole()]);
        assert_eq!(by_name(&w)[0].1, Verdict::Changing);
        let w = watch(rules.clone(), &[stalled(), stalled(), stalled()]);
        assert_eq!(by_name(&w)[0].1, Verdict::NotSettled);
        // Four agreeing listings: complete (the limit: a stall longer than three
        // windows would be taken for the end of the file).
        let w = watch(rules, &[whole(), whole(), whole(), whole()]);
        assert_eq!(by_name(&w)[0].1, Verdict::Ready);
        // With an mtime, two listings suffice.
        let dated = || vec![file("report_1.txt", 900, Some(5))];
        let w = watch(super::tests::rules(0, 1), &[dated(), dated(), dated()]);
        assert_eq!(
            (w.listings(), by_name(&w)[0].1.clone()),
            (2, Verdict::Ready)
        );
    }

    #[test]
    fn with_a_done_marker_a_file_waits_for_its_marker_which_is_never_a_file() {
        let mut rules = rules(60, 1);
        rules.pattern = Regex::new(".*").unwrap();
        rules.done_marker = Some(DoneMarker::try_from("{name}.done".to_string()).unwrap());
        assert_eq!(rules.span(), secs(1));
        let no_marker = || {
            vec![
                file("report_1.txt", 500, None),
                file("report_2.txt", 9, None),
                file("report_2.txt.done", 0, None),
            ]
        };
        let w = watch(rules, &[no_marker(), no_marker(), no_marker()]);
        assert_eq!(
            by_name(&w),
            vec![
                ("report_1.txt".into(), Verdict::NoMarker),
                ("report_2.txt".into(), Verdict::Ready),
                ("report_2.txt.done".into(), Verdict::Ignored),
            ]
        );
    }

    #[test]
    fn names_left_for_an_operator_are_never_enqueued() {
        let f = || {
            vec![
                file("report_1.txt", 10, Some(5)),
                file(".visitas-inflight-3-report_2.txt", 10, Some(5)),
            ]
        };
        let w = watch(rules(0, 0), &[f(), f()]);
        let aside: HashSet<String> = f().into_iter().map(|f| f.name).collect();
        assert!(
            w.verdicts(&aside)
                .iter()
                .all(|(_, v)| *v == Verdict::SetAside)
        );
    }
}
