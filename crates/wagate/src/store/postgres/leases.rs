//! The [`LeaseStore`] on PostgreSQL: `session_leases` (migration 0022),
//! every expiry stamped by the server's `now()`.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::PostgresStore;
use crate::domain::SessionId;
use crate::store::leases::{Census, Held, LeaseRecord, LeaseStore, NodeLoad, lease_millis};
use crate::store::{StoreError, from_millis};

fn held(row: &PgRow) -> Result<Held, StoreError> {
    let id: String = row.try_get(0)?;
    Ok(Held {
        session: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("session_leases.session_id {id:?}")))?,
        epoch: row.try_get(1)?,
    })
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn take_free(
        &self,
        node: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Held>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Free: no row, released, or expired. `ON CONFLICT … WHERE` checks
        // the row again once it holds its lock, so of two nodes taking the
        // same session at once, exactly one gets it.
        let rows = sqlx::query(
            "INSERT INTO session_leases (session_id, node, epoch, expires_at) \
             SELECT s.id, $1, 1, now() + $2 * interval '1 millisecond' \
             FROM sessions s LEFT JOIN session_leases l ON l.session_id = s.id \
             WHERE l.session_id IS NULL OR l.node IS NULL OR l.expires_at < now() \
             ORDER BY s.created_at, s.id LIMIT $3 \
             ON CONFLICT (session_id) DO UPDATE SET node = EXCLUDED.node, \
               epoch = session_leases.epoch + 1, expires_at = EXCLUDED.expires_at \
             WHERE session_leases.node IS NULL OR session_leases.expires_at < now() \
             RETURNING session_id, epoch",
        )
        .bind(node)
        .bind(lease_millis(lease))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let taken = rows.iter().map(held).collect::<Result<Vec<_>, _>>()?;
        for lease in &taken {
            self.holdings.hold(*lease);
        }
        Ok(taken)
    }

    async fn take(
        &self,
        node: &str,
        session: SessionId,
        lease: Duration,
    ) -> Result<Option<Held>, StoreError> {
        let row = sqlx::query(
            "INSERT INTO session_leases (session_id, node, epoch, expires_at) \
             VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond') \
             ON CONFLICT (session_id) DO UPDATE SET node = EXCLUDED.node, \
               epoch = session_leases.epoch + 1, expires_at = EXCLUDED.expires_at \
             WHERE session_leases.node IS NULL OR session_leases.expires_at < now() \
             RETURNING session_id, epoch",
        )
        .bind(session.to_string())
        .bind(node)
        .bind(lease_millis(lease))
        .fetch_optional(&self.pool)
        .await?;
        let taken = row.as_ref().map(held).transpose()?;
        if let Some(lease) = taken {
            self.holdings.hold(lease);
        }
        Ok(taken)
    }

    async fn renew(
        &self,
        node: &str,
        lease: Duration,
        held_now: &[Held],
    ) -> Result<Vec<Held>, StoreError> {
        if held_now.is_empty() {
            return Ok(Vec::new());
        }
        let sessions: Vec<String> = held_now.iter().map(|h| h.session.to_string()).collect();
        let epochs: Vec<i64> = held_now.iter().map(|h| h.epoch).collect();
        let rows = sqlx::query(
            "UPDATE session_leases SET expires_at = now() + $2 * interval '1 millisecond' \
             WHERE node = $1 AND (session_id, epoch) IN \
               (SELECT * FROM UNNEST($3::text[], $4::bigint[])) \
             RETURNING session_id, epoch",
        )
        .bind(node)
        .bind(lease_millis(lease))
        .bind(&sessions)
        .bind(&epochs)
        .fetch_all(&self.pool)
        .await?;
        let renewed = rows.iter().map(held).collect::<Result<Vec<_>, _>>()?;
        for lost in held_now.iter().filter(|h| !renewed.contains(h)) {
            self.holdings.drop_lease(lost.session, Some(lost.epoch));
        }
        Ok(renewed)
    }

    async fn release(&self, node: &str, lease: Held) -> Result<bool, StoreError> {
        // Forgotten first: no write of this process may follow the release.
        self.holdings.drop_lease(lease.session, Some(lease.epoch));
        let result = sqlx::query(
            "UPDATE session_leases SET node = NULL, expires_at = now() \
             WHERE session_id = $1 AND node = $2 AND epoch = $3",
        )
        .bind(lease.session.to_string())
        .bind(node)
        .bind(lease.epoch)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    fn forget(&self, session: SessionId) {
        self.holdings.drop_lease(session, None);
    }

    async fn lease(&self, session: SessionId) -> Result<Option<LeaseRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT session_id, epoch, node, \
             CAST(EXTRACT(EPOCH FROM expires_at) * 1000 AS BIGINT) \
             FROM session_leases WHERE session_id = $1",
        )
        .bind(session.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            let held = held(&row)?;
            Ok(LeaseRecord {
                session: held.session,
                epoch: held.epoch,
                node: row.try_get(2)?,
                expires_at: from_millis(row.try_get(3)?)?,
            })
        })
        .transpose()
    }

    async fn census(
        &self,
        node: &str,
        lease: Duration,
        capacity: Option<u32>,
    ) -> Result<Census, StoreError> {
        sqlx::query(
            "INSERT INTO node_heartbeats (node, capacity, expires_at) \
             VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
             ON CONFLICT (node) DO UPDATE SET capacity = EXCLUDED.capacity, \
               expires_at = EXCLUDED.expires_at",
        )
        .bind(node)
        .bind(capacity.map(i64::from))
        .bind(lease_millis(lease))
        .execute(&self.pool)
        .await?;
        let rows = sqlx::query(
            "SELECT h.node, h.capacity, \
               (SELECT count(*) FROM session_leases l \
                WHERE l.node = h.node AND l.expires_at > now()), \
               (SELECT count(*) FROM sessions) \
             FROM node_heartbeats h WHERE h.expires_at > now() ORDER BY h.node",
        )
        .fetch_all(&self.pool)
        .await?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        let mut census = Census::default();
        for row in &rows {
            census.sessions = count(row.try_get(3)?);
            census.nodes.push(NodeLoad {
                node: row.try_get(0)?,
                capacity: row.try_get::<Option<i64>, _>(1)?.map(count),
                held: count(row.try_get(2)?),
            });
        }
        Ok(census)
    }
}

/// The store's leases: PostgreSQL has them.
pub(in crate::store) fn leases_of(store: &PostgresStore) -> Option<&dyn LeaseStore> {
    Some(store)
}
