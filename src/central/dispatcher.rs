//! The charger dispatcher: carries the ledger's reservations to the chargers. It follows the
//! event log (woken by the store's head after each commit, and polling once a second for writes
//! of other nodes), sends ReserveNow when a slot starts (minus the early-start grace, so the
//! connector is held when the driver may arrive) or at once when it already has, records each
//! answer as the reservation's `chargerAck`, sends CancelReservation for a cancelled reservation
//! the charger may hold, and expires BOOKED reservations whose slot ended unused. Customer
//! changes in the log are also handed to `local_list`, which carries them to chargers' lists.
//!
//! Bookings never wait for it (fault isolation): a charger that is offline, or connected but
//! not booted Accepted, keeps its reservations PENDING and gets them after its next accepted
//! BootNotification (the Booted signal); one that does not answer
//! is retried later. After a restart the agenda is rebuilt from the ledger (BOOKED reservations
//! and cancellations still owed) and the log is followed from its head. Re-sending is harmless:
//! a ReserveNow with the same reservationId replaces the charger's copy (OCPP 1.6 §5.13).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{CallFailure, Central};
use crate::domain::ChargeBoxId;
use crate::domain::event::{Event, kind};
use crate::domain::reservation::{ChargerAck, Reservation, ReservationStatus};
use crate::ocpp::v16::messages::{CancelReservation, ReserveNow};
use crate::ocpp::v16::types::{CiString, ReservationStatus as OcppReservationStatus, Timestamp};
use crate::telemetry::Escaped;

/// What sessions tell the dispatcher.
#[derive(Debug, Clone)]
pub enum Signal {
    /// A charger's BootNotification was answered Accepted: it gets every current reservation
    /// again (a rebooted charger may have lost them) and any cancellation it is owed.
    Booted(ChargeBoxId),
    /// A connector reported Available: a current reservation it could not take before
    /// (Occupied, Faulted, Unavailable) is offered again.
    ConnectorAvailable(ChargeBoxId, u32),
}

/// A charger that did not answer in time is asked again after this long.
const RETRY_AFTER: time::Duration = time::Duration::seconds(30);
/// How often the log is read even when this process wrote nothing (other nodes may have).
const POLL: Duration = Duration::from_secs(1);
const EVENT_BATCH: u32 = 1000;

/// How a spawned call ended.
enum Done {
    Reserve {
        id: i32,
        failure: Option<CallFailure>,
        /// The reservation as the ledger has it after the answer was recorded.
        now: Option<Reservation>,
        /// What the charger answered, if it answered.
        ack: Option<ChargerAck>,
    },
    Cancel {
        id: i32,
        delivered: bool,
    },
}

struct Dispatcher {
    central: Arc<Central>,
    grace: time::Duration,
    /// BOOKED reservations whose slot has not ended.
    booked: HashMap<i32, Reservation>,
    /// When to act on a reservation: its send time, or a retry. Entries are checked against
    /// `booked` when they come up, so removal elsewhere can be lazy.
    upcoming: BTreeSet<(OffsetDateTime, i32)>,
    /// Reservations whose send time has come, by charger.
    due: HashMap<ChargeBoxId, BTreeSet<i32>>,
    /// Slot ends, for expiry (lazy like `upcoming`).
    ends: BTreeSet<(OffsetDateTime, i32)>,
    sending: HashSet<i32>,
    /// Cancelled reservations the charger may hold.
    owed_cancels: HashMap<i32, Reservation>,
    cancelling: HashSet<i32>,
    tasks: JoinSet<Done>,
    cursor: i64,
    /// When a failed expiry sweep runs again.
    expire_retry: Option<OffsetDateTime>,
}

/// Run until `stop` fires.
pub async fn run(central: Arc<Central>, stop: CancellationToken) {
    let Some(mut signals) = central
        .signal_inbox
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        error!("the dispatcher was started twice; this one stops");
        return;
    };
    let mut head = central.store.head();
    let cursor = *head.borrow_and_update();
    let mut d = Dispatcher {
        grace: central.early_grace(),
        central,
        booked: HashMap::new(),
        upcoming: BTreeSet::new(),
        due: HashMap::new(),
        ends: BTreeSet::new(),
        sending: HashSet::new(),
        owed_cancels: HashMap::new(),
        cancelling: HashSet::new(),
        tasks: JoinSet::new(),
        cursor,
        expire_retry: None,
    };
    // The agenda as the ledger holds it; retried until the database answers.
    loop {
        let now = OffsetDateTime::now_utc();
        match d.central.store.dispatch_agenda(now).await {
            Ok(agenda) => {
                info!(
                    booked = agenda.booked.len(),
                    cancels_owed = agenda.cancels_owed.len(),
                    "dispatcher agenda loaded"
                );
                for r in agenda.booked {
                    d.add(r, now);
                }
                for r in agenda.cancels_owed {
                    d.owe_cancel(r);
                }
                break;
            }
            Err(e) => {
                error!(error = %e, "dispatcher cannot read its agenda; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    // Who holds which tags, for the local lists' differentials (tags removed later are named
    // from it). Best effort: without it a change names only the tags its event shows.
    if let Err(e) = super::local_list::load_index(&d.central).await {
        error!(error = %e, "local list index not loaded; removed tags reach chargers at their next full list");
    }
    d.expire(OffsetDateTime::now_utc()).await;
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wake = d.next_wake();
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = head.changed() => {
                if changed.is_err() {
                    break;
                }
                d.follow_log().await;
            }
            _ = poll.tick() => d.follow_log().await,
            Some(signal) = signals.recv() => d.on_signal(signal),
            Some(done) = d.tasks.join_next(), if !d.tasks.is_empty() => {
                match done {
                    Ok(done) => d.on_done(done),
                    Err(e) => error!(error = %e, "a dispatcher call task failed"),
                }
            }
            _ = sleep_until(wake) => d.on_time().await,
        }
    }
    d.tasks.abort_all();
}

/// Where a whole-charger reservation (connector 0) is sent: as connector 0 when the charger's
/// configuration says `ReserveConnectorZeroSupported` is true; otherwise (false, or not known)
/// on the lowest connector it last reported Available, connector 1 when none did. The ledger
/// holds the whole charger either way; the charger holds one connector for the driver.
async fn whole_charger_connector(central: &Central, charger: &ChargeBoxId) -> i32 {
    let supported = match central.store.configuration(charger).await {
        Ok(snapshot) => {
            snapshot.is_some_and(|s| s.flag("ReserveConnectorZeroSupported") == Some(true))
        }
        Err(e) => {
            warn!(charger = %charger, error = %e, "configuration not read; reserving a connector");
            false
        }
    };
    if supported {
        return 0;
    }
    let connector = central.live.first_available(charger).unwrap_or(1);
    i32::try_from(connector).unwrap_or(1)
}

async fn sleep_until(at: Option<OffsetDateTime>) {
    match at {
        None => std::future::pending().await,
        Some(at) => {
            let wait = at - OffsetDateTime::now_utc();
            if wait.is_positive() {
                tokio::time::sleep(wait.unsigned_abs()).await;
            }
        }
    }
}

impl Dispatcher {
    fn next_wake(&self) -> Option<OffsetDateTime> {
        let a = self.upcoming.first().map(|(t, _)| *t);
        let b = self.ends.first().map(|(t, _)| *t);
        [a, b, self.expire_retry].into_iter().flatten().min()
    }

    /// Read and apply every event after the cursor.
    async fn follow_log(&mut self) {
        loop {
            let events = match self
                .central
                .store
                .events_after(self.cursor, EVENT_BATCH)
                .await
            {
                Ok(events) => events,
                Err(e) => {
                    error!(error = %e, "dispatcher cannot read the event log");
                    return;
                }
            };
            let n = events.len();
            for e in events {
                self.cursor = e.seq;
                self.apply(&e);
            }
            if n < EVENT_BATCH as usize {
                return;
            }
        }
    }

    fn apply(&mut self, e: &Event) {
        let now = OffsetDateTime::now_utc();
        match e.kind {
            kind::RESERVATION_BOOKED => {
                if let Some(r) = e.reservation() {
                    self.add(r, now);
                }
            }
            kind::RESERVATION_CANCELLED => {
                if let Some(r) = e.reservation() {
                    self.remove(r.id);
                    // A charger that was ever asked may hold it. One asked right now is covered
                    // when its answer is recorded (the ledger then owes the cancel).
                    if r.charger_ack != ChargerAck::Pending && r.slot.end() > now {
                        self.owe_cancel(r);
                    }
                }
            }
            kind::RESERVATION_EXPIRED | kind::TRANSACTION_STARTED => {
                if let Some(id) = e.reservation_id {
                    self.remove(id);
                }
            }
            // A tag blocked, expired or removed, a token rotated: chargers must hear about it at
            // their next Authorize and the old token stop at once, not when a cache is rebuilt.
            kind::CHARGER_UPDATED => {
                if let Some(charger) = &e.charger_id {
                    self.central.live.forget_connectors(charger);
                }
            }
            // A deleted customer's tags and token must stop working as surely as changed ones.
            kind::CUSTOMER_UPDATED | kind::CUSTOMER_DELETED => {
                if let Some(customer) = e.customer_id {
                    self.central.forget_customer(customer);
                }
                super::local_list::customer_changed(&self.central, e);
            }
            // New tags join the lists chargers hold.
            kind::CUSTOMER_CREATED => super::local_list::customer_changed(&self.central, e),
            kind::RESERVATION_ACK_CHANGED => {
                if let Some(r) = e.reservation()
                    && let Some(known) = self.booked.get_mut(&r.id)
                {
                    known.charger_ack = r.charger_ack;
                    // Back to PENDING: its connector was made Operative again (see
                    // `central::availability`); offered again now if its time has come,
                    // else when it does.
                    if r.charger_ack == ChargerAck::Pending && self.is_due(r.id) {
                        self.send_reserve(r.id);
                    }
                }
            }
            _ => {}
        }
    }

    fn add(&mut self, r: Reservation, now: OffsetDateTime) {
        if r.status != ReservationStatus::Booked || r.slot.end() <= now {
            return;
        }
        let send_at = r.slot.start() - self.grace;
        let id = r.id;
        self.ends.insert((r.slot.end(), id));
        let fresh = self.booked.insert(id, r).is_none();
        if send_at <= now {
            if fresh || !self.is_due(id) {
                self.make_due(id);
            }
        } else {
            self.upcoming.insert((send_at, id));
        }
    }

    fn is_due(&self, id: i32) -> bool {
        self.booked
            .get(&id)
            .and_then(|r| self.due.get(&r.charger_id))
            .is_some_and(|ids| ids.contains(&id))
    }

    /// The slot has come: send it now unless the charger already answered.
    fn make_due(&mut self, id: i32) {
        let Some(r) = self.booked.get(&id) else {
            return;
        };
        let pending = r.charger_ack == ChargerAck::Pending;
        self.due.entry(r.charger_id.clone()).or_default().insert(id);
        if pending {
            self.send_reserve(id);
        }
    }

    fn remove(&mut self, id: i32) {
        if let Some(r) = self.booked.remove(&id)
            && let Some(ids) = self.due.get_mut(&r.charger_id)
        {
            ids.remove(&id);
            if ids.is_empty() {
                self.due.remove(&r.charger_id);
            }
        }
    }

    fn send_reserve(&mut self, id: i32) {
        let Some(r) = self.booked.get(&id) else {
            return;
        };
        // Offline, or connected but not booted Accepted (not yet, or pending/rejected): its
        // next accepted BootNotification brings it back here.
        if self.sending.contains(&id) || !self.central.sessions.is_booted(&r.charger_id) {
            return;
        }
        let Ok(id_tag) = CiString::new(r.id_tag.as_str()) else {
            error!(reservation = id, "idTag does not fit OCPP; not sent");
            return;
        };
        let mut request = ReserveNow {
            connector_id: r.connector_id as i32,
            expiry_date: Timestamp::from(r.slot.end()),
            id_tag,
            parent_id_tag: None,
            reservation_id: id,
        };
        let charger = r.charger_id.clone();
        let central = self.central.clone();
        self.sending.insert(id);
        self.tasks.spawn(async move {
            if request.connector_id == 0 {
                request.connector_id = whole_charger_connector(&central, &charger).await;
            }
            let answer = central.sessions.call(&charger, &request).await;
            let ack = match &answer {
                Ok(a) => Some(match a.status {
                    OcppReservationStatus::Accepted => ChargerAck::Accepted,
                    OcppReservationStatus::Faulted => ChargerAck::Faulted,
                    OcppReservationStatus::Occupied => ChargerAck::Occupied,
                    OcppReservationStatus::Rejected => ChargerAck::Rejected,
                    OcppReservationStatus::Unavailable => ChargerAck::Unavailable,
                }),
                // A charger without the Reservation profile says so with a CALLERROR.
                Err(CallFailure::CallError { .. } | CallFailure::BadResponse { .. }) => {
                    Some(ChargerAck::Rejected)
                }
                Err(_) => None,
            };
            let mut now = None;
            if let Some(ack) = ack {
                debug!(reservation = id, ack = ack.as_str(), "ReserveNow answered");
                match central.store.record_charger_ack(id, ack).await {
                    Ok(r) => now = r,
                    Err(e) => error!(reservation = id, error = %e, "could not record chargerAck"),
                }
            }
            Done::Reserve {
                id,
                failure: answer.err(),
                now,
                ack,
            }
        });
    }

    fn owe_cancel(&mut self, r: Reservation) {
        let id = r.id;
        self.owed_cancels.insert(id, r);
        self.send_cancel(id);
    }

    fn send_cancel(&mut self, id: i32) {
        let Some(r) = self.owed_cancels.get(&id) else {
            return;
        };
        if self.cancelling.contains(&id) || !self.central.sessions.is_booted(&r.charger_id) {
            return;
        }
        let charger = r.charger_id.clone();
        let central = self.central.clone();
        self.cancelling.insert(id);
        self.tasks.spawn(async move {
            let answer = central
                .sessions
                .call(&charger, &CancelReservation { reservation_id: id })
                .await;
            // Accepted or Rejected (it no longer held it): either way nothing is owed.
            let delivered = matches!(
                answer,
                Ok(_) | Err(CallFailure::CallError { .. } | CallFailure::BadResponse { .. })
            );
            if delivered && let Err(e) = central.store.record_cancel_delivered(id).await {
                error!(reservation = id, error = %e, "could not record a delivered cancel");
            }
            Done::Cancel { id, delivered }
        });
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Reserve {
                id,
                failure,
                now,
                ack,
            } => {
                self.sending.remove(&id);
                if let Some(r) = now {
                    // Cancelled while ReserveNow was on its way (the cancel's event showed it
                    // not yet acknowledged, so it owed nothing), and the charger took it: take
                    // it back. The ledger keeps a cancelled reservation's ack, so the charger's
                    // answer says so, not `r`.
                    if r.status == ReservationStatus::Cancelled
                        && (ack == Some(ChargerAck::Accepted)
                            || r.charger_ack == ChargerAck::Accepted)
                    {
                        self.owe_cancel(r);
                    } else if let Some(known) = self.booked.get_mut(&id) {
                        known.charger_ack = r.charger_ack;
                    }
                }
                match failure {
                    None
                    | Some(CallFailure::CallError { .. } | CallFailure::BadResponse { .. }) => {}
                    // Gone: its next BootNotification brings the reservation back.
                    Some(
                        CallFailure::Offline | CallFailure::Disconnected | CallFailure::NotBooted,
                    ) => {}
                    Some(other) => {
                        warn!(reservation = id, failure = %Escaped(&other.to_string()), "ReserveNow failed; retrying later");
                        self.upcoming
                            .insert((OffsetDateTime::now_utc() + RETRY_AFTER, id));
                    }
                }
            }
            Done::Cancel { id, delivered } => {
                self.cancelling.remove(&id);
                if delivered {
                    self.owed_cancels.remove(&id);
                }
            }
        }
    }

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::Booted(charger) => {
                // Not a reservation matter, but the same moment: the first Boot in this
                // process is when the charger's configuration is read.
                super::configuration::booted(&self.central, &charger);
                let ids: Vec<i32> = self
                    .due
                    .get(&charger)
                    .map(|ids| ids.iter().copied().collect())
                    .unwrap_or_default();
                for id in ids {
                    self.send_reserve(id);
                }
                let owed: Vec<i32> = self
                    .owed_cancels
                    .iter()
                    .filter(|(_, r)| r.charger_id == charger)
                    .map(|(id, _)| *id)
                    .collect();
                for id in owed {
                    self.send_cancel(id);
                }
            }
            Signal::ConnectorAvailable(charger, connector) => {
                let retry: Vec<i32> = self
                    .due
                    .get(&charger)
                    .into_iter()
                    .flatten()
                    .filter(|id| {
                        self.booked.get(id).is_some_and(|r| {
                            (r.connector_id == connector || r.connector_id == 0)
                                && matches!(
                                    r.charger_ack,
                                    ChargerAck::Occupied
                                        | ChargerAck::Faulted
                                        | ChargerAck::Unavailable
                                )
                        })
                    })
                    .copied()
                    .collect();
                for id in retry {
                    self.send_reserve(id);
                }
            }
        }
    }

    async fn on_time(&mut self) {
        let now = OffsetDateTime::now_utc();
        while let Some(&(at, id)) = self.upcoming.first() {
            if at > now {
                break;
            }
            self.upcoming.pop_first();
            if !self.booked.contains_key(&id) {
                continue;
            }
            if self.is_due(id) {
                self.send_reserve(id); // a retry
            } else {
                self.make_due(id);
            }
        }
        let mut expire = self.expire_retry.is_some_and(|at| at <= now);
        if expire {
            self.expire_retry = None;
        }
        while let Some(&(at, id)) = self.ends.first() {
            if at > now {
                break;
            }
            self.ends.pop_first();
            expire |= self.booked.contains_key(&id);
        }
        self.owed_cancels.retain(|_, r| r.slot.end() > now);
        if expire {
            self.expire(now).await;
        }
    }

    /// Expire what ended unused; the events then take them off the agenda.
    async fn expire(&mut self, now: OffsetDateTime) {
        match self.central.store.expire_due(now).await {
            Ok(expired) => {
                for r in &expired {
                    info!(reservation = r.id, charger = %r.charger_id, "reservation expired unused");
                    self.remove(r.id);
                }
            }
            Err(e) => {
                error!(error = %e, "could not expire reservations; retrying");
                self.expire_retry = Some(now + time::Duration::seconds(5));
            }
        }
    }
}
