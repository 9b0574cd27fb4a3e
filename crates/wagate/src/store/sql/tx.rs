//! Write transactions. Every transaction that may append to the event log
//! is a [`WriteTx`], and the only way to get one is [`begin_write`], which
//! takes the backend's writer lock first thing (a no-op on SQLite, whose
//! one connection already is the single writer; an advisory lock on
//! PostgreSQL). So event ids, stamped inside these transactions, increase
//! in commit order on both, and the read-modify-write transactions below
//! run one at a time as they were written to.
//!
//! Before it takes a connection, a write transaction takes its turn in
//! the process (`writers`, a fair mutex): on PostgreSQL a transaction
//! waiting for the advisory lock would otherwise hold one of the pool's
//! connections while it waits, and a burst of writers could take them all
//! from the reads and key writes that every session needs. The advisory
//! lock stays, for another process on the same database.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::{Pool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{Backend, Db, DbConnection, lock_writers};
use crate::store::StoreError;

pub(in crate::store) struct WriteTx {
    tx: Transaction<'static, Db>,
    /// Held until the transaction ends (dropped after it: fields drop in
    /// order), so the next writer starts once this one has committed.
    _turn: OwnedMutexGuard<()>,
}

pub(in crate::store) async fn begin_write(store: &Backend) -> Result<WriteTx, StoreError> {
    begin_write_on(&store.pool, &store.writers).await
}

/// [`begin_write`], given the backend's writer pool and turn (what the
/// store's group-commit writer holds).
pub(in crate::store) async fn begin_write_on(
    pool: &Pool<Db>,
    writers: &Arc<Mutex<()>>,
) -> Result<WriteTx, StoreError> {
    let turn = Arc::clone(writers).lock_owned().await;
    let mut tx = pool.begin().await?;
    lock_writers(&mut tx).await?;
    Ok(WriteTx { tx, _turn: turn })
}

impl WriteTx {
    pub(in crate::store) async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }

    #[cfg(test)]
    pub(in crate::store) async fn rollback(self) -> Result<(), StoreError> {
        Ok(self.tx.rollback().await?)
    }
}

impl Deref for WriteTx {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.tx
    }
}
