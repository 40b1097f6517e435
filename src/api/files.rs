//! Firmware and diagnostics files, hosted by this server so chargers need nothing else:
//! - the operator uploads firmware (`POST /api/v1/firmware?name=`, the raw body streamed to
//!   `<data_dir>/firmware/<token>/`, up to `firmware_max_bytes`) and lists it;
//!   `POST /api/v1/chargers/{id}/firmware-update` sends UpdateFirmware pointing at
//!   `<public_url>/files/firmware/<token>/<name>`, which chargers download with no operator token
//!   (they cannot send one): the unguessable per-file token in the path is the protection;
//! - `POST /api/v1/chargers/{id}/diagnostics` sends GetDiagnostics with the upload location
//!   `<public_url>/files/diagnostics/<chargerId>/<token>` (the token a keyed hash of the charger
//!   id, so it needs no table and survives restarts); the charger PUTs or POSTs (raw or
//!   multipart) its file there, up to `diagnostics_max_bytes`, into
//!   `<data_dir>/diagnostics/<chargerId>/`, which the operator lists and downloads.
//!
//! What chargers report about both is `central::firmware`'s; this module owns the files.

use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::auth::Operator;
use super::commands::decode_member;
use super::upload::{self, UploadError, hex, multipart_boundary};
use super::{Api, ApiError};
use crate::central::firmware::Kind;
use crate::domain::ChargeBoxId;
use crate::ocpp::v16::messages::{GetDiagnostics, UpdateFirmware};
use crate::problem::{ApiJson, Problem};

/// The operator's routes, under `/api/v1`.
pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/firmware", post(upload_firmware).get(list_firmware))
        .route("/chargers/{id}/firmware-update", post(update_firmware))
        .route(
            "/chargers/{id}/diagnostics",
            post(request_diagnostics).get(list_diagnostics),
        )
        .route(
            "/chargers/{id}/diagnostics/{file}",
            get(download_diagnostics),
        )
}

/// What chargers reach, with no operator token: the token in the path is the key.
pub fn charger_routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/files/firmware/{token}/{name}", get(serve_firmware))
        .route(
            "/files/diagnostics/{charger}/{token}",
            post(receive_diagnostics).put(receive_diagnostics),
        )
        .route(
            "/files/diagnostics/{charger}/{token}/{file}",
            post(receive_named_diagnostics).put(receive_named_diagnostics),
        )
}

/// The path the firmware upload streams its body on (the load shedder leaves it unread).
pub const FIRMWARE_UPLOAD_PATH: &str = "/api/v1/firmware";

/// What the file routes share: the key of the diagnostics upload tokens (made once per data
/// folder) and the lock that publishes one firmware upload at a time.
#[derive(Default)]
pub struct FileKeys {
    diagnostics: OnceLock<[u8; 32]>,
    publish: tokio::sync::Mutex<()>,
}

// ---------------------------------------------------------------------------------------------
// Names and places
// ---------------------------------------------------------------------------------------------

/// A file name this server keeps and puts in URLs: 1–100 of `A–Z a–z 0–9 . _ - + ~`, not
/// starting with a dot (so never `.`, `..` or a hidden file), no path separators.
fn valid_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'~'))
}

/// A charger's own file name made into one [`valid_name`] accepts (other characters become `_`).
fn tidy_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut tidy: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '~') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    while tidy.starts_with('.') {
        tidy.replace_range(..1, "_");
    }
    if tidy.is_empty() {
        tidy = default_diagnostics_name();
    }
    tidy
}

fn default_diagnostics_name() -> String {
    format!(
        "diagnostics-{}.bin",
        OffsetDateTime::now_utc().unix_timestamp()
    )
}

fn firmware_dir(api: &Api) -> PathBuf {
    api.central.settings.data_dir.join("firmware")
}

fn diagnostics_dir(api: &Api, charger: &ChargeBoxId) -> PathBuf {
    api.central
        .settings
        .data_dir
        .join("diagnostics")
        .join(charger.as_str())
}

/// Where chargers reach this server (`public_url`, else the bound listen address).
fn public_url(api: &Api) -> String {
    let settings = &api.central.settings;
    settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.listen))
}

fn random_token() -> String {
    hex(&rand::random::<[u8; 16]>())
}

/// The diagnostics upload token of a charger: a keyed hash of its id, the key kept in
/// `<data_dir>/files.key` (made at first use).
fn diagnostics_token(api: &Api, charger: &ChargeBoxId) -> Result<String, ApiError> {
    let key = match api.files.diagnostics.get() {
        Some(key) => *key,
        None => {
            let key = load_or_make_key(&api.central.settings.data_dir.join("files.key"))
                .map_err(ApiError::internal)?;
            *api.files.diagnostics.get_or_init(|| key)
        }
    };
    let mut hash = Sha256::new();
    hash.update(key);
    hash.update(b"diagnostics\0");
    hash.update(charger.as_str().as_bytes());
    Ok(hex(&hash.finalize()[..16]))
}

fn load_or_make_key(path: &FsPath) -> std::io::Result<[u8; 32]> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let bytes: Vec<u8> = (0..text.trim().len() / 2)
            .filter_map(|i| u8::from_str_radix(text.trim().get(i * 2..i * 2 + 2)?, 16).ok())
            .collect();
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
    }
    let key = rand::random::<[u8; 32]>();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, format!("{}\n", hex(&key)))?;
    Ok(key)
}

/// Compares tokens without leaking where they differ.
fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

async fn registered(api: &Api, raw: &str) -> Result<ChargeBoxId, ApiError> {
    let id = ChargeBoxId::parse(raw).map_err(|_| ApiError::NoSuchCharger(raw.to_string()))?;
    match api.store.charger(&id).await? {
        Some(_) => Ok(id),
        None => Err(ApiError::NoSuchCharger(raw.to_string())),
    }
}

fn not_found() -> Response {
    Problem::not_found("no such file").into_response()
}

// ---------------------------------------------------------------------------------------------
// Firmware
// ---------------------------------------------------------------------------------------------

/// A firmware file the server hosts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct FirmwareView {
    #[schema(example = "acme-2.1.0.bin")]
    name: String,
    size: u64,
    /// SHA-256 of the file, lower-case hex.
    sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    uploaded_at: OffsetDateTime,
    /// Where chargers download it (the `location` UpdateFirmware carries): no operator token
    /// needed, the token in the path is its protection.
    #[serde(skip_deserializing)]
    url: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct UploadQuery {
    name: Option<String>,
}

/// The stored firmware, oldest first: each `<token>/meta.json` in the firmware folder.
async fn stored_firmware(api: &Api) -> Result<Vec<(String, FirmwareView)>, ApiError> {
    let dir = firmware_dir(api);
    let mut found = Vec::new();
    let mut entries = match tokio::fs::read_dir(&dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(ApiError::internal(e)),
    };
    let base = public_url(api);
    while let Some(entry) = entries.next_entry().await.map_err(ApiError::internal)? {
        let token = entry.file_name().to_string_lossy().into_owned();
        if token.ends_with(".partial") {
            continue;
        }
        let Ok(text) = tokio::fs::read(entry.path().join("meta.json")).await else {
            continue;
        };
        if let Ok(mut view) = serde_json::from_slice::<FirmwareView>(&text) {
            view.url = format!("{base}/files/firmware/{token}/{}", view.name);
            found.push((token, view));
        }
    }
    found.sort_by_key(|(_, v)| v.uploaded_at);
    Ok(found)
}

#[utoipa::path(
    post,
    path = "/api/v1/firmware",
    tag = "files",
    operation_id = "uploadFirmware",
    summary = "Upload a firmware file",
    description = "The raw body (any content type) is stored as firmware `name`, streamed to \
        the data folder with its SHA-256, up to `firmware_max_bytes` (default 256 MiB; this \
        route is exempt from the 2 MiB REST body limit). Names are 1–100 of `A–Z a–z 0–9 . _ - \
        + ~`, not starting with a dot; a name already stored is 409 (firmware files do not \
        change: upload a new version under a new name). The answer's `url` is where chargers \
        download it, protected by the unguessable token in its path. Operator only.",
    params(("name" = String, Query, description = "The file's name", example = "acme-2.1.0.bin")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The firmware image"),
    responses(
        (status = 201, description = "Stored", body = FirmwareView),
        (status = 409, description = "A firmware file of that name exists",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than `firmware_max_bytes`",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`name` is missing or not allowed",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn upload_firmware(
    _: Operator,
    State(api): State<Arc<Api>>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = query.name.unwrap_or_default();
    if !valid_name(&name) {
        return Err(ApiError::invalid(
            "name",
            "1 to 100 of A-Z a-z 0-9 . _ - + ~, not starting with a dot",
        ));
    }
    let limit = api.central.settings.firmware_max_bytes;
    if content_length(&headers).is_some_and(|n| n > limit) {
        return Err(ApiError::Problem(UploadError::TooLarge(limit).problem()));
    }
    if stored_firmware(&api)
        .await?
        .iter()
        .any(|(_, v)| v.name == name)
    {
        return Err(name_taken(&name));
    }
    let token = random_token();
    let root = firmware_dir(&api);
    let partial = root.join(format!("{token}.partial"));
    tokio::fs::create_dir_all(&partial)
        .await
        .map_err(ApiError::internal)?;
    let received = match upload::receive(body, &partial.join("file"), limit, None).await {
        Ok(r) => r,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&partial).await;
            return Err(match e {
                UploadError::Io(e) => ApiError::internal(e),
                other => ApiError::Problem(other.problem()),
            });
        }
    };
    let mut view = FirmwareView {
        name: name.clone(),
        size: received.size,
        sha256: received.sha256,
        uploaded_at: OffsetDateTime::now_utc(),
        url: String::new(),
    };
    let meta = serde_json::to_vec(&view).map_err(ApiError::internal)?;
    tokio::fs::write(partial.join("meta.json"), meta)
        .await
        .map_err(ApiError::internal)?;
    // Published by one rename, under a lock so two uploads of one name cannot both land.
    let _publishing = api.files.publish.lock().await;
    if stored_firmware(&api)
        .await?
        .iter()
        .any(|(_, v)| v.name == name)
    {
        let _ = tokio::fs::remove_dir_all(&partial).await;
        return Err(name_taken(&name));
    }
    tokio::fs::rename(&partial, root.join(&token))
        .await
        .map_err(ApiError::internal)?;
    view.url = format!("{}/files/firmware/{token}/{name}", public_url(&api));
    tracing::info!(name = %view.name, size = view.size, "firmware stored");
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

fn name_taken(name: &str) -> ApiError {
    ApiError::Conflict {
        title: "Firmware exists",
        detail: format!("a firmware file named {name} is stored already"),
        field: Some("name"),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[utoipa::path(
    get,
    path = "/api/v1/firmware",
    tag = "files",
    operation_id = "listFirmware",
    summary = "List firmware files",
    description = "Every firmware file stored, oldest first, with its download `url`. \
        Operator only.",
    responses((status = 200, description = "The files", body = [FirmwareView])),
    security(("operatorOrCustomerToken" = []))
)]
async fn list_firmware(
    _: Operator,
    State(api): State<Arc<Api>>,
) -> Result<Json<Vec<FirmwareView>>, ApiError> {
    Ok(Json(
        stored_firmware(&api)
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/files/firmware/{token}/{name}",
    tag = "files",
    operation_id = "downloadFirmware",
    summary = "Download a firmware file (for chargers)",
    description = "The firmware file, as uploaded, for chargers following an UpdateFirmware \
        `location`. No auth: the per-file token in the path is the key (it is in every \
        location this server sends, and in `GET /api/v1/firmware`).",
    params(
        ("token" = String, Path, description = "The file's token"),
        ("name" = String, Path, description = "The file's name"),
    ),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream",
            body = Vec<u8>),
        (status = 404, description = "No such file (or a wrong token)",
            body = Problem, content_type = "application/problem+json")
    ),
    security(())
)]
async fn serve_firmware(
    State(api): State<Arc<Api>>,
    Path((token, name)): Path<(String, String)>,
) -> Response {
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) || !valid_name(&name) {
        return not_found();
    }
    let dir = firmware_dir(&api).join(&token);
    let Ok(meta) = tokio::fs::read(dir.join("meta.json")).await else {
        return not_found();
    };
    match serde_json::from_slice::<FirmwareView>(&meta) {
        Ok(view) if view.name == name => {}
        _ => return not_found(),
    }
    stream_file(&dir.join("file"), &name).await
}

/// A file as the body of a 200, streamed from disk.
async fn stream_file(path: &FsPath, name: &str) -> Response {
    let Ok(file) = tokio::fs::File::open(path).await else {
        return not_found();
    };
    let length = file.metadata().await.map(|m| m.len()).ok();
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    response
}

/// `POST /chargers/{id}/firmware-update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FirmwareUpdateRequest {
    /// The name of a stored firmware file (`GET /api/v1/firmware`).
    #[schema(example = "acme-2.1.0.bin")]
    firmware: String,
    /// When the charger should fetch it (RFC 3339); default now.
    retrieve_date: Option<Value>,
    /// How often the charger should retry the download.
    retries: Option<Value>,
    /// Seconds between retries.
    retry_interval: Option<Value>,
}

/// What `firmware-update` and `diagnostics` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct FileCommandAnswer {
    /// The location sent to the charger.
    location: String,
    /// The charger's answer (UpdateFirmware's is empty; GetDiagnostics' may name the file).
    response: Value,
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/firmware-update",
    tag = "files",
    operation_id = "updateFirmware",
    summary = "Send a charger a firmware update",
    description = "Sends UpdateFirmware whose `location` is the stored firmware's download URL \
        on this server (built from `public_url`), with `retrieveDate` (default now), \
        `retries` and `retryInterval` as given. The charger then downloads it and reports \
        FirmwareStatusNotifications (Downloading, Downloaded, Installing, Installed, or a \
        failure), shown as `firmwareStatus` in `GET /chargers/{id}`. Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    request_body = FirmwareUpdateRequest,
    responses(
        (status = 200, description = "The charger accepted the request", body = FileCommandAnswer),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such charger",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The charger is not connected, or not booted",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such firmware, or a member is invalid (`field`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The charger answered with an error",
            body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The charger did not answer in time",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn update_firmware(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<FirmwareUpdateRequest>,
) -> Result<Json<FileCommandAnswer>, ApiError> {
    let id = registered(&api, &raw).await?;
    let Some((_, firmware)) = stored_firmware(&api)
        .await?
        .into_iter()
        .find(|(_, v)| v.name == body.firmware)
    else {
        return Err(ApiError::invalid(
            "firmware",
            "no firmware file of that name",
        ));
    };
    let mut payload = json!({
        "location": firmware.url,
        "retrieveDate": body.retrieve_date.unwrap_or_else(|| json!(now_rfc3339())),
    });
    if let Some(r) = body.retries {
        payload["retries"] = r;
    }
    if let Some(r) = body.retry_interval {
        payload["retryInterval"] = r;
    }
    let request: UpdateFirmware = decode_member(&payload.to_string(), "")?;
    let answer = api.central.sessions.call(&id, &request).await?;
    tracing::info!(charger = %id, firmware = %firmware.name, "UpdateFirmware sent");
    Ok(Json(FileCommandAnswer {
        location: firmware.url,
        response: serde_json::to_value(answer).map_err(ApiError::internal)?,
    }))
}

fn now_rfc3339() -> String {
    crate::ocpp::v16::types::Timestamp::now().to_string()
}

// ---------------------------------------------------------------------------------------------
// Diagnostics
// ---------------------------------------------------------------------------------------------

/// `POST /chargers/{id}/diagnostics`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DiagnosticsRequest {
    /// The oldest log entry wanted (RFC 3339).
    start_time: Option<Value>,
    /// The newest log entry wanted (RFC 3339).
    stop_time: Option<Value>,
    retries: Option<Value>,
    retry_interval: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/api/v1/chargers/{id}/diagnostics",
    tag = "files",
    operation_id = "requestDiagnostics",
    summary = "Ask a charger for its diagnostics",
    description = "Sends GetDiagnostics with `location` = this server's upload URL for the \
        charger (`<public_url>/files/diagnostics/{id}/{token}`; the charger PUTs or POSTs its \
        file there, raw or multipart, up to `diagnostics_max_bytes`), and the optional window \
        and retries. The charger answers with the file name it will upload (if any) and \
        reports DiagnosticsStatusNotifications (Uploading, Uploaded, UploadFailed), shown as \
        `diagnosticsStatus` in `GET /chargers/{id}`. The body may be empty. Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    request_body = DiagnosticsRequest,
    responses(
        (status = 200, description = "The charger's answer", body = FileCommandAnswer),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such charger",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The charger is not connected, or not booted",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A member is invalid (`field`)",
            body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The charger answered with an error",
            body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The charger did not answer in time",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn request_diagnostics(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    body: Option<ApiJson<DiagnosticsRequest>>,
) -> Result<Json<FileCommandAnswer>, ApiError> {
    let id = registered(&api, &raw).await?;
    let body = body.map(|ApiJson(b)| b).unwrap_or_default();
    let location = format!(
        "{}/files/diagnostics/{id}/{}",
        public_url(&api),
        diagnostics_token(&api, &id)?
    );
    let mut payload = json!({ "location": location });
    for (member, value) in [
        ("startTime", body.start_time),
        ("stopTime", body.stop_time),
        ("retries", body.retries),
        ("retryInterval", body.retry_interval),
    ] {
        if let Some(v) = value {
            payload[member] = v;
        }
    }
    let request: GetDiagnostics = decode_member(&payload.to_string(), "")?;
    let answer = api.central.sessions.call(&id, &request).await?;
    Ok(Json(FileCommandAnswer {
        location,
        response: serde_json::to_value(answer).map_err(ApiError::internal)?,
    }))
}

#[utoipa::path(
    put,
    path = "/files/diagnostics/{charger}/{token}",
    tag = "files",
    operation_id = "putDiagnostics",
    summary = "Upload a diagnostics file, named by its part (for chargers)",
    description = "As `PUT /files/diagnostics/{charger}/{token}/{file}`, the file's name taken \
        from the multipart part's `filename` (or generated for a raw body). This is the \
        `location` GetDiagnostics carries. No auth: the token is the key.",
    params(
        ("charger" = String, Path, description = "The charge box id"),
        ("token" = String, Path, description = "The charger's upload token"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(UploadAnswers),
    security(())
)]
async fn receive_diagnostics(
    State(api): State<Arc<Api>>,
    Path((charger, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(&api, &charger, &token, None, &headers, body).await
}

#[utoipa::path(
    put,
    path = "/files/diagnostics/{charger}/{token}/{file}",
    tag = "files",
    operation_id = "uploadDiagnostics",
    summary = "Upload a diagnostics file (for chargers)",
    description = "Where a charger delivers the file GetDiagnostics asked for: PUT or POST, \
        the body raw or `multipart/form-data` (the first part with a file name is kept, and \
        names the file when the path does not). The same works without `/{file}` (the name \
        then comes from the multipart part, or is generated). Up to `diagnostics_max_bytes`; \
        a file of the same name replaces the earlier one. No auth: the token in the location \
        the server sent is the key.",
    params(
        ("charger" = String, Path, description = "The charge box id"),
        ("token" = String, Path, description = "The charger's upload token"),
        ("file" = String, Path, description = "The file's name"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(UploadAnswers),
    security(())
)]
async fn receive_named_diagnostics(
    State(api): State<Arc<Api>>,
    Path((charger, token, file)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(&api, &charger, &token, Some(&file), &headers, body).await
}

/// What a diagnostics upload answers.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its documentation is used.
enum UploadAnswers {
    #[response(status = 201, description = "Stored")]
    Stored(DiagnosticsFileView),
    #[response(
        status = 400,
        description = "A broken body, or a multipart body without a file part",
        content_type = "application/problem+json"
    )]
    Broken(Problem),
    #[response(
        status = 404,
        description = "Wrong charger or token",
        content_type = "application/problem+json"
    )]
    Unknown(Problem),
    #[response(
        status = 408,
        description = "The body stopped arriving for 30 s",
        content_type = "application/problem+json"
    )]
    Stalled(Problem),
    #[response(
        status = 413,
        description = "Larger than `diagnostics_max_bytes`",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
}

// Documentation of the POST twins of the two upload routes (one handler each serves both).
#[utoipa::path(
    post,
    path = "/files/diagnostics/{charger}/{token}",
    tag = "files",
    operation_id = "postDiagnostics",
    summary = "Upload a diagnostics file by POST (for chargers)",
    description = "As `PUT` on the same path: raw or `multipart/form-data`. No auth.",
    params(
        ("charger" = String, Path, description = "The charge box id"),
        ("token" = String, Path, description = "The charger's upload token"),
    ),
    request_body(content = Vec<u8>, content_type = "multipart/form-data"),
    responses(UploadAnswers),
    security(())
)]
#[allow(dead_code)]
fn post_diagnostics() {}

#[utoipa::path(
    post,
    path = "/files/diagnostics/{charger}/{token}/{file}",
    tag = "files",
    operation_id = "postNamedDiagnostics",
    summary = "Upload a named diagnostics file by POST (for chargers)",
    description = "As `PUT` on the same path: raw or `multipart/form-data`. No auth.",
    params(
        ("charger" = String, Path, description = "The charge box id"),
        ("token" = String, Path, description = "The charger's upload token"),
        ("file" = String, Path, description = "The file's name"),
    ),
    request_body(content = Vec<u8>, content_type = "multipart/form-data"),
    responses(UploadAnswers),
    security(())
)]
#[allow(dead_code)]
fn post_named_diagnostics() {}

async fn receive(
    api: &Api,
    charger: &str,
    token: &str,
    file: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let Ok(id) = ChargeBoxId::parse(charger) else {
        return not_found();
    };
    match diagnostics_token(api, &id) {
        Ok(expected) if same_token(&expected, token) => {}
        Ok(_) => return not_found(),
        Err(e) => return e.into_response(),
    }
    let limit = api.central.settings.diagnostics_max_bytes;
    if content_length(headers).is_some_and(|n| n > limit) {
        return UploadError::TooLarge(limit).problem().into_response();
    }
    let dir = diagnostics_dir(api, &id);
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        return Problem::internal(&e).into_response();
    }
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(multipart_boundary);
    // Received under a temporary name: a multipart body names its file only as it streams.
    let temporary = dir.join(format!(".upload-{}", random_token()));
    let received = match upload::receive(body, &temporary, limit, boundary.as_deref()).await {
        Ok(r) => r,
        Err(e) => return e.problem().into_response(),
    };
    let name = tidy_name(
        file.map(str::to_owned)
            .or(received.filename.clone())
            .as_deref()
            .unwrap_or(""),
    );
    if let Err(e) = tokio::fs::rename(&temporary, dir.join(&name)).await {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Problem::internal(&e).into_response();
    }
    tracing::info!(charger = %id, file = %name, size = received.size, "diagnostics received");
    let view = DiagnosticsFileView {
        file_name: name,
        size: received.size,
        received_at: OffsetDateTime::now_utc(),
    };
    (StatusCode::CREATED, Json(view)).into_response()
}

/// A diagnostics file a charger uploaded.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DiagnosticsFileView {
    #[schema(example = "diagnostics-CP-0001.zip")]
    file_name: String,
    size: u64,
    #[serde(with = "time::serde::rfc3339")]
    received_at: OffsetDateTime,
}

#[utoipa::path(
    get,
    path = "/api/v1/chargers/{id}/diagnostics",
    tag = "files",
    operation_id = "listDiagnostics",
    summary = "List a charger's diagnostics files",
    description = "The files the charger uploaded, newest first; download one with \
        `…/diagnostics/{file}`. Operator only.",
    params(("id" = String, Path, description = "The charge box id")),
    responses(
        (status = 200, description = "The files", body = [DiagnosticsFileView]),
        (status = 404, description = "No such charger",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn list_diagnostics(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<Json<Vec<DiagnosticsFileView>>, ApiError> {
    let id = registered(&api, &raw).await?;
    let mut files = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(diagnostics_dir(&api, &id)).await {
        while let Some(entry) = entries.next_entry().await.map_err(ApiError::internal)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !valid_name(&name) {
                continue; // an upload still arriving
            }
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            let received_at = meta
                .modified()
                .map(OffsetDateTime::from)
                .unwrap_or_else(|_| OffsetDateTime::now_utc());
            files.push(DiagnosticsFileView {
                file_name: name,
                size: meta.len(),
                received_at,
            });
        }
    }
    files.sort_by_key(|f| std::cmp::Reverse(f.received_at));
    Ok(Json(files))
}

#[utoipa::path(
    get,
    path = "/api/v1/chargers/{id}/diagnostics/{file}",
    tag = "files",
    operation_id = "downloadDiagnostics",
    summary = "Download a diagnostics file",
    description = "The file as the charger uploaded it. Operator only.",
    params(
        ("id" = String, Path, description = "The charge box id"),
        ("file" = String, Path, description = "The file's name"),
    ),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream",
            body = Vec<u8>),
        (status = 404, description = "No such charger or file",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn download_diagnostics(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path((raw, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = registered(&api, &raw).await?;
    if !valid_name(&file) {
        return Ok(not_found());
    }
    Ok(stream_file(&diagnostics_dir(&api, &id).join(&file), &file).await)
}

// ---------------------------------------------------------------------------------------------
// The charger view's part
// ---------------------------------------------------------------------------------------------

/// What a charger reported in one kind of status notification since this server started.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusTrailView {
    /// The last status (as the notification spells it); null when none came.
    #[schema(example = "Installed")]
    status: Option<String>,
    /// When it arrived.
    #[serde(with = "time::serde::rfc3339::option")]
    updated_at: Option<OffsetDateTime>,
    /// The last 20, oldest first.
    history: Vec<ReportedView>,
}

/// One reported status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportedView {
    status: String,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
}

pub(super) fn trail_view(api: &Api, kind: Kind, id: &ChargeBoxId) -> StatusTrailView {
    let trail = api.central.files.trail(kind, id).unwrap_or_default();
    StatusTrailView {
        status: trail.last().map(|r| r.status.clone()),
        updated_at: trail.last().map(|r| r.at),
        history: trail
            .history
            .iter()
            .map(|r| ReportedView {
                status: r.status.clone(),
                at: r.at,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_separators_or_leading_dots_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a b", "é"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        for good in ["fw-2.1.0.bin", "A_b+c~d", "x"] {
            assert!(valid_name(good), "{good:?}");
        }
        assert!(!valid_name(&"a".repeat(101)));
    }

    #[test]
    fn a_chargers_file_name_is_made_safe() {
        assert_eq!(tidy_name("../../etc/passwd"), "passwd");
        assert_eq!(tidy_name("C:\\logs\\diag 1.zip"), "diag_1.zip");
        assert_eq!(tidy_name(".profile"), "_profile");
        assert!(valid_name(&tidy_name("")));
    }
}
