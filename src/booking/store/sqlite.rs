//! The embedded SQLite backend: one file in WAL mode. Writes take the write lock up front
//! (`BEGIN IMMEDIATE`) so concurrent writers queue on SQLite's busy handler instead of failing
//! on a lock upgrade. `synchronous = NORMAL` in WAL mode keeps every committed transaction across
//! a process crash (only an OS crash or power cut can lose the last ones).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;

use super::{Page, Store, StoreError};
use crate::booking::charger::{
    BootInfo, ChargerPatch, ChargerRecord, ChargerState, ConnectorStatus, NewCharger, from_millis,
    to_millis,
};
use crate::central::ChargeBoxId;
use crate::settings::sqlite_path;

pub struct SqliteStore {
    pool: SqlitePool,
}

const CHARGER_COLUMNS: &str = "id, name, connectors, password_hash, vendor, model, serial_number, \
     charge_box_serial_number, firmware_version, iccid, imsi, meter_type, meter_serial_number, \
     last_boot_at, last_seen_at, created_at, updated_at";

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if let Some(parent) = sqlite_path(url)
            .as_deref()
            .and_then(std::path::Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    async fn connector_statuses(
        &self,
        ids: &[&str],
    ) -> Result<Vec<(String, ConnectorStatus)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT charger_id, connector_id, status, error_code, info, vendor_error_code, \
             reported_at, updated_at FROM connector_status WHERE charger_id IN (",
        );
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        q.push(") ORDER BY charger_id, connector_id");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>(0)?,
                    ConnectorStatus {
                        connector_id: r.try_get::<i64, _>(1)? as u32,
                        status: r.try_get::<String, _>(2)?.into(),
                        error_code: r.try_get::<String, _>(3)?.into(),
                        info: r.try_get(4)?,
                        vendor_error_code: r.try_get(5)?,
                        reported_at: r.try_get::<Option<i64>, _>(6)?.map(from_millis),
                        updated_at: from_millis(r.try_get(7)?),
                    },
                ))
            })
            .collect()
    }

    /// Rows plus their connector statuses, in row order.
    async fn records(&self, rows: Vec<SqliteRow>) -> Result<Vec<ChargerRecord>, StoreError> {
        let mut records = rows
            .iter()
            .map(charger_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // Chunked so the bind count stays far below SQLite's limit.
        for chunk in records.chunks_mut(500) {
            let ids: Vec<&str> = chunk.iter().map(|c| c.id.as_str()).collect();
            let statuses = self.connector_statuses(&ids).await?;
            for (charger_id, status) in statuses {
                if let Some(rec) = chunk.iter_mut().find(|c| c.id.as_str() == charger_id) {
                    rec.connector_status.push(status);
                }
            }
        }
        Ok(records)
    }
}

fn charger_from_row(r: &SqliteRow) -> Result<ChargerRecord, StoreError> {
    let id: String = r.try_get("id")?;
    let vendor: Option<String> = r.try_get("vendor")?;
    let boot = match vendor {
        Some(vendor) => Some(BootInfo {
            vendor,
            model: r.try_get::<Option<String>, _>("model")?.unwrap_or_default(),
            serial_number: r.try_get("serial_number")?,
            charge_box_serial_number: r.try_get("charge_box_serial_number")?,
            firmware_version: r.try_get("firmware_version")?,
            iccid: r.try_get("iccid")?,
            imsi: r.try_get("imsi")?,
            meter_type: r.try_get("meter_type")?,
            meter_serial_number: r.try_get("meter_serial_number")?,
        }),
        None => None,
    };
    Ok(ChargerRecord {
        id: ChargeBoxId::parse(&id)
            .map_err(|e| sqlx::Error::Decode(format!("charger id {id:?}: {e}").into()))?,
        name: r.try_get("name")?,
        connectors: r.try_get::<i64, _>("connectors")? as u32,
        password_hash: r.try_get("password_hash")?,
        boot,
        last_boot_at: r
            .try_get::<Option<i64>, _>("last_boot_at")?
            .map(from_millis),
        last_seen_at: r
            .try_get::<Option<i64>, _>("last_seen_at")?
            .map(from_millis),
        connector_status: Vec::new(),
        created_at: from_millis(r.try_get("created_at")?),
        updated_at: from_millis(r.try_get("updated_at")?),
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_charger(&self, new: &NewCharger) -> Result<ChargerRecord, StoreError> {
        let now = to_millis(OffsetDateTime::now_utc());
        let result = sqlx::query(
            "INSERT INTO chargers (id, name, connectors, password_hash, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id.as_str())
        .bind(&new.name)
        .bind(i64::from(new.connectors))
        .bind(&new.password_hash)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await;
        match result {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "charger {} already exists",
                new.id
            ))),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(ChargerRecord {
                id: new.id.clone(),
                name: new.name.clone(),
                connectors: new.connectors,
                password_hash: new.password_hash.clone(),
                boot: None,
                last_boot_at: None,
                last_seen_at: None,
                connector_status: Vec::new(),
                created_at: from_millis(now),
                updated_at: from_millis(now),
            }),
        }
    }

    async fn charger(&self, id: &ChargeBoxId) -> Result<Option<ChargerRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CHARGER_COLUMNS} FROM chargers WHERE id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(self.records(vec![row]).await?.pop()),
        }
    }

    async fn charger_credentials(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Option<Option<String>>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM chargers WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    async fn chargers(&self, page: &Page) -> Result<Vec<ChargerRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHARGER_COLUMNS} FROM chargers WHERE id > ? ORDER BY id LIMIT ?"
        ))
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await?;
        self.records(rows).await
    }

    async fn update_charger(
        &self,
        id: &ChargeBoxId,
        patch: &ChargerPatch,
    ) -> Result<Option<ChargerRecord>, StoreError> {
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
        q.push(" WHERE id = ").push_bind(id.as_str());
        let done = q.build().execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.charger(id).await
    }

    async fn delete_charger(&self, id: &ChargeBoxId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM chargers WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn save_charger_states(&self, states: &[ChargerState]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for s in states {
            let id = s.id.as_str();
            if let Some(seen) = s.last_seen_at {
                sqlx::query(
                    "UPDATE chargers SET last_seen_at = max(coalesce(last_seen_at, 0), ?) \
                     WHERE id = ?",
                )
                .bind(to_millis(seen))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            if let Some((boot, at)) = &s.boot {
                sqlx::query(
                    "UPDATE chargers SET vendor = ?, model = ?, serial_number = ?, \
                     charge_box_serial_number = ?, firmware_version = ?, iccid = ?, imsi = ?, \
                     meter_type = ?, meter_serial_number = ?, last_boot_at = ? WHERE id = ?",
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
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            for c in &s.connector_status {
                // The guard drops states of a charger deleted after it reported them.
                sqlx::query(
                    "INSERT INTO connector_status (charger_id, connector_id, status, error_code, \
                     info, vendor_error_code, reported_at, updated_at) \
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE EXISTS \
                     (SELECT 1 FROM chargers WHERE id = ?1) \
                     ON CONFLICT (charger_id, connector_id) DO UPDATE SET status = excluded.status, \
                     error_code = excluded.error_code, info = excluded.info, \
                     vendor_error_code = excluded.vendor_error_code, \
                     reported_at = excluded.reported_at, updated_at = excluded.updated_at",
                )
                .bind(id)
                .bind(i64::from(c.connector_id))
                .bind(c.status.as_ref())
                .bind(c.error_code.as_ref())
                .bind(&c.info)
                .bind(&c.vendor_error_code)
                .bind(c.reported_at.map(to_millis))
                .bind(to_millis(c.updated_at))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
