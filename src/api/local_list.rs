//! `POST /api/v1/chargers/{id}/local-list/sync`: the operator forces the whole local
//! authorization list to be sent to a charger again (see `central::local_list`, which owns the
//! sync). Operator only; the outcome shows as `localList` in `GET /chargers/{id}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};

use super::auth::Operator;
use super::chargers::LocalListView;
use super::{Api, ApiError};
use crate::central::local_list::force_full;
use crate::domain::ChargeBoxId;
use crate::problem::Problem;

pub fn routes() -> Router<Arc<Api>> {
    Router::new().route("/chargers/{id}/local-list/sync", post(sync))
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/local-list/sync",
    tag = "toolbox",
    operation_id = "syncChargerLocalList",
    summary = "Send a charger its whole local authorization list again",
    description = "Queues SendLocalList Full (then Differential chunks within the charger's \
        `SendLocalListMaxLength`) with every customer's idTags and their idTagInfo, whatever \
        the charger's configuration says; answers at once with the list as last synced. The \
        charger's answer then shows as `localList` in `GET /chargers/{id}`. A charger that is \
        offline gets it after its next Boot if it keeps a list. Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    responses(
        (status = 202, description = "Queued; the list as last synced", body = LocalListView),
        (status = 404, description = "No such charger",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
pub(super) async fn sync(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<LocalListView>), ApiError> {
    let id = ChargeBoxId::parse(&raw).map_err(|_| ApiError::NoSuchCharger(raw.clone()))?;
    if api.store.charger(&id).await?.is_none() {
        return Err(ApiError::NoSuchCharger(raw));
    }
    let state = api.store.local_list_state(&id).await?;
    force_full(&api.central, &id);
    Ok((StatusCode::ACCEPTED, Json(state.into())))
}
