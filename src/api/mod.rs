//! The REST API under `/api/v1` (api.md): one module per resource, each exposing its routes.
//! Handlers validate into domain types, call the store or the live sessions, and answer JSON in
//! camelCase or problem+json. [`openapi`] documents it all and serves `/openapi.json` and
//! `/docs`. [`files`] also serves chargers their firmware downloads and diagnostics uploads
//! under `/files/`, outside `/api/v1`.

pub mod auth;
mod chargers;
mod commands;
mod configuration;
pub mod console;
mod customers;
pub mod error;
pub mod files;
mod fleet;
pub mod load_shed;
mod local_list;
mod mypage;
pub mod openapi;
pub mod ops;
mod reservations;
mod security_events;
mod transactions;
mod upload;

use std::sync::Arc;

use axum::Router;

use crate::booking::store::Store;
use crate::central::Central;
pub use auth::OperatorToken;
pub use error::ApiError;

/// What the REST handlers share.
pub struct Api {
    /// The ledger (the same one the charger layer writes to).
    pub store: Arc<dyn Store>,
    pub central: Arc<Central>,
    pub operator: OperatorToken,
    /// The my-page read model, and where its changes are announced.
    pub pages: Arc<dyn crate::booking::mypage::pages::PageStore>,
    pub hub: Arc<crate::booking::mypage::projector::PageHub>,
    /// Fleet commands this process runs or ran.
    pub fleet: fleet::FleetJobs,
    /// What the firmware and diagnostics file routes share.
    pub files: files::FileKeys,
    /// Failed bearer tokens, per source address (see `auth`).
    pub tokens: Arc<crate::transport::throttle::Throttle>,
}

impl Api {
    /// 409 naming `idTag` when the tag is known but may not charge now (Blocked, Expired): it
    /// can neither book nor be started remotely. Checked before the write, from the tag cache
    /// every CustomerUpdated event refreshes; the charger's own StartTransaction is judged
    /// again in the ledger's write transaction.
    pub(crate) async fn refuse_unusable_tag(&self, id_tag: &str) -> Result<(), ApiError> {
        use crate::domain::transaction::Authorization;
        let Some(auth) = self.central.id_tag_auth(id_tag).await? else {
            return Ok(());
        };
        match auth.verdict(time::OffsetDateTime::now_utc()) {
            Authorization::Accepted => Ok(()),
            other => Err(ApiError::Conflict {
                title: "idTag not accepted",
                detail: format!("idTag {id_tag} is {}", other.as_str().to_ascii_lowercase()),
                field: Some("idTag"),
            }),
        }
    }
}

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .nest(
            "/api/v1",
            chargers::routes()
                .merge(customers::routes())
                .merge(reservations::routes())
                .merge(transactions::routes())
                .merge(commands::routes())
                .merge(configuration::routes())
                .merge(local_list::routes())
                .merge(security_events::routes())
                .merge(files::routes())
                .merge(fleet::routes())
                .merge(mypage::routes())
                .layer(axum::middleware::from_fn(refuse_nul_in_query)),
        )
        .merge(files::charger_routes())
        .with_state(api)
        .merge(openapi::router())
}

/// No database text column takes NUL (PostgreSQL refuses it): a query parameter holding one is
/// refused here, at the edge, as 422 naming it. (Bodies are checked by [`crate::problem::ApiJson`].)
async fn refuse_nul_in_query(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match crate::problem::reject_nul_in_query(request.uri().query()) {
        Ok(()) => next.run(request).await,
        Err(problem) => problem.into_response(),
    }
}
