//! The charger-initiated half of the OCPP 1.6 security extension, told as an operator checks
//! it: a real charger's SecurityEventNotification lands in `GET /chargers/{id}/security-events`
//! (paged, newest first); a SignCertificate with a CSR made here is Accepted and followed by a
//! CertificateSigned whose certificate chains to the configured charger CA and names the
//! charger whatever the CSR said; a CSR naming another charger, an unreadable one, or any CSR
//! without a CA is Rejected and recorded; LogStatusNotification and
//! SignedFirmwareStatusNotification show in the charger view.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::support::schema::assert_server_frames_valid;
use crate::support::{TestApp, now, rfc, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(5);

/// A charger CA written to `dir`: (certificate PEM, certificate path, key path).
fn charger_ca(dir: &std::path::Path) -> (String, PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test Charger CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("charger-ca.pem"), dir.join("charger-ca.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert.pem(), cert_path, key_path)
}

/// A CSR (PEM) for subject `CN = cn` with a fresh key, as a charger makes one.
fn csr(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Acme Chargers");
    params.serialize_request(&key).unwrap().pem().unwrap()
}

async fn security_events(app: &TestApp, id: &str, query: &str) -> (u16, Value) {
    let r = app
        .api(
            Method::GET,
            &format!("/api/v1/chargers/{id}/security-events{query}"),
        )
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Waits for a server-side event of `kind` in the charger's trail (recorded off the answer's
/// path), and returns it.
async fn server_event(app: &TestApp, id: &str, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, events) = security_events(app, id, "").await;
        if status == 200
            && let Some(e) = events
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["kind"] == kind && e["source"] == "server")
        {
            return e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no server event {kind}: {events:#}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The PEM blocks of a chain, as DER.
fn pem_blocks(chain: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(chain.as_bytes())
        .map(|p| p.expect("PEM").contents)
        .collect()
}

#[tokio::test]
async fn a_reported_security_event_is_stored_and_listed_newest_first() {
    let app = spawn_app().await;
    let mut cp = app.booted_charger("CP-SEC").await;
    let at = rfc(now());
    let answer = cp
        .call_result(
            "SecurityEventNotification",
            json!({
                "type": "InvalidCentralSystemCertificate",
                "timestamp": at,
                "techInfo": "certificate expired"
            }),
        )
        .await
        .unwrap();
    assert_eq!(answer, json!({}));
    for kind in ["FirmwareUpdated", "SettingSystemTime"] {
        let answer = cp
            .call_result(
                "SecurityEventNotification",
                json!({"type": kind, "timestamp": rfc(now())}),
            )
            .await
            .unwrap();
        assert_eq!(answer, json!({}));
    }

    let (status, events) = security_events(&app, "CP-SEC", "").await;
    assert_eq!(status, 200, "{events:#}");
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "SettingSystemTime",
            "FirmwareUpdated",
            "InvalidCentralSystemCertificate"
        ]
    );
    let first = &events[2];
    assert_eq!(first["source"], "charger");
    assert_eq!(first["techInfo"], "certificate expired");
    assert_eq!(
        first["peer"], "127.0.0.1",
        "the address the charger connected from"
    );
    let reported = time::OffsetDateTime::parse(
        first["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let sent =
        time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).unwrap();
    assert!((reported - sent).abs() < time::Duration::milliseconds(1));
    assert!(first["receivedAt"].is_string());
    assert_eq!(events[0]["techInfo"], Value::Null);

    // Paged: two, then the one older than the second.
    let (_, page) = security_events(&app, "CP-SEC", "?limit=2").await;
    assert_eq!(page.as_array().unwrap().len(), 2);
    let last = page[1]["id"].as_i64().unwrap();
    let (_, next) = security_events(&app, "CP-SEC", &format!("?before={last}&limit=2")).await;
    assert_eq!(next.as_array().unwrap().len(), 1);
    assert_eq!(next[0]["kind"], "InvalidCentralSystemCertificate");

    // Beyond the schema's bounds (taken in lenient mode, counted as a deviation): stored cut
    // to them, so no charger grows the trail.
    let answer = cp
        .call_result(
            "SecurityEventNotification",
            json!({"type": "X".repeat(80), "timestamp": rfc(now()), "techInfo": "i".repeat(400)}),
        )
        .await
        .unwrap();
    assert_eq!(answer, json!({}));
    let (_, events) = security_events(&app, "CP-SEC", "?limit=1").await;
    assert_eq!(events[0]["kind"], "X".repeat(50));
    assert_eq!(events[0]["techInfo"], "i".repeat(255));
    let (_, events) = security_events(&app, "CP-SEC", "").await;
    assert_eq!(events.as_array().unwrap().len(), 4);

    // Errors: an unknown charger without events, a bad limit, an unknown parameter.
    let (status, problem) = security_events(&app, "CP-NOBODY", "").await;
    assert_eq!(status, 404, "{problem:#}");
    let (status, problem) = security_events(&app, "CP-SEC", "?limit=0").await;
    assert_eq!(status, 422);
    assert_eq!(problem["field"], "limit");
    let (status, _) = security_events(&app, "CP-SEC", "?colour=red").await;
    assert_eq!(status, 400);
    let unauthorised = app
        .http
        .get(app.url("/api/v1/chargers/CP-SEC/security-events"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);

    // The trail outlives the charger.
    let r = app
        .api(Method::DELETE, "/api/v1/chargers/CP-SEC")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (status, events) = security_events(&app, "CP-SEC", "").await;
    assert_eq!(status, 200);
    assert_eq!(events.as_array().unwrap().len(), 4);

    assert!(assert_server_frames_valid(&cp) >= 5);
    app.shutdown().await;
}

#[tokio::test]
async fn a_csr_is_signed_by_the_charger_ca_for_the_chargers_own_name() {
    let ca_dir = tempfile::tempdir().unwrap();
    let (ca_pem, cert_path, key_path) = charger_ca(ca_dir.path());
    let app = spawn_app_with(|s| {
        s.charger_ca_cert = Some(cert_path.clone());
        s.charger_ca_key = Some(key_path.clone());
    })
    .await;
    let mut cp = app.booted_charger("CP-CERT").await;

    let answer = cp
        .call_result("SignCertificate", json!({"csr": csr("CP-CERT")}))
        .await
        .unwrap();
    assert_eq!(answer, json!({"status": "Accepted"}));
    let (call_id, action, payload) = cp.next_call(WAIT).await.expect("CertificateSigned");
    assert_eq!(action, "CertificateSigned");
    let chain = payload["certificateChain"].as_str().unwrap();
    let blocks = pem_blocks(chain);
    assert_eq!(blocks.len(), 2, "the certificate, then the CA: {chain}");
    let ca_der = pem_blocks(&ca_pem).remove(0);
    assert_eq!(blocks[1], ca_der, "the chain ends with the CA");
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    let (_, cert) = X509Certificate::from_der(&blocks[0]).unwrap();
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the charger CA");
    assert_eq!(cert.issuer(), ca.subject());
    let cn: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["CP-CERT"]);
    let validity = cert.validity();
    let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86_400;
    assert!((364..=366).contains(&days), "{days} days");
    assert!(validity.is_valid());
    cp.reply(&call_id, json!({"status": "Accepted"}))
        .await
        .unwrap();
    server_event(&app, "CP-CERT", "CertificateSignedAccepted").await;

    // The charger turning the certificate down is recorded too.
    let answer = cp
        .call_result("SignCertificate", json!({"csr": csr("CP-CERT")}))
        .await
        .unwrap();
    assert_eq!(answer["status"], "Accepted");
    let (call_id, action, _) = cp.next_call(WAIT).await.expect("CertificateSigned");
    assert_eq!(action, "CertificateSigned");
    cp.reply(&call_id, json!({"status": "Rejected"}))
        .await
        .unwrap();
    let refused = server_event(&app, "CP-CERT", "CertificateSignedRejected").await;
    assert!(
        refused["techInfo"].as_str().unwrap().contains("Rejected"),
        "{refused:#}"
    );

    // Another charger's name, and something that is no CSR: Rejected, recorded, nothing sent.
    let answer = cp
        .call_result("SignCertificate", json!({"csr": csr("CP-OTHER")}))
        .await
        .unwrap();
    assert_eq!(answer, json!({"status": "Rejected"}));
    let event = server_event(&app, "CP-CERT", "SignCertificateRefused").await;
    assert!(
        event["techInfo"].as_str().unwrap().contains("CP-OTHER"),
        "{event:#}"
    );
    let answer = cp
        .call_result(
            "SignCertificate",
            json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----"}),
        )
        .await
        .unwrap();
    assert_eq!(answer, json!({"status": "Rejected"}));
    assert!(
        cp.next_call(Duration::from_millis(300)).await.is_err(),
        "no CertificateSigned after a refusal"
    );
    let (_, events) = security_events(&app, "CP-CERT", "").await;
    let refusals = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "SignCertificateRefused")
        .count();
    assert_eq!(refusals, 2, "{events:#}");

    assert!(assert_server_frames_valid(&cp) >= 6);
    app.shutdown().await;
}

#[tokio::test]
async fn without_a_charger_ca_a_csr_is_rejected_and_recorded() {
    let app = spawn_app().await;
    let mut cp = app.booted_charger("CP-NOCA").await;
    let answer = cp
        .call_result("SignCertificate", json!({"csr": csr("CP-NOCA")}))
        .await
        .unwrap();
    assert_eq!(answer, json!({"status": "Rejected"}));
    let event = server_event(&app, "CP-NOCA", "SignCertificateNoCa").await;
    assert!(
        event["techInfo"]
            .as_str()
            .unwrap()
            .contains("no charger CA"),
        "{event:#}"
    );
    assert!(cp.next_call(Duration::from_millis(300)).await.is_err());
    assert!(assert_server_frames_valid(&cp) >= 2);
    app.shutdown().await;
}

#[tokio::test]
async fn log_and_signed_firmware_statuses_show_in_the_charger_view() {
    let app = spawn_app().await;
    let mut cp = app.booted_charger("CP-LOG").await;
    for status in ["Uploading", "Uploaded"] {
        let answer = cp
            .call_result(
                "LogStatusNotification",
                json!({"status": status, "requestId": 4}),
            )
            .await
            .unwrap();
        assert_eq!(answer, json!({}));
    }
    for status in ["Downloading", "SignatureVerified", "Installed"] {
        let answer = cp
            .call_result(
                "SignedFirmwareStatusNotification",
                json!({"status": status}),
            )
            .await
            .unwrap();
        assert_eq!(answer, json!({}));
    }
    let view = app.charger_view("CP-LOG").await;
    assert_eq!(view["logStatus"]["status"], "Uploaded", "{view:#}");
    assert_eq!(view["logStatus"]["history"].as_array().unwrap().len(), 2);
    assert_eq!(view["signedFirmwareStatus"]["status"], "Installed");
    let history: Vec<&str> = view["signedFirmwareStatus"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["Downloading", "SignatureVerified", "Installed"]);
    assert_eq!(view["firmwareStatus"]["status"], Value::Null);
    assert!(assert_server_frames_valid(&cp) >= 5);
    app.shutdown().await;
}

#[tokio::test]
async fn a_charger_ca_given_by_half_or_unreadable_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = charger_ca(dir.path());
    let settings = |cert: Option<PathBuf>, key: Option<PathBuf>| {
        let db = dir.path().join("echarging.db");
        let mut s =
            echarging::settings::Settings::with_database(format!("sqlite://{}", db.display()));
        s.listen = "127.0.0.1:0".parse().unwrap();
        s.api_token = Some(crate::support::TOKEN.into());
        s.data_dir = dir.path().to_path_buf();
        s.charger_ca_cert = cert;
        s.charger_ca_key = key;
        s
    };
    let refused = |s| async move {
        match echarging::app::Application::build(s).await {
            Ok(_) => panic!("the application started"),
            Err(e) => format!("{e:#}"),
        }
    };
    let err = refused(settings(Some(cert.clone()), None)).await;
    assert!(err.contains("go together"), "{err}");
    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "not a key").unwrap();
    let err = refused(settings(Some(cert.clone()), Some(garbage))).await;
    assert!(err.contains("garbage.key"), "{err}");
    let err = refused(settings(Some(key.clone()), Some(key.clone()))).await;
    assert!(err.contains("charger-ca.key"), "{err}");
}

#[tokio::test]
async fn in_strict_mode_an_event_beyond_the_schema_is_refused_and_not_stored() {
    let app =
        spawn_app_with(|s| s.ocpp_strictness = echarging::ocpp::v16::Strictness::Strict).await;
    let mut cp = app.booted_charger("CP-STRICT").await;
    let outcome = cp
        .call(
            "SecurityEventNotification",
            json!({"type": "X".repeat(51), "timestamp": rfc(now())}),
        )
        .await
        .unwrap();
    match outcome {
        echarging_sim::CallOutcome::Error { code, .. } => {
            assert_eq!(code, "PropertyConstraintViolation")
        }
        other => panic!("answered {other:?}"),
    }
    let missing_timestamp = cp
        .call(
            "SecurityEventNotification",
            json!({"type": "FirmwareUpdated"}),
        )
        .await
        .unwrap();
    assert!(matches!(
        missing_timestamp,
        echarging_sim::CallOutcome::Error { .. }
    ));
    let (status, events) = security_events(&app, "CP-STRICT", "").await;
    assert_eq!(status, 200);
    assert_eq!(events, json!([]));
    // The session lives on.
    assert!(cp.heartbeat().await.unwrap()["currentTime"].is_string());
    assert!(assert_server_frames_valid(&cp) >= 3);
    app.shutdown().await;
}
