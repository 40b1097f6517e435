//! The PostgreSQL backend, for deployments where several nodes share one ledger. It behaves like
//! the SQLite backend (the conformance tests hold both to it), but concurrency is real here: no
//! double booking is the exclusion constraint `reservations_no_overlap`, the event log is gap-free
//! through a one-row counter taken in each writing transaction, and deadlocks or serialization
//! failures that contention can cause are retried rather than shown to the caller. Instants cross
//! the wire as Unix milliseconds (`ms_to_ts` / `ts_to_ms` in the migration), as in SQLite.
//!
//! One file per aggregate (chargers, customers, reservations, transactions, events), each the
//! twin of the SQLite backend's file of the same name: the same functions, each running on an
//! open transaction and returning its value with the seq of the last event it appended. This
//! file owns the pool, the retries and the [`Store`] impl.

mod availability;
mod chargers;
mod configuration;
mod customers;
mod events;
mod local_list;
mod policy;
mod reservations;
mod security;
mod transactions;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use time::OffsetDateTime;

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

/// A value written, and the seq of the last event appended with it (if any).
type Written<T> = (T, Option<i64>);

pub struct PgStore {
    pool: PgPool,
    /// The last event this node committed (see [`PgStore::commit`]).
    head: Head,
}

/// SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const EXCLUSION_VIOLATION: &str = "23P01";
const FOREIGN_KEY_VIOLATION: &str = "23503";
const DEADLOCK_DETECTED: &str = "40P01";
const SERIALIZATION_FAILURE: &str = "40001";

/// How often a transaction that lost a deadlock or serialization race is tried again. Each
/// retry meets the winner committed, so one or two suffice; the rest is headroom.
const ATTEMPTS: u32 = 8;

const CHARGER_COLUMNS: &str = "id, state, name, connectors, password_hash, security_profile, vendor, model, serial_number, \
     charge_box_serial_number, firmware_version, iccid, imsi, meter_type, meter_serial_number, \
     ts_to_ms(last_boot_at) AS last_boot_at, ts_to_ms(last_seen_at) AS last_seen_at, \
     ts_to_ms(created_at) AS created_at, ts_to_ms(updated_at) AS updated_at";

const RESERVATION_COLUMNS: &str = "id, charger_id, connector_id, customer_id, id_tag, \
     ts_to_ms(start_at) AS start_ms, ts_to_ms(end_at) AS end_ms, status, charger_ack, \
     ts_to_ms(created_at) AS created_at, ts_to_ms(updated_at) AS updated_at";

const TRANSACTION_COLUMNS: &str = "id, charger_id, connector_id, id_tag, customer_id, \
     reservation_id, status, auth_status, meter_start_wh, ts_to_ms(started_at) AS started_at, \
     meter_stop_wh, ts_to_ms(stopped_at) AS stopped_at, stop_reason, last_meter_wh, \
     ts_to_ms(last_meter_at) AS last_meter_at, ts_to_ms(created_at) AS created_at, \
     ts_to_ms(updated_at) AS updated_at";

/// Instants are `timestamptz`, read as Unix milliseconds through `ts_to_ms`.
const D: Dialect = Dialect {
    charger_columns: CHARGER_COLUMNS,
    reservation_columns: RESERVATION_COLUMNS,
    transaction_columns: TRANSACTION_COLUMNS,
    event_columns: "seq, ts_to_ms(at) AS at, kind, charger_id, customer_id, reservation_id, \
         data::text AS data",
    slot_start: "start_at",
    slot_end: "end_at",
    instant_param: "ms_to_ts({})",
    instant_column: "ts_to_ms({})",
    owed: "true",
};

/// The ledger pool's size when the settings do not say (`database_pool_size`).
pub const DEFAULT_POOL: u32 = 16;

impl PgStore {
    pub async fn open(url: &str, pool: u32) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool.max(1))
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        // sqlx holds an advisory lock while migrating, so nodes starting together take turns.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let last = events::last_seq(&mut *pool.acquire().await?).await?;
        Ok(PgStore {
            pool,
            head: Head::new(last),
        })
    }

    /// Commit, then publish `seq` (the last event the transaction appended, if any) as the head.
    /// Event-writing commits take turns on the counter row, so heads arrive in order; `advance`
    /// never moves back anyway.
    async fn commit(
        &self,
        tx: sqlx::Transaction<'_, Postgres>,
        seq: Option<i64>,
    ) -> Result<(), StoreError> {
        tx.commit().await?;
        if let Some(seq) = seq {
            self.head.advance(seq);
        }
        Ok(())
    }
}

/// PostgreSQL text cannot hold NUL: what a charger or client sent is stored with U+FFFD in its
/// place rather than failing the write.
pub(super) fn pg_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

pub(super) fn pg_opt_text(s: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
    s.as_deref().map(pg_text)
}

/// An event's data as `jsonb` takes it: jsonb refuses the NUL escape `\u0000` in strings.
pub(super) fn pg_json(v: &serde_json::Value) -> String {
    fn clean(v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(pg_text(s).into_owned()),
            Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (pg_text(k).into_owned(), clean(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    let text = v.to_string();
    if text.contains("\\u0000") {
        clean(v).to_string()
    } else {
        text
    }
}

/// Run `$work` (an aggregate function given the open transaction `$tx`) in its own transaction,
/// committed when it succeeds, retried while it loses races.
macro_rules! in_transaction {
    ($store:expr, |$tx:ident| $work:expr) => {
        retrying(|| async {
            let mut $tx = $store.pool.begin().await.map_err(StoreError::from)?;
            let (value, seq) = $work.await?;
            $store.commit($tx, seq).await?;
            Ok::<_, _>(value)
        })
        .await
    };
}

fn has_sqlstate(e: &sqlx::Error, code: &str) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some(code))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Signals "lost a race, try the transaction again" from inside an attempt. Never leaves this
/// module: [`retrying`] consumes it, and after the last attempt it reads as what it is.
fn retry_marker() -> sqlx::Error {
    sqlx::Error::Protocol(RETRY_MARKER.into())
}

const RETRY_MARKER: &str = "echarging: lost a race to a concurrent write; retry";

fn is_transient(e: &sqlx::Error) -> bool {
    has_sqlstate(e, DEADLOCK_DETECTED)
        || has_sqlstate(e, SERIALIZATION_FAILURE)
        || matches!(e, sqlx::Error::Protocol(m) if m == RETRY_MARKER)
}

/// Errors that may carry a transient database failure.
trait Transient {
    fn transient(&self) -> bool;
}

impl Transient for StoreError {
    fn transient(&self) -> bool {
        matches!(self, StoreError::Database(e) if is_transient(e))
    }
}

impl Transient for BookError {
    fn transient(&self) -> bool {
        matches!(self, BookError::Store(e) if e.transient())
    }
}

impl Transient for CancelError {
    fn transient(&self) -> bool {
        matches!(self, CancelError::Store(e) if e.transient())
    }
}

/// Run one transaction attempt until it does not fail transiently; between attempts a short,
/// growing, jittered sleep lets the winner commit and keeps the losers from colliding again in
/// lockstep.
async fn retrying<T, E, Fut>(mut attempt: impl FnMut() -> Fut) -> Result<T, E>
where
    E: Transient,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.transient() && tries < ATTEMPTS => {
                let ceiling_ms = 5u64 << tries.min(5);
                let pause = rand::rng().random_range(1..=ceiling_ms);
                tracing::debug!(
                    tries,
                    pause_ms = pause,
                    "transient database conflict; retrying"
                );
                tokio::time::sleep(Duration::from_millis(pause)).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn can_write(&self) -> bool {
        !self.pool.is_closed()
    }

    async fn insert_charger(&self, new: &NewCharger) -> Result<ChargerRecord, StoreError> {
        in_transaction!(self, |tx| chargers::insert_charger(&mut tx, new))
    }

    async fn record_unknown_charger(
        &self,
        id: &ChargeBoxId,
        state: RegistrationState,
        boot: &BootInfo,
        at: OffsetDateTime,
    ) -> Result<RegistrationState, StoreError> {
        in_transaction!(self, |tx| chargers::record_unknown_charger(
            &mut tx, id, state, boot, at
        ))
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
        let updated: Result<bool, StoreError> =
            in_transaction!(self, |tx| chargers::update_charger(&mut tx, id, patch));
        if !updated? {
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
        let updated: Result<bool, StoreError> = in_transaction!(self, |tx| {
            chargers::set_charger_registration(&mut tx, id, state, patch)
        });
        if !updated? {
            return Ok(None);
        }
        self.charger(id).await
    }

    async fn delete_charger(&self, id: &ChargeBoxId) -> Result<bool, StoreError> {
        in_transaction!(self, |tx| chargers::delete_charger(&mut tx, id))
    }

    async fn save_charger_states(&self, states: &[ChargerState]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        // Row locks in id order: two flushes (say, from two nodes) cannot deadlock each other.
        let mut ordered: Vec<&ChargerState> = states.iter().collect();
        ordered.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        let all: Result<(), StoreError> =
            in_transaction!(self, |tx| chargers::save_charger_states(&mut tx, &ordered));
        let Err(e) = all else { return Ok(()) };
        if ordered.len() == 1 {
            return Err(e);
        }
        // One bad row must not block the others: each alone, and only the rows that fail on
        // their own are dropped (all failing is the database, not a row: the caller retries).
        tracing::warn!(error = %e, count = ordered.len(), "charger state flush failed; saving each alone");
        let mut saved = 0;
        for s in &ordered {
            let one: Result<(), StoreError> =
                in_transaction!(self, |tx| chargers::save_charger_states(&mut tx, &[*s]));
            match one {
                Ok(()) => saved += 1,
                Err(e) => tracing::warn!(charger = %s.id, error = %e, "charger state not saved"),
            }
        }
        if saved == 0 { Err(e) } else { Ok(()) }
    }

    async fn insert_customer(&self, new: &NewCustomer) -> Result<Customer, StoreError> {
        in_transaction!(self, |tx| customers::insert_customer(&mut tx, new))
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
        in_transaction!(self, |tx| customers::change_customer(&mut tx, id, change))
    }

    async fn delete_customer(&self, id: i64) -> Result<CustomerDeletion, StoreError> {
        in_transaction!(self, |tx| customers::delete_customer(&mut tx, id))
    }

    async fn book(&self, new: &NewReservation) -> Result<Reservation, BookError> {
        in_transaction!(self, |tx| reservations::book(&mut tx, new))
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
        in_transaction!(self, |tx| reservations::cancel_reservation(
            &mut tx, id, owner
        ))
    }

    async fn start_transaction(
        &self,
        req: &StartRequest,
        policy: &StartPolicy,
    ) -> Result<StartOutcome, StoreError> {
        in_transaction!(self, |tx| transactions::start_transaction(
            &mut tx, req, policy
        ))
    }

    async fn stop_transaction(&self, req: &StopRequest) -> Result<StopOutcome, StoreError> {
        in_transaction!(self, |tx| transactions::stop_transaction(&mut tx, req))
    }

    async fn record_meter_values(
        &self,
        readings: &MeterReadings,
    ) -> Result<Option<Transaction>, StoreError> {
        in_transaction!(self, |tx| transactions::record_meter_values(
            &mut tx, readings
        ))
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
        in_transaction!(self, |tx| reservations::record_charger_ack(
            &mut tx,
            reservation_id,
            ack
        ))
    }

    async fn record_connector_fault(
        &self,
        charger_id: &ChargeBoxId,
        connector_id: u32,
        ack: ChargerAck,
        at: OffsetDateTime,
        grace: time::Duration,
    ) -> Result<Vec<Reservation>, StoreError> {
        in_transaction!(self, |tx| reservations::record_connector_fault(
            &mut tx,
            charger_id,
            connector_id,
            ack,
            at,
            grace
        ))
    }

    async fn record_cancel_delivered(&self, reservation_id: i32) -> Result<(), StoreError> {
        in_transaction!(self, |tx| reservations::record_cancel_delivered(
            &mut tx,
            reservation_id
        ))
    }

    async fn expire_due(&self, now: OffsetDateTime) -> Result<Vec<Reservation>, StoreError> {
        in_transaction!(self, |tx| reservations::expire_due(&mut tx, now))
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
        in_transaction!(self, |tx| configuration::save_configuration(
            &mut tx, id, snapshot
        ))
    }

    async fn record_configuration_change(
        &self,
        id: &ChargeBoxId,
        change: &ConfigurationChange,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx| configuration::record_configuration_change(
            &mut tx, id, change
        ))
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
        in_transaction!(self, |tx| local_list::save_local_list_state(
            &mut tx, id, state
        ))
    }

    async fn record_security_event(
        &self,
        id: &ChargeBoxId,
        event: &SecurityEvent,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx| security::record_security_event(
            &mut tx, id, event
        ))
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
        in_transaction!(self, |tx| policy::replace_configuration_policy(
            &mut tx, keys
        ))
    }

    async fn record_availability_change(
        &self,
        id: &ChargeBoxId,
        change: &AvailabilityChange,
    ) -> Result<Vec<Reservation>, StoreError> {
        in_transaction!(self, |tx| availability::record_availability_change(
            &mut tx, id, change
        ))
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
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transient_failures_are_retried_then_surface() {
        let mut calls = 0;
        let result: Result<u32, StoreError> = retrying(|| {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(StoreError::Database(retry_marker()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);

        let mut calls = 0;
        let result: Result<(), BookError> = retrying(|| {
            calls += 1;
            async { Err(BookError::Store(StoreError::Database(retry_marker()))) }
        })
        .await;
        assert!(result.unwrap_err().transient());
        assert_eq!(calls, ATTEMPTS);

        // Anything else is answered at once.
        let mut calls = 0;
        let result: Result<(), CancelError> = retrying(|| {
            calls += 1;
            async { Err(CancelError::NotFound) }
        })
        .await;
        assert!(matches!(result, Err(CancelError::NotFound)));
        assert_eq!(calls, 1);
    }
}
