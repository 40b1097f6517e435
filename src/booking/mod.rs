//! The ledger: the [`store::Store`] trait with its SQLite and PostgreSQL backends, the event log
//! every change appends to, and the my-page read model folded from that log ([`mypage`]). It
//! takes domain values in and gives domain values out; it knows nothing of chargers' sockets,
//! OCPP messages or HTTP.

pub mod mypage;
pub mod store;
