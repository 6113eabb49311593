//! Test support: `spawn` makes a fresh world for one test ([`app`]); [`bins`] runs the
//! real binaries against it; [`files`] puts files and reads zips back; [`sshd`] is the
//! test bed's sshd and private ones; [`procfs`] reads /proc; [`mail`] the SMTP servers
//! and a webhook receiver. Everything tests use is re-exported here (`crate::helpers::X`).

mod app;
mod bins;
pub mod console;
mod files;
mod mail;
mod procfs;
mod sshd;

pub use app::{Origin, TestApp, spawn, spawn_on};
pub use bins::{Running, bin_dir, terminate};
pub use files::{put_files, text, zip_hashes, zip_hashes_of};
pub use mail::{
    Hooks, PrivateSmtp, email_section, mail_dir, mails_in, marker, smtp, wait_for_mails,
};
pub use sshd::{PrivateSshd, testbed};
