//! The durable hand-off from an HTTP handler to the queue, with the claim-check pattern: a
//! message over the queue's limit is stored in the table in parts and a small reference is
//! queued instead, so no accepted payload is ever refused for its size.

use crate::queue::{MAX_MESSAGE_BYTES, MessageSender, QueueError};
use crate::store::{Condition, Item, ItemDelete, ItemPut, ItemQuery, Key, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// DynamoDB items hold at most 400 KB; each part stays well under it.
const PART_BYTES: usize = 300 * 1024;
/// Claim-check parts outlive their message: the work queue keeps it 4 days, then the dead-letter
/// queue 14 (the template's `MessageRetentionPeriod`s), and a day to spare. They are deleted as
/// soon as the message has been processed; these hold a webhook's personal data.
pub const CLAIM_CHECK_TTL_SECONDS: i64 = 19 * 24 * 3600;
/// Partition-key prefix of the claim-check parts.
pub const KEY_PREFIX: &str = "claimcheck#";
/// A payload is at most 1 MiB (the receiver's limit): four parts; anything more is not ours.
const MAX_PARTS: usize = 16;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename = "claimCheck", rename_all = "camelCase")]
pub struct ClaimCheck {
    pub key: String,
    pub parts: usize,
    pub bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("claim check {0} is incomplete")]
    MissingParts(String),
}

#[derive(Clone)]
pub struct Handoff {
    sender: Arc<dyn MessageSender>,
    claim_checks: Arc<dyn ItemPut>,
}

impl Handoff {
    pub fn new(sender: Arc<dyn MessageSender>, claim_checks: Arc<dyn ItemPut>) -> Self {
        Self { sender, claim_checks }
    }

    /// Queues `body`, through the claim check when it is too large. Returns the message id.
    pub async fn send(&self, body: String) -> Result<String, HandoffError> {
        if body.len() <= MAX_MESSAGE_BYTES {
            return Ok(self.sender.send(body).await?);
        }
        let key = format!("{KEY_PREFIX}{}", uuid::Uuid::new_v4());
        let expires_at = crate::time::now_seconds() + CLAIM_CHECK_TTL_SECONDS;
        let parts = split_at_char_boundaries(&body, PART_BYTES);
        for (index, part) in parts.iter().enumerate() {
            let mut attrs = serde_json::Map::new();
            attrs.insert("data".into(), serde_json::Value::String((*part).to_owned()));
            let item = Item::new(part_key(&key, index), attrs).expiring_at(expires_at);
            self.claim_checks.put(&item, Condition::Always).await?;
        }
        let reference = ClaimCheck { key, parts: parts.len(), bytes: body.len() };
        let reference = serde_json::to_string(&reference).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        Ok(self.sender.send(reference).await?)
    }
}

/// The queued body a consumer should process: the message itself, or the payload its claim check
/// points at.
pub async fn resolve(body: &str, store: &dyn ItemQuery) -> Result<String, HandoffError> {
    let Some(reference) = claim_check(body) else {
        return Ok(body.to_owned());
    };
    let items = store.query(&reference.key, "part#").await?;
    if items.len() != reference.parts {
        return Err(HandoffError::MissingParts(reference.key));
    }
    let mut payload = String::with_capacity(reference.bytes.min(MAX_PARTS * PART_BYTES));
    for item in &items {
        payload.push_str(item.str_attr("data").ok_or_else(|| HandoffError::MissingParts(reference.key.clone()))?);
    }
    Ok(payload)
}

/// Deletes the parts of the message's claim check, if it has one, once the message is processed.
pub async fn discard(body: &str, store: &dyn ItemDelete) -> Result<(), StoreError> {
    let Some(reference) = claim_check(body) else {
        return Ok(());
    };
    for index in 0..reference.parts.min(MAX_PARTS) {
        store.delete(&part_key(&reference.key, index)).await?;
    }
    Ok(())
}

fn claim_check(body: &str) -> Option<ClaimCheck> {
    body.starts_with("{\"kind\":\"claimCheck\"").then(|| serde_json::from_str::<ClaimCheck>(body).ok()).flatten()
}

fn part_key(key: &str, index: usize) -> Key {
    Key::new(key, format!("part#{index:04}"))
}

fn split_at_char_boundaries(text: &str, max_bytes: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max_bytes);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (part, tail) = rest.split_at(end);
        parts.push(part);
        rest = tail;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_without_breaking_characters() {
        let text = "é".repeat(10);
        let parts = split_at_char_boundaries(&text, 3);
        assert!(parts.iter().all(|p| p.len() <= 3));
        assert_eq!(parts.concat(), text);
    }
}
