//! Configuration, read once at init. Every error names its variable.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `ACC_BASE_URL` | required | ACC's API base; the proxy calls `{ACC_BASE_URL}/claims/icp/{claimNumber}` |
//! | `ACC_API_KEY` / `ACC_API_KEY_SECRET_ARN` | required | our API key with ACC (secret) |
//! | `ACC_API_KEY_HEADER` | `x-api-key` | the header that carries it |
//! | `ICP_VENDOR_GRANTS` | none (all refused) | `caller=VENDOR1\|VENDOR2,caller2=*` |
//! | `ACC_TIMEOUT_SECONDS` | `20` | upstream timeout, 1-28 (API Gateway gives up at 29 s) |
//! | `ICP_AUDIT_TTL_DAYS` | `90` | how long audit records live, 1-3650 days |
//! | `ICP_AUDIT_HMAC_KEY` / `ICP_AUDIT_HMAC_KEY_SECRET_ARN` | required | keys the audit's HMAC-SHA256 of claim numbers (secret) |
//! | `ICP_DOB_MISMATCH_LIMIT` | `5` | date-of-birth mismatches per claim and caller in a day before 429, 1-100 |

use secrecy::SecretString;
use shared::acc::VendorId;
use shared::acc::client::AccSettings;
use shared::caller::Grants;
use shared::config::{ConfigError, Vars};
use std::time::Duration;
use url::Url;

pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 20;
/// API Gateway's HTTP API integration timeout is 30 s (29 s for REST APIs): stay under both.
pub const MAX_TIMEOUT_SECONDS: u64 = 28;
pub const DEFAULT_AUDIT_TTL_DAYS: u32 = 90;
pub const MAX_AUDIT_TTL_DAYS: u32 = 3650;
pub const DEFAULT_DOB_MISMATCH_LIMIT: u32 = 5;

pub struct Config {
    pub(crate) acc: AccSettings,
    pub(crate) grants: VendorGrants,
    pub(crate) audit_ttl_days: u32,
    /// Keys the HMAC that stands in for claim numbers in audit records and counters: a plain
    /// hash of a 7-character ACC45 number is reversed by enumeration in about a minute.
    pub(crate) audit_hmac_key: SecretString,
    /// Date-of-birth mismatches per claim and caller in a day before further queries get 429.
    pub(crate) dob_mismatch_limit: u32,
}

impl Config {
    pub async fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let acc_base_url = parse_base_url("ACC_BASE_URL", vars.required("ACC_BASE_URL")?)?;
        let acc_api_key = vars.required_rotating_secret("ACC_API_KEY", shared::secrets::as_is).await?;
        let header = vars.get("ACC_API_KEY_HEADER").unwrap_or(DEFAULT_API_KEY_HEADER).trim();
        let acc_api_key_header = http::HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| ConfigError::new("ACC_API_KEY_HEADER", format!("{header:?} is not a valid header name")))?;
        let grants = vendor_grants(vars.get("ICP_VENDOR_GRANTS").unwrap_or_default())
            .map_err(|reason| ConfigError::new("ICP_VENDOR_GRANTS", reason))?;
        if grants.is_empty() {
            tracing::warn!("ICP_VENDOR_GRANTS is empty: every ICP query will be refused with 403");
        }
        let timeout = vars.parse_or("ACC_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)?;
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&timeout) {
            return Err(ConfigError::new("ACC_TIMEOUT_SECONDS", format!("must be 1 to {MAX_TIMEOUT_SECONDS} seconds")));
        }
        let audit_ttl_days = vars.parse_or("ICP_AUDIT_TTL_DAYS", DEFAULT_AUDIT_TTL_DAYS)?;
        if !(1..=MAX_AUDIT_TTL_DAYS).contains(&audit_ttl_days) {
            return Err(ConfigError::new("ICP_AUDIT_TTL_DAYS", format!("must be 1 to {MAX_AUDIT_TTL_DAYS} days")));
        }
        let audit_hmac_key = vars.required_secret("ICP_AUDIT_HMAC_KEY").await?;
        if secrecy::ExposeSecret::expose_secret(&audit_hmac_key).len() < 32 {
            return Err(ConfigError::new("ICP_AUDIT_HMAC_KEY", "must be at least 32 characters"));
        }
        let dob_mismatch_limit = vars.parse_or("ICP_DOB_MISMATCH_LIMIT", DEFAULT_DOB_MISMATCH_LIMIT)?;
        if !(1..=100).contains(&dob_mismatch_limit) {
            return Err(ConfigError::new("ICP_DOB_MISMATCH_LIMIT", "must be 1 to 100"));
        }
        Ok(Self {
            audit_hmac_key,
            dob_mismatch_limit,
            acc: AccSettings {
                base_url: acc_base_url,
                api_key: acc_api_key,
                api_key_header: acc_api_key_header,
                timeout: Duration::from_secs(timeout),
            },
            grants,
            audit_ttl_days,
        })
    }

    pub fn acc_timeout(&self) -> Duration {
        self.acc.timeout
    }

    pub fn grants(&self) -> &VendorGrants {
        &self.grants
    }
}

fn parse_base_url(variable: &str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text.trim()).map_err(|e| ConfigError::new(variable, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") || url.cannot_be_a_base() || url.host().is_none() {
        return Err(ConfigError::new(variable, "must be an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(variable, "must not have a query or a fragment"));
    }
    if url.scheme() == "http" {
        tracing::warn!(variable, "ACC is called over plain http: use https outside the local stack");
    }
    Ok(url)
}

/// Which vendor IDs each caller may query with (`ICP_VENDOR_GRANTS`, `caller=VENDOR1|VENDOR2`).
pub type VendorGrants = Grants<VendorId>;

/// Reads `ICP_VENDOR_GRANTS`; each vendor ID must be one ACC would accept.
pub fn vendor_grants(text: &str) -> Result<VendorGrants, String> {
    Grants::parse(text, |vendor| VendorId::parse(vendor).map_err(|e| e.message.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor(text: &str) -> VendorId {
        VendorId::parse(text).expect("valid vendor id")
    }

    #[test]
    fn grants_parse_pairs_stars_and_unions() {
        let grants = vendor_grants(" physio-app = V1|AB/2 , admin=*, physio-app=V3,").expect("parses");
        assert!(grants.allows("physio-app", &vendor("V1")));
        assert!(grants.allows("physio-app", &vendor("AB/2")));
        assert!(grants.allows("physio-app", &vendor("V3")));
        assert!(!grants.allows("physio-app", &vendor("v1")));
        assert!(!grants.allows("physio-app", &vendor("V2")));
        assert!(grants.allows("admin", &vendor("ANYTHING")));
        assert!(!grants.allows("stranger", &vendor("V1")));
        assert!(vendor_grants("").expect("empty parses").is_empty());
    }

    #[test]
    fn bad_grants_are_refused() {
        assert!(vendor_grants("physio-app").is_err());
        assert!(vendor_grants("=V1").is_err());
        assert!(vendor_grants("a=").is_err());
        assert!(vendor_grants("a=V1||V2").is_err());
        assert!(vendor_grants("a=THIRTEENCHARS").is_err());
    }
}
