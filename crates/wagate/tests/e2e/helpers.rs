use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use url::Url;
use wagate::Application;
use wagate::Config;
use wasim::{SimConfig, Simulator};

use crate::test_postgres::TestDatabase;

/// Generous: two cores run the gateway, the simulator and the client's
/// crypto at once.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) async fn simulator() -> Simulator {
    // `RUST_LOG=wagate=debug,whatsapp_rust=info cargo test …` shows what a
    // failing test's gateway and client were doing; the test harness
    // captures it per test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Simulator::start(SimConfig::default())
        .await
        .unwrap_or_else(|e| panic!("simulator: {e}"))
}

/// Where a test's gateway keeps its data: a temporary directory (device
/// keys, media) and the database, SQLite in that directory or, with
/// `WAGATE_TEST_DATABASE=postgres`, a PostgreSQL database of its own. Both
/// live as long as this, across gateway restarts.
pub(crate) struct DataDir {
    dir: TempDir,
    database: Option<TestDatabase>,
}

impl DataDir {
    /// On the database `WAGATE_TEST_DATABASE` names (`sqlite`, the
    /// default, or `postgres`, which must then be reachable).
    pub(crate) async fn new() -> Self {
        match std::env::var("WAGATE_TEST_DATABASE").as_deref() {
            Ok("postgres") => match TestDatabase::create().await {
                Some(database) => Self::with(Some(database)),
                None => panic!("WAGATE_TEST_DATABASE=postgres but no PostgreSQL is reachable"),
            },
            Ok("sqlite") | Err(_) => Self::with(None),
            Ok(other) => panic!("WAGATE_TEST_DATABASE={other:?}: use sqlite or postgres"),
        }
    }

    /// On SQLite whatever the run's default.
    pub(crate) fn sqlite() -> Self {
        Self::with(None)
    }

    /// On PostgreSQL whatever the run's default; `None` (the test is
    /// skipped, as it has said) when there is none to use.
    pub(crate) async fn postgres() -> Option<Self> {
        TestDatabase::create()
            .await
            .map(|database| Self::with(Some(database)))
    }

    fn with(database: Option<TestDatabase>) -> Self {
        Self {
            dir: TempDir::new().unwrap_or_else(|e| panic!("{e}")),
            database,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `None`: the gateway's default, SQLite in the directory.
    pub(crate) fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(TestDatabase::url)
    }
}

/// What most tests begin with: a simulator, a gateway on it keeping its
/// data in the directory (keep it alive as long as the gateway), and the
/// gateway's realtime socket, open before anything happens so no event is
/// missed.
pub(crate) async fn world(limits: Limits) -> (Simulator, DataDir, Gateway, Events) {
    world_in(DataDir::new().await, limits).await
}

/// [`world`] on the given data.
pub(crate) async fn world_in(
    dir: DataDir,
    limits: Limits,
) -> (Simulator, DataDir, Gateway, Events) {
    let sim = simulator().await;
    let gateway = Gateway::start(&sim, &dir, limits).await;
    let events = gateway.events().await;
    (sim, dir, gateway, events)
}

pub(crate) struct Limits {
    pub link_timeout_secs: u64,
    pub retry_budget_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            link_timeout_secs: 300,
            retry_budget_secs: 600,
        }
    }
}

pub(crate) struct Gateway {
    pub base: String,
    pub ws: String,
    pub token: String,
    pub http: reqwest::Client,
    /// The gateway's store, when it runs in this process.
    store: Option<Arc<dyn wagate::Store>>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

pub(crate) fn config(sim: &Simulator, data_dir: &DataDir, limits: &Limits) -> Config {
    Config {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: data_dir.path().to_path_buf(),
        database_url: data_dir
            .database_url()
            .map(|url| wagate::Secret::new(url.to_string())),
        whatsapp_url: Url::parse(&sim.ws_url()).ok(),
        link_timeout_secs: limits.link_timeout_secs,
        retry_budget_secs: limits.retry_budget_secs,
        // Pacing has its own unit tests; here it would only slow tests.
        send_per_minute: 0,
        // Media hosts and webhook receivers in tests listen on loopback;
        // nothing a test (or the fuzzer) names may reach further.
        allow_private_network: true,
        egress_loopback_only: true,
        ..Config::default()
    }
}

impl Gateway {
    /// Starts a gateway on a fresh data directory; `token` is the one the
    /// first start prints.
    pub(crate) async fn start(sim: &Simulator, dir: &DataDir, limits: Limits) -> Self {
        Self::start_with(config(sim, dir, &limits), None).await
    }

    /// `POST /sessions/{id}/start`, which must be accepted.
    pub(crate) async fn start_session(&self, id: &str) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/sessions/{id}/start"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Starts a gateway on `config`; pass the token of an earlier start on
    /// the same data directory.
    pub(crate) async fn start_with(config: Config, token: Option<String>) -> Self {
        let mut app = Application::build(config)
            .await
            .unwrap_or_else(|e| panic!("gateway: {e:?}"));
        let token = token
            .or_else(|| {
                app.take_bootstrap_token()
                    .map(|t| t.token.plaintext().expose().clone())
            })
            .unwrap_or_else(|| panic!("no token"));
        let port = app.port();
        let shutdown = app.shutdown_token();
        let store = app.store();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            base: format!("http://127.0.0.1:{port}/api/v1"),
            ws: format!("ws://127.0.0.1:{port}/api/v1/ws"),
            token,
            http: reqwest::Client::new(),
            store: Some(store),
            shutdown,
            task: Some(task),
        }
    }

    /// A gateway running elsewhere (another process) on `port`.
    pub(crate) fn at(port: u16, token: String) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}/api/v1"),
            ws: format!("ws://127.0.0.1:{port}/api/v1/ws"),
            token,
            http: reqwest::Client::new(),
            store: None,
            shutdown: CancellationToken::new(),
            task: None,
        }
    }

    /// A token of a new organization, `name`, that sees none of the
    /// first one's sessions.
    pub(crate) async fn org_token(&self, name: &str) -> String {
        let store = self
            .store
            .as_deref()
            .unwrap_or_else(|| panic!("the gateway runs in another process"));
        wagate::admin::create_org(store, name)
            .await
            .unwrap_or_else(|e| panic!("org: {e}"));
        wagate::admin::create_token(store, name)
            .await
            .unwrap_or_else(|e| panic!("token: {e}"))
            .token
            .plaintext()
            .expose()
            .clone()
    }

    /// Graceful shutdown, as on SIGTERM.
    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(WAIT, task).await {
                Ok(Ok(Ok(()))) => {}
                other => panic!("gateway did not stop cleanly: {other:?}"),
            }
        }
    }

    pub(crate) async fn events(&self) -> Events {
        self.events_with("").await
    }

    /// The realtime socket with extra query parameters (`since=...`,
    /// `events=...`).
    pub(crate) async fn events_with(&self, query: &str) -> Events {
        let url = format!("{}?token={}&{query}", self.ws, self.token);
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("realtime: {e}"));
        Events { socket }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub(crate) async fn create_session(&self) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/sessions",
                Some(json!({ "label": "e2e" })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{body}"))
    }

    pub(crate) async fn session(&self, id: &str) -> Value {
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("/sessions/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(crate) struct Events {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Events {
    /// The next event, whatever it is.
    pub(crate) async fn next(&mut self, what: &str) -> Value {
        loop {
            match tokio::time::timeout(WAIT, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    return serde_json::from_str(text.as_str()).unwrap_or_else(|e| panic!("{e}"));
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    panic!("realtime stream closed while waiting for {what}: {frame:?}")
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("realtime stream ended while waiting for {what}: {other:?}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// The next frame, whatever it is (a close frame, say).
    pub(crate) async fn frame(&mut self) -> Option<Message> {
        match tokio::time::timeout(WAIT, self.socket.next()).await {
            Ok(Some(Ok(frame))) => Some(frame),
            _ => None,
        }
    }

    /// The next event of `session` that `pick` accepts; earlier ones are
    /// skipped.
    pub(crate) async fn wait(
        &mut self,
        what: &str,
        session: &str,
        mut pick: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next()).await;
            match next {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let event: Value =
                        serde_json::from_str(text.as_str()).unwrap_or_else(|e| panic!("{e}"));
                    if event["session_id"] == session && pick(&event) {
                        return event;
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("realtime stream ended while waiting for {what}: {other:?}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    pub(crate) async fn status(&mut self, session: &str, status: &str) -> Value {
        self.wait(&format!("status {status}"), session, |e| {
            e["event"] == "session.status" && e["data"]["status"] == status
        })
        .await
    }

    /// The next status change of `session`, whatever it is: `(status,
    /// previous)`.
    pub(crate) async fn next_status(&mut self, session: &str) -> (String, String) {
        let event = self
            .wait("a status change", session, |e| {
                e["event"] == "session.status"
            })
            .await;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        (
            text(&event["data"]["status"]),
            text(&event["data"]["previous"]),
        )
    }

    pub(crate) async fn qr(&mut self, session: &str) -> String {
        let event = self
            .wait("a QR code", session, |e| e["event"] == "session.qr")
            .await;
        event["data"]["code"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{event}"))
    }
}

/// Creates a session, scans its QR code with `phone` and waits for
/// `working`.
pub(crate) async fn link_by_qr(
    gateway: &Gateway,
    events: &mut Events,
    sim: &Simulator,
    phone: &str,
) -> String {
    let id = gateway.create_session().await;
    let code = events.qr(&id).await;
    sim.handle()
        .scan_qr(phone, &code)
        .unwrap_or_else(|e| panic!("scan: {e}"));
    events.status(&id, "working").await;
    id
}

pub(crate) fn device_of(sim: &Simulator, phone: &str) -> u16 {
    sim.handle()
        .devices()
        .into_iter()
        .find(|d| d.phone == phone)
        .map(|d| d.device)
        .unwrap_or_else(|| panic!("{phone} has no linked device"))
}

/// The gateway binary of this build, on `dir`, pointed at the simulator
/// (a `simulator` build accepts no other server, even for admin commands).
pub(crate) fn wagate(dir: &DataDir, sim: &Simulator) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wagate"));
    command
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("WAGATE_CONFIG")
        .env_remove("WAGATE_DATABASE_URL")
        .env("WAGATE_WHATSAPP_URL", sim.ws_url())
        .env("WAGATE_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = dir.database_url() {
        // Not a flag: the command line of a process is visible to others.
        command.env("WAGATE_DATABASE_URL", url);
    }
    command
}

/// Runs an admin command to completion and returns what it printed.
pub(crate) async fn admin(dir: &DataDir, sim: &Simulator, args: &[&str]) -> String {
    let output = wagate(dir, sim)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("wagate {args:?}: {e}"));
    assert!(output.status.success(), "wagate {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// `wagate serve` as a process of its own, with everything it prints on
/// stdout and stderr kept, line by line, in order per stream.
pub(crate) struct GatewayProcess {
    pub child: Child,
    pub output: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl GatewayProcess {
    /// Starts it on `port` with `env` and waits for its "listening" line.
    pub(crate) async fn serve(
        dir: &DataDir,
        sim: &Simulator,
        port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = wagate(dir, sim);
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("WAGATE_SEND_PER_MINUTE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("wagate serve: {e}"));
        let output: Arc<Mutex<Vec<String>>> = Arc::default();
        let (ready, listening) = tokio::sync::oneshot::channel();
        let ready = Arc::new(Mutex::new(Some(ready)));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        // Each keeps draining its stream so the process never blocks on a
        // full pipe, and ends when the process has exited.
        let readers = vec![
            read_lines(stdout, Arc::clone(&output), Arc::clone(&ready)),
            read_lines(stderr, Arc::clone(&output), ready),
        ];
        match tokio::time::timeout(WAIT, listening).await {
            Ok(Ok(())) => Self {
                child,
                output,
                readers,
            },
            other => panic!(
                "wagate serve never listened ({other:?}); it printed:\n{}",
                output
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .join("\n")
            ),
        }
    }

    /// Stops it as a service manager would (SIGTERM), waits for it to exit
    /// and returns every line it printed.
    pub(crate) async fn stop(mut self) -> Vec<String> {
        if let Some(pid) = self.child.id() {
            let status = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await
                .unwrap_or_else(|e| panic!("kill: {e}"));
            assert!(status.success());
        }
        match tokio::time::timeout(WAIT, self.child.wait()).await {
            Ok(Ok(status)) => assert!(status.success(), "wagate exited with {status}"),
            other => panic!("wagate did not stop: {other:?}"),
        }
        for reader in self.readers {
            let _ = reader.await;
        }
        std::mem::take(&mut *self.output.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

type Ready = Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>;

fn read_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
    output: Arc<Mutex<Vec<String>>>,
    ready: Ready,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("wagate listening")
                && let Some(ready) = ready.lock().unwrap_or_else(PoisonError::into_inner).take()
            {
                let _ = ready.send(());
            }
            output
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
        }
    })
}

/// How many key rows the gateway on `dir` holds for session `id`, read
/// through a second connection to its database (SQLite's WAL lets it read
/// beside the running gateway; PostgreSQL serves both).
pub(crate) async fn key_rows(dir: &DataDir, id: &str) -> u64 {
    let url = match dir.database_url() {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", dir.path().join("wagate.db").display()),
    };
    let store = wagate::connect_store(&wagate::Secret::new(url))
        .await
        .unwrap_or_else(|e| panic!("database: {e:?}"));
    let id = id.parse().unwrap_or_else(|e| panic!("{id}: {e:?}"));
    let counts = store
        .keys()
        .count_keys(id)
        .await
        .unwrap_or_else(|e| panic!("key rows: {e:?}"));
    counts.total()
}
