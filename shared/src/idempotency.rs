//! Idempotent processing keyed on an id (a webhook `id`), in the manner of Powertools for AWS
//! Lambda: a conditional write takes an in-progress lock that lapses with the invocation's
//! remaining time; completion is recorded and kept for a configured retention, longer than any
//! redelivery window (HICAPS retries for about 5.5 minutes; SQS FIFO de-duplicates for 5).
//!
//! One item per id (`idempotency#<id>`) records where the work stands:
//!
//! | `status` | meaning | a later delivery |
//! | --- | --- | --- |
//! | `inProgress` | a holder works on it until `lockExpiresAt` | waits for the lapse, then takes over |
//! | `released` | a holder gave up for a transient reason | takes it |
//! | `completed` | done; `outcome` says how | a duplicate: nothing again |
//! | `deadLettered` | refused for good, in the dead-letter queue | a duplicate, unless it is a replay |
//!
//! The item also carries what must survive a change of holder: `posted` (the one outbound post
//! happened, so a retry resumes after it instead of posting again), `webhookErrorCalled` (HICAPS
//! was asked to redeliver, which happens at most once per id) and `attempts`; and, for operators'
//! `cargo xtask inspect`, what the work is ([`About`]) and why it was dead-lettered. The item itself
//! lives for the retention whatever its state, so none of that is lost when a lock lapses.

use crate::store::{Condition, Item, Key, SharedTable, StoreError};
use crate::time::now_seconds;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

const IN_PROGRESS: &str = "inProgress";
const RELEASED: &str = "released";
const COMPLETED: &str = "completed";
const DEAD_LETTERED: &str = "deadLettered";

/// Key prefix of the idempotency items.
pub const KEY_PREFIX: &str = "idempotency#";

/// What trying to take the lock on an id found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// This invocation holds the lock and must process, then `complete`, `release` or
    /// `dead_letter`.
    Acquired(Lock),
    /// Processed before with the same payload: do nothing again.
    AlreadyCompleted,
    /// Refused for good before and dead-lettered: a redelivery is a duplicate (a replay from the
    /// dead-letter queue takes the lock instead).
    DeadLettered,
    /// Another invocation holds a live lock until `lock_expires_at` (epoch seconds): by then it
    /// has completed, released the lock, or lost it, so asking again sooner changes nothing.
    InProgress { lock_expires_at: i64 },
    /// The id is known with a different payload: flag it, do not process.
    PayloadChanged,
}

/// What the work under an id is, kept on its record for operators (`cargo xtask inspect`): kinds,
/// times and ids only, never a value from the payload that could be personal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct About {
    /// The webhook's `type` (a known one), or `decision`.
    pub kind: String,
    /// When the receiver accepted it (epoch milliseconds); the first delivery's is kept.
    pub received_at_ms: Option<i64>,
    /// The invoice it is about, when it names one.
    pub invoice_id: Option<String>,
}

/// A held lock and what earlier holders left on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub id: String,
    pub hash: String,
    pub about: About,
    /// This delivery's attempt at the id, 1 for the first.
    pub attempts: u32,
    /// The work's outbound post happened (in an earlier attempt, or in this one): resume after it.
    pub posted: bool,
    /// The post happened in this attempt and no write has recorded it yet: the next write of the
    /// work's records carries [`Idempotency::pending_note`], or [`Idempotency::mark_posted`] does.
    pub note_pending: bool,
    /// HICAPS has been asked to redeliver this id once already.
    pub webhook_error_called: bool,
    pub lock_expires_at: i64,
}

#[derive(Clone)]
pub struct Idempotency {
    store: SharedTable,
    retention_seconds: i64,
}

pub fn payload_hash(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(payload))
}

pub fn key(id: &str) -> Key {
    Key::new(format!("{KEY_PREFIX}{id}"), "#")
}

fn flag(item: &Item, name: &str) -> bool {
    item.attrs.get(name).and_then(Value::as_bool).unwrap_or(false)
}

impl Idempotency {
    pub fn new(store: SharedTable, retention_days: u32) -> Self {
        Self { store, retention_seconds: i64::from(retention_days) * 86_400 }
    }

    fn record(&self, lock: &Lock, status: &str, extra: &[(&str, Value)]) -> Item {
        let mut attrs = Map::new();
        attrs.insert("status".into(), json!(status));
        attrs.insert("payloadHash".into(), json!(lock.hash));
        attrs.insert("attempts".into(), json!(lock.attempts));
        attrs.insert("posted".into(), json!(lock.posted));
        attrs.insert("webhookErrorCalled".into(), json!(lock.webhook_error_called));
        attrs.insert("updatedAt".into(), json!(crate::time::now_millis()));
        if !lock.about.kind.is_empty() {
            attrs.insert("kind".into(), json!(lock.about.kind));
        }
        if let Some(received_at_ms) = lock.about.received_at_ms {
            attrs.insert("receivedAt".into(), json!(received_at_ms));
        }
        if let Some(invoice_id) = &lock.about.invoice_id {
            attrs.insert("invoiceId".into(), json!(invoice_id));
        }
        for (name, value) in extra {
            attrs.insert((*name).into(), value.clone());
        }
        Item::new(key(&lock.id), attrs).expiring_at(now_seconds() + self.retention_seconds)
    }

    /// Takes the lock for `id` until `lock_expires_at` (epoch seconds). `replay` is true for a
    /// message an operator sent back from the dead-letter queue: it may take a dead-lettered id.
    pub async fn begin(
        &self,
        id: &str,
        hash: &str,
        about: About,
        lock_expires_at: i64,
        replay: bool,
    ) -> Result<LockOutcome, StoreError> {
        let fresh = Lock {
            id: id.to_owned(),
            hash: hash.to_owned(),
            about,
            attempts: 1,
            posted: false,
            note_pending: false,
            webhook_error_called: false,
            lock_expires_at,
        };
        let item = self.record(&fresh, IN_PROGRESS, &[("lockExpiresAt", json!(lock_expires_at))]);
        let current = match self.store.put(&item, Condition::Absent).await {
            Ok(_) => return Ok(LockOutcome::Acquired(fresh)),
            Err(StoreError::Conflict { current: Some(current) }) => current,
            // The item expired between the condition check and the read of its old image.
            Err(StoreError::Conflict { current: None }) => {
                return Ok(LockOutcome::InProgress { lock_expires_at: now_seconds() });
            }
            Err(other) => return Err(other),
        };
        if current.str_attr("payloadHash") != Some(hash) {
            return Ok(LockOutcome::PayloadChanged);
        }
        let now = now_seconds();
        match current.str_attr("status") {
            Some(COMPLETED) => return Ok(LockOutcome::AlreadyCompleted),
            Some(DEAD_LETTERED) if !replay => return Ok(LockOutcome::DeadLettered),
            Some(IN_PROGRESS) => {
                // Locks written before `lockExpiresAt` existed lapsed with the item itself.
                let held_until =
                    current.attrs.get("lockExpiresAt").and_then(Value::as_i64).or(current.expires_at).unwrap_or(0);
                if held_until > now {
                    return Ok(LockOutcome::InProgress { lock_expires_at: held_until });
                }
            }
            _ => {}
        }
        // Released, lapsed, or a replay of a dead letter: take over, keeping what the item knows.
        let attempts =
            current.attrs.get("attempts").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
        let first_received = current.attrs.get("receivedAt").and_then(Value::as_i64);
        let lock = Lock {
            about: About { received_at_ms: first_received.or(fresh.about.received_at_ms), ..fresh.about.clone() },
            attempts: attempts.saturating_add(1),
            posted: flag(&current, "posted"),
            webhook_error_called: flag(&current, "webhookErrorCalled"),
            ..fresh
        };
        let mut item = self.record(&lock, IN_PROGRESS, &[("lockExpiresAt", json!(lock_expires_at))]);
        item.version = current.version;
        match self.store.put(&item, Condition::Version(current.version)).await {
            Ok(_) => Ok(LockOutcome::Acquired(lock)),
            // Another delivery took it first; its lock runs to about the same time as ours would.
            Err(StoreError::Conflict { .. }) => Ok(LockOutcome::InProgress { lock_expires_at }),
            Err(other) => Err(other),
        }
    }

    /// The lock's item noting that the post happened, for the next write of the work's records
    /// to carry in the same batch (no request of its own); `None` when nothing is pending.
    pub fn pending_note(&self, lock: &Lock) -> Option<Item> {
        lock.note_pending.then(|| self.record(lock, IN_PROGRESS, &[("lockExpiresAt", json!(lock.lock_expires_at))]))
    }

    /// Records on its own that the work's outbound post happened, so a retry resumes after it.
    pub async fn mark_posted(&self, lock: &mut Lock) -> Result<(), StoreError> {
        lock.posted = true;
        let item = self.record(lock, IN_PROGRESS, &[("lockExpiresAt", json!(lock.lock_expires_at))]);
        self.store.put(&item, Condition::Always).await?;
        lock.note_pending = false;
        Ok(())
    }

    /// Records that HICAPS was asked to redeliver, before asking: at most once per id, even if
    /// the call then fails.
    pub async fn mark_webhook_error_called(&self, lock: &mut Lock) -> Result<(), StoreError> {
        lock.webhook_error_called = true;
        let item = self.record(lock, IN_PROGRESS, &[("lockExpiresAt", json!(lock.lock_expires_at))]);
        self.store.put(&item, Condition::Always).await.map(drop)
    }

    /// Records completion, kept for the retention period. Unconditional, as in Powertools: the
    /// effect has happened, and a holder that finishes after its lock lapsed must still record it,
    /// or the retry takes the free lock and does it again. (If another delivery took the lapsed
    /// lock meanwhile, it has acted too; refusing this record would not undo either.)
    pub async fn complete(&self, lock: &Lock, outcome: &str) -> Result<(), StoreError> {
        let item = self.record(lock, COMPLETED, &[("outcome", json!(outcome))]);
        self.store.put(&item, Condition::Always).await.map(drop)
    }

    /// Records a permanent refusal: later deliveries of the id are duplicates, except a replay.
    /// `reason` is the kind of refusal, never a value from the payload.
    pub async fn dead_letter(&self, lock: &Lock, reason: &str) -> Result<(), StoreError> {
        let item = self.record(
            lock,
            DEAD_LETTERED,
            &[
                ("outcome", json!("deadLettered")),
                ("reason", json!(reason)),
                ("deadLetteredAt", json!(crate::time::now_millis())),
            ],
        );
        self.store.put(&item, Condition::Always).await.map(drop)
    }

    /// Gives the lock up after the last transient failure dead-lettered the message: the id stays
    /// free for HICAPS's redelivery, and the record says why the letter exists.
    pub async fn give_up(&self, lock: &Lock, reason: &str) -> Result<(), StoreError> {
        let item = self.record(
            lock,
            RELEASED,
            &[("reason", json!(reason)), ("deadLetteredAt", json!(crate::time::now_millis()))],
        );
        self.store.put(&item, Condition::Always).await.map(drop)
    }

    /// Gives the lock up so a later delivery can process the id again, keeping what it knows.
    pub async fn release(&self, lock: &Lock) -> Result<(), StoreError> {
        let item = self.record(lock, RELEASED, &[]);
        self.store.put(&item, Condition::Always).await.map(drop)
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

    async fn acquire(idempotency: &Idempotency, id: &str, hash: &str, until: i64) -> Lock {
        match idempotency.begin(id, hash, About::default(), until, false).await.expect("begin") {
            LockOutcome::Acquired(lock) => lock,
            other => panic!("expected the lock, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_live_lock_is_in_progress_until_it_lapses() {
        let idempotency = idempotency();
        let lapses = now_seconds() + 20;
        acquire(&idempotency, "w-1", "h", lapses).await;
        let again = idempotency.begin("w-1", "h", About::default(), now_seconds() + 30, false).await.expect("begin");
        assert_eq!(again, LockOutcome::InProgress { lock_expires_at: lapses });
        let changed =
            idempotency.begin("w-1", "other", About::default(), now_seconds() + 30, false).await.expect("begin");
        assert_eq!(changed, LockOutcome::PayloadChanged);
    }

    #[tokio::test]
    async fn a_lapsed_lock_is_taken_over_with_what_it_knew() {
        let idempotency = idempotency();
        let mut lock = acquire(&idempotency, "w-1", "h", now_seconds() + 1).await;
        idempotency.mark_posted(&mut lock).await.expect("posted");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let next = acquire(&idempotency, "w-1", "h", now_seconds() + 30).await;
        assert!(next.posted, "the post is remembered past the lapse");
        assert_eq!(next.attempts, 2);
    }

    #[tokio::test]
    async fn completion_after_the_lock_lapsed_still_counts() {
        let idempotency = idempotency();
        let lock = acquire(&idempotency, "w-1", "h", now_seconds() + 1).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        idempotency.complete(&lock, "posted").await.expect("complete after the lapse");
        let again = idempotency.begin("w-1", "h", About::default(), now_seconds() + 30, false).await.expect("begin");
        assert_eq!(again, LockOutcome::AlreadyCompleted);
    }

    #[tokio::test]
    async fn a_released_lock_is_free_again_and_keeps_the_webhook_error_call() {
        let idempotency = idempotency();
        let mut lock = acquire(&idempotency, "w-1", "h", now_seconds() + 30).await;
        idempotency.mark_webhook_error_called(&mut lock).await.expect("mark");
        idempotency.release(&lock).await.expect("release");
        let next = acquire(&idempotency, "w-1", "h", now_seconds() + 30).await;
        assert!(next.webhook_error_called);
        assert!(!next.posted);
    }

    #[tokio::test]
    async fn a_dead_lettered_id_is_a_duplicate_except_for_a_replay() {
        let idempotency = idempotency();
        let lock = acquire(&idempotency, "w-1", "h", now_seconds() + 30).await;
        idempotency.dead_letter(&lock, "HICAPS answered 400").await.expect("dead letter");
        let redelivered =
            idempotency.begin("w-1", "h", About::default(), now_seconds() + 30, false).await.expect("begin");
        assert_eq!(redelivered, LockOutcome::DeadLettered);
        let replayed = idempotency.begin("w-1", "h", About::default(), now_seconds() + 30, true).await.expect("begin");
        assert!(matches!(replayed, LockOutcome::Acquired(Lock { attempts: 2, .. })));
    }
}
