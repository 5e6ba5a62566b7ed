//! The connection to Claiming.com.au: settings from the environment, and the eligibility call
//! with its bearer token, retried once with a new token when Claiming.com.au answers 401.

use super::request::{EcfRequest, LocationId};
use super::token::{AccessToken, TokenError, TokenManager};
use crate::config::{ConfigError, Vars};
use crate::http_client::{HttpError, Method, OutboundRequest, SharedHttp};
use crate::secrets::Rotating;
use crate::time::Clock;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

pub const BASE_URL_VARIABLE: &str = "CLAIMING_BASE_URL";
pub const CLIENT_ID_VARIABLE: &str = "CLAIMING_CLIENT_ID";
pub const CLIENT_SECRET_VARIABLE: &str = "CLAIMING_CLIENT_SECRET";
pub const TIMEOUT_VARIABLE: &str = "CLAIMING_TIMEOUT_SECONDS";
/// Per call (token or eligibility); an eligibility check makes one call when the token is cached.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 8;
/// API Gateway gives an integration 30 seconds in all.
pub const MAX_TIMEOUT_SECONDS: u64 = 29;

/// Where and as whom to call Claiming.com.au.
#[derive(Debug, Clone)]
pub struct ClaimingSettings {
    /// Without the version and without a trailing `/`, e.g. `https://sandbox.claiming.com.au`.
    pub base_url: String,
    pub client_id: String,
    /// Re-read after `SECRETS_TTL_SECONDS`, and at once when the token endpoint refuses it.
    pub client_secret: Rotating<SecretString>,
    /// Total time allowed for each call.
    pub timeout: Duration,
}

impl ClaimingSettings {
    /// `CLAIMING_BASE_URL`, `CLAIMING_CLIENT_ID`, `CLAIMING_CLIENT_SECRET` (or
    /// `CLAIMING_CLIENT_SECRET_SECRET_ARN`), `CLAIMING_TIMEOUT_SECONDS` (default 8, 1 to 29).
    pub async fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let base_url = vars.required(BASE_URL_VARIABLE)?.trim().trim_end_matches('/').to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConfigError::new(
                BASE_URL_VARIABLE,
                "must be an http(s) URL, e.g. https://sandbox.claiming.com.au",
            ));
        }
        let client_id = vars.required(CLIENT_ID_VARIABLE)?.trim().to_owned();
        let client_secret = vars.required_rotating_secret(CLIENT_SECRET_VARIABLE, crate::secrets::as_is).await?;
        let seconds: u64 = vars.parse_or(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_SECONDS)?;
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&seconds) {
            return Err(ConfigError::new(TIMEOUT_VARIABLE, format!("must be 1 to {MAX_TIMEOUT_SECONDS} seconds")));
        }
        Ok(Self { base_url, client_id, client_secret, timeout: Duration::from_secs(seconds) })
    }

    pub fn token_url(&self) -> String {
        format!("{}/v2/oauth/token", self.base_url)
    }

    pub fn eligibility_url(&self, location: &LocationId) -> String {
        format!("{}/v2/eligibility?location={}", self.base_url, location.as_str())
    }
}

/// Claiming.com.au's answer, whatever its status, unread.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The first answer was 401 and this one came with a new token.
    pub retried_with_new_token: bool,
}

/// Why there is no answer at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("no access token: {0}")]
    Token(#[from] TokenError),
    #[error("the eligibility call did not answer in time")]
    Timeout,
    #[error("the eligibility call failed: {0}")]
    Unreachable(String),
}

impl CheckError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, CheckError::Timeout | CheckError::Token(TokenError::Timeout))
    }
}

pub struct EligibilityClient {
    http: SharedHttp,
    tokens: TokenManager,
    settings: ClaimingSettings,
}

impl EligibilityClient {
    pub fn new(http: SharedHttp, clock: Arc<dyn Clock>, settings: ClaimingSettings) -> Self {
        let tokens = TokenManager::new(Arc::clone(&http), clock, &settings);
        Self { http, tokens, settings }
    }

    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// `POST /v2/eligibility?location=...` with `request`; a 401 is retried once with a new token.
    pub async fn check(&self, location: &LocationId, request: &EcfRequest) -> Result<Reply, CheckError> {
        let body = serde_json::to_vec(request).map_err(|e| CheckError::Unreachable(format!("cannot encode: {e}")))?;
        let token = self.tokens.token().await?;
        let first = self.send(location, &body, &token).await?;
        if first.status != 401 {
            return Ok(first);
        }
        let token = self.tokens.refresh_after_rejection(&token).await?;
        let mut second = self.send(location, &body, &token).await?;
        second.retried_with_new_token = true;
        Ok(second)
    }

    async fn send(&self, location: &LocationId, body: &[u8], token: &AccessToken) -> Result<Reply, CheckError> {
        let request = OutboundRequest::new(Method::Post, self.settings.eligibility_url(location))
            .header("authorization", token.bearer())
            .header("accept", "application/json")
            .json(body.to_vec())
            .timeout(self.settings.timeout);
        let response = self.http.send(request).await.map_err(|error| match error {
            HttpError::Timeout => CheckError::Timeout,
            HttpError::Connect(reason) | HttpError::Other(reason) => CheckError::Unreachable(reason),
            too_large @ HttpError::TooLarge(_) => CheckError::Unreachable(too_large.to_string()),
        })?;
        Ok(Reply {
            status: response.status,
            content_type: response.header("content-type").map(str::to_owned),
            body: response.body,
            retried_with_new_token: false,
        })
    }
}
