//! Chargers on SQLite: registration, changes, deletion, reported state, and reading them back
//! with their connector statuses.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::events::append_event;
use super::{CHARGER_COLUMNS, D, Written, is_unique_violation};
use crate::booking::store::{Page, StoreError, rows};
use crate::domain::ChargeBoxId;
use crate::domain::charger::{
    BootInfo, ChargerCredentials, ChargerPatch, ChargerRecord, ChargerState, NewCharger,
    RegistrationState,
};
use crate::domain::event::{EventKind, data, kind};
use crate::domain::instant::{from_millis, to_millis};

pub(super) async fn insert_charger(
    tx: &mut SqliteConnection,
    new: &NewCharger,
) -> Result<Written<ChargerRecord>, StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    let result = sqlx::query(
        "INSERT INTO chargers (id, name, connectors, password_hash, security_profile, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $6, $5, $5)",
    )
    .bind(new.id.as_str())
    .bind(&new.name)
    .bind(i64::from(new.connectors))
    .bind(&new.password_hash)
    .bind(now)
    .bind(i64::from(new.security_profile.level()))
    .execute(&mut *tx)
    .await;
    match result {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Conflict(format!(
                "charger {} already exists",
                new.id
            )));
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let record = rows::registered(new, from_millis(now));
    let seq = append_event(
        tx,
        kind::CHARGER_REGISTERED,
        Some(new.id.as_str()),
        None,
        None,
        &data::charger(&record),
    )
    .await?;
    Ok((record, Some(seq)))
}

/// The state the charger is in after its first Boot: `state` when this inserted it, else what
/// was stored already.
pub(super) async fn record_unknown_charger(
    tx: &mut SqliteConnection,
    id: &ChargeBoxId,
    state: RegistrationState,
    boot: &BootInfo,
    at: OffsetDateTime,
) -> Result<Written<RegistrationState>, StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    let inserted = sqlx::query(
        "INSERT INTO chargers (id, state, connectors, vendor, model, serial_number, \
         charge_box_serial_number, firmware_version, iccid, imsi, meter_type, \
         meter_serial_number, last_boot_at, last_seen_at, created_at, updated_at) \
         VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $13) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id.as_str())
    .bind(state.as_str())
    .bind(&boot.vendor)
    .bind(&boot.model)
    .bind(&boot.serial_number)
    .bind(&boot.charge_box_serial_number)
    .bind(&boot.firmware_version)
    .bind(&boot.iccid)
    .bind(&boot.imsi)
    .bind(&boot.meter_type)
    .bind(&boot.meter_serial_number)
    .bind(to_millis(at))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        let stored: String = sqlx::query_scalar(rows::CHARGER_REGISTRATION)
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        return Ok((rows::registration_state(&stored)?, None));
    }
    let record = rows::unknown(id, state, boot, at, from_millis(now));
    let (kind, data) = match state {
        RegistrationState::Accepted => (kind::CHARGER_REGISTERED, data::charger(&record)),
        _ => (kind::CHARGER_PENDING, data::unknown_charger(&record)),
    };
    let seq = append_event(tx, kind, Some(id.as_str()), None, None, &data).await?;
    Ok((state, Some(seq)))
}

/// Whether there was such a charger.
pub(super) async fn update_charger(
    tx: &mut SqliteConnection,
    id: &ChargeBoxId,
    patch: &ChargerPatch,
) -> Result<Written<bool>, StoreError> {
    patch_charger(tx, id, patch, None, kind::CHARGER_UPDATED).await
}

/// Whether there was such a charger.
pub(super) async fn set_charger_registration(
    tx: &mut SqliteConnection,
    id: &ChargeBoxId,
    state: RegistrationState,
    patch: &ChargerPatch,
) -> Result<Written<bool>, StoreError> {
    if state == RegistrationState::Rejected {
        // In the write transaction: the one writer orders it with every booking.
        let live: i64 = sqlx::query_scalar(rows::LIVE_RESERVATIONS)
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if live > 0 {
            return Err(rows::held(id, live));
        }
    }
    patch_charger(tx, id, patch, Some(state), rows::verdict_kind(state)).await
}

/// Apply `patch` (and `state`), appending `kind` with the charger as it then stands.
async fn patch_charger(
    tx: &mut SqliteConnection,
    id: &ChargeBoxId,
    patch: &ChargerPatch,
    state: Option<RegistrationState>,
    kind: EventKind,
) -> Result<Written<bool>, StoreError> {
    // Checked in the write transaction: the one writer orders it with every booking.
    if let Some(n) = patch.connectors {
        let above: Option<i64> = sqlx::query_scalar(rows::LIVE_CONNECTOR_ABOVE)
            .bind(id.as_str())
            .bind(i64::from(n))
            .fetch_one(&mut *tx)
            .await?;
        if let Some(c) = above {
            return Err(rows::stranded(c));
        }
    }
    let mut q = QueryBuilder::<Sqlite>::new("UPDATE chargers SET updated_at = ");
    q.push_bind(to_millis(OffsetDateTime::now_utc()));
    if let Some(name) = &patch.name {
        q.push(", name = ").push_bind(name.clone());
    }
    if let Some(n) = patch.connectors {
        q.push(", connectors = ").push_bind(i64::from(n));
    }
    if let Some(hash) = &patch.password_hash {
        q.push(", password_hash = ").push_bind(hash.clone());
    }
    if let Some(profile) = patch.security_profile {
        q.push(", security_profile = ")
            .push_bind(i32::from(profile.level()));
    }
    if let Some(state) = state {
        q.push(", state = ").push_bind(state.as_str());
    }
    q.push(" WHERE id = ").push_bind(id.as_str());
    q.push(format!(" RETURNING {CHARGER_COLUMNS}"));
    let Some(row) = q.build().fetch_optional(&mut *tx).await? else {
        return Ok((false, None));
    };
    let record = rows::charger(&row)?;
    let seq = append_event(
        tx,
        kind,
        Some(id.as_str()),
        None,
        None,
        &data::charger(&record),
    )
    .await?;
    Ok((true, Some(seq)))
}

/// `false` when there was no such charger; `Conflict` while it has live reservations.
pub(super) async fn delete_charger(
    tx: &mut SqliteConnection,
    id: &ChargeBoxId,
) -> Result<Written<bool>, StoreError> {
    let live: i64 = sqlx::query_scalar(rows::LIVE_RESERVATIONS)
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
    if live > 0 {
        return Err(rows::held(id, live));
    }
    // Its connector states and past reservations go with it (ON DELETE CASCADE).
    let done = sqlx::query("DELETE FROM chargers WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok((false, None));
    }
    let seq = append_event(
        tx,
        kind::CHARGER_DELETED,
        Some(id.as_str()),
        None,
        None,
        &serde_json::json!({"id": id.as_str()}),
    )
    .await?;
    Ok((true, Some(seq)))
}

/// Reported state, telemetry rather than a ledger change: appends no event. States of a charger
/// deleted meanwhile are dropped.
///
/// Every charger's last-seen time in one statement and every connector's status in another,
/// whatever the number of chargers in the flush: each statement is a hand-off to SQLite's
/// thread, and one per charger and connector was a quarter of all the statements the server ran
/// under the charging load. The rows go as one JSON array bound to a statement whose text never
/// changes, so it stays prepared (a VALUES list would be a new statement for every flush size).
pub(super) async fn save_charger_states(
    tx: &mut SqliteConnection,
    states: &[ChargerState],
) -> Result<Written<()>, StoreError> {
    let seen: Vec<_> = states
        .iter()
        .filter_map(|s| {
            Some(serde_json::json!([
                s.id.as_str(),
                to_millis(s.last_seen_at?)
            ]))
        })
        .collect();
    if !seen.is_empty() {
        sqlx::query(
            "UPDATE chargers SET last_seen_at = max(coalesce(chargers.last_seen_at, 0), \
             seen.value ->> 1) FROM json_each($1) AS seen WHERE chargers.id = seen.value ->> 0",
        )
        .bind(serde_json::Value::Array(seen).to_string())
        .execute(&mut *tx)
        .await?;
    }
    for s in states {
        if let Some((boot, at)) = &s.boot {
            sqlx::query(
                "UPDATE chargers SET vendor = $1, model = $2, serial_number = $3, \
                 charge_box_serial_number = $4, firmware_version = $5, iccid = $6, imsi = $7, \
                 meter_type = $8, meter_serial_number = $9, last_boot_at = $10 WHERE id = $11",
            )
            .bind(&boot.vendor)
            .bind(&boot.model)
            .bind(&boot.serial_number)
            .bind(&boot.charge_box_serial_number)
            .bind(&boot.firmware_version)
            .bind(&boot.iccid)
            .bind(&boot.imsi)
            .bind(&boot.meter_type)
            .bind(&boot.meter_serial_number)
            .bind(to_millis(*at))
            .bind(s.id.as_str())
            .execute(&mut *tx)
            .await?;
        }
    }
    let connectors: Vec<_> = states
        .iter()
        .flat_map(|s| {
            s.connector_status.iter().map(|c| {
                serde_json::json!([
                    s.id.as_str(),
                    c.connector_id,
                    c.status.as_ref(),
                    c.error_code.as_ref(),
                    c.info,
                    c.vendor_error_code,
                    c.reported_at.map(to_millis),
                    to_millis(c.updated_at),
                ])
            })
        })
        .collect();
    if !connectors.is_empty() {
        // The guard drops states of a charger deleted after it reported them. Rows keep the
        // order they were reported in, so a connector reported twice ends with its last state.
        sqlx::query(
            "INSERT INTO connector_status (charger_id, connector_id, status, error_code, \
             info, vendor_error_code, reported_at, updated_at) \
             SELECT c.value ->> 0, c.value ->> 1, c.value ->> 2, c.value ->> 3, c.value ->> 4, \
             c.value ->> 5, c.value ->> 6, c.value ->> 7 FROM json_each($1) AS c \
             WHERE EXISTS (SELECT 1 FROM chargers WHERE id = c.value ->> 0) ORDER BY c.key \
             ON CONFLICT (charger_id, connector_id) DO UPDATE SET status = excluded.status, \
             error_code = excluded.error_code, info = excluded.info, \
             vendor_error_code = excluded.vendor_error_code, \
             reported_at = excluded.reported_at, updated_at = excluded.updated_at",
        )
        .bind(serde_json::Value::Array(connectors).to_string())
        .execute(&mut *tx)
        .await?;
    }
    Ok(((), None))
}

pub(super) async fn charger(
    pool: &SqlitePool,
    id: &ChargeBoxId,
) -> Result<Option<ChargerRecord>, StoreError> {
    let row = sqlx::query(&D.charger_by_id())
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(records(pool, vec![row]).await?.pop()),
    }
}

pub(super) async fn charger_credentials(
    pool: &SqlitePool,
    id: &ChargeBoxId,
) -> Result<Option<ChargerCredentials>, StoreError> {
    let row = sqlx::query(rows::CHARGER_CREDENTIALS)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    row.map(|r| rows::credentials(&r))
        .transpose()
        .map_err(Into::into)
}

pub(super) async fn charger_registration(
    pool: &SqlitePool,
    id: &ChargeBoxId,
) -> Result<Option<RegistrationState>, StoreError> {
    let state: Option<String> = sqlx::query_scalar(rows::CHARGER_REGISTRATION)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    state.as_deref().map(rows::registration_state).transpose()
}

pub(super) async fn chargers(
    pool: &SqlitePool,
    page: &Page,
) -> Result<Vec<ChargerRecord>, StoreError> {
    let sql = match page.state {
        None => D.chargers_after(),
        Some(_) => D.chargers_in_state_after(),
    };
    let mut q = sqlx::query(&sql)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(i64::from(page.limit));
    if let Some(state) = page.state {
        q = q.bind(state.as_str());
    }
    let rows = q.fetch_all(pool).await?;
    records(pool, rows).await
}

/// Rows plus their connector statuses, in row order.
async fn records(
    pool: &SqlitePool,
    rows: Vec<SqliteRow>,
) -> Result<Vec<ChargerRecord>, StoreError> {
    let mut records = rows::all(&rows, rows::charger)?;
    // Chunked so the bind count stays far below SQLite's limit.
    for chunk in records.chunks_mut(500) {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM connector_status WHERE charger_id IN (",
            rows::CONNECTOR_STATUS_COLUMNS
        ));
        let mut list = q.separated(", ");
        for c in chunk.iter() {
            list.push_bind(c.id.as_str().to_string());
        }
        q.push(") ORDER BY charger_id, connector_id");
        let statuses = q.build().fetch_all(pool).await?;
        rows::attach_statuses(chunk, rows::all(&statuses, rows::connector_status)?);
    }
    Ok(records)
}
