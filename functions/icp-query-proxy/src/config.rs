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

use secrecy::SecretString;
use shared::acc::VendorId;
use shared::config::{ConfigError, Vars};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use url::Url;

pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 20;
/// API Gateway's HTTP API integration timeout is 30 s (29 s for REST APIs): stay under both.
pub const MAX_TIMEOUT_SECONDS: u64 = 28;
pub const DEFAULT_AUDIT_TTL_DAYS: u32 = 90;
pub const MAX_AUDIT_TTL_DAYS: u32 = 3650;

#[derive(Debug)]
pub struct Config {
    pub(crate) acc_base_url: Url,
    pub(crate) acc_api_key: SecretString,
    pub(crate) acc_api_key_header: http::HeaderName,
    pub(crate) grants: VendorGrants,
    pub(crate) acc_timeout: Duration,
    pub(crate) audit_ttl_days: u32,
}

impl Config {
    pub async fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let acc_base_url = parse_base_url("ACC_BASE_URL", vars.required("ACC_BASE_URL")?)?;
        let acc_api_key = vars.required_secret("ACC_API_KEY").await?;
        let header = vars.get("ACC_API_KEY_HEADER").unwrap_or(DEFAULT_API_KEY_HEADER).trim();
        let acc_api_key_header = http::HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| ConfigError::new("ACC_API_KEY_HEADER", format!("{header:?} is not a valid header name")))?;
        let grants = VendorGrants::parse(vars.get("ICP_VENDOR_GRANTS").unwrap_or_default())
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
        Ok(Self {
            acc_base_url,
            acc_api_key,
            acc_api_key_header,
            grants,
            acc_timeout: Duration::from_secs(timeout),
            audit_ttl_days,
        })
    }

    pub fn acc_timeout(&self) -> Duration {
        self.acc_timeout
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

/// Which vendor IDs each caller may query with (`ICP_VENDOR_GRANTS`):
/// `caller=VENDOR1|VENDOR2` pairs separated by commas; `*` grants every vendor ID. Vendor IDs
/// compare exactly (case-sensitive); a caller listed twice gets the union. Unlisted callers get
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VendorGrants(HashMap<String, Grant>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    Every,
    Only(BTreeSet<VendorId>),
}

impl VendorGrants {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut grants: HashMap<String, Grant> = HashMap::new();
        for (index, entry) in text.split(',').map(str::trim).enumerate().filter(|(_, e)| !e.is_empty()) {
            let position = index + 1;
            let (caller, vendors) = entry
                .split_once('=')
                .ok_or_else(|| format!("entry {position} is not `caller=VENDOR1|VENDOR2` or `caller=*`"))?;
            let caller = caller.trim();
            if caller.is_empty() {
                return Err(format!("entry {position} names no caller"));
            }
            let mut grant = Grant::Only(BTreeSet::new());
            for vendor in vendors.split('|').map(str::trim) {
                if vendor == "*" {
                    grant = Grant::Every;
                } else if let Grant::Only(set) = &mut grant {
                    let vendor = VendorId::parse(vendor)
                        .map_err(|e| format!("entry {position} (caller {caller}): {vendor:?}: {}", e.message))?;
                    set.insert(vendor);
                } else {
                    VendorId::parse(vendor)
                        .map_err(|e| format!("entry {position} (caller {caller}): {vendor:?}: {}", e.message))?;
                }
            }
            let merged = match (grants.remove(caller), grant) {
                (Some(Grant::Every), _) | (_, Grant::Every) => Grant::Every,
                (Some(Grant::Only(mut old)), Grant::Only(new)) => {
                    old.extend(new);
                    Grant::Only(old)
                }
                (None, grant) => grant,
            };
            grants.insert(caller.to_owned(), merged);
        }
        Ok(Self(grants))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn allows(&self, caller: &str, vendor: &VendorId) -> bool {
        match self.0.get(caller) {
            Some(Grant::Every) => true,
            Some(Grant::Only(vendors)) => vendors.contains(vendor),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor(text: &str) -> VendorId {
        VendorId::parse(text).expect("valid vendor id")
    }

    #[test]
    fn grants_parse_pairs_stars_and_unions() {
        let grants = VendorGrants::parse(" physio-app = V1|AB/2 , admin=*, physio-app=V3,").expect("parses");
        assert!(grants.allows("physio-app", &vendor("V1")));
        assert!(grants.allows("physio-app", &vendor("AB/2")));
        assert!(grants.allows("physio-app", &vendor("V3")));
        assert!(!grants.allows("physio-app", &vendor("v1")));
        assert!(!grants.allows("physio-app", &vendor("V2")));
        assert!(grants.allows("admin", &vendor("ANYTHING")));
        assert!(!grants.allows("stranger", &vendor("V1")));
        assert!(VendorGrants::parse("").expect("empty parses").is_empty());
    }

    #[test]
    fn bad_grants_are_refused() {
        assert!(VendorGrants::parse("physio-app").is_err());
        assert!(VendorGrants::parse("=V1").is_err());
        assert!(VendorGrants::parse("a=").is_err());
        assert!(VendorGrants::parse("a=V1||V2").is_err());
        assert!(VendorGrants::parse("a=THIRTEENCHARS").is_err());
    }
}
