//! The OpenAPI contract against the running server: `/openapi.json` documents exactly the routes
//! the server answers (probed, so an undocumented route or method fails), every failure with the
//! problem+json schema, and real answers — every status a scenario provokes — validate against
//! the documented schemas. `/docs` serves Swagger UI and all its assets from the binary.

use std::collections::BTreeSet;

use crate::support::{TestApp, spawn_app};
use echarging::domain::reservation::{ChargerAck, ReservationStatus};
use reqwest::Method;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// Every operation the server has. Adding a route means documenting it and listing it here.
const DOCUMENTED: &[(&str, &str)] = &[
    ("GET", "/api/v1/chargers"),
    ("POST", "/api/v1/chargers"),
    ("GET", "/api/v1/chargers/{id}"),
    ("PATCH", "/api/v1/chargers/{id}"),
    ("DELETE", "/api/v1/chargers/{id}"),
    ("POST", "/api/v1/chargers/{id}/accept"),
    ("POST", "/api/v1/chargers/{id}/reject"),
    ("GET", "/api/v1/chargers/{id}/security-events"),
    ("POST", "/api/v1/customers"),
    ("GET", "/api/v1/customers/{id}"),
    ("PATCH", "/api/v1/customers/{id}"),
    ("DELETE", "/api/v1/customers/{id}"),
    ("POST", "/api/v1/customers/{id}/id-tags"),
    ("PATCH", "/api/v1/customers/{id}/id-tags/{idTag}"),
    ("DELETE", "/api/v1/customers/{id}/id-tags/{idTag}"),
    ("POST", "/api/v1/customers/{id}/token"),
    ("GET", "/api/v1/reservations"),
    ("POST", "/api/v1/reservations"),
    ("GET", "/api/v1/reservations/{id}"),
    ("DELETE", "/api/v1/reservations/{id}"),
    ("POST", "/api/v1/chargers/{id}/remote-start"),
    ("POST", "/api/v1/chargers/{id}/remote-stop"),
    ("GET", "/api/v1/transactions"),
    ("GET", "/api/v1/transactions/{id}"),
    ("POST", "/api/v1/chargers/{id}/ocpp/{action}"),
    ("POST", "/api/v1/chargers/{id}/reset"),
    ("POST", "/api/v1/chargers/{id}/unlock"),
    ("POST", "/api/v1/chargers/{id}/availability"),
    ("POST", "/api/v1/chargers/{id}/trigger"),
    ("POST", "/api/v1/chargers/{id}/security-profile"),
    ("GET", "/api/v1/chargers/{id}/configuration"),
    ("POST", "/api/v1/chargers/{id}/configuration/refresh"),
    ("POST", "/api/v1/chargers/{id}/local-list/sync"),
    ("POST", "/api/v1/firmware"),
    ("GET", "/api/v1/firmware"),
    ("POST", "/api/v1/chargers/{id}/firmware-update"),
    ("POST", "/api/v1/chargers/{id}/diagnostics"),
    ("GET", "/api/v1/chargers/{id}/diagnostics"),
    ("GET", "/api/v1/chargers/{id}/diagnostics/{file}"),
    ("GET", "/files/firmware/{token}/{name}"),
    ("PUT", "/files/diagnostics/{charger}/{token}"),
    ("POST", "/files/diagnostics/{charger}/{token}"),
    ("PUT", "/files/diagnostics/{charger}/{token}/{file}"),
    ("POST", "/files/diagnostics/{charger}/{token}/{file}"),
    ("POST", "/api/v1/fleet/commands"),
    ("GET", "/api/v1/fleet/commands"),
    ("GET", "/api/v1/fleet/commands/{job}"),
    ("GET", "/api/v1/fleet/configuration-policy"),
    ("PUT", "/api/v1/fleet/configuration-policy"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/me/events"),
    ("GET", "/api/v1/customers/{id}/mypage"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/ocpp/{chargeBoxId}"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
];

/// Paths probed with every method: the documented ones plus routes api.md names or a client
/// might guess. `(template, concrete)`.
const PROBED: &[(&str, &str)] = &[
    ("/api/v1/chargers", "/api/v1/chargers"),
    ("/api/v1/chargers/{id}", "/api/v1/chargers/CP-probe"),
    (
        "/api/v1/chargers/{id}/security-events",
        "/api/v1/chargers/CP-probe/security-events",
    ),
    ("/api/v1/customers", "/api/v1/customers"),
    ("/api/v1/customers/{id}", "/api/v1/customers/1"),
    (
        "/api/v1/customers/{id}/id-tags",
        "/api/v1/customers/1/id-tags",
    ),
    (
        "/api/v1/customers/{id}/id-tags/{idTag}",
        "/api/v1/customers/1/id-tags/TAG-1",
    ),
    ("/api/v1/customers/{id}/token", "/api/v1/customers/1/token"),
    ("/api/v1/reservations", "/api/v1/reservations"),
    ("/api/v1/reservations/{id}", "/api/v1/reservations/1"),
    ("/healthz", "/healthz"),
    ("/readyz", "/readyz"),
    ("/ocpp/{chargeBoxId}", "/ocpp/CP-probe"),
    ("/openapi.json", "/openapi.json"),
    ("/docs", "/docs"),
    ("/metrics", "/metrics"),
    ("/api/v1/me", "/api/v1/me"),
    ("/api/v1/me/events", "/api/v1/me/events"),
    ("/me", "/me"),
    (
        "/api/v1/customers/{id}/mypage",
        "/api/v1/customers/1/mypage",
    ),
    (
        "/api/v1/chargers/{id}/remote-start",
        "/api/v1/chargers/CP-probe/remote-start",
    ),
    (
        "/api/v1/chargers/{id}/remote-stop",
        "/api/v1/chargers/CP-probe/remote-stop",
    ),
    (
        "/api/v1/chargers/{id}/accept",
        "/api/v1/chargers/CP-probe/accept",
    ),
    (
        "/api/v1/chargers/{id}/reject",
        "/api/v1/chargers/CP-probe/reject",
    ),
    ("/api/v1/transactions", "/api/v1/transactions"),
    ("/api/v1/transactions/{id}", "/api/v1/transactions/1"),
    (
        "/api/v1/chargers/{id}/ocpp/{action}",
        "/api/v1/chargers/CP-probe/ocpp/Reset",
    ),
    (
        "/api/v1/chargers/{id}/reset",
        "/api/v1/chargers/CP-probe/reset",
    ),
    (
        "/api/v1/chargers/{id}/unlock",
        "/api/v1/chargers/CP-probe/unlock",
    ),
    (
        "/api/v1/chargers/{id}/availability",
        "/api/v1/chargers/CP-probe/availability",
    ),
    (
        "/api/v1/chargers/{id}/trigger",
        "/api/v1/chargers/CP-probe/trigger",
    ),
    (
        "/api/v1/chargers/{id}/security-profile",
        "/api/v1/chargers/CP-probe/security-profile",
    ),
    (
        "/api/v1/chargers/{id}/configuration",
        "/api/v1/chargers/CP-probe/configuration",
    ),
    (
        "/api/v1/chargers/{id}/configuration/refresh",
        "/api/v1/chargers/CP-probe/configuration/refresh",
    ),
    (
        "/api/v1/chargers/{id}/local-list/sync",
        "/api/v1/chargers/CP-probe/local-list/sync",
    ),
    ("/api/v1/firmware", "/api/v1/firmware"),
    (
        "/api/v1/chargers/{id}/firmware-update",
        "/api/v1/chargers/CP-probe/firmware-update",
    ),
    (
        "/api/v1/chargers/{id}/diagnostics",
        "/api/v1/chargers/CP-probe/diagnostics",
    ),
    (
        "/api/v1/chargers/{id}/diagnostics/{file}",
        "/api/v1/chargers/CP-probe/diagnostics/x.log",
    ),
    (
        "/files/firmware/{token}/{name}",
        "/files/firmware/00000000000000000000000000000000/x.bin",
    ),
    (
        "/files/diagnostics/{charger}/{token}",
        "/files/diagnostics/CP-probe/00000000000000000000000000000000",
    ),
    (
        "/files/diagnostics/{charger}/{token}/{file}",
        "/files/diagnostics/CP-probe/00000000000000000000000000000000/x.log",
    ),
    ("/api/v1/fleet/commands", "/api/v1/fleet/commands"),
    ("/api/v1/fleet/commands/{job}", "/api/v1/fleet/commands/1"),
    (
        "/api/v1/fleet/configuration-policy",
        "/api/v1/fleet/configuration-policy",
    ),
    ("/api/v1/events", "/api/v1/events"),
    ("/api/v1", "/api/v1"),
    ("/console", "/console"),
];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Operations that cannot fail with a 4xx.
const NO_CLIENT_ERRORS: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
];

/// Failures that are documented, deliberately, as something other than problem+json.
const NOT_PROBLEM_JSON: &[(&str, &str, &str)] = &[
    // axum's WebSocket handshake rejection, before any of our code answers.
    ("GET", "/ocpp/{chargeBoxId}", "400"),
    // Probes read a plain JSON reason.
    ("GET", "/readyz", "503"),
];

const PROBLEM_REF: &str = "#/components/schemas/Problem";

pub(crate) async fn fetch_spec(app: &TestApp) -> Value {
    let r = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    r.json().await.unwrap()
}

fn operations(spec: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &spec["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    op
}

/// Whether the server has a route for `method path`: axum answers an unrouted path with its
/// fallback (compared with a path that cannot exist) and a routed path's other methods with 405.
async fn served(app: &TestApp, unrouted: &(u16, String), method: &str, path: &str) -> bool {
    let r = app
        .http
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            app.url(path),
        )
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap().replace(path, "{path}");
    status != 405 && (status, body) != *unrouted
}

#[tokio::test]
async fn openapi_json_documents_exactly_the_routes_the_server_answers() {
    let app = spawn_app().await;
    let spec = fetch_spec(&app).await;
    let version = spec["openapi"].as_str().unwrap();
    assert!(version.starts_with("3."), "openapi {version}");
    assert_eq!(spec["info"]["title"], "echarging");
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
    let description = spec["info"]["description"].as_str().unwrap();
    for needle in ["Bearer", "problem+json", "404", "existence is not"] {
        assert!(description.contains(needle), "info.description: {needle}");
    }

    let expected: BTreeSet<(String, String)> = DOCUMENTED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(operations(&spec), expected, "documented operations");

    // Probe the server: every documented operation is served, nothing else is.
    let nowhere = "/no-such-route-7f3a";
    let r = app.http.get(app.url(nowhere)).send().await.unwrap();
    let unrouted = (
        r.status().as_u16(),
        r.text().await.unwrap().replace(nowhere, "{path}"),
    );
    assert_eq!(unrouted.0, 404);
    let mut wrong = Vec::new();
    for (template, concrete) in PROBED {
        for method in METHODS {
            let documented = expected.contains(&(method.to_string(), template.to_string()));
            if served(&app, &unrouted, method, concrete).await != documented {
                wrong.push(format!(
                    "{method} {concrete}: served = {}, documented = {documented}",
                    !documented
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "routes and spec disagree:\n{}",
        wrong.join("\n")
    );
    for (_, template) in &expected {
        assert!(
            PROBED.iter().any(|(t, _)| t == template),
            "{template} is documented but never probed; add it to PROBED"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn every_operation_documents_its_failures_as_problem_json() {
    let app = spawn_app().await;
    let spec = fetch_spec(&app).await;
    let tags: BTreeSet<&str> = spec["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        BTreeSet::from([
            "chargers",
            "customers",
            "reservations",
            "charging",
            "toolbox",
            "files",
            "fleet",
            "my page",
            "operations",
            "ocpp"
        ])
    );
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["operatorOrCustomerToken"]["type"], "http");
    assert_eq!(schemes["operatorOrCustomerToken"]["scheme"], "bearer");
    assert!(
        schemes["operatorOrCustomerToken"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("operator") && d.contains("customer"))
    );
    assert_eq!(schemes["chargerBasic"]["scheme"], "basic");

    let mut operation_ids = BTreeSet::new();
    for (method, path) in operations(&spec) {
        let op = operation(&spec, &method, &path);
        let name = format!("{method} {path}");
        assert!(op["summary"].is_string(), "{name}: summary");
        let id = op["operationId"].as_str().unwrap().to_string();
        assert!(operation_ids.insert(id), "{name}: duplicate operationId");
        let tag = op["tags"][0].as_str().unwrap_or_default();
        assert!(tags.contains(tag), "{name}: tag {tag:?}");

        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('2') || s == "101" || s == "303"),
            "{name}: no success answer"
        );
        let mut client_errors = 0;
        for (status, response) in responses {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{name} {status}: description"
            );
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            if NOT_PROBLEM_JSON.contains(&(method.as_str(), path.as_str(), status.as_str())) {
                continue;
            }
            client_errors += usize::from(status.starts_with('4'));
            let content = response["content"].as_object();
            let schema = content.and_then(|c| c.get("application/problem+json"));
            assert_eq!(
                content.map(|c| c.len()),
                Some(1),
                "{name} {status}: one content type"
            );
            assert_eq!(
                schema.map(|s| &s["schema"]["$ref"]),
                Some(&json!(PROBLEM_REF)),
                "{name} {status}: application/problem+json with the Problem schema"
            );
        }
        if !NO_CLIENT_ERRORS.contains(&(method.as_str(), path.as_str())) {
            assert!(client_errors > 0, "{name}: no problem+json 4xx documented");
        }
        let bearer = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("operatorOrCustomerToken").is_some()));
        if bearer {
            assert!(
                responses.contains_key("401"),
                "{name}: bearer auth but no 401"
            );
        }
        if path.starts_with("/api/") {
            assert!(
                bearer,
                "{name}: REST without the bearer security requirement"
            );
            assert!(responses.contains_key("500"), "{name}: no 500");
            // Load shedding: every REST operation may be refused at once with Retry-After.
            assert!(
                responses["503"]["headers"]["Retry-After"].is_object(),
                "{name}: no 503 with Retry-After"
            );
        }
        // Files (firmware uploads, chargers' diagnostics) come as raw bytes, not JSON.
        let json_body = op["requestBody"]["content"]["application/json"].is_object();
        if op.get("requestBody").is_some() && json_body {
            let body = &op["requestBody"];
            // Accepting a charger may leave the body out; every other body is required.
            let optional = name == "POST /api/v1/chargers/{id}/accept";
            assert_eq!(
                body["required"] == true,
                !optional,
                "{name}: request body required: {body}"
            );
            let schema = &body["content"]["application/json"]["schema"];
            assert!(
                schema["$ref"].is_string()
                    // The key policy is a map of configuration keys to values.
                    || (name == "PUT /api/v1/fleet/configuration-policy"
                        && schema["type"] == "object")
                    || (optional
                        && schema["oneOf"]
                            .as_array()
                            .is_some_and(|o| o.iter().any(|s| s["$ref"].is_string()))),
                "{name}: {schema}"
            );
            for status in ["400", "415", "422"] {
                assert!(responses.contains_key(status), "{name}: no {status}");
            }
        }
    }
    app.shutdown().await;
}

fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
    let s = &spec["components"]["schemas"][name];
    assert!(s.is_object(), "schema {name} missing");
    s
}

fn required(spec: &Value, name: &str) -> BTreeSet<String> {
    schema(spec, name)["required"]
        .as_array()
        .map(|r| r.iter().map(|f| f.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn key_schemas_match_the_wire_format() {
    let app = spawn_app().await;
    let spec = fetch_spec(&app).await;
    let view_fields = [
        "id",
        "chargerId",
        "connectorId",
        "customerId",
        "idTag",
        "start",
        "end",
        "status",
        "chargerAck",
        "createdAt",
        "updatedAt",
    ];
    assert_eq!(required(&spec, "ReservationView"), set(&view_fields));
    assert_eq!(
        required(&spec, "ChargerView"),
        set(&[
            "id",
            "state",
            "connectors",
            "passwordProtected",
            "securityProfile",
            "online",
            "breaker",
            "connectorStatus",
            "deviations",
            "createdAt",
            "updatedAt"
        ])
    );
    for optional in ["lastSeen", "vendor", "model", "firmwareVersion", "name"] {
        assert!(
            schema(&spec, "ChargerView")["properties"][optional].is_object(),
            "ChargerView.{optional}"
        );
    }
    assert_eq!(
        required(&spec, "ConnectorStatusView"),
        set(&["connectorId", "status", "errorCode", "updatedAt"])
    );
    assert_eq!(
        required(&spec, "Problem"),
        set(&["type", "title", "status"])
    );
    let problem = &schema(&spec, "Problem")["properties"];
    assert!(problem["field"].is_object() && problem["conflict"].is_object());
    assert_eq!(required(&spec, "ConflictSlot"), set(&["start", "end"]));
    assert_eq!(
        required(&spec, "BookRequest"),
        set(&["chargerId", "start", "end"])
    );
    assert_eq!(required(&spec, "CreateCharger"), set(&["id", "connectors"]));
    assert_eq!(required(&spec, "UpdateCharger"), set(&[]));
    assert_eq!(required(&spec, "CreateCustomer"), set(&["name", "idTags"]));
    assert_eq!(
        required(&spec, "CustomerView"),
        set(&["id", "name", "idTags", "tags", "createdAt"])
    );
    for body in [
        "BookRequest",
        "CreateCharger",
        "UpdateCharger",
        "CreateCustomer",
    ] {
        assert_eq!(
            schema(&spec, body)["additionalProperties"],
            false,
            "{body} refuses unknown members"
        );
    }
    // Times are RFC 3339 strings.
    for (name, field) in [
        ("ReservationView", "start"),
        ("ReservationView", "createdAt"),
        ("BookRequest", "end"),
        ("ChargerView", "lastSeen"),
        ("CustomerView", "createdAt"),
        ("ConflictSlot", "start"),
    ] {
        assert_eq!(
            schema(&spec, name)["properties"][field]["format"],
            "date-time",
            "{name}.{field}"
        );
    }
    // The enums carry the exact wire spellings.
    let wire = |all: Vec<&str>| json!(all);
    assert_eq!(
        schema(&spec, "ReservationStatus")["enum"],
        wire(ReservationStatus::ALL.iter().map(|s| s.as_str()).collect())
    );
    assert_eq!(
        schema(&spec, "ChargerAck")["enum"],
        wire(ChargerAck::ALL.iter().map(|s| s.as_str()).collect())
    );
    app.shutdown().await;
}

/// Checks real exchanges against the spec: the status is documented for the operation, the
/// content type is the documented one, and the body validates against the documented schema.
pub(crate) struct Contract {
    pub(crate) spec: Value,
}

impl Contract {
    fn validate(&self, schema: &Value, instance: &Value, what: &str) {
        let mut root = schema.clone();
        root["components"] = self.spec["components"].clone();
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{what}: schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: {instance:#}\n{}",
            errors.join("\n")
        );
    }

    /// A request body the server accepts must match the documented request schema.
    pub(crate) fn request(&self, method: &str, path: &str, body: &Value) {
        let op = operation(&self.spec, method, path);
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        self.validate(schema, body, &format!("{method} {path} request"));
    }

    /// Check the answer; returns its JSON body (`Null` when there is none).
    pub(crate) async fn answer(&self, method: &str, path: &str, r: reqwest::Response) -> Value {
        let status = r.status().as_u16().to_string();
        let what = format!("{method} {path} → {status}");
        let documented = &operation(&self.spec, method, path)["responses"][&status];
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let text = r.text().await.unwrap();
        assert!(documented.is_object(), "{what} is not documented: {text}");
        let Some(content) = documented["content"].as_object() else {
            assert!(text.is_empty(), "{what}: documented without a body: {text}");
            return Value::Null;
        };
        let ct = ct.unwrap_or_else(|| panic!("{what}: no content-type"));
        let essence = ct.split(';').next().unwrap().trim();
        let media = content
            .get(essence)
            .unwrap_or_else(|| panic!("{what}: {essence} is not documented: {content:?}"));
        if essence == "text/plain" {
            return Value::String(text);
        }
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
        self.validate(&media["schema"], &body, &what);
        body
    }
}

fn slot(hours_from_now: i64, len_hours: i64) -> (String, String) {
    let base =
        OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::hours(hours_from_now);
    let end = base + Duration::hours(len_hours);
    (
        base.format(&Rfc3339).unwrap(),
        end.format(&Rfc3339).unwrap(),
    )
}

#[tokio::test]
async fn real_answers_match_the_documented_statuses_and_schemas() {
    let app = spawn_app().await;
    let c = Contract {
        spec: fetch_spec(&app).await,
    };
    let op = |m: Method, p: &str| app.api(m, p);
    let anon = |m: Method, p: &str| app.http.request(m, app.url(p));
    let as_token =
        |t: &str, m: Method, p: &str| app.http.request(m, app.url(p)).bearer_auth(t.to_string());

    // Chargers.
    let (chargers, charger) = ("/api/v1/chargers", "/api/v1/chargers/{id}");
    let body = json!({"id": "CP-1", "name": "Bay 1", "connectors": 2});
    c.request("POST", chargers, &body);
    let r = op(Method::POST, chargers).json(&body).send().await.unwrap();
    let created = c.answer("POST", chargers, r).await;
    assert_eq!(created["id"], "CP-1");
    let r = op(Method::POST, chargers).json(&body).send().await.unwrap();
    c.answer("POST", chargers, r).await; // 409
    let r = op(Method::POST, chargers)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    c.answer("POST", chargers, r).await; // 400
    let r = op(Method::POST, chargers)
        .json(&json!({"id": "CP-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(c.answer("POST", chargers, r).await["field"], "connectors"); // 422
    let r = op(Method::POST, chargers)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    c.answer("POST", chargers, r).await; // 415
    let r = anon(Method::POST, chargers)
        .json(&body)
        .send()
        .await
        .unwrap();
    c.answer("POST", chargers, r).await; // 401

    // A booted charger, so the view carries boot info and connector status.
    let pw = "correct-horse-battery";
    let r = op(Method::POST, chargers)
        .json(&json!({"id": "CP-LIVE", "connectors": 1, "password": pw}))
        .send()
        .await
        .unwrap();
    c.answer("POST", chargers, r).await;
    let mut cfg = app.charger_config("CP-LIVE");
    cfg.password = Some(pw.into());
    let mut live = echarging_sim::Charger::connect(&cfg).await.unwrap();
    live.boot().await.unwrap();
    live.status_notification(1, "Available", "NoError")
        .await
        .unwrap();
    let view = app
        .wait_for_view("CP-LIVE", |v| {
            v["online"] == true
                && v["connectorStatus"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
        })
        .await;
    let r = op(Method::GET, "/api/v1/chargers/CP-LIVE")
        .send()
        .await
        .unwrap();
    let shown = c.answer("GET", charger, r).await;
    assert_eq!(shown["vendor"], view["vendor"]);

    let r = op(Method::GET, "/api/v1/chargers?limit=10&online=true")
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.answer("GET", chargers, r).await.as_array().unwrap().len(),
        1
    );
    let r = op(Method::GET, "/api/v1/chargers?bogus=1")
        .send()
        .await
        .unwrap();
    c.answer("GET", chargers, r).await; // 400
    let r = op(Method::GET, "/api/v1/chargers?limit=0")
        .send()
        .await
        .unwrap();
    c.answer("GET", chargers, r).await; // 422
    let r = op(Method::GET, "/api/v1/chargers/CP-NONE")
        .send()
        .await
        .unwrap();
    c.answer("GET", charger, r).await; // 404
    let patch = json!({"name": null, "connectors": 3, "password": null});
    c.request("PATCH", charger, &patch);
    let r = op(Method::PATCH, "/api/v1/chargers/CP-1")
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(c.answer("PATCH", charger, r).await["connectors"], 3);
    let r = op(Method::PATCH, "/api/v1/chargers/CP-1")
        .json(&json!({"connectors": 0}))
        .send()
        .await
        .unwrap();
    c.answer("PATCH", charger, r).await; // 422

    // The OCPP gate, before any WebSocket: 404, 401, then axum's 400 for a plain GET.
    let ocpp = "/ocpp/{chargeBoxId}";
    let r = anon(Method::GET, "/ocpp/CP-NONE").send().await.unwrap();
    c.answer("GET", ocpp, r).await;
    let r = anon(Method::GET, "/ocpp/CP-LIVE")
        .basic_auth("CP-LIVE", Some("wrong-password-123"))
        .send()
        .await
        .unwrap();
    c.answer("GET", ocpp, r).await;
    let r = anon(Method::GET, "/ocpp/CP-1").send().await.unwrap();
    assert_eq!(r.status(), 400);
    c.answer("GET", ocpp, r).await;

    // Customers.
    let (customers, customer) = ("/api/v1/customers", "/api/v1/customers/{id}");
    let mut made = Vec::new();
    for (name, tag) in [("Ada", "ADA-1"), ("Bob", "BOB-1")] {
        let body = json!({"name": name, "idTags": [tag]});
        c.request("POST", customers, &body);
        let r = op(Method::POST, customers)
            .json(&body)
            .send()
            .await
            .unwrap();
        made.push(c.answer("POST", customers, r).await);
    }
    let (ada, bob) = (&made[0], &made[1]);
    let ada_token = ada["token"].as_str().unwrap();
    let r = op(Method::POST, customers)
        .json(&json!({"name": "Eve", "idTags": ["ada-1"]}))
        .send()
        .await
        .unwrap();
    c.answer("POST", customers, r).await; // 409
    let r = op(Method::POST, customers)
        .json(&json!({"name": "Eve", "idTags": []}))
        .send()
        .await
        .unwrap();
    c.answer("POST", customers, r).await; // 422
    let r = as_token(ada_token, Method::POST, customers)
        .json(&json!({"name": "Eve", "idTags": ["EVE-1"]}))
        .send()
        .await
        .unwrap();
    c.answer("POST", customers, r).await; // 401: operator only
    let own = format!("/api/v1/customers/{}", ada["id"]);
    let r = as_token(ada_token, Method::GET, &own).send().await.unwrap();
    assert!(c.answer("GET", customer, r).await.get("token").is_none());
    let other = format!("/api/v1/customers/{}", bob["id"]);
    let r = as_token(ada_token, Method::GET, &other)
        .send()
        .await
        .unwrap();
    c.answer("GET", customer, r).await; // 404, not 403
    let r = anon(Method::GET, &own).send().await.unwrap();
    c.answer("GET", customer, r).await; // 401

    // Reservations.
    let (reservations, reservation) = ("/api/v1/reservations", "/api/v1/reservations/{id}");
    let (start, end) = slot(1, 1);
    let body = json!({"chargerId": "CP-1", "connectorId": 1, "start": start, "end": end});
    c.request("POST", reservations, &body);
    let r = as_token(ada_token, Method::POST, reservations)
        .json(&body)
        .send()
        .await
        .unwrap();
    let booked = c.answer("POST", reservations, r).await;
    assert_eq!(
        (&booked["status"], &booked["chargerAck"]),
        (&json!("BOOKED"), &json!("PENDING"))
    );
    let by_operator = json!({"chargerId": "CP-1", "connectorId": 1, "customerId": bob["id"],
        "idTag": "BOB-1", "start": start, "end": end});
    c.request("POST", reservations, &by_operator);
    let r = op(Method::POST, reservations)
        .json(&by_operator)
        .send()
        .await
        .unwrap();
    let clash = c.answer("POST", reservations, r).await; // 409 with the taken slot
    assert!(clash["conflict"]["start"].is_string(), "{clash}");
    let r = as_token(ada_token, Method::POST, reservations)
        .json(&json!({"chargerId": "CP-1", "customerId": bob["id"], "start": start, "end": end}))
        .send()
        .await
        .unwrap();
    c.answer("POST", reservations, r).await; // 403
    let r = as_token(ada_token, Method::POST, reservations)
        .json(&json!({"chargerId": "CP-1", "start": end, "end": start}))
        .send()
        .await
        .unwrap();
    assert_eq!(c.answer("POST", reservations, r).await["field"], "end"); // 422
    let r = as_token(ada_token, Method::POST, reservations)
        .header("content-type", "application/json")
        .body("[1,")
        .send()
        .await
        .unwrap();
    c.answer("POST", reservations, r).await; // 400

    let path = format!("/api/v1/reservations/{}", booked["id"]);
    let r = as_token(ada_token, Method::GET, &path)
        .send()
        .await
        .unwrap();
    c.answer("GET", reservation, r).await;
    let bob_token = bob["token"].as_str().unwrap();
    let r = as_token(bob_token, Method::GET, &path)
        .send()
        .await
        .unwrap();
    c.answer("GET", reservation, r).await; // 404: someone else's
    let r = as_token(
        ada_token,
        Method::GET,
        "/api/v1/reservations?status=BOOKED&limit=5",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        c.answer("GET", reservations, r)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let query = format!("/api/v1/reservations?customerId={}", bob["id"]);
    let r = as_token(ada_token, Method::GET, &query)
        .send()
        .await
        .unwrap();
    c.answer("GET", reservations, r).await; // 403
    let r = op(Method::GET, "/api/v1/reservations?from=yesterday")
        .send()
        .await
        .unwrap();
    c.answer("GET", reservations, r).await; // 422
    let r = op(Method::DELETE, "/api/v1/chargers/CP-1")
        .send()
        .await
        .unwrap();
    c.answer("DELETE", charger, r).await; // 409: live reservation
    let r = as_token(ada_token, Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.answer("DELETE", reservation, r).await["status"],
        "CANCELLED"
    );
    let r = as_token(ada_token, Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    c.answer("DELETE", reservation, r).await; // 409
    let r = as_token(bob_token, Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    c.answer("DELETE", reservation, r).await; // 404
    let r = op(Method::DELETE, "/api/v1/chargers/CP-1")
        .send()
        .await
        .unwrap();
    c.answer("DELETE", charger, r).await; // 204
    let r = op(Method::DELETE, "/api/v1/chargers/CP-1")
        .send()
        .await
        .unwrap();
    c.answer("DELETE", charger, r).await; // 404

    // Operations.
    let r = anon(Method::GET, "/healthz").send().await.unwrap();
    c.answer("GET", "/healthz", r).await;
    let r = anon(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(c.answer("GET", "/readyz", r).await["chargersOnline"], 1);
    let r = anon(Method::GET, "/metrics").send().await.unwrap();
    let text = c.answer("GET", "/metrics", r).await;
    assert!(
        text.as_str().unwrap().contains("# HELP echarging_"),
        "{text}"
    );
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/docs/");
    c.answer("GET", "/docs", r).await;
    drop(live);
    app.shutdown().await;
}

#[tokio::test]
async fn docs_page_and_its_assets_are_served_from_the_binary() {
    let app = spawn_app().await;
    // `/docs` (redirected) and `/docs/` both give the page.
    for path in ["/docs", "/docs/"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.url().path(), "/docs/");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
    }
    let html = app
        .http
        .get(app.url("/docs/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Every asset the page loads is relative, hence from this server, and is served.
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for piece in html.split(attr).skip(1) {
            let url = piece.split('"').next().unwrap();
            assert!(
                !url.contains("://") && !url.starts_with("//"),
                "{url} is not local"
            );
            assets.push(url.trim_start_matches("./").to_string());
        }
    }
    for needed in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        assert!(
            assets.iter().any(|a| a == needed),
            "{needed} not referenced"
        );
    }
    for asset in &assets {
        let r = app
            .http
            .get(app.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "/docs/{asset}");
        assert!(
            !r.bytes().await.unwrap().is_empty(),
            "/docs/{asset} is empty"
        );
    }
    // The initializer points at our document and reaches nothing outside (no validator badge).
    let init = app
        .http
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("\"/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
    assert!(
        !init.contains("http://") && !init.contains("https://"),
        "{init}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn charging_and_my_page_answers_match_their_schemas() {
    let app = spawn_app().await;
    let c = Contract {
        spec: fetch_spec(&app).await,
    };
    let op = |m: Method, p: &str| app.api(m, p);
    let as_token =
        |t: &str, m: Method, p: &str| app.http.request(m, app.url(p)).bearer_auth(t.to_string());
    app.register_charger("CP-TX", 2, None).await;
    let customer: Value = op(Method::POST, "/api/v1/customers")
        .json(&json!({"name": "Ada", "idTags": ["ADA-TX"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = customer["token"].as_str().unwrap();
    let (start, end) = slot(0, 1);
    let booked: Value = as_token(token, Method::POST, "/api/v1/reservations")
        .json(&json!({"chargerId": "CP-TX", "connectorId": 1, "start": start, "end": end}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rid = booked["id"].as_i64().unwrap();

    // Remote start on a charger that is not connected: 409; without an idTag to use: 422.
    let (remote_start, remote_stop) = (
        "/api/v1/chargers/{id}/remote-start",
        "/api/v1/chargers/{id}/remote-stop",
    );
    let body = json!({"connectorId": 1});
    c.request("POST", remote_start, &body);
    let r = as_token(token, Method::POST, "/api/v1/chargers/CP-TX/remote-start")
        .json(&body)
        .send()
        .await
        .unwrap();
    c.answer("POST", remote_start, r).await; // 409
    let r = op(Method::POST, "/api/v1/chargers/CP-TX/remote-start")
        .json(&json!({"connectorId": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(c.answer("POST", remote_start, r).await["field"], "idTag"); // 422
    let r = op(Method::POST, "/api/v1/chargers/CP-NONE/remote-start")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    c.answer("POST", remote_start, r).await; // 404

    // The charger boots, takes the reservation, charges and stops.
    let mut cp = app.connect("CP-TX").await;
    cp.boot().await.unwrap();
    let (call, action, _) = cp
        .next_call(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(action, "ReserveNow");
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let started = cp
        .call_result(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "ADA-TX", "meterStart": 10, "reservationId": rid,
                "timestamp": now.format(&Rfc3339).unwrap()}),
        )
        .await
        .unwrap();
    let tx = started["transactionId"].as_i64().unwrap();
    let (transactions, transaction) = ("/api/v1/transactions", "/api/v1/transactions/{id}");
    let r = op(Method::GET, &format!("/api/v1/transactions/{tx}"))
        .send()
        .await
        .unwrap();
    assert_eq!(c.answer("GET", transaction, r).await["status"], "ACTIVE");
    cp.call_result(
        "StopTransaction",
        json!({"transactionId": tx, "meterStop": 510, "timestamp": now.format(&Rfc3339).unwrap()}),
    )
    .await
    .unwrap();
    let r = op(Method::GET, "/api/v1/transactions?chargerId=CP-TX")
        .send()
        .await
        .unwrap();
    assert_eq!(c.answer("GET", transactions, r).await[0]["energyWh"], 500);
    let r = op(Method::GET, "/api/v1/transactions?status=NOPE")
        .send()
        .await
        .unwrap();
    c.answer("GET", transactions, r).await; // 422
    let r = op(Method::GET, "/api/v1/transactions/999")
        .send()
        .await
        .unwrap();
    c.answer("GET", transaction, r).await; // 404
    let body = json!({"transactionId": tx});
    c.request("POST", remote_stop, &body);
    let r = op(Method::POST, "/api/v1/chargers/CP-TX/remote-stop")
        .json(&body)
        .send()
        .await
        .unwrap();
    c.answer("POST", remote_stop, r).await; // 409: not running
    let r = op(Method::POST, "/api/v1/chargers/CP-TX/remote-stop")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    c.answer("POST", remote_stop, r).await; // 422

    // My page, once the projection has the ended charge.
    let (me, page) = ("/api/v1/me", "/api/v1/customers/{id}/mypage");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let shown = loop {
        let r = as_token(token, Method::GET, me).send().await.unwrap();
        let shown = c.answer("GET", me, r).await;
        if shown["reservations"][0]["status"] == "CHARGING_ENDED" {
            break shown;
        }
        assert!(tokio::time::Instant::now() < deadline, "{shown:#}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(shown["reservations"][0]["charging"]["energyWh"], 500);
    let r = op(
        Method::GET,
        &format!("/api/v1/customers/{}/mypage", customer["id"]),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(c.answer("GET", page, r).await, shown);
    let r = op(Method::GET, "/api/v1/customers/424242/mypage")
        .send()
        .await
        .unwrap();
    c.answer("GET", page, r).await; // 404
    let r = op(Method::GET, me).send().await.unwrap();
    c.answer("GET", me, r).await; // 403
    let r = as_token(token, Method::GET, "/api/v1/me?limit=0")
        .send()
        .await
        .unwrap();
    c.answer("GET", me, r).await; // 422
    let r = op(Method::GET, "/api/v1/me/events").send().await.unwrap();
    c.answer("GET", "/api/v1/me/events", r).await; // 403
    let r = as_token(token, Method::GET, "/api/v1/me/events")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    app.shutdown().await;
}
