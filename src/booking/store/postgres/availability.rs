//! Connector availability on PostgreSQL: the last ChangeAvailability the server made per
//! connector, what it does to the reservations on it, and the out-of-service test of bookings.
//! A change takes its charger's row FOR UPDATE, which waits for every booking holding it FOR
//! KEY SHARE and holds off new ones until it commits; a booking reads availability only after
//! taking that lock, so neither can slip past the other.

use std::collections::BTreeSet;

use sqlx::{PgConnection, PgPool, Row};

use super::events::append_event;
use super::{RESERVATION_COLUMNS, Written};
use crate::booking::store::{StoreError, rows};
use crate::domain::ChargeBoxId;
use crate::domain::availability::{Availability, AvailabilityChange, ConnectorAvailability};
use crate::domain::event::{data, kind};
use crate::domain::instant::{from_millis, to_millis};
use crate::domain::reservation::{ChargerAck, Reservation};

const SELECT: &str = "SELECT connector_id, availability, scheduled, ts_to_ms(since) AS since \
     FROM connector_availability WHERE charger_id = $1 ORDER BY connector_id";

fn read(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<ConnectorAvailability>, StoreError> {
    rows.iter()
        .map(|row| {
            let text: String = row.try_get("availability")?;
            Ok(ConnectorAvailability {
                connector_id: u32::try_from(row.try_get::<i32, _>("connector_id")?)
                    .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?,
                availability: Availability::parse(&text).ok_or_else(|| {
                    StoreError::Database(sqlx::Error::Decode(
                        format!("availability {text:?}").into(),
                    ))
                })?,
                scheduled: row.try_get("scheduled")?,
                since: from_millis(row.try_get("since")?),
            })
        })
        .collect()
}

pub(super) async fn availability(
    pool: &PgPool,
    id: &ChargeBoxId,
) -> Result<Vec<ConnectorAvailability>, StoreError> {
    let rows = sqlx::query(SELECT)
        .bind(id.as_str())
        .fetch_all(pool)
        .await?;
    read(&rows)
}

/// The connectors of `id` out of service (0: the charger as a whole), read in the booking's
/// transaction after it locked the charger's row.
pub(super) async fn inoperative(
    tx: &mut PgConnection,
    id: &ChargeBoxId,
) -> Result<BTreeSet<u32>, StoreError> {
    let rows = sqlx::query(SELECT).bind(id.as_str()).fetch_all(tx).await?;
    Ok(read(&rows)?
        .into_iter()
        .filter(|a| a.availability == Availability::Inoperative)
        .map(|a| a.connector_id)
        .collect())
}

pub(super) async fn record_availability_change(
    tx: &mut PgConnection,
    id: &ChargeBoxId,
    change: &AvailabilityChange,
) -> Result<Written<Vec<Reservation>>, StoreError> {
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT connectors FROM chargers WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Ok((Vec::new(), None));
    }
    let connector = i32::try_from(change.connector_id)
        .map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))?;
    let since = to_millis(change.at);
    let state = change.availability.as_str();
    if connector == 0 {
        // The charger as a whole: every connector takes the same availability.
        sqlx::query(
            "UPDATE connector_availability SET availability = $2, scheduled = $3, \
             since = ms_to_ts($4) WHERE charger_id = $1 AND availability <> $2",
        )
        .bind(id.as_str())
        .bind(state)
        .bind(change.scheduled)
        .bind(since)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO connector_availability (charger_id, connector_id, availability, \
         scheduled, since) VALUES ($1, $2, $3, $4, ms_to_ts($5)) \
         ON CONFLICT (charger_id, connector_id) DO UPDATE SET \
         availability = excluded.availability, scheduled = excluded.scheduled, \
         since = excluded.since",
    )
    .bind(id.as_str())
    .bind(connector)
    .bind(state)
    .bind(change.scheduled)
    .bind(since)
    .execute(&mut *tx)
    .await?;
    // BOOKED reservations on the connector(s) whose slot is not over: marked when it leaves
    // service, offered again (PENDING) when it is back, unless the charger as a whole is
    // still Inoperative. Locked in id order, as every reservation writer does.
    let (from, to) = match change.availability {
        Availability::Inoperative => (None, ChargerAck::Unavailable),
        Availability::Operative => (Some(ChargerAck::Unavailable), ChargerAck::Pending),
    };
    let rows = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations r WHERE charger_id = $1 \
         AND ($2 = 0 OR connector_id = $2) AND status = 'BOOKED' AND end_at > ms_to_ts($3) \
         AND charger_ack <> $4 AND ($5::text IS NULL OR charger_ack = $5::text) \
         AND ($4 <> 'PENDING' OR NOT EXISTS (SELECT 1 FROM connector_availability a \
         WHERE a.charger_id = $1 AND a.connector_id IN (0, r.connector_id) \
         AND a.availability = 'Inoperative')) ORDER BY id FOR UPDATE"
    ))
    .bind(id.as_str())
    .bind(connector)
    .bind(since)
    .bind(to.as_str())
    .bind(from.map(ChargerAck::as_str))
    .fetch_all(&mut *tx)
    .await?;
    let mut changed = rows::all(&rows, rows::reservation)?;
    for r in &mut changed {
        sqlx::query(
            "UPDATE reservations SET charger_ack = $1, updated_at = ms_to_ts($2) WHERE id = $3",
        )
        .bind(to.as_str())
        .bind(since)
        .bind(r.id)
        .execute(&mut *tx)
        .await?;
        r.charger_ack = to;
        r.updated_at = from_millis(since);
    }
    // Events last: the counter row is held only from here to the commit.
    let mut seq = Some(
        append_event(
            tx,
            kind::CONNECTOR_AVAILABILITY_CHANGED,
            Some(id.as_str()),
            None,
            None,
            &data::availability_change(id, change),
        )
        .await?,
    );
    for r in &changed {
        seq = Some(
            append_event(
                tx,
                kind::RESERVATION_ACK_CHANGED,
                Some(r.charger_id.as_str()),
                Some(r.customer_id),
                Some(r.id),
                &data::reservation(r),
            )
            .await?,
        );
    }
    Ok((changed, seq))
}
