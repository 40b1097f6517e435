//! The group-commit writer: one task owns SQLite's writer connection for batched writes
//! (bookings, transaction messages, the charger's answers). Each round takes every job waiting
//! (up to [`MAX_BATCH`]), runs them in one `BEGIN IMMEDIATE … COMMIT` and only then answers
//! each: an answered write is committed. With one writer connection the statements are the
//! cost, so sharing BEGIN/COMMIT among concurrent writes is what lifts throughput.
//!
//! One job must never fail another's. A refusal (an overlap, an unknown customer) writes
//! nothing and costs nothing. A job that fails in the database, or panics, may have written
//! part of its work: the round is rolled back and run again without it (its caller gets its
//! error); the others cannot tell. That costs a re-run only when something failed, where a
//! savepoint per job would cost statements on every job (measured: ~40% of the booking rate).
//! The task never dies of a job; should it end anyway, [`Writer::alive`] says so (readiness).
//!
//! Durable to power loss without the writer waiting for the disk: rounds commit with SQLite's
//! `synchronous = NORMAL` (no fsync inside COMMIT) and are handed to the [`WalSync`] task, which
//! syncs the WAL file once for every round committed since its last sync and only then answers
//! their callers and moves the log's head. The writer meanwhile runs the next round, so one
//! fsync is paid per disk round trip, not per round, and a slow fsync delays answers without
//! stopping writes. An answered write is on disk; one committed but not yet synced when the
//! power fails was never acknowledged.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::Written;
use super::checkpoint::CatchUp;
use crate::booking::store::{BookError, CancelError, Head, StoreError};

/// Most jobs per transaction: enough to amortise the commit, small enough to keep latency low.
pub(super) const MAX_BATCH: usize = 128;

/// Work on the round's open transaction, with its arguments; run again if the round is redone.
pub(super) type Work<A, T, E> =
    for<'a> fn(&'a mut SqliteConnection, &'a A) -> BoxFuture<'a, Result<Written<T>, E>>;

/// Whether an error is a refusal decided before anything was written (the round stands), or
/// may leave part of the job written (the round is redone without it).
pub(super) trait Refusal {
    fn wrote_nothing(&self) -> bool;
}

impl Refusal for StoreError {
    fn wrote_nothing(&self) -> bool {
        false
    }
}

impl Refusal for BookError {
    fn wrote_nothing(&self) -> bool {
        !matches!(self, BookError::Store(_))
    }
}

impl Refusal for CancelError {
    fn wrote_nothing(&self) -> bool {
        !matches!(self, CancelError::Store(_))
    }
}

/// How a job ran in a round.
enum Step {
    Wrote(Option<i64>),
    Refused,
    Failed,
}

/// How a job's caller is answered.
enum End {
    /// The round it ran in committed (or failed to: the error).
    Round(Result<(), StoreError>),
    /// It panicked.
    Panicked,
}

trait Job: Send {
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Step>;
    fn finish(self: Box<Self>, end: End);
}

struct Batched<A, T, E> {
    args: A,
    work: Work<A, T, E>,
    outcome: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<A, T, E> Job for Batched<A, T, E>
where
    A: Send + Sync,
    T: Send,
    E: From<StoreError> + Refusal + Send,
{
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, Step> {
        Box::pin(async move {
            let work = self.work;
            let result = work(&mut *conn, &self.args).await;
            let step = match &result {
                Ok((_, seq)) => Step::Wrote(*seq),
                Err(e) if e.wrote_nothing() => Step::Refused,
                Err(_) => Step::Failed,
            };
            self.outcome = Some(result.map(|(value, _)| value));
            step
        })
    }

    fn finish(self: Box<Self>, end: End) {
        let not_completed = |why: String| E::from(StoreError::NotCompleted(why));
        let answer = match (self.outcome, end) {
            (_, End::Panicked) => Err(not_completed("the write failed".into())),
            // A refusal or its own failure: the round's fate does not change it.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), End::Round(Ok(()))) => Ok(value),
            (_, End::Round(Err(e))) => Err(not_completed(format!("the write batch failed: {e}"))),
            (None, End::Round(Ok(()))) => Err(not_completed("the write never ran".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// The handle the store keeps: where jobs go, and whether the task still takes them.
pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    alive: Arc<AtomicBool>,
}

impl Writer {
    /// Start the writer; with `wal`, every round is answered only once that WAL file is synced.
    /// With `catch_up`, it copies what a checkpoint left between rounds when asked.
    pub(super) fn spawn(
        pool: SqlitePool,
        head: Arc<Head>,
        wal: Option<WalSync>,
        catch_up: Option<CatchUp>,
    ) -> Writer {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        let alive = Arc::new(AtomicBool::new(true));
        let synced = wal.map(|wal| {
            let (rounds, pending) = mpsc::unbounded_channel();
            tokio::spawn(sync_rounds(wal, pending, head.clone()));
            rounds
        });
        tokio::spawn(run(
            pool,
            queue,
            head,
            synced,
            catch_up,
            AliveGuard(alive.clone()),
        ));
        Writer { jobs, alive }
    }

    pub(super) fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !self.jobs.is_closed()
    }

    /// Run `work(conn, &args)` in the next round and return its value once that committed.
    pub(super) async fn write<A, T, E>(&self, args: A, work: Work<A, T, E>) -> Result<T, E>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
        E: From<StoreError> + Refusal + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Batched {
            args,
            work,
            outcome: None,
            reply,
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::NotCompleted("the store is closed".into()))?;
        answer.await.map_err(|_| {
            E::from(StoreError::NotCompleted(
                "the write failed before it could be committed".into(),
            ))
        })?
    }
}

/// Clears the flag when the writer loop ends, however it ends.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// How one attempt at a round went.
enum Round {
    Committed(Option<i64>),
    /// Job `index` failed (or panicked): nothing of the round was committed.
    Poisoned {
        index: usize,
        panicked: bool,
    },
    Failed(StoreError),
}

/// A committed round waiting for its WAL sync: its jobs and the last event it appended.
struct Committed {
    jobs: Vec<Box<dyn Job>>,
    seq: Option<i64>,
}

/// The ledger's WAL file, synced on demand. Opened anew for each sync (one cheap syscall beside
/// the fsync): SQLite may truncate or recreate the file, and a sync must reach the file as it is
/// now. On Linux an fsync of any descriptor flushes the file's data, whoever wrote it.
#[derive(Debug, Clone)]
pub(super) struct WalSync {
    path: std::path::PathBuf,
}

impl WalSync {
    pub(super) fn new(database: &std::path::Path) -> WalSync {
        let mut name = database.as_os_str().to_owned();
        name.push("-wal");
        WalSync { path: name.into() }
    }

    /// Flush what was written to the WAL so far. No WAL file means nothing is waiting in one.
    pub(super) async fn sync(&self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let synced = tokio::task::spawn_blocking(move || match std::fs::File::open(&path) {
            Ok(file) => file.sync_data(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await;
        match synced {
            Ok(result) => Ok(result?),
            Err(e) => Err(StoreError::NotCompleted(format!(
                "the WAL sync stopped: {e}"
            ))),
        }
    }
}

/// The shortest time between two WAL syncs.
const SYNC_GAP: std::time::Duration = std::time::Duration::from_millis(2);

/// Answer committed rounds once a sync that began after their commit has finished: each pass
/// takes every round committed so far and syncs once for all of them.
async fn sync_rounds(
    wal: WalSync,
    mut pending: mpsc::UnboundedReceiver<Committed>,
    head: Arc<Head>,
) {
    let mut rounds: Vec<Committed> = Vec::new();
    let mut last: Option<tokio::time::Instant> = None;
    while pending.recv_many(&mut rounds, usize::MAX).await > 0 {
        // At most one sync per SYNC_GAP: under load the rounds of that gap share one fsync
        // instead of paying one each (each costs the single core a thread hand-off and the
        // kernel's flush); idle, a write is synced at once.
        if let Some(last) = last {
            tokio::time::sleep_until(last + SYNC_GAP).await;
            while let Ok(more) = pending.try_recv() {
                rounds.push(more);
            }
        }
        last = Some(tokio::time::Instant::now());
        let began = std::time::Instant::now();
        let synced = wal.sync().await;
        crate::metrics::ledger_wal_sync(began.elapsed());
        if let Err(e) = &synced {
            // Committed, but not known to be on disk: the callers are told so and may retry
            // (bookings and transaction messages are idempotent or refused as duplicates).
            tracing::error!(error = %e, rounds = rounds.len(), "WAL sync failed");
        }
        let seq = rounds.iter().filter_map(|r| r.seq).max();
        if let (Ok(()), Some(seq)) = (&synced, seq) {
            head.advance(seq);
        }
        for round in rounds.drain(..) {
            for job in round.jobs {
                job.finish(End::Round(match &synced {
                    Ok(()) => Ok(()),
                    Err(e) => Err(StoreError::NotCompleted(format!(
                        "committed, but the WAL sync failed: {e}"
                    ))),
                }));
            }
        }
    }
}

async fn run(
    pool: SqlitePool,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    head: Arc<Head>,
    synced: Option<mpsc::UnboundedSender<Committed>>,
    catch_up: Option<CatchUp>,
    _alive: AliveGuard,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if let Some(catch_up) = &catch_up {
            catch_up.run(&pool).await;
        }
        let outcome = loop {
            match attempt(&pool, &mut batch).await {
                Round::Committed(seq) => break Ok(seq),
                Round::Poisoned { index, panicked } => {
                    tracing::warn!(
                        jobs = batch.len(),
                        panicked,
                        "a write failed; its batch runs again without it"
                    );
                    let job = batch.remove(index);
                    job.finish(if panicked {
                        End::Panicked
                    } else {
                        End::Round(Ok(()))
                    });
                    if batch.is_empty() {
                        break Ok(None);
                    }
                }
                Round::Failed(e) => break Err(e),
            }
        };
        if let (Ok(seq), Some(synced)) = (&outcome, &synced) {
            let round = Committed {
                jobs: std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH)),
                seq: *seq,
            };
            if let Err(mpsc::error::SendError(round)) = synced.send(round) {
                // The sync task is gone (it never ends while we run): fail safe, not silent.
                for job in round.jobs {
                    job.finish(End::Round(Err(StoreError::NotCompleted(
                        "the WAL sync task stopped".into(),
                    ))));
                }
            }
            continue;
        }
        match &outcome {
            Ok(Some(seq)) => head.advance(*seq),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, jobs = batch.len(), "write batch rolled back"),
        }
        for job in batch.drain(..) {
            job.finish(End::Round(match &outcome {
                Ok(_) => Ok(()),
                Err(e) => Err(StoreError::NotCompleted(e.to_string())),
            }));
        }
    }
}

/// One attempt at a round; how long it held the writer goes to the metrics (the longest hold is
/// the longest any write queued behind it waited).
async fn attempt(pool: &SqlitePool, batch: &mut [Box<dyn Job>]) -> Round {
    let began = std::time::Instant::now();
    let round = attempt_round(pool, batch).await;
    crate::metrics::ledger_batch(began.elapsed());
    round
}

async fn attempt_round(pool: &SqlitePool, batch: &mut [Box<dyn Job>]) -> Round {
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => return Round::Failed(e.into()),
    };
    let mut last = None;
    for (index, job) in batch.iter_mut().enumerate() {
        // Dropping `tx` on the way out rolls the round back.
        match AssertUnwindSafe(job.run(&mut tx)).catch_unwind().await {
            Ok(Step::Wrote(seq)) => last = seq.max(last),
            Ok(Step::Refused) => {}
            Ok(Step::Failed) => {
                return Round::Poisoned {
                    index,
                    panicked: false,
                };
            }
            Err(panic) => {
                tracing::error!(panic = panic_text(&panic), "a ledger write panicked");
                return Round::Poisoned {
                    index,
                    panicked: true,
                };
            }
        }
    }
    match tx.commit().await {
        Ok(()) => Round::Committed(last),
        Err(e) => Round::Failed(e.into()),
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqlitePoolOptions;

    async fn insert(conn: &mut SqliteConnection, v: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO t (v) VALUES ($1)")
            .bind(v)
            .execute(conn)
            .await?;
        Ok(())
    }

    fn good<'a>(
        conn: &'a mut SqliteConnection,
        v: &'a i64,
    ) -> BoxFuture<'a, Result<Written<i64>, StoreError>> {
        Box::pin(async move {
            insert(conn, *v).await?;
            Ok((*v, None))
        })
    }

    /// Writes, then fails in the database: what it wrote must not be committed.
    fn poisoned<'a>(
        conn: &'a mut SqliteConnection,
        v: &'a i64,
    ) -> BoxFuture<'a, Result<Written<i64>, StoreError>> {
        Box::pin(async move {
            insert(conn, *v).await?;
            sqlx::query("INSERT INTO missing_table VALUES (1)")
                .execute(conn)
                .await?;
            Ok((*v, None))
        })
    }

    fn panicking<'a>(
        conn: &'a mut SqliteConnection,
        v: &'a i64,
    ) -> BoxFuture<'a, Result<Written<i64>, StoreError>> {
        Box::pin(async move {
            insert(conn, *v).await?;
            panic!("a bug in one write");
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_or_panicking_write_fails_alone_and_the_writer_lives_on() {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let writer = Arc::new(Writer::spawn(
            pool.clone(),
            Arc::new(Head::new(0)),
            None,
            None,
        ));
        let tasks: Vec<_> = (0..200i64)
            .map(|v| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    let work: Work<i64, i64, StoreError> = match v % 50 {
                        7 => poisoned,
                        13 => panicking,
                        _ => good,
                    };
                    (v, writer.write(v, work).await)
                })
            })
            .collect();
        let mut committed = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (v, Ok(got)) => {
                    assert_eq!(got, v);
                    committed.push(v);
                }
                (v, Err(e)) => assert!(matches!(v % 50, 7 | 13), "{v}: {e}"),
            }
        }
        assert_eq!(committed.len(), 200 - 8);
        let mut stored: Vec<i64> = sqlx::query_scalar("SELECT v FROM t")
            .fetch_all(&pool)
            .await
            .unwrap();
        stored.sort();
        committed.sort();
        assert_eq!(
            stored, committed,
            "nothing of a failed write, everything of the others"
        );
        assert!(writer.alive());
        assert_eq!(writer.write(1000, good).await.unwrap(), 1000);
    }
}
