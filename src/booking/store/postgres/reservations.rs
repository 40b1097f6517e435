//! Reservations on PostgreSQL: booking (the exclusion constraint judges), cancelling,
//! expiring, the charger's answers, and what the dispatcher owes chargers. Every write locks
//! the rows its decision rests on (reservations in id order, so two writers never wait on each
//! other in a circle) and appends its events last.

use sqlx::{PgConnection, PgPool, Postgres, Row};
use time::OffsetDateTime;

use super::availability;
use super::events::append_event;
use super::{
    D, EXCLUSION_VIOLATION, FOREIGN_KEY_VIOLATION, RESERVATION_COLUMNS, Written, has_sqlstate,
    pg_text, retry_marker,
};
use crate::booking::store::{BookError, CancelError, StoreError, list_query, rows};
use crate::domain::ChargeBoxId;
use crate::domain::charger::RegistrationState;
use crate::domain::event::{data, kind};
use crate::domain::instant::{from_millis, to_millis};
use crate::domain::reservation::{
    ChargerAck, NewReservation, Reservation, ReservationFilter, ReservationStatus,
};
use crate::domain::transaction::DispatchAgenda;

pub(super) async fn book(
    tx: &mut PgConnection,
    new: &NewReservation,
) -> Result<Written<Reservation>, BookError> {
    // Which refusal wins when several apply is SQLite's: an unknown charger or connector,
    // then an overlap, and only then an unknown customer (known by the foreign key refusing
    // an insert the slot itself allowed). Connector 0 is the whole charger: the exclusion
    // constraint judges it against every connector.
    // KEY SHARE keeps the charger from being deleted until this commits (delete_charger
    // takes the row FOR UPDATE), without blocking telemetry updates of the same row.
    // Rejecting a charger takes it FOR UPDATE too, so its state cannot change under this.
    let charger: Option<(i32, String)> =
        sqlx::query_as("SELECT connectors, state FROM chargers WHERE id = $1 FOR KEY SHARE")
            .bind(new.charger_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
    let Some((connectors, state)) = charger else {
        return Err(BookError::UnknownCharger(new.charger_id.clone()));
    };
    let state = rows::registration_state(&state)?;
    if state != RegistrationState::Accepted {
        return Err(BookError::NotInService(new.charger_id.clone(), state));
    }
    let connectors = connectors as u32;
    let candidates = match new.connector_id {
        Some(c) if c > connectors => return Err(BookError::UnknownConnector(c)),
        Some(c) => c..=c,
        None => 1..=connectors,
    };
    // Read after the charger's row is locked: a ChangeAvailability holds it FOR UPDATE until
    // it commits, so what is read here is current for the whole booking.
    let inoperative = availability::inoperative(tx, &new.charger_id).await?;
    let out = |c: u32| inoperative.contains(&0) || inoperative.contains(&c);
    let in_service: Vec<u32> = candidates.clone().filter(|&c| !out(c)).collect();
    if in_service.is_empty() {
        return Err(BookError::OutOfService(*candidates.start()));
    }
    let now = to_millis(OffsetDateTime::now_utc());
    let (start, end) = (to_millis(new.slot.start()), to_millis(new.slot.end()));
    let mut booked = None;
    for connector in in_service {
        // The exclusion constraint is the judge; the savepoint confines its refusal to this
        // attempt so the next connector can be tried in the same transaction.
        sqlx::query("SAVEPOINT try_connector")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        // The advisory lock on (charger, connector) only queues bookers of one connector
        // behind each other; it decides nothing. Without it, two concurrent inserts of
        // overlapping slots can each find the other's uncommitted row and wait for each
        // other (rare: their index insertions must interleave), and then one waits out
        // deadlock_timeout (1 s by default) before being killed and retried. Locks are taken
        // after the charger row, in connector order, and before the event counter, so the
        // queue itself cannot deadlock. A whole-charger booking (connector 0) overlaps every
        // connector's, so it queues behind all of them: it takes (charger, 0) exclusively,
        // the others take it shared first (bookers of different connectors still pass each
        // other).
        let queue = if connector == 0 {
            "pg_advisory_xact_lock(hashtext($1), 0)"
        } else {
            "pg_advisory_xact_lock_shared(hashtext($1), 0), pg_advisory_xact_lock(hashtext($1), $2)"
        };
        let inserted = sqlx::query_scalar::<_, i32>(&format!(
            "WITH queued AS (SELECT {queue}) \
             INSERT INTO reservations (charger_id, connector_id, customer_id, id_tag, \
             start_at, end_at, status, charger_ack, created_at, updated_at) \
             SELECT $1, $2, $3, $4, ms_to_ts($5), ms_to_ts($6), 'BOOKED', 'PENDING', \
             ms_to_ts($7), ms_to_ts($7) FROM queued RETURNING id"
        ))
        .bind(new.charger_id.as_str())
        .bind(connector as i32)
        .bind(new.customer_id)
        .bind(pg_text(&new.id_tag))
        .bind(start)
        .bind(end)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        match inserted {
            Ok(id) => {
                booked = Some((id, connector));
                break;
            }
            Err(e) if has_sqlstate(&e, EXCLUSION_VIOLATION) => {
                sqlx::query("ROLLBACK TO SAVEPOINT try_connector")
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
            }
            Err(e) if has_sqlstate(&e, FOREIGN_KEY_VIOLATION) => {
                // The charger row is locked, so the missing key is the customer.
                return Err(BookError::UnknownCustomer(new.customer_id));
            }
            Err(e) => return Err(StoreError::from(e).into()),
        }
    }
    let Some((id, connector_id)) = booked else {
        // The same answer as SQLite: the earliest live slot that overlaps on the candidate
        // connectors. A fresh statement sees the committed conflicting row(s).
        let conflict = sqlx::query(&D.first_overlap())
            .bind(new.charger_id.as_str())
            .bind(*candidates.start() as i32)
            .bind(*candidates.end() as i32)
            .bind(end)
            .bind(start)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let Some(conflict) = conflict else {
            // The slot that refused us was cancelled in the meantime: try again.
            return Err(BookError::Store(StoreError::Database(retry_marker())));
        };
        return Err(BookError::Overlap(rows::slot(&conflict)?));
    };
    // No foreign key guards the customer (a deleted customer's past reservations stay), so it
    // is checked once the slot is won, as the key was. KEY SHARE keeps it from being deleted
    // until this commits: delete_customer takes the row FOR UPDATE, then cancels what it finds
    // booked. The `Err` rolls the inserted row back.
    let customer: Option<i64> =
        sqlx::query_scalar("SELECT id FROM customers WHERE id = $1 FOR KEY SHARE")
            .bind(new.customer_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
    if customer.is_none() {
        return Err(BookError::UnknownCustomer(new.customer_id));
    }
    let reservation = Reservation {
        id,
        charger_id: new.charger_id.clone(),
        connector_id,
        customer_id: new.customer_id,
        id_tag: new.id_tag.clone(),
        slot: new.slot,
        status: ReservationStatus::Booked,
        charger_ack: ChargerAck::Pending,
        created_at: from_millis(now),
        updated_at: from_millis(now),
    };
    let seq = append_event(
        tx,
        kind::RESERVATION_BOOKED,
        Some(new.charger_id.as_str()),
        Some(new.customer_id),
        Some(reservation.id),
        &data::reservation(&reservation),
    )
    .await?;
    Ok((reservation, Some(seq)))
}

pub(super) async fn cancel_reservation(
    tx: &mut PgConnection,
    id: i32,
    owner: Option<i64>,
) -> Result<Written<Reservation>, CancelError> {
    let row = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    let Some(mut reservation) = row.as_ref().map(rows::reservation).transpose()? else {
        return Err(CancelError::NotFound);
    };
    if owner.is_some_and(|o| o != reservation.customer_id) {
        return Err(CancelError::NotFound);
    }
    if reservation.status != ReservationStatus::Booked {
        return Err(CancelError::NotCancellable(reservation.status));
    }
    let now = to_millis(OffsetDateTime::now_utc());
    // A charger that was ever asked may hold it: it is owed a CancelReservation.
    sqlx::query(
        "UPDATE reservations SET status = 'CANCELLED', updated_at = ms_to_ts($1), \
         cancel_owed = (charger_ack <> 'PENDING') WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    reservation.status = ReservationStatus::Cancelled;
    reservation.updated_at = from_millis(now);
    let seq = append_event(
        tx,
        kind::RESERVATION_CANCELLED,
        Some(reservation.charger_id.as_str()),
        Some(reservation.customer_id),
        Some(reservation.id),
        &data::reservation(&reservation),
    )
    .await?;
    Ok((reservation, Some(seq)))
}

pub(super) async fn record_charger_ack(
    tx: &mut PgConnection,
    reservation_id: i32,
    ack: ChargerAck,
) -> Result<Written<Option<Reservation>>, StoreError> {
    let Some(mut r) = reservation_on(tx, reservation_id).await? else {
        return Ok((None, None));
    };
    let mut seq = None;
    if r.status == ReservationStatus::Booked && r.charger_ack != ack {
        let now = to_millis(OffsetDateTime::now_utc());
        set_ack(tx, &mut r, ack, now).await?;
        seq = Some(ack_changed(tx, &r).await?);
    } else if r.status == ReservationStatus::Cancelled && ack == ChargerAck::Accepted {
        // Cancelled while ReserveNow was on its way: the charger holds it now.
        sqlx::query("UPDATE reservations SET cancel_owed = true WHERE id = $1")
            .bind(reservation_id)
            .execute(&mut *tx)
            .await?;
    }
    Ok((Some(r), seq))
}

pub(super) async fn record_connector_fault(
    tx: &mut PgConnection,
    charger_id: &ChargeBoxId,
    connector_id: u32,
    ack: ChargerAck,
    at: OffsetDateTime,
    grace: time::Duration,
) -> Result<Written<Vec<Reservation>>, StoreError> {
    let (_, live) = lock_reservations(tx, None, charger_id, connector_id, at, grace).await?;
    let now = to_millis(OffsetDateTime::now_utc());
    let mut changed = Vec::new();
    for mut r in live {
        if r.charger_ack != ack {
            set_ack(tx, &mut r, ack, now).await?;
            changed.push(r);
        }
    }
    // Events last: the counter row is held only from here to the commit.
    let mut seq = None;
    for r in &changed {
        seq = Some(ack_changed(tx, r).await?);
    }
    Ok((changed, seq))
}

pub(super) async fn record_cancel_delivered(
    tx: &mut PgConnection,
    reservation_id: i32,
) -> Result<Written<()>, StoreError> {
    sqlx::query("UPDATE reservations SET cancel_owed = false WHERE id = $1")
        .bind(reservation_id)
        .execute(tx)
        .await?;
    Ok(((), None))
}

pub(super) async fn expire_due(
    tx: &mut PgConnection,
    now: OffsetDateTime,
) -> Result<Written<Vec<Reservation>>, StoreError> {
    // Locked in id order first; a reservation a start links meanwhile is re-read as
    // CHARGING_STARTED and left alone.
    let rows = sqlx::query(&format!(
        "WITH due AS (SELECT id FROM reservations WHERE status = 'BOOKED' \
         AND end_at <= ms_to_ts($1) ORDER BY id FOR UPDATE) \
         UPDATE reservations SET status = 'EXPIRED', updated_at = ms_to_ts($1) \
         WHERE id IN (SELECT id FROM due) AND status = 'BOOKED' \
         RETURNING {RESERVATION_COLUMNS}"
    ))
    .bind(to_millis(now))
    .fetch_all(&mut *tx)
    .await?;
    let mut expired = rows
        .iter()
        .map(rows::reservation)
        .collect::<Result<Vec<_>, _>>()?;
    expired.sort_by_key(|r| r.id);
    let mut seq = None;
    for r in &expired {
        seq = Some(
            append_event(
                tx,
                kind::RESERVATION_EXPIRED,
                Some(r.charger_id.as_str()),
                Some(r.customer_id),
                Some(r.id),
                &data::reservation(r),
            )
            .await?,
        );
    }
    Ok((expired, seq))
}

pub(super) async fn reservation(pool: &PgPool, id: i32) -> Result<Option<Reservation>, StoreError> {
    let row = sqlx::query(&D.reservation_by_id())
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::reservation).transpose()
}

pub(super) async fn reservations(
    pool: &PgPool,
    filter: &ReservationFilter,
) -> Result<Vec<Reservation>, StoreError> {
    let mut q = list_query::<Postgres>(
        RESERVATION_COLUMNS,
        "reservations",
        filter.charger_id.as_ref(),
        filter.customer_id,
        filter.status.map(|s| s.as_str()),
    );
    if let Some(from) = filter.from {
        q.push(" AND end_at > ms_to_ts(")
            .push_bind(to_millis(from))
            .push(")");
    }
    if let Some(to) = filter.to {
        q.push(" AND start_at < ms_to_ts(")
            .push_bind(to_millis(to))
            .push(")");
    }
    q.push(" ORDER BY start_at, id LIMIT ")
        .push_bind(i64::from(filter.limit));
    let rows = q.build().fetch_all(pool).await?;
    rows::all(&rows, rows::reservation)
}

pub(super) async fn dispatch_agenda(
    pool: &PgPool,
    now: OffsetDateTime,
) -> Result<DispatchAgenda, StoreError> {
    let now = to_millis(now);
    let booked = sqlx::query(&D.booked_not_over())
        .bind(now)
        .fetch_all(pool)
        .await?;
    let owed = sqlx::query(&D.cancels_owed())
        .bind(now)
        .fetch_all(pool)
        .await?;
    Ok(DispatchAgenda {
        booked: rows::all(&booked, rows::reservation)?,
        cancels_owed: rows::all(&owed, rows::reservation)?,
    })
}

pub(super) async fn overlapping_reservations(pool: &PgPool) -> Result<Vec<(i32, i32)>, StoreError> {
    let rows = sqlx::query(&D.overlapping()).fetch_all(pool).await?;
    rows::all(&rows, rows::pair)
}

/// A reservation live on connector `$3` (or the whole charger, connector 0) of charger `$2` whose slot, widened by the early grace
/// before its start, holds the instant `$5`; `$4` is that instant plus the grace (milliseconds).
const LIVE_AT: &str = "charger_id = $2 AND connector_id IN (0, $3) \
     AND status IN ('BOOKED', 'CHARGING_STARTED') \
     AND start_at <= ms_to_ts($4) AND end_at > ms_to_ts($5)";

/// How many live reservations on a connector the start rules look at (as SQLite's
/// `live_on_connector`): the earliest-starting ones.
const ON_CONNECTOR_LIMIT: usize = 4;

/// One reservation, locked until the caller's transaction ends.
pub(super) async fn reservation_on(
    tx: &mut PgConnection,
    id: i32,
) -> Result<Option<Reservation>, StoreError> {
    reservation_in(tx, id, " FOR UPDATE").await
}

/// One reservation read in the caller's transaction, with `lock` (a locking clause, or "").
pub(super) async fn reservation_in(
    tx: &mut PgConnection,
    id: i32,
    lock: &str,
) -> Result<Option<Reservation>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(tx)
    .await?;
    row.as_ref().map(rows::reservation).transpose()
}

/// Lock, in id order and in one statement, the reservation `named` (if any) and the live
/// reservations on the connector whose slot, widened by `grace` before its start, holds `at`.
/// Returns the named one and the earliest-starting of those on the connector, as SQLite's
/// `reservation_on` and `live_on_connector` read them. A row changed by a concurrent writer is
/// returned as that writer committed it (and dropped if it no longer qualifies).
pub(super) async fn lock_reservations(
    tx: &mut PgConnection,
    named: Option<i32>,
    charger_id: &ChargeBoxId,
    connector_id: u32,
    at: OffsetDateTime,
    grace: time::Duration,
) -> Result<(Option<Reservation>, Vec<Reservation>), StoreError> {
    // PostgreSQL re-evaluates the whole select list on the newest row version after waiting
    // for a lock, so `on_connector` describes the row as returned.
    let rows = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS}, ({LIVE_AT}) AS on_connector FROM reservations \
         WHERE id = $1 OR ({LIVE_AT}) ORDER BY id FOR UPDATE"
    ))
    .bind(named)
    .bind(charger_id.as_str())
    .bind(connector_id as i32)
    .bind(to_millis(at.saturating_add(grace)))
    .bind(to_millis(at))
    .fetch_all(tx)
    .await?;
    let mut found = None;
    let mut live = Vec::new();
    for row in &rows {
        let r = rows::reservation(row)?;
        if row.try_get::<bool, _>("on_connector")? {
            live.push(r.clone());
        }
        if Some(r.id) == named {
            found = Some(r);
        }
    }
    live.sort_by_key(|r| r.slot.start());
    live.truncate(ON_CONNECTOR_LIMIT);
    Ok((found, live))
}

/// The charger's answer to ReserveNow (or a connector fault) as the reservation shows it; the
/// caller appends [`ack_changed`] once its other writes are done.
async fn set_ack(
    tx: &mut PgConnection,
    r: &mut Reservation,
    ack: ChargerAck,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE reservations SET charger_ack = $1, updated_at = ms_to_ts($2) WHERE id = $3",
    )
    .bind(ack.as_str())
    .bind(now)
    .bind(r.id)
    .execute(tx)
    .await?;
    r.charger_ack = ack;
    r.updated_at = from_millis(now);
    Ok(())
}

async fn ack_changed(tx: &mut PgConnection, r: &Reservation) -> Result<i64, StoreError> {
    append_event(
        tx,
        kind::RESERVATION_ACK_CHANGED,
        Some(r.charger_id.as_str()),
        Some(r.customer_id),
        Some(r.id),
        &data::reservation(r),
    )
    .await
}

/// Move a (locked) reservation to `status`, keeping `r` in step.
pub(super) async fn set_reservation_status(
    tx: &mut PgConnection,
    r: &mut Reservation,
    status: ReservationStatus,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE reservations SET status = $1, updated_at = ms_to_ts($2) WHERE id = $3")
        .bind(status.as_str())
        .bind(now)
        .bind(r.id)
        .execute(tx)
        .await?;
    r.status = status;
    r.updated_at = from_millis(now);
    Ok(())
}
