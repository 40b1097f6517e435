//! The fleet's configuration key policy on SQLite: one row per key, replaced as a whole.

use sqlx::{Row, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::Written;
use crate::booking::store::StoreError;
use crate::domain::instant::to_millis;

pub(super) async fn configuration_policy(
    pool: &SqlitePool,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query("SELECT key, value FROM configuration_policy ORDER BY key")
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get("key")?, row.try_get("value")?)))
        .collect()
}

pub(super) async fn replace_configuration_policy(
    tx: &mut SqliteConnection,
    keys: &[(String, String)],
) -> Result<Written<()>, StoreError> {
    sqlx::query("DELETE FROM configuration_policy")
        .execute(&mut *tx)
        .await?;
    let now = to_millis(OffsetDateTime::now_utc());
    for (key, value) in keys {
        sqlx::query(
            "INSERT INTO configuration_policy (key, value, updated_at) VALUES ($1, $2, $3)",
        )
        .bind(key)
        .bind(value)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(((), None))
}
