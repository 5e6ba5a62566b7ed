//! iCare sender: NSW initial injury notifications with the claim number back in real time, and
//! single documents for those claims.
//!
//! Routes (every one needs an authenticated caller; records are scoped to it):
//! - `PUT|GET /icare/policies/{policyId}`: a workplace policy and its iCare API integration.
//! - `POST /icare/notifications` (`Idempotency-Key` required), `GET /icare/notifications/{notificationId}`.
//! - `POST /icare/claims/{claimNumber}/documents` (`Idempotency-Key` optional),
//!   `GET /icare/claims/{claimNumber}/documents/{documentId}`.
//!
//! Delivery: a notification (or document) is recorded first, then sent to iCare while the caller
//! waits up to `ICARE_TIMEOUT_SECONDS`. An answer in time gives 201; a slow or unavailable iCare
//! gives 202 `queued` and a message `{"kind","id"}` on the retry queue, which `handle_retries`
//! consumes. Each attempt sets its message's visibility to the next step of the backoff
//! (`schedule`); once `ICARE_RETRY_HORIZON_SECONDS` (48 hours) have passed since it was queued,
//! the last failure marks the record `failed` and raises an alarm. An unreadable retry message
//! goes to the iCare dead-letter queue. Nothing is sent twice: iCare
//! receives our notification/document id as its `Idempotency-Key` (assumed to de-duplicate), and
//! a lease on the record keeps two senders from calling iCare for it at the same time.

mod documents;
mod notifications;
mod policies;
mod records;
mod retry;
pub mod schedule;

/// The partition-key prefixes this function reads or writes: exactly its role's
/// `dynamodb:LeadingKeys` in infra/template.yaml (tests/template_keys.rs holds them together).
pub const TABLE_KEY_PREFIXES: &[&str] = &[records::KEY_PREFIX];

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use http::{HeaderValue, StatusCode, header::LOCATION};
use lambda_http::{Request, RequestExt};
use records::{RetryKind, RetryMessage};
use secrecy::SecretString;
use shared::api_error::{ApiError, Problems};
use shared::config::{ConfigError, Vars};
use shared::http_client::SharedHttp;
use shared::icare::IcareClient;
use shared::queue::{MessageSender, MessageVisibility};
use shared::secrets::Rotating;
use shared::store::SharedTable;
use shared::time::Clock;
use shared::web::{self, HttpResponse};
use std::sync::Arc;
use std::time::Duration;

/// How long a request waits for iCare before answering 202 `queued` (API Gateway stops at 29 s).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 8;
/// How long one retry from the queue waits for iCare.
pub const DEFAULT_RETRY_TIMEOUT_SECONDS: u64 = 20;
/// Decoded document size limit. Lambda's synchronous payload limit (6 MB) binds before API
/// Gateway's 10 MB; base64 adds a third, so 4 MiB decoded is about 5.6 MB of request.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// The highest decoded size that still fits a 6 MB Lambda request once base64-encoded.
pub const MAX_DOCUMENT_BYTES_CEILING: usize = 4_500_000;
/// Retention of notifications, claims, documents and idempotency records.
pub const DEFAULT_RETENTION_DAYS: u32 = 365;
/// Notifications and policies are small; bodies over this are refused before parsing.
pub const MAX_SMALL_BODY_BYTES: usize = 64 * 1024;

pub struct Config {
    base_url: String,
    api_key: Rotating<SecretString>,
    pub timeout: Duration,
    pub retry_timeout: Duration,
    /// The first step of the retry backoff.
    pub retry_first: Duration,
    /// How long after it was first queued a record is still tried.
    pub retry_horizon: Duration,
    pub max_document_bytes: usize,
    pub retention_days: u32,
}

fn in_range<T: PartialOrd + std::fmt::Display>(name: &str, value: T, low: T, high: T) -> Result<T, ConfigError> {
    if value < low || value > high {
        Err(ConfigError::new(name, format!("must be between {low} and {high}")))
    } else {
        Ok(value)
    }
}

impl Config {
    pub async fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let base_url = vars.required("ICARE_BASE_URL")?.trim().trim_end_matches('/').to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(ConfigError::new("ICARE_BASE_URL", "must be an http(s) URL"));
        }
        let api_key = vars.required_rotating_secret("ICARE_API_KEY", shared::secrets::as_is).await?;
        let timeout =
            in_range("ICARE_TIMEOUT_SECONDS", vars.parse_or("ICARE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)?, 1, 25)?;
        let retry_timeout = in_range(
            "ICARE_RETRY_TIMEOUT_SECONDS",
            vars.parse_or("ICARE_RETRY_TIMEOUT_SECONDS", DEFAULT_RETRY_TIMEOUT_SECONDS)?,
            1,
            120,
        )?;
        let retry_first = in_range(
            "ICARE_RETRY_FIRST_SECONDS",
            vars.parse_or("ICARE_RETRY_FIRST_SECONDS", schedule::DEFAULT_FIRST_STEP.as_secs())?,
            1,
            3600,
        )?;
        // Within the retry queue's 4-day retention, less the last step.
        let retry_horizon = in_range(
            "ICARE_RETRY_HORIZON_SECONDS",
            vars.parse_or("ICARE_RETRY_HORIZON_SECONDS", schedule::DEFAULT_HORIZON.as_secs())?,
            0,
            3 * 86_400,
        )?;
        let max_document_bytes = in_range(
            "ICARE_MAX_DOCUMENT_BYTES",
            vars.parse_or("ICARE_MAX_DOCUMENT_BYTES", DEFAULT_MAX_DOCUMENT_BYTES)?,
            1024,
            MAX_DOCUMENT_BYTES_CEILING,
        )?;
        let retention_days =
            in_range("ICARE_RETENTION_DAYS", vars.parse_or("ICARE_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)?, 1, 3650)?;
        Ok(Self {
            base_url,
            api_key,
            timeout: Duration::from_secs(timeout),
            retry_timeout: Duration::from_secs(retry_timeout),
            retry_first: Duration::from_secs(retry_first),
            retry_horizon: Duration::from_secs(retry_horizon),
            max_document_bytes,
            retention_days,
        })
    }
}

pub struct App {
    config: Config,
    table: SharedTable,
    client: IcareClient,
    clock: Arc<dyn Clock>,
    queues: Queues,
}

/// The retry queue, which the sender both feeds and consumes, and its dead-letter queue.
pub struct Queues {
    pub retries: Arc<dyn RetryQueue>,
    pub dead_letters: Arc<dyn MessageSender>,
}

/// What the sender does with its retry queue: send, and set when a message comes back.
pub trait RetryQueue: MessageSender + MessageVisibility {}
impl<T: MessageSender + MessageVisibility> RetryQueue for T {}

/// Everything a route can refuse with, mapped to a response once.
#[derive(Debug)]
pub(crate) enum Rejection {
    Unauthorized,
    Invalid(ApiError),
    TooLarge(String),
    NotFound(String),
    MethodNotAllowed,
    Conflict(String),
    KeyReused,
    /// Nothing was lost, but the caller must send the same request again (same key).
    Unavailable(String),
}

impl Rejection {
    fn into_response(self) -> HttpResponse {
        let (status, error) = match self {
            Rejection::Unauthorized => (StatusCode::UNAUTHORIZED, ApiError::titled("Authentication is required.")),
            Rejection::Invalid(error) => (StatusCode::BAD_REQUEST, error),
            Rejection::TooLarge(title) => (StatusCode::PAYLOAD_TOO_LARGE, ApiError::titled(title)),
            Rejection::NotFound(title) => (StatusCode::NOT_FOUND, ApiError::titled(title)),
            Rejection::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, ApiError::titled("This method is not allowed on this resource."))
            }
            Rejection::Conflict(title) => (StatusCode::CONFLICT, ApiError::titled(title)),
            Rejection::KeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ApiError {
                    kind: Some("urn:claims-gateway:error:idempotency-key-reused".to_owned()),
                    title: "This Idempotency-Key was already used with a different request body. Use a new key for a \
                            different request."
                        .to_owned(),
                    invalid_params: vec![shared::InvalidParam::new(
                        "Idempotency-Key",
                        "was used with a different body",
                    )],
                },
            ),
            Rejection::Unavailable(title) => (StatusCode::SERVICE_UNAVAILABLE, ApiError::titled(title)),
        };
        web::api_error(status, &error)
    }

    fn store(error: shared::store::StoreError) -> Self {
        tracing::error!(%error, "store failed");
        Rejection::Unavailable(
            "The request could not be recorded; send the same request again (with the same Idempotency-Key)."
                .to_owned(),
        )
    }
}

pub(crate) fn invalid(problems: Problems) -> Rejection {
    Rejection::Invalid(ApiError::validation(problems.into_vec()))
}

/// A JSON response with a `Location` header.
pub(crate) fn located(status: StatusCode, body: &impl serde::Serialize, location: &str) -> HttpResponse {
    let mut response = web::json(status, body);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

pub(crate) fn located_error(status: StatusCode, error: &ApiError, location: &str) -> HttpResponse {
    located(status, error, location)
}

/// The `Idempotency-Key` header: `None` (and a problem when `required`) when absent, `None` with
/// a problem when malformed.
pub(crate) fn idempotency_key(request: &Request, problems: &mut Problems, required: bool) -> Option<String> {
    const NAME: &str = "Idempotency-Key";
    let Some(value) = request.headers().get(NAME) else {
        if required {
            problems.push(NAME, "is required: a unique value per request, reused only to retry that same request");
        }
        return None;
    };
    match value.to_str().map(str::trim) {
        Ok(key) if !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()) => {
            Some(key.to_owned())
        }
        _ => {
            problems.push(NAME, "must be 1 to 255 visible ASCII characters");
            None
        }
    }
}

/// The request body as JSON; a problem named `body` when it is not.
pub(crate) fn json_body(request: &Request, problems: &mut Problems) -> Option<serde_json::Value> {
    match serde_json::from_slice::<serde_json::Value>(web::body_bytes(request.body())) {
        Ok(value) => Some(value),
        Err(_) => {
            problems.push("body", "must be a JSON object");
            None
        }
    }
}

enum Route {
    Policy(String),
    Notifications,
    Notification(String),
    Documents(String),
    Document(String, String),
    Unknown,
}

/// The route from the path; a path parameter wins over the raw segment (it is decoded).
fn route(request: &Request) -> Route {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let start = segments.iter().position(|s| *s == "icare").unwrap_or(segments.len());
    let parameters = request.path_parameters();
    let param = |name: &str, raw: &str| parameters.first(name).map_or_else(|| raw.to_owned(), str::to_owned);
    match &segments[start..] {
        ["icare", "policies", id] => Route::Policy(param("policyId", id)),
        ["icare", "notifications"] => Route::Notifications,
        ["icare", "notifications", id] => Route::Notification(param("notificationId", id)),
        ["icare", "claims", claim, "documents"] => Route::Documents(param("claimNumber", claim)),
        ["icare", "claims", claim, "documents", id] => {
            Route::Document(param("claimNumber", claim), param("documentId", id))
        }
        _ => Route::Unknown,
    }
}

impl App {
    pub fn new(config: Config, table: SharedTable, http: SharedHttp, clock: Arc<dyn Clock>, queues: Queues) -> Self {
        let client = IcareClient::new(http, config.base_url.clone(), config.api_key.clone());
        Self { config, table, client, clock, queues }
    }

    pub async fn handle(&self, request: Request) -> HttpResponse {
        let Some(caller) = shared::caller::caller_id(&request) else {
            return Rejection::Unauthorized.into_response();
        };
        let method = request.method().clone();
        let result = match (route(&request), method) {
            (Route::Policy(id), http::Method::PUT) => policies::put(self, &caller, &id, &request).await,
            (Route::Policy(id), http::Method::GET) => policies::get(self, &caller, &id).await,
            (Route::Notifications, http::Method::POST) => notifications::post(self, &caller, &request).await,
            (Route::Notification(id), http::Method::GET) => notifications::get(self, &caller, &id).await,
            (Route::Documents(claim), http::Method::POST) => documents::post(self, &caller, &claim, &request).await,
            (Route::Document(claim, id), http::Method::GET) => documents::get(self, &caller, &claim, &id).await,
            (Route::Unknown, _) => Err(Rejection::NotFound("No such iCare resource.".to_owned())),
            _ => Err(Rejection::MethodNotAllowed),
        };
        result.unwrap_or_else(Rejection::into_response)
    }

    /// Consumes the retry queue (SQS event source mapping with `ReportBatchItemFailures`): a
    /// record still waiting for iCare is reported as failed, its message visible again at the
    /// next step of the backoff; one past the horizon is marked `failed` and reported as done.
    pub async fn handle_retries(&self, event: SqsEvent) -> SqsBatchResponse {
        let outcomes = futures::future::join_all(event.records.iter().map(|record| self.retry(record))).await;
        let mut response = SqsBatchResponse::default();
        for (record, again) in event.records.iter().zip(outcomes) {
            if again {
                response.add_failure(record.message_id.clone().unwrap_or_default());
            }
        }
        response
    }

    /// `true` when the record must come back.
    async fn retry(&self, record: &SqsMessage) -> bool {
        let body = record.body.as_deref().unwrap_or_default();
        let Ok(message) = serde_json::from_str::<RetryMessage>(body) else {
            shared::metrics::count("IcareRetryUnreadable", ("Function", "icare-sender"));
            return match self.queues.dead_letters.send(body.to_owned()).await {
                Ok(_) => {
                    tracing::error!(message_id = ?record.message_id, "unreadable iCare retry message sent to the dead-letter queue");
                    false
                }
                Err(error) => {
                    tracing::error!(message_id = ?record.message_id, %error, "unreadable iCare retry message kept: the dead-letter queue is unavailable");
                    true
                }
            };
        };
        let attribute = |name: &str| record.attributes.get(name).and_then(|value| value.parse::<i64>().ok());
        let attempt = attribute("ApproximateReceiveCount").and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
        let queued_at = attribute("SentTimestamp").unwrap_or_else(|| self.clock.now().timestamp_millis());
        let elapsed_ms = self.clock.now().timestamp_millis().saturating_sub(queued_at);
        let elapsed = Duration::from_millis(u64::try_from(elapsed_ms).unwrap_or(0));
        let next = schedule::next_delay(attempt, elapsed, self.config.retry_first, self.config.retry_horizon);
        let again = match message.kind {
            RetryKind::Notification => {
                retry::retry::<notifications::NotificationRecord>(self, &message.id, next.is_none()).await
            }
            RetryKind::Document => retry::retry::<documents::DocumentRecord>(self, &message.id, next.is_none()).await,
        };
        if let (true, Some(delay), Some(receipt)) = (again, next, record.receipt_handle.as_deref()) {
            shared::metrics::count("IcareRetryAgain", ("Kind", message.kind.as_str()));
            if let Err(error) = self.queues.retries.change_visibility(receipt, delay).await {
                tracing::warn!(%error, "could not set the next retry's time; the queue's visibility timeout applies");
            }
        }
        again
    }

    fn now_text(&self) -> String {
        self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    fn expires_at(&self) -> i64 {
        shared::time::now_seconds() + i64::from(self.config.retention_days) * 86_400
    }
}

impl shared::web::HttpHandler for App {
    fn call(&self, request: lambda_http::Request) -> shared::web::BoxFuture<'_, shared::web::HttpResponse> {
        Box::pin(self.handle(request))
    }
}

impl shared::lambda::SqsHandler for App {
    fn call_sqs(&self, event: SqsEvent) -> shared::web::BoxFuture<'_, SqsBatchResponse> {
        Box::pin(self.handle_retries(event))
    }
}
