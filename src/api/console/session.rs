//! Console sign-in: cookie sessions and CSRF. A session is a random 256-bit id held only in
//! memory (a `DashMap` of id → who and until when): a restart signs everyone out, which is the
//! price of keeping no session table in the ledger. The cookie is HttpOnly and SameSite=Strict,
//! and Secure when the browser reached us over TLS. Every form that changes something carries the
//! session's CSRF token, compared in constant time; the sign-in form carries a double-submit
//! token of its own. This module knows no page; it must never log a token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use dashmap::DashMap;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::domain::customer::Customer;

/// How long a session lasts after sign-in, whatever its use.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at once; past it, expired ones are swept and, if still full, sign-in waits.
const MAX_SESSIONS: usize = 100_000;

/// Which console a cookie belongs to: each has its own cookie name and path, so a driver signed
/// in at `/my/` holds nothing the operator console accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Operator,
    Driver,
}

impl Side {
    pub fn cookie(self) -> &'static str {
        match self {
            Side::Operator => "echarging_console",
            Side::Driver => "echarging_my",
        }
    }

    fn path(self) -> &'static str {
        self.home()
    }

    /// Where this side's pages start.
    pub fn home(self) -> &'static str {
        match self {
            Side::Operator => "/",
            Side::Driver => "/my/",
        }
    }

    fn pre_cookie(self) -> &'static str {
        match self {
            Side::Operator => "echarging_console_signin",
            Side::Driver => "echarging_my_signin",
        }
    }
}

/// Who a session acts for.
#[derive(Debug, Clone)]
pub enum Who {
    Operator,
    Customer(Customer),
}

#[derive(Debug)]
pub struct Session {
    pub who: Who,
    pub csrf: String,
    expires: Instant,
}

#[derive(Default)]
pub struct SessionStore {
    sessions: DashMap<String, Arc<Session>>,
}

pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Constant-time equality of two secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl SessionStore {
    /// A new session; `None` when the table is full of live sessions.
    pub fn open(&self, who: Who) -> Option<(String, Arc<Session>)> {
        if self.sessions.len() >= MAX_SESSIONS {
            let now = Instant::now();
            self.sessions.retain(|_, s| s.expires > now);
            if self.sessions.len() >= MAX_SESSIONS {
                return None;
            }
        }
        let id = random_token();
        let session = Arc::new(Session {
            who,
            csrf: random_token(),
            expires: Instant::now() + SESSION_TTL,
        });
        self.sessions.insert(id.clone(), session.clone());
        Some((id, session))
    }

    pub fn close(&self, id: &str) {
        self.sessions.remove(id);
    }

    /// The live session of `side` the request's cookie names.
    pub fn of_request(&self, parts: &Parts, side: Side) -> Option<(String, Arc<Session>)> {
        let id = cookie(&parts.headers, side.cookie())?;
        let session = self.sessions.get(id)?.clone();
        if session.expires <= Instant::now() {
            self.sessions.remove(id);
            return None;
        }
        let fits = matches!(
            (&session.who, side),
            (Who::Operator, Side::Operator) | (Who::Customer(_), Side::Driver)
        );
        fits.then(|| (id.to_string(), session))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sessions.len()
    }
}

/// The value of cookie `name`, if the request sent it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Whether the browser reached us over TLS: directly (the request's Origin is `https://`, which
/// browsers send on every form POST) or through a TLS-terminating proxy that says so.
pub fn over_tls(headers: &HeaderMap) -> bool {
    let says = |name: &str, prefix: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with(prefix))
    };
    says("x-forwarded-proto", "https") || says("origin", "https://")
}

fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    // Values are base64url and names/paths are constants: always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

pub fn session_cookie(side: Side, id: &str, secure: bool) -> HeaderValue {
    set_cookie(
        side.cookie(),
        id,
        side.path(),
        SESSION_TTL.as_secs(),
        secure,
    )
}

pub fn clear_cookie(side: Side, secure: bool) -> HeaderValue {
    set_cookie(side.cookie(), "", side.path(), 0, secure)
}

/// The sign-in form's double-submit token: set as a cookie with the form, echoed in a hidden
/// field, so another site cannot sign a browser in to an account of its choosing.
pub fn signin_cookie(side: Side, value: &str, secure: bool) -> HeaderValue {
    set_cookie(side.pre_cookie(), value, side.path(), 3600, secure)
}

pub fn signin_token_ok(headers: &HeaderMap, side: Side, field: &str) -> bool {
    cookie(headers, side.pre_cookie()).is_some_and(|c| same_secret(c, field))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_with_cookie(value: &str) -> Parts {
        let (parts, ()) = axum::http::Request::builder()
            .header(header::COOKIE, value)
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn a_session_is_found_only_on_its_side() {
        let store = SessionStore::default();
        let (id, session) = store.open(Who::Operator).unwrap();
        assert_ne!(id, session.csrf);
        let op = parts_with_cookie(&format!("other=1; echarging_console={id}"));
        assert!(store.of_request(&op, Side::Operator).is_some());
        let driver = parts_with_cookie(&format!("echarging_my={id}"));
        assert!(store.of_request(&driver, Side::Driver).is_none());
        store.close(&id);
        assert!(store.of_request(&op, Side::Operator).is_none());
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn cookies_are_strict_and_secure_under_tls() {
        let c = session_cookie(Side::Driver, "abc", true);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(c.contains("Path=/my/"));
        let plain = session_cookie(Side::Operator, "abc", false);
        assert!(!plain.to_str().unwrap().contains("Secure"));
        let mut h = HeaderMap::new();
        h.insert("origin", HeaderValue::from_static("https://cs.example"));
        assert!(over_tls(&h));
        assert!(!over_tls(&HeaderMap::new()));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "ab"));
    }
}
