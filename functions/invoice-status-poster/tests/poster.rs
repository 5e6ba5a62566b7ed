//! The poster against a wiremock HICAPS: one effective post through transient failures,
//! dead-lettering on a rejection, `lp:webhook-error` called once, callbacks only to allowed
//! hosts, and a crash between posting and recording completion repeating the same outcome.
//!
//! Every case whose outcome rests on the store runs twice: on the embedded table and on a
//! DynamoDB table of its own at the moto server `cargo xtask test` starts.

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use invoice_status_poster::{Config, Poster};
use serde_json::{Value, json};
use shared::config::Vars;
use shared::http_client::ReqwestClient;
use shared::program::work::webhook_message;
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::{MessageSource, MessageVisibility, QueueError};
use shared::store::dynamo::DynamoTable;
use shared::store::embedded::EmbeddedTable;
use shared::store::{
    Condition, Item, ItemDelete, ItemGet, ItemGetMany, ItemPut, ItemPutMany, ItemQuery, Key, MAX_PK_BYTES,
    MAX_SK_BYTES, StoreError, Table,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Where a case's records live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    Embedded,
    Moto,
}

const STORES: [Store; 2] = [Store::Embedded, Store::Moto];

/// Held shared while a case runs on moto, and alone by the log test: at TRACE the AWS SDK logs
/// its requests and responses whole (the reference data's member numbers among them). Those are
/// the SDK's lines, not the poster's, which are what the log test holds to its rule.
static MOTO_TRACES: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A fresh table on `store`: the embedded one, or a new DynamoDB table of its own on the moto
/// server `cargo xtask test` started; on moto with a share of [`MOTO_TRACES`], to keep for as
/// long as the case uses the table. A missing endpoint is a failure, never a skip.
async fn table(store: Store) -> (Arc<dyn Table>, Option<tokio::sync::RwLockReadGuard<'static, ()>>) {
    match store {
        Store::Embedded => {
            let table: Arc<dyn Table> = Arc::new(EmbeddedTable::new());
            (table, None)
        }
        Store::Moto => {
            assert!(
                std::env::var_os("AWS_ENDPOINT_URL").is_some(),
                "AWS_ENDPOINT_URL is not set: the poster's store cases also run on DynamoDB at moto; run `cargo xtask test`, which starts it"
            );
            let traces = MOTO_TRACES.read().await;
            let config = shared::aws_config(&Vars::from_env()).await.expect("AWS SDK configuration");
            let dynamo = DynamoTable::from_sdk_config(&config, format!("poster-{}", uuid::Uuid::new_v4().simple()));
            dynamo.ensure_exists().await.expect("create a table on moto");
            let table: Arc<dyn Table> = Arc::new(dynamo);
            (table, Some(traces))
        }
    }
}

async fn harness(table: Arc<dyn Table>) -> Harness {
    harness_with_retry_base(table, 0).await
}

async fn harness_with_retry_base(table: Arc<dyn Table>, retry_base_millis: u64) -> Harness {
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
        .with("RETRY_BASE_MILLIS", retry_base_millis.to_string());
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

/// A store operation, as [`HookedTable`] shows it to its hook.
enum Op<'a> {
    Get,
    Put(&'a Item),
    Delete,
    Query,
    GetMany(&'a [Key]),
    PutMany(&'a [Item]),
}

/// A table (embedded, or DynamoDB on moto) with a hook before every operation: an error from
/// the hook is the operation's answer (a throttle, a crash), and the hook may panic (a bug).
struct HookedTable {
    inner: Arc<dyn Table>,
    hook: Box<Hook>,
}

/// What runs before each operation of a [`HookedTable`].
type Hook = dyn Fn(Op<'_>) -> Result<(), StoreError> + Send + Sync;

impl HookedTable {
    fn new(inner: Arc<dyn Table>, hook: impl Fn(Op<'_>) -> Result<(), StoreError> + Send + Sync + 'static) -> Self {
        Self { inner, hook: Box::new(hook) }
    }
}

#[async_trait]
impl ItemGet for HookedTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        (self.hook)(Op::Get)?;
        self.inner.get(key).await
    }
}
#[async_trait]
impl ItemPut for HookedTable {
    async fn put(&self, item: &Item, condition: Condition) -> Result<u64, StoreError> {
        (self.hook)(Op::Put(item))?;
        self.inner.put(item, condition).await
    }
}
#[async_trait]
impl ItemDelete for HookedTable {
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        (self.hook)(Op::Delete)?;
        self.inner.delete(key).await
    }
}
#[async_trait]
impl ItemQuery for HookedTable {
    async fn query(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, StoreError> {
        (self.hook)(Op::Query)?;
        self.inner.query(pk, prefix).await
    }
}
#[async_trait]
impl ItemGetMany for HookedTable {
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        (self.hook)(Op::GetMany(keys))?;
        self.inner.get_many(keys).await
    }
}
#[async_trait]
impl ItemPutMany for HookedTable {
    async fn put_many(&self, items: &[Item]) -> Result<(), StoreError> {
        (self.hook)(Op::PutMany(items))?;
        self.inner.put_many(items).await
    }
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

/// HICAPS answers the status post with `status` the first `times` times, then 200.
async fn answers_then_ok(hicaps: &MockServer, status: u16, times: u64) {
    Mock::given(method("POST"))
        .and(path("/invoices/1/status"))
        .respond_with(ResponseTemplate::new(status))
        .up_to_n_times(times)
        .mount(hicaps)
        .await;
    Mock::given(method("POST"))
        .and(path("/invoices/1/status"))
        .respond_with(ResponseTemplate::new(200))
        .mount(hicaps)
        .await;
}

#[tokio::test]
async fn hicaps_500_twice_then_200_gives_one_effective_post() {
    for store in STORES {
        let (table, _moto) = table(store).await;
        let h = harness(table).await;
        answers_then_ok(&h.hicaps, 500, 2).await;
        let message = webhook_message(&webhook_to(&h.hicaps), 0);
        for attempt in 1..=2 {
            let response = h.poster.handle(event(&message, attempt), deadline()).await;
            assert_eq!(response.batch_item_failures.len(), 1, "{store:?}: attempt {attempt} is retried");
        }
        assert!(h.poster.handle(event(&message, 3), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        // A redelivery after success changes nothing.
        assert!(h.poster.handle(event(&message, 4), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        assert_eq!(status_posts(&h.hicaps).await.len(), 3, "{store:?}: two failed attempts and one that took");
        assert!(h.dlq.is_empty(), "{store:?}");
    }
}

/// HICAPS refuses the status post with `status`, a 4xx it would refuse again: the webhook is
/// dead-lettered once, `lp:webhook-error` is not called (the webhook was fine, our answer was
/// not), and a redelivery of the webhook is a duplicate.
async fn a_refused_post_dead_letters_once_without_webhook_error(store: Store, status: u16) {
    let (table, _moto) = table(store).await;
    let h = harness(table).await;
    Mock::given(method("POST"))
        .and(path("/invoices/1/status"))
        .respond_with(ResponseTemplate::new(status).set_body_json(json!({"title": "bad"})))
        .mount(&h.hicaps)
        .await;
    Mock::given(method("POST"))
        .and(path("/webhook-error/1"))
        .respond_with(ResponseTemplate::new(202))
        .expect(0)
        .mount(&h.hicaps)
        .await;
    let message = webhook_message(&webhook_to(&h.hicaps), 0);
    assert!(
        h.poster.handle(event(&message, 1), deadline()).await.batch_item_failures.is_empty(),
        "{store:?} {status}: not retried"
    );
    // HICAPS delivers the same webhook again (a new SQS message): acknowledged, not processed.
    assert!(
        h.poster
            .handle(event(&webhook_message(&webhook_to(&h.hicaps), 9), 1), deadline())
            .await
            .batch_item_failures
            .is_empty(),
        "{store:?} {status}"
    );
    assert_eq!(status_posts(&h.hicaps).await.len(), 1, "{store:?} {status}: the refused request is not made again");
    let letters = h.dlq.receive(10, Duration::from_secs(1)).await.expect("dlq");
    assert_eq!(letters.len(), 1, "{store:?} {status}");
    let letter: Value = serde_json::from_str(&letters[0].body).expect("letter");
    assert!(letter["reason"].as_str().is_some_and(|r| r.contains(&status.to_string())), "{store:?}: {letter}");
    assert_eq!(
        shared::program::work::unwrap_dead_letter(&letters[0].body),
        message,
        "{store:?}: the letter keeps the original"
    );
    // An operator's replay processes it again.
    let replay = shared::program::work::replayable(&letters[0].body);
    assert!(h.poster.handle(event(&replay, 1), deadline()).await.batch_item_failures.is_empty(), "{store:?} {status}");
    assert_eq!(status_posts(&h.hicaps).await.len(), 2, "{store:?} {status}: the replay posted");
    assert_eq!(h.dlq.len(), 2, "{store:?} {status}: the first letter (in flight here) and the replay's, refused again");
    h.hicaps.verify().await;
}

#[tokio::test]
async fn hicaps_400_dead_letters_once_without_webhook_error_and_a_redelivery_is_a_duplicate() {
    for store in STORES {
        a_refused_post_dead_letters_once_without_webhook_error(store, 400).await;
    }
}

#[tokio::test]
async fn hicaps_403_404_409_422_are_permanent_like_400() {
    // Only 401 (retried once with a fresh token), 408, 425 and 429 among the 4xx are transient.
    for store in STORES {
        for status in [403, 404, 409, 422] {
            a_refused_post_dead_letters_once_without_webhook_error(store, status).await;
        }
    }
}

#[tokio::test]
async fn hicaps_429_is_retried_after_its_retry_after_not_dead_lettered() {
    for store in STORES {
        let (table, _moto) = table(store).await;
        let h = harness(table).await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
            .up_to_n_times(1)
            .mount(&h.hicaps)
            .await;
        for status in [408, 425, 503] {
            Mock::given(method("POST"))
                .and(path("/invoices/1/status"))
                .respond_with(ResponseTemplate::new(status))
                .up_to_n_times(1)
                .mount(&h.hicaps)
                .await;
        }
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        Mock::given(method("POST"))
            .and(path("/webhook-error/1"))
            .respond_with(ResponseTemplate::new(202))
            .expect(0)
            .mount(&h.hicaps)
            .await;
        let message = webhook_message(&webhook_to(&h.hicaps), 0);
        for attempt in 1..=4 {
            assert_eq!(
                h.poster.handle(event(&message, attempt), deadline()).await.batch_item_failures.len(),
                1,
                "{store:?}: attempt {attempt}"
            );
        }
        let delays = h.retry_delays.0.lock().expect("delays").clone();
        assert!(delays[0] >= Duration::from_secs(7), "{store:?}: {delays:?}: Retry-After honoured");
        assert!(h.poster.handle(event(&message, 5), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        assert!(h.dlq.is_empty(), "{store:?}");
        h.hicaps.verify().await;
    }
}

#[tokio::test]
async fn retry_after_is_capped_at_the_visibility_timeout_and_backoff_is_jittered() {
    let h = harness_with_retry_base(Arc::new(EmbeddedTable::new()), 1_000).await;
    // A day in seconds, then an HTTP date a day ahead: both held to the queue's visibility timeout.
    let tomorrow = (chrono::Utc::now() + chrono::TimeDelta::days(1)).to_rfc2822();
    for retry_after in ["86400".to_owned(), tomorrow] {
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", retry_after.as_str()))
            .up_to_n_times(1)
            .mount(&h.hicaps)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/invoices/1/status"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&h.hicaps)
        .await;
    let message = webhook_message(&webhook_to(&h.hicaps), 0);
    for attempt in 1..=2 {
        assert_eq!(h.poster.handle(event(&message, attempt), deadline()).await.batch_item_failures.len(), 1);
    }
    // The same attempt's backoff, many times over: within half to all of its step, and varied.
    for _ in 0..20 {
        assert_eq!(h.poster.handle(event(&message, 3), deadline()).await.batch_item_failures.len(), 1);
    }
    let delays = h.retry_delays.0.lock().expect("delays").clone();
    assert_eq!(&delays[..2], &[invoice_status_poster::RETRY_AFTER_MAX; 2], "{delays:?}");
    let step = invoice_status_poster::backoff(Duration::from_millis(1_000), 3);
    let backoffs = &delays[2..];
    assert!(
        backoffs.iter().all(|d| *d >= step / 2 && *d <= step),
        "{backoffs:?} not within [{:?}, {step:?}]",
        step / 2
    );
    assert!(backoffs.iter().any(|d| *d != backoffs[0]), "{backoffs:?}: no jitter");
}

#[tokio::test]
async fn a_store_failure_after_the_post_resumes_after_it_instead_of_posting_again() {
    for store in STORES {
        let (inner, _moto) = table(store).await;
        // DynamoDB throttles the records' batch twice, right after HICAPS answered 200.
        let refusals = std::sync::atomic::AtomicU32::new(2);
        let table = Arc::new(HookedTable::new(inner, move |op| match op {
            Op::PutMany(_)
                if refusals.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() =>
            {
                Err(StoreError::Unavailable("ProvisionedThroughputExceededException".into()))
            }
            _ => Ok(()),
        }));
        let h = harness(table.clone()).await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let message = webhook_message(&webhook_to(&h.hicaps), 0);
        for attempt in 1..=2 {
            assert_eq!(
                h.poster.handle(event(&message, attempt), deadline()).await.batch_item_failures.len(),
                1,
                "{store:?}: attempt {attempt}"
            );
        }
        assert!(h.poster.handle(event(&message, 3), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        assert_eq!(
            status_posts(&h.hicaps).await.len(),
            1,
            "{store:?}: posted once; the retries resumed after the post"
        );
        let invoice =
            shared::program::records::load_invoice(table.inner.as_ref(), "9a15ad10-dbf0-4ab6-83f1-e42019f188b5")
                .await
                .expect("load")
                .expect("recorded by the resumed attempt");
        assert!(
            invoice.claims.iter().all(|c| c.state == shared::hicaps::ClaimState::Approved),
            "{store:?}: {invoice:?}"
        );
    }
}

#[tokio::test]
async fn the_last_transient_failure_dead_letters_and_asks_for_redelivery_once_per_id() {
    for store in STORES {
        let (table, _moto) = table(store).await;
        let h = harness(table).await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&h.hicaps)
            .await;
        Mock::given(method("POST"))
            .and(path("/webhook-error/1"))
            .respond_with(ResponseTemplate::new(202))
            .expect(1)
            .mount(&h.hicaps)
            .await;
        let message = webhook_message(&webhook_to(&h.hicaps), 0);
        assert_eq!(h.poster.handle(event(&message, 4), deadline()).await.batch_item_failures.len(), 1, "{store:?}");
        assert!(h.poster.handle(event(&message, 5), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        assert_eq!(h.dlq.len(), 1, "{store:?}");
        // HICAPS redelivers; the outage goes on to the last attempt again: no second request.
        let redelivered = webhook_message(&webhook_to(&h.hicaps), 5);
        assert!(h.poster.handle(event(&redelivered, 5), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        assert_eq!(h.dlq.len(), 2, "{store:?}");
        h.hicaps.verify().await;
    }
}

#[tokio::test]
async fn links_to_other_hosts_are_refused_and_no_token_is_sent() {
    for store in STORES {
        let (table, _moto) = table(store).await;
        let h = harness(table.clone()).await;
        let message = webhook_message(EXAMPLE, 0); // the spec's own links, to lanternpay.com
        assert!(h.poster.handle(event(&message, 1), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        assert_eq!(h.dlq.len(), 1, "{store:?}: dead-lettered with the reason");
        assert!(
            h.hicaps.received_requests().await.unwrap_or_default().is_empty(),
            "{store:?}: not even a token request"
        );
        // Unanswered, the invoice is still known, its claims pending, for a later decision to reach.
        let invoice = shared::program::records::load_invoice(table.as_ref(), "9a15ad10-dbf0-4ab6-83f1-e42019f188b5")
            .await
            .expect("load")
            .expect("the invoice is recorded");
        assert!(
            !invoice.claims.is_empty() && invoice.claims.iter().all(|c| c.state == shared::hicaps::ClaimState::Pending),
            "{store:?}: {invoice:?}"
        );
    }
}

/// A table that dies at the first write of one step of the idempotency record (`completed`, or
/// the note that the post happened, `posted`), and, until the dead invocation's lock lapses, loses
/// everything it writes to the record, as if the function had crashed there.
fn crash_at(inner: Arc<dyn Table>, target: &'static str) -> Arc<HookedTable> {
    let crashed_at: std::sync::Mutex<Option<std::time::Instant>> = Default::default();
    // The post's note: the invoice header's `postedBy` in the records' batch (an invoice), or the
    // lock's own `posted` (other work).
    let notes_post = |item: &Item| item.attrs.contains_key("postedBy");
    let is_target = move |item: &Item| match target {
        "posted" => {
            notes_post(item)
                || (item.key.pk.starts_with("idempotency#")
                    && item.attrs.get("posted") == Some(&json!(true))
                    && item.str_attr("status") == Some("inProgress"))
        }
        status => item.key.pk.starts_with("idempotency#") && item.str_attr("status") == Some(status),
    };
    let refuses = move |item: &Item| {
        let mut crashed_at = crashed_at.lock().expect("crash clock");
        if crashed_at.is_none() && is_target(item) {
            *crashed_at = Some(std::time::Instant::now());
        }
        crashed_at.is_some_and(|at| at.elapsed() < Duration::from_secs(5))
            && (item.key.pk.starts_with("idempotency#") || notes_post(item))
    };
    Arc::new(HookedTable::new(inner, move |op| {
        let lost = match op {
            Op::Put(item) => refuses(item),
            Op::PutMany(items) => items.iter().any(&refuses),
            _ => false,
        };
        if lost { Err(StoreError::Unavailable("crashed".into())) } else { Ok(()) }
    }))
}

#[tokio::test]
async fn a_failed_completion_record_resumes_after_the_post() {
    for store in STORES {
        let (inner, _moto) = table(store).await;
        let table = crash_at(inner, "completed");
        let h = harness(table).await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let message = webhook_message(&webhook_to(&h.hicaps), 0);
        // Time for one 2 s call and the completion margin, with 3 s to start it (moto under CI load).
        let short_deadline = chrono::Utc::now().timestamp() + 8;
        assert_eq!(h.poster.handle(event(&message, 1), short_deadline).await.batch_item_failures.len(), 1, "{store:?}");
        // While the dead invocation's lock lives, a redelivery waits.
        assert_eq!(h.poster.handle(event(&message, 2), deadline()).await.batch_item_failures.len(), 1, "{store:?}");
        tokio::time::sleep(Duration::from_millis(8100)).await;
        assert!(h.poster.handle(event(&message, 3), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        assert!(h.poster.handle(event(&message, 4), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        assert_eq!(
            status_posts(&h.hicaps).await.len(),
            1,
            "{store:?}: the post was noted, so the retry resumed after it"
        );
    }
}

#[tokio::test]
async fn a_crash_between_the_post_and_its_note_repeats_the_same_body_only() {
    for store in STORES {
        let (inner, _moto) = table(store).await;
        let table = crash_at(inner, "posted");
        let h = harness(table).await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let message = webhook_message(&webhook_to(&h.hicaps), 0);
        let short_deadline = chrono::Utc::now().timestamp() + 8;
        assert_eq!(h.poster.handle(event(&message, 1), short_deadline).await.batch_item_failures.len(), 1, "{store:?}");
        tokio::time::sleep(Duration::from_millis(8100)).await;
        assert!(h.poster.handle(event(&message, 2), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        let posts = status_posts(&h.hicaps).await;
        assert_eq!(posts.len(), 2, "{store:?}: the one window for a repeat");
        assert_eq!(posts[0], posts[1], "{store:?}: the same body both times");
    }
}

#[tokio::test]
async fn a_copy_of_work_in_progress_comes_back_when_the_lock_lapses() {
    for store in STORES {
        let (table, _moto) = table(store).await;
        let h = harness(table.clone()).await;
        let webhook = webhook_to(&h.hicaps);
        // Another invocation holds the webhook's lock for 20 more seconds.
        let mut attrs = serde_json::Map::new();
        attrs.insert("status".into(), json!("inProgress"));
        attrs.insert("payloadHash".into(), json!(shared::idempotency::payload_hash(webhook.as_bytes())));
        let lock = Item::new(Key::new("idempotency#8ad735a2-21a0-481a-9174-205817e95110", "#"), attrs)
            .expiring_at(chrono::Utc::now().timestamp() + 20);
        table.put(&lock, Condition::Absent).await.expect("lock");
        assert_eq!(
            h.poster.handle(event(&webhook_message(&webhook, 0), 1), deadline()).await.batch_item_failures.len(),
            1,
            "{store:?}"
        );
        let delays = h.retry_delays.0.lock().expect("delays").clone();
        assert_eq!(delays.len(), 1, "{store:?}");
        assert!(
            (Duration::from_secs(20)..=Duration::from_secs(21)).contains(&delays[0]),
            "{store:?}: {delays:?}: not before the lock lapses"
        );
        assert!(status_posts(&h.hicaps).await.is_empty(), "{store:?}");
    }
}

#[tokio::test]
async fn a_changed_payload_under_a_known_id_is_flagged_not_processed() {
    for store in STORES {
        let (table, _moto) = table(store).await;
        let h = harness(table.clone()).await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let original = webhook_to(&h.hicaps);
        assert!(
            h.poster.handle(event(&webhook_message(&original, 0), 1), deadline()).await.batch_item_failures.is_empty(),
            "{store:?}"
        );
        let mut changed: Value = serde_json::from_str(&original).expect("json");
        changed["data"]["claims"][0]["unitPrice"] = json!(9999);
        assert!(
            h.poster
                .handle(event(&webhook_message(&changed.to_string(), 0), 1), deadline())
                .await
                .batch_item_failures
                .is_empty(),
            "{store:?}"
        );
        assert_eq!(status_posts(&h.hicaps).await.len(), 1, "{store:?}: the changed payload caused no second post");
        let flag =
            table.get(&Key::new("flagged#payloadChanged", "8ad735a2-21a0-481a-9174-205817e95110")).await.expect("get");
        assert!(flag.is_some(), "{store:?}: flagged for operators");
    }
}

#[tokio::test]
async fn a_redelivery_received_later_is_a_duplicate_not_a_changed_payload() {
    for store in STORES {
        let (table, _moto) = table(store).await;
        let h = harness(table.clone()).await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let webhook = webhook_to(&h.hicaps);
        assert!(
            h.poster
                .handle(event(&webhook_message(&webhook, 1_000), 1), deadline())
                .await
                .batch_item_failures
                .is_empty(),
            "{store:?}"
        );
        // HICAPS delivers the same webhook again; the receiver stamps it with a later time.
        assert!(
            h.poster
                .handle(event(&webhook_message(&webhook, 61_000), 1), deadline())
                .await
                .batch_item_failures
                .is_empty(),
            "{store:?}"
        );
        assert_eq!(status_posts(&h.hicaps).await.len(), 1, "{store:?}");
        let flag =
            table.get(&Key::new("flagged#payloadChanged", "8ad735a2-21a0-481a-9174-205817e95110")).await.expect("get");
        assert!(flag.is_none(), "{store:?}: a redelivery is not a changed payload");
    }
}

#[tokio::test]
async fn no_post_starts_too_close_to_the_deadline() {
    for store in STORES {
        let (table, _moto) = table(store).await;
        let h = harness(table).await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let message = webhook_message(&webhook_to(&h.hicaps), 0);
        let almost_over = chrono::Utc::now().timestamp() + 2;
        assert_eq!(
            h.poster.handle(event(&message, 1), almost_over).await.batch_item_failures.len(),
            1,
            "{store:?}: retried later"
        );
        assert!(status_posts(&h.hicaps).await.is_empty(), "{store:?}: nothing posted that the timeout could cut off");
        assert!(h.poster.handle(event(&message, 2), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        assert_eq!(status_posts(&h.hicaps).await.len(), 1, "{store:?}");
    }
}

/// Log lines written while a test runs, for checking what they carry.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn values_from_malformed_webhooks_and_refusals_never_reach_the_log() {
    // No case runs on moto while this one reads the log (see `MOTO_TRACES`); this one stays on
    // the embedded table for the same reason.
    let _alone = MOTO_TRACES.write().await;
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber =
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_max_level(tracing::Level::TRACE).finish();
    // Global, not scoped: tracing caches each call site's interest process-wide, and a call site
    // first reached by a test on another thread without a subscriber would stay silent here.
    // The other tests' log lines land in the buffer too, and are held to the same rule.
    tracing::subscriber::set_global_default(subscriber).expect("the only test that sets a subscriber");
    let h = harness(Arc::new(EmbeddedTable::new())).await;
    Mock::given(method("POST"))
        .and(path("/invoices/1/status"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"title": "Member Sandy Cheeks 555000111 unknown"})),
        )
        .mount(&h.hicaps)
        .await;
    let original: Value = serde_json::from_str(&webhook_to(&h.hicaps)).expect("json");
    let malformed: [(&str, Value); 6] = [
        ("/data/claims/0/quantity", json!("Zebediah-77")),
        ("/data/claims/0/claimId", json!("Spongebob-Squarepants")),
        ("/created", json!("Patrick Star 789456123")),
        ("/data/member/memberNumber", json!({"name": "Pearl Krabs 1990-04-01"})),
        ("/data/claims/0/serviceDateTime", json!("Squidward Tentacles")),
        ("/data/invoiceId", json!(null)),
    ];
    for (index, (pointer, value)) in malformed.iter().enumerate() {
        let mut webhook = original.clone();
        webhook["id"] = json!(format!("00000000-0000-4000-8000-00000000000{index}"));
        *webhook.pointer_mut(pointer).expect("field") = value.clone();
        h.poster.handle(event(&webhook_message(&webhook.to_string(), 0), 1), deadline()).await;
    }
    let text = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8");
    assert!(text.contains("data.claims[0].claimId: invalid"), "the path and kind are logged:\n{text}");
    for secret in
        ["Zebediah", "Spongebob", "Patrick", "789456123", "Pearl", "1990-04-01", "Squidward", "Sandy", "555000111"]
    {
        assert!(!text.contains(secret), "{secret} reached the log:\n{text}");
    }
    // The dead letters keep the whole story for a person.
    let letters = h.dlq.receive(10, Duration::from_secs(1)).await.expect("dlq");
    assert!(letters.iter().any(|letter| letter.body.contains("Sandy Cheeks")), "HICAPS's answer is in the letter");
}

const MARKED_INVOICE: &str = "00000000-dead-4bad-8bad-000000000000";

#[tokio::test]
async fn a_record_that_panics_fails_alone_and_the_batch_is_answered() {
    for store in STORES {
        let (inner, _moto) = table(store).await;
        // A table that panics when an invoice with a marked id is read, standing in for any bug
        // that input might still reach.
        let h = harness(Arc::new(HookedTable::new(inner, |op| {
            if let Op::GetMany(keys) = op {
                assert!(!keys.iter().any(|key| key.pk.contains(MARKED_INVOICE)), "a bug input reached");
            }
            Ok(())
        })))
        .await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let good = webhook_message(&webhook_to(&h.hicaps), 0);
        let mut poison: Value = serde_json::from_str(&webhook_to(&h.hicaps)).expect("json");
        poison["id"] = json!("poison-1");
        poison["data"]["invoiceId"] = json!(MARKED_INVOICE);
        let mut batch = event(&good, 1);
        let mut poisoned = event(&webhook_message(&poison.to_string(), 0), 1).records.remove(0);
        poisoned.message_id = Some("m-poison".into());
        batch.records.insert(0, poisoned);
        let response = h.poster.handle(batch, deadline()).await;
        let failed: Vec<String> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
        assert_eq!(failed, ["m-poison"], "{store:?}: only the record that panicked");
        assert_eq!(status_posts(&h.hicaps).await.len(), 1, "{store:?}: the other record was processed");
    }
}

#[tokio::test]
async fn a_member_check_without_program_is_rejected_naming_it() {
    for store in STORES {
        let (table, _moto) = table(store).await;
        let h = harness(table).await;
        Mock::given(method("POST"))
            .and(path("/members/1/state"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let check = json!({
            "id": "member-check-1",
            "type": "admin.member.check",
            "data": {"memberNumber": "789456123"},
            "_links": {"lp:update-member-state": {"href": format!("{}/members/1/state", h.hicaps.uri())}},
        });
        assert!(
            h.poster
                .handle(event(&webhook_message(&check.to_string(), 0), 1), deadline())
                .await
                .batch_item_failures
                .is_empty(),
            "{store:?}"
        );
        let posts: Vec<Value> = h
            .hicaps
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == "/members/1/state")
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect();
        assert_eq!(posts.len(), 1, "{store:?}");
        assert_eq!(posts[0]["setState"], "rejected", "{store:?}");
        assert_eq!(posts[0]["invalidParams"][0]["name"], "program", "{store:?}: {}", posts[0]);
    }
}

/// A [`HookedTable`] hook counting the keys DynamoDB would refuse (over its key limits) that
/// reach the table in a read or a write.
fn counting_keys_over_limits(
    count: Arc<AtomicUsize>,
) -> impl Fn(Op<'_>) -> Result<(), StoreError> + Send + Sync + 'static {
    move |op| {
        let over = match op {
            Op::GetMany(keys) => keys.iter().filter(|key| key.check().is_err()).count(),
            Op::Put(item) => usize::from(item.key.check().is_err()),
            Op::PutMany(items) => items.iter().filter(|item| item.key.check().is_err()).count(),
            Op::Get | Op::Delete | Op::Query => 0,
        };
        count.fetch_add(over, Ordering::SeqCst);
        Ok(())
    }
}

fn claim_statuses(post: &Value) -> Vec<Value> {
    post["claimStatuses"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn item_codes_over_the_sort_key_limit_are_rejected_as_unknown_and_the_other_claims_adjudicated() {
    use shared::hicaps::ClaimState::{Approved, Rejected};
    for store in STORES {
        let (inner, _moto) = table(store).await;
        let over_limits = Arc::new(AtomicUsize::new(0));
        let table = Arc::new(HookedTable::new(inner, counting_keys_over_limits(over_limits.clone())));
        let h = harness(table.clone()).await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let mut webhook: Value = serde_json::from_str(&webhook_to(&h.hicaps)).expect("json");
        let good = webhook["data"]["claims"][0].clone();
        // The rule's key is `schedule#<program>` / `item#<itemCode>`: one byte over the sort key's
        // limit, and far over it in two-byte characters (under the limit counted in characters).
        let long_codes = ["1".repeat(MAX_SK_BYTES - "item#".len() + 1), "é".repeat(MAX_SK_BYTES - 100)];
        let mut claims = vec![good.clone()];
        for (index, code) in long_codes.iter().enumerate() {
            let mut claim = good.clone();
            claim["claimId"] = json!(format!("00000000-0000-4000-8000-00000000000{index}"));
            claim["itemCode"] = json!(code);
            claims.push(claim);
        }
        webhook["data"]["claims"] = Value::Array(claims);
        let message = webhook_message(&webhook.to_string(), 0);
        assert!(
            h.poster.handle(event(&message, 1), deadline()).await.batch_item_failures.is_empty(),
            "{store:?}: answered, not retried"
        );
        // A redelivery is a duplicate: the answer went.
        assert!(
            h.poster
                .handle(event(&webhook_message(&webhook.to_string(), 9), 1), deadline())
                .await
                .batch_item_failures
                .is_empty(),
            "{store:?}"
        );
        assert!(h.dlq.is_empty(), "{store:?}: answered, not dead-lettered");
        assert!(h.retry_delays.0.lock().expect("delays").is_empty(), "{store:?}: never retried as transient");
        let posts = status_posts(&h.hicaps).await;
        assert_eq!(posts.len(), 1, "{store:?}");
        let statuses = claim_statuses(&posts[0]);
        assert_eq!(statuses.len(), 3, "{store:?}: {}", posts[0]);
        assert_eq!(statuses[0]["claimId"], good["claimId"], "{store:?}");
        assert_eq!(
            statuses[0]["state"], "approved",
            "{store:?}: the claim with a known item is adjudicated as usual: {}",
            statuses[0]
        );
        assert_eq!(statuses[0]["benefit"].as_f64(), Some(40.0), "{store:?}: 80% of 55.63, capped at 40.00 per unit");
        for (status, code) in statuses[1..].iter().zip(&long_codes) {
            assert_eq!(status["state"], "rejected", "{store:?}: {status}");
            assert_eq!(status["statusTitle"], "Unknown item", "{store:?}");
            assert_eq!(status["benefit"].as_f64(), Some(0.0), "{store:?}");
            assert_eq!(status["invalidParams"][0]["name"], "itemCode", "{store:?}");
            assert_eq!(status["invalidParams"][0]["reason"], format!("Item {code} is unknown"), "{store:?}");
        }
        assert_eq!(over_limits.load(Ordering::SeqCst), 0, "{store:?}: no key over DynamoDB's limits reached the table");
        let invoice =
            shared::program::records::load_invoice(table.inner.as_ref(), "9a15ad10-dbf0-4ab6-83f1-e42019f188b5")
                .await
                .expect("load")
                .expect("recorded");
        let mut states: Vec<_> = invoice.claims.iter().map(|claim| (claim.claim_id.clone(), claim.state)).collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            states,
            [
                ("00000000-0000-4000-8000-000000000000".to_owned(), Rejected),
                ("00000000-0000-4000-8000-000000000001".to_owned(), Rejected),
                ("7329d4a5-a15d-4db0-a831-da2e6bbba425".to_owned(), Approved),
            ],
            "{store:?}"
        );
    }
}

#[tokio::test]
async fn member_numbers_and_programs_over_the_key_limits_are_answered_rejected_never_retried() {
    for store in STORES {
        let (inner, _moto) = table(store).await;
        let over_limits = Arc::new(AtomicUsize::new(0));
        let table = Arc::new(HookedTable::new(inner, counting_keys_over_limits(over_limits.clone())));
        let h = harness(table.clone()).await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let mut original: Value = serde_json::from_str(&webhook_to(&h.hicaps)).expect("json");
        // A second claim, for an item the schedule knows, to show every claim is answered.
        let mut second = original["data"]["claims"][0].clone();
        second["claimId"] = json!("00000000-0000-4000-8000-0000000000ff");
        second["itemCode"] = json!("505");
        original["data"]["claims"].as_array_mut().expect("claims").push(second);
        // The member's key is `member#<program>` / `<memberNumber>` and the rules' `schedule#<program>`
        // / `item#<itemCode>`: the member number is a sort key (1,024 bytes), the program part of
        // partition keys (2,048 bytes). Each just over its limit, and over 2,048 bytes.
        let cases = [
            ("/data/member/memberNumber", "9".repeat(MAX_SK_BYTES + 1)),
            ("/data/member/memberNumber", "9".repeat(MAX_PK_BYTES + 1)),
            ("/data/program", "p".repeat(MAX_PK_BYTES - "member#".len() + 1)),
            ("/data/program", "p".repeat(MAX_PK_BYTES + 1)),
        ];
        for (index, (pointer, value)) in cases.iter().enumerate() {
            let mut webhook = original.clone();
            webhook["id"] = json!(format!("00000000-0000-4000-8000-00000000001{index}"));
            webhook["data"]["invoiceId"] = json!(format!("00000000-0000-4000-8000-00000000002{index}"));
            *webhook.pointer_mut(pointer).expect("field") = json!(value);
            let case = format!("{store:?}: {pointer} of {} bytes", value.len());
            let message = webhook_message(&webhook.to_string(), 0);
            assert!(
                h.poster.handle(event(&message, 1), deadline()).await.batch_item_failures.is_empty(),
                "{case}: answered, not retried"
            );
            let redelivery = webhook_message(&webhook.to_string(), 9);
            assert!(
                h.poster.handle(event(&redelivery, 1), deadline()).await.batch_item_failures.is_empty(),
                "{case}: a duplicate"
            );
            let posts = status_posts(&h.hicaps).await;
            assert_eq!(posts.len(), index + 1, "{case}: answered once");
            let statuses = claim_statuses(&posts[index]);
            assert_eq!(statuses.len(), 2, "{case}: every claim is answered");
            for status in &statuses {
                assert_eq!(status["state"], "rejected", "{case}: {status}");
                assert_eq!(status["statusTitle"], "Member not found", "{case}");
                assert_eq!(status["benefit"].as_f64(), Some(0.0), "{case}");
                assert_eq!(status["invalidParams"][0]["name"], "member.memberNumber", "{case}");
            }
            let invoice_id = webhook["data"]["invoiceId"].as_str().expect("invoiceId");
            let invoice = shared::program::records::load_invoice(table.inner.as_ref(), invoice_id)
                .await
                .expect("load")
                .expect("recorded");
            assert_eq!(invoice.claims.len(), 2, "{case}");
            assert!(
                invoice.claims.iter().all(|claim| claim.state == shared::hicaps::ClaimState::Rejected),
                "{case}: {invoice:?}"
            );
        }
        assert!(h.dlq.is_empty(), "{store:?}: answered, not dead-lettered");
        assert!(h.retry_delays.0.lock().expect("delays").is_empty(), "{store:?}: never retried as transient");
        assert_eq!(over_limits.load(Ordering::SeqCst), 0, "{store:?}: no key over DynamoDB's limits reached the table");
    }
}

#[tokio::test]
async fn a_member_check_over_the_key_limits_is_answered_rejected_without_a_read() {
    for store in STORES {
        let (inner, _moto) = table(store).await;
        let over_limits = Arc::new(AtomicUsize::new(0));
        let h = harness(Arc::new(HookedTable::new(inner, counting_keys_over_limits(over_limits.clone())))).await;
        Mock::given(method("POST"))
            .and(path("/members/1/state"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let cases = [
            ("9".repeat(MAX_SK_BYTES + 1), "mpl".to_owned()),
            ("9".repeat(MAX_PK_BYTES + 1), "mpl".to_owned()),
            ("789456123".to_owned(), "p".repeat(MAX_PK_BYTES - "member#".len() + 1)),
            ("789456123".to_owned(), "p".repeat(MAX_PK_BYTES + 1)),
        ];
        for (index, (member_number, program)) in cases.iter().enumerate() {
            let check = json!({
                "id": format!("member-check-{index}"),
                "type": "admin.member.check",
                "data": {"memberNumber": member_number, "program": program},
                "_links": {"lp:update-member-state": {"href": format!("{}/members/1/state", h.hicaps.uri())}},
            });
            let case =
                format!("{store:?}: memberNumber of {} bytes, program of {} bytes", member_number.len(), program.len());
            let message = webhook_message(&check.to_string(), 0);
            assert!(
                h.poster.handle(event(&message, 1), deadline()).await.batch_item_failures.is_empty(),
                "{case}: answered, not retried"
            );
            assert!(
                h.poster.handle(event(&message, 2), deadline()).await.batch_item_failures.is_empty(),
                "{case}: a duplicate"
            );
        }
        let posts: Vec<Value> = h
            .hicaps
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == "/members/1/state")
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect();
        assert_eq!(posts.len(), cases.len(), "{store:?}: one answer each");
        for (post, (member_number, _)) in posts.iter().zip(&cases) {
            assert_eq!(post["setState"], "rejected", "{store:?}: {post}");
            assert_eq!(post["statusTitle"], "Member not found", "{store:?}");
            assert_eq!(post["memberNumber"], member_number.as_str(), "{store:?}: answered for its own data");
        }
        assert!(h.dlq.is_empty(), "{store:?}: answered, not dead-lettered");
        assert!(h.retry_delays.0.lock().expect("delays").is_empty(), "{store:?}: never retried as transient");
        assert_eq!(over_limits.load(Ordering::SeqCst), 0, "{store:?}: no key over DynamoDB's limits reached the table");
    }
}

#[tokio::test]
async fn a_resubmitted_invoice_never_moves_a_paid_claim_back() {
    for store in STORES {
        let (table, _moto) = table(store).await;
        let h = harness(table.clone()).await;
        Mock::given(method("POST"))
            .and(path("/invoices/1/status"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&h.hicaps)
            .await;
        let webhook: Value = serde_json::from_str(&webhook_to(&h.hicaps)).expect("json");
        assert!(
            h.poster
                .handle(event(&webhook_message(&webhook.to_string(), 0), 1), deadline())
                .await
                .batch_item_failures
                .is_empty(),
            "{store:?}"
        );
        let invoice_id = webhook["data"]["invoiceId"].as_str().expect("invoiceId");
        let load = || shared::program::records::load_invoice(table.as_ref(), invoice_id);
        let mut claim = load().await.expect("load").expect("invoice").claims.remove(0);
        claim.state = shared::hicaps::ClaimState::Paid;
        shared::program::records::save_claim(table.as_ref(), invoice_id, &claim, chrono::Utc::now().timestamp() + 3600)
            .await
            .expect("paid");
        let mut resubmitted = webhook.clone();
        resubmitted["id"] = json!("resubmission-1");
        assert!(
            h.poster
                .handle(event(&webhook_message(&resubmitted.to_string(), 0), 1), deadline())
                .await
                .batch_item_failures
                .is_empty(),
            "{store:?}"
        );
        assert_eq!(status_posts(&h.hicaps).await.len(), 1, "{store:?}: nothing to answer: the only claim is paid");
        assert_eq!(
            load().await.expect("load").expect("invoice").claims[0].state,
            shared::hicaps::ClaimState::Paid,
            "{store:?}"
        );
    }
}

#[tokio::test]
async fn a_rotated_hicaps_secret_is_read_again_when_the_token_endpoint_refuses_it() {
    let hicaps = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(wiremock::matchers::body_string_contains("client_secret=rotated"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "t", "expires_in": 3600})))
        .mount(&hicaps)
        .await;
    Mock::given(method("POST")).and(path("/oauth/token")).respond_with(ResponseTemplate::new(401)).mount(&hicaps).await;
    Mock::given(method("POST"))
        .and(path("/invoices/1/status"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hicaps)
        .await;
    let source = Arc::new(shared::secrets::FakeSource(std::sync::Mutex::new("before".into())));
    let vars = Vars::default()
        .with("HICAPS_TOKEN_URL", format!("{}/oauth/token", hicaps.uri()))
        .with("HICAPS_CLIENT_ID", "program")
        .with_secret_source("HICAPS_CLIENT_SECRET", source.clone())
        .with("HICAPS_CALLBACK_HOSTS", format!("127.0.0.1:{}", hicaps.address().port()))
        .with("HICAPS_TIMEOUT_SECONDS", "2")
        .with("RETRY_BASE_MILLIS", "0");
    let table: Arc<dyn Table> = Arc::new(EmbeddedTable::new());
    for item in shared::program::reference::schedule_items(SCHEDULE)
        .expect("schedule")
        .into_iter()
        .chain(shared::program::reference::member_items(MEMBERS).expect("members"))
    {
        table.put(&item, Condition::Always).await.expect("reference data");
    }
    let poster = Poster::new(
        Config::from_vars(&vars).await.expect("config"),
        table,
        Arc::new(ReqwestClient::new().expect("client")),
        Arc::new(RetryDelays::default()),
        Arc::new(EmbeddedQueue::new(Duration::from_secs(30))),
    );
    // The operator rotates the secret in Secrets Manager; the function still holds the old one.
    *source.0.lock().expect("lock") = "rotated".into();
    let message = webhook_message(&webhook_to(&hicaps), 0);
    assert_eq!(poster.handle(event(&message, 1), deadline()).await.batch_item_failures.len(), 1, "refused: retried");
    assert!(
        poster.handle(event(&message, 2), deadline()).await.batch_item_failures.is_empty(),
        "the re-read secret works"
    );
    assert_eq!(status_posts(&hicaps).await.len(), 1);
}

#[tokio::test]
async fn a_replayed_decision_is_processed_not_taken_for_a_changed_payload() {
    for store in STORES {
        let (table, _moto) = table(store).await;
        let h = harness(table.clone()).await;
        answers_then_ok(&h.hicaps, 400, 1).await;
        let claim_id = uuid::Uuid::new_v4();
        let record = shared::program::records::InvoiceRecord {
            invoice_id: "inv-1".into(),
            program: "mpl".into(),
            status_href: Some(format!("{}/invoices/1/status", h.hicaps.uri())),
            claims: vec![shared::program::records::ClaimRecord::new(
                claim_id.to_string(),
                shared::hicaps::ClaimState::Pending,
                None,
                "w-1",
            )],
            ..Default::default()
        };
        shared::program::records::save_invoice(table.as_ref(), &record, chrono::Utc::now().timestamp() + 3600, None)
            .await
            .expect("invoice");
        let update = shared::hicaps::parse_status_update(
            json!({"claimStatuses": [{"claimId": claim_id, "state": "rejected", "benefit": 0}]}).to_string().as_bytes(),
        )
        .expect("update");
        let work =
            shared::program::work::Work::Decision { decision_id: "d-1".into(), invoice_id: "inv-1".into(), update };
        assert!(
            h.poster.handle(event(&work.to_message(), 1), deadline()).await.batch_item_failures.is_empty(),
            "{store:?}"
        );
        let letters = h.dlq.receive(10, Duration::from_secs(1)).await.expect("dlq");
        assert_eq!(letters.len(), 1, "{store:?}: HICAPS refused it: dead-lettered");
        let replay = shared::program::work::replayable(&letters[0].body);
        assert!(h.poster.handle(event(&replay, 1), deadline()).await.batch_item_failures.is_empty(), "{store:?}");
        assert_eq!(status_posts(&h.hicaps).await.len(), 2, "{store:?}: the replay was posted");
        let flag = table.get(&Key::new("flagged#payloadChanged", "d-1")).await.expect("get");
        assert!(flag.is_none(), "{store:?}: a replay is not a changed payload");
    }
}

/// A token endpoint that answers at once the first `fast` times, then only after `delay`.
struct SlowingTokens {
    fast: usize,
    delay: Duration,
    issued: AtomicUsize,
}

impl wiremock::Respond for SlowingTokens {
    fn respond(&self, _request: &wiremock::Request) -> ResponseTemplate {
        let n = self.issued.fetch_add(1, Ordering::SeqCst);
        let answer =
            ResponseTemplate::new(200).set_body_json(json!({"access_token": format!("t{n}"), "expires_in": 3600}));
        if n < self.fast { answer } else { answer.set_delay(self.delay) }
    }
}

async fn requests_to(server: &MockServer, to: &str) -> usize {
    server.received_requests().await.unwrap_or_default().iter().filter(|r| r.url.path() == to).count()
}

#[tokio::test]
async fn the_deadline_guard_covers_the_token_fetch_and_the_refresh_after_a_401() {
    // The token endpoint does not answer within the call's timeout (2 s): one fetch, no post, and
    // the record comes back later, rather than a fetch, a post and a refresh each timing out.
    let h = harness(Arc::new(EmbeddedTable::new())).await;
    let slow = SlowingTokens { fast: 0, delay: Duration::from_secs(10), issued: AtomicUsize::new(0) };
    Mock::given(method("POST")).and(path("/oauth/token")).respond_with(slow).with_priority(1).mount(&h.hicaps).await;
    Mock::given(method("POST"))
        .and(path("/invoices/1/status"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&h.hicaps)
        .await;
    let message = webhook_message(&webhook_to(&h.hicaps), 0);
    assert_eq!(h.poster.handle(event(&message, 1), deadline()).await.batch_item_failures.len(), 1);
    assert_eq!(requests_to(&h.hicaps, "/oauth/token").await, 1);
    assert!(h.dlq.is_empty(), "a slow token endpoint is transient");
    h.hicaps.verify().await;

    // HICAPS refuses the first token with 401 and the refresh is slow: the refresh is inside the
    // same guard, so the post is not made a second time in this attempt.
    let h = harness(Arc::new(EmbeddedTable::new())).await;
    let slowing = SlowingTokens { fast: 1, delay: Duration::from_secs(10), issued: AtomicUsize::new(0) };
    Mock::given(method("POST")).and(path("/oauth/token")).respond_with(slowing).with_priority(1).mount(&h.hicaps).await;
    Mock::given(method("POST"))
        .and(path("/invoices/1/status"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&h.hicaps)
        .await;
    let message = webhook_message(&webhook_to(&h.hicaps), 0);
    assert_eq!(h.poster.handle(event(&message, 1), deadline()).await.batch_item_failures.len(), 1);
    assert_eq!(requests_to(&h.hicaps, "/oauth/token").await, 2, "the first token, then one refresh");
    assert_eq!(status_posts(&h.hicaps).await.len(), 1);
    h.hicaps.verify().await;
}
