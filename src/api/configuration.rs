//! `/api/v1/chargers/{id}/configuration`: the charger's configuration as last read
//! (GetConfiguration after its first Boot in this process, or on demand with `…/refresh`), from
//! the ledger's snapshot. Changing a key goes through `POST /chargers/{id}/ocpp/ChangeConfiguration`
//! (see `commands`), which keeps the snapshot in step. Operator only.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::Api;
use super::ApiError;
use super::auth::Operator;
use crate::central::configuration::{RefreshError, refresh as read_now};
use crate::domain::ChargeBoxId;
use crate::domain::configuration::ConfigurationSnapshot;
use crate::problem::Problem;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/chargers/{id}/configuration", get(show))
        .route("/chargers/{id}/configuration/refresh", post(refresh))
}

/// A charger's configuration as the server last read it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConfigurationView {
    /// When it was read; null (and no keys) when it never was.
    #[serde(with = "time::serde::rfc3339::option")]
    fetched_at: Option<OffsetDateTime>,
    /// Every key the charger reported, with the changes made through this server since.
    keys: Vec<ConfigurationKeyView>,
    /// Keys asked for that the charger does not know.
    unknown_keys: Vec<String>,
}

/// One configuration key.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConfigurationKeyView {
    #[schema(example = "HeartbeatInterval")]
    key: String,
    /// Null when the charger reports no value.
    #[schema(example = "300")]
    value: Option<String>,
    /// Whether the charger refuses to change it.
    readonly: bool,
}

impl From<Option<ConfigurationSnapshot>> for ConfigurationView {
    fn from(snapshot: Option<ConfigurationSnapshot>) -> Self {
        let Some(s) = snapshot else {
            return ConfigurationView {
                fetched_at: None,
                keys: Vec::new(),
                unknown_keys: Vec::new(),
            };
        };
        ConfigurationView {
            fetched_at: Some(s.fetched_at),
            keys: s
                .keys
                .into_iter()
                .map(|k| ConfigurationKeyView {
                    key: k.key,
                    value: k.value,
                    readonly: k.readonly,
                })
                .collect(),
            unknown_keys: s.unknown_keys,
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/chargers/{id}/configuration",
    tag = "toolbox",
    operation_id = "getChargerConfiguration",
    summary = "Read a charger's configuration snapshot",
    description = "The configuration the server last read from the charger (GetConfiguration \
        after the first Boot this process accepted, or `…/configuration/refresh`), with the \
        ChangeConfiguration changes the charger accepted since. `fetchedAt` is null when it was \
        never read. Answered from the ledger: the charger need not be online. Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    responses(
        (status = 200, description = "The snapshot", body = ConfigurationView),
        (status = 404, description = "No such charger",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn show(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<Json<ConfigurationView>, ApiError> {
    let id = registered(&api, &raw).await?;
    Ok(Json(api.store.configuration(&id).await?.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/configuration/refresh",
    tag = "toolbox",
    operation_id = "refreshChargerConfiguration",
    summary = "Read a charger's configuration now",
    description = "Sends GetConfiguration (all keys), stores the answer as the charger's \
        snapshot and returns it. Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    responses(
        (status = 200, description = "The new snapshot", body = ConfigurationView),
        (status = 404, description = "No such charger",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The charger is not connected",
            body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The charger answered with an error",
            body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The charger did not answer in time",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn refresh(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<Json<ConfigurationView>, ApiError> {
    let id = registered(&api, &raw).await?;
    match read_now(&api.central, &id).await {
        Ok(snapshot) => Ok(Json(Some(snapshot).into())),
        Err(RefreshError::Call(failure)) => Err(failure.into()),
        Err(RefreshError::Store(e)) => Err(e.into()),
    }
}

async fn registered(api: &Api, raw: &str) -> Result<ChargeBoxId, ApiError> {
    let id = ChargeBoxId::parse(raw).map_err(|_| ApiError::NoSuchCharger(raw.to_string()))?;
    match api.store.charger(&id).await? {
        Some(_) => Ok(id),
        None => Err(ApiError::NoSuchCharger(raw.to_string())),
    }
}
