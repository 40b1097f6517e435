//! The OpenAPI 3 contract of the whole server (REST, operations probes, the OCPP upgrade), built
//! from the handlers' `#[utoipa::path]` annotations and the wire types' `ToSchema` derives, so
//! the document is generated from the code rather than kept beside it. Served as
//! `/openapi.json`, with Swagger UI at `/docs` whose assets are compiled into the binary: the
//! page works with no internet access.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::commands::{self, ToolboxSchemas};
use super::{
    chargers, configuration, customers, files, fleet, local_list, mypage, reservations,
    security_events, transactions,
};
use crate::api::ops;
use crate::central::upgrade;
use crate::domain::reservation::{ChargerAck, ReservationStatus};
use crate::problem::{ConflictSlot, Problem};

/// Where the document is served.
pub const SPEC_PATH: &str = "/openapi.json";
/// Where Swagger UI is served (`/docs` redirects to `/docs/`).
pub const DOCS_PATH: &str = "/docs";

const DESCRIPTION: &str = "\
An OCPP 1.6J central system for EV chargers with a time-slot ledger that cannot double-book.

**REST** lives under `/api/v1`: JSON in camelCase, times RFC 3339 in UTC.

**Auth**: `Authorization: Bearer TOKEN`. The *operator* token may do everything. A *customer* \
token (issued once, when the operator creates the customer) may book, read and cancel only its \
own reservations and read only itself. A missing or invalid token is 401; operator-only \
endpoints answer 401 to a customer token as well. A customer token acting on another \
customer's reservation or customer record gets **404**, never 403, so existence is not \
revealed; 403 is kept for a customer naming another `customerId` in a request.

**Errors** are `application/problem+json` (RFC 9457): `{type, title, status, detail}` plus the \
extension members `field` (the request member at fault, as a path such as `idTags[1]`) and \
`conflict` (on a booking's 409: the taken slot's `start` and `end`, never its holder). A body \
that is not JSON is 400; a missing, unknown or invalid member is 422 naming it; a body sent \
with another content type is 415. A refused request changes nothing. When more REST requests \
are running than the server allows, one more is answered **503** at once with `Retry-After`.

**Operations** (`/healthz`, `/readyz`, `/metrics`) need no auth and are never refused for load. **Chargers** connect over WebSocket at \
`/ocpp/{chargeBoxId}` with subprotocol `ocpp1.6`.";

const BEARER_DESCRIPTION: &str = "\
The operator token (configured with ECHARGING_API_TOKEN, or generated at first start into the \
data folder) may do everything. A customer token (returned once by POST /api/v1/customers) acts \
for that customer only: on its own reservations and itself; another customer's answers 404. \
Operator-only endpoints (chargers, creating customers) answer 401 to a customer token.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "echarging",
        version = env!("CARGO_PKG_VERSION"),
        description = DESCRIPTION,
    ),
    paths(
        chargers::list,
        chargers::create,
        chargers::show,
        chargers::update,
        chargers::remove,
        chargers::accept,
        chargers::reject,
        security_events::list,
        customers::create,
        customers::show,
        customers::rename,
        customers::delete_customer,
        customers::add_tag,
        customers::update_tag,
        customers::remove_tag,
        customers::rotate_token,
        reservations::book,
        reservations::list,
        reservations::show,
        reservations::cancel,
        transactions::remote_start,
        transactions::remote_stop,
        transactions::list,
        transactions::show,
        commands::send_any,
        commands::reset,
        commands::unlock,
        commands::availability,
        commands::trigger,
        commands::raise_security_profile,
        configuration::show,
        configuration::refresh,
        local_list::sync,
        files::upload_firmware,
        files::list_firmware,
        files::serve_firmware,
        files::update_firmware,
        files::request_diagnostics,
        files::list_diagnostics,
        files::download_diagnostics,
        files::receive_diagnostics,
        files::receive_named_diagnostics,
        files::post_diagnostics,
        files::post_named_diagnostics,
        fleet::start,
        fleet::list,
        fleet::show,
        fleet::show_policy,
        fleet::replace_policy,
        mypage::me,
        mypage::customer_page,
        mypage::events,
        ops::healthz,
        ops::ready,
        ops::metrics,
        upgrade::upgrade,
        openapi_json,
        docs,
    ),
    components(schemas(
        chargers::ChargerView,
        chargers::ConnectorStatusView,
        chargers::DeviationView,
        chargers::ConnectorAvailabilityView,
        crate::domain::availability::Availability,
        chargers::CreateCharger,
        chargers::UpdateCharger,
        chargers::AcceptCharger,
        crate::domain::charger::RegistrationState,
        customers::CustomerView,
        customers::CreateCustomer,
        customers::TagView,
        customers::RenameCustomer,
        customers::NewTag,
        customers::UpdateTag,
        crate::domain::customer::TagStatus,
        reservations::BookRequest,
        reservations::ReservationView,
        ReservationStatus,
        ChargerAck,
        transactions::RemoteStartRequest,
        transactions::RemoteStartAnswer,
        transactions::RemoteStopRequest,
        transactions::RemoteStopAnswer,
        commands::OcppAction,
        commands::OcppRequest,
        commands::OcppAnswer,
        commands::RaiseSecurityProfile,
        commands::SecurityProfileAnswer,
        configuration::ConfigurationView,
        configuration::ConfigurationKeyView,
        chargers::LocalListView,
        security_events::SecurityEventView,
        security_events::SecuritySource,
        files::FirmwareView,
        files::FirmwareUpdateRequest,
        files::FileCommandAnswer,
        files::DiagnosticsRequest,
        files::DiagnosticsFileView,
        files::StatusTrailView,
        files::ReportedView,
        fleet::FleetCommand,
        fleet::FleetFilter,
        fleet::JobView,
        fleet::JobState,
        fleet::Outcome,
        fleet::ChargerOutcome,
        fleet::PolicyView,
        fleet::ChargerPolicyView,
        fleet::PolicyKeyView,
        crate::domain::transaction::Transaction,
        crate::domain::transaction::TransactionStatus,
        crate::domain::transaction::Authorization,
        crate::booking::mypage::MyPage,
        crate::booking::mypage::PageEntry,
        crate::booking::mypage::PageCustomer,
        crate::booking::mypage::Charging,
        Problem,
        ConflictSlot,
        ops::Health,
        ops::Readiness,
    )),
    modifiers(&SecuritySchemes, &CommonRestResponses, &ToolboxSchemas),
    tags(
        (name = "chargers",
            description = "Register and inspect chargers, with their live state (operator only)"),
        (name = "customers", description = "Drivers, their idTags and bearer tokens"),
        (name = "reservations", description = "Book, list and cancel connector time slots"),
        (name = "charging",
            description = "Remote start and stop, and the transactions chargers report"),
        (name = "toolbox",
            description = "Any OCPP command to any charger, and typed conveniences (operator only)"),
        (name = "files",
            description = "Firmware and diagnostics files hosted for chargers"),
        (name = "fleet",
            description = "One command to many chargers, and the configuration key policy (operator only)"),
        (name = "my page",
            description = "The customer's read model: bookings with live charging, and its stream"),
        (name = "operations",
            description = "Probes, this document and its docs page (no auth)"),
        (name = "ocpp", description = "The OCPP 1.6J WebSocket endpoint chargers connect to"),
    )
)]
pub struct ApiDoc;

// Documentation-only stubs: `SwaggerUi` serves these two routes, and a route listed here is
// part of the contract like any other.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    summary = "This OpenAPI document",
    description = "The OpenAPI 3 contract of every endpoint, generated from the code. No auth.",
    responses(
        (status = 200, description = "The document",
            body = Object, content_type = "application/json")
    ),
    security(())
)]
#[allow(dead_code)]
fn openapi_json() {}

#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    operation_id = "docs",
    summary = "Interactive API docs (Swagger UI)",
    description = "Redirects to `/docs/`, a Swagger UI page for this document. Its scripts and \
        styles are served from the binary under `/docs/`, so it works with no internet access. \
        Use *Authorize* with the operator or a customer token to try requests. No auth.",
    responses((status = 303, description = "See `/docs/` (text/html)",
        headers(("Location" = String, description = "`/docs/`")))),
    security(())
)]
#[allow(dead_code)]
fn docs() {}

/// The security schemes the operations refer to.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "operatorOrCustomerToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(BEARER_DESCRIPTION))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "chargerBasic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "For chargers registered with a password: username = chargeBoxId, \
                         password = the charger's password (OCPP AuthorizationKey).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The answers every `/api/` operation can give, documented once here instead of on each
/// handler: 401 (no or bad token; every REST operation needs one), 429 (too many bad tokens
/// from the address, with `Retry-After`), 500 (an internal error,
/// logged, never detailed) and 503 (shed by the `rest_max_concurrency` limit, with
/// `Retry-After`); with a request body also 408 (the body did not arrive in time) and 413 (too
/// large). A handler that documents one of these itself keeps its own wording.
struct CommonRestResponses;

impl Modify for CommonRestResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{ContentBuilder, Ref, Response, ResponseBuilder};

        let problem = |description: &str| -> ResponseBuilder {
            ResponseBuilder::new().description(description).content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
        };
        let retry_after = || {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before retrying"))
                .build()
        };
        let common: [(&str, Response); 4] = [
            (
                "401",
                problem("Missing or invalid bearer token (or not the operator's, where only the operator may act)")
                    .build(),
            ),
            (
                "429",
                problem(
                    "Too many invalid bearer tokens from this address (`auth_free_failures`): \
                     retry after `Retry-After` seconds",
                )
                .header("Retry-After", retry_after())
                .build(),
            ),
            (
                "500",
                problem("Internal error (logged, not detailed)").build(),
            ),
            (
                "503",
                problem(
                    "Overloaded: `rest_max_concurrency` requests are already running; answered \
                     at once, retry after `Retry-After` seconds",
                )
                .header("Retry-After", retry_after())
                .build(),
            ),
        ];
        let with_body: [(&str, Response); 2] = [
            (
                "408",
                problem("The body did not arrive within 10 s; the connection is closed").build(),
            ),
            ("413", problem("The body is larger than 2 MiB").build()),
        ];
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let body = operation.request_body.is_some();
                let extra = with_body.iter().filter(|_| body);
                for (status, response) in common.iter().chain(extra) {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| response.clone().into());
                }
            }
        }
    }
}

/// `GET /openapi.json` and Swagger UI under `/docs` (`/docs` itself redirects to `/docs/`).
/// The online validator badge is switched off: it is the page's only request off this server.
pub fn router() -> Router {
    SwaggerUi::new(DOCS_PATH)
        .url(SPEC_PATH, ApiDoc::openapi())
        .config(Config::default().validator_url("none"))
        .into()
}
