//! One audit record per query, in the table:
//!
//! - key: pk `icp-audit#<YYYY-MM-DD>` (the UTC date of the request), sk `<RFC 3339 instant>#<correlation id>`,
//!   so a day's queries read back in order with one `query`;
//! - attributes: `at`, `correlationId`, `caller`, `vendorId`, `providerId` (each only when valid),
//!   `claimNumberSha256` (hex SHA-256 of the claim number as given; the number itself is never
//!   stored), `outcome` (the HTTP status we answered), `result` (what happened: `answered` (ACC
//!   2xx), `rejected` (ACC 4xx, passed on), `invalid`, `unauthenticated`, `forbidden`,
//!   `method_not_allowed`, `upstream_timeout`, `upstream_unreachable`, `upstream_error` (ACC 5xx),
//!   `upstream_refused_credentials` (ACC 401/403), `upstream_unexpected`, `upstream_failed`),
//!   `upstreamStatus` and `upstreamLatencyMs` (when ACC was called);
//! - expiry: `ICP_AUDIT_TTL_DAYS` after the request.
//!
//! The date of birth is never stored, hashed or not.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use shared::store::{Item, Key};
use uuid::Uuid;

pub const PK_PREFIX: &str = "icp-audit#";

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub caller: Option<String>,
    pub vendor_id: Option<String>,
    pub provider_id: Option<String>,
    pub claim_number_sha256: Option<String>,
    pub outcome: u16,
    pub result: &'static str,
    pub upstream_status: Option<u16>,
    pub upstream_latency_ms: Option<u64>,
}

impl AuditRecord {
    pub fn new(at: DateTime<Utc>, correlation_id: Uuid) -> Self {
        Self {
            at,
            correlation_id,
            caller: None,
            vendor_id: None,
            provider_id: None,
            claim_number_sha256: None,
            outcome: 0,
            result: "",
            upstream_status: None,
            upstream_latency_ms: None,
        }
    }

    pub fn key(&self) -> Key {
        let at = self.at.to_rfc3339_opts(SecondsFormat::Millis, true);
        Key::new(format!("{PK_PREFIX}{}", self.at.format("%Y-%m-%d")), format!("{at}#{}", self.correlation_id))
    }

    pub fn to_item(&self, ttl_days: u32) -> Item {
        let mut attrs = Map::new();
        let mut put = |name: &str, value: Value| {
            attrs.insert(name.to_owned(), value);
        };
        put("at", json!(self.at.to_rfc3339_opts(SecondsFormat::Millis, true)));
        put("correlationId", json!(self.correlation_id.to_string()));
        put("caller", json!(self.caller));
        put("vendorId", json!(self.vendor_id));
        put("providerId", json!(self.provider_id));
        put("claimNumberSha256", json!(self.claim_number_sha256));
        put("outcome", json!(self.outcome));
        put("result", json!(self.result));
        put("upstreamStatus", json!(self.upstream_status));
        put("upstreamLatencyMs", json!(self.upstream_latency_ms));
        let expires_at = self.at.timestamp().saturating_add(i64::from(ttl_days).saturating_mul(86_400));
        Item::new(self.key(), attrs).expiring_at(expires_at)
    }
}

/// Hex SHA-256 of a claim number as given (equal to `ClaimNumber::sha256_hex` for a valid one).
pub fn hash_claim_number(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}
