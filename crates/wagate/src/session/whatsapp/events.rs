//! The library's events mapped to the gateway's: [`EngineEvent`]s for
//! the supervisor, [`Delivery`] reports for the outbox.

use std::sync::Arc;

use tokio::sync::mpsc;
use wacore::stanza::groups::{GroupNotificationAction, GroupParticipantInfo, GroupParticipantType};
use wacore::types::call::{CallAction, IncomingCall};
use wacore::types::events::{
    ChatPresenceUpdate, ContactUpdate, GroupUpdate, LazyHistorySync, PictureUpdate,
};
use wacore::types::presence::{ChatPresence, ChatPresenceMedia, ReceiptType};
use whatsapp_rust::Jid;
use whatsapp_rust::prelude::{Event, EventHandler, EventInterest, EventKind};
use whatsapp_rust::wacore_binary::JidExt;

use crate::domain::GroupMember;
use crate::domain::{
    CallOutcome, ChatChange, ContactPresence, GroupRole, MessageStatus, Mute, PictureChange,
};
use crate::events::GroupUpdate as Changes;
use crate::messages::Sender;
use crate::session::engine::{CallOffer, Delivery, EngineEvent, PresenceNotice};
use crate::session::group_events::{GroupNotice, NoticeChange};
use crate::store::NoticeKey;
use crate::store::contacts::{ContactChange, Person};

/// Turns the library's events into [`EngineEvent`]s for the supervisor and
/// [`Delivery`] reports for the outbox. Called inline by the event bus, so
/// it only maps and enqueues, in arrival order.
pub(super) struct Forwarder {
    pub(super) events: mpsc::UnboundedSender<EngineEvent>,
    pub(super) deliveries: mpsc::UnboundedSender<Delivery>,
    /// The connection's history task (`history.rs`).
    pub(super) history: mpsc::UnboundedSender<LazyHistorySync>,
}

impl Forwarder {
    fn delivery(event: &Event) -> Option<Delivery> {
        match event {
            Event::ServerAck(ack) if ack.class.as_deref().is_none_or(|c| c == "message") => {
                Some(Delivery::ServerAck {
                    wa_id: ack.id.clone(),
                    // A code that is not a number is still a refusal.
                    error: ack.error.as_deref().map(|code| code.parse().unwrap_or(0)),
                })
            }
            Event::Receipt(receipt) if !receipt.source.is_from_me => {
                let status = match receipt.r#type {
                    ReceiptType::Delivered => MessageStatus::Delivered,
                    ReceiptType::Read => MessageStatus::Read,
                    ReceiptType::Played => MessageStatus::Played,
                    _ => return None,
                };
                Some(Delivery::Receipt {
                    wa_ids: receipt
                        .message_ids
                        .iter()
                        .map(|id| id.to_string())
                        .collect(),
                    status,
                })
            }
            _ => None,
        }
    }
}

impl EventHandler for Forwarder {
    fn handle_event(&self, event: Arc<Event>) {
        if let Some(delivery) = Self::delivery(&event) {
            // A closed channel means the session is going away.
            let _ = self.deliveries.send(delivery);
            return;
        }
        if let Event::HistorySync(lazy) = &*event {
            // A refcounted handle on the compressed chunk; decoded there.
            let _ = self.history.send(lazy.as_ref().clone());
            return;
        }
        let mapped = match &*event {
            Event::PairingQrCode(qr) => EngineEvent::QrCode {
                code: qr.code.clone(),
                valid_for: qr.timeout,
            },
            Event::PairingQrCodesExhausted(_) => EngineEvent::QrCodesExhausted,
            Event::PairingCode(code) => EngineEvent::PairingCode {
                code: code.code.clone(),
                valid_for: code.timeout,
            },
            Event::PairSuccess(success) => EngineEvent::Paired {
                phone: success.id.user.to_string(),
            },
            Event::Connected(_) => EngineEvent::Connected,
            Event::LoggedOut(_) => EngineEvent::LoggedOut,
            Event::TemporaryBan(ban) => EngineEvent::TemporarilyBanned {
                expires_in: ban.expire.to_std().unwrap_or_default(),
            },
            Event::ClientOutdated(_) => EngineEvent::ClientOutdated,
            Event::StreamReplaced(_) => EngineEvent::Replaced,
            Event::SelfPushNameUpdated(_) => EngineEvent::PushNameChanged,
            Event::Presence(update) => EngineEvent::Presence(PresenceNotice {
                contact: person(&update.from.to_non_ad(), None),
                state: if update.unavailable {
                    ContactPresence::Unavailable
                } else {
                    ContactPresence::Available
                },
                last_seen: update.last_seen,
                chat: None,
            }),
            Event::ChatPresence(update) => EngineEvent::Presence(chat_presence(update)),
            Event::IncomingCall(call) => match offer(call).or_else(|| ended(call)) {
                Some(mapped) => mapped,
                None => return,
            },
            Event::GroupUpdate(update) => match group_notice(update) {
                Some(notice) => EngineEvent::Group(Box::new(notice)),
                None => return,
            },
            Event::PictureUpdate(picture) if picture.jid.is_group() => {
                EngineEvent::Group(Box::new(picture_notice(picture)))
            }
            Event::PictureUpdate(picture) => {
                match Person::from_jid(&picture.jid.to_non_ad().to_string()) {
                    Some(person) => EngineEvent::Contact {
                        person,
                        change: ContactChange::Picture(if picture.removed {
                            None
                        } else {
                            picture.picture_id.clone()
                        }),
                    },
                    None => return,
                }
            }
            Event::ContactUpdate(update) => match saved_contact(update) {
                Some(mapped) => mapped,
                None => return,
            },
            Event::ArchiveUpdate(update) => EngineEvent::Chat {
                chat: update.jid.to_non_ad().to_string(),
                change: ChatChange::Archive(update.action.archived.unwrap_or(false)),
            },
            Event::PinUpdate(update) => EngineEvent::Chat {
                chat: update.jid.to_non_ad().to_string(),
                change: ChatChange::Pin(update.action.pinned.unwrap_or(false)),
            },
            Event::MuteUpdate(update) => EngineEvent::Chat {
                chat: update.jid.to_non_ad().to_string(),
                change: ChatChange::Mute(if update.action.muted.unwrap_or(false) {
                    // WhatsApp writes -1 (or leaves it out) for "for ever".
                    Mute::from_millis(Some(update.action.mute_end_timestamp.unwrap_or(-1)))
                } else {
                    Mute::Off
                }),
            },
            Event::MarkChatAsReadUpdate(update) => EngineEvent::Chat {
                chat: update.jid.to_non_ad().to_string(),
                change: ChatChange::Read(update.action.read.unwrap_or(true)),
            },
            _ => return,
        };
        // A closed channel means the supervisor is gone; nothing to tell.
        let _ = self.events.send(mapped);
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(&[
            EventKind::PairingQrCode,
            EventKind::PairingQrCodesExhausted,
            EventKind::PairingCode,
            EventKind::PairSuccess,
            EventKind::Connected,
            EventKind::LoggedOut,
            EventKind::TemporaryBan,
            EventKind::ClientOutdated,
            EventKind::StreamReplaced,
            EventKind::SelfPushNameUpdated,
            EventKind::IncomingCall,
            EventKind::Presence,
            EventKind::ChatPresence,
            EventKind::GroupUpdate,
            EventKind::PictureUpdate,
            EventKind::ContactUpdate,
            EventKind::ArchiveUpdate,
            EventKind::PinUpdate,
            EventKind::MuteUpdate,
            EventKind::MarkChatAsReadUpdate,
            EventKind::ServerAck,
            EventKind::Receipt,
            EventKind::HistorySync,
        ])
    }
}

/// A contact the account's user saved (or renamed, or removed from their
/// address book), as the app state's `contact` action says: the index
/// names them by one id, the action may add the other.
fn saved_contact(update: &ContactUpdate) -> Option<EngineEvent> {
    let mut person = Person::from_jid(&update.jid.to_non_ad().to_string())?;
    let action = &update.action;
    let other = |jid: &Option<String>| jid.as_deref().and_then(Person::from_jid);
    if let Some(pn) = other(&action.pn_jid) {
        person.phone = person.phone.or(pn.phone);
    }
    if let Some(lid) = other(&action.lid_jid) {
        person.lid = person.lid.or(lid.lid);
    }
    let name = action
        .full_name
        .clone()
        .or_else(|| action.first_name.clone())
        .filter(|n| !n.trim().is_empty());
    Some(EngineEvent::Contact {
        person,
        change: ContactChange::SavedName(name),
    })
}

/// Someone typing, recording or stopping in a chat with the number.
fn chat_presence(update: &ChatPresenceUpdate) -> PresenceNotice {
    let state = match (update.state, update.media) {
        (ChatPresence::Composing, ChatPresenceMedia::Audio) => ContactPresence::Recording,
        (ChatPresence::Composing, ChatPresenceMedia::Text) => ContactPresence::Composing,
        (ChatPresence::Paused, _) => ContactPresence::Paused,
    };
    PresenceNotice {
        contact: person(&update.source.sender.to_non_ad(), None),
        state,
        last_seen: None,
        chat: Some(update.source.chat.to_non_ad().to_string()),
    }
}

/// A call that rings now: an offer. (One replayed from the offline queue
/// comes as a missed call instead, and every later signal of a call is
/// not an offer.)
fn offer(call: &IncomingCall) -> Option<EngineEvent> {
    let CallAction::Offer {
        call_id,
        call_creator,
        caller_pn,
        is_video,
        group_jid,
        ..
    } = &call.action
    else {
        return None;
    };
    if call.offline {
        return None;
    }
    Some(EngineEvent::IncomingCall(CallOffer {
        call_id: call_id.clone(),
        peer: call.from.to_string(),
        creator: call_creator.to_string(),
        from: person(call_creator, caller_pn.as_ref()),
        video: *is_video,
        group: group_jid.as_ref().map(|g| g.to_non_ad().to_string()),
    }))
}

/// A call that ended without this device taking it: an offer that rang
/// while the session was offline (replayed on reconnect), or the caller's
/// `<terminate>`, whose reason says whether the phone answered or declined
/// it or the caller gave up. (whatsapp-rust reports these as `MissedCall`
/// and `CallEndedElsewhere` only with its `voip-runtime` feature, a WebRTC
/// stack the gateway has no use for.) Whether the call rang here first is
/// the supervisor's to know.
fn ended(call: &IncomingCall) -> Option<EngineEvent> {
    let (call_id, creator, caller_pn, outcome) = match &call.action {
        CallAction::Offer {
            call_id,
            call_creator,
            caller_pn,
            ..
        } if call.offline => (
            call_id,
            call_creator,
            caller_pn.as_ref(),
            CallOutcome::MissedOffline,
        ),
        CallAction::Terminate {
            call_id,
            call_creator,
            reason,
            ..
        } => {
            let outcome = match reason.as_deref() {
                None | Some("timeout") | Some("group_call_ended") => CallOutcome::Missed,
                Some("accepted_elsewhere") => CallOutcome::AnsweredElsewhere,
                Some("rejected_elsewhere") => CallOutcome::RejectedElsewhere,
                Some(_) => return None,
            };
            (call_id, call_creator, None, outcome)
        }
        _ => return None,
    };
    Some(EngineEvent::CallEnded {
        call_id: call_id.clone(),
        from: person(creator, caller_pn),
        outcome,
    })
}

/// A person by phone and LID, from a JID of either kind and the phone
/// number WhatsApp added to a LID.
fn person(jid: &Jid, pn: Option<&Jid>) -> Sender {
    if jid.is_lid() {
        Sender {
            phone: pn.map(|pn| pn.user.to_string()),
            lid: Some(jid.user.to_string()),
        }
    } else {
        Sender {
            phone: Some(jid.user.to_string()),
            lid: None,
        }
    }
}

/// A group member named by a JID of either kind and what WhatsApp added:
/// the number of a LID, the LID of a number.
fn member(jid: &Jid, pn: Option<&Jid>, lid: Option<&Jid>, role: GroupRole) -> GroupMember {
    if jid.is_lid() {
        GroupMember {
            phone: pn.map(|p| p.user.to_string()),
            lid: Some(format!("{}@lid", jid.user)),
            role,
        }
    } else {
        GroupMember {
            phone: Some(jid.user.to_string()),
            lid: lid.map(|l| format!("{}@lid", l.user)),
            role,
        }
    }
}

fn members(people: &[GroupParticipantInfo]) -> Vec<GroupMember> {
    people
        .iter()
        .map(|p| {
            let role = match p.r#type {
                Some(GroupParticipantType::SuperAdmin) => GroupRole::SuperAdmin,
                Some(GroupParticipantType::Admin) => GroupRole::Admin,
                _ => GroupRole::Member,
            };
            member(&p.jid, p.phone_number.as_ref(), p.lid.as_ref(), role)
        })
        .collect()
}

/// One action of a `w:gp2` notification, as the supervisor acts on it;
/// `None` for what the gateway does not report (communities, moderation).
fn group_notice(update: &GroupUpdate) -> Option<GroupNotice> {
    let by = update
        .participant
        .as_ref()
        .map(|p| member(p, update.participant_pn.as_ref(), None, GroupRole::Member));
    let changed = |changes: Changes| Some(NoticeChange::Updated(changes));
    let change = match &update.action {
        GroupNotificationAction::Create { .. } => Some(NoticeChange::Created),
        GroupNotificationAction::Add {
            participants,
            reason,
        } => Some(NoticeChange::Added {
            people: members(participants),
            invite: reason.as_deref() == Some("invite"),
        }),
        // Joined through a link: the one who joined is the participant.
        GroupNotificationAction::Invite { .. } => by.clone().map(|joiner| NoticeChange::Added {
            people: vec![joiner],
            invite: true,
        }),
        GroupNotificationAction::Remove { participants, .. } => Some(NoticeChange::Removed {
            people: members(participants),
        }),
        GroupNotificationAction::Promote { participants } => Some(NoticeChange::Promoted {
            people: members(participants),
        }),
        GroupNotificationAction::Demote { participants } => Some(NoticeChange::Demoted {
            people: members(participants),
        }),
        GroupNotificationAction::MembershipApprovalRequest { .. } => {
            by.clone().map(|asker| NoticeChange::Requested {
                people: vec![asker],
            })
        }
        GroupNotificationAction::CreatedMembershipRequests { requests, .. } => {
            Some(NoticeChange::Requested {
                people: members(requests),
            })
        }
        GroupNotificationAction::Subject { subject, .. } => changed(Changes {
            subject: Some(subject.clone()),
            ..Changes::default()
        }),
        GroupNotificationAction::Description { description, .. } => changed(Changes {
            description: Some(description.clone().unwrap_or_default()),
            ..Changes::default()
        }),
        GroupNotificationAction::Locked { .. } => changed(Changes {
            locked: Some(true),
            ..Changes::default()
        }),
        GroupNotificationAction::Unlocked => changed(Changes {
            locked: Some(false),
            ..Changes::default()
        }),
        GroupNotificationAction::Announce => changed(Changes {
            announce: Some(true),
            ..Changes::default()
        }),
        GroupNotificationAction::NotAnnounce => changed(Changes {
            announce: Some(false),
            ..Changes::default()
        }),
        GroupNotificationAction::Ephemeral { expiration, .. } => changed(Changes {
            ephemeral: Some(*expiration),
            ..Changes::default()
        }),
        GroupNotificationAction::MembershipApprovalMode { enabled } => changed(Changes {
            approval: Some(*enabled),
            ..Changes::default()
        }),
        GroupNotificationAction::Delete { .. } => Some(NoticeChange::Deleted),
        GroupNotificationAction::RevokeInvite => changed(Changes {
            invite_reset: Some(true),
            ..Changes::default()
        }),
        _ => None,
    }?;
    Some(GroupNotice {
        group: update.group_jid.to_non_ad().to_string(),
        key: update.notification_id.clone().map(|id| NoticeKey {
            notification: id,
            action: update.action_index,
        }),
        by,
        change,
    })
}

/// A group's picture set or removed (a `picture` notification), keyed by
/// the new picture's id where there is one.
fn picture_notice(picture: &PictureUpdate) -> GroupNotice {
    GroupNotice {
        group: picture.jid.to_non_ad().to_string(),
        key: picture.picture_id.clone().map(|id| NoticeKey {
            notification: format!("picture:{id}"),
            action: 0,
        }),
        by: picture
            .author
            .as_ref()
            .map(|a| member(a, None, None, GroupRole::Member)),
        change: NoticeChange::Updated(Changes {
            picture: Some(if picture.removed {
                PictureChange::Removed
            } else {
                PictureChange::Set
            }),
            ..Changes::default()
        }),
    }
}
