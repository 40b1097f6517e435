//! `GET /api/v1/transactions` paging: 2,500 transactions started by a real WebSocket charger on
//! SQLite, read back page by page through the `Link: rel="next"` header (and by `after` by
//! hand), each exactly once, newest first, with filters kept across pages.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::support::{TestApp, create_customer, now, rfc, spawn_app};

const TOTAL: usize = 2_500;
/// Every fifth start is a known driver's, stopped at once (ENDED); the rest carry unknown idTags
/// and are refused (still numbered and listed).
const DRIVER_EVERY: usize = 5;

/// One page: its transaction ids and the `rel="next"` URL, if any.
async fn page(app: &TestApp, path: &str) -> (Vec<i64>, Option<String>) {
    let r = app.api(reqwest::Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    let next = r.headers().get("link").map(|v| {
        let v = v.to_str().unwrap();
        let url = v
            .strip_prefix('<')
            .and_then(|rest| rest.strip_suffix(">; rel=\"next\""))
            .unwrap_or_else(|| panic!("Link header {v:?}"));
        url.to_string()
    });
    let body: Vec<Value> = r.json().await.unwrap();
    (
        body.iter().map(|t| t["id"].as_i64().unwrap()).collect(),
        next,
    )
}

/// Follow `Link` from `first` to the end; every id in order and the number of pages.
async fn walk(app: &TestApp, first: &str) -> (Vec<i64>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut next = Some(first.to_string());
    while let Some(path) = next {
        let (got, more) = page(app, &path).await;
        pages += 1;
        assert!(pages <= 100, "paging does not end");
        ids.extend(got);
        next = more;
    }
    (ids, pages)
}

fn descending_once(ids: &[i64]) {
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_2500_transactions() {
    let app = spawn_app().await;
    let ada = create_customer(&app, "Ada", &["ADA"]).await;
    let mut cp = app.booted_charger("CB-PAGE").await;
    let mut started = Vec::with_capacity(TOTAL);
    let mut ada_ids = Vec::new();
    // A second apart: the same idTag, connector and time again would be a repeated start,
    // answered with the first transaction's id.
    let first_at = now() - time::Duration::seconds(TOTAL as i64 * 2);
    for n in 0..TOTAL {
        let at = first_at + time::Duration::seconds(n as i64);
        let driver = n % DRIVER_EVERY == 0;
        let (connector, tag) = if driver {
            (1, "ADA".to_string())
        } else {
            (2, format!("WALK-{n}"))
        };
        let answer = cp
            .call_result(
                "StartTransaction",
                json!({"connectorId": connector, "idTag": tag, "meterStart": n,
                    "timestamp": rfc(at)}),
            )
            .await
            .unwrap();
        let id = answer["transactionId"].as_i64().unwrap();
        if driver {
            assert_eq!(answer["idTagInfo"]["status"], "Accepted", "{answer}");
            cp.call_result(
                "StopTransaction",
                json!({"transactionId": id, "meterStop": n + 100, "timestamp": rfc(at)}),
            )
            .await
            .unwrap();
            ada_ids.push(id);
        }
        started.push(id);
    }
    started.reverse();
    ada_ids.reverse();
    descending_once(&started);

    // Everything, 1,000 at a time through Link: three pages, each transaction once.
    let (ids, pages) = walk(&app, "/api/v1/transactions?limit=1000").await;
    descending_once(&ids);
    assert_eq!(ids, started);
    assert_eq!(pages, 3);

    // The default page (100) reaches the same end.
    let (ids, pages) = walk(&app, "/api/v1/transactions").await;
    assert_eq!(ids, started);
    assert_eq!(
        pages,
        TOTAL / 100 + 1,
        "a full last page is followed by an empty one"
    );

    // Filters travel with the cursor.
    let first = format!(
        "/api/v1/transactions?customerId={}&status=ENDED&limit=200",
        ada.id
    );
    let (ids, pages) = walk(&app, &first).await;
    assert_eq!(ids, ada_ids);
    assert_eq!(pages, 3);
    let (p1, next) = page(&app, &first).await;
    let next = next.expect("a full page names the next");
    assert!(next.contains(&format!("customerId={}", ada.id)), "{next}");
    assert!(
        next.contains("status=ENDED") && next.contains("limit=200"),
        "{next}"
    );
    assert!(next.contains(&format!("after={}", p1[199])), "{next}");

    // `after` by hand: strictly older than the cursor; the cursor need not be a listed id.
    let cursor = started[10];
    let (ids, _) = page(
        &app,
        &format!("/api/v1/transactions?after={cursor}&limit=5"),
    )
    .await;
    assert_eq!(ids, &started[11..16]);
    let (ids, next) = page(
        &app,
        &format!("/api/v1/transactions?after={}", started[TOTAL - 1]),
    )
    .await;
    assert!(
        ids.is_empty() && next.is_none(),
        "nothing older than the oldest"
    );
    let (ids, _) = page(
        &app,
        &format!("/api/v1/transactions?after={}&limit=3", i32::MAX),
    )
    .await;
    assert_eq!(ids, &started[..3]);

    // A transaction started while paging sorts before page one and does not shift later pages.
    let (p1, next) = page(&app, "/api/v1/transactions?limit=1000").await;
    cp.call_result(
        "StartTransaction",
        json!({"connectorId": 2, "idTag": "LATE", "meterStart": 0, "timestamp": rfc(now())}),
    )
    .await
    .unwrap();
    let (p2, _) = page(&app, &next.unwrap()).await;
    assert_eq!(p1, &started[..1000]);
    assert_eq!(p2, &started[1000..2000]);

    // A cursor that is no transactionId is refused, naming the parameter.
    for bad in ["abc", "1.5", "99999999999"] {
        let r = app
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/transactions?after={bad}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "after={bad}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "after={bad}"
        );
        let body: Value = r.json().await.unwrap();
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("after"),
            "{body}"
        );
    }
    app.shutdown().await;
}
