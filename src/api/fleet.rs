//! Fleet operations: one OCPP command to many chargers (`/api/v1/fleet/commands`), and the
//! fleet's configuration key policy (`/api/v1/fleet/configuration-policy`).
//!
//! A fleet command is validated once with the action's typed message (as
//! `/chargers/{id}/ocpp/{Action}` does), then runs in the background, at most `concurrency`
//! chargers at a time, each through the same call path as the single-charger endpoint; it stops
//! early when more than `maxFailures` chargers fail (offline ones do not count). Jobs live in
//! this process's memory (the last [`KEEP_JOBS`]): a restart forgets them, and a job is
//! visible on the node that runs it. The policy is in the database (`central::policy`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dashmap::DashMap;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::auth::Operator;
use super::commands::{TOOLBOX_ACTIONS, perform, validate};
use super::{Api, ApiError};
use crate::booking::store::Page;
use crate::central::CallFailure;
use crate::central::firmware::Kind;
use crate::central::policy::{self, KeyState};
use crate::domain::ChargeBoxId;
use crate::domain::charger::{ChargerRecord, RegistrationState};
use crate::ocpp::v16::Action;
use crate::ocpp::v16::messages::UpdateFirmware;
use crate::ocpp::v16::types::{CiString50, CiString500};
use crate::problem::{ApiJson, Problem};

/// How many jobs are remembered; the oldest finished ones go first.
pub const KEEP_JOBS: usize = 100;
/// Chargers one job may target.
const MAX_TARGETS: usize = 100_000;
const DEFAULT_CONCURRENCY: usize = 16;
const MAX_CONCURRENCY: usize = 512;
/// Keys one policy may hold.
const MAX_POLICY_KEYS: usize = 100;
/// Chargers the policy is pushed to at once when it changes.
const POLICY_CONCURRENCY: usize = 16;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/fleet/commands", post(start).get(list))
        .route("/fleet/commands/{job}", get(show))
        .route(
            "/fleet/configuration-policy",
            get(show_policy).put(replace_policy),
        )
}

/// The jobs this process runs or ran.
#[derive(Default)]
pub struct FleetJobs {
    next: AtomicU64,
    jobs: DashMap<u64, Arc<Mutex<Job>>>,
}

struct Job {
    id: u64,
    action: String,
    state: JobState,
    created_at: OffsetDateTime,
    finished_at: Option<OffsetDateTime>,
    max_failures: Option<usize>,
    /// UpdateFirmware: how long a charger has to report how its update ended.
    install_timeout: Duration,
    failures: usize,
    outcomes: Vec<ChargerOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) enum JobState {
    Running,
    /// Every charger was tried.
    Completed,
    /// More than `maxFailures` chargers failed; the rest were skipped.
    Stopped,
}

/// How the command went on one charger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) enum Outcome {
    /// Not sent yet.
    Pending,
    /// The charger answered; `response` is its payload (which may still say Rejected).
    Ok,
    /// Not connected, or not booted: nothing was sent.
    Offline,
    /// No answer within the call timeout, or its breaker is open.
    Timeout,
    /// The charger answered with a CALLERROR (`detail`).
    CallError,
    /// Anything else (`detail`): a broken answer, a full queue, a disconnect mid-call.
    Failed,
    /// Not sent: the job stopped at its failure threshold.
    Skipped,
    /// UpdateFirmware: the charger took the command, then reported DownloadFailed or
    /// InstallationFailed (`detail`).
    FirmwareFailed,
}

/// One charger's part of a job.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChargerOutcome {
    charger_id: String,
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// `POST /fleet/commands`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FleetCommand {
    /// The OCPP action, as for `/chargers/{id}/ocpp/{action}`.
    #[schema(example = "TriggerMessage")]
    action: String,
    /// Its request payload (default `{}`), checked against the action's schema first.
    #[schema(value_type = Object)]
    payload: Option<Box<RawValue>>,
    /// The chargers, by id; or give `filter` instead.
    charger_ids: Option<Vec<String>>,
    /// Every accepted charger matching all the members given; or give `chargerIds`.
    filter: Option<FleetFilter>,
    /// Chargers in flight at once, 1–512 (default 16).
    concurrency: Option<usize>,
    /// Stop (skipping the rest) once more chargers than this failed; offline ones do not
    /// count. Default: never stop.
    max_failures: Option<usize>,
    /// UpdateFirmware only: how long each charger has to report Installed (or a failure)
    /// after it took the command, 1–86400 (default 600).
    install_timeout_seconds: Option<u64>,
}

/// Which chargers a fleet command goes to (all members optional; all must match).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FleetFilter {
    /// Only chargers with (or without) an open WebSocket now.
    online: Option<bool>,
    /// As reported in BootNotification.
    vendor: Option<String>,
    model: Option<String>,
    firmware_version: Option<String>,
}

/// A job as shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobView {
    id: u64,
    action: String,
    state: JobState,
    /// Chargers targeted.
    total: usize,
    /// Chargers done (any outcome but pending).
    done: usize,
    /// How many chargers have each outcome (outcomes no charger has are left out).
    #[schema(value_type = Object, example = json!({"ok": 18, "offline": 2}))]
    counts: BTreeMap<String, usize>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    finished_at: Option<OffsetDateTime>,
    /// Per charger, in the order targeted (left out of the job list).
    #[serde(skip_serializing_if = "Option::is_none")]
    outcomes: Option<Vec<ChargerOutcome>>,
}

impl Job {
    fn view(&self, with_outcomes: bool) -> JobView {
        let mut counts = BTreeMap::new();
        for o in &self.outcomes {
            let name = serde_json::to_value(o.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *counts.entry(name).or_insert(0) += 1;
        }
        JobView {
            id: self.id,
            action: self.action.clone(),
            state: self.state,
            total: self.outcomes.len(),
            done: self
                .outcomes
                .iter()
                .filter(|o| o.outcome != Outcome::Pending)
                .count(),
            counts,
            created_at: self.created_at,
            finished_at: self.finished_at,
            outcomes: with_outcomes.then(|| self.outcomes.clone()),
        }
    }
}

/// Every charger in `state` (all states when `None`), by id.
async fn all_chargers(
    api: &Api,
    state: Option<RegistrationState>,
) -> Result<Vec<ChargerRecord>, ApiError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = api
            .store
            .chargers(&Page {
                after: after.clone(),
                limit: 1000,
                state,
            })
            .await?;
        let full = page.len() == 1000;
        after = page.last().map(|r| r.id.as_str().to_string());
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

fn matches(api: &Api, record: &mut ChargerRecord, filter: &FleetFilter) -> bool {
    api.central.live.overlay(record);
    let boot = record.boot.clone().unwrap_or_default();
    let same = |want: &Option<String>, have: Option<&str>| {
        want.as_deref()
            .is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
    };
    filter
        .online
        .is_none_or(|o| api.central.sessions.is_online(&record.id) == o)
        && same(&filter.vendor, Some(boot.vendor.as_str()))
        && same(&filter.model, Some(boot.model.as_str()))
        && same(&filter.firmware_version, boot.firmware_version.as_deref())
}

/// The chargers a command names, in order, checked: 422 naming the member at fault.
async fn targets(api: &Api, command: &FleetCommand) -> Result<Vec<ChargeBoxId>, ApiError> {
    match (&command.charger_ids, &command.filter) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "filter",
            "give chargerIds or filter, not both",
        )),
        (None, None) => Err(ApiError::invalid("chargerIds", "give chargerIds or filter")),
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_TARGETS {
                return Err(ApiError::invalid(
                    "chargerIds",
                    format!("1 to {MAX_TARGETS} charger ids"),
                ));
            }
            let known: HashSet<String> = all_chargers(api, None)
                .await?
                .into_iter()
                .map(|r| r.id.as_str().to_string())
                .collect();
            let mut seen = HashSet::new();
            let mut out = Vec::with_capacity(ids.len());
            for (i, raw) in ids.iter().enumerate() {
                let field = format!("chargerIds[{i}]");
                let id = ChargeBoxId::parse(raw)
                    .ok()
                    .filter(|id| known.contains(id.as_str()))
                    .ok_or_else(|| ApiError::invalid(&field, "no such charger"))?;
                if !seen.insert(id.clone()) {
                    return Err(ApiError::invalid(field, "named twice"));
                }
                out.push(id);
            }
            Ok(out)
        }
        (None, Some(filter)) => {
            let mut out = Vec::new();
            for mut record in all_chargers(api, Some(RegistrationState::Accepted)).await? {
                if matches(api, &mut record, filter) {
                    out.push(record.id);
                }
            }
            if out.len() > MAX_TARGETS {
                return Err(ApiError::invalid(
                    "filter",
                    format!("matches more than {MAX_TARGETS} chargers"),
                ));
            }
            Ok(out)
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/fleet/commands",
    tag = "fleet",
    operation_id = "startFleetCommand",
    summary = "Send one OCPP command to many chargers",
    description = "Checks `payload` against `action`'s schema (422 naming `payload.…`), then \
        sends it to every charger in `chargerIds` (each must be registered) or matching \
        `filter` (accepted chargers), in the background, `concurrency` at a time, through the \
        same path as `/chargers/{id}/ocpp/{action}` (so accepted ChangeConfiguration and \
        ChangeAvailability answers reach the ledger alike). An UpdateFirmware rollout holds \
        each charger's place until it reports `Installed` (`ok`), `DownloadFailed` or \
        `InstallationFailed` (`firmwareFailed`, counted against `maxFailures`), or \
        `installTimeoutSeconds` pass (`timeout`): so `concurrency` bounds the downloads in \
        flight and a bad image stops the rollout early. Answers 202 with the job (its \
        `Location` is `/api/v1/fleet/commands/{id}`). Jobs are kept in this node's memory \
        (the last 100). Operator only.",
    request_body = FleetCommand,
    responses(
        (status = 202, description = "Started", body = JobView,
            headers(("Location" = String, description = "The job"))),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown action, a payload the action's schema refuses, \
            or bad targets (`field` names it)",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn start(
    _: Operator,
    State(api): State<Arc<Api>>,
    ApiJson(command): ApiJson<FleetCommand>,
) -> Result<Response, ApiError> {
    let Some(action) = TOOLBOX_ACTIONS
        .iter()
        .copied()
        .find(|a| *a == command.action)
    else {
        return Err(ApiError::invalid(
            "action",
            format!("one of {}", TOOLBOX_ACTIONS.join(", ")),
        ));
    };
    let payload = command
        .payload
        .as_ref()
        .map(|p| p.get().to_string())
        .unwrap_or_else(|| "{}".into());
    validate(action, &payload).map_err(|e| match e {
        ApiError::InvalidField { field, reason } => ApiError::InvalidField {
            field: if field.is_empty() {
                "payload".into()
            } else {
                format!("payload.{field}")
            },
            reason,
        },
        other => other,
    })?;
    let concurrency = command.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return Err(ApiError::invalid(
            "concurrency",
            format!("1 to {MAX_CONCURRENCY}"),
        ));
    }
    if command
        .install_timeout_seconds
        .is_some_and(|t| !(1..=86_400).contains(&t))
    {
        return Err(ApiError::invalid("installTimeoutSeconds", "1 to 86400"));
    }
    let targets = targets(&api, &command).await?;
    let id = api.fleet.next.fetch_add(1, Ordering::Relaxed) + 1;
    let job = Arc::new(Mutex::new(Job {
        id,
        action: action.to_string(),
        state: JobState::Running,
        created_at: OffsetDateTime::now_utc(),
        finished_at: None,
        max_failures: command.max_failures,
        install_timeout: Duration::from_secs(command.install_timeout_seconds.unwrap_or(600)),
        failures: 0,
        outcomes: targets
            .iter()
            .map(|t| ChargerOutcome {
                charger_id: t.as_str().to_string(),
                outcome: Outcome::Pending,
                response: None,
                detail: None,
            })
            .collect(),
    }));
    let view = job.lock().expect("job").view(false);
    api.fleet.jobs.insert(id, job.clone());
    forget_old_jobs(&api);
    let runner = api.clone();
    api.central.tracker.spawn(async move {
        run(runner, job, action, payload, targets, concurrency).await;
    });
    let mut response = (StatusCode::ACCEPTED, Json(view)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/fleet/commands/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn forget_old_jobs(api: &Api) {
    if api.fleet.jobs.len() <= KEEP_JOBS {
        return;
    }
    let mut finished: Vec<u64> = api
        .fleet
        .jobs
        .iter()
        .filter(|j| j.lock().expect("job").state != JobState::Running)
        .map(|j| *j.key())
        .collect();
    finished.sort_unstable();
    let excess = api.fleet.jobs.len().saturating_sub(KEEP_JOBS);
    for id in finished.into_iter().take(excess) {
        api.fleet.jobs.remove(&id);
    }
}

async fn run(
    api: Arc<Api>,
    job: Arc<Mutex<Job>>,
    action: &'static str,
    payload: String,
    targets: Vec<ChargeBoxId>,
    concurrency: usize,
) {
    let payload = &payload;
    let (api_ref, job_ref) = (&api, &job);
    let install_timeout = job.lock().expect("job").install_timeout;
    futures_util::stream::iter(targets.into_iter().enumerate())
        .for_each_concurrent(concurrency, |(index, id)| async move {
            if job_ref.lock().expect("job").state != JobState::Running {
                return;
            }
            let sent_at = OffsetDateTime::now_utc();
            let (outcome, response, detail) = match perform(api_ref, &id, action, payload).await {
                Ok(answer) if action == UpdateFirmware::NAME => {
                    let (outcome, detail) =
                        firmware_outcome(api_ref, &id, sent_at, install_timeout).await;
                    (outcome, Some(answer), detail)
                }
                Ok(answer) => (Outcome::Ok, Some(answer), None),
                Err(ApiError::Charger(failure)) => {
                    (outcome_of(&failure), None, Some(failure.to_string()))
                }
                Err(other) => (Outcome::Failed, None, Some(other.to_string())),
            };
            let mut job = job_ref.lock().expect("job");
            if !matches!(outcome, Outcome::Ok | Outcome::Offline) {
                job.failures += 1;
            }
            if job.max_failures.is_some_and(|max| job.failures > max)
                && job.state == JobState::Running
            {
                job.state = JobState::Stopped;
            }
            let slot = &mut job.outcomes[index];
            slot.outcome = outcome;
            slot.response = response;
            slot.detail = detail;
        })
        .await;
    let mut job = job.lock().expect("job");
    for o in job.outcomes.iter_mut() {
        if o.outcome == Outcome::Pending {
            o.outcome = Outcome::Skipped;
        }
    }
    if job.state == JobState::Running {
        job.state = JobState::Completed;
    }
    job.finished_at = Some(OffsetDateTime::now_utc());
    tracing::info!(job = job.id, action, state = ?job.state, "fleet command finished");
}

/// How often a rollout looks at a charger's firmware status.
const FIRMWARE_POLL: Duration = Duration::from_millis(250);

/// Waits for the FirmwareStatusNotification that ends the update the charger took at
/// `sent_at`: Installed is `Ok`; DownloadFailed and InstallationFailed are `FirmwareFailed`;
/// none within `timeout` is `Timeout`.
async fn firmware_outcome(
    api: &Api,
    id: &ChargeBoxId,
    sent_at: OffsetDateTime,
    timeout: Duration,
) -> (Outcome, Option<String>) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = api
            .central
            .files
            .trail(Kind::Firmware, id)
            .and_then(|t| t.last().cloned())
            .filter(|r| r.at >= sent_at);
        match last.as_ref().map(|r| r.status.as_str()) {
            Some("Installed") => return (Outcome::Ok, None),
            Some(failed @ ("DownloadFailed" | "InstallationFailed")) => {
                return (
                    Outcome::FirmwareFailed,
                    Some(format!("the charger reported {failed}")),
                );
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let seen = last.map_or("no status".to_owned(), |r| format!("last {}", r.status));
            return (
                Outcome::Timeout,
                Some(format!(
                    "not Installed within {} s ({seen})",
                    timeout.as_secs()
                )),
            );
        }
        tokio::time::sleep(FIRMWARE_POLL).await;
    }
}

fn outcome_of(failure: &CallFailure) -> Outcome {
    match failure {
        CallFailure::Offline | CallFailure::NotBooted => Outcome::Offline,
        CallFailure::Timeout | CallFailure::BreakerOpen => Outcome::Timeout,
        CallFailure::CallError { .. } => Outcome::CallError,
        _ => Outcome::Failed,
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/fleet/commands/{job}",
    tag = "fleet",
    operation_id = "showFleetCommand",
    summary = "A fleet command's progress",
    description = "The job's state, counts per outcome and every charger's outcome (with the \
        charger's answer when it gave one). Operator only.",
    params(("job" = u64, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "No such job (on this node, since it started)",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn show(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let job = raw
        .parse::<u64>()
        .ok()
        .and_then(|id| api.fleet.jobs.get(&id).map(|j| j.clone()))
        .ok_or_else(|| ApiError::NotFound(format!("no fleet command {raw:?}")))?;
    let view = job.lock().expect("job").view(true);
    Ok(Json(view))
}

#[utoipa::path(
    get,
    path = "/api/v1/fleet/commands",
    tag = "fleet",
    operation_id = "listFleetCommands",
    summary = "Recent fleet commands",
    description = "The jobs this node remembers, newest first, without per-charger outcomes. \
        Operator only.",
    responses((status = 200, description = "The jobs", body = [JobView])),
    security(("operatorOrCustomerToken" = []))
)]
async fn list(_: Operator, State(api): State<Arc<Api>>) -> Json<Vec<JobView>> {
    let jobs: Vec<Arc<Mutex<Job>>> = api.fleet.jobs.iter().map(|j| j.clone()).collect();
    let mut views: Vec<JobView> = jobs
        .iter()
        .map(|j| j.lock().expect("job").view(false))
        .collect();
    views.sort_by_key(|v| std::cmp::Reverse(v.id));
    Json(views)
}

// ---------------------------------------------------------------------------------------------
// The configuration policy
// ---------------------------------------------------------------------------------------------

/// The policy and where every accepted charger stands with it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PolicyView {
    /// Key → the value every charger should have.
    #[schema(value_type = Object, example = json!({"HeartbeatInterval": "300"}))]
    keys: BTreeMap<String, String>,
    /// Accepted chargers by their standing: `applied` (every key), `rejected` (a key
    /// refused), `pending` (a key not reached yet).
    #[schema(value_type = Object, example = json!({"applied": 9, "rejected": 0, "pending": 1}))]
    counts: BTreeMap<&'static str, usize>,
    chargers: Vec<ChargerPolicyView>,
}

/// One charger's standing with the policy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChargerPolicyView {
    charger_id: String,
    /// `applied`, `rejected` or `pending`.
    state: &'static str,
    keys: Vec<PolicyKeyView>,
}

/// One key on one charger.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PolicyKeyView {
    key: String,
    value: String,
    /// `applied`, `rebootRequired`, `rejected` or `pending`.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    at: Option<OffsetDateTime>,
}

async fn policy_view(api: &Api, keys: &[(String, String)]) -> Result<PolicyView, ApiError> {
    let mut counts = BTreeMap::from([("applied", 0), ("rejected", 0), ("pending", 0)]);
    let mut chargers = Vec::new();
    if !keys.is_empty() {
        for record in all_chargers(api, Some(RegistrationState::Accepted)).await? {
            let views: Vec<PolicyKeyView> = keys
                .iter()
                .map(|(key, value)| {
                    let outcome = api.central.policies.outcome(&record.id, key, value);
                    PolicyKeyView {
                        key: key.clone(),
                        value: value.clone(),
                        state: outcome.as_ref().map_or("pending", |o| o.state.as_str()),
                        detail: outcome.as_ref().and_then(|o| o.detail.clone()),
                        at: outcome.map(|o| o.at),
                    }
                })
                .collect();
            let state = if views.iter().any(|k| k.state == KeyState::Rejected.as_str()) {
                "rejected"
            } else if views.iter().any(|k| k.state == KeyState::Pending.as_str()) {
                "pending"
            } else {
                "applied"
            };
            *counts.entry(state).or_insert(0) += 1;
            chargers.push(ChargerPolicyView {
                charger_id: record.id.as_str().to_string(),
                state,
                keys: views,
            });
        }
    }
    Ok(PolicyView {
        keys: keys.iter().cloned().collect(),
        counts,
        chargers,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/fleet/configuration-policy",
    tag = "fleet",
    operation_id = "showConfigurationPolicy",
    summary = "The fleet's configuration key policy and its reach",
    description = "The policy's keys and, for every accepted charger, each key's state as \
        this node last saw it: `applied` (the snapshot showed the value, or the charger \
        accepted it), `rebootRequired`, `rejected` (refused, not supported, read-only or a \
        CALLERROR: `detail`) or `pending` (not reached yet: offline since the policy was \
        set, or the call failed on the way). Outcomes are kept in memory; after a restart \
        every charger is pending until its next Boot. Operator only.",
    responses((status = 200, description = "The policy", body = PolicyView)),
    security(("operatorOrCustomerToken" = []))
)]
async fn show_policy(
    _: Operator,
    State(api): State<Arc<Api>>,
) -> Result<Json<PolicyView>, ApiError> {
    let keys = api.central.policies.current(&api.central).await?;
    Ok(Json(policy_view(&api, &keys).await?))
}

#[utoipa::path(
    put,
    path = "/api/v1/fleet/configuration-policy",
    tag = "fleet",
    operation_id = "replaceConfigurationPolicy",
    summary = "Set the fleet's configuration key policy",
    description = "Replaces the policy with the body's `{key: value, …}` (values as strings; \
        numbers and booleans are taken as their text; `{}` clears it). Stored in the \
        database; from then on every charger gets ChangeConfiguration for each key whose value \
        its configuration snapshot does not show, after every accepted Boot, and booted \
        chargers get it at once (in the background). Keys are OCPP CiString50, values \
        CiString500; at most 100 keys. Answers the policy as `GET` does. Operator only.",
    request_body(content = Object, description = "Key → value",
        example = json!({"HeartbeatInterval": "300", "MeterValueSampleInterval": "60"})),
    responses(
        (status = 200, description = "The new policy", body = PolicyView),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A key or value does not fit (`field` names the key)",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn replace_policy(
    _: Operator,
    State(api): State<Arc<Api>>,
    ApiJson(body): ApiJson<serde_json::Map<String, Value>>,
) -> Result<Json<PolicyView>, ApiError> {
    if body.len() > MAX_POLICY_KEYS {
        return Err(ApiError::invalid(
            "",
            format!("at most {MAX_POLICY_KEYS} keys"),
        ));
    }
    let mut keys: Vec<(String, String)> = Vec::with_capacity(body.len());
    let mut seen = HashMap::new();
    for (key, value) in body {
        if key.is_empty() || CiString50::new(key.as_str()).is_err() {
            return Err(ApiError::invalid(key, "a key is 1 to 50 characters"));
        }
        if let Some(other) = seen.insert(key.to_ascii_lowercase(), key.clone()) {
            return Err(ApiError::invalid(
                key,
                format!("the same key as {other} (keys are case-insensitive)"),
            ));
        }
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(ApiError::invalid(
                    key,
                    "expected a string, number or boolean",
                ));
            }
        };
        if CiString500::new(text.as_str()).is_err() {
            return Err(ApiError::invalid(key, "a value is at most 500 characters"));
        }
        keys.push((key, text));
    }
    keys.sort();
    let keys = api.central.policies.replace(&api.central, keys).await?;
    let view = policy_view(&api, &keys).await?;
    push_to_booted(&api, keys).await?;
    Ok(Json(view))
}

/// The new policy to every booted charger, in the background, a few at a time.
async fn push_to_booted(api: &Arc<Api>, keys: Arc<Vec<(String, String)>>) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Ok(());
    }
    let booted: Vec<ChargeBoxId> = all_chargers(api, Some(RegistrationState::Accepted))
        .await?
        .into_iter()
        .map(|r| r.id)
        .filter(|id| api.central.sessions.is_booted(id))
        .collect();
    let central = api.central.clone();
    api.central.tracker.spawn(async move {
        let (central, keys) = (&central, &keys);
        futures_util::stream::iter(booted)
            .for_each_concurrent(POLICY_CONCURRENCY, |id| async move {
                let snapshot = central.store.configuration(&id).await.ok().flatten();
                policy::enforce(central, &id, snapshot.as_ref(), keys).await;
            })
            .await;
    });
    Ok(())
}
