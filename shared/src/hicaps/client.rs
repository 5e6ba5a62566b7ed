//! Calls back to HICAPS: OAuth2 client credentials (the token cached until shortly before it
//! expires, refreshed once on a 401), and only to hosts in `HICAPS_CALLBACK_HOSTS`, so a forged
//! webhook can never make us send a bearer token to a stranger.
//!
//! What HICAPS answers decides what happens next (HICAPS Program API, "API Response Codes"): 2xx is done;
//! 408, 425, 429, 5xx, a timeout or a refused token are transient (retried, honouring
//! `Retry-After`); any other 4xx is a refusal that the same request would meet again.

use crate::http_client::{HttpError, Method, OutboundRequest, OutboundResponse, SharedHttp};
use crate::secrets::Rotating;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Refresh this long before the token's stated expiry, so no call carries a dying token.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The href's host is not an allowed HICAPS host; nothing was sent.
    #[error("host of the link is not in HICAPS_CALLBACK_HOSTS")]
    Refused,
    /// 408, 425, 429, 5xx, timeout or connection failure: retry later, not before `retry_after`
    /// when HICAPS said when.
    #[error("transient failure: {reason}")]
    Transient { reason: String, retry_after: Option<Duration> },
    /// Another 4xx: retrying the same request cannot help.
    #[error("HICAPS rejected the call with {status}")]
    Rejected { status: u16, body: String },
}

pub struct HicapsCredentials {
    pub token_url: String,
    pub client_id: String,
    /// Re-read after its TTL, and at once when the token endpoint refuses it.
    pub client_secret: Rotating<SecretString>,
}

pub struct HicapsClient {
    http: SharedHttp,
    /// Total time allowed for each call, connect included.
    timeout: Duration,
    credentials: HicapsCredentials,
    allowed_hosts: Vec<String>,
    token: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    /// Seconds; read as any JSON number, since it comes from outside and is clamped below.
    #[serde(default)]
    expires_in: Option<serde_json::Number>,
}

/// Longest a token is cached, whatever `expires_in` says.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Assumed when the token answer states no lifetime.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// How long a token may be used: `expires_in` clamped to 0..=24 h, less the refresh margin.
/// Negative, fractional or absurd values never panic: the token is then used once, or for a day.
fn token_lifetime(expires_in: Option<&serde_json::Number>) -> Duration {
    let stated = match expires_in {
        None => DEFAULT_TOKEN_LIFETIME,
        Some(number) => match (number.as_u64(), number.as_i64()) {
            (Some(seconds), _) => Duration::from_secs(seconds).min(MAX_TOKEN_LIFETIME),
            (None, Some(_)) => Duration::ZERO,
            // A fraction, or beyond i64/u64: only its sign matters at these scales.
            (None, None) if number.to_string().starts_with('-') => Duration::ZERO,
            (None, None) => MAX_TOKEN_LIFETIME,
        },
    };
    stated.saturating_sub(EXPIRY_MARGIN)
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110, §10.2.3); `None` when absent or
/// unreadable. A date in the past is zero.
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    let value = value?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let seconds = (at.with_timezone(&chrono::Utc) - crate::time::now()).num_seconds();
    Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

impl HicapsClient {
    pub fn new(
        http: SharedHttp,
        credentials: HicapsCredentials,
        allowed_hosts: Vec<String>,
        timeout: Duration,
    ) -> Self {
        Self { http, timeout, credentials, allowed_hosts, token: Mutex::new(None) }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether `href` may receive our token: https to an allowed host (plain http only to an
    /// allowed loopback host, for the local simulator), with no userinfo. An allowed entry without
    /// a port admits only the scheme's default port (443 for https).
    pub fn is_allowed(&self, href: &str) -> bool {
        let Ok(url) = reqwest::Url::parse(href) else {
            return false;
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        let loopback = host == "127.0.0.1" || host == "localhost" || host == "[::1]";
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        let explicit_port = url.port().map(|port| format!("{host}:{port}"));
        scheme_ok
            && self.allowed_hosts.iter().any(|allowed| match &explicit_port {
                // `url` drops a port that is the scheme's default, so `host:443` arrives as `host`.
                None => allowed.eq_ignore_ascii_case(host) || allowed.eq_ignore_ascii_case(&format!("{host}:443")),
                Some(host_port) => allowed.eq_ignore_ascii_case(host_port),
            })
    }

    pub async fn post_json(&self, href: &str, body: Vec<u8>) -> Result<OutboundResponse, CallbackError> {
        self.call(Method::Post, href, Some(body)).await
    }

    pub async fn post_empty(&self, href: &str) -> Result<OutboundResponse, CallbackError> {
        self.call(Method::Post, href, None).await
    }

    pub async fn get(&self, href: &str) -> Result<OutboundResponse, CallbackError> {
        self.call(Method::Get, href, None).await
    }

    /// One call, token fetch and the refresh after a 401 included, within one `timeout`: a record
    /// never spends more than that on HICAPS, which the poster's deadline guard relies on.
    async fn call(&self, method: Method, href: &str, body: Option<Vec<u8>>) -> Result<OutboundResponse, CallbackError> {
        if !self.is_allowed(href) {
            return Err(CallbackError::Refused);
        }
        match tokio::time::timeout(self.timeout, self.call_with_token(method, href, body)).await {
            Ok(result) => result,
            Err(_) => {
                Err(CallbackError::Transient { reason: "HICAPS did not answer in time".into(), retry_after: None })
            }
        }
    }

    async fn call_with_token(
        &self,
        method: Method,
        href: &str,
        body: Option<Vec<u8>>,
    ) -> Result<OutboundResponse, CallbackError> {
        let mut refreshed = false;
        loop {
            let token = self.token(refreshed).await?;
            let mut request = OutboundRequest::new(method, href)
                .header("authorization", format!("Bearer {token}"))
                .timeout(self.timeout);
            request = match &body {
                Some(body) => request.json(body.clone()),
                None => request.header("content-length", "0"),
            };
            let response = self.http.send(request).await.map_err(transient)?;
            match response.status {
                401 if !refreshed => refreshed = true,
                200..=299 => return Ok(response),
                // A token HICAPS refuses twice is our credentials' outage, which an operator fixes.
                status @ (401 | 408 | 425 | 429 | 500..=599) => {
                    return Err(CallbackError::Transient {
                        reason: format!("HICAPS answered {status}"),
                        retry_after: retry_after(response.header("retry-after")),
                    });
                }
                status @ 400..=499 => {
                    let body = String::from_utf8_lossy(&response.body).chars().take(2000).collect();
                    return Err(CallbackError::Rejected { status, body });
                }
                status => {
                    return Err(CallbackError::Transient {
                        reason: format!("HICAPS answered {status}"),
                        retry_after: None,
                    });
                }
            }
        }
    }

    /// Fetches and caches the OAuth token, opening the token host's connection: at init, so that
    /// the first post needs neither (the token URL is configuration's, not a webhook's).
    pub async fn warm_up(&self) -> Result<(), String> {
        self.token(false).await.map(drop).map_err(|error| error.to_string())
    }

    async fn token(&self, force_refresh: bool) -> Result<String, CallbackError> {
        let mut cached = self.token.lock().await;
        if !force_refresh
            && let Some((token, valid_until)) = cached.as_ref()
            && Instant::now() < *valid_until
        {
            return Ok(token.clone());
        }
        let secret = self.credentials.client_secret.current().await;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.credentials.client_id)
            .append_pair("client_secret", secret.expose_secret())
            .finish();
        let request = OutboundRequest::new(Method::Post, &self.credentials.token_url)
            .form(form)
            .timeout(self.timeout)
            .max_body(crate::http_client::MAX_TOKEN_BODY_BYTES);
        let response = self.http.send(request).await.map_err(transient)?;
        if matches!(response.status, 400 | 401 | 403) {
            // Perhaps rotated: the next attempt uses what Secrets Manager holds now.
            self.credentials.client_secret.refused().await;
        }
        if !(200..300).contains(&response.status) {
            // A refused token is an outage of ours or theirs, not a fault of this message: retry.
            return Err(CallbackError::Transient {
                reason: format!("token endpoint answered {}", response.status),
                retry_after: None,
            });
        }
        let token: TokenResponse = serde_json::from_slice(&response.body).map_err(|_| CallbackError::Transient {
            reason: "token endpoint answered without an access_token".into(),
            retry_after: None,
        })?;
        let now = Instant::now();
        let valid_until = now.checked_add(token_lifetime(token.expires_in.as_ref())).unwrap_or(now);
        *cached = Some((token.access_token.clone(), valid_until));
        Ok(token.access_token)
    }
}

fn transient(error: HttpError) -> CallbackError {
    CallbackError::Transient { reason: error.to_string(), retry_after: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> serde_json::Number {
        serde_json::from_str(text).expect("a JSON number")
    }

    #[test]
    fn token_lifetimes_from_outside_are_clamped() {
        assert_eq!(token_lifetime(None), Duration::from_secs(240));
        assert_eq!(token_lifetime(Some(&number("3600"))), Duration::from_secs(3540));
        assert_eq!(token_lifetime(Some(&number("18446744073709551615"))), MAX_TOKEN_LIFETIME - EXPIRY_MARGIN);
        assert_eq!(token_lifetime(Some(&number("-5"))), Duration::ZERO);
        assert_eq!(token_lifetime(Some(&number("-1e400"))), Duration::ZERO);
        assert_eq!(token_lifetime(Some(&number("1e400"))), MAX_TOKEN_LIFETIME - EXPIRY_MARGIN);
        assert_eq!(token_lifetime(Some(&number("30"))), Duration::ZERO);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after(Some("1")), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(Some(" 120 ")), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), Some(Duration::ZERO));
        let later = (crate::time::now() + chrono::TimeDelta::seconds(90)).to_rfc2822();
        assert!(retry_after(Some(&later)).is_some_and(|d| d > Duration::from_secs(80) && d <= Duration::from_secs(90)));
        assert_eq!(retry_after(Some("soon")), None);
        assert_eq!(retry_after(None), None);
    }

    fn client(hosts: &[&str]) -> HicapsClient {
        let credentials = HicapsCredentials {
            token_url: String::new(),
            client_id: String::new(),
            client_secret: Rotating::fixed(SecretString::from("")),
        };
        let http: SharedHttp = std::sync::Arc::new(crate::http_client::ReqwestClient::new().expect("client"));
        HicapsClient::new(http, credentials, hosts.iter().map(|h| (*h).to_owned()).collect(), Duration::from_secs(1))
    }

    #[test]
    fn links_go_only_to_allowed_hosts_on_their_ports_without_userinfo() {
        let client = client(&["api.programs.lanternpay.com", "127.0.0.1:3000"]);
        assert!(client.is_allowed("https://api.programs.lanternpay.com/invoices/1/status"));
        assert!(client.is_allowed("https://api.programs.lanternpay.com:443/invoices/1/status"));
        assert!(
            !client.is_allowed("https://api.programs.lanternpay.com:8443/invoices/1/status"),
            "no port in the entry: 443 only"
        );
        assert!(!client.is_allowed("https://user@api.programs.lanternpay.com/invoices/1/status"));
        assert!(!client.is_allowed("https://user:pw@api.programs.lanternpay.com/invoices/1/status"));
        assert!(!client.is_allowed("http://api.programs.lanternpay.com/invoices/1/status"), "https only off loopback");
        assert!(client.is_allowed("http://127.0.0.1:3000/sim/hicaps/callbacks/x"));
        assert!(!client.is_allowed("http://127.0.0.1:3001/sim/hicaps/callbacks/x"));
        assert!(!client.is_allowed("https://evil.example/api.programs.lanternpay.com"));
    }
}
