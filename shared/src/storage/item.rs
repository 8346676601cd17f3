//! A small, adapter-neutral item model: what the stores in this crate read and write. The DynamoDB adapter
//! converts it to and from `AttributeValue`; the in-memory adapter stores it as is (and can serialize it
//! to a file for the local CLI).

use std::collections::BTreeMap;

use crate::error::StoreError;

/// An attribute value (the subset of DynamoDB's types this project uses).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Val {
    S(String),
    /// Numbers are kept as integers; every number in the schema is an id, a count or epoch time.
    N(i64),
    Bool(bool),
    L(Vec<Val>),
    M(BTreeMap<String, Val>),
}

pub type Item = BTreeMap<String, Val>;

/// The primary key of an item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self { pk: pk.into(), sk: sk.into() }
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::S(s.to_owned())
    }
}

impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::S(s)
    }
}

impl From<i64> for Val {
    fn from(n: i64) -> Self {
        Val::N(n)
    }
}

impl From<u64> for Val {
    fn from(n: u64) -> Self {
        Val::N(n as i64)
    }
}

impl From<bool> for Val {
    fn from(b: bool) -> Self {
        Val::Bool(b)
    }
}

/// Builds an item with its key.
pub fn item(key: &Key) -> Item {
    let mut i = Item::new();
    i.insert(super::attr::PK.into(), Val::S(key.pk.clone()));
    i.insert(super::attr::SK.into(), Val::S(key.sk.clone()));
    i
}

/// Typed reads with "corrupt item" errors that name the attribute.
pub trait ItemExt {
    fn key(&self) -> Option<Key>;
    fn s(&self, name: &str) -> Result<&str, StoreError>;
    fn opt_s(&self, name: &str) -> Option<&str>;
    fn n(&self, name: &str) -> Result<i64, StoreError>;
    fn opt_n(&self, name: &str) -> Option<i64>;
    fn b(&self, name: &str) -> bool;
}

impl ItemExt for Item {
    fn key(&self) -> Option<Key> {
        Some(Key::new(self.opt_s(super::attr::PK)?, self.opt_s(super::attr::SK)?))
    }

    fn s(&self, name: &str) -> Result<&str, StoreError> {
        self.opt_s(name)
            .ok_or_else(|| StoreError::corrupt(format!("attribute {name} missing or not a string")))
    }

    fn opt_s(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Val::S(s)) => Some(s),
            _ => None,
        }
    }

    fn n(&self, name: &str) -> Result<i64, StoreError> {
        self.opt_n(name)
            .ok_or_else(|| StoreError::corrupt(format!("attribute {name} missing or not a number")))
    }

    fn opt_n(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(Val::N(n)) => Some(*n),
            _ => None,
        }
    }

    fn b(&self, name: &str) -> bool {
        matches!(self.get(name), Some(Val::Bool(true)))
    }
}
