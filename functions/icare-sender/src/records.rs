//! What the iCare sender keeps in the table, and the delivery bookkeeping shared by notifications
//! and documents: status, attempts, a lease while one sender talks to iCare, and whether the
//! retry queue already holds a message for the record.
//!
//! Keys (`sk` is `#` unless said):
//! - `icare#policy#{caller}#{policyId}`: a policy.
//! - `icare#idempotency#{caller}#{notification|document}#{key}`: body hash and the resource id.
//! - `icare#notification#{notificationId}`: the notification and its delivery state.
//! - `icare#claim#{caller}#{claimNumber}`: a claim number iCare gave this caller.
//! - `icare#document#{documentId}`: the document's metadata; `sk` `part#NNNN` its content until sent.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shared::ApiError;
use shared::store::{Condition, Item, Key, StoreError, Table};
use std::time::Duration;

/// Extra lease time beyond the call's own timeout, for the writes around it.
const LEASE_MARGIN_SECONDS: i64 = 5;

/// Partition-key prefix of every iCare record.
pub const KEY_PREFIX: &str = "icare#";

/// Escapes the separator so caller ids and keys cannot collide.
fn part(text: &str) -> String {
    text.replace('%', "%25").replace('#', "%23")
}

pub(crate) fn policy_key(caller: &str, policy_id: &str) -> Key {
    Key::new(format!("{KEY_PREFIX}policy#{}#{}", part(caller), part(policy_id)), "#")
}

pub(crate) fn idempotency_key(caller: &str, kind: RetryKind, key: &str) -> Key {
    Key::new(format!("{KEY_PREFIX}idempotency#{}#{}#{}", part(caller), kind.as_str(), part(key)), "#")
}

pub(crate) fn notification_key(id: &str) -> Key {
    Key::new(format!("{KEY_PREFIX}notification#{id}"), "#")
}

pub(crate) fn claim_key(caller: &str, claim_number: &str) -> Key {
    Key::new(format!("{KEY_PREFIX}claim#{}#{}", part(caller), part(claim_number)), "#")
}

pub(crate) fn document_key(id: &str) -> Key {
    Key::new(format!("{KEY_PREFIX}document#{id}"), "#")
}

pub(crate) fn document_part_key(id: &str, index: usize) -> Key {
    Key::new(format!("{KEY_PREFIX}document#{id}"), format!("part#{index:04}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum RetryKind {
    Notification,
    Document,
}

impl RetryKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RetryKind::Notification => "notification",
            RetryKind::Document => "document",
        }
    }
}

/// The retry queue's message: ids only, no health information.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RetryMessage {
    pub kind: RetryKind,
    pub id: String,
}

impl RetryMessage {
    pub(crate) fn body(kind: RetryKind, id: &str) -> String {
        serde_json::to_string(&RetryMessage { kind, id: id.to_owned() }).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Status {
    Queued,
    ClaimNumberReceived,
    Sent,
    Failed,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::ClaimNumberReceived => "claimNumberReceived",
            Status::Sent => "sent",
            Status::Failed => "failed",
        }
    }
    pub(crate) fn is_final(self) -> bool {
        self != Status::Queued
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Delivery {
    pub status: Status,
    /// Calls to iCare started, in the request and from the queue.
    pub attempts: u32,
    /// Epoch seconds until which one sender holds the record; 0 when none does.
    pub lease_until: i64,
    /// The retry queue holds a message for this record.
    pub enqueued: bool,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ApiError>,
    /// Why the last attempt did not finish (no request content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Delivery {
    /// A new record whose first attempt starts now, in the request.
    pub(crate) fn first_attempt(now: &str, timeout: Duration) -> Self {
        Self {
            status: Status::Queued,
            attempts: 1,
            lease_until: lease_until(timeout),
            enqueued: false,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            failure: None,
            last_error: None,
        }
    }

    pub(crate) fn lease_is_live(&self) -> bool {
        self.lease_until > shared::time::now_seconds()
    }

    /// Settles an attempt that did not finish: the lease goes, the record stays queued.
    pub(crate) fn unfinished(&mut self, now: &str, reason: &str) {
        self.lease_until = 0;
        self.last_error = Some(reason.to_owned());
        self.updated_at = now.to_owned();
    }

    pub(crate) fn finished(&mut self, now: &str, status: Status, failure: Option<ApiError>) {
        self.status = status;
        self.lease_until = 0;
        self.failure = failure;
        if status != Status::Failed {
            self.last_error = None;
        }
        self.updated_at = now.to_owned();
    }
}

fn lease_until(timeout: Duration) -> i64 {
    shared::time::now_seconds() + i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX / 2) + LEASE_MARGIN_SECONDS
}

pub(crate) trait Tracked: Serialize + DeserializeOwned + Clone + Send + Sync {
    fn delivery(&self) -> &Delivery;
    fn delivery_mut(&mut self) -> &mut Delivery;
}

/// A record as read, with what a conditional write needs.
#[derive(Debug, Clone)]
pub(crate) struct Stored<T> {
    pub value: T,
    pub version: u64,
    pub expires_at: Option<i64>,
}

fn read<T: DeserializeOwned>(item: Item) -> Result<Stored<T>, StoreError> {
    let value = serde_json::from_value(serde_json::Value::Object(item.attrs))
        .map_err(|error| StoreError::Invalid(format!("unreadable record: {error}")))?;
    Ok(Stored { value, version: item.version, expires_at: item.expires_at })
}

fn item<T: Serialize>(key: &Key, value: &T, expires_at: Option<i64>) -> Result<Item, StoreError> {
    let mut item = Item::new(key.clone(), shared::store::attrs_of(value)?);
    item.expires_at = expires_at;
    Ok(item)
}

pub(crate) async fn load<T: DeserializeOwned>(table: &dyn Table, key: &Key) -> Result<Option<Stored<T>>, StoreError> {
    table.get(key).await?.map(read).transpose()
}

pub(crate) async fn put<T: Serialize>(
    table: &dyn Table,
    key: &Key,
    value: &T,
    expires_at: i64,
) -> Result<(), StoreError> {
    table.put(&item(key, value, Some(expires_at))?, Condition::Always).await.map(drop)
}

pub(crate) enum Created<T> {
    New(Stored<T>),
    /// A live record already had the key.
    Existing(Stored<T>),
}

/// Writes `value` unless a live record has the key.
pub(crate) async fn create<T: Serialize + DeserializeOwned>(
    table: &dyn Table,
    key: &Key,
    value: T,
    expires_at: i64,
) -> Result<Created<T>, StoreError> {
    match table.put(&item(key, &value, Some(expires_at))?, Condition::Absent).await {
        Ok(version) => Ok(Created::New(Stored { value, version, expires_at: Some(expires_at) })),
        Err(StoreError::Conflict { current: Some(current) }) => Ok(Created::Existing(read(*current)?)),
        Err(StoreError::Conflict { current: None }) => {
            Err(StoreError::Unavailable("conflicting write on a record that has since gone".to_owned()))
        }
        Err(other) => Err(other),
    }
}

/// Applies `change` with an optimistic write; on a conflict re-reads and applies it again to the
/// newer record, unless that one is already final (another sender settled it).
pub(crate) async fn modify<T: Tracked>(
    table: &dyn Table,
    key: &Key,
    stored: &mut Stored<T>,
    change: impl Fn(&mut T),
) -> Result<(), StoreError> {
    for _ in 0..3 {
        let mut next = stored.value.clone();
        change(&mut next);
        match table.put(&item(key, &next, stored.expires_at)?, Condition::Version(stored.version)).await {
            Ok(version) => {
                stored.value = next;
                stored.version = version;
                return Ok(());
            }
            Err(StoreError::Conflict { current: Some(current) }) => {
                *stored = read(*current)?;
                if stored.value.delivery().status.is_final() {
                    return Ok(());
                }
            }
            Err(StoreError::Conflict { current: None }) => {
                return Err(StoreError::Unavailable("the record expired while it was updated".to_owned()));
            }
            Err(other) => return Err(other),
        }
    }
    Err(StoreError::Unavailable("too many concurrent updates".to_owned()))
}

/// Takes the lease for one attempt of `timeout`: `false` when the record is final or another
/// sender holds it.
pub(crate) async fn take_lease<T: Tracked>(
    table: &dyn Table,
    key: &Key,
    stored: &mut Stored<T>,
    timeout: Duration,
    now: &str,
) -> Result<bool, StoreError> {
    let delivery = stored.value.delivery();
    if delivery.status.is_final() || delivery.lease_is_live() {
        return Ok(false);
    }
    let mut next = stored.value.clone();
    let d = next.delivery_mut();
    d.lease_until = lease_until(timeout);
    d.attempts += 1;
    d.updated_at = now.to_owned();
    match table.put(&item(key, &next, stored.expires_at)?, Condition::Version(stored.version)).await {
        Ok(version) => {
            stored.value = next;
            stored.version = version;
            Ok(true)
        }
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(other) => Err(other),
    }
}

/// The idempotency record of one caller's key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyRecord {
    pub body_hash: String,
    pub resource_id: String,
}

pub(crate) enum KeyClaim {
    /// The key is new: `resource_id` is now bound to it.
    New,
    /// Used before with the same body, for this resource.
    Replay(String),
    /// Used before with a different body.
    Mismatch,
}

pub(crate) async fn bind_key(
    table: &dyn Table,
    key: &Key,
    body_hash: &str,
    resource_id: &str,
    expires_at: i64,
) -> Result<KeyClaim, StoreError> {
    let record = KeyRecord { body_hash: body_hash.to_owned(), resource_id: resource_id.to_owned() };
    match create(table, key, record, expires_at).await? {
        Created::New(_) => Ok(KeyClaim::New),
        Created::Existing(existing) if existing.value.body_hash == body_hash => {
            Ok(KeyClaim::Replay(existing.value.resource_id))
        }
        Created::Existing(_) => Ok(KeyClaim::Mismatch),
    }
}

pub(crate) fn hash_json<T: Serialize>(value: &T) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(serde_json::to_vec(value).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_cannot_collide() {
        assert_ne!(policy_key("a#b", "c"), policy_key("a", "b#c"));
    }
}
