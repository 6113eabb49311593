//! One attempt's own things: its staging file, what it has proven so far, and the
//! names its copies take.

use crate::context::Context;
use shared::source::RemoteName;
use shared::types::{Claimed, FileFacts};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The steps an item's time is broken into, in the order they run (`connect` is 0 when
/// the worker's kept connection served).
pub(crate) const STEPS: [&str; 9] = [
    "claim", "connect", "take", "download", "hash", "load", "backup", "delete", "finish",
];

/// Where one attempt's time went: each step's total, and when the attempt began (its
/// claim included), so the per-file log can say what the steps do not account for.
pub(super) struct Clock {
    began: Instant,
    spent: Mutex<[Duration; STEPS.len()]>,
    /// How the item got its connection: `kept` (its `connect` is the liveness check
    /// alone), `new`, or `replaced` (the kept one no longer answered).
    connection: Mutex<&'static str>,
}

impl Clock {
    /// A clock for an attempt whose claim took `claim` and ended just now.
    fn new(claim: Duration) -> Self {
        let clock = Self {
            began: Instant::now() - claim,
            spent: Mutex::new([Duration::ZERO; STEPS.len()]),
            connection: Mutex::new("none"),
        };
        clock.add("claim", claim);
        clock
    }

    /// Adds `took` to `step` (one of [`STEPS`]), and to its histogram.
    pub(super) fn add(&self, step: &'static str, took: Duration) {
        let i = STEPS
            .iter()
            .position(|s| *s == step)
            .expect("one of the steps");
        self.spent.lock().expect("not poisoned")[i] += took;
        crate::metrics::stage(step, took);
    }

    /// Says how the item got its connection (logged with the breakdown).
    pub(super) fn connection(&self, how: &'static str) {
        *self.connection.lock().expect("not poisoned") = how;
    }

    /// How the item got its connection.
    pub(super) fn connection_was(&self) -> &'static str {
        *self.connection.lock().expect("not poisoned")
    }

    /// Runs `work`, its time added to `step`.
    pub(super) async fn time<T>(&self, step: &'static str, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let done = work.await;
        self.add(step, started.elapsed());
        done
    }

    /// Each step's milliseconds, the rest (what no step accounts for), the total and how
    /// the item got its connection, as one compact field of the item's last log line
    /// (`claim=2 connect=0 … rest=0 total=37 connection=kept`): a line of its own per
    /// file would add a tenth to a night's log.
    pub(super) fn summary(&self) -> String {
        let spent = *self.spent.lock().expect("not poisoned");
        let total = self.began.elapsed();
        let rest = total.saturating_sub(spent.iter().sum());
        crate::metrics::stage("rest", rest);
        let mut out = String::new();
        for (step, took) in STEPS.iter().zip(spent) {
            out += &format!("{step}={} ", took.as_millis());
        }
        out + &format!(
            "rest={} total={} connection={}",
            rest.as_millis(),
            total.as_millis(),
            self.connection_was()
        )
    }
}

/// One attempt's own things: its staging file, and what it has proven so far.
pub(super) struct Attempt {
    /// `staging/<item>-<token>-<name>`: created exclusively, used by this attempt alone.
    pub(super) staged: PathBuf,
    /// The staged copy is whole (its size checked against the origin): what pass 1 found.
    pub(super) verified: Mutex<Option<FileFacts>>,
    /// The item's load committed (in this attempt or an earlier one).
    pub(super) committed: AtomicBool,
    /// Where this attempt's tier 3 put the staged copy, once moved (a failure recorded
    /// again after an outage names the same copy).
    pub(super) quarantined: Mutex<Option<PathBuf>>,
    /// Where its time went.
    pub(super) clock: Clock,
}

impl Attempt {
    pub(super) fn new(ctx: &Context, item: &Claimed, claim: Duration) -> Self {
        Self {
            staged: ctx.dirs.staging().join(format!(
                "{}-{}-{}",
                item.id,
                item.token,
                file_part(item)
            )),
            verified: Mutex::new(None),
            committed: AtomicBool::new(item.prior_status.is_final()),
            quarantined: Mutex::new(None),
            clock: Clock::new(claim),
        }
    }
}

pub(super) fn file_part(item: &Claimed) -> String {
    RemoteName::parse(&item.file_name).map_or_else(|_| "unsafe-name".into(), |n| n.to_string())
}

/// The local copy's name in backup or quarantine: `<bitacora_id>-<name>`.
pub(super) fn local_name(item: &Claimed) -> String {
    format!("{}-{}", item.bitacora_id, file_part(item))
}
