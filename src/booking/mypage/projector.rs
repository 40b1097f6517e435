//! The my-page projector: one task that folds the event log into the view. It wakes when the
//! ledger commits (the store's head) and polls once a second for other nodes' commits, folds up
//! to [`BATCH`] events per view transaction (batching itself under load), records the lag from
//! each event's commit to its visibility, then announces the changes to live streams.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::pages::PageStore;
use super::{PageNews, change_of};
use crate::booking::store::{Store, StoreError};

/// Events folded per view transaction.
pub const BATCH: u32 = 500;
const POLL: Duration = Duration::from_secs(1);
/// The shortest time between two folds woken by the log's head (what it adds to the lag).
const FOLD_GAP: Duration = Duration::from_millis(10);

/// Where live streams subscribe to page changes.
pub struct PageHub {
    news: broadcast::Sender<PageNews>,
}

impl Default for PageHub {
    fn default() -> Self {
        // A stream that falls this far behind is told to reload instead.
        PageHub {
            news: broadcast::Sender::new(4096),
        }
    }
}

impl PageHub {
    pub fn subscribe(&self) -> broadcast::Receiver<PageNews> {
        self.news.subscribe()
    }
}

/// Fold every event after the view's cursor; returns how many were read.
pub async fn catch_up(
    store: &dyn Store,
    pages: &dyn PageStore,
    hub: Option<&PageHub>,
) -> Result<usize, StoreError> {
    let mut cursor = pages.cursor().await?;
    let mut total = 0;
    loop {
        let events = store.events_after(cursor, BATCH).await?;
        let Some(last) = events.last() else {
            return Ok(total);
        };
        let next = last.seq;
        let changes: Vec<_> = events.iter().filter_map(change_of).collect();
        pages.apply(&changes, next).await?;
        let visible = OffsetDateTime::now_utc();
        for e in &events {
            crate::metrics::mypage_lag((visible - e.at).as_seconds_f64().max(0.0));
        }
        crate::metrics::mypage_cursor(next);
        if let Some(hub) = hub
            && hub.news.receiver_count() > 0
        {
            for e in &events {
                if let Some(customer_id) = e.customer_id {
                    let _ = hub.news.send(PageNews {
                        seq: e.seq,
                        customer_id,
                        kind: e.kind,
                        reservation_id: e.reservation_id,
                    });
                }
            }
        }
        total += events.len();
        cursor = next;
        if events.len() < BATCH as usize {
            return Ok(total);
        }
    }
}

/// Follow the log until `stop` fires.
pub async fn run(
    store: Arc<dyn Store>,
    pages: Arc<dyn PageStore>,
    hub: Arc<PageHub>,
    stop: CancellationToken,
) {
    let mut head = store.head();
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_fold = tokio::time::Instant::now();
    loop {
        match catch_up(store.as_ref(), pages.as_ref(), Some(&hub)).await {
            Ok(n) if n > 0 => tracing::trace!(events = n, "my page caught up"),
            Ok(_) => {}
            Err(e) => error!(error = %e, "my-page projection failed; retrying"),
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = head.changed() => {
                if changed.is_err() {
                    break;
                }
                // Under load the head moves at every WAL sync: one fold per FOLD_GAP takes
                // what several brought, in one view transaction instead of one each.
                tokio::time::sleep_until(last_fold + FOLD_GAP).await;
            }
            _ = poll.tick() => {}
        }
        last_fold = tokio::time::Instant::now();
    }
    // What was committed before the stop is folded in before the view closes.
    if let Err(e) = catch_up(store.as_ref(), pages.as_ref(), Some(&hub)).await {
        error!(error = %e, "my-page projection could not catch up at stop");
    }
}

/// Check, before anything reads the view, that it was built from this ledger's log (and not
/// past its end); if not it is emptied, to be rebuilt by the projector. A view that survived
/// its ledger file being replaced would otherwise show a new customer the old one's bookings.
pub async fn adopt(store: &dyn Store, pages: &dyn PageStore) -> Result<bool, StoreError> {
    let head = *store.head().borrow();
    pages.adopt(&store.ledger_id().await?, head).await
}

/// Rebuild the view from the whole log (`echarging rebuild-projections`). Run it while the
/// server is stopped; the server then resumes from the rebuilt cursor.
pub async fn rebuild(store: &dyn Store, pages: &dyn PageStore) -> Result<usize, StoreError> {
    pages.reset().await?;
    adopt(store, pages).await?;
    let n = catch_up(store, pages, None).await?;
    info!(events = n, "my-page view rebuilt");
    Ok(n)
}
