//! The default scenario: link N sessions (create → first QR, scan →
//! `working`), memory at rest, every connection dropped at once, and a
//! restart of the gateway on the same data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::events::{Events, Stamp};
use crate::gateway::Gateway;
use crate::resources::rss_kib;
use crate::stack::{Stack, drain, wait_http_ok};
use crate::{Args, mib, percentiles};

/// Creates and links `sessions` sessions, `concurrency` at a time, the
/// phone of session `i` being `15560000000 + i`. Returns them in that order.
pub(crate) async fn link_sessions(
    stack: &Stack,
    sessions: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<Linked>, Duration)> {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..sessions {
        let gate = Arc::clone(&gate);
        let gw = stack.gw.clone();
        let events = stack.events.clone();
        let http = stack.gw.http.clone();
        let sim_base = stack.sim_base.clone();
        let timeout = stack.timeout;
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let phone = session_phone(i);
            link_one(&gw, &events, &http, &sim_base, &phone, timeout)
                .await
                .map(|linked| (i, linked))
        });
    }
    let mut linked = Vec::with_capacity(sessions);
    while let Some(result) = tasks.join_next().await {
        linked.push(result??);
    }
    linked.sort_by_key(|(i, _)| *i);
    Ok((
        linked.into_iter().map(|(_, l)| l).collect(),
        started.elapsed(),
    ))
}

/// The simulated phone that session `i` is linked to.
pub(crate) fn session_phone(i: usize) -> String {
    format!("{}", 15_560_000_000u64 + i as u64)
}

pub(crate) async fn link_scenario(args: &Args, stack: &mut Stack) -> anyhow::Result<()> {
    let rss_empty = rss_kib(stack.gw_pid)?;
    println!("gateway RSS with no sessions: {}", mib(rss_empty));

    // 1. Create and link.
    let (linked, link_wall) = link_sessions(stack, args.sessions, args.concurrency).await?;
    let mut ids = Vec::with_capacity(linked.len());
    let mut to_qr = Vec::with_capacity(linked.len());
    let mut to_working = Vec::with_capacity(linked.len());
    for linked in linked {
        to_qr.push(linked.to_qr);
        to_working.push(linked.to_working);
        ids.push(linked.id);
    }
    println!(
        "linked {} sessions in {:.1} s ({} at a time)",
        ids.len(),
        link_wall.as_secs_f64(),
        args.concurrency
    );
    println!("create -> first QR:  {}", percentiles(&mut to_qr));
    println!("scan -> working:     {}", percentiles(&mut to_working));

    // 2. Memory of idle linked sessions.
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let rss_linked = rss_kib(stack.gw_pid)?;
    let per_session = (rss_linked.saturating_sub(rss_empty)) as f64 / ids.len().max(1) as f64;
    println!(
        "gateway RSS with {} linked idle sessions: {} (+{} over empty; {:.0} KiB per session)",
        ids.len(),
        mib(rss_linked),
        mib(rss_linked.saturating_sub(rss_empty)),
        per_session
    );
    if let Some(pid) = stack.sim.id() {
        println!("simulator RSS: {}", mib(rss_kib(pid)?));
    }
    stack.print_resources("idle", ids.len()).await?;

    // 3. Everyone dropped at once.
    if !args.no_drop {
        drop_all(stack, &ids).await?;
        stack.print_resources("after drop-all", ids.len()).await?;
    }

    // 4. The gateway stopped and started again.
    if !args.no_restart {
        restart(stack, &ids).await?;
        tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
        let rss = rss_kib(stack.gw_pid)?;
        println!(
            "gateway RSS {}s after the restart: {} ({:.0} KiB per session, including its fixed cost)",
            args.settle_secs,
            mib(rss),
            rss as f64 / ids.len().max(1) as f64
        );
        stack.print_resources("after restart", ids.len()).await?;
    }
    Ok(())
}

/// Drops every connection at the simulator and times until each session
/// has reported `starting` and then `working` again.
pub(crate) async fn drop_all(stack: &Stack, ids: &[String]) -> anyhow::Result<()> {
    let (events, gw, timeout) = (&stack.events, &stack.gw, stack.timeout);
    let dropped_at = Instant::now();
    let reply: Value = gw
        .http
        .post(format!("{}/admin/faults/drop-all", stack.sim_base))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .unwrap_or(Value::Null);
    eprintln!("drop-all: {reply}");
    let mut back = Vec::with_capacity(ids.len());
    for id in ids {
        let at = events
            .wait(id, timeout, |t| {
                t.first_status_after("starting", dropped_at)
                    .and_then(|lost| t.first_status_after("working", lost))
            })
            .await;
        let at = match at {
            Ok(at) => at,
            Err(e) => {
                let now = gw.get(&format!("/sessions/{id}")).await?;
                bail!(
                    "session {id} did not come back ({e}); seen: {}; now: {now}",
                    events.describe(id, dropped_at)
                );
            }
        };
        back.push(at.duration_since(dropped_at));
    }
    let all = back.iter().max().copied().unwrap_or_default();
    println!(
        "after drop-all, all {} sessions working again in {:.2} s; per session: {}",
        ids.len(),
        all.as_secs_f64(),
        percentiles(&mut back)
    );
    Ok(())
}

/// Stops the gateway with SIGTERM, starts it again on the same data
/// directory and database, and times from the new process's start until
/// its API answers and until every session is `working`. A session that
/// shows a QR code again was not kept: the run fails.
pub(crate) async fn restart(stack: &mut Stack, ids: &[String]) -> anyhow::Result<()> {
    let timeout = stack.timeout;
    let since = stack
        .events
        .last_id()
        .context("no event seen before the restart")?;
    let stopping = Instant::now();
    // SIGTERM through kill(1): the graceful shutdown a service manager asks for.
    let signalled = Command::new("kill")
        .arg("-TERM")
        .arg(stack.gw_pid.to_string())
        .status()
        .await?;
    if !signalled.success() {
        bail!("kill -TERM {} failed: {signalled}", stack.gw_pid);
    }
    let exit = tokio::time::timeout(timeout, stack.gateway.wait())
        .await
        .context("the gateway did not stop on SIGTERM")??;
    println!(
        "gateway stopped on SIGTERM in {:.2} s ({exit})",
        stopping.elapsed().as_secs_f64()
    );
    stack.reader.abort();

    let started = Instant::now();
    let mut gateway = stack.gw_launch.spawn()?;
    stack.gw_pid = gateway.id().context("wagate exited at once")?;
    let stdout = gateway.stdout.take().context("no stdout")?;
    drain(BufReader::new(stdout).lines());
    stack.gateway = gateway;
    let http = stack.gw.http.clone();
    wait_http_ok(&http, &format!("{}/healthz", stack.gw_launch.base), timeout).await?;
    let answering = started.elapsed();
    wait_http_ok(&http, &format!("{}/readyz", stack.gw_launch.base), timeout).await?;
    let ready = started.elapsed();
    println!(
        "restart: API answers (/healthz) {:.0} ms and is ready (/readyz) {:.0} ms after the process started",
        answering.as_secs_f64() * 1000.0,
        ready.as_secs_f64() * 1000.0
    );

    // What happened before the socket connected comes from the event log,
    // stamped with when the gateway committed it.
    let ws = stack.gw_launch.base.replace("http://", "ws://");
    let (socket, _) = tokio_tungstenite::connect_async(format!(
        "{ws}/api/v1/ws?token={}&since={since}",
        stack.gw.token
    ))
    .await
    .context("realtime socket after the restart")?;
    stack.reader = tokio::spawn(stack.events.clone().read(socket, Stamp::Committed));

    let mut back = Vec::with_capacity(ids.len());
    for id in ids {
        let at = match stack
            .events
            .wait(id, timeout, |t| t.first_status_after("working", started))
            .await
        {
            Ok(at) => at,
            Err(e) => {
                let now = stack.gw.get(&format!("/sessions/{id}")).await?;
                bail!(
                    "session {id} did not come back after the restart ({e}); seen: {}; now: {now}",
                    stack.events.describe(id, started)
                );
            }
        };
        back.push(at.saturating_duration_since(started));
    }
    let relinked = ids
        .iter()
        .filter(|id| stack.events.status_after(id, "scan_qr_code", started))
        .count();
    let all = back.iter().max().copied().unwrap_or_default();
    println!(
        "after the restart, all {} sessions working in {:.2} s from the process's start; per session: {}; relinked (asked for a QR code): {relinked}",
        ids.len(),
        all.as_secs_f64(),
        percentiles(&mut back)
    );
    if relinked > 0 {
        bail!("{relinked} sessions lost their link over the restart");
    }
    Ok(())
}

pub(crate) struct Linked {
    pub(crate) id: String,
    pub(crate) to_qr: Duration,
    pub(crate) to_working: Duration,
    /// When the scan was sent to the simulator.
    pub(crate) scanned_at: Instant,
    /// When the session reported `working`.
    pub(crate) working_at: Instant,
}

pub(crate) async fn link_one(
    gw: &Gateway,
    events: &Events,
    http: &reqwest::Client,
    sim_base: &str,
    phone: &str,
    timeout: Duration,
) -> anyhow::Result<Linked> {
    let created_at = Instant::now();
    let session = gw
        .post("/sessions", json!({ "label": format!("bench {phone}") }))
        .await?;
    let id = session["id"]
        .as_str()
        .context("no id in the created session")?
        .to_string();
    let qr_at = events
        .wait(&id, timeout, |t| t.first_qr)
        .await
        .with_context(|| format!("no QR for {id}"))?;
    let qr = gw.get(&format!("/sessions/{id}/qr")).await?;
    let code = qr["code"].as_str().context("no code in the QR reply")?;
    let scanned_at = Instant::now();
    let scan = http
        .post(format!("{sim_base}/admin/phones/{phone}/scan"))
        .json(&json!({ "qr": code }))
        .send()
        .await?;
    if !scan.status().is_success() {
        bail!("scan for {id}: {} {}", scan.status(), scan.text().await?);
    }
    let working_at = events
        .wait(&id, timeout, |t| {
            t.first_status_after("working", scanned_at)
        })
        .await
        .with_context(|| format!("{id} did not reach working"))?;
    Ok(Linked {
        id,
        to_qr: qr_at.saturating_duration_since(created_at),
        to_working: working_at.saturating_duration_since(scanned_at),
        scanned_at,
        working_at,
    })
}
