//! The deployment files (Dockerfile, deploy/kubernetes, deploy/systemd), checked the way a reviewer
//! would: the manifests parse as YAML and reference each other consistently, the probes hit the
//! real ops endpoints on the port the server listens on, a stopping pod or unit gets longer than
//! the server's drain, and every setting these files pass is one the real binary lists in its
//! `--help`, with a value the server's own settings parser accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use echarging::settings::{self, Invocation, LogFormat, Settings};
use yaml_rust2::{Yaml, YamlLoader};

/// Memory the design budgets per idle charger (design.md, measured 8.0–8.7 KiB).
const BYTES_PER_IDLE_CHARGER: u64 = 8 * 1024;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kube_dir() -> PathBuf {
    root().join("deploy/kubernetes")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The YAML files under deploy/kubernetes, by file name.
fn yaml_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(kube_dir())
        .expect("deploy/kubernetes exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    names.sort();
    names
}

/// Every document of every YAML file under deploy/kubernetes, with its file name.
fn manifests() -> Vec<(String, Yaml)> {
    let mut all = Vec::new();
    for name in yaml_files() {
        let text = read(&kube_dir().join(&name));
        let docs = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("deploy/kubernetes/{name} is not valid YAML: {e}"));
        assert!(!docs.is_empty(), "{name} holds no document");
        all.extend(docs.into_iter().map(|d| (name.clone(), d)));
    }
    all
}

/// The one document of `kind` (the example Secret counts: it is the only Secret).
fn one(docs: &[(String, Yaml)], kind: &str) -> Yaml {
    let found: Vec<&Yaml> = docs
        .iter()
        .filter(|(_, d)| d["kind"].as_str() == Some(kind))
        .map(|(_, d)| d)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind} under deploy/kubernetes");
    found[0].clone()
}

fn text<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what} should be a string, found {y:?}"))
}

fn int(y: &Yaml, what: &str) -> i64 {
    y.as_i64()
        .unwrap_or_else(|| panic!("{what} should be an integer, found {y:?}"))
}

fn list<'a>(y: &'a Yaml, what: &str) -> &'a [Yaml] {
    y.as_vec()
        .unwrap_or_else(|| panic!("{what} should be a list, found {y:?}"))
}

/// A mapping of strings (labels, ConfigMap data) as pairs; anything else fails.
fn string_map(y: &Yaml, what: &str) -> BTreeMap<String, String> {
    y.as_hash()
        .unwrap_or_else(|| panic!("{what} should be a mapping, found {y:?}"))
        .iter()
        .map(|(k, v)| {
            let k = text(k, what).to_string();
            let v = text(v, &format!("{what}.{k} (quote it)")).to_string();
            (k, v)
        })
        .collect()
}

/// The deployment's one container.
fn container(deployment: &Yaml) -> Yaml {
    let containers = list(
        &deployment["spec"]["template"]["spec"]["containers"],
        "containers",
    );
    assert_eq!(containers.len(), 1, "one container per pod");
    containers[0].clone()
}

/// The `ECHARGING_*` names the real binary reads, from its `--help` (`[env: NAME=]`).
fn server_env_names() -> &'static BTreeSet<String> {
    static NAMES: OnceLock<BTreeSet<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_echarging"))
            .arg("--help")
            .env_clear()
            .output()
            .expect("run echarging --help");
        assert!(out.status.success(), "echarging --help fails");
        let help = String::from_utf8(out.stdout).unwrap();
        let names: BTreeSet<String> = help
            .split("[env: ")
            .skip(1)
            .map(|rest| rest.split(['=', ']']).next().unwrap().trim().to_string())
            .collect();
        assert!(
            names.contains("ECHARGING_LISTEN") && names.contains("ECHARGING_SHUTDOWN_GRACE"),
            "--help lists the env vars: {names:?}"
        );
        names
    })
}

/// Variables the deployment may pass that are not ours: the PostgreSQL driver reads PGPASSWORD
/// when the database URL carries no password.
const FOREIGN_ALLOWED: &[&str] = &["PGPASSWORD"];

/// Checks every name against the binary and runs the values through the server's own settings
/// parser (as the equivalent flags, so nothing starts), returning what the server would run with.
fn accepted(env: &BTreeMap<String, String>, origin: &str) -> Settings {
    let mut args = vec!["echarging".to_string()];
    for (key, value) in env {
        if FOREIGN_ALLOWED.contains(&key.as_str()) {
            continue;
        }
        assert!(
            server_env_names().contains(key),
            "{origin}: {key} is not a setting echarging reads (echarging --help)"
        );
        if key == "ECHARGING_CONFIG" {
            continue; // a path on the target machine, read at start
        }
        let flag = key
            .strip_prefix("ECHARGING_")
            .unwrap()
            .to_lowercase()
            .replace('_', "-");
        args.push(format!("--{flag}={value}"));
    }
    match settings::from_iter(&args) {
        Ok(Invocation::Serve(s)) => s,
        Ok(other) => panic!("{origin}: not a serve invocation: {other:?}"),
        Err(line) => panic!("{origin}: the server refuses these settings: {line}"),
    }
}

/// `30`, `30s`, `1min 30s` (systemd and the server both take bare seconds).
fn duration(value: &str) -> Duration {
    let v = value.trim();
    match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v).unwrap_or_else(|e| panic!("{v:?}: {e}")),
    }
}

/// A Kubernetes memory quantity in bytes (`256Mi`, `1Gi`, `1G`, `1048576`).
fn bytes(quantity: &str) -> u64 {
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = quantity.strip_suffix(suffix) {
            return n.parse::<u64>().expect(quantity) * factor;
        }
    }
    quantity.parse().expect(quantity)
}

/// The ConfigMap and the example Secret together: what a pod's environment holds.
fn pod_env(docs: &[(String, Yaml)]) -> BTreeMap<String, String> {
    let mut env = string_map(&one(docs, "ConfigMap")["data"], "ConfigMap data");
    let secret = one(docs, "Secret");
    for (k, v) in string_map(&secret["stringData"], "Secret stringData") {
        assert!(
            env.insert(k.clone(), v).is_none(),
            "{k} is in both the ConfigMap and the Secret"
        );
    }
    env
}

#[test]
fn every_manifest_parses_and_names_itself() {
    let docs = manifests();
    let mut seen = BTreeSet::new();
    for (file, doc) in &docs {
        let api = text(&doc["apiVersion"], &format!("{file}: apiVersion"));
        let kind = text(&doc["kind"], &format!("{file}: kind"));
        if kind == "Kustomization" {
            assert!(api.starts_with("kustomize.config.k8s.io/"), "{file}: {api}");
            continue;
        }
        let name = text(&doc["metadata"]["name"], &format!("{file}: metadata.name"));
        assert!(!name.is_empty(), "{file}: empty metadata.name");
        assert!(
            seen.insert((kind.to_string(), name.to_string())),
            "{kind}/{name} defined twice"
        );
    }
    for kind in [
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "Kustomization",
    ] {
        one(&docs, kind);
    }
}

#[test]
fn every_deployment_file_starts_with_a_comment_saying_what_it_is() {
    let mut files: Vec<PathBuf> = yaml_files().iter().map(|n| kube_dir().join(n)).collect();
    files.extend(
        [
            "deploy/systemd/echarging.service",
            "deploy/systemd/echarging.env.example",
            ".dockerignore",
        ]
        .map(|f| root().join(f)),
    );
    for path in files {
        let first = read(&path).lines().next().unwrap_or_default().to_string();
        assert!(first.starts_with("# "), "{}: {first:?}", path.display());
    }
    // The Dockerfile's first line may be the `# syntax=` parser directive.
    let dockerfile = read(&root().join("Dockerfile"));
    assert!(
        dockerfile
            .lines()
            .take(2)
            .any(|l| l.starts_with("# ") && !l.starts_with("# syntax=")),
        "Dockerfile header comment"
    );
}

#[test]
fn kustomization_lists_every_manifest_but_the_example_secret() {
    let docs = manifests();
    let kustomization = one(&docs, "Kustomization");
    let listed: BTreeSet<String> = list(&kustomization["resources"], "resources")
        .iter()
        .map(|r| text(r, "resource").to_string())
        .collect();
    for r in &listed {
        assert!(kube_dir().join(r).is_file(), "listed {r} does not exist");
    }
    let expected: BTreeSet<String> = yaml_files()
        .into_iter()
        .filter(|n| n != "kustomization.yaml" && !n.contains(".example."))
        .collect();
    assert_eq!(listed, expected, "kustomization.yaml resources");
    let (secret_file, _) = docs
        .iter()
        .find(|(_, d)| d["kind"].as_str() == Some("Secret"))
        .unwrap();
    assert!(
        secret_file.contains(".example."),
        "the Secret is only an example: {secret_file}"
    );
}

#[test]
fn configmap_and_secret_carry_only_settings_the_server_accepts() {
    let docs = manifests();
    let env = pod_env(&docs);
    for key in env.keys() {
        assert!(
            key.starts_with("ECHARGING_") || FOREIGN_ALLOWED.contains(&key.as_str()),
            "{key}"
        );
    }
    let s = accepted(&env, "ConfigMap + Secret");
    assert!(
        s.listen.ip().is_unspecified(),
        "pods listen on all interfaces, not {}",
        s.listen
    );
    assert!(
        s.database_url.starts_with("postgres://") || s.database_url.starts_with("postgresql://"),
        "replicas share one ledger: PostgreSQL, not {}",
        s.database_url
    );
    let authority = s.database_url.split_once("://").unwrap().1;
    let user_info = authority.split_once('@').map_or("", |(u, _)| u);
    assert!(
        !user_info.contains(':'),
        "no password in the ConfigMap's database URL: PGPASSWORD in the Secret carries it"
    );
    assert_eq!(s.log_format, LogFormat::Json);
    assert!(s.api_token.is_some(), "every replica needs the same token");
    for (k, v) in string_map(&one(&docs, "Secret")["stringData"], "Secret") {
        assert!(v.contains("REPLACE"), "{k} is clearly a placeholder: {v:?}");
    }
}

#[test]
fn deployment_probes_hit_the_ops_endpoints_on_the_served_port() {
    let docs = manifests();
    let deployment = one(&docs, "Deployment");
    let c = container(&deployment);
    let listen = accepted(&pod_env(&docs), "ConfigMap + Secret").listen;

    let ports = list(&c["ports"], "container ports");
    let http = ports
        .iter()
        .find(|p| p["name"].as_str() == Some("http"))
        .expect("a container port named http");
    assert_eq!(
        int(&http["containerPort"], "containerPort"),
        i64::from(listen.port()),
        "the container port is the port ECHARGING_LISTEN binds"
    );
    let port_names: BTreeSet<&str> = ports.iter().filter_map(|p| p["name"].as_str()).collect();

    for (probe, paths) in [
        ("readinessProbe", &["/readyz"][..]),
        ("livenessProbe", &["/healthz"][..]),
        ("startupProbe", &["/healthz", "/readyz"][..]),
    ] {
        let p = &c[probe];
        if probe == "startupProbe" && p.is_badvalue() {
            continue;
        }
        let get = &p["httpGet"];
        let path = text(&get["path"], &format!("{probe}.httpGet.path"));
        assert!(paths.contains(&path), "{probe} hits {path}");
        let port = text(&get["port"], &format!("{probe}.httpGet.port (by name)"));
        assert!(port_names.contains(port), "{probe} port {port} is exposed");
        assert!(int(&p["periodSeconds"], probe) > 0);
        assert!(int(&p["failureThreshold"], probe) >= 1);
        // /readyz waits up to 2 s for the database; its probe must wait longer.
        let timeout = int(&p["timeoutSeconds"], probe);
        assert!(
            timeout > if path == "/readyz" { 2 } else { 0 },
            "{probe} timeout"
        );
    }

    let service = one(&docs, "Service");
    let sport = &list(&service["spec"]["ports"], "service ports")[0];
    let target = text(&sport["targetPort"], "Service targetPort (by name)");
    assert!(port_names.contains(target), "the Service targets {target}");

    let pod_labels = string_map(
        &deployment["spec"]["template"]["metadata"]["labels"],
        "pod labels",
    );
    for (what, selector) in [
        ("Service selector", &service["spec"]["selector"]),
        (
            "Deployment selector",
            &deployment["spec"]["selector"]["matchLabels"],
        ),
    ] {
        let selector = string_map(selector, what);
        assert!(!selector.is_empty(), "{what} is empty");
        for (k, v) in selector {
            assert_eq!(pod_labels.get(&k), Some(&v), "{what} {k} matches the pods");
        }
    }

    // The environment comes from the ConfigMap and the Secret defined here.
    let from: BTreeSet<(String, String)> = list(&c["envFrom"], "envFrom")
        .iter()
        .flat_map(|e| {
            [("configMapRef", "ConfigMap"), ("secretRef", "Secret")]
                .into_iter()
                .filter(|(r, _)| !e[*r].is_badvalue())
                .map(|(r, kind)| (kind.to_string(), text(&e[r]["name"], r).to_string()))
        })
        .collect();
    for kind in ["ConfigMap", "Secret"] {
        let name = text(&one(&docs, kind)["metadata"]["name"], kind).to_string();
        assert!(from.contains(&(kind.to_string(), name)), "envFrom {kind}");
    }

    let strategy = &deployment["spec"]["strategy"];
    assert_eq!(strategy["type"].as_str(), Some("RollingUpdate"));
    assert_eq!(
        int(
            &strategy["rollingUpdate"]["maxUnavailable"],
            "maxUnavailable"
        ),
        0
    );
    assert!(int(&strategy["rollingUpdate"]["maxSurge"], "maxSurge") >= 1);
}

#[test]
fn a_stopping_pod_gets_longer_than_the_server_drains() {
    let docs = manifests();
    let deployment = one(&docs, "Deployment");
    let s = accepted(&pod_env(&docs), "ConfigMap + Secret");
    let pod = &deployment["spec"]["template"]["spec"];
    let termination = Duration::from_secs(
        int(
            &pod["terminationGracePeriodSeconds"],
            "terminationGracePeriodSeconds",
        )
        .try_into()
        .unwrap(),
    );
    // A preStop pause counts against the same budget.
    let pre_stop = &container(&deployment)["lifecycle"]["preStop"];
    let pre_stop = if pre_stop.is_badvalue() {
        Duration::ZERO
    } else {
        let command: Vec<&str> = list(&pre_stop["exec"]["command"], "preStop.exec.command")
            .iter()
            .map(|a| text(a, "preStop command"))
            .collect();
        match command.as_slice() {
            ["sleep", secs] => duration(secs),
            other => panic!("preStop: expected [sleep, N], found {other:?}"),
        }
    };
    // The server keeps answering for the drain delay, gives in-flight requests the grace, then
    // charger sessions the grace again.
    let drain = s.drain_delay + s.shutdown_grace * 2;
    assert!(
        termination > pre_stop + drain,
        "terminationGracePeriodSeconds {termination:?} must exceed preStop {pre_stop:?} + \
         ECHARGING_DRAIN_DELAY + 2 × ECHARGING_SHUTDOWN_GRACE = {:?}",
        pre_stop + drain
    );
}

#[test]
fn pods_run_unprivileged_with_memory_for_their_chargers() {
    let docs = manifests();
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(&deployment);
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        int(&pod["securityContext"]["runAsUser"], "runAsUser").to_string(),
        dockerfile_user().0,
        "the pod runs as the image's user"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert!(
        deployment["spec"]["replicas"].is_badvalue(),
        "no spec.replicas: the HPA owns the count, and `kubectl apply` would reset it"
    );

    let resources = &c["resources"];
    text(
        &resources["requests"]["cpu"],
        "CPU request (the HPA's yardstick)",
    );
    let request = bytes(text(&resources["requests"]["memory"], "memory request"));
    let limit = bytes(text(&resources["limits"]["memory"], "memory limit"));
    assert!(request <= limit);
    assert!(
        limit / BYTES_PER_IDLE_CHARGER >= 100_000,
        "the memory limit holds 100,000 idle chargers at 8 KiB each: {limit} bytes"
    );
}

#[test]
fn hpa_scales_the_deployment_on_cpu() {
    let docs = manifests();
    let hpa = one(&docs, "HorizontalPodAutoscaler");
    let deployment = one(&docs, "Deployment");
    assert_eq!(hpa["apiVersion"].as_str(), Some("autoscaling/v2"));
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["apiVersion"].as_str(), Some("apps/v1"));
    assert_eq!(target["kind"].as_str(), Some("Deployment"));
    assert_eq!(target["name"], deployment["metadata"]["name"]);
    let min = int(&hpa["spec"]["minReplicas"], "minReplicas");
    let max = int(&hpa["spec"]["maxReplicas"], "maxReplicas");
    assert!(min >= 2, "at least two pods for zero-downtime");
    assert!(max >= min);
    let cpu = list(&hpa["spec"]["metrics"], "metrics")
        .iter()
        .find(|m| {
            m["type"].as_str() == Some("Resource") && m["resource"]["name"].as_str() == Some("cpu")
        })
        .expect("a CPU metric");
    assert_eq!(
        cpu["resource"]["target"]["type"].as_str(),
        Some("Utilization")
    );
    let utilisation = int(
        &cpu["resource"]["target"]["averageUtilization"],
        "averageUtilization",
    );
    assert!((1..=100).contains(&utilisation));
}

/// `[Section]` → key → values, in order (systemd keys may repeat).
fn unit_file(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not KEY=value: {line}"));
        assert!(!current.is_empty(), "{line} outside a section");
        sections
            .entry(current.clone())
            .or_default()
            .entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    sections
}

/// `KEY=value` lines of an env file: the active ones, and those commented out as examples.
fn env_file(text: &str) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let mut active = BTreeMap::new();
    let mut examples = Vec::new();
    for line in text.lines().map(str::trim) {
        let (commented, body) = match line.strip_prefix('#') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let Some((k, v)) = body.split_once('=') else {
            assert!(commented || body.is_empty(), "not KEY=value: {line}");
            continue;
        };
        // Comment prose may contain '='; a variable name has no spaces and is upper case.
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            assert!(commented, "not KEY=value: {line}");
            continue;
        }
        if commented {
            examples.push((k.to_string(), v.to_string()));
        } else {
            assert!(
                active.insert(k.to_string(), v.to_string()).is_none(),
                "{k} set twice"
            );
        }
    }
    (active, examples)
}

#[test]
fn systemd_unit_stops_gracefully_and_passes_valid_settings() {
    let unit = unit_file(&read(&root().join("deploy/systemd/echarging.service")));
    let service = &unit["Service"];
    let one_value = |k: &str| -> &str {
        let v = service
            .get(k)
            .unwrap_or_else(|| panic!("[Service] has no {k}"));
        assert_eq!(v.len(), 1, "{k} set once");
        &v[0]
    };
    let exec = one_value("ExecStart");
    let program = exec.split_whitespace().next().unwrap();
    assert!(
        program.starts_with('/') && program.ends_with("/echarging"),
        "ExecStart runs an echarging binary: {exec}"
    );
    assert_eq!(one_value("Type"), "exec");
    assert_eq!(one_value("KillSignal"), "SIGTERM");
    assert_eq!(one_value("User"), "echarging");
    assert_eq!(one_value("StateDirectory"), "echarging");
    assert_eq!(one_value("Restart"), "on-failure");
    assert_eq!(
        one_value("EnvironmentFile"),
        "-/etc/echarging/echarging.env"
    );
    assert!(one_value("LimitNOFILE").parse::<u64>().unwrap() >= 100_000);
    for hardening in ["NoNewPrivileges", "ProtectHome", "PrivateTmp"] {
        assert_eq!(one_value(hardening), "yes", "{hardening}");
    }
    assert_eq!(one_value("ProtectSystem"), "strict");
    assert!(unit["Install"].contains_key("WantedBy"));

    // The unit's defaults, overridden by the example env file, as systemd would combine them.
    let mut env = BTreeMap::new();
    for assignment in service.get("Environment").into_iter().flatten() {
        let (k, v) = assignment.split_once('=').expect("Environment=KEY=value");
        env.insert(k.to_string(), v.to_string());
    }
    let (active, examples) = env_file(&read(&root().join("deploy/systemd/echarging.env.example")));
    env.extend(active);
    let s = accepted(&env, "echarging.service + echarging.env.example");
    assert!(
        settings::sqlite_path(&s.database_url).is_some_and(|p| p.starts_with("/var/lib/echarging")),
        "the SQLite file lives in the StateDirectory: {}",
        s.database_url
    );
    let stop = duration(one_value("TimeoutStopSec"));
    let drain = s.drain_delay + s.shutdown_grace * 2;
    assert!(
        stop > drain,
        "TimeoutStopSec {stop:?} must exceed ECHARGING_DRAIN_DELAY + 2 × \
         ECHARGING_SHUTDOWN_GRACE = {drain:?}"
    );

    // The example lists every setting the server reads, each with a value it accepts.
    let listed: BTreeSet<&String> = env.keys().chain(examples.iter().map(|(k, _)| k)).collect();
    for name in server_env_names() {
        assert!(
            listed.contains(name),
            "echarging.env.example does not mention {name}"
        );
    }
    for (k, v) in examples {
        let mut alone = BTreeMap::new();
        alone.insert(k.clone(), v);
        accepted(&alone, &format!("echarging.env.example #{k}"));
    }
}

/// The Dockerfile's stages: each `FROM` line and the instructions under it, continuations joined.
fn dockerfile_stages() -> Vec<(String, Vec<(String, String)>)> {
    let text = read(&root().join("Dockerfile"));
    let mut stages: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && logical.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(t);
        let full = std::mem::take(&mut logical);
        let (instr, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let (instr, args) = (instr.to_uppercase(), args.trim().to_string());
        if instr == "FROM" {
            stages.push((args, Vec::new()));
        } else {
            let stage = stages.last_mut().expect("an instruction before FROM");
            stage.1.push((instr, args));
        }
    }
    stages
}

/// The final stage's `USER` as (user, group).
fn dockerfile_user() -> (String, Option<String>) {
    let stages = dockerfile_stages();
    let (_, last) = stages.last().expect("a FROM");
    let user = last
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.clone())
        .expect("the final stage sets USER");
    match user.split_once(':') {
        Some((u, g)) => (u.to_string(), Some(g.to_string())),
        None => (user, None),
    }
}

#[test]
fn dockerfile_builds_in_one_stage_and_runs_unprivileged_in_another() {
    let stages = dockerfile_stages();
    assert!(
        stages.len() >= 2,
        "a multi-stage build: {} FROM",
        stages.len()
    );
    let (build_from, build) = &stages[0];
    assert!(build_from.starts_with("rust:"), "built in the Rust image");
    assert!(
        build
            .iter()
            .any(|(i, a)| i == "RUN" && a.contains("cargo build --release --locked")),
        "the build stage runs cargo build --release --locked"
    );
    let (runtime_from, runtime) = stages.last().unwrap();
    assert!(
        !runtime_from.starts_with("rust:"),
        "no toolchain at runtime"
    );
    assert!(
        runtime
            .iter()
            .any(|(i, a)| i == "COPY" && a.starts_with("--from=")),
        "the runtime stage copies the binary from the build"
    );

    let (user, group) = dockerfile_user();
    assert!(
        user.parse::<u32>().is_ok_and(|uid| uid != 0),
        "a numeric non-root USER (runAsNonRoot can only verify numbers): {user}"
    );
    assert!(group.is_none_or(|g| g != "0" && g != "root"));

    let instr = |name: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(i, _)| i == name)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    assert_eq!(instr("STOPSIGNAL"), ["SIGTERM"]);
    for check in instr("HEALTHCHECK") {
        assert!(
            !check.contains("curl") && !check.contains("wget"),
            "no HTTP client in the slim image: {check}"
        );
    }
    let mut env = BTreeMap::new();
    for args in instr("ENV") {
        for pair in args.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV KEY=value");
            env.insert(k.to_string(), v.trim_matches('"').to_string());
        }
    }
    let s = accepted(&env, "Dockerfile ENV");
    assert!(
        s.listen.ip().is_unspecified(),
        "reachable from outside the container"
    );
    let exposed: Vec<u16> = instr("EXPOSE")
        .iter()
        .flat_map(|a| a.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    assert!(exposed.contains(&s.listen.port()), "EXPOSE {exposed:?}");
    let data = settings::sqlite_path(&s.database_url).expect("SQLite by default in the image");
    let volumes = instr("VOLUME").join(" ");
    assert!(
        data.parent()
            .is_some_and(|dir| volumes.contains(dir.to_str().unwrap())),
        "the database folder is a VOLUME: {volumes}"
    );

    let ignore = read(&root().join(".dockerignore"));
    for excluded in ["target", ".git", "data"] {
        assert!(
            ignore
                .lines()
                .any(|l| l.trim().trim_end_matches('/') == excluded),
            ".dockerignore excludes {excluded}"
        );
    }
}
