//! The library's events mapped to the gateway's: [`EngineEvent`]s for
//! the supervisor, [`Delivery`] reports for the outbox.

use std::sync::Arc;

use tokio::sync::mpsc;
use wacore::types::call::{CallAction, IncomingCall};
use wacore::types::presence::ReceiptType;
use whatsapp_rust::Jid;
use whatsapp_rust::prelude::{Event, EventHandler, EventInterest, EventKind};

use crate::domain::MessageStatus;
use crate::messages::Sender;
use crate::session::engine::{CallOffer, Delivery, EngineEvent};

/// Turns the library's events into [`EngineEvent`]s for the supervisor and
/// [`Delivery`] reports for the outbox. Called inline by the event bus, so
/// it only maps and enqueues, in arrival order.
pub(super) struct Forwarder {
    pub(super) events: mpsc::UnboundedSender<EngineEvent>,
    pub(super) deliveries: mpsc::UnboundedSender<Delivery>,
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
            Event::IncomingCall(call) => match offer(call) {
                Some(offer) => EngineEvent::IncomingCall(offer),
                None => return,
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
            EventKind::ServerAck,
            EventKind::Receipt,
        ])
    }
}

/// A call that rings now: an offer. (One replayed from the offline queue
/// comes as a missed call instead, and every later signal of a call is
/// not an offer.)
fn offer(call: &IncomingCall) -> Option<CallOffer> {
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
    Some(CallOffer {
        call_id: call_id.clone(),
        peer: call.from.to_string(),
        creator: call_creator.to_string(),
        from: person(call_creator, caller_pn.as_ref()),
        video: *is_video,
        group: group_jid.as_ref().map(|g| g.to_non_ad().to_string()),
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
