//! The store port: one DynamoDB-shaped table (`pk`, `sk`, `version`, `ttl`) with conditional
//! writes and optimistic versions. Expiry is checked on every read, because DynamoDB's TTL deletes
//! items up to days late and moto never deletes them.
//!
//! Each operation is its own small trait so a handler depends only on what it uses.

#[cfg(feature = "aws")]
pub mod dynamo;
#[cfg(feature = "embedded")]
pub mod embedded;

use async_trait::async_trait;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Attribute names the adapters reserve; `attrs` must not use them.
pub const RESERVED_ATTRIBUTES: [&str; 4] = ["pk", "sk", "version", "ttl"];

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

/// DynamoDB's limits on a string partition key, a string sort key and a whole item (DynamoDB
/// Developer Guide, "Service, account, and table quotas": attributes). Both adapters refuse what
/// DynamoDB would, before sending, so the contract tests hold the embedded table to them too.
pub const MAX_PK_BYTES: usize = 2048;
pub const MAX_SK_BYTES: usize = 1024;
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self { pk: pk.into(), sk: sk.into() }
    }

    /// Whether DynamoDB would take this key: each part non-empty and within its byte limit.
    pub fn check(&self) -> Result<(), StoreError> {
        let fits = |part: &str, max: usize| !part.is_empty() && part.len() <= max;
        if !fits(&self.pk, MAX_PK_BYTES) {
            return Err(StoreError::Invalid(format!("the partition key must be 1 to {MAX_PK_BYTES} bytes")));
        }
        if !fits(&self.sk, MAX_SK_BYTES) {
            return Err(StoreError::Invalid(format!("the sort key must be 1 to {MAX_SK_BYTES} bytes")));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: Key,
    /// Optimistic version: 1 on first write, +1 on every versioned write.
    pub version: u64,
    /// Epoch seconds after which the item no longer exists (the table's TTL attribute).
    pub expires_at: Option<i64>,
    pub attrs: Map<String, Value>,
}

impl Item {
    pub fn new(key: Key, attrs: Map<String, Value>) -> Self {
        Self { key, version: 0, expires_at: None, attrs }
    }
    pub fn expiring_at(mut self, epoch_seconds: i64) -> Self {
        self.expires_at = Some(epoch_seconds);
        self
    }
    pub fn is_expired(&self, now_epoch_seconds: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_epoch_seconds)
    }
    pub fn str_attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).and_then(Value::as_str)
    }
}

/// What must hold for a put to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Write whatever is there; the item keeps the version it carries.
    Always,
    /// Only if no live item has the key (an expired one counts as absent); writes version 1.
    Absent,
    /// Only if the live item has this version; writes version + 1.
    Version(u64),
}

impl Condition {
    pub fn written_version(self, item_version: u64) -> u64 {
        match self {
            Condition::Always => item_version,
            Condition::Absent => 1,
            Condition::Version(v) => v + 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The condition did not hold; `current` is the live item, if any.
    #[error("conditional write failed")]
    Conflict { current: Option<Box<Item>> },
    #[error("invalid item: {0}")]
    Invalid(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait ItemGet: Send + Sync {
    /// The live item under `key`, or `None` if it is absent or expired.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;
}

#[async_trait]
pub trait ItemPut: Send + Sync {
    /// Writes `item` if `condition` holds and returns the version written.
    async fn put(&self, item: &Item, condition: Condition) -> Result<u64, StoreError>;
}

#[async_trait]
pub trait ItemDelete: Send + Sync {
    async fn delete(&self, key: &Key) -> Result<(), StoreError>;
}

#[async_trait]
pub trait ItemQuery: Send + Sync {
    /// Live items under `pk` whose `sk` starts with `sk_prefix`, in `sk` order.
    async fn query(&self, pk: &str, sk_prefix: &str) -> Result<Vec<Item>, StoreError>;
}

/// Most keys one [`ItemGetMany::get_many`] takes (DynamoDB's BatchGetItem limit).
pub const MAX_GET_MANY: usize = 100;

#[async_trait]
pub trait ItemGetMany: Send + Sync {
    /// The live items under `keys`, in their order (`None` where absent or expired), in one round
    /// trip where the store allows. At most [`MAX_GET_MANY`] keys.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError>;
}

#[async_trait]
pub trait ItemPutMany: Send + Sync {
    /// Writes every item as [`Condition::Always`] would, 25 to a request (DynamoDB's
    /// BatchWriteItem). Not atomic: after an error some may be written, so each must be a write
    /// that is safe to repeat. A key given twice is written as its last item.
    async fn put_many(&self, items: &[Item]) -> Result<(), StoreError>;
}

/// The whole table, for code that needs every operation.
pub trait Table: ItemGet + ItemPut + ItemDelete + ItemQuery + ItemGetMany + ItemPutMany {}
impl<T: ItemGet + ItemPut + ItemDelete + ItemQuery + ItemGetMany + ItemPutMany> Table for T {}

/// The last item given for each key, in first-seen order: batch requests refuse a key twice.
#[cfg(feature = "aws")]
pub(crate) fn last_per_key(items: &[Item]) -> Vec<&Item> {
    let mut latest: Vec<&Item> = Vec::with_capacity(items.len());
    for item in items {
        match latest.iter_mut().find(|kept| kept.key == item.key) {
            Some(kept) => *kept = item,
            None => latest.push(item),
        }
    }
    latest
}

pub type SharedTable = Arc<dyn Table>;

/// Whether `pk` could be a partition key: a query for one that could not finds nothing.
pub fn pk_fits(pk: &str) -> bool {
    !pk.is_empty() && pk.len() <= MAX_PK_BYTES
}

/// A record's attributes, serialised with serde: it must serialise to a JSON object.
pub fn attrs_of<T: serde::Serialize>(record: &T) -> Result<Map<String, Value>, StoreError> {
    match serde_json::to_value(record) {
        Ok(Value::Object(attrs)) => Ok(attrs),
        Ok(_) => Err(StoreError::Invalid("record is not an object".to_owned())),
        Err(error) => Err(StoreError::Invalid(error.to_string())),
    }
}

/// What both adapters check before a write: a key DynamoDB takes, no reserved attribute, and an
/// item within DynamoDB's 400 KB. The size counts attribute names and JSON-encoded values, a
/// little over DynamoDB's own count, so nothing the embedded table takes is refused in AWS.
#[cfg(any(feature = "aws", feature = "embedded"))]
pub(crate) fn check_attrs(item: &Item) -> Result<(), StoreError> {
    item.key.check()?;
    if let Some(name) = RESERVED_ATTRIBUTES.iter().find(|name| item.attrs.contains_key(**name)) {
        return Err(StoreError::Invalid(format!("attribute `{name}` is reserved")));
    }
    let size = item.key.pk.len()
        + item.key.sk.len()
        + 40
        + item.attrs.iter().map(|(name, value)| name.len() + value.to_string().len()).sum::<usize>();
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::Invalid(format!("the item is over {MAX_ITEM_BYTES} bytes")));
    }
    Ok(())
}
