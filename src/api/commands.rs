//! The operator's toolbox: `POST /chargers/{id}/ocpp/{Action}` sends any OCPP 1.6 action the
//! central system may initiate (security extension included) and answers the charger's payload;
//! `/reset`, `/unlock`, `/availability` and `/trigger` are typed conveniences beside it, and
//! `/security-profile` runs the security whitepaper's profile upgrade.
//!
//! A body is decoded, as sent, with the action's typed message (`crate::ocpp::v16::messages`)
//! before anything is sent, so what a charger would refuse with a CALLERROR is refused here, as 422
//! naming the field, and every frame that leaves validates against the official schema. Calls go
//! through the registry's typed `call`, so they queue, time out and trip the breaker like the
//! server's own; a call that gets no typed answer maps to HTTP through `ApiError::Charger`, as
//! remote start's does. Only two answers reach the ledger: an accepted ChangeConfiguration (the
//! snapshot) and an accepted or scheduled ChangeAvailability (`central::availability`).
//!
//! The OpenAPI document describes each action's request and response with its official schema,
//! built into the binary (`SCHEMAS`) rather than restated, so the two cannot drift apart.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use utoipa::openapi::schema::{AdditionalProperties, AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, PartialSchema, ToSchema};

use super::Api;
use super::ApiError;
use super::auth::Operator;
use crate::central::{availability, configuration};
use crate::domain::ChargeBoxId;
use crate::domain::charger::{ChargerPatch, ChargerRecord, SecurityProfile};
use crate::ocpp::v16::messages::*;
use crate::ocpp::v16::types::{CiString50, CiString500, ConfigurationStatus};
use crate::ocpp::v16::{Action, DecodeError, decode_payload};
use crate::problem::{ApiJson, Problem};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/chargers/{id}/ocpp/{action}", post(send_any))
        .route("/chargers/{id}/reset", post(reset))
        .route("/chargers/{id}/unlock", post(unlock))
        .route("/chargers/{id}/availability", post(availability))
        .route("/chargers/{id}/trigger", post(trigger))
        .route(
            "/chargers/{id}/security-profile",
            post(raise_security_profile),
        )
}

/// Lists the actions once: the names, their built-in schemas and the dispatch to the typed
/// call all come from this one list.
macro_rules! toolbox_actions {
    ($($action:ident),+ $(,)?) => {
        /// Every action the central system may send a charger, by wire name: OCPP 1.6's
        /// central-system-initiated actions and the security extension's.
        pub const TOOLBOX_ACTIONS: &[&str] = &[$(<$action as Action>::NAME),+];

        /// (action, official request schema, official response schema), as vendored.
        const SCHEMAS: &[(&str, &str, &str)] = &[$((
            <$action as Action>::NAME,
            include_str!(concat!("../../schemas/ocpp16/", stringify!($action), ".json")),
            include_str!(concat!(
                "../../schemas/ocpp16/", stringify!($action), "Response.json"
            )),
        )),+];

        /// Decodes `body` as `action`'s request, sends it and returns the charger's answer.
        async fn dispatch(
            api: &Api,
            charger: &ChargeBoxId,
            action: &str,
            body: &str,
        ) -> Result<Value, ApiError> {
            $(
                if action == <$action as Action>::NAME {
                    let request = decode::<$action>(body)?;
                    return send(api, charger, &request).await;
                }
            )+
            Err(unknown_action(action))
        }

        /// Decodes `body` as `action`'s request without sending it (422 naming the field).
        pub(super) fn validate(action: &str, body: &str) -> Result<(), ApiError> {
            $(
                if action == <$action as Action>::NAME {
                    return decode::<$action>(body).map(drop);
                }
            )+
            Err(unknown_action(action))
        }
    };
}

toolbox_actions!(
    CancelReservation,
    CertificateSigned,
    ChangeAvailability,
    ChangeConfiguration,
    ClearCache,
    ClearChargingProfile,
    DataTransfer,
    DeleteCertificate,
    ExtendedTriggerMessage,
    GetCompositeSchedule,
    GetConfiguration,
    GetDiagnostics,
    GetInstalledCertificateIds,
    GetLocalListVersion,
    GetLog,
    InstallCertificate,
    RemoteStartTransaction,
    RemoteStopTransaction,
    ReserveNow,
    Reset,
    SendLocalList,
    SetChargingProfile,
    SignedUpdateFirmware,
    TriggerMessage,
    UnlockConnector,
    UpdateFirmware,
);

/// What `POST /chargers/{id}/ocpp/{Action}` answers when the charger answered.
#[derive(Debug, Serialize)]
pub(super) struct OcppAnswer {
    /// The HTTP status of this answer (always 200: failures are problem+json).
    status: u16,
    /// The charger's CALLRESULT payload, as its action's official response schema has it.
    response: Value,
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/ocpp/{action}",
    tag = "toolbox",
    operation_id = "sendOcpp",
    summary = "Send any OCPP command to a charger",
    description = "Sends the OCPP 1.6 action `action` with the body as its payload and returns \
        the charger's answer as `{status: 200, response: <payload>}`. `action` is one the \
        central system initiates: CancelReservation, CertificateSigned, ChangeAvailability, \
        ChangeConfiguration, ClearCache, ClearChargingProfile, DataTransfer, \
        DeleteCertificate, ExtendedTriggerMessage, GetCompositeSchedule, GetConfiguration, \
        GetDiagnostics, GetInstalledCertificateIds, GetLocalListVersion, GetLog, \
        InstallCertificate, RemoteStartTransaction, RemoteStopTransaction, ReserveNow, Reset, \
        SendLocalList, SetChargingProfile, SignedUpdateFirmware, TriggerMessage, \
        UnlockConnector, UpdateFirmware. The body must match that action's official schema \
        (components `Ocpp{Action}`; answers `Ocpp{Action}Response`); it is checked before \
        anything is sent. A CALLERROR from the charger is 502 with its code and description. \
        A ChangeConfiguration the charger accepts updates its configuration snapshot and is \
        logged (`ConfigurationChanged`). A ChangeAvailability the charger answers `Accepted` \
        or `Scheduled` changes the ledger as `/chargers/{id}/availability` does. ReserveNow, CancelReservation and remote start/stop \
        sent this way bypass the ledger. \
        Operator only.",
    params(
        ("id" = String, Path, description = "The charge box id"),
        ("action" = OcppAction, Path, description = "The OCPP action, as spelled in OCPP 1.6",
            example = "GetConfiguration"),
    ),
    request_body = OcppRequest,
    responses(
        (status = 200, description = "The charger's answer", body = OcppAnswer),
        (status = 404, description = "No such charger, or `action` is not one the central \
            system sends (the detail lists them)",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The charger is not connected",
            body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body does not match the action's schema (`field` \
            names the member, the detail the OCPP error a charger would answer)",
            body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The charger answered with a CALLERROR (its code and \
            description in the detail) or an answer that does not match the schema",
            body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The charger did not answer in time",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn send_any(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path((raw, action)): Path<(String, String)>,
    ApiJson(body): ApiJson<Box<RawValue>>,
) -> Result<Json<OcppAnswer>, ApiError> {
    if !TOOLBOX_ACTIONS.contains(&action.as_str()) {
        return Err(unknown_action(&action));
    }
    let record = charger(&api, &raw).await?;
    let response = perform(&api, &record.id, &action, body.get()).await?;
    Ok(Json(OcppAnswer {
        status: 200,
        response,
    }))
}

/// Sends `action` with `body` to the charger and returns its answer, keeping what the ledger
/// keeps of it (shared with the fleet's commands).
pub(super) async fn perform(
    api: &Api,
    charger: &ChargeBoxId,
    action: &str,
    body: &str,
) -> Result<Value, ApiError> {
    if action == ChangeConfiguration::NAME {
        // The one action whose answer the server keeps: the configuration snapshot.
        let request = decode::<ChangeConfiguration>(body)?;
        let answer = api.central.sessions.call(charger, &request).await?;
        configuration::record_change(&api.central, charger, &request, &answer).await;
        serde_json::to_value(answer).map_err(ApiError::internal)
    } else if action == ChangeAvailability::NAME {
        // The ledger keeps what it does to bookings (see `availability`).
        let request = decode::<ChangeAvailability>(body)?;
        change_availability(api, charger, &request).await
    } else {
        dispatch(api, charger, action, body).await
    }
}

/// What a typed command to a charger may answer instead of the charger's payload (REST's own
/// 401, 500 and 503 are documented for every operation).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its documentation is used: answers are built by `ApiError`.
enum CommandFailures {
    #[response(
        status = 404,
        description = "No such charger",
        content_type = "application/problem+json"
    )]
    NoSuchCharger(Problem),
    #[response(
        status = 409,
        description = "The charger is not connected, or not booted",
        content_type = "application/problem+json"
    )]
    NotConnected(Problem),
    #[response(
        status = 400,
        description = "The body is not valid JSON",
        content_type = "application/problem+json"
    )]
    NotJson(Problem),
    #[response(
        status = 415,
        description = "The body is not sent as JSON",
        content_type = "application/problem+json"
    )]
    NotSentAsJson(Problem),
    #[response(
        status = 422,
        description = "A member is invalid, e.g. a connector the charger \
        does not have (`field` names it)",
        content_type = "application/problem+json"
    )]
    Invalid(Problem),
    #[response(
        status = 502,
        description = "The charger answered with an error",
        content_type = "application/problem+json"
    )]
    CallError(Problem),
    #[response(
        status = 504,
        description = "The charger did not answer in time",
        content_type = "application/problem+json"
    )]
    Silent(Problem),
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/reset",
    tag = "toolbox",
    operation_id = "resetCharger",
    summary = "Reset a charger",
    description = "Sends Reset (`Soft` ends transactions first, `Hard` reboots at once) and \
        returns the charger's answer. Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    request_body = OcppReset,
    responses(
        (status = 200, description = "The charger's answer", body = OcppResetResponse),
        CommandFailures
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn reset(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<Box<RawValue>>,
) -> Result<Json<Value>, ApiError> {
    let record = charger(&api, &raw).await?;
    let request = decode::<Reset>(body.get())?;
    send(&api, &record.id, &request).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/unlock",
    tag = "toolbox",
    operation_id = "unlockConnector",
    summary = "Unlock a connector",
    description = "Sends UnlockConnector for `connectorId` (1 to the charger's connector count) \
        and returns the charger's answer. Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    request_body = OcppUnlockConnector,
    responses(
        (status = 200, description = "The charger's answer", body = OcppUnlockConnectorResponse),
        CommandFailures
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn unlock(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<Box<RawValue>>,
) -> Result<Json<Value>, ApiError> {
    let record = charger(&api, &raw).await?;
    let request = decode::<UnlockConnector>(body.get())?;
    connector_in(&record, request.connector_id, 1)?;
    send(&api, &record.id, &request).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/availability",
    tag = "toolbox",
    operation_id = "changeAvailability",
    summary = "Take a connector in or out of service",
    description = "Sends ChangeAvailability (`Operative` or `Inoperative`) for `connectorId` \
        (0: the whole charger) and returns the charger's answer (`Scheduled`: once the running \
        transaction ends). When the charger answers `Accepted` or `Scheduled` the ledger \
        records it (`ConnectorAvailabilityChanged`): an Inoperative connector (or every \
        connector, for 0) is out of service, so new bookings on it are refused (409, field \
        `connectorId`) and its BOOKED reservations whose slot is not over show `chargerAck` \
        `UNAVAILABLE`; `Scheduled` counts as made (the connector is about to leave service). \
        Operative again makes it bookable, and those reservations go back to `PENDING` and are \
        offered to the charger again. A connector stays out of service while its charger as a \
        whole (0) is Inoperative. `Rejected` changes nothing. The charger view shows \
        `availability`. Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    request_body = OcppChangeAvailability,
    responses(
        (status = 200, description = "The charger's answer",
            body = OcppChangeAvailabilityResponse),
        CommandFailures
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn availability(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<Box<RawValue>>,
) -> Result<Json<Value>, ApiError> {
    let record = charger(&api, &raw).await?;
    let request = decode::<ChangeAvailability>(body.get())?;
    connector_in(&record, request.connector_id, 0)?;
    change_availability(&api, &record.id, &request)
        .await
        .map(Json)
}

/// Sends ChangeAvailability and records an Accepted or Scheduled answer in the ledger.
async fn change_availability(
    api: &Api,
    charger: &ChargeBoxId,
    request: &ChangeAvailability,
) -> Result<Value, ApiError> {
    let answer = api.central.sessions.call(charger, request).await?;
    availability::record_change(&api.central, charger, request, &answer).await;
    serde_json::to_value(answer).map_err(ApiError::internal)
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/trigger",
    tag = "toolbox",
    operation_id = "triggerMessage",
    summary = "Ask a charger to send a message now",
    description = "Sends TriggerMessage for `requestedMessage` (e.g. StatusNotification, to \
        resync a connector's state), optionally for one `connectorId`, and returns the \
        charger's answer; the triggered message follows on the charger's own connection. \
        Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    request_body = OcppTriggerMessage,
    responses(
        (status = 200, description = "The charger's answer", body = OcppTriggerMessageResponse),
        CommandFailures
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn trigger(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<Box<RawValue>>,
) -> Result<Json<Value>, ApiError> {
    let record = charger(&api, &raw).await?;
    let request = decode::<TriggerMessage>(body.get())?;
    if let Some(connector) = request.connector_id {
        connector_in(&record, connector, 1)?;
    }
    send(&api, &record.id, &request).await.map(Json)
}

/// The registered charger named in the path (404 otherwise).
/// The profile to raise a charger to.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RaiseSecurityProfile {
    /// Higher than the charger's profile now (1 and 2 need the charger to have a password).
    #[schema(minimum = 1, maximum = 3, example = 2)]
    security_profile: i64,
}

/// What the charger answered and the profile the server now holds it to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SecurityProfileAnswer {
    /// The charger's ChangeConfiguration status (`Accepted`, `Rejected`, `RebootRequired`,
    /// `NotSupported`).
    status: String,
    /// The profile the upgrade gate enforces from now on: the new one when the charger
    /// accepted, else unchanged.
    security_profile: u8,
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/security-profile",
    tag = "toolbox",
    operation_id = "raiseSecurityProfile",
    summary = "Raise a charger's security profile",
    description = "The upgrade flow of the OCPP 1.6 security whitepaper: sends ChangeConfiguration         `SecurityProfile` = `securityProfile`; when the charger answers `Accepted` (or         `RebootRequired`) the server holds it to the new profile at once, so the charger         reconnects at the higher profile and a connection at the lower one is refused (and         recorded as a security event). A profile can only be raised this way; lowering it is         `PATCH /chargers/{id}`. Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    request_body = RaiseSecurityProfile,
    responses(
        (status = 200, description = "The charger's answer and the profile now enforced",
            body = SecurityProfileAnswer),
        CommandFailures
    ),
    security(("operatorOrCustomerToken" = []))
)]
pub(super) async fn raise_security_profile(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<RaiseSecurityProfile>,
) -> Result<Json<SecurityProfileAnswer>, ApiError> {
    let record = charger(&api, &raw).await?;
    let current = record.security_profile;
    let Some(wanted) = SecurityProfile::new(body.security_profile).filter(|p| *p > current) else {
        return Err(ApiError::invalid(
            "securityProfile",
            format!("must be higher than the charger's profile now ({current}) and at most 3"),
        ));
    };
    if wanted.needs_password() && record.password_hash.is_none() {
        return Err(ApiError::invalid(
            "securityProfile",
            format!("security profile {wanted} needs a password: set one with PATCH first"),
        ));
    }
    let request = ChangeConfiguration {
        key: CiString50::new("SecurityProfile").map_err(ApiError::internal)?,
        value: CiString500::new(wanted.level().to_string()).map_err(ApiError::internal)?,
    };
    let answer = api.central.sessions.call(&record.id, &request).await?;
    configuration::record_change(&api.central, &record.id, &request, &answer).await;
    let took = matches!(
        answer.status,
        ConfigurationStatus::Accepted | ConfigurationStatus::RebootRequired
    );
    let mut enforced = current;
    if took {
        let patch = ChargerPatch {
            security_profile: Some(wanted),
            ..Default::default()
        };
        if api
            .store
            .update_charger(&record.id, &patch)
            .await?
            .is_some()
        {
            enforced = wanted;
            tracing::info!(charger = %record.id, from = %current, to = %wanted, "security profile raised");
        }
    }
    Ok(Json(SecurityProfileAnswer {
        status: answer.status.as_str().to_string(),
        security_profile: enforced.level(),
    }))
}

async fn charger(api: &Api, raw: &str) -> Result<ChargerRecord, ApiError> {
    let id = ChargeBoxId::parse(raw).map_err(|_| ApiError::NoSuchCharger(raw.to_string()))?;
    api.store
        .charger(&id)
        .await?
        .ok_or_else(|| ApiError::NoSuchCharger(raw.to_string()))
}

/// `connectorId` must be one the charger has (from `lowest`: 0 means the whole charger where
/// the action allows it). The schema only says "integer"; a charger would answer a connector
/// it lacks with a rejection at best.
fn connector_in(record: &ChargerRecord, connector: i32, lowest: i32) -> Result<(), ApiError> {
    let highest = i32::try_from(record.connectors).unwrap_or(i32::MAX);
    if (lowest..=highest).contains(&connector) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "connectorId",
            format!("the charger has connectors {lowest} to {highest}"),
        ))
    }
}

/// The body as `A`'s request, or 422 naming the field with the error a charger would answer.
fn decode<A: Action>(body: &str) -> Result<A, ApiError> {
    decode_member::<A>(body, "")
}

/// Decodes one OCPP value found at REST member `at` (`""`: the whole body) with the typed
/// message's own rules, naming the offending member from the body's root on failure.
pub(super) fn decode_member<T: DeserializeOwned>(body: &str, at: &str) -> Result<T, ApiError> {
    decode_payload::<T>(body).map_err(|error| {
        let (field, what) = field_of(&error);
        let field = match (at, field.as_str()) {
            ("", _) => field,
            (at, "") => at.to_owned(),
            (at, inner) => format!("{at}.{inner}"),
        };
        ApiError::invalid(field, format!("{what} ({})", error.code))
    })
}

/// Sends `request` and returns the charger's answer as JSON.
async fn send<A: Action>(api: &Api, charger: &ChargeBoxId, request: &A) -> Result<Value, ApiError> {
    let answer = api.central.sessions.call(charger, request).await?;
    serde_json::to_value(answer).map_err(ApiError::internal)
}

fn unknown_action(action: &str) -> ApiError {
    let shown: String = action.chars().take(40).collect();
    ApiError::NotFound(format!(
        "{shown:?} is not an OCPP 1.6 action the central system sends; one of: {}",
        TOOLBOX_ACTIONS.join(", ")
    ))
}

/// The member a decode error is about, as a REST `field` path (`a.b[0].c`), and what is wrong
/// with it.
///
/// `decode` writes descriptions as `path: what` (no path for the payload itself); a missing,
/// unknown or duplicated member is named inside `what`, after its object's path.
fn field_of(error: &DecodeError) -> (String, &str) {
    let description = error.description.as_str();
    let (path, what) = match description.split_once(": ") {
        Some((path, what)) if !path.is_empty() && !path.contains([' ', '"']) => (path, what),
        _ => ("", description),
    };
    let named = ["missing field \"", "unknown field \"", "duplicate field \""]
        .iter()
        .find_map(|prefix| what.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('"'))
        .map(|(name, _)| name);
    let field = match (path, named) {
        ("", Some(name)) => name.to_string(),
        (path, Some(name)) => format!("{path}.{name}"),
        (path, None) => path.to_string(),
    };
    (field, what)
}

// ---------------------------------------------------------------------------------------------
// OpenAPI: the official schemas as components
// ---------------------------------------------------------------------------------------------

/// Adds `Ocpp{Action}` and `Ocpp{Action}Response` for every toolbox action.
pub(super) struct ToolboxSchemas;

impl Modify for ToolboxSchemas {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (action, request, response) in SCHEMAS {
            components
                .schemas
                .insert(format!("Ocpp{action}"), official(request));
            components
                .schemas
                .insert(format!("Ocpp{action}Response"), official(response));
        }
    }
}

/// An official schema (draft-04 or -06) as an OpenAPI 3.1 schema: the meta members dropped and
/// the security extension's `#/definitions/…` references inlined, since they would point into
/// the OpenAPI document instead. A schema that cannot be read (a test proves none) documents
/// as any object rather than failing the document.
fn official(text: &str) -> RefOr<Schema> {
    let converted = serde_json::from_str::<Value>(text)
        .ok()
        .map(|mut schema| {
            let definitions = schema
                .as_object_mut()
                .and_then(|root| root.remove("definitions"))
                .and_then(|d| d.as_object().cloned())
                .unwrap_or_default();
            clean(&mut schema, &definitions);
            schema
        })
        .and_then(|schema| serde_json::from_value::<RefOr<Schema>>(schema).ok());
    converted.unwrap_or_else(|| ObjectBuilder::new().schema_type(Type::Object).into())
}

fn clean(schema: &mut Value, definitions: &Map<String, Value>) {
    let Some(node) = schema.as_object_mut() else {
        return;
    };
    if let Some(target) = node.get("$ref").and_then(Value::as_str) {
        let name = target.trim_start_matches("#/definitions/");
        if let Some(definition) = definitions.get(name) {
            *schema = definition.clone();
            return clean(schema, definitions);
        }
    }
    for meta in [
        "$schema",
        "$id",
        "id",
        "title",
        "javaType",
        "additionalItems",
    ] {
        node.remove(meta);
    }
    if node.get("type").and_then(Value::as_str) != Some("object") {
        node.remove("additionalProperties");
    }
    if let Some(properties) = node.get_mut("properties").and_then(Value::as_object_mut) {
        for property in properties.values_mut() {
            clean(property, definitions);
        }
    }
    if let Some(items) = node.get_mut("items") {
        clean(items, definitions);
    }
}

fn any_of(suffix: &str) -> RefOr<Schema> {
    let mut any = AnyOfBuilder::new();
    for (action, _, _) in SCHEMAS {
        any = any.item(Ref::from_schema_name(format!("Ocpp{action}{suffix}")));
    }
    any.into()
}

/// The `{action}` path parameter: one of [`TOOLBOX_ACTIONS`].
pub(super) struct OcppAction;

impl PartialSchema for OcppAction {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(TOOLBOX_ACTIONS.iter().copied()))
            .into()
    }
}

impl ToSchema for OcppAction {}

/// The request body of `/ocpp/{action}`: the action's official request schema.
pub(super) struct OcppRequest;

impl PartialSchema for OcppRequest {
    fn schema() -> RefOr<Schema> {
        let mut schema = any_of("");
        if let RefOr::T(Schema::AnyOf(any)) = &mut schema {
            any.description = Some(
                "The payload of the action named in the path, per its official OCPP 1.6 \
                 schema (`Ocpp{Action}`)."
                    .into(),
            );
        }
        schema
    }
}

impl ToSchema for OcppRequest {}

impl PartialSchema for OcppAnswer {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .enum_values(Some([json!(200)]))
                    .description(Some("The HTTP status of this answer")),
            )
            .property("response", any_of("Response"))
            .required("status")
            .required("response")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for OcppAnswer {}

/// A named official schema, for the conveniences' request and response bodies.
macro_rules! official_schema {
    ($($name:ident = $file:literal),+ $(,)?) => {$(
        pub(super) struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                official(include_str!(concat!("../../schemas/ocpp16/", $file, ".json")))
            }
        }

        impl ToSchema for $name {}
    )+};
}

official_schema!(
    OcppReset = "Reset",
    OcppResetResponse = "ResetResponse",
    OcppUnlockConnector = "UnlockConnector",
    OcppUnlockConnectorResponse = "UnlockConnectorResponse",
    OcppChangeAvailability = "ChangeAvailability",
    OcppChangeAvailabilityResponse = "ChangeAvailabilityResponse",
    OcppTriggerMessage = "TriggerMessage",
    OcppTriggerMessageResponse = "TriggerMessageResponse",
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocpp::v16::OCPP16_ACTIONS;
    use crate::ocpp::v16::error::ErrorCode;

    #[test]
    fn every_central_system_action_is_in_the_toolbox() {
        // The actions a charger sends (and the two the security extension adds for it).
        let from_charger = [
            "Authorize",
            "BootNotification",
            "DiagnosticsStatusNotification",
            "FirmwareStatusNotification",
            "Heartbeat",
            "LogStatusNotification",
            "MeterValues",
            "SecurityEventNotification",
            "SignCertificate",
            "SignedFirmwareStatusNotification",
            "StartTransaction",
            "StatusNotification",
            "StopTransaction",
        ];
        let mut expected: Vec<&str> = OCPP16_ACTIONS
            .iter()
            .copied()
            .filter(|a| !from_charger.contains(a))
            .collect();
        expected.push("DataTransfer"); // either direction
        expected.sort_unstable();
        expected.dedup();
        let mut ours = TOOLBOX_ACTIONS.to_vec();
        ours.sort_unstable();
        assert_eq!(ours, expected);
    }

    #[test]
    fn official_schemas_convert_faithfully() {
        for (action, request, response) in SCHEMAS {
            for text in [request, response] {
                let converted = serde_json::to_value(official(text)).unwrap();
                let mut source: Value = serde_json::from_str(text).unwrap();
                let definitions = source
                    .as_object_mut()
                    .and_then(|r| r.remove("definitions"))
                    .and_then(|d| d.as_object().cloned())
                    .unwrap_or_default();
                clean(&mut source, &definitions);
                // An empty `properties` says nothing; utoipa leaves it out.
                if source["properties"] == json!({}) {
                    source.as_object_mut().unwrap().remove("properties");
                }
                assert_eq!(converted, source, "{action}");
                assert!(!converted.to_string().contains("$ref"), "{action}");
            }
        }
    }

    #[test]
    fn the_body_reaches_the_decoder_as_sent() {
        // Kept raw, so a duplicated member is refused as a charger would refuse it, rather
        // than one of the two being silently dropped on the way.
        let raw: Box<RawValue> =
            crate::problem::parse_json(br#"{"type":"Soft","type":"Hard"}"#).unwrap();
        assert_eq!(raw.get(), r#"{"type":"Soft","type":"Hard"}"#);
        let error = decode::<Reset>(raw.get()).unwrap_err();
        let ApiError::InvalidField { field, reason } = error else {
            panic!("not a field error");
        };
        assert_eq!(field, "type");
        assert!(reason.contains("FormationViolation"), "{reason}");
    }

    #[test]
    fn decode_errors_name_the_rest_field() {
        let cases = [
            ("missing field \"type\"", ""),
            ("unknown field \"bogus\"", ""),
            ("type: unknown value \"Warm\"", ""),
            (
                "csChargingProfiles.chargingSchedule: missing field \"chargingRateUnit\"",
                "",
            ),
            ("certificateHashData: at least one entry required", ""),
            ("payload is not valid JSON", ""),
        ];
        let expected = [
            "type",
            "bogus",
            "type",
            "csChargingProfiles.chargingSchedule.chargingRateUnit",
            "certificateHashData",
            "",
        ];
        for ((description, _), field) in cases.iter().zip(expected) {
            let error = DecodeError::new(ErrorCode::FormationViolation, *description);
            assert_eq!(field_of(&error).0, field, "{description}");
        }
        let error = decode::<Reset>(r#"{"type":"Warm"}"#).unwrap_err();
        assert!(matches!(error, ApiError::InvalidField { ref field, .. } if field == "type"));
        let error = decode::<SetChargingProfile>(
            r#"{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1,"stackLevel":0,
            "chargingProfilePurpose":"TxDefaultProfile","chargingProfileKind":"Absolute",
            "chargingSchedule":{"chargingRateUnit":"A","chargingSchedulePeriod":[
            {"startPeriod":0,"limit":16.25}]}}}"#,
        )
        .unwrap_err();
        let ApiError::InvalidField { field, reason } = error else {
            panic!("not a field error");
        };
        assert_eq!(
            field,
            "csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0].limit"
        );
        assert!(reason.contains("PropertyConstraintViolation"), "{reason}");
        assert!(
            !reason.contains("limit:"),
            "the path is not repeated: {reason}"
        );
    }
}
