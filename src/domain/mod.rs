//! The domain: what the central system is about, in the driver's and OCPP's words, as plain
//! values and pure rules. Ids as newtypes whose only constructor is `parse` ([`ids`]), chargers,
//! customers, time slots and reservations, transactions and the rules that decide a start, and
//! the ledger's events as a typed enum. No I/O: no sqlx, tokio or axum here, and nothing from the
//! layers above (a test keeps it so).

pub mod availability;
pub mod charger;
pub mod configuration;
pub mod customer;
pub mod event;
pub mod ids;
pub mod instant;
pub mod local_list;
pub mod placement;
pub mod remote_start;
pub mod reservation;
pub mod security;
pub mod transaction;

pub use ids::{ChargeBoxId, InvalidChargeBoxId};
