//! Chargers as the ledger knows them: what an operator registered and the last state the charger
//! reported. Plain data shared by the store, the live sessions and the REST layer.

use std::borrow::Cow;

use time::OffsetDateTime;

use crate::domain::ChargeBoxId;

/// The most connectors one charger may declare; real hardware has 1–4.
pub const MAX_CONNECTORS: u32 = 100;

crate::domain::reservation::wire_enum! {
    /// Whether the operator lets a charger into service (api.md `unknown_chargers`). Chargers an
    /// operator registers are `accepted`; an unknown charger that connects is recorded `pending`
    /// (or `accepted` in accept mode) by its first BootNotification, and the operator accepts or
    /// rejects it. Its BootNotification is answered with the OCPP RegistrationStatus of the same
    /// name; only an accepted charger is bookable or sent commands.
    RegistrationState {
        Accepted = "accepted",
        Pending = "pending",
        Rejected = "rejected",
    }
}

#[derive(Debug, Clone)]
pub struct NewCharger {
    pub id: ChargeBoxId,
    pub name: Option<String>,
    pub connectors: u32,
    /// Already hashed by `central::machine_key`.
    pub password_hash: Option<String>,
}

/// A partial update; `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default)]
pub struct ChargerPatch {
    pub name: Option<Option<String>>,
    pub connectors: Option<u32>,
    pub password_hash: Option<Option<String>>,
}

/// What the charger said about itself in its last BootNotification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootInfo {
    pub vendor: String,
    pub model: String,
    pub serial_number: Option<String>,
    pub charge_box_serial_number: Option<String>,
    pub firmware_version: Option<String>,
    pub iccid: Option<String>,
    pub imsi: Option<String>,
    pub meter_type: Option<String>,
    pub meter_serial_number: Option<String>,
}

/// The last StatusNotification of one connector (0 = the charger as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorStatus {
    pub connector_id: u32,
    /// OCPP ChargePointStatus, spelled as on the wire (`Available`, `Charging`, …). Borrowed
    /// from the enum's static spelling when it comes from a charger: no allocation per report.
    pub status: Cow<'static, str>,
    /// OCPP ChargePointErrorCode (`NoError`, …).
    pub error_code: Cow<'static, str>,
    pub info: Option<String>,
    pub vendor_error_code: Option<String>,
    /// The charger's own timestamp, when it sent one.
    pub reported_at: Option<OffsetDateTime>,
    /// When the central system received it.
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct ChargerRecord {
    pub id: ChargeBoxId,
    pub state: RegistrationState,
    pub name: Option<String>,
    pub connectors: u32,
    pub password_hash: Option<String>,
    pub boot: Option<BootInfo>,
    pub last_boot_at: Option<OffsetDateTime>,
    pub last_seen_at: Option<OffsetDateTime>,
    pub connector_status: Vec<ConnectorStatus>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A charger's reported state as the live sessions hand it to the store to persist.
#[derive(Debug, Clone)]
pub struct ChargerState {
    pub id: ChargeBoxId,
    pub last_seen_at: Option<OffsetDateTime>,
    pub boot: Option<(BootInfo, OffsetDateTime)>,
    pub connector_status: Vec<ConnectorStatus>,
}
