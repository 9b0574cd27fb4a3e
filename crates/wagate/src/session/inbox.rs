//! A session's incoming messages: stored, each with its event, before the
//! engine tells WhatsApp they arrived; published once stored.

use std::sync::Arc;

use async_trait::async_trait;

use super::engine::{InboundError, InboundSink};
use crate::domain::{MessageId, OrgId, SessionId};
use crate::events::EventHub;
use crate::messages::Inbound;
use crate::store::{NewIncoming, Store};

pub struct Inbox {
    store: Arc<dyn Store>,
    hub: EventHub,
    org_id: OrgId,
    session_id: SessionId,
}

impl Inbox {
    pub fn new(store: Arc<dyn Store>, hub: EventHub, org_id: OrgId, session_id: SessionId) -> Self {
        Self {
            store,
            hub,
            org_id,
            session_id,
        }
    }
}

#[async_trait]
impl InboundSink for Inbox {
    async fn record(&self, batch: Vec<Inbound>) -> Result<(), InboundError> {
        let count = batch.len();
        let batch = batch
            .into_iter()
            .map(|inbound| NewIncoming {
                id: MessageId::new(),
                org_id: self.org_id,
                session_id: self.session_id,
                inbound,
            })
            .collect();
        let events = self
            .store
            .messages()
            .record_incoming(batch)
            .await
            .inspect_err(|error| {
                // WhatsApp will deliver them again: nothing is lost yet,
                // but a store that keeps failing is worth knowing about.
                tracing::error!(%error, count, "could not store incoming messages");
            })?;
        tracing::debug!(count, new = events.len(), "incoming messages stored");
        // Only after the commit: a subscriber never hears of a message the
        // store does not have.
        for event in events {
            self.hub.publish(event);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::events::{EventData, EventType, Filter, HubLimits};
    use crate::messages::{IncomingContent, Sender};
    use crate::store::{NewSession, SqliteStore, StoreError};

    fn text(wa_id: &str, chat: &str) -> Inbound {
        Inbound {
            wa_id: wa_id.into(),
            chat: chat.into(),
            sender: Sender {
                phone: Some("15550001111".into()),
                lid: Some("99887766".into()),
            },
            push_name: Some("Bob".into()),
            timestamp: Utc::now(),
            from_me: false,
            content: IncomingContent::Text { body: "hi".into() },
            media: None,
            reply_to: None,
        }
    }

    #[tokio::test]
    async fn each_message_is_published_once_after_it_is_stored() -> Result<(), StoreError> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::connect("sqlite::memory:").await?);
        let org = store.orgs().create_org("acme").await?;
        let session = store
            .sessions()
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org.id,
                label: None,
                pace: Default::default(),
            })
            .await?;
        let hub = EventHub::new(HubLimits {
            client_buffer: 16,
            max_clients_per_org: 4,
        });
        let Ok(mut events) = hub.subscribe(org.id, Filter::default()) else {
            panic!("subscribe");
        };
        let inbox = Inbox::new(Arc::clone(&store), hub.clone(), org.id, session.id);
        let first = text("3EB0A", "15550001111@s.whatsapp.net");
        // The same message under the sender's LID, in the same batch and
        // again later (a redelivery).
        let by_lid = text("3EB0A", "99887766@lid");
        assert!(
            inbox
                .record(vec![first.clone(), by_lid.clone()])
                .await
                .is_ok()
        );
        assert!(inbox.record(vec![first]).await.is_ok());
        let received = events
            .recv()
            .await
            .map_err(|_| StoreError::Corrupt("closed".into()))?;
        assert_eq!(
            received.envelope.data.event_type(),
            EventType::MessageReceived
        );
        let EventData::MessageReceived(message) = &received.envelope.data else {
            panic!("not a message.received");
        };
        assert_eq!(message.wa_id, "3EB0A");
        assert_eq!(message.chat, "15550001111@s.whatsapp.net");
        drop(inbox);
        drop(hub);
        assert!(events.recv().await.is_err(), "one event only");
        let logged = store.events().events_after(org.id, None, 10).await?;
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0], received.envelope);
        Ok(())
    }
}
