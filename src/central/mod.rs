//! Charger connections: the WebSocket upgrade with subprotocol and auth checks ([`upgrade`]),
//! one task per session ([`session`]), the registry of live sessions with typed outbound CALLs
//! ([`registry`]), the state chargers report ([`live`]), what each inbound action does
//! ([`inbound`]), the [`dispatcher`] that carries the ledger's reservations to the chargers, and
//! each charger's [`configuration`] snapshot, the fleet's configuration [`policy`], the
//! [`firmware`] and diagnostics statuses chargers report, the [`availability`] the server gave
//! its connectors, the chargers' [`local_list`]s kept in step with the ledger's tags, and the
//! [`cluster`] that carries commands, presence, takeovers and commit wake-ups between nodes
//! over NATS, and the [`security`] events and charger certificates of the security extension.
//! It speaks OCPP through the pure `crate::ocpp` layer. Sessions wait on the database only for
//! transaction messages, which must be durable before they are answered, and BootNotification,
//! whose answer is the charger's registration state as the ledger holds it.

pub mod availability;
pub mod breaker;
pub mod calls;
pub mod cluster;
pub mod configuration;
pub mod dispatcher;
pub mod firmware;
mod inbound;
pub mod live;
pub mod local_list;
pub mod machine_key;
pub mod policy;
pub mod registry;
pub mod security;
mod session;
pub mod upgrade;
pub mod waiters;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use calls::CallFailure;
pub use live::LiveState;
pub use registry::{EndReason, Sessions};
pub use session::close_code;

use dashmap::DashMap;
use tokio::sync::mpsc;

use crate::booking::store::{Store, StoreError};
use crate::domain::customer::{Customer, TagAuth};
use crate::settings::Settings;
use crate::transport::throttle::{Throttle, ThrottleSettings};

/// What every session and the upgrade handler share.
pub struct Central {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub sessions: Sessions,
    pub live: Arc<LiveState>,
    /// Cancelled when the server stops: sessions close with 1001 (Going Away).
    pub shutdown: CancellationToken,
    /// Every session task, so a graceful stop can wait for them.
    pub tracker: TaskTracker,
    /// Wakes the dispatcher when a charger boots or a connector frees up.
    signals: mpsc::UnboundedSender<dispatcher::Signal>,
    /// The dispatcher's end of `signals`, taken once when it starts.
    pub(crate) signal_inbox: Mutex<Option<mpsc::UnboundedReceiver<dispatcher::Signal>>>,
    /// Remote starts waiting for the charger's StartTransaction.
    pub starts: waiters::StartWaiters,
    /// Whose configuration this process has read (see [`configuration`]).
    pub configurations: configuration::Configurations,
    /// Chargers' local authorization lists in sync (see [`local_list`]).
    pub local_lists: local_list::LocalLists,
    /// What chargers reported about firmware updates and diagnostics uploads.
    pub files: firmware::FileStatuses,
    /// The fleet's configuration key policy and each charger's outcome (see [`policy`]).
    pub policies: policy::Policies,
    /// idTag (lower case) → its owner and standing. An entry is dropped when its customer's
    /// CustomerUpdated or CustomerDeleted event is applied (block, expiry, removal, the
    /// customer's deletion), on every node that follows
    /// the log; misses are not cached (the customer may be created next). Expiry is judged at
    /// answer time from the cached `expires_at`, so it needs no event.
    id_tags: DashMap<String, TagAuth>,
    /// Customers by token digest, for REST's customer sign-in: saves two reads on every
    /// customer request. Kept here, beside `id_tags`, because the same CustomerUpdated event
    /// (a rename, a new token, a tag change) or CustomerDeleted must drop both.
    pub customers_by_token: DashMap<String, Customer>,
    /// Failed charger logins (HTTP Basic at the upgrade), per source address and chargeBoxId.
    pub logins: Arc<Throttle>,
}

/// The login throttle's settings from the server's.
pub fn throttle_settings(settings: &Settings) -> ThrottleSettings {
    ThrottleSettings {
        free_failures: settings.auth_free_failures,
        delay: settings.auth_delay,
        ..ThrottleSettings::default()
    }
}

impl Central {
    pub fn new(
        settings: Arc<Settings>,
        store: Arc<dyn Store>,
        sessions: Sessions,
        shutdown: CancellationToken,
    ) -> Self {
        let (signals, inbox) = mpsc::unbounded_channel();
        let logins = Throttle::new(throttle_settings(&settings));
        let live = Arc::new(LiveState::default());
        let sessions = sessions.with_strictness(settings.ocpp_strictness);
        sessions.attach_live_state(live.clone());
        Central {
            settings,
            store,
            sessions,
            live,
            shutdown,
            tracker: TaskTracker::new(),
            signals,
            signal_inbox: Mutex::new(Some(inbox)),
            starts: Default::default(),
            configurations: Default::default(),
            local_lists: Default::default(),
            files: Default::default(),
            policies: Default::default(),
            id_tags: DashMap::new(),
            customers_by_token: DashMap::new(),
            logins,
        }
    }

    /// Joins the cluster (before any charger connects): see [`cluster`].
    pub fn join(&self, cluster: Arc<cluster::Cluster>) {
        self.sessions.attach_cluster(cluster);
    }

    /// This node's name (setting `node_id`).
    pub fn node_id(&self) -> &str {
        &self.settings.node_id
    }

    /// The node holding the charger's socket: this one, another one of the cluster (its
    /// presence entry), or none (offline everywhere, as far as this node can tell).
    pub fn holder(&self, id: &crate::domain::ChargeBoxId) -> Option<String> {
        if self.sessions.is_online(id) {
            return Some(self.settings.node_id.clone());
        }
        self.sessions.cluster().and_then(|c| c.holder(id))
    }

    pub(crate) fn signal(&self, signal: dispatcher::Signal) {
        // Only fails once the dispatcher has stopped, at shutdown.
        let _ = self.signals.send(signal);
    }

    /// How early a driver may start on a reservation, as a `time` duration.
    pub fn early_grace(&self) -> time::Duration {
        time::Duration::try_from(self.settings.early_start_grace).unwrap_or(time::Duration::ZERO)
    }

    /// The owner and standing of an idTag (case-insensitive), from the cache when known.
    pub async fn id_tag_auth(&self, id_tag: &str) -> Result<Option<TagAuth>, StoreError> {
        let key = id_tag.to_ascii_lowercase();
        if let Some(auth) = self.id_tags.get(&key) {
            return Ok(Some(auth.clone()));
        }
        let auth = self.store.id_tag_auth(&key).await?;
        if let Some(a) = &auth {
            self.id_tags.insert(key, a.clone());
        }
        Ok(auth)
    }

    /// Closes a charger's socket wherever it is held: here, or (in a cluster) on the node that
    /// holds it, which ends the session the same way. Fire and forget: the ledger already
    /// refuses the charger, so a node that misses the word refuses its next boot or call.
    pub fn end_charger(&self, id: &crate::domain::ChargeBoxId, reason: EndReason) {
        self.end_here(id, reason);
        // Every other node hears it: the holder closes the socket, and all drop their caches.
        if let Some(cluster) = self.sessions.cluster() {
            cluster.end_elsewhere(id, reason);
        }
    }

    /// [`Central::end_charger`] on this node only; true when its socket was here.
    pub(crate) fn end_here(&self, id: &crate::domain::ChargeBoxId, reason: EndReason) -> bool {
        if reason == EndReason::Rejected {
            // No command may reach it from now on, even before its socket is gone.
            self.sessions.unboot(id);
        }
        let held = self.sessions.disconnect(id, reason);
        if reason == EndReason::Deregistered {
            self.forget_charger(id);
        }
        held
    }

    /// Drops what this node keeps in memory of a deleted charger.
    fn forget_charger(&self, id: &crate::domain::ChargeBoxId) {
        self.live.forget(id);
        self.sessions.forget(id);
        self.files.forget(id);
        self.policies.forget(id);
    }

    /// Forgets what is cached of a customer that changed (the next lookup reads the ledger):
    /// its tags' standing and its token.
    pub fn forget_customer(&self, customer_id: i64) {
        self.id_tags
            .retain(|_, auth| auth.customer_id != customer_id);
        self.customers_by_token.retain(|_, c| c.id != customer_id);
    }
}

/// `GET /ocpp/{chargeBoxId}` (and, read leniently, `/ocpp/{chargeBoxId}/`).
pub fn router(central: Arc<Central>) -> Router {
    Router::new()
        .route("/ocpp/{charge_box_id}", get(upgrade::upgrade))
        .route("/ocpp/{charge_box_id}/", get(upgrade::upgrade_with_slash))
        .with_state(central)
}
