//! Charger connections: the WebSocket upgrade with subprotocol and auth checks ([`upgrade`]),
//! one task per session ([`session`]), the registry of live sessions with typed outbound CALLs
//! ([`registry`]), and the state chargers report ([`live`]). It speaks OCPP through the pure
//! `crate::ocpp` layer and never blocks a session on the database.

pub mod breaker;
pub mod calls;
mod charge_box_id;
mod inbound;
pub mod live;
pub mod machine_key;
pub mod registry;
mod session;
pub mod upgrade;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use calls::CallFailure;
pub use charge_box_id::{ChargeBoxId, InvalidChargeBoxId};
pub use live::LiveState;
pub use registry::{EndReason, Sessions};
pub use session::close_code;

use crate::booking::store::Store;
use crate::settings::Settings;

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
}

/// `GET /ocpp/{chargeBoxId}`.
pub fn router(central: Arc<Central>) -> Router {
    Router::new()
        .route("/ocpp/{charge_box_id}", get(upgrade::upgrade))
        .with_state(central)
}
