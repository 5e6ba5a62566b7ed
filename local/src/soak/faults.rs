//! Fault injection driven by a seed: every decision is a hash of the seed, the kind of fault,
//! a key (the item's partition key, the webhook id) and how many times that key has been asked
//! about, so the same seed injects the same faults into the same operations. (Keys that are not
//! fixed by the seed, such as the queue's random message ids, are not used: the order of
//! operations is, since a seed runs on one thread on a paused clock.)

use async_trait::async_trait;
use shared::queue::{MessageSender, MessageSource, MessageVisibility, QueueDepth, QueueError, ReceivedMessage};
use shared::store::{
    Condition, Item, ItemDelete, ItemGet, ItemGetMany, ItemPut, ItemPutMany, ItemQuery, Key, SharedTable, StoreError,
};
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How often each fault strikes, in parts per thousand of the operations it applies to.
pub mod rate {
    /// A store operation fails before it is applied: DynamoDB throttles, or is unavailable.
    pub const STORE_THROTTLED: u64 = 10;
    pub const STORE_UNAVAILABLE: u64 = 10;
    /// A store write is applied and its answer lost: the caller sees an error.
    pub const STORE_LOST_REPLY: u64 = 5;
    /// SendMessage fails: the receiver answers 503 and HICAPS delivers again.
    pub const QUEUE_SEND_FAILED: u64 = 30;
    /// DeleteMessage fails: the message comes back after its visibility timeout.
    pub const QUEUE_DELETE_FAILED: u64 = 10;
    /// HICAPS's answers to a status post.
    pub const HICAPS_503: u64 = 30;
    pub const HICAPS_429: u64 = 20;
    pub const HICAPS_408: u64 = 10;
    pub const HICAPS_TIMEOUT: u64 = 10;
    pub const HICAPS_SLOW: u64 = 30;
    pub const TOKEN_503: u64 = 10;
    /// A poster invocation (one batch) cancelled at a random await point.
    pub const CRASH: u64 = 30;
}

/// The seed's decisions and a count of each fault injected.
pub struct Faults {
    seed: u64,
    asked: Mutex<HashMap<(&'static str, String), u64>>,
    injected: Mutex<BTreeMap<&'static str, u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Faults {
    pub fn new(seed: u64) -> Self {
        Self { seed, asked: Mutex::default(), injected: Mutex::default() }
    }

    /// A number fixed by the seed, the question and how often `key` was asked it before.
    pub fn draw(&self, question: &'static str, key: &str) -> u64 {
        let nth = {
            let mut asked = lock(&self.asked);
            let count = asked.entry((question, key.to_owned())).or_insert(0);
            *count += 1;
            *count
        };
        self.fixed(question, key, nth)
    }

    /// A number fixed by the seed and the arguments alone.
    pub fn fixed(&self, question: &str, key: &str, nth: u64) -> u64 {
        // `DefaultHasher::new` has fixed keys: the same number for the same input in every run.
        let mut hasher = std::hash::DefaultHasher::new();
        (self.seed, question, key, nth).hash(&mut hasher);
        hasher.finish()
    }

    /// Counts the fault as injected.
    pub fn count(&self, kind: &'static str) {
        *lock(&self.injected).entry(kind).or_insert(0) += 1;
    }

    /// Picks at most one of `faults` (kind, rate per thousand) for this operation and counts it.
    pub fn pick(&self, question: &'static str, key: &str, faults: &[(&'static str, u64)]) -> Option<&'static str> {
        let mut roll = self.draw(question, key) % 1000;
        for (kind, rate) in faults {
            if roll < *rate {
                self.count(kind);
                return Some(kind);
            }
            roll -= rate;
        }
        None
    }

    pub fn injected(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.injected).clone()
    }
}

/// The table with faults before each operation, and lost answers after some writes. Each
/// operation yields first, so a cancelled invocation can stop at any of them.
pub struct FaultyTable {
    pub inner: SharedTable,
    pub faults: Arc<Faults>,
}

impl FaultyTable {
    async fn before(&self, operation: &'static str, pk: &str) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        let faults = [("store.throttled", rate::STORE_THROTTLED), ("store.unavailable", rate::STORE_UNAVAILABLE)];
        match self.faults.pick(operation, pk, &faults) {
            Some(kind) => Err(StoreError::Unavailable(format!("{kind} (injected)"))),
            None => Ok(()),
        }
    }

    fn after_write<R>(
        &self,
        operation: &'static str,
        pk: &str,
        result: Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        match (result, self.faults.pick(operation, pk, &[("store.lostReply", rate::STORE_LOST_REPLY)])) {
            (Ok(_), Some(kind)) => Err(StoreError::Unavailable(format!("{kind} (injected)"))),
            (result, _) => result,
        }
    }
}

#[async_trait]
impl ItemGet for FaultyTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.before("get", &key.pk).await?;
        self.inner.get(key).await
    }
}

#[async_trait]
impl ItemPut for FaultyTable {
    async fn put(&self, item: &Item, condition: Condition) -> Result<u64, StoreError> {
        self.before("put", &item.key.pk).await?;
        let result = self.inner.put(item, condition).await;
        self.after_write("put.reply", &item.key.pk, result)
    }
}

#[async_trait]
impl ItemDelete for FaultyTable {
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.before("delete", &key.pk).await?;
        let result = self.inner.delete(key).await;
        self.after_write("delete.reply", &key.pk, result)
    }
}

#[async_trait]
impl ItemQuery for FaultyTable {
    async fn query(&self, pk: &str, sk_prefix: &str) -> Result<Vec<Item>, StoreError> {
        self.before("query", pk).await?;
        self.inner.query(pk, sk_prefix).await
    }
}

#[async_trait]
impl ItemGetMany for FaultyTable {
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.before("getMany", keys.first().map_or("", |key| key.pk.as_str())).await?;
        self.inner.get_many(keys).await
    }
}

#[async_trait]
impl ItemPutMany for FaultyTable {
    async fn put_many(&self, items: &[Item]) -> Result<(), StoreError> {
        let pk = items.first().map_or("", |item| item.key.pk.as_str());
        self.before("putMany", pk).await?;
        let result = self.inner.put_many(items).await;
        self.after_write("putMany.reply", pk, result)
    }
}

/// The work queue with failed sends and deletes. Receives and visibility changes pass through.
pub struct FaultyQueue<Q> {
    pub inner: Arc<Q>,
    pub faults: Arc<Faults>,
}

#[async_trait]
impl<Q: MessageSender + 'static> MessageSender for FaultyQueue<Q> {
    async fn send(&self, body: String) -> Result<String, QueueError> {
        tokio::task::yield_now().await;
        // Keyed by the webhook as sent, not by the receiver's `receivedAt` before it.
        let sent = body.find("\"webhook\":").and_then(|at| body.get(at..)).unwrap_or(&body);
        let key = format!("{:x}", self.faults.fixed("message", sent, 0));
        if self.faults.pick("send", &key, &[("queue.sendFailed", rate::QUEUE_SEND_FAILED)]).is_some() {
            return Err(QueueError::Unavailable("SendMessage failed (injected)".into()));
        }
        self.inner.send(body).await
    }
}

#[async_trait]
impl<Q: MessageSource + 'static> MessageSource for FaultyQueue<Q> {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.inner.receive(max, wait).await
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        // Keyed on the order of deletes, not the receipt handle: handles carry the queue's random
        // message ids, and the order is fixed by the seed (one thread, a paused clock).
        if self.faults.pick("delete", "", &[("queue.deleteFailed", rate::QUEUE_DELETE_FAILED)]).is_some() {
            return Err(QueueError::Unavailable("DeleteMessage failed (injected)".into()));
        }
        self.inner.delete(receipt_handle).await
    }
}

#[async_trait]
impl<Q: MessageVisibility + 'static> MessageVisibility for FaultyQueue<Q> {
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), QueueError> {
        self.inner.change_visibility(receipt_handle, timeout).await
    }
}

#[async_trait]
impl<Q: QueueDepth + 'static> QueueDepth for FaultyQueue<Q> {
    async fn depth(&self) -> Result<usize, QueueError> {
        self.inner.depth().await
    }
}
