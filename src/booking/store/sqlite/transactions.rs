//! Transactions on SQLite: StartTransaction decided by the pure start rules on facts read in
//! the batch's transaction, StopTransaction once, MeterValues, and reading them back.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::events::{append_event, append_event_after};
use super::reservations::{reservation_on, set_reservation_status};
use super::{D, RESERVATION_COLUMNS, TRANSACTION_COLUMNS, Written};
use crate::booking::store::{StoreError, implausible_meter, list_query, rows};
use crate::domain::event::{data, kind};
use crate::domain::instant::{from_millis, to_millis};
use crate::domain::reservation::{Reservation, ReservationStatus};
use crate::domain::transaction::{
    self as transaction, Authorization, MeterReadings, SUPERSEDED, StartContext, StartDecision,
    StartOutcome, StartPolicy, StartRequest, StopOutcome, StopRequest, Transaction,
    TransactionFilter, TransactionStatus, plausible_wh,
};

/// The first query of a start: repeat, the tag's owner, status and expiry, the charger's
/// connectors, the connector's running transaction, whether the tag charges elsewhere.
type StartFacts = (
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    bool,
);

pub(super) async fn start_transaction(
    conn: &mut SqliteConnection,
    req: &StartRequest,
    policy: &StartPolicy,
) -> Result<Written<StartOutcome>, StoreError> {
    let started = to_millis(req.timestamp);
    let connector = i64::from(req.connector_id);
    let charger = req.charger_id.as_str();
    let tag = req.id_tag.as_str();
    // Each statement is a hand-off to SQLite's worker thread, the cost that dominates: the
    // repeat check, the idTag's owner, the charger's connectors, the connector's running
    // transaction and whether the idTag charges elsewhere come in one query, the named
    // reservation and the connector's live ones in another.
    let (repeat, customer_id, tag_status, tag_expires, connectors, running, busy_elsewhere): StartFacts = sqlx::query_as(
        "SELECT (SELECT id FROM transactions WHERE charger_id = $1 AND connector_id = $2 \
         AND started_at = $3 AND meter_start_wh = $4 AND id_tag = $5), \
         (SELECT customer_id FROM id_tags WHERE id_tag_key = $6), \
         (SELECT status FROM id_tags WHERE id_tag_key = $6), \
         (SELECT expires_at FROM id_tags WHERE id_tag_key = $6), \
         (SELECT connectors FROM chargers WHERE id = $1), \
         (SELECT id FROM transactions WHERE charger_id = $1 AND connector_id = $2 \
         AND status = 'ACTIVE' ORDER BY id DESC LIMIT 1), \
         EXISTS (SELECT 1 FROM transactions WHERE lower(id_tag) = $6 AND status = 'ACTIVE' \
         AND NOT (charger_id = $1 AND connector_id = $2))",
    )
    .bind(charger)
    .bind(connector)
    .bind(started)
    .bind(req.meter_start_wh)
    .bind(tag)
    .bind(req.id_tag.to_ascii_lowercase())
    .fetch_one(&mut *conn)
    .await?;
    if let Some(id) = repeat
        && let Some(transaction) = transaction_on(conn, id).await?
    {
        let reservation = match transaction.reservation_id {
            Some(id) => reservation_on(conn, id).await?,
            None => None,
        };
        let outcome = StartOutcome {
            transaction,
            reservation,
            repeated: true,
            refusal: None,
            superseded: None,
        };
        return Ok((outcome, None));
    }
    let found = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1 OR (charger_id = $2 \
         AND connector_id IN (0, $3) AND status IN ('BOOKED', 'CHARGING_STARTED') \
         AND start_ms <= $4 AND end_ms > $5) ORDER BY start_ms LIMIT 5"
    ))
    .bind(req.reservation_id.map(i64::from))
    .bind(charger)
    .bind(connector)
    .bind(to_millis(req.timestamp.saturating_add(policy.early_grace)))
    .bind(started)
    .fetch_all(&mut *conn)
    .await?;
    let mut named = None;
    let mut on_connector = Vec::new();
    for row in &found {
        let r = rows::reservation(row)?;
        let current = r.charger_id == req.charger_id
            && (r.connector_id == req.connector_id || r.connector_id == 0)
            && r.status.is_live()
            && r.slot.start() <= req.timestamp.saturating_add(policy.early_grace)
            && r.slot.end() > req.timestamp;
        if Some(r.id) == req.reservation_id {
            named = Some(r.clone());
        }
        if current {
            on_connector.push(r);
        }
    }
    let ctx = StartContext {
        customer_id,
        tag_refusal: rows::tag_refusal(tag_status.as_deref(), tag_expires)?,
        named: named.clone(),
        on_connector: on_connector.clone(),
        connectors: connectors.and_then(|n| u32::try_from(n).ok()),
        id_tag_busy_elsewhere: busy_elsewhere,
    };
    let decision = transaction::decide_start(req, &ctx, policy);
    let now = to_millis(OffsetDateTime::now_utc());
    let (status, auth, owner, reservation_id, refusal) = match &decision {
        StartDecision::Accept { reservation_id } => (
            TransactionStatus::Active,
            Authorization::Accepted,
            customer_id,
            *reservation_id,
            None,
        ),
        StartDecision::Refuse { status, reason } => (
            TransactionStatus::Refused,
            *status,
            None,
            None,
            Some(*reason),
        ),
    };
    if !plausible_wh(req.meter_start_wh) {
        implausible_meter("start", charger, None, req.meter_start_wh);
    }
    let mut superseded = None;
    let mut seq = None;
    if let (Some(running), StartDecision::Accept { .. }) = (running, &decision) {
        let ended = sqlx::query(&format!(
            "UPDATE transactions SET status = 'ENDED', \
             meter_stop_wh = coalesce(last_meter_wh, meter_start_wh), \
             stopped_at = max(started_at, $1), stop_reason = $2, updated_at = $3 \
             WHERE id = $4 AND status = 'ACTIVE' RETURNING {TRANSACTION_COLUMNS}"
        ))
        .bind(started)
        .bind(SUPERSEDED)
        .bind(now)
        .bind(running)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = ended {
            let (t, _, ended_seq) = transaction_ended(conn, rows::transaction(&row)?, now).await?;
            tracing::warn!(
                charger,
                connector = req.connector_id,
                transaction = t.id,
                "a new start on the connector ended a transaction that was still running"
            );
            superseded = Some(t);
            seq = Some(ended_seq);
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO transactions (charger_id, connector_id, id_tag, customer_id, reservation_id, \
         status, auth_status, meter_start_wh, started_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
    )
    .bind(charger)
    .bind(connector)
    .bind(tag)
    .bind(owner)
    .bind(reservation_id)
    .bind(status.as_str())
    .bind(auth.as_str())
    .bind(req.meter_start_wh)
    .bind(started)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let mut reservation =
        reservation_id.and_then(|rid| named.into_iter().chain(on_connector).find(|r| r.id == rid));
    if let Some(r) = reservation.as_mut() {
        set_reservation_status(conn, r, ReservationStatus::ChargingStarted, now).await?;
    }
    let mut transaction = Transaction {
        id: i32::try_from(id)
            .map_err(|_| StoreError::Conflict("transaction ids exhausted".into()))?,
        charger_id: req.charger_id.clone(),
        connector_id: req.connector_id,
        id_tag: req.id_tag.clone(),
        customer_id: owner,
        reservation_id,
        status,
        authorization: auth,
        meter_start_wh: req.meter_start_wh,
        started_at: from_millis(started),
        meter_stop_wh: None,
        stopped_at: None,
        stop_reason: None,
        last_meter_wh: None,
        last_meter_at: None,
        energy_wh: None,
        created_at: from_millis(now),
        updated_at: from_millis(now),
    };
    transaction.compute_energy();
    let event = if status == TransactionStatus::Refused {
        kind::TRANSACTION_REFUSED
    } else {
        kind::TRANSACTION_STARTED
    };
    let started_seq = append_event(
        conn,
        event,
        Some(charger),
        owner,
        reservation_id,
        &data::transaction(&transaction, reservation.as_ref()),
    )
    .await?;
    let outcome = StartOutcome {
        transaction,
        reservation,
        repeated: false,
        refusal,
        superseded,
    };
    Ok((outcome, Some(started_seq).max(seq)))
}

pub(super) async fn stop_transaction(
    conn: &mut SqliteConnection,
    req: &StopRequest,
) -> Result<Written<StopOutcome>, StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    // The common case in one statement: end it if it is running on this charger.
    let ended = sqlx::query(&format!(
        "UPDATE transactions SET status = 'ENDED', meter_stop_wh = $1, stopped_at = $2, \
         stop_reason = $3, updated_at = $4 WHERE id = $5 AND charger_id = $6 \
         AND status = 'ACTIVE' \
         RETURNING {TRANSACTION_COLUMNS}"
    ))
    .bind(req.meter_stop_wh)
    .bind(to_millis(req.timestamp))
    .bind(&req.reason)
    .bind(now)
    .bind(req.transaction_id)
    .bind(req.charger_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = ended else {
        // Not running: ended before (a retry), refused at the start, or not this charger's.
        let outcome = match transaction_on(conn, i64::from(req.transaction_id)).await? {
            Some(t) if t.charger_id == req.charger_id => StopOutcome::Unchanged(t),
            _ => StopOutcome::Unknown,
        };
        return Ok((outcome, None));
    };
    let t = rows::transaction(&row)?;
    if t.energy_wh.is_none() {
        implausible_meter("stop", t.charger_id.as_str(), Some(t.id), req.meter_stop_wh);
    }
    let (t, reservation, seq) = transaction_ended(conn, t, now).await?;
    let outcome = StopOutcome::Stopped {
        transaction: t,
        reservation,
    };
    Ok((outcome, Some(seq)))
}

pub(super) async fn record_meter_values(
    conn: &mut SqliteConnection,
    m: &MeterReadings,
) -> Result<Written<Option<Transaction>>, StoreError> {
    let (readings, implausible): (Vec<_>, Vec<_>) =
        m.readings.iter().partition(|(_, wh)| plausible_wh(*wh));
    for (_, wh) in &implausible {
        implausible_meter("meter_values", m.charger_id.as_str(), m.transaction_id, *wh);
    }
    let Some(&(latest_at, latest_wh)) = readings.iter().max_by_key(|(at, _)| *at) else {
        return Ok((None, None));
    };
    let (latest_at, now) = (to_millis(latest_at), to_millis(OffsetDateTime::now_utc()));
    // Find the transaction and keep its newest reading in one statement. Readings can arrive
    // out of order (re-sent after a reconnect): an older one does not move it back.
    // A newer reading below the last one (or below meterStart) is a meter running backwards:
    // not energy.
    let newer = "(last_meter_at IS NULL OR last_meter_at <= $1) \
         AND $2 >= coalesce(last_meter_wh, meter_start_wh)";
    let set = format!(
        "UPDATE transactions SET last_meter_wh = CASE WHEN {newer} THEN $2 ELSE last_meter_wh \
         END, updated_at = CASE WHEN {newer} THEN $3 ELSE updated_at END, \
         last_meter_at = CASE WHEN {newer} THEN $1 ELSE last_meter_at END"
    );
    let row = match m.transaction_id {
        Some(id) => {
            sqlx::query(&format!(
                "{set} WHERE id = $4 AND charger_id = $5 AND status = 'ACTIVE' \
                 RETURNING {TRANSACTION_COLUMNS}"
            ))
            .bind(latest_at)
            .bind(latest_wh)
            .bind(now)
            .bind(id)
            .bind(m.charger_id.as_str())
            .fetch_optional(&mut *conn)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "{set} WHERE id = (SELECT id FROM transactions WHERE charger_id = $5 \
                 AND connector_id = $4 AND status = 'ACTIVE' ORDER BY id DESC LIMIT 1) \
                 RETURNING {TRANSACTION_COLUMNS}"
            ))
            .bind(latest_at)
            .bind(latest_wh)
            .bind(now)
            .bind(i64::from(m.connector_id))
            .bind(m.charger_id.as_str())
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let Some(row) = row else {
        return Ok((None, None));
    };
    let t = rows::transaction(&row)?;
    if t.last_meter_wh != Some(latest_wh)
        && t.last_meter_at
            .is_none_or(|last| to_millis(last) <= latest_at)
    {
        implausible_meter("meter_values", m.charger_id.as_str(), Some(t.id), latest_wh);
    }
    let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO meter_values (transaction_id, at, wh) ");
    q.push_values(&readings, |mut row, (at, wh)| {
        row.push_bind(t.id).push_bind(to_millis(*at)).push_bind(*wh);
    });
    let seq = append_event_after(
        conn,
        q,
        kind::METER_VALUES_RECORDED,
        Some(m.charger_id.as_str()),
        t.customer_id,
        t.reservation_id,
        &data::transaction(&t, None),
    )
    .await?;
    Ok((Some(t), Some(seq)))
}

/// What follows a transaction's end in the same write: its reservation (if it still shows
/// CHARGING_STARTED) becomes CHARGING_ENDED, and `TransactionStopped` is appended.
async fn transaction_ended(
    conn: &mut SqliteConnection,
    t: Transaction,
    now: i64,
) -> Result<(Transaction, Option<Reservation>, i64), StoreError> {
    let reservation = match t.reservation_id {
        None => None,
        Some(id) => {
            let ended = sqlx::query(&format!(
                "UPDATE reservations SET status = 'CHARGING_ENDED', updated_at = $1 \
                 WHERE id = $2 AND status = 'CHARGING_STARTED' RETURNING {RESERVATION_COLUMNS}"
            ))
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            match ended {
                Some(row) => Some(rows::reservation(&row)?),
                None => reservation_on(conn, id).await?,
            }
        }
    };
    let seq = append_event(
        conn,
        kind::TRANSACTION_STOPPED,
        Some(t.charger_id.as_str()),
        t.customer_id,
        t.reservation_id,
        &data::transaction(&t, reservation.as_ref()),
    )
    .await?;
    Ok((t, reservation, seq))
}

pub(super) async fn transaction(
    pool: &SqlitePool,
    id: i32,
) -> Result<Option<Transaction>, StoreError> {
    let row = sqlx::query(&D.transaction_by_id())
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::transaction).transpose()
}

/// Newest first.
pub(super) async fn transactions(
    pool: &SqlitePool,
    filter: &TransactionFilter,
) -> Result<Vec<Transaction>, StoreError> {
    let mut q = list_query::<Sqlite>(
        TRANSACTION_COLUMNS,
        "transactions",
        filter.charger_id.as_ref(),
        filter.customer_id,
        filter.status.map(|s| s.as_str()),
    );
    // Keyset paging: ids are unique, so `id < after` resumes exactly where the last page
    // ended, however many rows are written meanwhile.
    if let Some(after) = filter.after {
        q.push(" AND id < ").push_bind(i64::from(after));
    }
    q.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(filter.limit));
    let rows = q.build().fetch_all(pool).await?;
    rows::all(&rows, rows::transaction)
}

/// One transaction read in the caller's transaction.
async fn transaction_on(
    tx: &mut SqliteConnection,
    id: i64,
) -> Result<Option<Transaction>, StoreError> {
    let row = sqlx::query(&D.transaction_by_id())
        .bind(id)
        .fetch_optional(tx)
        .await?;
    row.as_ref().map(rows::transaction).transpose()
}
