//! One worker's connection to its origin, kept between items: a night of small files
//! pays the key exchange, the host-key check and the authentication once per worker,
//! not once per file.

use shared::source::Source;
use std::time::{Duration, Instant};
use tracing::info;

/// The connection a worker keeps between its items (at most one: a performer never
/// holds more connections than it has workers).
#[derive(Default)]
pub struct KeptSource {
    kept: Option<Kept>,
}

struct Kept {
    /// The origin's normalised URL (`work_items.origin`).
    url: String,
    source: Source,
    /// When its last item ended (`None` while an item uses it).
    idle_since: Option<Instant>,
}

/// How [`KeptSource::reuse`] found the kept connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// It answered and is this origin's: the item uses it.
    Reused,
    /// None was kept for this origin (none at all, or another origin's, now closed).
    None,
    /// It was idle longer than allowed: closed.
    Expired,
    /// It no longer answered (the server restarted, the network dropped it): dropped.
    Broken,
}

impl KeptSource {
    /// Nothing kept yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Readies the kept connection for an item of `origin` (`work_items.origin`): kept
    /// when it is that origin's, idle no longer than `idle`, and answers a cheap
    /// request; closed or dropped otherwise, so the caller connects anew and no attempt
    /// is spent on a stale connection.
    pub async fn reuse(&mut self, origin: &str, idle: Duration) -> Reuse {
        let Some(kept) = self.kept.take() else {
            return Reuse::None;
        };
        if kept.url != origin {
            close_briefly(kept.source).await;
            return Reuse::None;
        }
        if kept.idle_since.is_some_and(|since| since.elapsed() > idle) {
            close_briefly(kept.source).await;
            return Reuse::Expired;
        }
        if !kept.source.alive().await {
            info!(origin = %kept.url, "the kept connection to the origin no longer answers; opening a new one");
            // Closed (briefly) before another is opened: never two at once for a worker.
            close_briefly(kept.source).await;
            return Reuse::Broken;
        }
        self.kept = Some(Kept {
            idle_since: None,
            ..kept
        });
        Reuse::Reused
    }

    /// Keeps `source`, just opened for `origin`, in place of any other.
    pub fn keep(&mut self, origin: &str, source: Source) {
        self.kept = Some(Kept {
            url: origin.to_string(),
            source,
            idle_since: None,
        });
    }

    /// The kept connection, if any.
    pub fn source(&self) -> Option<&Source> {
        self.kept.as_ref().map(|k| &k.source)
    }

    /// The item that used it ended well: it waits for the next one.
    pub fn release(&mut self) {
        if let Some(kept) = &mut self.kept {
            kept.idle_since = Some(Instant::now());
        }
    }

    /// The item that used it failed: it is closed, and the next item connects anew
    /// (whatever failed may have been the connection itself).
    pub async fn discard(&mut self) {
        if let Some(kept) = self.kept.take() {
            close_briefly(kept.source).await;
        }
    }

    /// Closes it once it has been idle longer than `idle`.
    pub async fn close_if_idle(&mut self, idle: Duration) {
        if let Some(since) = self.kept.as_ref().and_then(|k| k.idle_since)
            && since.elapsed() >= idle
        {
            self.discard().await;
        }
    }

    /// Closes it (at shutdown).
    pub async fn close(&mut self) {
        self.discard().await;
    }
}

/// Closes `source`, waiting a moment at most: a server that stopped answering must not
/// hold up a worker's next claim or a shutdown.
async fn close_briefly(source: Source) {
    let _ = tokio::time::timeout(Duration::from_secs(2), source.close()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: &str = "file:///var/tmp/origin";

    #[tokio::test]
    async fn kept_for_its_own_origin_until_idle_too_long() {
        let mut kept = KeptSource::new();
        assert_eq!(kept.reuse(HERE, Duration::from_secs(60)).await, Reuse::None);
        kept.keep(HERE, Source::local("/var/tmp/origin"));
        kept.release();
        assert_eq!(
            kept.reuse(HERE, Duration::from_secs(60)).await,
            Reuse::Reused
        );
        kept.release();
        assert_eq!(
            kept.reuse("file:///elsewhere", Duration::from_secs(60))
                .await,
            Reuse::None
        );
        assert!(
            kept.source().is_none(),
            "another origin's connection is closed"
        );
        kept.keep(HERE, Source::local("/var/tmp/origin"));
        kept.release();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            kept.reuse(HERE, Duration::from_millis(10)).await,
            Reuse::Expired
        );
        assert!(kept.source().is_none());
    }

    #[tokio::test]
    async fn in_use_it_is_never_idle_and_closes_when_idle() {
        let mut kept = KeptSource::new();
        kept.keep(HERE, Source::local("/var/tmp/origin"));
        kept.close_if_idle(Duration::ZERO).await;
        assert!(kept.source().is_some(), "an item is using it");
        kept.release();
        kept.close_if_idle(Duration::ZERO).await;
        assert!(kept.source().is_none());
    }
}
