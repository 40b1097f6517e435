//! Secure transport with real handshakes: certificates are made in the test with rcgen, the
//! server listens with TLS (and a plaintext `plain_listen` beside it), chargers connect with
//! the simulator's rustls client. Security profile 2 over TLS is let in and over plaintext
//! refused; profile 3 is let in only with a valid certificate naming the charger; a rotated
//! certificate is served to the next handshake while open sessions live on, and a bad new file
//! is refused; the login throttle slows guessing and lets the right password through; REST
//! answers over https.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use echarging_sim::{Charger, ChargerConfig, ConnectError, tls_client};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TOKEN, TestApp, spawn_app_with};

/// A CA that signs server and charger certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for 127.0.0.1: (chain PEM, key PEM).
    fn server(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "echarging test");
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate with subject CN `cn`, valid from `from` to `until` days from now.
    fn client(&self, cn: &str, from: i64, until: i64) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(from);
        params.not_after = now + time::Duration::days(until);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The app serving TLS on `tls` with `ca`'s server certificate (trusting `client_ca` for
/// charger certificates), and plaintext on `plain_listen`, where `app`'s helpers talk.
struct TlsApp {
    app: TestApp,
    tls: String,
    files: tempfile::TempDir,
}

async fn tls_app(ca: &Ca, client_ca: Option<&Ca>) -> TlsApp {
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = ca.server();
    let cert = write(files.path(), "server.pem", &cert);
    let key = write(files.path(), "server.key", &key);
    let client_ca = client_ca.map(|c| write(files.path(), "clients.pem", &c.pem));
    let mut app = spawn_app_with(|s| {
        s.tls_cert = Some(cert);
        s.tls_key = Some(key);
        s.tls_client_ca = client_ca;
        s.plain_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let tls = app.base.trim_start_matches("http://").to_string();
    let plain = app.plain_addr.expect("plain_listen is bound");
    app.base = format!("http://{plain}");
    app.ws_url = format!("ws://{plain}/ocpp");
    TlsApp { app, tls, files }
}

impl TlsApp {
    fn wss(&self) -> String {
        format!("wss://{}/ocpp", self.tls)
    }
}

/// One HTTP/1.1 request over TLS to the app's TLS port, trusting `ca`: (status, body).
async fn https(
    t: &TlsApp,
    ca: &Ca,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tls = tls_client(ca.pem.as_bytes(), None).unwrap();
    let tcp = tokio::net::TcpStream::connect(&t.tls).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        t.tls,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // The server may end TLS without close_notify after Connection: close; what arrived counts.
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn register(t: &TlsApp, ca: &Ca, body: Value) -> Value {
    let (status, text) = https(t, ca, "POST", "/api/v1/chargers", Some(&body)).await;
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// The kinds of the server-side security events recorded for `id`, newest first.
async fn server_events(app: &TestApp, id: &str) -> Vec<(String, String)> {
    let r = app
        .api(
            Method::GET,
            &format!("/api/v1/chargers/{id}/security-events"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events: Value = r.json().await.unwrap();
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "server")
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["techInfo"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn charger(
    url: &str,
    id: &str,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
) -> ChargerConfig {
    let mut cfg = ChargerConfig::new(url, id);
    cfg.tls = tls;
    cfg
}

async fn refused(cfg: &ChargerConfig) -> u16 {
    match Charger::connect(cfg).await {
        Ok(_) => panic!("{} was let in", cfg.charge_box_id),
        Err(ConnectError::Http { status }) => status,
        Err(e) => panic!("{}: expected an HTTP refusal, got {e}", cfg.charge_box_id),
    }
}

async fn booted(cfg: &ChargerConfig) -> Charger {
    let mut cp = Charger::connect(cfg)
        .await
        .unwrap_or_else(|e| panic!("{} connects: {e}", cfg.charge_box_id));
    assert_eq!(cp.boot().await.unwrap()["status"], "Accepted");
    cp
}

#[tokio::test]
async fn profile_2_is_let_in_over_tls_and_refused_over_plaintext_and_rest_speaks_https() {
    let ca = Ca::new("Test CA");
    let t = tls_app(&ca, None).await;
    let (status, _) = https(&t, &ca, "GET", "/healthz", None).await;
    assert_eq!(status, 200, "probes over https");
    // The TLS port speaks only TLS.
    assert!(
        reqwest::get(format!("http://{}/healthz", t.tls))
            .await
            .is_err(),
        "plaintext on the TLS port is no HTTP answer"
    );
    let view = register(
        &t,
        &ca,
        json!({"id": "CP-SP2", "connectors": 1, "password": "sp2-password-0123456",
            "securityProfile": 2}),
    )
    .await;
    assert_eq!(view["securityProfile"], 2);
    let trust = tls_client(ca.pem.as_bytes(), None).unwrap();
    let mut over_tls = charger(&t.wss(), "CP-SP2", Some(trust.clone()));
    over_tls.password = Some("sp2-password-0123456".into());
    let mut cp = booted(&over_tls).await;
    assert!(cp.heartbeat().await.unwrap().get("currentTime").is_some());

    let mut plain = charger(&t.app.ws_url, "CP-SP2", None);
    plain.password = Some("sp2-password-0123456".into());
    assert_eq!(
        refused(&plain).await,
        403,
        "the right password over plaintext"
    );
    // Without the password, TLS alone is not enough for profile 2.
    let no_password = charger(&t.wss(), "CP-SP2", Some(trust));
    assert_eq!(refused(&no_password).await, 401);
    let events = server_events(&t.app, "CP-SP2").await;
    assert_eq!(
        events.len(),
        1,
        "only the profile refusal is a security event: {events:?}"
    );
    assert_eq!(events[0].0, "RefusedPlaintextBelowProfile");
    assert!(events[0].1.contains("needs TLS"), "{events:?}");

    // A profile 1 charger may use either listener.
    register(
        &t,
        &ca,
        json!({"id": "CP-SP1", "connectors": 1, "password": "sp1-password-0123456"}),
    )
    .await;
    let mut plain = charger(&t.app.ws_url, "CP-SP1", None);
    plain.password = Some("sp1-password-0123456".into());
    booted(&plain).await;
    t.app.shutdown().await;
}

#[tokio::test]
async fn profile_3_needs_a_valid_certificate_naming_the_charger() {
    let ca = Ca::new("Server CA");
    let chargers_ca = Ca::new("Charger CA");
    let other_ca = Ca::new("Some other CA");
    let t = tls_app(&ca, Some(&chargers_ca)).await;
    let view = register(
        &t,
        &ca,
        json!({"id": "CP-SP3", "connectors": 1, "securityProfile": 3}),
    )
    .await;
    assert_eq!(view["securityProfile"], 3);
    let with = |identity: Option<&(String, String)>| {
        let tls = tls_client(
            ca.pem.as_bytes(),
            identity.map(|(c, k)| (c.as_bytes(), k.as_bytes())),
        )
        .unwrap();
        charger(&t.wss(), "CP-SP3", Some(tls))
    };
    let right = chargers_ca.client("CP-SP3", -1, 30);
    let mut cp = booted(&with(Some(&right))).await;
    cp.heartbeat().await.unwrap();

    let cases = [
        (
            "another charger's",
            Some(chargers_ca.client("CP-OTHER", -1, 30)),
        ),
        ("an expired", Some(chargers_ca.client("CP-SP3", -30, -1))),
        ("another CA's", Some(other_ca.client("CP-SP3", -1, 30))),
        ("no", None),
    ];
    for (what, identity) in &cases {
        assert_eq!(
            refused(&with(identity.as_ref())).await,
            403,
            "{what} certificate"
        );
    }
    // Over plaintext even the right certificate cannot be shown.
    assert_eq!(refused(&charger(&t.app.ws_url, "CP-SP3", None)).await, 403);
    let kinds: Vec<String> = server_events(&t.app, "CP-SP3")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        [
            "RefusedPlaintextBelowProfile",
            "RefusedNoClientCertificate",
            "RefusedClientCertificate",
            "RefusedClientCertificate",
            "RefusedClientCertificate",
        ],
        "each refusal recorded, newest first"
    );
    // The first session was never disturbed.
    cp.heartbeat().await.unwrap();
    t.app.shutdown().await;
}

/// Connects `id` over TLS trusting only `trust`, retrying for up to 10 s (the files are
/// polled every 2 s).
async fn served_within(
    t: &TlsApp,
    id: &str,
    trust: &Arc<tokio_rustls::rustls::ClientConfig>,
) -> Charger {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Charger::connect(&charger(&t.wss(), id, Some(trust.clone()))).await {
            Ok(c) => return c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the rotated certificate was never served: {e}"),
        }
    }
}

#[tokio::test]
async fn a_new_certificate_reaches_the_next_handshake_and_open_sessions_stay() {
    let old_ca = Ca::new("Old CA");
    let new_ca = Ca::new("New CA");
    let t = tls_app(&old_ca, None).await;
    t.app.register_charger("CP-OPEN", 1, None).await;
    t.app.register_charger("CP-NEXT", 1, None).await;
    let trust_old = tls_client(old_ca.pem.as_bytes(), None).unwrap();
    let trust_new = tls_client(new_ca.pem.as_bytes(), None).unwrap();
    let mut open = booted(&charger(&t.wss(), "CP-OPEN", Some(trust_old.clone()))).await;
    assert!(
        Charger::connect(&charger(&t.wss(), "CP-NEXT", Some(trust_new.clone())))
            .await
            .is_err(),
        "the new certificate is not served yet"
    );

    // Rotate: the key first, then the certificate, as a deploy tool writes them.
    let (cert, key) = new_ca.server();
    write(t.files.path(), "server.key", &key);
    write(t.files.path(), "server.pem", &cert);
    let mut next = served_within(&t, "CP-NEXT", &trust_new).await;
    assert_eq!(next.boot().await.unwrap()["status"], "Accepted");
    open.heartbeat()
        .await
        .expect("the session opened before the rotation lives on");

    // A bad new file is refused and the certificate in use kept.
    write(t.files.path(), "server.pem", "not a certificate");
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(next);
    next = booted(&charger(&t.wss(), "CP-NEXT", Some(trust_new))).await;
    next.heartbeat().await.unwrap();
    open.heartbeat().await.unwrap();
    t.app.shutdown().await;
}

#[tokio::test]
async fn guessing_a_password_is_slowed_and_the_right_one_still_works() {
    let app = spawn_app_with(|s| {
        s.auth_free_failures = 3;
        s.auth_delay = Duration::from_millis(1500);
    })
    .await;
    app.register_charger("CP-BF", 1, Some("the-right-password-01"))
        .await;
    app.register_charger("CP-NEIGHBOUR", 1, Some("neighbour-password-01"))
        .await;
    // A genuine charger behind the same address logs in before the attack.
    let mut neighbour = app.charger_config("CP-NEIGHBOUR");
    neighbour.password = Some("neighbour-password-01".into());
    drop(booted(&neighbour).await);

    let mut wrong = app.charger_config("CP-BF");
    wrong.password = Some("a-wrong-password-0001".into());
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(refused(&wrong).await);
    }
    assert_eq!(
        statuses,
        [401, 401, 429],
        "the third failure crosses the free count"
    );
    // Now one guess per delay: parallel guesses meet a held slot and get 429 at once.
    let guesses = (0..8).map(|_| {
        let wrong = wrong.clone();
        tokio::spawn(async move { refused(&wrong).await })
    });
    let started = Instant::now();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 429), "{statuses:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "one waited its turn"
    );
    let retry = reqwest::Client::new()
        .get(format!("{}/ocpp/CP-BF", app.base))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Protocol", "ocpp1.6")
        .basic_auth("CP-BF", Some("a-wrong-password-0001"))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 429);
    assert!(retry.headers().get("retry-after").is_some());

    // The neighbour that logged in before is not slowed by its address's failures.
    let started = Instant::now();
    drop(booted(&neighbour).await);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the known neighbour took {:?}",
        started.elapsed()
    );
    // The right password gets through its turn, and clears the charger's count.
    let mut right = app.charger_config("CP-BF");
    right.password = Some("the-right-password-01".into());
    let mut cp = booted(&right).await;
    cp.heartbeat().await.unwrap();

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("echarging_auth_throttled_total{kind=\"charger\"}"));
    let events = server_events(&app, "CP-BF").await;
    assert_eq!(
        events.iter().filter(|(k, _)| k == "LoginThrottled").count(),
        1,
        "the moment the charger's logins were slowed is recorded once: {events:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn guessing_bearer_tokens_is_slowed_and_the_operator_keeps_working() {
    let app = spawn_app_with(|s| {
        s.auth_free_failures = 3;
        s.auth_delay = Duration::from_millis(1500);
    })
    .await;
    let ok = app
        .api(Method::GET, "/api/v1/chargers")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = app
            .http
            .get(app.url("/api/v1/chargers"))
            .bearer_auth(format!("guess-{i:020}"))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert!(r.headers().get("retry-after").is_some());
            assert_eq!(
                r.headers()["content-type"],
                "application/problem+json",
                "429 is a problem"
            );
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..3], [401, 401, 429]);
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // The operator's token worked from this address before: not slowed.
    let started = Instant::now();
    let ok = app
        .api(Method::GET, "/api/v1/chargers")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(1000));
    app.shutdown().await;
}

/// The whitepaper's upgrade: ChangeConfiguration SecurityProfile, the charger accepts and
/// reconnects at the higher profile, and the server then refuses the lower one.
#[tokio::test]
async fn raising_the_profile_refuses_the_lower_one_from_then_on() {
    let ca = Ca::new("Test CA");
    let t = tls_app(&ca, None).await;
    t.app
        .register_charger("CP-UP", 1, Some("upgrade-password-0001"))
        .await;
    let mut plain = t.app.charger_config("CP-UP");
    plain.password = Some("upgrade-password-0001".into());
    let mut cp = booted(&plain).await;
    let request = t
        .app
        .api(Method::POST, "/api/v1/chargers/CP-UP/security-profile")
        .json(&json!({"securityProfile": 2}))
        .send();
    let pending = tokio::spawn(request);
    let (id, action, payload) = cp.next_call(Duration::from_secs(5)).await.unwrap();
    assert_eq!(action, "ChangeConfiguration");
    assert_eq!(payload, json!({"key": "SecurityProfile", "value": "2"}));
    cp.reply(&id, json!({"status": "Accepted"})).await.unwrap();
    let answer = pending.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer, json!({"status": "Accepted", "securityProfile": 2}));
    drop(cp);

    assert_eq!(refused(&plain).await, 403, "plaintext after the upgrade");
    let mut over_tls = charger(
        &t.wss(),
        "CP-UP",
        Some(tls_client(ca.pem.as_bytes(), None).unwrap()),
    );
    over_tls.password = Some("upgrade-password-0001".into());
    booted(&over_tls).await;
    assert_eq!(t.app.charger_view("CP-UP").await["securityProfile"], 2);

    // Only upward: the same or a lower profile is 422 naming the field.
    let r = t
        .app
        .api(Method::POST, "/api/v1/chargers/CP-UP/security-profile")
        .json(&json!({"securityProfile": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "securityProfile");
    t.app.shutdown().await;
}

/// PostgreSQL over TLS with `sslmode=verify-full`: the ledger opens when the server's
/// certificate chains to `sslrootcert` and names the host, and refuses to when it does not.
/// The server's CA comes from `TEST_DATABASE_CA` (default: Debian's snakeoil certificate, which
/// the packaged PostgreSQL serves, for `localhost`).
#[tokio::test]
async fn the_ledger_opens_postgres_over_verified_tls() {
    use sqlx::Connection;
    let Some(pg) = crate::support::pg::PgSchema::new().await else {
        return;
    };
    let ca = std::env::var("TEST_DATABASE_CA")
        .unwrap_or_else(|_| "/etc/ssl/certs/ssl-cert-snakeoil.pem".into());
    if !Path::new(&ca).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "TEST_DATABASE_CA {ca} does not exist, but CI is set"
        );
        println!("skipped: no CA file for the database's certificate ({ca})");
        return;
    }
    let verified = |root: &str| {
        format!(
            "{}&sslmode=verify-full&sslrootcert={root}",
            pg.url.replace("@127.0.0.1:", "@localhost:")
        )
    };
    let url = verified(&ca);
    let store = echarging::booking::store::open(&url)
        .await
        .expect("the ledger opens over verified TLS");
    store.ping().await.unwrap();
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(ssl, "the connection is encrypted");
    let _ = conn.close().await;

    // A root the server's certificate does not chain to is refused.
    let files = tempfile::tempdir().unwrap();
    let stranger = write(files.path(), "stranger.pem", &Ca::new("Stranger").pem);
    assert!(
        echarging::booking::store::open(&verified(&stranger.display().to_string()))
            .await
            .is_err(),
        "verify-full with the wrong root must not connect"
    );
}
