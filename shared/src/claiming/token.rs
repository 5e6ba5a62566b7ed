//! The Claiming.com.au access token: `POST {base}/v2/oauth/token` with the JSON client-credentials
//! body; the answer is `{"access_token": "...", "expiry": "YYYY-MM-DD HH:MM:SS"}`, the expiry in UTC.
//!
//! One [`TokenManager`] per execution environment (a Lambda instance, the local stack) holds the
//! token behind a `tokio::sync::Mutex`: concurrent requests that find no usable token wait for the
//! one refresh in progress instead of starting their own. A token is refreshed
//! [`REFRESH_BEFORE_EXPIRY`] before its expiry, read from the injected [`Clock`], and once more when
//! Claiming.com.au answers 401 to it ([`TokenManager::refresh_after_rejection`]). If a refresh
//! before expiry fails while the old token still has time left, the old token is used.
//!
//! Tokens and the client secret never appear in logs or `Debug` output.

use super::ClaimingSettings;
use crate::http_client::{HttpError, Method, OutboundRequest, SharedHttp};
use crate::secrets::Rotating;
use crate::time::Clock;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long before its expiry a token is replaced.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// The life assumed for a token whose `expiry` is missing or unreadable (they live 24 hours).
pub const FALLBACK_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// The `expiry` format.
pub const EXPIRY_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// A bearer token. Redacted in `Debug`; no `Display`.
pub struct AccessToken(SecretString);

impl AccessToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }
    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0.expose_secret())
    }
}

impl Clone for AccessToken {
    fn clone(&self) -> Self {
        Self::new(self.0.expose_secret().to_owned())
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(..)")
    }
}

/// Why no token could be had. The texts name no secret and no response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token endpoint did not answer in time")]
    Timeout,
    #[error("the token endpoint could not be reached: {0}")]
    Unreachable(String),
    /// 400/401/403: the client id or secret was refused.
    #[error("the token endpoint refused the client credentials (HTTP {status})")]
    Refused { status: u16 },
    #[error("the token endpoint answered HTTP {status}")]
    Status { status: u16 },
    #[error("the token endpoint's answer has no usable access_token")]
    Invalid,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expiry: Option<String>,
}

struct Cached {
    token: AccessToken,
    expires_at: DateTime<Utc>,
    refresh_at: DateTime<Utc>,
}

pub struct TokenManager {
    http: SharedHttp,
    clock: Arc<dyn Clock>,
    url: String,
    client_id: String,
    client_secret: Rotating<SecretString>,
    timeout: Duration,
    refresh_before: TimeDelta,
    cached: Mutex<Option<Cached>>,
}

/// `YYYY-MM-DD HH:MM:SS` in UTC; RFC 3339 is accepted too.
pub fn parse_expiry(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    NaiveDateTime::parse_from_str(text, EXPIRY_FORMAT)
        .map(|naive| naive.and_utc())
        .ok()
        .or_else(|| DateTime::parse_from_rfc3339(text).ok().map(|at| at.with_timezone(&Utc)))
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::zero())
}

impl TokenManager {
    pub fn new(http: SharedHttp, clock: Arc<dyn Clock>, settings: &ClaimingSettings) -> Self {
        Self {
            http,
            clock,
            url: settings.token_url(),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            timeout: settings.timeout,
            refresh_before: delta(REFRESH_BEFORE_EXPIRY),
            cached: Mutex::new(None),
        }
    }

    /// Replaces [`REFRESH_BEFORE_EXPIRY`].
    pub fn with_refresh_before(mut self, refresh_before: Duration) -> Self {
        self.refresh_before = delta(refresh_before);
        self
    }

    /// A token good for now: the cached one, or a new one if it is due for refresh.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        let mut cached = self.cached.lock().await;
        let now = self.clock.now();
        if let Some(current) = cached.as_ref().filter(|current| now < current.refresh_at) {
            return Ok(current.token.clone());
        }
        match self.fetch().await {
            Ok(fresh) => {
                let token = fresh.token.clone();
                *cached = Some(fresh);
                Ok(token)
            }
            Err(error) => match cached.as_ref().filter(|current| now < current.expires_at) {
                Some(current) => {
                    tracing::warn!(%error, "Claiming.com.au token refresh failed; using the current token until it expires");
                    Ok(current.token.clone())
                }
                None => Err(error),
            },
        }
    }

    /// A new token after Claiming.com.au refused `rejected` with 401. If another request has
    /// already replaced it, that replacement is returned without another call.
    pub async fn refresh_after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, TokenError> {
        let mut cached = self.cached.lock().await;
        let now = self.clock.now();
        if let Some(current) = cached.as_ref().filter(|current| current.token != *rejected && now < current.refresh_at)
        {
            return Ok(current.token.clone());
        }
        *cached = None;
        tracing::info!("Claiming.com.au refused the access token; fetching a new one");
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// When the cached token expires, if there is one.
    pub async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.cached.lock().await.as_ref().map(|current| current.expires_at)
    }

    async fn fetch(&self) -> Result<Cached, TokenError> {
        let result = self.request_token().await;
        shared_metric(if result.is_ok() { "ok" } else { "failed" });
        result
    }

    async fn request_token(&self) -> Result<Cached, TokenError> {
        let secret = self.client_secret.current().await;
        let body = serde_json::json!({
            "client_id": self.client_id,
            "client_secret": secret.expose_secret(),
            "grant_type": "client_credentials",
        });
        let body = serde_json::to_vec(&body).map_err(|_| TokenError::Invalid)?;
        let request = OutboundRequest::new(Method::Post, &self.url)
            .header("accept", "application/json")
            .json(body)
            .timeout(self.timeout)
            .max_body(crate::http_client::MAX_TOKEN_BODY_BYTES);
        let response = self.http.send(request).await.map_err(|error| match error {
            HttpError::Timeout => TokenError::Timeout,
            HttpError::Connect(reason) | HttpError::Other(reason) => TokenError::Unreachable(reason),
            too_large @ HttpError::TooLarge(_) => TokenError::Unreachable(too_large.to_string()),
        })?;
        match response.status {
            200..=299 => {}
            status @ (400 | 401 | 403) => {
                // Perhaps rotated: the next attempt uses what Secrets Manager holds now.
                self.client_secret.refused().await;
                return Err(TokenError::Refused { status });
            }
            status => return Err(TokenError::Status { status }),
        }
        let answer: TokenAnswer = serde_json::from_slice(&response.body).map_err(|_| TokenError::Invalid)?;
        let token = answer.access_token.filter(|token| !token.trim().is_empty()).ok_or(TokenError::Invalid)?;
        let now = self.clock.now();
        let expires_at = match answer.expiry.as_deref().and_then(parse_expiry) {
            Some(at) => at,
            None => {
                tracing::warn!("the Claiming.com.au token has no readable expiry; assuming it lives one hour");
                now + delta(FALLBACK_LIFETIME)
            }
        };
        let mut refresh_at = expires_at - self.refresh_before;
        if refresh_at <= now {
            // A token shorter-lived than the margin: use it for half its remaining life.
            refresh_at = now + (expires_at - now) / 2;
        }
        tracing::info!(expires_at = %expires_at.format(EXPIRY_FORMAT), "fetched a Claiming.com.au access token");
        Ok(Cached { token: AccessToken::new(token), expires_at, refresh_at })
    }
}

fn shared_metric(outcome: &str) {
    crate::metrics::count("ClaimingTokenFetch", ("Outcome", outcome));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn expiry_is_utc_date_and_time() {
        let at = parse_expiry("2021-06-09 13:30:42").expect("parses");
        assert_eq!(at, Utc.with_ymd_and_hms(2021, 6, 9, 13, 30, 42).single().expect("valid"));
        assert_eq!(
            parse_expiry("2021-06-09T13:30:42+10:00").map(|at| at.format(EXPIRY_FORMAT).to_string()).as_deref(),
            Some("2021-06-09 03:30:42")
        );
        assert!(parse_expiry("tomorrow").is_none());
        assert!(parse_expiry("2021-02-30 00:00:00").is_none());
    }

    #[test]
    fn tokens_are_redacted() {
        let token = AccessToken::new("very-secret");
        assert_eq!(format!("{token:?}"), "AccessToken(..)");
        assert_eq!(token.bearer(), "Bearer very-secret");
    }
}
