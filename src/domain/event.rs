//! The ledger's event log: every change is appended in the same transaction as the change,
//! under a gap-free increasing sequence number, so consumers (the my-page projection, the charger
//! dispatcher) can follow it and resume from the last number they saw after a restart.

use serde_json::Value;
use time::OffsetDateTime;

crate::domain::reservation::wire_enum! {
    /// What changed, spelled as stored and as the SSE stream names it. ReservationAckChanged:
    /// the charger answered ReserveNow, or a connector fault changed what the driver sees.
    EventKind {
        ChargerRegistered = "ChargerRegistered",
        ChargerUpdated = "ChargerUpdated",
        ChargerDeleted = "ChargerDeleted",
        ChargerPending = "ChargerPending",
        ChargerAccepted = "ChargerAccepted",
        ChargerRejected = "ChargerRejected",
        CustomerCreated = "CustomerCreated",
        CustomerUpdated = "CustomerUpdated",
        CustomerDeleted = "CustomerDeleted",
        ReservationBooked = "ReservationBooked",
        ReservationCancelled = "ReservationCancelled",
        ReservationExpired = "ReservationExpired",
        ReservationAckChanged = "ReservationAckChanged",
        TransactionStarted = "TransactionStarted",
        TransactionRefused = "TransactionRefused",
        MeterValuesRecorded = "MeterValuesRecorded",
        TransactionStopped = "TransactionStopped",
        ConfigurationChanged = "ConfigurationChanged",
        ConnectorAvailabilityChanged = "ConnectorAvailabilityChanged",
    }
}

/// The kinds by their old constant names, so a `match` reads like the log.
pub mod kind {
    use super::EventKind;

    pub const CHARGER_REGISTERED: EventKind = EventKind::ChargerRegistered;
    pub const CHARGER_UPDATED: EventKind = EventKind::ChargerUpdated;
    pub const CHARGER_DELETED: EventKind = EventKind::ChargerDeleted;
    /// An unknown charger booted and waits for the operator (`unknown_chargers = pending`).
    pub const CHARGER_PENDING: EventKind = EventKind::ChargerPending;
    /// The operator accepted a pending or rejected charger.
    pub const CHARGER_ACCEPTED: EventKind = EventKind::ChargerAccepted;
    /// The operator rejected a charger: its BootNotification is answered Rejected.
    pub const CHARGER_REJECTED: EventKind = EventKind::ChargerRejected;
    pub const CUSTOMER_CREATED: EventKind = EventKind::CustomerCreated;
    pub const CUSTOMER_UPDATED: EventKind = EventKind::CustomerUpdated;
    /// The operator deleted a customer: its tags and token are gone, its data only its id.
    pub const CUSTOMER_DELETED: EventKind = EventKind::CustomerDeleted;
    pub const RESERVATION_BOOKED: EventKind = EventKind::ReservationBooked;
    pub const RESERVATION_CANCELLED: EventKind = EventKind::ReservationCancelled;
    pub const RESERVATION_EXPIRED: EventKind = EventKind::ReservationExpired;
    pub const RESERVATION_ACK_CHANGED: EventKind = EventKind::ReservationAckChanged;
    pub const TRANSACTION_STARTED: EventKind = EventKind::TransactionStarted;
    pub const TRANSACTION_REFUSED: EventKind = EventKind::TransactionRefused;
    pub const METER_VALUES_RECORDED: EventKind = EventKind::MeterValuesRecorded;
    pub const TRANSACTION_STOPPED: EventKind = EventKind::TransactionStopped;
    pub const CONFIGURATION_CHANGED: EventKind = EventKind::ConfigurationChanged;
    /// The server changed a connector's availability (ChangeAvailability Accepted/Scheduled).
    pub const CONNECTOR_AVAILABILITY_CHANGED: EventKind = EventKind::ConnectorAvailabilityChanged;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// 1, 2, 3, … with no gaps, in commit order.
    pub seq: i64,
    pub at: OffsetDateTime,
    pub kind: EventKind,
    /// Correlation: what the event belongs to.
    pub charger_id: Option<crate::domain::ChargeBoxId>,
    pub customer_id: Option<i64>,
    pub reservation_id: Option<i32>,
    /// The changed entity as the API shows it (no secrets).
    pub data: Value,
}

impl Event {
    /// The reservation this event carries as it stood after the change: the whole `data` of
    /// reservation events, `data.reservation` of transaction events.
    pub fn reservation(&self) -> Option<crate::domain::reservation::Reservation> {
        let v = match self.data.get("reservation") {
            Some(r) => r,
            None => &self.data,
        };
        data::parse_reservation(v, self.at)
    }
}

/// The `data` of each event kind, built in one place so every backend writes the same shape.
pub mod data {
    use serde_json::{Value, json};

    use crate::domain::charger::ChargerRecord;
    use crate::domain::customer::Customer;
    use crate::domain::instant::rfc3339;
    use crate::domain::reservation::Reservation;
    use crate::domain::transaction::Transaction;

    pub fn charger(c: &ChargerRecord) -> Value {
        json!({
            "id": c.id.as_str(),
            "state": c.state.as_str(),
            "name": c.name,
            "connectors": c.connectors,
            "passwordProtected": c.password_hash.is_some(),
        })
    }

    /// A charger that arrived unknown: what [`charger`] shows plus what its Boot said, so the
    /// operator following the log sees who is knocking.
    pub fn unknown_charger(c: &ChargerRecord) -> Value {
        let mut v = charger(c);
        if let (Some(boot), Some(map)) = (&c.boot, v.as_object_mut()) {
            map.insert("vendor".into(), json!(boot.vendor));
            map.insert("model".into(), json!(boot.model));
            map.insert("serialNumber".into(), json!(boot.serial_number));
            map.insert(
                "chargeBoxSerialNumber".into(),
                json!(boot.charge_box_serial_number),
            );
            map.insert("firmwareVersion".into(), json!(boot.firmware_version));
        }
        v
    }

    /// A configuration key the server changed on a charger (ChangeConfiguration accepted).
    pub fn configuration_change(
        charger: &crate::domain::ChargeBoxId,
        c: &crate::domain::configuration::ConfigurationChange,
    ) -> Value {
        json!({
            "chargerId": charger.as_str(),
            "key": c.key,
            "value": c.value,
            "status": c.status,
        })
    }

    /// A ChangeAvailability the charger accepted or scheduled.
    pub fn availability_change(
        charger: &crate::domain::ChargeBoxId,
        c: &crate::domain::availability::AvailabilityChange,
    ) -> Value {
        json!({
            "chargerId": charger.as_str(),
            "connectorId": c.connector_id,
            "type": c.availability.as_str(),
            "status": c.status(),
            "at": rfc3339(c.at),
        })
    }

    pub fn customer(c: &Customer) -> Value {
        let tags: Vec<Value> = c
            .tags
            .iter()
            .map(|t| {
                json!({
                    "idTag": t.id_tag,
                    "status": t.status.as_str(),
                    "expiryDate": t.expires_at.map(rfc3339),
                    "parentIdTag": t.parent_id_tag,
                })
            })
            .collect();
        json!({"id": c.id, "name": c.name, "idTags": c.id_tags, "tags": tags})
    }

    /// A deleted customer: only its id, nothing that names the person.
    pub fn customer_deleted(id: i64) -> Value {
        json!({"id": id})
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
            "createdAt": rfc3339(r.created_at),
            "updatedAt": rfc3339(r.updated_at),
        })
    }

    /// The inverse of [`reservation`]; `at` stands in for timestamps an older event lacks.
    pub fn parse_reservation(v: &Value, at: time::OffsetDateTime) -> Option<Reservation> {
        use crate::domain::reservation::{ChargerAck, ReservationStatus, TimeSlot};
        use time::format_description::well_known::Rfc3339;
        let text = |k: &str| v.get(k).and_then(Value::as_str);
        let time = |k: &str| time::OffsetDateTime::parse(text(k)?, &Rfc3339).ok();
        Some(Reservation {
            id: i32::try_from(v.get("id")?.as_i64()?).ok()?,
            charger_id: crate::domain::ChargeBoxId::parse(text("chargerId")?).ok()?,
            connector_id: u32::try_from(v.get("connectorId")?.as_u64()?).ok()?,
            customer_id: v.get("customerId")?.as_i64()?,
            id_tag: text("idTag")?.to_owned(),
            slot: TimeSlot::parse(time("start")?, time("end")?).ok()?,
            status: ReservationStatus::parse(text("status")?)?,
            charger_ack: ChargerAck::parse(text("chargerAck")?)?,
            created_at: time("createdAt").unwrap_or(at),
            updated_at: time("updatedAt").unwrap_or(at),
        })
    }

    /// Transaction events carry the transaction and, when linked, its reservation as they
    /// stand after the change.
    pub fn transaction(t: &Transaction, r: Option<&Reservation>) -> Value {
        json!({
            "transaction": serde_json::to_value(t).unwrap_or(Value::Null),
            "reservation": r.map(reservation),
        })
    }
}
