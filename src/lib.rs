//! echarging: an OCPP 1.6J EV charging central system. The map:
//!
//! - [`ocpp`]: the pure protocol — OCPP-J frames, typed messages, error codes. No I/O.
//! - [`central`]: charger connections — WebSocket upgrade and auth, one task per session, the
//!   registry of live sessions with typed outbound CALLs, live charger state.
//! - [`booking`]: the ledger — chargers (customers, reservations and transactions to come), the
//!   storage interface and its SQLite backend, the REST API.
//! - [`app`]: wiring and graceful shutdown; [`settings`], [`telemetry`], [`problem`] (HTTP
//!   errors as problem+json) and [`ops`] (health and readiness) support it; [`metrics`] (every
//!   Prometheus metric, served at `/metrics`) and [`load_shed`] (the REST concurrency limit)
//!   keep it observable and responsive under overload.

pub mod app;
pub mod booking;
pub mod central;
pub mod load_shed;
pub mod metrics;
pub mod ocpp;
pub mod ops;
pub mod problem;
pub mod settings;
pub mod telemetry;
