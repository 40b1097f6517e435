//! Chargers' local authorization lists on PostgreSQL: what the list holds (every customer's
//! tags and the list version, the seq of the last customer change) and each charger's last
//! sync.

use sqlx::{PgConnection, PgPool};

use super::{Written, pg_text};
use crate::booking::store::{StoreError, rows};
use crate::domain::ChargeBoxId;
use crate::domain::customer::TagRecord;
use crate::domain::instant::to_millis;
use crate::domain::local_list::LocalListState;

pub(super) async fn local_list_version(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(max(seq), 0)::bigint FROM events \
         WHERE kind IN ('CustomerCreated', 'CustomerUpdated', 'CustomerDeleted')",
    )
    .fetch_one(pool)
    .await?)
}

pub(super) async fn local_list_tags(pool: &PgPool) -> Result<Vec<(i64, TagRecord)>, StoreError> {
    let rows = sqlx::query(
        "SELECT customer_id, id_tag, status, ts_to_ms(expires_at) AS expires_at, parent_id_tag \
         FROM id_tags ORDER BY id_tag_key",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((rows::Columns::int(r, "customer_id")?, rows::tag(r)?)))
        .collect()
}

pub(super) async fn local_list_state(
    pool: &PgPool,
    id: &ChargeBoxId,
) -> Result<Option<LocalListState>, StoreError> {
    let row = sqlx::query(
        "SELECT version, ts_to_ms(synced_at) AS synced_at, status FROM local_lists \
         WHERE charger_id = $1",
    )
    .bind(pg_text(id.as_str()))
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(rows::local_list_state).transpose()
}

pub(super) async fn save_local_list_state(
    tx: &mut PgConnection,
    id: &ChargeBoxId,
    state: &LocalListState,
) -> Result<Written<()>, StoreError> {
    // Only for a charger that still exists: the INSERT … SELECT writes nothing otherwise.
    sqlx::query(
        "INSERT INTO local_lists (charger_id, version, synced_at, status) \
         SELECT id, $2, ms_to_ts($3), $4 FROM chargers WHERE id = $1 \
         ON CONFLICT (charger_id) DO UPDATE SET version = excluded.version, \
         synced_at = excluded.synced_at, status = excluded.status",
    )
    .bind(id.as_str())
    .bind(state.version)
    .bind(state.synced_at.map(to_millis))
    .bind(&state.status)
    .execute(&mut *tx)
    .await?;
    Ok(((), None))
}
