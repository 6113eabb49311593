//! What operators see without asking: alerts (raised, repeated, resolved; sent by
//! webhook and e-mail through an outbox), the checks that raise them (expected feeds,
//! volume and error rate against a feed's history), logs and metrics.
//!
//! - [`alert`]: an alert's life; [`notice`]: what its notices say; [`deliver`]: the
//!   outbox's sender, over [`webhook`] and [`email`];
//! - [`presence`]: files expected per feed and day; [`volume`] and [`anomaly`]: a file
//!   against its feed's history;
//! - [`telemetry`]: logs and metrics.

pub mod alert;
pub mod anomaly;
pub mod deliver;
pub mod email;
pub mod notice;
pub mod presence;
pub mod telemetry;
pub mod volume;
pub mod webhook;
