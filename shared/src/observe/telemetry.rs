//! Tracing and metrics.
//!
//! Logs are JSON lines to stdout (journald) and, when a logs directory is given, to
//! `logs/YYYYMMDD/`: the lines of a file's processing (inside its `item` span) go to
//! `report_N.log`, every other line to the component's own log (`performer.log`,
//! `dispatcher.log`). Every line of a file's processing carries `work_item_id` and `file`.

use crate::source::RemoteName;
use chrono::Utc;
use chrono_tz::Tz;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where the day-directory logs go.
pub struct FileLogs {
    /// `logs/` under the ETL root.
    pub dir: PathBuf,
    /// `performer` or `dispatcher`: the name of the orchestrator's log.
    pub component: &'static str,
    /// The business time zone, which dates the day directories.
    pub tz: Tz,
}

/// Installs the global subscriber. `RUST_LOG` (default `info`) filters stdout only: the
/// day-directory logs are a record operators rely on, so they always take `info` and up.
pub fn init(files: Option<FileLogs>) {
    let events = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Spans stay enabled whatever `RUST_LOG` says, so a warning inside an item still
    // carries the item span's `work_item_id` and `file` on stdout.
    let stdout_filter = events.or(filter_fn(|meta| {
        meta.is_span() && *meta.level() <= Level::INFO
    }));
    let stdout = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stdout)
        .with_filter(AskEveryTime(stdout_filter));
    tracing_subscriber::registry()
        .with(stdout)
        .with(files.map(|f| DayFiles::new(f).with_filter(AskEveryTime(LevelFilter::INFO))))
        .init();
}

/// A per-layer filter asked at every span and event, never cached as "always".
///
/// Works around tokio-rs/tracing#2519: `log::log_enabled!` (sqlx asks it after every
/// query) runs the per-layer filters without an event, and their verdict then sticks to
/// the next event of a callsite cached as "always", silently dropping it from the layer.
struct AskEveryTime<F>(F);

impl<S, F: Filter<S>> Filter<S> for AskEveryTime<F> {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        self.0.enabled(meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.0.callsite_enabled(meta).is_never() {
            Interest::never()
        } else {
            Interest::sometimes()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool {
        self.0.event_enabled(event, cx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, cx)
    }

    fn on_record(&self, id: &Id, values: &tracing::span::Record<'_>, cx: Context<'_, S>) {
        self.0.on_record(id, values, cx)
    }

    fn on_enter(&self, id: &Id, cx: Context<'_, S>) {
        self.0.on_enter(id, cx)
    }

    fn on_exit(&self, id: &Id, cx: Context<'_, S>) {
        self.0.on_exit(id, cx)
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        self.0.on_close(id, cx)
    }
}

/// Serves Prometheus metrics on `listen` (`GET /metrics`).
pub fn serve_metrics(listen: &str) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
        anyhow::anyhow!("telemetry.metrics_listen `{listen}` is not an address:port")
    })?;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&[
            0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ])?
        .install()?;
    Ok(())
}

/// The `file` and `work_item_id` of an `item` span.
struct ItemFields {
    file: String,
    work_item_id: Option<i64>,
}

/// The name of a file's log in its day directory: `report_7.txt` → `report_7.log`. The
/// remote name becomes a path only once proved safe.
pub fn file_log_name(file: &str) -> String {
    match RemoteName::parse(file) {
        Ok(name) => format!(
            "{}.log",
            name.as_str().strip_suffix(".txt").unwrap_or(name.as_str())
        ),
        Err(_) => "unsafe-name.log".into(),
    }
}

/// The layer writing day-directory logs.
struct DayFiles {
    config: FileLogs,
    open: Mutex<HashMap<PathBuf, File>>,
}

/// Open log files kept at most; past it the cache starts again (files reopen in append mode).
const MAX_OPEN: usize = 64;

impl DayFiles {
    fn new(config: FileLogs) -> Self {
        Self {
            config,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn append(&self, log_name: &str, line: &[u8]) {
        let day = Utc::now()
            .with_timezone(&self.config.tz)
            .format("%Y%m%d")
            .to_string();
        let path = self.config.dir.join(day).join(log_name);
        let mut open = self.open.lock().expect("not poisoned");
        if open.len() >= MAX_OPEN && !open.contains_key(&path) {
            open.clear();
        }
        if !open.contains_key(&path) {
            let created = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| OpenOptions::new().create(true).append(true).open(&path));
            match created {
                Ok(file) => {
                    open.insert(path.clone(), file);
                }
                Err(_) => return, // logging must never stop the work; stdout still has the line
            }
        }
        if let Some(file) = open.get_mut(&path) {
            let _ = file.write_all(line);
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for DayFiles {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = JsonFields::default();
        attrs.record(&mut fields);
        if let (Some(Value::String(file)), Some(span)) = (fields.0.get("file"), ctx.span(id)) {
            let work_item_id = fields.0.get("work_item_id").and_then(Value::as_i64);
            span.extensions_mut().insert(ItemFields {
                file: file.clone(),
                work_item_id,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::String(Utc::now().to_rfc3339()));
        line.insert(
            "level".into(),
            Value::String(event.metadata().level().to_string()),
        );
        line.insert(
            "target".into(),
            Value::String(event.metadata().target().to_string()),
        );
        let item = ctx.event_scope(event).and_then(|scope| {
            scope.from_root().find_map(|span| {
                span.extensions()
                    .get::<ItemFields>()
                    .map(|f| (f.file.clone(), f.work_item_id))
            })
        });
        let log_name = match &item {
            Some((file, work_item_id)) => {
                line.insert(
                    "work_item_id".into(),
                    work_item_id.map_or(Value::Null, Value::from),
                );
                line.insert("file".into(), Value::String(file.clone()));
                file_log_name(file)
            }
            None => format!("{}.log", self.config.component),
        };
        line.extend(fields.0);
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        self.append(&log_name, &bytes);
    }
}

/// Collects an event's or span's fields as JSON values.
#[derive(Default)]
struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
