//! The web console, served by the same binary on the same port: the operator console at `/`
//! ([`operator`]) and the driver's page at `/my/` ([`driver`]), server-rendered HTML (maud) with
//! a few dozen lines of vendored JavaScript that follow Server-Sent Events; no CDN, no build
//! step. Sign-in turns a bearer token into a cookie session ([`session`]). It calls the store and
//! the live sessions the way the REST handlers do and changes none of them; pictures are
//! server-drawn SVG ([`svg`]). It must not hold a lock across an `.await`.

mod driver;
mod load;
mod operator;
pub mod session;
mod svg;
mod toolbox;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;

use super::Api;
use session::{Session, SessionStore, Side, Who};

/// What the console's handlers share: the REST layer's state plus the console's own.
pub struct Console {
    pub api: Arc<Api>,
    pub sessions: SessionStore,
    pub load: load::LoadHistory,
}

/// The console's routes, ready to merge into the application's router.
pub fn router(api: Arc<Api>) -> Router {
    let console = Arc::new(Console {
        api,
        sessions: SessionStore::default(),
        load: load::LoadHistory::default(),
    });
    load::start_sampler(console.clone());
    Router::new()
        .route("/console/assets/console.js", get(script))
        .route("/console/assets/console.css", get(style))
        .merge(operator::routes())
        .merge(toolbox::routes())
        .merge(driver::routes())
        .layer(axum::middleware::map_response(page_headers))
        .with_state(console)
}

const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Pages may load only what this server serves, may not be framed, and are not cached (they
/// show live state and carry CSRF tokens).
async fn page_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A signed-in operator (a GET without a session is sent to the sign-in form at `/`).
pub struct OperatorSession {
    pub id: String,
    pub session: Arc<Session>,
}

/// A signed-in driver, with the customer it acts for.
pub struct DriverSession {
    pub id: String,
    pub session: Arc<Session>,
    pub customer: crate::domain::customer::Customer,
}

/// Why a console request without a usable session is refused.
pub struct SignInFirst(Side);

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        let to = match self.0 {
            Side::Operator => "/",
            Side::Driver => "/my/",
        };
        Redirect::to(to).into_response()
    }
}

impl FromRequestParts<Arc<Console>> for OperatorSession {
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, c: &Arc<Console>) -> Result<Self, SignInFirst> {
        let (id, session) = c
            .sessions
            .of_request(parts, Side::Operator)
            .ok_or(SignInFirst(Side::Operator))?;
        Ok(OperatorSession { id, session })
    }
}

impl FromRequestParts<Arc<Console>> for DriverSession {
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, c: &Arc<Console>) -> Result<Self, SignInFirst> {
        let (id, session) = c
            .sessions
            .of_request(parts, Side::Driver)
            .ok_or(SignInFirst(Side::Driver))?;
        let Who::Customer(customer) = &session.who else {
            return Err(SignInFirst(Side::Driver));
        };
        let customer = customer.clone();
        Ok(DriverSession {
            id,
            session,
            customer,
        })
    }
}

/// A form's CSRF token must be the session's.
/// A form whose only field is its CSRF token (sign-out, cancel, stop).
#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// The sign-in form: the token and the sign-in page's own double-submit token.
#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub signin: String,
}

/// A verified sign-in: open a session for `who` and send the browser home with its cookie.
pub fn signed_in(c: &Console, who: Who, side: Side, secure: bool) -> Response {
    let Some((id, _)) = c.sessions.open(who) else {
        return message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sessions",
            "Try again later.",
        );
    };
    let mut r = Redirect::to(side.home()).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        session::session_cookie(side, &id, secure),
    );
    r
}

/// Sign-out: check the form's CSRF token, close the session, clear its cookie, go home.
pub fn signed_out(
    c: &Console,
    session: &Session,
    id: &str,
    side: Side,
    headers: &axum::http::HeaderMap,
    csrf: &str,
) -> Response {
    if !csrf_ok(session, csrf) {
        return csrf_refused();
    }
    c.sessions.close(id);
    let mut r = Redirect::to(side.home()).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        session::clear_cookie(side, session::over_tls(headers)),
    );
    r
}

pub fn csrf_ok(session: &Session, presented: &str) -> bool {
    session::same_secret(&session.csrf, presented)
}

pub fn csrf_refused() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form is stale or came from elsewhere. Go back, reload the page and try again.",
    )
}

/// The page frame: header with navigation, main content, the script that keeps it live.
/// `stream` is the Server-Sent Events URL the script follows, if any.
pub struct Frame<'a> {
    pub title: &'a str,
    pub side: Side,
    pub session: Option<&'a Session>,
    pub stream: Option<String>,
}

pub fn page(frame: Frame<'_>, body: Markup) -> Markup {
    let (home, brand) = match frame.side {
        Side::Operator => ("/", "echarging console"),
        Side::Driver => ("/my/", "echarging — my charging"),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (frame.title) " · " (brand) }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body data-stream=[frame.stream.as_deref()] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href=(home) { (brand) }
                    @if let Some(s) = frame.session {
                        nav aria-label="Main" {
                            @if frame.side == Side::Operator {
                                a href="/" { "Fleet" }
                                a href="/console/reservations" { "Bookings" }
                                a href="/console/transactions" { "Transactions" }
                                a href="/console/customers" { "Customers" }
                            } @else {
                                a href="/my/" { "My bookings" }
                                a href="/my/history" { "History" }
                            }
                            form.inline method="post" action=(if frame.side == Side::Operator { "/console/signout" } else { "/my/signout" }) {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (frame.title) }
                    (body)
                }
            }
        }
    }
}

/// A page with one message, for refusals and errors.
pub fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = page(
        Frame {
            title,
            side: Side::Operator,
            session: None,
            stream: None,
        },
        html! { p.notice.error role="alert" { (text) } },
    );
    (status, body).into_response()
}

/// The server failed: log why, show nothing internal.
pub fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console request failed");
    message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The server could not answer. Try again in a moment.",
    )
}

/// The sign-in form both consoles share: a password field named `token`, a submit button, and
/// the double-submit token (set as a cookie with the page).
pub fn signin_page(
    side: Side,
    secure: bool,
    status: StatusCode,
    problem: Option<&str>,
) -> Response {
    let pre = session::random_token();
    let (title, action, hint) = match side {
        Side::Operator => (
            "Operator sign-in",
            "/console/signin",
            "Paste the operator token (the server's api_token, or the operator-token file in its data folder).",
        ),
        Side::Driver => (
            "Driver sign-in",
            "/my/signin",
            "Paste the token your operator gave you when your account was created.",
        ),
    };
    let body = page(
        Frame {
            title,
            side,
            session: None,
            stream: None,
        },
        html! {
            @if let Some(p) = problem { p.notice.error role="alert" { (p) } }
            form.card.signin method="post" action=(action) {
                input type="hidden" name="signin" value=(pre);
                label for="token" { "Token" }
                input id="token" type="password" name="token" autocomplete="current-password" required autofocus aria-describedby="token-hint";
                p.hint id="token-hint" { (hint) }
                button type="submit" { "Sign in" }
            }
        },
    );
    let mut r = (status, body).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        session::signin_cookie(side, &pre, secure),
    );
    r
}

/// `2026-12-01 10:15:00 UTC`.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `10:15`.
pub fn hhmm(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// An energy in Wh as people read it: `12.345 kWh`.
pub fn kwh(wh: i64) -> String {
    format!("{:.3} kWh", wh as f64 / 1000.0)
}

/// A UTC day `YYYY-MM-DD` from a query, else today.
pub fn day_of(raw: Option<&str>) -> time::Date {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    raw.and_then(|d| time::Date::parse(d, format).ok())
        .unwrap_or_else(|| OffsetDateTime::now_utc().date())
}

pub fn day_text(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// An instant from a form: HTML `datetime-local` (read as UTC, as the pages say) or RFC 3339.
pub fn parse_instant(raw: &str) -> Option<OffsetDateTime> {
    let raw = raw.trim();
    if let Ok(t) = OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339) {
        return Some(t);
    }
    let with_secs =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let no_secs = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::PrimitiveDateTime::parse(raw, with_secs)
        .or_else(|_| time::PrimitiveDateTime::parse(raw, no_secs))
        .ok()
        .map(|t| t.assume_utc())
}

/// An instant as `datetime-local` wants it (UTC, to the minute).
pub fn local_input(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn form_instants_read_as_utc() {
        assert_eq!(
            parse_instant("2026-12-01T10:15"),
            Some(datetime!(2026-12-01 10:15 UTC))
        );
        assert_eq!(
            parse_instant("2026-12-01T10:15:30"),
            Some(datetime!(2026-12-01 10:15:30 UTC))
        );
        assert_eq!(
            parse_instant("2026-12-01T10:15:00+01:00"),
            Some(datetime!(2026-12-01 09:15 UTC))
        );
        assert_eq!(parse_instant("tomorrow"), None);
        assert_eq!(
            local_input(datetime!(2026-12-01 09:05:59 UTC)),
            "2026-12-01T09:05"
        );
    }
}
