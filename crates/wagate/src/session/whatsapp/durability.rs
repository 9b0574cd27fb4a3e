//! whatsapp-rust's durability hook ([`DurableInbox`]): a batch of
//! decrypted messages is stored before the client acks it, with poll votes
//! opened on the way.

use std::sync::Arc;

use async_trait::async_trait;
use whatsapp_rust::InboundDurabilityHook;
use whatsapp_rust::Jid;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::prelude::Client;
use whatsapp_rust::types::events::InboundMessage;
use whatsapp_rust::waproto::whatsapp as wa;

use super::inbound::{fill_sender, to_inbound};
use crate::domain::Direction;
use crate::messages::incoming::{self, IncomingContent};
use crate::session::engine::{InboundError, InboundSink};
use crate::store::StoredPoll;

/// whatsapp-rust's durability hook: every batch of decrypted messages is
/// stored (through the session's [`InboundSink`]) before the client acks
/// it. An error keeps the ack back, so WhatsApp delivers the batch again.
pub(super) struct DurableInbox {
    pub(super) sink: Arc<dyn InboundSink>,
}

#[async_trait]
impl InboundDurabilityHook for DurableInbox {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        let own: Vec<String> = [client.pn(), client.lid()]
            .into_iter()
            .flatten()
            .map(|jid| jid.user.to_string())
            .collect();
        let mut decoded = Vec::with_capacity(batch.len());
        for item in batch {
            let Some(mut inbound) = to_inbound(&item.info, &item.message) else {
                continue;
            };
            let from_me = inbound.from_me;
            if let Some(target) = inbound.content.target_mut() {
                target.resolve_author(from_me, |user| own.iter().any(|o| o == user));
            }
            if let IncomingContent::PollVote {
                target,
                selected_options,
            } = &mut inbound.content
            {
                // A store that cannot be read is an error like one that
                // cannot be written: no ack, WhatsApp delivers it again.
                *selected_options =
                    open_vote(&client, self.sink.as_ref(), item, &target.wa_id).await?;
            }
            fill_sender(&client, &mut inbound.sender).await;
            decoded.push(inbound);
        }
        if decoded.is_empty() {
            return Ok(());
        }
        self.sink.record(decoded).await?;
        Ok(())
    }
}

/// The options a poll vote chose, by name; `None` when the gateway cannot
/// open it: it does not have the poll (sent before this number was linked,
/// or from a device it never heard from) or the poll's secret.
async fn open_vote(
    client: &Arc<Client>,
    sink: &dyn InboundSink,
    item: &InboundMessage,
    poll_id: &str,
) -> Result<Option<Vec<String>>, InboundError> {
    let Some(cipher) = incoming::poll_vote_cipher(&item.message) else {
        return Ok(None);
    };
    let Some(poll) = sink.poll(poll_id).await? else {
        return Ok(None);
    };
    let Some((secret, creator)) = poll_secret(client, &poll, poll_id).await else {
        return Ok(None);
    };
    match client
        .polls()
        .decrypt_vote(cipher, &secret, poll_id, &creator, &item.info.source.sender)
        .await
    {
        Ok(chosen) => Ok(incoming::chosen_options(&poll.options, &chosen)),
        Err(error) => {
            tracing::debug!(%error, "a poll vote did not open");
            Ok(None)
        }
    }
}

/// A poll's secret and who created it. For a poll this session sent, the
/// secret is in the message as sent (kept by the outbox); for one it
/// received, in the client's store of message secrets, which keeps them
/// under the chat and the sender as the poll arrived (a LID or a number).
async fn poll_secret(
    client: &Arc<Client>,
    poll: &StoredPoll,
    poll_id: &str,
) -> Option<(Vec<u8>, Jid)> {
    match poll.direction {
        Direction::Outgoing => {
            let wire = wa::Message::decode(&mut poll.wire.as_deref()?).ok()?;
            let secret = wire
                .message_context_info
                .as_option()?
                .message_secret
                .clone()?;
            Some((secret, client.pn().or_else(|| client.lid())?))
        }
        Direction::Incoming => {
            let creators: Vec<Jid> = [
                poll.sender
                    .phone
                    .as_ref()
                    .map(|phone| Jid::pn(phone.as_str())),
                poll.sender.lid.as_ref().map(|lid| Jid::lid(lid.as_str())),
            ]
            .into_iter()
            .flatten()
            .collect();
            let backend = client.persistence_manager().backend();
            for creator in &creators {
                let sender = creator.to_non_ad_string();
                // A one-to-one chat is keyed by the other person, as
                // they were addressed; a group by its own JID.
                let chats = if poll.chat.ends_with("@g.us") {
                    vec![poll.chat.clone()]
                } else {
                    creators.iter().map(Jid::to_non_ad_string).collect()
                };
                for chat in chats {
                    if let Ok(Some(secret)) = backend.get_msg_secret(&chat, &sender, poll_id).await
                    {
                        return Some((secret, creator.clone()));
                    }
                }
            }
            None
        }
    }
}
