//! Calls back to HICAPS: OAuth2 client credentials (the token cached until shortly before it
//! expires, refreshed once on a 401), and only to hosts in `HICAPS_CALLBACK_HOSTS`, so a forged
//! webhook can never make us send a bearer token to a stranger.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use shared::http_client::{HttpError, Method, OutboundRequest, OutboundResponse, SharedHttp};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Refresh this long before the token's stated expiry, so no call carries a dying token.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The href's host is not an allowed HICAPS host; nothing was sent.
    #[error("host of the link is not in HICAPS_CALLBACK_HOSTS")]
    Refused,
    /// 5xx, timeout or connection failure: retry later.
    #[error("transient failure: {0}")]
    Transient(String),
    /// 4xx: retrying the same request cannot help.
    #[error("HICAPS rejected the call with {status}")]
    Rejected { status: u16, body: String },
}

pub struct HicapsCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
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
    #[serde(default)]
    expires_in: Option<u64>,
}

impl HicapsClient {
    pub fn new(http: SharedHttp, credentials: HicapsCredentials, allowed_hosts: Vec<String>, timeout: Duration) -> Self {
        Self { http, timeout, credentials, allowed_hosts, token: Mutex::new(None) }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether `href` may receive our token: https to an allowed host (plain http only to an
    /// allowed loopback host, for the local simulator).
    pub fn is_allowed(&self, href: &str) -> bool {
        let Ok(url) = reqwest::Url::parse(href) else {
            return false;
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        let loopback = host == "127.0.0.1" || host == "localhost" || host == "[::1]";
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        let with_port = url.port().map(|port| format!("{host}:{port}"));
        scheme_ok
            && self.allowed_hosts.iter().any(|allowed| {
                allowed.eq_ignore_ascii_case(host) || with_port.as_deref().is_some_and(|hp| allowed.eq_ignore_ascii_case(hp))
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

    async fn call(&self, method: Method, href: &str, body: Option<Vec<u8>>) -> Result<OutboundResponse, CallbackError> {
        if !self.is_allowed(href) {
            return Err(CallbackError::Refused);
        }
        let mut refreshed = false;
        loop {
            let token = self.token(refreshed).await?;
            let mut request =
                OutboundRequest::new(method, href).header("authorization", format!("Bearer {token}")).timeout(self.timeout);
            request = match &body {
                Some(body) => request.json(body.clone()),
                None => request.header("content-length", "0"),
            };
            let response = self.http.send(request).await.map_err(transient)?;
            match response.status {
                401 if !refreshed => refreshed = true,
                200..=299 => return Ok(response),
                status @ 400..=499 => {
                    let body = String::from_utf8_lossy(&response.body).chars().take(2000).collect();
                    return Err(CallbackError::Rejected { status, body });
                }
                status => return Err(CallbackError::Transient(format!("HICAPS answered {status}"))),
            }
        }
    }

    async fn token(&self, force_refresh: bool) -> Result<String, CallbackError> {
        let mut cached = self.token.lock().await;
        if !force_refresh
            && let Some((token, valid_until)) = cached.as_ref()
            && Instant::now() < *valid_until
        {
            return Ok(token.clone());
        }
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.credentials.client_id)
            .append_pair("client_secret", self.credentials.client_secret.expose_secret())
            .finish();
        let request = OutboundRequest::new(Method::Post, &self.credentials.token_url).form(form).timeout(self.timeout);
        let response = self.http.send(request).await.map_err(transient)?;
        if !(200..300).contains(&response.status) {
            // A refused token is an outage of ours or theirs, not a fault of this message: retry.
            return Err(CallbackError::Transient(format!("token endpoint answered {}", response.status)));
        }
        let token: TokenResponse = serde_json::from_slice(&response.body)
            .map_err(|_| CallbackError::Transient("token endpoint answered without an access_token".into()))?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(300)).saturating_sub(EXPIRY_MARGIN);
        *cached = Some((token.access_token.clone(), Instant::now() + lifetime));
        Ok(token.access_token)
    }
}

fn transient(error: HttpError) -> CallbackError {
    CallbackError::Transient(error.to_string())
}
