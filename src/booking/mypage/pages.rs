//! Where the my-page view is kept: its own tables, apart from the ledger's. With SQLite they
//! live in a file of their own next to the ledger (`echarging-mypage.db` beside
//! `echarging.db`), so the projection's writes never queue behind or in front of bookings and
//! transactions on the ledger's single writer. With PostgreSQL they are `page_*` tables in the
//! same database. The view is disposable: its tables are created at open, and a view of another
//! [`super::VERSION`] is dropped and rebuilt from the log.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, SqliteConnection};

use super::{Charging, PageChange, PageCustomer, PageEntry, VERSION};
use crate::booking::store::{Backend, StoreError};
use crate::domain::instant::{to_millis, try_from_millis};
use crate::domain::reservation::{ChargerAck, ReservationStatus};

#[async_trait]
pub trait PageStore: Send + Sync + 'static {
    /// The `seq` of the last event folded in (0: none).
    async fn cursor(&self) -> Result<i64, StoreError>;
    /// Apply `changes` and move the cursor to `cursor`, in one transaction.
    async fn apply(&self, changes: &[PageChange], cursor: i64) -> Result<(), StoreError>;
    async fn customer(&self, id: i64) -> Result<Option<PageCustomer>, StoreError>;
    /// A customer's entries, newest slot first, strictly after `after` = (start ms, id).
    async fn entries(
        &self,
        customer_id: i64,
        after: Option<(i64, i32)>,
        limit: u32,
    ) -> Result<Vec<PageEntry>, StoreError>;
    async fn entry(&self, reservation_id: i32) -> Result<Option<PageEntry>, StoreError>;
    /// Empty the view and its cursor (a rebuild follows).
    async fn reset(&self) -> Result<(), StoreError>;
    /// Make this view the one of the ledger `ledger_id` whose log ends at `head`: when the view
    /// was built from another ledger (or none recorded), or its cursor is past `head` (the log
    /// it folded is gone), it is emptied to be rebuilt. `true` when it was.
    async fn adopt(&self, ledger_id: &str, head: i64) -> Result<bool, StoreError>;
    async fn close(&self);
}

/// Open the view that belongs to the ledger at `database_url`.
pub async fn open(database_url: &str) -> Result<std::sync::Arc<dyn PageStore>, StoreError> {
    Ok(match Backend::of(database_url)? {
        Backend::Sqlite => std::sync::Arc::new(SqlitePages::open(database_url).await?),
        Backend::Postgres => std::sync::Arc::new(PgPages::open(database_url).await?),
    })
}

/// The view's file for a ledger file: `x.db` → `x-mypage.db`.
pub fn sqlite_view_url(ledger_url: &str) -> String {
    let (path, query) = match ledger_url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (ledger_url, None),
    };
    let view = match path.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') => format!("{stem}-mypage.{ext}"),
        _ => format!("{path}-mypage"),
    };
    match query {
        Some(q) => format!("{view}?{q}"),
        None => view,
    }
}

const SQLITE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS page_meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS page_ledger (id INTEGER PRIMARY KEY CHECK (id = 1), ledger_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS page_customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS page_entries (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, charger_id TEXT NOT NULL,
    connector_id INTEGER NOT NULL, id_tag TEXT NOT NULL, start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL, status TEXT NOT NULL, charger_ack TEXT NOT NULL,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, transaction_id INTEGER,
    started_ms INTEGER, ended_ms INTEGER, meter_start_wh INTEGER, meter_stop_wh INTEGER,
    energy_wh INTEGER, last_meter_wh INTEGER);
CREATE INDEX IF NOT EXISTS page_entries_by_customer
    ON page_entries (customer_id, start_ms DESC, id DESC);";

const PG_TABLES: &str = "
CREATE TABLE IF NOT EXISTS page_meta (name text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE IF NOT EXISTS page_ledger (id integer PRIMARY KEY CHECK (id = 1), ledger_id text NOT NULL);
CREATE TABLE IF NOT EXISTS page_customers (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE IF NOT EXISTS page_entries (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL, charger_id text NOT NULL,
    connector_id bigint NOT NULL, id_tag text NOT NULL, start_ms bigint NOT NULL,
    end_ms bigint NOT NULL, status text NOT NULL, charger_ack text NOT NULL,
    created_ms bigint NOT NULL, updated_ms bigint NOT NULL, transaction_id bigint,
    started_ms bigint, ended_ms bigint, meter_start_wh bigint, meter_stop_wh bigint,
    energy_wh bigint, last_meter_wh bigint);
CREATE INDEX IF NOT EXISTS page_entries_by_customer
    ON page_entries (customer_id, start_ms DESC, id DESC);";

const DROP_TABLES: &str = "DROP TABLE IF EXISTS page_entries; DROP TABLE IF EXISTS \
    page_customers; DROP TABLE IF EXISTS page_meta; DROP TABLE IF EXISTS page_ledger;";

const ENTRY_COLUMNS: &str = "id, customer_id, charger_id, connector_id, id_tag, start_ms, \
    end_ms, status, charger_ack, created_ms, updated_ms, transaction_id, started_ms, ended_ms, \
    meter_start_wh, meter_stop_wh, energy_wh, last_meter_wh";

// The statements are written once with `$n` placeholders, which both SQLite and PostgreSQL
// accept, so both backends fold events with the very same SQL.
const UPSERT_CUSTOMER: &str = "INSERT INTO page_customers (id, name) VALUES ($1, $2) \
    ON CONFLICT (id) DO UPDATE SET name = excluded.name";
const UPSERT_RESERVATION: &str = "INSERT INTO page_entries (id, customer_id, charger_id, \
    connector_id, id_tag, start_ms, end_ms, status, charger_ack, created_ms, updated_ms) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO UPDATE SET \
    customer_id = excluded.customer_id, charger_id = excluded.charger_id, \
    connector_id = excluded.connector_id, id_tag = excluded.id_tag, \
    start_ms = excluded.start_ms, end_ms = excluded.end_ms, status = excluded.status, \
    charger_ack = excluded.charger_ack, created_ms = excluded.created_ms, \
    updated_ms = excluded.updated_ms";
const DELETE_ENTRIES: &str = "DELETE FROM page_entries WHERE customer_id = $1";
const DELETE_CUSTOMER: &str = "DELETE FROM page_customers WHERE id = $1";
const SET_CHARGING: &str = "UPDATE page_entries SET transaction_id = $2, started_ms = $3, \
    ended_ms = $4, meter_start_wh = $5, meter_stop_wh = $6, energy_wh = $7, \
    last_meter_wh = $8 WHERE id = $1";
const SET_CURSOR: &str = "INSERT INTO page_meta (name, value) VALUES ('cursor', $1) \
    ON CONFLICT (name) DO UPDATE SET value = excluded.value";

/// Bind and run the fold of `changes` on any sqlx connection (one macro, two backends).
macro_rules! fold {
    ($conn:expr, $changes:expr, $cursor:expr) => {{
        for change in $changes {
            let (reservation, charging) = match change {
                PageChange::Customer(c) => {
                    sqlx::query(UPSERT_CUSTOMER)
                        .bind(c.id)
                        .bind(&c.name)
                        .execute(&mut *$conn)
                        .await?;
                    continue;
                }
                PageChange::CustomerGone(id) => {
                    sqlx::query(DELETE_ENTRIES)
                        .bind(*id)
                        .execute(&mut *$conn)
                        .await?;
                    sqlx::query(DELETE_CUSTOMER)
                        .bind(*id)
                        .execute(&mut *$conn)
                        .await?;
                    continue;
                }
                PageChange::Reservation(r) => (Some(r), None),
                PageChange::Charging {
                    reservation_id,
                    charging,
                    reservation,
                } => (reservation.as_ref(), Some((*reservation_id, charging))),
            };
            if let Some(r) = reservation {
                sqlx::query(UPSERT_RESERVATION)
                    .bind(i64::from(r.id))
                    .bind(r.customer_id)
                    .bind(r.charger_id.as_str())
                    .bind(i64::from(r.connector_id))
                    .bind(&r.id_tag)
                    .bind(to_millis(r.slot.start()))
                    .bind(to_millis(r.slot.end()))
                    .bind(r.status.as_str())
                    .bind(r.charger_ack.as_str())
                    .bind(to_millis(r.created_at))
                    .bind(to_millis(r.updated_at))
                    .execute(&mut *$conn)
                    .await?;
            }
            if let Some((id, c)) = charging {
                sqlx::query(SET_CHARGING)
                    .bind(i64::from(id))
                    .bind(i64::from(c.transaction_id))
                    .bind(to_millis(c.started_at))
                    .bind(c.ended_at.map(to_millis))
                    .bind(c.meter_start_wh)
                    .bind(c.meter_stop_wh)
                    .bind(c.energy_wh)
                    .bind(c.last_meter_wh)
                    .execute(&mut *$conn)
                    .await?;
            }
        }
        sqlx::query(SET_CURSOR)
            .bind($cursor)
            .execute(&mut *$conn)
            .await?;
    }};
}

fn entry_from_row<R: Row>(r: &R) -> Result<PageEntry, StoreError>
where
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    let bad = |what: &str, v: &str| sqlx::Error::Decode(format!("{what}: {v:?}").into());
    let instant = |col: &str| -> Result<time::OffsetDateTime, sqlx::Error> {
        let ms: i64 = r.try_get(col)?;
        try_from_millis(ms).ok_or_else(|| bad(col, &ms.to_string()))
    };
    let opt_instant = |col: &str| -> Result<Option<time::OffsetDateTime>, sqlx::Error> {
        match r.try_get::<Option<i64>, _>(col)? {
            Some(_) => instant(col).map(Some),
            None => Ok(None),
        }
    };
    let narrow = |col: &str| -> Result<i32, sqlx::Error> {
        let v: i64 = r.try_get(col)?;
        i32::try_from(v).map_err(|_| bad(col, &v.to_string()))
    };
    let status: String = r.try_get("status")?;
    let ack: String = r.try_get("charger_ack")?;
    let transaction: Option<i64> = r.try_get("transaction_id")?;
    let charging = match transaction {
        None => None,
        Some(id) => Some(Charging {
            transaction_id: i32::try_from(id)
                .map_err(|_| bad("transaction_id", &id.to_string()))?,
            started_at: opt_instant("started_ms")?.ok_or_else(|| bad("started_ms", "missing"))?,
            ended_at: opt_instant("ended_ms")?,
            meter_start_wh: r.try_get::<Option<i64>, _>("meter_start_wh")?.unwrap_or(0),
            meter_stop_wh: r.try_get("meter_stop_wh")?,
            energy_wh: r.try_get("energy_wh")?,
            last_meter_wh: r.try_get("last_meter_wh")?,
        }),
    };
    Ok(PageEntry {
        id: narrow("id")?,
        charger_id: r.try_get("charger_id")?,
        connector_id: u32::try_from(narrow("connector_id")?)
            .map_err(|_| bad("connector_id", "negative"))?,
        customer_id: r.try_get("customer_id")?,
        id_tag: r.try_get("id_tag")?,
        start: instant("start_ms")?,
        end: instant("end_ms")?,
        status: ReservationStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
        charger_ack: ChargerAck::parse(&ack).ok_or_else(|| bad("charger_ack", &ack))?,
        created_at: instant("created_ms")?,
        updated_at: instant("updated_ms")?,
        charging,
    })
}

/// `WHERE` tail for a customer's page after a token; `$1` customer, `$2` start, `$3` id, `$4`
/// limit.
const PAGE_QUERY: &str = "WHERE customer_id = $1 AND (start_ms < $2 OR (start_ms = $2 AND \
    id < $3)) ORDER BY start_ms DESC, id DESC LIMIT $4";

pub struct SqlitePages {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqlitePages {
    pub async fn open(ledger_url: &str) -> Result<Self, StoreError> {
        // The view is rebuilt from the ledger, so it needs no more than crash safety whatever
        // the ledger's own durability.
        let (ledger_url, _) = crate::booking::store::Durability::of(ledger_url)?;
        let options = SqliteConnectOptions::from_str(&sqlite_view_url(&ledger_url))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            // A local file: a ping before each acquire is a query for nothing.
            .test_before_acquire(false)
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        {
            let mut conn = writer.acquire().await?;
            prepare_sqlite(&mut conn).await?;
        }
        let pool = SqlitePoolOptions::new()
            // A local file: a ping before each acquire is a query for nothing.
            .test_before_acquire(false)
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqlitePages { pool, writer })
    }
}

async fn prepare_sqlite(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::raw_sql(SQLITE_TABLES).execute(&mut *conn).await?;
    let version: Option<i64> =
        sqlx::query_scalar("SELECT value FROM page_meta WHERE name = 'version'")
            .fetch_optional(&mut *conn)
            .await?;
    if version != Some(VERSION) {
        if version.is_some() {
            tracing::info!(
                from = version,
                to = VERSION,
                "my-page view reshaped; rebuilding"
            );
        }
        sqlx::raw_sql(DROP_TABLES).execute(&mut *conn).await?;
        sqlx::raw_sql(SQLITE_TABLES).execute(&mut *conn).await?;
        sqlx::query("INSERT INTO page_meta (name, value) VALUES ('version', $1)")
            .bind(VERSION)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub struct PgPages {
    pool: PgPool,
}

impl PgPages {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new().max_connections(4).connect(url).await?;
        let mut tx = pool.begin().await?;
        // One process prepares the tables at a time (several nodes may start together).
        sqlx::query("SELECT pg_advisory_xact_lock(7423001)")
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(PG_TABLES).execute(&mut *tx).await?;
        let version: Option<i64> =
            sqlx::query_scalar("SELECT value FROM page_meta WHERE name = 'version'")
                .fetch_optional(&mut *tx)
                .await?;
        if version != Some(VERSION) {
            sqlx::raw_sql(DROP_TABLES).execute(&mut *tx).await?;
            sqlx::raw_sql(PG_TABLES).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO page_meta (name, value) VALUES ('version', $1)")
                .bind(VERSION)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(PgPages { pool })
    }
}

/// The one `PageStore` implementation, for both pools: the SQL is shared, only the pool type
/// differs. `$writer` runs the fold (SQLite's single writer), `$reader` the page reads, and
/// `$serialise` makes concurrent folds take turns (SQLite's one writer already does).
macro_rules! page_store {
    ($store:ty, $writer:ident, $reader:ident, $serialise:expr) => {
        #[async_trait]
        impl PageStore for $store {
            async fn cursor(&self) -> Result<i64, StoreError> {
                Ok(
                    sqlx::query_scalar("SELECT value FROM page_meta WHERE name = 'cursor'")
                        .fetch_optional(&self.$writer)
                        .await?
                        .unwrap_or(0),
                )
            }

            async fn apply(&self, changes: &[PageChange], cursor: i64) -> Result<(), StoreError> {
                let mut tx = self.$writer.begin().await?;
                // Nodes sharing a database each run a projector: folds take turns, and a batch
                // another node has already folded is skipped, so the view never steps back.
                sqlx::query($serialise).execute(&mut *tx).await?;
                let folded: Option<i64> =
                    sqlx::query_scalar("SELECT value FROM page_meta WHERE name = 'cursor'")
                        .fetch_optional(&mut *tx)
                        .await?;
                if folded.is_some_and(|f| f >= cursor) {
                    return Ok(());
                }
                fold!(tx, changes, cursor);
                tx.commit().await?;
                Ok(())
            }

            async fn customer(&self, id: i64) -> Result<Option<PageCustomer>, StoreError> {
                let row = sqlx::query("SELECT id, name FROM page_customers WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.$reader)
                    .await?;
                row.map(|r| {
                    Ok(PageCustomer {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                    })
                })
                .transpose()
            }

            async fn entries(
                &self,
                customer_id: i64,
                after: Option<(i64, i32)>,
                limit: u32,
            ) -> Result<Vec<PageEntry>, StoreError> {
                let (start, id) = after.unwrap_or((i64::MAX, i32::MAX));
                let rows = sqlx::query(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM page_entries {PAGE_QUERY}"
                ))
                .bind(customer_id)
                .bind(start)
                .bind(i64::from(id))
                .bind(i64::from(limit))
                .fetch_all(&self.$reader)
                .await?;
                rows.iter().map(entry_from_row).collect()
            }

            async fn entry(&self, reservation_id: i32) -> Result<Option<PageEntry>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM page_entries WHERE id = $1"
                ))
                .bind(i64::from(reservation_id))
                .fetch_optional(&self.$reader)
                .await?;
                row.as_ref().map(entry_from_row).transpose()
            }

            async fn reset(&self) -> Result<(), StoreError> {
                sqlx::raw_sql(
                    "DELETE FROM page_entries; DELETE FROM page_customers; \
                     DELETE FROM page_meta WHERE name = 'cursor';",
                )
                .execute(&self.$writer)
                .await?;
                Ok(())
            }

            async fn adopt(&self, ledger_id: &str, head: i64) -> Result<bool, StoreError> {
                let mut tx = self.$writer.begin().await?;
                sqlx::query($serialise).execute(&mut *tx).await?;
                let built_from: Option<String> =
                    sqlx::query_scalar("SELECT ledger_id FROM page_ledger WHERE id = 1")
                        .fetch_optional(&mut *tx)
                        .await?;
                let cursor: i64 =
                    sqlx::query_scalar("SELECT value FROM page_meta WHERE name = 'cursor'")
                        .fetch_optional(&mut *tx)
                        .await?
                        .unwrap_or(0);
                if built_from.as_deref() == Some(ledger_id) && cursor <= head {
                    return Ok(false);
                }
                if built_from.is_none() && cursor == 0 {
                    // A new view (first start, or one that predates ledger ids): nothing stale.
                    tracing::debug!(ledger = ledger_id, "my-page view adopted by this ledger");
                } else {
                    tracing::warn!(
                        built_from = built_from.as_deref().unwrap_or("unknown"),
                        ledger = ledger_id,
                        cursor,
                        head,
                        "the my-page view is not this ledger's; rebuilding it from the log"
                    );
                }
                for empty in [
                    "DELETE FROM page_entries",
                    "DELETE FROM page_customers",
                    "DELETE FROM page_meta WHERE name = 'cursor'",
                    "DELETE FROM page_ledger",
                ] {
                    sqlx::query(empty).execute(&mut *tx).await?;
                }
                sqlx::query("INSERT INTO page_ledger (id, ledger_id) VALUES (1, $1)")
                    .bind(ledger_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn close(&self) {
                self.$writer.close().await;
                self.$reader.close().await;
            }
        }
    };
}

page_store!(SqlitePages, writer, pool, "SELECT 1");
page_store!(PgPages, pool, pool, "SELECT pg_advisory_xact_lock(7423002)");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_sits_beside_the_ledger() {
        assert_eq!(
            sqlite_view_url("sqlite://data/echarging.db"),
            "sqlite://data/echarging-mypage.db"
        );
        assert_eq!(
            sqlite_view_url("sqlite:///tmp/x/ledger.sqlite?mode=rwc"),
            "sqlite:///tmp/x/ledger-mypage.sqlite?mode=rwc"
        );
        assert_eq!(
            sqlite_view_url("sqlite://data/ledger"),
            "sqlite://data/ledger-mypage"
        );
    }
}
