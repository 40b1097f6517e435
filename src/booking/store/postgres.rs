//! The PostgreSQL backend, for deployments where several nodes share one ledger. It behaves like
//! the SQLite backend (the conformance tests hold both to it), but concurrency is real here: no
//! double booking is the exclusion constraint `reservations_no_overlap`, the event log is gap-free
//! through a one-row counter taken in each writing transaction, and deadlocks or serialization
//! failures that contention can cause are retried rather than shown to the caller. Instants cross
//! the wire as Unix milliseconds (`ms_to_ts` / `ts_to_ms` in the migration), as in SQLite.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use time::OffsetDateTime;

use super::{BookError, CancelError};
use super::{Head, Page, Store, StoreError};
use crate::domain::ChargeBoxId;
use crate::domain::charger::{
    BootInfo, ChargerPatch, ChargerRecord, ChargerState, ConnectorStatus, NewCharger,
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

const CHARGER_COLUMNS: &str = "id, name, connectors, password_hash, vendor, model, serial_number, \
     charge_box_serial_number, firmware_version, iccid, imsi, meter_type, meter_serial_number, \
     ts_to_ms(last_boot_at) AS last_boot_at, ts_to_ms(last_seen_at) AS last_seen_at, \
     ts_to_ms(created_at) AS created_at, ts_to_ms(updated_at) AS updated_at";

const RESERVATION_COLUMNS: &str = "id, charger_id, connector_id, customer_id, id_tag, \
     ts_to_ms(start_at) AS start_ms, ts_to_ms(end_at) AS end_ms, status, charger_ack, \
     ts_to_ms(created_at) AS created_at, ts_to_ms(updated_at) AS updated_at";

/// A customer with its idTags in one round trip (`customer_by_token` runs on every request of a
/// customer).
const CUSTOMER_SELECT: &str = "SELECT id, name, ts_to_ms(created_at) AS created_at, \
     ARRAY(SELECT id_tag FROM id_tags t WHERE t.customer_id = c.id ORDER BY position) AS id_tags \
     FROM customers c";

impl PgStore {
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        // sqlx holds an advisory lock while migrating, so nodes starting together take turns.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let last: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events")
            .fetch_one(&pool)
            .await?;
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

    /// Rows plus their connector statuses, in row order.
    async fn records(&self, rows: Vec<PgRow>) -> Result<Vec<ChargerRecord>, StoreError> {
        let mut records = rows
            .iter()
            .map(charger_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if records.is_empty() {
            return Ok(records);
        }
        let ids: Vec<String> = records.iter().map(|c| c.id.as_str().to_string()).collect();
        let statuses = sqlx::query(
            "SELECT charger_id, connector_id, status, error_code, info, vendor_error_code, \
             ts_to_ms(reported_at), ts_to_ms(updated_at) FROM connector_status \
             WHERE charger_id = ANY($1) ORDER BY charger_id, connector_id",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        for r in &statuses {
            let charger_id: String = r.try_get(0)?;
            let status = ConnectorStatus {
                connector_id: r.try_get::<i32, _>(1)? as u32,
                status: r.try_get::<String, _>(2)?.into(),
                error_code: r.try_get::<String, _>(3)?.into(),
                info: r.try_get(4)?,
                vendor_error_code: r.try_get(5)?,
                reported_at: r.try_get::<Option<i64>, _>(6)?.map(from_millis),
                updated_at: from_millis(r.try_get(7)?),
            };
            if let Some(rec) = records.iter_mut().find(|c| c.id.as_str() == charger_id) {
                rec.connector_status.push(status);
            }
        }
        Ok(records)
    }

    async fn customer_where(
        &self,
        condition: &str,
        bind: impl for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
    ) -> Result<Option<Customer>, StoreError> {
        let row = sqlx::query(&format!("{CUSTOMER_SELECT} WHERE {condition}"))
            .bind(bind)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Customer {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            id_tags: row.try_get("id_tags")?,
            created_at: from_millis(row.try_get("created_at")?),
        }))
    }

    async fn try_insert_charger(&self, new: &NewCharger) -> Result<ChargerRecord, StoreError> {
        let now = to_millis(OffsetDateTime::now_utc());
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query(
            "INSERT INTO chargers (id, name, connectors, password_hash, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, ms_to_ts($5), ms_to_ts($5))",
        )
        .bind(new.id.as_str())
        .bind(&new.name)
        .bind(new.connectors as i32)
        .bind(&new.password_hash)
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
        self.commit(tx, Some(seq)).await?;
        Ok(record)
    }

    /// Whether there was such a charger.
    async fn try_update_charger(
        &self,
        id: &ChargeBoxId,
        patch: &ChargerPatch,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut q = QueryBuilder::<Postgres>::new("UPDATE chargers SET updated_at = ms_to_ts(");
        q.push_bind(to_millis(OffsetDateTime::now_utc())).push(")");
        if let Some(name) = &patch.name {
            q.push(", name = ").push_bind(name.clone());
        }
        if let Some(n) = patch.connectors {
            q.push(", connectors = ").push_bind(n as i32);
        }
        if let Some(hash) = &patch.password_hash {
            q.push(", password_hash = ").push_bind(hash.clone());
        }
        q.push(" WHERE id = ").push_bind(id.as_str());
        q.push(format!(" RETURNING {CHARGER_COLUMNS}"));
        let Some(row) = q.build().fetch_optional(&mut *tx).await? else {
            return Ok(false);
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
        self.commit(tx, Some(seq)).await?;
        Ok(true)
    }

    async fn try_insert_customer(&self, new: &NewCustomer) -> Result<Customer, StoreError> {
        let now = to_millis(OffsetDateTime::now_utc());
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO customers (name, token_digest, created_at) \
             VALUES ($1, $2, ms_to_ts($3)) RETURNING id",
        )
        .bind(&new.name)
        .bind(&new.token_digest)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        // One row at a time, in the given order, so the refusal names the first taken idTag,
        // as in SQLite. Two creations racing for the same tags in opposite order can deadlock;
        // the retry then meets the winner's tags committed and answers Conflict.
        for (position, tag) in new.id_tags.iter().enumerate() {
            let inserted = sqlx::query(
                "INSERT INTO id_tags (id_tag_key, id_tag, customer_id, position) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(tag.key())
            .bind(tag.as_str())
            .bind(id)
            .bind(position as i32)
            .execute(&mut *tx)
            .await;
            match inserted {
                // Dropping the transaction rolls back the customer too: nothing half-written.
                Err(e) if is_unique_violation(&e) => {
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
            created_at: from_millis(now),
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
        self.commit(tx, Some(seq)).await?;
        Ok(customer)
    }

    async fn try_book(&self, new: &NewReservation) -> Result<Reservation, BookError> {
        // Which refusal wins when several apply is SQLite's: connector 0, then an unknown
        // charger or connector, then an overlap, and only then an unknown customer (known by
        // the foreign key refusing an insert the slot itself allowed).
        if new.connector_id == Some(0) {
            return Err(BookError::UnknownConnector(0));
        }
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        // KEY SHARE keeps the charger from being deleted until this commits (delete_charger
        // takes the row FOR UPDATE), without blocking telemetry updates of the same row.
        let connectors: Option<i32> =
            sqlx::query_scalar("SELECT connectors FROM chargers WHERE id = $1 FOR KEY SHARE")
                .bind(new.charger_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        let Some(connectors) = connectors.map(|n| n as u32) else {
            return Err(BookError::UnknownCharger(new.charger_id.clone()));
        };
        let candidates = match new.connector_id {
            Some(c) if c > connectors => return Err(BookError::UnknownConnector(c)),
            Some(c) => c..=c,
            None => 1..=connectors,
        };
        let now = to_millis(OffsetDateTime::now_utc());
        let (start, end) = (to_millis(new.slot.start()), to_millis(new.slot.end()));
        let mut booked = None;
        for connector in candidates.clone() {
            // The exclusion constraint is the judge; the savepoint confines its refusal to this
            // attempt so the next connector can be tried in the same transaction.
            sqlx::query("SAVEPOINT try_connector")
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            // The advisory lock on (charger, connector) only queues bookers of one connector
            // behind each other; it decides nothing. Without it, two concurrent inserts of
            // overlapping slots can each find the other's uncommitted row and wait for each
            // other (rare: their index insertions must interleave), and then one waits out
            // deadlock_timeout (1 s by default) before being killed and retried. Locks are taken
            // after the charger row, in connector order, and before the event counter, so the
            // queue itself cannot deadlock.
            let inserted = sqlx::query_scalar::<_, i32>(
                "WITH queued AS (SELECT pg_advisory_xact_lock(hashtext($1), $2)) \
                 INSERT INTO reservations (charger_id, connector_id, customer_id, id_tag, \
                 start_at, end_at, status, charger_ack, created_at, updated_at) \
                 SELECT $1, $2, $3, $4, ms_to_ts($5), ms_to_ts($6), 'BOOKED', 'PENDING', \
                 ms_to_ts($7), ms_to_ts($7) FROM queued RETURNING id",
            )
            .bind(new.charger_id.as_str())
            .bind(connector as i32)
            .bind(new.customer_id)
            .bind(&new.id_tag)
            .bind(start)
            .bind(end)
            .bind(now)
            .fetch_one(&mut *tx)
            .await;
            match inserted {
                Ok(id) => {
                    booked = Some((id, connector));
                    break;
                }
                Err(e) if has_sqlstate(&e, EXCLUSION_VIOLATION) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT try_connector")
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from)?;
                }
                Err(e) if has_sqlstate(&e, FOREIGN_KEY_VIOLATION) => {
                    // The charger row is locked, so the missing key is the customer.
                    return Err(BookError::UnknownCustomer(new.customer_id));
                }
                Err(e) => return Err(StoreError::from(e).into()),
            }
        }
        let Some((id, connector_id)) = booked else {
            // The same answer as SQLite: the earliest live slot that overlaps on the candidate
            // connectors. A fresh statement sees the committed conflicting row(s).
            let conflict = sqlx::query(
                "SELECT ts_to_ms(start_at), ts_to_ms(end_at) FROM reservations \
                 WHERE charger_id = $1 AND connector_id BETWEEN $2 AND $3 \
                 AND status IN ('BOOKED', 'CHARGING_STARTED') \
                 AND start_at < ms_to_ts($4) AND ms_to_ts($5) < end_at \
                 ORDER BY start_at LIMIT 1",
            )
            .bind(new.charger_id.as_str())
            .bind(*candidates.start() as i32)
            .bind(*candidates.end() as i32)
            .bind(end)
            .bind(start)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            let Some(conflict) = conflict else {
                // The slot that refused us was cancelled in the meantime: try again.
                return Err(BookError::Store(StoreError::Database(retry_marker())));
            };
            let slot = TimeSlot::parse(
                from_millis(conflict.try_get(0).map_err(StoreError::from)?),
                from_millis(conflict.try_get(1).map_err(StoreError::from)?),
            )
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.to_string().into())))?;
            return Err(BookError::Overlap(slot));
        };
        let reservation = Reservation {
            id,
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
        let seq = append_event(
            &mut tx,
            kind::RESERVATION_BOOKED,
            Some(new.charger_id.as_str()),
            Some(new.customer_id),
            Some(reservation.id),
            &data::reservation(&reservation),
        )
        .await?;
        self.commit(tx, Some(seq)).await?;
        Ok(reservation)
    }

    async fn try_cancel(&self, id: i32, owner: Option<i64>) -> Result<Reservation, CancelError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let row = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let Some(mut reservation) = row.as_ref().map(reservation_from_row).transpose()? else {
            return Err(CancelError::NotFound);
        };
        if owner.is_some_and(|o| o != reservation.customer_id) {
            return Err(CancelError::NotFound);
        }
        if reservation.status != ReservationStatus::Booked {
            return Err(CancelError::NotCancellable(reservation.status));
        }
        let now = to_millis(OffsetDateTime::now_utc());
        // A charger that was ever asked may hold it: it is owed a CancelReservation.
        sqlx::query(
            "UPDATE reservations SET status = 'CANCELLED', updated_at = ms_to_ts($1), \
             cancel_owed = (charger_ack <> 'PENDING') WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        reservation.status = ReservationStatus::Cancelled;
        reservation.updated_at = from_millis(now);
        let seq = append_event(
            &mut tx,
            kind::RESERVATION_CANCELLED,
            Some(reservation.charger_id.as_str()),
            Some(reservation.customer_id),
            Some(reservation.id),
            &data::reservation(&reservation),
        )
        .await?;
        self.commit(tx, Some(seq)).await?;
        Ok(reservation)
    }

    async fn try_delete_charger(&self, id: &ChargeBoxId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock first: bookings in flight on this charger (they hold KEY SHARE) finish, later
        // ones wait and then find no charger, so the count below cannot go stale.
        let exists = sqlx::query("SELECT 1 FROM chargers WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM reservations WHERE charger_id = $1 \
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
        if !exists {
            return Ok(false);
        }
        // Its connector states and past reservations go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM chargers WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let seq = append_event(
            &mut tx,
            kind::CHARGER_DELETED,
            Some(id.as_str()),
            None,
            None,
            &serde_json::json!({"id": id.as_str()}),
        )
        .await?;
        self.commit(tx, Some(seq)).await?;
        Ok(true)
    }

    async fn try_save_charger_states(&self, states: &[&ChargerState]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
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
}

fn charger_from_row(r: &PgRow) -> Result<ChargerRecord, StoreError> {
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
        connectors: r.try_get::<i32, _>("connectors")? as u32,
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

fn reservation_from_row(r: &PgRow) -> Result<Reservation, StoreError> {
    let decode = |what: &str, e: String| sqlx::Error::Decode(format!("{what}: {e}").into());
    let charger: String = r.try_get("charger_id")?;
    let status: String = r.try_get("status")?;
    let ack: String = r.try_get("charger_ack")?;
    Ok(Reservation {
        id: r.try_get("id")?,
        charger_id: ChargeBoxId::parse(&charger)
            .map_err(|e| decode("charger_id", e.to_string()))?,
        connector_id: r.try_get::<i32, _>("connector_id")? as u32,
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

const TRANSACTION_COLUMNS: &str = "id, charger_id, connector_id, id_tag, customer_id, \
     reservation_id, status, auth_status, meter_start_wh, ts_to_ms(started_at) AS started_at, \
     meter_stop_wh, ts_to_ms(stopped_at) AS stopped_at, stop_reason, last_meter_wh, \
     ts_to_ms(last_meter_at) AS last_meter_at, ts_to_ms(created_at) AS created_at, \
     ts_to_ms(updated_at) AS updated_at";

/// A reservation live on connector `$3` of charger `$2` whose slot, widened by the early grace
/// before its start, holds the instant `$5`; `$4` is that instant plus the grace (milliseconds).
const LIVE_AT: &str = "charger_id = $2 AND connector_id = $3 \
     AND status IN ('BOOKED', 'CHARGING_STARTED') \
     AND start_at <= ms_to_ts($4) AND end_at > ms_to_ts($5)";

/// How many live reservations on a connector the start rules look at (as SQLite's
/// `live_on_connector`): the earliest-starting ones.
const ON_CONNECTOR_LIMIT: usize = 4;

/// Charging. Every write locks the rows its decision rests on (`FOR UPDATE`, reservations in id
/// order so two writers never wait on each other in a circle) and appends its events last, so
/// what it read cannot change before it commits; losers of a race are retried.
impl PgStore {
    async fn try_start(
        &self,
        req: &StartRequest,
        policy: &StartPolicy,
    ) -> Result<StartOutcome, StoreError> {
        let started = to_millis(req.timestamp);
        let connector = req.connector_id as i32;
        let charger = req.charger_id.as_str();
        let mut tx = self.pool.begin().await?;
        let first = sqlx::query(&format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE charger_id = $1 \
             AND connector_id = $2 AND started_at = ms_to_ts($3) AND meter_start_wh = $4 \
             AND id_tag = $5"
        ))
        .bind(charger)
        .bind(connector)
        .bind(started)
        .bind(req.meter_start_wh)
        .bind(&req.id_tag)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = first {
            let transaction = transaction_from_row(&row)?;
            let reservation = match transaction.reservation_id {
                Some(id) => reservation_in(&mut tx, id, "").await?,
                None => None,
            };
            return Ok(StartOutcome {
                transaction,
                reservation,
                repeated: true,
                refusal: None,
            });
        }
        let customer_id: Option<i64> =
            sqlx::query_scalar("SELECT customer_id FROM id_tags WHERE id_tag_key = $1")
                .bind(req.id_tag.to_ascii_lowercase())
                .fetch_optional(&mut *tx)
                .await?;
        // The facts, locked: a concurrent start for the same reservation waits here until this
        // one commits, and then reads the reservation as CHARGING_STARTED.
        let (named, on_connector) = lock_reservations(
            &mut tx,
            req.reservation_id,
            &req.charger_id,
            req.connector_id,
            req.timestamp,
            policy.early_grace,
        )
        .await?;
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
        let inserted = sqlx::query_scalar::<_, i32>(
            "INSERT INTO transactions (charger_id, connector_id, id_tag, customer_id, \
             reservation_id, status, auth_status, meter_start_wh, started_at, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, ms_to_ts($9), ms_to_ts($10), \
             ms_to_ts($10)) RETURNING id",
        )
        .bind(charger)
        .bind(connector)
        .bind(&req.id_tag)
        .bind(owner)
        .bind(reservation_id)
        .bind(status.as_str())
        .bind(auth.as_str())
        .bind(req.meter_start_wh)
        .bind(started)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let id = match inserted {
            Ok(id) => id,
            // The same StartTransaction committed meanwhile (the retry answers it as repeated),
            // or the reservation got linked by another start (the retry decides again).
            Err(e) if is_unique_violation(&e) => return Err(StoreError::Database(retry_marker())),
            Err(e) => return Err(e.into()),
        };
        let mut reservation = reservation_id
            .and_then(|rid| named.into_iter().chain(on_connector).find(|r| r.id == rid));
        if let Some(r) = reservation.as_mut() {
            set_reservation_status(&mut tx, r, ReservationStatus::ChargingStarted, now).await?;
        }
        let mut transaction = Transaction {
            id,
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
        let seq = append_event(
            &mut tx,
            event,
            Some(charger),
            owner,
            reservation_id,
            &data::transaction(&transaction, reservation.as_ref()),
        )
        .await?;
        self.commit(tx, Some(seq)).await?;
        Ok(StartOutcome {
            transaction,
            reservation,
            repeated: false,
            refusal,
        })
    }

    async fn try_stop(&self, req: &StopRequest) -> Result<StopOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The row lock counts a retried StopTransaction once: a concurrent repeat waits here
        // and then finds it ENDED.
        let row = sqlx::query(&format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE id = $1 AND charger_id = $2 \
             FOR UPDATE"
        ))
        .bind(req.transaction_id)
        .bind(req.charger_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mut t) = row.as_ref().map(transaction_from_row).transpose()? else {
            return Ok(StopOutcome::Unknown);
        };
        if t.status != TransactionStatus::Active {
            return Ok(StopOutcome::Unchanged(t));
        }
        let now = to_millis(OffsetDateTime::now_utc());
        let stopped = to_millis(req.timestamp);
        sqlx::query(
            "UPDATE transactions SET status = 'ENDED', meter_stop_wh = $1, \
             stopped_at = ms_to_ts($2), stop_reason = $3, updated_at = ms_to_ts($4) WHERE id = $5",
        )
        .bind(req.meter_stop_wh)
        .bind(stopped)
        .bind(&req.reason)
        .bind(now)
        .bind(t.id)
        .execute(&mut *tx)
        .await?;
        t.status = TransactionStatus::Ended;
        t.meter_stop_wh = Some(req.meter_stop_wh);
        t.stopped_at = Some(from_millis(stopped));
        t.stop_reason = req.reason.clone();
        t.updated_at = from_millis(now);
        t.compute_energy();
        let mut reservation = match t.reservation_id {
            Some(id) => reservation_on(&mut tx, id).await?,
            None => None,
        };
        if let Some(r) = reservation
            .as_mut()
            .filter(|r| r.status == ReservationStatus::ChargingStarted)
        {
            set_reservation_status(&mut tx, r, ReservationStatus::ChargingEnded, now).await?;
        }
        let seq = append_event(
            &mut tx,
            kind::TRANSACTION_STOPPED,
            Some(t.charger_id.as_str()),
            t.customer_id,
            t.reservation_id,
            &data::transaction(&t, reservation.as_ref()),
        )
        .await?;
        self.commit(tx, Some(seq)).await?;
        Ok(StopOutcome::Stopped {
            transaction: t,
            reservation,
        })
    }

    async fn try_meter(&self, m: &MeterReadings) -> Result<Option<Transaction>, StoreError> {
        let charger = m.charger_id.as_str();
        let mut tx = self.pool.begin().await?;
        // Locked, so concurrent messages for one transaction compare against each other's
        // latest reading instead of overwriting it.
        let row = match m.transaction_id {
            Some(id) => {
                sqlx::query(&format!(
                    "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE id = $1 \
                     AND charger_id = $2 AND status = 'ACTIVE' FOR UPDATE"
                ))
                .bind(id)
                .bind(charger)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE charger_id = $1 \
                     AND connector_id = $2 AND status = 'ACTIVE' ORDER BY id DESC LIMIT 1 \
                     FOR UPDATE"
                ))
                .bind(charger)
                .bind(m.connector_id as i32)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        let Some(mut t) = row.as_ref().map(transaction_from_row).transpose()? else {
            return Ok(None);
        };
        let Some(&(latest_at, latest_wh)) = m.readings.iter().max_by_key(|(at, _)| *at) else {
            return Ok(None);
        };
        let (ats, whs): (Vec<i64>, Vec<i64>) = m
            .readings
            .iter()
            .map(|(at, wh)| (to_millis(*at), *wh))
            .unzip();
        sqlx::query(
            "INSERT INTO meter_values (transaction_id, at, wh) \
             SELECT $1, ms_to_ts(r.at), r.wh FROM unnest($2::bigint[], $3::bigint[]) AS r(at, wh)",
        )
        .bind(t.id)
        .bind(&ats)
        .bind(&whs)
        .execute(&mut *tx)
        .await?;
        // Readings can arrive out of order (re-sent after a reconnect): the newest one wins.
        if t.last_meter_at.is_none_or(|last| latest_at >= last) {
            let now = to_millis(OffsetDateTime::now_utc());
            sqlx::query(
                "UPDATE transactions SET last_meter_wh = $1, last_meter_at = ms_to_ts($2), \
                 updated_at = ms_to_ts($3) WHERE id = $4",
            )
            .bind(latest_wh)
            .bind(to_millis(latest_at))
            .bind(now)
            .bind(t.id)
            .execute(&mut *tx)
            .await?;
            t.last_meter_wh = Some(latest_wh);
            t.last_meter_at = Some(from_millis(to_millis(latest_at)));
            t.updated_at = from_millis(now);
            t.compute_energy();
        }
        let seq = append_event(
            &mut tx,
            kind::METER_VALUES_RECORDED,
            Some(charger),
            t.customer_id,
            t.reservation_id,
            &data::transaction(&t, None),
        )
        .await?;
        self.commit(tx, Some(seq)).await?;
        Ok(Some(t))
    }

    async fn try_charger_ack(
        &self,
        reservation_id: i32,
        ack: ChargerAck,
    ) -> Result<Option<Reservation>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(mut r) = reservation_on(&mut tx, reservation_id).await? else {
            return Ok(None);
        };
        let mut seq = None;
        if r.status == ReservationStatus::Booked && r.charger_ack != ack {
            let now = to_millis(OffsetDateTime::now_utc());
            set_ack(&mut tx, &mut r, ack, now).await?;
            seq = Some(ack_changed(&mut tx, &r).await?);
        } else if r.status == ReservationStatus::Cancelled && ack == ChargerAck::Accepted {
            // Cancelled while ReserveNow was on its way: the charger holds it now.
            sqlx::query("UPDATE reservations SET cancel_owed = true WHERE id = $1")
                .bind(reservation_id)
                .execute(&mut *tx)
                .await?;
        }
        self.commit(tx, seq).await?;
        Ok(Some(r))
    }

    async fn try_connector_fault(
        &self,
        charger_id: &ChargeBoxId,
        connector_id: u32,
        ack: ChargerAck,
        at: OffsetDateTime,
        grace: time::Duration,
    ) -> Result<Vec<Reservation>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (_, live) =
            lock_reservations(&mut tx, None, charger_id, connector_id, at, grace).await?;
        let now = to_millis(OffsetDateTime::now_utc());
        let mut changed = Vec::new();
        for mut r in live {
            if r.charger_ack != ack {
                set_ack(&mut tx, &mut r, ack, now).await?;
                changed.push(r);
            }
        }
        // Events last: the counter row is held only from here to the commit.
        let mut seq = None;
        for r in &changed {
            seq = Some(ack_changed(&mut tx, r).await?);
        }
        self.commit(tx, seq).await?;
        Ok(changed)
    }

    async fn try_expire_due(&self, now: OffsetDateTime) -> Result<Vec<Reservation>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Locked in id order first; a reservation a start links meanwhile is re-read as
        // CHARGING_STARTED and left alone.
        let rows = sqlx::query(&format!(
            "WITH due AS (SELECT id FROM reservations WHERE status = 'BOOKED' \
             AND end_at <= ms_to_ts($1) ORDER BY id FOR UPDATE) \
             UPDATE reservations SET status = 'EXPIRED', updated_at = ms_to_ts($1) \
             WHERE id IN (SELECT id FROM due) AND status = 'BOOKED' \
             RETURNING {RESERVATION_COLUMNS}"
        ))
        .bind(to_millis(now))
        .fetch_all(&mut *tx)
        .await?;
        let mut expired = rows
            .iter()
            .map(reservation_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        expired.sort_by_key(|r| r.id);
        let mut seq = None;
        for r in &expired {
            seq = Some(
                append_event(
                    &mut tx,
                    kind::RESERVATION_EXPIRED,
                    Some(r.charger_id.as_str()),
                    Some(r.customer_id),
                    Some(r.id),
                    &data::reservation(r),
                )
                .await?,
            );
        }
        self.commit(tx, seq).await?;
        Ok(expired)
    }
}

fn transaction_from_row(r: &PgRow) -> Result<Transaction, StoreError> {
    let decode = |what: &str, e: String| sqlx::Error::Decode(format!("{what}: {e}").into());
    let charger: String = r.try_get("charger_id")?;
    let status: String = r.try_get("status")?;
    let auth: String = r.try_get("auth_status")?;
    let mut t = Transaction {
        id: r.try_get("id")?,
        charger_id: ChargeBoxId::parse(&charger)
            .map_err(|e| decode("charger_id", e.to_string()))?,
        connector_id: r.try_get::<i32, _>("connector_id")? as u32,
        id_tag: r.try_get("id_tag")?,
        customer_id: r.try_get("customer_id")?,
        reservation_id: r.try_get("reservation_id")?,
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

/// One reservation, locked until the caller's transaction ends.
async fn reservation_on(tx: &mut PgConnection, id: i32) -> Result<Option<Reservation>, StoreError> {
    reservation_in(tx, id, " FOR UPDATE").await
}

/// One reservation read in the caller's transaction, with `lock` (a locking clause, or "").
async fn reservation_in(
    tx: &mut PgConnection,
    id: i32,
    lock: &str,
) -> Result<Option<Reservation>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(tx)
    .await?;
    row.as_ref().map(reservation_from_row).transpose()
}

/// Lock, in id order and in one statement, the reservation `named` (if any) and the live
/// reservations on the connector whose slot, widened by `grace` before its start, holds `at`.
/// Returns the named one and the earliest-starting of those on the connector, as SQLite's
/// `reservation_on` and `live_on_connector` read them. A row changed by a concurrent writer is
/// returned as that writer committed it (and dropped if it no longer qualifies).
async fn lock_reservations(
    tx: &mut PgConnection,
    named: Option<i32>,
    charger_id: &ChargeBoxId,
    connector_id: u32,
    at: OffsetDateTime,
    grace: time::Duration,
) -> Result<(Option<Reservation>, Vec<Reservation>), StoreError> {
    // PostgreSQL re-evaluates the whole select list on the newest row version after waiting
    // for a lock, so `on_connector` describes the row as returned.
    let rows = sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS}, ({LIVE_AT}) AS on_connector FROM reservations \
         WHERE id = $1 OR ({LIVE_AT}) ORDER BY id FOR UPDATE"
    ))
    .bind(named)
    .bind(charger_id.as_str())
    .bind(connector_id as i32)
    .bind(to_millis(at + grace))
    .bind(to_millis(at))
    .fetch_all(tx)
    .await?;
    let mut found = None;
    let mut live = Vec::new();
    for row in &rows {
        let r = reservation_from_row(row)?;
        if row.try_get::<bool, _>("on_connector")? {
            live.push(r.clone());
        }
        if Some(r.id) == named {
            found = Some(r);
        }
    }
    live.sort_by_key(|r| r.slot.start());
    live.truncate(ON_CONNECTOR_LIMIT);
    Ok((found, live))
}

/// The charger's answer to ReserveNow (or a connector fault) as the reservation shows it; the
/// caller appends [`ack_changed`] once its other writes are done.
async fn set_ack(
    tx: &mut PgConnection,
    r: &mut Reservation,
    ack: ChargerAck,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE reservations SET charger_ack = $1, updated_at = ms_to_ts($2) WHERE id = $3",
    )
    .bind(ack.as_str())
    .bind(now)
    .bind(r.id)
    .execute(tx)
    .await?;
    r.charger_ack = ack;
    r.updated_at = from_millis(now);
    Ok(())
}

async fn ack_changed(tx: &mut PgConnection, r: &Reservation) -> Result<i64, StoreError> {
    append_event(
        tx,
        kind::RESERVATION_ACK_CHANGED,
        Some(r.charger_id.as_str()),
        Some(r.customer_id),
        Some(r.id),
        &data::reservation(r),
    )
    .await
}

/// Move a (locked) reservation to `status`, keeping `r` in step.
async fn set_reservation_status(
    tx: &mut PgConnection,
    r: &mut Reservation,
    status: ReservationStatus,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE reservations SET status = $1, updated_at = ms_to_ts($2) WHERE id = $3")
        .bind(status.as_str())
        .bind(now)
        .bind(r.id)
        .execute(tx)
        .await?;
    r.status = status;
    r.updated_at = from_millis(now);
    Ok(())
}

/// Append one event inside the caller's transaction, as its last write: the counter row stays
/// locked from here to commit, so event-writing transactions commit in seq order and a rolled
/// back one gives its number back.
async fn append_event(
    tx: &mut PgConnection,
    kind: &str,
    charger_id: Option<&str>,
    customer_id: Option<i64>,
    reservation_id: Option<i32>,
    data: &serde_json::Value,
) -> Result<i64, StoreError> {
    let seq = sqlx::query_scalar(
        "WITH next AS (UPDATE event_counter SET last_seq = last_seq + 1 RETURNING last_seq) \
         INSERT INTO events (seq, at, kind, charger_id, customer_id, reservation_id, data) \
         SELECT last_seq, ms_to_ts($1), $2, $3, $4, $5, $6::jsonb FROM next RETURNING seq",
    )
    .bind(to_millis(OffsetDateTime::now_utc()))
    .bind(kind)
    .bind(charger_id)
    .bind(customer_id)
    .bind(reservation_id)
    .bind(data.to_string())
    .fetch_one(tx)
    .await?;
    Ok(seq)
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

    async fn insert_charger(&self, new: &NewCharger) -> Result<ChargerRecord, StoreError> {
        retrying(|| self.try_insert_charger(new)).await
    }

    async fn charger(&self, id: &ChargeBoxId) -> Result<Option<ChargerRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CHARGER_COLUMNS} FROM chargers WHERE id = $1"
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
        let row = sqlx::query("SELECT password_hash FROM chargers WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    async fn chargers(&self, page: &Page) -> Result<Vec<ChargerRecord>, StoreError> {
        // chargers.id is COLLATE "C": pages follow byte order, as in SQLite.
        let rows = sqlx::query(&format!(
            "SELECT {CHARGER_COLUMNS} FROM chargers WHERE id > $1 ORDER BY id LIMIT $2"
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
        let updated = retrying(|| self.try_update_charger(id, patch)).await?;
        if !updated {
            return Ok(None);
        }
        self.charger(id).await
    }

    async fn delete_charger(&self, id: &ChargeBoxId) -> Result<bool, StoreError> {
        retrying(|| self.try_delete_charger(id)).await
    }

    async fn save_charger_states(&self, states: &[ChargerState]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        // Row locks in id order: two flushes (say, from two nodes) cannot deadlock each other.
        let mut ordered: Vec<&ChargerState> = states.iter().collect();
        ordered.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        retrying(|| self.try_save_charger_states(&ordered)).await
    }

    async fn insert_customer(&self, new: &NewCustomer) -> Result<Customer, StoreError> {
        retrying(|| self.try_insert_customer(new)).await
    }

    async fn customer(&self, id: i64) -> Result<Option<Customer>, StoreError> {
        self.customer_where("c.id = $1", id).await
    }

    async fn customer_by_token(&self, token_digest: &str) -> Result<Option<Customer>, StoreError> {
        self.customer_where("c.token_digest = $1", token_digest.to_string())
            .await
    }

    async fn book(&self, new: &NewReservation) -> Result<Reservation, BookError> {
        retrying(|| self.try_book(new)).await
    }

    async fn reservation(&self, id: i32) -> Result<Option<Reservation>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1"
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
        let mut q = super::list_query::<Postgres>(
            RESERVATION_COLUMNS,
            "reservations",
            filter.charger_id.as_ref(),
            filter.customer_id,
            filter.status.map(|s| s.as_str()),
        );
        if let Some(from) = filter.from {
            q.push(" AND end_at > ms_to_ts(")
                .push_bind(to_millis(from))
                .push(")");
        }
        if let Some(to) = filter.to {
            q.push(" AND start_at < ms_to_ts(")
                .push_bind(to_millis(to))
                .push(")");
        }
        q.push(" ORDER BY start_at, id LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(reservation_from_row).collect()
    }

    async fn cancel_reservation(
        &self,
        id: i32,
        owner: Option<i64>,
    ) -> Result<Reservation, CancelError> {
        retrying(|| self.try_cancel(id, owner)).await
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, ts_to_ms(at), kind, charger_id, customer_id, reservation_id, \
             data::text FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
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
                    reservation_id: r.try_get(5)?,
                    data: serde_json::from_str(&data)
                        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                })
            })
            .collect()
    }

    async fn overlapping_reservations(&self) -> Result<Vec<(i32, i32)>, StoreError> {
        // Deliberately not the constraint's own operator: an independent check of it.
        let rows = sqlx::query(
            "SELECT a.id, b.id FROM reservations a JOIN reservations b \
             ON a.charger_id = b.charger_id AND a.connector_id = b.connector_id AND a.id < b.id \
             AND a.start_at < b.end_at AND b.start_at < a.end_at \
             WHERE a.status IN ('BOOKED', 'CHARGING_STARTED') \
             AND b.status IN ('BOOKED', 'CHARGING_STARTED') ORDER BY a.id, b.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i32, _>(0)?, r.try_get::<i32, _>(1)?)))
            .collect()
    }

    async fn customer_of_id_tag(&self, id_tag: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT customer_id FROM id_tags WHERE id_tag_key = $1")
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
        retrying(|| self.try_start(req, policy)).await
    }

    async fn stop_transaction(&self, req: &StopRequest) -> Result<StopOutcome, StoreError> {
        retrying(|| self.try_stop(req)).await
    }

    async fn record_meter_values(
        &self,
        readings: &MeterReadings,
    ) -> Result<Option<Transaction>, StoreError> {
        retrying(|| self.try_meter(readings)).await
    }

    async fn transaction(&self, id: i32) -> Result<Option<Transaction>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE id = $1"
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
        let mut q = super::list_query::<Postgres>(
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
        retrying(|| self.try_charger_ack(reservation_id, ack)).await
    }

    async fn record_connector_fault(
        &self,
        charger_id: &ChargeBoxId,
        connector_id: u32,
        ack: ChargerAck,
        at: OffsetDateTime,
        grace: time::Duration,
    ) -> Result<Vec<Reservation>, StoreError> {
        retrying(|| self.try_connector_fault(charger_id, connector_id, ack, at, grace)).await
    }

    async fn record_cancel_delivered(&self, reservation_id: i32) -> Result<(), StoreError> {
        sqlx::query("UPDATE reservations SET cancel_owed = false WHERE id = $1")
            .bind(reservation_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn expire_due(&self, now: OffsetDateTime) -> Result<Vec<Reservation>, StoreError> {
        retrying(|| self.try_expire_due(now)).await
    }

    async fn dispatch_agenda(&self, now: OffsetDateTime) -> Result<DispatchAgenda, StoreError> {
        let now = to_millis(now);
        let booked = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations \
             WHERE status = 'BOOKED' AND end_at > ms_to_ts($1) ORDER BY start_at, id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let owed = sqlx::query(&format!(
            "SELECT {RESERVATION_COLUMNS} FROM reservations \
             WHERE cancel_owed AND end_at > ms_to_ts($1) ORDER BY start_at, id"
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
