//! OCPP 1.6J, the protocol only: WebSocket text in, typed messages out, and back.
//!
//! - `frame`: the OCPP-J RPC envelope (`[2,…]`, `[3,…]`, `[4,…]`), parsed in one borrowing pass.
//! - `error`: the ten CALLERROR codes and `DecodeError`.
//! - `action`: the `Action` trait, `decode_payload`, `ChargePointRequest` (what a charger may send).
//! - `messages`: one file per action, request + response, exactly per the official schemas.
//! - `types`: shared field types (bounded strings, timestamps, enums, composite values).
//! - `lenient`: `Strictness`, the deviation rules lenient mode accepts, and the decode loop.
//! - `uri`: the `"format": "uri"` strings (firmware and diagnostics locations).
//! - `wire`, `decode` (private): serde plumbing and serde-error → OCPP-error mapping.
//!
//! No I/O, no async, no state: sessions, timeouts and queues live elsewhere.

pub mod action;
mod decode;
pub mod error;
pub mod frame;
pub mod lenient;
pub mod messages;
pub mod types;
pub mod uri;
mod wire;

#[cfg(test)]
mod tests;

pub use action::*;
pub use error::*;
pub use frame::*;
pub use lenient::{Decoded, Deviation, Rule, Strictness, decode_payload_with};
pub use messages::*;
pub use types::*;
pub use uri::{Uri, UriError};
pub use wire::WireEnum;
