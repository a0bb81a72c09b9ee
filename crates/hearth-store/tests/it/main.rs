//! Storage story: one test that walks through what Hearth stores, run against SQLite always and against
//! PostgreSQL when `HEARTH_TEST_DATABASE_URL` is set (each run in a fresh database of its own).
#![allow(clippy::unwrap_used)]

mod story;
mod support;
mod upgrade;
