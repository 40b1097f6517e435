//! `/api/v1/chargers`: operators register, list, inspect, update and delete chargers, and accept
//! or reject the ones that arrived unknown (`unknown_chargers = pending`). Answers join what the
//! store holds with the live sessions: `online`, `lastSeen`, boot info and connector status are
//! as fresh as the last frame, even before they are written behind.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::Api;
use super::ApiError;
use super::auth::Operator;
use crate::booking::store::Page;
use crate::central::breaker::BreakerState;
use crate::central::firmware::Kind;
use crate::central::{EndReason, machine_key};
use crate::domain::ChargeBoxId;
use crate::domain::availability::{Availability, ConnectorAvailability, out_of_service};
use crate::domain::charger::{
    ChargerPatch, ChargerRecord, MAX_CONNECTORS, NewCharger, RegistrationState, SecurityProfile,
};
use crate::domain::reservation::{ReservationFilter, ReservationStatus};
use crate::ocpp::v16::messages::TriggerMessage;
use crate::ocpp::v16::types::MessageTrigger;
use crate::problem::{ApiJson, Problem};

const MAX_NAME_LEN: usize = 100;
const DEFAULT_PAGE: u32 = 1000;
const MAX_PAGE: u32 = 10_000;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/chargers", get(list).post(create))
        .route("/chargers/{id}", get(show).patch(update).delete(remove))
        .route("/chargers/{id}/accept", post(accept))
        .route("/chargers/{id}/reject", post(reject))
}

/// A charger to register. Unknown members are refused (422).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CreateCharger {
    /// The charge box id: the last path segment of the charger's OCPP URL, and its HTTP Basic
    /// username. 1 to 48 letters, digits or `- . _ ~`.
    #[schema(pattern = "^[A-Za-z0-9._~-]{1,48}$", example = "CP-0001")]
    id: String,
    /// A label for people, at most 100 characters; blank means none.
    #[serde(default)]
    #[schema(max_length = 100, example = "Car park level 2, bay 4")]
    name: Option<String>,
    /// How many connectors the charger has (connector ids 1..=n).
    #[schema(minimum = 1, maximum = 100, example = 2)]
    connectors: u32,
    /// The charger's password (OCPP AuthorizationKey, 16–40 printable ASCII characters). When
    /// set, the charger must connect with HTTP Basic auth; stored only as a salted digest.
    #[serde(default)]
    #[schema(min_length = 16, max_length = 40)]
    password: Option<String>,
    /// How the charger proves who it is: 0 nothing, 1 HTTP Basic, 2 HTTP Basic over TLS only,
    /// 3 a TLS client certificate chaining to `tls_client_ca` with the id as its subject CN.
    /// Default 1 with a password, else 0; 1 and 2 need a password.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3, example = 2)]
    security_profile: Option<i64>,
}

/// Changes to a charger: members left out stay as they are. Unknown members are refused (422).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UpdateCharger {
    /// The new label (at most 100 characters); `null` clears the name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 100)]
    name: Option<Option<String>>,
    /// The new number of connectors.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    connectors: Option<u32>,
    /// The new password (16–40 printable ASCII characters); `null` removes the password: the
    /// charger may then connect without Basic auth.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 16, max_length = 40)]
    password: Option<Option<String>>,
    /// The new security profile (0–3; 1 and 2 need a password). Left out, setting a password
    /// on a profile 0 charger makes it 1 and removing it from a profile 1 charger makes it 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3)]
    security_profile: Option<i64>,
}

/// What an operator may set when accepting a charger: members left out stay as they are (an
/// unknown charger arrives with one connector, no name and no password). Unknown members are
/// refused (422). The body may be left out altogether.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AcceptCharger {
    /// A label for people, at most 100 characters; blank means none.
    #[serde(default)]
    #[schema(max_length = 100, example = "Car park level 2, bay 4")]
    name: Option<String>,
    /// How many connectors the charger has (connector ids 1..=n).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100, example = 2)]
    connectors: Option<u32>,
    /// A password for the charger (16–40 printable ASCII characters): from its next connection
    /// on it must use HTTP Basic auth. Give it the same value (OCPP AuthorizationKey) first.
    #[serde(default)]
    #[schema(min_length = 16, max_length = 40)]
    password: Option<String>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only chargers whose id sorts after this one (paging).
    after: Option<String>,
    /// At most this many chargers, in id order (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// Only chargers that are (or are not) connected now.
    online: Option<bool>,
    /// Only chargers in this registration state (`pending`: unknown chargers waiting for the
    /// operator).
    #[param(inline)]
    state: Option<RegistrationState>,
}

/// The circuit breaker in front of the central system's calls to a charger: after repeated
/// timeouts calls fail fast (`open`) until the cool-down ends and one probe goes through
/// (`half_open`); any answer closes it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerView {
    /// `closed`, `open` or `half_open`.
    #[schema(example = "closed")]
    state: &'static str,
    /// Timeouts in a row so far (while closed).
    consecutive_timeouts: u32,
    /// While open: when the next probe may go through.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    probe_after: Option<OffsetDateTime>,
}

impl From<BreakerState> for BreakerView {
    fn from(b: BreakerState) -> Self {
        let (consecutive_timeouts, probe_after) = match b {
            BreakerState::Closed {
                consecutive_timeouts,
            } => (consecutive_timeouts, None),
            BreakerState::Open { until } => {
                let left = until.saturating_duration_since(std::time::Instant::now());
                (0, Some(OffsetDateTime::now_utc() + left))
            }
            BreakerState::HalfOpen => (0, None),
        };
        BreakerView {
            state: b.name(),
            consecutive_timeouts,
            probe_after,
        }
    }
}

/// A charger as the API shows it: its registration joined with its live state. Boot fields are
/// what the charger last said in BootNotification (`null` until it has booted).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargerView {
    /// The charge box id.
    #[schema(example = "CP-0001")]
    id: String,
    /// `accepted` (in service), `pending` (it connected unknown and waits for the operator to
    /// accept it) or `rejected`. Only an accepted charger is bookable or sent commands; the
    /// others' BootNotification is answered Pending or Rejected.
    state: RegistrationState,
    name: Option<String>,
    /// Number of connectors (ids 1..=n).
    connectors: u32,
    /// Whether the charger must connect with HTTP Basic auth (the password is never shown).
    password_protected: bool,
    /// How the charger must prove who it is (0–3, see `securityProfile` on create).
    security_profile: u8,
    /// Whether the charger has an open OCPP WebSocket now (on any node of the cluster).
    online: bool,
    /// The node holding the charger's socket (setting `node_id`); `null` when offline.
    node: Option<String>,
    /// The circuit breaker in front of calls to this charger.
    breaker: BreakerView,
    /// When the charger last sent a frame.
    #[serde(with = "time::serde::rfc3339::option")]
    last_seen: Option<OffsetDateTime>,
    /// When the charger last sent BootNotification.
    #[serde(with = "time::serde::rfc3339::option")]
    last_boot_at: Option<OffsetDateTime>,
    vendor: Option<String>,
    model: Option<String>,
    serial_number: Option<String>,
    charge_box_serial_number: Option<String>,
    firmware_version: Option<String>,
    iccid: Option<String>,
    imsi: Option<String>,
    meter_type: Option<String>,
    meter_serial_number: Option<String>,
    /// The last StatusNotification of each connector that has reported (connector 0 is the
    /// charger as a whole).
    connector_status: Vec<ConnectorStatusView>,
    /// What lenient mode accepted from this charger that the OCPP 1.6 schemas do not allow,
    /// since this server started, most frequent first (empty for a charger that keeps to the
    /// schemas). Also counted in `echarging_ocpp_deviations_total`.
    deviations: Vec<DeviationView>,
    /// Shown by `GET /chargers/{id}` (not in lists): each connector's availability as the
    /// server last set it through ChangeAvailability, connector 0 being the charger as a whole.
    /// An Inoperative connector is out of service: it cannot be booked.
    #[serde(skip_serializing_if = "Option::is_none")]
    availability: Option<Vec<ConnectorAvailabilityView>>,
    /// Shown by `GET /chargers/{id}` (not in lists): the charger's local authorization list as
    /// the server last synced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    local_list: Option<LocalListView>,
    /// Shown by `GET /chargers/{id}` (not in lists): the charger's FirmwareStatusNotifications
    /// since this server started (see `POST /chargers/{id}/firmware-update`).
    #[serde(skip_serializing_if = "Option::is_none")]
    firmware_status: Option<super::files::StatusTrailView>,
    /// Shown by `GET /chargers/{id}` (not in lists): its DiagnosticsStatusNotifications since
    /// this server started (see `POST /chargers/{id}/diagnostics`).
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnostics_status: Option<super::files::StatusTrailView>,
    /// Shown by `GET /chargers/{id}` (not in lists): its LogStatusNotifications (security
    /// extension, log uploads asked for with GetLog) since this server started.
    #[serde(skip_serializing_if = "Option::is_none")]
    log_status: Option<super::files::StatusTrailView>,
    /// Shown by `GET /chargers/{id}` (not in lists): its SignedFirmwareStatusNotifications
    /// (security extension, SignedUpdateFirmware) since this server started.
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_firmware_status: Option<super::files::StatusTrailView>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

/// A connector's last StatusNotification.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConnectorStatusView {
    /// 0 means the charger as a whole.
    connector_id: u32,
    /// OCPP 1.6 ChargePointStatus, e.g. `Available`, `Preparing`, `Charging`, `Faulted`.
    #[schema(example = "Available")]
    status: String,
    /// OCPP 1.6 ChargePointErrorCode, `NoError` when all is well.
    #[schema(example = "NoError")]
    error_code: String,
    info: Option<String>,
    vendor_error_code: Option<String>,
    /// The time the charger gave in the notification, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    timestamp: Option<OffsetDateTime>,
    /// When the central system received it.
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

/// A charger's local authorization list as the server last synced it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct LocalListView {
    /// The list version the charger last accepted (the ledger's version is the number of the
    /// last customer change); 0 when it never accepted one.
    pub(super) version: i32,
    /// When the charger last accepted a list, full or differential.
    #[serde(with = "time::serde::rfc3339::option")]
    pub(super) synced_at: Option<OffsetDateTime>,
    /// The charger's last answer: `Accepted`, `Failed`, `NotSupported` or `VersionMismatch`;
    /// `NeverSynced` when no list was ever sent (the charger does not say it keeps one).
    #[schema(example = "Accepted")]
    pub(super) status: String,
}

impl From<Option<crate::domain::local_list::LocalListState>> for LocalListView {
    fn from(state: Option<crate::domain::local_list::LocalListState>) -> Self {
        match state {
            Some(s) => LocalListView {
                version: s.version,
                synced_at: s.synced_at,
                status: s.status,
            },
            None => LocalListView {
                version: 0,
                synced_at: None,
                status: "NeverSynced".into(),
            },
        }
    }
}

/// A connector's availability in the ledger.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConnectorAvailabilityView {
    /// 0 means the charger as a whole.
    connector_id: u32,
    /// `Inoperative` when the connector, or its charger as a whole, was made Inoperative
    /// (the charger answered Accepted or Scheduled), else `Operative`.
    availability: Availability,
    /// The charger answered `Scheduled`: it applies the change once its running transaction
    /// ends (the ledger treats the connector as out of service already).
    scheduled: bool,
    /// When the change that decides `availability` was made; `null` when the server never
    /// changed it.
    #[serde(with = "time::serde::rfc3339::option")]
    since: Option<OffsetDateTime>,
}

/// Every connector (0 first) as `recorded` leaves it.
fn availability_views(
    connectors: u32,
    recorded: &[ConnectorAvailability],
) -> Vec<ConnectorAvailabilityView> {
    let entry = |c: u32| recorded.iter().find(|a| a.connector_id == c);
    (0..=connectors)
        .map(|c| {
            // Out of service through the charger as a whole, or through its own entry; else
            // its own last change, or the charger's.
            let whole = entry(0).filter(|a| a.availability == Availability::Inoperative);
            let decides = whole.or_else(|| entry(c)).or_else(|| entry(0));
            ConnectorAvailabilityView {
                connector_id: c,
                availability: if out_of_service(recorded, c) {
                    Availability::Inoperative
                } else {
                    Availability::Operative
                },
                scheduled: decides.is_some_and(|a| a.scheduled),
                since: decides.map(|a| a.since),
            }
        })
        .collect()
}

/// One way a charger departs from the schemas, and how often it did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeviationView {
    /// The OCPP action, or `Connect` for the WebSocket upgrade.
    #[schema(example = "BootNotification")]
    action: &'static str,
    /// `string_too_long`, `null_optional`, `unknown_field`, `number_as_string`,
    /// `string_as_number`, `float_as_integer`, `enum_case`, `unknown_enum_value`,
    /// `comma_decimal`, `timestamp_format`, `timestamp_out_of_range`, `subprotocol_case` or
    /// `url_trailing_slash`.
    #[schema(example = "string_too_long")]
    rule: &'static str,
    count: u64,
    #[serde(with = "time::serde::rfc3339")]
    first_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_seen_at: OffsetDateTime,
    /// The latest occurrence, e.g. the field and its length.
    #[schema(example = "32 characters where at most 25 are allowed")]
    detail: String,
}

impl Api {
    fn view(&self, mut record: ChargerRecord) -> ChargerView {
        self.central.live.overlay(&mut record);
        let node = self.central.holder(&record.id);
        let online = node.is_some();
        let breaker = BreakerView::from(self.central.sessions.breaker(&record.id));
        let boot = record.boot.unwrap_or_default();
        let known = |s: String| (!s.is_empty()).then_some(s);
        ChargerView {
            online,
            node,
            breaker,
            id: record.id.to_string(),
            state: record.state,
            name: record.name,
            connectors: record.connectors,
            password_protected: record.password_hash.is_some()
                && record.security_profile != SecurityProfile::TLS_CLIENT_CERT,
            security_profile: record.security_profile.level(),
            last_seen: record.last_seen_at,
            last_boot_at: record.last_boot_at,
            vendor: known(boot.vendor),
            model: known(boot.model),
            serial_number: boot.serial_number,
            charge_box_serial_number: boot.charge_box_serial_number,
            firmware_version: boot.firmware_version,
            iccid: boot.iccid,
            imsi: boot.imsi,
            meter_type: boot.meter_type,
            meter_serial_number: boot.meter_serial_number,
            connector_status: record
                .connector_status
                .into_iter()
                .map(|c| ConnectorStatusView {
                    connector_id: c.connector_id,
                    status: c.status.into_owned(),
                    error_code: c.error_code.into_owned(),
                    info: c.info,
                    vendor_error_code: c.vendor_error_code,
                    timestamp: c.reported_at,
                    updated_at: c.updated_at,
                })
                .collect(),
            deviations: self
                .central
                .live
                .deviations(&record.id)
                .into_iter()
                .map(|d| DeviationView {
                    action: d.action,
                    rule: d.rule.as_str(),
                    count: d.count,
                    first_seen_at: d.first_seen_at,
                    last_seen_at: d.last_seen_at,
                    detail: d.detail,
                })
                .collect(),
            availability: None,
            local_list: None,
            firmware_status: None,
            diagnostics_status: None,
            log_status: None,
            signed_firmware_status: None,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

fn path_id(raw: &str) -> Result<ChargeBoxId, ApiError> {
    // An id that cannot be valid cannot be registered either.
    ChargeBoxId::parse(raw).map_err(|_| ApiError::NoSuchCharger(raw.to_string()))
}

fn validate_name(name: Option<String>) -> Result<Option<String>, ApiError> {
    match name.map(|n| n.trim().to_string()) {
        Some(n) if n.chars().count() > MAX_NAME_LEN => Err(ApiError::invalid(
            "name",
            format!("must be at most {MAX_NAME_LEN} characters"),
        )),
        Some(n) if n.is_empty() => Ok(None),
        other => Ok(other),
    }
}

fn validate_connectors(n: u32) -> Result<u32, ApiError> {
    if (1..=MAX_CONNECTORS).contains(&n) {
        Ok(n)
    } else {
        Err(ApiError::invalid(
            "connectors",
            format!("must be from 1 to {MAX_CONNECTORS}"),
        ))
    }
}

/// `securityProfile` as given, checked against whether the charger will have a password.
fn validate_profile(level: i64, has_password: bool) -> Result<SecurityProfile, ApiError> {
    let profile = SecurityProfile::new(level)
        .ok_or_else(|| ApiError::invalid("securityProfile", "must be 0, 1, 2 or 3"))?;
    if profile.needs_password() && !has_password {
        return Err(ApiError::invalid(
            "securityProfile",
            format!("security profile {profile} needs a password: set `password` too"),
        ));
    }
    Ok(profile)
}

/// The profile a patch leaves the charger with, `None` when unchanged: as asked, else implied
/// by a password set on a profile 0 charger (1) or removed from a profile 1 one (0).
fn profile_after(
    current: &ChargerRecord,
    patch: &ChargerPatch,
    asked: Option<i64>,
) -> Result<Option<SecurityProfile>, ApiError> {
    let has_password = match &patch.password_hash {
        Some(p) => p.is_some(),
        None => current.password_hash.is_some(),
    };
    if let Some(level) = asked {
        return validate_profile(level, has_password).map(Some);
    }
    let profile = current.security_profile;
    Ok(match (profile.level(), has_password) {
        (0, true) => Some(SecurityProfile::BASIC),
        (1, false) => Some(SecurityProfile::NONE),
        (2, false) => {
            return Err(ApiError::invalid(
                "password",
                "security profile 2 needs a password: lower securityProfile too",
            ));
        }
        _ => None,
    })
}

fn hash_password(password: &str) -> Result<String, ApiError> {
    machine_key::validate(password).map_err(|e| ApiError::invalid("password", e))?;
    Ok(machine_key::hash(password))
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers",
    tag = "chargers",
    operation_id = "createCharger",
    summary = "Register a charger",
    description = "Operator only. The answer carries a Location header.",
    request_body = CreateCharger,
    responses(
        (
            status = 201,
            description = "Registered",
            body = ChargerView,
            headers(("Location" = String, description = "URL of the new charger"))
        ),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A charger with this id exists",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A member is missing, unknown or invalid (`field` names it)",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn create(
    _: Operator,
    State(api): State<Arc<Api>>,
    ApiJson(body): ApiJson<CreateCharger>,
) -> Result<Response, ApiError> {
    let id = ChargeBoxId::parse(&body.id).map_err(|e| ApiError::invalid("id", e))?;
    let password_hash = body.password.as_deref().map(hash_password).transpose()?;
    let security_profile = match body.security_profile {
        Some(level) => validate_profile(level, password_hash.is_some())?,
        None => SecurityProfile::implied(password_hash.is_some()),
    };
    let new = NewCharger {
        id,
        name: validate_name(body.name)?,
        connectors: validate_connectors(body.connectors)?,
        password_hash,
        security_profile,
    };
    let record = api.store.insert_charger(&new).await?;
    let location = format!("/api/v1/chargers/{}", record.id);
    let mut response = (StatusCode::CREATED, Json(api.view(record))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/v1/chargers",
    tag = "chargers",
    operation_id = "listChargers",
    summary = "List chargers",
    description = "Operator only. Ordered by id; page with `after` (the last id seen) and \
        `limit`; `state=pending` lists the unknown chargers waiting to be accepted.",
    params(ListQuery),
    responses(
        (status = 200, description = "The chargers", body = Vec<ChargerView>),
        (
            status = 400,
            description = "A query parameter cannot be read (unknown, or of the wrong type)",
            body = Problem, content_type = "application/problem+json"
        ),
        (status = 422, description = "`limit` is out of range",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn list(
    _: Operator,
    State(api): State<Arc<Api>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ChargerView>>, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::Problem(
            Problem::new(StatusCode::BAD_REQUEST, "Invalid query").detail(e.body_text()),
        )
    })?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be from 1 to {MAX_PAGE}"),
        ));
    }
    let records = api
        .store
        .chargers(&Page {
            after: q.after,
            limit,
            state: q.state,
        })
        .await?;
    let views = records
        .into_iter()
        .map(|r| api.view(r))
        .filter(|v| q.online.is_none_or(|want| v.online == want))
        .collect();
    Ok(Json(views))
}

#[utoipa::path(
    get,
    path = "/api/v1/chargers/{id}",
    tag = "chargers",
    operation_id = "getCharger",
    summary = "Read a charger",
    description = "Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    responses(
        (status = 200, description = "The charger", body = ChargerView),
        (status = 404, description = "No such charger",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn show(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<Json<ChargerView>, ApiError> {
    let id = path_id(&raw)?;
    match api.store.charger(&id).await? {
        Some(record) => {
            let recorded = api.store.availability(&id).await?;
            let connectors = record.connectors;
            let mut view = api.view(record);
            view.availability = Some(availability_views(connectors, &recorded));
            view.local_list = Some(api.store.local_list_state(&id).await?.into());
            view.firmware_status = Some(super::files::trail_view(&api, Kind::Firmware, &id));
            view.diagnostics_status = Some(super::files::trail_view(&api, Kind::Diagnostics, &id));
            view.log_status = Some(super::files::trail_view(&api, Kind::Log, &id));
            view.signed_firmware_status =
                Some(super::files::trail_view(&api, Kind::SignedFirmware, &id));
            Ok(Json(view))
        }
        None => Err(ApiError::NoSuchCharger(raw)),
    }
}

#[utoipa::path(
    patch,
    path = "/api/v1/chargers/{id}",
    tag = "chargers",
    operation_id = "updateCharger",
    summary = "Update a charger",
    description = "Operator only. Members left out are kept; `null` clears `name` or `password`.",
    params(("id" = String, Path, description = "The charge box id")),
    request_body = UpdateCharger,
    responses(
        (status = 200, description = "The updated charger", body = ChargerView),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such charger",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Fewer `connectors` would leave live reservations on a \
            removed connector", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A member is unknown or invalid (`field` names it)",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn update(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<UpdateCharger>,
) -> Result<Json<ChargerView>, ApiError> {
    let id = path_id(&raw)?;
    let mut patch = ChargerPatch {
        name: body.name.map(validate_name).transpose()?,
        connectors: body.connectors.map(validate_connectors).transpose()?,
        password_hash: match body.password {
            None => None,
            Some(None) => Some(None),
            Some(Some(p)) => Some(Some(hash_password(&p)?)),
        },
        security_profile: None,
    };
    if body.security_profile.is_some() || patch.password_hash.is_some() {
        let Some(current) = api.store.charger(&id).await? else {
            return Err(ApiError::NoSuchCharger(raw));
        };
        patch.security_profile = profile_after(&current, &patch, body.security_profile)?;
    }
    if let Some(n) = patch.connectors {
        refuse_orphaning(&api, &id, n).await?;
    }
    match api.store.update_charger(&id, &patch).await? {
        Some(record) => Ok(Json(api.view(record))),
        None => Err(ApiError::NoSuchCharger(raw)),
    }
}

/// 409 when fewer connectors would leave a live reservation (BOOKED or CHARGING_STARTED) on a
/// connector that no longer exists, as deleting a charger with live reservations is refused.
async fn refuse_orphaning(api: &Api, id: &ChargeBoxId, connectors: u32) -> Result<(), ApiError> {
    for status in [
        ReservationStatus::Booked,
        ReservationStatus::ChargingStarted,
    ] {
        let live = api
            .store
            .reservations(&ReservationFilter {
                charger_id: Some(id.clone()),
                status: Some(status),
                limit: u32::MAX,
                ..Default::default()
            })
            .await?;
        if let Some(r) = live.iter().find(|r| r.connector_id > connectors) {
            return Err(ApiError::Conflict {
                title: "Connector in use",
                detail: format!(
                    "connector {} has live reservations ({status}); cancel them before removing \
                     the connector",
                    r.connector_id
                ),
                field: Some("connectors"),
            });
        }
    }
    Ok(())
}

#[utoipa::path(
    delete,
    path = "/api/v1/chargers/{id}",
    tag = "chargers",
    operation_id = "deleteCharger",
    summary = "Delete a charger",
    description = "Operator only. Its live OCPP socket, if any, is closed.",
    params(("id" = String, Path, description = "The charge box id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such charger",
            body = Problem, content_type = "application/problem+json"),
        (
            status = 409,
            description = "The charger has live reservations (BOOKED or CHARGING_STARTED); cancel \
                them first",
            body = Problem, content_type = "application/problem+json"
        )
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn remove(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&raw)?;
    if !api.store.delete_charger(&id).await? {
        return Err(ApiError::NoSuchCharger(raw));
    }
    api.central.end_charger(&id, EndReason::Deregistered);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/accept",
    tag = "chargers",
    operation_id = "acceptCharger",
    summary = "Accept a charger into service",
    description = "Operator only. For a charger that arrived unknown (`pending`) or was \
        rejected; optionally names it, sets its connectors and a password. Its next \
        BootNotification is answered Accepted; when it is connected now it is sent \
        TriggerMessage(BootNotification) at once, so it comes into service without waiting for \
        its interval. Accepting an accepted charger changes only what the body sets. Appends \
        `ChargerAccepted`.",
    params(("id" = String, Path, description = "The charge box id")),
    request_body(content = Option<AcceptCharger>, description = "Optional"),
    responses(
        (status = 200, description = "The charger, now accepted", body = ChargerView),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such charger",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Fewer `connectors` would leave live reservations on a \
            removed connector", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body is sent, but not as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A member is unknown or invalid (`field` names it)",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn accept(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    body: Option<ApiJson<AcceptCharger>>,
) -> Result<Json<ChargerView>, ApiError> {
    let id = path_id(&raw)?;
    let body = body.map(|ApiJson(b)| b).unwrap_or_default();
    let patch = ChargerPatch {
        name: body.name.map(|n| validate_name(Some(n))).transpose()?,
        connectors: body.connectors.map(validate_connectors).transpose()?,
        password_hash: body
            .password
            .as_deref()
            .map(hash_password)
            .transpose()?
            .map(Some),
        security_profile: None,
    };
    let mut patch = patch;
    if patch.password_hash.is_some() {
        let Some(current) = api.store.charger(&id).await? else {
            return Err(ApiError::NoSuchCharger(raw));
        };
        patch.security_profile = profile_after(&current, &patch, None)?;
    }
    if let Some(n) = patch.connectors {
        refuse_orphaning(&api, &id, n).await?;
    }
    let Some(record) = api
        .store
        .set_charger_registration(&id, RegistrationState::Accepted, &patch)
        .await?
    else {
        return Err(ApiError::NoSuchCharger(raw));
    };
    tracing::info!(charger = %id, "charger accepted by the operator");
    if api.central.sessions.is_online(&id) && !api.central.sessions.is_booted(&id) {
        // Not awaited: the operator's answer does not hang on the charger. A charger that
        // ignores it still comes into service at its next Boot.
        let central = api.central.clone();
        let charger = id.clone();
        tokio::spawn(async move {
            let trigger = TriggerMessage {
                requested_message: MessageTrigger::BootNotification,
                connector_id: None,
            };
            match central.sessions.call(&charger, &trigger).await {
                Ok(answer) => tracing::info!(
                    charger = %charger,
                    status = answer.status.as_str(),
                    "TriggerMessage(BootNotification) answered"
                ),
                Err(e) => tracing::warn!(
                    charger = %charger,
                    failure = e.label(),
                    "TriggerMessage(BootNotification) failed; it comes in at its next Boot"
                ),
            }
        });
    }
    Ok(Json(api.view(record)))
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/reject",
    tag = "chargers",
    operation_id = "rejectCharger",
    summary = "Reject a charger",
    description = "Operator only. The charger stays listed (`state: rejected`, so it is not \
        recorded again as pending) and keeps being let in at the upgrade, but every \
        BootNotification is answered Rejected with the heartbeat interval as its wait, and it is \
        sent no command and cannot be booked. When connected its socket is closed (1008), so it \
        boots again and is told. Accept it later to bring it in, or delete it. Appends \
        `ChargerRejected`.",
    params(("id" = String, Path, description = "The charge box id")),
    responses(
        (status = 200, description = "The charger, now rejected", body = ChargerView),
        (status = 404, description = "No such charger",
            body = Problem, content_type = "application/problem+json"),
        (
            status = 409,
            description = "The charger has live reservations (BOOKED or CHARGING_STARTED); cancel \
                them first",
            body = Problem, content_type = "application/problem+json"
        )
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn reject(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<Json<ChargerView>, ApiError> {
    let id = path_id(&raw)?;
    let Some(record) = api
        .store
        .set_charger_registration(&id, RegistrationState::Rejected, &ChargerPatch::default())
        .await?
    else {
        return Err(ApiError::NoSuchCharger(raw));
    };
    tracing::info!(charger = %id, "charger rejected by the operator");
    api.central.end_charger(&id, EndReason::Rejected);
    Ok(Json(api.view(record)))
}
