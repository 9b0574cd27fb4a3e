//! The API contract, checked by tools that know only the OpenAPI document:
//! schemathesis (every check) against a live gateway with a linked
//! session, and clients generated from the document in Python and
//! TypeScript. Each needs its tools installed (`.ci/run` installs them);
//! without them a test is skipped, saying what to install, or fails when
//! its `WAGATE_REQUIRE_*` variable asks for them (see `tools`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{Limits, link_by_qr, world};
use crate::tools;

/// Generous for two cores shared with the rest of the suite; a run that
/// takes longer is stopped and fails.
const FUZZ_TIMEOUT: Duration = Duration::from_secs(900);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Fixed, so a failure is seen again by running the test again.
const SEED: &str = "20261130";

fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(file)
}

/// Runs `command` to its end within `limit`; returns (success, stdout,
/// stderr).
async fn run(mut command: Command, limit: Duration, what: &str) -> (bool, String, String) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{what} could not start: {e}"));
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(output)) => (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ),
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_with_every_check() {
    if !tools::present(&tools::SCHEMATHESIS) {
        return;
    }
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    // The messaging and chat operations reach their success paths on it.
    let session = link_by_qr(&gateway, &mut events, &sim, "15550001111").await;
    drop(events);
    // Everything else runs as an organization of its own, which cannot see
    // that session: the stateful phase, which follows links from
    // `GET /sessions`, restarts and deletes the sessions it finds there.
    let fuzz_org = gateway.org_token("fuzz").await;
    let work = tempfile::TempDir::new().unwrap_or_else(|e| panic!("{e}"));

    let mut st = Command::new("python3");
    st.current_dir(work.path())
        .env("WAGATE_FUZZ_SESSION", &session)
        .env("WAGATE_FUZZ_SESSION_TOKEN", &gateway.token)
        .env("WAGATE_FUZZ_TOKEN", &fuzz_org)
        .env("NO_COLOR", "1")
        .args([
            "-c",
            "from schemathesis.cli import schemathesis; schemathesis()",
        ])
        .arg("--config-file")
        .arg(support("schemathesis.toml"))
        .args([
            "run",
            &format!("{}/openapi.json", gateway.base),
            "--seed",
            SEED,
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--no-color",
        ]);
    let (ok, stdout, stderr) = run(st, FUZZ_TIMEOUT, "schemathesis").await;
    // The summary (operations, test cases, failures) shows in the test's
    // output whether it passes or not.
    println!("{stdout}");
    assert!(ok, "schemathesis found failures:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("Test cases:") && stdout.contains("generated"),
        "schemathesis ran no test case:\n{stdout}\n{stderr}"
    );
}

/// What a generated client printed: the session it created (which its
/// list must contain) and the QR code it read.
fn client_result(client: &str, printed: &str) -> (String, String) {
    let line = printed
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{client} client printed no result: {printed}"));
    let result: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{client} client: {e}: {line}"));
    let text = |key: &str| {
        result[key]
            .as_str()
            .unwrap_or_else(|| panic!("{client}: no {key} in {result}"))
            .to_string()
    };
    let (id, qr) = (text("id"), text("qr"));
    let listed: Vec<&str> = result["listed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        listed.contains(&id.as_str()),
        "{client}: {id} not listed in {result}"
    );
    (id, qr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_python_and_typescript_clients_create_a_session_read_its_qr_code_and_list() {
    if !tools::present(&tools::CLIENT_GENERATORS) {
        return;
    }
    let clients = Path::new(tools::NODE_CLIENTS_DIR);
    let node_modules = clients.join("node_modules");

    let (_sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let document = gateway
        .http
        .get(format!("{}/openapi.json", gateway.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Inside the tools' directory, so node resolves openapi-fetch.
    let work = tempfile::TempDir::new_in(clients).unwrap_or_else(|e| panic!("{e}"));
    let doc = work.path().join("openapi.json");
    std::fs::write(&doc, &document).unwrap_or_else(|e| panic!("{e}"));

    // Python: openapi-python-client, failing on any warning (a schema it
    // cannot read, a reference that does not resolve).
    let mut generate = Command::new("python3");
    generate
        .args([
            "-m",
            "openapi_python_client",
            "generate",
            "--meta",
            "none",
            "--fail-on-warning",
        ])
        .arg("--config")
        .arg(support("openapi-python-client.yml"))
        .arg("--path")
        .arg(&doc)
        .arg("--output-path")
        .arg(work.path().join("wagate_client"));
    let (ok, stdout, stderr) = run(generate, CLIENT_TIMEOUT, "openapi-python-client").await;
    assert!(ok, "openapi-python-client failed:\n{stdout}\n{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("Warning"),
        "openapi-python-client warned:\n{stdout}\n{stderr}"
    );
    let mut python = Command::new("python3");
    python
        .arg(support("client_python.py"))
        .arg(work.path())
        .arg(&gateway.base)
        .arg(&gateway.token);
    let (ok, python_out, stderr) = run(python, CLIENT_TIMEOUT, "the Python client").await;
    assert!(ok, "the Python client failed:\n{python_out}\n{stderr}");

    // TypeScript: openapi-typescript's types, openapi-fetch's requests,
    // compiled with strict checks, run with node.
    let mut generate = Command::new("node");
    generate
        .arg(node_modules.join("openapi-typescript/bin/cli.js"))
        .arg(&doc)
        .arg("--output")
        .arg(work.path().join("api.d.ts"));
    let (ok, stdout, stderr) = run(generate, CLIENT_TIMEOUT, "openapi-typescript").await;
    assert!(ok, "openapi-typescript failed:\n{stdout}\n{stderr}");
    assert!(
        !format!("{stdout}{stderr}").to_lowercase().contains("warn"),
        "openapi-typescript warned:\n{stdout}\n{stderr}"
    );
    std::fs::copy(clients.join("client.mts"), work.path().join("client.mts"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tsc = Command::new("node");
    tsc.current_dir(work.path())
        .arg(node_modules.join("typescript/bin/tsc"))
        .args([
            "--strict",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--skipLibCheck",
            "client.mts",
        ]);
    let (ok, stdout, stderr) = run(tsc, CLIENT_TIMEOUT, "tsc").await;
    assert!(
        ok,
        "the TypeScript client does not compile against the generated types:\n{stdout}\n{stderr}"
    );
    let mut node = Command::new("node");
    node.current_dir(work.path())
        .arg("client.mjs")
        .arg(&gateway.base)
        .arg(&gateway.token);
    let (ok, ts_out, stderr) = run(node, CLIENT_TIMEOUT, "the TypeScript client").await;
    assert!(ok, "the TypeScript client failed:\n{ts_out}\n{stderr}");

    // Each client's QR code must be one the gateway published for its
    // session on the socket opened before either ran (which may deliver
    // it after the client read it: waited for, not assumed).
    for (client, printed) in [("python", &python_out), ("typescript", &ts_out)] {
        let (id, qr) = client_result(client, printed);
        events
            .wait(&format!("the QR code the {client} client read"), &id, |e| {
                e["event"] == "session.qr" && e["data"]["code"] == qr.as_str()
            })
            .await;
    }
}
