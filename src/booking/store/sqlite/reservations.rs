//! Reservations on SQLite: booking (the overlap triggers judge), cancelling, expiring, the
//! charger's answers, and what the dispatcher owes chargers.

use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::availability::{self, IN_SERVICE};
use super::events::append_event;
use super::{
    D, RESERVATION_COLUMNS, Written, is_foreign_key_violation, is_not_null_violation, is_overlap,
};
use crate::booking::store::{BookError, CancelError, StoreError, list_query, rows};
use crate::domain::ChargeBoxId;
use crate::domain::charger::{MAX_CONNECTORS, RegistrationState};
use crate::domain::event::{data, kind};
use crate::domain::instant::{from_millis, to_millis};
use crate::domain::reservation::{
    ChargerAck, NewReservation, Reservation, ReservationFilter, ReservationStatus,
};
use crate::domain::transaction::DispatchAgenda;

/// One booking. A refusal is decided before anything is written; either way an `Err` rolls
/// back to the caller's savepoint.
pub(super) async fn book(
    tx: &mut SqliteConnection,
    new: &NewReservation,
) -> Result<Written<Reservation>, BookError> {
    let now = to_millis(OffsetDateTime::now_utc());
    let (start, end) = (to_millis(new.slot.start()), to_millis(new.slot.end()));
    // Each statement is a round trip to SQLite's worker thread, the cost that dominates, so
    // the common path is BEGIN, one guarded INSERT, the event, COMMIT. The insert only
    // happens when the charger has that connector; the overlap trigger judges the slot, and
    // a refusal aborts just that statement.
    let (first, last) = match new.connector_id {
        // Connector 0 is the whole charger: the triggers judge it against every connector.
        Some(c) => (c, c),
        None => (1, MAX_CONNECTORS),
    };
    let mut booked = None;
    let mut overlapped = false;
    // The first connector found out of service (ChangeAvailability Inoperative).
    let mut out_of_service = None;
    for connector in first..=last {
        let inserted = sqlx::query(&format!(
            "INSERT INTO reservations (charger_id, connector_id, customer_id, id_tag, \
             start_ms, end_ms, status, charger_ack, created_at, updated_at) \
             SELECT $1, $2, (SELECT id FROM customers WHERE id = $3), $4, $5, $6, 'BOOKED', \
             'PENDING', $7, $7 \
             FROM chargers WHERE id = $1 AND connectors >= $2 AND state = 'accepted' \
             AND {IN_SERVICE} RETURNING id"
        ))
        .bind(new.charger_id.as_str())
        .bind(i64::from(connector))
        .bind(new.customer_id)
        .bind(&new.id_tag)
        .bind(start)
        .bind(end)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await;
        match inserted {
            Ok(Some(row)) => {
                booked = Some((row.try_get::<i64, _>(0)?, connector));
                break;
            }
            // Out of service (only then is the next connector worth trying), or no such
            // charger or connector: past the last one.
            Ok(None) => {
                if !availability::out_of_service(tx, &new.charger_id, connector).await? {
                    break;
                }
                out_of_service.get_or_insert(connector);
            }
            Err(e) if is_overlap(&e) => overlapped = true,
            // No foreign key guards the customer (a deleted customer's past reservations
            // stay): an unknown one selects NULL above, which the NOT NULL constraint refuses
            // after the overlap trigger has judged the slot (as the key used to), and the
            // aborted statement writes nothing.
            Err(e) if is_not_null_violation(&e) || is_foreign_key_violation(&e) => {
                return Err(BookError::UnknownCustomer(new.customer_id));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some((id, connector_id)) = booked else {
        if let (false, Some(connector)) = (overlapped, out_of_service) {
            return Err(BookError::OutOfService(connector));
        }
        if !overlapped {
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM chargers WHERE id = $1")
                    .bind(new.charger_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match state.as_deref().map(rows::registration_state) {
                None => BookError::UnknownCharger(new.charger_id.clone()),
                Some(Ok(RegistrationState::Accepted)) => BookError::UnknownConnector(first),
                Some(Ok(state)) => BookError::NotInService(new.charger_id.clone(), state),
                Some(Err(e)) => BookError::Store(e),
            });
        }
        let conflict = sqlx::query(&D.first_overlap())
            .bind(new.charger_id.as_str())
            .bind(i64::from(first))
            .bind(i64::from(last))
            .bind(end)
            .bind(start)
            .fetch_one(&mut *tx)
            .await?;
        return Err(BookError::Overlap(rows::slot(&conflict)?));
    };
    let reservation = Reservation {
        id: i32::try_from(id)
            .map_err(|_| StoreError::Conflict("reservation ids exhausted".into()))?,
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

/// Cancel a BOOKED reservation; with `owner`, someone else's is `NotFound`.
pub(super) async fn cancel_reservation(
    tx: &mut SqliteConnection,
    id: i32,
    owner: Option<i64>,
) -> Result<Written<Reservation>, CancelError> {
    let Some(mut reservation) = reservation_on(tx, id).await? else {
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
        "UPDATE reservations SET status = 'CANCELLED', updated_at = $1, \
         cancel_owed = (charger_ack <> 'PENDING') WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
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
    tx: &mut SqliteConnection,
    reservation_id: i32,
    ack: ChargerAck,
) -> Result<Written<Option<Reservation>>, StoreError> {
    let Some(mut r) = reservation_on(tx, reservation_id).await? else {
        return Ok((None, None));
    };
    let mut seq = None;
    if r.status == ReservationStatus::Booked && r.charger_ack != ack {
        seq = Some(set_ack(tx, &mut r, ack).await?);
    } else if r.status == ReservationStatus::Cancelled && ack == ChargerAck::Accepted {
        // Cancelled while ReserveNow was on its way: the charger holds it now.
        sqlx::query("UPDATE reservations SET cancel_owed = 1 WHERE id = $1")
            .bind(reservation_id)
            .execute(&mut *tx)
            .await?;
    }
    Ok((Some(r), seq))
}

pub(super) async fn record_connector_fault(
    tx: &mut SqliteConnection,
    charger_id: &ChargeBoxId,
    connector_id: u32,
    ack: ChargerAck,
    at: OffsetDateTime,
    grace: time::Duration,
) -> Result<Written<Vec<Reservation>>, StoreError> {
    let mut changed = Vec::new();
    let mut seq = None;
    for mut r in live_on_connector(tx, charger_id, connector_id, at, grace).await? {
        if r.charger_ack != ack {
            seq = Some(set_ack(tx, &mut r, ack).await?);
            changed.push(r);
        }
    }
    Ok((changed, seq))
}

pub(super) async fn record_cancel_delivered(
    tx: &mut SqliteConnection,
    reservation_id: i32,
) -> Result<Written<()>, StoreError> {
    sqlx::query("UPDATE reservations SET cancel_owed = 0 WHERE id = $1")
        .bind(reservation_id)
        .execute(tx)
        .await?;
    Ok(((), None))
}

pub(super) async fn expire_due(
    tx: &mut SqliteConnection,
    now: OffsetDateTime,
) -> Result<Written<Vec<Reservation>>, StoreError> {
    let rows = sqlx::query(&format!(
        "UPDATE reservations SET status = 'EXPIRED', updated_at = $1 \
         WHERE status = 'BOOKED' AND end_ms <= $1 RETURNING {RESERVATION_COLUMNS}"
    ))
    .bind(to_millis(now))
    .fetch_all(&mut *tx)
    .await?;
    let mut expired = rows::all(&rows, rows::reservation)?;
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

pub(super) async fn reservation(
    pool: &SqlitePool,
    id: i32,
) -> Result<Option<Reservation>, StoreError> {
    let row = sqlx::query(&D.reservation_by_id())
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::reservation).transpose()
}

pub(super) async fn reservations(
    pool: &SqlitePool,
    filter: &ReservationFilter,
) -> Result<Vec<Reservation>, StoreError> {
    let mut q = list_query::<sqlx::Sqlite>(
        RESERVATION_COLUMNS,
        "reservations",
        filter.charger_id.as_ref(),
        filter.customer_id,
        filter.status.map(|s| s.as_str()),
    );
    if let Some(from) = filter.from {
        q.push(" AND end_ms > ").push_bind(to_millis(from));
    }
    if let Some(to) = filter.to {
        q.push(" AND start_ms < ").push_bind(to_millis(to));
    }
    q.push(" ORDER BY start_ms, id LIMIT ")
        .push_bind(i64::from(filter.limit));
    let rows = q.build().fetch_all(pool).await?;
    rows::all(&rows, rows::reservation)
}

pub(super) async fn dispatch_agenda(
    pool: &SqlitePool,
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

pub(super) async fn overlapping_reservations(
    pool: &SqlitePool,
) -> Result<Vec<(i32, i32)>, StoreError> {
    let rows = sqlx::query(&D.overlapping()).fetch_all(pool).await?;
    rows::all(&rows, rows::pair)
}

/// One reservation read in the caller's transaction.
pub(super) async fn reservation_on(
    tx: &mut SqliteConnection,
    id: i32,
) -> Result<Option<Reservation>, StoreError> {
    let row = sqlx::query(&D.reservation_by_id())
        .bind(id)
        .fetch_optional(tx)
        .await?;
    row.as_ref().map(rows::reservation).transpose()
}

/// Live reservations on a connector whose slot, widened by `grace` before its start, holds `at`.
async fn live_on_connector(
    tx: &mut SqliteConnection,
    charger_id: &ChargeBoxId,
    connector_id: u32,
    at: OffsetDateTime,
    grace: time::Duration,
) -> Result<Vec<Reservation>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE charger_id = $1 \
         AND connector_id = $2 AND status IN ('BOOKED', 'CHARGING_STARTED') \
         AND start_ms <= $3 AND end_ms > $4 ORDER BY start_ms LIMIT 4"
    ))
    .bind(charger_id.as_str())
    .bind(i64::from(connector_id))
    .bind(to_millis(at.saturating_add(grace)))
    .bind(to_millis(at))
    .fetch_all(tx)
    .await?;
    rows::all(&rows, rows::reservation)
}

/// The charger's answer to ReserveNow (or a connector fault) as the reservation shows it; the
/// event's seq.
async fn set_ack(
    tx: &mut SqliteConnection,
    r: &mut Reservation,
    ack: ChargerAck,
) -> Result<i64, StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    sqlx::query("UPDATE reservations SET charger_ack = $1, updated_at = $2 WHERE id = $3")
        .bind(ack.as_str())
        .bind(now)
        .bind(r.id)
        .execute(&mut *tx)
        .await?;
    r.charger_ack = ack;
    r.updated_at = from_millis(now);
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

/// Move a reservation to `status`, keeping `r` in step.
pub(super) async fn set_reservation_status(
    tx: &mut SqliteConnection,
    r: &mut Reservation,
    status: ReservationStatus,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE reservations SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(now)
        .bind(r.id)
        .execute(tx)
        .await?;
    r.status = status;
    r.updated_at = from_millis(now);
    Ok(())
}
