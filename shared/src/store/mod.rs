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
//! - [`browse`]: the console's lists and pages; [`console_actions`]: what the console did.

pub mod attempt;
pub mod audit;
pub mod browse;
pub mod connect;
pub mod console_actions;
pub mod load;
pub mod locks;
pub mod partitions;
pub mod queue;
pub mod reports;
pub mod runs;
pub mod settings;
pub mod tls;
