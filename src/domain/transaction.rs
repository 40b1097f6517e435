//! Charging: transactions as the ledger keeps them, and the rules that link a charger's
//! StartTransaction to a reservation. The rules are pure ([`decide_start`]) and every store
//! backend feeds them the same facts read inside its write transaction, so both backends decide
//! alike and the decision commits atomically with the transaction row.
//!
//! What a charger reports is not trusted to be plausible:
//! - a start on a connector the charger does not have is refused (`Invalid`, recorded REFUSED);
//! - an idTag already charging on another connector (an ACTIVE transaction) gets `ConcurrentTx`;
//! - an accepted start on a connector that still has an ACTIVE transaction ends that one first:
//!   the charger can only start anew when the old session is over, so the old one missed its
//!   StopTransaction. It is recorded ENDED at the new start's time with stop reason
//!   [`SUPERSEDED`] and its last reading as meterStop;
//! - meter readings are energy only within `0..=`[`MAX_PLAUSIBLE_WH`] and never below the
//!   transaction's meterStart or its last reading: anything else is not stored as energy
//!   (a transaction whose meterStart or meterStop is implausible has no energy) and is flagged;
//! - instants from a charger are compared with saturating arithmetic: none can panic.

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::reservation::{Reservation, ReservationStatus};
use crate::domain::ChargeBoxId;

super::reservation::wire_enum! {
    /// Where a transaction is: running, ended by StopTransaction, or refused at the start
    /// (the charger still got a transactionId, as OCPP requires, but nothing is charged to
    /// anyone).
    TransactionStatus {
        Active = "ACTIVE",
        Ended = "ENDED",
        Refused = "REFUSED",
    }
}

super::reservation::wire_enum! {
    /// The verdict on an idTag, spelled as OCPP's AuthorizationStatus.
    Authorization {
        Accepted = "Accepted",
        Blocked = "Blocked",
        Expired = "Expired",
        Invalid = "Invalid",
        ConcurrentTx = "ConcurrentTx",
    }
}

/// The largest meter reading taken as energy, in Wh: 10^12 Wh (1 TWh) is beyond any charger's
/// register; anything above is a faulty meter or a forged message.
pub const MAX_PLAUSIBLE_WH: i64 = 1_000_000_000_000;

/// The stop reason of a transaction ended because a new one started on its connector.
pub const SUPERSEDED: &str = "SupersededByNewStart";

/// Whether a meter register reading can be energy at all.
pub fn plausible_wh(wh: i64) -> bool {
    (0..=MAX_PLAUSIBLE_WH).contains(&wh)
}

/// What the session turned a StartTransaction into.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub charger_id: ChargeBoxId,
    pub connector_id: u32,
    pub id_tag: String,
    pub meter_start_wh: i64,
    /// When the charger says it started: a start queued while offline links to the slot it
    /// happened in, not the one current when it finally arrives.
    pub timestamp: OffsetDateTime,
    pub reservation_id: Option<i32>,
}

/// The settings that shape the start rules.
#[derive(Debug, Clone, Copy)]
pub struct StartPolicy {
    /// A reserved driver may start this long before the slot.
    pub early_grace: Duration,
    /// Whether a known idTag may charge on a connector no one has reserved.
    pub allow_walk_in: bool,
}

/// The facts [`decide_start`] needs, read by the store in its write transaction.
#[derive(Debug, Clone, Default)]
pub struct StartContext {
    /// The customer owning the idTag, if any.
    pub customer_id: Option<i64>,
    /// Set when the owner's tag may not start now: Blocked, or Expired.
    pub tag_refusal: Option<Authorization>,
    /// The reservation named by `reservationId`, if the charger sent one and it exists.
    pub named: Option<Reservation>,
    /// Live reservations on this charger + connector whose slot, widened by the early grace,
    /// contains the start time.
    pub on_connector: Vec<Reservation>,
    /// How many connectors the charger has (`None`: no such charger any more).
    pub connectors: Option<u32>,
    /// Whether this idTag has an ACTIVE transaction on another charger or connector.
    pub id_tag_busy_elsewhere: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartDecision {
    /// Charge, on this reservation (`None`: a walk-in).
    Accept { reservation_id: Option<i32> },
    Refuse {
        status: Authorization,
        reason: &'static str,
    },
}

/// The rules of issue "charging story": an unknown idTag is Invalid; the reservation the charger
/// names is used when it is this customer's, on this charger and connector (or the whole charger,
/// connector 0), still BOOKED and not
/// over; otherwise a current reservation of this customer on the connector is used; a connector
/// inside someone else's live reservation is refused; a free connector is a walk-in if allowed.
pub fn decide_start(req: &StartRequest, ctx: &StartContext, policy: &StartPolicy) -> StartDecision {
    if !ctx
        .connectors
        .is_some_and(|n| (1..=n).contains(&req.connector_id))
    {
        return StartDecision::Refuse {
            status: Authorization::Invalid,
            reason: "the charger has no such connector",
        };
    }
    let Some(customer) = ctx.customer_id else {
        return StartDecision::Refuse {
            status: Authorization::Invalid,
            reason: "unknown idTag",
        };
    };
    if let Some(status) = ctx.tag_refusal {
        return StartDecision::Refuse {
            status,
            reason: if status == Authorization::Blocked {
                "the idTag is blocked"
            } else {
                "the idTag has expired"
            },
        };
    }
    let usable = |r: &Reservation| {
        r.customer_id == customer
            && r.charger_id == req.charger_id
            // A whole-charger reservation (connector 0) is used on any connector.
            && (r.connector_id == req.connector_id || r.connector_id == 0)
            && r.status == ReservationStatus::Booked
            && r.slot.start().saturating_sub(policy.early_grace) <= req.timestamp
            && req.timestamp < r.slot.end()
    };
    if ctx.id_tag_busy_elsewhere {
        return StartDecision::Refuse {
            status: Authorization::ConcurrentTx,
            reason: "the idTag is already charging elsewhere",
        };
    }
    if let Some(named) = ctx.named.as_ref().filter(|r| usable(r)) {
        return StartDecision::Accept {
            reservation_id: Some(named.id),
        };
    }
    if let Some(own) = ctx.on_connector.iter().find(|r| usable(r)) {
        return StartDecision::Accept {
            reservation_id: Some(own.id),
        };
    }
    let live = |r: &&Reservation| r.status.is_live();
    if ctx
        .on_connector
        .iter()
        .filter(live)
        .any(|r| r.customer_id != customer)
    {
        return StartDecision::Refuse {
            status: Authorization::Invalid,
            reason: "the connector is reserved for someone else",
        };
    }
    if ctx.on_connector.iter().any(|r| live(&r)) {
        // This customer's slot is already being charged by another transaction.
        return StartDecision::Refuse {
            status: Authorization::ConcurrentTx,
            reason: "the reservation is already charging",
        };
    }
    if policy.allow_walk_in {
        StartDecision::Accept {
            reservation_id: None,
        }
    } else {
        StartDecision::Refuse {
            status: Authorization::Invalid,
            reason: "no reservation and walk-ins are not allowed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// The OCPP transactionId: a 32-bit integer.
    pub id: i32,
    #[schema(value_type = String)]
    pub charger_id: ChargeBoxId,
    pub connector_id: u32,
    pub id_tag: String,
    /// `null` for a refused start: nothing is charged to anyone.
    pub customer_id: Option<i64>,
    /// The reservation this charge uses; `null` for a walk-in.
    pub reservation_id: Option<i32>,
    pub status: TransactionStatus,
    /// What the charger was told in StartTransaction.
    pub authorization: Authorization,
    pub meter_start_wh: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub meter_stop_wh: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub stopped_at: Option<OffsetDateTime>,
    pub stop_reason: Option<String>,
    /// The latest energy register reading (MeterValues), in Wh.
    pub last_meter_wh: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_meter_at: Option<OffsetDateTime>,
    /// Energy so far: meterStop − meterStart once ended, else the latest reading − meterStart.
    pub energy_wh: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Transaction {
    /// Energy delivered: `None` unless both readings are plausible and the meter did not run
    /// backwards (a charger fault, not energy).
    pub fn compute_energy(&mut self) {
        let upto = match self.status {
            TransactionStatus::Ended => self.meter_stop_wh,
            TransactionStatus::Active => self.last_meter_wh,
            TransactionStatus::Refused => None,
        };
        self.energy_wh = upto.and_then(|wh| energy_between(self.meter_start_wh, wh));
    }
}

/// Energy from register reading `from` to `to`, when both are plausible and `to` is not below
/// `from`.
pub fn energy_between(from: i64, to: i64) -> Option<i64> {
    (plausible_wh(from) && plausible_wh(to) && to >= from).then(|| to - from)
}

/// The answer to a StartTransaction, and what it changed.
#[derive(Debug, Clone)]
pub struct StartOutcome {
    pub transaction: Transaction,
    /// The linked reservation, now CHARGING_STARTED.
    pub reservation: Option<Reservation>,
    /// The same StartTransaction arrived before (a charger re-sending an unanswered message):
    /// answered as the first time, nothing written.
    pub repeated: bool,
    /// Why a start was refused, for the log.
    pub refusal: Option<&'static str>,
    /// A transaction still ACTIVE on the connector that this start ended ([`SUPERSEDED`]).
    pub superseded: Option<Transaction>,
}

#[derive(Debug, Clone)]
pub struct StopRequest {
    pub charger_id: ChargeBoxId,
    pub transaction_id: i32,
    pub meter_stop_wh: i64,
    pub timestamp: OffsetDateTime,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub enum StopOutcome {
    /// Ended now; the reservation (if any) is CHARGING_ENDED.
    Stopped {
        transaction: Transaction,
        reservation: Option<Reservation>,
    },
    /// Ended before (a retried StopTransaction) or refused at the start: nothing changed.
    Unchanged(Transaction),
    /// No such transaction on this charger.
    Unknown,
}

/// A running transaction's meter: what the console's load chart samples every few seconds
/// (the few columns it needs, not whole transactions: thousands run at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningMeter {
    pub id: i32,
    pub meter_start_wh: i64,
    pub started_at: OffsetDateTime,
    pub last_meter_wh: Option<i64>,
    pub last_meter_at: Option<OffsetDateTime>,
}

/// Energy register readings of one MeterValues message.
#[derive(Debug, Clone)]
pub struct MeterReadings {
    pub charger_id: ChargeBoxId,
    pub connector_id: u32,
    pub transaction_id: Option<i32>,
    /// (when, Wh), in message order.
    pub readings: Vec<(OffsetDateTime, i64)>,
}

#[derive(Debug, Clone, Default)]
pub struct TransactionFilter {
    pub charger_id: Option<ChargeBoxId>,
    pub customer_id: Option<i64>,
    pub status: Option<TransactionStatus>,
    /// Paging cursor: only transactions listed after this id. Lists are newest first (id
    /// descending), so the next page holds the ids below it.
    pub after: Option<i32>,
    pub limit: u32,
}

/// What the charger dispatcher must do after a restart, read from the ledger.
#[derive(Debug, Clone, Default)]
pub struct DispatchAgenda {
    /// BOOKED reservations whose slot has not ended.
    pub booked: Vec<Reservation>,
    /// Cancelled reservations the charger may still hold (CancelReservation owed).
    pub cancels_owed: Vec<Reservation>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reservation::{ChargerAck, TimeSlot};
    use time::macros::datetime;

    fn reservation(id: i32, customer: i64, status: ReservationStatus) -> Reservation {
        Reservation {
            id,
            charger_id: ChargeBoxId::parse("CB-1").unwrap(),
            connector_id: 1,
            customer_id: customer,
            id_tag: format!("TAG-{customer}"),
            slot: TimeSlot::parse(
                datetime!(2026-01-01 10:00 UTC),
                datetime!(2026-01-01 11:00 UTC),
            )
            .unwrap(),
            status,
            charger_ack: ChargerAck::Accepted,
            created_at: datetime!(2026-01-01 09:00 UTC),
            updated_at: datetime!(2026-01-01 09:00 UTC),
        }
    }

    fn start(at: OffsetDateTime, reservation_id: Option<i32>) -> StartRequest {
        StartRequest {
            charger_id: ChargeBoxId::parse("CB-1").unwrap(),
            connector_id: 1,
            id_tag: "TAG-1".into(),
            meter_start_wh: 0,
            timestamp: at,
            reservation_id,
        }
    }

    /// A known customer on a charger with two connectors, nothing else.
    fn ctx(customer: i64) -> StartContext {
        StartContext {
            customer_id: Some(customer),
            connectors: Some(2),
            ..Default::default()
        }
    }

    const POLICY: StartPolicy = StartPolicy {
        early_grace: Duration::minutes(10),
        allow_walk_in: true,
    };

    #[test]
    fn a_blocked_or_expired_tag_is_refused_as_such_even_on_its_own_reservation() {
        for status in [Authorization::Blocked, Authorization::Expired] {
            let d = decide_start(
                &start(datetime!(2026-01-01 10:30 UTC), None),
                &StartContext {
                    tag_refusal: Some(status),
                    ..ctx(1)
                },
                &POLICY,
            );
            assert!(
                matches!(d, StartDecision::Refuse { status: s, .. } if s == status),
                "{d:?}"
            );
        }
    }

    #[test]
    fn unknown_id_tag_is_invalid() {
        let d = decide_start(
            &start(datetime!(2026-01-01 10:30 UTC), None),
            &StartContext {
                customer_id: None,
                ..ctx(1)
            },
            &POLICY,
        );
        assert!(matches!(
            d,
            StartDecision::Refuse {
                status: Authorization::Invalid,
                ..
            }
        ));
    }

    #[test]
    fn own_reservation_is_used_by_id_or_by_slot() {
        let own = reservation(7, 1, ReservationStatus::Booked);
        let by_id = StartContext {
            customer_id: Some(1),
            named: Some(own.clone()),
            on_connector: vec![],
            ..ctx(1)
        };
        let at = datetime!(2026-01-01 10:30 UTC);
        let accept7 = StartDecision::Accept {
            reservation_id: Some(7),
        };
        assert_eq!(decide_start(&start(at, Some(7)), &by_id, &POLICY), accept7);
        let by_slot = StartContext {
            customer_id: Some(1),
            named: None,
            on_connector: vec![own],
            ..ctx(1)
        };
        assert_eq!(decide_start(&start(at, None), &by_slot, &POLICY), accept7);
        // Early arrival within the grace, but not before it.
        let early = datetime!(2026-01-01 09:55 UTC);
        assert_eq!(
            decide_start(&start(early, None), &by_slot, &POLICY),
            accept7
        );
    }

    #[test]
    fn a_whole_charger_reservation_is_used_on_any_connector() {
        let whole = Reservation {
            connector_id: 0,
            ..reservation(9, 1, ReservationStatus::Booked)
        };
        let at = datetime!(2026-01-01 10:30 UTC);
        let on_two = StartRequest {
            connector_id: 2,
            ..start(at, Some(9))
        };
        let by_id = StartContext {
            named: Some(whole.clone()),
            on_connector: vec![whole.clone()],
            ..ctx(1)
        };
        let accept9 = StartDecision::Accept {
            reservation_id: Some(9),
        };
        assert_eq!(decide_start(&on_two, &by_id, &POLICY), accept9);
        // Someone else on any connector of it is refused.
        let other = StartContext {
            on_connector: vec![whole],
            ..ctx(2)
        };
        assert!(matches!(
            decide_start(&on_two, &other, &POLICY),
            StartDecision::Refuse {
                status: Authorization::Invalid,
                ..
            }
        ));
    }

    #[test]
    fn someone_elses_slot_is_refused_and_free_connector_is_a_walk_in() {
        let theirs = StartContext {
            customer_id: Some(1),
            named: None,
            on_connector: vec![reservation(8, 2, ReservationStatus::Booked)],
            ..ctx(1)
        };
        let at = datetime!(2026-01-01 10:30 UTC);
        assert!(matches!(
            decide_start(&start(at, Some(8)), &theirs, &POLICY),
            StartDecision::Refuse {
                status: Authorization::Invalid,
                ..
            }
        ));
        let free = StartContext { ..ctx(1) };
        assert_eq!(
            decide_start(&start(at, None), &free, &POLICY),
            StartDecision::Accept {
                reservation_id: None
            }
        );
        let strict = StartPolicy {
            allow_walk_in: false,
            ..POLICY
        };
        assert!(matches!(
            decide_start(&start(at, None), &free, &strict),
            StartDecision::Refuse { .. }
        ));
    }

    #[test]
    fn a_named_reservation_that_is_over_or_cancelled_is_not_used() {
        let mut over = reservation(9, 1, ReservationStatus::Booked);
        over.slot = TimeSlot::parse(
            datetime!(2026-01-01 08:00 UTC),
            datetime!(2026-01-01 09:00 UTC),
        )
        .unwrap();
        let facts = StartContext {
            customer_id: Some(1),
            named: Some(over),
            on_connector: vec![],
            ..ctx(1)
        };
        let at = datetime!(2026-01-01 10:30 UTC);
        assert_eq!(
            decide_start(&start(at, Some(9)), &facts, &POLICY),
            StartDecision::Accept {
                reservation_id: None
            }
        );
        let cancelled = StartContext {
            customer_id: Some(1),
            named: Some(reservation(10, 1, ReservationStatus::Cancelled)),
            on_connector: vec![],
            ..ctx(1)
        };
        assert_eq!(
            decide_start(&start(at, Some(10)), &cancelled, &POLICY),
            StartDecision::Accept {
                reservation_id: None
            }
        );
    }

    #[test]
    fn energy_is_never_negative() {
        let mut t = Transaction {
            id: 1,
            charger_id: ChargeBoxId::parse("CB-1").unwrap(),
            connector_id: 1,
            id_tag: "T".into(),
            customer_id: Some(1),
            reservation_id: None,
            status: TransactionStatus::Active,
            authorization: Authorization::Accepted,
            meter_start_wh: 1000,
            started_at: datetime!(2026-01-01 10:00 UTC),
            meter_stop_wh: None,
            stopped_at: None,
            stop_reason: None,
            last_meter_wh: Some(1500),
            last_meter_at: None,
            energy_wh: None,
            created_at: datetime!(2026-01-01 10:00 UTC),
            updated_at: datetime!(2026-01-01 10:00 UTC),
        };
        t.compute_energy();
        assert_eq!(t.energy_wh, Some(500));
        t.status = TransactionStatus::Ended;
        t.meter_stop_wh = Some(900);
        t.compute_energy();
        assert_eq!(t.energy_wh, None, "a meter running backwards is no energy");
        t.meter_start_wh = -2_147_483_648;
        t.meter_stop_wh = Some(0);
        t.compute_energy();
        assert_eq!(t.energy_wh, None, "a negative meterStart is no energy");
        t.meter_start_wh = 0;
        t.meter_stop_wh = Some(9_200_000_000_000_000_000);
        t.compute_energy();
        assert_eq!(t.energy_wh, None, "beyond the plausible bound");
        t.meter_stop_wh = Some(MAX_PLAUSIBLE_WH);
        t.compute_energy();
        assert_eq!(t.energy_wh, Some(MAX_PLAUSIBLE_WH));
    }

    #[test]
    fn a_connector_the_charger_lacks_is_refused() {
        let at = datetime!(2026-01-01 10:30 UTC);
        for connectors in [None, Some(0), Some(2)] {
            let facts = StartContext {
                customer_id: Some(1),
                connectors,
                ..Default::default()
            };
            let mut req = start(at, None);
            req.connector_id = 99;
            assert_eq!(
                decide_start(&req, &facts, &POLICY),
                StartDecision::Refuse {
                    status: Authorization::Invalid,
                    reason: "the charger has no such connector",
                },
                "{connectors:?}"
            );
        }
    }

    #[test]
    fn an_id_tag_charging_elsewhere_is_concurrent() {
        let facts = StartContext {
            customer_id: Some(1),
            on_connector: vec![reservation(7, 1, ReservationStatus::Booked)],
            id_tag_busy_elsewhere: true,
            ..ctx(1)
        };
        assert!(matches!(
            decide_start(
                &start(datetime!(2026-01-01 10:30 UTC), Some(7)),
                &facts,
                &POLICY
            ),
            StartDecision::Refuse {
                status: Authorization::ConcurrentTx,
                ..
            }
        ));
    }

    #[test]
    fn instants_at_the_edge_of_time_do_not_panic() {
        let mut late = start(datetime!(9999-12-31 23:59:59 UTC), Some(7));
        let mut own = reservation(7, 1, ReservationStatus::Booked);
        own.slot = TimeSlot::parse(
            datetime!(-9999-01-01 00:00 UTC),
            datetime!(9999-12-31 23:59:59.999 UTC),
        )
        .unwrap();
        let facts = StartContext {
            named: Some(own),
            ..ctx(1)
        };
        let huge = StartPolicy {
            early_grace: Duration::MAX,
            ..POLICY
        };
        assert!(matches!(
            decide_start(&late, &facts, &huge),
            StartDecision::Accept { .. }
        ));
        late.timestamp = datetime!(-9999-01-01 00:00 UTC);
        decide_start(&late, &facts, &huge);
    }
}
