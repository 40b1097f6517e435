//! The storage interface of the ledger. Everything durable goes through [`Store`]; each backend
//! (SQLite embedded by default, PostgreSQL for shared deployments) implements it and must pass the
//! same conformance tests. Backends own their SQL and migrations; callers never see sqlx types.

mod postgres;
mod rows;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use postgres::PgStore;
pub use sqlite::{Durability, SqliteStore};

use time::OffsetDateTime;
use tokio::sync::watch;

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
use crate::domain::reservation::{
    ChargerAck, NewReservation, Reservation, ReservationFilter, ReservationStatus, TimeSlot,
};
use crate::domain::security::SecurityEvent;
use crate::domain::transaction::{
    DispatchAgenda, MeterReadings, RunningMeter, StartOutcome, StartPolicy, StartRequest,
    StopOutcome, StopRequest, Transaction, TransactionFilter,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule of the ledger refused the write; the text says which.
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Unsupported(String),
    /// A write that was not completed: its batch rolled back, or the store is shutting down.
    /// Nothing of it was committed.
    #[error("write not completed: {0}")]
    NotCompleted(String),
    #[error("cannot prepare the database: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a booking was refused.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("no charger {0}")]
    UnknownCharger(ChargeBoxId),
    #[error("charger has no connector {0}")]
    UnknownConnector(u32),
    /// The charger is registered but not accepted into service (pending or rejected).
    #[error("charger {0} is {1}; only an accepted charger can be booked")]
    NotInService(ChargeBoxId, RegistrationState),
    /// The slot overlaps a live reservation; these are the conflicting slot's times (never who
    /// holds it).
    #[error("the slot overlaps another reservation from {} to {}", .0.start(), .0.end())]
    Overlap(TimeSlot),
    #[error("no customer {0}")]
    UnknownCustomer(i64),
    /// The connector (or its whole charger) was made Inoperative through ChangeAvailability;
    /// with no connector asked, every connector that is not taken is.
    #[error("connector {0} is out of service (made Inoperative) until it is made Operative again")]
    OutOfService(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a cancellation was refused.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such reservation")]
    NotFound,
    #[error("a {0} reservation cannot be cancelled")]
    NotCancellable(ReservationStatus),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What deleting a customer did ([`Store::delete_customer`]).
#[derive(Debug, Clone, PartialEq)]
pub enum CustomerDeletion {
    /// Deleted; these were its BOOKED reservations whose slot had not ended, now CANCELLED.
    Deleted {
        cancelled: Vec<Reservation>,
    },
    NotFound,
    /// A reservation of the customer is CHARGING_STARTED or a transaction of theirs is ACTIVE:
    /// nothing was written.
    Charging,
}

// Backends bubble database errors up through either error with `?`.
impl From<sqlx::Error> for BookError {
    fn from(e: sqlx::Error) -> Self {
        BookError::Store(e.into())
    }
}

impl From<sqlx::Error> for CancelError {
    fn from(e: sqlx::Error) -> Self {
        CancelError::Store(e.into())
    }
}

/// How chargers are paged through: ordered by id, starting after `after`, only those in
/// `state` when it is given.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: u32,
    pub state: Option<RegistrationState>,
}

/// Every write that changes the ledger appends its event (see `booking::event`) in the same
/// transaction: inserting, updating and deleting chargers (ChargerRegistered / ChargerUpdated /
/// ChargerDeleted), creating customers, booking, cancelling, expiring, the charger's answers to
/// ReserveNow, the availability changes the server made (ConnectorAvailabilityChanged), and
/// every transaction step. Reported charger state (`save_charger_states`) is
/// telemetry, not a ledger change, and appends nothing. After each commit that appended events
/// the store moves [`Store::head`] to the last one, so consumers wake without polling.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Whether this store can still write (readiness): `false` once its writer is gone, so a
    /// node that can only fail writes is taken out of rotation.
    fn can_write(&self) -> bool;

    async fn insert_charger(&self, new: &NewCharger) -> Result<ChargerRecord, StoreError>;
    /// An unknown charger's first BootNotification (`unknown_chargers` pending or accept): it is
    /// recorded in `state` with one connector, no password and what its Boot said (`at`),
    /// appending `ChargerPending` (or `ChargerRegistered` when accepted). When the id was
    /// registered meanwhile (by the operator, or another node's Boot) nothing is written: the
    /// stored state is returned.
    async fn record_unknown_charger(
        &self,
        id: &ChargeBoxId,
        state: RegistrationState,
        boot: &BootInfo,
        at: OffsetDateTime,
    ) -> Result<RegistrationState, StoreError>;
    async fn charger(&self, id: &ChargeBoxId) -> Result<Option<ChargerRecord>, StoreError>;
    /// The hot lookup of every WebSocket upgrade: `None` when unregistered, else the password
    /// hash and the security profile.
    async fn charger_credentials(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Option<ChargerCredentials>, StoreError>;
    /// What every BootNotification asks: the charger's registration state, `None` when it is
    /// not registered.
    async fn charger_registration(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Option<RegistrationState>, StoreError>;
    async fn chargers(&self, page: &Page) -> Result<Vec<ChargerRecord>, StoreError>;
    async fn update_charger(
        &self,
        id: &ChargeBoxId,
        patch: &ChargerPatch,
    ) -> Result<Option<ChargerRecord>, StoreError>;
    /// The operator's verdict on a charger: `Accepted`, with `patch` applied as by
    /// [`Store::update_charger`], or `Rejected` (`Conflict` while it has live reservations, as
    /// for deletion). Appends `ChargerAccepted` or `ChargerRejected`; `None` when there is no
    /// such charger.
    async fn set_charger_registration(
        &self,
        id: &ChargeBoxId,
        state: RegistrationState,
        patch: &ChargerPatch,
    ) -> Result<Option<ChargerRecord>, StoreError>;
    /// `false` when there was no such charger; `Conflict` while it has live reservations.
    async fn delete_charger(&self, id: &ChargeBoxId) -> Result<bool, StoreError>;
    /// Persist reported state in one transaction; states of chargers deleted meanwhile are dropped.
    async fn save_charger_states(&self, states: &[ChargerState]) -> Result<(), StoreError>;

    /// Create a customer with its idTags; `Conflict` when an idTag (compared case-insensitively)
    /// belongs to someone already. Appends `CustomerCreated`.
    async fn insert_customer(&self, new: &NewCustomer) -> Result<Customer, StoreError>;
    async fn customer(&self, id: i64) -> Result<Option<Customer>, StoreError>;
    async fn customer_by_token(&self, token_digest: &str) -> Result<Option<Customer>, StoreError>;

    /// Book a slot. The database itself refuses an overlap with a live reservation on the same
    /// connector, where `connector_id: Some(0)` (the whole charger) overlaps every connector's
    /// slot and they its; with `connector_id: None` the lowest connector free for the whole slot
    /// is taken. A connector out of service (see [`Store::record_availability_change`]) is
    /// refused (`OutOfService`) or skipped, judged in the same write transaction. Appends `ReservationBooked` in the same transaction.
    async fn book(&self, new: &NewReservation) -> Result<Reservation, BookError>;
    async fn reservation(&self, id: i32) -> Result<Option<Reservation>, StoreError>;
    async fn reservations(
        &self,
        filter: &ReservationFilter,
    ) -> Result<Vec<Reservation>, StoreError>;
    /// Cancel a BOOKED reservation. With `owner`, someone else's reservation is `NotFound`.
    /// Appends `ReservationCancelled`.
    async fn cancel_reservation(
        &self,
        id: i32,
        owner: Option<i64>,
    ) -> Result<Reservation, CancelError>;

    /// The customer owning `id_tag` (compared case-insensitively).
    /// The owner and standing of an idTag (compared case-insensitively).
    async fn id_tag_auth(&self, id_tag: &str) -> Result<Option<TagAuth>, StoreError>;
    /// One change to a customer or its tags, with a CustomerUpdated event; `None` when there
    /// is no such customer or (for tag changes) no such tag of this customer; `Conflict` when
    /// an added idTag belongs to someone already.
    async fn change_customer(
        &self,
        id: i64,
        change: &CustomerChange,
    ) -> Result<Option<Customer>, StoreError>;

    /// Delete a customer in one write: its BOOKED reservations whose slot has not ended are
    /// cancelled exactly as [`Store::cancel_reservation`] does (each with ReservationCancelled,
    /// a CancelReservation owed to a charger that may hold it); its transactions lose their
    /// `customer_id` (they keep the idTag text, which OCPP repeats are matched on); its other
    /// reservations stay and keep the number of a customer that is gone (ids are never reused);
    /// its idTags and row are deleted; CustomerDeleted is appended. Refused with nothing written
    /// while it is charging.
    async fn delete_customer(&self, id: i64) -> Result<CustomerDeletion, StoreError>;

    /// Record a StartTransaction, decided by [`super::transaction::decide_start`] on facts read in
    /// the same write transaction, committed before it returns. Accepted with a reservation:
    /// that reservation becomes CHARGING_STARTED. A refused start is recorded too (the charger
    /// got its transactionId) but belongs to no customer. The same StartTransaction again
    /// (charger, connector, timestamp, meterStart, idTag) answers the first outcome, `repeated`.
    /// Appends `TransactionStarted` or `TransactionRefused`.
    async fn start_transaction(
        &self,
        req: &StartRequest,
        policy: &StartPolicy,
    ) -> Result<StartOutcome, StoreError>;
    /// End an ACTIVE transaction of this charger (its reservation → CHARGING_ENDED), once:
    /// a repeat is `Unchanged`. Appends `TransactionStopped`.
    async fn stop_transaction(&self, req: &StopRequest) -> Result<StopOutcome, StoreError>;
    /// Store energy readings against the named transaction, or the connector's active one when
    /// none is named. `None` when no active transaction of this charger matches (nothing
    /// stored). Appends `MeterValuesRecorded`.
    async fn record_meter_values(
        &self,
        readings: &MeterReadings,
    ) -> Result<Option<Transaction>, StoreError>;
    async fn transaction(&self, id: i32) -> Result<Option<Transaction>, StoreError>;
    /// The meters of the newest `limit` running transactions, newest first.
    async fn running_meters(&self, limit: u32) -> Result<Vec<RunningMeter>, StoreError>;
    /// Newest first.
    async fn transactions(
        &self,
        filter: &TransactionFilter,
    ) -> Result<Vec<Transaction>, StoreError>;

    /// Record the charger's answer to ReserveNow on a BOOKED reservation (appends
    /// `ReservationAckChanged` when it changes). A reservation cancelled meanwhile that the
    /// charger accepted is marked as owing a CancelReservation. Returns the reservation as it
    /// now stands, `None` when there is none.
    async fn record_charger_ack(
        &self,
        reservation_id: i32,
        ack: ChargerAck,
    ) -> Result<Option<Reservation>, StoreError>;
    /// A connector reported Faulted/Unavailable at `at`: live reservations on it whose slot
    /// (widened by `grace` before the start) contains `at` show it as their `chargerAck`.
    async fn record_connector_fault(
        &self,
        charger_id: &ChargeBoxId,
        connector_id: u32,
        ack: ChargerAck,
        at: OffsetDateTime,
        grace: time::Duration,
    ) -> Result<Vec<Reservation>, StoreError>;
    /// The charger answered the CancelReservation owed for this reservation.
    async fn record_cancel_delivered(&self, reservation_id: i32) -> Result<(), StoreError>;
    /// BOOKED reservations whose slot ended by `now` become EXPIRED (`ReservationExpired`).
    async fn expire_due(&self, now: OffsetDateTime) -> Result<Vec<Reservation>, StoreError>;
    /// What the dispatcher owes chargers, for its start.
    async fn dispatch_agenda(&self, now: OffsetDateTime) -> Result<DispatchAgenda, StoreError>;

    /// The ledger's identity: a random id made when the ledger was created. Read models record
    /// it, to know the log they folded is this one.
    async fn ledger_id(&self) -> Result<String, StoreError>;

    /// The `seq` of the last committed event, updated after every commit.
    fn head(&self) -> watch::Receiver<i64>;

    /// Another node committed up to `seq` in this shared log (the cluster said so): the head
    /// moves there, so whoever follows it reads the new events at once.
    fn observe_head(&self, seq: i64);

    /// Events with `seq > after`, in order, at most `limit`.
    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError>;
    /// The charger's configuration as last read (GetConfiguration), if it was ever read.
    async fn configuration(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Option<ConfigurationSnapshot>, StoreError>;
    /// Replaces the charger's configuration snapshot with a fresh read. Telemetry, like
    /// reported state: appends nothing. A charger deleted meanwhile keeps none.
    async fn save_configuration(
        &self,
        id: &ChargeBoxId,
        snapshot: &ConfigurationSnapshot,
    ) -> Result<(), StoreError>;
    /// A ChangeConfiguration the charger accepted: its key's value in the snapshot when it is
    /// in effect (there is one and the answer was `Accepted`), and `ConfigurationChanged`
    /// appended, in one transaction.
    async fn record_configuration_change(
        &self,
        id: &ChargeBoxId,
        change: &ConfigurationChange,
    ) -> Result<(), StoreError>;

    /// A ChangeAvailability the charger answered Accepted or Scheduled, in one transaction
    /// that also judges bookings (a booking cannot slip in between): the connector's (for 0,
    /// the charger's and every connector's) availability is recorded and
    /// `ConnectorAvailabilityChanged` appended. Inoperative: BOOKED reservations on it whose
    /// slot is not over show UNAVAILABLE. Operative: those showing UNAVAILABLE on a connector
    /// now in service go back to PENDING, so the dispatcher offers them again. Returns the
    /// reservations it changed (`ReservationAckChanged` each); nothing for an unknown charger.
    async fn record_availability_change(
        &self,
        id: &ChargeBoxId,
        change: &AvailabilityChange,
    ) -> Result<Vec<Reservation>, StoreError>;
    /// The availability the server last gave each connector it changed, by connector id.
    async fn availability(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Vec<ConnectorAvailability>, StoreError>;

    /// The local list's version: the seq of the last CustomerCreated, CustomerUpdated or
    /// CustomerDeleted event (0 when there was none).
    async fn local_list_version(&self) -> Result<i64, StoreError>;
    /// Every customer's tags with their owner, in idTag order: what a full local list holds.
    async fn local_list_tags(&self) -> Result<Vec<(i64, TagRecord)>, StoreError>;
    /// The charger's local list as last synced, if a sync was ever tried.
    async fn local_list_state(
        &self,
        id: &ChargeBoxId,
    ) -> Result<Option<LocalListState>, StoreError>;
    /// Records a sync's outcome. Telemetry, like reported state: appends nothing. A charger
    /// deleted meanwhile keeps none.
    async fn save_local_list_state(
        &self,
        id: &ChargeBoxId,
        state: &LocalListState,
    ) -> Result<(), StoreError>;

    /// Appends a security event to the charger's audit trail (charger id as given: the trail
    /// outlives the charger and may name one never registered). An audit record, not a ledger
    /// change: appends no event to the log.
    async fn record_security_event(
        &self,
        id: &ChargeBoxId,
        event: &SecurityEvent,
    ) -> Result<(), StoreError>;
    /// The charger's security events with their ids, newest first, only those with an id below
    /// `before` when it is given, at most `limit`.
    async fn security_events(
        &self,
        id: &ChargeBoxId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, SecurityEvent)>, StoreError>;

    /// The fleet's configuration key policy (key, value), by key. Operator configuration, not
    /// a ledger change: appends nothing.
    async fn configuration_policy(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Replaces the whole policy with `keys` in one transaction (empty: no policy).
    async fn replace_configuration_policy(
        &self,
        keys: &[(String, String)],
    ) -> Result<(), StoreError>;

    /// Pairs of live reservations on one connector (connector 0, the whole charger, shares every
    /// connector) whose slots overlap. Always empty unless the
    /// ledger is broken; tests and benchmarks use it as the double-booking check.
    async fn overlapping_reservations(&self) -> Result<Vec<(i32, i32)>, StoreError>;

    async fn close(&self);
}

/// The last committed event's `seq`, published to consumers of the log.
#[derive(Debug)]
pub(crate) struct Head(watch::Sender<i64>);

impl Head {
    pub(crate) fn new(seq: i64) -> Self {
        Head(watch::Sender::new(seq))
    }

    /// Move forward to `seq` (never back: commits may report out of order).
    pub(crate) fn advance(&self, seq: i64) {
        self.0.send_if_modified(|head| {
            let forward = seq > *head;
            if forward {
                *head = seq;
            }
            forward
        });
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<i64> {
        self.0.subscribe()
    }
}

/// `SELECT {columns} FROM {table}` narrowed by charger, customer and status: how every list
/// query of either backend starts (reservations and transactions alike).
pub(crate) fn list_query<'a, DB: sqlx::Database>(
    columns: &str,
    table: &str,
    charger_id: Option<&ChargeBoxId>,
    customer_id: Option<i64>,
    status: Option<&'static str>,
) -> sqlx::QueryBuilder<'a, DB>
where
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'static str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {columns} FROM {table} WHERE 1 = 1"));
    if let Some(c) = charger_id {
        q.push(" AND charger_id = ")
            .push_bind(c.as_str().to_string());
    }
    if let Some(c) = customer_id {
        q.push(" AND customer_id = ").push_bind(c);
    }
    if let Some(s) = status {
        q.push(" AND status = ").push_bind(s);
    }
    q
}

/// Which backend a database URL names, read from its scheme: the one place the ledger decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Unsupported(format!(
                "database {}: use sqlite:// or postgres://",
                url.split("://").next().unwrap_or(url)
            )))
        }
    }
}

/// Flag a meter reading the ledger does not take as energy (see `domain::transaction`): a
/// warning naming the charger, and a counter.
pub(crate) fn implausible_meter(
    message: &'static str,
    charger: &str,
    transaction: Option<i32>,
    wh: i64,
) {
    tracing::warn!(
        charger,
        transaction,
        wh,
        message,
        "implausible meter reading, not taken as energy"
    );
    crate::metrics::implausible_meter(message);
}

/// Open the database named by `url`, creating and migrating it as needed.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with_pool(url, postgres::DEFAULT_POOL).await
}

/// [`open`] with a PostgreSQL pool of at most `pool` connections (SQLite's connections are
/// its own: one writer and a few readers).
pub async fn open_with_pool(url: &str, pool: u32) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match Backend::of(url)? {
        Backend::Sqlite => Arc::new(SqliteStore::open(url).await?),
        Backend::Postgres => Arc::new(PgStore::open(url, pool).await?),
    })
}
