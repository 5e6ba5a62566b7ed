//! The messages on the work queue between the receiver and the poster.

use crate::hicaps::InvoiceStatusUpdate;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt::Write;

/// One unit of queued work.
#[derive(Debug)]
pub enum Work {
    /// A HICAPS webhook, its body exactly as received.
    Webhook { received_at_ms: i64, body: String },
    /// A later decision by the program's staff, validated by the receiver.
    Decision { decision_id: String, invoice_id: String, update: InvoiceStatusUpdate },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    kind: &'a str,
    #[serde(default)]
    received_at: i64,
    #[serde(borrow, default)]
    webhook: Option<&'a RawValue>,
    #[serde(default)]
    decision_id: Option<String>,
    #[serde(default)]
    invoice_id: Option<String>,
    #[serde(default)]
    update: Option<InvoiceStatusUpdate>,
}

/// The queue message for one webhook: its body exactly as received, so the poster can tell a
/// redelivery (same bytes) from a changed payload under a known id.
pub fn webhook_message(webhook_body: &str, received_at_ms: i64) -> String {
    // Sized once: the body is most of the message, and growing into it copies it again.
    let mut message = String::with_capacity(webhook_body.len() + 64);
    let _ = write!(message, r#"{{"kind":"webhook","receivedAt":{received_at_ms},"webhook":"#);
    message.push_str(webhook_body);
    message.push('}');
    message
}

#[derive(Debug, thiserror::Error)]
#[error("not a work message: {0}")]
pub struct NotWork(String);

impl Work {
    pub fn parse(body: &str) -> Result<Work, NotWork> {
        let message: Message<'_> = serde_json::from_str(body).map_err(|e| NotWork(e.to_string()))?;
        match message {
            Message { kind: "webhook", webhook: Some(webhook), received_at, .. } => {
                Ok(Work::Webhook { received_at_ms: received_at, body: webhook.get().to_owned() })
            }
            Message {
                kind: "decision",
                decision_id: Some(decision_id),
                invoice_id: Some(invoice_id),
                update: Some(update),
                ..
            } => Ok(Work::Decision { decision_id, invoice_id, update }),
            other => Err(NotWork(format!("unknown or incomplete kind {:?}", other.kind))),
        }
    }

    pub fn to_message(&self) -> String {
        match self {
            Work::Webhook { received_at_ms, body } => webhook_message(body, *received_at_ms),
            Work::Decision { decision_id, invoice_id, update } => serde_json::json!({
                "kind": "decision",
                "decisionId": decision_id,
                "invoiceId": invoice_id,
                "update": update,
            })
            .to_string(),
        }
    }

    /// The id that makes processing idempotent: the webhook `id`, or the decision's id.
    pub fn describe(&self) -> &'static str {
        match self {
            Work::Webhook { .. } => "webhook",
            Work::Decision { .. } => "decision",
        }
    }
}

/// The dead-letter queue's message: the original queue message and why it failed. `reason` is a
/// kind or a status, safe to print; `detail` (HICAPS's answer, serde's message) may quote the
/// payload, so it is kept apart and shown only on request (`replay-dlq --show-personal-data`).
pub fn dead_letter(message: &str, reason: &str, detail: Option<&str>) -> String {
    let mut letter = serde_json::json!({"kind": "deadLetter", "reason": reason, "message": message});
    if let Some(detail) = detail {
        letter["detail"] = serde_json::Value::String(detail.to_owned());
    }
    letter.to_string()
}

/// The message to send back to the work queue on replay: the original of a dead letter, or the
/// message itself when SQS's redrive policy moved it (it carries no wrapper), marked as a replay
/// so the poster processes it even where the id is recorded as refused for good. The webhook's
/// own bytes are untouched, so its payload hash is the same.
pub fn replayable(dead_letter_body: &str) -> String {
    let original = unwrap_dead_letter(dead_letter_body);
    if is_replay(&original) || Work::parse(&original).is_err() {
        return original;
    }
    // A work message is an object we wrote, starting `{"kind":...`: the mark goes in front.
    match original.strip_prefix('{') {
        Some(rest) => format!("{REPLAY_MARK}{rest}"),
        None => original,
    }
}

/// The message as it was before [`replayable`] marked it: what a decision's payload hash covers,
/// so a replay is not taken for a changed payload.
pub fn unmarked(message: &str) -> std::borrow::Cow<'_, str> {
    match message.strip_prefix(REPLAY_MARK) {
        Some(rest) => format!("{{{rest}").into(),
        None => message.into(),
    }
}

const REPLAY_MARK: &str = r#"{"replay":true,"#;

/// Whether a work message was sent back from the dead-letter queue by an operator: the mark is
/// always written first, so no parse is needed to see it.
pub fn is_replay(message: &str) -> bool {
    message.starts_with(REPLAY_MARK)
}

/// The original message of a dead letter, unmarked: what was on the work queue.
pub fn unwrap_dead_letter(dead_letter_body: &str) -> String {
    #[derive(Deserialize)]
    struct DeadLetter {
        kind: String,
        message: String,
    }
    serde_json::from_str::<DeadLetter>(dead_letter_body)
        .ok()
        .filter(|letter| letter.kind == "deadLetter")
        .map(|letter| letter.message)
        .unwrap_or_else(|| dead_letter_body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_unwraps_dead_letters_and_marks_them() {
        let original = r#"{"kind":"webhook","receivedAt":1,"webhook":{"id":"a"}}"#;
        let replayed = replayable(&dead_letter(original, "HICAPS answered 400", None));
        assert_eq!(replayed, r#"{"replay":true,"kind":"webhook","receivedAt":1,"webhook":{"id":"a"}}"#);
        assert!(is_replay(&replayed) && !is_replay(original));
        assert_eq!(replayable(original), replayed, "a redriven message, without a wrapper");
        assert_eq!(replayable(&replayed), replayed, "marked once");
        assert_eq!(unmarked(&replayed), original, "what a decision's hash covers");
        assert_eq!(unmarked(original), original);
        assert_eq!(unwrap_dead_letter(&dead_letter(original, "x", Some("y"))), original);
        match Work::parse(&replayed) {
            Ok(Work::Webhook { body, .. }) => assert_eq!(body, r#"{"id":"a"}"#, "the webhook's bytes are untouched"),
            other => panic!("{other:?}"),
        }
    }
}
