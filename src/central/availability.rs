//! What a ChangeAvailability the server sent does to the ledger: an `Accepted` or `Scheduled`
//! answer is recorded (see `Store::record_availability_change`: the connector leaves or
//! re-enters service, its reservations are marked or offered again); `Rejected` changes
//! nothing. It never sends anything itself: the dispatcher offers reservations that go back to
//! PENDING when it reads their `ReservationAckChanged`.

use time::OffsetDateTime;
use tracing::{error, info};

use super::Central;
use crate::domain::ChargeBoxId;
use crate::domain::availability::{Availability, AvailabilityChange};
use crate::ocpp::v16::messages::{ChangeAvailability, ChangeAvailabilityResponse};
use crate::ocpp::v16::types::{AvailabilityStatus, AvailabilityType};

/// The change `answer` makes of `request`, `None` when the charger refused it. `Scheduled`
/// (the charger applies it once its running transaction ends) counts as made: the connector is
/// about to leave service, so nothing new is booked on it.
pub fn change_of(
    request: &ChangeAvailability,
    answer: &ChangeAvailabilityResponse,
    at: OffsetDateTime,
) -> Option<AvailabilityChange> {
    let scheduled = match answer.status {
        AvailabilityStatus::Accepted => false,
        AvailabilityStatus::Scheduled => true,
        AvailabilityStatus::Rejected => return None,
    };
    let availability = match request.kind {
        AvailabilityType::Inoperative => Availability::Inoperative,
        AvailabilityType::Operative => Availability::Operative,
    };
    Some(AvailabilityChange {
        connector_id: u32::try_from(request.connector_id).ok()?,
        availability,
        scheduled,
        at,
    })
}

/// Records the charger's answer to a ChangeAvailability the server sent. The charger's answer
/// stands even when the ledger cannot record it, so a failure is logged, not returned.
pub async fn record_change(
    central: &Central,
    id: &ChargeBoxId,
    request: &ChangeAvailability,
    answer: &ChangeAvailabilityResponse,
) {
    let Some(change) = change_of(request, answer, OffsetDateTime::now_utc()) else {
        return;
    };
    match central.store.record_availability_change(id, &change).await {
        Ok(changed) => info!(
            charger = %id,
            connector = change.connector_id,
            availability = change.availability.as_str(),
            status = change.status(),
            reservations = changed.len(),
            "connector availability recorded"
        ),
        Err(e) => error!(
            charger = %id,
            connector = change.connector_id,
            error = %e,
            "availability change not recorded"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn request(connector_id: i32, kind: AvailabilityType) -> ChangeAvailability {
        ChangeAvailability { connector_id, kind }
    }

    fn answer(status: AvailabilityStatus) -> ChangeAvailabilityResponse {
        ChangeAvailabilityResponse { status }
    }

    #[test]
    fn accepted_and_scheduled_are_changes_rejected_is_not() {
        let at = datetime!(2026-01-01 10:00 UTC);
        let out = request(2, AvailabilityType::Inoperative);
        let made = change_of(&out, &answer(AvailabilityStatus::Accepted), at).unwrap();
        assert_eq!(
            (
                made.connector_id,
                made.availability,
                made.scheduled,
                made.status()
            ),
            (2, Availability::Inoperative, false, "Accepted")
        );
        let later = change_of(&out, &answer(AvailabilityStatus::Scheduled), at).unwrap();
        assert_eq!((later.scheduled, later.status()), (true, "Scheduled"));
        assert_eq!(
            change_of(&out, &answer(AvailabilityStatus::Rejected), at),
            None
        );
        let back = request(0, AvailabilityType::Operative);
        let made = change_of(&back, &answer(AvailabilityStatus::Accepted), at).unwrap();
        assert_eq!(
            (made.connector_id, made.availability),
            (0, Availability::Operative)
        );
        // A connector id no charger has is not recorded.
        let negative = request(-1, AvailabilityType::Inoperative);
        assert_eq!(
            change_of(&negative, &answer(AvailabilityStatus::Accepted), at),
            None
        );
    }
}
