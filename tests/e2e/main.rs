//! End-to-end tests: the real binaries against a real PostgreSQL and a real OpenSSH
//! sshd (started by `ops/testbed.sh`). Each test gets its own database and directories.

mod alerts;
mod connections;
mod console;
mod console_browser;
mod copies;
mod corpus;
mod dashboard;
mod failover;
mod faults;
mod helpers;
mod history;
mod layout;
mod loading;
mod night;
mod operators;
mod origins;
mod queue;
mod reload;
mod rules;
mod runbook;
mod security;
mod senders;
mod stranded;
mod systemd;
mod tls;
mod visitors;
mod whole;
