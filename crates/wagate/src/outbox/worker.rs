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
    /// Where the next pass reads from: after the last message it handled,
    /// or (`None`) from the oldest pending one, once something before the
    /// cursor may be due again (a retry, an ack that never came, a lost
    /// connection, a chat held back). Passes that only follow new accepts
    /// then never read again what is in flight or already handled, so a
    /// backlog of 10,000 costs per message what one of 10 does.
    cursor: Option<MessageId>,
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
            cursor: None,
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
        // The next pass goes on from the cursor (a full batch was read, or a
        // message was accepted) rather than from the oldest pending message
        // (a retry or an ack's deadline came due).
        let mut continuing = false;
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return,
                delivery = self.inputs.deliveries.recv() => match delivery {
                    Some(delivery) => {
                        // Everything that arrived with it, recorded together
                        // (acks and receipts of a burst share one commit).
                        let mut deliveries = vec![delivery];
                        while let Ok(more) = self.inputs.deliveries.try_recv() {
                            deliveries.push(more);
                        }
                        if let Err(error) = self.on_deliveries(deliveries).await {
                            tracing::error!(%error, "could not record a delivery report");
                        }
                        // Before the next pass: what else arrived first.
                        continue;
                    }
                    None => return,
                },
                changed = self.inputs.working.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.cursor = None;
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
                () = wait_until(next_wake) => {
                    if !continuing {
                        self.cursor = None;
                    }
                }
            }
            (next_wake, continuing) = match self.process().await {
                Ok(Pass::Continue) => (Some(Instant::now()), true),
                Ok(Pass::Wait(at)) => (at, false),
                Err(error) => {
                    tracing::error!(%error, "outbox pass failed; retrying shortly");
                    (Some(Instant::now() + self.policy.retry_base), false)
                }
            };
        }
    }

    /// One pass: expires what is too old, then sends what is due while the
    /// session is working and pacing allows, up to a batch: the wire forms
    /// it lacks built and stored first (one commit for the batch), then
    /// every message sent in order, then the attempts recorded (one commit
    /// again), so a session keeps sending while earlier messages wait for
    /// their acks.
    pub(crate) async fn process(&mut self) -> Result<Pass, OutboxError> {
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
            return Ok(Pass::Wait(None));
        };
        // Paced, a session sends one message at a time anyway.
        let limit = if self.pacer.is_off() { BATCH } else { 1 };
        let due = self
            .store
            .messages()
            .due(self.session, now, self.cursor, limit)
            .await?;
        let full_batch = due.len() == limit as usize;
        // A chat whose earlier message could not go out now holds its
        // later ones back: order per chat is kept.
        let mut held: HashSet<String> = HashSet::new();
        let mut ready = Vec::with_capacity(due.len());
        let mut wires = Vec::new();
        for item in due {
            if self.in_flight.contains_key(&item.message.wa_id) {
                continue;
            }
            if held.contains(&item.message.chat) {
                // Due, and passed over: the next pass starts from the oldest.
                continue;
            }
            match self.wire(&item, messenger.as_ref()).await {
                Ok((message, built)) => {
                    if built {
                        wires.push((item.message.id, message.encode_to_vec()));
                    }
                    ready.push((item, message));
                }
                Err(PrepareError::Fail(failure)) => self.fail(item.message.id, failure).await?,
                Err(PrepareError::Retry(reason)) => {
                    let attempts = item.attempts.saturating_add(1);
                    self.retry_later(item.message.id, attempts, &reason).await?;
                    held.insert(item.message.chat.clone());
                }
            }
        }
        // Stored before any of them goes out, so every attempt sends the
        // same bytes.
        let store = Arc::clone(&self.store);
        let messages = store.messages();
        let session = self.session;
        futures::future::try_join_all(
            wires
                .iter()
                .map(|(id, wire)| messages.set_wire(session, *id, wire)),
        )
        .await?;
        let mut attempts = Vec::with_capacity(ready.len());
        let mut wait = None;
        for (item, message) in ready {
            if held.contains(&item.message.chat) {
                continue;
            }
            let new_chat = self.is_new_chat(&item.message.chat).await?;
            let at = self.pacer.ready_at(new_chat);
            if at > Instant::now() {
                wait = Some(at);
                break;
            }
            let chat = item.message.chat.clone();
            match self
                .attempt(messenger.as_ref(), &item, message, new_chat)
                .await?
            {
                Attempted::Sent(next) => attempts.push(next),
                Attempted::Done => {}
                Attempted::Held => {
                    held.insert(chat);
                }
            }
            self.cursor = Some(item.message.id);
        }
        // Due again only if no ack comes in time: then sent again under the
        // same id.
        futures::future::try_join_all(
            attempts.iter().map(|(id, attempts, again)| {
                messages.record_attempt(session, *id, *attempts, *again)
            }),
        )
        .await?;
        if !held.is_empty() {
            self.cursor = None;
        }
        if let Some(at) = wait {
            return Ok(Pass::Wait(Some(at)));
        }
        if full_batch {
            return Ok(Pass::Continue);
        }
        let next = messages.next_due(self.session).await?;
        Ok(Pass::Wait(next.map(|at| {
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            Instant::now() + wait
        })))
    }

    fn messenger(&self) -> Option<Arc<dyn Messenger>> {
        self.inputs
            .working
            .borrow()
            .as_ref()
            .and_then(|link| link.messenger())
    }

    async fn is_new_chat(&mut self, chat: &str) -> Result<bool, StoreError> {
        // Unpaced, a new chat has no budget of its own to look up.
        if self.pacer.is_off() || self.known_chats.contains(chat) {
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

    /// Sends one message whose wire form is ready.
    async fn attempt(
        &mut self,
        messenger: &dyn Messenger,
        item: &OutboxItem,
        message: wa::Message,
        new_chat: bool,
    ) -> Result<Attempted, StoreError> {
        let id = item.message.id;
        let attempts = item.attempts.saturating_add(1);
        let Ok(chat) = item.message.chat.parse::<Jid>() else {
            self.fail(id, Failure::new(FailureReason::Invalid)).await?;
            return Ok(Attempted::Done);
        };
        match messenger.send(&chat, &item.message.wa_id, message).await {
            Ok(()) => {
                self.pacer.sent(new_chat, Instant::now());
                self.in_flight
                    .insert(item.message.wa_id.clone(), (id, attempts));
                self.known_chats.insert(item.message.chat.clone());
                let again = Utc::now() + to_chrono(self.policy.ack_timeout);
                Ok(Attempted::Sent((id, attempts, again)))
            }
            Err(SendFailure::Transient(reason)) => {
                self.retry_later(id, attempts, &reason).await?;
                Ok(Attempted::Held)
            }
            Err(failure @ SendFailure::OwnerUnreachable) => {
                self.retry_later(id, attempts, &failure.to_string()).await?;
                Ok(Attempted::Held)
            }
            Err(SendFailure::Invalid(reason)) => {
                tracing::warn!(message_id = %id, %reason, "WhatsApp cannot send this message");
                self.fail(id, Failure::new(FailureReason::Invalid)).await?;
                Ok(Attempted::Done)
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
            .record_attempt(self.session, id, attempts, again)
            .await
    }

    /// The message to put on the wire, and whether it was built just now
    /// (then the caller stores it before sending): built once, then
    /// reused by every attempt so a resend is byte-for-byte the same
    /// message.
    async fn wire(
        &self,
        item: &OutboxItem,
        messenger: &dyn Messenger,
    ) -> Result<(wa::Message, bool), PrepareError> {
        if let Some(wire) = &item.wire {
            return wa::Message::decode(&mut wire.as_slice())
                .map(|message| (message, false))
                .map_err(|_| PrepareError::Fail(Failure::new(FailureReason::Invalid)));
        }
        prepare::prepare(item, messenger, self.fetcher.as_deref())
            .await
            .map(|message| (message, true))
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

    /// Records acks and receipts and publishes their events. Written all
    /// at once (they share the store writer's next commit), published in
    /// the order they came.
    async fn on_deliveries(&mut self, deliveries: Vec<Delivery>) -> Result<(), StoreError> {
        let mut advances = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match delivery {
                Delivery::ServerAck { wa_id, error } => {
                    self.in_flight.remove(&wa_id);
                    let (status, failure) = match error {
                        None => (MessageStatus::Sent, None),
                        Some(code) => (MessageStatus::Failed, Some(Failure::rejected(code))),
                    };
                    advances.push((vec![wa_id], status, failure));
                }
                Delivery::Receipt { wa_ids, status } => {
                    for wa_id in &wa_ids {
                        self.in_flight.remove(wa_id);
                    }
                    advances.push((wa_ids, status, None));
                }
            }
        }
        let messages = self.store.messages();
        let session = self.session;
        let written = futures::future::join_all(advances.into_iter().map(
            |(wa_ids, status, failure)| async move {
                messages
                    .advance_by_wa_ids(session, &wa_ids, status, failure)
                    .await
            },
        ))
        .await;
        let mut failed = None;
        for result in written {
            match result {
                Ok(events) => {
                    for event in events {
                        self.hub.publish(event);
                    }
                }
                Err(error) => failed = Some(error),
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// What was in flight on a lost connection may never have reached the
    /// server: it becomes due at once, to be sent again (same ids) when the
    /// session is back.
    async fn on_connection_lost(&mut self) -> Result<(), StoreError> {
        let now = Utc::now();
        for (_, (id, attempts)) in self.in_flight.drain() {
            self.store
                .messages()
                .record_attempt(self.session, id, attempts, now)
                .await?;
        }
        Ok(())
    }
}

/// What a pass asks of the loop.
pub(crate) enum Pass {
    /// A full batch was read: go on from the cursor at once.
    Continue,
    /// Look again at this time (`None`: when woken).
    Wait(Option<Instant>),
}

/// How one attempt went.
enum Attempted {
    /// On the wire, in flight: its record (id, attempts, due again at).
    Sent((MessageId, u32, chrono::DateTime<Utc>)),
    /// Failed for good, recorded.
    Done,
    /// Will be tried again later: its chat waits.
    Held,
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
