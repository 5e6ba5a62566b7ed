//! `cargo xtask replay-dlq`'s pass over the dead-letter queue, on the embedded queue and on SQS
//! (moto): listing removes nothing, and a selection by id, age or reason replays exactly those
//! letters, marked, leaving the others.

mod support;

use shared::program::replay::{Mode, Selection, run};
use shared::program::work::{dead_letter, is_replay, webhook_message};
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::sqs::SqsQueue;
use shared::queue::{MessageSender, MessageSource, MessageVisibility};
use std::time::Duration;

trait Queue: MessageSender + MessageSource + MessageVisibility {}
impl<T: MessageSender + MessageSource + MessageVisibility> Queue for T {}

fn letter(id: &str, kind: &str, reason: &str) -> String {
    let webhook = format!(r#"{{"id":"{id}","type":"{kind}","data":{{}}}}"#);
    dead_letter(&webhook_message(&webhook, 1), reason, Some("the value \"Zebediah-77\" is not a number"))
}

async fn drain(queue: &dyn Queue) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let messages = queue.receive(10, Duration::from_millis(200)).await.expect("receive");
        if messages.is_empty() {
            return bodies;
        }
        for message in messages {
            queue.delete(&message.receipt_handle).await.expect("delete");
            bodies.push(message.body);
        }
    }
}

async fn contract(dlq: &dyn Queue, work: &dyn Queue) {
    for (id, reason) in [
        ("w-1", "HICAPS answered 400"),
        ("w-2", "HICAPS answered 422"),
        ("w-3", "gave up after retries: HICAPS answered 503"),
    ] {
        dlq.send(letter(id, "claiming.invoice.submitted", reason)).await.expect("send");
    }
    // A pass takes the letters dead-lettered before it started.
    tokio::time::sleep(Duration::from_millis(5)).await;
    // --list: every letter, with its id, type and reason; none removed, all visible again.
    let listed = run(dlq, work, &Selection::default(), Mode::List).await.expect("list");
    let mut ids: Vec<&str> = listed.letters.iter().map(|l| l.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["w-1", "w-2", "w-3"]);
    assert!(
        listed.letters.iter().all(|l| l.kind == "claiming.invoice.submitted" && l.reason.starts_with("HICAPS")
            || l.reason.starts_with("gave up"))
    );
    assert_eq!(listed.replayed, 0);
    // What may quote the payload is kept apart from the reason.
    assert!(
        listed
            .letters
            .iter()
            .all(|l| !l.reason.contains("Zebediah") && l.detail.as_deref().is_some_and(|d| d.contains("Zebediah")))
    );
    // --dry-run --reason 400: says which, replays nothing.
    let reason = Selection { reason: Some("answered 400".into()), ..Selection::default() };
    let dry = run(dlq, work, &reason, Mode::DryRun).await.expect("dry run");
    assert_eq!(dry.selected.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["w-1"]);
    assert_eq!(dry.replayed, 0);
    // --id w-2: only that one goes back, marked as a replay.
    let one = Selection { ids: vec!["w-2".into()], ..Selection::default() };
    let replayed = run(dlq, work, &one, Mode::Replay).await.expect("replay");
    assert_eq!(replayed.replayed, 1);
    let sent = drain(work).await;
    assert_eq!(sent.len(), 1);
    assert!(is_replay(&sent[0]) && sent[0].contains(r#""id":"w-2""#), "{}", sent[0]);
    // --since in the future: nothing; then the rest, and the DLQ is empty.
    let later = Selection { since_ms: Some(chrono::Utc::now().timestamp_millis() + 60_000), ..Selection::default() };
    assert_eq!(run(dlq, work, &later, Mode::Replay).await.expect("replay").replayed, 0);
    assert_eq!(run(dlq, work, &Selection::default(), Mode::Replay).await.expect("replay").replayed, 2);
    assert_eq!(drain(work).await.len(), 2);
    assert!(drain(dlq).await.is_empty());
}

#[tokio::test]
async fn replay_on_the_embedded_queue() {
    contract(&EmbeddedQueue::new(Duration::from_secs(30)), &EmbeddedQueue::new(Duration::from_secs(30))).await;
}

#[tokio::test]
async fn replay_on_sqs_in_moto() {
    let client = aws_sdk_sqs::Client::new(&support::sdk_config().await);
    let (work, dlq) =
        SqsQueue::ensure_exists(&client, &support::unique("replay"), Duration::from_secs(30), 5).await.expect("queues");
    contract(&dlq, &work).await;
}

/// A dead-letter queue into which the poster dead-letters a failed replay before every receive.
struct Refilling(EmbeddedQueue);

#[async_trait::async_trait]
impl MessageSource for Refilling {
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<shared::queue::ReceivedMessage>, shared::queue::QueueError> {
        self.0
            .send(letter(&uuid::Uuid::new_v4().to_string(), "claiming.invoice.submitted", "HICAPS answered 400"))
            .await?;
        self.0.receive(max, wait).await
    }
    async fn delete(&self, receipt_handle: &str) -> Result<(), shared::queue::QueueError> {
        self.0.delete(receipt_handle).await
    }
}

#[async_trait::async_trait]
impl MessageVisibility for Refilling {
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), shared::queue::QueueError> {
        self.0.change_visibility(receipt_handle, timeout).await
    }
}

#[tokio::test]
async fn a_pass_ends_though_replays_keep_failing_into_the_queue() {
    let dlq = Refilling(EmbeddedQueue::new(Duration::from_secs(30)));
    let work = EmbeddedQueue::new(Duration::from_secs(30));
    for id in ["w-1", "w-2"] {
        dlq.0.send(letter(id, "claiming.invoice.submitted", "HICAPS answered 400")).await.expect("send");
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let pass = tokio::time::timeout(Duration::from_secs(10), run(&dlq, &work, &Selection::default(), Mode::Replay))
        .await
        .expect("the pass ends")
        .expect("replay");
    assert_eq!(pass.replayed, 2, "only the letters that were there when it started");
    assert!(dlq.0.len() >= 2, "the new letters wait for the next pass");
}
