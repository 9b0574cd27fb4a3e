//! Events between nodes: each committed event published here goes out on
//! `wagate.events.<org>.<session>`, and every other node's hub delivers
//! it to its own realtime sockets. Best effort by design: a socket that
//! may have missed some (NATS was down) reads them from the event log.

use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::events::Envelope;
use crate::hub::{EventHub, Published, Relay};

/// The header naming the node that published an event (it skips its own).
const NODE_HEADER: &str = "Wagate-Node";
/// Events waiting to go out on NATS; past that (NATS far behind or down
/// for long) they are dropped here, and the other nodes' sockets get them
/// from the log after the reconnect.
const QUEUE: usize = 65_536;

fn subject(envelope: &Envelope) -> String {
    format!("wagate.events.{}.{}", envelope.org_id, envelope.session_id)
}

/// Hands the hub's events to a task that publishes them.
struct Outgoing {
    queue: mpsc::Sender<(String, Arc<str>)>,
}

impl Relay for Outgoing {
    fn relay(&self, published: &Published) {
        let item = (subject(&published.envelope), Arc::clone(&published.json));
        if self.queue.try_send(item).is_err() {
            tracing::warn!("the event relay to other nodes is full; an event goes by the log only");
        }
    }
}

/// This node's end of the events between nodes.
pub(super) struct EventLink {
    client: async_nats::Client,
    node: String,
    hub: EventHub,
    subscriber: async_nats::Subscriber,
    outgoing: mpsc::Receiver<(String, Arc<str>)>,
}

/// Makes the hub relay its events, and subscribes to the other nodes'.
pub(super) async fn link(
    client: &async_nats::Client,
    node: &str,
    hub: &EventHub,
) -> anyhow::Result<EventLink> {
    let subscriber = client
        .subscribe("wagate.events.>")
        .await
        .context("subscribing to the other nodes' events")?;
    let (queue, outgoing) = mpsc::channel(QUEUE);
    hub.relay_to(Arc::new(Outgoing { queue }));
    Ok(EventLink {
        client: client.clone(),
        node: node.to_string(),
        hub: hub.clone(),
        subscriber,
        outgoing,
    })
}

impl EventLink {
    /// Publishes this node's events and delivers the others' until the
    /// subscription ends (an error: the gateway stops).
    pub(super) async fn run(self) -> anyhow::Result<()> {
        let Self {
            client,
            node,
            hub,
            mut subscriber,
            mut outgoing,
        } = self;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(NODE_HEADER, node.as_str());
        loop {
            tokio::select! {
                out = outgoing.recv() => {
                    let Some((subject, json)) = out else {
                        anyhow::bail!("the event relay's queue closed");
                    };
                    let body = bytes::Bytes::copy_from_slice(json.as_bytes());
                    if let Err(error) = client.publish_with_headers(subject, headers.clone(), body).await {
                        tracing::warn!(%error, "could not relay an event to the other nodes");
                    }
                }
                message = subscriber.next() => {
                    let Some(message) = message else {
                        anyhow::bail!("the NATS subscription to events ended");
                    };
                    let from = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(NODE_HEADER))
                        .map(|v| v.as_str().to_string());
                    if from.as_deref() == Some(node.as_str()) {
                        continue;
                    }
                    let Ok(json) = std::str::from_utf8(&message.payload) else {
                        tracing::warn!("an event from another node is not text");
                        continue;
                    };
                    match serde_json::from_str::<Envelope>(json) {
                        Ok(envelope) => hub.publish_relayed(envelope, json.into()),
                        Err(error) => tracing::warn!(%error, "an event from another node could not be read"),
                    }
                }
            }
        }
    }
}
