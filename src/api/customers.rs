//! `/api/v1/customers`: the operator creates drivers with their idTags; the answer carries the
//! customer's bearer token, shown this once and stored only as a digest.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::Api;
use super::ApiError;
use super::auth::{Operator, Principal};
use crate::domain::customer::{Customer, IdTag, NewCustomer, new_token, token_digest};
use crate::problem::{ApiJson, Problem};

const MAX_NAME_LEN: usize = 100;
const MAX_ID_TAGS: usize = 20;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/customers", post(create))
        .route("/customers/{id}", get(show))
}

/// A customer (driver) to create. Unknown members are refused (422).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreateCustomer {
    /// 1 to 100 characters (trimmed).
    #[schema(min_length = 1, max_length = 100, example = "Ada Lovelace")]
    name: String,
    /// 1 to 20 RFID/app idTags, each 1 to 20 printable ASCII characters, unique across all
    /// customers (compared case-insensitively, as OCPP does).
    #[schema(min_items = 1, max_items = 20, example = json!(["04A2B3C4D5"]))]
    id_tags: Vec<String>,
}

/// A customer. `token` appears only in the answer to its creation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    id: i64,
    name: String,
    /// The customer's idTags, in the order given.
    id_tags: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// Only in the answer to POST: the customer's bearer token, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl CustomerView {
    fn new(c: Customer, token: Option<String>) -> Self {
        CustomerView {
            id: c.id,
            name: c.name,
            id_tags: c.id_tags,
            created_at: c.created_at,
            token,
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/customers",
    tag = "customers",
    operation_id = "createCustomer",
    summary = "Create a customer",
    description = "Operator only. The answer holds the customer's bearer token: it is shown this \
        once (only its digest is stored). Carries a Location header.",
    request_body = CreateCustomer,
    responses(
        (status = 201, description = "Created; `token` is the customer's bearer token",
            body = CustomerView,
            headers(("Location" = String, description = "URL of the new customer"))),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An idTag already belongs to a customer",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (
            status = 422,
            description = "A member is missing, unknown or invalid (`field` names it, e.g. \
                `idTags[1]`)",
            body = Problem, content_type = "application/problem+json"
        )
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn create(
    _: Operator,
    State(api): State<Arc<Api>>,
    ApiJson(body): ApiJson<CreateCustomer>,
) -> Result<Response, ApiError> {
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    if body.id_tags.is_empty() || body.id_tags.len() > MAX_ID_TAGS {
        return Err(ApiError::invalid(
            "idTags",
            format!("give 1 to {MAX_ID_TAGS} idTags"),
        ));
    }
    let mut id_tags: Vec<IdTag> = Vec::with_capacity(body.id_tags.len());
    for (i, raw) in body.id_tags.iter().enumerate() {
        let field = format!("idTags[{i}]");
        let tag = IdTag::parse(raw).map_err(|e| ApiError::invalid(&field, e))?;
        if id_tags.iter().any(|t| t.key() == tag.key()) {
            return Err(ApiError::invalid(&field, "is listed twice"));
        }
        id_tags.push(tag);
    }
    let token = new_token();
    let customer = api
        .store
        .insert_customer(&NewCustomer {
            name,
            id_tags,
            token_digest: token_digest(&token),
        })
        .await?;
    let location = format!("/api/v1/customers/{}", customer.id);
    let mut response = (
        StatusCode::CREATED,
        Json(CustomerView::new(customer, Some(token))),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// The operator may read any customer, a customer only itself (others are 404: existence is not
/// revealed).
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    operation_id = "getCustomer",
    summary = "Read a customer",
    description = "The operator reads any customer, a customer token only its own; another \
        customer answers 404 (existence is not revealed). The token is never shown here.",
    params(("id" = i64, Path, description = "The customer id")),
    responses(
        (status = 200, description = "The customer, without token", body = CustomerView),
        (status = 404, description = "No such customer, or not the caller's",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn show(
    who: Principal,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<Json<CustomerView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no customer {raw:?}"));
    let id: i64 = raw.parse().map_err(|_| not_found())?;
    if who.customer_id().is_some_and(|own| own != id) {
        return Err(not_found());
    }
    let customer = api.store.customer(id).await?.ok_or_else(not_found)?;
    Ok(Json(CustomerView::new(customer, None)))
}
