//! Idempotent processing keyed on an id (a webhook `id`), in the manner of Powertools for AWS
//! Lambda: a conditional write takes an in-progress lock that expires with the invocation's
//! remaining time; completion is recorded and kept for a configured retention, longer than any
//! redelivery window (HICAPS retries for about 5.5 minutes; SQS FIFO de-duplicates for 5).

use crate::store::{Condition, Item, Key, SharedTable, StoreError, now_epoch_seconds};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

const IN_PROGRESS: &str = "inProgress";
const COMPLETED: &str = "completed";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// This invocation holds the lock and must process, then `complete` or `release`.
    Acquired { version: u64 },
    /// Processed before with the same payload: do nothing again.
    AlreadyCompleted,
    /// Another invocation holds a live lock until `lock_expires_at` (epoch seconds): by then it
    /// has completed, released the lock, or lost it, so asking again sooner changes nothing.
    InProgress { lock_expires_at: i64 },
    /// The id is known with a different payload: flag it, do not process.
    PayloadChanged,
}

#[derive(Clone)]
pub struct Idempotency {
    store: SharedTable,
    retention_seconds: i64,
}

pub fn payload_hash(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(payload))
}

fn key(id: &str) -> Key {
    Key::new(format!("idempotency#{id}"), "#")
}

impl Idempotency {
    pub fn new(store: SharedTable, retention_days: u32) -> Self {
        Self { store, retention_seconds: i64::from(retention_days) * 86_400 }
    }

    /// Takes the lock for `id` until `lock_expires_at` (epoch seconds).
    pub async fn begin(&self, id: &str, hash: &str, lock_expires_at: i64) -> Result<Begin, StoreError> {
        let mut attrs = Map::new();
        attrs.insert("status".into(), json!(IN_PROGRESS));
        attrs.insert("payloadHash".into(), json!(hash));
        let item = Item::new(key(id), attrs).expiring_at(lock_expires_at);
        match self.store.put(&item, Condition::Absent).await {
            Ok(version) => Ok(Begin::Acquired { version }),
            Err(StoreError::Conflict { current: Some(current) }) => {
                if current.str_attr("payloadHash") != Some(hash) {
                    Ok(Begin::PayloadChanged)
                } else if current.str_attr("status") == Some(COMPLETED) {
                    Ok(Begin::AlreadyCompleted)
                } else {
                    Ok(Begin::InProgress { lock_expires_at: current.expires_at.unwrap_or_else(now_epoch_seconds) })
                }
            }
            // The item expired between the condition check and the read of its old image.
            Err(StoreError::Conflict { current: None }) => Ok(Begin::InProgress { lock_expires_at: now_epoch_seconds() }),
            Err(other) => Err(other),
        }
    }

    /// Records completion, kept for the retention period.
    pub async fn complete(&self, id: &str, version: u64, hash: &str, outcome: &str) -> Result<(), StoreError> {
        let mut attrs = Map::new();
        attrs.insert("status".into(), json!(COMPLETED));
        attrs.insert("payloadHash".into(), json!(hash));
        attrs.insert("outcome".into(), Value::String(outcome.to_owned()));
        let item = Item::new(key(id), attrs).expiring_at(now_epoch_seconds() + self.retention_seconds);
        self.store.put(&item, Condition::Version(version)).await.map(drop)
    }

    /// Gives the lock up so a later delivery can process the id again.
    pub async fn release(&self, id: &str) -> Result<(), StoreError> {
        self.store.delete(&key(id)).await
    }
}
