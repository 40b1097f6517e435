//! The embedded SQLite backend: one file in WAL mode. Every write runs on one writer connection
//! inside `BEGIN IMMEDIATE`, so writers of this process queue in order on the pool instead of
//! spinning in SQLite's busy handler, and a second process on the same file waits on the lock.
//! Reads use their own pool and never wait for writers (WAL). `synchronous = NORMAL` in WAL mode
//! keeps every committed transaction across a process crash (an OS crash or power cut can lose
//! the last ones). No double booking is enforced by triggers in the schema.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::{BookError, CancelError};
use super::{Head, Page, Store, StoreError};
use crate::domain::ChargeBoxId;
use crate::domain::charger::{
    BootInfo, ChargerPatch, ChargerRecord, ChargerState, ConnectorStatus, MAX_CONNECTORS,
    NewCharger,
};
use crate::domain::customer::{Customer, NewCustomer};
use crate::domain::event::{Event, data, kind};
use crate::domain::instant::{from_millis, to_millis};
use crate::domain::reservation::{
    ChargerAck, NewReservation, Reservation, ReservationFilter, ReservationStatus, TimeSlot,
};
use crate::domain::transaction::{
    self as transaction, Authorization, DispatchAgenda, MeterReadings, StartContext, StartDecision,
    StartOutcome, StartPolicy, StartRequest, StopOutcome, StopRequest, Transaction,
    TransactionFilter, TransactionStatus,
};
use crate::settings::sqlite_path;

pub struct SqliteStore {
    /// Readers: several connections, never blocked by the writer.
    pool: SqlitePool,
    /// The single writer connection.
    writer: SqlitePool,
    /// Bookings and transaction messages go through the batching writer (group commit), see
    /// [`run_batches`].
    batches: mpsc::Sender<WriteJob>,
    head: Arc<Head>,
}

/// What a batched job does once its batch committed (`Ok`) or failed to.
type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A unit of work for the batching writer: runs its statements on the batch's open transaction.
/// `Err` means the database failed and the whole batch must roll back; a refusal is an `Ok`
/// whose `Finish` reports it, and must have written nothing.
type WriteJob = Box<
    dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<Finish, StoreError>>
        + Send,
>;

/// Most jobs per transaction: enough to amortise the commit, small enough to keep latency low.
const MAX_BATCH: usize = 128;

/// The group-commit loop. Each round takes every job waiting (up to [`MAX_BATCH`]), runs them in
/// one `BEGIN IMMEDIATE … COMMIT` and only then answers each: an answered booking is committed.
/// With one writer connection the statements are the cost, so sharing BEGIN/COMMIT among the
/// concurrent bookings is what lifts throughput.
async fn run_batches(writer: SqlitePool, mut jobs: mpsc::Receiver<WriteJob>, head: Arc<Head>) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut finishes: Vec<Finish> = Vec::with_capacity(batch.len());
        let outcome = async {
            let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
            for job in batch.drain(..) {
                finishes.push(job(&mut tx).await?);
            }
            let seq = last_seq(&mut tx).await?;
            tx.commit().await?;
            Ok::<i64, StoreError>(seq)
        }
        .await;
        if let Ok(seq) = outcome {
            head.advance(seq);
        }
        batch.clear(); // jobs not reached after a failure are dropped: their callers see it
        if let Err(e) = &outcome {
            tracing::error!(error = %e, jobs = finishes.len(), "write batch rolled back");
        }
        for finish in finishes {
            finish(match &outcome {
                Ok(_) => Ok(()),
                Err(e) => Err(StoreError::NotCompleted(format!(
                    "the write batch failed: {e}"
                ))),
            });
        }
    }
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
            .busy_timeout(Duration::from_secs(10))
            // 64 MiB of page cache and memory-mapped reads: the hot pages of the ledger stay in
            // memory instead of being re-read through read() calls.
            .pragma("cache_size", "-65536")
            .pragma("mmap_size", "268435456");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.read_only(true))
            .await?;
        let head = Arc::new(Head::new(last_seq(&mut *writer.acquire().await?).await?));
        let (batches, jobs) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run_batches(writer.clone(), jobs, head.clone()));
        Ok(SqliteStore {
            pool,
            writer,
            batches,
            head,
        })
    }

    /// Run `work` on the batching writer's open transaction and return its value once the
    /// batch committed. `work` must only fail on a database error (the batch rolls back);
    /// refusals are values.
    async fn batched<T: Send + 'static>(
        &self,
        work: impl for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
        + Send
        + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            Box::pin(async move {
                let value = work(conn).await?;
                let finish: Finish = Box::new(move |committed| {
                    let _ = reply.send(committed.map(|()| value));
                });
                Ok(finish)
            })
        });
        self.batches
            .send(job)
            .await
            .map_err(|_| StoreError::NotCompleted("the store is closed".into()))?;
        answer.await.map_err(|_| {
            StoreError::NotCompleted("the write batch failed before this write ran".into())
        })?
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

    async fn customer_from(&self, row: Option<SqliteRow>) -> Result<Option<Customer>, StoreError> {
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get("id")?;
        let id_tags = sqlx::query_scalar(
            "SELECT id_tag FROM id_tags WHERE customer_id = ? ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(Customer {
            id,
            name: row.try_get("name")?,
            id_tags,
            created_at: from_millis(row.try_get("created_at")?),
        }))
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

const RESERVATION_COLUMNS: &str = "id, charger_id, connector_id, customer_id, id_tag, start_ms, \
     end_ms, status, charger_ack, created_at, updated_at";

fn reservation_from_row(r: &SqliteRow) -> Result<Reservation, StoreError> {
    let decode = |what: &str, e: String| sqlx::Error::Decode(format!("{what}: {e}").into());
    let charger: String = r.try_get("charger_id")?;
    let status: String = r.try_get("status")?;
    let ack: String = r.try_get("charger_ack")?;
    Ok(Reservation {
        id: r.try_get::<i64, _>("id")? as i32,
        charger_id: ChargeBoxId::parse(&charger)
            .map_err(|e| decode("charger_id", e.to_string()))?,
        connector_id: r.try_get::<i64, _>("connector_id")? as u32,
        customer_id: r.try_get("customer_id")?,
        id_tag: r.try_get("id_tag")?,
        slot: TimeSlot::parse(
            from_millis(r.try_get("start_ms")?),
            from_millis(r.try_get("end_ms")?),
        )
        .map_err(|e| decode("slot", e.to_string()))?,
        status: ReservationStatus::parse(&status)
            .ok_or_else(|| decode("status", status.clone()))?,
        charger_ack: ChargerAck::parse(&ack).ok_or_else(|| decode("charger_ack", ack.clone()))?,
        created_at: from_millis(r.try_get("created_at")?),
        updated_at: from_millis(r.try_get("updated_at")?),
    })
}

/// Append one event inside the caller's transaction.
async fn append_event(
    conn: &mut SqliteConnection,
    kind: &str,
    charger_id: Option<&str>,
    customer_id: Option<i64>,
    reservation_id: Option<i32>,
    data: &serde_json::Value,
) -> Result<i64, StoreError> {
    let seq = sqlx::query_scalar(
        "INSERT INTO events (at, kind, charger_id, customer_id, reservation_id, data) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
    )
    .bind(to_millis(OffsetDateTime::now_utc()))
    .bind(kind)
    .bind(charger_id)
    .bind(customer_id)
    .bind(reservation_id)
    .bind(data.to_string())
    .fetch_one(conn)
    .await?;
    Ok(seq)
}

/// The last event's seq (0 for an empty log).
async fn last_seq(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events")
            .fetch_one(conn)
            .await?,
    )
}

/// The overlap trigger's refusal.
fn is_overlap(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.message().contains("reservations_no_overlap"))
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
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
        let record = ChargerRecord {
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
        };
        let seq = append_event(
            &mut tx,
            kind::CHARGER_REGISTERED,
            Some(new.id.as_str()),
            None,
            None,
            &data::charger(&record),
        )
        .await?;
        tx.commit().await?;
        self.head.advance(seq);
        Ok(record)
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
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
        q.push(format!(" RETURNING {CHARGER_COLUMNS}"));
        let Some(row) = q.build().fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let record = charger_from_row(&row)?;
        let seq = append_event(
            &mut tx,
            kind::CHARGER_UPDATED,
            Some(id.as_str()),
            None,
            None,
            &data::charger(&record),
        )
        .await?;
        tx.commit().await?;
        self.head.advance(seq);
        self.charger(id).await
    }

    async fn delete_charger(&self, id: &ChargeBoxId) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM reservations WHERE charger_id = ? \
             AND status IN ('BOOKED', 'CHARGING_STARTED')",
        )
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if live > 0 {
            return Err(StoreError::Conflict(format!(
                "charger {id} has {live} live reservation(s); cancel them first"
            )));
        }
        let done = sqlx::query("DELETE FROM chargers WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let seq = append_event(
            &mut tx,
            kind::CHARGER_DELETED,
            Some(id.as_str()),
            None,
            None,
            &serde_json::json!({"id": id.as_str()}),
        )
        .await?;
        tx.commit().await?;
        self.head.advance(seq);
        Ok(true)
    }

    async fn save_charger_states(&self, states: &[ChargerState]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
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

    async fn insert_customer(&self, new: &NewCustomer) -> Result<Customer, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO customers (name, token_digest, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(&new.name)
        .bind(&new.token_digest)
        .bind(to_millis(now))
        .fetch_one(&mut *tx)
        .await?;
        for (position, tag) in new.id_tags.iter().enumerate() {
            let inserted = sqlx::query(
                "INSERT INTO id_tags (id_tag_key, id_tag, customer_id, position) VALUES (?, ?, ?, ?)",
            )
            .bind(tag.key())
            .bind(tag.as_str())
            .bind(id)
            .bind(position as i64)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    // Dropping the transaction rolls back the customer too: nothing half-written.
                    return Err(StoreError::Conflict(format!(
                        "idTag {} is already taken",
                        tag.as_str()
                    )));
                }
                other => {
                    other?;
                }
            }
        }
        let customer = Customer {
            id,
            name: new.name.clone(),
            id_tags: new.id_tags.iter().map(|t| t.as_str().to_string()).collect(),
            created_at: from_millis(to_millis(now)),
        };
        let seq = append_event(
            &mut tx,
            kind::CUSTOMER_CREATED,
            None,
            Some(id),
            None,
            &data::customer(&customer),
        )
        .await?;
        tx.commit().await?;
        self.head.advance(seq);
        Ok(customer)
    }

    async fn customer(&self, id: i64) -> Result<Option<Customer>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM customers WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        self.customer_from(row).await
    }

    async fn customer_by_token(&self, token_digest: &str) -> Result<Option<Customer>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM customers WHERE token_digest = ?")
            .bind(token_digest)
            .fetch_optional(&self.pool)
            .await?;
        self.customer_from(row).await
    }

    async fn book(&self, new: &NewReservation) -> Result<Reservation, BookError> {
        let (reply, answer) = oneshot::channel();
        let new = new.clone();
        let job: WriteJob = Box::new(move |conn| {
            Box::pin(async move {
                let outcome = book_on(conn, &new).await?;
                let finish: Finish = Box::new(move |committed| {
                    let _ = reply.send(match (outcome, committed) {
                        (Ok(r), Ok(())) => Ok(r),
                        (Ok(_), Err(e)) => Err(BookError::Store(e)),
                        // A refusal wrote nothing; the commit's fate does not change it.
                        (Err(refused), _) => Err(refused),
                    });
                });
                Ok(finish)
            })
        });
        self.batches
            .send(job)
            .await
            .map_err(|_| StoreError::NotCompleted("the store is closed".into()))?;
        answer.await.map_err(|_| {
            StoreError::NotCompleted("the write batch failed before this booking ran".into())
        })?
    }

    async fn reservation(&self, id: i32) -> Result<Option<Reservation>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(reservation_from_row).transpose()
    }

    async fn reservations(
        &self,
        filter: &ReservationFilter,
    ) -> Result<Vec<Reservation>, StoreError> {
        let mut q = super::list_query::<Sqlite>(
            RESERVATION_COLUMNS,
            "reservations",
            filter.charger_id.as_ref(),
            filter.customer_id,
            filter.status.map(|s| s.as_str()),
        );
        if let Some(from) = filter.from {
            q.push(" AND end_ms > ").push_bind(to_millis(from));
        }
        if let Some(to) = filter.to {
            q.push(" AND start_ms < ").push_bind(to_millis(to));
        }
        q.push(" ORDER BY start_ms, id LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(reservation_from_row).collect()
    }

    async fn cancel_reservation(
        &self,
        id: i32,
        owner: Option<i64>,
    ) -> Result<Reservation, CancelError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mut reservation) = row.as_ref().map(reservation_from_row).transpose()? else {
            return Err(CancelError::NotFound);
        };
        if owner.is_some_and(|o| o != reservation.customer_id) {
            return Err(CancelError::NotFound);
        }
        if reservation.status != ReservationStatus::Booked {
            return Err(CancelError::NotCancellable(reservation.status));
        }
        let now = OffsetDateTime::now_utc();
        // A charger that was ever asked may hold it: it is owed a CancelReservation.
        sqlx::query(
            "UPDATE reservations SET status = 'CANCELLED', updated_at = ?, \
             cancel_owed = (charger_ack <> 'PENDING') WHERE id = ?",
        )
        .bind(to_millis(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        reservation.status = ReservationStatus::Cancelled;
        reservation.updated_at = from_millis(to_millis(now));
        let seq = append_event(
            &mut tx,
            kind::RESERVATION_CANCELLED,
            Some(reservation.charger_id.as_str()),
            Some(reservation.customer_id),
            Some(reservation.id),
            &data::reservation(&reservation),
        )
        .await?;
        tx.commit().await?;
        self.head.advance(seq);
        Ok(reservation)
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, kind, charger_id, customer_id, reservation_id, data FROM events \
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let data: String = r.try_get(6)?;
                Ok(Event {
                    seq: r.try_get(0)?,
                    at: from_millis(r.try_get(1)?),
                    kind: r.try_get(2)?,
                    charger_id: r.try_get(3)?,
                    customer_id: r.try_get(4)?,
                    reservation_id: r.try_get::<Option<i64>, _>(5)?.map(|v| v as i32),
                    data: serde_json::from_str(&data)
                        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                })
            })
            .collect()
    }

    async fn overlapping_reservations(&self) -> Result<Vec<(i32, i32)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id, b.id FROM reservations a JOIN reservations b \
             ON a.charger_id = b.charger_id AND a.connector_id = b.connector_id AND a.id < b.id \
             AND a.start_ms < b.end_ms AND b.start_ms < a.end_ms \
             WHERE a.status IN ('BOOKED', 'CHARGING_STARTED') \
             AND b.status IN ('BOOKED', 'CHARGING_STARTED')",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>(0)? as i32,
                    r.try_get::<i64, _>(1)? as i32,
                ))
            })
            .collect()
    }

    async fn customer_of_id_tag(&self, id_tag: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT customer_id FROM id_tags WHERE id_tag_key = ?")
                .bind(id_tag.to_ascii_lowercase())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn start_transaction(
        &self,
        req: &StartRequest,
        policy: &StartPolicy,
    ) -> Result<StartOutcome, StoreError> {
        let (req, policy) = (req.clone(), *policy);
        self.batched(move |conn| Box::pin(async move { start_on(conn, &req, &policy).await }))
            .await
    }

    async fn stop_transaction(&self, req: &StopRequest) -> Result<StopOutcome, StoreError> {
        let req = req.clone();
        self.batched(move |conn| Box::pin(async move { stop_on(conn, &req).await }))
            .await
    }

    async fn record_meter_values(
        &self,
        readings: &MeterReadings,
    ) -> Result<Option<Transaction>, StoreError> {
        let readings = readings.clone();
        self.batched(move |conn| Box::pin(async move { meter_on(conn, &readings).await }))
            .await
    }

    async fn transaction(&self, id: i32) -> Result<Option<Transaction>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(transaction_from_row).transpose()
    }

    async fn transactions(
        &self,
        filter: &TransactionFilter,
    ) -> Result<Vec<Transaction>, StoreError> {
        let mut q = super::list_query::<Sqlite>(
            TRANSACTION_COLUMNS,
            "transactions",
            filter.charger_id.as_ref(),
            filter.customer_id,
            filter.status.map(|s| s.as_str()),
        );
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(transaction_from_row).collect()
    }

    async fn record_charger_ack(
        &self,
        reservation_id: i32,
        ack: ChargerAck,
    ) -> Result<Option<Reservation>, StoreError> {
        self.batched(move |conn| {
            Box::pin(async move {
                let Some(mut r) = reservation_on(conn, reservation_id).await? else {
                    return Ok(None);
                };
                if r.status == ReservationStatus::Booked && r.charger_ack != ack {
                    set_ack(conn, &mut r, ack).await?;
                } else if r.status == ReservationStatus::Cancelled && ack == ChargerAck::Accepted {
                    // Cancelled while ReserveNow was on its way: the charger holds it now.
                    sqlx::query("UPDATE reservations SET cancel_owed = 1 WHERE id = ?")
                        .bind(reservation_id)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(Some(r))
            })
        })
        .await
    }

    async fn record_connector_fault(
        &self,
        charger_id: &ChargeBoxId,
        connector_id: u32,
        ack: ChargerAck,
        at: OffsetDateTime,
        grace: time::Duration,
    ) -> Result<Vec<Reservation>, StoreError> {
        let charger_id = charger_id.clone();
        self.batched(move |conn| {
            Box::pin(async move {
                let mut changed = Vec::new();
                for mut r in live_on_connector(conn, &charger_id, connector_id, at, grace).await? {
                    if r.charger_ack != ack {
                        set_ack(conn, &mut r, ack).await?;
                        changed.push(r);
                    }
                }
                Ok(changed)
            })
        })
        .await
    }

    async fn record_cancel_delivered(&self, reservation_id: i32) -> Result<(), StoreError> {
        self.batched(move |conn| {
            Box::pin(async move {
                sqlx::query("UPDATE reservations SET cancel_owed = 0 WHERE id = ?")
                    .bind(reservation_id)
                    .execute(conn)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn expire_due(&self, now: OffsetDateTime) -> Result<Vec<Reservation>, StoreError> {
        self.batched(move |conn| {
            Box::pin(async move {
                let at = to_millis(now);
                let rows = sqlx::query(&format!(
                    "UPDATE reservations SET status = 'EXPIRED', updated_at = ?1 \
                     WHERE status = 'BOOKED' AND end_ms <= ?1 RETURNING {RESERVATION_COLUMNS}"
                ))
                .bind(at)
                .fetch_all(&mut *conn)
                .await?;
                let expired = rows
                    .iter()
                    .map(reservation_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                for r in &expired {
                    append_event(
                        conn,
                        kind::RESERVATION_EXPIRED,
                        Some(r.charger_id.as_str()),
                        Some(r.customer_id),
                        Some(r.id),
                        &data::reservation(r),
                    )
                    .await?;
                }
                Ok(expired)
            })
        })
        .await
    }

    async fn dispatch_agenda(&self, now: OffsetDateTime) -> Result<DispatchAgenda, StoreError> {
        let now = to_millis(now);
        let booked = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations \
             WHERE status = 'BOOKED' AND end_ms > ? ORDER BY start_ms, id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let owed = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations \
             WHERE cancel_owed = 1 AND end_ms > ? ORDER BY start_ms, id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(DispatchAgenda {
            booked: booked
                .iter()
                .map(reservation_from_row)
                .collect::<Result<_, _>>()?,
            cancels_owed: owed
                .iter()
                .map(reservation_from_row)
                .collect::<Result<_, _>>()?,
        })
    }

    fn head(&self) -> tokio::sync::watch::Receiver<i64> {
        self.head.subscribe()
    }

    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// One booking on the batch's open transaction. `Err` is a database failure (the batch rolls
/// back); `Ok(Err(_))` is a refusal, decided before anything was written.
async fn book_on(
    tx: &mut SqliteConnection,
    new: &NewReservation,
) -> Result<Result<Reservation, BookError>, StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    let (start, end) = (to_millis(new.slot.start()), to_millis(new.slot.end()));
    // Each statement is a round trip to SQLite's worker thread, the cost that dominates, so
    // the common path is BEGIN, one guarded INSERT, the event, COMMIT. The insert only
    // happens when the charger has that connector; the overlap trigger judges the slot, and
    // a refusal aborts just that statement.
    let (first, last) = match new.connector_id {
        Some(0) => return Ok(Err(BookError::UnknownConnector(0))),
        Some(c) => (c, c),
        None => (1, MAX_CONNECTORS),
    };
    let mut booked = None;
    let mut overlapped = false;
    for connector in first..=last {
        let inserted = sqlx::query(
            "INSERT INTO reservations (charger_id, connector_id, customer_id, id_tag, \
             start_ms, end_ms, status, charger_ack, created_at, updated_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, 'BOOKED', 'PENDING', ?7, ?7 \
             FROM chargers WHERE id = ?1 AND connectors >= ?2 RETURNING id",
        )
        .bind(new.charger_id.as_str())
        .bind(i64::from(connector))
        .bind(new.customer_id)
        .bind(&new.id_tag)
        .bind(start)
        .bind(end)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await;
        match inserted {
            Ok(Some(row)) => {
                booked = Some((row.try_get::<i64, _>(0)?, connector));
                break;
            }
            // No such charger, or no such connector: past the last one.
            Ok(None) => break,
            Err(e) if is_overlap(&e) => overlapped = true,
            Err(e) if is_foreign_key_violation(&e) => {
                return Ok(Err(BookError::UnknownCustomer(new.customer_id)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some((id, connector_id)) = booked else {
        if !overlapped {
            let connectors: Option<i64> =
                sqlx::query_scalar("SELECT connectors FROM chargers WHERE id = ?")
                    .bind(new.charger_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            return Ok(Err(match connectors {
                None => BookError::UnknownCharger(new.charger_id.clone()),
                Some(_) => BookError::UnknownConnector(first),
            }));
        }
        let conflict = sqlx::query(
            "SELECT start_ms, end_ms FROM reservations WHERE charger_id = ? \
             AND connector_id BETWEEN ? AND ? \
             AND status IN ('BOOKED', 'CHARGING_STARTED') AND start_ms < ? AND ? < end_ms \
             ORDER BY start_ms LIMIT 1",
        )
        .bind(new.charger_id.as_str())
        .bind(i64::from(first))
        .bind(i64::from(last))
        .bind(end)
        .bind(start)
        .fetch_one(&mut *tx)
        .await?;
        let slot = TimeSlot::parse(
            from_millis(conflict.try_get(0)?),
            from_millis(conflict.try_get(1)?),
        )
        .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.to_string().into())))?;
        return Ok(Err(BookError::Overlap(slot)));
    };
    let reservation = Reservation {
        id: id as i32,
        charger_id: new.charger_id.clone(),
        connector_id,
        customer_id: new.customer_id,
        id_tag: new.id_tag.clone(),
        slot: new.slot,
        status: ReservationStatus::Booked,
        charger_ack: ChargerAck::Pending,
        created_at: from_millis(now),
        updated_at: from_millis(now),
    };
    append_event(
        &mut *tx,
        kind::RESERVATION_BOOKED,
        Some(new.charger_id.as_str()),
        Some(new.customer_id),
        Some(reservation.id),
        &data::reservation(&reservation),
    )
    .await?;
    Ok(Ok(reservation))
}

const TRANSACTION_COLUMNS: &str = "id, charger_id, connector_id, id_tag, customer_id, \
     reservation_id, status, auth_status, meter_start_wh, started_at, meter_stop_wh, stopped_at, \
     stop_reason, last_meter_wh, last_meter_at, created_at, updated_at";

fn transaction_from_row(r: &SqliteRow) -> Result<Transaction, StoreError> {
    let decode = |what: &str, e: String| sqlx::Error::Decode(format!("{what}: {e}").into());
    let charger: String = r.try_get("charger_id")?;
    let status: String = r.try_get("status")?;
    let auth: String = r.try_get("auth_status")?;
    let mut t = Transaction {
        id: r.try_get::<i64, _>("id")? as i32,
        charger_id: ChargeBoxId::parse(&charger)
            .map_err(|e| decode("charger_id", e.to_string()))?,
        connector_id: r.try_get::<i64, _>("connector_id")? as u32,
        id_tag: r.try_get("id_tag")?,
        customer_id: r.try_get("customer_id")?,
        reservation_id: r
            .try_get::<Option<i64>, _>("reservation_id")?
            .map(|v| v as i32),
        status: TransactionStatus::parse(&status)
            .ok_or_else(|| decode("status", status.clone()))?,
        authorization: Authorization::parse(&auth)
            .ok_or_else(|| decode("auth_status", auth.clone()))?,
        meter_start_wh: r.try_get("meter_start_wh")?,
        started_at: from_millis(r.try_get("started_at")?),
        meter_stop_wh: r.try_get("meter_stop_wh")?,
        stopped_at: r.try_get::<Option<i64>, _>("stopped_at")?.map(from_millis),
        stop_reason: r.try_get("stop_reason")?,
        last_meter_wh: r.try_get("last_meter_wh")?,
        last_meter_at: r
            .try_get::<Option<i64>, _>("last_meter_at")?
            .map(from_millis),
        energy_wh: None,
        created_at: from_millis(r.try_get("created_at")?),
        updated_at: from_millis(r.try_get("updated_at")?),
    };
    t.compute_energy();
    Ok(t)
}

async fn reservation_on(
    conn: &mut SqliteConnection,
    id: i32,
) -> Result<Option<Reservation>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(reservation_from_row).transpose()
}

/// Live reservations on a connector whose slot, widened by `grace` before its start, holds `at`.
async fn live_on_connector(
    conn: &mut SqliteConnection,
    charger_id: &ChargeBoxId,
    connector_id: u32,
    at: OffsetDateTime,
    grace: time::Duration,
) -> Result<Vec<Reservation>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE charger_id = ? AND connector_id = ? \
         AND status IN ('BOOKED', 'CHARGING_STARTED') AND start_ms <= ? AND end_ms > ? \
         ORDER BY start_ms LIMIT 4"
    ))
    .bind(charger_id.as_str())
    .bind(i64::from(connector_id))
    .bind(to_millis(at + grace))
    .bind(to_millis(at))
    .fetch_all(conn)
    .await?;
    rows.iter().map(reservation_from_row).collect()
}

async fn set_ack(
    conn: &mut SqliteConnection,
    r: &mut Reservation,
    ack: ChargerAck,
) -> Result<(), StoreError> {
    let now = OffsetDateTime::now_utc();
    sqlx::query("UPDATE reservations SET charger_ack = ?, updated_at = ? WHERE id = ?")
        .bind(ack.as_str())
        .bind(to_millis(now))
        .bind(r.id)
        .execute(&mut *conn)
        .await?;
    r.charger_ack = ack;
    r.updated_at = from_millis(to_millis(now));
    append_event(
        conn,
        kind::RESERVATION_ACK_CHANGED,
        Some(r.charger_id.as_str()),
        Some(r.customer_id),
        Some(r.id),
        &data::reservation(r),
    )
    .await?;
    Ok(())
}

/// Move a reservation to `status` (from the status it must be in), keeping `r` in step.
async fn set_reservation_status(
    conn: &mut SqliteConnection,
    r: &mut Reservation,
    status: ReservationStatus,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE reservations SET status = ?, updated_at = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(now)
        .bind(r.id)
        .execute(conn)
        .await?;
    r.status = status;
    r.updated_at = from_millis(now);
    Ok(())
}

async fn transaction_where(
    conn: &mut SqliteConnection,
    condition: &str,
    binds: &[&dyn ToSqliteArg],
) -> Result<Option<Transaction>, StoreError> {
    let sql = format!("SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE {condition} LIMIT 1");
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = b.bind_to(q);
    }
    let row = q.fetch_optional(conn).await?;
    row.as_ref().map(transaction_from_row).transpose()
}

/// Lets [`transaction_where`] take text and integer arguments alike.
trait ToSqliteArg: Sync {
    fn bind_to<'q>(
        &'q self,
        q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
}

impl ToSqliteArg for i64 {
    fn bind_to<'q>(
        &'q self,
        q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
        q.bind(*self)
    }
}

impl ToSqliteArg for &str {
    fn bind_to<'q>(
        &'q self,
        q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
        q.bind(*self)
    }
}

async fn start_on(
    conn: &mut SqliteConnection,
    req: &StartRequest,
    policy: &StartPolicy,
) -> Result<StartOutcome, StoreError> {
    let started = to_millis(req.timestamp);
    let connector = i64::from(req.connector_id);
    let charger = req.charger_id.as_str();
    let tag = req.id_tag.as_str();
    // Each statement is a hand-off to SQLite's worker thread, the cost that dominates: the
    // repeat check and the idTag's owner come in one query, the named reservation and the
    // connector's live ones in another.
    let (repeat, customer_id): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT id FROM transactions WHERE charger_id = ?1 AND connector_id = ?2 \
         AND started_at = ?3 AND meter_start_wh = ?4 AND id_tag = ?5), \
         (SELECT customer_id FROM id_tags WHERE id_tag_key = ?6)",
    )
    .bind(charger)
    .bind(connector)
    .bind(started)
    .bind(req.meter_start_wh)
    .bind(tag)
    .bind(req.id_tag.to_ascii_lowercase())
    .fetch_one(&mut *conn)
    .await?;
    if let Some(id) = repeat
        && let Some(transaction) = transaction_where(conn, "id = ?", &[&id]).await?
    {
        let reservation = match transaction.reservation_id {
            Some(id) => reservation_on(conn, id).await?,
            None => None,
        };
        return Ok(StartOutcome {
            transaction,
            reservation,
            repeated: true,
            refusal: None,
        });
    }
    let rows = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?1 OR (charger_id = ?2 \
         AND connector_id = ?3 AND status IN ('BOOKED', 'CHARGING_STARTED') \
         AND start_ms <= ?4 AND end_ms > ?5) ORDER BY start_ms LIMIT 5"
    ))
    .bind(req.reservation_id.map(i64::from))
    .bind(charger)
    .bind(connector)
    .bind(to_millis(req.timestamp + policy.early_grace))
    .bind(started)
    .fetch_all(&mut *conn)
    .await?;
    let mut named = None;
    let mut on_connector = Vec::new();
    for row in &rows {
        let r = reservation_from_row(row)?;
        let current = r.charger_id == req.charger_id
            && r.connector_id == req.connector_id
            && r.status.is_live()
            && r.slot.start() <= req.timestamp + policy.early_grace
            && r.slot.end() > req.timestamp;
        if Some(r.id) == req.reservation_id {
            named = Some(r.clone());
        }
        if current {
            on_connector.push(r);
        }
    }
    let ctx = StartContext {
        customer_id,
        named: named.clone(),
        on_connector: on_connector.clone(),
    };
    let decision = transaction::decide_start(req, &ctx, policy);
    let now = to_millis(OffsetDateTime::now_utc());
    let (status, auth, owner, reservation_id, refusal) = match &decision {
        StartDecision::Accept { reservation_id } => (
            TransactionStatus::Active,
            Authorization::Accepted,
            customer_id,
            *reservation_id,
            None,
        ),
        StartDecision::Refuse { status, reason } => (
            TransactionStatus::Refused,
            *status,
            None,
            None,
            Some(*reason),
        ),
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO transactions (charger_id, connector_id, id_tag, customer_id, reservation_id, \
         status, auth_status, meter_start_wh, started_at, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(charger)
    .bind(connector)
    .bind(tag)
    .bind(owner)
    .bind(reservation_id)
    .bind(status.as_str())
    .bind(auth.as_str())
    .bind(req.meter_start_wh)
    .bind(started)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let mut reservation =
        reservation_id.and_then(|rid| named.into_iter().chain(on_connector).find(|r| r.id == rid));
    if let Some(r) = reservation.as_mut() {
        set_reservation_status(conn, r, ReservationStatus::ChargingStarted, now).await?;
    }
    let mut transaction = Transaction {
        id: id as i32,
        charger_id: req.charger_id.clone(),
        connector_id: req.connector_id,
        id_tag: req.id_tag.clone(),
        customer_id: owner,
        reservation_id,
        status,
        authorization: auth,
        meter_start_wh: req.meter_start_wh,
        started_at: from_millis(started),
        meter_stop_wh: None,
        stopped_at: None,
        stop_reason: None,
        last_meter_wh: None,
        last_meter_at: None,
        energy_wh: None,
        created_at: from_millis(now),
        updated_at: from_millis(now),
    };
    transaction.compute_energy();
    let event = if status == TransactionStatus::Refused {
        kind::TRANSACTION_REFUSED
    } else {
        kind::TRANSACTION_STARTED
    };
    append_event(
        conn,
        event,
        Some(charger),
        owner,
        reservation_id,
        &data::transaction(&transaction, reservation.as_ref()),
    )
    .await?;
    Ok(StartOutcome {
        transaction,
        reservation,
        repeated: false,
        refusal,
    })
}

async fn stop_on(
    conn: &mut SqliteConnection,
    req: &StopRequest,
) -> Result<StopOutcome, StoreError> {
    let now = to_millis(OffsetDateTime::now_utc());
    // The common case in one statement: end it if it is running on this charger.
    let ended = sqlx::query(&format!(
        "UPDATE transactions SET status = 'ENDED', meter_stop_wh = ?, stopped_at = ?, \
         stop_reason = ?, updated_at = ? WHERE id = ? AND charger_id = ? AND status = 'ACTIVE' \
         RETURNING {TRANSACTION_COLUMNS}"
    ))
    .bind(req.meter_stop_wh)
    .bind(to_millis(req.timestamp))
    .bind(&req.reason)
    .bind(now)
    .bind(req.transaction_id)
    .bind(req.charger_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = ended else {
        // Not running: ended before (a retry), refused at the start, or not this charger's.
        return Ok(
            match transaction_where(
                conn,
                "id = ? AND charger_id = ?",
                &[&i64::from(req.transaction_id), &req.charger_id.as_str()],
            )
            .await?
            {
                Some(t) => StopOutcome::Unchanged(t),
                None => StopOutcome::Unknown,
            },
        );
    };
    let t = transaction_from_row(&row)?;
    let reservation = match t.reservation_id {
        None => None,
        Some(id) => {
            let ended = sqlx::query(&format!(
                "UPDATE reservations SET status = 'CHARGING_ENDED', updated_at = ? \
                 WHERE id = ? AND status = 'CHARGING_STARTED' RETURNING {RESERVATION_COLUMNS}"
            ))
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            match ended {
                Some(row) => Some(reservation_from_row(&row)?),
                None => reservation_on(conn, id).await?,
            }
        }
    };
    append_event(
        conn,
        kind::TRANSACTION_STOPPED,
        Some(t.charger_id.as_str()),
        t.customer_id,
        t.reservation_id,
        &data::transaction(&t, reservation.as_ref()),
    )
    .await?;
    Ok(StopOutcome::Stopped {
        transaction: t,
        reservation,
    })
}

async fn meter_on(
    conn: &mut SqliteConnection,
    m: &MeterReadings,
) -> Result<Option<Transaction>, StoreError> {
    let Some(&(latest_at, latest_wh)) = m.readings.iter().max_by_key(|(at, _)| *at) else {
        return Ok(None);
    };
    let (latest_at, now) = (to_millis(latest_at), to_millis(OffsetDateTime::now_utc()));
    // Find the transaction and keep its newest reading in one statement. Readings can arrive
    // out of order (re-sent after a reconnect): an older one does not move it back.
    let newer = "last_meter_at IS NULL OR last_meter_at <= ?1";
    let set = format!(
        "UPDATE transactions SET last_meter_wh = CASE WHEN {newer} THEN ?2 ELSE last_meter_wh \
         END, updated_at = CASE WHEN {newer} THEN ?3 ELSE updated_at END, \
         last_meter_at = CASE WHEN {newer} THEN ?1 ELSE last_meter_at END"
    );
    let row = match m.transaction_id {
        Some(id) => {
            sqlx::query(&format!(
                "{set} WHERE id = ?4 AND charger_id = ?5 AND status = 'ACTIVE' \
                 RETURNING {TRANSACTION_COLUMNS}"
            ))
            .bind(latest_at)
            .bind(latest_wh)
            .bind(now)
            .bind(id)
            .bind(m.charger_id.as_str())
            .fetch_optional(&mut *conn)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "{set} WHERE id = (SELECT id FROM transactions WHERE charger_id = ?5 \
                 AND connector_id = ?4 AND status = 'ACTIVE' ORDER BY id DESC LIMIT 1) \
                 RETURNING {TRANSACTION_COLUMNS}"
            ))
            .bind(latest_at)
            .bind(latest_wh)
            .bind(now)
            .bind(i64::from(m.connector_id))
            .bind(m.charger_id.as_str())
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let Some(row) = row else { return Ok(None) };
    let t = transaction_from_row(&row)?;
    let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO meter_values (transaction_id, at, wh) ");
    q.push_values(&m.readings, |mut row, (at, wh)| {
        row.push_bind(t.id).push_bind(to_millis(*at)).push_bind(*wh);
    });
    q.build().execute(&mut *conn).await?;
    append_event(
        conn,
        kind::METER_VALUES_RECORDED,
        Some(m.charger_id.as_str()),
        t.customer_id,
        t.reservation_id,
        &data::transaction(&t, None),
    )
    .await?;
    Ok(Some(t))
}
