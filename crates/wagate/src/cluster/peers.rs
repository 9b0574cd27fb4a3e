//! The manager's [`Peers`] over NATS request/reply.

use std::time::Duration;

use async_nats::RequestErrorKind;
use async_trait::async_trait;

use super::{PLACEMENT, command_subject};
use crate::session::remote::{Answer, Call, PeerError, Peers, Request};

/// How long a call waits for the owner's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// A pairing code waits on WhatsApp, up to 30 s, on the owner.
const PAIRING_CODE_TIMEOUT: Duration = Duration::from_secs(40);

pub(crate) struct NatsPeers {
    client: async_nats::Client,
}

impl NatsPeers {
    pub(super) fn new(client: async_nats::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Peers for NatsPeers {
    async fn call(&self, node: &str, request: &Request) -> Result<Answer, PeerError> {
        let body = serde_json::to_vec(request).map_err(|e| PeerError::Garbled(e.to_string()))?;
        let timeout = match request.call {
            Call::PairingCode { .. } => PAIRING_CODE_TIMEOUT,
            _ => CALL_TIMEOUT,
        };
        let asked = async_nats::Request::new()
            .payload(body.into())
            .timeout(Some(timeout));
        let message = self
            .client
            .send_request(command_subject(node), asked)
            .await
            .map_err(|error| match error.kind() {
                RequestErrorKind::NoResponders | RequestErrorKind::TimedOut => {
                    PeerError::Unreachable
                }
                _ => {
                    tracing::warn!(%node, %error, "a call to another node failed");
                    PeerError::Unreachable
                }
            })?;
        serde_json::from_slice(&message.payload).map_err(|e| PeerError::Garbled(e.to_string()))
    }

    async fn tell(&self, node: &str, request: &Request) {
        let body = match serde_json::to_vec(request) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, "could not write a notice to another node");
                return;
            }
        };
        if let Err(error) = self
            .client
            .publish(command_subject(node), body.into())
            .await
        {
            // The owner's own periodic pass makes up for it.
            tracing::warn!(%node, %error, "could not notify another node");
        }
    }

    async fn unowned(&self) {
        if let Err(error) = self.client.publish(PLACEMENT, "".into()).await {
            tracing::warn!(%error, "could not tell the other nodes of sessions without an owner");
        }
    }
}
