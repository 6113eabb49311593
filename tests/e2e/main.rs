//! End-to-end tests: the real binaries against a real PostgreSQL and a real OpenSSH
//! sshd (started by `ops/testbed.sh`). Each test gets its own database and directories.

mod dashboard;
mod faults;
mod helpers;
mod history;
mod layout;
mod loading;
mod night;
mod operators;
mod queue;
mod rules;
mod runbook;
mod security;
mod systemd;
mod visitors;
