//! Charging over REST: remote start and stop (the charger is asked over OCPP and its answer
//! returned), and the transactions the ledger holds. Who may remote-start what is decided by
//! [`crate::domain::remote_start`]: a customer only on a reservation of theirs whose slot is
//! current. A customer stops only their own transaction; what is not theirs answers 404 like
//! reservations do.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::Api;
use super::ApiError;
use super::auth::{Operator, Principal};
use super::error::FieldErrors;
use crate::domain::ChargeBoxId;
use crate::domain::remote_start::{RemoteStart, RemoteStartAsk, decide_remote_start};
use crate::domain::reservation::{ReservationFilter, ReservationStatus};
use crate::domain::transaction::{Transaction, TransactionFilter, TransactionStatus};
use crate::ocpp::v16::messages::{RemoteStartTransaction, RemoteStopTransaction};
use crate::ocpp::v16::types::{
    ChargingProfile, ChargingProfilePurposeType, CiString, RemoteStartStopStatus,
};
use crate::problem::{ApiJson, Problem};

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/chargers/{id}/remote-start", post(remote_start))
        .route("/chargers/{id}/remote-stop", post(remote_stop))
        .route("/transactions", get(list))
        .route("/transactions/{id}", get(show))
}

/// Start charging from afar; `{}` takes every default. Unknown members are refused (422).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RemoteStartRequest {
    /// Omitted: the connector of the caller's current reservation, else the charger chooses.
    #[serde(default)]
    #[schema(minimum = 1)]
    connector_id: Option<u32>,
    /// Omitted: the idTag of the current reservation on that connector (the operator must give
    /// one when there is none); a customer may only use its own.
    #[serde(default)]
    id_tag: Option<String>,
    /// An OCPP 1.6 ChargingProfile passed to the charger in RemoteStartTransaction, e.g. a
    /// power limit for this charge: it must be a `TxProfile` without `transactionId` (the
    /// transaction does not exist yet, OCPP 1.6 §5.11), validated before anything is sent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    charging_profile: Option<Box<serde_json::value::RawValue>>,
}

/// The charger's answer to RemoteStartTransaction.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct RemoteStartAnswer {
    /// What the charger said.
    #[schema(value_type = String, example = "Accepted")]
    status: &'static str,
    /// The transaction the charger started, when its StartTransaction arrived within the
    /// configured wait (default 10 s); else null.
    transaction_id: Option<i32>,
}

/// Stop a running transaction from afar.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RemoteStopRequest {
    transaction_id: i32,
}

/// The charger's answer to RemoteStopTransaction.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct RemoteStopAnswer {
    #[schema(value_type = String, example = "Accepted")]
    status: &'static str,
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/remote-start",
    tag = "charging",
    operation_id = "remoteStart",
    summary = "Start charging remotely",
    description = "Sends RemoteStartTransaction and returns the charger's answer; when the \
        charger then sends StartTransaction within the configured wait, its `transactionId` too. \
        The operator may start any idTag; a customer only on its reservation whose slot is \
        current (from the early-start grace before it), with its own idTag.",
    params(("id" = String, Path, description = "The charge box id")),
    request_body = RemoteStartRequest,
    responses(
        (status = 200, description = "The charger's answer", body = RemoteStartAnswer),
        (status = 404, description = "No such charger, or (customer) no current reservation of \
            yours on it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The charger is not connected, or is connected but not \
            booted (no BootNotification answered Accepted on this connection: not yet, or it is \
            pending or rejected); answered at once, nothing is sent",
            body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A member is invalid (`field` names it)",
            body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The charger answered with an error",
            body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The charger did not answer in time",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn remote_start(
    who: Principal,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<RemoteStartRequest>,
) -> Result<Json<RemoteStartAnswer>, ApiError> {
    let charger = ChargeBoxId::parse(&raw).map_err(|_| ApiError::NoSuchCharger(raw.clone()))?;
    let record = api
        .store
        .charger(&charger)
        .await?
        .ok_or_else(|| ApiError::NoSuchCharger(raw.clone()))?;
    // The reservations that may hold the current slot (slot started, early grace included).
    let now = OffsetDateTime::now_utc();
    let grace = api.central.early_grace();
    let current = api
        .store
        .reservations(&ReservationFilter {
            charger_id: Some(charger.clone()),
            customer_id: who.customer_id(),
            status: Some(ReservationStatus::Booked),
            from: Some(now),
            to: Some(now + grace),
            limit: 100,
        })
        .await?;
    let caller = match &who {
        Principal::Customer(c) => Some(c),
        Principal::Operator => None,
    };
    let ask = RemoteStartAsk {
        connector_id: body.connector_id,
        id_tag: body.id_tag.as_deref(),
    };
    let RemoteStart {
        connector_id: connector,
        id_tag,
    } = decide_remote_start(caller, ask, record.connectors, &current, now, grace)?;
    let token = CiString::new(id_tag.as_str()).map_err(|e| ApiError::invalid("idTag", e))?;
    let charging_profile = body
        .charging_profile
        .as_deref()
        .map(|raw| tx_profile(raw.get()))
        .transpose()?;
    api.refuse_unusable_tag(&id_tag).await?;
    // Registered before the call: chargers often send StartTransaction before their answer.
    let mut wait = api.central.starts.wait(&charger, connector, &id_tag);
    let answer = api
        .central
        .sessions
        .call(
            &charger,
            &RemoteStartTransaction {
                connector_id: connector.map(|c| c as i32),
                id_tag: token,
                charging_profile,
            },
        )
        .await?;
    let transaction_id = match answer.status {
        RemoteStartStopStatus::Accepted => {
            tokio::time::timeout(api.central.settings.remote_start_wait, &mut wait.found)
                .await
                .ok()
                .and_then(Result::ok)
        }
        RemoteStartStopStatus::Rejected => None,
    };
    Ok(Json(RemoteStartAnswer {
        status: answer.status.as_str(),
        transaction_id,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/remote-stop",
    tag = "charging",
    operation_id = "remoteStop",
    summary = "Stop charging remotely",
    description = "Sends RemoteStopTransaction for a running transaction on this charger and \
        returns the charger's answer; the charger then sends StopTransaction, which ends it. The \
        operator may stop any transaction, a customer only its own.",
    params(("id" = String, Path, description = "The charge box id")),
    request_body = RemoteStopRequest,
    responses(
        (status = 200, description = "The charger's answer", body = RemoteStopAnswer),
        (status = 404, description = "No such charger or transaction on it, or not yours",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The transaction is not running, or the charger is not \
            connected or not booted (answered at once, nothing is sent)",
            body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A member is missing or invalid (`field` names it)",
            body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The charger answered with an error",
            body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The charger did not answer in time",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn remote_stop(
    who: Principal,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<RemoteStopRequest>,
) -> Result<Json<RemoteStopAnswer>, ApiError> {
    let charger = ChargeBoxId::parse(&raw).map_err(|_| ApiError::NoSuchCharger(raw.clone()))?;
    let transaction = api
        .store
        .transaction(body.transaction_id)
        .await?
        .filter(|t| t.charger_id == charger)
        .filter(|t| {
            who.customer_id()
                .is_none_or(|own| t.customer_id == Some(own))
        })
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no transaction {} on charger {raw:?}",
                body.transaction_id
            ))
        })?;
    if transaction.status != TransactionStatus::Active {
        return Err(ApiError::Conflict {
            title: "Transaction not running",
            detail: format!("transaction {} is {}", transaction.id, transaction.status),
            field: Some("transactionId"),
        });
    }
    let answer = api
        .central
        .sessions
        .call(
            &charger,
            &RemoteStopTransaction {
                transaction_id: transaction.id,
            },
        )
        .await?;
    Ok(Json(RemoteStopAnswer {
        status: answer.status.as_str(),
    }))
}

/// A remote start's charging profile, read with the OCPP type's own rules, and then the rules
/// RemoteStartTransaction adds (OCPP 1.6 §5.11).
fn tx_profile(raw: &str) -> Result<ChargingProfile, ApiError> {
    let profile: ChargingProfile = super::commands::decode_member(raw, "chargingProfile")?;
    if profile.charging_profile_purpose != ChargingProfilePurposeType::TxProfile {
        return Err(ApiError::invalid(
            "chargingProfile.chargingProfilePurpose",
            "must be TxProfile in a remote start",
        ));
    }
    if profile.transaction_id.is_some() {
        return Err(ApiError::invalid(
            "chargingProfile.transactionId",
            "must be left out: the transaction does not exist yet",
        ));
    }
    Ok(profile)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this charger's transactions.
    charger_id: Option<String>,
    /// Only this customer's.
    customer_id: Option<i64>,
    /// Only transactions in this status.
    #[param(value_type = Option<TransactionStatus>)]
    status: Option<String>,
    /// Paging: only transactions older than this transactionId, i.e. the page after the one
    /// whose last (oldest) entry it is. The `Link` header of a full page names the next one.
    after: Option<i32>,
    /// At most this many (default 100), newest first.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/transactions",
    tag = "charging",
    operation_id = "listTransactions",
    summary = "List transactions",
    description = "Operator only. Newest first (transactionId descending); page with `after` \
        (the last transactionId seen) and `limit`. A full page carries a `Link` header with \
        `rel=\"next\"` naming the next page with the same filters; the last page has none. \
        Transactions started while paging sort before the first page and do not shift later \
        pages.",
    params(ListQuery),
    responses(
        (status = 200, description = "Transactions", body = [Transaction],
            headers(("Link" = String, description = "`<URL>; rel=\"next\"`: the next page, \
                present when this page is full"))),
        (status = 422, description = "A query parameter is unknown, of the wrong type, or out \
            of range", body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn list(
    _: Operator,
    State(api): State<Arc<Api>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(HeaderMap, Json<Vec<Transaction>>), ApiError> {
    let Query(q) = query.map_err(|e| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid query").detail(e.body_text())
    })?;
    let mut bad = FieldErrors::default();
    let status = q.status.as_deref().and_then(|s| {
        bad.check(
            "status",
            TransactionStatus::parse(s).ok_or("expected ACTIVE, ENDED or REFUSED"),
        )
    });
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    bad.check(
        "limit",
        (1..=MAX_PAGE)
            .contains(&limit)
            .then_some(())
            .ok_or(format!("expected 1 to {MAX_PAGE}")),
    );
    bad.finish()?;
    let charger_id = match &q.charger_id {
        None => None,
        // An id that cannot exist matches nothing.
        Some(raw) => match ChargeBoxId::parse(raw) {
            Ok(id) => Some(id),
            Err(_) => return Ok((HeaderMap::new(), Json(Vec::new()))),
        },
    };
    let found = api
        .store
        .transactions(&TransactionFilter {
            charger_id: charger_id.clone(),
            customer_id: q.customer_id,
            status,
            after: q.after,
            limit,
        })
        .await?;
    let mut headers = HeaderMap::new();
    // A full page may have more behind it; a short one is the last. (A full last page costs the
    // client one more request that answers an empty list.)
    if let Some(last) = found.last().filter(|_| found.len() == limit as usize) {
        let next = next_page(charger_id.as_ref(), q.customer_id, status, last.id, limit);
        if let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
            headers.insert(header::LINK, v);
        }
    }
    Ok((headers, Json(found)))
}

/// The relative URL of the page after `last`, with the same filters. Every part is URL-safe as
/// it stands: a ChargeBoxId holds unreserved characters only, the rest are numbers and enum
/// names.
fn next_page(
    charger_id: Option<&ChargeBoxId>,
    customer_id: Option<i64>,
    status: Option<TransactionStatus>,
    last: i32,
    limit: u32,
) -> String {
    let mut url = String::from("/api/v1/transactions?");
    if let Some(c) = charger_id {
        url.push_str(&format!("chargerId={c}&"));
    }
    if let Some(c) = customer_id {
        url.push_str(&format!("customerId={c}&"));
    }
    if let Some(s) = status {
        url.push_str(&format!("status={}&", s.as_str()));
    }
    url.push_str(&format!("after={last}&limit={limit}"));
    url
}

#[utoipa::path(
    get,
    path = "/api/v1/transactions/{id}",
    tag = "charging",
    operation_id = "getTransaction",
    summary = "Read a transaction",
    description = "The operator reads any transaction, a customer only its own; another's \
        answers 404.",
    params(("id" = i32, Path, description = "The OCPP transactionId")),
    responses(
        (status = 200, description = "The transaction", body = Transaction),
        (status = 404, description = "No such transaction, or not the caller's",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn show(
    who: Principal,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<Json<Transaction>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no transaction {raw:?}"));
    let id: i32 = raw.parse().map_err(|_| not_found())?;
    let found = api
        .store
        .transaction(id)
        .await?
        .filter(|t| {
            who.customer_id()
                .is_none_or(|own| t.customer_id == Some(own))
        })
        .ok_or_else(not_found)?;
    Ok(Json(found))
}
