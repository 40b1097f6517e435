//! My page, the customer's read model (CQRS): a projection that folds the ledger's event log
//! into per-customer rows of its own (see [`pages`]), never a join over the write tables. Each
//! event carries a snapshot of what changed, so folding is overwriting: applying an event twice
//! changes nothing, and a rebuild from the log equals the incrementally built view. A
//! CustomerDeleted removes the customer's page and its entries.
//!
//! The [`projector`] follows the log from the cursor stored with the view (both written in one
//! transaction, so a restart resumes with no duplicate and no gap), measures the lag from each
//! event's commit to its visibility, and announces each change of a customer's page on a
//! broadcast channel for the live stream (`GET /api/v1/me/events`).

pub mod pages;
pub mod projector;

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::event::{Event, kind};
use crate::domain::reservation::{ChargerAck, Reservation, ReservationStatus};

/// The projection's shape. Bump it when the rows change: a view of another version is dropped
/// and rebuilt from the log at start.
pub const VERSION: i64 = 1;

/// The customer at the top of the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PageCustomer {
    pub id: i64,
    pub name: String,
}

/// One reservation on my page, with its charging when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageEntry {
    pub id: i32,
    pub charger_id: String,
    pub connector_id: u32,
    pub customer_id: i64,
    pub id_tag: String,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    pub status: ReservationStatus,
    pub charger_ack: ChargerAck,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Null until the charger starts a transaction on this reservation.
    pub charging: Option<Charging>,
}

/// The transaction charging on a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Charging {
    pub transaction_id: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    pub meter_start_wh: i64,
    pub meter_stop_wh: Option<i64>,
    /// Live from MeterValues while charging; meterStop − meterStart once ended.
    pub energy_wh: Option<i64>,
    pub last_meter_wh: Option<i64>,
}

/// The whole page (`GET /api/v1/me`), newest slot first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MyPage {
    pub customer: PageCustomer,
    pub reservations: Vec<PageEntry>,
    /// Pass as `after` for the next (older) page; null on the last one.
    pub next_page: Option<String>,
}

/// What one event changes in the view.
#[derive(Debug, Clone, PartialEq)]
pub enum PageChange {
    Customer(PageCustomer),
    /// The customer was deleted: its page and every entry on it go.
    CustomerGone(i64),
    /// Insert or overwrite a reservation's own fields.
    Reservation(Reservation),
    /// Overwrite the charging of a reservation (which then also has its snapshot, if given).
    Charging {
        reservation_id: i32,
        charging: Charging,
        reservation: Option<Reservation>,
    },
}

/// The view's change for `event`, if it touches my page. Walk-ins (transactions without a
/// reservation) and refused starts are not bookings and do not appear.
pub fn change_of(event: &Event) -> Option<PageChange> {
    match event.kind {
        kind::CUSTOMER_CREATED | kind::CUSTOMER_UPDATED => {
            Some(PageChange::Customer(PageCustomer {
                id: event.data.get("id")?.as_i64()?,
                name: event.data.get("name")?.as_str()?.to_owned(),
            }))
        }
        kind::CUSTOMER_DELETED => event
            .customer_id
            .or_else(|| event.data.get("id")?.as_i64())
            .map(PageChange::CustomerGone),
        kind::RESERVATION_BOOKED
        | kind::RESERVATION_CANCELLED
        | kind::RESERVATION_EXPIRED
        | kind::RESERVATION_ACK_CHANGED => event.reservation().map(PageChange::Reservation),
        kind::TRANSACTION_STARTED | kind::METER_VALUES_RECORDED | kind::TRANSACTION_STOPPED => {
            let reservation_id = event.reservation_id?;
            let t: TransactionData =
                serde_json::from_value(event.data.get("transaction")?.clone()).ok()?;
            Some(PageChange::Charging {
                reservation_id,
                charging: t.into(),
                reservation: event
                    .data
                    .get("reservation")
                    .filter(|r| !r.is_null())
                    .and_then(|_| event.reservation()),
            })
        }
        _ => None,
    }
}

/// The members of a transaction event's `transaction` that my page shows.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionData {
    id: i32,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    stopped_at: Option<OffsetDateTime>,
    meter_start_wh: i64,
    meter_stop_wh: Option<i64>,
    energy_wh: Option<i64>,
    last_meter_wh: Option<i64>,
}

impl From<TransactionData> for Charging {
    fn from(t: TransactionData) -> Self {
        Charging {
            transaction_id: t.id,
            started_at: t.started_at,
            ended_at: t.stopped_at,
            meter_start_wh: t.meter_start_wh,
            meter_stop_wh: t.meter_stop_wh,
            energy_wh: t.energy_wh,
            last_meter_wh: t.last_meter_wh,
        }
    }
}

/// A change of one customer's page, as the live stream announces it.
#[derive(Debug, Clone)]
pub struct PageNews {
    pub seq: i64,
    pub customer_id: i64,
    pub kind: crate::domain::event::EventKind,
    pub reservation_id: Option<i32>,
}

/// The paging token of an entry: its place in "newest slot first".
pub fn page_token(e: &PageEntry) -> String {
    format!("{}_{}", crate::domain::instant::to_millis(e.start), e.id)
}

/// `(start_ms, id)` from a paging token.
pub fn parse_page_token(token: &str) -> Option<(i64, i32)> {
    let (start, id) = token.split_once('_')?;
    Some((start.parse().ok()?, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use time::macros::datetime;

    fn event(
        kind: crate::domain::event::EventKind,
        data: Value,
        reservation_id: Option<i32>,
    ) -> Event {
        Event {
            seq: 1,
            at: datetime!(2026-01-01 10:00 UTC),
            kind,
            charger_id: Some(crate::domain::ChargeBoxId::parse("CB-1").unwrap()),
            customer_id: Some(7),
            reservation_id,
            data,
        }
    }

    fn reservation_data(status: &str) -> Value {
        json!({"id": 3, "chargerId": "CB-1", "connectorId": 1, "customerId": 7, "idTag": "T",
            "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T11:00:00Z", "status": status,
            "chargerAck": "PENDING", "createdAt": "2026-01-01T09:00:00Z",
            "updatedAt": "2026-01-01T09:30:00Z"})
    }

    #[test]
    fn a_deleted_customer_takes_its_page_away() {
        let e = event(kind::CUSTOMER_DELETED, json!({"id": 7}), None);
        assert_eq!(change_of(&e), Some(PageChange::CustomerGone(7)));
    }

    #[test]
    fn reservation_events_carry_the_whole_reservation() {
        let Some(PageChange::Reservation(r)) = change_of(&event(
            kind::RESERVATION_CANCELLED,
            reservation_data("CANCELLED"),
            Some(3),
        )) else {
            panic!("not a reservation change");
        };
        assert_eq!(r.id, 3);
        assert_eq!(r.status, ReservationStatus::Cancelled);
        assert_eq!(r.updated_at, datetime!(2026-01-01 09:30 UTC));
    }

    #[test]
    fn transaction_events_set_charging_and_walk_ins_are_ignored() {
        let tx = json!({"id": 11, "startedAt": "2026-01-01T10:01:00Z", "stoppedAt": null,
            "meterStartWh": 100, "meterStopWh": null, "energyWh": 50, "lastMeterWh": 150,
            "chargerId": "CB-1"});
        let change = change_of(&event(
            kind::METER_VALUES_RECORDED,
            json!({"transaction": tx, "reservation": null}),
            Some(3),
        ));
        let Some(PageChange::Charging {
            reservation_id,
            charging,
            reservation,
        }) = change
        else {
            panic!("not a charging change");
        };
        assert_eq!(
            (reservation_id, charging.energy_wh, reservation),
            (3, Some(50), None)
        );
        let walk_in = event(
            kind::TRANSACTION_STARTED,
            json!({"transaction": tx, "reservation": null}),
            None,
        );
        assert_eq!(change_of(&walk_in), None);
    }

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(
            parse_page_token("1767261600000_42"),
            Some((1767261600000, 42))
        );
        assert_eq!(parse_page_token("junk"), None);
    }
}
