//! One `wagate serve` per database: a second process on the same SQLite
//! file or PostgreSQL database refuses to start, naming the first (and,
//! on PostgreSQL, `--nats`, which lets several share one); once the first
//! is gone, even by SIGKILL, the next one starts. `--nats` on SQLite is
//! refused.

use std::process::Output;

use crate::helpers::*;

/// The level at which the gateway says it listens.
const INFO: &[(&str, &str)] = &[("WAGATE_LOG", "info")];

/// Runs `wagate serve` on `dir` with `args`, which must fail; returns
/// everything it printed.
async fn refused(dir: &DataDir, sim: &wasim::Simulator, args: &[&str]) -> String {
    let listen = format!("127.0.0.1:{}", free_port());
    let run = wagate(dir, sim)
        .args(["serve", "--listen", &listen])
        .args(args)
        .output();
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::time::timeout(WAIT, run)
        .await
        .unwrap_or_else(|_| panic!("wagate serve {args:?} neither failed nor stopped"))
        .unwrap_or_else(|e| panic!("wagate serve: {e}"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    assert!(
        !status.success(),
        "wagate serve {args:?} started:\n{printed}"
    );
    printed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_a_sqlite_file_is_refused_naming_the_first_until_it_is_killed() {
    let sim = simulator().await;
    let dir = DataDir::sqlite();
    let mut first = GatewayProcess::serve(&dir, &sim, free_port(), INFO).await;
    let pid = first.child.id().unwrap_or_else(|| panic!("no pid"));

    let printed = refused(&dir, &sim, &[]).await;
    assert!(
        printed.contains("another wagate serve is running on the database")
            && printed.contains(&format!("pid {pid} on ")),
        "{printed}"
    );
    assert!(
        first.child.try_wait().is_ok_and(|status| status.is_none()),
        "the first one kept running"
    );

    let printed = refused(&dir, &sim, &["--nats", "nats://127.0.0.1:4222"]).await;
    assert!(
        printed.contains("--nats") && printed.contains("needs a PostgreSQL database"),
        "{printed}"
    );

    // SIGKILL: no chance to let go; the kernel does it.
    first
        .child
        .start_kill()
        .unwrap_or_else(|e| panic!("SIGKILL: {e}"));
    let _ = first.child.wait().await;
    let second = GatewayProcess::serve(&dir, &sim, free_port(), INFO).await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_a_postgres_database_without_nats_is_refused_naming_both() {
    let Some(dir) = DataDir::postgres().await else {
        return;
    };
    let sim = simulator().await;
    let first = GatewayProcess::serve(&dir, &sim, free_port(), INFO).await;
    let pid = first.child.id().unwrap_or_else(|| panic!("no pid"));

    let printed = refused(&dir, &sim, &[]).await;
    assert!(
        printed.contains("another wagate serve is running on this PostgreSQL database")
            && printed.contains(&format!("pid {pid} on "))
            && printed.contains("--nats"),
        "{printed}"
    );

    // A graceful stop lets go at once: the next one starts.
    first.stop().await;
    let second = GatewayProcess::serve(&dir, &sim, free_port(), INFO).await;
    second.stop().await;
}
