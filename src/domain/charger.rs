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

/// How a charger must prove who it is (api.md "Charger security profiles", after the OCPP 1.6
/// security whitepaper): 0 nothing; 1 HTTP Basic; 2 HTTP Basic over TLS only; 3 a TLS client
/// certificate that chains to `tls_client_ca` and names the chargeBoxId as its subject CN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct SecurityProfile(u8);

impl SecurityProfile {
    pub const NONE: SecurityProfile = SecurityProfile(0);
    pub const BASIC: SecurityProfile = SecurityProfile(1);
    pub const TLS_BASIC: SecurityProfile = SecurityProfile(2);
    pub const TLS_CLIENT_CERT: SecurityProfile = SecurityProfile(3);

    /// 0 to 3, else `None`.
    pub fn new(level: i64) -> Option<SecurityProfile> {
        u8::try_from(level)
            .ok()
            .filter(|l| *l <= 3)
            .map(SecurityProfile)
    }

    /// What a charger registered without a profile gets: 1 with a password, else 0.
    pub fn implied(has_password: bool) -> SecurityProfile {
        if has_password {
            SecurityProfile::BASIC
        } else {
            SecurityProfile::NONE
        }
    }

    pub fn level(self) -> u8 {
        self.0
    }

    /// Whether the profile needs TLS to the central system (2 and 3).
    pub fn needs_tls(self) -> bool {
        self.0 >= 2
    }

    /// Whether the profile is proved by a password (1 and 2).
    pub fn needs_password(self) -> bool {
        matches!(self.0, 1 | 2)
    }
}

impl std::fmt::Display for SecurityProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the upgrade gate needs to judge a connecting charger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargerCredentials {
    pub password_hash: Option<String>,
    pub security_profile: SecurityProfile,
}

#[derive(Debug, Clone)]
pub struct NewCharger {
    pub id: ChargeBoxId,
    pub name: Option<String>,
    pub connectors: u32,
    /// Already hashed by `central::machine_key`.
    pub password_hash: Option<String>,
    pub security_profile: SecurityProfile,
}

/// A partial update; `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default)]
pub struct ChargerPatch {
    pub name: Option<Option<String>>,
    pub connectors: Option<u32>,
    pub password_hash: Option<Option<String>>,
    pub security_profile: Option<SecurityProfile>,
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
    pub security_profile: SecurityProfile,
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
