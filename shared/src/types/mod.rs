//! The leaf of plain types every other layer builds on: states, the claimed item and its
//! fence, file facts, counts and outcomes, secrets and storable text. No I/O, and
//! nothing of the crate above it.

pub mod business_date;
pub mod encoding;
pub mod invalid;
pub mod item;
pub mod origin;
pub mod outcome;
pub mod secret;
pub mod state;
pub mod storable;

pub use encoding::Encoding;
pub use invalid::InvalidSetting;
pub use item::{Claimed, Fence, ItemStand, LoadedPrefix, NewItem};
pub use origin::{Origin, Reach};
pub use outcome::{FileFacts, LoadCounts, LoadOutcome};
pub use secret::Secret;
pub use state::{
    AuditStatus, Final, ItemState, Resolution, SetAsideReason, UnknownState, Unloaded,
};
