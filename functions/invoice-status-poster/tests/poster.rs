//! The poster against a wiremock HICAPS: one effective post through transient failures,
//! dead-lettering on a rejection, `lp:webhook-error` called once, callbacks only to allowed
//! hosts, and a crash between posting and recording completion repeating the same outcome.

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use invoice_status_poster::{Config, Poster};
use serde_json::{Value, json};
use shared::config::Vars;
use shared::http_client::ReqwestClient;
use shared::program::work::webhook_message;
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::{MessageSource, MessageVisibility, QueueError};
use shared::store::embedded::EmbeddedTable;
use shared::store::{Condition, Item, ItemDelete, ItemGet, ItemGetMany, ItemPut, ItemPutMany, ItemQuery, Key, StoreError, Table};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EXAMPLE: &str = include_str!("../../../shared/tests/fixtures/hicaps/invoice-submitted-webhook.json");
const SCHEDULE: &str = include_str!("../../../local/data/benefit-schedule.json");
const MEMBERS: &str = include_str!("../../../local/data/member-registry.json");

struct Harness {
    hicaps: MockServer,
    poster: Poster,
    dlq: Arc<EmbeddedQueue>,
    retry_delays: Arc<RetryDelays>,
}

/// The work queue's visibility port: records the delay asked for each retried record.
#[derive(Default)]
struct RetryDelays(std::sync::Mutex<Vec<Duration>>);

#[async_trait]
impl MessageVisibility for RetryDelays {
    async fn change_visibility(&self, _receipt_handle: &str, timeout: Duration) -> Result<(), QueueError> {
        self.0.lock().expect("delays").push(timeout);
        Ok(())
    }
}

async fn harness(table: Arc<dyn Table>) -> Harness {
    let hicaps = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "t", "expires_in": 3600})))
        .mount(&hicaps)
        .await;
    let address = hicaps.address();
    let vars = Vars::default()
        .with("HICAPS_TOKEN_URL", format!("{}/oauth/token", hicaps.uri()))
        .with("HICAPS_CLIENT_ID", "program")
        .with("HICAPS_CLIENT_SECRET", "secret")
        .with("HICAPS_CALLBACK_HOSTS", format!("127.0.0.1:{}", address.port()))
        .with("MAX_RECEIVE_COUNT", "5")
        .with("HICAPS_TIMEOUT_SECONDS", "2")
        .with("RETRY_BASE_MILLIS", "0");
    for item in shared::program::reference::schedule_items(SCHEDULE)
        .expect("schedule")
        .into_iter()
        .chain(shared::program::reference::member_items(MEMBERS).expect("members"))
    {
        table.put(&item, Condition::Always).await.expect("reference data");
    }
    let dlq = Arc::new(EmbeddedQueue::new(Duration::from_secs(30)));
    let retry_delays = Arc::new(RetryDelays::default());
    let poster = Poster::new(
        Config::from_vars(&vars).await.expect("config"),
        table,
        Arc::new(ReqwestClient::new().expect("client")),
        retry_delays.clone(),
        dlq.clone(),
    );
    Harness { hicaps, poster, dlq, retry_delays }
}

fn webhook_to(server: &MockServer) -> String {
    let mut webhook: Value = serde_json::from_str(EXAMPLE).expect("fixture");
    webhook["_links"] = json!({
        "lp:invoice-status-updated": {"href": format!("{}/invoices/1/status", server.uri())},
        "lp:webhook-error": {"href": format!("{}/webhook-error/1", server.uri())},
    });
    webhook.to_string()
}

fn event(body: &str, receive_count: u32) -> SqsEvent {
    let mut record = SqsMessage::default();
    record.message_id = Some("m-1".into());
    record.receipt_handle = Some("r-1".into());
    record.body = Some(body.to_owned());
    record.attributes.insert("ApproximateReceiveCount".into(), receive_count.to_string());
    let mut event = SqsEvent::default();
    event.records = vec![record];
    event
}

fn deadline() -> i64 {
    chrono::Utc::now().timestamp() + 30
}

async fn status_posts(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/invoices/1/status")
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test]
async fn hicaps_500_twice_then_200_gives_one_effective_post() {
    let h = harness(Arc::new(EmbeddedTable::new())).await;
    Mock::given(method("POST")).and(path("/invoices/1/status")).respond_with(ResponseTemplate::new(500)).up_to_n_times(2).mount(&h.hicaps).await;
    Mock::given(method("POST")).and(path("/invoices/1/status")).respond_with(ResponseTemplate::new(200)).mount(&h.hicaps).await;
    let message = webhook_message(&webhook_to(&h.hicaps), 0);
    for attempt in 1..=2 {
        let response = h.poster.handle(event(&message, attempt), deadline()).await;
        assert_eq!(response.batch_item_failures.len(), 1, "attempt {attempt} is retried");
    }
    assert!(h.poster.handle(event(&message, 3), deadline()).await.batch_item_failures.is_empty());
    // A redelivery after success changes nothing.
    assert!(h.poster.handle(event(&message, 4), deadline()).await.batch_item_failures.is_empty());
    assert_eq!(status_posts(&h.hicaps).await.len(), 3, "two failed attempts and one that took");
    assert!(h.dlq.is_empty());
}

#[tokio::test]
async fn hicaps_400_dead_letters_with_the_reason_and_calls_webhook_error_once() {
    let h = harness(Arc::new(EmbeddedTable::new())).await;
    Mock::given(method("POST")).and(path("/invoices/1/status")).respond_with(ResponseTemplate::new(400).set_body_json(json!({"title": "bad"}))).mount(&h.hicaps).await;
    Mock::given(method("POST")).and(path("/webhook-error/1")).respond_with(ResponseTemplate::new(202)).expect(1).mount(&h.hicaps).await;
    let message = webhook_message(&webhook_to(&h.hicaps), 0);
    assert!(h.poster.handle(event(&message, 1), deadline()).await.batch_item_failures.is_empty(), "not retried");
    let letters = h.dlq.receive(10, Duration::from_secs(1)).await.expect("dlq");
    assert_eq!(letters.len(), 1);
    let letter: Value = serde_json::from_str(&letters[0].body).expect("letter");
    assert!(letter["reason"].as_str().is_some_and(|r| r.contains("400")), "{letter}");
    assert_eq!(shared::program::work::replayable(&letters[0].body), message, "replay restores the original");
    h.hicaps.verify().await;
}

#[tokio::test]
async fn the_last_transient_failure_dead_letters_instead_of_retrying_forever() {
    let h = harness(Arc::new(EmbeddedTable::new())).await;
    Mock::given(method("POST")).and(path("/invoices/1/status")).respond_with(ResponseTemplate::new(503)).mount(&h.hicaps).await;
    Mock::given(method("POST")).and(path("/webhook-error/1")).respond_with(ResponseTemplate::new(202)).expect(1).mount(&h.hicaps).await;
    let message = webhook_message(&webhook_to(&h.hicaps), 0);
    assert_eq!(h.poster.handle(event(&message, 4), deadline()).await.batch_item_failures.len(), 1);
    assert!(h.poster.handle(event(&message, 5), deadline()).await.batch_item_failures.is_empty());
    assert_eq!(h.dlq.len(), 1);
    h.hicaps.verify().await;
}

#[tokio::test]
async fn links_to_other_hosts_are_refused_and_no_token_is_sent() {
    let table = Arc::new(EmbeddedTable::new());
    let h = harness(table.clone()).await;
    let message = webhook_message(EXAMPLE, 0); // the spec's own links, to lanternpay.com
    assert!(h.poster.handle(event(&message, 1), deadline()).await.batch_item_failures.is_empty());
    assert_eq!(h.dlq.len(), 1, "dead-lettered with the reason");
    assert!(h.hicaps.received_requests().await.unwrap_or_default().is_empty(), "not even a token request");
    // Unanswered, the invoice is still known, its claims pending, for a later decision to reach.
    let invoice = shared::program::records::load_invoice(table.as_ref(), "9a15ad10-dbf0-4ab6-83f1-e42019f188b5")
        .await
        .expect("load")
        .expect("the invoice is recorded");
    assert!(!invoice.claims.is_empty() && invoice.claims.iter().all(|c| c.state == shared::hicaps::ClaimState::Pending));
}

/// A table that fails the first completion record, as if the function died right after posting.
struct CrashBeforeCompletion {
    inner: EmbeddedTable,
    crashed: AtomicBool,
}

#[async_trait]
impl ItemGet for CrashBeforeCompletion {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
}
#[async_trait]
impl ItemPut for CrashBeforeCompletion {
    async fn put(&self, item: &Item, condition: Condition) -> Result<u64, StoreError> {
        let completing = item.key.pk.starts_with("idempotency#") && item.str_attr("status") == Some("completed");
        if completing && !self.crashed.swap(true, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("crashed".into()));
        }
        self.inner.put(item, condition).await
    }
}
#[async_trait]
impl ItemDelete for CrashBeforeCompletion {
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
}
#[async_trait]
impl ItemQuery for CrashBeforeCompletion {
    async fn query(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, StoreError> {
        self.inner.query(pk, prefix).await
    }
}

#[async_trait]
impl ItemGetMany for CrashBeforeCompletion {
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.inner.get_many(keys).await
    }
}
#[async_trait]
impl ItemPutMany for CrashBeforeCompletion {
    async fn put_many(&self, items: &[Item]) -> Result<(), StoreError> {
        self.inner.put_many(items).await
    }
}

#[tokio::test]
async fn a_crash_after_posting_repeats_the_same_outcome_only() {
    let table = Arc::new(CrashBeforeCompletion { inner: EmbeddedTable::new(), crashed: AtomicBool::new(false) });
    let h = harness(table).await;
    Mock::given(method("POST")).and(path("/invoices/1/status")).respond_with(ResponseTemplate::new(200)).mount(&h.hicaps).await;
    let message = webhook_message(&webhook_to(&h.hicaps), 0);
    // Time for one 2 s call and the completion margin, and no more.
    let short_deadline = chrono::Utc::now().timestamp() + 6;
    assert_eq!(h.poster.handle(event(&message, 1), short_deadline).await.batch_item_failures.len(), 1);
    // While the dead invocation's lock lives, a redelivery waits.
    assert_eq!(h.poster.handle(event(&message, 2), deadline()).await.batch_item_failures.len(), 1);
    tokio::time::sleep(Duration::from_millis(6100)).await;
    assert!(h.poster.handle(event(&message, 3), deadline()).await.batch_item_failures.is_empty());
    assert!(h.poster.handle(event(&message, 4), deadline()).await.batch_item_failures.is_empty());
    let posts = status_posts(&h.hicaps).await;
    assert_eq!(posts.len(), 2, "posted before the crash and once more after the lock expired");
    assert_eq!(posts[0], posts[1], "the same outcome both times");
}

#[tokio::test]
async fn a_copy_of_work_in_progress_comes_back_when_the_lock_lapses() {
    let table: Arc<dyn Table> = Arc::new(EmbeddedTable::new());
    let h = harness(table.clone()).await;
    let webhook = webhook_to(&h.hicaps);
    // Another invocation holds the webhook's lock for 20 more seconds.
    let mut attrs = serde_json::Map::new();
    attrs.insert("status".into(), json!("inProgress"));
    attrs.insert("payloadHash".into(), json!(shared::idempotency::payload_hash(webhook.as_bytes())));
    let lock = Item::new(Key::new("idempotency#8ad735a2-21a0-481a-9174-205817e95110", "#"), attrs)
        .expiring_at(chrono::Utc::now().timestamp() + 20);
    table.put(&lock, Condition::Absent).await.expect("lock");
    assert_eq!(h.poster.handle(event(&webhook_message(&webhook, 0), 1), deadline()).await.batch_item_failures.len(), 1);
    let delays = h.retry_delays.0.lock().expect("delays").clone();
    assert_eq!(delays.len(), 1);
    assert!((Duration::from_secs(20)..=Duration::from_secs(21)).contains(&delays[0]), "{delays:?}: not before the lock lapses");
    assert!(status_posts(&h.hicaps).await.is_empty());
}

#[tokio::test]
async fn a_changed_payload_under_a_known_id_is_flagged_not_processed() {
    let table: Arc<dyn Table> = Arc::new(EmbeddedTable::new());
    let h = harness(table.clone()).await;
    Mock::given(method("POST")).and(path("/invoices/1/status")).respond_with(ResponseTemplate::new(200)).mount(&h.hicaps).await;
    let original = webhook_to(&h.hicaps);
    assert!(h.poster.handle(event(&webhook_message(&original, 0), 1), deadline()).await.batch_item_failures.is_empty());
    let mut changed: Value = serde_json::from_str(&original).expect("json");
    changed["data"]["claims"][0]["unitPrice"] = json!(9999);
    assert!(h.poster.handle(event(&webhook_message(&changed.to_string(), 0), 1), deadline()).await.batch_item_failures.is_empty());
    assert_eq!(status_posts(&h.hicaps).await.len(), 1, "the changed payload caused no second post");
    let flag = table.get(&Key::new("flagged#payloadChanged", "8ad735a2-21a0-481a-9174-205817e95110")).await.expect("get");
    assert!(flag.is_some(), "flagged for operators");
}

#[tokio::test]
async fn a_redelivery_received_later_is_a_duplicate_not_a_changed_payload() {
    let table: Arc<dyn Table> = Arc::new(EmbeddedTable::new());
    let h = harness(table.clone()).await;
    Mock::given(method("POST")).and(path("/invoices/1/status")).respond_with(ResponseTemplate::new(200)).mount(&h.hicaps).await;
    let webhook = webhook_to(&h.hicaps);
    assert!(h.poster.handle(event(&webhook_message(&webhook, 1_000), 1), deadline()).await.batch_item_failures.is_empty());
    // HICAPS delivers the same webhook again; the receiver stamps it with a later time.
    assert!(h.poster.handle(event(&webhook_message(&webhook, 61_000), 1), deadline()).await.batch_item_failures.is_empty());
    assert_eq!(status_posts(&h.hicaps).await.len(), 1);
    let flag = table.get(&Key::new("flagged#payloadChanged", "8ad735a2-21a0-481a-9174-205817e95110")).await.expect("get");
    assert!(flag.is_none(), "a redelivery is not a changed payload");
}

#[tokio::test]
async fn no_post_starts_too_close_to_the_deadline() {
    let h = harness(Arc::new(EmbeddedTable::new())).await;
    Mock::given(method("POST")).and(path("/invoices/1/status")).respond_with(ResponseTemplate::new(200)).mount(&h.hicaps).await;
    let message = webhook_message(&webhook_to(&h.hicaps), 0);
    let almost_over = chrono::Utc::now().timestamp() + 2;
    assert_eq!(h.poster.handle(event(&message, 1), almost_over).await.batch_item_failures.len(), 1, "retried later");
    assert!(status_posts(&h.hicaps).await.is_empty(), "nothing posted that the timeout could cut off");
    assert!(h.poster.handle(event(&message, 2), deadline()).await.batch_item_failures.is_empty());
    assert_eq!(status_posts(&h.hicaps).await.len(), 1);
}
