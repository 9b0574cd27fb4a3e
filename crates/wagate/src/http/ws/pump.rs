//! Forwarding events to one open socket: pings, revocation, shutdown, and
//! a client that falls behind.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, close_code};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::CLOSE_TOKEN_REVOKED;
use super::replay::{Backlog, Replay, resubscribe_from};
use crate::domain::{EventId, TokenHash};
use crate::http::auth::still_valid;
use crate::hub::{Closed, Subscription};
use crate::store::Store;

/// The credential a socket was opened with, checked again whenever a token
/// is revoked in this process and at every ping (a revocation made by
/// another process on the same database).
pub(crate) struct Access {
    pub store: Arc<dyn Store>,
    pub token: TokenHash,
    pub revocations: tokio::sync::watch::Receiver<u64>,
}

/// What ends a [`pump`] besides the client: the gateway shutting down, and
/// the socket's token being revoked.
pub(crate) struct Until {
    pub shutdown: CancellationToken,
    pub access: Option<Access>,
}

impl From<CancellationToken> for Until {
    fn from(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            access: None,
        }
    }
}

impl Access {
    /// Whether the token is still live. A store that cannot answer keeps
    /// the socket open: the next check asks again.
    async fn revoked(&self) -> bool {
        match still_valid(self.store.as_ref(), &self.token).await {
            Ok(valid) => !valid,
            Err(error) => {
                tracing::warn!(%error, "could not check a realtime socket's token");
                false
            }
        }
    }
}

/// Waits until a token is revoked in this process; never, without access.
async fn revocation(access: &mut Option<Access>) {
    match access {
        Some(access) => {
            if access.revocations.changed().await.is_err() {
                // The state (and its sender) is gone: shutdown closes us.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Forwards events to one client until it leaves, stops answering pings,
/// its token is revoked, or the gateway shuts down; skips events up to and including
/// `replayed_through` (sent from the log already). A client that falls
/// behind is served from the log through `backlog`, or without one cut
/// off. Generic over the socket halves so tests can drive it with
/// channels.
pub(crate) async fn pump<S, R>(
    mut sink: S,
    mut stream: R,
    mut subscription: Subscription,
    ping_every: Duration,
    until: impl Into<Until>,
    mut replayed_through: Option<EventId>,
    backlog: Option<Backlog>,
) where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let Until {
        shutdown,
        mut access,
    } = until.into();
    const REVOKED: (u16, &str) = (CLOSE_TOKEN_REVOKED, "token revoked");
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    // Where a catch-up from the log starts if this client falls behind.
    let mut last_sent = replayed_through;
    let mut awaiting_pong = false;
    let close = loop {
        tokio::select! {
            event = subscription.recv() => match event {
                Ok(event) if replayed_through.is_some_and(|last| event.envelope.id <= last) => {}
                Ok(event) => {
                    if sink.send(Message::Text(event.json.as_ref().into())).await.is_err() {
                        return;
                    }
                    last_sent = last_sent.max(Some(event.envelope.id));
                }
                Err(Closed::SlowConsumer) => {
                    let (Some(backlog), Some(from)) = (&backlog, last_sent) else {
                        break (close_code::POLICY, "slow consumer: events were not read fast enough");
                    };
                    match resubscribe_from(
                        &mut sink,
                        backlog.store.as_ref(),
                        &backlog.hub,
                        backlog.org,
                        from,
                        &backlog.filter,
                    )
                    .await
                    {
                        Ok((fresh, cursor)) => {
                            subscription = fresh;
                            replayed_through = Some(cursor);
                            last_sent = Some(cursor);
                        }
                        Err(Replay::Refused(code, reason)) => break (code, reason),
                        Err(Replay::Gone) => return,
                    }
                }
                Err(Closed::HubClosed) => break (close_code::AWAY, "server shutting down"),
            },
            _ = ping.tick() => {
                if awaiting_pong {
                    break (close_code::POLICY, "no pong received");
                }
                if let Some(access) = &access
                    && access.revoked().await
                {
                    break REVOKED;
                }
                awaiting_pong = true;
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            message = stream.next() => match message {
                Some(Ok(Message::Pong(_))) => awaiting_pong = false,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                // Clients have nothing to say on this channel.
                Some(Ok(_)) => {}
            },
            () = revocation(&mut access) => {
                if let Some(access) = &access
                    && access.revoked().await
                {
                    break REVOKED;
                }
            }
            () = shutdown.cancelled() => break (close_code::AWAY, "server shutting down"),
        }
    };
    let (code, reason) = close;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}
