//! In-process queue with SQS standard-queue semantics: a received message is invisible for the
//! visibility timeout and comes back unless deleted; after `max_receive_count` receives it moves
//! to the dead-letter queue, if one is attached.

use super::{
    MAX_BATCH, MessageSender, MessageSource, MessageVisibility, QueueDepth, QueueError, ReceivedMessage, check_size,
};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
// tokio's clock: the system's, except on a paused runtime (the soak), where it is virtual.
use tokio::sync::Notify;
use tokio::time::Instant;

struct Stored {
    message_id: String,
    body: String,
    receive_count: u32,
    sent_at_ms: i64,
    visible_at: Instant,
    receipt_handle: Option<String>,
}

pub struct EmbeddedQueue {
    messages: Mutex<VecDeque<Stored>>,
    /// Message ids are this queue's random base plus a count: unique like SQS's UUIDs, without a
    /// `getrandom` system call per message.
    id_base: u128,
    sent: AtomicU64,
    arrived: Notify,
    visibility_timeout: Duration,
    dead_letter: Option<(Arc<EmbeddedQueue>, u32)>,
}

impl EmbeddedQueue {
    pub fn new(visibility_timeout: Duration) -> Self {
        Self {
            messages: Mutex::new(VecDeque::new()),
            id_base: uuid::Uuid::new_v4().as_u128(),
            sent: AtomicU64::new(0),
            arrived: Notify::new(),
            visibility_timeout,
            dead_letter: None,
        }
    }

    /// Redrive policy: after `max_receive_count` receives, a message moves to `queue`.
    pub fn with_dead_letter(mut self, queue: Arc<EmbeddedQueue>, max_receive_count: u32) -> Self {
        self.dead_letter = Some((queue, max_receive_count));
        self
    }

    /// Messages in the queue, visible or not (SQS's approximate counts, exact here).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Stored>> {
        self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, body: String, receive_count: u32, sent_at_ms: i64) -> String {
        let count = self.sent.fetch_add(1, Ordering::Relaxed);
        let message_id = uuid::Builder::from_random_bytes(self.id_base.wrapping_add(u128::from(count)).to_be_bytes())
            .into_uuid()
            .to_string();
        self.lock().push_back(Stored {
            message_id: message_id.clone(),
            body,
            receive_count,
            sent_at_ms,
            visible_at: Instant::now(),
            receipt_handle: None,
        });
        self.arrived.notify_waiters();
        message_id
    }

    fn take_visible(&self, max: usize) -> Vec<ReceivedMessage> {
        let now = Instant::now();
        let mut received = Vec::new();
        let mut dead = Vec::new();
        let mut messages = self.lock();
        let mut index = 0;
        while index < messages.len() && received.len() < max {
            if messages[index].visible_at > now {
                index += 1;
                continue;
            }
            if let Some((_, max_receives)) = &self.dead_letter
                && messages[index].receive_count >= *max_receives
            {
                if let Some(message) = messages.remove(index) {
                    dead.push(message);
                }
                continue;
            }
            let message = &mut messages[index];
            message.receive_count += 1;
            message.visible_at = now + self.visibility_timeout;
            // Unique per receive, as SQS's receipt handles are.
            let receipt = format!("{}#{}", message.message_id, message.receive_count);
            message.receipt_handle = Some(receipt.clone());
            received.push(ReceivedMessage {
                message_id: message.message_id.clone(),
                receipt_handle: receipt,
                body: message.body.clone(),
                receive_count: message.receive_count,
                sent_at_ms: message.sent_at_ms,
            });
            index += 1;
        }
        drop(messages);
        if let Some((queue, _)) = &self.dead_letter {
            for message in dead {
                queue.push(message.body, 0, message.sent_at_ms);
            }
        }
        received
    }

    fn next_visible_in(&self) -> Option<Duration> {
        let now = Instant::now();
        self.lock().iter().map(|m| m.visible_at.saturating_duration_since(now)).min()
    }
}

#[async_trait]
impl MessageSender for EmbeddedQueue {
    async fn send(&self, body: String) -> Result<String, QueueError> {
        check_size(&body)?;
        Ok(self.push(body, 0, crate::time::now_millis()))
    }
}

#[async_trait]
impl QueueDepth for EmbeddedQueue {
    async fn depth(&self) -> Result<usize, QueueError> {
        Ok(self.len())
    }
}

#[async_trait]
impl MessageSource for EmbeddedQueue {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        let deadline = Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            let received = self.take_visible(max.clamp(1, MAX_BATCH));
            let now = Instant::now();
            if !received.is_empty() || now >= deadline {
                return Ok(received);
            }
            let until_visible = self.next_visible_in().unwrap_or(deadline - now);
            let _ =
                tokio::time::timeout(until_visible.min(deadline - now).max(Duration::from_millis(1)), arrived).await;
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        // Received messages sit near the front: find this one and remove it, which shifts the
        // shorter side, rather than `retain`, which walks the whole backlog under the lock that
        // every send also takes.
        let mut messages = self.lock();
        if let Some(index) = messages.iter().position(|m| m.receipt_handle.as_deref() == Some(receipt_handle)) {
            messages.remove(index);
        }
        Ok(())
    }
}

#[async_trait]
impl MessageVisibility for EmbeddedQueue {
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), QueueError> {
        if let Some(message) = self.lock().iter_mut().find(|m| m.receipt_handle.as_deref() == Some(receipt_handle)) {
            message.visible_at = Instant::now() + timeout;
        }
        Ok(())
    }
}
