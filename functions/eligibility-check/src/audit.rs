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

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use shared::claiming::CheckSummary;
use shared::store::{Item, Key};
use uuid::Uuid;

/// How a check ended, as stored and as the metric's dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub check_id: Uuid,
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
    pub summary: CheckSummary,
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

    pub fn to_item(&self, ttl_days: u32) -> Item {
        let mut attrs = Map::new();
        let mut put = |name: &str, value: Value| {
            if !value.is_null() {
                attrs.insert(name.to_owned(), value);
            }
        };
        put("kind", json!("eligibilityCheck"));
        put("checkId", json!(self.check_id.to_string()));
        put("checkedAt", json!(self.checked_at.to_rfc3339_opts(SecondsFormat::Millis, true)));
        put("caller", json!(self.caller));
        put("location", json!(self.location));
        put("provider", json!(self.provider));
        put("fundEclipseId", json!(self.fund_eclipse_id));
        put("itemCount", json!(self.item_count));
        put("outcome", json!(self.outcome.as_str()));
        put("httpStatus", json!(self.http_status));
        put("upstreamStatus", json!(self.upstream_status));
        put("retriedWithNewToken", json!(self.retried_with_new_token));
        put("latencyMs", json!(self.latency_ms));
        let summary = &self.summary;
        put("eligibilityId", json!(summary.eligibility_id));
        put("transactionId", json!(summary.transaction_id));
        put("status", json!(summary.status));
        put("timeReceived", json!(summary.time_received));
        put("medicareResponse", json!(summary.medicare_response));
        put("assessmentCodes", json!(summary.assessment_codes));
        put("itemAssessmentCodes", json!(summary.item_assessment_codes));
        put("fundAssessmentCode", json!(summary.fund_assessment_code));
        put("financialStatus", json!(summary.financial_status));
        let expires_at = self.checked_at.timestamp() + i64::from(ttl_days) * 86_400;
        Item::new(self.key(), attrs).expiring_at(expires_at)
    }
}
