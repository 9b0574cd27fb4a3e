//! A throwaway PostgreSQL database per test, for the store's unit tests
//! and, included by `#[path]`, for the integration tests (`tests/`).
//!
//! The server is `WAGATE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, the loopback server with
//! trust auth that developers' machines and CI run). Without one, a test
//! prints "skipped: no PostgreSQL" and passes, so the README's test command
//! works on a laptop with SQLite only; `WAGATE_REQUIRE_POSTGRES=1` (set by
//! `.ci/run`) makes that a failure instead.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own, dropped (with whatever is still connected to it)
/// when this is dropped.
pub(crate) struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates one, or returns `None` when no server answers and none is
    /// required. Panics when one is required and none answers, or when the
    /// server answers but refuses to create a database.
    pub(crate) async fn create() -> Option<Self> {
        let server =
            std::env::var("WAGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
        let required = std::env::var("WAGATE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let shown = redacted(&server);
        let connected =
            tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&server)).await;
        let mut admin = match connected {
            Ok(Ok(connection)) => connection,
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer in 10 s".to_string(),
                };
                if required {
                    panic!(
                        "WAGATE_REQUIRE_POSTGRES=1 but PostgreSQL at {shown} is unreachable: {why}"
                    );
                }
                eprintln!(
                    "skipped: no PostgreSQL at {shown} ({why}); set WAGATE_TEST_POSTGRES_URL to run this test on PostgreSQL"
                );
                return None;
            }
        };
        let name = format!("wagate_test_{}", uuid::Uuid::new_v4().simple());
        // The name is ours (hex digits), so splicing it is safe; a
        // database name cannot be a bound parameter.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE on {shown}: {e}"));
        let _ = admin.close().await;
        let mut url = url::Url::parse(&server)
            .unwrap_or_else(|e| panic!("WAGATE_TEST_POSTGRES_URL {shown}: {e}"));
        url.set_path(&name);
        Some(Self {
            server,
            name,
            url: url.to_string(),
        })
    }

    /// The database's URL, to give the gateway.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await, and the test's runtime may be shutting down:
        // a thread of its own with a runtime of its own does the work, and
        // is waited for so the database is gone when the test ends.
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&server).await {
                    let _ = sqlx::query(AssertSqlSafe(drop)).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// The URL without its password, to print.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_string(),
    }
}
