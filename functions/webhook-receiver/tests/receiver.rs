//! The receiver's acknowledgement path: authentication, input limits, envelope checks, and the
//! one durable hand-off, with the queue's failures answered 503 so HICAPS retries.

use async_trait::async_trait;
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use shared::config::Vars;
use shared::handoff::Handoff;
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::{MessageSender, MessageSource, QueueError};
use shared::store::embedded::EmbeddedTable;
use std::sync::Arc;
use std::time::Duration;
use webhook_receiver::{Config, MAX_BODY_BYTES, Receiver};

const EXAMPLE: &str = include_str!("../../../shared/tests/fixtures/hicaps/invoice-submitted-webhook.json");

async fn receiver_with(sender: Arc<dyn MessageSender>) -> Receiver {
    let vars = Vars::default()
        .with("WEBHOOK_AUTH_HEADER", "X-Partner-Key")
        .with("WEBHOOK_AUTH_VALUE", "old-secret, new-secret");
    let table = Arc::new(EmbeddedTable::new());
    Receiver::new(Config::from_vars(&vars).await.expect("config"), Handoff::new(sender, table.clone()), table)
}

fn webhook_request(key: Option<&str>, body: &str) -> Request {
    let mut builder = http::Request::builder().method("POST").uri("/hicaps/webhooks");
    if let Some(key) = key {
        builder = builder.header("x-partner-key", key);
    }
    builder.body(Body::Text(body.to_owned())).expect("request")
}

async fn answer(receiver: &Receiver, request: Request) -> (u16, Value) {
    let response = receiver.handle(request).await;
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

fn names(body: &Value) -> Vec<String> {
    body["invalidParams"]
        .as_array()
        .map(|a| a.iter().map(|p| p["name"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn accepts_with_either_rotated_secret_and_queues_the_body_as_received() {
    let queue = Arc::new(EmbeddedQueue::new(Duration::from_secs(30)));
    let receiver = receiver_with(queue.clone()).await;
    for key in ["old-secret", "new-secret"] {
        assert_eq!(answer(&receiver, webhook_request(Some(key), EXAMPLE)).await.0, 202);
    }
    let messages = queue.receive(10, Duration::from_secs(1)).await.expect("receive");
    assert_eq!(messages.len(), 2);
    let work = shared::program::work::Work::parse(&messages[0].body).expect("work message");
    match work {
        shared::program::work::Work::Webhook { body, .. } => assert_eq!(body, EXAMPLE.trim()),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn refuses_missing_or_wrong_authentication_with_the_error_payload() {
    let receiver = receiver_with(Arc::new(EmbeddedQueue::new(Duration::from_secs(30)))).await;
    for key in [None, Some(""), Some("wrong"), Some("old-secret, new-secret"), Some("old-secre")] {
        let (status, body) = answer(&receiver, webhook_request(key, EXAMPLE)).await;
        assert_eq!(status, 401, "{key:?}");
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    }
}

#[tokio::test]
async fn refuses_oversize_bodies() {
    let receiver = receiver_with(Arc::new(EmbeddedQueue::new(Duration::from_secs(30)))).await;
    let big = format!("{{\"id\":\"a\",\"type\":\"t\",\"data\":{{\"x\":\"{}\"}}}}", "x".repeat(MAX_BODY_BYTES));
    assert_eq!(answer(&receiver, webhook_request(Some("new-secret"), &big)).await.0, 413);
}

#[tokio::test]
async fn names_every_bad_field() {
    let receiver = receiver_with(Arc::new(EmbeddedQueue::new(Duration::from_secs(30)))).await;
    let cases: [(&str, &[&str]); 6] = [
        ("{not json", &["body"]),
        ("[1,2]", &["body"]),
        ("{}", &["id", "type", "data"]),
        (r#"{"id": 7, "type": "", "data": "x"}"#, &["id", "type", "data"]),
        (r#"{"id": "a", "type": "claiming.invoice.submitted"}"#, &["data"]),
        (r#"{"id": "a", "type": "claiming.invoice.submitted", "data": {}} trailing"#, &["body"]),
    ];
    for (body, expected) in cases {
        let (status, answer) = answer(&receiver, webhook_request(Some("new-secret"), body)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(names(&answer), *expected, "{body}: {answer}");
        assert_eq!(answer["title"], "Your request parameters didn't validate.");
    }
}

#[tokio::test]
async fn keeps_webhooks_of_unhandled_types() {
    let queue = Arc::new(EmbeddedQueue::new(Duration::from_secs(30)));
    let receiver = receiver_with(queue.clone()).await;
    let body = json!({"id": "e1", "type": "claiming.something.new", "data": {"a": 1}}).to_string();
    assert_eq!(answer(&receiver, webhook_request(Some("new-secret"), &body)).await.0, 202);
    assert_eq!(queue.len(), 1, "kept for the poster to record for operators");
    assert!(shared::metrics::counted("WebhookUnhandledType", "unhandled") >= 1, "counted under a fixed dimension");
    assert_eq!(
        shared::metrics::counted("WebhookUnhandledType", "claiming.something.new"),
        0,
        "input is never a dimension"
    );
}

struct BrokenQueue;

#[async_trait]
impl MessageSender for BrokenQueue {
    async fn send(&self, _body: String) -> Result<String, QueueError> {
        Err(QueueError::Unavailable("simulated outage".into()))
    }
    async fn send_batch(&self, _bodies: Vec<String>) -> Result<Vec<Result<String, QueueError>>, QueueError> {
        Err(QueueError::Unavailable("simulated outage".into()))
    }
}

#[tokio::test]
async fn answers_503_when_the_hand_off_fails_so_hicaps_retries() {
    let receiver = receiver_with(Arc::new(BrokenQueue)).await;
    let (status, body) = answer(&receiver, webhook_request(Some("new-secret"), EXAMPLE)).await;
    assert_eq!(status, 503);
    assert!(body["title"].as_str().is_some_and(|t| t.contains("retry")));
}

#[tokio::test]
async fn jwt_mode_accepts_only_hicaps_among_verified_callers() {
    assert!(
        Config::from_vars(&Vars::default().with("WEBHOOK_AUTH_MODE", "jwt"))
            .await
            .is_err_and(|e| e.variable == "WEBHOOK_JWT_CALLERS")
    );
    let vars = Vars::default().with("WEBHOOK_AUTH_MODE", "jwt").with("WEBHOOK_JWT_CALLERS", "hicaps, hicaps-dr");
    let table = Arc::new(EmbeddedTable::new());
    let queue = Arc::new(EmbeddedQueue::new(Duration::from_secs(30)));
    let receiver =
        Receiver::new(Config::from_vars(&vars).await.expect("config"), Handoff::new(queue, table.clone()), table);
    assert_eq!(answer(&receiver, webhook_request(None, EXAMPLE)).await.0, 401);
    let as_caller = |caller: &str| {
        shared::testing::with_context(webhook_request(None, EXAMPLE), shared::testing::jwt_context(Some(caller)))
    };
    assert_eq!(answer(&receiver, as_caller("hicaps")).await.0, 202);
    assert_eq!(answer(&receiver, as_caller("hicaps-dr")).await.0, 202);
    let (status, body) = answer(&receiver, as_caller("clinic")).await;
    assert_eq!(status, 403, "a verified partner that is not HICAPS");
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn envelopes_over_their_bounds_are_refused_naming_the_field() {
    let queue = Arc::new(EmbeddedQueue::new(Duration::from_secs(30)));
    let receiver = receiver_with(queue.clone()).await;
    let example: Value = serde_json::from_str(EXAMPLE).expect("fixture");
    let with = |pointer: &str, value: Value| {
        let mut webhook = example.clone();
        match pointer.strip_prefix("/data/extra") {
            Some(_) => webhook["data"]["extra"] = value,
            None => *webhook.pointer_mut(pointer).expect("field") = value,
        }
        webhook.to_string()
    };
    let long_type = with("/type", json!("x".repeat(webhook_receiver::MAX_TYPE_CHARS + 1)));
    let mut deep = json!(1);
    for _ in 0..webhook_receiver::MAX_DATA_DEPTH {
        deep = json!([deep]);
    }
    let too_deep = with("/data/extra", deep);
    let claim = example["data"]["claims"][0].clone();
    let too_many = with("/data/claims", Value::Array(vec![claim.clone(); webhook_receiver::MAX_CLAIMS + 1]));
    for (body, field) in [(long_type, "type"), (too_deep, "data"), (too_many, "data.claims")] {
        let (status, answer) = answer(&receiver, webhook_request(Some("new-secret"), &body)).await;
        assert_eq!(status, 400, "{field}");
        assert_eq!(names(&answer), [field]);
    }
    // At the bounds, accepted.
    let at_bound = with("/data/claims", Value::Array(vec![claim; webhook_receiver::MAX_CLAIMS]));
    let mut deep = json!(1);
    for _ in 0..webhook_receiver::MAX_DATA_DEPTH - 2 {
        deep = json!([deep]);
    }
    for body in
        [at_bound, with("/data/extra", deep), with("/type", json!("x".repeat(webhook_receiver::MAX_TYPE_CHARS)))]
    {
        assert_eq!(answer(&receiver, webhook_request(Some("new-secret"), &body)).await.0, 202);
    }
    assert!(queue.len() == 3, "only the three within bounds were queued");
}

proptest::proptest! {
    // proptest's default, 256 cases, or `PROPTEST_CASES` as the README's longer run sets it.
    #[test]
    fn any_body_gets_an_answer_never_a_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let receiver = receiver_with(Arc::new(EmbeddedQueue::new(Duration::from_secs(30)))).await;
            let request = http::Request::builder()
                .method("POST")
                .uri("/hicaps/webhooks")
                .header("x-partner-key", "new-secret")
                .body(Body::Binary(body))
                .expect("request");
            let status = receiver.handle(request).await.status().as_u16();
            assert!(status == 202 || status == 400, "{status}");
        });
    }
}

/// Any JSON value, nested a few levels and bounded in size, with keys the receiver and the poster
/// look for.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop_oneof![
        Just("id".to_owned()),
        Just("type".to_owned()),
        Just("data".to_owned()),
        Just("claims".to_owned()),
        Just("invoiceId".to_owned()),
        Just("_links".to_owned()),
        "[a-zA-Z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        Just(json!("claiming.invoice.submitted")),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<serde_json::Map<_, _>>())),
        ]
    })
}

/// An envelope whose `id`, `type` and `data` are each absent, plausible or any JSON, with other
/// members of any JSON beside them.
fn any_envelope() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let example: Value = serde_json::from_str(EXAMPLE).unwrap_or(Value::Null);
    let id = prop_oneof![
        Just(None),
        "[a-z0-9-]{0,40}".prop_map(|id| Some(json!(id))),
        ".{0,200}".prop_map(|id| Some(json!(id))),
        any_json().prop_map(Some)
    ];
    let kind = prop_oneof![
        Just(None),
        proptest::sample::select(shared::hicaps::WebhookType::ALL.to_vec()).prop_map(|kind| Some(json!(kind.as_str()))),
        ".{0,200}".prop_map(|kind| Some(json!(kind))),
        any_json().prop_map(Some),
    ];
    let data = prop_oneof![Just(None), Just(Some(example["data"].clone())), any_json().prop_map(Some)];
    let others = proptest::collection::vec(("[a-zA-Z_]{1,8}", any_json()), 0..3);
    (id, kind, data, others).prop_map(|(id, kind, data, others)| {
        let mut envelope: serde_json::Map<String, Value> = others.into_iter().collect();
        for (name, value) in [("id", id), ("type", kind), ("data", data)] {
            if let Some(value) = value {
                envelope.insert(name.to_owned(), value);
            }
        }
        Value::Object(envelope)
    })
}

proptest::proptest! {
    // proptest's default: 256 cases, or `PROPTEST_CASES`.
    #[test]
    fn any_json_gets_202_or_a_4xx_never_a_5xx_or_a_panic(
        body in proptest::prop_oneof![any_json(), any_envelope()],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let queue = Arc::new(EmbeddedQueue::new(Duration::from_secs(30)));
            let receiver = receiver_with(queue.clone()).await;
            let status = answer(&receiver, webhook_request(Some("new-secret"), &body.to_string())).await.0;
            assert!(status == 202 || (400..500).contains(&status), "{status} for {body}");
            assert_eq!(queue.len(), usize::from(status == 202), "{status}: queued exactly when accepted, for {body}");
        });
    }
}

#[tokio::test]
async fn the_rotation_steps_work_without_a_restart() {
    let source = Arc::new(shared::secrets::FakeSource(std::sync::Mutex::new("old-secret".into())));
    let vars = Vars::default()
        .with("WEBHOOK_AUTH_HEADER", "X-Partner-Key")
        .with("SECRETS_TTL_SECONDS", "1")
        .with_secret_source("WEBHOOK_AUTH_VALUE", source.clone());
    let table = Arc::new(EmbeddedTable::new());
    let queue = Arc::new(EmbeddedQueue::new(Duration::from_secs(30)));
    let receiver =
        Receiver::new(Config::from_vars(&vars).await.expect("config"), Handoff::new(queue, table.clone()), table);
    let status = |key: &'static str| {
        let receiver = &receiver;
        async move { answer(receiver, webhook_request(Some(key), EXAMPLE)).await.0 }
    };
    assert_eq!(status("old-secret").await, 202);
    // 1. put `new,old`; the functions pick it up after the TTL, in the background.
    *source.0.lock().expect("lock") = "new-secret,old-secret".into();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status("old-secret").await, 202, "the value in hand answers while the new one is read");
    tokio::time::sleep(Duration::from_millis(50)).await;
    // 2. HICAPS moves to the new value.
    assert_eq!(status("new-secret").await, 202);
    // 3. put `new`: the old value stops working, still without a restart.
    *source.0.lock().expect("lock") = "new-secret".into();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    status("new-secret").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(status("old-secret").await, 401);
    assert_eq!(status("new-secret").await, 202);
}
