//! The queue port: SQS standard-queue semantics (at-least-once, visibility timeout, receive
//! count, redrive to a dead-letter queue after `max_receive_count` receives).
//!
//! `MessageSender` is all the webhook receiver needs; `MessageSource` is what Lambda's event source
//! mapping does for us in AWS and the local stack's poller does itself; `MessageVisibility` lets a
//! consumer push a failed message's next attempt out (backoff).

#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "aws")]
pub mod sqs;
#[cfg(feature = "aws")]
pub mod sqs_send;

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// SQS's classic limit on one message. SQS now accepts up to 1 MiB, but 256 KiB is what every
/// region, moto and older accounts' queue policies allow; larger payloads go through the claim check.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SendMessageBatch takes at most ten entries.
pub const MAX_BATCH: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("message of {size} bytes is over the queue's limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("batch of {0} messages is over the limit of {MAX_BATCH}")]
    BatchTooLarge(usize),
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
    /// When the message was first sent, epoch milliseconds.
    pub sent_at_ms: i64,
}

#[async_trait]
pub trait MessageSender: Send + Sync {
    /// Sends one message and returns its id.
    async fn send(&self, body: String) -> Result<String, QueueError>;
    /// Sends up to ten messages; each entry is that message's id or its own error. By default one
    /// `send` each; SQS overrides it with one `SendMessageBatch`.
    async fn send_batch(&self, bodies: Vec<String>) -> Result<Vec<Result<String, QueueError>>, QueueError> {
        if bodies.len() > MAX_BATCH {
            return Err(QueueError::BatchTooLarge(bodies.len()));
        }
        let mut results = Vec::with_capacity(bodies.len());
        for body in bodies {
            results.push(self.send(body).await);
        }
        Ok(results)
    }
}

#[async_trait]
pub trait MessageSource: Send + Sync {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, QueueError>;
    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError>;
}

#[async_trait]
pub trait MessageVisibility: Send + Sync {
    /// The message becomes visible again after `timeout` (its next attempt).
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), QueueError>;
}

#[async_trait]
pub trait QueueDepth: Send + Sync {
    /// Messages in the queue, visible and in flight (SQS's approximate counts).
    async fn depth(&self) -> Result<usize, QueueError>;
}

pub type SharedSender = Arc<dyn MessageSender>;

pub fn check_size(body: &str) -> Result<(), QueueError> {
    if body.len() > MAX_MESSAGE_BYTES {
        Err(QueueError::TooLarge { size: body.len(), limit: MAX_MESSAGE_BYTES })
    } else {
        Ok(())
    }
}
