//! One outbox worker per session. It sends the session's pending messages,
//! oldest first, while the session is `working`, and records what WhatsApp
//! reports back. Each message's WhatsApp id was chosen when it was
//! accepted, so every attempt (after a dropped connection, a missing ack,
//! a crash) sends the same id and the phone shows it once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use whatsapp_rust::Jid;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::waproto::whatsapp as wa;

use super::pacing::{Pacer, PacingPolicy};
use super::prepare::{self, PrepareError};
use crate::domain::{Failure, FailureReason, MessageId, MessageStatus, SessionId, SessionPace};
use crate::events::Envelope;
use crate::hub::EventHub;
use crate::messages::MediaFetcher;
use crate::session::engine::Delivery;
use crate::session::messenger::{Messenger, SendFailure};
use crate::session::working::Working;
use crate::store::{OutboxItem, Store, StoreError};

/// Messages fetched per pass.
const BATCH: u32 = 64;
/// How often unsent messages are checked for expiry.
const EXPIRY_CHECK: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct OutboxPolicy {
    /// A message still unsent this long after it was accepted fails as
    /// `expired`.
    pub expiry: Duration,
    /// How long a sent message waits for the server's ack before it is
    /// sent again (same id).
    pub ack_timeout: Duration,
    /// First retry delay after a transient failure; doubles per attempt.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// The largest media download.
    pub media_limit_bytes: usize,
    /// The gateway's send pace; each session may override it.
    pub pacing: PacingPolicy,
    /// Which addresses media URLs may point at.
    pub egress: crate::egress::EgressPolicy,
}

impl Default for OutboxPolicy {
    fn default() -> Self {
        Self {
            expiry: Duration::from_secs(24 * 3600),
            ack_timeout: Duration::from_secs(30),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            media_limit_bytes: 16 * 1024 * 1024,
            pacing: PacingPolicy::default(),
            egress: crate::egress::EgressPolicy::default(),
        }
    }
}

impl OutboxPolicy {
    fn retry_delay(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
        self.retry_base.saturating_mul(factor).min(self.retry_max)
    }
}

/// What the worker is woken by, besides time.
pub(crate) struct OutboxInputs {
    pub working: watch::Receiver<Working>,
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
    /// Notified when a message is accepted.
    pub wake: Arc<Notify>,
    /// The session's own send pace, changed by `PATCH /sessions/{id}`.
    pub pace: watch::Receiver<SessionPace>,
}

pub(crate) struct OutboxWorker {
    session: SessionId,
    store: Arc<dyn Store>,
    hub: EventHub,
    policy: OutboxPolicy,
    inputs: OutboxInputs,
    pacer: Pacer,
    /// Downloads `url` media; `None` if no HTTP client could be made.
    fetcher: Option<Arc<MediaFetcher>>,
    /// Sent on the current connection and not yet acked, by WhatsApp id:
    /// the message and its attempts so far.
    in_flight: HashMap<String, (MessageId, u32)>,
    /// Chats this session has sent to (a chat never leaves this set).
    known_chats: HashSet<String>,
    next_expiry_check: Instant,
    cancel: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OutboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OutboxWorker {
    pub(crate) fn new(
        session: SessionId,
        store: Arc<dyn Store>,
        hub: EventHub,
        policy: OutboxPolicy,
        fetcher: Option<Arc<MediaFetcher>>,
        inputs: OutboxInputs,
        cancel: CancellationToken,
    ) -> Self {
        let pace = *inputs.pace.borrow();
        Self {
            session,
            store,
            hub,
            fetcher,
            pacer: Pacer::new(policy.pacing.for_session(pace)),
            policy,
            inputs,
            in_flight: HashMap::new(),
            known_chats: HashSet::new(),
            next_expiry_check: Instant::now(),
            cancel,
        }
    }

    #[tracing::instrument(name = "outbox", skip_all, fields(session_id = %self.session))]
    pub(crate) async fn run(mut self) {
        // Sent before a crash but never acked: due again at once (same ids,
        // so the phone still shows each once).
        match self
            .store
            .messages()
            .requeue(self.session, Utc::now())
            .await
        {
            Ok(0) => {}
            Ok(requeued) => tracing::info!(requeued, "resending messages left unacknowledged"),
            Err(error) => tracing::error!(%error, "could not requeue unacknowledged messages"),
        }
        let mut next_wake: Option<Instant> = Some(Instant::now());
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return,
                delivery = self.inputs.deliveries.recv() => match delivery {
                    Some(delivery) => {
                        if let Err(error) = self.on_delivery(delivery).await {
                            tracing::error!(%error, "could not record a delivery report");
                        }
                        // Drain what else arrived, so a burst of acks is
                        // recorded before the next pass.
                        continue;
                    }
                    None => return,
                },
                changed = self.inputs.working.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let lost = self.inputs.working.borrow().is_none();
                    if lost && let Err(error) = self.on_connection_lost().await {
                        tracing::error!(%error, "could not requeue in-flight messages");
                    }
                }
                changed = self.inputs.pace.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let pace = *self.inputs.pace.borrow_and_update();
                    self.pacer.set_policy(self.policy.pacing.for_session(pace));
                }
                () = self.inputs.wake.notified() => {}
                () = wait_until(next_wake) => {}
            }
            next_wake = match self.process().await {
                Ok(next) => next,
                Err(error) => {
                    tracing::error!(%error, "outbox pass failed; retrying shortly");
                    Some(Instant::now() + self.policy.retry_base)
                }
            };
        }
    }

    /// One pass: expires what is too old, then sends what is due while the
    /// session is working and pacing allows. Returns when to look again.
    pub(crate) async fn process(&mut self) -> Result<Option<Instant>, OutboxError> {
        let now = Utc::now();
        // Expiry is measured in hours: looking once a minute is plenty, and
        // spares every pass a write transaction.
        if self.next_expiry_check <= Instant::now() {
            self.next_expiry_check = Instant::now() + EXPIRY_CHECK;
            let expiry = to_chrono(self.policy.expiry);
            for event in self
                .store
                .messages()
                .expire(self.session, now - expiry)
                .await?
            {
                self.hub.publish(event);
            }
        }
        let Some(messenger) = self.messenger() else {
            // Not working: messages wait; a connection change wakes us.
            return Ok(None);
        };
        let due = self.store.messages().due(self.session, now, BATCH).await?;
        let full_batch = due.len() == BATCH as usize;
        // A chat whose earlier message could not go out now holds its
        // later ones back: order per chat is kept.
        let mut held: HashSet<String> = HashSet::new();
        for item in due {
            if self.in_flight.contains_key(&item.message.wa_id) || held.contains(&item.message.chat)
            {
                continue;
            }
            let new_chat = self.is_new_chat(&item.message.chat).await?;
            let ready = self.pacer.ready_at(new_chat);
            if ready > Instant::now() {
                return Ok(Some(ready));
            }
            let chat = item.message.chat.clone();
            if !self.attempt(messenger.as_ref(), item, new_chat).await? {
                held.insert(chat);
            }
        }
        if full_batch {
            return Ok(Some(Instant::now()));
        }
        let next = self.store.messages().next_due(self.session).await?;
        Ok(next.map(|at| {
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            Instant::now() + wait
        }))
    }

    fn messenger(&self) -> Option<Arc<dyn Messenger>> {
        self.inputs
            .working
            .borrow()
            .as_ref()
            .and_then(|link| link.messenger())
    }

    async fn is_new_chat(&mut self, chat: &str) -> Result<bool, StoreError> {
        if self.known_chats.contains(chat) {
            return Ok(false);
        }
        let known = self
            .store
            .messages()
            .has_sent_to(self.session, chat)
            .await?;
        if known {
            self.known_chats.insert(chat.to_string());
        }
        Ok(!known)
    }

    /// Sends one message; returns whether its chat may go on.
    async fn attempt(
        &mut self,
        messenger: &dyn Messenger,
        item: OutboxItem,
        new_chat: bool,
    ) -> Result<bool, StoreError> {
        let id = item.message.id;
        let attempts = item.attempts.saturating_add(1);
        let message = match self.wire(&item, messenger).await? {
            Ok(message) => message,
            Err(PrepareError::Fail(failure)) => {
                self.fail(id, failure).await?;
                return Ok(true);
            }
            Err(PrepareError::Retry(reason)) => {
                self.retry_later(id, attempts, &reason).await?;
                return Ok(false);
            }
        };
        let Ok(chat) = item.message.chat.parse::<Jid>() else {
            self.fail(id, Failure::new(FailureReason::Invalid)).await?;
            return Ok(true);
        };
        let sent = messenger.send(&chat, &item.message.wa_id, message).await;
        match sent {
            Ok(()) => {
                self.pacer.sent(new_chat, Instant::now());
                self.in_flight
                    .insert(item.message.wa_id.clone(), (id, attempts));
                self.known_chats.insert(item.message.chat.clone());
                // Due again only if no ack comes in time: then it is sent
                // again under the same id.
                let again = Utc::now() + to_chrono(self.policy.ack_timeout);
                self.store
                    .messages()
                    .record_attempt(id, attempts, again)
                    .await?;
                Ok(true)
            }
            Err(SendFailure::Transient(reason)) => {
                self.retry_later(id, attempts, &reason).await?;
                Ok(false)
            }
            Err(SendFailure::Invalid(reason)) => {
                tracing::warn!(message_id = %id, %reason, "WhatsApp cannot send this message");
                self.fail(id, Failure::new(FailureReason::Invalid)).await?;
                Ok(true)
            }
        }
    }

    async fn retry_later(
        &self,
        id: MessageId,
        attempts: u32,
        reason: &str,
    ) -> Result<(), StoreError> {
        tracing::warn!(message_id = %id, attempts, %reason, "send failed, will retry");
        let again = Utc::now() + to_chrono(self.policy.retry_delay(attempts));
        self.store
            .messages()
            .record_attempt(id, attempts, again)
            .await
    }

    /// The message to put on the wire: built once, stored, then reused by
    /// every attempt so a resend is byte-for-byte the same message.
    async fn wire(
        &self,
        item: &OutboxItem,
        messenger: &dyn Messenger,
    ) -> Result<Result<wa::Message, PrepareError>, StoreError> {
        if let Some(wire) = &item.wire {
            return Ok(wa::Message::decode(&mut wire.as_slice())
                .map_err(|_| PrepareError::Fail(Failure::new(FailureReason::Invalid))));
        }
        match prepare::prepare(item, messenger, self.fetcher.as_deref()).await {
            Ok(message) => {
                self.store
                    .messages()
                    .set_wire(item.message.id, &message.encode_to_vec())
                    .await?;
                Ok(Ok(message))
            }
            Err(error) => Ok(Err(error)),
        }
    }

    async fn fail(&self, id: MessageId, failure: Failure) -> Result<(), StoreError> {
        for event in self
            .store
            .messages()
            .advance(self.session, id, MessageStatus::Failed, Some(failure))
            .await?
        {
            self.hub.publish(event);
        }
        Ok(())
    }

    /// Records an ack or receipt and publishes its events.
    pub(crate) async fn on_delivery(&mut self, delivery: Delivery) -> Result<(), StoreError> {
        let events: Vec<Envelope> = match delivery {
            Delivery::ServerAck { wa_id, error } => {
                self.in_flight.remove(&wa_id);
                let (status, failure) = match error {
                    None => (MessageStatus::Sent, None),
                    Some(code) => (MessageStatus::Failed, Some(Failure::rejected(code))),
                };
                self.store
                    .messages()
                    .advance_by_wa_ids(self.session, &[wa_id], status, failure)
                    .await?
            }
            Delivery::Receipt { wa_ids, status } => {
                for wa_id in &wa_ids {
                    self.in_flight.remove(wa_id);
                }
                self.store
                    .messages()
                    .advance_by_wa_ids(self.session, &wa_ids, status, None)
                    .await?
            }
        };
        for event in events {
            self.hub.publish(event);
        }
        Ok(())
    }

    /// What was in flight on a lost connection may never have reached the
    /// server: it becomes due at once, to be sent again (same ids) when the
    /// session is back.
    async fn on_connection_lost(&mut self) -> Result<(), StoreError> {
        let now = Utc::now();
        for (_, (id, attempts)) in self.in_flight.drain() {
            self.store
                .messages()
                .record_attempt(id, attempts, now)
                .await?;
        }
        Ok(())
    }
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

async fn wait_until(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
