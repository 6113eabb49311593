//! Test support: `spawn` makes a fresh world for one test ([`app`]); [`bins`] runs the
//! real binaries against it; [`sshd`] is the test bed's sshd and private ones; [`procfs`]
//! reads /proc; [`mail`] the SMTP servers and a webhook receiver. Everything tests use is re-exported here (`crate::helpers::X`).

mod app;
mod bins;
mod mail;
mod procfs;
mod sshd;

pub use app::{Origin, TestApp, spawn};
pub use bins::{Running, bin_dir, terminate};
pub use mail::{
    Hooks, PrivateSmtp, email_section, mail_dir, mails_in, marker, smtp, wait_for_mails,
};
pub use sshd::{PrivateSshd, testbed};
