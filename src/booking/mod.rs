//! The ledger: chargers (and, with the next issues, customers, reservations, transactions and
//! their event log), the storage behind it, and the REST API that reads and changes it.

pub mod charger;
pub mod customer;
pub mod event;
pub mod reservation;
pub mod rest;
pub mod store;
