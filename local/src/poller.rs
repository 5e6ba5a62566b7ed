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
