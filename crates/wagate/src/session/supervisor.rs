//! One task per session. It owns the session's status: every change goes
//! through [`SessionStatus::transition`], is persisted, then published.
//!
//! Reconnects are driven here rather than by whatsapp-rust's own loop: the
//! library retries forever with no event per failed attempt, so neither the
//! retry budget nor an immediate first retry could be enforced on top of it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::backoff::{Retry, RetryPolicy};
use super::engine::{Delivery, Engine, EngineError, EngineEvent, InboundSink, Link, NoAnswer};
use super::inbox::{InboundWriter, Inbox};
use super::liveness::{Check, LivenessPolicy, Watchdog};
use super::status_writer::StatusWriter;
use super::working::Working;
use crate::domain::{OrgId, Phone, SessionId, SessionStatus, StatusReason};
use crate::events::{Envelope, EventData};
use crate::hub::EventHub;
use crate::metrics::{LinkMethod, ReconnectReason};
use crate::store::{SessionRecord, StatusChange, Store, StoreError};

/// How long WhatsApp honours a pairing code (the protocol says ~180 s).
const PAIRING_CODE_TTL: Duration = Duration::from_secs(180);
/// Upper bound on a pairing-code round trip to WhatsApp.
const PAIRING_CODE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an unlink of a stopped session waits to reach WhatsApp.
const UNLINK_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// After pairing, how long the restart waits for the client to report
/// `PairSuccess` before reconnecting anyway (it normally takes
/// milliseconds).
const PAIRED_REPORT_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct SupervisorPolicy {
    pub link_timeout: Duration,
    pub retry: RetryPolicy,
    pub liveness: LivenessPolicy,
}

/// A code with its expiry, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

impl Expiring {
    fn valid_for(code: String, ttl: Duration) -> Self {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::zero());
        Self {
            code,
            // Milliseconds, like every other timestamp the API shows.
            expires_at: (Utc::now() + ttl).trunc_subsecs(3),
        }
    }
}

/// What a session shows while linking; not persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    pub qr: Option<Expiring>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the session has no linked device")]
    NotLinked,
    #[error("the session is {0}, not waiting for a phone to link")]
    NotLinking(SessionStatus),
    #[error("WhatsApp did not provide a pairing code: {0}")]
    PairingCode(String),
    #[error("a pairing code issued earlier is still valid")]
    PairingCodeOutstanding,
    #[error("the session is shutting down")]
    ShuttingDown,
    #[error("the change could not be saved")]
    NotSaved,
}

pub type Reply<T> = oneshot::Sender<T>;

#[derive(Debug)]
pub enum Command {
    Start(Reply<()>),
    Stop(Reply<()>),
    Restart(Reply<()>),
    Logout(Reply<Result<(), CommandError>>),
    /// Unlinks if linked, wipes the keys, and ends the task.
    Delete(Reply<()>),
    PairingCode {
        phone: Phone,
        reply: Reply<Result<Expiring, CommandError>>,
    },
}

/// Whether the supervisor goes back to waiting for commands or ends.
enum Exit {
    Idle,
    Terminate,
}

enum Flow {
    Continue,
    Exit(Exit),
}

/// A step of the active loop; a store error ends the connection.
type StepResult = Result<Flow, StoreError>;

/// Where an active session's connection is. One phase at a time, so a
/// connection and a pending retry can never both exist.
enum Phase {
    /// A connection is open or being opened.
    Connected {
        connection: BoxFuture<'static, ()>,
        /// Whether the device was linked when this connection began. One
        /// that starts unlinked and ends linked ended in the stream restart
        /// that follows pairing, which is no failure. Asked of the device
        /// rather than left to the `Paired` event: the client reports
        /// pairing from another task, and the restart can end the
        /// connection before that event arrives.
        began_linked: bool,
        /// This connection is ending by design, and why (its QR codes ran
        /// out; the liveness watch dropped it): reconnect at once, no
        /// failure.
        ends_by_design: Option<ReconnectReason>,
    },
    /// Waiting out a backoff before the next attempt.
    Backoff { until: Instant },
    /// The phone linked and the connection ended in the restart that
    /// follows. The client marks its next connection end as expected just
    /// before it reports `PairSuccess`, from another task; a connection
    /// opened before that mark would be cut by it, so the next one waits
    /// for the report (or `until`).
    AwaitingPairReport { until: Instant },
}

impl Phase {
    /// When the next connection attempt is due, unless one is open.
    fn next_attempt(&self) -> Option<Instant> {
        match self {
            Self::Connected { .. } => None,
            Self::Backoff { until } | Self::AwaitingPairReport { until } => Some(*until),
        }
    }
}

/// The state of a session that is meant to be connected.
struct Active {
    link: Arc<dyn Link>,
    events: mpsc::UnboundedReceiver<EngineEvent>,
    phase: Phase,
    retry: Retry,
    link_deadline: Option<Instant>,
    /// The client has reported `PairSuccess` on this link.
    paired_reported: bool,
    /// The watch over a `working` connection; `None` before it works.
    watchdog: Option<Watchdog>,
    /// A liveness ping in flight.
    ping: Option<BoxFuture<'static, Result<(), NoAnswer>>>,
    /// Since the first QR code of this link, until it is working, and how
    /// the phone is linking: the link time `/metrics` shows.
    linking: Option<(Instant, LinkMethod)>,
}

impl Active {
    fn new(
        link: Arc<dyn Link>,
        events: mpsc::UnboundedReceiver<EngineEvent>,
        retry: Retry,
    ) -> Self {
        let phase = Self::connection(&link);
        Self {
            link,
            events,
            phase,
            retry,
            link_deadline: None,
            paired_reported: false,
            watchdog: None,
            ping: None,
            linking: None,
        }
    }

    fn connection(link: &Arc<dyn Link>) -> Phase {
        Phase::Connected {
            began_linked: link.identity().phone.is_some(),
            connection: link.connect(),
            ends_by_design: None,
        }
    }

    fn connect(&mut self) {
        self.phase = Self::connection(&self.link);
        self.watchdog = None;
        self.ping = None;
    }

    /// When the watchdog next looks at the connection; never while a ping
    /// is out (its answer or timeout comes first).
    fn next_liveness_check(&self) -> Option<Instant> {
        match (&self.watchdog, &self.ping) {
            (Some(dog), None) => Some(dog.next_check()),
            _ => None,
        }
    }
}

pub struct Supervisor {
    id: SessionId,
    org_id: OrgId,
    status: SessionStatus,
    linked: bool,
    /// The phone number and name as stored, so a reconnect that brings the
    /// same ones back writes nothing.
    identity: (Option<String>, Option<String>),
    store: Arc<dyn Store>,
    statuses: StatusWriter,
    engine: Arc<dyn Engine>,
    hub: EventHub,
    inbound: InboundWriter,
    live: watch::Sender<Live>,
    working: watch::Sender<Working>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    commands: mpsc::Receiver<Command>,
    cancel: CancellationToken,
    policy: SupervisorPolicy,
}

pub struct SupervisorDeps {
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn Engine>,
    pub hub: EventHub,
    /// Shared by every session: stores what they receive, group-committed.
    pub inbound: InboundWriter,
    /// Shared by every session: group-commits status changes.
    pub statuses: StatusWriter,
    pub policy: SupervisorPolicy,
}

impl Supervisor {
    pub fn new(
        record: &SessionRecord,
        deps: SupervisorDeps,
        live: watch::Sender<Live>,
        working: watch::Sender<Working>,
        deliveries: mpsc::UnboundedSender<Delivery>,
        commands: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            id: record.id,
            org_id: record.org_id,
            status: record.status,
            linked: record.is_linked(),
            identity: (record.phone.clone(), record.push_name.clone()),
            store: deps.store,
            statuses: deps.statuses,
            engine: deps.engine,
            hub: deps.hub,
            inbound: deps.inbound,
            live,
            working,
            deliveries,
            commands,
            cancel,
            policy: deps.policy,
        }
    }

    #[tracing::instrument(name = "session", skip_all, fields(session_id = %self.id))]
    pub async fn run(mut self) {
        loop {
            let command = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return,
                command = self.commands.recv() => command,
            };
            let Some(command) = command else { return };
            let exit = match command {
                Command::Start(reply) | Command::Restart(reply) => {
                    if let Err(error) = self.set_status(SessionStatus::Starting, None).await {
                        tracing::error!(%error, "could not start the session");
                        continue;
                    }
                    let _ = reply.send(());
                    self.run_active().await
                }
                Command::Stop(reply) => {
                    let _ = reply.send(());
                    Exit::Idle
                }
                Command::Logout(reply) => {
                    let result = self.unlink_while_idle(StatusReason::LogoutRequested).await;
                    let _ = reply.send(result);
                    Exit::Idle
                }
                Command::Delete(reply) => {
                    if self.linked {
                        let _ = self.unlink_while_idle(StatusReason::LogoutRequested).await;
                    }
                    self.wipe_before_delete().await;
                    let _ = reply.send(());
                    Exit::Terminate
                }
                Command::PairingCode { reply, .. } => {
                    let _ = reply.send(Err(CommandError::NotLinking(self.status)));
                    Exit::Idle
                }
            };
            if let Exit::Terminate = exit {
                return;
            }
        }
    }

    /// Where the connection stores what the session receives.
    fn inbox(&self) -> Arc<dyn InboundSink> {
        Arc::new(Inbox::new(
            self.inbound.clone(),
            Arc::clone(&self.store),
            self.hub.clone(),
            self.org_id,
            self.id,
        ))
    }

    async fn open(&mut self) -> Option<Active> {
        let (tx, events) = mpsc::unbounded_channel();
        match self
            .engine
            .open(self.id, tx, self.deliveries.clone(), self.inbox())
            .await
        {
            Ok(link) => Some(Active::new(link, events, Retry::new(self.policy.retry))),
            Err(error) => {
                tracing::error!(%error, "could not open the session's device store");
                if let Err(error) = self
                    .set_status(
                        SessionStatus::Failed,
                        Some(StatusReason::DeviceStoreUnavailable),
                    )
                    .await
                {
                    tracing::error!(%error, "could not record the failure");
                }
                None
            }
        }
    }

    /// Keeps the session connected until a command, the protocol or the
    /// budgets end it.
    async fn run_active(&mut self) -> Exit {
        let Some(mut active) = self.open().await else {
            return Exit::Idle;
        };
        loop {
            let next_attempt = active.phase.next_attempt();
            let next_liveness_check = active.next_liveness_check();
            let flow = tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    // The status is left as it is so the session resumes
                    // when the gateway comes back.
                    active.link.disconnect().await;
                    Ok(Flow::Exit(Exit::Terminate))
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command, &mut active).await,
                    None => {
                        active.link.disconnect().await;
                        Ok(Flow::Exit(Exit::Terminate))
                    }
                },
                Some(event) = active.events.recv() => self.on_event(event, &mut active).await,
                () = wait_until(active.link_deadline) => {
                    tracing::info!("nobody linked a phone in time");
                    active.link.disconnect().await;
                    self.set_status(SessionStatus::Failed, Some(StatusReason::LinkTimeout))
                        .await
                        .map(|()| Flow::Exit(Exit::Idle))
                }
                () = wait_for(&mut active.phase) => self.on_connection_end(&mut active).await,
                () = wait_until(next_attempt) => self.attempt(&mut active).await,
                () = wait_until(next_liveness_check) => {
                    self.look_at_connection(&mut active);
                    Ok(Flow::Continue)
                }
                answer = wait_for_ping(&mut active.ping) => {
                    self.on_ping(answer, &mut active).await.map(|()| Flow::Continue)
                }
            };
            let exit = match flow {
                Ok(Flow::Continue) => continue,
                Ok(Flow::Exit(exit)) => exit,
                // The store could not record what happened: carrying on
                // would show users a state that was never saved.
                // It must not end the loop either, though: the row would
                // keep showing whatever was last saved (`working`, with the
                // connection gone) and nothing would watch the session any
                // more. So the connection is closed and made again after a
                // backoff, and the attempt first saves `starting` (see
                // `attempt`), which keeps failing loudly until the store
                // takes it.
                Err(error) => match self.after_store_error(&mut active).await {
                    Some(exit) => {
                        tracing::error!(%error, "could not record a change of the session; giving up");
                        exit
                    }
                    None => {
                        tracing::error!(%error, "could not record a change of the session; disconnected, trying again");
                        continue;
                    }
                },
            };
            self.live.send_replace(Live::default());
            self.working.send_replace(None);
            return exit;
        }
    }

    async fn on_command(&mut self, command: Command, active: &mut Active) -> StepResult {
        match command {
            Command::Start(reply) => {
                // Already running; a session waiting out a backoff tries now.
                if let Phase::Backoff { until } = &mut active.phase {
                    active.retry.reset();
                    *until = Instant::now();
                }
                let _ = reply.send(());
                Ok(Flow::Continue)
            }
            Command::Restart(reply) => {
                active.link.disconnect().await;
                self.live.send_replace(Live::default());
                self.set_status(SessionStatus::Starting, None).await?;
                let _ = reply.send(());
                match self.open().await {
                    Some(fresh) => {
                        *active = fresh;
                        Ok(Flow::Continue)
                    }
                    None => Ok(Flow::Exit(Exit::Idle)),
                }
            }
            Command::Stop(reply) => {
                active.link.disconnect().await;
                self.set_status(SessionStatus::Stopped, Some(StatusReason::StopRequested))
                    .await?;
                let _ = reply.send(());
                Ok(Flow::Exit(Exit::Idle))
            }
            Command::Logout(reply) => {
                if !self.linked {
                    let _ = reply.send(Err(CommandError::NotLinked));
                    return Ok(Flow::Continue);
                }
                active.link.logout().await;
                self.forget_device(StatusReason::LogoutRequested).await?;
                let _ = reply.send(Ok(()));
                Ok(Flow::Exit(Exit::Idle))
            }
            Command::Delete(reply) => {
                if self.linked {
                    active.link.logout().await;
                } else {
                    active.link.disconnect().await;
                }
                self.wipe_before_delete().await;
                let _ = reply.send(());
                Ok(Flow::Exit(Exit::Terminate))
            }
            Command::PairingCode { phone, reply } => {
                if self.status != SessionStatus::ScanQrCode {
                    let _ = reply.send(Err(CommandError::NotLinking(self.status)));
                    return Ok(Flow::Continue);
                }
                // Off the loop: the round trip must not hold up events.
                let link = Arc::clone(&active.link);
                tokio::spawn(async move {
                    let result = tokio::time::timeout(
                        PAIRING_CODE_TIMEOUT,
                        link.request_pairing_code(&phone),
                    )
                    .await;
                    let result = match result {
                        Ok(Ok(code)) => Ok(Expiring::valid_for(
                            format_pairing_code(&code),
                            PAIRING_CODE_TTL,
                        )),
                        Ok(Err(EngineError::PairingCodeOutstanding)) => {
                            Err(CommandError::PairingCodeOutstanding)
                        }
                        Ok(Err(error)) => Err(CommandError::PairingCode(error.to_string())),
                        Err(_) => Err(CommandError::PairingCode("no answer from WhatsApp".into())),
                    };
                    let _ = reply.send(result);
                });
                Ok(Flow::Continue)
            }
        }
    }

    async fn on_event(&mut self, event: EngineEvent, active: &mut Active) -> StepResult {
        match event {
            EngineEvent::QrCode { code, valid_for } => {
                // Reaching the server is progress, whatever the linking does.
                active.retry.reset();
                active
                    .link_deadline
                    .get_or_insert_with(|| Instant::now() + self.policy.link_timeout);
                active
                    .linking
                    .get_or_insert_with(|| (Instant::now(), LinkMethod::QrCode));
                self.set_status(SessionStatus::ScanQrCode, None).await?;
                let qr = Expiring::valid_for(code, valid_for);
                self.live.send_replace(Live {
                    qr: Some(qr.clone()),
                });
                self.publish(EventData::Qr {
                    code: qr.code,
                    expires_at: qr.expires_at,
                })
                .await?;
            }
            EngineEvent::QrCodesExhausted => {
                tracing::debug!("QR codes exhausted, starting a new linking round");
                self.live.send_replace(Live::default());
                if let Phase::Connected { ends_by_design, .. } = &mut active.phase {
                    *ends_by_design = Some(ReconnectReason::QrCodesExhausted);
                }
            }
            EngineEvent::PairingCode { code, valid_for } => {
                if let Some((_, method)) = &mut active.linking {
                    *method = LinkMethod::PairingCode;
                }
                let code = Expiring::valid_for(format_pairing_code(&code), valid_for);
                self.publish(EventData::PairingCode {
                    code: code.code,
                    expires_at: code.expires_at,
                })
                .await?;
            }
            EngineEvent::Paired { phone } => {
                tracing::info!("a phone linked this session");
                self.linked = true;
                active.link_deadline = None;
                active.paired_reported = true;
                if let Phase::AwaitingPairReport { until } = &mut active.phase {
                    // The restart after pairing was waiting for this.
                    *until = Instant::now();
                }
                self.live.send_replace(Live::default());
                self.save_identity(Some(phone), None).await?;
            }
            EngineEvent::Connected => {
                active.retry.reset();
                active.link_deadline = None;
                self.live.send_replace(Live::default());
                let identity = active.link.identity();
                if identity.phone.is_some() {
                    self.linked = true;
                    self.save_identity(identity.phone, identity.push_name)
                        .await?;
                }
                self.set_status(SessionStatus::Working, None).await?;
                if let Some((since, method)) = active.linking.take() {
                    self.hub.metrics().linked(method, since.elapsed());
                }
                self.working.send_replace(Some(Arc::clone(&active.link)));
                active.watchdog = active
                    .link
                    .frames_received()
                    .map(|frames| Watchdog::new(self.policy.liveness, frames, Instant::now()));
            }
            EngineEvent::LoggedOut => {
                tracing::info!("the device was unlinked");
                active.link.disconnect().await;
                self.forget_device(StatusReason::LoggedOutFromPhone).await?;
                return Ok(Flow::Exit(Exit::Idle));
            }
            EngineEvent::TemporarilyBanned { expires_in } => {
                tracing::warn!(?expires_in, "WhatsApp temporarily banned this number");
                active.link.disconnect().await;
                self.set_status(SessionStatus::Failed, Some(StatusReason::TemporarilyBanned))
                    .await?;
                return Ok(Flow::Exit(Exit::Idle));
            }
            EngineEvent::ClientOutdated => {
                tracing::error!("WhatsApp rejected this client version");
                active.link.disconnect().await;
                self.set_status(SessionStatus::Failed, Some(StatusReason::ClientOutdated))
                    .await?;
                return Ok(Flow::Exit(Exit::Idle));
            }
        }
        Ok(Flow::Continue)
    }

    /// A new connection attempt. The status is `starting` before it is
    /// made: that is what the row already says unless a store error cut
    /// the last connection off before its end could be recorded.
    async fn attempt(&mut self, active: &mut Active) -> StepResult {
        if self.status == SessionStatus::Working {
            self.set_status(SessionStatus::Starting, Some(StatusReason::ConnectionLost))
                .await?;
        }
        active.connect();
        Ok(Flow::Continue)
    }

    /// A change could not be saved: the connection is dropped and made
    /// again after a backoff (taken from the retry budget, as a failed
    /// connection's). `Some` when the budget is spent: the session stops,
    /// recorded as failed if the store takes that.
    async fn after_store_error(&mut self, active: &mut Active) -> Option<Exit> {
        active.link.disconnect().await;
        active.watchdog = None;
        active.ping = None;
        self.live.send_replace(Live::default());
        self.working.send_replace(None);
        let now = Instant::now();
        match active.retry.next_delay(now) {
            Some(delay) => {
                // Dropping the ended connection's future aborts its task.
                active.phase = Phase::Backoff { until: now + delay };
                None
            }
            None => {
                if let Err(error) = self
                    .set_status(SessionStatus::Failed, Some(StatusReason::ConnectionFailed))
                    .await
                {
                    tracing::error!(%error, "could not record the failure either");
                }
                Some(Exit::Idle)
            }
        }
    }

    /// The watchdog's periodic look: a connection silent for too long is
    /// pinged.
    fn look_at_connection(&self, active: &mut Active) {
        let (Some(dog), Some(frames)) = (&mut active.watchdog, active.link.frames_received())
        else {
            return;
        };
        if dog.check(frames, Instant::now()) == Check::Probe {
            tracing::debug!(silent_for = ?dog.silent_for(Instant::now()), "pinging a silent connection");
            active.ping = Some(active.link.ping(dog.policy().timeout));
        }
    }

    /// A liveness ping's outcome: an unanswered one means the connection
    /// only looks open, so it is dropped and made again, and the status
    /// event says why.
    async fn on_ping(
        &mut self,
        answer: Result<(), NoAnswer>,
        active: &mut Active,
    ) -> Result<(), StoreError> {
        active.ping = None;
        let Some(dog) = &mut active.watchdog else {
            return Ok(());
        };
        let now = Instant::now();
        if answer.is_ok() {
            dog.answered(now);
            return Ok(());
        }
        tracing::warn!(
            silent_for = ?dog.silent_for(now),
            "WhatsApp stopped answering on this connection; reconnecting"
        );
        active.watchdog = None;
        if let Phase::Connected { ends_by_design, .. } = &mut active.phase {
            // The end that follows is ours: reconnect at once.
            *ends_by_design = Some(ReconnectReason::NoResponse);
        }
        self.live.send_replace(Live::default());
        self.set_status(SessionStatus::Starting, Some(StatusReason::NoResponse))
            .await?;
        active.link.drop_connection().await;
        Ok(())
    }

    async fn on_connection_end(&mut self, active: &mut Active) -> StepResult {
        // Events dispatched just before the end decide what it means (a
        // logout, a ban, a finished pairing, codes used up), so they go
        // first, while the phase still describes the ended connection.
        while let Ok(event) = active.events.try_recv() {
            if let Flow::Exit(exit) = self.on_event(event, active).await? {
                return Ok(Flow::Exit(exit));
            }
        }
        let now = Instant::now();
        let ended = std::mem::replace(&mut active.phase, Phase::Backoff { until: now });
        let Phase::Connected {
            began_linked,
            ends_by_design,
            ..
        } = ended
        else {
            return Ok(Flow::Continue);
        };
        if !began_linked && active.link.identity().phone.is_some() {
            self.linked = true;
            active.link_deadline = None;
            self.hub
                .metrics()
                .reconnected(ReconnectReason::AfterPairing);
            if active.paired_reported {
                active.connect();
            } else {
                active.phase = Phase::AwaitingPairReport {
                    until: now + PAIRED_REPORT_GRACE,
                };
            }
            return Ok(Flow::Continue);
        }
        if let Some(reason) = ends_by_design {
            self.hub.metrics().reconnected(reason);
            active.connect();
            return Ok(Flow::Continue);
        }
        self.live.send_replace(Live::default());
        if self.status != SessionStatus::Starting {
            self.set_status(SessionStatus::Starting, Some(StatusReason::ConnectionLost))
                .await?;
        }
        match active.retry.next_delay(now) {
            Some(delay) => {
                tracing::info!(?delay, "connection ended, reconnecting");
                self.hub
                    .metrics()
                    .reconnected(ReconnectReason::ConnectionLost);
                active.phase = Phase::Backoff { until: now + delay };
                Ok(Flow::Continue)
            }
            None => {
                tracing::warn!("retry budget spent, giving up");
                active.link.disconnect().await;
                self.set_status(SessionStatus::Failed, Some(StatusReason::ConnectionFailed))
                    .await?;
                Ok(Flow::Exit(Exit::Idle))
            }
        }
    }

    /// Logs a linked session out while no connection is held: connects just
    /// long enough to tell WhatsApp, then forgets the device either way.
    async fn unlink_while_idle(&mut self, reason: StatusReason) -> Result<(), CommandError> {
        if !self.linked {
            return Err(CommandError::NotLinked);
        }
        let (tx, mut events) = mpsc::unbounded_channel();
        match self
            .engine
            .open(self.id, tx, self.deliveries.clone(), self.inbox())
            .await
        {
            Ok(link) => {
                let mut connection = link.connect();
                let connected = tokio::time::timeout(UNLINK_CONNECT_TIMEOUT, async {
                    loop {
                        tokio::select! {
                            event = events.recv() => match event {
                                Some(EngineEvent::Connected) => return true,
                                Some(EngineEvent::LoggedOut) | None => return false,
                                Some(_) => {}
                            },
                            () = &mut connection => return false,
                        }
                    }
                })
                .await
                .unwrap_or(false);
                if !connected {
                    tracing::warn!(
                        "could not reach WhatsApp to unlink; the phone may still list this device"
                    );
                }
                link.logout().await;
            }
            Err(error) => tracing::error!(%error, "could not open the device store to unlink"),
        }
        self.forget_device(reason).await.map_err(|error| {
            tracing::error!(%error, "could not record the unlink");
            CommandError::NotSaved
        })
    }

    /// Wipes the keys, then records the session as logged out. A wipe that
    /// fails is the caller's error: a session recorded as logged out with
    /// its keys still there would, on its next start, try the revoked
    /// device instead of showing a QR code.
    async fn forget_device(&mut self, reason: StatusReason) -> Result<(), StoreError> {
        self.engine.wipe(self.id).await?;
        self.linked = false;
        self.save_identity(None, None).await?;
        self.set_status(SessionStatus::LoggedOut, Some(reason))
            .await
    }

    /// Before the session's row is deleted: its key rows go with it anyway
    /// (`ON DELETE CASCADE`), so a failure here is only reported.
    async fn wipe_before_delete(&self) {
        if let Err(error) = self.engine.wipe(self.id).await {
            tracing::error!(%error, "could not delete the session's device keys before the session");
        }
    }

    /// Persists the change with its `session.status` event in one
    /// transaction, then publishes the event. A failed write changes
    /// nothing, here or for subscribers.
    async fn set_status(
        &mut self,
        next: SessionStatus,
        reason: Option<StatusReason>,
    ) -> Result<(), StoreError> {
        let previous = self.status;
        if previous == next {
            return Ok(());
        }
        if let Err(illegal) = previous.transition(next) {
            // A bug in the supervisor, not something a peer can cause.
            tracing::error!(%illegal, "refusing status change");
            return Ok(());
        }
        let event = self.event(EventData::Status {
            status: next,
            previous,
            reason,
        });
        let written = self
            .statuses
            .write(StatusChange {
                id: self.id,
                status: next,
                reason,
                event,
            })
            .await?;
        let event = written.event;
        self.status = next;
        if next != SessionStatus::Working {
            self.working.send_replace(None);
        }
        tracing::info!(%previous, status = %next, reason = reason.map(StatusReason::as_str), "status changed");
        self.hub.publish(event);
        Ok(())
    }

    /// Stores the phone number and name, unless they are what is stored
    /// already (a reconnect of a linked session: one write fewer per
    /// session in a reconnect storm).
    async fn save_identity(
        &mut self,
        phone: Option<String>,
        push_name: Option<String>,
    ) -> Result<(), StoreError> {
        let identity = (phone, push_name);
        if identity == self.identity {
            return Ok(());
        }
        self.store
            .sessions()
            .set_identity(self.id, identity.0.as_deref(), identity.1.as_deref())
            .await?;
        self.identity = identity;
        Ok(())
    }

    /// Logs an event that reports no stored change, then publishes it.
    async fn publish(&self, data: EventData) -> Result<(), StoreError> {
        let mut event = self.event(data);
        self.store.events().append_event(&mut event).await?;
        self.hub.publish(event);
        Ok(())
    }

    fn event(&self, data: EventData) -> Envelope {
        Envelope::new(self.org_id, self.id, data)
    }
}

/// WhatsApp shows pairing codes as two groups of four: `ABCD-1234`.
fn format_pairing_code(code: &str) -> String {
    if code.len() == 8 && code.is_ascii() && !code.contains('-') {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_string()
    }
}

async fn wait_until(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves with a liveness ping's answer; never while none is out.
async fn wait_for_ping(
    ping: &mut Option<BoxFuture<'static, Result<(), NoAnswer>>>,
) -> Result<(), NoAnswer> {
    match ping {
        Some(ping) => ping.await,
        None => std::future::pending().await,
    }
}

/// Resolves when the open connection ends; never while there is none.
async fn wait_for(phase: &mut Phase) {
    match phase {
        Phase::Connected { connection, .. } => connection.await,
        Phase::Backoff { .. } | Phase::AwaitingPairReport { .. } => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
