//! Test support: `spawn` makes a fresh world for one test ([`app`]); [`bins`] runs the
//! real binaries against it; [`sshd`] is the test bed's sshd and private ones; [`procfs`]
//! reads /proc. Everything tests use is re-exported here (`crate::helpers::X`).

mod app;
mod bins;
pub mod console;
mod procfs;
mod sshd;

pub use app::{Origin, TestApp, spawn};
pub use bins::{Running, bin_dir, terminate};
pub use sshd::{PrivateSshd, testbed};
