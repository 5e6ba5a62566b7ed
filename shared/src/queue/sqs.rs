//! The queue port on SQS (standard queue).

use super::{
    MAX_BATCH, MessageSender, MessageSource, MessageVisibility, QueueDepth, QueueError, ReceivedMessage, check_size,
};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry};
use std::time::Duration;

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

fn unavailable(error: impl std::fmt::Debug) -> QueueError {
    QueueError::Unavailable(format!("{error:?}"))
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    pub fn from_sdk_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }

    pub fn url(&self) -> &str {
        &self.queue_url
    }

    /// Creates `name` and its dead-letter queue `name-dlq` unless they exist, with a redrive
    /// policy after `max_receive_count` receives: for the local stack and tests (the SAM template
    /// owns them in AWS). Returns (queue, dead-letter queue).
    pub async fn ensure_exists(
        client: &Client,
        name: &str,
        visibility_timeout: Duration,
        max_receive_count: u32,
    ) -> Result<(SqsQueue, SqsQueue), QueueError> {
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .send()
            .await
            .map_err(unavailable)?
            .queue_url
            .ok_or_else(|| QueueError::Unavailable("no dead-letter queue url".into()))?;
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(unavailable)?
            .attributes
            .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| QueueError::Unavailable("no dead-letter queue arn".into()))?;
        let redrive =
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string()});
        let url = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::VisibilityTimeout, visibility_timeout.as_secs().to_string())
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .map_err(unavailable)?
            .queue_url
            .ok_or_else(|| QueueError::Unavailable("no queue url".into()))?;
        Ok((SqsQueue::new(client.clone(), url), SqsQueue::new(client.clone(), dlq_url)))
    }
}

#[async_trait]
impl QueueDepth for SqsQueue {
    async fn depth(&self) -> Result<usize, QueueError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(unavailable)?
            .attributes
            .unwrap_or_default();
        Ok(attributes.values().filter_map(|count| count.parse::<usize>().ok()).sum())
    }
}

#[async_trait]
impl MessageSender for SqsQueue {
    async fn send(&self, body: String) -> Result<String, QueueError> {
        check_size(&body)?;
        let output = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.message_id.unwrap_or_default())
    }

    async fn send_batch(&self, bodies: Vec<String>) -> Result<Vec<Result<String, QueueError>>, QueueError> {
        if bodies.len() > MAX_BATCH {
            return Err(QueueError::BatchTooLarge(bodies.len()));
        }
        let mut results: Vec<Option<Result<String, QueueError>>> = Vec::with_capacity(bodies.len());
        let mut entries = Vec::new();
        for (index, body) in bodies.into_iter().enumerate() {
            match check_size(&body) {
                Err(error) => results.push(Some(Err(error))),
                Ok(()) => {
                    results.push(None);
                    let entry = SendMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message_body(body)
                        .build()
                        .map_err(unavailable)?;
                    entries.push(entry);
                }
            }
        }
        if !entries.is_empty() {
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(unavailable)?;
            for sent in output.successful {
                if let Ok(index) = sent.id.parse::<usize>() {
                    results[index] = Some(Ok(sent.message_id));
                }
            }
            for failed in output.failed {
                if let Ok(index) = failed.id.parse::<usize>() {
                    let reason = failed.message.unwrap_or(failed.code);
                    results[index] = Some(Err(QueueError::Unavailable(reason)));
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(QueueError::Unavailable("no answer for this entry".into()))))
            .collect())
    }
}

#[async_trait]
impl MessageSource for SqsQueue {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|message| {
                let attributes = message.attributes.unwrap_or_default();
                let number =
                    |name: &MessageSystemAttributeName| attributes.get(name).and_then(|v| v.parse::<i64>().ok());
                ReceivedMessage {
                    message_id: message.message_id.unwrap_or_default(),
                    receipt_handle: message.receipt_handle.unwrap_or_default(),
                    body: message.body.unwrap_or_default(),
                    receive_count: number(&MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or(1).max(1)
                        as u32,
                    sent_at_ms: number(&MessageSystemAttributeName::SentTimestamp).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl MessageVisibility for SqsQueue {
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(timeout.as_secs().min(43_200) as i32)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
