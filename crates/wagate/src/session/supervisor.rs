//! One task per session. It owns the session's status: every change goes
//! through [`SessionStatus::transition`], is persisted, then published.
//!
//! Reconnects are driven here rather than by whatsapp-rust's own loop: the
//! library retries forever with no event per failed attempt, so neither the
//! retry budget nor an immediate first retry could be enforced on top of it.
//!
//! The loop and the status are here; the rest is in the submodules:
//! [`phase`] (the active session's state as types), [`command`] (what the
//! API asks), [`engine_events`] (what the protocol reports),
//! [`connection`] (attempts, liveness, a connection's end) and [`unlink`].

mod command;
mod connection;
mod engine_events;
mod phase;
mod unlink;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use self::phase::{Active, OnConnection, on_connection, wait_until};
use super::backoff::{Retry, RetryPolicy};
use super::engine::{CallOffer, Delivery, Engine, InboundSink};
use super::inbox::Inbox;
use super::liveness::LivenessPolicy;
use super::status_writer::StatusWriter;
use super::working::Working;
use crate::domain::{
    IllegalTransition, OrgId, SessionBehaviour, SessionId, SessionStatus, StatusReason,
};
use crate::events::{Envelope, EventData};
use crate::hub::EventHub;
use crate::store::{SessionRecord, Store, StoreError};

pub(crate) use self::command::{Command, CommandError, Expiring};

#[derive(Debug, Clone, Copy)]
pub struct SupervisorPolicy {
    pub link_timeout: Duration,
    pub retry: RetryPolicy,
    pub liveness: LivenessPolicy,
}

/// What a session shows while linking; not persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Live {
    pub qr: Option<Expiring>,
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
type StepResult = Result<Flow, StepError>;

/// Why a step of the supervisor did not happen.
#[derive(Debug, thiserror::Error)]
enum StepError {
    /// The store could not record it: the connection is dropped and made
    /// again (see `after_store_error`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The status cannot go there from where it is: a bug in the
    /// supervisor, not something a peer can cause. Nothing was written;
    /// the step is abandoned and the session carries on as it was.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
}

pub(crate) struct Supervisor {
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
    live: watch::Sender<Live>,
    working: watch::Sender<Working>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    commands: mpsc::Receiver<Command>,
    cancel: CancellationToken,
    policy: SupervisorPolicy,
    /// The session's presence and call settings, as they are now.
    behaviour: watch::Receiver<SessionBehaviour>,
    /// Wakes the session's outbox worker (for what the supervisor itself
    /// queues: the answer to a rejected call).
    outbox: Arc<Notify>,
    /// Calls reported ringing and not rejected here, newest last: the ones
    /// an API call may reject and whose end is reported (`call.ended`). A
    /// few at most.
    ringing: VecDeque<CallOffer>,
}

pub(crate) struct SupervisorDeps {
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn Engine>,
    pub hub: EventHub,
    /// Writes the session's status changes (group-committed by the store).
    pub statuses: StatusWriter,
    pub policy: SupervisorPolicy,
    /// This session's presence and call settings, kept current by the
    /// manager.
    pub behaviour: watch::Receiver<SessionBehaviour>,
    /// Wakes this session's outbox worker.
    pub outbox: Arc<Notify>,
}

impl Supervisor {
    pub(crate) fn new(
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
            live,
            working,
            deliveries,
            commands,
            cancel,
            policy: deps.policy,
            behaviour: deps.behaviour,
            outbox: deps.outbox,
            ringing: VecDeque::new(),
        }
    }

    #[tracing::instrument(name = "session", skip_all, fields(session_id = %self.id))]
    pub(crate) async fn run(mut self) {
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
                // Nothing rings on a session that is not connected.
                Command::RejectCall { reply, .. } => {
                    let _ = reply.send(Err(CommandError::NoSuchCall));
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
            Arc::clone(&self.store),
            self.hub.clone(),
            self.org_id,
            self.id,
            self.behaviour.clone(),
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
            let next_liveness_check = active.phase.next_liveness_check();
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
                () = wait_until(active.linking.deadline()) => {
                    tracing::info!("nobody linked a phone in time");
                    active.link.disconnect().await;
                    self.set_status(SessionStatus::Failed, Some(StatusReason::LinkTimeout))
                        .await
                        .map(|()| Flow::Exit(Exit::Idle))
                }
                // The connection's end before its ping's answer, and both
                // before anything a timer brings (none of which is due while
                // a ping is out or a connection open).
                news = on_connection(&mut active.phase) => match news {
                    OnConnection::Ended => self.on_connection_end(&mut active).await,
                    OnConnection::PingAnswer(answer) => {
                        self.on_ping(answer, &mut active).await.map(|()| Flow::Continue)
                    }
                },
                () = wait_until(next_attempt) => self.attempt(&mut active).await,
                () = wait_until(next_liveness_check) => {
                    self.look_at_connection(&mut active);
                    Ok(Flow::Continue)
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
                Err(StepError::Illegal(illegal)) => {
                    tracing::error!(%illegal, "refused a status change; the step was abandoned");
                    continue;
                }
                Err(StepError::Store(error)) => match self.after_store_error(&mut active).await {
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

    /// Persists the change with its `session.status` event in one
    /// transaction, then publishes the event. A failed write, or a change
    /// the transition table refuses, changes nothing, here or for
    /// subscribers; asking for the status the session is in already is no
    /// change and succeeds.
    async fn set_status(
        &mut self,
        next: SessionStatus,
        reason: Option<StatusReason>,
    ) -> Result<(), StepError> {
        let previous = self.status;
        if previous == next {
            return Ok(());
        }
        let change = previous.transition(next)?;
        let written = match self
            .statuses
            .write(self.org_id, self.id, change, reason)
            .await
        {
            Ok(written) => written,
            Err(StoreError::Moved(moved)) => {
                // Another node owns the session now (several nodes on one
                // database): not a failure to retry. The session stops
                // here, disconnecting at the loop's next turn, and writes
                // nothing more.
                tracing::warn!(%moved, "the session moved to another node; stopping it here");
                self.cancel.cancel();
                return Err(StoreError::Moved(moved).into());
            }
            Err(error) => return Err(error.into()),
        };
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

#[cfg(test)]
mod tests;
