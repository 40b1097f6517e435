//! Chargers' configuration snapshots on SQLite: one row per charger, keys as JSON text.

use sqlx::{Row, SqliteConnection, SqlitePool};

use super::Written;
use super::events::append_event;
use crate::booking::store::StoreError;
use crate::domain::ChargeBoxId;
use crate::domain::configuration::{ConfigurationChange, ConfigurationKey, ConfigurationSnapshot};
use crate::domain::event::{data, kind};
use crate::domain::instant::{from_millis, to_millis};

const SELECT: &str =
    "SELECT fetched_at, keys, unknown_keys FROM charger_configuration WHERE charger_id = $1";

pub(super) async fn configuration(
    pool: &SqlitePool,
    id: &ChargeBoxId,
) -> Result<Option<ConfigurationSnapshot>, StoreError> {
    let row = sqlx::query(SELECT)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    row.map(|row| {
        snapshot(
            row.try_get("fetched_at")?,
            row.try_get("keys")?,
            row.try_get("unknown_keys")?,
        )
    })
    .transpose()
}

/// A row as a snapshot (the JSON columns read back).
pub(super) fn snapshot(
    fetched_at: i64,
    keys: String,
    unknown_keys: String,
) -> Result<ConfigurationSnapshot, StoreError> {
    let broken = |e: serde_json::Error| StoreError::Database(sqlx::Error::Decode(Box::new(e)));
    Ok(ConfigurationSnapshot {
        fetched_at: from_millis(fetched_at),
        keys: serde_json::from_str::<Vec<ConfigurationKey>>(&keys).map_err(broken)?,
        unknown_keys: serde_json::from_str::<Vec<String>>(&unknown_keys).map_err(broken)?,
    })
}

pub(super) async fn save_configuration(
    tx: &mut SqliteConnection,
    id: &ChargeBoxId,
    snapshot: &ConfigurationSnapshot,
) -> Result<Written<()>, StoreError> {
    // Only for a charger that still exists: the INSERT … SELECT writes nothing otherwise.
    sqlx::query(
        "INSERT INTO charger_configuration (charger_id, fetched_at, keys, unknown_keys) \
         SELECT id, $2, $3, $4 FROM chargers WHERE id = $1 \
         ON CONFLICT (charger_id) DO UPDATE SET fetched_at = excluded.fetched_at, \
         keys = excluded.keys, unknown_keys = excluded.unknown_keys",
    )
    .bind(id.as_str())
    .bind(to_millis(snapshot.fetched_at))
    .bind(json(&snapshot.keys)?)
    .bind(json(&snapshot.unknown_keys)?)
    .execute(&mut *tx)
    .await?;
    Ok(((), None))
}

pub(super) async fn record_configuration_change(
    tx: &mut SqliteConnection,
    id: &ChargeBoxId,
    change: &ConfigurationChange,
) -> Result<Written<()>, StoreError> {
    if change.in_effect() {
        let row = sqlx::query(SELECT)
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = row {
            let mut current = snapshot(
                row.try_get("fetched_at")?,
                row.try_get("keys")?,
                row.try_get("unknown_keys")?,
            )?;
            current.set(&change.key, &change.value);
            sqlx::query(
                "UPDATE charger_configuration SET keys = $2, unknown_keys = $3 \
                 WHERE charger_id = $1",
            )
            .bind(id.as_str())
            .bind(json(&current.keys)?)
            .bind(json(&current.unknown_keys)?)
            .execute(&mut *tx)
            .await?;
        }
    }
    let seq = append_event(
        tx,
        kind::CONFIGURATION_CHANGED,
        Some(id.as_str()),
        None,
        None,
        &data::configuration_change(id, change),
    )
    .await?;
    Ok(((), Some(seq)))
}

pub(super) fn json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))
}
