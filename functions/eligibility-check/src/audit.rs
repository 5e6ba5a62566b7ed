//! The record kept of each eligibility check that was sent to Claiming.com.au (and of each refused
//! for its location), so operators can
//! answer "what did the fund say for transaction X": ids, status, codes, latency; never patient
//! names, dates of birth or member numbers.
//!
//! Keys (one item per check, `sk` = `#`):
//! - `pk` = `eligibility#{transactionId}` when Claiming.com.au gave a transaction id;
//! - `pk` = `eligibility-check#{checkId}` otherwise (upstream errors, timeouts); `checkId` is the
//!   `X-Eligibility-Check-Id` header of our response.
//!
//! Every record expires after `ELIGIBILITY_AUDIT_TTL_DAYS`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::claiming::CheckSummary;
use shared::store::{Item, Key, StoreError};
use uuid::Uuid;

/// How a check ended, as stored and as the metric's dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Claiming.com.au answered 2xx.
    Answered,
    /// Claiming.com.au answered 4xx, passed through to the caller.
    Rejected,
    /// Claiming.com.au refused our credentials (401 after a new token, or 403).
    CredentialsRefused,
    /// 5xx, an unreadable answer, or an unexpected status.
    UpstreamError,
    /// No token could be had.
    TokenError,
    Unreachable,
    Timeout,
    /// The caller is not granted the location (`ECF_LOCATION_GRANTS`): nothing was sent.
    Forbidden,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Rejected => "rejected",
            Outcome::CredentialsRefused => "credentialsRefused",
            Outcome::UpstreamError => "upstreamError",
            Outcome::TokenError => "tokenError",
            Outcome::Unreachable => "unreachable",
            Outcome::Timeout => "timeout",
            Outcome::Forbidden => "forbidden",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub check_id: Uuid,
    #[serde(serialize_with = "shared::time::serialize_millis")]
    pub checked_at: DateTime<Utc>,
    pub caller: String,
    /// The Claiming.com.au location id (the `location` query parameter).
    pub location: String,
    /// The hospital's Medicare provider number (`location.provider`).
    pub provider: String,
    pub fund_eclipse_id: String,
    pub item_count: usize,
    pub outcome: Outcome,
    /// The status we answered with.
    pub http_status: u16,
    pub upstream_status: Option<u16>,
    pub retried_with_new_token: bool,
    pub latency_ms: u64,
    #[serde(flatten)]
    pub summary: CheckSummary,
}

/// The item as stored: the record, marked with its kind.
#[derive(Serialize)]
struct Stored<'a> {
    kind: &'static str,
    #[serde(flatten)]
    record: &'a AuditRecord,
}

/// A transaction id is used in a key only if it is short and plain.
fn usable_in_key(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Partition-key prefixes of the audit records: by ECF transaction id, or by our check id.
pub const TRANSACTION_PREFIX: &str = "eligibility#";
pub const CHECK_PREFIX: &str = "eligibility-check#";

pub fn transaction_key(transaction_id: &str) -> Key {
    Key::new(format!("{TRANSACTION_PREFIX}{transaction_id}"), "#")
}

pub fn check_key(check_id: Uuid) -> Key {
    Key::new(format!("{CHECK_PREFIX}{check_id}"), "#")
}

impl AuditRecord {
    pub fn key(&self) -> Key {
        match self.summary.transaction_id.as_deref().filter(|id| usable_in_key(id)) {
            Some(id) => transaction_key(id),
            None => check_key(self.check_id),
        }
    }

    pub fn to_item(&self, ttl_days: u32) -> Result<Item, StoreError> {
        let mut attrs = shared::store::attrs_of(&Stored { kind: "eligibilityCheck", record: self })?;
        // What the answer did not carry is left out rather than stored as null.
        attrs.retain(|_, value| !value.is_null());
        let expires_at = self.checked_at.timestamp() + i64::from(ttl_days) * 86_400;
        Ok(Item::new(self.key(), attrs).expiring_at(expires_at))
    }
}
