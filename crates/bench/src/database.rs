//! The database a run gives the gateway: by default its SQLite file in the
//! fresh data directory; with `--database postgres://...`, a database of
//! its own created on that server for the run and dropped after it.

use anyhow::{Context, bail};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

pub(crate) struct Scratch {
    /// What the gateway is given as `WAGATE_DATABASE_URL`.
    pub url: String,
    /// The database's name on the server.
    pub name: String,
    /// A connection to the server's maintenance database, kept for the
    /// memory readings and the final drop.
    pub admin: PgConnection,
}

impl Scratch {
    /// Creates `wagate_bench_<pid>` on the server `server` names (any
    /// database in the URL is only where the benchmark connects to do it).
    pub(crate) async fn create(server: &str) -> anyhow::Result<Self> {
        let mut url = url::Url::parse(server).context("--database is not a URL")?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            bail!("--database: only postgres:// URLs get a database of their own");
        }
        if url.path().trim_start_matches('/').is_empty() {
            url.set_path("/postgres");
        }
        let mut admin = PgConnection::connect(url.as_str())
            .await
            .with_context(|| format!("connecting to {}", redacted(&url)))?;
        let name = format!("wagate_bench_{}", std::process::id());
        // A leftover of an earlier run with the same pid would hold old rows.
        // The name is ours: `wagate_bench_` and a number.
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating {name}"))?;
        url.set_path(&format!("/{name}"));
        println!("database: {name} on {}", redacted(&url));
        Ok(Self {
            url: url.to_string(),
            name,
            admin,
        })
    }

    pub(crate) async fn drop(mut self) {
        let dropped = sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut self.admin)
        .await;
        if let Err(error) = dropped {
            eprintln!("could not drop the database {}: {error}", self.name);
        }
    }
}

fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}
