//! Remote starts waiting for their transaction: `POST /chargers/{id}/remote-start` registers a
//! waiter *before* it sends RemoteStartTransaction (real chargers often send StartTransaction
//! before their answer arrives), and the charger's accepted StartTransaction completes the
//! first waiter that matches its charger, connector and idTag.

use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::domain::ChargeBoxId;
use crate::domain::transaction::Transaction;

struct Waiter {
    token: u64,
    charger: ChargeBoxId,
    connector: Option<u32>,
    id_tag_key: String,
    found: oneshot::Sender<i32>,
}

#[derive(Default)]
pub struct StartWaiters {
    waiting: Mutex<Vec<Waiter>>,
    next: std::sync::atomic::AtomicU64,
}

/// A registered wait; dropping it withdraws it.
pub struct StartWait<'a> {
    waiters: &'a StartWaiters,
    token: u64,
    pub found: oneshot::Receiver<i32>,
}

impl Drop for StartWait<'_> {
    fn drop(&mut self) {
        let token = self.token;
        self.waiters.lock().retain(|w| w.token != token);
    }
}

impl StartWaiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiter>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for a StartTransaction on `charger` (on `connector` if given) for `id_tag`.
    pub fn wait(
        &self,
        charger: &ChargeBoxId,
        connector: Option<u32>,
        id_tag: &str,
    ) -> StartWait<'_> {
        let token = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (found, receiver) = oneshot::channel();
        self.lock().push(Waiter {
            token,
            charger: charger.clone(),
            connector,
            id_tag_key: id_tag.to_ascii_lowercase(),
            found,
        });
        StartWait {
            waiters: self,
            token,
            found: receiver,
        }
    }

    /// A transaction started: hand its id to the first matching waiter.
    pub fn started(&self, t: &Transaction) {
        let mut waiting = self.lock();
        if waiting.is_empty() {
            return;
        }
        let matches = |w: &Waiter| {
            w.charger == t.charger_id
                && w.connector.is_none_or(|c| c == t.connector_id)
                && w.id_tag_key == t.id_tag.to_ascii_lowercase()
        };
        if let Some(i) = waiting.iter().position(matches) {
            let w = waiting.swap_remove(i);
            let _ = w.found.send(t.id);
        }
    }
}
