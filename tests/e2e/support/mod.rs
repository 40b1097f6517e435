//! Shared test harness: spawn the real application on 127.0.0.1:0 with a fresh SQLite file,
//! talk to it with real HTTP (reqwest) and real WebSocket chargers (the simulator's library), and
//! check every frame the server sent against the official OCPP 1.6 JSON schemas.

pub mod pg;
pub mod process;
pub mod schema;

use std::time::Duration;

use echarging::app::Application;
use echarging::central::Central;
use echarging::settings::Settings;
use echarging_sim::{Charger, ChargerConfig, ClientError, Incoming};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-operator-token-0123456789";

pub struct TestApp {
    pub base: String,
    pub ws_url: String,
    pub http: reqwest::Client,
    pub central: Arc<Central>,
    /// Where `plain_listen` was bound, when a test set it.
    pub plain_addr: Option<std::net::SocketAddr>,
    pub stop: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub dir: tempfile::TempDir,
}

/// The app with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The app with settings adjusted by `tweak` (a fresh database and port regardless).
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_built(tweak, |_| {}).await
}

/// The app with settings adjusted by `tweak` and the built application by `adjust` (e.g. its
/// connection limits) before it serves.
pub async fn spawn_app_built(
    tweak: impl FnOnce(&mut Settings),
    adjust: impl FnOnce(&mut Application),
) -> TestApp {
    echarging::telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("echarging.db");
    let mut settings = Settings::with_database(format!("sqlite://{}", db.display()));
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.api_token = Some(TOKEN.into());
    settings.data_dir = dir.path().to_path_buf();
    settings.state_flush_interval = Duration::from_millis(50);
    // Scripted chargers see only the calls their test causes; the toolbox tests turn it on.
    settings.read_configuration_on_boot = false;
    tweak(&mut settings);
    let mut app = Application::build(settings).await.expect("app builds");
    adjust(&mut app);
    let port = app.port();
    let plain_addr = app.plain_addr();
    let central = app.central();
    let stop = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        ws_url: format!("ws://127.0.0.1:{port}/ocpp"),
        http: reqwest::Client::new(),
        central,
        plain_addr,
        stop,
        server,
        dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An operator request.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(TOKEN)
    }

    pub async fn register_charger(&self, id: &str, connectors: u32, password: Option<&str>) {
        let mut body = json!({"id": id, "connectors": connectors});
        if let Some(p) = password {
            body["password"] = json!(p);
        }
        let r = self
            .api(reqwest::Method::POST, "/api/v1/chargers")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "register {id}: {}",
            r.text().await.unwrap()
        );
    }

    pub async fn charger_view(&self, id: &str) -> Value {
        let r = self
            .api(reqwest::Method::GET, &format!("/api/v1/chargers/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// `GET /api/v1/chargers{query}` as the operator.
    pub async fn list_chargers(&self, query: &str) -> Vec<Value> {
        let r = self
            .api(reqwest::Method::GET, &format!("/api/v1/chargers{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub fn charger_config(&self, id: &str) -> ChargerConfig {
        ChargerConfig::new(self.ws_url.clone(), id)
    }

    pub async fn connect(&self, id: &str) -> Charger {
        Charger::connect(&self.charger_config(id))
            .await
            .expect("charger connects")
    }

    /// Register, connect and boot a charger.
    pub async fn booted_charger(&self, id: &str) -> Charger {
        self.register_charger(id, 2, None).await;
        let mut charger = self.connect(id).await;
        let boot = charger.boot().await.expect("boot answered");
        assert_eq!(boot["status"], "Accepted");
        charger
    }

    /// Poll the charger view until `check` holds (the live state is eventually consistent with
    /// socket events), failing after a few seconds.
    pub async fn wait_for_view(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let view = self.charger_view(id).await;
            if check(&view) {
                return view;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "charger view never matched: {view:#}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.server).await;
    }
}

/// An instant as OCPP and the API write it (RFC 3339).
pub fn rfc(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Now, to the second (what a charger's clock sends).
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
}

/// GET `path` as the operator until `check` holds for the JSON answer (the read models and the
/// dispatcher follow the ledger asynchronously), failing after 5 s.
pub async fn poll_until(app: &TestApp, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = app.api(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        let v: Value = r.json().await.unwrap();
        if check(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never matched: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A customer as the API created it, with its bearer token.
pub struct Customer {
    pub id: i64,
    pub token: String,
}

/// `POST /api/v1/customers` as the operator; must succeed.
pub async fn create_customer(app: &TestApp, name: &str, tags: &[&str]) -> Customer {
    let r = app
        .api(reqwest::Method::POST, "/api/v1/customers")
        .json(&json!({"name": name, "idTags": tags}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    Customer {
        id: body["id"].as_i64().unwrap(),
        token: body["token"].as_str().unwrap().to_string(),
    }
}

/// A request with a customer's token.
pub fn as_customer(
    app: &TestApp,
    c: &Customer,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    app.http
        .request(method, app.url(path))
        .bearer_auth(&c.token)
}

/// Read until the server closes the socket; the close code (None when there was no close frame).
pub async fn expect_close(charger: &mut Charger) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match charger.next_incoming(left).await {
            Ok(Incoming::Close { code, .. }) => return code,
            Ok(_) => continue,
            Err(ClientError::Closed { code, .. }) => return code,
            Err(e) => panic!("expected the server to close the socket: {e}"),
        }
    }
}
