//! One message of the client's, as the gateway records it: its chat, its
//! sender (by number and LID) and its decoded content.

use whatsapp_rust::Jid;
use whatsapp_rust::prelude::Client;
use whatsapp_rust::wacore_binary::JidExt;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::messages::incoming::{self, Inbound, Sender};

/// One message as the gateway records it; `None` for what is not a user
/// message (key shares, sender keys alone, protocol chatter).
pub(super) fn to_inbound(
    info: &whatsapp_rust::types::message::MessageInfo,
    message: &wa::Message,
) -> Option<Inbound> {
    let source = &info.source;
    // Contacts' status updates come as messages to status@broadcast; they
    // are not messages to this number.
    if source.chat.is_status_broadcast() {
        return None;
    }
    let (content, media) = incoming::decode(message)?;
    let sender = sender_of(&source.sender, source.sender_alt.as_ref());
    // A one-to-one chat is named by the other person's number when it is
    // known, so the same person's chat has one name whichever address
    // WhatsApp used (and the name outgoing messages use).
    let chat = if source.is_group || source.chat.is_group() {
        source.chat.to_non_ad_string()
    } else if source.is_from_me {
        source
            .recipient_alt
            .as_ref()
            .or(source.recipient.as_ref())
            .filter(|jid| jid.is_pn())
            .map(Jid::to_non_ad_string)
            .unwrap_or_else(|| source.chat.to_non_ad_string())
    } else {
        match &sender.phone {
            Some(phone) if source.chat.is_lid() => format!("{phone}@s.whatsapp.net"),
            _ => source.chat.to_non_ad_string(),
        }
    };
    Some(Inbound {
        wa_id: info.id.clone(),
        chat,
        sender,
        push_name: (!info.push_name.is_empty()).then(|| info.push_name.clone()),
        timestamp: info.timestamp,
        from_me: source.is_from_me,
        reply_to: incoming::reply_to(message),
        content,
        media,
    })
}

fn sender_of(sender: &Jid, alt: Option<&Jid>) -> Sender {
    let mut found = Sender::default();
    for jid in std::iter::once(sender).chain(alt) {
        if jid.is_lid() && found.lid.is_none() {
            found.lid = Some(jid.user.to_string());
        } else if jid.is_pn() && found.phone.is_none() {
            found.phone = Some(jid.user.to_string());
        }
    }
    found
}

/// Completes the sender with the client's LID-to-number mapping when the
/// message named only one of them. Best effort: a failed lookup leaves the
/// other unknown.
pub(super) async fn fill_sender(client: &Client, sender: &mut Sender) {
    let known = match (&sender.phone, &sender.lid) {
        (Some(_), Some(_)) | (None, None) => return,
        (Some(phone), None) => Jid::pn(phone.as_str()),
        (None, Some(lid)) => Jid::lid(lid.as_str()),
    };
    if let Ok(Some(entry)) = client.get_lid_pn_entry(&known).await {
        sender
            .phone
            .get_or_insert_with(|| entry.phone_number.to_string());
        sender.lid.get_or_insert_with(|| entry.lid.to_string());
    }
}

#[cfg(test)]
mod tests {
    use whatsapp_rust::types::message::{MessageInfo, MessageSource};

    use super::*;

    fn jid(s: &str) -> Jid {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    fn text() -> wa::Message {
        wa::Message {
            conversation: Some("hi".into()),
            ..Default::default()
        }
    }

    fn info(source: MessageSource) -> MessageInfo {
        MessageInfo {
            source,
            id: "3EB0X".into(),
            push_name: "Bob".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_chat_by_lid_is_named_by_the_number_when_it_is_known() {
        let source = MessageSource {
            chat: jid("99887766@lid"),
            sender: jid("99887766:2@lid"),
            sender_alt: Some(jid("15550001111:2@s.whatsapp.net")),
            ..Default::default()
        };
        let inbound = to_inbound(&info(source), &text()).unwrap_or_else(|| panic!("decoded"));
        assert_eq!(inbound.chat, "15550001111@s.whatsapp.net");
        assert_eq!(inbound.sender.phone.as_deref(), Some("15550001111"));
        assert_eq!(inbound.sender.lid.as_deref(), Some("99887766"));
        assert_eq!(inbound.push_name.as_deref(), Some("Bob"));
        assert!(!inbound.from_me);
    }

    #[test]
    fn a_group_message_keeps_the_group_as_chat_and_its_author_as_sender() {
        let source = MessageSource {
            chat: jid("120363025246125888@g.us"),
            sender: jid("15550001111:3@s.whatsapp.net"),
            is_group: true,
            ..Default::default()
        };
        let inbound = to_inbound(&info(source), &text()).unwrap_or_else(|| panic!("decoded"));
        assert_eq!(inbound.chat, "120363025246125888@g.us");
        assert_eq!(inbound.sender.phone.as_deref(), Some("15550001111"));
        assert_eq!(inbound.sender.lid, None);
    }

    #[test]
    fn what_the_own_phone_sent_is_in_the_recipients_chat() {
        let source = MessageSource {
            chat: jid("44332211@lid"),
            sender: jid("15550002222:0@s.whatsapp.net"),
            is_from_me: true,
            recipient: Some(jid("44332211@lid")),
            recipient_alt: Some(jid("15550003333@s.whatsapp.net")),
            ..Default::default()
        };
        let inbound = to_inbound(&info(source), &text()).unwrap_or_else(|| panic!("decoded"));
        assert!(inbound.from_me);
        assert_eq!(inbound.chat, "15550003333@s.whatsapp.net");
    }

    #[test]
    fn protocol_chatter_is_not_recorded() {
        let source = MessageSource {
            chat: jid("15550001111@s.whatsapp.net"),
            sender: jid("15550001111@s.whatsapp.net"),
            ..Default::default()
        };
        assert!(to_inbound(&info(source), &wa::Message::default()).is_none());
        let status = MessageSource {
            chat: jid("status@broadcast"),
            sender: jid("15550001111@s.whatsapp.net"),
            ..Default::default()
        };
        assert!(to_inbound(&info(status), &text()).is_none());
    }
}
