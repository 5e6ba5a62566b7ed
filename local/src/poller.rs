//! What Lambda's SQS event source mapping does, in process: receive batches of up to ten, hand
//! them to the consumer as a real `SqsEvent`, delete the records it did not report as failures,
//! and leave failures to come back after their visibility timeout (or move to the DLQ).

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use shared::queue::{MessageSource, ReceivedMessage};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const BATCH_SIZE: usize = 10;

pub fn to_record(message: &ReceivedMessage, source_arn: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message.message_id.clone());
    record.receipt_handle = Some(message.receipt_handle.clone());
    record.body = Some(message.body.clone());
    record.event_source = Some("aws:sqs".to_owned());
    record.event_source_arn = Some(source_arn.to_owned());
    record.aws_region = Some("local".to_owned());
    record.attributes = HashMap::from([
        ("ApproximateReceiveCount".to_owned(), message.receive_count.to_string()),
        ("SentTimestamp".to_owned(), message.sent_at_ms.to_string()),
    ]);
    record
}

/// Polls `source` until the task is dropped, running up to `concurrency` batches at once. A batch
/// still running after `timeout` is abandoned, as Lambda ends an invocation at its timeout: none of
/// its messages is deleted, and they come back after their visibility timeout. `abandoned`
/// counts such batches: each is a crash in Lambda's terms.
pub async fn run<F, Fut>(
    source: Arc<dyn MessageSource>,
    source_arn: String,
    concurrency: usize,
    timeout: Duration,
    abandoned: Arc<AtomicU64>,
    consume: F,
) where
    F: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SqsBatchResponse> + Send + 'static,
{
    let consume = Arc::new(consume);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let source = Arc::clone(&source);
        let consume = Arc::clone(&consume);
        let source_arn = source_arn.clone();
        let abandoned = Arc::clone(&abandoned);
        workers.spawn(async move {
            loop {
                let messages = match source.receive(BATCH_SIZE, Duration::from_secs(1)).await {
                    Ok(messages) => messages,
                    Err(error) => {
                        tracing::warn!(%error, "queue receive failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                if messages.is_empty() {
                    continue;
                }
                let mut event = SqsEvent::default();
                event.records = messages.iter().map(|m| to_record(m, &source_arn)).collect();
                // A consumer that panics loses its batch (it comes back after the visibility
                // timeout), not this worker: Lambda too starts the next invocation afresh.
                let consumed = std::panic::AssertUnwindSafe(consume(event)).catch_unwind();
                let response = match tokio::time::timeout(timeout, consumed).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(_)) => {
                        abandoned.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(source_arn, "batch panicked; its messages will be redelivered");
                        continue;
                    }
                    Err(_) => {
                        abandoned.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(source_arn, "batch timed out; its messages will be redelivered");
                        continue;
                    }
                };
                let failed: HashSet<String> =
                    response.batch_item_failures.into_iter().map(|f: BatchItemFailure| f.item_identifier).collect();
                for message in messages.iter().filter(|m| !failed.contains(&m.message_id)) {
                    if let Err(error) = source.delete(&message.receipt_handle).await {
                        tracing::warn!(%error, message_id = %message.message_id, "delete failed; the message will be redelivered");
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::SqsMessage;
    use shared::queue::MessageSender;
    use shared::queue::embedded::EmbeddedQueue;
    use tokio::time::Instant;

    /// What the consumer was handed: each record's body and receive count, and when.
    type Seen = Arc<std::sync::Mutex<Vec<(String, String, Instant)>>>;

    fn sightings(seen: &Seen) -> Vec<(String, String, Instant)> {
        seen.lock().expect("seen").clone()
    }

    /// Waits, on the test's clock, until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..600 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what} never happened");
    }

    #[tokio::test(start_paused = true)]
    async fn a_consumer_that_panics_loses_its_batch_not_the_poller() {
        let visibility = Duration::from_millis(500);
        let queue = Arc::new(EmbeddedQueue::new(visibility));
        let abandoned = Arc::new(AtomicU64::new(0));
        let seen: Seen = Arc::default();
        let consumer_seen = Arc::clone(&seen);
        // One worker, so the later message can only be consumed if the panic left it running.
        let poller = tokio::spawn(run(
            queue.clone(),
            "arn:test".into(),
            1,
            Duration::from_secs(30),
            abandoned.clone(),
            move |event: SqsEvent| {
                let seen = Arc::clone(&consumer_seen);
                async move {
                    for record in &event.records {
                        let SqsMessage { body, attributes, .. } = record;
                        let body = body.clone().unwrap_or_default();
                        let count = attributes.get("ApproximateReceiveCount").cloned().unwrap_or_default();
                        seen.lock().expect("seen").push((body.clone(), count.clone(), Instant::now()));
                        // A bug that input reaches, the first time only.
                        assert!(!(body == "poison" && count == "1"), "a bug input reached");
                    }
                    SqsBatchResponse::default()
                }
            },
        ));
        queue.send("poison".into()).await.expect("send");
        until("the panicked batch counted", || abandoned.load(Ordering::Relaxed) == 1).await;
        assert_eq!(queue.len(), 1, "the panicked batch's message is not deleted");
        queue.send("later".into()).await.expect("send");
        until("both messages consumed and deleted", || queue.is_empty()).await;
        let seen = sightings(&seen);
        let order: Vec<(&str, &str)> = seen.iter().map(|(body, count, _)| (body.as_str(), count.as_str())).collect();
        assert_eq!(
            order,
            [("poison", "1"), ("later", "1"), ("poison", "2")],
            "the later message went first, while the panicked one was invisible; then it came back"
        );
        assert!(seen[2].2 - seen[0].2 >= visibility, "back only after its visibility timeout: {seen:?}");
        assert_eq!(abandoned.load(Ordering::Relaxed), 1, "only the batch that panicked");
        assert!(!poller.is_finished(), "the poller is still running");
        poller.abort();
    }
}
