//! One `wagate serve` per database, unless every process on it is a node
//! of one gateway (`--nats`).
//!
//! Two processes resuming the same sessions give each linked device two
//! connections; WhatsApp keeps the newer and closes the other
//! (`conflict type="replaced"`), the loser reconnects, and both write the
//! device's Signal keys. So a serving process holds a lock on its database
//! for its whole life, which the operating system or the database server
//! releases when the process dies, however it dies:
//!
//! - SQLite: an exclusive `flock` on `<database file>.lock`, into which the
//!   holder writes who it is (pid, host, start time), so a second process
//!   can name it. The database file itself is left to SQLite's own locks.
//! - PostgreSQL: a session-level advisory lock on a connection of its own,
//!   whose `application_name` says who holds it (the second process reads
//!   it from `pg_stat_activity`). A process alone takes it exclusively; a
//!   node of several (`--nats`) takes it shared, so nodes start beside
//!   each other but neither kind beside the other. The connection is
//!   pinged; if it is lost (the server restarted), the lock is taken again
//!   on a new one, and a process that finds it taken by another stops.
//!
//! An in-memory SQLite database belongs to its process anyway: nothing to
//! lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

use crate::secret::Secret;

/// The advisory lock's key: "wagate" in ASCII, then 2 (1 is the writer
/// lock of `store/postgres`).
const SERVE_LOCK: i64 = 0x7761_6761_7465_0002;

/// How often the lock's connection is checked.
const PING_EVERY: Duration = Duration::from_secs(10);

/// How the process shares its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sharing {
    /// The only process on it (no `--nats`).
    Alone,
    /// One node of several (`--nats`); PostgreSQL only.
    Node,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessLockError {
    #[error(
        "another wagate serve is running on the database {database} ({holder}); \
         stop it first: SQLite serves one process (several processes need PostgreSQL and --nats)"
    )]
    SqliteHeld { database: PathBuf, holder: String },
    #[error(
        "another wagate serve is running on this PostgreSQL database ({holder}); \
         to run several processes on one database, start every one of them with --nats"
    )]
    PostgresHeldAlone { holder: String },
    #[error(
        "wagate serve processes started with --nats are running on this PostgreSQL database \
         ({holder}); start this one with --nats too, or stop them first"
    )]
    PostgresHeldByNodes { holder: String },
    #[error("--nats needs a PostgreSQL database; SQLite serves one process")]
    NodeNeedsPostgres,
    #[error("the lock file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the database's lock connection")]
    Database(#[from] sqlx::Error),
}

/// Held for the process's life; dropping it releases the lock.
pub(crate) struct ProcessLock {
    held: Held,
}

enum Held {
    Nothing,
    /// The lock file, locked (closing it unlocks it).
    File(#[allow(dead_code)] File),
    Postgres(Arc<PostgresLock>),
}

struct PostgresLock {
    options: PgConnectOptions,
    sharing: Sharing,
    connection: tokio::sync::Mutex<PgConnection>,
}

impl ProcessLock {
    /// Takes the lock of the database at `url`, or says who holds it.
    /// `whoami` describes this process to a second one.
    pub(crate) async fn acquire(
        url: &Secret<String>,
        sharing: Sharing,
        whoami: &Whoami,
    ) -> Result<Self, ProcessLockError> {
        let url = url.expose();
        let scheme = url.split_once(':').map_or(url.as_str(), |(s, _)| s);
        let held = match scheme {
            "sqlite" => {
                if sharing == Sharing::Node {
                    return Err(ProcessLockError::NodeNeedsPostgres);
                }
                match sqlite_file(url)? {
                    Some(database) => Held::File(lock_file(&database, whoami)?),
                    None => Held::Nothing,
                }
            }
            "postgres" | "postgresql" => {
                // PostgreSQL keeps 63 bytes of it.
                let options = PgConnectOptions::from_str(url)?.application_name(&format!(
                    "wagate serve{} {}",
                    if sharing == Sharing::Node {
                        " --nats"
                    } else {
                        ""
                    },
                    whoami.short()
                ));
                let connection = lock_postgres(&options, sharing).await?;
                Held::Postgres(Arc::new(PostgresLock {
                    options,
                    sharing,
                    connection: tokio::sync::Mutex::new(connection),
                }))
            }
            // The store refuses it, with the list of what it accepts.
            _ => Held::Nothing,
        };
        Ok(Self { held })
    }

    /// Lets go of the lock now, rather than when the server notices the
    /// connection closed: a process started right after this one ends
    /// finds it free.
    pub(crate) async fn release(self) {
        if let Held::Postgres(lock) = self.held {
            let mut connection = lock.connection.lock().await;
            let unlock = match lock.sharing {
                Sharing::Alone => "SELECT pg_advisory_unlock($1)",
                Sharing::Node => "SELECT pg_advisory_unlock_shared($1)",
            };
            let _ = sqlx::query(unlock)
                .bind(SERVE_LOCK)
                .execute(&mut *connection)
                .await;
        }
    }

    /// What keeps the lock: on PostgreSQL a task pinging its connection
    /// and taking the lock again on a new one if it was lost, which ends
    /// with an error if another process took it meanwhile; `None` where
    /// the operating system keeps it.
    pub(crate) fn keeper(
        &self,
        stop: CancellationToken,
    ) -> Option<impl Future<Output = Result<(), ProcessLockError>> + Send + 'static> {
        match &self.held {
            Held::Postgres(lock) => Some(Arc::clone(lock).keep(stop)),
            Held::Nothing | Held::File(_) => None,
        }
    }
}

/// The database file a SQLite URL names; `None` for an in-memory one.
fn sqlite_file(url: &str) -> Result<Option<PathBuf>, ProcessLockError> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(url)?;
    Ok(Some(options.get_filename().to_path_buf()))
}

fn lock_file(database: &Path, whoami: &Whoami) -> Result<File, ProcessLockError> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let failed = |source| ProcessLockError::File {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // What it wrote once it held the lock; empty in the moment
            // between the two.
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(ProcessLockError::SqliteHeld {
                database: database.to_path_buf(),
                holder: if holder.is_empty() {
                    "a process that is starting".to_string()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(failed(e)),
    }
    file.set_len(0).map_err(failed)?;
    file.seek(SeekFrom::Start(0)).map_err(failed)?;
    file.write_all(format!("{whoami}\n").as_bytes())
        .map_err(failed)?;
    file.flush().map_err(failed)?;
    Ok(file)
}

async fn lock_postgres(
    options: &PgConnectOptions,
    sharing: Sharing,
) -> Result<PgConnection, ProcessLockError> {
    let mut connection = options.connect().await?;
    let take = match sharing {
        Sharing::Alone => "SELECT pg_try_advisory_lock($1)",
        Sharing::Node => "SELECT pg_try_advisory_lock_shared($1)",
    };
    let taken: bool = sqlx::query_scalar(take)
        .bind(SERVE_LOCK)
        .fetch_one(&mut connection)
        .await?;
    if taken {
        return Ok(connection);
    }
    let holders = postgres_holders(&mut connection).await?;
    let _ = connection.close().await;
    // Refused as a node: a process alone holds it exclusively. Refused
    // alone: either kind holds it.
    let alone = holders.is_empty() || holders.iter().any(|(_, mode)| mode == "ExclusiveLock");
    let holder = if holders.is_empty() {
        "one that has just stopped".to_string()
    } else {
        holders
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
            .join("; ")
    };
    Err(if alone {
        ProcessLockError::PostgresHeldAlone { holder }
    } else {
        ProcessLockError::PostgresHeldByNodes { holder }
    })
}

/// Who holds the serving lock, and how: each holder connection's
/// application name, address and start, with the lock's mode.
async fn postgres_holders(
    connection: &mut PgConnection,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    // A bigint key is held as (classid, objid) = (high, low 32 bits),
    // objsubid 1.
    sqlx::query_as(
        "SELECT a.application_name || COALESCE(' from ' || host(a.client_addr), '') \
                || ', connected ' || to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
                || ' UTC', l.mode \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND l.classid::bigint = $1 AND l.objid::bigint = $2 \
         ORDER BY a.backend_start",
    )
    .bind(SERVE_LOCK >> 32)
    .bind(SERVE_LOCK & 0xffff_ffff)
    .fetch_all(connection)
    .await
}

impl PostgresLock {
    async fn keep(self: Arc<Self>, stop: CancellationToken) -> Result<(), ProcessLockError> {
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(PING_EVERY) => {}
            }
            let mut connection = self.connection.lock().await;
            if connection.ping().await.is_ok() {
                continue;
            }
            tracing::warn!("lost the database lock's connection; taking the lock again");
            let mut backoff = Duration::from_millis(500);
            loop {
                match lock_postgres(&self.options, self.sharing).await {
                    Ok(again) => {
                        *connection = again;
                        tracing::info!("database lock taken again");
                        break;
                    }
                    Err(ProcessLockError::Database(error)) => {
                        tracing::debug!(%error, "database lock not taken again yet");
                    }
                    Err(taken) => return Err(taken),
                }
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(PING_EVERY);
            }
        }
    }
}

/// A process, as a second one is told about it.
#[derive(Debug, Clone)]
pub(crate) struct Whoami {
    pid: u32,
    host: String,
    started: chrono::DateTime<chrono::Utc>,
}

impl Whoami {
    /// This process: its pid, its host's name, now.
    pub(crate) fn this_process() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Self {
            pid: std::process::id(),
            host: if host.is_empty() {
                "an unnamed host".to_string()
            } else {
                host
            },
            started: chrono::Utc::now(),
        }
    }

    /// Without the start time (PostgreSQL has its own).
    fn short(&self) -> String {
        format!("pid {} on {}", self.pid, self.host)
    }
}

impl std::fmt::Display for Whoami {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, started {}",
            self.short(),
            self.started.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TestDatabase;

    fn sqlite_url(dir: &Path) -> Secret<String> {
        Secret::new(format!("sqlite://{}", dir.join("wagate.db").display()))
    }

    fn process(pid: u32) -> Whoami {
        Whoami {
            pid,
            host: "here".into(),
            started: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_second_holder_of_a_sqlite_file_is_refused_with_the_first_ones_name()
    -> Result<(), ProcessLockError> {
        let dir = tempfile::TempDir::new().map_err(|source| ProcessLockError::File {
            path: PathBuf::new(),
            source,
        })?;
        let url = sqlite_url(dir.path());
        let first = ProcessLock::acquire(&url, Sharing::Alone, &process(1)).await?;
        match ProcessLock::acquire(&url, Sharing::Alone, &process(2)).await {
            Err(ProcessLockError::SqliteHeld { holder, .. }) => {
                assert!(holder.starts_with("pid 1 on here, started "), "{holder}");
            }
            other => panic!("not refused: {:?}", other.err()),
        }
        drop(first);
        let _again = ProcessLock::acquire(&url, Sharing::Alone, &process(2)).await?;
        assert!(matches!(
            ProcessLock::acquire(&url, Sharing::Node, &process(3)).await,
            Err(ProcessLockError::NodeNeedsPostgres)
        ));
        // In memory: nothing shared, nothing to lock.
        let memory = Secret::new("sqlite::memory:".to_string());
        let _one = ProcessLock::acquire(&memory, Sharing::Alone, &process(4)).await?;
        let _two = ProcessLock::acquire(&memory, Sharing::Alone, &process(5)).await?;
        Ok(())
    }

    #[tokio::test]
    async fn on_postgres_nodes_share_the_database_and_a_process_alone_does_not()
    -> Result<(), ProcessLockError> {
        let Some(database) = TestDatabase::create().await else {
            return Ok(());
        };
        let url = Secret::new(database.url().to_string());
        let alone = ProcessLock::acquire(&url, Sharing::Alone, &process(1)).await?;
        match ProcessLock::acquire(&url, Sharing::Alone, &process(2)).await {
            Err(ProcessLockError::PostgresHeldAlone { holder }) => {
                assert!(holder.starts_with("wagate serve pid 1 on here"), "{holder}");
            }
            other => panic!("not refused: {:?}", other.err()),
        }
        match ProcessLock::acquire(&url, Sharing::Node, &process(3)).await {
            Err(e @ ProcessLockError::PostgresHeldAlone { .. }) => {
                assert!(e.to_string().contains("--nats"), "{e}");
            }
            other => panic!("not refused: {:?}", other.err()),
        }
        alone.release().await;
        let first = ProcessLock::acquire(&url, Sharing::Node, &process(4)).await?;
        let _second = ProcessLock::acquire(&url, Sharing::Node, &process(5)).await?;
        match ProcessLock::acquire(&url, Sharing::Alone, &process(6)).await {
            Err(ProcessLockError::PostgresHeldByNodes { holder }) => {
                assert!(
                    holder.contains("wagate serve --nats pid 4 on here"),
                    "{holder}"
                );
                assert!(
                    holder.contains("wagate serve --nats pid 5 on here"),
                    "{holder}"
                );
            }
            other => panic!("not refused: {:?}", other.err()),
        }
        first.release().await;
        Ok(())
    }
}
