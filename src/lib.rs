//! echarging: an OCPP 1.6J EV charging central system. The map, lowest layer first; a layer
//! names only those below it (the `layers` end-to-end test keeps it so):
//!
//! - [`ocpp`]: the charger protocol, pure: OCPP-J frames, typed 1.6 messages, error codes, and
//!   lenient reading of what real chargers send ([`ocpp::v16`]; 2.0.1 will be its sibling).
//!   No I/O.
//! - [`domain`]: ids as newtypes, chargers, customers and their tags' standing, slots,
//!   reservations, transactions, the pure rules (a start, a tag's verdict, a booking's
//!   placement, who may remote-start), the ledger's events as a typed `EventKind`. No I/O.
//! - [`settings`] (which may name protocol types, e.g. `ocpp_strictness`), [`problem`] (HTTP errors as problem+json), [`metrics`] (every Prometheus
//!   metric; it takes labels and knows no layer above it), [`telemetry`] (logging).
//! - [`transport`]: the connection under HTTP: the accept loop with its limits over one or more
//!   endpoints, TLS with rustls and certificate reload, the peer facts every request carries,
//!   and the login throttle. It knows no route.
//! - [`booking`]: the ledger: the `Store` trait with its SQLite and PostgreSQL backends (laid out
//!   alike, one file per aggregate), the event log, the my-page read model folded from it.
//! - [`central`]: charger connections: WebSocket upgrade and auth, one task per session, the
//!   registry of live sessions with typed outbound CALLs, the breaker, live charger state, the
//!   dispatcher that carries reservations to chargers and drops caches on the log's changes,
//!   per-charger deviation counts, the chargers' configuration snapshots and the fleet's key
//!   policy, the firmware and diagnostics statuses they report, what their ChangeAvailability
//!   answers do to the ledger, their local authorization lists kept in step with the ledger's
//!   tags, and the cluster (NATS: commands to chargers on other nodes, presence, takeover,
//!   commit wake-ups). It owns no REST.
//! - [`api`]: REST under `/api/v1` with one error type and throttled tokens,
//!   my page and its SSE stream, the operator's toolbox (any OCPP command, configuration,
//!   a forced local list sync), firmware and diagnostics files hosted for chargers (`/files/`),
//!   fleet operations,
//!   OpenAPI and `/docs`, auth, operations probes and `/metrics`,
//!   REST load shedding, and the web console (`/` for operators, `/my/` for drivers).
//! - [`app`]: composes them, serves, drains.

pub mod api;
pub mod app;
pub mod booking;
pub mod central;
pub mod domain;
pub mod metrics;
pub mod ocpp;
pub mod problem;
pub mod settings;
pub mod telemetry;
pub mod transport;
