//! Inserts a work item and its audit row in any state (like river's `testfactory.Job`).

use crate::testdb::TestDb;
use chrono::{DateTime, NaiveDate, Utc};
use shared::types::AuditStatus;
use shared::types::{ItemState, NewItem, Origin};

/// The origin every seeded item has unless told otherwise.
pub const ORIGIN: &str = "sftp://etl@sftp.test:22/in";

/// A work item to seed; times are seconds from the database's `now()`.
#[derive(Debug, Clone)]
pub struct Item {
    name: String,
    state: ItemState,
    audit: AuditStatus,
    origin: String,
    origin_host: Option<String>,
    size: i64,
    mtime: DateTime<Utc>,
    run_at: f64,
    lease: f64,
    updated: f64,
    attempts: i32,
    max_attempts: i32,
    system_retry_days: i32,
    retry_of: Option<i64>,
    business_date: Option<NaiveDate>,
    discarded: bool,
}

/// What was seeded.
#[derive(Debug, Clone, Copy)]
pub struct Seeded {
    /// `work_items.id`.
    pub id: i64,
    /// `bitacora_control.id`.
    pub bitacora_id: i64,
}

/// A fixed listing mtime (an hour-old file).
pub fn mtime() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

impl Item {
    /// A due pending item `name` at [`ORIGIN`], its audit row `PENDIENTE`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            state: ItemState::Pending,
            audit: AuditStatus::Pendiente,
            origin: ORIGIN.to_string(),
            origin_host: None,
            size: 100,
            mtime: mtime(),
            run_at: -1.0,
            lease: 300.0,
            updated: 0.0,
            attempts: 0,
            max_attempts: 3,
            system_retry_days: 0,
            retry_of: None,
            business_date: None,
            discarded: false,
        }
    }

    /// In queue state `state` with audit status `audit` (attempted once unless pending).
    pub fn state(mut self, state: ItemState, audit: AuditStatus) -> Self {
        self.state = state;
        self.audit = audit;
        if state != ItemState::Pending {
            self.attempts = self.attempts.max(1);
        }
        self
    }

    /// At origin `url` (a `file://` one with its host).
    pub fn origin(mut self, url: &str, host: Option<&str>) -> Self {
        self.origin = url.to_string();
        self.origin_host = host.map(str::to_string);
        self
    }

    /// Listed with this size.
    pub fn size(mut self, size: i64) -> Self {
        self.size = size;
        self
    }

    /// Due `secs` from now (negative: overdue).
    pub fn run_at(mut self, secs: f64) -> Self {
        self.run_at = secs;
        self
    }

    /// A running item's lease ends `secs` from now (negative: expired).
    pub fn lease(mut self, secs: f64) -> Self {
        self.lease = secs;
        self
    }

    /// Last written `secs` from now (negative: in the past).
    pub fn updated(mut self, secs: f64) -> Self {
        self.updated = secs;
        self
    }

    /// Tier 4 already retried it `days` nights.
    pub fn system_retry_days(mut self, days: i32) -> Self {
        self.system_retry_days = days;
        self
    }

    /// An operator's retry of audit row `bitacora_id`.
    pub fn retry_of(mut self, bitacora_id: i64) -> Self {
        self.retry_of = Some(bitacora_id);
        self
    }

    /// An operator discarded it.
    pub fn discarded(mut self) -> Self {
        self.discarded = true;
        self
    }

    /// Its business date was fixed (by an earlier claim).
    pub fn business_date(mut self, date: NaiveDate) -> Self {
        self.business_date = Some(date);
        self
    }

    /// The file as the dispatcher would list it now (same listing identity).
    pub fn listed(&self) -> NewItem {
        NewItem {
            origin: Origin {
                url: self.origin.clone(),
                host: self.origin_host.clone(),
            },
            source_name: self.name.clone(),
            file_name: self.name.clone(),
            source_path: format!("/in/{}", self.name),
            size: self.size as u64,
            mtime: Some(self.mtime),
            done_marker: None,
            loaded_prefix: None,
        }
    }

    /// Inserts the item and its audit row.
    pub async fn insert(self, t: &TestDb) -> Seeded {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO work_items (origin, origin_host, source_name, source_path, file_name, size_bytes, mtime,
                                     state, attempts, max_attempts, run_at, locked_by, locked_until, claim_token,
                                     system_retry_days, retry_of, business_date, updated_at)
             VALUES ($1, $2, $3, '/in/' || $3, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9),
                     CASE WHEN $6 = 'running' THEN 'factory' END,
                     CASE WHEN $6 = 'running' THEN now() + make_interval(secs => $10) END,
                     CASE WHEN $6 <> 'pending' THEN nextval('work_items_claim_token_seq') END,
                     $11, $12, $13, now() + make_interval(secs => $14))
             RETURNING id",
        )
        .bind(&self.origin)
        .bind(&self.origin_host)
        .bind(&self.name)
        .bind(self.size)
        .bind(self.mtime)
        .bind(self.state.as_str())
        .bind(self.attempts)
        .bind(self.max_attempts)
        .bind(self.run_at)
        .bind(self.lease)
        .bind(self.system_retry_days)
        .bind(self.retry_of)
        .bind(self.business_date)
        .bind(self.updated)
        .fetch_one(&t.db)
        .await
        .unwrap();
        // What a committed status needs (migration 0001's checks): a hash and counts.
        let counts = match self.audit {
            AuditStatus::Completado => Some((1, 0)),
            AuditStatus::CompletadoConErrores => Some((1, 1)),
            AuditStatus::Duplicado => Some((0, 0)),
            _ => None,
        };
        let sha256 = counts.map(|_| format!("{:064x}", fastrand::u128(..)));
        let (bitacora_id,): (i64,) = sqlx::query_as(
            "INSERT INTO bitacora_control (work_item_id, archivo, ruta_origen, tamano_bytes, estatus, intentos,
                                           sha256, registros_validos, registros_error, registros_totales,
                                           fecha_negocio, inicio, reprocesa_de, descartado_en, motivo_descarte)
             VALUES ($1, $2, '/in/' || $2, $3, $4, $5, $6, $7, $8, $7 + $8,
                     CASE WHEN $6 IS NOT NULL THEN current_date END,
                     CASE WHEN $4 <> 'PENDIENTE' THEN now() - interval '1 minute' END, $9,
                     CASE WHEN $10 THEN now() END, CASE WHEN $10 THEN 'discarded by the factory' END)
             RETURNING id",
        )
        .bind(id)
        .bind(&self.name)
        .bind(self.size)
        .bind(self.audit.as_str())
        .bind(self.attempts)
        .bind(&sha256)
        .bind(counts.map(|c| c.0))
        .bind(counts.map(|c| c.1))
        .bind(self.retry_of)
        .bind(self.discarded)
        .fetch_one(&t.db)
        .await
        .unwrap();
        Seeded { id, bitacora_id }
    }
}
