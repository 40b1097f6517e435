//! PostgreSQL for tests: every test gets its own freshly created, empty schema in the database
//! named by `TEST_DATABASE_URL`, so tests run in parallel without seeing each other, and the
//! server migrates it on open like a real deployment. Without the variable a test skips (prints
//! "skipped: TEST_DATABASE_URL not set"), except under CI (`CI` set), where it fails loudly.
//! The URL selects the schema through sqlx's `options` parameter (`-c search_path=t_…,public`);
//! `btree_gist` lives in `public`, installed here once so no test schema ever owns it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

pub const ENV: &str = "TEST_DATABASE_URL";

/// Test schemas are named `t_<unix seconds>_<8 hex digits>`; ones older than this were left
/// behind by killed test runs and are dropped by the next run.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Create a fresh, empty schema and return a URL whose connections use it (and `public`, for
/// the extension). `None` means skip: `TEST_DATABASE_URL` is unset outside CI. Panics under CI
/// without the variable, and when the database cannot be reached.
pub async fn fresh_pg_url() -> Option<String> {
    let base = base_url()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let schema = format!("t_{}_{:08x}", now.as_secs(), rand::random::<u32>());
    let mut admin = PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {ENV}={base}: {e}"));
    prepare_database(&mut admin, now).await;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
    let _ = admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    // application_name tags every connection of the test, so drop_schema can find them.
    Some(format!(
        "{base}{sep}options=-c%20search_path%3D{schema}%2Cpublic&application_name={schema}"
    ))
}

/// Drop the schema of a URL from [`fresh_pg_url`], with everything in it. Connections still
/// open on it (a server that was not shut down, a pool not closed after a panic) are
/// terminated first so the drop cannot hang on their locks. Failures are reported, not raised:
/// cleanup must not turn a passing test into a failing one.
pub async fn drop_schema(url: &str) {
    let Some(schema) = schema_of(url) else {
        eprintln!("drop_schema: {url} names no test schema; nothing dropped");
        return;
    };
    let result = async {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&schema)
        .execute(&mut conn)
        .await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut conn)
            .await?;
        conn.close().await
    }
    .await;
    if let Err(e) = result {
        eprintln!("drop_schema: could not drop {schema}: {e}");
    }
}

/// A fresh schema that drops itself when it goes out of scope, also when the test panics.
pub struct PgSchema {
    pub url: String,
}

impl PgSchema {
    /// `None` means skip, as for [`fresh_pg_url`].
    pub async fn new() -> Option<PgSchema> {
        fresh_pg_url().await.map(|url| PgSchema { url })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime (which must not be blocked on
        // itself): the drop runs on a thread of its own with a small runtime.
        let url = std::mem::take(&mut self.url);
        let done = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for drop_schema")
                .block_on(drop_schema(&url));
        })
        .join();
        if done.is_err() {
            eprintln!("PgSchema: dropping the schema panicked");
        }
    }
}

fn base_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{ENV} is not set, but CI is: the PostgreSQL half of the tests must run in CI \
             (e.g. {ENV}=postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            println!("skipped: {ENV} not set");
            None
        }
    }
}

/// Install btree_gist in `public` and sweep stale test schemas. Under an advisory lock, because
/// concurrent `CREATE EXTENSION IF NOT EXISTS` can still collide (parallel test processes).
async fn prepare_database(admin: &mut PgConnection, now: Duration) {
    let result = async {
        let mut tx = admin.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('echarging tests: prepare'))")
            .execute(&mut *tx)
            .await?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public")
            .execute(&mut *tx)
            .await?;
        let stale: Vec<String> = sqlx::query_scalar(
            // CASE: the cast must only ever see names the pattern accepted.
            "SELECT nspname::text FROM pg_namespace WHERE CASE \
             WHEN nspname ~ '^t_[0-9]{1,18}_[0-9a-f]{8}$' \
             THEN split_part(nspname, '_', 2)::bigint < $1 ELSE false END",
        )
        .bind((now - STALE_AFTER).as_secs() as i64)
        .fetch_all(&mut *tx)
        .await?;
        for schema in stale {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        panic!("cannot prepare the test database ({ENV}): {e}");
    }
}

/// The schema a [`fresh_pg_url`] URL selects (its `application_name`), if it is a test schema.
fn schema_of(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let name = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("application_name="))
        .next_back()?;
    let mut parts = name.splitn(3, '_');
    let valid = parts.next() == Some("t")
        && parts
            .next()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .next()
            .is_some_and(|s| s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    valid.then(|| name.to_string())
}
