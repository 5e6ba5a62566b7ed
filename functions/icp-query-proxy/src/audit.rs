//! One audit record per query, in the table:
//!
//! - key: pk `icp-audit#<YYYY-MM-DD>` (the UTC date of the request), sk `<RFC 3339 instant>#<correlation id>`,
//!   so a day's queries read back in order with one `query`;
//! - attributes: `at`, `correlationId`, `caller`, `vendorId`, `providerId` (each only when valid),
//!   `claimNumberHmac` (hex HMAC-SHA256 of the claim number as given, keyed with
//!   `ICP_AUDIT_HMAC_KEY`: without the key it cannot be reversed by enumerating the few ACC45
//!   formats; the number itself is never stored), `outcome` (the HTTP status we answered), `result` (what happened: `answered` (ACC
//!   2xx), `rejected` (ACC 4xx, passed on), `invalid`, `unauthenticated`, `forbidden`,
//!   `method_not_allowed`, `dob_guess_limited` (too many date-of-birth mismatches; ACC not called), `upstream_timeout`, `upstream_unreachable`, `upstream_error` (ACC 5xx),
//!   `upstream_refused_credentials` (ACC 401/403), `upstream_unexpected`, `upstream_failed`),
//!   `upstreamStatus` and `upstreamLatencyMs` (when ACC was called);
//! - expiry: `ICP_AUDIT_TTL_DAYS` after the request.
//!
//! The date of birth is never stored, hashed or not.

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;
use shared::store::{Item, Key, StoreError};
use uuid::Uuid;

pub const PK_PREFIX: &str = "icp-audit#";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    #[serde(serialize_with = "shared::time::serialize_millis")]
    pub at: DateTime<Utc>,
    pub correlation_id: Uuid,
    pub caller: Option<String>,
    pub vendor_id: Option<String>,
    pub provider_id: Option<String>,
    pub claim_number_hmac: Option<String>,
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
            claim_number_hmac: None,
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

    pub fn to_item(&self, ttl_days: u32) -> Result<Item, StoreError> {
        let expires_at = self.at.timestamp().saturating_add(i64::from(ttl_days).saturating_mul(86_400));
        Ok(Item::new(self.key(), shared::store::attrs_of(self)?).expiring_at(expires_at))
    }
}

/// Hex HMAC-SHA256 of a claim number as given, keyed with `ICP_AUDIT_HMAC_KEY`.
pub fn hash_claim_number(key: &SecretString, raw: &str) -> String {
    // HMAC takes a key of any length (RFC 2104, §2); `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes()) {
        Ok(mut mac) => {
            mac.update(raw.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Key prefix of the date-of-birth mismatch counters: `icp-dob#<caller>#<claim HMAC>` / `#`.
pub const DOB_COUNTER_PREFIX: &str = "icp-dob#";

/// The counter of date-of-birth mismatches for one claim (by HMAC) from one caller.
pub fn dob_counter_key(caller: &str, claim_hmac: &str) -> Key {
    Key::new(format!("{DOB_COUNTER_PREFIX}{caller}#{claim_hmac}"), "#")
}
