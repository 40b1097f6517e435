//! echarging-sim: virtual OCPP 1.6J chargers, as the charger client of end-to-end tests and as
//! a load generator for any OCPP 1.6J central system. It speaks raw OCPP-J frames with
//! serde_json and never uses the server's types, so it judges the server from outside.
//!
//! Map: `frame` (wire shapes, pure) → `connect` (TCP + WebSocket upgrade) → `charger` (one
//! connection's conversation) ← `messages` (realistic payloads and answers). A whole charge
//! point is `station`: a `charger` driven by `charge_point` (connector statuses, reservations,
//! sessions, configuration and the answer to every server request, pure), delivering
//! transaction messages through `tx_queue` and reconnecting after `backoff`. `load` runs
//! thousands of stations (`sessions` is the clock of charge mode), timing them with `latency`
//! and summing up in `report`; `quirks` bends what a station sends the way field chargers do (`--quirks`);
//! `provision`, `progress`, `source_addrs` and `server_rss` serve
//! the `echarging-sim` binary. `drivers` books slots over the REST API (closed-loop customers)
//! and checks that no accepted bookings overlap; `rng` feeds both.

pub mod backoff;
pub mod charge_point;
pub mod charger;
pub mod connect;
pub mod drivers;
pub mod frame;
pub mod latency;
pub mod load;
pub mod messages;
pub mod progress;
pub mod provision;
pub mod quirks;
pub mod report;
pub mod rng;
pub mod server_rss;
pub mod sessions;
pub mod source_addrs;
pub mod station;
pub mod tx_queue;

pub use charger::{CallOutcome, Charger, ClientError, Incoming};
pub use connect::{ChargerConfig, ConnectError, OCPP16, tls_client};
pub use frame::Frame;
pub use load::{LoadConfig, LoadError, Mode, Provisioning, ReconnectPolicy, SessionPlan};
pub use provision::{ProvisionError, ensure_chargers, ensure_customers};
pub use quirks::{Quirk, Quirks};
pub use report::{ActionStats, Report};
pub use station::{PlugIn, Station, StationConfig, StationError, StationStats};
