//! The REST API under `/api/v1` (api.md): one module per resource, each exposing its routes.
//! Handlers validate into domain types, call the store or the live sessions, and answer JSON in
//! camelCase or problem+json.

pub mod auth;
mod chargers;

use std::sync::Arc;

use axum::Router;

use crate::central::Central;
pub use auth::OperatorToken;

/// What the REST handlers share.
pub struct Api {
    pub central: Arc<Central>,
    pub operator: OperatorToken,
}

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .nest("/api/v1", chargers::routes())
        .with_state(api)
}
