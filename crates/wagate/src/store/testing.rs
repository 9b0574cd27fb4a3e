//! Test support for the store: a backend's store with what must live as
//! long as it (PostgreSQL: its throwaway database).

use std::ops::Deref;

#[path = "test_postgres.rs"]
mod postgres;

pub(crate) use postgres::TestDatabase;

pub(crate) struct TestStore<S> {
    store: S,
    // Dropped after the store (fields drop in order).
    _database: Option<TestDatabase>,
}

impl<S> TestStore<S> {
    pub(crate) fn new(store: S, database: Option<TestDatabase>) -> Self {
        Self {
            store,
            _database: database,
        }
    }
}

impl<S> Deref for TestStore<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.store
    }
}

/// A new organization's new session, with default settings.
pub(crate) async fn new_session(
    store: &(impl super::OrgStore + super::SessionStore),
) -> Result<(crate::domain::OrgId, crate::domain::SessionId), super::StoreError> {
    let org = store.create_org("acme").await?.id;
    let session = store
        .insert_session(super::NewSession {
            id: crate::domain::SessionId::new(),
            org_id: org,
            label: None,
            pace: Default::default(),
            history: Default::default(),
        })
        .await?
        .id;
    Ok((org, session))
}
