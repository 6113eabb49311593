//! The leaf of plain types every other layer builds on: states, the claimed item and its
//! fence, file facts, counts and outcomes, alerts, secrets and storable text. No I/O (not
//! even the clock), and nothing of the crate above it.

pub mod alert;
pub mod encoding;
pub mod invalid;
pub mod item;
pub mod origin;
pub mod outcome;
pub mod secret;
pub mod state;
pub mod storable;
pub mod weekdays;

pub use alert::{AlertKind, NoticeKind};
pub use encoding::Encoding;
pub use invalid::InvalidSetting;
pub use item::{Claimed, Fence, ItemStand, LoadedPrefix, NewItem};
pub use origin::{Origin, Reach};
pub use outcome::{FileFacts, LoadCounts, LoadOutcome};
pub use secret::Secret;
pub use state::{
    AuditStatus, Final, ItemState, Resolution, SetAsideReason, UnknownState, Unloaded,
};
pub use weekdays::Weekdays;
