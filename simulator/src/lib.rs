//! echarging-sim: virtual OCPP 1.6J chargers, as the charger client of end-to-end tests and as
//! a load generator for any OCPP 1.6J central system. It speaks raw OCPP-J frames with
//! serde_json and never uses the server's types, so it judges the server from outside.
//!
//! Map: `frame` (wire shapes, pure) → `connect` (TCP + WebSocket upgrade) → `charger` (one
//! charger's conversation) ← `messages` (realistic payloads and answers). `load` runs thousands
//! of chargers, timing them with `latency` and summing up in `report`; `provision`,
//! `source_addrs` and `server_rss` serve the `echarging-sim` binary. `drivers` books slots over
//! the REST API (closed-loop customers) and checks that no accepted bookings overlap.

pub mod charger;
pub mod connect;
pub mod drivers;
pub mod frame;
pub mod latency;
pub mod load;
pub mod messages;
pub mod provision;
pub mod report;
pub mod server_rss;
pub mod source_addrs;

pub use charger::{CallOutcome, Charger, ClientError, Incoming};
pub use connect::{ChargerConfig, ConnectError, OCPP16};
pub use frame::Frame;
pub use load::{LoadConfig, LoadError, Mode, Provisioning};
pub use provision::{ProvisionError, ensure_chargers};
pub use report::{ActionStats, Report};
