//! The pure OCPP layer of echarging (`../src/ocpp`), compiled on its own for fuzzing: it is
//! the code that reads what chargers send, it has no I/O and needs only serde, serde_json,
//! time and thiserror, so the instrumented fuzz build skips the server's tokio/axum/sqlx tree
//! (about 3 CPU-minutes, most of it the schema validator the targets check against). `crate::ocpp::…` paths inside it
//! resolve here exactly as in the server crate.

#![allow(dead_code)]

#[path = "../../src/ocpp/mod.rs"]
pub mod ocpp;
