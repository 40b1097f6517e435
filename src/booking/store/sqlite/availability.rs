//! Connector availability on SQLite: the last ChangeAvailability the server made per connector,
//! what it does to the reservations on it, and the out-of-service test bookings run in their
//! own write transaction (the single writer serializes the two, so neither can slip past the
//! other).

use sqlx::{Row, SqliteConnection, SqlitePool};

use super::events::append_event;
use super::{RESERVATION_COLUMNS, Written};
use crate::booking::store::{StoreError, rows};
use crate::domain::ChargeBoxId;
use crate::domain::availability::{Availability, AvailabilityChange, ConnectorAvailability};
use crate::domain::event::{data, kind};
use crate::domain::instant::{from_millis, to_millis};
use crate::domain::reservation::{ChargerAck, Reservation};

/// The condition a booking's INSERT carries: no Inoperative row for connector `$2` or for the
/// charger as a whole (`$1` is the charger).
pub(super) const IN_SERVICE: &str = "NOT EXISTS (SELECT 1 FROM connector_availability a \
     WHERE a.charger_id = $1 AND a.connector_id IN (0, $2) AND a.availability = 'Inoperative')";

/// Whether `connector` of `charger` (one it has, accepted) is out of service, read in the
/// booking's transaction.
pub(super) async fn out_of_service(
    tx: &mut SqliteConnection,
    charger: &ChargeBoxId,
    connector: u32,
) -> Result<bool, StoreError> {
    let inoperative: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT 1 FROM chargers WHERE id = $1 AND connectors >= $2 AND state = 'accepted' \
         AND NOT {IN_SERVICE}"
    ))
    .bind(charger.as_str())
    .bind(i64::from(connector))
    .fetch_optional(tx)
    .await?;
    Ok(inoperative.is_some())
}

pub(super) async fn availability(
    pool: &SqlitePool,
    id: &ChargeBoxId,
) -> Result<Vec<ConnectorAvailability>, StoreError> {
    let rows = sqlx::query(
        "SELECT connector_id, availability, scheduled, since FROM connector_availability \
         WHERE charger_id = $1 ORDER BY connector_id",
    )
    .bind(id.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let text: String = row.try_get("availability")?;
            Ok(ConnectorAvailability {
                connector_id: u32::try_from(row.try_get::<i64, _>("connector_id")?)
                    .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?,
                availability: Availability::parse(&text).ok_or_else(|| {
                    StoreError::Database(sqlx::Error::Decode(
                        format!("availability {text:?}").into(),
                    ))
                })?,
                scheduled: row.try_get::<i64, _>("scheduled")? != 0,
                since: from_millis(row.try_get("since")?),
            })
        })
        .collect()
}

pub(super) async fn record_availability_change(
    tx: &mut SqliteConnection,
    id: &ChargeBoxId,
    change: &AvailabilityChange,
) -> Result<Written<Vec<Reservation>>, StoreError> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT connectors FROM chargers WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Ok((Vec::new(), None));
    }
    let (connector, since) = (i64::from(change.connector_id), to_millis(change.at));
    let scheduled = i64::from(change.scheduled);
    let state = change.availability.as_str();
    if change.connector_id == 0 {
        // The charger as a whole: every connector takes the same availability.
        sqlx::query(
            "UPDATE connector_availability SET availability = $2, scheduled = $3, since = $4 \
             WHERE charger_id = $1 AND availability <> $2",
        )
        .bind(id.as_str())
        .bind(state)
        .bind(scheduled)
        .bind(since)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO connector_availability (charger_id, connector_id, availability, \
         scheduled, since) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (charger_id, connector_id) \
         DO UPDATE SET availability = excluded.availability, scheduled = excluded.scheduled, \
         since = excluded.since",
    )
    .bind(id.as_str())
    .bind(connector)
    .bind(state)
    .bind(scheduled)
    .bind(since)
    .execute(&mut *tx)
    .await?;
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
    // BOOKED reservations on the connector(s) whose slot is not over: marked when it leaves
    // service, offered again (PENDING) when it is back, unless the charger as a whole is
    // still Inoperative.
    let (from, to) = match change.availability {
        Availability::Inoperative => (None, ChargerAck::Unavailable),
        Availability::Operative => (Some(ChargerAck::Unavailable), ChargerAck::Pending),
    };
    let rows = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations r WHERE charger_id = $1 \
         AND ($2 = 0 OR connector_id = $2) AND status = 'BOOKED' AND end_ms > $3 \
         AND charger_ack <> $4 AND ($5 IS NULL OR charger_ack = $5) \
         AND ($4 <> 'PENDING' OR NOT EXISTS (SELECT 1 FROM connector_availability a \
         WHERE a.charger_id = $1 AND a.connector_id IN (0, r.connector_id) \
         AND a.availability = 'Inoperative')) ORDER BY id"
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
        sqlx::query("UPDATE reservations SET charger_ack = $1, updated_at = $2 WHERE id = $3")
            .bind(to.as_str())
            .bind(since)
            .bind(r.id)
            .execute(&mut *tx)
            .await?;
        r.charger_ack = to;
        r.updated_at = from_millis(since);
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
