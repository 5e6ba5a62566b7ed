//! Eligibility check: Claiming.com.au fund eligibility (ECF).
//!
//! `POST /eligibility?location={locationId}` with the body of Claiming.com.au v2, "Fund Eligibility (ECF)":
//!
//! 1. no authenticated caller -> 401; a body over [`MAX_BODY_BYTES`] -> 413; a location the
//!    caller is not granted in `ECF_LOCATION_GRANTS` -> 403 (audited), so no partner can look
//!    up fund membership for another's patients;
//! 2. the query parameter and the body are validated (`shared::claiming::validate_check`), "today"
//!    being the date in Sydney -> 400 with the API Error Payload listing every problem;
//! 3. the check goes to `POST {CLAIMING_BASE_URL}/v2/eligibility?location=...` with the cached
//!    bearer token (refreshed before expiry, and once on a 401);
//! 4. Claiming.com.au's 2xx and 4xx answers are returned with their status and body, except 401
//!    (after a new token) and 403, which are about our credentials -> 502; 5xx, an unreadable
//!    answer or no connection -> 502; no answer within `CLAIMING_TIMEOUT_SECONDS` -> 504.
//!
//! Every check that was sent is recorded (see [`audit`]) without names or dates of birth. Every
//! response carries `X-Eligibility-Check-Id`. Logs carry ids only.
//!
//! `App::handle` is the whole handler: a plain async function from an API Gateway HTTP API (v2)
//! request to a response, unit-testable without AWS. `main.rs` builds the `App` once at init.

pub mod audit;

/// The partition-key prefixes this function reads or writes: exactly its role's
/// `dynamodb:LeadingKeys` in infra/template.yaml (tests/template_keys.rs holds them together).
pub const TABLE_KEY_PREFIXES: &[&str] = &[audit::TRANSACTION_PREFIX, audit::CHECK_PREFIX];

use audit::{AuditRecord, Outcome};
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, RequestExt};
use serde_json::Value;
use shared::api_error::ApiError;
use shared::caller::Grants;
use shared::claiming::{
    CheckError, CheckSummary, ClaimingSettings, EcfRequest, EligibilityClient, LocationId, Reply, TokenError,
};
use shared::config::{ConfigError, Vars};
use shared::http_client::SharedHttp;
use shared::store::{Condition, SharedTable};
use shared::time::{Clock, NEW_SOUTH_WALES, today_in};
use shared::web::{self, HttpResponse};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// The response header naming the check, for support and for the audit record.
pub const CHECK_ID_HEADER: &str = "x-eligibility-check-id";
/// 50 items are a few kilobytes; anything near this is not an ECF request.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
pub const AUDIT_TTL_VARIABLE: &str = "ELIGIBILITY_AUDIT_TTL_DAYS";
pub const DEFAULT_AUDIT_TTL_DAYS: u32 = 90;
const METRIC_DIMENSION: (&str, &str) = ("Function", "eligibility-check");
/// Longest upstream error text quoted back to the caller.
const MAX_QUOTED_CHARS: usize = 300;

pub struct Config {
    pub claiming: ClaimingSettings,
    /// Days an audit record is kept.
    pub audit_ttl_days: u32,
    /// Which locations each caller may check (`ECF_LOCATION_GRANTS`: `caller=25|26`, `*` for
    /// all; empty refuses everyone).
    pub grants: Grants<String>,
}

impl Config {
    pub async fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let claiming = ClaimingSettings::from_vars(vars).await?;
        let audit_ttl_days: u32 = vars.parse_or(AUDIT_TTL_VARIABLE, DEFAULT_AUDIT_TTL_DAYS)?;
        if !(1..=3650).contains(&audit_ttl_days) {
            return Err(ConfigError::new(AUDIT_TTL_VARIABLE, "must be 1 to 3650 days"));
        }
        let grants = Grants::parse(vars.get("ECF_LOCATION_GRANTS").unwrap_or_default(), |location| {
            LocationId::parse(location)
                .map(|id| id.as_str().to_owned())
                .ok_or_else(|| "is not a location id".to_owned())
        })
        .map_err(|reason| ConfigError::new("ECF_LOCATION_GRANTS", reason))?;
        if grants.is_empty() {
            tracing::warn!("ECF_LOCATION_GRANTS is empty: every eligibility check will be refused with 403");
        }
        Ok(Self { claiming, audit_ttl_days, grants })
    }
}

pub struct App {
    client: EligibilityClient,
    grants: Grants<String>,
    table: SharedTable,
    clock: Arc<dyn Clock>,
    audit_ttl_days: u32,
}

/// A check that passed validation, on its way to Claiming.com.au.
struct Check<'a> {
    id: Uuid,
    caller: &'a str,
    location: LocationId,
    request: EcfRequest,
}

impl App {
    pub fn new(config: Config, table: SharedTable, http: SharedHttp, clock: Arc<dyn Clock>) -> Self {
        let client = EligibilityClient::new(http, Arc::clone(&clock), config.claiming);
        Self { client, grants: config.grants, table, clock, audit_ttl_days: config.audit_ttl_days }
    }

    /// The client, for tests and diagnostics (its token manager).
    pub fn client(&self) -> &EligibilityClient {
        &self.client
    }

    pub async fn handle(&self, request: lambda_http::Request) -> HttpResponse {
        let check_id = Uuid::new_v4();
        let mut response = self.answer(&request, check_id).await;
        if let Ok(value) = HeaderValue::from_str(&check_id.to_string()) {
            response.headers_mut().insert(CHECK_ID_HEADER, value);
        }
        response
    }

    async fn answer(&self, request: &lambda_http::Request, check_id: Uuid) -> HttpResponse {
        let Some(caller) = shared::caller::caller_id(request) else {
            shared::metrics::count("EligibilityCheck", ("Outcome", "unauthenticated"));
            return Rejection::Unauthenticated.into_response();
        };
        let body = web::body_bytes(request.body());
        if body.len() > MAX_BODY_BYTES {
            return Rejection::TooLarge.into_response();
        }
        let query = request.query_string_parameters_ref();
        let location = query.and_then(|q| q.first("location"));
        if let Some(location) = location.and_then(LocationId::parse)
            && !self.grants.allows(&caller, &location.as_str().to_owned())
        {
            return self.refuse_location(check_id, &caller, &location).await;
        }
        let today = today_in(NEW_SOUTH_WALES, self.clock.now());
        let (location, ecf) = match shared::claiming::validate_check(location, body, today) {
            Ok(valid) => valid,
            Err(error) => {
                tracing::info!(%check_id, caller, problems = error.invalid_params.len(), "eligibility check refused: invalid");
                shared::metrics::count("EligibilityCheck", ("Outcome", "invalid"));
                return Rejection::Invalid(error).into_response();
            }
        };
        let check = Check { id: check_id, caller: &caller, location, request: ecf };
        self.send(check).await
    }

    async fn send(&self, check: Check<'_>) -> HttpResponse {
        let started = Instant::now();
        let result = self.client.check(&check.location, &check.request).await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut record = AuditRecord {
            check_id: check.id,
            checked_at: self.clock.now(),
            caller: check.caller.to_owned(),
            location: check.location.as_str().to_owned(),
            provider: check.request.location.provider.as_str().to_owned(),
            fund_eclipse_id: check.request.fund_eclipse_id().to_owned(),
            item_count: check.request.items.len(),
            outcome: Outcome::Answered,
            http_status: 0,
            upstream_status: None,
            retried_with_new_token: false,
            latency_ms,
            summary: CheckSummary::default(),
        };
        let response = match result {
            Ok(reply) => {
                record.upstream_status = Some(reply.status);
                record.retried_with_new_token = reply.retried_with_new_token;
                self.pass_on(reply, &mut record)
            }
            Err(error) => {
                record.outcome = match &error {
                    e if e.is_timeout() => Outcome::Timeout,
                    CheckError::Token(_) => Outcome::TokenError,
                    _ => Outcome::Unreachable,
                };
                tracing::warn!(check_id = %check.id, %error, "eligibility check: no answer from Claiming.com.au");
                Rejection::from(&error).into_response()
            }
        };
        record.http_status = response.status().as_u16();
        tracing::info!(
            check_id = %record.check_id,
            caller = %record.caller,
            location = %record.location,
            outcome = record.outcome.as_str(),
            http_status = record.http_status,
            upstream_status = record.upstream_status,
            transaction_id = record.summary.transaction_id.as_deref().unwrap_or("-"),
            eligibility_id = record.summary.eligibility_id.as_deref().unwrap_or("-"),
            status = record.summary.status.as_deref().unwrap_or("-"),
            latency_ms,
            "eligibility check"
        );
        shared::metrics::count("EligibilityCheck", ("Outcome", record.outcome.as_str()));
        shared::metrics::millis("ClaimingLatency", latency_ms, METRIC_DIMENSION);
        self.write_audit(&record).await;
        response
    }

    /// A location the caller is not granted: 403, audited with ids only.
    async fn refuse_location(&self, check_id: Uuid, caller: &str, location: &LocationId) -> HttpResponse {
        let record = AuditRecord {
            check_id,
            checked_at: self.clock.now(),
            caller: caller.to_owned(),
            location: location.as_str().to_owned(),
            provider: String::new(),
            fund_eclipse_id: String::new(),
            item_count: 0,
            outcome: Outcome::Forbidden,
            http_status: StatusCode::FORBIDDEN.as_u16(),
            upstream_status: None,
            retried_with_new_token: false,
            latency_ms: 0,
            summary: CheckSummary::default(),
        };
        tracing::warn!(%check_id, caller, location = %location, "eligibility check refused: location not granted");
        shared::metrics::count("EligibilityCheck", ("Outcome", Outcome::Forbidden.as_str()));
        self.write_audit(&record).await;
        Rejection::LocationNotGranted.into_response()
    }

    /// Claiming.com.au's answer, as the caller gets it.
    fn pass_on(&self, reply: Reply, record: &mut AuditRecord) -> HttpResponse {
        let status = reply.status;
        let json: Option<Value> = serde_json::from_slice(&reply.body).ok();
        if let Some(answer) = &json {
            record.summary = CheckSummary::from_json(answer);
        }
        match status {
            200..=299 => match (json, String::from_utf8(reply.body)) {
                (Some(_), Ok(text)) => {
                    record.outcome = Outcome::Answered;
                    raw_json(status, text)
                }
                _ => {
                    record.outcome = Outcome::UpstreamError;
                    Rejection::BadGateway(format!(
                        "Claiming.com.au answered HTTP {status} with a body that is not JSON."
                    ))
                    .into_response()
                }
            },
            401 | 403 => {
                record.outcome = Outcome::CredentialsRefused;
                tracing::error!(check_id = %record.check_id, status, "Claiming.com.au refused the gateway's credentials");
                Rejection::BadGateway(format!(
                    "Claiming.com.au refused the gateway's credentials for this location (HTTP {status}); operators have been alerted."
                ))
                .into_response()
            }
            400..=499 => {
                record.outcome = Outcome::Rejected;
                match (json, String::from_utf8(reply.body)) {
                    (Some(_), Ok(text)) => raw_json(status, text),
                    (_, text) => {
                        let quoted: String = text.unwrap_or_default().trim().chars().take(MAX_QUOTED_CHARS).collect();
                        let title = if quoted.is_empty() {
                            format!("Claiming.com.au rejected the request (HTTP {status}).")
                        } else {
                            format!("Claiming.com.au rejected the request (HTTP {status}): {quoted}")
                        };
                        Rejection::UpstreamRejected { status, title }.into_response()
                    }
                }
            }
            500..=599 => {
                record.outcome = Outcome::UpstreamError;
                Rejection::BadGateway(format!(
                    "Claiming.com.au failed (HTTP {status}); the eligibility check was not completed. Please retry."
                ))
                .into_response()
            }
            _ => {
                record.outcome = Outcome::UpstreamError;
                Rejection::BadGateway(format!("Claiming.com.au answered with an unexpected HTTP status {status}."))
                    .into_response()
            }
        }
    }

    async fn write_audit(&self, record: &AuditRecord) {
        let written = match record.to_item(self.audit_ttl_days) {
            Ok(item) => self.table.put(&item, Condition::Always).await,
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            // The fund's answer still goes back: the caller needs it more than we need the record.
            tracing::error!(check_id = %record.check_id, %error, "eligibility audit record not written");
            shared::metrics::count("AuditWriteFailed", METRIC_DIMENSION);
        }
    }
}

fn raw_json(status: u16, text: String) -> HttpResponse {
    let mut response = lambda_http::Response::new(Body::Text(text));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Every answer this function makes itself, mapped once to HTTP. Claiming.com.au's own JSON
/// answers pass through unchanged and are not rejections.
#[derive(Debug)]
pub enum Rejection {
    Unauthenticated,
    TooLarge,
    Invalid(ApiError),
    /// A location the caller is not granted (`ECF_LOCATION_GRANTS`).
    LocationNotGranted,
    /// Claiming.com.au refused the request with a 4xx whose body is not JSON: its status, and a
    /// title quoting the start of its text.
    UpstreamRejected {
        status: u16,
        title: String,
    },
    /// No usable answer from Claiming.com.au, for the reason given.
    BadGateway(String),
    /// Claiming.com.au did not answer within the call's timeout.
    Timeout,
}

impl Rejection {
    pub fn into_response(self) -> HttpResponse {
        match self {
            Rejection::Unauthenticated => {
                web::api_error(StatusCode::UNAUTHORIZED, &ApiError::titled("Authentication is required."))
            }
            Rejection::TooLarge => web::api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &ApiError::titled(format!("The body is larger than {MAX_BODY_BYTES} bytes.")),
            ),
            Rejection::Invalid(error) => web::api_error(StatusCode::BAD_REQUEST, &error),
            Rejection::LocationNotGranted => web::api_error(
                StatusCode::FORBIDDEN,
                &ApiError::titled("This caller may not check eligibility at this location."),
            ),
            Rejection::UpstreamRejected { status, title } => web::api_error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                &ApiError::titled(title),
            ),
            Rejection::BadGateway(title) => web::api_error(StatusCode::BAD_GATEWAY, &ApiError::titled(title)),
            Rejection::Timeout => web::api_error(
                StatusCode::GATEWAY_TIMEOUT,
                &ApiError::titled(
                    "Claiming.com.au did not answer in time; the eligibility check was not completed. Please retry.",
                ),
            ),
        }
    }
}

impl From<&CheckError> for Rejection {
    fn from(error: &CheckError) -> Self {
        if error.is_timeout() {
            return Rejection::Timeout;
        }
        Rejection::BadGateway(match error {
            CheckError::Token(TokenError::Unreachable(_)) => {
                "Claiming.com.au's token endpoint could not be reached; the eligibility check was not sent. Please retry."
                    .to_owned()
            }
            CheckError::Token(token_error) => {
                format!("Could not get a Claiming.com.au access token: {token_error}; the eligibility check was not sent.")
            }
            _ => "Claiming.com.au could not be reached; the eligibility check was not completed. Please retry.".to_owned(),
        })
    }
}

impl shared::web::HttpHandler for App {
    fn call(&self, request: lambda_http::Request) -> shared::web::BoxFuture<'_, shared::web::HttpResponse> {
        Box::pin(self.handle(request))
    }
}
