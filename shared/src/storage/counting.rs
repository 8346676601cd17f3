//! A [`Table`] decorator counting the calls made through it (feature `aws-model`: tests and benches),
//! e.g. to show that a refused request read nothing or that cost per event stays flat.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::storage::item::{Item, Key};
use crate::storage::table::{Cond, Table, TxOutcome, Update, WriteOp};

/// A table wrapper counting operations.
pub struct CountingTable {
    pub inner: Arc<dyn Table>,
    pub calls: AtomicUsize,
}

#[async_trait]
impl Table for CountingTable {
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.get_many(keys).await
    }
    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.query(pk, sk_prefix).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<TxOutcome, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.transact(ops).await
    }
    async fn update_returning(
        &self,
        key: Key,
        update: Update,
        cond: Option<Cond>,
    ) -> Result<Option<Item>, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.update_returning(key, update, cond).await
    }
}

impl CountingTable {
    /// Wraps `inner` with a count of zero.
    pub fn new(inner: Arc<dyn Table>) -> Self {
        Self { inner, calls: AtomicUsize::new(0) }
    }

    /// Calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
}
