//! The event log on SQLite: appending inside a writer's transaction, reading after a seq.
//! AUTOINCREMENT never reuses a number and one writer commits at a time: seq is gap-free.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::D;
use crate::booking::store::{StoreError, rows};
use crate::domain::event::{Event, EventKind};
use crate::domain::instant::to_millis;

/// The event INSERT both appends share, up to its values (a macro, so that `concat!` builds
/// the whole statement at compile time rather than per event).
macro_rules! insert_event {
    () => {
        "INSERT INTO events (at, kind, charger_id, customer_id, reservation_id, data) VALUES"
    };
}

/// Append one event inside the caller's transaction; its seq.
pub(super) async fn append_event(
    tx: &mut SqliteConnection,
    kind: EventKind,
    charger_id: Option<&str>,
    customer_id: Option<i64>,
    reservation_id: Option<i32>,
    data: &serde_json::Value,
) -> Result<i64, StoreError> {
    let seq = sqlx::query_scalar(concat!(
        insert_event!(),
        " ($1, $2, $3, $4, $5, $6) RETURNING seq"
    ))
    .bind(to_millis(OffsetDateTime::now_utc()))
    .bind(kind.as_str())
    .bind(charger_id)
    .bind(customer_id)
    .bind(reservation_id)
    .bind(data.to_string())
    .fetch_one(tx)
    .await?;
    Ok(seq)
}

/// Run `before` (statements that return no rows, built with `push_bind`) and append one event
/// after it, as one statement string: one hand-off to SQLite's thread for both instead of one
/// each. The event's seq.
pub(super) async fn append_event_after<'a>(
    tx: &mut SqliteConnection,
    mut before: QueryBuilder<'a, Sqlite>,
    kind: EventKind,
    charger_id: Option<&'a str>,
    customer_id: Option<i64>,
    reservation_id: Option<i32>,
    data: &serde_json::Value,
) -> Result<i64, StoreError> {
    before.push(concat!("; ", insert_event!(), " ("));
    let mut values = before.separated(", ");
    values.push_bind(to_millis(OffsetDateTime::now_utc()));
    values.push_bind(kind.as_str());
    values.push_bind(charger_id);
    values.push_bind(customer_id);
    values.push_bind(reservation_id);
    values.push_bind(data.to_string());
    before.push(") RETURNING seq");
    Ok(before.build_query_scalar().fetch_one(tx).await?)
}

/// The last event's seq (0 for an empty log).
pub(super) async fn last_seq(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events")
            .fetch_one(conn)
            .await?,
    )
}

pub(super) async fn events_after(
    pool: &SqlitePool,
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
pub(super) async fn ledger_id(pool: &SqlitePool) -> Result<String, StoreError> {
    Ok(sqlx::query_scalar(rows::LEDGER_ID).fetch_one(pool).await?)
}
