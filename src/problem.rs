//! HTTP errors as `application/problem+json` (RFC 9457): every 4xx/5xx the server writes goes
//! through [`Problem`], and [`ApiJson`] turns a body that cannot be read into one that names the
//! offending field (400 for JSON that does not parse, 422 for JSON of the wrong shape).
//! Internal details go to the log, never into a response.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
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
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            let essence = ct.split(';').next().unwrap_or("").trim();
            if !(essence == "application/json" || essence.ends_with("+json")) {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported media type",
                )
                .detail("send the body as application/json"));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            Problem::new(StatusCode::BAD_REQUEST, "Unreadable body").detail(e.body_text())
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parse a body; syntax errors are 400, shape errors 422 with the field's path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
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
}
