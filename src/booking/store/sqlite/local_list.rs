//! Chargers' local authorization lists on SQLite: what the list holds (every customer's tags
//! and the list version, the seq of the last customer change) and each charger's last sync.

use sqlx::{SqliteConnection, SqlitePool};

use super::Written;
use crate::booking::store::{StoreError, rows};
use crate::domain::ChargeBoxId;
use crate::domain::customer::TagRecord;
use crate::domain::instant::to_millis;
use crate::domain::local_list::LocalListState;

/// The event kinds that change what a local list holds (a partial index serves the lookup).
const LIST_VERSION: &str = "SELECT coalesce(max(seq), 0) FROM events \
     WHERE kind IN ('CustomerCreated', 'CustomerUpdated', 'CustomerDeleted')";

pub(super) async fn local_list_version(pool: &SqlitePool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(LIST_VERSION).fetch_one(pool).await?)
}

pub(super) async fn local_list_tags(
    pool: &SqlitePool,
) -> Result<Vec<(i64, TagRecord)>, StoreError> {
    let rows = sqlx::query(
        "SELECT customer_id, id_tag, status, expires_at, parent_id_tag FROM id_tags \
         ORDER BY id_tag_key",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((rows::Columns::int(r, "customer_id")?, rows::tag(r)?)))
        .collect()
}

pub(super) async fn local_list_state(
    pool: &SqlitePool,
    id: &ChargeBoxId,
) -> Result<Option<LocalListState>, StoreError> {
    let row =
        sqlx::query("SELECT version, synced_at, status FROM local_lists WHERE charger_id = $1")
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?;
    row.as_ref().map(rows::local_list_state).transpose()
}

pub(super) async fn save_local_list_state(
    tx: &mut SqliteConnection,
    id: &ChargeBoxId,
    state: &LocalListState,
) -> Result<Written<()>, StoreError> {
    // Only for a charger that still exists: the INSERT … SELECT writes nothing otherwise.
    sqlx::query(
        "INSERT INTO local_lists (charger_id, version, synced_at, status) \
         SELECT id, $2, $3, $4 FROM chargers WHERE id = $1 \
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
