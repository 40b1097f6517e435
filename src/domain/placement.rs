//! The rules of placing a booking, pure: who books for whom (a customer for itself, the operator
//! for the customer it names), which idTag the reservation carries (one of that customer's,
//! compared case-insensitively as OCPP does; its first by default) and which slots are bookable
//! now. Overlaps are not decided here: the ledger's database refuses them. No I/O.

use time::{Duration, OffsetDateTime};

use super::customer::Customer;
use super::instant::{from_millis, to_millis};
use super::reservation::{InvalidSlot, TimeSlot};

/// A driver may book "from now": a start up to this long ago still counts as now.
pub const START_GRACE: Duration = Duration::minutes(5);

/// Whose booking a request is, before the customer is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingFor {
    /// The calling customer, for itself.
    Caller,
    /// The customer the operator named (to be looked up; it may not exist).
    Named(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// A customer named someone else as `customerId`.
    #[error("a customer books for itself only")]
    ForAnother,
    /// The operator books only for a customer it names (`customerId`).
    #[error("required when the operator books")]
    CustomerRequired,
    #[error("no customer {0}")]
    UnknownCustomer(i64),
    /// The customer has no idTag to default to.
    #[error("the customer has no idTag")]
    NoIdTag,
    #[error("not one of the customer's idTags")]
    ForeignIdTag,
    /// The slot cannot be booked (end not after start, in the past, too long).
    #[error(transparent)]
    Slot(#[from] InvalidSlot),
}

/// What a booking is placed with once the rules passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub id_tag: String,
    pub slot: TimeSlot,
}

/// Who the booking is for: `caller` is the calling customer, `None` for the operator; `asked` is
/// the request's `customerId`.
pub fn booking_for(
    caller: Option<&Customer>,
    asked: Option<i64>,
) -> Result<BookingFor, PlacementError> {
    match (caller, asked) {
        (Some(_), None) => Ok(BookingFor::Caller),
        (Some(c), Some(id)) if id == c.id => Ok(BookingFor::Caller),
        (Some(_), Some(_)) => Err(PlacementError::ForAnother),
        (None, None) => Err(PlacementError::CustomerRequired),
        (None, Some(id)) => Ok(BookingFor::Named(id)),
    }
}

/// The idTag and slot of `customer`'s booking of `[start, end)` asked at `now`, slots being at most
/// `max_slot` long.
pub fn place(
    customer: &Customer,
    id_tag: Option<&str>,
    start: OffsetDateTime,
    end: OffsetDateTime,
    now: OffsetDateTime,
    max_slot: Duration,
) -> Result<Placement, PlacementError> {
    let id_tag = match id_tag {
        None => customer.id_tags.first().ok_or(PlacementError::NoIdTag)?,
        Some(asked) => own_id_tag(customer, asked).ok_or(PlacementError::ForeignIdTag)?,
    };
    // As the ledger stores it (UTC, milliseconds), so the answer to the booking is what a read
    // of it shows.
    let (start, end) = (stored(start), stored(end));
    let slot = TimeSlot::bookable(start, end, now, START_GRACE, max_slot)?;
    Ok(Placement {
        id_tag: id_tag.clone(),
        slot,
    })
}

fn stored(t: OffsetDateTime) -> OffsetDateTime {
    from_millis(to_millis(t))
}

/// The customer's own spelling of `asked`, if `asked` is one of its idTags (OCPP compares
/// idTags case-insensitively).
pub fn own_id_tag<'c>(customer: &'c Customer, asked: &str) -> Option<&'c String> {
    customer
        .id_tags
        .iter()
        .find(|own| own.eq_ignore_ascii_case(asked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn ada() -> Customer {
        Customer {
            id: 7,
            name: "Ada".into(),
            id_tags: vec!["TAG-A".into(), "TAG-B".into()],
            tags: Vec::new(),
            created_at: datetime!(2026-01-01 0:00 UTC),
        }
    }

    #[test]
    fn who_books_for_whom() {
        let c = ada();
        assert_eq!(booking_for(Some(&c), None), Ok(BookingFor::Caller));
        assert_eq!(booking_for(Some(&c), Some(7)), Ok(BookingFor::Caller));
        assert_eq!(
            booking_for(Some(&c), Some(8)),
            Err(PlacementError::ForAnother)
        );
        assert_eq!(
            booking_for(None, None),
            Err(PlacementError::CustomerRequired)
        );
        assert_eq!(booking_for(None, Some(8)), Ok(BookingFor::Named(8)));
    }

    #[test]
    fn id_tag_defaults_to_the_first_and_must_be_the_customers() {
        let now = datetime!(2026-01-01 10:00 UTC);
        let (start, end) = (now + Duration::hours(1), now + Duration::hours(2));
        let day = Duration::DAY;
        let p = place(&ada(), None, start, end, now, day).unwrap();
        assert_eq!(p.id_tag, "TAG-A");
        assert_eq!((p.slot.start(), p.slot.end()), (start, end));
        // The customer's own spelling, whatever the case asked.
        let p = place(&ada(), Some("tag-b"), start, end, now, day).unwrap();
        assert_eq!(p.id_tag, "TAG-B");
        assert_eq!(
            place(&ada(), Some("TAG-Z"), start, end, now, day),
            Err(PlacementError::ForeignIdTag)
        );
        let nobody = Customer {
            id_tags: vec![],
            ..ada()
        };
        assert_eq!(
            place(&nobody, None, start, end, now, day),
            Err(PlacementError::NoIdTag)
        );
    }

    #[test]
    fn slots_are_placed_as_stored_utc_milliseconds() {
        let now = datetime!(2026-01-01 10:00 UTC);
        let start = datetime!(2026-01-01 12:30:00.123456789 +01:00);
        let end = datetime!(2026-01-01 13:30:00.5 +01:00);
        let p = place(&ada(), None, start, end, now, Duration::DAY).unwrap();
        assert_eq!(p.slot.start(), datetime!(2026-01-01 11:30:00.123 UTC));
        assert_eq!(p.slot.start().offset(), time::UtcOffset::UTC);
        assert_eq!(p.slot.end(), datetime!(2026-01-01 12:30:00.5 UTC));
    }

    #[test]
    fn slot_bounds() {
        let now = datetime!(2026-01-01 10:00 UTC);
        let day = Duration::DAY;
        let at = |m: i64| now + Duration::minutes(m);
        assert_eq!(
            place(&ada(), None, at(60), at(60), now, day),
            Err(PlacementError::Slot(InvalidSlot::EndNotAfterStart))
        );
        assert_eq!(
            place(&ada(), None, at(-6), at(60), now, day),
            Err(PlacementError::Slot(InvalidSlot::InPast))
        );
        // "From now": a start within the grace counts as now.
        assert!(place(&ada(), None, at(-4), at(60), now, day).is_ok());
        assert!(matches!(
            place(&ada(), None, at(0), at(24 * 60 + 1), now, day),
            Err(PlacementError::Slot(InvalidSlot::TooLong(_)))
        ));
        assert!(place(&ada(), None, at(0), at(24 * 60), now, day).is_ok());
    }
}
