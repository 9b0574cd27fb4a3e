//! How the supervisor answers what the protocol reports ([`EngineEvent`]):
//! QR and pairing codes, a linked phone, a working connection, and the
//! ends WhatsApp imposes (logout, ban, outdated client).

use std::sync::Arc;

use tokio::time::Instant;

use super::command::{CommandError, Expiring, format_pairing_code};
use super::phase::{Active, Liveness, Phase};
use super::{Exit, Flow, Live, StepError, StepResult, Supervisor};
use wacore::request::RequestUtils;

use crate::domain::{CallOutcome, ChatChange, MessageId, SessionStatus, StatusReason};
use crate::events::{Envelope, EventData};
use crate::messages::{Content, OutgoingMessage, Recipient};
use crate::metrics::ReconnectReason;
use crate::session::engine::{CallOffer, EngineEvent, Link};
use crate::session::group_events::{GroupNotice, Me, plan};
use crate::session::liveness::Watchdog;
use crate::store::chats::ChatChanged;
use crate::store::{Accepted, NewOutgoing, StoreError};
use whatsapp_rust::Jid;

/// How many ringing calls the supervisor remembers to report the end of:
/// WhatsApp rings one call at a time per caller, so a few are plenty.
const RINGING_KEPT: usize = 32;

impl Supervisor {
    pub(super) async fn on_event(&mut self, event: EngineEvent, active: &mut Active) -> StepResult {
        match event {
            EngineEvent::QrCode { code, valid_for } => {
                // Reaching the server is progress, whatever the linking does.
                active.retry.reset();
                active
                    .linking
                    .code_shown(Instant::now(), self.policy.link_timeout);
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
                active
                    .phase
                    .end_by_design(ReconnectReason::QrCodesExhausted);
            }
            EngineEvent::PairingCode { code, valid_for } => {
                active.linking.by_pairing_code();
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
                active.linking.linked(true);
                if let Phase::AwaitingPairReport { until } = &mut active.phase {
                    // The restart after pairing was waiting for this.
                    *until = Instant::now();
                }
                self.live.send_replace(Live::default());
                self.save_identity(Some(phone), None).await?;
            }
            EngineEvent::Connected => {
                active.retry.reset();
                // Logged in, so linked: the link timeout no longer runs,
                // while the link time does until the status is saved.
                active.linking.linked(false);
                self.live.send_replace(Live::default());
                let identity = active.link.identity();
                if identity.phone.is_some() {
                    self.linked = true;
                    self.save_identity(identity.phone, identity.push_name)
                        .await?;
                }
                self.set_status(SessionStatus::Working, None).await?;
                if let Some(start) = active.linking.finish() {
                    self.hub.metrics().linked(start.method, start.at.elapsed());
                }
                self.working.send_replace(Some(Arc::clone(&active.link)));
                // Watched before anything that waits on WhatsApp, so a
                // connection that goes silent at once is still noticed.
                if let Some(liveness) = active.phase.liveness() {
                    *liveness = match active.link.frames_received() {
                        Some(frames) => Liveness::Watched(Watchdog::new(
                            self.policy.liveness,
                            frames,
                            Instant::now(),
                        )),
                        None => Liveness::Unwatched,
                    };
                }
                self.say_presence(Arc::clone(&active.link)).await;
                self.spawn_presence_subscriptions(Arc::clone(&active.link));
                self.spawn_group_sync(Arc::clone(&active.link));
            }
            EngineEvent::PushNameChanged => self.say_presence(Arc::clone(&active.link)).await,
            EngineEvent::IncomingCall(offer) => {
                self.on_call(offer, Arc::clone(&active.link)).await?
            }
            EngineEvent::Group(notice) => self.on_group(*notice, Arc::clone(&active.link)).await?,
            EngineEvent::CallEnded {
                call_id,
                from,
                outcome,
            } => {
                // A call that rang here and was not rejected here (a
                // rejected one's end is its `call.rejected`), or one that
                // rang while the session was offline.
                let rang = self.take_ringing(&call_id).is_some();
                if rang || outcome == CallOutcome::MissedOffline {
                    self.publish(EventData::CallEnded {
                        call_id,
                        from,
                        outcome,
                    })
                    .await?;
                }
            }
            EngineEvent::Chat { chat, change } => self.on_chat(&chat, change).await?,
            EngineEvent::Contact { person, change } => {
                if let Some(event) = self
                    .store
                    .contacts()
                    .change_contact(self.org_id, self.id, &person, change)
                    .await?
                {
                    self.hub.publish(event);
                }
            }
            EngineEvent::Presence(notice) => {
                self.publish(EventData::PresenceUpdate {
                    contact: notice.contact,
                    state: notice.state,
                    last_seen: notice.last_seen,
                    chat: notice.chat,
                })
                .await?
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
            EngineEvent::Replaced => {
                // Reconnecting would close the other connection in turn,
                // and the two would take the device from each other for
                // ever, both writing its keys.
                tracing::warn!(
                    "another connection of this device logged in to WhatsApp; \
                     giving way and not reconnecting"
                );
                active.link.disconnect().await;
                self.set_status(SessionStatus::Failed, Some(StatusReason::Replaced))
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
}

impl Supervisor {
    /// Tells WhatsApp the presence the session's setting asks for. The
    /// client announces itself `available` on every connect (and when its
    /// profile name arrives), which silences the phone's own
    /// notifications; said after it, this one is what WhatsApp keeps.
    async fn say_presence(&self, link: Arc<dyn Link>) {
        let presence = self.behaviour.borrow().presence;
        let Some(messenger) = link.messenger() else {
            return;
        };
        match tokio::time::timeout(PRESENCE_TIMEOUT, messenger.set_presence(presence)).await {
            Ok(Ok(())) => tracing::debug!(%presence, "presence sent"),
            Ok(Err(error)) => tracing::warn!(%error, %presence, "could not send the presence"),
            Err(_) => tracing::warn!(%presence, "sending the presence timed out"),
        }
    }

    /// Reports a ringing call, and rejects it if the session's setting says
    /// so.
    async fn on_call(&mut self, offer: CallOffer, link: Arc<dyn Link>) -> Result<(), StepError> {
        self.publish(EventData::CallReceived {
            call_id: offer.call_id.clone(),
            from: offer.from.clone(),
            video: offer.video,
            group: offer.group.clone(),
        })
        .await?;
        if !self.behaviour.borrow().reject_calls {
            if self.ringing.len() == RINGING_KEPT {
                self.ringing.pop_front();
            }
            self.ringing.push_back(offer);
            return Ok(());
        }
        let Some(messenger) = link.messenger() else {
            return Ok(());
        };
        let rejected = tokio::time::timeout(
            PRESENCE_TIMEOUT,
            messenger.reject_call(&offer.call_id, &offer.peer, &offer.creator),
        )
        .await;
        match rejected {
            Ok(Ok(())) => {
                self.publish(EventData::CallRejected {
                    call_id: offer.call_id.clone(),
                    from: offer.from.clone(),
                })
                .await?;
                let reply = self.behaviour.borrow().reject_calls_message.clone();
                if let Some(text) = reply {
                    self.answer_caller(&offer, text).await?;
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "could not reject a call"),
            Err(_) => tracing::warn!("rejecting a call timed out"),
        }
        Ok(())
    }
}

impl Supervisor {
    /// Makes the stored groups what WhatsApp says the number is in, after
    /// every connect (what changed meanwhile also comes as notifications,
    /// which give the events). A failure keeps the stored list as it was,
    /// to be made again on the next connect. In a task of its own, bounded
    /// in time: the supervisor goes on serving its session (the liveness
    /// watch above all) while WhatsApp answers, or does not.
    fn spawn_group_sync(&self, link: Arc<dyn Link>) {
        let Some(groups) = link.messenger().and_then(|m| m.groups()) else {
            return;
        };
        let store = Arc::clone(&self.store);
        let id = self.id;
        tokio::spawn(async move {
            match tokio::time::timeout(GROUP_TIMEOUT, groups.participating()).await {
                Ok(Ok(all)) => {
                    if let Err(error) = store.groups().replace_groups(id, &all).await {
                        tracing::warn!(session = %id, %error, "could not store the session's groups");
                    } else {
                        tracing::debug!(session = %id, groups = all.len(), "groups read from WhatsApp");
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(session = %id, %error, "could not read the session's groups");
                }
                Err(_) => tracing::warn!(session = %id, "reading the session's groups timed out"),
            }
        });
    }

    /// The ringing call `call_id`, forgotten: it is being rejected or it
    /// ended.
    fn take_ringing(&mut self, call_id: &str) -> Option<CallOffer> {
        let at = self.ringing.iter().position(|c| c.call_id == call_id)?;
        self.ringing.remove(at)
    }

    /// Rejects a call that rings now, asked through the API; the caller
    /// sees it declined and `call.rejected` reports it. A call no longer
    /// ringing (or never) is `NoSuchCall`; one WhatsApp did not take the
    /// reject of rings on.
    pub(super) async fn reject_ringing(
        &mut self,
        call_id: &str,
        link: &Arc<dyn Link>,
    ) -> Result<Result<(), CommandError>, StoreError> {
        let Some(offer) = self.take_ringing(call_id) else {
            return Ok(Err(CommandError::NoSuchCall));
        };
        let Some(messenger) = link.messenger() else {
            self.ringing.push_back(offer);
            return Ok(Err(CommandError::Upstream("not connected".into())));
        };
        let rejected = tokio::time::timeout(
            PRESENCE_TIMEOUT,
            messenger.reject_call(&offer.call_id, &offer.peer, &offer.creator),
        )
        .await;
        let failure = match rejected {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some("WhatsApp did not answer in time".into()),
        };
        if let Some(failure) = failure {
            self.ringing.push_back(offer);
            return Ok(Err(CommandError::Upstream(failure)));
        }
        self.publish(EventData::CallRejected {
            call_id: offer.call_id,
            from: offer.from,
        })
        .await?;
        Ok(Ok(()))
    }

    /// Subscribes again to every contact the session asked presence of:
    /// WhatsApp forgets subscriptions with the connection. In a task of
    /// its own, each bounded in time, like the group sync; one that fails
    /// is tried again on the next connect.
    fn spawn_presence_subscriptions(&self, link: Arc<dyn Link>) {
        let Some(messenger) = link.messenger() else {
            return;
        };
        let store = Arc::clone(&self.store);
        let id = self.id;
        tokio::spawn(async move {
            let contacts = match store.presence().presence_subscriptions(id).await {
                Ok(contacts) => contacts,
                Err(error) => {
                    tracing::warn!(session = %id, %error, "could not read the presence subscriptions");
                    return;
                }
            };
            for contact in contacts {
                let Ok(jid) = contact.parse::<Jid>() else {
                    continue;
                };
                let sent = tokio::time::timeout(
                    PRESENCE_TIMEOUT,
                    messenger.subscribe_presence(&jid, true),
                )
                .await;
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(session = %id, %error, "could not subscribe to a presence");
                    }
                    Err(_) => tracing::warn!(session = %id, "a presence subscription timed out"),
                }
            }
        });
    }

    /// A group changed: the stored groups follow and the events that say
    /// so are logged in the same transaction, once per notification
    /// action however often WhatsApp delivers it, then published.
    async fn on_group(
        &mut self,
        mut notice: GroupNotice,
        link: Arc<dyn Link>,
    ) -> Result<(), StepError> {
        let identity = link.identity();
        let me = Me {
            phone: identity.phone.or_else(|| self.identity.0.clone()),
            lid: identity.lid,
        };
        let groups = link.messenger().and_then(|m| m.groups());
        let mut fetched = None;
        if let Some(groups) = &groups {
            for person in notice.people_mut() {
                if person.phone.is_none()
                    && let Some(lid) = person.lid.clone()
                {
                    person.phone = groups.phone_of(&lid).await;
                }
                // Requests name people by number alone: their LID, where
                // the session knows it.
                if person.lid.is_none()
                    && let Some(phone) = person.phone.clone()
                {
                    person.lid = groups.lid_of(&phone).await;
                }
            }
            if notice.brings_me_in(&me)
                && let Ok(jid) = notice.group.parse::<Jid>()
            {
                match tokio::time::timeout(GROUP_TIMEOUT, groups.metadata(&jid)).await {
                    Ok(Ok(info)) => fetched = Some(info),
                    Ok(Err(error)) => tracing::warn!(%error, "could not read a group just joined"),
                    Err(_) => tracing::warn!("reading a group just joined timed out"),
                }
            }
        }
        let (edits, data) = plan(&notice, &me, fetched.as_ref());
        if edits.is_empty() && data.is_empty() {
            return Ok(());
        }
        let mut events: Vec<Envelope> = data.into_iter().map(|d| self.event(d)).collect();
        let applied = self
            .store
            .groups()
            .apply_group_edits(self.id, notice.key.as_ref(), &edits, &mut events)
            .await?;
        if applied {
            for event in events {
                self.hub.publish(event);
            }
        } else {
            tracing::debug!(group = %notice.group, "a group notification delivered again");
        }
        Ok(())
    }
}

impl Supervisor {
    /// The account's app state changed a chat: stored with its
    /// `chat.updated` event, then published. A chat the gateway has no
    /// message in is not in the list, so its settings are not kept; one
    /// already so (this session's own change, echoed) gives no event.
    async fn on_chat(&self, chat: &str, change: ChatChange) -> Result<(), StoreError> {
        match self
            .store
            .chats()
            .change_chat(self.org_id, self.id, chat, change)
            .await?
        {
            ChatChanged::Changed(event) => self.hub.publish(*event),
            ChatChanged::Unchanged => {}
            ChatChanged::NoSuchChat => {
                tracing::debug!(setting = %change.setting(), "app state changed a chat not in the list");
            }
        }
        Ok(())
    }

    /// Queues the session's answer to a rejected caller in its outbox,
    /// like any message sent through the API (stored, then sent in order
    /// while `working`, retried, reported by `message.status`).
    async fn answer_caller(&self, offer: &CallOffer, text: String) -> Result<(), StoreError> {
        let Ok(to) = offer.creator.parse::<Recipient>() else {
            tracing::warn!("a rejected caller cannot be answered: not a person's JID");
            return Ok(());
        };
        let message = OutgoingMessage {
            to,
            reply_to: None,
            content: Content::Text {
                body: text,
                link_preview: false,
            },
        };
        let content = match serde_json::to_value(&message) {
            Ok(content) => content,
            Err(error) => {
                tracing::error!(%error, "could not encode the answer to a caller");
                return Ok(());
            }
        };
        let accepted = self
            .store
            .messages()
            .accept(
                NewOutgoing {
                    id: MessageId::new(),
                    org_id: self.org_id,
                    session_id: self.id,
                    wa_id: RequestUtils::message_id_at(None, wacore::time::now_secs_u64()),
                    chat: message.to.to_string(),
                    kind: message.content.kind().as_str().to_string(),
                    content,
                    media: None,
                },
                None,
            )
            .await?;
        if let Accepted::Created { event, .. } = accepted {
            self.hub.publish(*event);
            self.outbox.notify_one();
        }
        Ok(())
    }
}

/// How long reading a session's groups (or one group) from WhatsApp may
/// take.
const GROUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a presence or a call's reject may take to send.
const PRESENCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
