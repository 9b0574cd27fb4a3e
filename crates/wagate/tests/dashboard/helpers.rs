use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wagate::Application;
use wagate::Config;
use wagate::Store;

use crate::tools::{self, CHROMEDRIVER_BIN, CHROMIUM_BIN};

/// Generous: two cores run Chromium, the gateway, the simulator and the
/// client's crypto at once.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Two browsers at a time: more only thrashes a two-core machine.
static SLOTS: Semaphore = Semaphore::const_new(2);

pub(crate) async fn slot() -> SemaphorePermit<'static> {
    SLOTS
        .acquire()
        .await
        .unwrap_or_else(|e| panic!("test slots: {e}"))
}

/// A sandbox gateway on a random loopback port.
pub(crate) struct Gateway {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub sim: wasim::SimHandle,
    pub owner_email: String,
    pub owner_password: String,
    pub api_token: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Gateway {
    pub(crate) async fn start() -> Self {
        // `RUST_LOG=wagate=debug cargo test …` shows what a failing test's
        // gateway was doing; the harness captures it per test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let config = Config {
            listen: ([127, 0, 0, 1], 0).into(),
            sandbox: true,
            ..Config::default()
        };
        let mut app = Application::build(config)
            .await
            .unwrap_or_else(|e| panic!("gateway: {e:?}"));
        let user = app
            .take_bootstrap_user()
            .unwrap_or_else(|| panic!("a fresh sandbox bootstraps a user"));
        let owner_password = user
            .password
            .as_ref()
            .map(|p| p.expose().clone())
            .unwrap_or_else(|| panic!("the bootstrap user has a new password"));
        let api_token = app
            .take_bootstrap_token()
            .map(|t| t.token.plaintext().expose().clone())
            .unwrap_or_else(|| panic!("a fresh sandbox bootstraps a token"));
        let sim = app
            .sandbox()
            .unwrap_or_else(|| panic!("a sandbox gateway has a simulator"));
        let store = app.store();
        let base = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            base,
            store,
            sim,
            owner_email: user.email.to_string(),
            owner_password,
            api_token,
            shutdown,
            task: Some(task),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(WAIT, task).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Headless Chromium behind its own chromedriver.
pub(crate) struct Browser {
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

impl Browser {
    /// `None` (the test returns, skipped) without Chromium: see
    /// [`tools::present`].
    pub(crate) async fn start() -> Option<Self> {
        if !tools::present(&tools::CHROMIUM) {
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER_BIN)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER_BIN}: {e}"));
        let profile = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM_BIN,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen: retry until it answers.
        let deadline = tokio::time::Instant::now() + WAIT;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%error, "chromedriver not ready");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("chromedriver on port {port} did not start Chromium: {error}"),
            }
        };
        Some(Self {
            client,
            driver,
            _profile: profile,
        })
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    pub(crate) async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub(crate) async fn find_within(&self, css: &str, timeout: Duration) -> Element {
        self.client
            .wait()
            .at_most(timeout)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("waiting {timeout:?} for {css}: {e}"))
    }

    pub(crate) async fn exists(&self, css: &str) -> bool {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|all| !all.is_empty())
            .unwrap_or(false)
    }

    /// The text of the first element matching `css`, once there is one.
    /// Read by script, not through an element reference: the page swaps
    /// its live part on events, which would leave a reference stale.
    pub(crate) async fn text(&self, css: &str) -> String {
        self.find(css).await;
        let text = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : null;",
                vec![json!(css)],
            )
            .await
            .unwrap_or_else(|e| panic!("text of {css}: {e}"));
        text.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{css} went away"))
    }

    pub(crate) async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Clicks the element matching `css`, finding it again if a live
    /// update replaced it between finding and clicking.
    pub(crate) async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self.find(css).await.click().await {
                Ok(_) => return,
                Err(error) if tokio::time::Instant::now() < deadline && is_stale(&error) => {}
                Err(error) => panic!("click {css}: {error}"),
            }
        }
    }

    pub(crate) async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.path().to_string())
            .unwrap_or_else(|e| panic!("current url: {e}"))
    }

    pub(crate) async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Runs `script` until it calls its callback (the last argument, as
    /// WebDriver's asynchronous scripts do); returns what it passed.
    pub(crate) async fn js_async(&self, script: &str) -> Value {
        self.client
            .execute_async(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// Marks the loaded document; [`Browser::same_document`] tells whether
    /// the page has been reloaded since.
    pub(crate) async fn mark_document(&self) {
        self.js("window.__wagateMark = 'still here'; return null;")
            .await;
    }

    pub(crate) async fn same_document(&self) -> bool {
        self.js("return window.__wagateMark === 'still here';")
            .await
            == json!(true)
    }

    pub(crate) async fn sign_in(&self, gateway: &Gateway, email: &str, password: &str) {
        self.goto(&gateway.url("/login")).await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("form[action='/login'] button[type=submit]")
            .await;
        // Only a signed-in page has the sign-out form. (Waiting for an
        // `h1` found the sign-in page's own at once, and the next `goto`
        // could overtake the form's POST and land back on the sign-in
        // page: seen once in CI, a 60 s wait for `#label`.)
        self.find("form[action='/logout']").await;
    }

    pub(crate) async fn sign_out(&self) {
        self.click("form[action='/logout'] button").await;
        self.find("form[action='/login']").await;
    }

    /// Saves a PNG of the viewport to `target/screenshots/<name>.png`.
    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    pub(crate) async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resize: {e}"));
    }

    pub(crate) async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

/// Creates a session from the sessions page; returns its id once its page
/// is showing.
pub(crate) async fn create_session(browser: &Browser, gateway: &Gateway, label: &str) -> String {
    browser.goto(&gateway.url("/sessions")).await;
    browser.fill("#label", label).await;
    browser
        .click("form[action='/sessions'] button[type=submit]")
        .await;
    browser.find("[data-live][data-session-id]").await;
    let path = browser.path().await;
    path.strip_prefix("/sessions/")
        .map(str::to_string)
        .unwrap_or_else(|| panic!("expected a session page, at {path}"))
}

/// Creates a session and links it with the sandbox's simulated phone
/// (the "Scan" button); returns its id and number once the page shows it
/// working.
pub(crate) async fn link_in_sandbox(
    browser: &Browser,
    gateway: &Gateway,
    label: &str,
) -> (String, String) {
    let id = create_session(browser, gateway, label).await;
    browser.find("img[data-qr-image][data-expires-at]").await;
    browser.click("[data-sandbox-scan]").await;
    browser
        .find("[data-live] .badge[data-status='working']")
        .await;
    let number = browser
        .text("[data-phone]")
        .await
        .trim_start_matches('+')
        .to_string();
    (id, number)
}

fn is_stale(error: &fantoccini::error::CmdError) -> bool {
    error.to_string().contains("stale element")
}

/// An HTTP client that shows redirects instead of following them, for
/// tests that drive the dashboard's forms without a browser.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Submits the sign-in form as the owner with `password`, after getting
/// the form's CSRF token the way a browser would.
pub(crate) async fn post_login(
    client: &reqwest::Client,
    gateway: &Gateway,
    password: &str,
) -> reqwest::Response {
    post_login_as(client, gateway, &gateway.owner_email, password).await
}

/// Submits the sign-in form as `email`.
pub(crate) async fn post_login_as(
    client: &reqwest::Client,
    gateway: &Gateway,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let form = client
        .get(gateway.url("/login"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let login_cookie = set_cookie(&form, "wagate_login");
    let token = login_cookie
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    client
        .post(gateway.url("/login"))
        .header("cookie", &login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("_csrf", &token),
            ("email", email),
            ("password", password),
        ]))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Signs in as `email`; returns the session cookie (`name=value`).
pub(crate) async fn session_cookie(
    client: &reqwest::Client,
    gateway: &Gateway,
    email: &str,
    password: &str,
) -> String {
    let response = post_login_as(client, gateway, email, password).await;
    assert_eq!(response.status().as_u16(), 303, "signed in as {email}");
    set_cookie(&response, "wagate_session")
}

/// The whole `Set-Cookie` header for cookie `name`, attributes included.
pub(crate) fn set_cookie_header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

/// Cookie `name` as a request sends it back: `name=value`.
pub(crate) fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    let header = set_cookie_header(response, name);
    header.split(';').next().unwrap_or_default().to_string()
}

/// `application/x-www-form-urlencoded` of `fields`.
pub(crate) fn form_body(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// A page as a signed-in browser gets it: (status, HTML).
pub(crate) async fn get_page(
    client: &reqwest::Client,
    gateway: &Gateway,
    cookie: &str,
    path: &str,
) -> (u16, String) {
    let response = client
        .get(gateway.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Posts a form as a signed-in browser would: (status, HTML).
pub(crate) async fn post_form(
    client: &reqwest::Client,
    gateway: &Gateway,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let response = client
        .post(gateway.url(path))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(fields))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The value of the first `name="{name}" value="…"` in `html` (maud writes
/// attributes in the order the template gives them).
pub(crate) fn input_value(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    html.split_once(&marker)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value.to_string())
        .unwrap_or_else(|| panic!("no {name} field in the page"))
}
