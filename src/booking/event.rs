//! The ledger's event log: every change is appended in the same transaction as the change,
//! under a gap-free increasing sequence number, so consumers (the my-page projection, the charger
//! dispatcher) can follow it and resume from the last number they saw after a restart.

use serde_json::Value;
use time::OffsetDateTime;

/// Event kinds, as stored.
pub mod kind {
    pub const CHARGER_REGISTERED: &str = "ChargerRegistered";
    pub const CHARGER_UPDATED: &str = "ChargerUpdated";
    pub const CHARGER_DELETED: &str = "ChargerDeleted";
    pub const CUSTOMER_CREATED: &str = "CustomerCreated";
    pub const RESERVATION_BOOKED: &str = "ReservationBooked";
    pub const RESERVATION_CANCELLED: &str = "ReservationCancelled";
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// 1, 2, 3, … with no gaps, in commit order.
    pub seq: i64,
    pub at: OffsetDateTime,
    pub kind: String,
    /// Correlation: what the event belongs to.
    pub charger_id: Option<String>,
    pub customer_id: Option<i64>,
    pub reservation_id: Option<i32>,
    /// The changed entity as the API shows it (no secrets).
    pub data: Value,
}

/// The `data` of each event kind, built in one place so every backend writes the same shape.
pub mod data {
    use serde_json::{Value, json};

    use crate::booking::charger::{ChargerRecord, rfc3339};
    use crate::booking::customer::Customer;
    use crate::booking::reservation::Reservation;

    pub fn charger(c: &ChargerRecord) -> Value {
        json!({
            "id": c.id.as_str(),
            "name": c.name,
            "connectors": c.connectors,
            "passwordProtected": c.password_hash.is_some(),
        })
    }

    pub fn customer(c: &Customer) -> Value {
        json!({"id": c.id, "name": c.name, "idTags": c.id_tags})
    }

    pub fn reservation(r: &Reservation) -> Value {
        json!({
            "id": r.id,
            "chargerId": r.charger_id.as_str(),
            "connectorId": r.connector_id,
            "customerId": r.customer_id,
            "idTag": r.id_tag,
            "start": rfc3339(r.slot.start()),
            "end": rfc3339(r.slot.end()),
            "status": r.status.as_str(),
            "chargerAck": r.charger_ack.as_str(),
        })
    }
}
