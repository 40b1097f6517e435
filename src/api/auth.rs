//! Who is calling the REST API. The operator token (configured, or generated at first start and
//! kept in the data folder) may do everything; it is held only as a digest and compared in
//! constant time. A customer token (issued when the operator creates the customer, stored as a
//! digest) acts for that customer only. Invalid tokens are throttled per source address
//! (`transport::throttle`): past `auth_free_failures` attempts wait `auth_delay` and then get
//! 429; an address whose token worked before keeps working.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Api, ApiError};
use crate::domain::customer::{Customer, token_digest};
use crate::metrics;
use crate::transport::Peer;

/// File name of the generated operator token inside the data folder.
pub const TOKEN_FILE: &str = "operator-token";

pub struct OperatorToken {
    digest: [u8; 32],
}

impl OperatorToken {
    pub fn from_token(token: &str) -> Self {
        OperatorToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    pub fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        d.ct_eq(&self.digest).into()
    }

    /// The configured token, else the one kept in `data_dir`, else a new one written there.
    /// Returns where it was found or written, when it is a file.
    pub fn load_or_generate(
        configured: Option<&str>,
        data_dir: &Path,
    ) -> std::io::Result<(Self, Option<PathBuf>)> {
        if let Some(t) = configured {
            return Ok((Self::from_token(t), None));
        }
        let path = data_dir.join(TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => {
                return Ok((Self::from_token(text.trim()), Some(path)));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(data_dir)?;
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        write_private(&path, &token)?;
        Ok((Self::from_token(&token), Some(path)))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, format!("{text}\n"))
}

/// Proof that the request carries the operator token.
pub struct Operator;

impl FromRequestParts<Arc<Api>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, ApiError> {
        let Some(token) = bearer(parts) else {
            return Err(ApiError::Unauthorized("send Authorization: Bearer <token>"));
        };
        let digest = token_digest(token);
        let attempt = enter(parts, api, &digest).await?;
        if api.operator.matches(token) {
            passed(attempt);
            return Ok(Operator);
        }
        // A customer's own token at an operator route is not a guess: no failure counted.
        if customer(api, digest).await?.is_some() {
            return Err(ApiError::Unauthorized(
                "the bearer token is not valid for this operation",
            ));
        }
        Err(failed(api, attempt))
    }
}

/// The throttle's say before a token (by its `digest`) is checked; `None` when the request's
/// address is not known (not served by our listener).
async fn enter(
    parts: &Parts,
    api: &Api,
    digest: &str,
) -> Result<Option<crate::transport::throttle::Attempt>, ApiError> {
    enter_from(parts.extensions.get::<Peer>(), api, digest).await
}

/// [`enter`] for a handler that has the connection's [`Peer`] (the console's sign-in forms).
pub(crate) async fn enter_from(
    peer: Option<&Peer>,
    api: &Api,
    digest: &str,
) -> Result<Option<crate::transport::throttle::Attempt>, ApiError> {
    let Some(peer) = peer else {
        return Ok(None);
    };
    match api.tokens.enter(peer.source(), digest).await {
        Ok(attempt) => Ok(Some(attempt)),
        Err(retry) => {
            metrics::auth_throttled("token");
            Err(ApiError::Throttled(retry.seconds()))
        }
    }
}

pub(crate) fn passed(attempt: Option<crate::transport::throttle::Attempt>) {
    if let Some(a) = attempt {
        a.succeeded();
    }
}

/// A token that is neither the operator's nor a customer's: counted, 401 or (past the free
/// failures) 429.
pub(crate) fn failed(api: &Api, attempt: Option<crate::transport::throttle::Attempt>) -> ApiError {
    metrics::auth_failure("token");
    if attempt.is_some_and(|a| a.failed()) {
        metrics::auth_throttled("token");
        tracing::warn!("repeated invalid bearer tokens from one address: slowed");
        return ApiError::Throttled(api.tokens.settings().delay.as_secs().max(1));
    }
    ApiError::Unauthorized("the bearer token is not valid")
}

/// The customer whose token has this digest, from the cache or the ledger.
pub(crate) async fn customer(api: &Api, digest: String) -> Result<Option<Customer>, ApiError> {
    let cache = &api.central.customers_by_token;
    if let Some(customer) = cache.get(&digest) {
        return Ok(Some(customer.clone()));
    }
    match api.store.customer_by_token(&digest).await {
        Ok(Some(customer)) => {
            // Bounded by the number of customers with live tokens; cleared as a whole if a
            // flood of them ever outgrows it.
            if cache.len() >= 100_000 {
                cache.clear();
            }
            cache.insert(digest, customer.clone());
            Ok(Some(customer))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The caller: the operator, or one customer.
pub enum Principal {
    Operator,
    Customer(Customer),
}

impl Principal {
    /// The customer a request acts for, when it is a customer's.
    pub fn customer_id(&self) -> Option<i64> {
        match self {
            Principal::Operator => None,
            Principal::Customer(c) => Some(c.id),
        }
    }
}

impl FromRequestParts<Arc<Api>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, ApiError> {
        let Some(token) = bearer(parts) else {
            return Err(ApiError::Unauthorized("send Authorization: Bearer <token>"));
        };
        let digest = token_digest(token);
        let attempt = enter(parts, api, &digest).await?;
        if api.operator.matches(token) {
            passed(attempt);
            return Ok(Principal::Operator);
        }
        match customer(api, digest).await? {
            Some(customer) => {
                passed(attempt);
                Ok(Principal::Customer(customer))
            }
            None => Err(failed(api, attempt)),
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_token_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, path) = OperatorToken::load_or_generate(None, dir.path()).unwrap();
        let path = path.unwrap();
        let token = std::fs::read_to_string(&path).unwrap();
        assert!(a.matches(token.trim()));
        let (b, _) = OperatorToken::load_or_generate(None, dir.path()).unwrap();
        assert!(b.matches(token.trim()));
        assert!(!b.matches("something else"));
        let (c, none) =
            OperatorToken::load_or_generate(Some("configured-token-123"), dir.path()).unwrap();
        assert!(none.is_none() && c.matches("configured-token-123"));
    }
}
