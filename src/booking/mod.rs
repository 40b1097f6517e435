//! The ledger: chargers, customers, reservations, charging transactions and their event log,
//! the storage behind it, the dispatcher that carries reservations to the chargers, and the
//! REST API that reads and changes it.

pub mod charger;
pub mod charging;
pub mod customer;
pub mod event;
pub mod mypage;
pub mod reservation;
pub mod rest;
pub mod store;
