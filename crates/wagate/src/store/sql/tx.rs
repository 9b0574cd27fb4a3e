//! Write transactions. Every transaction that may append to the event log
//! is a [`WriteTx`], and the only way to get one is [`begin_write`], which
//! takes the backend's writer lock first thing (a no-op on SQLite, whose
//! one connection already is the single writer; an advisory lock on
//! PostgreSQL). So event ids, stamped inside these transactions, increase
//! in commit order on both, and the read-modify-write transactions below
//! run one at a time as they were written to.

use std::ops::{Deref, DerefMut};

use sqlx::{Pool, Transaction};

use super::{Db, DbConnection, lock_writers};
use crate::store::StoreError;

pub(in crate::store) struct WriteTx(Transaction<'static, Db>);

pub(in crate::store) async fn begin_write(pool: &Pool<Db>) -> Result<WriteTx, StoreError> {
    let mut tx = pool.begin().await?;
    lock_writers(&mut tx).await?;
    Ok(WriteTx(tx))
}

impl WriteTx {
    pub(in crate::store) async fn commit(self) -> Result<(), StoreError> {
        Ok(self.0.commit().await?)
    }

    #[cfg(test)]
    pub(in crate::store) async fn rollback(self) -> Result<(), StoreError> {
        Ok(self.0.rollback().await?)
    }
}

impl Deref for WriteTx {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.0
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.0
    }
}
