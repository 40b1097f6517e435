//! HTTP errors as `application/problem+json` (RFC 9457): every 4xx/5xx the server writes goes
//! through [`Problem`], and [`ApiJson`] turns a body that cannot be read into one that names the
//! offending field (400 for JSON that does not parse, 422 for JSON of the wrong shape, a body
//! that is not an object, or a string holding NUL, which no database text column takes; 415 for
//! a body not sent as JSON). [`reject_nul_in_query`] does the same for query parameters.
//! Internal details go to the log, never into a response.

use axum::body::Bytes;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An error answer (RFC 9457 problem details), sent as `application/problem+json`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference identifying the problem type; `about:blank` (the HTTP status says it all).
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "about:blank")]
    pub kind: &'static str,
    /// Short summary of the problem type.
    #[schema(example = "Invalid request field")]
    pub title: String,
    /// The HTTP status code, repeated.
    #[schema(example = 422)]
    pub status: u16,
    /// What went wrong with this request, for humans.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "connectors: must be from 1 to 100")]
    pub detail: Option<String>,
    /// Extension member: the request field the problem is about, as a JSON path.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "connectors")]
    pub field: Option<String>,
    /// Extension member: the slot a booking collided with (`{start, end}`), on 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ConflictSlot>)]
    pub conflict: Option<Box<serde_json::Value>>,
}

/// The `conflict` member of a booking's 409: the already reserved slot that overlaps the one
/// asked for; never who holds it. (Documentation type: the member is written as JSON.)
#[derive(utoipa::ToSchema)]
pub struct ConflictSlot {
    /// Start of the taken slot (RFC 3339, UTC).
    pub start: time::OffsetDateTime,
    /// End of the taken slot, exclusive (RFC 3339, UTC).
    pub end: time::OffsetDateTime,
}

impl Problem {
    pub fn new(status: StatusCode, title: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank",
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            field: None,
            conflict: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 422 about one field of the request body.
    pub fn invalid_field(field: &str, reason: impl std::fmt::Display) -> Self {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request field")
            .detail(format!("{field}: {reason}"))
            .field(field)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "Not found").detail(what)
    }

    /// 500 with the cause logged, not sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
            .detail("the server could not complete the request; it has been logged")
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// A JSON request body whose errors are problem+json naming the field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|ct| ct.to_str().ok())
            .is_some_and(is_json_media_type);
        if !json {
            return Err(
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type")
                    .detail("send the body as application/json (Content-Type)"),
            );
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| Problem::new(e.status(), "Unreadable body").detail(e.body_text()))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body (`Option<ApiJson<T>>`): an empty body is `None`; any other is read
/// as [`ApiJson`] reads it, so a body must still be sent as JSON.
impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Problem> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|ct| ct.to_str().ok())
            .is_some_and(is_json_media_type);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| Problem::new(e.status(), "Unreadable body").detail(e.body_text()))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        if !json {
            return Err(
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type")
                    .detail("send the body as application/json (Content-Type)"),
            );
        }
        parse_json(&bytes).map(|v| Some(ApiJson(v)))
    }
}

/// `application/json` or any `…+json`, parameters aside; media types are case-insensitive
/// (RFC 9110 §8.3.1).
fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// 422 naming the first query parameter that holds a NUL character (`%00`), if any.
pub fn reject_nul_in_query(query: Option<&str>) -> Result<(), Problem> {
    let Some(query) = query.filter(|q| q.contains("%00")) else {
        return Ok(());
    };
    let pairs: Vec<(String, String)> =
        axum::extract::Query::try_from_uri(&format!("/?{query}").parse().unwrap_or_default())
            .map(|axum::extract::Query(pairs)| pairs)
            .unwrap_or_default();
    match pairs
        .iter()
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
    {
        Some((name, _)) => Err(Problem::invalid_field(name, "must not contain NUL")),
        None => Ok(()),
    }
}

/// Parse a body; syntax errors are 400, shape errors 422 with the field's path. A body must be
/// a JSON object (serde would otherwise take an array for a struct, member by position), and no
/// string in it may hold NUL.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| malformed(&e))?;
        return Err(
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request body")
                .detail("the body must be a JSON object"),
        );
    }
    // NUL can only be written as the escape `\u0000`: look closer only when it appears.
    if contains(bytes, b"\\u0000") {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
        if let Some(path) = nul_at(&value, String::new()) {
            return Err(Problem::invalid_field(&path, "must not contain NUL"));
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        let message = inner.to_string();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let path = e.path().to_string();
                let field = named_in(&message)
                    .map(|name| {
                        if path == "." {
                            name.to_string()
                        } else {
                            format!("{path}.{name}")
                        }
                    })
                    .unwrap_or(path);
                Problem::invalid_field(&field, strip_position(&message))
            }
            _ => malformed(inner),
        }
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The path (as `a.b[2]`) of the first string or member name holding NUL.
fn nul_at(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, format!("{path}[{i}]"))),
        Value::Object(members) => members.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_at(v, here)
            }
        }),
        _ => None,
    }
}

fn malformed(e: &serde_json::Error) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "Malformed JSON")
        .detail(format!("the body is not valid JSON: {e}"))
}

/// serde names a missing field only in its message (`missing field `id``); the path stops at
/// the object that lacks it. (For an unknown field the path already ends with its name.)
fn named_in(message: &str) -> Option<&str> {
    if !message.starts_with("missing field") {
        return None;
    }
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

fn strip_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |i| &message[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        id: String,
        inner: Option<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let p = parse_json::<Body>(b"{").unwrap_err();
        assert_eq!(p.status, 400);
        let p = parse_json::<Body>(b"{}").unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("id")));
        let p = parse_json::<Body>(br#"{"id":"a","inner":{"n":"x"}}"#).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("inner.n"));
        let p = parse_json::<Body>(br#"{"id":"a","extra":1}"#).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("extra"));
        let p = parse_json::<Body>(br#"{"id":"a"} trailing"#).unwrap_err();
        assert_eq!(p.status, 400);
    }

    #[test]
    fn bodies_are_objects_without_nul() {
        let p = parse_json::<Body>(br#"["a", null]"#).unwrap_err();
        assert_eq!(p.status, 422);
        let p = parse_json::<Body>(b"[1,").unwrap_err();
        assert_eq!(p.status, 400);
        let p = parse_json::<Body>(br#"{"id":"a\u0000"}"#).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("id")));
        let p = parse_json::<Body>(br#"{"id":"a","inner":{"n":1,"x\u0000":2}}"#).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("inner.x\u{0}"));
        // An escaped backslash before `u0000` is no NUL.
        assert!(parse_json::<Body>(br#"{"id":"a\\u0000"}"#).is_ok());
    }

    #[test]
    fn json_media_types_are_case_insensitive() {
        assert!(is_json_media_type("application/JSON; charset=utf-8"));
        assert!(is_json_media_type("application/problem+json"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type(""));
    }

    #[test]
    fn nul_in_a_query_names_the_parameter() {
        assert!(reject_nul_in_query(Some("a=1&b=2")).is_ok());
        let p = reject_nul_in_query(Some("a=1&status=B%00")).unwrap_err();
        assert_eq!((p.status, p.field.as_deref()), (422, Some("status")));
    }
}
