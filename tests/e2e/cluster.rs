//! A real cluster: three `echarging` processes sharing one PostgreSQL schema and one NATS
//! (`TEST_NATS_URL`, default nats://127.0.0.1:4222; the restart test starts its own
//! nats-server). Commands through any node reach the charger on whichever node holds it,
//! bookings made anywhere reach it as ReserveNow within a second, a reconnect elsewhere takes
//! the charger over, a SIGKILLed node's chargers come back on another, NATS going away only
//! costs cross-node commands (503, healed when it returns), and the booking race still has one
//! winner. Skipped outside CI without PostgreSQL or NATS; a failure under `CI`.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use echarging_sim::{Charger, ChargerConfig, ClientError, Incoming};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::pg::PgSchema;
use crate::support::process::{ServerProcess, command};
use crate::support::{TOKEN, expect_close, now, rfc};

const DEFAULT_NATS: &str = "nats://127.0.0.1:4222";

/// The NATS to use, or `None` (skip) when it does not answer outside CI.
fn nats_url() -> Option<String> {
    let url = std::env::var("TEST_NATS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_NATS.to_string());
    let hostport = url.trim_start_matches("nats://").to_string();
    let up = hostport
        .parse()
        .ok()
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok());
    match (up, std::env::var_os("CI").is_some()) {
        (true, _) => Some(url),
        (false, true) => panic!("NATS at {url} does not answer, but CI is set (TEST_NATS_URL)"),
        (false, false) => {
            println!("skipped: NATS at {url} does not answer (set TEST_NATS_URL)");
            None
        }
    }
}

struct Node {
    name: String,
    process: ServerProcess,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(name: &str, database: &str, nats: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().display().to_string();
        let env = [
            ("ECHARGING_DATABASE_URL", database),
            ("ECHARGING_API_TOKEN", TOKEN),
            ("ECHARGING_DATA_DIR", data.as_str()),
            ("ECHARGING_CLUSTER_URL", nats),
            ("ECHARGING_NODE_ID", name),
            ("ECHARGING_CLUSTER_PRESENCE_TTL", "3s"),
            ("ECHARGING_CALL_TIMEOUT", "2s"),
            ("ECHARGING_REMOTE_START_WAIT", "5s"),
        ];
        let process =
            tokio::task::block_in_place(|| ServerProcess::start(command(dir.path(), &env)));
        Node {
            name: name.to_string(),
            process,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.process.addr)
    }

    fn ws(&self) -> String {
        format!("ws://{}/ocpp", self.process.addr)
    }

    fn api(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, self.url(&format!("/api/v1{path}")))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(30))
    }

    async fn view(&self, id: &str) -> Value {
        let r = self
            .api(Method::GET, &format!("/chargers/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Polls this node's view of `id` until `check` holds, for up to `within`.
    async fn wait_view(&self, id: &str, within: Duration, check: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let v = self.view(id).await;
            if check(&v) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: view of {id} never matched: {v:#}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `n` nodes `node-a`, `node-b`, … on one fresh schema; `None`: skipped.
async fn cluster(n: usize) -> Option<(PgSchema, String, Vec<Node>)> {
    let nats = nats_url()?;
    let pg = PgSchema::new().await?;
    let nodes = start_nodes(&pg.url, &nats, n);
    Some((pg, nats, nodes))
}

fn start_nodes(database: &str, nats: &str, n: usize) -> Vec<Node> {
    // The first migrates the schema alone; the others find it done.
    let mut nodes = vec![Node::start("node-a", database, nats)];
    for name in ["node-b", "node-c"].iter().take(n.saturating_sub(1)) {
        nodes.push(Node::start(name, database, nats));
    }
    nodes
}

async fn register(node: &Node, id: &str) {
    let r = node
        .api(Method::POST, "/chargers")
        .json(&json!({"id": id, "connectors": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

async fn customer(node: &Node, tag: &str) -> String {
    let r = node
        .api(Method::POST, "/customers")
        .json(&json!({"name": format!("Driver {tag}"), "idTags": [tag]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().unwrap().to_string()
}

async fn booted(node: &Node, id: &str) -> Charger {
    let mut cp = Charger::connect(&ChargerConfig::new(node.ws(), id))
        .await
        .expect("charger connects");
    let boot = cp.boot().await.expect("boot answered");
    assert_eq!(boot["status"], "Accepted");
    cp
}

/// The next CALL the charger gets, which must be `action`; answered with `reply`.
async fn answer(cp: &mut Charger, action: &str, reply: Value) -> Value {
    let (id, got, payload) = cp
        .next_call(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("no {action} arrived: {e}"));
    assert_eq!(got, action, "{payload}");
    cp.reply(&id, reply).await.unwrap();
    payload
}

/// `POST /chargers/{id}/trigger` Heartbeat through `node`, the charger answering Accepted.
async fn trigger_through(node: &Node, cp: &mut Charger) -> (u16, Value) {
    let request = node
        .api(
            Method::POST,
            &format!("/chargers/{}/trigger", cp.charge_box_id()),
        )
        .json(&json!({"requestedMessage": "Heartbeat"}))
        .send();
    let pending = tokio::spawn(request);
    answer(cp, "TriggerMessage", json!({"status": "Accepted"})).await;
    let r = pending.await.unwrap().unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_start_and_stop_through_every_node_reach_a_charger_on_another() {
    let Some((_pg, _nats, nodes)) = cluster(3).await else {
        return;
    };
    register(&nodes[0], "CP-CL-1").await;
    customer(&nodes[0], "CL-TAG-1").await;
    let mut cp = booted(&nodes[0], "CP-CL-1").await;
    for node in &nodes[1..] {
        node.wait_view("CP-CL-1", Duration::from_secs(5), |v| {
            v["online"] == true && v["node"] == "node-a"
        })
        .await;
    }
    // Through each node, the one holding the socket included: the same typed answer.
    for (round, node) in [&nodes[1], &nodes[2], &nodes[0]].into_iter().enumerate() {
        let request = node
            .api(Method::POST, "/chargers/CP-CL-1/remote-start")
            .json(&json!({"connectorId": 1, "idTag": "CL-TAG-1"}))
            .send();
        let pending = tokio::spawn(request);
        let asked = answer(
            &mut cp,
            "RemoteStartTransaction",
            json!({"status": "Accepted"}),
        )
        .await;
        assert_eq!(asked["idTag"], "CL-TAG-1");
        let started = cp
            .call_result(
                "StartTransaction",
                // Each round its own start: the same one within a second is a repeat.
                json!({"connectorId": 1, "idTag": "CL-TAG-1", "meterStart": round * 1000,
                       "timestamp": rfc(now())}),
            )
            .await
            .unwrap();
        let tx = started["transactionId"].as_i64().unwrap();
        let r = pending.await.unwrap().unwrap();
        assert_eq!(r.status(), 200, "through {}", node.name);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            json!({"status": "Accepted", "transactionId": tx}),
            "{}",
            node.name
        );

        let request = node
            .api(Method::POST, "/chargers/CP-CL-1/remote-stop")
            .json(&json!({"transactionId": tx}))
            .send();
        let pending = tokio::spawn(request);
        answer(
            &mut cp,
            "RemoteStopTransaction",
            json!({"status": "Accepted"}),
        )
        .await;
        let r = pending.await.unwrap().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "Accepted");
        cp.call_result(
            "StopTransaction",
            json!({"transactionId": tx, "meterStop": 100, "timestamp": rfc(now())}),
        )
        .await
        .unwrap();
    }
    // The generic toolbox too, and a rejection crosses as it is.
    let request = nodes[2]
        .api(Method::POST, "/chargers/CP-CL-1/ocpp/Reset")
        .json(&json!({"type": "Soft"}))
        .send();
    let pending = tokio::spawn(request);
    answer(&mut cp, "Reset", json!({"status": "Rejected"})).await;
    let r = pending.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": 200, "response": {"status": "Rejected"}})
    );
    // A charger connected nowhere is offline through any node, at once.
    register(&nodes[0], "CP-CL-NOWHERE").await;
    let started = Instant::now();
    let r = nodes[1]
        .api(Method::POST, "/chargers/CP-CL-NOWHERE/reset")
        .json(&json!({"type": "Soft"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// A slot that has begun, booked as the customer through `node`; the reservation id.
async fn book(node: &Node, token: &str, charger: &str) -> i64 {
    let start = OffsetDateTime::now_utc() + time::Duration::minutes(1);
    let body = json!({"chargerId": charger, "connectorId": 1,
        "start": start.format(&Rfc3339).unwrap(),
        "end": (start + time::Duration::minutes(30)).format(&Rfc3339).unwrap()});
    let r = reqwest::Client::new()
        .post(node.url("/api/v1/reservations"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_on_one_node_reaches_the_charger_on_another_within_a_second() {
    let Some((_pg, _nats, nodes)) = cluster(3).await else {
        return;
    };
    register(&nodes[0], "CP-CL-2").await;
    let token = customer(&nodes[0], "CL-TAG-2").await;
    let mut cp = booted(&nodes[0], "CP-CL-2").await;
    // Booked through node C: node A's dispatcher is woken by the commit, not its poll.
    for _ in 0..3 {
        let reservation = book(&nodes[2], &token, "CP-CL-2").await;
        let booked = Instant::now();
        let reserve = answer(&mut cp, "ReserveNow", json!({"status": "Accepted"})).await;
        let lag = booked.elapsed();
        assert_eq!(reserve["reservationId"], reservation);
        assert!(lag < Duration::from_secs(1), "ReserveNow after {lag:?}");
        // Cancelled through node B: CancelReservation likewise.
        let r = reqwest::Client::new()
            .delete(nodes[1].url(&format!("/api/v1/reservations/{reservation}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cancelled = Instant::now();
        let cancel = answer(&mut cp, "CancelReservation", json!({"status": "Accepted"})).await;
        let lag = cancelled.elapsed();
        assert_eq!(cancel["reservationId"], reservation);
        assert!(
            lag < Duration::from_secs(1),
            "CancelReservation after {lag:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charger_reconnecting_to_another_node_is_taken_over() {
    let Some((_pg, _nats, nodes)) = cluster(3).await else {
        return;
    };
    register(&nodes[0], "CP-CL-3").await;
    let mut old = booted(&nodes[0], "CP-CL-3").await;
    nodes[2]
        .wait_view("CP-CL-3", Duration::from_secs(5), |v| v["node"] == "node-a")
        .await;
    let mut new = booted(&nodes[1], "CP-CL-3").await;
    // Node A closes its socket as a local replacement would.
    let code = expect_close(&mut old).await;
    assert_eq!(code, Some(1000), "the old socket's close code");
    for node in &nodes {
        node.wait_view("CP-CL-3", Duration::from_secs(5), |v| {
            v["online"] == true && v["node"] == "node-b"
        })
        .await;
    }
    // Commands through A (which held it) and C go to B's socket now.
    for node in [&nodes[0], &nodes[2]] {
        let (status, body) = trigger_through(node, &mut new).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "Accepted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_or_rejecting_through_another_node_closes_the_chargers_socket() {
    let Some((_pg, _nats, nodes)) = cluster(3).await else {
        return;
    };
    for id in ["CP-CL-DEL", "CP-CL-REJ"] {
        register(&nodes[0], id).await;
    }
    let mut deleted = booted(&nodes[0], "CP-CL-DEL").await;
    let mut rejected = booted(&nodes[0], "CP-CL-REJ").await;
    for id in ["CP-CL-DEL", "CP-CL-REJ"] {
        nodes[1]
            .wait_view(id, Duration::from_secs(5), |v| v["node"] == "node-a")
            .await;
    }

    let r = nodes[1]
        .api(Method::DELETE, "/chargers/CP-CL-DEL")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let started = Instant::now();
    assert_eq!(
        expect_close(&mut deleted).await,
        Some(1008),
        "node A closes the deleted charger's socket as a local delete would"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let r = nodes[2]
        .api(Method::POST, "/chargers/CP-CL-REJ/reject")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(expect_close(&mut rejected).await, Some(1008));
    // Back on node A, it is told Rejected at boot; no node shows it online.
    let mut again = Charger::connect(&ChargerConfig::new(nodes[0].ws(), "CP-CL-REJ"))
        .await
        .expect("a rejected charger may still connect");
    assert_eq!(again.boot().await.unwrap()["status"], "Rejected");
    for node in &nodes {
        let r = node
            .api(Method::GET, "/chargers/CP-CL-DEL")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{}", node.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_nodes_chargers_return_on_another() {
    let Some((_pg, _nats, mut nodes)) = cluster(3).await else {
        return;
    };
    register(&nodes[0], "CP-CL-4").await;
    register(&nodes[0], "CP-CL-5").await;
    let token = customer(&nodes[0], "CL-TAG-4").await;
    let mut back = booted(&nodes[0], "CP-CL-4").await;
    let _gone = booted(&nodes[0], "CP-CL-5").await;
    let reservation = book(&nodes[0], &token, "CP-CL-4").await;
    answer(&mut back, "ReserveNow", json!({"status": "Accepted"})).await;
    for id in ["CP-CL-4", "CP-CL-5"] {
        nodes[2]
            .wait_view(id, Duration::from_secs(5), |v| v["node"] == "node-a")
            .await;
    }
    let a = nodes.remove(0);
    a.process.signal("KILL");
    drop(a);
    // The charger notices and comes back on node B (the next URL it knows).
    loop {
        match back.next_incoming(Duration::from_secs(10)).await {
            Ok(Incoming::Close { .. }) => break,
            Ok(_) => continue,
            Err(ClientError::Timeout) => panic!("the killed node's socket did not end"),
            Err(_) => break, // closed or reset: gone either way
        }
    }
    let mut back = booted(&nodes[0], "CP-CL-4").await;
    // Its reservation is offered again after the boot, by node B's dispatcher.
    let reserve = answer(&mut back, "ReserveNow", json!({"status": "Accepted"})).await;
    assert_eq!(reserve["reservationId"], reservation);
    nodes[1]
        .wait_view("CP-CL-4", Duration::from_secs(5), |v| {
            v["online"] == true && v["node"] == "node-b"
        })
        .await;
    let (status, _) = trigger_through(&nodes[1], &mut back).await;
    assert_eq!(status, 200);
    // The charger that did not come back drops out by expiry (TTL 3 s): no goodbye was said.
    nodes[1]
        .wait_view("CP-CL-5", Duration::from_secs(10), |v| {
            v["online"] == false && v["node"].is_null()
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_under_its_old_name_does_not_bring_back_its_dead_sessions() {
    let Some((pg, nats, mut nodes)) = cluster(2).await else {
        return;
    };
    register(&nodes[0], "CP-CL-R1").await;
    register(&nodes[0], "CP-CL-R2").await;
    let _gone = booted(&nodes[0], "CP-CL-R1").await;
    nodes[1]
        .wait_view("CP-CL-R1", Duration::from_secs(5), |v| {
            v["node"] == "node-a"
        })
        .await;
    let a = nodes.remove(0);
    a.process.signal("KILL");
    drop(a);
    // Node A comes back at once, before its lease lapsed; its new process holds only R2.
    let again = Node::start("node-a", &pg.url, &nats);
    let _r2 = booted(&again, "CP-CL-R2").await;
    nodes[0]
        .wait_view("CP-CL-R2", Duration::from_secs(5), |v| {
            v["node"] == "node-a"
        })
        .await;
    // R1's entry names node A, but an earlier incarnation of it: not online anywhere.
    for node in [&nodes[0], &again] {
        node.wait_view("CP-CL-R1", Duration::from_secs(10), |v| {
            v["online"] == false && v["node"].is_null()
        })
        .await;
    }
    // And it stays so: node A's lease refreshes (TTL 3 s) do not revive it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let v = nodes[0].view("CP-CL-R1").await;
    assert_eq!(v["online"], false, "{v:#}");
}

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nats_server(port: u16, store: &Path) -> Child {
    let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nats-server");
    let child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_going_away_costs_only_cross_node_commands_and_heals() {
    // Its own NATS, to kill and restart; the shared one only says whether NATS is expected.
    if nats_url().is_none() {
        return;
    }
    let Some(pg) = PgSchema::new().await else {
        return;
    };
    let port = free_port();
    let store = tempfile::tempdir().unwrap();
    let nats = format!("nats://127.0.0.1:{port}");
    let mut server = Killed(nats_server(port, store.path()));
    let nodes = start_nodes(&pg.url, &nats, 2);
    register(&nodes[0], "CP-CL-6").await;
    let mut cp = booted(&nodes[0], "CP-CL-6").await;
    nodes[1]
        .wait_view("CP-CL-6", Duration::from_secs(5), |v| v["node"] == "node-a")
        .await;
    let (status, _) = trigger_through(&nodes[1], &mut cp).await;
    assert_eq!(status, 200);

    let _ = server.0.kill();
    let _ = server.0.wait();
    // Cross-node: 503 with Retry-After, once node B has noticed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = nodes[1]
            .api(Method::POST, "/chargers/CP-CL-6/trigger")
            .json(&json!({"requestedMessage": "Heartbeat"}))
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            assert!(r.headers().contains_key("retry-after"));
            break;
        }
        assert!(Instant::now() < deadline, "never 503: {}", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Local: untouched.
    let (status, _) = trigger_through(&nodes[0], &mut cp).await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let r = nodes[0]
        .api(Method::GET, "/chargers/CP-CL-6")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));

    // NATS returns: presence and routing heal by themselves.
    server = Killed(nats_server(port, store.path()));
    nodes[1]
        .wait_view("CP-CL-6", Duration::from_secs(20), |v| {
            v["node"] == "node-a"
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = nodes[1]
            .api(Method::POST, "/chargers/CP-CL-6/trigger")
            .json(&json!({"requestedMessage": "Heartbeat"}))
            .send();
        let pending = tokio::spawn(request);
        // The charger answers whatever reaches it; a 503 means not healed yet.
        let reached = cp.next_call(Duration::from_secs(3)).await;
        if let Ok((id, _, _)) = &reached {
            cp.reply(id, json!({"status": "Accepted"})).await.unwrap();
        }
        let r = pending.await.unwrap().unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never healed: {}", r.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_64_way_booking_race_over_three_nodes_has_one_winner() {
    let Some((_pg, _nats, nodes)) = cluster(3).await else {
        return;
    };
    register(&nodes[0], "CP-CL-RACE").await;
    let token = customer(&nodes[0], "CL-RACE").await;
    let base = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + time::Duration::hours(1);
    let mut tasks = Vec::new();
    for i in 0..64i64 {
        let start = base + time::Duration::minutes(i);
        let end = base + time::Duration::minutes(64 + i);
        let body = json!({"chargerId": "CP-CL-RACE", "connectorId": 1,
            "start": start.format(&Rfc3339).unwrap(), "end": end.format(&Rfc3339).unwrap()});
        let request = reqwest::Client::new()
            .post(nodes[i as usize % 3].url("/api/v1/reservations"))
            .bearer_auth(&token)
            .json(&body)
            .send();
        tasks.push(tokio::spawn(async move {
            request.await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let created = statuses.iter().filter(|s| **s == 201).count();
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((created, conflicts), (1, 63), "{statuses:?}");
    for node in &nodes {
        let live: Vec<Value> = node
            .api(
                Method::GET,
                "/reservations?chargerId=CP-CL-RACE&status=BOOKED",
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(live.len(), 1, "{}", node.name);
    }
}

/// HAProxy from Debian, or `None` (skip) when it is not installed outside CI.
fn haproxy_bin() -> Option<&'static str> {
    let found = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but haproxy is not installed (.ci/run installs it)"
        );
        println!("skipped: haproxy is not installed (apt-get install haproxy)");
    }
    found
}

/// `deploy/haproxy/haproxy.cfg` as shipped, with its ports pointed at this test's nodes.
fn haproxy_config(listen: u16, nodes: &[Node]) -> String {
    let shipped = include_str!("../../deploy/haproxy/haproxy.cfg");
    let mut config = shipped.replace("bind 127.0.0.1:8000", &format!("bind 127.0.0.1:{listen}"));
    for (default, node) in ["127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"]
        .iter()
        .zip(nodes)
    {
        assert!(
            config.contains(default),
            "the shipped config names {default}"
        );
        config = config.replace(default, &node.process.addr);
    }
    config
}

/// Boots `id` through the balancer, retrying while it still sends some to a dead node.
async fn booted_through(url: &str, id: &str, within: Duration) -> Charger {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(mut cp) = Charger::connect(&ChargerConfig::new(url, id)).await
            && let Ok(boot) = cp.boot().await
            && boot["status"] == "Accepted"
        {
            return cp;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never booted through HAProxy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_haproxy_config_spreads_chargers_and_routes_around_a_dead_node() {
    let Some(bin) = haproxy_bin() else {
        return;
    };
    let Some((_pg, _nats, mut nodes)) = cluster(3).await else {
        return;
    };
    let listen = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(&config, haproxy_config(listen, &nodes)).unwrap();
    let _haproxy = Killed(
        Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("ws://127.0.0.1:{listen}/ocpp");
    let ids: Vec<String> = (1..=6).map(|n| format!("CP-HA-{n}")).collect();
    let mut chargers = Vec::new();
    for id in &ids {
        register(&nodes[0], id).await;
        chargers.push(booted_through(&url, id, Duration::from_secs(10)).await);
    }
    // Least connections: every node holds some of them.
    let mut held = std::collections::BTreeMap::<String, Vec<usize>>::new();
    for (i, id) in ids.iter().enumerate() {
        nodes[0]
            .wait_view(id, Duration::from_secs(5), |v| v["online"] == true)
            .await;
        let node = nodes[0].view(id).await["node"]
            .as_str()
            .unwrap()
            .to_string();
        held.entry(node).or_default().push(i);
    }
    assert_eq!(
        held.len(),
        3,
        "sockets spread over the three nodes: {held:?}"
    );

    // Node A dies; its chargers come back through the same address, on the others.
    let on_a = held["node-a"].clone();
    let a = nodes.remove(0);
    a.process.signal("KILL");
    drop(a);
    for &i in &on_a {
        let mut back = booted_through(&url, &ids[i], Duration::from_secs(20)).await;
        nodes[0]
            .wait_view(&ids[i], Duration::from_secs(5), |v| {
                v["online"] == true && v["node"] != "node-a"
            })
            .await;
        for node in &nodes {
            let (status, body) = trigger_through(node, &mut back).await;
            assert_eq!(status, 200, "{}: {body}", node.name);
        }
    }
}
