//! How the SQLite ledger keeps what it acknowledged: the durability the URL asks for, and the
//! checkpointer that copies the write-ahead log back into the database file on a connection of
//! its own. With SQLite's default, the connection that commits runs the checkpoint once the WAL
//! passes 1,000 pages, inside that commit: the writer then waits for thousands of pages to be
//! written and synced, and every booking and transaction message queued behind it waits too (on
//! a slow disk, seconds). Here the writer never checkpoints; a `PASSIVE` checkpoint runs beside
//! it every [`PERIOD`] and takes no lock a writer or reader needs.
//!
//! A checkpoint beside a busy writer never catches up with it: the frames committed while it
//! ran are still to copy when it ends, so the WAL never restarts from its beginning and grows
//! for as long as the load lasts. On ext4 every sync of a growing file is a journal commit, and
//! a journal commit waits for the database pages the checkpoint just wrote: the WAL syncs that
//! answer writes stall behind checkpoints. So after each checkpoint the writer, between two
//! rounds, copies the few frames left itself ([`CatchUp`]); its next round then finds the WAL
//! fully copied and restarts it, and the WAL's syncs overwrite blocks it already has.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection, SqlitePool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::booking::store::StoreError;

/// Each checkpoint ends with an fsync of the database file, and on this kind of disk the WAL
/// syncs that answer writes wait behind it: measured under 10,000 charging chargers, a
/// checkpoint every 50 ms gave StartTransaction p99 30 ms, every second 21 ms, every two seconds
/// 23 ms with longer single stalls. A second's writes are a few thousand pages.
const PERIOD: Duration = Duration::from_millis(1000);

/// What a commit promises, from the database URL's `synchronous` parameter
/// (`sqlite://data/echarging.db?synchronous=normal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `full`, the default: a write is answered only once the WAL holding it is synced (one
    /// fsync for every group-commit round committed meanwhile), so an acknowledged booking or
    /// transaction survives a power cut or an OS crash.
    PowerLoss,
    /// `normal`: the WAL is synced only at checkpoints, so an acknowledged write survives a
    /// crash of the process, but a power cut or an OS crash can lose the last ones.
    ProcessCrash,
}

impl Durability {
    /// The durability `url` asks for, and `url` without the parameter (sqlx does not know it).
    pub fn of(url: &str) -> Result<(String, Durability), StoreError> {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), Durability::PowerLoss));
        };
        let mut durability = Durability::PowerLoss;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((key, value)) if key.eq_ignore_ascii_case("synchronous") => {
                    durability = match value.to_ascii_lowercase().as_str() {
                        "full" => Durability::PowerLoss,
                        "normal" => Durability::ProcessCrash,
                        other => {
                            return Err(StoreError::Unsupported(format!(
                                "synchronous={other}: use full (durable to power loss) or normal \
                                 (durable to a process crash)"
                            )));
                        }
                    }
                }
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok((url, durability))
    }
}

/// Set by the checkpointer when it copied frames; taken by the writer, which then copies what
/// was committed meanwhile so that the WAL can restart (see the module's comment).
#[derive(Debug, Clone, Default)]
pub struct CatchUp(Arc<AtomicBool>);

impl CatchUp {
    fn want(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// On the writer's connection, between rounds: copy the frames the checkpointer left, if it
    /// asked since the last time. Holds the writer for one small checkpoint (a few hundred
    /// pages and their sync), at most once per [`PERIOD`].
    pub(super) async fn run(&self, writer: &SqlitePool) {
        if !self.0.swap(false, Ordering::AcqRel) {
            return;
        }
        let began = Instant::now();
        let done = match writer.acquire().await {
            Ok(mut conn) => checkpoint(&mut conn, "PASSIVE").await,
            Err(e) => Err(e),
        };
        crate::metrics::ledger_batch(began.elapsed());
        match done {
            Ok(Copied { complete: true, .. }) => crate::metrics::ledger_wal_caught_up(true),
            Ok(_) => crate::metrics::ledger_wal_caught_up(false),
            Err(e) => tracing::warn!(error = %e, "the writer's WAL catch-up checkpoint failed"),
        }
    }
}

/// The checkpointer task and its stop signal.
pub struct Checkpointer {
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    catch_up: CatchUp,
}

impl Checkpointer {
    /// Open the checkpointer's own connection (so a database it cannot open fails the store's
    /// open, not later) and start checkpointing.
    pub async fn start(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let conn = options.connect().await?;
        let stop = CancellationToken::new();
        let catch_up = CatchUp::default();
        let task = tokio::spawn(run(conn, stop.clone(), catch_up.clone()));
        Ok(Checkpointer {
            stop,
            task: Mutex::new(Some(task)),
            catch_up,
        })
    }

    /// What the writer takes its catch-up requests from.
    pub fn catch_up(&self) -> CatchUp {
        self.catch_up.clone()
    }

    /// Stop after one last checkpoint that also truncates the WAL.
    pub async fn stop(&self) {
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(mut conn: SqliteConnection, stop: CancellationToken, catch_up: CatchUp) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        match checkpoint(&mut conn, "PASSIVE").await {
            Ok(Copied { frames, .. }) if frames > 0 => catch_up.want(),
            Ok(_) => {}
            // The writer goes on; the WAL grows until a checkpoint succeeds again.
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
    if let Err(e) = checkpoint(&mut conn, "TRUNCATE").await {
        tracing::debug!(error = %e, "last WAL checkpoint did not complete");
    }
    let _ = conn.close().await;
}

/// What one checkpoint did.
struct Copied {
    /// Frames copied into the database file.
    frames: i64,
    /// Every frame of the WAL is in the database file: the next write restarts the WAL.
    complete: bool,
}

/// One checkpoint; its duration and the WAL's size in pages go to the metrics.
async fn checkpoint(conn: &mut SqliteConnection, mode: &str) -> Result<Copied, sqlx::Error> {
    let started = Instant::now();
    let (busy, wal_pages, copied): (i64, i64, i64) =
        sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})"))
            .fetch_one(&mut *conn)
            .await?;
    if copied > 0 || wal_pages > 0 {
        crate::metrics::ledger_checkpoint(started.elapsed(), wal_pages.max(0) as u64);
    }
    Ok(Copied {
        frames: copied.max(0),
        complete: busy == 0 && copied == wal_pages,
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn durability_comes_from_the_url_and_leaves_the_rest() {
        let (url, d) = Durability::of("sqlite://data/x.db").unwrap();
        assert_eq!(
            (url.as_str(), d),
            ("sqlite://data/x.db", Durability::PowerLoss)
        );
        let (url, d) = Durability::of("sqlite://data/x.db?synchronous=normal").unwrap();
        assert_eq!(
            (url.as_str(), d),
            ("sqlite://data/x.db", Durability::ProcessCrash)
        );
        let (url, d) = Durability::of("sqlite:x.db?mode=rwc&synchronous=FULL").unwrap();
        assert_eq!(
            (url.as_str(), d),
            ("sqlite:x.db?mode=rwc", Durability::PowerLoss)
        );
        assert!(Durability::of("sqlite:x.db?synchronous=off").is_err());
    }

    #[test]
    fn parsing_keeps_sqlx_happy() {
        let (url, _) = Durability::of("sqlite://data/x.db?synchronous=normal&mode=rwc").unwrap();
        assert!(SqliteConnectOptions::from_str(&url).is_ok(), "{url}");
    }

    /// The writer never syncs inside COMMIT nor checkpoints, and the checkpointer alone brings
    /// committed pages into the database file.
    #[tokio::test]
    async fn writes_reach_the_database_file_without_the_writer_checkpointing() {
        use crate::booking::store::{SqliteStore, Store};
        use crate::domain::ChargeBoxId;
        use crate::domain::charger::{NewCharger, SecurityProfile};

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ledger.db");
        let store = SqliteStore::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let (synchronous, autocheckpoint): (i64, i64) = {
            let mut conn = store.writer.acquire().await.unwrap();
            let s: (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let a: (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            (s.0, a.0)
        };
        assert_eq!(
            synchronous, 1,
            "NORMAL: no fsync inside COMMIT, the WAL is synced beside it"
        );
        assert_eq!(autocheckpoint, 0, "the writer never checkpoints");

        let before = std::fs::metadata(&file).unwrap().len();
        for i in 0..300 {
            let charger = NewCharger {
                id: ChargeBoxId::parse(&format!("CP-{i:04}")).unwrap(),
                name: Some("x".repeat(200)),
                connectors: 2,
                password_hash: None,
                security_profile: SecurityProfile::NONE,
            };
            store.insert_charger(&charger).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::metadata(&file).unwrap().len() <= before {
            assert!(
                Instant::now() < deadline,
                "no checkpoint copied the WAL back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.close().await;
    }

    /// The WAL header's checkpoint sequence number: SQLite raises it each time the WAL restarts
    /// from its beginning.
    fn wal_restarts(file: &std::path::Path) -> u32 {
        let mut wal = file.as_os_str().to_owned();
        wal.push("-wal");
        let bytes = std::fs::read(std::path::PathBuf::from(wal)).unwrap_or_default();
        bytes
            .get(12..16)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0)
    }

    /// Under writes that never pause, the WAL still restarts (instead of growing for as long as
    /// the load lasts): the writer copies what each checkpoint left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_restarts_under_a_load_that_never_pauses() {
        use crate::booking::store::{SqliteStore, Store};
        use crate::domain::ChargeBoxId;
        use crate::domain::charger::{NewCharger, SecurityProfile};
        use crate::domain::customer::{IdTag, NewCustomer, new_token, token_digest};
        use crate::domain::reservation::{NewReservation, TimeSlot};

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ledger.db");
        let store = std::sync::Arc::new(
            SqliteStore::open(&format!("sqlite://{}", file.display()))
                .await
                .unwrap(),
        );
        let charger = ChargeBoxId::parse("CP-WAL").unwrap();
        store
            .insert_charger(&NewCharger {
                id: charger.clone(),
                name: None,
                connectors: 1,
                password_hash: None,
                security_profile: SecurityProfile::NONE,
            })
            .await
            .unwrap();
        let tag = IdTag::parse("TAG-WAL").unwrap();
        let customer = store
            .insert_customer(&NewCustomer {
                name: "wal".into(),
                id_tags: vec![tag.clone()],
                token_digest: token_digest(&new_token()),
            })
            .await
            .unwrap();

        // 64 drivers booking back to back, each its own minutes far in the future: the writer
        // always has a round waiting.
        let t0 = time::OffsetDateTime::now_utc() + time::Duration::days(30);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let drivers: Vec<_> = (0..64i64)
            .map(|d| {
                let (store, stop, charger) = (store.clone(), stop.clone(), charger.clone());
                let (id_tag, customer_id) = (tag.as_str().to_owned(), customer.id);
                tokio::spawn(async move {
                    let mut n = 0i64;
                    while !stop.load(Ordering::Relaxed) {
                        let start = t0 + time::Duration::minutes(d * 100_000 + n);
                        let slot =
                            TimeSlot::parse(start, start + time::Duration::minutes(1)).unwrap();
                        store
                            .book(&NewReservation {
                                charger_id: charger.clone(),
                                connector_id: Some(1),
                                customer_id,
                                id_tag: id_tag.clone(),
                                slot,
                            })
                            .await
                            .unwrap();
                        n += 1;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = wal_restarts(&file);
        tokio::time::sleep(PERIOD * 4).await;
        let after = wal_restarts(&file);
        stop.store(true, Ordering::Relaxed);
        for d in drivers {
            d.await.unwrap();
        }
        assert!(
            after >= before + 2,
            "the WAL restarted {} times in {:?} of writes",
            after.wrapping_sub(before),
            PERIOD * 4
        );
        store.close().await;
    }
}
