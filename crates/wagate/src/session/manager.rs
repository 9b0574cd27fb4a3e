//! Owns the session supervisors: spawns one per session, routes API
//! operations to it, resumes sessions at start-up and stops them all on
//! shutdown.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::engine::{ClientMemory, Engine};
use super::leases::OwnedSessions;
use super::messenger::{Messenger, SendFailure};
use super::remote::{Answer, Call, Reply, Request};
use super::status_writer::StatusWriter;
use super::supervisor::{
    Command, CommandError, Expiring, Live, Supervisor, SupervisorDeps, SupervisorPolicy,
};
use super::working::Working;
use crate::domain::{
    ChatChange, HistoryScope, Label, MessageId, OrgId, Phone, PresenceState, SessionBehaviour,
    SessionId, SessionPace, SessionStatus, StatusReason,
};
use crate::hub::EventHub;
use crate::messages::{FetchConfig, MediaFetcher};
use crate::outbox::{OutboxInputs, OutboxPolicy, OutboxWorker};
pub(crate) use routing::ClusterLink;
use wacore::request::RequestUtils;
use whatsapp_rust::Jid;

use crate::store::chats::{ChatChanged, ChatRecord};
use crate::store::{
    Accepted, Held, IdempotencyClaim, MessageQuery, MessageRecord, NewOutgoing, NewSession,
    SessionChanges, SessionPage, SessionQuery, SessionRecord, StatusStep, Store, StoreError,
};
use crate::store::{LidLookup, LidPn};

pub(crate) mod contacts;

/// Commands are handled one at a time; a short queue is plenty.
const COMMAND_QUEUE: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("session not found")]
    NotFound,
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("the session is {0}, so it has no QR code")]
    NoQrCode(SessionStatus),
    #[error("the next QR code is not ready yet")]
    QrNotReady,
    #[error("the session is {0}, so it sends nothing")]
    NotSending(SessionStatus),
    #[error("the session is {0}, not working")]
    NotWorking(SessionStatus),
    #[error("message not found")]
    MessageNotFound,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("WhatsApp: {0}")]
    Upstream(SendFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session runs on another node, which did not answer (`--nats`).
    #[error("the node that runs the session did not answer")]
    OwnerUnreachable,
    /// The node that runs the session failed the call (its store).
    #[error("the node that runs the session failed: {0}")]
    Remote(String),
}

/// A validated message to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The chat's JID.
    pub chat: String,
    pub kind: String,
    pub content: serde_json::Value,
    pub media: Option<Vec<u8>>,
}

struct Handle {
    commands: mpsc::Sender<Command>,
    live: watch::Receiver<Live>,
    working: watch::Receiver<Working>,
    /// Wakes the session's outbox worker when a message is accepted.
    outbox: Arc<Notify>,
    /// The session's own send pace, for its outbox worker.
    pace: watch::Sender<SessionPace>,
    /// Its presence and call settings, for its supervisor.
    behaviour: watch::Sender<SessionBehaviour>,
    /// Stops this session's supervisor and worker alone (they disconnect
    /// and write nothing), as shutdown stops them all.
    cancel: CancellationToken,
    /// Cancelled once its supervisor has ended.
    done: CancellationToken,
}

#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    engine: Arc<dyn Engine>,
    hub: EventHub,
    /// Writes every session's status changes.
    statuses: StatusWriter,
    policy: SupervisorPolicy,
    outbox: OutboxPolicy,
    /// Shared by every session's worker: one HTTP connection pool.
    fetcher: Option<Arc<MediaFetcher>>,
    handles: Mutex<HashMap<SessionId, Handle>>,
    /// Contacts' profile pictures, fetched on request.
    pictures: super::pictures::PictureCache,
    // A tracker rather than a JoinSet: supervisors come and go with their
    // sessions and nobody consumes their results, and a JoinSet would keep
    // every finished one until reaped.
    tasks: TaskTracker,
    cancel: CancellationToken,
    /// Set when this process is one node of several (`--nats`).
    cluster: OnceLock<ClusterLink>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("sessions", &self.inner.handles().len())
            .finish_non_exhaustive()
    }
}

impl Inner {
    // Held only for map operations, never across an await.
    fn handles(&self) -> MutexGuard<'_, HashMap<SessionId, Handle>> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SessionManager {
    pub fn new(
        store: Arc<dyn Store>,
        engine: Arc<dyn Engine>,
        hub: EventHub,
        policy: SupervisorPolicy,
        outbox: OutboxPolicy,
        cancel: CancellationToken,
    ) -> Self {
        let fetcher = match MediaFetcher::new(&FetchConfig {
            max_bytes: outbox.media_limit_bytes,
            egress: outbox.egress,
            ..FetchConfig::default()
        }) {
            Ok(fetcher) => Some(Arc::new(fetcher)),
            Err(error) => {
                // Only `url` media needs it; those messages fail with
                // media_unreachable instead of the gateway not starting.
                tracing::error!(%error, "no HTTP client for media downloads");
                None
            }
        };
        Self {
            inner: Arc::new(Inner {
                statuses: StatusWriter::new(Arc::clone(&store)),
                store,
                engine,
                hub,
                policy,
                outbox,
                fetcher,
                handles: Mutex::default(),
                pictures: super::pictures::PictureCache::default(),
                tasks: TaskTracker::new(),
                cancel,
                cluster: OnceLock::new(),
            }),
        }
    }

    /// Spawns a supervisor for every stored session and restarts the ones
    /// that were meant to be connected when the gateway last stopped.
    pub async fn resume_all(&self) -> Result<usize, StoreError> {
        let mut starts = Vec::new();
        for record in self.inner.store.sessions().all_sessions().await? {
            self.spawn(&record);
            if record.status.is_active() {
                starts.push(record.id);
            }
        }
        // All asked at once, each answering once it has written its
        // `starting`: one after the other, every write queued behind the
        // key writes of the sessions already connecting, and the API (which
        // serves after this) answered only once all were back (10.6 s for
        // 1,000 sessions on SQLite; wagate-bench's restart).
        let resumed = starts.len();
        futures::future::join_all(starts.into_iter().map(|id| self.send(id, Command::Start))).await;
        Ok(resumed)
    }

    pub async fn create(
        &self,
        org: OrgId,
        label: Option<Label>,
        pace: SessionPace,
        history: HistoryScope,
        start: bool,
    ) -> Result<SessionRecord, ManagerError> {
        let record = self
            .inner
            .store
            .sessions()
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org,
                label,
                pace,
                history,
            })
            .await?;
        if let Some(cluster) = self.cluster() {
            // Its owner runs it: this node if it has room.
            self.place(cluster, record.id).await;
        } else {
            self.spawn(&record);
        }
        if start {
            self.perform(org, record.id, Call::Start).await?;
        }
        self.get(org, record.id).await
    }

    pub async fn get(&self, org: OrgId, id: SessionId) -> Result<SessionRecord, ManagerError> {
        self.inner
            .store
            .sessions()
            .get_session(org, id)
            .await?
            .ok_or(ManagerError::NotFound)
    }

    pub async fn list(
        &self,
        org: OrgId,
        query: &SessionQuery,
    ) -> Result<SessionPage, ManagerError> {
        Ok(self
            .inner
            .store
            .sessions()
            .list_sessions(org, query)
            .await?)
    }

    /// Relabels or repaces a session; a new pace applies to its next send.
    pub async fn update(
        &self,
        org: OrgId,
        id: SessionId,
        changes: &SessionChanges,
    ) -> Result<SessionRecord, ManagerError> {
        let record = self
            .inner
            .store
            .sessions()
            .update_session(org, id, changes)
            .await?
            .ok_or(ManagerError::NotFound)?;
        let here = match self.inner.handles().get(&id) {
            Some(handle) => {
                handle.pace.send_replace(record.pace);
                handle.behaviour.send_replace(record.behaviour.clone());
                true
            }
            None => false,
        };
        if !here {
            self.tell(org, id, Call::Refresh).await;
        }
        Ok(record)
    }

    /// Sets the session's presence: kept for every later connect, and told
    /// WhatsApp now if the session is `working` (a failure to tell it now
    /// is a `502`; the setting is kept either way).
    pub async fn set_presence(
        &self,
        org: OrgId,
        id: SessionId,
        presence: PresenceState,
    ) -> Result<SessionRecord, ManagerError> {
        let changes = SessionChanges {
            presence: Some(presence),
            ..SessionChanges::default()
        };
        let record = self.update(org, id, &changes).await?;
        self.tell_live(org, id, Call::SetPresence { presence })
            .await?;
        Ok(record)
    }

    /// Subscribes the session to `contact`'s presence, or (`subscribe`
    /// false) ends that: kept for every later connect, and told WhatsApp
    /// now if the session is `working` (a failure to tell it now is a
    /// `502`; the subscription is kept, or forgotten, either way). `true`
    /// when that changed anything.
    pub async fn subscribe_presence(
        &self,
        org: OrgId,
        id: SessionId,
        contact: &Jid,
        subscribe: bool,
    ) -> Result<bool, ManagerError> {
        self.get(org, id).await?;
        let presence = self.inner.store.presence();
        let key = contact.to_string();
        let changed = if subscribe {
            presence.subscribe_presence(id, &key).await?
        } else {
            presence.unsubscribe_presence(id, &key).await?
        };
        self.tell_live(
            org,
            id,
            Call::SubscribePresence {
                contact: contact.to_string(),
                subscribe,
            },
        )
        .await?;
        Ok(changed)
    }

    /// Rejects a call that rings the session now.
    pub async fn reject_call(
        &self,
        org: OrgId,
        id: SessionId,
        call_id: String,
    ) -> Result<(), ManagerError> {
        self.get(org, id).await?;
        self.perform(org, id, Call::Reject { call_id }).await?;
        Ok(())
    }

    /// The contacts the session is subscribed to the presence of.
    pub async fn presence_subscriptions(
        &self,
        org: OrgId,
        id: SessionId,
    ) -> Result<Vec<String>, ManagerError> {
        self.get(org, id).await?;
        Ok(self
            .inner
            .store
            .presence()
            .presence_subscriptions(id)
            .await?)
    }

    pub async fn start(&self, org: OrgId, id: SessionId) -> Result<SessionRecord, ManagerError> {
        self.command(org, id, Call::Start).await
    }

    pub async fn stop(&self, org: OrgId, id: SessionId) -> Result<SessionRecord, ManagerError> {
        self.command(org, id, Call::Stop).await
    }

    pub async fn restart(&self, org: OrgId, id: SessionId) -> Result<SessionRecord, ManagerError> {
        self.command(org, id, Call::Restart).await
    }

    pub async fn logout(&self, org: OrgId, id: SessionId) -> Result<SessionRecord, ManagerError> {
        self.command(org, id, Call::Logout).await
    }

    pub async fn delete(&self, org: OrgId, id: SessionId) -> Result<(), ManagerError> {
        self.get(org, id).await?;
        self.perform(org, id, Call::Delete).await?;
        if self.inner.store.sessions().delete_session(org, id).await? {
            Ok(())
        } else {
            Err(ManagerError::NotFound)
        }
    }

    pub async fn qr(&self, org: OrgId, id: SessionId) -> Result<Expiring, ManagerError> {
        let record = self.get(org, id).await?;
        if record.status != SessionStatus::ScanQrCode {
            return Err(ManagerError::NoQrCode(record.status));
        }
        expiring(self.perform(org, id, Call::Qr).await?)
    }

    pub async fn pairing_code(
        &self,
        org: OrgId,
        id: SessionId,
        phone: Phone,
    ) -> Result<Expiring, ManagerError> {
        self.get(org, id).await?;
        expiring(self.perform(org, id, Call::PairingCode { phone }).await?)
    }

    /// Accepts a message into the session's outbox: stored (with its
    /// `pending` event and the idempotency key) before this returns, then
    /// handed to the session's worker.
    pub async fn accept_message(
        &self,
        org: OrgId,
        session: SessionId,
        outgoing: Outgoing,
        claim: Option<IdempotencyClaim>,
    ) -> Result<(MessageRecord, bool), ManagerError> {
        let record = self.get(org, session).await?;
        if matches!(
            record.status,
            SessionStatus::LoggedOut | SessionStatus::Stopped
        ) {
            return Err(ManagerError::NotSending(record.status));
        }
        let accepted = self
            .inner
            .store
            .messages()
            .accept(
                NewOutgoing {
                    id: MessageId::new(),
                    org_id: org,
                    session_id: session,
                    wa_id: RequestUtils::message_id_at(None, wacore::time::now_secs_u64()),
                    chat: outgoing.chat,
                    kind: outgoing.kind,
                    content: outgoing.content,
                    media: outgoing.media,
                },
                claim,
            )
            .await?;
        match accepted {
            Accepted::Created { message, event } => {
                self.inner.hub.publish(*event);
                let here = match self.inner.handles().get(&session) {
                    Some(handle) => {
                        handle.outbox.notify_one();
                        true
                    }
                    None => false,
                };
                if !here {
                    self.tell(org, session, Call::WakeOutbox).await;
                }
                Ok((message, false))
            }
            Accepted::Replayed(message) => Ok((message, true)),
            Accepted::KeyReused => Err(ManagerError::IdempotencyKeyReused),
        }
    }

    pub async fn message(
        &self,
        org: OrgId,
        session: SessionId,
        id: MessageId,
    ) -> Result<(MessageRecord, Vec<StatusStep>), ManagerError> {
        self.inner
            .store
            .messages()
            .get_message(org, session, id)
            .await?
            .ok_or(ManagerError::MessageNotFound)
    }

    pub async fn messages(
        &self,
        org: OrgId,
        session: SessionId,
        query: &MessageQuery,
    ) -> Result<Vec<MessageRecord>, ManagerError> {
        self.get(org, session).await?;
        Ok(self
            .inner
            .store
            .messages()
            .list_messages(org, session, query)
            .await?)
    }

    /// The session's chats, latest activity first.
    pub async fn chats(
        &self,
        org: OrgId,
        session: SessionId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<ChatRecord>, ManagerError> {
        self.get(org, session).await?;
        Ok(self
            .inner
            .store
            .chats()
            .list_chats(org, session, before, limit)
            .await?)
    }

    /// The LID and phone number the session knows belong together.
    pub async fn lid_pn(
        &self,
        org: OrgId,
        session: SessionId,
        by: LidLookup<'_>,
    ) -> Result<Option<LidPn>, ManagerError> {
        self.get(org, session).await?;
        Ok(self.inner.store.keys().lid_pn(session, by).await?)
    }

    /// One of the session's chats.
    pub async fn chat(
        &self,
        org: OrgId,
        session: SessionId,
        chat: &str,
    ) -> Result<Option<ChatRecord>, ManagerError> {
        self.get(org, session).await?;
        Ok(self
            .inner
            .store
            .chats()
            .get_chat(org, session, chat)
            .await?)
    }

    /// Applies `change` to one of the session's chats, logging and then
    /// publishing its `chat.updated` event; `false` when the session has no
    /// such chat.
    pub async fn change_chat(
        &self,
        org: OrgId,
        session: SessionId,
        chat: &str,
        change: ChatChange,
    ) -> Result<bool, ManagerError> {
        self.get(org, session).await?;
        match self
            .inner
            .store
            .chats()
            .change_chat(org, session, chat, change)
            .await?
        {
            ChatChanged::Changed(event) => {
                self.inner.hub.publish(*event);
                Ok(true)
            }
            ChatChanged::Unchanged => Ok(true),
            ChatChanged::NoSuchChat => Ok(false),
        }
    }

    /// A supervisor panicked (a bug): an active session is failed, with
    /// the reason `internal_error`, through the status writer like every
    /// other change; one that was not active (stopped, failed, logged out)
    /// keeps its status, as no connection went with the task and the
    /// transition table has no move to `failed` from there. Either way a
    /// fresh supervisor takes over, which a start brings back.
    async fn on_supervisor_panic(&self, spawned: SessionRecord) {
        let id = spawned.id;
        tracing::error!(session_id = %id, "the session's task panicked");
        let current = match self
            .inner
            .store
            .sessions()
            .get_session(spawned.org_id, id)
            .await
        {
            Ok(Some(record)) => record,
            // Deleted meanwhile: nothing to fail.
            Ok(None) => return,
            Err(error) => {
                tracing::error!(session_id = %id, %error, "could not read the panicked session");
                spawned
            }
        };
        let respawn = match current.status.transition(SessionStatus::Failed) {
            Ok(change) => {
                let reason = Some(StatusReason::InternalError);
                match self
                    .inner
                    .statuses
                    .write(current.org_id, id, change, reason)
                    .await
                {
                    Ok(written) => self.inner.hub.publish(written.event),
                    Err(error) => {
                        tracing::error!(session_id = %id, %error, "could not record the failure");
                    }
                }
                SessionRecord {
                    status: change.to(),
                    status_reason: reason,
                    ..current
                }
            }
            Err(illegal) => {
                tracing::warn!(session_id = %id, %illegal, "the panicked session was not active; its status stays");
                current
            }
        };
        if !self.inner.cancel.is_cancelled() {
            self.spawn(&respawn);
        }
    }

    /// The live connection of a `working` session of `org`, for the calls
    /// that go straight to WhatsApp instead of through the outbox.
    pub async fn live_messenger(
        &self,
        org: OrgId,
        session: SessionId,
    ) -> Result<Arc<dyn Messenger>, ManagerError> {
        let record = self.get(org, session).await?;
        let link = self
            .working(session)
            .and_then(|working| working.borrow().clone());
        match link.and_then(|link| link.messenger()) {
            Some(messenger) => Ok(messenger),
            // Running on another node: its calls go there.
            None if self.cluster().is_some() && record.status == SessionStatus::Working => {
                Ok(self.remote_messenger(org, session))
            }
            None => Err(ManagerError::NotWorking(record.status)),
        }
    }

    /// What each `working` session's client holds in memory, by its own
    /// estimate.
    pub async fn client_memory(&self) -> Vec<(SessionId, ClientMemory)> {
        // Collected first: the map's lock is never held across an await.
        let links: Vec<_> = self
            .inner
            .handles()
            .iter()
            .filter_map(|(id, handle)| handle.working.borrow().clone().map(|link| (*id, link)))
            .collect();
        let mut memory = Vec::with_capacity(links.len());
        for (id, link) in links {
            if let Some(report) = link.memory().await {
                memory.push((id, report));
            }
        }
        memory
    }

    /// Watches the session's live connection: `Some` while it is
    /// `working`. Senders go through it directly, never through the
    /// supervisor, whose loop waits on store writes and reconnects.
    pub fn working(&self, id: SessionId) -> Option<watch::Receiver<Working>> {
        self.inner
            .handles()
            .get(&id)
            .map(|handle| handle.working.clone())
    }

    /// Stops every supervisor (they disconnect but keep their status, so
    /// they resume on the next start) and waits up to `timeout` for them.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        tokio::time::timeout(timeout, self.inner.tasks.wait())
            .await
            .is_ok()
    }

    async fn command(
        &self,
        org: OrgId,
        id: SessionId,
        call: Call,
    ) -> Result<SessionRecord, ManagerError> {
        self.get(org, id).await?;
        self.perform(org, id, call).await?;
        self.get(org, id).await
    }

    /// Tells the live connection, if the session is `working` wherever it
    /// runs; a session not working has nothing to tell.
    async fn tell_live(&self, org: OrgId, id: SessionId, call: Call) -> Result<(), ManagerError> {
        match self.perform(org, id, call).await {
            Ok(_) | Err(ManagerError::NotWorking(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Answers a call another node sent for a session this node runs.
    pub(crate) async fn answer(&self, request: Request) -> Answer {
        self.local(request.org, request.session, request.call)
            .await
            .map_err(Into::into)
    }

    /// Carries `call` out on this node's supervisor of the session;
    /// [`ManagerError::NotFound`] when this node does not run it.
    async fn local(&self, org: OrgId, id: SessionId, call: Call) -> Result<Reply, ManagerError> {
        match call {
            Call::Start => self.send(id, Command::Start).await?,
            Call::Stop => self.send(id, Command::Stop).await?,
            Call::Restart => self.send(id, Command::Restart).await?,
            Call::Logout => self.send(id, Command::Logout).await??,
            Call::Delete => {
                self.send(id, Command::Delete).await?;
                self.inner.handles().remove(&id);
            }
            Call::Qr => {
                let live = self
                    .inner
                    .handles()
                    .get(&id)
                    .map(|handle| handle.live.borrow().clone())
                    .ok_or(ManagerError::NotFound)?;
                return live.qr.map(Reply::Code).ok_or(ManagerError::QrNotReady);
            }
            Call::PairingCode { phone } => {
                let code = self
                    .send(id, |reply| Command::PairingCode { phone, reply })
                    .await??;
                return Ok(Reply::Code(code));
            }
            Call::Reject { call_id } => {
                self.send(id, |reply| Command::RejectCall { call_id, reply })
                    .await??;
            }
            Call::Refresh => {
                let record = self.get(org, id).await?;
                let handles = self.inner.handles();
                let handle = handles.get(&id).ok_or(ManagerError::NotFound)?;
                handle.pace.send_replace(record.pace);
                handle.behaviour.send_replace(record.behaviour.clone());
            }
            Call::WakeOutbox => {
                let handles = self.inner.handles();
                let handle = handles.get(&id).ok_or(ManagerError::NotFound)?;
                handle.outbox.notify_one();
            }
            live => return self.on_link(org, id, live).await,
        }
        Ok(Reply::Done)
    }

    /// The calls made straight on the session's live connection here.
    async fn on_link(&self, org: OrgId, id: SessionId, call: Call) -> Result<Reply, ManagerError> {
        let working = self.working(id).ok_or(ManagerError::NotFound)?;
        let link = working.borrow().clone();
        let Some(messenger) = link.and_then(|link| link.messenger()) else {
            let record = self.get(org, id).await?;
            return Err(ManagerError::NotWorking(record.status));
        };
        let upstream = ManagerError::Upstream;
        match call {
            Call::MarkRead {
                chat,
                sender,
                wa_ids,
            } => {
                let sender = sender.map(|s| jid(&s)).transpose()?;
                messenger
                    .mark_read(&jid(&chat)?, sender.as_ref(), &wa_ids)
                    .await
                    .map_err(upstream)?;
            }
            Call::Typing { chat, typing } => {
                messenger
                    .typing(&jid(&chat)?, typing)
                    .await
                    .map_err(upstream)?;
            }
            Call::CheckContacts { phones } => {
                let checks = messenger.check_contacts(&phones).await.map_err(upstream)?;
                return Ok(Reply::Contacts(checks));
            }
            Call::ChangeChat { chat, change } => {
                messenger
                    .change_chat(&jid(&chat)?, change)
                    .await
                    .map_err(upstream)?;
            }
            Call::RequestHistory {
                chat,
                oldest,
                count,
            } => {
                messenger
                    .request_history(&jid(&chat)?, &oldest, count)
                    .await
                    .map_err(upstream)?;
            }
            Call::SetPresence { presence } => {
                messenger.set_presence(presence).await.map_err(upstream)?;
            }
            Call::SubscribePresence { contact, subscribe } => {
                messenger
                    .subscribe_presence(&jid(&contact)?, subscribe)
                    .await
                    .map_err(upstream)?;
            }
            Call::ContactProfile { contact } => {
                let profile = messenger
                    .contact_profile(&jid(&contact)?)
                    .await
                    .map_err(upstream)?;
                return Ok(Reply::Profile(profile));
            }
            Call::DownloadPicture { picture } => {
                use base64::Engine as _;
                let bytes = messenger
                    .download_picture(&picture)
                    .await
                    .map_err(upstream)?;
                return Ok(Reply::Picture(
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                ));
            }
            Call::Block { contact, block } => {
                messenger
                    .block(&jid(&contact)?, block)
                    .await
                    .map_err(upstream)?;
            }
            other => {
                return Err(ManagerError::Remote(format!(
                    "{other:?} is not a call on the live connection"
                )));
            }
        }
        Ok(Reply::Done)
    }

    /// Sends a command to the session's supervisor and waits for its reply.
    async fn send<T>(
        &self,
        id: SessionId,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ManagerError> {
        let sender = self
            .inner
            .handles()
            .get(&id)
            .map(|handle| handle.commands.clone())
            .ok_or(ManagerError::NotFound)?;
        let (reply, response) = oneshot::channel();
        sender
            .send(command(reply))
            .await
            .map_err(|_| CommandError::ShuttingDown)?;
        Ok(response.await.map_err(|_| CommandError::ShuttingDown)?)
    }

    fn spawn(&self, record: &SessionRecord) {
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let (live_tx, live) = watch::channel(Live::default());
        let (working_tx, working) = watch::channel(None);
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        let outbox = Arc::new(Notify::new());
        let (pace_tx, pace) = watch::channel(record.pace);
        let (behaviour_tx, behaviour) = watch::channel(record.behaviour.clone());
        let cancel = self.inner.cancel.child_token();
        let done = CancellationToken::new();
        let worker = OutboxWorker::new(
            record.id,
            Arc::clone(&self.inner.store),
            self.inner.hub.clone(),
            self.inner.outbox,
            self.inner.fetcher.clone(),
            OutboxInputs {
                working: working.clone(),
                deliveries,
                wake: Arc::clone(&outbox),
                pace,
            },
            cancel.clone(),
        );
        let supervisor = Supervisor::new(
            record,
            SupervisorDeps {
                store: Arc::clone(&self.inner.store),
                engine: Arc::clone(&self.inner.engine),
                hub: self.inner.hub.clone(),
                statuses: self.inner.statuses.clone(),
                policy: self.inner.policy,
                behaviour,
                outbox: Arc::clone(&outbox),
            },
            live_tx,
            working_tx,
            deliveries_tx,
            receiver,
            cancel.clone(),
        );
        self.inner.handles().insert(
            record.id,
            Handle {
                commands,
                live,
                working,
                outbox,
                pace: pace_tx,
                behaviour: behaviour_tx,
                cancel,
                done: done.clone(),
            },
        );
        // A panic in the supervisor (a bug) must not leave a session that
        // says `working` and does nothing: it fails, with a reason, and gets
        // a fresh supervisor that a start brings back.
        let supervised = tokio::spawn(supervisor.run());
        let manager = self.clone();
        let record = record.clone();
        self.inner.tasks.spawn(async move {
            let ended = supervised.await;
            done.cancel();
            if let Err(join) = ended
                && join.is_panic()
            {
                manager.on_supervisor_panic(record).await;
            }
        });
        // The worker also ends when its session is deleted: the supervisor
        // drops the sending halves of its inputs.
        self.inner.tasks.spawn(worker.run());
    }
}

/// Ownership by lease (several nodes on one database): the lease keeper
/// (`session/leases.rs`) tells the manager which sessions it runs.
/// Resuming a session owned here is what `resume_all` does for every
/// session of a single process; disowning one stops its supervisor alone,
/// which writes nothing (its status stays, for its next owner to resume).
#[async_trait::async_trait]
impl OwnedSessions for SessionManager {
    async fn own(&self, leases: Vec<Held>) {
        // Already running here (taken again after a lapse): nothing to do.
        let owned: HashSet<SessionId> = {
            let handles = self.inner.handles();
            leases
                .iter()
                .map(|l| l.session)
                .filter(|id| !handles.contains_key(id))
                .collect()
        };
        if owned.is_empty() {
            return;
        }
        let records = match self.inner.store.sessions().all_sessions().await {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "could not read the sessions taken; they wait for the next owner");
                return;
            }
        };
        let mut starts = Vec::new();
        for record in records.iter().filter(|r| owned.contains(&r.id)) {
            if self.inner.handles().contains_key(&record.id) {
                continue;
            }
            self.spawn(record);
            if record.status.is_active() {
                starts.push(record.id);
            }
        }
        futures::future::join_all(starts.into_iter().map(|id| self.send(id, Command::Start))).await;
    }

    fn movable(&self, session: SessionId) -> bool {
        self.inner
            .handles()
            .get(&session)
            .is_some_and(|handle| handle.working.borrow().is_some())
    }

    async fn disown(&self, session: SessionId) {
        let handle = self.inner.handles().remove(&session);
        if let Some(handle) = handle {
            handle.cancel.cancel();
            handle.done.cancelled().await;
        }
    }
}

/// A JID as a call carried it (written by `Jid`'s own `Display`).
fn jid(text: &str) -> Result<Jid, ManagerError> {
    text.parse()
        .map_err(|_| ManagerError::Remote(format!("not a JID: {text}")))
}

/// The code a QR or pairing-code call gives back.
fn expiring(reply: Reply) -> Result<Expiring, ManagerError> {
    match reply {
        Reply::Code(code) => Ok(code),
        other => Err(ManagerError::Remote(format!(
            "expected a code, the owner answered {other:?}"
        ))),
    }
}

mod routing;
#[cfg(test)]
mod tests;
