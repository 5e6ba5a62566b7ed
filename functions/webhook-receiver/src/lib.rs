//! Webhook receiver: `POST /hicaps/webhooks` for every HICAPS Program API webhook, and
//! `POST /invoices/{invoiceId}/status` for the program's own later decisions.
//!
//! The acknowledgement path is: authenticate (constant time), check size and envelope, one
//! durable hand-off to the queue, 202. Nothing else: no table read, no adjudication, no outbound
//! call, so HICAPS gets its answer in milliseconds and retries only when the hand-off failed.

mod decision;

/// The partition-key prefixes this function reads or writes: exactly its role's
/// `dynamodb:LeadingKeys` in infra/template.yaml (tests/template_keys.rs holds them together).
pub const TABLE_KEY_PREFIXES: &[&str] =
    &[shared::handoff::KEY_PREFIX, shared::program::records::INVOICE_PREFIX, decision::KEY_PREFIX];

use http::StatusCode;
use lambda_http::{Request, RequestExt};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::value::RawValue;
use shared::api_error::{ApiError, Problems};
use shared::config::{ConfigError, Vars};
use shared::handoff::Handoff;
use shared::metrics::Metric;
use shared::secrets::Rotating;
use shared::store::SharedTable;
use shared::web::{self, HttpResponse};
use std::time::Instant;
use subtle::ConstantTimeEq;

/// HICAPS webhooks are small; a body over this is refused before it is parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest webhook `id` kept as a key (HICAPS sends UUIDs).
const MAX_ID_CHARS: usize = 128;
/// Longest webhook `type` (the HICAPS Program API's longest, `claiming.invoice.cancellationRequested`, is 38 characters).
pub const MAX_TYPE_CHARS: usize = 128;
/// Deepest nesting of `data` (the spec's deepest is 5 levels under `data`).
pub const MAX_DATA_DEPTH: usize = 64;
/// Most claims on one invoice or predetermination. HICAPS claims are an invoice's line items;
/// a few dozen is a long invoice, and 500 keeps adjudication, its five reads of 100 keys, and
/// the status post each well inside one invocation.
pub const MAX_CLAIMS: usize = 500;
pub const DEFAULT_AUTH_HEADER: &str = "x-hicaps-webhook-key";

/// How HICAPS authenticates its webhooks (HICAPS Program API, "Webhook Authentication": two modes).
pub enum WebhookAuth {
    /// A custom header whose value must be one of these (several, so a secret can be rotated
    /// without downtime), compared in constant time. From Secrets Manager they are re-read
    /// after `SECRETS_TTL_SECONDS` in the background, never on the acknowledgement path.
    Header { name: http::HeaderName, values: Rotating<Vec<SecretString>> },
    /// OAuth 2.0: API Gateway's JWT authorizer has verified the token, and the caller must be
    /// one of these: the caller ids that are HICAPS (`WEBHOOK_JWT_CALLERS`). The authorizer admits
    /// every partner of the program, so a verified token alone proves nothing about HICAPS.
    Jwt { callers: Vec<String> },
}

pub struct Config {
    auth: WebhookAuth,
    /// The callers that may post later decisions (`DECISION_CALLERS`); empty refuses everyone.
    decision_callers: Vec<String>,
}

impl Config {
    pub async fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let decision_callers = vars.list("DECISION_CALLERS");
        match vars.get("WEBHOOK_AUTH_MODE").unwrap_or("header") {
            "header" => {}
            "jwt" => {
                let callers = vars.list("WEBHOOK_JWT_CALLERS");
                if callers.is_empty() {
                    return Err(ConfigError::new(
                        "WEBHOOK_JWT_CALLERS",
                        "is required in jwt mode: the caller ids (token client ids) that are HICAPS",
                    ));
                }
                return Ok(Self { auth: WebhookAuth::Jwt { callers }, decision_callers });
            }
            _ => return Err(ConfigError::new("WEBHOOK_AUTH_MODE", "must be `header` or `jwt`")),
        }
        let header = vars.get("WEBHOOK_AUTH_HEADER").unwrap_or(DEFAULT_AUTH_HEADER);
        let auth_header = http::HeaderName::try_from(header)
            .map_err(|_| ConfigError::new("WEBHOOK_AUTH_HEADER", "is not a valid HTTP header name"))?;
        let auth_values = vars.required_rotating_secret("WEBHOOK_AUTH_VALUE", auth_values).await?;
        Ok(Self { auth: WebhookAuth::Header { name: auth_header, values: auth_values }, decision_callers })
    }
}

pub struct Receiver {
    config: Config,
    handoff: Handoff,
    /// Reads invoices for decisions and keeps decisions' idempotency keys.
    table: SharedTable,
}

/// The envelope fields the receiver checks; `data` and `_links` stay unparsed.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// What the receiver refuses, mapped once to a response.
#[derive(Debug)]
pub enum Rejection {
    Unauthorized,
    /// An authenticated caller this route does not admit.
    Forbidden(String),
    TooLarge,
    Invalid(ApiError),
    NotFound(String),
    /// The same `Idempotency-Key` with another request.
    Unprocessable(String),
    /// The first request with this `Idempotency-Key` is still being processed.
    Conflict(String),
    HandoffFailed,
    /// The table could not be read or written for a decision: nothing was queued.
    StoreUnavailable,
}

impl Rejection {
    pub fn into_response(self) -> HttpResponse {
        match self {
            Rejection::Unauthorized => web::api_error(
                StatusCode::UNAUTHORIZED,
                &ApiError::titled("Missing or invalid webhook authentication header."),
            ),
            Rejection::TooLarge => web::api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &ApiError::titled(format!("The body is larger than {MAX_BODY_BYTES} bytes.")),
            ),
            Rejection::Forbidden(title) => web::api_error(StatusCode::FORBIDDEN, &ApiError::titled(title)),
            Rejection::Invalid(error) => web::api_error(StatusCode::BAD_REQUEST, &error),
            Rejection::NotFound(title) => web::api_error(StatusCode::NOT_FOUND, &ApiError::titled(title)),
            Rejection::Unprocessable(title) => {
                web::api_error(StatusCode::UNPROCESSABLE_ENTITY, &ApiError::titled(title))
            }
            Rejection::Conflict(title) => web::api_error(StatusCode::CONFLICT, &ApiError::titled(title)),
            Rejection::StoreUnavailable => web::api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &ApiError::titled("The decision could not be checked against the invoice; please retry."),
            ),
            // 503 tells HICAPS to retry: nothing was accepted.
            Rejection::HandoffFailed => web::api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &ApiError::titled("The webhook could not be queued; please retry."),
            ),
        }
    }
}

impl Receiver {
    pub fn new(config: Config, handoff: Handoff, table: SharedTable) -> Self {
        Self { config, handoff, table }
    }

    /// Whether `caller` may post later decisions.
    pub(crate) fn may_decide(&self, caller: &str) -> bool {
        self.config.decision_callers.iter().any(|allowed| allowed == caller)
    }

    pub async fn handle(&self, request: Request) -> HttpResponse {
        let result = if request.path_parameters_ref().and_then(|p| p.first("invoiceId")).is_some() {
            decision::handle(self, &request).await
        } else {
            self.receive_webhook(&request).await
        };
        result.unwrap_or_else(Rejection::into_response)
    }

    async fn receive_webhook(&self, request: &Request) -> Result<HttpResponse, Rejection> {
        let started = Instant::now();
        self.authenticate(request)?;
        if web::body_bytes(request.body()).len() > MAX_BODY_BYTES {
            return Err(Rejection::TooLarge);
        }
        let body = web::body_text(request.body()).map_err(|_| invalid("body", "The body must be UTF-8 JSON."))?;
        let (id, kind) = check_envelope(body)?;
        let known = shared::hicaps::WebhookType::parse(&kind).is_some();
        let message = shared::program::work::webhook_message(body, shared::time::now_millis());
        if let Err(error) = self.handoff.send(message).await {
            tracing::error!(webhook_id = %id, %error, "hand-off failed; answering 503 so HICAPS retries");
            shared::metrics::count("HandoffFailed", ("Route", "hicaps-webhook"));
            return Err(Rejection::HandoffFailed);
        }
        // A type we do not know is input, and could be anything: it is counted as `unhandled`
        // and kept for operators by the poster, never logged or used as a dimension.
        if known {
            tracing::info!(webhook_id = %id, webhook_type = %kind, "webhook accepted");
        } else {
            tracing::warn!(webhook_id = %id, "webhook of an unhandled type accepted and kept for operators");
            shared::metrics::count("WebhookUnhandledType", ("Type", "unhandled"));
        }
        shared::metrics::record(&[
            Metric::count("WebhookReceived", ("Type", if known { &kind } else { "unhandled" })),
            Metric::millis("AckLatency", started.elapsed().as_millis() as u64, ("Route", "hicaps-webhook")),
        ]);
        Ok(web::empty(StatusCode::ACCEPTED))
    }

    fn authenticate(&self, request: &Request) -> Result<(), Rejection> {
        let (name, values) = match &self.config.auth {
            WebhookAuth::Jwt { callers } => {
                let caller = shared::caller::caller_id(request).ok_or(Rejection::Unauthorized)?;
                return match callers.contains(&caller) {
                    true => Ok(()),
                    false => Err(Rejection::Forbidden("Only HICAPS may deliver webhooks.".into())),
                };
            }
            WebhookAuth::Header { name, values } => (name, values),
        };
        let presented = request.headers().get(name).map(|v| v.as_bytes()).unwrap_or_default();
        let values = values.cached();
        // Compare against every accepted value without stopping early.
        let matched = values
            .iter()
            .fold(subtle::Choice::from(0), |found, value| found | value.expose_secret().as_bytes().ct_eq(presented));
        if presented.is_empty() || !bool::from(matched) {
            return Err(Rejection::Unauthorized);
        }
        Ok(())
    }
}

/// The accepted values of `WEBHOOK_AUTH_VALUE`: comma-separated, blanks dropped, at least one.
fn auth_values(text: SecretString) -> Result<Vec<SecretString>, String> {
    let values: Vec<SecretString> = text
        .expose_secret()
        .split(',')
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(|value| SecretString::from(value.to_owned()))
        .collect();
    if values.is_empty() { Err("has no value".to_owned()) } else { Ok(values) }
}

fn invalid(name: &str, reason: &str) -> Rejection {
    let mut problems = Problems::new();
    problems.push(name, reason);
    Rejection::Invalid(ApiError::validation(problems.into_vec()))
}

/// Checks that the body is JSON with a non-empty string `id`, a non-empty string `type` and an
/// object `data`, naming every field that is not; returns (id, type).
fn check_envelope(body: &str) -> Result<(String, String), Rejection> {
    // serde would also read a struct from an array; a webhook is an object.
    if body.trim_start_matches(|c: char| c.is_ascii_whitespace()).as_bytes().first() != Some(&b'{') {
        let reason = if serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok() {
            "The body must be a JSON object."
        } else {
            "The body is not valid JSON."
        };
        return Err(invalid("body", reason));
    }
    let envelope: Envelope<'_> =
        serde_json::from_str(body).map_err(|_| invalid("body", "The body is not valid JSON."))?;
    let mut problems = Problems::new();
    let id = non_empty_string(envelope.id, "id", &mut problems);
    if id.as_ref().is_some_and(|id| id.chars().count() > MAX_ID_CHARS) {
        problems.push("id", format!("'id' must be at most {MAX_ID_CHARS} characters."));
    }
    let kind = non_empty_string(envelope.kind, "type", &mut problems);
    if kind.as_ref().is_some_and(|kind| kind.chars().count() > MAX_TYPE_CHARS) {
        problems.push("type", format!("'type' must be at most {MAX_TYPE_CHARS} characters."));
    }
    match envelope.data {
        None => problems.push("data", "'data' must not be empty."),
        Some(raw) if !raw.get().starts_with('{') => problems.push("data", "'data' must be an object."),
        Some(raw) => {
            let (depth, claims) = scan_data(raw.get().as_bytes());
            if depth > MAX_DATA_DEPTH {
                problems.push("data", format!("'data' must nest at most {MAX_DATA_DEPTH} levels deep."));
            } else if claims.is_some_and(|claims| claims > MAX_CLAIMS) {
                problems.push("data.claims", format!("'claims' must have at most {MAX_CLAIMS} items."));
            }
        }
    }
    match (id, kind) {
        (Some(id), Some(kind)) if problems.is_empty() => Ok((id, kind)),
        _ => Err(Rejection::Invalid(ApiError::validation(problems.into_vec()))),
    }
}

/// One pass over `data`, a JSON object already known to be valid: how deep it nests, and how many
/// entries `data.claims` has (`None` when it is not an array). Hand-written because it runs on
/// every webhook: serde's second parse of `data` and a plain byte loop cost 5.7 µs of the
/// receiver's 9.5 µs in criterion; strings, most of a webhook, are skipped with memchr. The
/// tests check it against serde on arbitrary JSON.
fn scan_data(json: &[u8]) -> (usize, Option<usize>) {
    let (mut depth, mut deepest) = (0usize, 0usize);
    // Whether the last string closed at depth 1 was `"claims"` (a key, once `:` follows).
    let mut after_claims_key = false;
    let mut in_claims = false;
    let (mut commas, mut claims_empty) = (0usize, true);
    let mut claims = None;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i + 1;
                let mut end = start;
                loop {
                    match memchr::memchr2(b'"', b'\\', &json[end.min(json.len())..]) {
                        Some(offset) if json[end + offset] == b'\\' => end += offset + 2,
                        Some(offset) => {
                            end += offset;
                            break;
                        }
                        None => {
                            end = json.len();
                            break;
                        }
                    }
                }
                if depth == 1 {
                    after_claims_key = json.get(start..end) == Some(b"claims".as_slice());
                }
                claims_empty &= !(in_claims && depth == 2);
                i = end;
            }
            open @ (b'{' | b'[') => {
                claims_empty &= !(in_claims && depth == 2);
                if open == b'[' && depth == 1 && after_claims_key && claims.is_none() {
                    in_claims = true;
                }
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => {
                if in_claims && depth == 2 {
                    in_claims = false;
                    claims = Some(if claims_empty { 0 } else { commas + 1 });
                }
                depth = depth.saturating_sub(1);
            }
            b',' => {
                commas += usize::from(in_claims && depth == 2);
                after_claims_key &= depth != 1;
            }
            b' ' | b'\n' | b'\r' | b'\t' | b':' => {}
            _ => claims_empty &= !(in_claims && depth == 2),
        }
        i += 1;
    }
    (deepest, claims)
}

fn non_empty_string(raw: Option<&RawValue>, name: &str, problems: &mut Problems) -> Option<String> {
    let Some(raw) = raw else {
        problems.push(name, format!("'{name}' must not be empty."));
        return None;
    };
    match serde_json::from_str::<String>(raw.get()) {
        Ok(text) if !text.trim().is_empty() => Some(text),
        Ok(_) => {
            problems.push(name, format!("'{name}' must not be empty."));
            None
        }
        Err(_) => {
            problems.push(name, format!("'{name}' must be a string."));
            None
        }
    }
}

impl shared::web::HttpHandler for Receiver {
    fn call(&self, request: lambda_http::Request) -> shared::web::BoxFuture<'_, shared::web::HttpResponse> {
        Box::pin(self.handle(request))
    }
}

#[cfg(test)]
mod tests {
    use super::scan_data;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn depth(value: &Value) -> usize {
        match value {
            Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Object(entries) => 1 + entries.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    fn serde_says(data: &Value) -> (usize, Option<usize>) {
        (depth(data), data.get("claims").and_then(Value::as_array).map(Vec::len))
    }

    #[test]
    fn the_scan_agrees_with_serde_on_the_awkward_cases() {
        for data in [
            json!({}),
            json!({"claims": []}),
            json!({"claims": [{"a": [1, 2]}, "x", 3, null, [], {}]}),
            json!({"claims": "not an array", "x": [[[]]]}),
            json!({"a": "claims", "b": [1, 2, 3]}),
            json!({"nested": {"claims": [1, 2]}, "claims": [true]}),
            json!({"claims\"": [1], "q": "\"claims\" [ { , \\"}),
            json!({"claims": [" , ] } [ {", "\\", "\\\""]}),
        ] {
            let text = data.to_string();
            assert_eq!(scan_data(text.as_bytes()), serde_says(&data), "{text}");
            let spaced = serde_json::to_string_pretty(&data).expect("json");
            assert_eq!(scan_data(spaced.as_bytes()), serde_says(&data), "{spaced}");
        }
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[\\\\\"\\[\\]{},:a-z ]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 48, 6, |inner| {
            let key = prop_oneof![Just("claims".to_owned()), "[a-z\\\\\"]{0,6}"];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_scan_agrees_with_serde(data in any_json(), claims in proptest::option::of(any_json())) {
            let mut data = match data {
                Value::Object(entries) => Value::Object(entries),
                other => json!({"other": other}),
            };
            if let Some(claims) = claims {
                data["claims"] = claims;
            }
            let text = data.to_string();
            prop_assert_eq!(scan_data(text.as_bytes()), serde_says(&data), "{}", text);
        }
    }
}
