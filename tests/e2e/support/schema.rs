//! Every frame the server sent a test charger, checked against the vendored official OCPP 1.6
//! JSON schemas (the `ocpp-schemas` crate): a test that talks OCPP ends with this check.

use echarging_sim::Charger;

/// Check every frame the server sent this charger: CALLs against their action's request schema,
/// CALLRESULTs against the response schema of the call they answer (answers to frames sent
/// malformed on purpose have no action to check), CALLERRORs for their shape. Returns how many
/// frames were checked.
pub fn assert_server_frames_valid(charger: &Charger) -> usize {
    ocpp_schemas::assert_frames_valid(
        charger.received().iter().map(String::as_str),
        charger.sent().iter().map(String::as_str),
    )
}
