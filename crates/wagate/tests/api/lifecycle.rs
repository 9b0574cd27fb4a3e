//! The process as a whole: a top-level task that dies takes the gateway
//! down with an error, so a service manager restarts it.

use tempfile::TempDir;
use wagate::Application;

use crate::helpers::test_config;

#[tokio::test]
async fn a_top_level_task_that_dies_stops_the_gateway_with_its_name() {
    for (name, outcome) in [
        ("doomed worker", "panicked"),
        ("quitter", "stopped on its own"),
    ] {
        let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
        let mut app = Application::build(test_config(&dir))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let port = app.port();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let (die_tx, die) = tokio::sync::oneshot::channel::<()>();
        let panics = outcome == "panicked";
        app.add_task(name, async move {
            let _ = started_tx.send(());
            let _ = die.await;
            assert!(!panics, "the worker's bug");
            Ok(())
        });
        let shutdown = app.shutdown_token();
        let running = tokio::spawn(app.run_until_stopped());
        started.await.unwrap_or_else(|e| panic!("{e}"));
        // Serving until then.
        let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
        assert!(health.is_ok_and(|r| r.status().is_success()));

        let _ = die_tx.send(());
        let result = tokio::time::timeout(std::time::Duration::from_secs(30), running)
            .await
            .unwrap_or_else(|_| panic!("the gateway kept running after {name} ended"))
            .unwrap_or_else(|e| panic!("{e}"));
        let error = result.err().map(|e| format!("{e:#}"));
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains(name) && e.contains(outcome)),
            "{error:?}"
        );
        assert!(shutdown.is_cancelled(), "everything else was told to stop");
        assert!(
            reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
                .await
                .is_err(),
            "the HTTP server stopped too"
        );
    }
}
