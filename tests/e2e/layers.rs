//! The house keeps its shape: every `crate::…` path in `src/` is checked against the layer
//! table below, so a lower layer that reaches up (the ledger naming the charger sessions, the
//! domain naming the database) fails here, naming the file, the line and the path. The same
//! table is drawn in lib.rs and README.md; change all three together.

use std::path::{Path, PathBuf};

/// What each part of `src/` may name with `crate::…`, lowest layer first. A part not listed
/// (`app`, `lib`) is the top and may name anything.
const LAYERS: &[(&str, &[&str])] = &[
    ("ocpp", &[]),
    ("domain", &[]),
    // Settings read protocol knobs (`ocpp_strictness`) as the protocol's own types.
    ("settings", &["ocpp"]),
    ("problem", &[]),
    ("metrics", &["ocpp"]),
    ("telemetry", &["settings"]),
    // The connection under HTTP: the accept loop, TLS, the login throttle.
    ("transport", &["metrics"]),
    ("booking", &["domain", "settings", "metrics"]),
    (
        "central",
        &[
            "domain",
            "booking",
            "ocpp",
            "settings",
            "metrics",
            "problem",
            "telemetry",
            "transport",
        ],
    ),
    (
        "api",
        &[
            "domain",
            "booking",
            "central",
            "ocpp",
            "settings",
            "metrics",
            "problem",
            "transport",
        ],
    ),
];

/// Outside crates a part must not use: the pure layers do no I/O, and the ledger knows no HTTP
/// and no charger protocol.
const FORBIDDEN_CRATES: &[(&str, &[&str])] = &[
    ("ocpp", &["sqlx", "tokio", "axum", "tungstenite"]),
    ("domain", &["sqlx", "tokio", "axum", "tungstenite"]),
    ("booking", &["axum", "tungstenite"]),
];

/// The part a source file belongs to: its folder under `src/`, or its file stem.
fn part_of(relative: &Path) -> String {
    let first = relative.components().next().expect("a path under src/");
    let first = first.as_os_str().to_string_lossy();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

/// The code of a line without its comment (a `//` inside a string literal is rare enough in
/// `use` lines to ignore).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Every part a line names through `crate::`, including each item of `crate::{a, b::c}`.
fn named_parts(line: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = code(line);
    while let Some(i) = rest.find("crate::") {
        let preceded_by_ident = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        rest = &rest[i + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let ident: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !ident.is_empty() {
                    parts.push(ident);
                }
            }
        } else {
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                parts.push(ident);
            }
        }
    }
    parts
}

/// Whether a line uses the outside crate `name` (`use name::…`, `name::x(…)`).
fn uses_crate(line: &str, name: &str) -> bool {
    let line = code(line);
    let pattern = format!("{name}::");
    line.match_indices(&pattern).any(|(i, _)| {
        !line[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

/// Every breach of the layer rules in one file's text, as `line: what`.
fn breaches(part: &str, text: &str) -> Vec<String> {
    let allowed = LAYERS.iter().find(|(p, _)| *p == part).map(|(_, a)| *a);
    let forbidden = FORBIDDEN_CRATES
        .iter()
        .find(|(p, _)| *p == part)
        .map_or(&[][..], |(_, f)| *f);
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(allowed) = allowed {
            for named in named_parts(line) {
                if named != part && !allowed.contains(&named.as_str()) {
                    found.push(format!("{}: {part} names crate::{named}", n + 1));
                }
            }
        }
        for krate in forbidden {
            if uses_crate(line, krate) {
                found.push(format!("{}: {part} uses the {krate} crate", n + 1));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_layer_names_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 50,
        "found the sources under {}",
        src.display()
    );
    let mut all = Vec::new();
    let mut parts_seen = std::collections::BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let part = part_of(relative);
        parts_seen.insert(part.clone());
        let text = std::fs::read_to_string(file).expect("readable source");
        for breach in breaches(&part, &text) {
            all.push(format!("src/{}:{breach}", relative.display()));
        }
    }
    assert!(all.is_empty(), "upward imports:\n{}", all.join("\n"));
    // A new top-level part must be placed in the table, not slip past it as "the top".
    for part in parts_seen {
        assert!(
            LAYERS.iter().any(|(p, _)| *p == part)
                || ["app", "lib", "main"].contains(&part.as_str()),
            "src/{part} is in no layer: add it to LAYERS (and to the maps in lib.rs and README.md)"
        );
    }
}

#[test]
fn the_check_catches_an_upward_import() {
    assert_eq!(
        breaches("domain", "use crate::central::Central;"),
        ["1: domain names crate::central"]
    );
    assert_eq!(
        breaches("booking", "use crate::{domain::ChargeBoxId, api::Api};"),
        ["1: booking names crate::api"]
    );
    assert_eq!(
        breaches("booking", "    let r = crate::ocpp::v16::Frame::parse(t);"),
        ["1: booking names crate::ocpp"]
    );
    assert_eq!(
        breaches("domain", "use sqlx::Row;"),
        ["1: domain uses the sqlx crate"]
    );
    assert_eq!(
        breaches("booking", "use axum::Router;"),
        ["1: booking uses the axum crate"]
    );
    // Downward names, comments and other crates' `crate::` are fine.
    assert!(breaches("api", "use crate::central::Central; // crate::app").is_empty());
    assert!(breaches("central", "use crate::booking::store::Store;").is_empty());
    assert!(breaches("domain", "use echarging_sim::crate::x;").is_empty());
}
