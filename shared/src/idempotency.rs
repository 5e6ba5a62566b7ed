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
    Acquired,
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
            Ok(_) => Ok(Begin::Acquired),
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

    /// Records completion, kept for the retention period. Unconditional, as in Powertools: the
    /// effect has happened, and a holder that finishes after its lock lapsed must still record it,
    /// or the retry takes the free lock and does it again. (If another delivery took the lapsed
    /// lock meanwhile, it has acted too; refusing this record would not undo either.)
    pub async fn complete(&self, id: &str, hash: &str, outcome: &str) -> Result<(), StoreError> {
        let mut attrs = Map::new();
        attrs.insert("status".into(), json!(COMPLETED));
        attrs.insert("payloadHash".into(), json!(hash));
        attrs.insert("outcome".into(), Value::String(outcome.to_owned()));
        let item = Item::new(key(id), attrs).expiring_at(now_epoch_seconds() + self.retention_seconds);
        self.store.put(&item, Condition::Always).await.map(drop)
    }

    /// Gives the lock up so a later delivery can process the id again.
    pub async fn release(&self, id: &str) -> Result<(), StoreError> {
        self.store.delete(&key(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedTable;
    use std::sync::Arc;
    use std::time::Duration;

    fn idempotency() -> Idempotency {
        Idempotency::new(Arc::new(EmbeddedTable::new()), 7)
    }

    #[tokio::test]
    async fn a_live_lock_is_in_progress_until_it_lapses() {
        let idempotency = idempotency();
        let lapses = now_epoch_seconds() + 20;
        assert_eq!(idempotency.begin("w-1", "h", lapses).await.expect("begin"), Begin::Acquired);
        let again = idempotency.begin("w-1", "h", now_epoch_seconds() + 30).await.expect("begin");
        assert_eq!(again, Begin::InProgress { lock_expires_at: lapses });
        assert_eq!(idempotency.begin("w-1", "other", now_epoch_seconds() + 30).await.expect("begin"), Begin::PayloadChanged);
    }

    #[tokio::test]
    async fn completion_after_the_lock_lapsed_still_counts() {
        let idempotency = idempotency();
        assert_eq!(idempotency.begin("w-1", "h", now_epoch_seconds() + 1).await.expect("begin"), Begin::Acquired);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        idempotency.complete("w-1", "h", "posted").await.expect("complete after the lapse");
        assert_eq!(idempotency.begin("w-1", "h", now_epoch_seconds() + 30).await.expect("begin"), Begin::AlreadyCompleted);
    }

    #[tokio::test]
    async fn a_released_lock_is_free_again() {
        let idempotency = idempotency();
        assert_eq!(idempotency.begin("w-1", "h", now_epoch_seconds() + 30).await.expect("begin"), Begin::Acquired);
        idempotency.release("w-1").await.expect("release");
        assert_eq!(idempotency.begin("w-1", "h", now_epoch_seconds() + 30).await.expect("begin"), Begin::Acquired);
    }
}
