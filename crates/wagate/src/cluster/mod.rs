//! One node of several (`--nats`): the NATS link between the nodes that
//! serve one PostgreSQL database. PostgreSQL holds the state and who owns
//! each session (`store/leases.rs`, `session/leases.rs`); NATS carries
//! what must reach another node now:
//!
//! - calls for a session's owner (`wagate.node.<node>.cmd`, request and
//!   reply; [`peers`]), answered here by the manager;
//! - "sessions wait for an owner" (`wagate.placement`), which wakes every
//!   node's lease keeper;
//! - every event after its commit (`wagate.events.<org>.<session>`;
//!   [`events`]), into every other node's hub. The event log stays the
//!   truth: after a lost NATS connection each realtime socket reads what
//!   it missed from the log.
//!
//! Nothing here is needed for a process alone, which never connects.

mod events;
mod peers;

use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::hub::EventHub;
use crate::session::leases::KeeperHandle;
use crate::session::manager::SessionManager;
use crate::session::remote::Request;

pub(crate) use self::peers::NatsPeers;

/// The subject wakes for sessions without an owner go to.
const PLACEMENT: &str = "wagate.placement";

/// The subject a node answers calls on. A node id is any text, a subject
/// token is not (no dots, spaces or wildcards): one outside the safe set
/// travels hex-encoded.
fn command_subject(node: &str) -> String {
    let safe = !node.is_empty()
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if safe {
        format!("wagate.node.{node}.cmd")
    } else {
        format!("wagate.node.x{}.cmd", hex::encode(node))
    }
}

/// Connects to NATS. Starts even when the server is not there yet: the
/// client keeps trying, and meanwhile calls to other nodes answer 503 and
/// this node's sessions run on. Every reconnect makes the hub's sockets
/// read what they may have missed from the event log.
pub(crate) async fn connect(
    url: &str,
    node: &str,
    hub: EventHub,
) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name(format!("wagate {node}"))
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let hub = hub.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("connected to NATS");
                        hub.resync();
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!("lost the connection to NATS; reconnecting");
                    }
                    other => tracing::info!(event = %other, "NATS"),
                }
            }
        })
        .connect(url)
        .await
        .context("connecting to NATS")
}

/// This node's half of the cluster: answers the calls other nodes send
/// for the sessions it runs, wakes its keeper when sessions wait for an
/// owner, and hands the other nodes' events to its hub. Runs until
/// `cancel`; a subscription that ends (the client closed) is an error, so
/// the gateway stops.
pub(crate) async fn serve(
    client: async_nats::Client,
    node: String,
    sessions: SessionManager,
    keeper: KeeperHandle,
    hub: EventHub,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut calls = client
        .subscribe(command_subject(&node))
        .await
        .context("subscribing to this node's calls")?;
    let mut placement = client
        .subscribe(PLACEMENT)
        .await
        .context("subscribing to placement")?;
    let relaying = events::link(&client, &node, &hub).await?.run();
    tokio::pin!(relaying);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            ended = &mut relaying => return ended,
            message = calls.next() => {
                let Some(message) = message else {
                    anyhow::bail!("the NATS subscription to this node's calls ended");
                };
                // Each call on its own: a pairing code waits on WhatsApp.
                tokio::spawn(answer(client.clone(), sessions.clone(), message));
            }
            wake = placement.next() => {
                if wake.is_none() {
                    anyhow::bail!("the NATS subscription to placement ended");
                }
                keeper.wake();
            }
        }
    }
}

async fn answer(
    client: async_nats::Client,
    sessions: SessionManager,
    message: async_nats::Message,
) {
    let request: Request = match serde_json::from_slice(&message.payload) {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%error, "a call from another node could not be read");
            return;
        }
    };
    let answer = sessions.answer(request).await;
    let Some(reply) = message.reply else {
        return;
    };
    match serde_json::to_vec(&answer) {
        Ok(body) => {
            if let Err(error) = client.publish(reply, body.into()).await {
                tracing::warn!(%error, "could not answer another node's call");
            }
        }
        Err(error) => tracing::error!(%error, "could not write an answer to another node"),
    }
}

/// Tells the other nodes, as this one stops, that the sessions it released
/// wait for an owner.
pub(crate) struct Released(async_nats::Client);

impl Released {
    pub(crate) fn new(client: &async_nats::Client) -> Self {
        Self(client.clone())
    }

    pub(crate) async fn announce(self) {
        let sent = async {
            self.0.publish(PLACEMENT, "".into()).await?;
            // Out before the process ends.
            self.0.flush().await?;
            anyhow::Ok(())
        };
        match tokio::time::timeout(std::time::Duration::from_secs(2), sent).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not tell the other nodes this one left")
            }
            Err(_) => tracing::warn!("NATS did not take the notice that this node left in time"),
        }
    }
}

/// Builds what the manager sends calls through.
pub(crate) fn peers(client: &async_nats::Client) -> Arc<NatsPeers> {
    Arc::new(NatsPeers::new(client.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_make_valid_distinct_subjects() {
        assert_eq!(command_subject("node-a_1"), "wagate.node.node-a_1.cmd");
        let odd = command_subject("host.example/data dir");
        assert!(odd.starts_with("wagate.node.x"));
        assert!(!odd.contains(' '));
        assert_eq!(odd.matches('.').count(), 3);
        assert_ne!(command_subject("a.b"), command_subject("a_b"));
    }
}
