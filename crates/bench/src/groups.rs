//! The `groups` scenario (issue 23): a session in many groups, and a text
//! to a big one.
//!
//! 1. Links one session, then a simulated phone creates `--groups` groups
//!    with the session's number in each (the simulator's admin API); waits
//!    until the realtime socket has said `group.joined` for each, so the
//!    gateway has stored them all.
//! 2. Checks `GET /sessions/{id}/groups` lists them all, then times
//!    `--requests` requests, one at a time, of the list's first page (100)
//!    and of the whole list (every page of 100, one after another): served
//!    from the gateway's store.
//! 3. The session creates a group of `--members` (itself included) through
//!    the API, then sends `--sends` texts into it one at a time, each timed
//!    from the request to its ack (`message.status` `sent`). The first
//!    carries the sender key to every member's device; the simulator
//!    counts those pairwise copies, which may grow after it only by the
//!    session's own devices (whatsapp-rust gives them the key with every
//!    text), never by the group again.

use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::link::{link_one, session_phone};
use crate::send::p3;
use crate::{Args, Stack};

#[derive(clap::Args)]
pub(crate) struct GroupsArgs {
    /// Groups the session's number is in.
    #[arg(long, default_value_t = 500)]
    groups: usize,
    /// Members of the group the session sends to, itself included.
    #[arg(long, default_value_t = 256)]
    members: usize,
    /// Timed requests of each list measure.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Texts sent into the big group, one at a time.
    #[arg(long, default_value_t = 10)]
    sends: usize,
}

/// The phone that makes the many groups.
const CREATOR: &str = "15590000000";

/// Member `k` of the big group.
fn member_phone(k: usize) -> String {
    format!("{}", 15_591_000_000u64 + k as u64)
}

async fn sim_post(stack: &Stack, path: &str, body: Value) -> anyhow::Result<Value> {
    let response = stack
        .gw
        .http
        .post(format!("{}{path}", stack.sim_base))
        .json(&body)
        .send()
        .await?;
    crate::gateway::json_of(response, path).await
}

pub(crate) async fn run(_args: &Args, groups: &GroupsArgs, stack: &Stack) -> anyhow::Result<()> {
    if groups.groups == 0 || groups.members < 2 || groups.requests == 0 || groups.sends == 0 {
        bail!("--groups, --requests and --sends must be at least 1, --members at least 2");
    }
    let phone = session_phone(0);
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

    // 1. The many groups, made on the creator's phone, eight at a time.
    sim_post(
        stack,
        &format!("/admin/phones/{CREATOR}/register"),
        json!({}),
    )
    .await?;
    let started = Instant::now();
    let gate = std::sync::Arc::new(Semaphore::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..groups.groups {
        let gate = std::sync::Arc::clone(&gate);
        let http = stack.gw.http.clone();
        let url = format!("{}/admin/groups", stack.sim_base);
        let phone = phone.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let response = http
                .post(&url)
                .json(&json!({
                    "creator": CREATOR,
                    "subject": format!("Bench group {i}"),
                    "participants": [phone],
                }))
                .send()
                .await?;
            crate::gateway::json_of(response, "create a group").await?;
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let want = groups.groups as u64;
    let stored = stack
        .events
        .wait(&id, stack.timeout, |t| {
            (t.groups_joined >= want)
                .then_some(t.groups_joined_last)
                .flatten()
        })
        .await
        .context("the gateway did not report joining every group")?;
    println!(
        "{} groups made on a phone with the session's number in each; all group.joined {:.2} s after the first was asked for",
        groups.groups,
        stored.saturating_duration_since(started).as_secs_f64()
    );

    // 2. The list, from the store.
    let walk = || async {
        let mut listed = 0;
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/sessions/{id}/groups?limit=100&cursor={c}"),
                None => format!("/sessions/{id}/groups?limit=100"),
            };
            let page = stack.gw.get(&path).await?;
            listed += page["data"].as_array().map_or(0, Vec::len);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return anyhow::Ok(listed),
            }
        }
    };
    let listed = walk().await?;
    if listed != groups.groups {
        bail!(
            "the group list holds {listed} groups, not {}",
            groups.groups
        );
    }
    let first = format!("/sessions/{id}/groups?limit=100");
    for _ in 0..20 {
        stack.gw.get(&first).await?;
    }
    let mut t_first = Vec::with_capacity(groups.requests);
    let mut t_all = Vec::with_capacity(groups.requests);
    for _ in 0..groups.requests {
        let at = Instant::now();
        let page = stack.gw.get(&first).await?;
        t_first.push(at.elapsed());
        if page["data"].as_array().is_none_or(Vec::is_empty) {
            bail!("the group list's first page is empty");
        }
        let at = Instant::now();
        walk().await?;
        t_all.push(at.elapsed());
    }
    println!(
        "latency p50 / p95 / p99 / max over {} requests each:",
        groups.requests
    );
    println!(
        "  GET /groups?limit=100 (first page)      {}",
        p3(&mut t_first)
    );
    println!(
        "  all {} groups, {} pages of 100 in turn   {}",
        groups.groups,
        groups.groups.div_ceil(100),
        p3(&mut t_all)
    );

    // 3. A big group, and texts into it.
    let others: Vec<String> = (0..groups.members - 1).map(member_phone).collect();
    for member in &others {
        sim_post(
            stack,
            &format!("/admin/phones/{member}/register"),
            json!({}),
        )
        .await?;
    }
    let at = Instant::now();
    let created = stack
        .gw
        .post(
            &format!("/sessions/{id}/groups"),
            json!({ "subject": "Everyone", "participants": others }),
        )
        .await?;
    let made_in = at.elapsed();
    let big = created["group"]["id"]
        .as_str()
        .context("no group id in the create answer")?
        .to_string();
    let added = created["participants"].as_array().map_or(0, |all| {
        all.iter().filter(|p| p["result"] == "added").count()
    });
    if added != others.len() {
        bail!("{added} of {} members were added", others.len());
    }
    println!(
        "the session made a group of {} members in {:.0} ms",
        groups.members,
        made_in.as_secs_f64() * 1000.0
    );
    let mut acks = Vec::with_capacity(groups.sends);
    let mut shares_after_first = 0;
    let mut shares_by_text = Vec::with_capacity(groups.sends);
    for n in 0..groups.sends {
        let at = Instant::now();
        let reply = stack
            .gw
            .post(
                &format!("/sessions/{id}/messages"),
                json!({ "to": big, "text": { "body": format!("to everyone, {n}") } }),
            )
            .await?;
        let message = reply["id"].as_str().context("no message id")?.to_string();
        let deadline = tokio::time::Instant::now() + stack.timeout;
        if stack
            .events
            .wait_acked(std::slice::from_ref(&message), deadline)
            .await
            > 0
        {
            bail!("text {n} into the big group was not acked");
        }
        let track = stack
            .events
            .message_tracks(std::iter::once(message.as_str()))
            .remove(&message)
            .unwrap_or_default();
        let Some(sent) = track.sent else {
            bail!("text {n} into the big group failed: {:?}", track.failed);
        };
        acks.push(sent.saturating_duration_since(at));
        let shares = sender_key_shares(stack, &big).await?;
        if n == 0 {
            shares_after_first = shares;
        }
        shares_by_text.push(shares);
    }
    // whatsapp-rust sends the key to the account's own devices with every
    // text (it never marks them as holding it, as WhatsApp Web), so the
    // count grows by those; the whole group getting it again would be a
    // redistribution.
    let extra = shares_by_text.last().copied().unwrap_or_default() - shares_after_first;
    if extra >= shares_after_first / 2 {
        bail!(
            "the sender key went out again: {shares_after_first} copies with the first text, {extra} more after (by text: {shares_by_text:?})"
        );
    }
    let first_ack = acks.first().copied().unwrap_or_default();
    println!(
        "a text into the group of {}: acked {:.0} ms after the request the first time (sender key to {shares_after_first} devices), then {} (p50 / p95 / p99 / max over {}); sender keys carried after each text: {shares_by_text:?}",
        groups.members,
        first_ack.as_secs_f64() * 1000.0,
        p3(&mut acks[1..].to_vec()),
        acks.len() - 1
    );
    Ok(())
}

/// How many pairwise copies of a sender key the simulator has carried for
/// the group.
async fn sender_key_shares(stack: &Stack, group: &str) -> anyhow::Result<u64> {
    let response = stack
        .gw
        .http
        .get(format!("{}/admin/groups/{group}", stack.sim_base))
        .send()
        .await?;
    let info = crate::gateway::json_of(response, "group info").await?;
    info["sender_key_shares"]
        .as_u64()
        .context("no sender_key_shares in the group info")
}
