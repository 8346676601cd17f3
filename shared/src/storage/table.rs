//! The table engine port: the handful of DynamoDB operations the stores need, with conditions expressed
//! as data ([`Cond`]) so that the DynamoDB adapter and the in-memory adapter evaluate exactly the same
//! rules. Stores (invites, enrollment, events) are written once over [`Table`]; the contract suite
//! `shared/tests/contract_table.rs` pins the engine semantics on both adapters.

use async_trait::async_trait;

use super::item::{Item, Key, Val};
use crate::error::StoreError;

/// A condition on the current version of an item (absent item = no attributes).
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// The item does not exist (`attribute_not_exists(pk)`).
    NotExists,
    /// The item exists (`attribute_exists(pk)`).
    Exists,
    AttrExists(String),
    AttrNotExists(String),
    Eq(String, Val),
    /// Numeric attribute strictly greater than.
    Gt(String, i64),
    /// Numeric attribute strictly less than.
    Lt(String, i64),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

impl Cond {
    pub fn eq(attr: &str, v: impl Into<Val>) -> Self {
        Self::Eq(attr.into(), v.into())
    }

    pub fn attr_exists(attr: &str) -> Self {
        Self::AttrExists(attr.into())
    }

    pub fn attr_not_exists(attr: &str) -> Self {
        Self::AttrNotExists(attr.into())
    }

    /// Evaluates the condition against the current item (the in-memory adapter's engine; also used to
    /// re-check a condition on an item already read).
    pub fn eval(&self, current: Option<&Item>) -> bool {
        let get = |a: &str| current.and_then(|i| i.get(a));
        match self {
            Cond::NotExists => current.is_none(),
            Cond::Exists => current.is_some(),
            Cond::AttrExists(a) => get(a).is_some(),
            Cond::AttrNotExists(a) => get(a).is_none(),
            Cond::Eq(a, v) => get(a) == Some(v),
            Cond::Gt(a, n) => matches!(get(a), Some(Val::N(x)) if x > n),
            Cond::Lt(a, n) => matches!(get(a), Some(Val::N(x)) if x < n),
            Cond::And(cs) => cs.iter().all(|c| c.eval(current)),
            Cond::Or(cs) => cs.iter().any(|c| c.eval(current)),
        }
    }
}

/// An update of one item (created if absent, like DynamoDB's `UpdateItem`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    pub set: Vec<(String, Val)>,
    /// `SET a = if_not_exists(a, v)`.
    pub set_if_absent: Vec<(String, Val)>,
    pub remove: Vec<String>,
    /// `ADD a n` (numeric; absent counts as 0).
    pub add: Vec<(String, i64)>,
}

impl Update {
    pub fn set(mut self, a: &str, v: impl Into<Val>) -> Self {
        self.set.push((a.into(), v.into()));
        self
    }

    pub fn set_if_absent(mut self, a: &str, v: impl Into<Val>) -> Self {
        self.set_if_absent.push((a.into(), v.into()));
        self
    }

    pub fn remove(mut self, a: &str) -> Self {
        self.remove.push(a.into());
        self
    }

    pub fn add(mut self, a: &str, n: i64) -> Self {
        self.add.push((a.into(), n));
        self
    }

    /// Applies the update to an item (the in-memory engine).
    pub fn apply(&self, key: &Key, current: Option<Item>) -> Item {
        let mut it = current.unwrap_or_else(|| super::item::item(key));
        for (a, v) in &self.set {
            it.insert(a.clone(), v.clone());
        }
        for (a, v) in &self.set_if_absent {
            it.entry(a.clone()).or_insert_with(|| v.clone());
        }
        for a in &self.remove {
            it.remove(a);
        }
        for (a, n) in &self.add {
            let cur = match it.get(a) {
                Some(Val::N(x)) => *x,
                _ => 0,
            };
            it.insert(a.clone(), Val::N(cur + n));
        }
        it
    }
}

/// One write of a transaction (or a single conditional write).
#[derive(Clone, Debug, PartialEq)]
pub enum WriteOp {
    Put { item: Item, cond: Option<Cond> },
    Update { key: Key, update: Update, cond: Option<Cond> },
    Delete { key: Key, cond: Option<Cond> },
    Check { key: Key, cond: Cond },
}

impl WriteOp {
    pub fn key(&self) -> Option<Key> {
        use super::item::ItemExt;
        match self {
            WriteOp::Put { item, .. } => item.key(),
            WriteOp::Update { key, .. } | WriteOp::Delete { key, .. } | WriteOp::Check { key, .. } => {
                Some(key.clone())
            }
        }
    }
}

/// The outcome of a transaction or conditional write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxOutcome {
    Committed,
    /// Nothing was written; `failed[i]` is true where op `i`'s condition failed.
    ConditionFailed {
        failed: Vec<bool>,
    },
}

impl TxOutcome {
    pub fn committed(&self) -> bool {
        matches!(self, TxOutcome::Committed)
    }

    pub fn failed_at(&self, i: usize) -> bool {
        matches!(self, TxOutcome::ConditionFailed { failed } if failed.get(i).copied().unwrap_or(false))
    }
}

/// The outcome of [`Table::put_or_get`].
#[derive(Clone, Debug, PartialEq)]
pub enum PutOutcome {
    Written,
    /// The condition failed; the item as it was (`None` if absent).
    Refused(Option<Item>),
}

/// The engine. Reads are strongly consistent.
#[async_trait]
pub trait Table: Send + Sync {
    /// Reads several items at once (`BatchGetItem`, consistent). Result in the order of `keys`.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError>;

    /// All items of a partition, optionally only those whose sort key starts with `sk_prefix` (`Query`).
    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, StoreError>;

    /// All-or-nothing writes (`TransactWriteItems`, ≤ 100 ops, one op per item); a single op is sent as
    /// the plain conditional operation.
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<TxOutcome, StoreError>;

    /// Applies an update and returns the item after it (`UpdateItem` with `ALL_NEW`), or `None` when
    /// the condition failed.
    async fn update_returning(
        &self,
        key: Key,
        update: Update,
        cond: Option<Cond>,
    ) -> Result<Option<Item>, StoreError>;

    /// A conditional `PutItem` that returns the item which made the condition fail
    /// (`ReturnValuesOnConditionCheckFailure = ALL_OLD`): one round trip on DynamoDB. The default sends
    /// the put and reads the item after a refusal (what an engine without that option can do).
    async fn put_or_get(&self, item: Item, cond: Cond) -> Result<PutOutcome, StoreError> {
        use super::item::ItemExt;
        let key = item.key().ok_or_else(|| StoreError::Rejected("item without a key".into()))?;
        match self.transact(vec![WriteOp::Put { item, cond: Some(cond) }]).await? {
            TxOutcome::Committed => Ok(PutOutcome::Written),
            TxOutcome::ConditionFailed { .. } => Ok(PutOutcome::Refused(self.get(&key).await?)),
        }
    }

    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        Ok(self.get_many(std::slice::from_ref(key)).await?.into_iter().next().flatten())
    }
}
