//! One file per OCPP 1.6 action: the request struct (named after the action), its
//! `…Response`, and the `Action` impl tying them to the wire name.
//!
//! Fields, required-ness, `maxLength`s and types follow the official JSON schemas exactly
//! (`schemas/ocpp16/`, vendored); the tests check every message against them. The structs use
//! `#[serde(remote = "Self")]` + `json_object!` so they only deserialize from JSON objects
//! (see `wire.rs`).

mod authorize;
mod boot_notification;
mod cancel_reservation;
mod change_availability;
mod change_configuration;
mod clear_cache;
mod data_transfer;
mod diagnostics_status_notification;
mod firmware_status_notification;
mod get_configuration;
mod heartbeat;
mod meter_values;
mod remote_start_transaction;
mod remote_stop_transaction;
mod reserve_now;
mod reset;
mod start_transaction;
mod status_notification;
mod stop_transaction;
mod trigger_message;
mod unlock_connector;

pub use authorize::*;
pub use boot_notification::*;
pub use cancel_reservation::*;
pub use change_availability::*;
pub use change_configuration::*;
pub use clear_cache::*;
pub use data_transfer::*;
pub use diagnostics_status_notification::*;
pub use firmware_status_notification::*;
pub use get_configuration::*;
pub use heartbeat::*;
pub use meter_values::*;
pub use remote_start_transaction::*;
pub use remote_stop_transaction::*;
pub use reserve_now::*;
pub use reset::*;
pub use start_transaction::*;
pub use status_notification::*;
pub use stop_transaction::*;
pub use trigger_message::*;
pub use unlock_connector::*;
