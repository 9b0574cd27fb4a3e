//! The whole store on one backend: each aggregate is the backend itself.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::Backend;
use crate::store::{
    ChatStore, ContactStore, EventStore, GroupStore, KeyStore, MessageStore, OrgStore,
    PresenceStore, SessionStore, Store, UserStore, WebhookStore,
};

impl Store for Backend {
    fn orgs(&self) -> &dyn OrgStore {
        self
    }

    fn sessions(&self) -> &dyn SessionStore {
        self
    }

    fn users(&self) -> &dyn UserStore {
        self
    }

    fn events(&self) -> &dyn EventStore {
        self
    }

    fn messages(&self) -> &dyn MessageStore {
        self
    }

    fn chats(&self) -> &dyn ChatStore {
        self
    }

    fn contacts(&self) -> &dyn ContactStore {
        self
    }

    fn webhooks(&self) -> &dyn WebhookStore {
        self
    }

    fn keys(&self) -> &dyn KeyStore {
        self
    }

    fn groups(&self) -> &dyn GroupStore {
        self
    }

    fn presence(&self) -> &dyn PresenceStore {
        self
    }

    fn leases(&self) -> Option<&dyn crate::store::LeaseStore> {
        super::leases_of(self)
    }

    fn writer_ended(&self) -> BoxFuture<'static, Arc<str>> {
        Box::pin(self.writer.ended())
    }

    #[cfg(test)]
    fn panic_writer(&self) -> BoxFuture<'static, ()> {
        let writer = self.writer.clone();
        Box::pin(async move {
            let _ = super::writer::write(&writer, super::writer::Write::Panic).await;
        })
    }
}
