//! The outbound HTTP port for calls to upstreams (HICAPS, ACC, Claiming.com.au, iCare).
//! The reqwest adapter never follows redirects, puts connect and total timeouts on every call, and
//! reads at most `max_body` bytes of an answer: nothing an upstream sends can exhaust memory.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    /// Only to open a connection at init ([`crate::lambda::warm_up`]): no body, nothing done.
    Head,
}

#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Total time allowed for this call, connect included.
    pub timeout: Duration,
    /// Most bytes of the answer's body read; a longer body is [`HttpError::TooLarge`].
    pub max_body: usize,
}

impl OutboundRequest {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: DEFAULT_TIMEOUT,
            max_body: MAX_BODY_BYTES,
        }
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn json(self, body: Vec<u8>) -> Self {
        let mut request = self.header("content-type", "application/json");
        request.body = Some(body);
        request
    }
    pub fn form(self, body: String) -> Self {
        let mut request = self.header("content-type", "application/x-www-form-urlencoded");
        request.body = Some(body.into_bytes());
        request
    }
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutboundResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    #[error("timed out")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Other(String),
    /// The answer's body was longer than the request's `max_body`; the rest was not read.
    #[error("the answer's body is over {0} bytes")]
    TooLarge(usize),
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default cap on an answer's body: every partner answer we read is a few kilobytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Cap on an OAuth token answer: a token and its lifetime.
pub const MAX_TOKEN_BODY_BYTES: usize = 16 * 1024;

#[async_trait]
pub trait HttpClient: Send + Sync {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, HttpError>;
}

pub type SharedHttp = Arc<dyn HttpClient>;

/// reqwest over rustls. Build once at init: it holds the connection pool and TLS set-up.
#[derive(Clone)]
pub struct ReqwestClient {
    client: reqwest::Client,
}

impl ReqwestClient {
    pub fn new() -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::client_tls(crate::public_roots()))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(50))
            .build()
            .map_err(|e| HttpError::Other(e.to_string()))?;
        Ok(Self { client })
    }
}

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, HttpError> {
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Head => reqwest::Method::HEAD,
        };
        let mut builder = self.client.request(method, &request.url).timeout(request.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let classify = |error: reqwest::Error| {
            if error.is_timeout() {
                HttpError::Timeout
            } else if error.is_connect() {
                HttpError::Connect(error.to_string())
            } else {
                HttpError::Other(error.to_string())
            }
        };
        let mut response = builder.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect();
        let limit = request.max_body;
        if response.content_length().is_some_and(|length| length > limit as u64) {
            return Err(HttpError::TooLarge(limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(HttpError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(OutboundResponse { status, headers, body })
    }
}
