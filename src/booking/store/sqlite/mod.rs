//! The embedded SQLite backend: one file in WAL mode. Every write runs on one writer connection
//! inside `BEGIN IMMEDIATE`, so writers of this process queue in order on the pool instead of
//! spinning in SQLite's busy handler, and a second process on the same file waits on the lock.
//! Reads use their own pool and never wait for writers (WAL). Durability is the URL's
//! `synchronous` parameter ([`Durability`]): `full` (the default) fsyncs the WAL at every commit,
//! so an acknowledged write survives a power cut; `normal` survives a process crash only.
//! Checkpoints never run on the writer: a checkpointer task ([`checkpoint`]) copies the WAL back
//! on a connection of its own, so a commit never waits for the database file to be written and
//! synced (that wait was the seconds-long stall of the write path on slow disks). No double
//! booking is enforced by triggers in the schema.
//!
//! One file per aggregate (chargers, customers, reservations, transactions, events), each the
//! twin of the PostgreSQL backend's file of the same name: the same functions, each running on
//! an open transaction and returning its value with the seq of the last event it appended.
//! This file owns the connections and the [`Store`] impl; [`writer`] the group-commit writer.

mod availability;
mod chargers;
mod checkpoint;
mod configuration;
mod customers;
mod events;
mod local_list;
mod policy;
mod reservations;
mod security;
mod transactions;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::SqliteConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;

use checkpoint::Checkpointer;
pub use checkpoint::Durability;
use writer::{WalSync, Writer};

use super::rows::{self, Dialect};
use super::{BookError, CancelError, CustomerDeletion, Head, Page, Store, StoreError};
use crate::domain::ChargeBoxId;
use crate::domain::availability::{AvailabilityChange, ConnectorAvailability};
use crate::domain::charger::{
    BootInfo, ChargerCredentials, ChargerPatch, ChargerRecord, ChargerState, NewCharger,
    RegistrationState,
};
use crate::domain::configuration::{ConfigurationChange, ConfigurationSnapshot};
use crate::domain::customer::{Customer, CustomerChange, NewCustomer, TagAuth, TagRecord};
use crate::domain::event::Event;
use crate::domain::local_list::LocalListState;
use crate::domain::reservation::{ChargerAck, NewReservation, Reservation, ReservationFilter};
use crate::domain::security::SecurityEvent;
use crate::domain::transaction::{
    DispatchAgenda, MeterReadings, RunningMeter, StartOutcome, StartPolicy, StartRequest,
    StopOutcome, StopRequest, Transaction, TransactionFilter,
};
use crate::settings::sqlite_path;

/// A value written, and the seq of the last event appended with it (if any).
type Written<T> = (T, Option<i64>);

const CHARGER_COLUMNS: &str = "id, state, name, connectors, password_hash, security_profile, vendor, model, serial_number, \
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
    /// [`writer`].
    batches: Writer,
    head: Arc<Head>,
    /// Copies the WAL back into the database file, off the write path (`full` durability).
    checkpointer: Option<Checkpointer>,
    /// With `full` durability (the URL's `synchronous`), the WAL every answered write is synced
    /// to; `None`: crash safety only.
    wal: Option<WalSync>,
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
            // Never an fsync inside COMMIT: with `full` durability the writer's WalSync syncs
            // the WAL beside the writer before a write is answered (see `writer`).
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // 64 MiB of page cache and memory-mapped reads: the hot pages of the ledger stay in
            // memory instead of being re-read through read() calls.
            .pragma("cache_size", "-65536")
            .pragma("mmap_size", "268435456")
            // With `full`, no connection checkpoints on commit: the checkpointer does it off the
            // write path. With `normal` nothing syncs the WAL between checkpoints, so a separate
            // checkpointer would find seconds of unsynced pages to flush (measured: 1.8 s, and
            // writes throttled meanwhile); SQLite's own small checkpoints (every 1,000 pages, in
            // the commit that crosses them) keep that bounded.
            .pragma(
                "wal_autocheckpoint",
                match durability {
                    Durability::PowerLoss => "0",
                    Durability::ProcessCrash => "1000",
                },
            )
            // Once a checkpoint let the WAL restart, a file grown past this is cut back.
            .pragma("journal_size_limit", "67108864");
        let writer = SqlitePoolOptions::new()
            // A local file: a ping before each acquire is a query for nothing.
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let checkpointer = match durability {
            Durability::PowerLoss => Some(Checkpointer::start(options.clone()).await?),
            Durability::ProcessCrash => None,
        };
        let pool = SqlitePoolOptions::new()
            // A local file: a ping before each acquire is a query for nothing.
            .test_before_acquire(false)
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.read_only(true))
            .await?;
        let head = Arc::new(Head::new(
            events::last_seq(&mut *writer.acquire().await?).await?,
        ));
        let wal = match durability {
            Durability::PowerLoss => sqlite_path(&url).map(|file| WalSync::new(&file)),
            Durability::ProcessCrash => None,
        };
        let batches = Writer::spawn(
            writer.clone(),
            head.clone(),
            wal.clone(),
            checkpointer.as_ref().map(Checkpointer::catch_up),
        );
        Ok(SqliteStore {
            pool,
            writer,
            batches,
            head,
            checkpointer,
            wal,
        })
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
        if let Some(wal) = &self.wal {
            wal.sync().await?;
        }
        if let Some(seq) = seq {
            self.head.advance(seq);
        }
        Ok(value)
    }

    /// Persist reported charger state (telemetry, not the ledger: it appends no event) in its
    /// own transaction, never synced on its own: its frames reach the disk with the next ledger
    /// write's WAL sync, which covers everything before it in the file, so a power cut can lose
    /// only the last seconds of reported state. An fsync per flush of 64 chargers would hold the
    /// one writer that StartTransaction waits for.
    async fn write_telemetry(&self, states: Vec<ChargerState>) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        chargers::save_charger_states(&mut tx, &states).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The overlap trigger's refusal.
fn is_overlap(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.message().contains("reservations_no_overlap"))
}

fn is_not_null_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::NotNullViolation)
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
        self.batches.alive() && !self.writer.is_closed()
    }

    async fn insert_charger(&self, new: &NewCharger) -> Result<ChargerRecord, StoreError> {
        let new = new.clone();
        self.write(move |tx| Box::pin(async move { chargers::insert_charger(tx, &new).await }))
            .await
    }

    async fn record_unknown_charger(
        &self,
        id: &ChargeBoxId,
        state: RegistrationState,
        boot: &BootInfo,
        at: OffsetDateTime,
    ) -> Result<RegistrationState, StoreError> {
        let (id, boot) = (id.clone(), boot.clone());
        self.write(move |tx| {
            Box::pin(
                async move { chargers::record_unknown_charger(tx, &id, state, &boot, at).await },
            )
        })
        .await
    }

    async fn charger(&self, id: &ChargeBoxId) -> Result<Option<ChargerRecord>, StoreError> {
        chargers::charger(&self.pool, id).await
    }

    async fn charger_credentials(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Option<ChargerCredentials>, StoreError> {
        chargers::charger_credentials(&self.pool, id).await
    }

    async fn charger_registration(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Option<RegistrationState>, StoreError> {
        chargers::charger_registration(&self.pool, id).await
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

    async fn set_charger_registration(
        &self,
        id: &ChargeBoxId,
        state: RegistrationState,
        patch: &ChargerPatch,
    ) -> Result<Option<ChargerRecord>, StoreError> {
        let (id2, patch) = (id.clone(), patch.clone());
        let updated = self
            .write(move |tx| {
                Box::pin(async move {
                    chargers::set_charger_registration(tx, &id2, state, &patch).await
                })
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
        let Err(e) = self.write_telemetry(states.to_vec()).await else {
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
            match self.write_telemetry(vec![s.clone()]).await {
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

    async fn id_tag_auth(&self, id_tag: &str) -> Result<Option<TagAuth>, StoreError> {
        customers::id_tag_auth(&self.pool, id_tag).await
    }

    async fn change_customer(
        &self,
        id: i64,
        change: &CustomerChange,
    ) -> Result<Option<Customer>, StoreError> {
        let change = change.clone();
        self.write(move |tx| {
            Box::pin(async move { customers::change_customer(tx, id, &change).await })
        })
        .await
    }

    async fn delete_customer(&self, id: i64) -> Result<CustomerDeletion, StoreError> {
        self.write(move |tx| Box::pin(async move { customers::delete_customer(tx, id).await }))
            .await
    }

    async fn book(&self, new: &NewReservation) -> Result<Reservation, BookError> {
        self.batches
            .write(new.clone(), |tx, new| Box::pin(reservations::book(tx, new)))
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
        self.batches
            .write((req.clone(), *policy), |tx, (req, policy)| {
                Box::pin(transactions::start_transaction(tx, req, policy))
            })
            .await
    }

    async fn stop_transaction(&self, req: &StopRequest) -> Result<StopOutcome, StoreError> {
        self.batches
            .write(req.clone(), |tx, req| {
                Box::pin(transactions::stop_transaction(tx, req))
            })
            .await
    }

    async fn record_meter_values(
        &self,
        readings: &MeterReadings,
    ) -> Result<Option<Transaction>, StoreError> {
        self.batches
            .write(readings.clone(), |tx, readings| {
                Box::pin(transactions::record_meter_values(tx, readings))
            })
            .await
    }

    async fn transaction(&self, id: i32) -> Result<Option<Transaction>, StoreError> {
        transactions::transaction(&self.pool, id).await
    }

    async fn running_meters(&self, limit: u32) -> Result<Vec<RunningMeter>, StoreError> {
        let rows = sqlx::query(&D.running_meters())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows::all(&rows, rows::running_meter)
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
        self.batches
            .write((reservation_id, ack), |tx, &(id, ack)| {
                Box::pin(reservations::record_charger_ack(tx, id, ack))
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
        let fault = (charger_id.clone(), connector_id, ack, at, grace);
        self.batches
            .write(fault, |tx, (charger_id, connector_id, ack, at, grace)| {
                Box::pin(reservations::record_connector_fault(
                    tx,
                    charger_id,
                    *connector_id,
                    *ack,
                    *at,
                    *grace,
                ))
            })
            .await
    }

    async fn record_cancel_delivered(&self, reservation_id: i32) -> Result<(), StoreError> {
        self.batches
            .write(reservation_id, |tx, &id| {
                Box::pin(reservations::record_cancel_delivered(tx, id))
            })
            .await
    }

    async fn expire_due(&self, now: OffsetDateTime) -> Result<Vec<Reservation>, StoreError> {
        self.batches
            .write(now, |tx, &now| Box::pin(reservations::expire_due(tx, now)))
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

    fn observe_head(&self, seq: i64) {
        self.head.advance(seq);
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        events::events_after(&self.pool, after, limit).await
    }

    async fn configuration(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Option<ConfigurationSnapshot>, StoreError> {
        configuration::configuration(&self.pool, id).await
    }

    async fn save_configuration(
        &self,
        id: &ChargeBoxId,
        snapshot: &ConfigurationSnapshot,
    ) -> Result<(), StoreError> {
        let (id, snapshot) = (id.clone(), snapshot.clone());
        self.write(move |tx| {
            Box::pin(async move { configuration::save_configuration(tx, &id, &snapshot).await })
        })
        .await
    }

    async fn record_configuration_change(
        &self,
        id: &ChargeBoxId,
        change: &ConfigurationChange,
    ) -> Result<(), StoreError> {
        let (id, change) = (id.clone(), change.clone());
        self.write(move |tx| {
            Box::pin(
                async move { configuration::record_configuration_change(tx, &id, &change).await },
            )
        })
        .await
    }

    async fn local_list_version(&self) -> Result<i64, StoreError> {
        local_list::local_list_version(&self.pool).await
    }

    async fn local_list_tags(&self) -> Result<Vec<(i64, TagRecord)>, StoreError> {
        local_list::local_list_tags(&self.pool).await
    }

    async fn local_list_state(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Option<LocalListState>, StoreError> {
        local_list::local_list_state(&self.pool, id).await
    }

    async fn save_local_list_state(
        &self,
        id: &ChargeBoxId,
        state: &LocalListState,
    ) -> Result<(), StoreError> {
        let (id, state) = (id.clone(), state.clone());
        self.write(move |tx| {
            Box::pin(async move { local_list::save_local_list_state(tx, &id, &state).await })
        })
        .await
    }

    async fn record_security_event(
        &self,
        id: &ChargeBoxId,
        event: &SecurityEvent,
    ) -> Result<(), StoreError> {
        let (id, event) = (id.clone(), event.clone());
        self.write(move |tx| {
            Box::pin(async move { security::record_security_event(tx, &id, &event).await })
        })
        .await
    }

    async fn security_events(
        &self,
        id: &ChargeBoxId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, SecurityEvent)>, StoreError> {
        security::security_events(&self.pool, id, before, limit).await
    }

    async fn configuration_policy(&self) -> Result<Vec<(String, String)>, StoreError> {
        policy::configuration_policy(&self.pool).await
    }

    async fn replace_configuration_policy(
        &self,
        keys: &[(String, String)],
    ) -> Result<(), StoreError> {
        let keys = keys.to_vec();
        self.write(move |tx| {
            Box::pin(async move { policy::replace_configuration_policy(tx, &keys).await })
        })
        .await
    }

    async fn record_availability_change(
        &self,
        id: &ChargeBoxId,
        change: &AvailabilityChange,
    ) -> Result<Vec<Reservation>, StoreError> {
        let (id, change) = (id.clone(), change.clone());
        self.write(move |tx| {
            Box::pin(
                async move { availability::record_availability_change(tx, &id, &change).await },
            )
        })
        .await
    }

    async fn availability(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Vec<ConnectorAvailability>, StoreError> {
        availability::availability(&self.pool, id).await
    }

    async fn overlapping_reservations(&self) -> Result<Vec<(i32, i32)>, StoreError> {
        reservations::overlapping_reservations(&self.pool).await
    }

    async fn close(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.stop().await;
        }
        self.writer.close().await;
        self.pool.close().await;
    }
}
