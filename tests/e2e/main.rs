//! End-to-end tests: the real binaries against a real PostgreSQL and a real OpenSSH
//! sshd (started by `ops/testbed.sh`). Each test gets its own database and directories.

mod console;
mod console_browser;
mod corpus;
mod dashboard;
mod faults;
mod helpers;
mod history;
mod layout;
mod loading;
mod night;
mod operators;
mod queue;
mod reload;
mod rules;
mod runbook;
mod security;
mod stranded;
mod systemd;
mod tls;
mod visitors;
mod whole;
