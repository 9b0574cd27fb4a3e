//! The `inbound` scenario: simulated contacts send texts to the linked
//! sessions, and each text must come out of the gateway as a
//! `message.received` event, both on the realtime socket (the event is
//! published after the message and its event are committed: *recorded*)
//! and at a webhook receiver this program serves on loopback (signed,
//! POSTed, answered 204: *delivered*).
//!
//! Contact `i` is phone `15580000000 + i` and writes to session `i`'s
//! phone through the simulator's admin API; the simulator encrypts and
//! relays it like any phone's message, so the gateway decrypts, stores
//! (before acking), logs the event and queues the delivery exactly as in
//! production. Every contact first sends one warm-up text (not measured:
//! it sets up the Signal sessions), then the measured phases run,
//! spreading texts over the contacts round-robin:
//!
//! - `rate`: sends started on a fixed schedule (open loop), at most
//!   `--max-in-flight` at once;
//! - `saturate`: `--in-flight` sends at a time (closed loop).
//!
//! Latency runs from the moment the contact's send starts to the event's
//! arrival (stamped by the socket reader and by the receiver's handler).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::bail;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::send::{Load, Mode, p3};
use crate::{Args, Stack, link_sessions, session_phone};

#[derive(clap::Args)]
pub(crate) struct InboundArgs {
    /// Which phases to run, in this order.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Texts per second across all contacts in the `rate` phase.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// How long each phase sends.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Sends in flight at once in the `saturate` phase.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Most sends in flight at once in the `rate` phase (the schedule slips
    /// beyond it).
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
    /// How long after a phase's last send its texts may take to arrive
    /// before they count as lost.
    #[arg(long, default_value_t = 60)]
    arrival_timeout_secs: u64,
}

/// The contact that writes to session `i`.
fn contact_phone(i: usize) -> String {
    format!("{}", 15_580_000_000u64 + i as u64)
}

/// Arrivals by text, first arrival only; later copies are counted.
#[derive(Clone)]
pub(crate) struct Arrivals {
    first: Arc<Mutex<HashMap<String, Instant>>>,
    duplicates: Arc<Mutex<u64>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Arrivals {
    fn default() -> Self {
        Self {
            first: Arc::default(),
            duplicates: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

impl Arrivals {
    /// Notes a `message.received` event that came in at `at`.
    pub(crate) fn note(&self, event: &Value, at: Instant) {
        if event["event"] != "message.received" {
            return;
        }
        let Some(text) = event["data"]["content"]["body"].as_str() else {
            return;
        };
        let fresh = {
            let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
            if first.contains_key(text) {
                false
            } else {
                first.insert(text.to_string(), at);
                true
            }
        };
        if fresh {
            self.changed.send_modify(|n| *n += 1);
        } else {
            *self
                .duplicates
                .lock()
                .unwrap_or_else(PoisonError::into_inner) += 1;
        }
    }

    fn at(&self, text: &str) -> Option<Instant> {
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(text)
            .copied()
    }

    fn duplicates(&self) -> u64 {
        *self
            .duplicates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every one of `texts` arrived, or `deadline`; returns how
    /// many are still missing.
    async fn wait_all(&self, texts: &[String], deadline: tokio::time::Instant) -> usize {
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            let missing = {
                let first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
                texts
                    .iter()
                    .filter(|t| !first.contains_key(t.as_str()))
                    .count()
            };
            if missing == 0 {
                return 0;
            }
            // Thousands arrive a second: look again at most every 50 ms.
            tokio::time::sleep(Duration::from_millis(50)).await;
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return missing,
            }
        }
    }
}

/// A webhook receiver on loopback: notes each delivery's arrival, 204.
async fn serve_receiver(arrivals: Arrivals) -> anyhow::Result<String> {
    async fn receive(State(arrivals): State<Arrivals>, body: axum::body::Bytes) -> StatusCode {
        let at = Instant::now();
        if let Ok(event) = serde_json::from_slice::<Value>(&body) {
            arrivals.note(&event, at);
        }
        StatusCode::NO_CONTENT
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(arrivals);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("webhook receiver: {error}");
        }
    });
    Ok(url)
}

pub(crate) async fn run(args: &Args, inbound: &InboundArgs, stack: &Stack) -> anyhow::Result<()> {
    let (linked, link_wall) = link_sessions(stack, args.sessions, args.concurrency).await?;
    println!(
        "linked {} sessions in {:.1} s ({} at a time)",
        linked.len(),
        link_wall.as_secs_f64(),
        args.concurrency
    );
    if linked.is_empty() {
        bail!("no sessions to write to");
    }
    let sessions = linked.len();

    let delivered = Arrivals::default();
    let url = serve_receiver(delivered.clone()).await?;
    let hook = stack
        .gw
        .post(
            "/webhooks",
            json!({ "url": url, "events": ["message.received"] }),
        )
        .await?;
    println!(
        "webhook {} → {url}",
        hook["id"].as_str().unwrap_or_default()
    );

    let warm: Vec<String> = (0..sessions).map(|i| format!("warm-up {i}")).collect();
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, text) in warm.iter().enumerate() {
        let gate = Arc::clone(&gate);
        let stack_sim = stack.sim_base.clone();
        let http = stack.gw.http.clone();
        let text = text.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            contact_send(&http, &stack_sim, i, &text).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let deadline = tokio::time::Instant::now() + stack.timeout;
    let missing = delivered.wait_all(&warm, deadline).await;
    if missing > 0 {
        bail!("{missing} warm-up texts never reached the webhook");
    }
    println!(
        "warm-up: one text per contact, all {sessions} delivered in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let mut reports = Vec::new();
    let mut phase_no = 0;
    for load in [Load::Rate(inbound.rate), Load::Saturate(inbound.in_flight)] {
        let wanted = match load {
            Load::Rate(_) => matches!(inbound.mode, Mode::Rate | Mode::Both),
            Load::Saturate(_) => matches!(inbound.mode, Mode::Saturate | Mode::Both),
        };
        if !wanted {
            continue;
        }
        phase_no += 1;
        let report = phase(stack, &delivered, inbound, load, sessions, phase_no).await?;
        report.print();
        reports.push(report);
    }
    print_table(&reports, sessions, inbound);
    Ok(())
}

/// Contact `i` writes `text` to session `i`'s phone.
async fn contact_send(
    http: &reqwest::Client,
    sim_base: &str,
    i: usize,
    text: &str,
) -> anyhow::Result<()> {
    let url = format!("{sim_base}/admin/phones/{}/messages", contact_phone(i));
    let reply = http
        .post(&url)
        .json(&json!({ "to": session_phone(i), "text": text }))
        .send()
        .await?;
    let status = reply.status();
    if !status.is_success() {
        bail!("{url}: {status} {}", reply.text().await.unwrap_or_default());
    }
    Ok(())
}

struct Report {
    load: Load,
    sent: usize,
    send_failures: usize,
    send_secs: f64,
    recorded: Vec<Duration>,
    delivered: Vec<Duration>,
    recorded_rate: f64,
    delivered_rate: f64,
    lost: usize,
    duplicates: u64,
}

impl Report {
    fn print(&self) {
        println!("── {} ──", self.load.name());
        println!(
            "  sent {} texts in {:.1} s ({:.0}/s), {} sends refused by the simulator",
            self.sent,
            self.send_secs,
            self.sent as f64 / self.send_secs.max(f64::EPSILON),
            self.send_failures
        );
        println!(
            "  recorded (socket):   {:.0}/s, p50/p95/p99/max {}",
            self.recorded_rate,
            p3(&mut self.recorded.clone())
        );
        println!(
            "  delivered (webhook): {:.0}/s, p50/p95/p99/max {}",
            self.delivered_rate,
            p3(&mut self.delivered.clone())
        );
        println!(
            "  never delivered: {}, duplicate deliveries: {}",
            self.lost, self.duplicates
        );
    }
}

async fn phase(
    stack: &Stack,
    delivered: &Arrivals,
    inbound: &InboundArgs,
    load: Load,
    sessions: usize,
    phase_no: usize,
) -> anyhow::Result<Report> {
    let duration = Duration::from_secs(inbound.duration_secs);
    let in_flight = match load {
        Load::Rate(_) => inbound.max_in_flight,
        Load::Saturate(n) => n,
    };
    let gate = Arc::new(Semaphore::new(in_flight.max(1)));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut sends: Vec<(String, Instant)> = Vec::new();
    let mut n = 0usize;
    loop {
        if let Load::Rate(rate) = load {
            let due = started + Duration::from_secs_f64(n as f64 / f64::from(rate.max(1)));
            tokio::time::sleep_until(due.into()).await;
        }
        if started.elapsed() >= duration {
            break;
        }
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let i = n % sessions;
        let text = format!("bench {phase_no}-{n}");
        let at = Instant::now();
        sends.push((text.clone(), at));
        let http = stack.gw.http.clone();
        let sim_base = stack.sim_base.clone();
        tasks.spawn(async move {
            let _permit = permit;
            contact_send(&http, &sim_base, i, &text).await.is_ok()
        });
        n += 1;
    }
    let mut send_failures = 0;
    while let Some(result) = tasks.join_next().await {
        if !matches!(result, Ok(true)) {
            send_failures += 1;
        }
    }
    let send_secs = started.elapsed().as_secs_f64();

    let texts: Vec<String> = sends.iter().map(|(t, _)| t.clone()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(inbound.arrival_timeout_secs);
    let lost = delivered.wait_all(&texts, deadline).await;

    let recorded_at = &stack.events.received;
    let latencies = |arrivals: &dyn Fn(&str) -> Option<Instant>| -> (Vec<Duration>, f64) {
        let mut last = started;
        let samples: Vec<Duration> = sends
            .iter()
            .filter_map(|(text, sent)| {
                let at = arrivals(text)?;
                last = last.max(at);
                Some(at.saturating_duration_since(*sent))
            })
            .collect();
        let secs = last.duration_since(started).as_secs_f64().max(f64::EPSILON);
        let rate = samples.len() as f64 / secs;
        (samples, rate)
    };
    let (recorded, recorded_rate) = latencies(&|t| recorded_at.at(t));
    let (delivered_samples, delivered_rate) = latencies(&|t| delivered.at(t));
    Ok(Report {
        load,
        sent: sends.len(),
        send_failures,
        send_secs,
        recorded,
        delivered: delivered_samples,
        recorded_rate,
        delivered_rate,
        lost,
        duplicates: delivered.duplicates(),
    })
}

fn print_table(reports: &[Report], sessions: usize, inbound: &InboundArgs) {
    println!();
    println!(
        "| phase ({sessions} sessions, {} s each) | sent/s | recorded/s | delivered/s | send → webhook p50 / p95 / p99 / max | never delivered |",
        inbound.duration_secs
    );
    println!("|---|---|---|---|---|---|");
    for r in reports {
        let mut d = r.delivered.clone();
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {} | {} |",
            r.load.name(),
            r.sent as f64 / r.send_secs.max(f64::EPSILON),
            r.recorded_rate,
            r.delivered_rate,
            p3(&mut d),
            r.lost
        );
    }
}
