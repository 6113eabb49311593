//! The PostgreSQL side: connections and TLS, and one owner module per table. Statements
//! live in the module of the table they write (reads that join a neighbour included);
//! status values in SQL come from the enums' macros (`crate::types::state`).
//!
//! - [`connect`] (the two pools, the embedded migrations, database errors), [`tls`]
//!   (libpq's `sslmode` for both clients), [`settings`] (`[database]`);
//! - [`queue`]: `work_items`; [`audit`]: `bitacora_control`; [`attempt`]: the
//!   transactions that move an item and its audit row together;
//! - [`load`]: the one load transaction (`estadisticas`, `errores`, `visitantes`,
//!   `visitas_por_anio`); [`partitions`]: the detail tables' partitions;
//! - [`locks`]: the service's row locks (`service_locks`, `content_locks`);
//! - [`runs`]: `dispatch_runs`; [`reports`]: the operators' views and reports;
//! - [`alerts`]: `alerts`; [`notices`]: their outbox, `alert_notices`; [`file_checks`]:
//!   each loaded file compared with its feed's history.
//! - [`root`]: `etl_root`, the one ETL root every host shares.
//! - [`set_aside`]: `set_aside_files`, what the service leaves at the origin for an
//!   operator; [`performers`]: the live performers and the origins they serve.
//! - [`browse`]: the console's lists and pages; [`console_actions`]: what the console did.

pub mod alerts;
pub mod attempt;
pub mod audit;
pub mod browse;
pub mod connect;
pub mod console_actions;
pub mod file_checks;
pub mod load;
pub mod locks;
pub mod notices;
pub mod partitions;
pub mod performers;
pub mod queue;
pub mod reports;
pub mod root;
pub mod runs;
pub mod set_aside;
pub mod settings;
pub mod tls;
