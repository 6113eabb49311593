//! Database-level tests of `shared::store` (the queue and its transactions), one fresh database per test (PostgreSQL of
//! the test bed, or `VISITAS_TEST_ADMIN_URL`), seeded by a factory that inserts a work
//! item and its audit row in any state.

mod claim;
mod enqueue;
mod factory;
mod fenced;
mod nightly;
mod origins;
mod rescue;
mod testdb;
mod views;
mod vocabulary;
