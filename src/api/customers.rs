//! `/api/v1/customers`: the operator creates drivers with their idTags (the answer carries the
//! customer's bearer token, shown this once and stored only as a digest), renames them, adds,
//! blocks, expires and removes their tags, rotates their token, and deletes them. Each change is
//! one ledger write with a CustomerUpdated (or CustomerDeleted) event, which is what drops the
//! tag and token from every node's cache.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::Api;
use super::ApiError;
use super::auth::{Operator, Principal};
use super::chargers::present;
use crate::booking::store::CustomerDeletion;
use crate::domain::customer::{
    Customer, CustomerChange, IdTag, NewCustomer, TagRecord, TagStatus, new_token, tag_verdict,
    token_digest,
};
use crate::problem::{ApiJson, Problem};

const MAX_NAME_LEN: usize = 100;
const MAX_ID_TAGS: usize = 20;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/customers", post(create))
        .route(
            "/customers/{id}",
            get(show).patch(rename).delete(delete_customer),
        )
        .route("/customers/{id}/id-tags", post(add_tag))
        .route(
            "/customers/{id}/id-tags/{id_tag}",
            axum::routing::patch(update_tag).delete(remove_tag),
        )
        .route("/customers/{id}/token", post(rotate_token))
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

/// A customer. `token` appears only in the answer to its creation and to a token rotation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    id: i64,
    name: String,
    /// The customer's idTags, in the order given.
    id_tags: Vec<String>,
    /// The same idTags with their standing, as chargers are told in idTagInfo.
    tags: Vec<TagView>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// Only in the answer to POST: the customer's bearer token, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// One idTag and its standing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TagView {
    #[schema(example = "04A2B3C4D5")]
    id_tag: String,
    /// `ACCEPTED` or `BLOCKED` (a blocked tag is answered Blocked and cannot book, start or be
    /// started remotely).
    #[schema(value_type = TagStatus)]
    status: &'static str,
    /// After this instant the tag is answered Expired; `null`: never.
    #[serde(with = "time::serde::rfc3339::option")]
    expiry_date: Option<OffsetDateTime>,
    /// A fleet or group card's parent idTag, reported in idTagInfo.
    parent_id_tag: Option<String>,
    /// What Authorize answers for it now: `Accepted`, `Blocked` or `Expired`.
    #[schema(example = "Accepted")]
    authorization: &'static str,
}

impl TagView {
    fn new(t: TagRecord, now: OffsetDateTime) -> Self {
        let verdict = tag_verdict(t.status, t.expires_at, now);
        TagView {
            id_tag: t.id_tag,
            status: t.status.as_str(),
            expiry_date: t.expires_at,
            parent_id_tag: t.parent_id_tag,
            authorization: verdict.as_str(),
        }
    }
}

impl CustomerView {
    fn new(c: Customer, token: Option<String>) -> Self {
        let now = OffsetDateTime::now_utc();
        CustomerView {
            id: c.id,
            name: c.name,
            id_tags: c.id_tags,
            tags: c.tags.into_iter().map(|t| TagView::new(t, now)).collect(),
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

/// A new name. Unknown members are refused (422).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RenameCustomer {
    /// 1 to 100 characters (trimmed).
    #[schema(min_length = 1, max_length = 100, example = "Ada King")]
    name: String,
}

/// A tag to add to a customer. Unknown members are refused (422).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewTag {
    /// 1 to 20 printable ASCII characters, unique across all customers (case-insensitively).
    #[schema(example = "04A2B3C4D6")]
    id_tag: String,
    /// `ACCEPTED` (default) or `BLOCKED`.
    #[serde(default)]
    #[schema(value_type = Option<TagStatus>)]
    status: Option<String>,
    /// RFC 3339; after it the tag is answered Expired.
    #[serde(default)]
    expiry_date: Option<String>,
    /// A fleet or group card's parent idTag (1 to 20 printable ASCII characters).
    #[serde(default)]
    parent_id_tag: Option<String>,
}

/// Changes to one tag: members left out stay as they are, `null` clears. Unknown members are
/// refused (422).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UpdateTag {
    /// `ACCEPTED` or `BLOCKED`.
    #[serde(default)]
    #[schema(value_type = Option<TagStatus>)]
    status: Option<String>,
    /// RFC 3339; `null` removes the expiry.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    expiry_date: Option<Option<String>>,
    /// `null` removes the parent.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    parent_id_tag: Option<Option<String>>,
}

fn customer_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no customer {raw:?}")))
}

fn parse_status(raw: &str) -> Result<TagStatus, ApiError> {
    TagStatus::parse(raw).ok_or_else(|| ApiError::invalid("status", "expected ACCEPTED or BLOCKED"))
}

fn parse_expiry(raw: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .ok()
        .filter(|t| crate::ocpp::v16::REPORTABLE.contains(t))
        .ok_or_else(|| {
            ApiError::invalid(
                "expiryDate",
                "expected an RFC 3339 date-time between 2000 and 2100",
            )
        })
}

fn parse_parent(raw: &str) -> Result<String, ApiError> {
    IdTag::parse(raw)
        .map(|t| t.as_str().to_owned())
        .map_err(|e| ApiError::invalid("parentIdTag", e))
}

/// The tag in the path as the ledger keys it.
fn tag_key(raw: &str) -> Result<String, ApiError> {
    IdTag::parse(raw)
        .map(|t| t.key())
        .map_err(|_| ApiError::NotFound(format!("no idTag {raw:?}")))
}

/// Applies `change`; `None` from the store is "no such customer" or "no such tag of it".
async fn apply(
    api: &Api,
    id: i64,
    change: CustomerChange,
    token: Option<String>,
) -> Result<Json<CustomerView>, ApiError> {
    let tag_change = matches!(
        change,
        CustomerChange::UpdateTag { .. } | CustomerChange::RemoveTag { .. }
    );
    let changed = api.store.change_customer(id, &change).await?;
    // At once on this node; the dispatcher does it again (and on every node) from the event.
    api.central.forget_customer(id);
    match changed {
        Some(customer) => Ok(Json(CustomerView::new(customer, token))),
        None if tag_change && api.store.customer(id).await?.is_some() => Err(ApiError::NotFound(
            format!("customer {id} has no such idTag"),
        )),
        None => Err(ApiError::NotFound(format!("no customer {id}"))),
    }
}

#[utoipa::path(
    patch,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    operation_id = "renameCustomer",
    summary = "Rename a customer",
    description = "Operator only.",
    params(("id" = i64, Path, description = "The customer id")),
    request_body = RenameCustomer,
    responses(
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 200, description = "The customer as it now stands", body = CustomerView),
        (status = 404, description = "No such customer",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`name` is missing or invalid",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn rename(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<RenameCustomer>,
) -> Result<Json<CustomerView>, ApiError> {
    let id = customer_id(&raw)?;
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    apply(&api, id, CustomerChange::Rename(name), None).await
}

#[utoipa::path(
    delete,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    operation_id = "deleteCustomer",
    summary = "Delete a customer",
    description = "Operator only. In one ledger write: the customer's BOOKED reservations whose \
        slot has not ended are CANCELLED (a charger that may hold one is sent \
        CancelReservation); its past transactions are kept but anonymised (`customerId` null; \
        they keep their idTag, which a charger's repeated messages are matched on); its other \
        reservations are kept as they are (their `customerId` names no one any more: ids are \
        never reused); its idTags, token and my page are gone at once (the tags answer Invalid, \
        the token 401). Refused with 409 while the customer is charging: stop first.",
    params(("id" = i64, Path, description = "The customer id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such customer",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The customer is charging (a transaction is active or a \
            reservation is CHARGING_STARTED); nothing was changed",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn delete_customer(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = customer_id(&raw)?;
    let deleted = api.store.delete_customer(id).await?;
    match deleted {
        CustomerDeletion::Deleted { cancelled } => {
            // At once on this node; the dispatcher does it again (and on every node) from the
            // event, and sends the CancelReservations owed.
            api.central.forget_customer(id);
            tracing::info!(
                customer = id,
                cancelled = cancelled.len(),
                "customer deleted"
            );
            Ok(StatusCode::NO_CONTENT)
        }
        CustomerDeletion::NotFound => Err(ApiError::NotFound(format!("no customer {id}"))),
        CustomerDeletion::Charging => Err(ApiError::Conflict {
            title: "Customer is charging",
            detail: "customer is charging; stop first".into(),
            field: None,
        }),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/customers/{id}/id-tags",
    tag = "customers",
    operation_id = "addIdTag",
    summary = "Give a customer another idTag",
    description = "Operator only. The tag is usable at once.",
    params(("id" = i64, Path, description = "The customer id")),
    request_body = NewTag,
    responses(
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 201, description = "The customer with the new tag", body = CustomerView),
        (status = 404, description = "No such customer",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The idTag belongs to a customer already",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A member is invalid (`field` names it)",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn add_tag(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<NewTag>,
) -> Result<Response, ApiError> {
    let id = customer_id(&raw)?;
    let tag = IdTag::parse(&body.id_tag).map_err(|e| ApiError::invalid("idTag", e))?;
    let record = TagRecord {
        id_tag: tag.as_str().to_owned(),
        status: body
            .status
            .as_deref()
            .map(parse_status)
            .transpose()?
            .unwrap_or(TagStatus::Accepted),
        expires_at: body.expiry_date.as_deref().map(parse_expiry).transpose()?,
        parent_id_tag: body
            .parent_id_tag
            .as_deref()
            .map(parse_parent)
            .transpose()?,
    };
    if let Some(customer) = api.store.customer(id).await?
        && customer.id_tags.len() >= MAX_ID_TAGS
    {
        return Err(ApiError::invalid(
            "idTag",
            format!("a customer has at most {MAX_ID_TAGS} idTags"),
        ));
    }
    let Json(view) = apply(&api, id, CustomerChange::AddTag(record), None).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(
    patch,
    path = "/api/v1/customers/{id}/id-tags/{idTag}",
    tag = "customers",
    operation_id = "updateIdTag",
    summary = "Block, unblock, expire or re-parent an idTag",
    description = "Operator only. Takes effect at once on every charger that asks: the next \
        Authorize, StartTransaction or StopTransaction with the tag is answered with its new \
        standing, and a blocked tag cannot book or be started remotely.",
    params(
        ("id" = i64, Path, description = "The customer id"),
        ("idTag" = String, Path, description = "One of the customer's idTags (any letter case)")
    ),
    request_body = UpdateTag,
    responses(
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 200, description = "The customer as it now stands", body = CustomerView),
        (status = 404, description = "No such customer, or no such idTag of it",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A member is invalid (`field` names it)",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn update_tag(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path((raw, raw_tag)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateTag>,
) -> Result<Json<CustomerView>, ApiError> {
    let id = customer_id(&raw)?;
    let key = tag_key(&raw_tag)?;
    let change = CustomerChange::UpdateTag {
        key,
        status: body.status.as_deref().map(parse_status).transpose()?,
        expires_at: body
            .expiry_date
            .map(|e| e.as_deref().map(parse_expiry).transpose())
            .transpose()?,
        parent_id_tag: body
            .parent_id_tag
            .map(|p| p.as_deref().map(parse_parent).transpose())
            .transpose()?,
    };
    apply(&api, id, change, None).await
}

#[utoipa::path(
    delete,
    path = "/api/v1/customers/{id}/id-tags/{idTag}",
    tag = "customers",
    operation_id = "removeIdTag",
    summary = "Remove an idTag from a customer",
    description = "Operator only. The tag is unknown from then on (Authorize answers Invalid); \
        its past transactions keep it.",
    params(
        ("id" = i64, Path, description = "The customer id"),
        ("idTag" = String, Path, description = "One of the customer's idTags (any letter case)")
    ),
    responses(
        (status = 200, description = "The customer as it now stands", body = CustomerView),
        (status = 404, description = "No such customer, or no such idTag of it",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn remove_tag(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path((raw, raw_tag)): Path<(String, String)>,
) -> Result<Json<CustomerView>, ApiError> {
    let id = customer_id(&raw)?;
    let key = tag_key(&raw_tag)?;
    apply(&api, id, CustomerChange::RemoveTag { key }, None).await
}

#[utoipa::path(
    post,
    path = "/api/v1/customers/{id}/token",
    tag = "customers",
    operation_id = "rotateCustomerToken",
    summary = "Issue a customer a new bearer token",
    description = "Operator only. The old token stops working at once; the new one is in this \
        answer only.",
    params(("id" = i64, Path, description = "The customer id")),
    responses(
        (status = 200, description = "The customer with its new `token`", body = CustomerView),
        (status = 404, description = "No such customer",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn rotate_token(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<Json<CustomerView>, ApiError> {
    let id = customer_id(&raw)?;
    let token = new_token();
    let change = CustomerChange::RotateToken(token_digest(&token));
    apply(&api, id, change, Some(token)).await
}
