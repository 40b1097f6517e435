//! Connector availability as the ledger keeps it: what the server made a connector (or the whole
//! charger, connector 0) through ChangeAvailability and the charger accepted. A connector is out
//! of service while it, or its charger as a whole, is Inoperative: new bookings on it are
//! refused and its booked reservations show UNAVAILABLE. `Scheduled` (the charger applies the
//! change once its running transaction ends) counts as the change made, flagged `scheduled`,
//! so no booking lands on a connector about to leave service. Pure values, no I/O.

use time::OffsetDateTime;

crate::domain::reservation::wire_enum! {
    /// ChangeAvailability's `type`, as the ledger records it.
    Availability {
        Operative = "Operative",
        Inoperative = "Inoperative",
    }
}

/// A ChangeAvailability the charger answered Accepted or Scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityChange {
    /// 0: the charger as a whole (and so every connector).
    pub connector_id: u32,
    pub availability: Availability,
    /// The charger answered `Scheduled`: in effect after its running transaction.
    pub scheduled: bool,
    pub at: OffsetDateTime,
}

impl AvailabilityChange {
    /// The charger's answer as OCPP spells it.
    pub fn status(&self) -> &'static str {
        if self.scheduled {
            "Scheduled"
        } else {
            "Accepted"
        }
    }
}

/// The last change the server made to one connector (0: the charger as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorAvailability {
    pub connector_id: u32,
    pub availability: Availability,
    pub scheduled: bool,
    pub since: OffsetDateTime,
}

/// Whether `connector` is out of service given a charger's recorded `availability`: its own
/// entry or the charger's (connector 0) says Inoperative.
pub fn out_of_service(availability: &[ConnectorAvailability], connector: u32) -> bool {
    availability.iter().any(|a| {
        (a.connector_id == 0 || a.connector_id == connector)
            && a.availability == Availability::Inoperative
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn entry(connector_id: u32, availability: Availability) -> ConnectorAvailability {
        ConnectorAvailability {
            connector_id,
            availability,
            scheduled: false,
            since: datetime!(2026-01-01 0:00 UTC),
        }
    }

    #[test]
    fn a_connector_is_out_when_it_or_its_charger_is_inoperative() {
        assert!(!out_of_service(&[], 1));
        let two = [entry(2, Availability::Inoperative)];
        assert!(out_of_service(&two, 2) && !out_of_service(&two, 1));
        let all = [
            entry(0, Availability::Inoperative),
            entry(2, Availability::Operative),
        ];
        assert!(out_of_service(&all, 1) && out_of_service(&all, 2));
    }
}
