//! The real `echarging` binary as a child process: started with a clean environment and JSON
//! logs, its listening address read from the log, and stopped by signal (SIGTERM for graceful,
//! SIGKILL for a crash). Killed on drop so a failing test leaves no stray server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_echarging");

/// A command for the server on `dir` (SQLite at `dir/db/echarging.db`, any free port).
pub fn command(dir: &Path, extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("ECHARGING_LISTEN", "127.0.0.1:0")
        .env(
            "ECHARGING_DATABASE_URL",
            format!("sqlite://{}/db/echarging.db", dir.display()),
        )
        .env("ECHARGING_LOG_FORMAT", "json")
        // Scripted chargers answer what each test expects; the toolbox tests turn it on.
        .env("ECHARGING_READ_CONFIGURATION_ON_BOOT", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

pub struct ServerProcess {
    pub child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// Log lines up to and including "echarging listening".
    pub startup_log: Vec<Value>,
}

impl ServerProcess {
    /// Start and wait until it listens.
    pub fn start(mut cmd: Command) -> ServerProcess {
        let mut child = cmd.spawn().expect("server starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Drain the log for the server's whole life, so it never writes to a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("server: {line}");
                }
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
                return ServerProcess {
                    child,
                    addr,
                    startup_log: lines,
                };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("server did not report listening: {lines:?}");
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
