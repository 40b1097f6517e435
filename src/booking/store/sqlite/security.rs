//! Security events on SQLite: the audit trail of what chargers reported and the server saw,
//! appended through the writer like every write and read newest first. No foreign key to
//! `chargers`: the trail outlives a deleted charger.

use sqlx::{SqliteConnection, SqlitePool};

use super::Written;
use crate::booking::store::{StoreError, rows};
use crate::domain::ChargeBoxId;
use crate::domain::instant::to_millis;
use crate::domain::security::SecurityEvent;

pub(super) async fn record_security_event(
    tx: &mut SqliteConnection,
    id: &ChargeBoxId,
    event: &SecurityEvent,
) -> Result<Written<()>, StoreError> {
    sqlx::query(
        "INSERT INTO security_events (charger_id, source, kind, at, received_at, tech_info, peer) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.as_str())
    .bind(event.source.as_str())
    .bind(&event.kind)
    .bind(to_millis(event.at))
    .bind(to_millis(event.received_at))
    .bind(&event.tech_info)
    .bind(event.peer.map(|p| p.to_string()))
    .execute(&mut *tx)
    .await?;
    Ok(((), None))
}

pub(super) async fn security_events(
    pool: &SqlitePool,
    id: &ChargeBoxId,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<(i64, SecurityEvent)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, source, kind, at, received_at, tech_info, peer FROM security_events \
         WHERE charger_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(id.as_str())
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(rows::security_event).collect()
}
