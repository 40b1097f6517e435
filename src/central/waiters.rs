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
        self.started_on(&t.charger_id, t.connector_id, &t.id_tag, t.id);
    }

    /// Transaction `id` started on `charger`'s `connector` for `id_tag` (here, or on the node
    /// holding the charger: see `cluster`).
    pub fn started_on(&self, charger: &ChargeBoxId, connector: u32, id_tag: &str, id: i32) {
        let mut waiting = self.lock();
        if waiting.is_empty() {
            return;
        }
        let key = id_tag.to_ascii_lowercase();
        let matches = |w: &Waiter| {
            w.charger == *charger
                && w.connector.is_none_or(|c| c == connector)
                && w.id_tag_key == key
        };
        if let Some(i) = waiting.iter().position(matches) {
            let w = waiting.swap_remove(i);
            let _ = w.found.send(id);
        }
    }
}
