//! Chargers on PostgreSQL: registration, changes, deletion, reported state, and reading them
//! back with their connector statuses.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use time::OffsetDateTime;

use super::events::append_event;
use super::{CHARGER_COLUMNS, D, Written, is_unique_violation, pg_opt_text, pg_text};
use crate::booking::store::{Page, StoreError, rows};
use crate::domain::ChargeBoxId;
use crate::domain::charger::{
    BootInfo, ChargerCredentials, ChargerPatch, ChargerRecord, ChargerState, NewCharger,
    RegistrationState,
};
use crate::domain::event::{EventKind, data, kind};
use crate::domain::instant::{from_millis, to_millis};

pub(super) async fn insert_charger(
    tx: &mut PgConnection,
    new: &NewCharger,
) -> Result<Written<ChargerRecord>, StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    let result = sqlx::query(
        "INSERT INTO chargers (id, name, connectors, password_hash, security_profile, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $6, ms_to_ts($5), ms_to_ts($5))",
    )
    .bind(new.id.as_str())
    .bind(new.name.as_deref().map(pg_text))
    .bind(new.connectors as i32)
    .bind(&new.password_hash)
    .bind(now)
    .bind(i32::from(new.security_profile.level()))
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
/// was stored already (another node's Boot or the operator may have won the race).
pub(super) async fn record_unknown_charger(
    tx: &mut PgConnection,
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
         VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, ms_to_ts($12), ms_to_ts($12), \
         ms_to_ts($13), ms_to_ts($13)) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id.as_str())
    .bind(state.as_str())
    .bind(pg_text(&boot.vendor))
    .bind(pg_text(&boot.model))
    .bind(pg_opt_text(&boot.serial_number))
    .bind(pg_opt_text(&boot.charge_box_serial_number))
    .bind(pg_opt_text(&boot.firmware_version))
    .bind(pg_opt_text(&boot.iccid))
    .bind(pg_opt_text(&boot.imsi))
    .bind(pg_opt_text(&boot.meter_type))
    .bind(pg_opt_text(&boot.meter_serial_number))
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
    tx: &mut PgConnection,
    id: &ChargeBoxId,
    patch: &ChargerPatch,
) -> Result<Written<bool>, StoreError> {
    patch_charger(tx, id, patch, None, kind::CHARGER_UPDATED).await
}

/// Whether there was such a charger.
pub(super) async fn set_charger_registration(
    tx: &mut PgConnection,
    id: &ChargeBoxId,
    state: RegistrationState,
    patch: &ChargerPatch,
) -> Result<Written<bool>, StoreError> {
    if state == RegistrationState::Rejected {
        // As for deletion: FOR UPDATE waits for bookings in flight (they hold KEY SHARE) and
        // makes later ones wait, then find the charger rejected; the count cannot go stale.
        let exists = sqlx::query("SELECT 1 FROM chargers WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok((false, None));
        }
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
    tx: &mut PgConnection,
    id: &ChargeBoxId,
    patch: &ChargerPatch,
    state: Option<RegistrationState>,
    kind: EventKind,
) -> Result<Written<bool>, StoreError> {
    if let Some(n) = patch.connectors {
        // FOR UPDATE waits for bookings in flight (they hold the row FOR KEY SHARE) and makes
        // later ones wait for this change, so none can land on a connector being removed.
        let exists = sqlx::query("SELECT 1 FROM chargers WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok((false, None));
        }
        let above: Option<i32> = sqlx::query_scalar(rows::LIVE_CONNECTOR_ABOVE)
            .bind(id.as_str())
            .bind(n as i32)
            .fetch_one(&mut *tx)
            .await?;
        if let Some(c) = above {
            return Err(rows::stranded(i64::from(c)));
        }
    }
    let mut q = QueryBuilder::<Postgres>::new("UPDATE chargers SET updated_at = ms_to_ts(");
    q.push_bind(to_millis(OffsetDateTime::now_utc())).push(")");
    if let Some(name) = &patch.name {
        q.push(", name = ")
            .push_bind(name.as_deref().map(|n| pg_text(n).into_owned()));
    }
    if let Some(n) = patch.connectors {
        q.push(", connectors = ").push_bind(n as i32);
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

pub(super) async fn delete_charger(
    tx: &mut PgConnection,
    id: &ChargeBoxId,
) -> Result<Written<bool>, StoreError> {
    // Lock first: bookings in flight on this charger (they hold KEY SHARE) finish, later
    // ones wait and then find no charger, so the count below cannot go stale.
    let exists = sqlx::query("SELECT 1 FROM chargers WHERE id = $1 FOR UPDATE")
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    let live: i64 = sqlx::query_scalar(rows::LIVE_RESERVATIONS)
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
    if live > 0 {
        return Err(rows::held(id, live));
    }
    if !exists {
        return Ok((false, None));
    }
    // Its connector states and past reservations go with it (ON DELETE CASCADE).
    sqlx::query("DELETE FROM chargers WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
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

pub(super) async fn save_charger_states(
    tx: &mut PgConnection,
    states: &[&ChargerState],
) -> Result<Written<()>, StoreError> {
    for s in states {
        let id = s.id.as_str();
        // KEY SHARE keeps the charger from being deleted before this commits; a charger
        // already deleted is skipped, its states dropped (the foreign keys would refuse them).
        let known = sqlx::query("SELECT 1 FROM chargers WHERE id = $1 FOR KEY SHARE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !known {
            continue;
        }
        if let Some(seen) = s.last_seen_at {
            // GREATEST ignores NULL: a first sighting is simply taken.
            sqlx::query(
                "UPDATE chargers SET last_seen_at = GREATEST(last_seen_at, ms_to_ts($1)) \
                 WHERE id = $2",
            )
            .bind(to_millis(seen))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some((boot, at)) = &s.boot {
            sqlx::query(
                "UPDATE chargers SET vendor = $1, model = $2, serial_number = $3, \
                 charge_box_serial_number = $4, firmware_version = $5, iccid = $6, imsi = $7, \
                 meter_type = $8, meter_serial_number = $9, last_boot_at = ms_to_ts($10) \
                 WHERE id = $11",
            )
            .bind(pg_text(&boot.vendor))
            .bind(pg_text(&boot.model))
            .bind(pg_opt_text(&boot.serial_number))
            .bind(pg_opt_text(&boot.charge_box_serial_number))
            .bind(pg_opt_text(&boot.firmware_version))
            .bind(pg_opt_text(&boot.iccid))
            .bind(pg_opt_text(&boot.imsi))
            .bind(pg_opt_text(&boot.meter_type))
            .bind(pg_opt_text(&boot.meter_serial_number))
            .bind(to_millis(*at))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        for c in &s.connector_status {
            sqlx::query(
                "INSERT INTO connector_status (charger_id, connector_id, status, error_code, \
                 info, vendor_error_code, reported_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, ms_to_ts($7), ms_to_ts($8)) \
                 ON CONFLICT (charger_id, connector_id) DO UPDATE SET status = excluded.status, \
                 error_code = excluded.error_code, info = excluded.info, \
                 vendor_error_code = excluded.vendor_error_code, \
                 reported_at = excluded.reported_at, updated_at = excluded.updated_at",
            )
            .bind(id)
            .bind(i64::from(c.connector_id))
            .bind(pg_text(c.status.as_ref()))
            .bind(pg_text(c.error_code.as_ref()))
            .bind(pg_opt_text(&c.info))
            .bind(pg_opt_text(&c.vendor_error_code))
            .bind(c.reported_at.map(to_millis))
            .bind(to_millis(c.updated_at))
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(((), None))
}

pub(super) async fn charger(
    pool: &PgPool,
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
    pool: &PgPool,
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
    pool: &PgPool,
    id: &ChargeBoxId,
) -> Result<Option<RegistrationState>, StoreError> {
    let state: Option<String> = sqlx::query_scalar(rows::CHARGER_REGISTRATION)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    state.as_deref().map(rows::registration_state).transpose()
}

pub(super) async fn chargers(pool: &PgPool, page: &Page) -> Result<Vec<ChargerRecord>, StoreError> {
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
async fn records(pool: &PgPool, rows: Vec<PgRow>) -> Result<Vec<ChargerRecord>, StoreError> {
    let mut records = rows::all(&rows, rows::charger)?;
    if records.is_empty() {
        return Ok(records);
    }
    let ids: Vec<String> = records.iter().map(|c| c.id.as_str().to_string()).collect();
    let statuses = sqlx::query(
        "SELECT charger_id, connector_id, status, error_code, info, vendor_error_code, \
         ts_to_ms(reported_at) AS reported_at, ts_to_ms(updated_at) AS updated_at \
         FROM connector_status WHERE charger_id = ANY($1) ORDER BY charger_id, connector_id",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    rows::attach_statuses(&mut records, rows::all(&statuses, rows::connector_status)?);
    Ok(records)
}
