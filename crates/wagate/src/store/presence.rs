//! The contacts each session subscribed to the presence of: kept here
//! because WhatsApp forgets a subscription with the connection, and a
//! session subscribes again after every connect.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::SessionId;

#[async_trait]
pub trait PresenceStore: Send + Sync {
    /// Keeps `contact` (a JID) among the session's subscriptions; `false`
    /// when it already was.
    async fn subscribe_presence(
        &self,
        session: SessionId,
        contact: &str,
    ) -> Result<bool, StoreError>;

    /// Forgets the subscription; `false` when there was none.
    async fn unsubscribe_presence(
        &self,
        session: SessionId,
        contact: &str,
    ) -> Result<bool, StoreError>;

    /// The session's subscriptions, oldest first.
    async fn presence_subscriptions(&self, session: SessionId) -> Result<Vec<String>, StoreError>;
}
