//! A session's incoming messages: stored, each with its event, before the
//! engine tells WhatsApp they arrived; published once stored.
//!
//! Every session's batches go through the store's group-commit writer
//! (`MessageStore::record_incoming`), which commits the batches waiting at
//! that moment together: one transaction for many sessions' messages
//! instead of one each.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::engine::{HistoryChunk, InboundError, InboundSink};
use crate::domain::{HistoryScope, MessageId, OrgId, SessionBehaviour, SessionId};
use crate::hub::EventHub;
use crate::messages::Inbound;
use crate::store::{NewHistory, NewIncoming, Store, StoredPoll};

pub(crate) struct Inbox {
    store: Arc<dyn Store>,
    hub: EventHub,
    org_id: OrgId,
    session_id: SessionId,
    /// The session's settings, for how much history it keeps.
    behaviour: watch::Receiver<SessionBehaviour>,
}

impl Inbox {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        hub: EventHub,
        org_id: OrgId,
        session_id: SessionId,
        behaviour: watch::Receiver<SessionBehaviour>,
    ) -> Self {
        Self {
            store,
            hub,
            org_id,
            session_id,
            behaviour,
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

    async fn poll(&self, wa_id: &str) -> Result<Option<StoredPoll>, InboundError> {
        Ok(self.store.messages().poll(self.session_id, wa_id).await?)
    }

    fn history_scope(&self) -> HistoryScope {
        self.behaviour.borrow().history
    }

    async fn history(&self, chunk: HistoryChunk) -> Result<(), InboundError> {
        // The setting may have changed since the engine looked.
        if !self.history_scope().keeps(chunk.sync_type) {
            return Ok(());
        }
        let history = NewHistory {
            org_id: self.org_id,
            session_id: self.session_id,
            sync_type: chunk.sync_type,
            chunk_order: chunk.chunk_order,
            progress: chunk.progress,
            chats: chunk.chats,
            push_names: chunk.push_names,
        };
        let count = history.message_count();
        let stored = self
            .store
            .chats()
            .record_history(history)
            .await
            .inspect_err(|error| {
                tracing::error!(%error, count, "could not store a history chunk");
            })?;
        tracing::debug!(count, "history chunk stored");
        for event in stored.contacts {
            self.hub.publish(event);
        }
        self.hub.publish(stored.sync);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::events::{EventData, EventType};
    use crate::hub::{Filter, HubLimits};
    use crate::messages::{IncomingContent, Sender};
    use crate::store::{NewSession, SessionRecord, SqliteStore, StoreError};

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

    async fn new_session(store: &dyn Store, org: OrgId) -> Result<SessionRecord, StoreError> {
        store
            .sessions()
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org,
                label: None,
                pace: Default::default(),
                history: Default::default(),
            })
            .await
    }

    #[tokio::test]
    async fn each_message_is_published_once_after_it_is_stored() -> Result<(), StoreError> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::connect("sqlite::memory:").await?);
        let org = store.orgs().create_org("acme").await?;
        let session = new_session(store.as_ref(), org.id).await?;
        let hub = EventHub::new(HubLimits {
            client_buffer: 16,
            max_clients_per_org: 4,
        });
        let Ok(mut events) = hub.subscribe(org.id, Filter::default()) else {
            panic!("subscribe");
        };
        let (_behaviour, watching) = watch::channel(SessionBehaviour::default());
        let inbox = Inbox::new(
            Arc::clone(&store),
            hub.clone(),
            org.id,
            session.id,
            watching,
        );
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

    /// Batches committed together are answered each with its own result:
    /// one that cannot be stored (its session does not exist) fails alone,
    /// the others are stored.
    #[tokio::test]
    async fn a_failing_batch_does_not_fail_the_batches_committed_with_it() -> Result<(), StoreError>
    {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::connect("sqlite::memory:").await?);
        let org = store.orgs().create_org("acme").await?;
        let mut sessions = Vec::new();
        for _ in 0..2 {
            sessions.push(new_session(store.as_ref(), org.id).await?.id);
        }
        let messages = store.messages();
        let batch = |session: SessionId, wa_id: &str| {
            vec![NewIncoming {
                id: MessageId::new(),
                org_id: org.id,
                session_id: session,
                inbound: text(wa_id, "15550001111@s.whatsapp.net"),
            }]
        };
        // Sent together, so the writer finds them waiting as one group.
        let (first, unknown, second) = tokio::join!(
            messages.record_incoming(batch(sessions[0], "3EB0A")),
            messages.record_incoming(batch(SessionId::new(), "3EB0B")),
            messages.record_incoming(batch(sessions[1], "3EB0C")),
        );
        assert_eq!(first?.len(), 1);
        assert!(
            unknown.is_err(),
            "a session that does not exist: {unknown:?}"
        );
        assert_eq!(second?.len(), 1);
        assert_eq!(
            store.events().events_after(org.id, None, 10).await?.len(),
            2
        );
        Ok(())
    }
}
