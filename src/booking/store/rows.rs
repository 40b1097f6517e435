//! What both backends share: the SQL of the reads that differ only in dialect, and the mapping
//! of a row to a domain value. A backend names its [`Dialect`] (column lists, how an instant is
//! read and compared) and its row type implements [`Columns`]; the rest is written once here.
//! No I/O happens here: the backends run the statements.

use time::OffsetDateTime;

use crate::domain::ChargeBoxId;
use crate::domain::charger::{
    BootInfo, ChargerCredentials, ChargerRecord, ConnectorStatus, NewCharger, RegistrationState,
    SecurityProfile,
};
use crate::domain::customer::{Customer, TagAuth, TagRecord, TagStatus, tag_verdict};
use crate::domain::event::{Event, EventKind};
use crate::domain::instant::try_from_millis;
use crate::domain::reservation::{ChargerAck, Reservation, ReservationStatus, TimeSlot};
use crate::domain::transaction::{Authorization, RunningMeter, Transaction, TransactionStatus};

use super::StoreError;

/// The lowest connector above `$2` of charger `$1` that holds a live reservation: what a
/// charger cannot shrink below.
pub(crate) const LIVE_CONNECTOR_ABOVE: &str = "SELECT min(connector_id) FROM reservations \
     WHERE charger_id = $1 AND connector_id > $2 AND status IN ('BOOKED', 'CHARGING_STARTED')";

/// The refusal of a shrink that would strand `connector`'s live reservations.
pub(crate) fn stranded(connector: i64) -> StoreError {
    StoreError::Conflict(format!(
        "connector {connector} has live reservations; cancel them before removing the connector"
    ))
}

/// How one backend spells what the shared statements need. Placeholders are `$n` in both
/// (SQLite numbers them the same way).
pub(crate) struct Dialect {
    pub charger_columns: &'static str,
    pub reservation_columns: &'static str,
    pub transaction_columns: &'static str,
    pub event_columns: &'static str,
    /// The reservation's slot bounds as stored.
    pub slot_start: &'static str,
    pub slot_end: &'static str,
    /// A bound parameter of Unix milliseconds as the stored instant type, `{}` standing for it.
    pub instant_param: &'static str,
    /// A stored instant column read as Unix milliseconds, `{}` standing for it.
    pub instant_column: &'static str,
    /// `cancel_owed` true.
    pub owed: &'static str,
}

impl Dialect {
    /// `$n` as a stored instant.
    pub fn at(&self, n: u32) -> String {
        self.instant_param.replace("{}", &format!("${n}"))
    }

    pub fn charger_by_id(&self) -> String {
        format!(
            "SELECT {} FROM chargers WHERE id = $1",
            self.charger_columns
        )
    }

    /// Chargers are paged in byte order of their id (PostgreSQL's column is COLLATE "C").
    pub fn chargers_after(&self) -> String {
        format!(
            "SELECT {} FROM chargers WHERE id > $1 ORDER BY id LIMIT $2",
            self.charger_columns
        )
    }

    /// [`Dialect::chargers_after`] narrowed to one registration state, `$3`.
    pub fn chargers_in_state_after(&self) -> String {
        format!(
            "SELECT {} FROM chargers WHERE id > $1 AND state = $3 ORDER BY id LIMIT $2",
            self.charger_columns
        )
    }

    pub fn reservation_by_id(&self) -> String {
        format!(
            "SELECT {} FROM reservations WHERE id = $1",
            self.reservation_columns
        )
    }

    pub fn transaction_by_id(&self) -> String {
        format!(
            "SELECT {} FROM transactions WHERE id = $1",
            self.transaction_columns
        )
    }

    /// The newest `$1` running transactions' meters (`running_meter` reads a row).
    pub fn running_meters(&self) -> String {
        let at =
            |column: &str| format!("{} AS {column}", self.instant_column.replace("{}", column));
        format!(
            "SELECT id, meter_start_wh, {}, last_meter_wh, {} FROM transactions \
             WHERE status = 'ACTIVE' ORDER BY id DESC LIMIT $1",
            at("started_at"),
            at("last_meter_at")
        )
    }

    pub fn events_after(&self) -> String {
        format!(
            "SELECT {} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
            self.event_columns
        )
    }

    /// BOOKED reservations whose slot has not ended by `$1`.
    pub fn booked_not_over(&self) -> String {
        format!(
            "SELECT {} FROM reservations WHERE status = 'BOOKED' AND {} > {} \
             ORDER BY {}, id",
            self.reservation_columns,
            self.slot_end,
            self.at(1),
            self.slot_start
        )
    }

    /// Reservations owing a CancelReservation whose slot has not ended by `$1`.
    pub fn cancels_owed(&self) -> String {
        format!(
            "SELECT {} FROM reservations WHERE cancel_owed = {} AND {} > {} ORDER BY {}, id",
            self.reservation_columns,
            self.owed,
            self.slot_end,
            self.at(1),
            self.slot_start
        )
    }

    /// The earliest live slot on charger `$1`, connectors `$2..=$3` and the whole charger's
    /// (connector 0; every connector when `$2` is 0), that overlaps `[$4, $5)` (`start_ms`,
    /// `end_ms`): what an overlap refusal names.
    pub fn first_overlap(&self) -> String {
        let (s, e) = (self.slot_start, self.slot_end);
        format!(
            "SELECT {} AS start_ms, {} AS end_ms FROM reservations WHERE charger_id = $1 \
             AND (connector_id BETWEEN $2 AND $3 OR connector_id = 0 OR $2 = 0) \
             AND status IN ('BOOKED', 'CHARGING_STARTED') \
             AND {s} < {} AND {} < {e} ORDER BY {s} LIMIT 1",
            self.instant_column.replace("{}", s),
            self.instant_column.replace("{}", e),
            self.at(4),
            self.at(5)
        )
    }

    /// Pairs of live reservations on one connector (a whole-charger one, connector 0, sharing
    /// every connector) whose slots overlap. Deliberately not the
    /// constraint's own operator or trigger: an independent check of them.
    pub fn overlapping(&self) -> String {
        let (s, e) = (self.slot_start, self.slot_end);
        format!(
            "SELECT a.id AS a, b.id AS b FROM reservations a JOIN reservations b \
             ON a.charger_id = b.charger_id AND a.id < b.id \
             AND (a.connector_id = b.connector_id OR a.connector_id = 0 OR b.connector_id = 0) \
             AND a.{s} < b.{e} AND b.{s} < a.{e} \
             WHERE a.status IN ('BOOKED', 'CHARGING_STARTED') \
             AND b.status IN ('BOOKED', 'CHARGING_STARTED') ORDER BY a.id, b.id"
        )
    }
}

pub(crate) const LEDGER_ID: &str = "SELECT ledger_id FROM ledger_meta WHERE id = 1";
pub(crate) const CHARGER_CREDENTIALS: &str =
    "SELECT password_hash, security_profile FROM chargers WHERE id = $1";
/// Whether a customer is charging now (a deletion must wait for the stop).
pub(crate) const CUSTOMER_CHARGING: &str = "SELECT EXISTS (SELECT 1 FROM reservations WHERE \
     customer_id = $1 AND status = 'CHARGING_STARTED') \
     OR EXISTS (SELECT 1 FROM transactions WHERE customer_id = $1 AND status = 'ACTIVE')";

/// The last steps of deleting customer `$1`, in order, once its future bookings are cancelled:
/// past transactions stay for the operator's books but belong to no one any more; its tags and
/// the customer go.
pub(crate) const FORGET_CUSTOMER: [&str; 3] = [
    "UPDATE transactions SET customer_id = NULL WHERE customer_id = $1",
    "DELETE FROM id_tags WHERE customer_id = $1",
    "DELETE FROM customers WHERE id = $1",
];

/// A deletion's cancel of a booking read BOOKED in the same transaction: only a database error
/// is expected; anything else would be a ledger bug and aborts the whole deletion.
pub(crate) fn cancel_to_store(e: super::CancelError) -> StoreError {
    match e {
        super::CancelError::Store(e) => e,
        other => StoreError::Conflict(format!("cancelling the customer's booking: {other}")),
    }
}

/// A customer's next tag position (tags keep the order they were given in).
pub(crate) const NEXT_TAG_POSITION: &str =
    "SELECT COALESCE(MAX(position) + 1, 0) FROM id_tags WHERE customer_id = $1";

/// A charger's registration state, read by every BootNotification.
pub(crate) const CHARGER_REGISTRATION: &str = "SELECT state FROM chargers WHERE id = $1";

/// Reads a stored registration state.
pub(crate) fn registration_state(text: &str) -> Result<RegistrationState, StoreError> {
    RegistrationState::parse(text).ok_or_else(|| decode("state", text).into())
}

/// Typed reads of a row's columns by name, the same for both backends. Integers that are
/// 32-bit in PostgreSQL are 64-bit in SQLite: [`Columns::int32`] checks the narrowing.
pub(crate) trait Columns {
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn int32(&self, col: &str) -> Result<i32, sqlx::Error>;
    fn opt_int32(&self, col: &str) -> Result<Option<i32>, sqlx::Error>;
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;

    /// A stored instant; one outside the range the ledger stores is a decode error.
    fn instant(&self, col: &str) -> Result<OffsetDateTime, sqlx::Error> {
        let ms = self.int(col)?;
        try_from_millis(ms).ok_or_else(|| decode(col, format!("{ms} ms is out of range")))
    }

    fn opt_instant(&self, col: &str) -> Result<Option<OffsetDateTime>, sqlx::Error> {
        match self.opt_int(col)? {
            Some(_) => self.instant(col).map(Some),
            None => Ok(None),
        }
    }

    fn unsigned(&self, col: &str) -> Result<u32, sqlx::Error> {
        let v = self.int(col)?;
        u32::try_from(v).map_err(|_| decode(col, format!("{v} is out of range")))
    }
}

fn decode(what: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("{what}: {e}").into())
}

fn narrow(col: &str, v: i64) -> Result<i32, sqlx::Error> {
    i32::try_from(v).map_err(|_| decode(col, format!("{v} is out of range")))
}

impl Columns for sqlx::sqlite::SqliteRow {
    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
    fn int32(&self, col: &str) -> Result<i32, sqlx::Error> {
        narrow(col, self.int(col)?)
    }
    fn opt_int32(&self, col: &str) -> Result<Option<i32>, sqlx::Error> {
        self.opt_int(col)?.map(|v| narrow(col, v)).transpose()
    }
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
}

impl Columns for sqlx::postgres::PgRow {
    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        // int4 columns widen; int8 ones are read as they are.
        match sqlx::Row::try_get::<i64, _>(self, col) {
            Err(sqlx::Error::ColumnDecode { .. }) => Ok(self.int32(col)?.into()),
            other => other,
        }
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        match sqlx::Row::try_get::<Option<i64>, _>(self, col) {
            Err(sqlx::Error::ColumnDecode { .. }) => Ok(self.opt_int32(col)?.map(i64::from)),
            other => other,
        }
    }
    fn int32(&self, col: &str) -> Result<i32, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
    fn opt_int32(&self, col: &str) -> Result<Option<i32>, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
}

pub(crate) fn charger(r: &impl Columns) -> Result<ChargerRecord, StoreError> {
    let id = r.text("id")?;
    let boot = match r.opt_text("vendor")? {
        Some(vendor) => Some(BootInfo {
            vendor,
            model: r.opt_text("model")?.unwrap_or_default(),
            serial_number: r.opt_text("serial_number")?,
            charge_box_serial_number: r.opt_text("charge_box_serial_number")?,
            firmware_version: r.opt_text("firmware_version")?,
            iccid: r.opt_text("iccid")?,
            imsi: r.opt_text("imsi")?,
            meter_type: r.opt_text("meter_type")?,
            meter_serial_number: r.opt_text("meter_serial_number")?,
        }),
        None => None,
    };
    let state = r.text("state")?;
    Ok(ChargerRecord {
        id: ChargeBoxId::parse(&id).map_err(|e| decode(&format!("charger id {id:?}"), e))?,
        state: RegistrationState::parse(&state).ok_or_else(|| decode("state", &state))?,
        name: r.opt_text("name")?,
        connectors: r.unsigned("connectors")?,
        password_hash: r.opt_text("password_hash")?,
        security_profile: {
            let level = r.int("security_profile")?;
            SecurityProfile::new(level).ok_or_else(|| decode("security_profile", level))?
        },
        boot,
        last_boot_at: r.opt_instant("last_boot_at")?,
        last_seen_at: r.opt_instant("last_seen_at")?,
        connector_status: Vec::new(),
        created_at: r.instant("created_at")?,
        updated_at: r.instant("updated_at")?,
    })
}

/// A row of [`CHARGER_CREDENTIALS`].
pub(crate) fn credentials(r: &impl Columns) -> Result<ChargerCredentials, sqlx::Error> {
    let level = r.int("security_profile")?;
    Ok(ChargerCredentials {
        password_hash: r.opt_text("password_hash")?,
        security_profile: SecurityProfile::new(level)
            .ok_or_else(|| decode("security_profile", level))?,
    })
}

/// A charger as it stands right after registration.
pub(crate) fn registered(new: &NewCharger, at: OffsetDateTime) -> ChargerRecord {
    ChargerRecord {
        id: new.id.clone(),
        state: RegistrationState::Accepted,
        name: new.name.clone(),
        connectors: new.connectors,
        password_hash: new.password_hash.clone(),
        security_profile: new.security_profile,
        boot: None,
        last_boot_at: None,
        last_seen_at: None,
        connector_status: Vec::new(),
        created_at: at,
        updated_at: at,
    }
}

/// An unknown charger as its first BootNotification records it: one connector, no password.
pub(crate) fn unknown(
    id: &ChargeBoxId,
    state: RegistrationState,
    boot: &BootInfo,
    booted_at: OffsetDateTime,
    at: OffsetDateTime,
) -> ChargerRecord {
    ChargerRecord {
        id: id.clone(),
        state,
        name: None,
        connectors: 1,
        password_hash: None,
        security_profile: SecurityProfile::NONE,
        boot: Some(boot.clone()),
        last_boot_at: Some(booted_at),
        last_seen_at: Some(booted_at),
        connector_status: Vec::new(),
        created_at: at,
        updated_at: at,
    }
}

/// The event a registration state change appends.
pub(crate) fn verdict_kind(state: RegistrationState) -> crate::domain::event::EventKind {
    use crate::domain::event::kind;
    match state {
        RegistrationState::Accepted => kind::CHARGER_ACCEPTED,
        RegistrationState::Pending => kind::CHARGER_PENDING,
        RegistrationState::Rejected => kind::CHARGER_REJECTED,
    }
}

/// Live reservations (BOOKED or CHARGING_STARTED) of charger `$1`: deleting or rejecting a
/// charger is refused while there are any.
pub(crate) const LIVE_RESERVATIONS: &str = "SELECT count(*) FROM reservations WHERE charger_id = $1 \
     AND status IN ('BOOKED', 'CHARGING_STARTED')";

/// The refusal of a delete or reject while `live` reservations hold the charger.
pub(crate) fn held(id: &ChargeBoxId, live: i64) -> StoreError {
    StoreError::Conflict(format!(
        "charger {id} has {live} live reservation(s); cancel them first"
    ))
}

/// The columns of [`connector_status`], `charger_id` first.
pub(crate) const CONNECTOR_STATUS_COLUMNS: &str = "charger_id, connector_id, status, error_code, \
     info, vendor_error_code, reported_at, updated_at";

/// A connector's last status and the charger it belongs to.
pub(crate) fn connector_status(r: &impl Columns) -> Result<(String, ConnectorStatus), StoreError> {
    Ok((
        r.text("charger_id")?,
        ConnectorStatus {
            connector_id: r.unsigned("connector_id")?,
            status: r.text("status")?.into(),
            error_code: r.text("error_code")?.into(),
            info: r.opt_text("info")?,
            vendor_error_code: r.opt_text("vendor_error_code")?,
            reported_at: r.opt_instant("reported_at")?,
            updated_at: r.instant("updated_at")?,
        },
    ))
}

/// Attach statuses (in any order) to the records they belong to.
pub(crate) fn attach_statuses(
    records: &mut [ChargerRecord],
    statuses: Vec<(String, ConnectorStatus)>,
) {
    for (charger_id, status) in statuses {
        if let Some(rec) = records.iter_mut().find(|c| c.id.as_str() == charger_id) {
            rec.connector_status.push(status);
        }
    }
}

pub(crate) fn reservation(r: &impl Columns) -> Result<Reservation, StoreError> {
    let charger = r.text("charger_id")?;
    let status = r.text("status")?;
    let ack = r.text("charger_ack")?;
    Ok(Reservation {
        id: r.int32("id")?,
        charger_id: ChargeBoxId::parse(&charger).map_err(|e| decode("charger_id", e))?,
        connector_id: r.unsigned("connector_id")?,
        customer_id: r.int("customer_id")?,
        id_tag: r.text("id_tag")?,
        slot: TimeSlot::parse(r.instant("start_ms")?, r.instant("end_ms")?)
            .map_err(|e| decode("slot", e))?,
        status: ReservationStatus::parse(&status).ok_or_else(|| decode("status", &status))?,
        charger_ack: ChargerAck::parse(&ack).ok_or_else(|| decode("charger_ack", &ack))?,
        created_at: r.instant("created_at")?,
        updated_at: r.instant("updated_at")?,
    })
}

/// A slot as read back from the store (`start_ms`, `end_ms`).
pub(crate) fn slot(r: &impl Columns) -> Result<TimeSlot, StoreError> {
    TimeSlot::parse(r.instant("start_ms")?, r.instant("end_ms")?)
        .map_err(|e| StoreError::Database(decode("slot", e)))
}

pub(crate) fn running_meter(r: &impl Columns) -> Result<RunningMeter, StoreError> {
    Ok(RunningMeter {
        id: r.int32("id")?,
        meter_start_wh: r.int("meter_start_wh")?,
        started_at: r.instant("started_at")?,
        last_meter_wh: r.opt_int("last_meter_wh")?,
        last_meter_at: r.opt_instant("last_meter_at")?,
    })
}

pub(crate) fn transaction(r: &impl Columns) -> Result<Transaction, StoreError> {
    let charger = r.text("charger_id")?;
    let status = r.text("status")?;
    let auth = r.text("auth_status")?;
    let mut t = Transaction {
        id: r.int32("id")?,
        charger_id: ChargeBoxId::parse(&charger).map_err(|e| decode("charger_id", e))?,
        connector_id: r.unsigned("connector_id")?,
        id_tag: r.text("id_tag")?,
        customer_id: r.opt_int("customer_id")?,
        reservation_id: r.opt_int32("reservation_id")?,
        status: TransactionStatus::parse(&status).ok_or_else(|| decode("status", &status))?,
        authorization: Authorization::parse(&auth).ok_or_else(|| decode("auth_status", &auth))?,
        meter_start_wh: r.int("meter_start_wh")?,
        started_at: r.instant("started_at")?,
        meter_stop_wh: r.opt_int("meter_stop_wh")?,
        stopped_at: r.opt_instant("stopped_at")?,
        stop_reason: r.opt_text("stop_reason")?,
        last_meter_wh: r.opt_int("last_meter_wh")?,
        last_meter_at: r.opt_instant("last_meter_at")?,
        energy_wh: None,
        created_at: r.instant("created_at")?,
        updated_at: r.instant("updated_at")?,
    };
    t.compute_energy();
    Ok(t)
}

pub(crate) fn event(r: &impl Columns) -> Result<Event, StoreError> {
    let data = r.text("data")?;
    Ok(Event {
        seq: r.int("seq")?,
        at: r.instant("at")?,
        kind: {
            let kind = r.text("kind")?;
            EventKind::parse(&kind).ok_or_else(|| {
                StoreError::Database(sqlx::Error::Decode(
                    format!("unknown event kind {kind:?}").into(),
                ))
            })?
        },
        charger_id: r
            .opt_text("charger_id")?
            .map(|id| {
                ChargeBoxId::parse(&id).map_err(|e| {
                    StoreError::Database(sqlx::Error::Decode(
                        format!("event charger id {id:?}: {e}").into(),
                    ))
                })
            })
            .transpose()?,
        customer_id: r.opt_int("customer_id")?,
        reservation_id: r.opt_int32("reservation_id")?,
        data: serde_json::from_str(&data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

/// A customer row (`id`, `name`, `created_at`) with its idTags, read by the caller.
pub(crate) fn customer(r: &impl Columns, tags: Vec<TagRecord>) -> Result<Customer, StoreError> {
    Ok(Customer {
        id: r.int("id")?,
        name: r.text("name")?,
        id_tags: tags.iter().map(|t| t.id_tag.clone()).collect(),
        tags,
        created_at: r.instant("created_at")?,
    })
}

/// A tag row: `id_tag`, `status`, `expires_at` (Unix ms), `parent_id_tag`.
pub(crate) fn tag(r: &impl Columns) -> Result<TagRecord, StoreError> {
    Ok(TagRecord {
        id_tag: r.text("id_tag")?,
        status: tag_status(&r.text("status")?)?,
        expires_at: r.opt_instant("expires_at")?,
        parent_id_tag: r.opt_text("parent_id_tag")?,
    })
}

/// What the charger-facing answers need of a tag row (`customer_id` and [`tag`]'s columns).
pub(crate) fn tag_auth(r: &impl Columns) -> Result<TagAuth, StoreError> {
    let t = tag(r)?;
    Ok(TagAuth {
        customer_id: r.int("customer_id")?,
        status: t.status,
        expires_at: t.expires_at,
        parent_id_tag: t.parent_id_tag,
    })
}

/// Why a known tag may not start now (Blocked, Expired), from its `status` and `expires_at`
/// columns; `None` when it may (or is unknown: the start rules answer that).
pub(crate) fn tag_refusal(
    status: Option<&str>,
    expires_ms: Option<i64>,
) -> Result<Option<Authorization>, StoreError> {
    let Some(status) = status else {
        return Ok(None);
    };
    let expires_at = expires_ms.and_then(try_from_millis);
    Ok(
        match tag_verdict(tag_status(status)?, expires_at, OffsetDateTime::now_utc()) {
            Authorization::Accepted => None,
            refused => Some(refused),
        },
    )
}

pub(crate) fn tag_status(text: &str) -> Result<TagStatus, StoreError> {
    TagStatus::parse(text).ok_or_else(|| {
        StoreError::Database(sqlx::Error::Decode(
            format!("unknown idTag status {text:?}").into(),
        ))
    })
}

/// A pair from [`Dialect::overlapping`].
pub(crate) fn pair(r: &impl Columns) -> Result<(i32, i32), StoreError> {
    Ok((r.int32("a")?, r.int32("b")?))
}

pub(crate) fn all<R, T>(
    rows: &[R],
    map: impl Fn(&R) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(map).collect()
}

/// A `local_lists` row: `version`, `synced_at` (Unix ms), `status`.
pub(crate) fn local_list_state(
    r: &impl Columns,
) -> Result<crate::domain::local_list::LocalListState, StoreError> {
    Ok(crate::domain::local_list::LocalListState {
        version: r.int32("version")?,
        synced_at: r.opt_instant("synced_at")?,
        status: r.text("status")?,
    })
}

/// A stored security event and its id. A peer that no longer reads as an address is dropped
/// rather than failing the list: it is a detail of an audit trail, not its substance.
pub(crate) fn security_event(
    r: &impl Columns,
) -> Result<(i64, crate::domain::security::SecurityEvent), StoreError> {
    use crate::domain::security::{SecurityEvent, Source};
    let source = r.text("source")?;
    Ok((
        r.int("id")?,
        SecurityEvent {
            source: Source::parse(&source).ok_or_else(|| decode("source", &source))?,
            kind: r.text("kind")?,
            at: r.instant("at")?,
            received_at: r.instant("received_at")?,
            tech_info: r.opt_text("tech_info")?,
            peer: r.opt_text("peer")?.and_then(|p| p.parse().ok()),
        },
    ))
}
