//! Reservations: a customer's claim on one connector of one charger, or on the whole charger
//! (connector 0), for a half-open time slot `[start, end)`. Two live reservations (BOOKED or
//! CHARGING_STARTED) on the same connector never overlap, and a whole-charger one overlaps no
//! connector's: the database refuses it (see each store backend), never a check in this code.

use time::{Duration, OffsetDateTime};

use crate::domain::ChargeBoxId;
use crate::domain::instant::at_storage_precision;

/// A half-open slot `[start, end)` at the ledger's precision (whole milliseconds); the only
/// constructor truncates both ends to it and then checks `start < end`, so a slot that the
/// store would see as empty cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSlot {
    start: OffsetDateTime,
    end: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSlot {
    #[error("end must be after start")]
    EndNotAfterStart,
    #[error("the slot lies in the past")]
    InPast,
    #[error("the slot is longer than the maximum of {0}")]
    TooLong(String),
}

impl TimeSlot {
    pub fn parse(start: OffsetDateTime, end: OffsetDateTime) -> Result<Self, InvalidSlot> {
        let (start, end) = (at_storage_precision(start), at_storage_precision(end));
        if end <= start {
            return Err(InvalidSlot::EndNotAfterStart);
        }
        Ok(TimeSlot { start, end })
    }

    /// A slot a customer may book now: not over yet (its start may be up to `grace` ago, so a
    /// driver can book "from now") and at most `max` long.
    pub fn bookable(
        start: OffsetDateTime,
        end: OffsetDateTime,
        now: OffsetDateTime,
        grace: Duration,
        max: Duration,
    ) -> Result<Self, InvalidSlot> {
        let slot = Self::parse(start, end)?;
        if start < now.saturating_sub(grace) {
            return Err(InvalidSlot::InPast);
        }
        if end - start > max {
            return Err(InvalidSlot::TooLong(format!("{max}")));
        }
        Ok(slot)
    }

    pub fn start(&self) -> OffsetDateTime {
        self.start
    }

    pub fn end(&self) -> OffsetDateTime {
        self.end
    }

    /// Half-open overlap: `[10,11)` and `[11,12)` do not overlap.
    pub fn overlaps(&self, other: &TimeSlot) -> bool {
        self.start < other.end && other.start < self.end
    }
}

// `$s` is matched as `tt`, not `literal`: a `literal` fragment reaches derive macros wrapped in an
// invisible group, which utoipa's `ToSchema` ignores (the OpenAPI enum would list Rust names).
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($v:ident = $s:tt),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub enum $name { $(#[serde(rename = $s)] $v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$v),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// Where a reservation is in its life (api.md).
    ReservationStatus {
        Booked = "BOOKED",
        ChargingStarted = "CHARGING_STARTED",
        ChargingEnded = "CHARGING_ENDED",
        Cancelled = "CANCELLED",
        Expired = "EXPIRED",
    }
}

impl ReservationStatus {
    /// Live reservations hold their slot; the others free it.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ReservationStatus::Booked | ReservationStatus::ChargingStarted
        )
    }
}

wire_enum! {
    /// What the charger said to ReserveNow (PENDING until it has been asked).
    ChargerAck {
        Pending = "PENDING",
        Accepted = "ACCEPTED",
        Occupied = "OCCUPIED",
        Faulted = "FAULTED",
        Rejected = "REJECTED",
        Unavailable = "UNAVAILABLE",
    }
}

#[derive(Debug, Clone)]
pub struct NewReservation {
    pub charger_id: ChargeBoxId,
    /// `None`: the lowest connector free for the whole slot.
    pub connector_id: Option<u32>,
    pub customer_id: i64,
    pub id_tag: String,
    pub slot: TimeSlot,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Fits OCPP's 32-bit reservationId.
    pub id: i32,
    pub charger_id: ChargeBoxId,
    /// 0: the whole charger (its holder may start on any connector).
    pub connector_id: u32,
    pub customer_id: i64,
    pub id_tag: String,
    pub slot: TimeSlot,
    pub status: ReservationStatus,
    pub charger_ack: ChargerAck,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Which reservations to list; every field narrows. `from`/`to` select slots that overlap
/// `[from, to)`. Ordered by start, then id; paged by `limit` and `after_id`.
#[derive(Debug, Clone, Default)]
pub struct ReservationFilter {
    pub charger_id: Option<ChargeBoxId>,
    pub customer_id: Option<i64>,
    pub status: Option<ReservationStatus>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn half_open_slots_touching_do_not_overlap() {
        let a = TimeSlot::parse(
            datetime!(2026-01-01 10:00 UTC),
            datetime!(2026-01-01 11:00 UTC),
        )
        .unwrap();
        let b = TimeSlot::parse(
            datetime!(2026-01-01 11:00 UTC),
            datetime!(2026-01-01 12:00 UTC),
        )
        .unwrap();
        let c = TimeSlot::parse(
            datetime!(2026-01-01 10:59 UTC),
            datetime!(2026-01-01 11:01 UTC),
        )
        .unwrap();
        assert!(!a.overlaps(&b) && !b.overlaps(&a));
        assert!(a.overlaps(&c) && b.overlaps(&c));
    }

    #[test]
    fn slots_live_at_millisecond_precision() {
        let start = datetime!(2026-01-01 10:00 UTC);
        let tenth_of_a_ms = Duration::microseconds(100);
        assert_eq!(
            TimeSlot::parse(start, start + tenth_of_a_ms),
            Err(InvalidSlot::EndNotAfterStart),
            "empty once stored"
        );
        let slot = TimeSlot::parse(
            start + tenth_of_a_ms,
            start + Duration::milliseconds(1) + tenth_of_a_ms,
        )
        .unwrap();
        assert_eq!(slot.start(), start);
        assert_eq!(slot.end(), start + Duration::milliseconds(1));
    }

    #[test]
    fn bookable_rules() {
        let now = datetime!(2026-01-01 10:00 UTC);
        let g = Duration::minutes(5);
        let max = Duration::hours(24);
        let at = |h: i64| now + Duration::hours(h);
        assert_eq!(
            TimeSlot::bookable(at(2), at(1), now, g, max),
            Err(InvalidSlot::EndNotAfterStart)
        );
        assert_eq!(
            TimeSlot::bookable(at(1), at(1), now, g, max),
            Err(InvalidSlot::EndNotAfterStart)
        );
        assert_eq!(
            TimeSlot::bookable(at(-2), at(-1), now, g, max),
            Err(InvalidSlot::InPast)
        );
        assert!(matches!(
            TimeSlot::bookable(at(1), at(26), now, g, max),
            Err(InvalidSlot::TooLong(_))
        ));
        assert!(TimeSlot::bookable(now - Duration::minutes(1), at(1), now, g, max).is_ok());
        assert!(TimeSlot::bookable(at(1), at(25), now, g, max).is_ok());
    }
}
