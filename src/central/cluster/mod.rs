//! The cluster: nodes that share one PostgreSQL and one NATS (setting `cluster_url`). NATS
//! carries only what is in flight; the ledger stays the one source of truth, so nothing here
//! is needed for correctness of bookings, only for reach and speed. Without `cluster_url` this
//! module is never built and no NATS is touched.
//!
//! - **Command routing**: a request/reply subject per charger, `echarging.{ledger}.call.{key}`, which
//!   the node holding the charger's socket subscribes to while the session lives. A node that
//!   does not hold the charger sends the CALL (action and JSON payload) there and gets the raw
//!   answer or a typed [`CallFailure`] back; it decodes the answer itself, so a command through
//!   any node answers exactly what it would on the holding node. Chosen over per-node subjects
//!   plus a presence lookup because NATS's no-responders status then says "offline" at once,
//!   with no window where a stale presence entry sends a command to a node that just lost the
//!   charger. NATS down → [`CallFailure::ClusterUnavailable`] (503 with Retry-After); local
//!   chargers never touch NATS.
//! - **Presence**: the JetStream KV bucket `echarging_presence_{ledger}`, mirrored by every node
//!   through a watch. Two kinds of entry: a charger's (key: the charger, value: the holding node
//!   and its incarnation, a random id drawn at start), written when its session starts and
//!   withdrawn when it ends; and each node's lease (key `node.{node}`, value: its incarnation),
//!   refreshed every third of `cluster_presence_ttl`. A charger entry counts only while its
//!   node's lease is fresh and of the same incarnation, so a node that dies without a word drops
//!   out, with all its chargers, by expiry; its leftover entries are then deleted by whichever
//!   node notices first. Refreshing a lease per node rather than an entry per charger is what
//!   lets 100,000 chargers be present for a few writes a second instead of 10,000 (measured in
//!   docs/benchmarks.md); charger entries are written again only after NATS comes back (it may
//!   be a fresh server) and once an hour, within the bucket's six-hour `max_age`.
//! - **Takeover**: a node that registers a charger publishes `….takeover.{key}`; the
//!   node that still holds a socket for it closes it (`EndReason::Replaced`).
//! - **Operator's ends**: a charger deleted or rejected through any node goes out on
//!   `….end.{key}`; the node holding its socket closes it as it would locally, and every node
//!   drops what it cached of a deleted charger.
//! - **Commit notifications**: each local commit's log head goes out on `….commit`;
//!   another node's head is fed to the local store's head, waking the dispatcher and the my-page
//!   projector at once (their one-second poll stays as the fallback).
//! - **Remote starts**: a StartTransaction goes out on `….started`, so a remote start
//!   asked on another node learns its transaction id.
//!
//! It must not write the ledger, and must never hold a map guard across an `.await`.

pub mod wire;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_nats::jetstream::kv;
use dashmap::DashMap;
use futures_util::StreamExt;
use time::OffsetDateTime;
use tokio::sync::{RwLock, watch};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{CallFailure, Central};
use crate::domain::ChargeBoxId;
use crate::ocpp::v16::OCPP16_ACTIONS;
use wire::{CallReply, CallRequest, Commit, End, Ending, Started, Takeover};

/// One charger's holder as the presence bucket says.
#[derive(Debug, Clone)]
struct Seen {
    node: String,
    incarnation: String,
    /// The entry's revision in the bucket, so a stale one is deleted only if still the same.
    revision: u64,
}

/// A node's lease as last refreshed.
#[derive(Debug, Clone)]
struct Lease {
    incarnation: String,
    at: OffsetDateTime,
}

/// How often a node writes its chargers' entries again (they are kept for `PRESENCE_KEEP`).
const PRESENCE_REWRITE: Duration = Duration::from_secs(3600);
/// The presence bucket's `max_age`: a charger entry not rewritten for this long is dropped.
const PRESENCE_KEEP: Duration = Duration::from_secs(6 * 3600);
/// The key prefix of node leases (charger keys never hold a `.`).
const LEASE_PREFIX: &str = "node.";

pub struct Cluster {
    node: String,
    /// Drawn at start: this process's entries are told from those of an earlier one of the same
    /// node id, which died without withdrawing them.
    incarnation: String,
    /// `echarging.{ledger}`: every subject's prefix, so clusters (and test runs) sharing one
    /// NATS never hear each other; the nodes of one cluster share the ledger, so its id.
    prefix: String,
    /// The presence bucket's name, scoped the same way.
    bucket_name: String,
    client: async_nats::Client,
    /// How long a presence entry lives without a refresh (setting `cluster_presence_ttl`).
    ttl: Duration,
    /// The same, to compare with instants.
    ttl_as_time: time::Duration,
    /// How long a forwarded call may take: the call timeout plus room for the queue.
    call_wait: Duration,
    /// The presence bucket, once it could be opened (again, after NATS lost it).
    bucket: RwLock<Option<kv::Store>>,
    /// The bucket's mirror: charger → holder.
    presence: DashMap<ChargeBoxId, Seen>,
    /// The bucket's mirror: node → its lease.
    leases: DashMap<String, Lease>,
    /// Since when the mirror's watch has delivered the bucket's whole history (`None`: not yet,
    /// or watching again). Never held across an `.await`.
    synced: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// Chargers held here whose entry could not be written; tried again at each lease refresh.
    unwritten: dashmap::DashSet<ChargeBoxId>,
    /// The call subscription of each charger held here, by connection.
    serving: DashMap<ChargeBoxId, (u64, AbortHandle)>,
    /// The highest head learned from another node: not published again.
    remote_head: AtomicI64,
    /// Counts NATS (re)connects: presence is refreshed and watched again at once.
    reconnected: watch::Sender<u64>,
    central: OnceLock<Weak<Central>>,
}

/// A charger id as one NATS subject token and KV key: letters, digits, `-` and `_` as they
/// are, every other byte (`.`, `*`, `>`, spaces, `=` itself) as `=XX`.
pub fn key(id: &ChargeBoxId) -> String {
    let mut out = String::with_capacity(id.as_str().len());
    for b in id.as_str().bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// The inverse of [`key`]; `None` for a key no charger id gives.
pub fn unkey(key: &str) -> Option<ChargeBoxId> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = key.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    ChargeBoxId::parse(&String::from_utf8(out).ok()?).ok()
}

impl Cluster {
    /// Connects to `url` (retrying in the background: a node starts, and serves its own
    /// chargers, while NATS is down).
    pub async fn connect(
        url: &str,
        node: &str,
        ledger_id: &str,
        call_timeout: Duration,
        ttl: Duration,
    ) -> anyhow::Result<Self> {
        let scope: String = ledger_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect();
        let reconnected = watch::Sender::new(0u64);
        let wake = reconnected.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("echarging {node}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            // Forwarded calls are bounded by `call_wait`, which knows the call timeout.
            .request_timeout(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts as u64).min(2000))
            })
            .event_callback(move |event| {
                let wake = wake.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            info!("cluster: connected to NATS");
                            wake.send_modify(|n| *n = n.wrapping_add(1));
                        }
                        async_nats::Event::Disconnected => warn!("cluster: NATS disconnected"),
                        other => debug!(event = %other, "cluster: NATS event"),
                    }
                }
            })
            .connect(url)
            .await?;
        Ok(Cluster {
            node: node.to_string(),
            incarnation: format!("{:016x}", rand::random::<u64>()),
            prefix: format!("echarging.{scope}"),
            bucket_name: format!("echarging_presence_{scope}"),
            client,
            ttl,
            ttl_as_time: time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX),
            call_wait: call_timeout
                .saturating_mul(2)
                .saturating_add(Duration::from_secs(5)),
            bucket: RwLock::new(None),
            presence: DashMap::new(),
            leases: DashMap::new(),
            unwritten: dashmap::DashSet::new(),
            synced: std::sync::Mutex::new(None),
            serving: DashMap::new(),
            remote_head: AtomicI64::new(0),
            reconnected,
            central: OnceLock::new(),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn subject(&self, what: &str) -> String {
        format!("{}.{what}", self.prefix)
    }

    fn call_subject(&self, id: &ChargeBoxId) -> String {
        self.subject(&format!("call.{}", key(id)))
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn central(&self) -> Option<Arc<Central>> {
        self.central.get().and_then(Weak::upgrade)
    }

    /// The node holding `id`'s socket, as the presence bucket says (this node's own entries
    /// are the local registry's business, not read here).
    pub fn holder(&self, id: &ChargeBoxId) -> Option<String> {
        let seen = self.presence.get(id)?;
        (seen.node != self.node && self.alive(&seen, OffsetDateTime::now_utc()))
            .then(|| seen.node.clone())
    }

    /// Whether `seen`'s node holds a fresh lease of the same incarnation.
    fn alive(&self, seen: &Seen, now: OffsetDateTime) -> bool {
        self.leases.get(&seen.node).is_some_and(|lease| {
            lease.incarnation == seen.incarnation && now - lease.at < self.ttl_as_time
        })
    }

    /// Chargers held by each other node (entries of live nodes only), for the metrics.
    pub fn held_elsewhere(&self) -> Vec<(String, usize)> {
        let now = OffsetDateTime::now_utc();
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for e in self.presence.iter() {
            if e.node != self.node && self.alive(&e, now) {
                *counts.entry(e.node.clone()).or_default() += 1;
            }
        }
        counts.into_iter().collect()
    }

    // ---- Command routing ------------------------------------------------------------------

    /// Sends a CALL to a charger held by another node; the raw answer or why there is none.
    pub(crate) async fn call(
        &self,
        id: &ChargeBoxId,
        action: &'static str,
        payload: String,
    ) -> Result<String, CallFailure> {
        if !self.connected() {
            return Err(CallFailure::ClusterUnavailable);
        }
        let body = serde_json::to_vec(&CallRequest {
            action: action.to_string(),
            payload,
        })
        .map_err(|e| CallFailure::Encode(e.to_string()))?;
        let asked = self.client.request(self.call_subject(id), body.into());
        let message = match tokio::time::timeout(self.call_wait, asked).await {
            Err(_) => return Err(CallFailure::Timeout),
            Ok(Ok(message)) => message,
            Ok(Err(e)) => {
                use async_nats::client::RequestErrorKind;
                return Err(match e.kind() {
                    RequestErrorKind::NoResponders => CallFailure::Offline,
                    RequestErrorKind::TimedOut => CallFailure::Timeout,
                    _ => CallFailure::ClusterUnavailable,
                });
            }
        };
        match serde_json::from_slice::<CallReply>(&message.payload) {
            Ok(reply) => reply.into_answer(action),
            Err(e) => Err(CallFailure::BadResponse {
                action,
                reason: format!("the holding node's reply is unreadable: {e}"),
            }),
        }
    }

    /// A session for `id` started here: announce it (takeover, presence) and serve its calls.
    pub(crate) fn held(self: &Arc<Self>, id: &ChargeBoxId, connection: u64) {
        let cluster = self.clone();
        let charger = id.clone();
        let task = tokio::spawn(async move { cluster.serve(charger, connection).await });
        if let Some((_, (_, old))) = self.serving.remove(id) {
            old.abort();
        }
        self.serving
            .insert(id.clone(), (connection, task.abort_handle()));
    }

    /// The session `connection` for `id` ended here. Presence is withdrawn unless another
    /// node took the charger over (its entry must stay).
    pub(crate) fn released(self: &Arc<Self>, id: &ChargeBoxId, connection: u64, taken_over: bool) {
        if let Some((_, (_, task))) = self.serving.remove_if(id, |_, (c, _)| *c == connection) {
            task.abort();
        }
        if taken_over {
            return;
        }
        let cluster = self.clone();
        let charger = id.clone();
        tokio::spawn(async move {
            // Only our own entry: the charger may already be back on another node.
            let Some(bucket) = cluster.bucket().await else {
                return;
            };
            let k = key(&charger);
            cluster.unwritten.remove(&charger);
            if let Ok(Some(entry)) = bucket.entry(&k).await
                && entry.value.as_ref() == cluster.entry_value().as_bytes()
                && let Err(e) = bucket
                    .delete_expect_revision(&k, Some(entry.revision))
                    .await
            {
                debug!(charger = %charger, error = %e, "cluster: presence not withdrawn");
            }
        });
    }

    async fn serve(self: Arc<Self>, id: ChargeBoxId, connection: u64) {
        let takeover = serde_json::to_vec(&Takeover {
            node: self.node.clone(),
            connection,
            incarnation: self.incarnation.clone(),
        })
        .unwrap_or_default();
        // Serving first, so no command finds nobody once the others hear of the takeover.
        let mut calls = match self.client.subscribe(self.call_subject(&id)).await {
            Ok(s) => s,
            Err(e) => {
                warn!(charger = %id, error = %e, "cluster: cannot serve the charger's calls");
                return;
            }
        };
        let k = key(&id);
        if let Err(e) = self
            .client
            .publish(self.subject(&format!("takeover.{k}")), takeover.into())
            .await
        {
            warn!(charger = %id, error = %e, "cluster: takeover not announced");
        }
        self.put_presence(&id).await;
        while let Some(message) = calls.next().await {
            let Some(reply_to) = message.reply.clone() else {
                continue;
            };
            let cluster = self.clone();
            let charger = id.clone();
            // Each call on its own task: the charger's queue orders them, as for local calls.
            tokio::spawn(async move {
                let reply = cluster.answer(&charger, &message.payload).await;
                let body = serde_json::to_vec(&reply).unwrap_or_default();
                if let Err(e) = cluster.client.publish(reply_to, body.into()).await {
                    debug!(charger = %charger, error = %e, "cluster: reply not sent");
                }
            });
        }
    }

    /// Serves one forwarded call through the local registry only (never forwarded again).
    async fn answer(&self, id: &ChargeBoxId, body: &[u8]) -> CallReply {
        let request = match serde_json::from_slice::<CallRequest>(body) {
            Ok(r) => r,
            Err(e) => return CallReply::from_answer(Err(CallFailure::Encode(e.to_string()))),
        };
        let Some(action) = OCPP16_ACTIONS
            .iter()
            .copied()
            .find(|a| *a == request.action)
        else {
            return CallReply::from_answer(Err(CallFailure::Encode(format!(
                "unknown action {:?}",
                request.action
            ))));
        };
        let Some(central) = self.central() else {
            return CallReply::from_answer(Err(CallFailure::Offline));
        };
        CallReply::from_answer(
            central
                .sessions
                .call_local(id, action, request.payload)
                .await,
        )
    }

    // ---- Presence ---------------------------------------------------------------------------

    async fn bucket(&self) -> Option<kv::Store> {
        if let Some(b) = self.bucket.read().await.as_ref() {
            return Some(b.clone());
        }
        self.open_bucket().await
    }

    /// Opens (creating when missing) the presence bucket.
    async fn open_bucket(&self) -> Option<kv::Store> {
        if !self.connected() {
            return None;
        }
        let js = async_nats::jetstream::new(self.client.clone());
        let opened = match js.get_key_value(self.bucket_name.as_str()).await {
            Ok(b) => Ok(b),
            Err(_) => {
                // The bucket's stream made directly, as `create_key_value` would make it:
                // that call first reads the account's JetStream info, whose answer from
                // servers before 2.10 (Debian's is 2.9) the client cannot parse.
                use async_nats::jetstream::stream;
                let made = js
                    .get_or_create_stream(stream::Config {
                        name: format!("KV_{}", self.bucket_name),
                        description: Some("echarging: which node holds which charger".into()),
                        subjects: vec![format!("$KV.{}.>", self.bucket_name)],
                        max_messages_per_subject: 1,
                        max_age: PRESENCE_KEEP,
                        storage: stream::StorageType::Memory,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        discard: stream::DiscardPolicy::New,
                        num_replicas: 1,
                        ..Default::default()
                    })
                    .await;
                match made {
                    Ok(stream) => {
                        // A bucket made by an earlier version expired entries after the TTL.
                        let mut config = stream.cached_info().config.clone();
                        if config.max_age != PRESENCE_KEEP {
                            config.max_age = PRESENCE_KEEP;
                            if let Err(e) = js.update_stream(config).await {
                                warn!(error = %e, "cluster: presence bucket's max_age not updated");
                            }
                        }
                        js.get_key_value(self.bucket_name.as_str()).await
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster: presence stream not created");
                        js.get_key_value(self.bucket_name.as_str()).await
                    }
                }
            }
        };
        match opened {
            Ok(b) => {
                *self.bucket.write().await = Some(b.clone());
                Some(b)
            }
            Err(e) => {
                // Another node may have created it meanwhile.
                match js.get_key_value(self.bucket_name.as_str()).await {
                    Ok(b) => {
                        *self.bucket.write().await = Some(b.clone());
                        Some(b)
                    }
                    Err(_) => {
                        warn!(error = %e, "cluster: presence bucket unavailable");
                        None
                    }
                }
            }
        }
    }

    /// A charger entry's value: this node and its incarnation.
    fn entry_value(&self) -> String {
        format!("{} {}", self.node, self.incarnation)
    }

    async fn put_presence(&self, id: &ChargeBoxId) -> bool {
        let written = match self.bucket().await {
            Some(bucket) => match bucket.put(key(id), self.entry_value().into()).await {
                Ok(_) => true,
                Err(e) => {
                    debug!(charger = %id, error = %e, "cluster: presence not written");
                    // NATS may have lost the bucket (restarted): open it again next time.
                    *self.bucket.write().await = None;
                    false
                }
            },
            None => false,
        };
        if written {
            self.unwritten.remove(id);
        } else if self.serving.contains_key(id) {
            self.unwritten.insert(id.clone());
        }
        written
    }

    /// Refreshes this node's lease; false when it could not be written.
    async fn put_lease(&self) -> bool {
        let Some(bucket) = self.bucket().await else {
            return false;
        };
        let k = format!("{LEASE_PREFIX}{}", self.node);
        match bucket.put(k, self.incarnation.clone().into()).await {
            Ok(_) => true,
            Err(e) => {
                debug!(error = %e, "cluster: lease not refreshed");
                *self.bucket.write().await = None;
                false
            }
        }
    }

    /// Deletes the entries of chargers whose node's lease is gone (it died without
    /// withdrawing them, or an earlier process of this node did), each only if unchanged since.
    async fn sweep(&self) {
        // Only on a mirror that has caught up with the bucket, and long enough ago that every
        // live node has refreshed its lease since: after a start or an outage, leases arrive
        // after the (older) charger entries, and stale ones are not yet replaced.
        let synced = *self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if synced.is_none_or(|at| at.elapsed() < self.ttl) {
            return;
        }
        let now = OffsetDateTime::now_utc();
        let dead: Vec<(ChargeBoxId, u64)> = self
            .presence
            .iter()
            .filter(|e| !self.alive(e, now) && !self.leased_recently(&e.node, now))
            .map(|e| (e.key().clone(), e.revision))
            .collect();
        if dead.is_empty() {
            return;
        }
        let Some(bucket) = self.bucket().await else {
            return;
        };
        debug!(
            entries = dead.len(),
            "cluster: deleting presence entries of dead nodes"
        );
        futures_util::stream::iter(dead)
            .for_each_concurrent(64, |(id, revision)| {
                let bucket = &bucket;
                async move {
                    let _ = bucket
                        .delete_expect_revision(key(&id), Some(revision))
                        .await;
                }
            })
            .await;
    }

    /// A node whose lease lapsed only just may be late rather than dead: its entries are left
    /// for twice the TTL (they do not count meanwhile), and a node whose lease was never seen
    /// may be starting. A dead node's lease stays in the bucket for its `max_age`, so it is
    /// seen, stale. This node's own earlier incarnations are always dead.
    fn leased_recently(&self, node: &str, now: OffsetDateTime) -> bool {
        node != self.node
            && self
                .leases
                .get(node)
                .is_none_or(|l| now - l.at < self.ttl_as_time * 2)
    }

    /// Refreshes this node's lease every third of the TTL; writes every local charger's entry
    /// again at once after NATS reconnects (the server may be a fresh one) and every
    /// `PRESENCE_REWRITE`; retries entries that could not be written; sweeps dead nodes' entries.
    async fn refresh(self: Arc<Self>, stop: CancellationToken) {
        let mut reconnected = self.reconnected.subscribe();
        let mut last_rewrite = tokio::time::Instant::now();
        let mut rewrite = false;
        let mut lease_lapsed = false;
        loop {
            if !self.put_lease().await {
                lease_lapsed = true;
            } else if lease_lapsed {
                // Others may have swept our entries while the lease could not be refreshed.
                lease_lapsed = false;
                rewrite = true;
            }
            let held: Vec<ChargeBoxId> = if rewrite {
                last_rewrite = tokio::time::Instant::now();
                self.serving.iter().map(|e| e.key().clone()).collect()
            } else {
                self.unwritten.iter().map(|e| e.key().clone()).collect()
            };
            futures_util::stream::iter(held)
                .for_each_concurrent(64, |id| {
                    let cluster = &self;
                    async move {
                        cluster.put_presence(&id).await;
                    }
                })
                .await;
            self.sweep().await;
            rewrite = false;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.ttl / 3) => {}
                _ = reconnected.changed() => {
                    // The server may be a fresh one: the bucket and watch are opened again.
                    *self.bucket.write().await = None;
                    rewrite = true;
                }
            }
            rewrite |= last_rewrite.elapsed() >= PRESENCE_REWRITE;
        }
    }

    /// Mirrors the presence bucket, watching it again whenever the watch ends.
    async fn mirror(self: Arc<Self>, stop: CancellationToken) {
        let mut reconnected = self.reconnected.subscribe();
        loop {
            if stop.is_cancelled() {
                return;
            }
            *self.synced.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let watch = match self.bucket().await {
                Some(b) => b.watch_with_history(">").await.ok(),
                None => None,
            };
            if let Some(mut watch) = watch {
                loop {
                    let next = tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = reconnected.changed() => break,
                        next = watch.next() => next,
                    };
                    let Some(Ok(entry)) = next else { break };
                    if entry.delta == 0 {
                        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
                        synced.get_or_insert_with(tokio::time::Instant::now);
                    }
                    if let Some(node) = entry.key.strip_prefix(LEASE_PREFIX) {
                        match entry.operation {
                            kv::Operation::Put => {
                                let incarnation =
                                    String::from_utf8_lossy(&entry.value).into_owned();
                                self.leases.insert(
                                    node.to_string(),
                                    Lease {
                                        incarnation,
                                        at: entry.created,
                                    },
                                );
                            }
                            kv::Operation::Delete | kv::Operation::Purge => {
                                self.leases.remove(node);
                            }
                        }
                        continue;
                    }
                    let Some(id) = unkey(&entry.key) else {
                        continue;
                    };
                    match entry.operation {
                        kv::Operation::Put => {
                            let value = String::from_utf8_lossy(&entry.value);
                            let (node, incarnation) =
                                value.split_once(' ').unwrap_or((value.as_ref(), ""));
                            self.presence.insert(
                                id,
                                Seen {
                                    node: node.to_string(),
                                    incarnation: incarnation.to_string(),
                                    revision: entry.revision,
                                },
                            );
                        }
                        kv::Operation::Delete | kv::Operation::Purge => {
                            self.presence.remove(&id);
                        }
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    // ---- Takeover, ends, commits, starts ----------------------------------------------------

    /// Tells the other nodes the operator deleted or rejected `id` (see [`Central::end_charger`]).
    pub(crate) fn end_elsewhere(self: &Arc<Self>, id: &ChargeBoxId, reason: super::EndReason) {
        let why = match reason {
            super::EndReason::Deregistered => Ending::Deregistered,
            super::EndReason::Rejected => Ending::Rejected,
            super::EndReason::Replaced => return, // takeovers have their own subject
        };
        let body = serde_json::to_vec(&End {
            node: self.node.clone(),
            why,
        })
        .unwrap_or_default();
        let client = self.client.clone();
        let subject = self.subject(&format!("end.{}", key(id)));
        tokio::spawn(async move {
            if let Err(e) = client.publish(subject, body.into()).await {
                debug!(error = %e, "cluster: charger's end not announced");
            }
        });
    }

    async fn ends(self: Arc<Self>, stop: CancellationToken) {
        let prefix = self.subject("end.");
        let Ok(mut sub) = self.client.subscribe(self.subject("end.*")).await else {
            warn!("cluster: cannot listen for chargers' ends");
            return;
        };
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                m = sub.next() => match m { Some(m) => m, None => return },
            };
            let Ok(end) = serde_json::from_slice::<End>(&message.payload) else {
                continue;
            };
            let Some(id) = message
                .subject
                .as_str()
                .strip_prefix(prefix.as_str())
                .and_then(unkey)
            else {
                continue;
            };
            let Some(central) = self.central() else {
                return;
            };
            if end.node == self.node {
                continue;
            }
            let reason = match end.why {
                Ending::Deregistered => super::EndReason::Deregistered,
                Ending::Rejected => super::EndReason::Rejected,
            };
            if central.end_here(&id, reason) {
                info!(charger = %id, by = %end.node, why = ?end.why, "cluster: charger ended on another node; socket closed");
            }
            if reason == super::EndReason::Deregistered {
                self.presence.remove(&id);
            }
        }
    }

    async fn takeovers(self: Arc<Self>, stop: CancellationToken) {
        let prefix = self.subject("takeover.");
        let Ok(mut sub) = self.client.subscribe(self.subject("takeover.*")).await else {
            warn!("cluster: cannot listen for takeovers");
            return;
        };
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                m = sub.next() => match m { Some(m) => m, None => return },
            };
            let Ok(takeover) = serde_json::from_slice::<Takeover>(&message.payload) else {
                continue;
            };
            if takeover.node == self.node {
                continue;
            }
            let Some(id) = message
                .subject
                .as_str()
                .strip_prefix(prefix.as_str())
                .and_then(unkey)
            else {
                continue;
            };
            self.presence.insert(
                id.clone(),
                Seen {
                    node: takeover.node.clone(),
                    incarnation: takeover.incarnation.clone(),
                    // Not the bucket's: a sweep's delete of it fails, and the entry's own
                    // put arrives through the watch with the real one.
                    revision: 0,
                },
            );
            if let Some(central) = self.central()
                && central.sessions.disconnect(&id, super::EndReason::Replaced)
            {
                info!(charger = %id, to = %takeover.node, "cluster: charger taken over by another node; socket closed");
            }
        }
    }

    /// Publishes local commits' heads; feeds other nodes' heads to the local store.
    async fn commits(self: Arc<Self>, stop: CancellationToken) {
        let Some(central) = self.central() else {
            return;
        };
        let store = central.store.clone();
        drop(central);
        let mut head = store.head();
        let subject = self.subject("commit");
        let Ok(mut sub) = self.client.subscribe(subject.clone()).await else {
            warn!("cluster: cannot listen for commits");
            return;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = head.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let seq = *head.borrow_and_update();
                    if seq <= self.remote_head.load(Ordering::Acquire) {
                        continue; // learned from another node: it published it already
                    }
                    let body = serde_json::to_vec(&Commit { node: self.node.clone(), head: seq })
                        .unwrap_or_default();
                    if let Err(e) = self.client.publish(subject.clone(), body.into()).await {
                        debug!(error = %e, "cluster: commit not announced");
                    }
                }
                m = sub.next() => {
                    let Some(m) = m else { return };
                    let Ok(commit) = serde_json::from_slice::<Commit>(&m.payload) else { continue };
                    if commit.node == self.node {
                        continue;
                    }
                    self.remote_head.fetch_max(commit.head, Ordering::AcqRel);
                    store.observe_head(commit.head);
                }
            }
        }
    }

    /// A StartTransaction this node accepted, for remote starts asked elsewhere.
    pub(crate) fn started(
        self: &Arc<Self>,
        charger: &ChargeBoxId,
        connector: u32,
        id_tag: &str,
        id: i32,
    ) {
        let body = serde_json::to_vec(&Started {
            node: self.node.clone(),
            charger: charger.to_string(),
            connector,
            id_tag: id_tag.to_string(),
            transaction_id: id,
        })
        .unwrap_or_default();
        let client = self.client.clone();
        let subject = self.subject("started");
        tokio::spawn(async move {
            if let Err(e) = client.publish(subject, body.into()).await {
                debug!(error = %e, "cluster: start not announced");
            }
        });
    }

    async fn starts(self: Arc<Self>, stop: CancellationToken) {
        let Ok(mut sub) = self.client.subscribe(self.subject("started")).await else {
            warn!("cluster: cannot listen for starts");
            return;
        };
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                m = sub.next() => match m { Some(m) => m, None => return },
            };
            let Ok(s) = serde_json::from_slice::<Started>(&message.payload) else {
                continue;
            };
            if s.node == self.node {
                continue;
            }
            let (Some(central), Ok(charger)) = (self.central(), ChargeBoxId::parse(&s.charger))
            else {
                continue;
            };
            central
                .starts
                .started_on(&charger, s.connector, &s.id_tag, s.transaction_id);
        }
    }
}

/// Starts the cluster's tasks for `central` (whose sessions already know `cluster`); they end
/// when `stop` fires.
pub fn run(cluster: Arc<Cluster>, central: &Arc<Central>, stop: CancellationToken) {
    let _ = cluster.central.set(Arc::downgrade(central));
    tokio::spawn(cluster.clone().refresh(stop.clone()));
    tokio::spawn(cluster.clone().mirror(stop.clone()));
    tokio::spawn(cluster.clone().takeovers(stop.clone()));
    tokio::spawn(cluster.clone().ends(stop.clone()));
    tokio::spawn(cluster.clone().commits(stop.clone()));
    tokio::spawn(cluster.starts(stop));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_subject_tokens_and_round_trip() {
        // Every byte a charge box id may hold, the subject separator `.` included.
        for raw in ["CP-1", "a.b", "x~y.z", "a..b", "_ok_", "-.-"] {
            let id = ChargeBoxId::parse(raw).unwrap();
            let k = key(&id);
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{k}"
            );
            assert_eq!(unkey(&k).unwrap(), id);
        }
        assert!(unkey("bad=Z").is_none());
        assert!(unkey("trail=").is_none());
    }
}
