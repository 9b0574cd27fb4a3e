//! Fencing by lease epoch (`store/leases.rs`), compiled for both backends
//! though only PostgreSQL ever has claims to check: a write whose session
//! claims are checked here, inside the write's own transaction, before it
//! writes anything.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Row};

use super::{Db, DbConnection, FOR_SHARE};
use crate::domain::SessionId;
use crate::store::StoreError;
use crate::store::leases::{Claim, Epoch, check_claims};

/// Refuses the write (`StoreError::Moved`) unless every claim's epoch is
/// its lease's current one: one statement for all of them, which holds
/// the lease rows (`FOR SHARE` on PostgreSQL) until the transaction ends,
/// so no node can take one of these sessions between the check and the
/// commit. Nothing to do (no statement) for no claims.
pub(in crate::store) async fn check_fences(
    conn: &mut DbConnection,
    claims: &[Claim],
) -> Result<(), StoreError> {
    if claims.is_empty() {
        return Ok(());
    }
    // A claim without an epoch fails whatever the rows say.
    if let Some(unheld) = claims.iter().find(|c| c.epoch.is_none()) {
        return Err(StoreError::Moved(crate::store::SessionMoved {
            session: unheld.session,
        }));
    }
    let mut sessions: Vec<SessionId> = claims.iter().map(|c| c.session).collect();
    sessions.sort();
    sessions.dedup();
    let mut current: HashMap<SessionId, Epoch> = HashMap::with_capacity(sessions.len());
    for chunk in sessions.chunks(500) {
        let mut query = QueryBuilder::<Db>::new(
            "SELECT session_id, epoch FROM session_leases WHERE node IS NOT NULL AND session_id IN (",
        );
        let mut list = query.separated(", ");
        for session in chunk {
            list.push_bind(session.to_string());
        }
        query.push(")");
        query.push(FOR_SHARE);
        for row in query.build().fetch_all(&mut *conn).await? {
            let id: String = row.try_get(0)?;
            let session: SessionId = id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("session_leases.session_id {id:?}")))?;
            current.insert(session, row.try_get(1)?);
        }
    }
    check_claims(claims, &current).map_err(StoreError::Moved)
}

impl super::Backend {
    /// The claims a write for `sessions` made now carries: none unless
    /// this process holds leases.
    pub(in crate::store) fn claims(
        &self,
        sessions: impl IntoIterator<Item = SessionId>,
    ) -> Vec<Claim> {
        let mut claims: Vec<Claim> = sessions
            .into_iter()
            .filter_map(|session| self.holdings.claim(session))
            .collect();
        claims.dedup();
        claims
    }
}
