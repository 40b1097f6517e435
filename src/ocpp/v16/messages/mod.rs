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
mod certificate_signed;
mod change_availability;
mod change_configuration;
mod clear_cache;
mod clear_charging_profile;
mod data_transfer;
mod delete_certificate;
mod diagnostics_status_notification;
mod extended_trigger_message;
mod firmware_status_notification;
mod get_composite_schedule;
mod get_configuration;
mod get_diagnostics;
mod get_installed_certificate_ids;
mod get_local_list_version;
mod get_log;
mod heartbeat;
mod install_certificate;
mod log_status_notification;
mod meter_values;
mod remote_start_transaction;
mod remote_stop_transaction;
mod reserve_now;
mod reset;
mod security_event_notification;
mod send_local_list;
mod set_charging_profile;
mod sign_certificate;
mod signed_firmware_status_notification;
mod signed_update_firmware;
mod start_transaction;
mod status_notification;
mod stop_transaction;
mod trigger_message;
mod unlock_connector;
mod update_firmware;

pub use authorize::*;
pub use boot_notification::*;
pub use cancel_reservation::*;
pub use certificate_signed::*;
pub use change_availability::*;
pub use change_configuration::*;
pub use clear_cache::*;
pub use clear_charging_profile::*;
pub use data_transfer::*;
pub use delete_certificate::*;
pub use diagnostics_status_notification::*;
pub use extended_trigger_message::*;
pub use firmware_status_notification::*;
pub use get_composite_schedule::*;
pub use get_configuration::*;
pub use get_diagnostics::*;
pub use get_installed_certificate_ids::*;
pub use get_local_list_version::*;
pub use get_log::*;
pub use heartbeat::*;
pub use install_certificate::*;
pub use log_status_notification::*;
pub use meter_values::*;
pub use remote_start_transaction::*;
pub use remote_stop_transaction::*;
pub use reserve_now::*;
pub use reset::*;
pub use security_event_notification::*;
pub use send_local_list::*;
pub use set_charging_profile::*;
pub use sign_certificate::*;
pub use signed_firmware_status_notification::*;
pub use signed_update_firmware::*;
pub use start_transaction::*;
pub use status_notification::*;
pub use stop_transaction::*;
pub use trigger_message::*;
pub use unlock_connector::*;
pub use update_firmware::*;
