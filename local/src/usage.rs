//! What the local stack's work would be billed in AWS: API Gateway requests, Lambda invocations,
//! SQS requests and DynamoDB request units, counted as the embedded store and queues serve them.
//! `GET /local/usage` reads the counts; `cargo xtask bench` turns a load run's counts into the
//! cost per million webhooks in BENCHMARKS.md.
//!
//! Units follow the DynamoDB Developer Guide ("Read and write capacity units", "Item sizes and
//! formats") and the Amazon SQS pricing page:
//! - a write costs one unit per started KB of the larger of the old and the new item, also when
//!   its condition fails; a delete, per KB of the item it removes;
//! - a strongly consistent read (every read here is one) costs one unit per started 4 KB of each
//!   item, at least one, also for a key with no item; a query, per 4 KB of all it returns;
//! - an SQS request is billed per started 64 KB of its payload.

use crate::LocalQueue;
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use shared::queue::{MessageSender, MessageSource, MessageVisibility, QueueDepth, QueueError, ReceivedMessage};
use shared::store::{
    Condition, Item, ItemDelete, ItemGet, ItemGetMany, ItemPut, ItemPutMany, ItemQuery, Key, SharedTable, StoreError,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WRITE_UNIT_BYTES: usize = 1024;
const READ_UNIT_BYTES: usize = 4096;
const SQS_CHUNK_BYTES: usize = 64 * 1024;

/// Counts, by what AWS bills. Cheap to update: atomics, and one short lock per table write.
#[derive(Default)]
pub struct Usage {
    counts: Mutex<BTreeMap<&'static str, u64>>,
    /// Write units and writes by the kind of item written (its key's leading parts).
    writes_by_item: Mutex<BTreeMap<String, (u64, u64)>>,
    api_requests: AtomicU64,
}

impl Usage {
    fn add(&self, name: &'static str, by: u64) {
        *self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(name).or_default() += by;
    }

    /// One request through API Gateway to `function`: an API request and a Lambda invocation.
    pub fn api_request(&self, function: &'static str) {
        self.api_requests.fetch_add(1, Ordering::Relaxed);
        self.add(function, 1);
    }

    fn wrote(&self, key: &Key, units: u64) {
        self.add("dynamodb.writeUnits", units);
        let mut by_item = self.writes_by_item.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = by_item.entry(item_kind(key)).or_default();
        entry.0 += 1;
        entry.1 += units;
    }

    /// The counts as JSON: `apiRequests`, `invocations`, `dynamodb`, `sqs`, `writesByItem`.
    pub fn report(&self) -> Value {
        let counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mut groups: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for (name, count) in counts {
            let (group, field) = name.split_once('.').unwrap_or(("invocations", name));
            groups.entry(group).or_default().insert(field.to_owned(), count.into());
        }
        let by_item = self.writes_by_item.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let writes_by_item: Map<String, Value> = by_item
            .iter()
            .map(|(kind, (writes, units))| (kind.clone(), json!({ "writes": writes, "writeUnits": units })))
            .collect();
        let mut report =
            json!({ "apiRequests": self.api_requests.load(Ordering::Relaxed), "writesByItem": writes_by_item });
        for (group, fields) in groups {
            report[group] = Value::Object(fields);
        }
        report
    }
}

/// The kind of an item, for the write table: its partition key's and sort key's leading words
/// (`invoice#/claim#`), never the ids after them.
fn item_kind(key: &Key) -> String {
    let lead = |part: &str| part.find('#').map_or("…", |at| &part[..=at]).to_owned();
    format!("{}/{}", lead(&key.pk), if key.sk == "#" { "#".to_owned() } else { lead(&key.sk) })
}

/// An item's size as DynamoDB counts it: attribute names and values, numbers at about one byte
/// per two significant digits, maps and lists at 3 bytes plus 1 per element.
pub fn item_bytes(item: &Item) -> usize {
    let number = |text: &str| text.trim_start_matches('-').trim_matches('0').replace('.', "").len().div_ceil(2) + 1;
    let mut size = "pk".len() + item.key.pk.len() + "sk".len() + item.key.sk.len();
    size += "version".len() + number(&item.version.to_string());
    if let Some(at) = item.expires_at {
        size += "ttl".len() + number(&at.to_string());
    }
    fn value_bytes(value: &Value, number: &dyn Fn(&str) -> usize) -> usize {
        match value {
            Value::Null | Value::Bool(_) => 1,
            Value::Number(n) => number(&n.to_string()),
            Value::String(text) => text.len(),
            Value::Array(values) => 3 + values.iter().map(|v| 1 + value_bytes(v, number)).sum::<usize>(),
            Value::Object(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_bytes(v, number)).sum::<usize>(),
        }
    }
    size + item.attrs.iter().map(|(name, value)| name.len() + value_bytes(value, &number)).sum::<usize>()
}

fn units(bytes: usize, unit: usize) -> u64 {
    bytes.div_ceil(unit).max(1) as u64
}

/// The table, counted.
pub struct MeteredTable {
    inner: SharedTable,
    usage: Arc<Usage>,
}

impl MeteredTable {
    pub fn new(inner: SharedTable, usage: Arc<Usage>) -> Self {
        Self { inner, usage }
    }

    /// The size of the live item under `key`: a write is billed on the larger of old and new.
    async fn current_bytes(&self, key: &Key) -> usize {
        self.inner.get(key).await.ok().flatten().as_ref().map_or(0, item_bytes)
    }
}

#[async_trait]
impl ItemGet for MeteredTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let found = self.inner.get(key).await?;
        self.usage.add("dynamodb.GetItem", 1);
        self.usage.add("dynamodb.readUnits", units(found.as_ref().map_or(0, item_bytes), READ_UNIT_BYTES));
        Ok(found)
    }
}

#[async_trait]
impl ItemPut for MeteredTable {
    async fn put(&self, item: &Item, condition: Condition) -> Result<u64, StoreError> {
        let old = self.current_bytes(&item.key).await;
        let result = self.inner.put(item, condition).await;
        if !matches!(result, Err(StoreError::Invalid(_))) {
            self.usage.add("dynamodb.PutItem", 1);
            self.usage.wrote(&item.key, units(old.max(item_bytes(item)), WRITE_UNIT_BYTES));
        }
        result
    }
}

#[async_trait]
impl ItemDelete for MeteredTable {
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let old = self.current_bytes(key).await;
        self.inner.delete(key).await?;
        self.usage.add("dynamodb.DeleteItem", 1);
        self.usage.wrote(key, units(old, WRITE_UNIT_BYTES));
        Ok(())
    }
}

#[async_trait]
impl ItemQuery for MeteredTable {
    async fn query(&self, pk: &str, sk_prefix: &str) -> Result<Vec<Item>, StoreError> {
        let found = self.inner.query(pk, sk_prefix).await?;
        self.usage.add("dynamodb.Query", 1);
        self.usage.add("dynamodb.readUnits", units(found.iter().map(item_bytes).sum(), READ_UNIT_BYTES));
        Ok(found)
    }
}

#[async_trait]
impl ItemGetMany for MeteredTable {
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let found = self.inner.get_many(keys).await?;
        self.usage.add("dynamodb.BatchGetItem", 1);
        let read: u64 = found.iter().map(|item| units(item.as_ref().map_or(0, item_bytes), READ_UNIT_BYTES)).sum();
        self.usage.add("dynamodb.readUnits", read);
        Ok(found)
    }
}

#[async_trait]
impl ItemPutMany for MeteredTable {
    async fn put_many(&self, items: &[Item]) -> Result<(), StoreError> {
        let mut old = Vec::with_capacity(items.len());
        for item in items {
            old.push(self.current_bytes(&item.key).await);
        }
        self.inner.put_many(items).await?;
        self.usage.add("dynamodb.BatchWriteItem", items.len().div_ceil(25) as u64);
        for (item, old) in items.iter().zip(old) {
            self.usage.wrote(&item.key, units(old.max(item_bytes(item)), WRITE_UNIT_BYTES));
        }
        Ok(())
    }
}

/// A queue, counted. Receives that find nothing are counted apart: in AWS the event source
/// mapping's idle long polls are a fixed cost, not a cost per webhook.
pub struct MeteredQueue {
    inner: Arc<dyn LocalQueue>,
    usage: Arc<Usage>,
    name: &'static str,
}

impl MeteredQueue {
    pub fn new(inner: Arc<dyn LocalQueue>, usage: Arc<Usage>, name: &'static str) -> Self {
        Self { inner, usage, name }
    }

    fn count(&self, operation: &'static str, payload_bytes: usize) {
        self.usage.add(operation, 1);
        self.usage.add("sqs.billedRequests", units(payload_bytes, SQS_CHUNK_BYTES));
        if self.name == "work" {
            self.usage.add("sqs.workQueueRequests", 1);
        }
    }
}

#[async_trait]
impl MessageSender for MeteredQueue {
    async fn send(&self, body: String) -> Result<String, QueueError> {
        let bytes = body.len();
        let sent = self.inner.send(body).await?;
        self.count("sqs.SendMessage", bytes);
        Ok(sent)
    }

    async fn send_batch(&self, bodies: Vec<String>) -> Result<Vec<Result<String, QueueError>>, QueueError> {
        let bytes = bodies.iter().map(String::len).sum();
        let sent = self.inner.send_batch(bodies).await?;
        self.count("sqs.SendMessageBatch", bytes);
        Ok(sent)
    }
}

#[async_trait]
impl MessageSource for MeteredQueue {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        let received = self.inner.receive(max, wait).await?;
        if received.is_empty() {
            self.usage.add("sqs.emptyReceives", 1);
        } else {
            self.count("sqs.ReceiveMessage", received.iter().map(|m| m.body.len()).sum());
            self.usage.add("sqs.messagesReceived", received.len() as u64);
            // The event source mapping hands each batch to one invocation of the queue's consumer.
            match self.name {
                "work" => self.usage.add("invoice-status-poster", 1),
                "icare" => self.usage.add("icare-sender", 1),
                _ => {}
            }
        }
        Ok(received)
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.inner.delete(receipt_handle).await?;
        self.count("sqs.DeleteMessage", 0);
        Ok(())
    }
}

#[async_trait]
impl MessageVisibility for MeteredQueue {
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), QueueError> {
        self.inner.change_visibility(receipt_handle, timeout).await?;
        self.count("sqs.ChangeMessageVisibility", 0);
        Ok(())
    }
}

#[async_trait]
impl QueueDepth for MeteredQueue {
    async fn depth(&self) -> Result<usize, QueueError> {
        self.inner.depth().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(attrs: Value) -> Item {
        let Value::Object(attrs) = attrs else { unreachable!() };
        Item::new(Key::new("invoice#1", "header"), attrs)
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        // pk + "invoice#1" (11), sk + "header" (8), version + 0 (7 + 1)
        assert_eq!(item_bytes(&item(json!({}))), 27);
        // a string is its bytes; a number about half its digits plus one; a map 3 + 1 per entry
        assert_eq!(item_bytes(&item(json!({ "a": "xyz" }))), 27 + 1 + 3);
        assert_eq!(item_bytes(&item(json!({ "n": 12345 }))), 27 + 1 + 4);
        assert_eq!(item_bytes(&item(json!({ "m": { "b": true } }))), 27 + 1 + 3 + 1 + 1 + 1);
    }

    #[test]
    fn kinds_keep_leading_words_only() {
        assert_eq!(item_kind(&Key::new("invoice#INV-1", "claim#C-9")), "invoice#/claim#");
        assert_eq!(item_kind(&Key::new("idempotency#abc", "#")), "idempotency#/#");
        assert_eq!(item_kind(&Key::new("invoice#INV-1", "header")), "invoice#/…");
    }

    #[tokio::test]
    async fn writes_bill_the_larger_item_and_failed_conditions_too() {
        let usage = Arc::new(Usage::default());
        let table = MeteredTable::new(Arc::new(shared::store::embedded::EmbeddedTable::new()), usage.clone());
        let big = item(json!({ "text": "x".repeat(1500) }));
        table.put(&big, Condition::Absent).await.expect("the embedded table");
        assert!(table.put(&big, Condition::Absent).await.is_err());
        table.put(&item(json!({})), Condition::Always).await.expect("the embedded table");
        let _ = table.get(&Key::new("invoice#2", "header")).await.expect("the embedded table");
        let report = usage.report();
        assert_eq!(report["dynamodb"]["PutItem"], 3);
        assert_eq!(report["dynamodb"]["writeUnits"], 2 + 2 + 2);
        assert_eq!(report["dynamodb"]["readUnits"], 1);
    }
}
