//! The event log on PostgreSQL: appending inside a writer's transaction, reading after a seq.
//! Gap-free through a one-row counter: appending takes its lock, held to commit, so
//! event-writing transactions commit in seq order and a rolled back one gives its number back.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use super::{D, pg_json};
use crate::booking::store::{StoreError, rows};
use crate::domain::event::{Event, EventKind};
use crate::domain::instant::to_millis;

/// Append one event inside the caller's transaction, as its last write (the counter row stays
/// locked from here to commit); its seq.
pub(super) async fn append_event(
    tx: &mut PgConnection,
    kind: EventKind,
    charger_id: Option<&str>,
    customer_id: Option<i64>,
    reservation_id: Option<i32>,
    data: &serde_json::Value,
) -> Result<i64, StoreError> {
    let seq = sqlx::query_scalar(
        "WITH next AS (UPDATE event_counter SET last_seq = last_seq + 1 RETURNING last_seq) \
         INSERT INTO events (seq, at, kind, charger_id, customer_id, reservation_id, data) \
         SELECT last_seq, ms_to_ts($1), $2, $3, $4, $5, $6::jsonb FROM next RETURNING seq",
    )
    .bind(to_millis(OffsetDateTime::now_utc()))
    .bind(kind.as_str())
    .bind(charger_id)
    .bind(customer_id)
    .bind(reservation_id)
    .bind(pg_json(data))
    .fetch_one(tx)
    .await?;
    Ok(seq)
}

/// The last event's seq (0 for an empty log).
pub(super) async fn last_seq(conn: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events")
            .fetch_one(conn)
            .await?,
    )
}

pub(super) async fn events_after(
    pool: &PgPool,
    after: i64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query(&D.events_after())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows::all(&rows, rows::event)
}

/// The ledger's identity, made by the migration that created `ledger_meta`.
pub(super) async fn ledger_id(pool: &PgPool) -> Result<String, StoreError> {
    Ok(sqlx::query_scalar(rows::LEDGER_ID).fetch_one(pool).await?)
}
