//! The `history` scenario (issue 22): a phone with a long history links,
//! and the gateway stores what the phone sends it.
//!
//! 1. Seeds the simulated phone with `--messages` texts in `--chats`
//!    person chats, all within the last 80 days (so all of it comes in the
//!    initial bootstrap and the `RECENT` chunks that the default `history`
//!    setting keeps), through the simulator's admin API.
//! 2. Links one session to that phone and times from the scan (and from
//!    `working`) until the `history.sync` events on the realtime socket
//!    add up to every seeded message, while a sampler reads the gateway's
//!    RSS from `/proc` every `--rss-interval-ms`: peak growth over the RSS
//!    before the link.
//! 3. Pages through `GET /sessions/{id}/chats` to check every chat is
//!    there, then times `--requests` requests, one at a time, of each of:
//!    the chat list's first page, a deep page (the cursor of the last
//!    page of 100), and one chat's newest messages (chats taken in turn).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::link::{link_one, session_phone};
use crate::resources::rss_kib;
use crate::{Args, Stack, mib};

#[derive(clap::Args)]
pub(crate) struct HistoryArgs {
    /// Messages in the phone's history, spread evenly over the chats.
    #[arg(long, default_value_t = 50_000)]
    messages: usize,
    /// Person chats in the phone's history.
    #[arg(long, default_value_t = 500)]
    chats: usize,
    /// Timed requests per endpoint after the sync.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// How often the gateway's RSS is read during the sync.
    #[arg(long, default_value_t = 10)]
    rss_interval_ms: u64,
}

/// Messages per seeding request: well under the admin API's 2 MB body.
const SEED_BATCH: usize = 5_000;

/// The contact of chat `j`.
fn chat_phone(j: usize) -> String {
    format!("{}", 15_570_000_000u64 + j as u64)
}

pub(crate) async fn run(_args: &Args, history: &HistoryArgs, stack: &Stack) -> anyhow::Result<()> {
    if history.chats == 0 || history.messages < history.chats {
        bail!("--chats must be at least 1 and --messages at least --chats");
    }
    let phone = session_phone(0);
    let seeded_in = Instant::now();
    let held = seed(stack, &phone, history).await?;
    println!(
        "seeded {held} messages in {} chats on {phone} in {:.1} s",
        history.chats,
        seeded_in.elapsed().as_secs_f64()
    );
    if held != history.messages {
        bail!("the phone holds {held} messages, not {}", history.messages);
    }

    // Peak RSS while the history comes in.
    let rss_before = rss_kib(stack.gw_pid)?;
    let peak = Arc::new(AtomicU64::new(rss_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (Arc::clone(&peak), Arc::clone(&done), stack.gw_pid);
        let every = Duration::from_millis(history.rss_interval_ms.max(1));
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(rss) = rss_kib(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                // A sampling interval, not a synchronisation.
                tokio::time::sleep(every).await;
            }
        })
    };

    let linked = link_one(
        &stack.gw,
        &stack.events,
        &stack.gw.http,
        &stack.sim_base,
        &phone,
        stack.timeout,
    )
    .await?;
    let id = linked.id.clone();
    let want = history.messages as u64;
    let stored = stack
        .events
        .wait(&id, stack.timeout, |t| {
            (t.history.messages >= want)
                .then_some(t.history.last)
                .flatten()
        })
        .await;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let track = stack
        .events
        .tracks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&id)
        .map(|t| t.history)
        .unwrap_or_default();
    let stored_at = match stored {
        Ok(at) => at,
        Err(e) => bail!(
            "the history was not stored ({e}): {} history.sync events stored {} of {want} messages",
            track.chunks,
            track.messages
        ),
    };
    let rss_after = rss_kib(stack.gw_pid)?;
    let peak = peak.load(Ordering::Relaxed).max(rss_after);
    println!(
        "scan -> working {:.0} ms; all {want} messages stored {:.2} s after the scan, {:.2} s after working",
        linked.to_working.as_secs_f64() * 1000.0,
        stored_at
            .saturating_duration_since(linked.scanned_at)
            .as_secs_f64(),
        stored_at
            .saturating_duration_since(linked.working_at)
            .as_secs_f64()
    );
    println!(
        "history.sync events: {} chunks, {} chats, {} messages, {} push names",
        track.chunks, track.chats, track.messages, track.push_names
    );
    if let Ok(chunks) = sim_chunks(stack, &phone).await {
        println!("the phone sent {chunks}");
    }
    println!(
        "gateway RSS before the link {}, peak during the sync {} (+{}), after {} (+{}); sampled every {} ms",
        mib(rss_before),
        mib(peak),
        mib(peak.saturating_sub(rss_before)),
        mib(rss_after),
        mib(rss_after.saturating_sub(rss_before)),
        history.rss_interval_ms
    );

    latencies(stack, &id, history).await
}

/// Seeds the phone's history through the simulator's admin API, in
/// requests of at most [`SEED_BATCH`] messages (a chat seeded twice gets
/// the messages of both). Returns what the phone holds.
async fn seed(stack: &Stack, phone: &str, history: &HistoryArgs) -> anyhow::Result<usize> {
    let (n, c) = (history.messages, history.chats);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let span = 80 * 86_400u64;
    let from = now - span;
    let mut held = 0;
    let mut batch: Vec<Value> = Vec::new();
    let mut in_batch = 0;
    for j in 0..c {
        // Chat j gets messages j, j + c, j + 2c, ...: the chats interleave
        // in time.
        let indices: Vec<usize> = (j..n).step_by(c).collect();
        for piece in indices.chunks(SEED_BATCH) {
            let messages: Vec<Value> = piece
                .iter()
                .map(|&g| {
                    let from_me = g % 3 == 0;
                    json!({
                        "from_me": from_me,
                        "push_name": (!from_me).then(|| format!("Contact {j}")),
                        "timestamp": from + g as u64 * span / n as u64,
                        "text": format!("history message {g} in chat {j}: a few words of text"),
                    })
                })
                .collect();
            in_batch += messages.len();
            batch.push(
                json!({ "jid": chat_phone(j), "name": format!("Chat {j}"), "messages": messages }),
            );
            if in_batch >= SEED_BATCH {
                held = post_seed(stack, phone, std::mem::take(&mut batch)).await?;
                in_batch = 0;
            }
        }
    }
    if !batch.is_empty() {
        held = post_seed(stack, phone, batch).await?;
    }
    Ok(held)
}

async fn post_seed(stack: &Stack, phone: &str, chats: Vec<Value>) -> anyhow::Result<usize> {
    let response = stack
        .gw
        .http
        .post(format!("{}/admin/phones/{phone}/history", stack.sim_base))
        .json(&json!({ "chats": chats }))
        .send()
        .await?;
    let reply = crate::gateway::json_of(response, "seed history").await?;
    reply["messages"]
        .as_u64()
        .map(|m| m as usize)
        .context("no messages count in the seed reply")
}

/// What the simulator says the phone sent: chunks by kind, acknowledged.
async fn sim_chunks(stack: &Stack, phone: &str) -> anyhow::Result<String> {
    let response = stack
        .gw
        .http
        .get(format!("{}/admin/phones/{phone}/history", stack.sim_base))
        .send()
        .await?;
    let reply = crate::gateway::json_of(response, "history chunks").await?;
    let chunks = reply["chunks"].as_array().context("no chunks")?;
    let mut kinds: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    let mut acknowledged = 0;
    for chunk in chunks {
        let kind = kinds
            .entry(chunk["sync_type"].as_str().unwrap_or("?").to_string())
            .or_default();
        kind.0 += 1;
        kind.1 += chunk["messages"].as_u64().unwrap_or(0);
        acknowledged += usize::from(chunk["acknowledged"].as_bool() == Some(true));
    }
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(k, (n, m))| format!("{n} {k} ({m} messages)"))
        .collect();
    Ok(format!(
        "{} chunks: {}; {acknowledged} acknowledged",
        chunks.len(),
        kinds.join(", ")
    ))
}

/// Checks the chat list holds every chat, then times the list's first
/// page, a deep page and chats' newest messages.
async fn latencies(stack: &Stack, id: &str, history: &HistoryArgs) -> anyhow::Result<()> {
    let gw = &stack.gw;
    // Every chat, 100 a page; the cursors on the way.
    let mut chats: Vec<String> = Vec::with_capacity(history.chats);
    let mut cursors: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/sessions/{id}/chats?limit=100&cursor={c}"),
            None => format!("/sessions/{id}/chats?limit=100"),
        };
        let page = gw.get(&path).await?;
        let data = page["data"]
            .as_array()
            .context("no data in the chat list")?;
        for chat in data {
            chats.push(
                chat["id"]
                    .as_str()
                    .context("a chat without id")?
                    .to_string(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => {
                cursors.push(next.to_string());
                cursor = Some(next.to_string());
            }
            None => break,
        }
    }
    println!(
        "chat list: {} chats in {} pages of 100",
        chats.len(),
        cursors.len() + 1
    );
    if chats.len() != history.chats {
        bail!(
            "the chat list holds {} chats, not {}",
            chats.len(),
            history.chats
        );
    }

    let first = format!("/sessions/{id}/chats?limit=50");
    let deep = match cursors.last() {
        Some(c) => format!("/sessions/{id}/chats?limit=50&cursor={c}"),
        None => first.clone(),
    };
    let messages_of = |i: usize| {
        let chat = &chats[i % chats.len()];
        let number = chat.split('@').next().unwrap_or(chat);
        format!("/sessions/{id}/chats/{number}/messages?limit=50")
    };
    // Warm-up, not timed.
    for i in 0..20 {
        gw.get(&first).await?;
        gw.get(&deep).await?;
        gw.get(&messages_of(i)).await?;
    }
    let mut t_first = Vec::with_capacity(history.requests);
    let mut t_deep = Vec::with_capacity(history.requests);
    let mut t_messages = Vec::with_capacity(history.requests);
    let mut seen_messages = 0;
    for i in 0..history.requests {
        let at = Instant::now();
        let page = gw.get(&first).await?;
        t_first.push(at.elapsed());
        if page["data"].as_array().is_none_or(Vec::is_empty) {
            bail!("the chat list's first page is empty");
        }
        let at = Instant::now();
        let page = gw.get(&deep).await?;
        t_deep.push(at.elapsed());
        if page["data"].as_array().is_none_or(Vec::is_empty) {
            bail!("the chat list's deep page is empty");
        }
        let at = Instant::now();
        let page = gw.get(&messages_of(i)).await?;
        t_messages.push(at.elapsed());
        seen_messages += page["data"].as_array().map_or(0, Vec::len);
    }
    if seen_messages == 0 {
        bail!("no chat had messages");
    }
    println!(
        "latency, {} requests each, one at a time (p50 / p99 / max):",
        history.requests
    );
    println!(
        "  GET /sessions/{{id}}/chats?limit=50 (first page):         {}",
        p50_p99(&mut t_first)
    );
    println!(
        "  GET /sessions/{{id}}/chats?limit=50&cursor=... (after {}): {}",
        cursors.len() * 100,
        p50_p99(&mut t_deep)
    );
    println!(
        "  GET /sessions/{{id}}/chats/{{chat}}/messages?limit=50:       {} ({:.1} messages a page)",
        p50_p99(&mut t_messages),
        seen_messages as f64 / history.requests.max(1) as f64
    );
    Ok(())
}

fn p50_p99(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort();
    let at = |p: f64| {
        let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1000.0
    };
    format!("{:.2} / {:.2} / {:.2} ms", at(0.50), at(0.99), at(1.0))
}
