//! What a notice says: the webhook's JSON and the e-mail's subject and plain-text body,
//! rendered once when the notice is queued. Each says what happened, the feed, the file,
//! the business day, the figures, the first rejected records where they apply, the host,
//! and what to run next — a command and a section of `ops/RUNBOOK.md`.

use crate::store::alerts::AlertRow;
use crate::store::reports::RejectedLine;
use crate::types::weekdays::weekday_name;
use crate::types::{AlertKind, NoticeKind};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// The service's name, first in every subject.
pub const SERVICE: &str = "visitas";

/// A notice, rendered for both channels.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The e-mail's subject (and the line logs show).
    pub subject: String,
    /// The e-mail's body.
    pub body: String,
    /// The webhook's JSON.
    pub json: String,
}

/// What to do next about an alert of `kind`: the section of `ops/RUNBOOK.md` and the
/// commands to start with.
pub fn next_steps(kind: AlertKind) -> (&'static str, &'static [&'static str]) {
    use AlertKind::*;
    match kind {
        ArchivoAusente | ArchivosDeMas => (
            "A feed late, missing or with too many files",
            &[
                "dispatcher alerts --open",
                "dispatcher run    # once the files are there",
            ],
        ),
        VolumenAnomalo | TasaErrorAnomala => (
            "A file of unusual volume or error rate",
            &["dispatcher alerts --open", "dispatcher report --day DAY"],
        ),
        FalloLayout => ("A layout failure", &["dispatcher quarantine list"]),
        FalloSistema => (
            "SFTP server down (or Database down, Disk full, Host key changed: as its message says)",
            &["dispatcher quarantine list", "dispatcher status"],
        ),
        ArchivoModificado => (
            "A file set aside at the origin",
            &[
                "dispatcher quarantine list",
                "dispatcher quarantine retry ID",
            ],
        ),
        RespaldoFaltante => (
            "A loaded file whose backup is missing",
            &["dispatcher quarantine list"],
        ),
        OrigenSinPerformer => (
            "Items no performer can claim",
            &["dispatcher status", "dispatcher origins list"],
        ),
        NocheSinDrenar => ("A night that did not drain", &["dispatcher status"]),
        NocheBloqueada => ("A night blocked by a stuck lock", &["dispatcher status"]),
        ArchivoZipFallido => ("Disk full", &["dispatcher close"]),
    }
}

/// Renders notice `what` of `alerts` (one alert; several for a `RECUPERADO` that closes
/// several days at once), with `examples` of rejected records, as seen from `host` at `now`.
pub fn render(
    what: NoticeKind,
    alerts: &[AlertRow],
    examples: &[RejectedLine],
    host: &str,
    now: DateTime<Utc>,
) -> Rendered {
    let a = alerts.last().expect("a notice is about at least one alert");
    let figures: Value = serde_json::from_str(&a.alert.figures).unwrap_or(Value::Null);
    // A file's history alert is one per feed: its day is the latest file's, in its figures.
    let days: Vec<String> = alerts
        .iter()
        .filter_map(|a| a.alert.business_day.map(|d| d.to_string()))
        .chain(
            figures["business_day"]
                .as_str()
                .filter(|_| alerts.iter().all(|a| a.alert.business_day.is_none()))
                .map(str::to_string),
        )
        .collect();
    let mut subject = format!("[{SERVICE}] ");
    if what == NoticeKind::Recuperado {
        subject.push_str("RECUPERADO ");
    }
    subject.push_str(a.alert.kind.as_str());
    for part in [
        a.alert.feed.clone(),
        first_and_last(&days),
        a.alert.file.clone(),
    ]
    .into_iter()
    .flatten()
    {
        subject.push(' ');
        subject.push_str(&part);
    }
    if what == NoticeKind::Recordatorio {
        let _ = write!(
            subject,
            " (still open since {})",
            a.opened_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    let message = match what {
        NoticeKind::Recuperado => format!(
            "{} is over: {}",
            a.alert.kind,
            a.resolution.as_deref().unwrap_or("the check passed")
        ),
        _ => a.alert.message.clone(),
    };
    let (section, commands) = next_steps(a.alert.kind);
    let json = json!({
        "event": if what == NoticeKind::Recuperado { "RECUPERADO" } else { a.alert.kind.as_str() },
        "file": a.alert.file,
        "bitacora_id": a.alert.bitacora_id,
        "work_item_id": a.alert.work_item_id,
        "message": message,
        "host": host,
        "at": now,
        "notice": what.as_str(),
        "kind": a.alert.kind.as_str(),
        "alert_id": a.id,
        "alert_ids": alerts.iter().map(|a| a.id).collect::<Vec<_>>(),
        "feed": a.alert.feed,
        "business_day": a.alert.business_day,
        "days": days,
        "figures": figures,
        "opened_at": a.opened_at,
        "runbook": format!("ops/RUNBOOK.md, \"{section}\""),
        "next": commands,
    })
    .to_string();
    let body = body(
        what, alerts, &days, &message, &figures, examples, host, section, commands,
    );
    Rendered {
        subject,
        body,
        json,
    }
}

/// `D` or `D1..D2` for several days.
fn first_and_last(days: &[String]) -> Option<String> {
    match days {
        [] => None,
        [one] => Some(one.clone()),
        [first, .., last] => Some(format!("{first}..{last}")),
    }
}

#[allow(clippy::too_many_arguments)]
fn body(
    what: NoticeKind,
    alerts: &[AlertRow],
    days: &[String],
    message: &str,
    figures: &Value,
    examples: &[RejectedLine],
    host: &str,
    section: &str,
    commands: &[&str],
) -> String {
    let a = alerts.last().expect("at least one alert");
    let mut b = String::new();
    let head = match what {
        NoticeKind::Recuperado => "RECUPERADO",
        _ => a.alert.kind.as_str(),
    };
    let _ = writeln!(b, "{head}: {message}\n");
    if let Some(feed) = &a.alert.feed {
        let _ = writeln!(b, "Feed:          {feed}");
    }
    for day in days {
        let weekday = day.parse().map(weekday_name).unwrap_or_default();
        let _ = writeln!(b, "Business day:  {day} ({weekday})");
    }
    if let Some(file) = &a.alert.file {
        let _ = writeln!(
            b,
            "File:          {file} (bitacora_control.id {}, work item {})",
            a.alert.bitacora_id.map_or("-".into(), |i| i.to_string()),
            a.alert.work_item_id.map_or("-".into(), |i| i.to_string())
        );
    }
    if what == NoticeKind::Recuperado && alerts.len() > 1 {
        let _ = writeln!(b, "Days it covers: {}", alerts.len());
    }
    if let Value::Object(map) = figures
        && !map.is_empty()
    {
        let _ = writeln!(b, "Figures:");
        for (key, value) in map {
            let _ = writeln!(b, "  {key}: {}", flat(value));
        }
    }
    let _ = writeln!(b, "Host:          {host}");
    for alert in alerts {
        let _ = writeln!(
            b,
            "Alert:         {} ({}), opened {}",
            alert.id,
            alert.alert.kind,
            alert.opened_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    if !examples.is_empty() {
        let _ = writeln!(b, "\nFirst rejected records:");
        for e in examples {
            let _ = writeln!(b, "  line {}: {}", e.linea, e.detalle);
        }
    }
    if what != NoticeKind::Recuperado {
        let _ = writeln!(b, "\nWhat to do next:");
        for c in commands {
            let day = days.last().map_or("DAY", String::as_str);
            let _ = writeln!(b, "  {}", c.replace("DAY", day));
        }
        let _ = writeln!(b, "  ops/RUNBOOK.md, section \"{section}\"");
        let _ = writeln!(
            b,
            "\nWhen it is handled and should stop repeating: dispatcher alerts ack {} --note \"…\"",
            a.id
        );
    }
    b
}

/// A JSON value on one line, objects as `key value, …`.
fn flat(v: &Value) -> String {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k} {}", flat(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{f:.2}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
