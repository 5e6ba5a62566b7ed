//! The queue port's contract, run against both adapters: the embedded queue and SQS on moto;
//! and the claim check that keeps an oversize payload instead of refusing it.

mod support;

use shared::handoff::{Handoff, resolve};
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::sqs::SqsQueue;
use shared::queue::sqs_send::SqsSender;
use shared::queue::{MAX_MESSAGE_BYTES, MessageSender, MessageSource, MessageVisibility, QueueDepth, QueueError};
use shared::store::embedded::EmbeddedTable;
use shared::store::{ItemPut, ItemQuery};
use std::sync::Arc;
use std::time::Duration;

trait Queue: MessageSender + MessageSource + MessageVisibility + QueueDepth {}
impl<T: MessageSender + MessageSource + MessageVisibility + QueueDepth> Queue for T {}

const WAIT: Duration = Duration::from_secs(1);

async fn receive_all(queue: &dyn Queue, expected: usize) -> Vec<shared::queue::ReceivedMessage> {
    let mut all = Vec::new();
    for _ in 0..20 {
        all.extend(queue.receive(10, WAIT).await.expect("receive"));
        if all.len() >= expected {
            break;
        }
    }
    all
}

async fn send_receive_delete(queue: &dyn Queue) {
    let id = queue.send("one".into()).await.expect("send");
    assert_eq!(queue.depth().await.expect("depth"), 1, "a sent message counts");
    let received = receive_all(queue, 1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        (received[0].message_id.as_str(), received[0].body.as_str(), received[0].receive_count),
        (id.as_str(), "one", 1)
    );
    assert_eq!(queue.depth().await.expect("depth"), 1, "an in-flight message still counts");
    queue.delete(&received[0].receipt_handle).await.expect("delete");
    assert!(queue.receive(10, Duration::ZERO).await.expect("receive").is_empty());
    assert_eq!(queue.depth().await.expect("depth"), 0, "a deleted message is gone");
}

async fn batch_send(queue: &dyn Queue) {
    let bodies: Vec<String> = (0..10).map(|n| format!("batch-{n}")).collect();
    let results = queue.send_batch(bodies).await.expect("batch");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let mut received: Vec<String> = receive_all(queue, 10).await.into_iter().map(|m| m.body).collect();
    received.sort();
    assert_eq!(received.len(), 10);
    assert!(matches!(queue.send_batch(vec![String::new(); 11]).await, Err(QueueError::BatchTooLarge(11))));
}

async fn visibility_and_receive_count(queue: &dyn Queue) {
    queue.send("again".into()).await.expect("send");
    let first = receive_all(queue, 1).await;
    assert_eq!(first.len(), 1);
    queue.change_visibility(&first[0].receipt_handle, Duration::ZERO).await.expect("visible now");
    let second = receive_all(queue, 1).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2, "the redelivery counts");
    queue.delete(&second[0].receipt_handle).await.expect("delete");
}

async fn oversize_refused(queue: &dyn Queue) {
    let body = "x".repeat(MAX_MESSAGE_BYTES + 1);
    assert!(matches!(queue.send(body).await, Err(QueueError::TooLarge { .. })));
}

async fn contract(queue: &dyn Queue) {
    send_receive_delete(queue).await;
    visibility_and_receive_count(queue).await;
    oversize_refused(queue).await;
    batch_send(queue).await;
}

async fn claim_check(queue: Arc<dyn Queue>, table: Arc<dyn shared::store::Table>) {
    let sender: Arc<dyn MessageSender> = queue.clone();
    let claim_checks: Arc<dyn ItemPut> = table.clone();
    let handoff = Handoff::new(sender, claim_checks);
    // A 1 MiB payload with multi-byte characters: four times SQS's limit, over DynamoDB's item limit.
    let payload = format!("{{\"data\":\"{}\"}}", "é".repeat(512 * 1024));
    handoff.send(payload.clone()).await.expect("hand-off of an oversize payload");
    let received = receive_all(queue.as_ref(), 1).await;
    assert_eq!(received.len(), 1);
    assert!(received[0].body.len() < 1024, "only a reference is queued");
    let store: &dyn ItemQuery = table.as_ref();
    assert_eq!(resolve(&received[0].body, store).await.expect("resolve"), payload, "nothing lost");
    assert_eq!(resolve("{\"small\":true}", store).await.expect("pass-through"), "{\"small\":true}");
    // Once processed, the parts (the webhook's personal data) are deleted, not left to their TTL.
    shared::handoff::discard(&received[0].body, table.as_ref()).await.expect("discard");
    assert!(resolve(&received[0].body, store).await.is_err(), "the parts are gone");
    shared::handoff::discard("{\"small\":true}", table.as_ref()).await.expect("nothing to discard");
}

#[tokio::test]
async fn embedded_queue_meets_the_contract() {
    contract(&EmbeddedQueue::new(Duration::from_secs(30))).await;
}

#[tokio::test]
async fn sqs_on_moto_meets_the_contract() {
    let client = aws_sdk_sqs::Client::new(&support::sdk_config().await);
    let (queue, _) = SqsQueue::ensure_exists(&client, &support::unique("contract"), Duration::from_secs(30), 5)
        .await
        .expect("create queues on moto");
    contract(&queue).await;
}

/// The receiver's lean sender speaks the wire protocol the SDK reads back.
#[tokio::test]
async fn sqs_sender_on_moto_delivers_what_the_sdk_receives() {
    let config = support::sdk_config().await;
    let vars = shared::config::Vars::from_env();
    let (queue, _) = SqsQueue::ensure_exists(
        &aws_sdk_sqs::Client::new(&config),
        &support::unique("sender"),
        Duration::from_secs(30),
        5,
    )
    .await
    .expect("create queues on moto");
    let sender = SqsSender::new(&config, &vars, queue.url()).expect("sender");
    let body = r#"{"kind":"webhook","note":"quotes \" and unicode \u00e9 survive"}"#.to_owned();
    let id = sender.send(body.clone()).await.expect("send");
    let received = receive_all(&queue, 1).await;
    assert_eq!((received[0].message_id.as_str(), received[0].body.as_str()), (id.as_str(), body.as_str()));
    assert!(matches!(sender.send("x".repeat(MAX_MESSAGE_BYTES + 1)).await, Err(QueueError::TooLarge { .. })));
}

#[tokio::test]
async fn sqs_sender_reports_a_missing_queue_and_an_unreachable_endpoint() {
    let config = support::sdk_config().await;
    let endpoint = support::moto_endpoint();
    let missing = format!("{endpoint}/123456789012/{}", support::unique("missing"));
    let sender = SqsSender::new(&config, &shared::config::Vars::from_env(), &missing).expect("sender");
    let error = sender.send("lost?".into()).await.expect_err("no such queue");
    assert!(
        error.to_string().contains("NonExistentQueue") || error.to_string().contains("QueueDoesNotExist"),
        "{error}"
    );
    // Nothing listens on port 9: retried, then reported, never taken for sent.
    let vars = shared::config::Vars::default().with("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let sender = SqsSender::new(&config, &vars, &missing).expect("sender");
    assert!(matches!(sender.send("lost?".into()).await, Err(QueueError::Unavailable(_))));
}

#[tokio::test]
async fn embedded_dead_letters_after_max_receives() {
    let dlq = Arc::new(EmbeddedQueue::new(Duration::from_secs(30)));
    let queue = EmbeddedQueue::new(Duration::ZERO).with_dead_letter(dlq.clone(), 2);
    queue.send("poison".into()).await.expect("send");
    assert_eq!(queue.receive(1, WAIT).await.expect("1st").len(), 1);
    assert_eq!(queue.receive(1, WAIT).await.expect("2nd").len(), 1);
    assert!(queue.receive(1, Duration::from_millis(50)).await.expect("3rd").is_empty(), "moved on the third receive");
    assert_eq!(dlq.receive(1, WAIT).await.expect("dlq")[0].body, "poison");
}

#[tokio::test]
async fn sqs_on_moto_dead_letters_after_max_receives() {
    let client = aws_sdk_sqs::Client::new(&support::sdk_config().await);
    let (queue, dlq) = SqsQueue::ensure_exists(&client, &support::unique("redrive"), Duration::from_secs(30), 2)
        .await
        .expect("create queues on moto");
    queue.send("poison".into()).await.expect("send");
    for _ in 0..2 {
        let received = receive_all(&queue, 1).await;
        assert_eq!(received.len(), 1);
        queue.change_visibility(&received[0].receipt_handle, Duration::ZERO).await.expect("release");
    }
    let _ = queue.receive(1, Duration::ZERO).await.expect("third receive moves it");
    assert_eq!(receive_all(&dlq, 1).await[0].body, "poison");
}

#[tokio::test]
async fn claim_check_on_embedded_adapters() {
    claim_check(Arc::new(EmbeddedQueue::new(Duration::from_secs(30))), Arc::new(EmbeddedTable::new())).await;
}

#[tokio::test]
async fn claim_check_on_moto() {
    let client = aws_sdk_sqs::Client::new(&support::sdk_config().await);
    let (queue, _) = SqsQueue::ensure_exists(&client, &support::unique("claimcheck"), Duration::from_secs(30), 5)
        .await
        .expect("create queues on moto");
    claim_check(Arc::new(queue), support::dynamo_table().await).await;
}
