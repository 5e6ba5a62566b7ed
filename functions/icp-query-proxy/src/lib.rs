//! ICP query proxy: NZ ACC's `GET claims/icp/{claimNumber}`, validated to the letter of ACC ICP Query API v1.1.
//!
//! `GET /claims/icp/{claimNumber}?dateOfBirth=YYYY-MM-DD&vendorId=...&providerId=...`
//!
//! 1. no authenticated caller -> 401 `{"code": 401, "message": ...}`;
//! 2. the four parameters are validated as its §2.2–2.5 say (`shared::acc`), "today"
//!    being the date in Pacific/Auckland -> 400 `{"code": 400, "message", "errors": [...]}`;
//! 3. a valid vendor ID not granted to the caller (`ICP_VENDOR_GRANTS`) -> 403; a claim for which
//!    this caller's dates of birth did not match `ICP_DOB_MISMATCH_LIMIT` times within a day ->
//!    429, without calling ACC, so the proxy cannot be used to guess a date of birth;
//! 4. the query goes to ACC with our API key and a fresh `ACC-CorrelationId`; ACC's 2xx and 4xx
//!    answers pass through unchanged (but 401/403, which are about our credentials, -> 502);
//!    ACC 5xx or no connection -> 502; no answer within `ACC_TIMEOUT_SECONDS` -> 504.
//!
//! Every error we produce is in ACC's `{code, message}` form. Every response carries the
//! `ACC-CorrelationId` header. Every query is audited (see [`audit`]); claim numbers and dates of
//! birth are never logged, and dates of birth never stored.
//!
//! `App::handle` is the whole handler: a plain async function from an API Gateway HTTP API (v2)
//! request to a response, unit-testable without AWS. `main.rs` builds the `App` once at init.

pub mod audit;
pub mod config;

/// The partition-key prefixes this function reads or writes: exactly its role's
/// `dynamodb:LeadingKeys` in infra/template.yaml (tests/template_keys.rs holds them together).
pub const TABLE_KEY_PREFIXES: &[&str] = &[audit::PK_PREFIX, audit::DOB_COUNTER_PREFIX];

pub use config::{Config, VendorGrants};

use audit::AuditRecord;
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, RequestExt};
use shared::acc::client::{self, AccClient, CORRELATION_HEADER, Upstream};
use shared::acc::{AccError, IcpQuery, IcpRejection, ProviderId, RawIcpQuery, VendorId};
use shared::http_client::SharedHttp;
use shared::store::{Condition, Item, Key, SharedTable, StoreError};
use shared::time::{Clock, NEW_ZEALAND, today_in};
use shared::web::{self, HttpResponse};
use std::sync::Arc;
use uuid::Uuid;

/// The metric namespace dimension of this function.
const METRIC_DIMENSION: (&str, &str) = ("Function", "icp-query-proxy");

pub struct App {
    acc: AccClient,
    grants: VendorGrants,
    audit_ttl_days: u32,
    audit_hmac_key: secrecy::SecretString,
    dob_mismatch_limit: u32,
    table: SharedTable,
    clock: Arc<dyn Clock>,
}

impl App {
    pub fn new(config: Config, table: SharedTable, http: SharedHttp, clock: Arc<dyn Clock>) -> Self {
        let Config { acc, grants, audit_ttl_days, audit_hmac_key, dob_mismatch_limit } = config;
        Self {
            acc: AccClient::new(http, acc),
            grants,
            audit_ttl_days,
            audit_hmac_key,
            dob_mismatch_limit,
            table,
            clock,
        }
    }

    pub async fn handle(&self, request: lambda_http::Request) -> HttpResponse {
        let correlation_id = Uuid::new_v4();
        let mut record = AuditRecord::new(self.clock.now(), correlation_id);
        let mut response = self.answer(&request, &mut record).await;
        record.outcome = response.status().as_u16();
        if let Ok(value) = HeaderValue::from_str(&correlation_id.to_string()) {
            response.headers_mut().insert(CORRELATION_HEADER, value);
        }
        tracing::info!(
            %correlation_id,
            caller = record.caller.as_deref().unwrap_or("-"),
            vendor_id = record.vendor_id.as_deref().unwrap_or("-"),
            status = record.outcome,
            result = record.result,
            upstream_status = record.upstream_status,
            upstream_latency_ms = record.upstream_latency_ms,
            "icp query"
        );
        shared::metrics::count("IcpQuery", ("Result", record.result));
        if let Some(millis) = record.upstream_latency_ms {
            shared::metrics::millis("IcpUpstreamLatency", millis, METRIC_DIMENSION);
        }
        self.write_audit(&record).await;
        response
    }

    async fn answer(&self, request: &lambda_http::Request, record: &mut AuditRecord) -> HttpResponse {
        if request.method() != http::Method::GET {
            record.result = "method_not_allowed";
            let mut response = acc_error(&AccError::new(405, "Only GET is allowed on this route."));
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        let Some(caller) = shared::caller::caller_id(request) else {
            record.result = "unauthenticated";
            return acc_error(&AccError::new(401, "Authentication is required: call with a valid access token."));
        };
        record.caller = Some(caller.clone());

        let path = request.path_parameters();
        let query = request.query_string_parameters();
        // API Gateway's route names the parameter `{claimNumber}`; the spec writes `{claimnumber}`.
        let claim_number = path.first("claimNumber").or_else(|| path.first("claimnumber"));
        // A parameter given twice is ambiguous: its values are joined with commas, as API Gateway
        // does in `queryStringParameters`, which no format allows.
        let joined = |name: &str| query.all(name).map(|values| values.join(","));
        let (date_of_birth, vendor_id, provider_id) = (joined("dateOfBirth"), joined("vendorId"), joined("providerId"));
        let raw = RawIcpQuery {
            claim_number,
            date_of_birth: date_of_birth.as_deref(),
            vendor_id: vendor_id.as_deref(),
            provider_id: provider_id.as_deref(),
        };
        let key = &self.audit_hmac_key;
        record.claim_number_hmac =
            claim_number.filter(|c| !c.trim().is_empty()).map(|c| audit::hash_claim_number(key, c));
        record.vendor_id = raw.vendor_id.and_then(|v| VendorId::parse(v).ok()).map(|v| v.as_str().to_owned());
        record.provider_id = raw.provider_id.and_then(|p| ProviderId::parse(p).ok()).map(|p| p.as_str().to_owned());

        let today = today_in(NEW_ZEALAND, record.at);
        let query = match IcpQuery::parse(raw, today) {
            Ok(query) => query,
            Err(errors) => {
                record.result = "invalid";
                return acc_error(&AccError::invalid_parameters(errors));
            }
        };
        if !self.grants.allows(&caller, &query.vendor_id) {
            record.result = "forbidden";
            return acc_error(&AccError::new(
                403,
                "This caller is not authorised to query ACC with this vendor ID; ask the gateway operator to grant it.",
            ));
        }
        let claim_hmac = audit::hash_claim_number(key, query.claim_number.as_str());
        let counter = audit::dob_counter_key(&caller, &claim_hmac);
        if self.dob_mismatches(&counter).await >= self.dob_mismatch_limit {
            record.result = "dob_guess_limited";
            shared::metrics::count("IcpDobGuessLimited", METRIC_DIMENSION);
            return acc_error(&AccError::new(
                429,
                "Too many queries for this claim did not match the date of birth; try again in a day.",
            ));
        }
        let response = self.forward(&query, record).await;
        if response.status() == StatusCode::BAD_REQUEST && is_dob_mismatch(&response) {
            self.count_dob_mismatch(&counter).await;
        }
        response
    }

    /// Date-of-birth mismatches counted under `counter` in its day (0 when unreadable: the
    /// counter limits guessing, it must not stop honest queries when the table hiccups).
    async fn dob_mismatches(&self, counter: &Key) -> u32 {
        match self.table.get(counter).await {
            Ok(item) => {
                item.and_then(|item| item.attrs.get("count")?.as_u64()).and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the date-of-birth mismatch counter");
                0
            }
        }
    }

    /// Adds one mismatch. The counter lives a day from its first mismatch (the table's TTL).
    async fn count_dob_mismatch(&self, counter: &Key) {
        for _ in 0..3 {
            let current = match self.table.get(counter).await {
                Ok(current) => current,
                Err(error) => {
                    tracing::warn!(%error, "could not read the date-of-birth mismatch counter");
                    return;
                }
            };
            let count = current.as_ref().and_then(|item| item.attrs.get("count")?.as_u64()).unwrap_or(0);
            // The table expires items by its own clock, so the day is counted on it too.
            let expires_at = current
                .as_ref()
                .and_then(|item| item.expires_at)
                .unwrap_or_else(|| shared::time::now_seconds() + 86_400);
            let mut attrs = serde_json::Map::new();
            attrs.insert("count".into(), serde_json::json!(count.saturating_add(1)));
            let mut item = Item::new(counter.clone(), attrs).expiring_at(expires_at);
            let condition = match &current {
                Some(current) => {
                    item.version = current.version;
                    Condition::Version(current.version)
                }
                None => Condition::Absent,
            };
            match self.table.put(&item, condition).await {
                Ok(_) => return,
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => {
                    tracing::warn!(%error, "could not count a date-of-birth mismatch");
                    return;
                }
            }
        }
    }

    async fn forward(&self, query: &IcpQuery, record: &mut AuditRecord) -> HttpResponse {
        let Some((outcome, latency)) = self.acc.query(query, record.correlation_id).await else {
            // Config::from_vars refuses a base URL that cannot take path segments.
            record.result = "upstream_failed";
            return acc_error(&AccError::new(502, "The query to ACC could not be built; please try again later."));
        };
        record.upstream_latency_ms = Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
        record.upstream_status = outcome.as_ref().ok().map(|r| r.status);
        if let Err(error) = &outcome {
            // The error's text can include the URL, which carries the claim number and the date
            // of birth: log only its kind.
            let kind = match error {
                shared::http_client::HttpError::Timeout => "timeout",
                shared::http_client::HttpError::Connect(_) => "connect",
                shared::http_client::HttpError::Other(_) => "other",
                shared::http_client::HttpError::TooLarge(_) => "tooLarge",
            };
            tracing::warn!(correlation_id = %record.correlation_id, kind, "ACC call failed");
        }
        match client::classify(outcome, self.acc.timeout()) {
            Upstream::PassThrough(response) => {
                record.result = if response.status < 300 { "answered" } else { "rejected" };
                if response.status == 200
                    && let Err(mismatch) = client::check_shape(&response.body)
                {
                    tracing::warn!(
                        correlation_id = %record.correlation_id,
                        field = %mismatch.path,
                        problem = %mismatch.problem,
                        "ACC's 200 answer does not match Appendix A/B; passed through unchanged"
                    );
                    shared::metrics::count("IcpShapeMismatch", METRIC_DIMENSION);
                }
                pass_through(response)
            }
            Upstream::Failed { error, result } => {
                record.result = result;
                if let Some(upstream_status) = record.upstream_status {
                    tracing::error!(
                        correlation_id = %record.correlation_id,
                        upstream_status,
                        status = error.code,
                        "ACC's answer not passed through"
                    );
                }
                acc_error(&error)
            }
        }
    }

    async fn write_audit(&self, record: &AuditRecord) {
        let written = match record.to_item(self.audit_ttl_days) {
            Ok(item) => self.table.put(&item, Condition::Absent).await,
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            shared::metrics::count("IcpAuditWriteFailed", METRIC_DIMENSION);
            tracing::error!(correlation_id = %record.correlation_id, %error, "could not write the ICP audit record");
        }
    }
}

/// Whether ACC's 400 is ACC ICP Query API v1.1 §3's "The Claim and specified Patient DOB do not match."
fn is_dob_mismatch(response: &HttpResponse) -> bool {
    let Body::Text(text) = response.body() else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(text)
        .is_ok_and(|body| body["message"].as_str() == Some(IcpRejection::DateOfBirthMismatch.message()))
}

/// Our own error answers, in ACC's `{code, message[, errors]}` form, with `code` as the status.
fn acc_error(error: &AccError) -> HttpResponse {
    let status = StatusCode::from_u16(error.code).unwrap_or(StatusCode::BAD_GATEWAY);
    web::json(status, error)
}

/// ACC's answer with its status and body unchanged (and its content type, JSON if it gave none).
fn pass_through(response: shared::http_client::OutboundResponse) -> HttpResponse {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response
        .header("content-type")
        .and_then(|value| HeaderValue::from_str(value).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/json"));
    let body = match String::from_utf8(response.body) {
        Ok(text) if text.is_empty() => Body::Empty,
        Ok(text) => Body::Text(text),
        Err(error) => Body::Binary(error.into_bytes()),
    };
    let mut reply = lambda_http::Response::new(body);
    *reply.status_mut() = status;
    reply.headers_mut().insert(header::CONTENT_TYPE, content_type);
    reply
}

impl shared::web::HttpHandler for App {
    fn call(&self, request: lambda_http::Request) -> shared::web::BoxFuture<'_, shared::web::HttpResponse> {
        Box::pin(self.handle(request))
    }
}
