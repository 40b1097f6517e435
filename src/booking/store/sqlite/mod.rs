//! The embedded SQLite backend: one file in WAL mode. Every write runs on one writer connection
//! inside `BEGIN IMMEDIATE`, so writers of this process queue in order on the pool instead of
//! spinning in SQLite's busy handler, and a second process on the same file waits on the lock.
//! Reads use their own pool and never wait for writers (WAL). Durability is the URL's
//! `synchronous` parameter ([`Durability`]): `full` (the default) fsyncs the WAL at every commit,
//! so an acknowledged write survives a power cut; `normal` survives a process crash only.
//! Checkpoints never run on the writer: a checkpointer task copies the WAL back on a connection
//! of its own, so a commit never waits for the database file to be written and synced (that wait
//! was the seconds-long stall of the write path on slow disks). No double booking is enforced by
//! triggers in the schema.
//!
//! One file per aggregate (chargers, customers, reservations, transactions, events), each the
//! twin of the PostgreSQL backend's file of the same name: the same functions, each running on
//! an open transaction and returning its value with the seq of the last event it appended.
//! This file owns the connections, the group-commit writer and the [`Store`] impl.

mod chargers;
mod checkpoint;
mod customers;
mod events;
mod reservations;
mod transactions;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::SqliteConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use self::checkpoint::Checkpointer;
pub use self::checkpoint::Durability;
use super::rows::Dialect;
use super::{BookError, CancelError, Head, Page, Store, StoreError};
use crate::domain::ChargeBoxId;
use crate::domain::charger::{ChargerPatch, ChargerRecord, ChargerState, NewCharger};
use crate::domain::customer::{Customer, NewCustomer};
use crate::domain::event::Event;
use crate::domain::reservation::{ChargerAck, NewReservation, Reservation, ReservationFilter};
use crate::domain::transaction::{
    DispatchAgenda, MeterReadings, StartOutcome, StartPolicy, StartRequest, StopOutcome,
    StopRequest, Transaction, TransactionFilter,
};
use crate::settings::sqlite_path;

/// A value written, and the seq of the last event appended with it (if any).
type Written<T> = (T, Option<i64>);

const CHARGER_COLUMNS: &str = "id, name, connectors, password_hash, vendor, model, serial_number, \
     charge_box_serial_number, firmware_version, iccid, imsi, meter_type, meter_serial_number, \
     last_boot_at, last_seen_at, created_at, updated_at";

const RESERVATION_COLUMNS: &str = "id, charger_id, connector_id, customer_id, id_tag, start_ms, \
     end_ms, status, charger_ack, created_at, updated_at";

const TRANSACTION_COLUMNS: &str = "id, charger_id, connector_id, id_tag, customer_id, \
     reservation_id, status, auth_status, meter_start_wh, started_at, meter_stop_wh, stopped_at, \
     stop_reason, last_meter_wh, last_meter_at, created_at, updated_at";

/// Instants are stored as Unix milliseconds, so they are read and compared as they are.
const D: Dialect = Dialect {
    charger_columns: CHARGER_COLUMNS,
    reservation_columns: RESERVATION_COLUMNS,
    transaction_columns: TRANSACTION_COLUMNS,
    event_columns: "seq, at, kind, charger_id, customer_id, reservation_id, data",
    slot_start: "start_ms",
    slot_end: "end_ms",
    instant_param: "{}",
    instant_column: "{}",
    owed: "1",
};

pub struct SqliteStore {
    /// Readers: several connections, never blocked by the writer.
    pool: SqlitePool,
    /// The single writer connection.
    writer: SqlitePool,
    /// Bookings and transaction messages go through the batching writer (group commit), see
    /// [`run_batches`].
    batches: mpsc::Sender<WriteJob>,
    /// Cleared when the batching writer stops: the store can no longer write.
    writer_alive: Arc<AtomicBool>,
    head: Arc<Head>,
    /// Copies the WAL back into the database file, off the write path.
    checkpointer: Checkpointer,
}

/// What a batched job does once its batch committed (`Ok`) or failed to.
type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// How a job ran on the batch's open transaction.
enum Ran {
    /// It wrote; its caller is answered once the batch commits.
    Wrote { finish: Finish, seq: Option<i64> },
    /// It failed or refused: what it wrote is rolled back to its savepoint and its caller
    /// gets the error, whatever becomes of the batch.
    Failed(Finish),
}

/// A unit of work for the batching writer: runs its statements on the batch's open transaction.
type WriteJob = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Ran> + Send>;

/// Most jobs per transaction: enough to amortise the commit, small enough to keep latency low.
const MAX_BATCH: usize = 128;

/// Clears the flag when the writer loop ends, however it ends.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The group-commit loop. Each round takes every job waiting (up to [`MAX_BATCH`]), runs them in
/// one `BEGIN IMMEDIATE … COMMIT` and only then answers each: an answered write is committed.
/// With one writer connection the statements are the cost, so sharing BEGIN/COMMIT among the
/// concurrent writes is what lifts throughput. Each job runs under its own savepoint: a job that
/// fails (or panics) is rolled back alone and only its caller sees it; the others commit. Only a
/// failure of BEGIN, a savepoint or COMMIT fails the whole batch.
async fn run_batches(
    writer: SqlitePool,
    mut jobs: mpsc::Receiver<WriteJob>,
    head: Arc<Head>,
    alive: Arc<AtomicBool>,
) {
    let _guard = AliveGuard(alive);
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut wrote: Vec<Finish> = Vec::with_capacity(batch.len());
        let mut failed: Vec<Finish> = Vec::new();
        let began = std::time::Instant::now();
        let outcome = async {
            let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
            let mut last = None;
            for job in batch.drain(..) {
                sqlx::query("SAVEPOINT job").execute(&mut *tx).await?;
                let ran = std::panic::AssertUnwindSafe(job(&mut tx))
                    .catch_unwind()
                    .await;
                let keep = match ran {
                    Ok(Ran::Wrote { finish, seq }) => {
                        wrote.push(finish);
                        last = seq.max(last);
                        true
                    }
                    Ok(Ran::Failed(finish)) => {
                        failed.push(finish);
                        false
                    }
                    Err(panic) => {
                        // Its caller's reply went down with it: the caller sees NotCompleted.
                        tracing::error!(panic = panic_text(&panic), "a ledger write panicked");
                        false
                    }
                };
                if !keep {
                    sqlx::query("ROLLBACK TO SAVEPOINT job")
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("RELEASE SAVEPOINT job")
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<Option<i64>, StoreError>(last)
        }
        .await;
        crate::metrics::ledger_batch(began.elapsed());
        batch.clear(); // jobs not reached after a failure are dropped: their callers see it
        match &outcome {
            Ok(seq) => {
                if let Some(seq) = seq {
                    head.advance(*seq);
                }
            }
            Err(e) => tracing::error!(error = %e, jobs = wrote.len(), "write batch rolled back"),
        }
        for finish in failed {
            finish(Ok(()));
        }
        for finish in wrote {
            finish(match &outcome {
                Ok(_) => Ok(()),
                Err(e) => Err(StoreError::NotCompleted(format!(
                    "the write batch failed: {e}"
                ))),
            });
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if let Some(parent) = sqlite_path(url)
            .as_deref()
            .and_then(std::path::Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        let (url, durability) = Durability::of(url)?;
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(durability.synchronous())
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // 64 MiB of page cache and memory-mapped reads: the hot pages of the ledger stay in
            // memory instead of being re-read through read() calls.
            .pragma("cache_size", "-65536")
            .pragma("mmap_size", "268435456")
            // No connection checkpoints on commit: the checkpointer does it off the write path.
            .pragma("wal_autocheckpoint", "0")
            // Once a checkpoint let the WAL restart, a file grown past this is cut back.
            .pragma("journal_size_limit", "67108864");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let checkpointer = Checkpointer::start(options.clone()).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.read_only(true))
            .await?;
        let head = Arc::new(Head::new(
            events::last_seq(&mut *writer.acquire().await?).await?,
        ));
        let (batches, jobs) = mpsc::channel(4 * MAX_BATCH);
        let writer_alive = Arc::new(AtomicBool::new(true));
        tokio::spawn(run_batches(
            writer.clone(),
            jobs,
            head.clone(),
            writer_alive.clone(),
        ));
        Ok(SqliteStore {
            pool,
            writer,
            batches,
            writer_alive,
            head,
            checkpointer,
        })
    }

    /// Run `work` on the batching writer's open transaction and return its value once the
    /// batch committed. An `Err` of `work` (a refusal or a database error) rolls back only what
    /// `work` wrote.
    async fn batched<T, E>(
        &self,
        work: impl for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<Written<T>, E>>
        + Send
        + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, E>>();
        let job: WriteJob = Box::new(move |conn| {
            Box::pin(async move {
                match work(conn).await {
                    Ok((value, seq)) => Ran::Wrote {
                        seq,
                        finish: Box::new(move |committed| {
                            let _ = reply.send(committed.map(|()| value).map_err(E::from));
                        }),
                    },
                    Err(e) => Ran::Failed(Box::new(move |_| {
                        let _ = reply.send(Err(e));
                    })),
                }
            })
        });
        self.batches
            .send(job)
            .await
            .map_err(|_| StoreError::NotCompleted("the store is closed".into()))?;
        answer.await.map_err(|_| {
            E::from(StoreError::NotCompleted(
                "the write failed before it could be committed".into(),
            ))
        })?
    }

    /// Run `work` in its own `BEGIN IMMEDIATE` transaction on the writer connection (writes that
    /// are rare and not worth batching), committing when it succeeds.
    async fn write<T, E>(
        &self,
        work: impl for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<Written<T>, E>>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::from)?;
        let (value, seq) = work(&mut tx).await?;
        tx.commit().await.map_err(StoreError::from)?;
        if let Some(seq) = seq {
            self.head.advance(seq);
        }
        Ok(value)
    }
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

    fn can_write(&self) -> bool {
        self.writer_alive.load(Ordering::SeqCst) && !self.writer.is_closed()
    }

    async fn insert_charger(&self, new: &NewCharger) -> Result<ChargerRecord, StoreError> {
        let new = new.clone();
        self.write(move |tx| Box::pin(async move { chargers::insert_charger(tx, &new).await }))
            .await
    }

    async fn charger(&self, id: &ChargeBoxId) -> Result<Option<ChargerRecord>, StoreError> {
        chargers::charger(&self.pool, id).await
    }

    async fn charger_credentials(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Option<Option<String>>, StoreError> {
        chargers::charger_credentials(&self.pool, id).await
    }

    async fn chargers(&self, page: &Page) -> Result<Vec<ChargerRecord>, StoreError> {
        chargers::chargers(&self.pool, page).await
    }

    async fn update_charger(
        &self,
        id: &ChargeBoxId,
        patch: &ChargerPatch,
    ) -> Result<Option<ChargerRecord>, StoreError> {
        let (id2, patch) = (id.clone(), patch.clone());
        let updated = self
            .write(move |tx| {
                Box::pin(async move { chargers::update_charger(tx, &id2, &patch).await })
            })
            .await?;
        if !updated {
            return Ok(None);
        }
        self.charger(id).await
    }

    async fn delete_charger(&self, id: &ChargeBoxId) -> Result<bool, StoreError> {
        let id = id.clone();
        self.write(move |tx| Box::pin(async move { chargers::delete_charger(tx, &id).await }))
            .await
    }

    async fn save_charger_states(&self, states: &[ChargerState]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let all = states.to_vec();
        let Err(e) = self
            .write(move |tx| Box::pin(async move { chargers::save_charger_states(tx, &all).await }))
            .await
        else {
            return Ok(());
        };
        if states.len() == 1 {
            return Err(e);
        }
        // One bad row must not block the others: each alone, and only the rows that fail on
        // their own are dropped (all failing is the database, not a row: the caller retries).
        tracing::warn!(error = %e, count = states.len(), "charger state flush failed; saving each alone");
        let mut saved = 0;
        for s in states {
            let one = vec![s.clone()];
            match self
                .write(move |tx| {
                    Box::pin(async move { chargers::save_charger_states(tx, &one).await })
                })
                .await
            {
                Ok(()) => saved += 1,
                Err(e) => tracing::warn!(charger = %s.id, error = %e, "charger state not saved"),
            }
        }
        if saved == 0 { Err(e) } else { Ok(()) }
    }

    async fn insert_customer(&self, new: &NewCustomer) -> Result<Customer, StoreError> {
        let new = new.clone();
        self.write(move |tx| Box::pin(async move { customers::insert_customer(tx, &new).await }))
            .await
    }

    async fn customer(&self, id: i64) -> Result<Option<Customer>, StoreError> {
        customers::customer(&self.pool, id).await
    }

    async fn customer_by_token(&self, token_digest: &str) -> Result<Option<Customer>, StoreError> {
        customers::customer_by_token(&self.pool, token_digest).await
    }

    async fn customer_of_id_tag(&self, id_tag: &str) -> Result<Option<i64>, StoreError> {
        customers::customer_of_id_tag(&self.pool, id_tag).await
    }

    async fn book(&self, new: &NewReservation) -> Result<Reservation, BookError> {
        let new = new.clone();
        self.batched(move |tx| Box::pin(async move { reservations::book(tx, &new).await }))
            .await
    }

    async fn reservation(&self, id: i32) -> Result<Option<Reservation>, StoreError> {
        reservations::reservation(&self.pool, id).await
    }

    async fn reservations(
        &self,
        filter: &ReservationFilter,
    ) -> Result<Vec<Reservation>, StoreError> {
        reservations::reservations(&self.pool, filter).await
    }

    async fn cancel_reservation(
        &self,
        id: i32,
        owner: Option<i64>,
    ) -> Result<Reservation, CancelError> {
        self.write(move |tx| {
            Box::pin(async move { reservations::cancel_reservation(tx, id, owner).await })
        })
        .await
    }

    async fn start_transaction(
        &self,
        req: &StartRequest,
        policy: &StartPolicy,
    ) -> Result<StartOutcome, StoreError> {
        let (req, policy) = (req.clone(), *policy);
        self.batched(move |tx| {
            Box::pin(async move { transactions::start_transaction(tx, &req, &policy).await })
        })
        .await
    }

    async fn stop_transaction(&self, req: &StopRequest) -> Result<StopOutcome, StoreError> {
        let req = req.clone();
        self.batched(move |tx| {
            Box::pin(async move { transactions::stop_transaction(tx, &req).await })
        })
        .await
    }

    async fn record_meter_values(
        &self,
        readings: &MeterReadings,
    ) -> Result<Option<Transaction>, StoreError> {
        let readings = readings.clone();
        self.batched(move |tx| {
            Box::pin(async move { transactions::record_meter_values(tx, &readings).await })
        })
        .await
    }

    async fn transaction(&self, id: i32) -> Result<Option<Transaction>, StoreError> {
        transactions::transaction(&self.pool, id).await
    }

    async fn transactions(
        &self,
        filter: &TransactionFilter,
    ) -> Result<Vec<Transaction>, StoreError> {
        transactions::transactions(&self.pool, filter).await
    }

    async fn record_charger_ack(
        &self,
        reservation_id: i32,
        ack: ChargerAck,
    ) -> Result<Option<Reservation>, StoreError> {
        self.batched(move |tx| {
            Box::pin(async move { reservations::record_charger_ack(tx, reservation_id, ack).await })
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
        self.batched(move |tx| {
            Box::pin(async move {
                reservations::record_connector_fault(tx, &charger_id, connector_id, ack, at, grace)
                    .await
            })
        })
        .await
    }

    async fn record_cancel_delivered(&self, reservation_id: i32) -> Result<(), StoreError> {
        self.batched(move |tx| {
            Box::pin(async move { reservations::record_cancel_delivered(tx, reservation_id).await })
        })
        .await
    }

    async fn expire_due(&self, now: OffsetDateTime) -> Result<Vec<Reservation>, StoreError> {
        self.batched(move |tx| Box::pin(async move { reservations::expire_due(tx, now).await }))
            .await
    }

    async fn dispatch_agenda(&self, now: OffsetDateTime) -> Result<DispatchAgenda, StoreError> {
        reservations::dispatch_agenda(&self.pool, now).await
    }

    async fn ledger_id(&self) -> Result<String, StoreError> {
        events::ledger_id(&self.pool).await
    }

    fn head(&self) -> tokio::sync::watch::Receiver<i64> {
        self.head.subscribe()
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        events::events_after(&self.pool, after, limit).await
    }

    async fn overlapping_reservations(&self) -> Result<Vec<(i32, i32)>, StoreError> {
        reservations::overlapping_reservations(&self.pool).await
    }

    async fn close(&self) {
        self.checkpointer.stop().await;
        self.writer.close().await;
        self.pool.close().await;
    }
}
