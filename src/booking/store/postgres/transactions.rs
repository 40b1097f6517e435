//! Transactions on PostgreSQL: StartTransaction decided by the pure start rules on facts read
//! and locked in the same transaction, StopTransaction once, MeterValues, and reading them
//! back. Every write locks the rows its decision rests on and appends its event last, so what
//! it read cannot change before it commits; losers of a race are retried.

use sqlx::{PgConnection, PgPool, Postgres};
use time::OffsetDateTime;

use super::events::append_event;
use super::reservations::{
    lock_reservations, reservation_in, reservation_on, set_reservation_status,
};
use super::{D, TRANSACTION_COLUMNS, Written, is_unique_violation, pg_text, retry_marker};
use crate::booking::store::{StoreError, implausible_meter, list_query, rows};
use crate::domain::event::{data, kind};
use crate::domain::instant::{from_millis, to_millis};
use crate::domain::reservation::{Reservation, ReservationStatus};
use crate::domain::transaction::{
    self as transaction, Authorization, MeterReadings, SUPERSEDED, StartContext, StartDecision,
    StartOutcome, StartPolicy, StartRequest, StopOutcome, StopRequest, Transaction,
    TransactionFilter, TransactionStatus, plausible_wh,
};

/// The tag's owner, status and expiry, the charger's connectors, the connector's running
/// transaction, whether the tag charges elsewhere.
type StartFacts = (
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i32>,
    Option<i32>,
    bool,
);

pub(super) async fn start_transaction(
    tx: &mut PgConnection,
    req: &StartRequest,
    policy: &StartPolicy,
) -> Result<Written<StartOutcome>, StoreError> {
    let started = to_millis(req.timestamp);
    let connector = i32::try_from(req.connector_id)
        .map_err(|_| StoreError::Unsupported(format!("connector {}", req.connector_id)))?;
    let charger = req.charger_id.as_str();
    let first = sqlx::query(&format!(
        "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE charger_id = $1 \
         AND connector_id = $2 AND started_at = ms_to_ts($3) AND meter_start_wh = $4 \
         AND id_tag = $5"
    ))
    .bind(charger)
    .bind(connector)
    .bind(started)
    .bind(req.meter_start_wh)
    .bind(pg_text(&req.id_tag))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = first {
        let transaction = rows::transaction(&row)?;
        let reservation = match transaction.reservation_id {
            Some(id) => reservation_in(tx, id, "").await?,
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
    let tag_key = req.id_tag.to_ascii_lowercase();
    // Starts of one idTag, then starts on one connector, take turns (always in this order, so
    // the queues cannot deadlock): whether the idTag charges elsewhere and what runs on the
    // connector cannot change until this commits.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('start-tag:' || $1)), \
         pg_advisory_xact_lock(hashtext('start-connector:' || $2), $3)",
    )
    .bind(&tag_key)
    .bind(charger)
    .bind(connector)
    .execute(&mut *tx)
    .await?;
    let (customer_id, tag_status, tag_expires, connectors, running, busy_elsewhere): StartFacts =
        sqlx::query_as(
            "SELECT (SELECT customer_id FROM id_tags WHERE id_tag_key = $1), \
         (SELECT status FROM id_tags WHERE id_tag_key = $1), \
         (SELECT ts_to_ms(expires_at) FROM id_tags WHERE id_tag_key = $1), \
         (SELECT connectors FROM chargers WHERE id = $2), \
         (SELECT id FROM transactions WHERE charger_id = $2 AND connector_id = $3 \
         AND status = 'ACTIVE' ORDER BY id DESC LIMIT 1), \
         EXISTS (SELECT 1 FROM transactions WHERE lower(id_tag) = $1 AND status = 'ACTIVE' \
         AND NOT (charger_id = $2 AND connector_id = $3))",
        )
        .bind(&tag_key)
        .bind(charger)
        .bind(connector)
        .fetch_one(&mut *tx)
        .await?;
    // The facts, locked: a concurrent start for the same reservation waits here until this
    // one commits, and then reads the reservation as CHARGING_STARTED.
    let (named, on_connector) = lock_reservations(
        tx,
        req.reservation_id,
        &req.charger_id,
        req.connector_id,
        req.timestamp,
        policy.early_grace,
    )
    .await?;
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
    if let (Some(running), StartDecision::Accept { .. }) = (running, &decision) {
        let ended = sqlx::query(&format!(
            "UPDATE transactions SET status = 'ENDED', \
             meter_stop_wh = coalesce(last_meter_wh, meter_start_wh), \
             stopped_at = GREATEST(started_at, ms_to_ts($1)), stop_reason = $2, \
             updated_at = ms_to_ts($3) WHERE id = $4 AND status = 'ACTIVE' \
             RETURNING {TRANSACTION_COLUMNS}"
        ))
        .bind(started)
        .bind(SUPERSEDED)
        .bind(now)
        .bind(running)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = ended {
            let mut t = rows::transaction(&row)?;
            t.compute_energy();
            tracing::warn!(
                charger,
                connector = req.connector_id,
                transaction = t.id,
                "a new start on the connector ended a transaction that was still running"
            );
            superseded = Some(t);
        }
    }
    let inserted = sqlx::query_scalar::<_, i32>(
        "INSERT INTO transactions (charger_id, connector_id, id_tag, customer_id, \
         reservation_id, status, auth_status, meter_start_wh, started_at, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, ms_to_ts($9), ms_to_ts($10), \
         ms_to_ts($10)) RETURNING id",
    )
    .bind(charger)
    .bind(connector)
    .bind(pg_text(&req.id_tag))
    .bind(owner)
    .bind(reservation_id)
    .bind(status.as_str())
    .bind(auth.as_str())
    .bind(req.meter_start_wh)
    .bind(started)
    .bind(now)
    .fetch_one(&mut *tx)
    .await;
    let id = match inserted {
        Ok(id) => id,
        // The same StartTransaction committed meanwhile (the retry answers it as repeated),
        // or the reservation got linked by another start (the retry decides again).
        Err(e) if is_unique_violation(&e) => return Err(StoreError::Database(retry_marker())),
        Err(e) => return Err(e.into()),
    };
    let mut reservation =
        reservation_id.and_then(|rid| named.into_iter().chain(on_connector).find(|r| r.id == rid));
    if let Some(r) = reservation.as_mut() {
        set_reservation_status(tx, r, ReservationStatus::ChargingStarted, now).await?;
    }
    let mut transaction = Transaction {
        id,
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
    // Events last: the counter row is held only from here to the commit.
    if let Some(t) = &superseded {
        let reservation = transaction_ended(tx, t, now).await?;
        append_event(
            tx,
            kind::TRANSACTION_STOPPED,
            Some(t.charger_id.as_str()),
            t.customer_id,
            t.reservation_id,
            &data::transaction(t, reservation.as_ref()),
        )
        .await?;
    }
    let seq = append_event(
        tx,
        event,
        Some(charger),
        owner,
        reservation_id,
        &data::transaction(&transaction, reservation.as_ref()),
    )
    .await?;
    Ok((
        StartOutcome {
            transaction,
            reservation,
            repeated: false,
            refusal,
            superseded,
        },
        Some(seq),
    ))
}

pub(super) async fn stop_transaction(
    tx: &mut PgConnection,
    req: &StopRequest,
) -> Result<Written<StopOutcome>, StoreError> {
    // The row lock counts a retried StopTransaction once: a concurrent repeat waits here
    // and then finds it ENDED.
    let row = sqlx::query(&format!(
        "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE id = $1 AND charger_id = $2 \
         FOR UPDATE"
    ))
    .bind(req.transaction_id)
    .bind(req.charger_id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(mut t) = row.as_ref().map(rows::transaction).transpose()? else {
        return Ok((StopOutcome::Unknown, None));
    };
    if t.status != TransactionStatus::Active {
        return Ok((StopOutcome::Unchanged(t), None));
    }
    let now = to_millis(OffsetDateTime::now_utc());
    let stopped = to_millis(req.timestamp);
    sqlx::query(
        "UPDATE transactions SET status = 'ENDED', meter_stop_wh = $1, \
         stopped_at = ms_to_ts($2), stop_reason = $3, updated_at = ms_to_ts($4) WHERE id = $5",
    )
    .bind(req.meter_stop_wh)
    .bind(stopped)
    .bind(req.reason.as_deref().map(pg_text))
    .bind(now)
    .bind(t.id)
    .execute(&mut *tx)
    .await?;
    t.status = TransactionStatus::Ended;
    t.meter_stop_wh = Some(req.meter_stop_wh);
    t.stopped_at = Some(from_millis(stopped));
    t.stop_reason = req.reason.clone();
    t.updated_at = from_millis(now);
    t.compute_energy();
    if t.energy_wh.is_none() {
        implausible_meter("stop", t.charger_id.as_str(), Some(t.id), req.meter_stop_wh);
    }
    let reservation = transaction_ended(tx, &t, now).await?;
    let seq = append_event(
        tx,
        kind::TRANSACTION_STOPPED,
        Some(t.charger_id.as_str()),
        t.customer_id,
        t.reservation_id,
        &data::transaction(&t, reservation.as_ref()),
    )
    .await?;
    Ok((
        StopOutcome::Stopped {
            transaction: t,
            reservation,
        },
        Some(seq),
    ))
}

pub(super) async fn record_meter_values(
    tx: &mut PgConnection,
    m: &MeterReadings,
) -> Result<Written<Option<Transaction>>, StoreError> {
    let charger = m.charger_id.as_str();
    // Locked, so concurrent messages for one transaction compare against each other's
    // latest reading instead of overwriting it.
    let row = match m.transaction_id {
        Some(id) => {
            sqlx::query(&format!(
                "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE id = $1 \
                 AND charger_id = $2 AND status = 'ACTIVE' FOR UPDATE"
            ))
            .bind(id)
            .bind(charger)
            .fetch_optional(&mut *tx)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE charger_id = $1 \
                 AND connector_id = $2 AND status = 'ACTIVE' ORDER BY id DESC LIMIT 1 \
                 FOR UPDATE"
            ))
            .bind(charger)
            .bind(m.connector_id as i32)
            .fetch_optional(&mut *tx)
            .await?
        }
    };
    let Some(mut t) = row.as_ref().map(rows::transaction).transpose()? else {
        return Ok((None, None));
    };
    let (readings, implausible): (Vec<_>, Vec<_>) =
        m.readings.iter().partition(|(_, wh)| plausible_wh(*wh));
    for (_, wh) in &implausible {
        implausible_meter("meter_values", charger, m.transaction_id, *wh);
    }
    let Some(&(latest_at, latest_wh)) = readings.iter().max_by_key(|(at, _)| *at) else {
        return Ok((None, None));
    };
    let (ats, whs): (Vec<i64>, Vec<i64>) = readings
        .iter()
        .map(|(at, wh)| (to_millis(*at), *wh))
        .unzip();
    sqlx::query(
        "INSERT INTO meter_values (transaction_id, at, wh) \
         SELECT $1, ms_to_ts(r.at), r.wh FROM unnest($2::bigint[], $3::bigint[]) AS r(at, wh)",
    )
    .bind(t.id)
    .bind(&ats)
    .bind(&whs)
    .execute(&mut *tx)
    .await?;
    // Readings can arrive out of order (re-sent after a reconnect): the newest one wins, unless
    // it is below the last one (or below meterStart): a meter running backwards is not energy.
    let newer = t.last_meter_at.is_none_or(|last| latest_at >= last);
    if newer && latest_wh < t.last_meter_wh.unwrap_or(t.meter_start_wh) {
        implausible_meter("meter_values", charger, Some(t.id), latest_wh);
    } else if newer {
        let now = to_millis(OffsetDateTime::now_utc());
        sqlx::query(
            "UPDATE transactions SET last_meter_wh = $1, last_meter_at = ms_to_ts($2), \
             updated_at = ms_to_ts($3) WHERE id = $4",
        )
        .bind(latest_wh)
        .bind(to_millis(latest_at))
        .bind(now)
        .bind(t.id)
        .execute(&mut *tx)
        .await?;
        t.last_meter_wh = Some(latest_wh);
        t.last_meter_at = Some(from_millis(to_millis(latest_at)));
        t.updated_at = from_millis(now);
        t.compute_energy();
    }
    let seq = append_event(
        tx,
        kind::METER_VALUES_RECORDED,
        Some(charger),
        t.customer_id,
        t.reservation_id,
        &data::transaction(&t, None),
    )
    .await?;
    Ok((Some(t), Some(seq)))
}

/// What follows a transaction's end in the same write: its reservation (locked; if it still
/// shows CHARGING_STARTED) becomes CHARGING_ENDED. The caller appends `TransactionStopped`.
async fn transaction_ended(
    tx: &mut PgConnection,
    t: &Transaction,
    now: i64,
) -> Result<Option<Reservation>, StoreError> {
    let mut reservation = match t.reservation_id {
        Some(id) => reservation_on(tx, id).await?,
        None => None,
    };
    if let Some(r) = reservation
        .as_mut()
        .filter(|r| r.status == ReservationStatus::ChargingStarted)
    {
        set_reservation_status(tx, r, ReservationStatus::ChargingEnded, now).await?;
    }
    Ok(reservation)
}

pub(super) async fn transaction(pool: &PgPool, id: i32) -> Result<Option<Transaction>, StoreError> {
    let row = sqlx::query(&D.transaction_by_id())
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rows::transaction).transpose()
}

/// Newest first.
pub(super) async fn transactions(
    pool: &PgPool,
    filter: &TransactionFilter,
) -> Result<Vec<Transaction>, StoreError> {
    let mut q = list_query::<Postgres>(
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
