//! Who may start charging from afar, on which connector and with which idTag, pure. The operator
//! may start any idTag on any connector; a customer only while it holds the current slot (a
//! BOOKED reservation of its own whose slot has begun, the early-start grace included) and only
//! with its own idTag. What is not said is taken from that reservation. No I/O.

use time::{Duration, OffsetDateTime};

use super::customer::{Customer, ID_TAG_MAX};
use super::placement::own_id_tag;
use super::reservation::{Reservation, ReservationStatus};

/// What the caller asked for; `None` takes the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoteStartAsk<'a> {
    pub connector_id: Option<u32>,
    pub id_tag: Option<&'a str>,
}

/// What goes to the charger in RemoteStartTransaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStart {
    /// `None`: the charger chooses.
    pub connector_id: Option<u32>,
    pub id_tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteStartError {
    #[error("connectors count from 1")]
    ConnectorZero,
    #[error("the charger has no connector {0}")]
    NoSuchConnector(u32),
    /// A customer without a current reservation of its own on this charger (or connector).
    #[error("no current reservation of yours on this charger")]
    NoCurrentReservation,
    #[error("not one of your idTags")]
    ForeignIdTag,
    /// The operator named no idTag and there is no current reservation to take it from.
    #[error("required: no current reservation on that connector to take it from")]
    IdTagRequired,
    #[error("must be at most {ID_TAG_MAX} characters (OCPP IdToken)")]
    IdTagTooLong,
}

/// Whether `r` holds its connector's current slot at `now` (from `early_grace` before it starts).
pub fn is_current(r: &Reservation, now: OffsetDateTime, early_grace: Duration) -> bool {
    r.status == ReservationStatus::Booked
        && r.slot.start() - early_grace <= now
        && now < r.slot.end()
}

/// Decides a remote start on a charger with `connectors` connectors, given the reservations on it
/// that may be current (`on_charger`; those not current at `now` are ignored). `caller` is the
/// calling customer, `None` for the operator.
pub fn decide_remote_start(
    caller: Option<&Customer>,
    ask: RemoteStartAsk<'_>,
    connectors: u32,
    on_charger: &[Reservation],
    now: OffsetDateTime,
    early_grace: Duration,
) -> Result<RemoteStart, RemoteStartError> {
    match ask.connector_id {
        Some(0) => return Err(RemoteStartError::ConnectorZero),
        Some(c) if c > connectors => return Err(RemoteStartError::NoSuchConnector(c)),
        _ => {}
    }
    let current = on_charger.iter().find(|r| {
        is_current(r, now, early_grace)
            && caller.is_none_or(|c| r.customer_id == c.id)
            && ask.connector_id.is_none_or(|c| c == r.connector_id)
    });
    let start = match (caller, current) {
        (Some(customer), Some(r)) => RemoteStart {
            connector_id: Some(r.connector_id),
            id_tag: match ask.id_tag {
                None => r.id_tag.clone(),
                Some(t) => own_id_tag(customer, t)
                    .ok_or(RemoteStartError::ForeignIdTag)?
                    .clone(),
            },
        },
        (Some(_), None) => return Err(RemoteStartError::NoCurrentReservation),
        (None, r) => RemoteStart {
            connector_id: ask.connector_id.or(r.map(|r| r.connector_id)),
            id_tag: match (ask.id_tag, r) {
                (Some(t), _) => t.to_string(),
                (None, Some(r)) => r.id_tag.clone(),
                (None, None) => return Err(RemoteStartError::IdTagRequired),
            },
        },
    };
    if start.id_tag.chars().count() > ID_TAG_MAX {
        return Err(RemoteStartError::IdTagTooLong);
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ChargeBoxId;
    use crate::domain::reservation::{ChargerAck, TimeSlot};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-01 10:00 UTC);
    const GRACE: Duration = Duration::minutes(10);

    fn customer(id: i64, tags: &[&str]) -> Customer {
        Customer {
            id,
            name: format!("c{id}"),
            id_tags: tags.iter().map(|t| t.to_string()).collect(),
            tags: Vec::new(),
            created_at: NOW,
        }
    }

    fn reservation(customer_id: i64, connector_id: u32, from_min: i64, tag: &str) -> Reservation {
        Reservation {
            id: connector_id as i32,
            charger_id: ChargeBoxId::parse("CP-1").unwrap(),
            connector_id,
            customer_id,
            id_tag: tag.into(),
            slot: TimeSlot::parse(
                NOW + Duration::minutes(from_min),
                NOW + Duration::minutes(from_min + 60),
            )
            .unwrap(),
            status: ReservationStatus::Booked,
            charger_ack: ChargerAck::Pending,
            created_at: NOW,
            updated_at: NOW,
        }
    }

    fn ask(connector_id: Option<u32>, id_tag: Option<&str>) -> RemoteStartAsk<'_> {
        RemoteStartAsk {
            connector_id,
            id_tag,
        }
    }

    fn decide(
        caller: Option<&Customer>,
        a: RemoteStartAsk<'_>,
        on: &[Reservation],
    ) -> Result<RemoteStart, RemoteStartError> {
        decide_remote_start(caller, a, 2, on, NOW, GRACE)
    }

    #[test]
    fn the_customer_holding_the_current_slot_may_start_with_its_own_tag() {
        let ada = customer(1, &["ADA-1", "ADA-2"]);
        let on = [reservation(1, 2, -5, "ADA-1")];
        assert_eq!(
            decide(Some(&ada), ask(None, None), &on),
            Ok(RemoteStart {
                connector_id: Some(2),
                id_tag: "ADA-1".into()
            })
        );
        assert_eq!(
            decide(Some(&ada), ask(None, Some("ada-2")), &on).map(|s| s.id_tag),
            Ok("ADA-2".into())
        );
        assert_eq!(
            decide(Some(&ada), ask(None, Some("BOB-1")), &on),
            Err(RemoteStartError::ForeignIdTag)
        );
        // Within the early-start grace, not before it.
        let soon = [reservation(1, 1, 9, "ADA-1")];
        assert!(decide(Some(&ada), ask(None, None), &soon).is_ok());
        let later = [reservation(1, 1, 11, "ADA-1")];
        assert_eq!(
            decide(Some(&ada), ask(None, None), &later),
            Err(RemoteStartError::NoCurrentReservation)
        );
    }

    #[test]
    fn a_customer_without_the_current_slot_may_not() {
        let bob = customer(2, &["BOB-1"]);
        let on = [reservation(1, 1, -5, "ADA-1")];
        assert_eq!(
            decide(Some(&bob), ask(None, None), &on),
            Err(RemoteStartError::NoCurrentReservation)
        );
        // Its own slot on another connector does not count for this one.
        let own = [reservation(2, 2, -5, "BOB-1")];
        assert_eq!(
            decide(Some(&bob), ask(Some(1), None), &own),
            Err(RemoteStartError::NoCurrentReservation)
        );
        let mut over = reservation(2, 1, -5, "BOB-1");
        over.status = ReservationStatus::Cancelled;
        assert_eq!(
            decide(Some(&bob), ask(None, None), &[over]),
            Err(RemoteStartError::NoCurrentReservation)
        );
    }

    #[test]
    fn the_operator_may_start_any_tag_and_defaults_to_the_current_slot() {
        let on = [reservation(1, 2, -5, "ADA-1")];
        assert_eq!(
            decide(None, ask(None, None), &on),
            Ok(RemoteStart {
                connector_id: Some(2),
                id_tag: "ADA-1".into()
            })
        );
        assert_eq!(
            decide(None, ask(Some(1), Some("ANY")), &on),
            Ok(RemoteStart {
                connector_id: Some(1),
                id_tag: "ANY".into()
            })
        );
        assert_eq!(
            decide(None, ask(None, Some("ANY")), &[]),
            Ok(RemoteStart {
                connector_id: None,
                id_tag: "ANY".into()
            })
        );
        assert_eq!(
            decide(None, ask(Some(1), None), &on),
            Err(RemoteStartError::IdTagRequired)
        );
        assert_eq!(
            decide(None, ask(None, Some("123456789012345678901")), &[]),
            Err(RemoteStartError::IdTagTooLong)
        );
    }

    #[test]
    fn connectors_are_checked_first() {
        assert_eq!(
            decide(None, ask(Some(0), Some("T")), &[]),
            Err(RemoteStartError::ConnectorZero)
        );
        assert_eq!(
            decide(None, ask(Some(3), Some("T")), &[]),
            Err(RemoteStartError::NoSuchConnector(3))
        );
    }
}
