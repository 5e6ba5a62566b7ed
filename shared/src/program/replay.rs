//! What `cargo xtask replay-dlq` does with the work queue's dead letters: list them (id, type,
//! reason, age) without removing any, and send the chosen ones back to the work queue, marked as
//! replays (`work::replayable`). A replay that fails again is dead-lettered by the poster with its
//! new reason.
//!
//! One pass receives every letter once and keeps it in flight while it decides; letters it does
//! not replay are made visible again at the end of the pass, so listing removes nothing. A pass
//! takes only letters dead-lettered before it started: a replay that fails again while the pass
//! runs is a new letter, and taking it would send it round again without end.

use super::work::{Work, replayable, unwrap_dead_letter};
use crate::queue::{MessageSender, MessageSource, MessageVisibility, QueueError, ReceivedMessage};
use serde::Deserialize;
use std::collections::HashSet;
use std::time::Duration;

/// One dead letter as an operator sees it. Reasons are kinds and statuses, never payload values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// The webhook id, or the decision id.
    pub id: String,
    /// The webhook's `type`, or `decision`.
    pub kind: String,
    pub reason: String,
    /// What the poster kept beside the reason (HICAPS's answer, serde's message): it may quote
    /// the payload, so it is printed only on request.
    pub detail: Option<String>,
    /// When the letter was sent to the dead-letter queue, epoch milliseconds.
    pub dead_lettered_at_ms: i64,
}

impl Letter {
    pub fn read(message: &ReceivedMessage) -> Letter {
        #[derive(Deserialize)]
        struct Wrapped {
            #[serde(default)]
            reason: String,
            #[serde(default)]
            detail: Option<String>,
        }
        #[derive(Deserialize)]
        struct Envelope {
            #[serde(default)]
            id: String,
            #[serde(rename = "type", default)]
            kind: String,
        }
        let wrapped = serde_json::from_str::<Wrapped>(&message.body).ok();
        let detail = wrapped.as_ref().and_then(|w| w.detail.clone());
        let reason = wrapped
            .map(|w| w.reason)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "moved by the queue's redrive policy (no reason recorded)".to_owned());
        let original = unwrap_dead_letter(&message.body);
        let (id, kind) = match Work::parse(&super::work::unmarked(&original)) {
            Ok(Work::Webhook { body, .. }) => match serde_json::from_str::<Envelope>(&body) {
                Ok(envelope) => (envelope.id, envelope.kind),
                Err(_) => (String::new(), "unreadable webhook".to_owned()),
            },
            Ok(Work::Decision { decision_id, .. }) => (decision_id, "decision".to_owned()),
            Err(_) => (String::new(), "unreadable".to_owned()),
        };
        let id = if id.is_empty() { format!("(message {})", message.message_id) } else { id };
        Letter { id, kind, reason, detail, dead_lettered_at_ms: message.sent_at_ms }
    }
}

/// Which letters to replay; an empty selection takes every letter.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// Only these ids (webhook or decision).
    pub ids: Vec<String>,
    /// Only letters dead-lettered at or after this instant, epoch milliseconds.
    pub since_ms: Option<i64>,
    /// Only letters whose reason contains this text (case-insensitive).
    pub reason: Option<String>,
}

impl Selection {
    pub fn matches(&self, letter: &Letter) -> bool {
        (self.ids.is_empty() || self.ids.contains(&letter.id))
            && self.since_ms.is_none_or(|since| letter.dead_lettered_at_ms >= since)
            && self.reason.as_deref().is_none_or(|text| letter.reason.to_lowercase().contains(&text.to_lowercase()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// List every letter, replay nothing.
    List,
    /// Say which letters would be replayed, replay nothing.
    DryRun,
    Replay,
}

/// What a pass saw and did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Every letter, in the order received.
    pub letters: Vec<Letter>,
    /// The selected letters (replayed unless listing or dry-running).
    pub selected: Vec<Letter>,
    pub replayed: usize,
}

/// Letters received in one pass before it stops: a bound on the work and on what stays in flight.
pub const MAX_LETTERS_PER_PASS: usize = 10_000;

pub async fn run<D, W>(dlq: &D, work: &W, selection: &Selection, mode: Mode) -> Result<Pass, QueueError>
where
    D: MessageSource + MessageVisibility + ?Sized,
    W: MessageSender + ?Sized,
{
    let started_ms = crate::time::now_millis();
    let mut pass = Pass::default();
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    while pass.letters.len() < MAX_LETTERS_PER_PASS {
        let messages = dlq.receive(10, Duration::from_secs(1)).await?;
        let mut found = false;
        for message in messages {
            if !seen.insert(message.message_id.clone()) {
                continue;
            }
            if message.sent_at_ms >= started_ms {
                kept.push(message.receipt_handle);
                continue;
            }
            found = true;
            let letter = Letter::read(&message);
            pass.letters.push(letter.clone());
            if mode == Mode::List || !selection.matches(&letter) {
                kept.push(message.receipt_handle);
                continue;
            }
            pass.selected.push(letter);
            if mode == Mode::DryRun {
                kept.push(message.receipt_handle);
                continue;
            }
            work.send(replayable(&message.body)).await?;
            dlq.delete(&message.receipt_handle).await?;
            pass.replayed += 1;
        }
        if !found {
            break;
        }
    }
    for receipt in kept {
        dlq.change_visibility(&receipt, Duration::ZERO).await?;
    }
    Ok(pass)
}

/// `--since`: an RFC 3339 instant, or an age such as `90s`, `30m`, `6h` or `2d` before `now_ms`.
pub fn parse_since(text: &str, now_ms: i64) -> Option<i64> {
    if let Ok(instant) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(instant.timestamp_millis());
    }
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let seconds: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    let age = number.parse::<i64>().ok()?.checked_mul(seconds)?.checked_mul(1000)?;
    now_ms.checked_sub(age)
}

/// An age for people: `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn describe_age(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h {}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d {}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_instants_and_ages() {
        let now = 10_000_000_000;
        assert_eq!(parse_since("2h", now), Some(now - 7_200_000));
        assert_eq!(parse_since("30m", now), Some(now - 1_800_000));
        assert_eq!(parse_since("2026-11-26T00:00:00Z", now), Some(1_795_651_200_000));
        assert_eq!(parse_since("soon", now), None);
        assert_eq!(parse_since("", now), None);
        assert_eq!(parse_since("99999999999999999d", now), None);
        assert_eq!(describe_age(3_723_000), "1h 2m");
    }
}
