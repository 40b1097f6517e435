//! End-to-end on the real binary: a bad setting stops start-up with one clear line; with no
//! token configured one is generated into the data folder; SIGTERM closes charger sockets with
//! 1001 (Going Away) and the process exits cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use echarging_sim::{Charger, ChargerConfig, ClientError, Incoming};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_echarging");

fn server(dir: &std::path::Path, extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("ECHARGING_LISTEN", "127.0.0.1:0")
        .env(
            "ECHARGING_DATABASE_URL",
            format!("sqlite://{}/db/echarging.db", dir.display()),
        )
        .env("ECHARGING_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// Kills the server if the test fails midway, so no stray process outlives it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Read JSON log lines until the "listening" one; return its address and every line seen. The
/// rest of the log keeps being drained on a thread, so the server never writes to a closed pipe.
fn wait_listening(child: &mut Child) -> (String, Vec<Value>) {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("TEST_LOG").is_some() {
                eprintln!("server: {line}");
            }
            // After "listening" nobody receives; the loop goes on draining regardless.
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        let listening = v["message"] == "echarging listening";
        lines.push(v);
        if listening {
            let addr = lines.last().unwrap()["addr"]
                .as_str()
                .expect("addr field")
                .to_string();
            return (addr, lines);
        }
    }
    panic!("server did not report listening: {lines:?}");
}

#[test]
fn a_bad_setting_stops_startup_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value, name) in [
        ("ECHARGING_LISTEN", "not-an-address", "listen"),
        ("ECHARGING_HEARTBEAT_INTERVAL", "soon", "heartbeat_interval"),
        ("ECHARGING_DATABASE_URL", "mysql://x", "database_url"),
        ("ECHARGING_LOG_FORMAT", "xml", "log_format"),
    ] {
        let out = server(dir.path(), &[(key, value)]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(name) && stderr.contains(key),
            "names the setting and its source: {stderr}"
        );
    }
    // A flag beats the environment.
    let out = server(dir.path(), &[("ECHARGING_LISTEN", "127.0.0.1:0")])
        .arg("--listen")
        .arg("nowhere")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_token_works_and_sigterm_closes_chargers_with_1001() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(server(dir.path(), &[]).spawn().unwrap());
    let (addr, lines) = tokio::task::block_in_place(|| wait_listening(&mut child.0));

    // No token configured: one was generated next to the database and its path logged.
    let token_path = dir.path().join("db").join("operator-token");
    let token = std::fs::read_to_string(&token_path).expect("token file");
    let token = token.trim();
    assert!(token.len() >= 32);
    assert!(
        lines
            .iter()
            .any(|l| l["path"].as_str() == Some(token_path.to_str().unwrap())),
        "the token's location is logged"
    );
    assert!(
        !lines.iter().any(|l| l.to_string().contains(token)),
        "never the token itself"
    );

    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{addr}/api/v1/chargers"))
        .bearer_auth(token)
        .json(&json!({"id": "CP-TERM", "connectors": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut charger = Charger::connect(&ChargerConfig::new(format!("ws://{addr}/ocpp"), "CP-TERM"))
        .await
        .unwrap();
    charger.boot().await.unwrap();

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let code = loop {
        match charger.next_incoming(Duration::from_secs(10)).await {
            Ok(Incoming::Close { code, .. }) => break code,
            Ok(_) => continue,
            Err(ClientError::Closed { code, .. }) => break code,
            Err(e) => panic!("expected close: {e}"),
        }
    };
    assert_eq!(code, Some(1001));
    let exit = tokio::task::block_in_place(|| child.0.wait()).unwrap();
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
}
