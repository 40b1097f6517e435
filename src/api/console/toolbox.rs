//! The charger page's toolbox: reset, unlock, change availability, trigger a message, read the
//! configuration and change one key, as CSRF-checked forms. Each sends the same typed OCPP call
//! the REST conveniences (`api::commands`, `api::configuration`) send, through
//! `central.sessions.call`, with their checks (a connector the charger has), and records the
//! answers they record (`central::availability`, `central::configuration`); then it sends the
//! browser back to the charger page with the charger's answer, or why there was none. It must
//! not record anything the REST calls do not.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;

use super::operator::{back, failure_word};
use super::{Console, OperatorSession, csrf_ok, csrf_refused, internal, when};
use crate::central::configuration::RefreshError;
use crate::central::{availability, configuration};
use crate::domain::ChargeBoxId;
use crate::domain::availability::{Availability, ConnectorAvailability};
use crate::domain::charger::ChargerRecord;
use crate::domain::configuration::ConfigurationSnapshot;
use crate::ocpp::v16::messages::{
    ChangeAvailability, ChangeConfiguration, Reset, TriggerMessage, UnlockConnector,
};
use crate::ocpp::v16::types::{AvailabilityType, CiString, MessageTrigger, ResetType};

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console/chargers/{id}/reset", post(reset))
        .route("/console/chargers/{id}/unlock", post(unlock))
        .route(
            "/console/chargers/{id}/availability",
            post(change_availability),
        )
        .route("/console/chargers/{id}/trigger", post(trigger))
        .route(
            "/console/chargers/{id}/configuration",
            post(change_configuration),
        )
        .route(
            "/console/chargers/{id}/configuration/read",
            post(read_configuration),
        )
}

/// The toolbox's forms and the configuration snapshot, for the charger page.
pub fn section(
    id: &ChargeBoxId,
    connectors: u32,
    csrf: &str,
    snapshot: Option<&ConfigurationSnapshot>,
) -> Markup {
    let base = format!("/console/chargers/{id}");
    html! {
        section.card aria-labelledby="tools-h" {
            h2 #tools-h { "Commands" }
            div.tools {
                form.stack method="post" action=(format!("{base}/reset")) {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="t-reset" { "Reset type" }
                    select id="t-reset" name="type" {
                        option value="Soft" { "Soft (ends transactions first)" }
                        option value="Hard" { "Hard (reboots at once)" }
                    }
                    button type="submit" { "Reset" }
                }
                form.stack method="post" action=(format!("{base}/unlock")) {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="t-unlock" { "Connector to unlock" }
                    select id="t-unlock" name="connectorId" {
                        @for n in 1..=connectors { option value=(n) { (n) } }
                    }
                    button type="submit" { "Unlock" }
                }
                form.stack method="post" action=(format!("{base}/availability")) {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="t-av-conn" { "Connector (0: the whole charger)" }
                    select id="t-av-conn" name="connectorId" {
                        option value="0" { "0 (whole charger)" }
                        @for n in 1..=connectors { option value=(n) { (n) } }
                    }
                    label for="t-av-type" { "Availability" }
                    select id="t-av-type" name="type" {
                        option value="Inoperative" { "Inoperative (out of service)" }
                        option value="Operative" { "Operative (in service)" }
                    }
                    button type="submit" { "Change availability" }
                }
                form.stack method="post" action=(format!("{base}/trigger")) {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="t-trig" { "Message to trigger" }
                    select id="t-trig" name="requestedMessage" {
                        @for m in MessageTrigger::ALL {
                            option value=(m.as_str()) selected[*m == MessageTrigger::StatusNotification] { (m.as_str()) }
                        }
                    }
                    label for="t-trig-conn" { "Connector" }
                    select id="t-trig-conn" name="connectorId" {
                        option value="" { "none (the charger)" }
                        @for n in 1..=connectors { option value=(n) { (n) } }
                    }
                    button type="submit" { "Trigger" }
                }
            }
        }
        section.card aria-labelledby="conf-h" {
            h2 #conf-h { "Configuration" }
            form.inline method="post" action=(format!("{base}/configuration/read")) {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Read configuration now" }
            }
            @match snapshot {
                None => { p.hint data-configuration="none" { "Never read from this charger." } }
                Some(s) => {
                    p.hint data-configuration=(s.keys.len()) { (s.keys.len()) " keys, read " (when(s.fetched_at)) " (with the changes the charger accepted since)." }
                    div.scroll.config { table {
                        thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } th scope="col" { "Access" } } }
                        tbody { @for k in &s.keys {
                            tr data-key=(k.key) {
                                th scope="row" { code { (k.key) } }
                                td data-field="value" { (k.value.as_deref().unwrap_or("—")) }
                                td { (if k.readonly { "read-only" } else { "writable" }) }
                            }
                        } }
                    } }
                    @if !s.unknown_keys.is_empty() {
                        p.hint { "Unknown to the charger: " (s.unknown_keys.join(", ")) }
                    }
                }
            }
            form.stack method="post" action=(format!("{base}/configuration")) {
                input type="hidden" name="csrf" value=(csrf);
                label for="t-key" { "Key to change" }
                input id="t-key" name="key" required maxlength="50" autocomplete="off" list="t-keys";
                @if let Some(s) = snapshot {
                    datalist id="t-keys" { @for k in s.keys.iter().filter(|k| !k.readonly) { option value=(k.key) {} } }
                }
                label for="t-value" { "New value" }
                input id="t-value" name="value" maxlength="500" autocomplete="off";
                button type="submit" { "Change configuration" }
            }
        }
    }
}

/// The availability column of the connectors table: what the server last made the connector
/// (its own entry, else the whole charger's), or "Operative" when it never changed it.
pub fn availability_of(list: &[ConnectorAvailability], connector: u32) -> String {
    let own = list.iter().find(|a| a.connector_id == connector);
    let whole = list.iter().find(|a| a.connector_id == 0);
    let shown = match (own, whole) {
        (_, Some(w)) if w.availability == Availability::Inoperative => Some(w),
        (Some(o), _) => Some(o),
        (None, w) => w,
    };
    match shown {
        None => "Operative".into(),
        Some(a) if a.scheduled => format!("{} (scheduled)", a.availability.as_str()),
        Some(a) => a.availability.as_str().to_string(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    connector_id: String,
    #[serde(default)]
    requested_message: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

/// The CSRF check and the registered charger, or the page that says why not.
async fn checked(
    c: &Console,
    s: &OperatorSession,
    raw: &str,
    csrf: &str,
) -> Result<ChargerRecord, Response> {
    if !csrf_ok(&s.session, csrf) {
        return Err(csrf_refused());
    }
    let missing =
        || super::message_page(StatusCode::NOT_FOUND, "No such charger", "No such charger.");
    let Ok(id) = ChargeBoxId::parse(raw) else {
        return Err(missing());
    };
    match c.api.central.store.charger(&id).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(missing()),
        Err(e) => Err(internal(&e)),
    }
}

/// A connector from a form that the charger has, from `lowest` (0: the whole charger).
fn connector(record: &ChargerRecord, raw: &str, lowest: i32) -> Option<i32> {
    let n = raw.trim().parse::<i32>().ok()?;
    let highest = i32::try_from(record.connectors).unwrap_or(i32::MAX);
    (lowest..=highest).contains(&n).then_some(n)
}

async fn reset(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    Path(raw): Path<String>,
    Form(form): Form<ToolForm>,
) -> Response {
    let record = match checked(&c, &s, &raw, &form.csrf).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (kind, action) = match form.kind.as_str() {
        "Soft" => (ResetType::Soft, "reset-soft"),
        "Hard" => (ResetType::Hard, "reset-hard"),
        _ => return back(&record.id, "reset-soft", "badinput"),
    };
    match c
        .api
        .central
        .sessions
        .call(&record.id, &Reset { kind })
        .await
    {
        Ok(a) => back(&record.id, action, a.status.as_str()),
        Err(f) => back(&record.id, action, failure_word(&f)),
    }
}

async fn unlock(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    Path(raw): Path<String>,
    Form(form): Form<ToolForm>,
) -> Response {
    let record = match checked(&c, &s, &raw, &form.csrf).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(connector_id) = connector(&record, &form.connector_id, 1) else {
        return back(&record.id, "unlock", "badconnector");
    };
    match c
        .api
        .central
        .sessions
        .call(&record.id, &UnlockConnector { connector_id })
        .await
    {
        Ok(a) => back(&record.id, "unlock", a.status.as_str()),
        Err(f) => back(&record.id, "unlock", failure_word(&f)),
    }
}

/// As `POST /chargers/{id}/availability`: an Accepted or Scheduled answer goes to the ledger.
async fn change_availability(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    Path(raw): Path<String>,
    Form(form): Form<ToolForm>,
) -> Response {
    let record = match checked(&c, &s, &raw, &form.csrf).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(connector_id) = connector(&record, &form.connector_id, 0) else {
        return back(&record.id, "availability", "badconnector");
    };
    let Some(kind) = AvailabilityType::parse(&form.kind) else {
        return back(&record.id, "availability", "badinput");
    };
    let request = ChangeAvailability { connector_id, kind };
    match c.api.central.sessions.call(&record.id, &request).await {
        Ok(a) => {
            availability::record_change(&c.api.central, &record.id, &request, &a).await;
            back(&record.id, "availability", a.status.as_str())
        }
        Err(f) => back(&record.id, "availability", failure_word(&f)),
    }
}

async fn trigger(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    Path(raw): Path<String>,
    Form(form): Form<ToolForm>,
) -> Response {
    let record = match checked(&c, &s, &raw, &form.csrf).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(requested_message) = MessageTrigger::parse(&form.requested_message) else {
        return back(&record.id, "trigger", "badinput");
    };
    let connector_id = match form.connector_id.trim() {
        "" => None,
        n => match connector(&record, n, 1) {
            Some(n) => Some(n),
            None => return back(&record.id, "trigger", "badconnector"),
        },
    };
    let request = TriggerMessage {
        requested_message,
        connector_id,
    };
    match c.api.central.sessions.call(&record.id, &request).await {
        Ok(a) => back(&record.id, "trigger", a.status.as_str()),
        Err(f) => back(&record.id, "trigger", failure_word(&f)),
    }
}

/// As `POST /chargers/{id}/configuration/refresh`: GetConfiguration, stored as the snapshot
/// the page then shows.
async fn read_configuration(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    Path(raw): Path<String>,
    Form(form): Form<ToolForm>,
) -> Response {
    let record = match checked(&c, &s, &raw, &form.csrf).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match configuration::refresh(&c.api.central, &record.id).await {
        Ok(_) => back(&record.id, "config-read", "read"),
        Err(RefreshError::Call(f)) => back(&record.id, "config-read", failure_word(&f)),
        Err(RefreshError::Store(e)) => internal(&e),
    }
}

/// As `POST /chargers/{id}/ocpp/ChangeConfiguration`: an accepted change updates the snapshot.
async fn change_configuration(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    Path(raw): Path<String>,
    Form(form): Form<ToolForm>,
) -> Response {
    let record = match checked(&c, &s, &raw, &form.csrf).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let key = form.key.trim();
    let (Ok(key), Ok(value)) = (
        CiString::<50>::new(key),
        CiString::<500>::new(form.value.as_str()),
    ) else {
        return back(&record.id, "config-change", "badinput");
    };
    if key.as_str().is_empty() {
        return back(&record.id, "config-change", "badinput");
    }
    let request = ChangeConfiguration { key, value };
    match c.api.central.sessions.call(&record.id, &request).await {
        Ok(a) => {
            configuration::record_change(&c.api.central, &record.id, &request, &a).await;
            back(&record.id, "config-change", a.status.as_str())
        }
        Err(f) => back(&record.id, "config-change", failure_word(&f)),
    }
}
