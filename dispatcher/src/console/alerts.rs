//! Open alerts, as the overview shows them. Until alerts are kept with a lifecycle of
//! their own, an open alert is a condition the webhook alerts on that still holds now:
//! the last night did not drain (`NOCHE_SIN_DRENAR`), or files wait for an operator
//! (`FALLO_LAYOUT`, `FALLO_SISTEMA`). A table of alerts replaces [`open`]'s body; the
//! overview only renders what it returns.

use super::set_aside::Counts;
use shared::store::runs::LastRun;
use shared::types::AuditStatus;

/// One open alert.
#[derive(Debug, Clone)]
pub struct OpenAlert {
    /// The event, as the webhook names it.
    pub event: String,
    /// What is wrong.
    pub what: String,
    /// Where to look: (path, label).
    pub link: (String, String),
}

/// The alerts open now, from the last night and the files waiting.
pub fn open(last: Option<&LastRun>, waiting: &Counts) -> Vec<OpenAlert> {
    let mut alerts = Vec::new();
    if let Some(run) = last.filter(|r| r.drained == "false") {
        alerts.push(OpenAlert {
            event: "NOCHE_SIN_DRENAR".into(),
            what: format!(
                "dispatch run {} (started {}) did not drain before its deadline",
                run.id, run.started
            ),
            link: ("/queue".into(), "the queue".into()),
        });
    }
    for status in [AuditStatus::FalloLayout, AuditStatus::FalloSistema] {
        let n: i64 = waiting
            .waiting
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, n)| n)
            .sum();
        if n > 0 {
            alerts.push(OpenAlert {
                event: status.as_str().into(),
                what: format!("{n} file(s) wait for an operator"),
                link: ("/quarantine".into(), "the quarantine".into()),
            });
        }
    }
    alerts
}
