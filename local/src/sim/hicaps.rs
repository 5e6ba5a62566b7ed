//! HICAPS simulator: sends webhooks built from the HICAPS Program API's examples to our receiver with HICAPS's
//! retry policy (24 attempts, the n-th retry after n^2 x 80 ms, the same `id`), serves the OAuth2
//! token endpoint, records every callback it receives, and can be told to fail the next calls.
//!
//! | route | what |
//! |---|---|
//! | `POST /sim/hicaps/send/{example}` | deliver a webhook (`invoice-submitted`, `cancellation-requested`, `predetermination-submitted`, `member-check`, `payment-scheduled`, `payment-failed`, `payment-held`, `invoice-overpaid`); a JSON body's fields override the example's `data` |
//! | `GET /sim/hicaps/deliveries/{id}` | the delivery attempts of one webhook |
//! | `GET /sim/hicaps/posts` | every callback received (`?invoiceId=` filters) |
//! | `POST /sim/hicaps/faults` | `{"status": 500, "times": 2}`: the next callbacks answer that status |
//!
//! An accepted `lp:webhook-error` call restarts that webhook's delivery, as HICAPS does (up to
//! [`MAX_REDELIVERIES`] times per webhook).
//! | `POST /sim/hicaps/oauth/token` | client-credentials token endpoint |

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use shared::config::Vars;
use shared::http_client::{Method, OutboundRequest, SharedHttp};
use shared::store::{Condition, ItemPut};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub const LOCAL_WEBHOOK_SECRET: &str = "local-webhook-secret";
pub const LOCAL_CLIENT_ID: &str = "local-program";
pub const LOCAL_CLIENT_SECRET: &str = "local-program-secret";
const LOCAL_TOKEN: &str = "local-hicaps-access-token";
/// HICAPS's retry policy: the initial attempt and 23 retries.
pub const DELIVERY_ATTEMPTS: u32 = 24;

const BENEFIT_SCHEDULE: &str = include_str!("../../data/benefit-schedule.json");
const MEMBER_REGISTRY: &str = include_str!("../../data/member-registry.json");

pub fn defaults(base_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HICAPS_TOKEN_URL", format!("{base_url}/sim/hicaps/oauth/token")),
        ("HICAPS_CLIENT_ID", LOCAL_CLIENT_ID.to_owned()),
        ("HICAPS_CLIENT_SECRET", LOCAL_CLIENT_SECRET.to_owned()),
    ]
}

/// Loads the benefit schedule and member registry into the table: from `BENEFIT_SCHEDULE_FILE`
/// and `MEMBER_REGISTRY_FILE` when set, else the samples in `local/data/`.
pub async fn load_reference_data(table: &dyn ItemPut) -> anyhow::Result<()> {
    let read = |variable: &str, sample: &str| match std::env::var(variable) {
        Ok(path) if !path.trim().is_empty() => {
            std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{variable}={path}: {e}"))
        }
        _ => Ok(sample.to_owned()),
    };
    let schedule = read("BENEFIT_SCHEDULE_FILE", BENEFIT_SCHEDULE)?;
    let members = read("MEMBER_REGISTRY_FILE", MEMBER_REGISTRY)?;
    for item in shared::program::reference::schedule_items(&schedule)?
        .into_iter()
        .chain(shared::program::reference::member_items(&members)?)
    {
        table.put(&item, Condition::Always).await?;
    }
    Ok(())
}

/// One callback the simulator received.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedPost {
    /// `invoice-status`, `predetermination-status`, `member-state`, `webhook-error`.
    pub kind: String,
    /// The invoice id, member check id or webhook id in the link.
    pub reference: String,
    pub body: Value,
    pub status: u16,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub webhook_id: String,
    pub attempts: Vec<u16>,
    pub finished: bool,
}

struct Inner {
    receiver_url: String,
    auth_header: String,
    auth_value: String,
    base_url: String,
    http: SharedHttp,
    posts: Mutex<Vec<RecordedPost>>,
    deliveries: Mutex<HashMap<String, Delivery>>,
    faults: Mutex<VecDeque<u16>>,
    /// invoiceId -> claimIds of the invoices this simulator submitted.
    invoices: Mutex<HashMap<String, Vec<String>>>,
    /// paymentId -> the Payment Invoices response.
    payments: Mutex<HashMap<String, Value>>,
    /// webhook id -> the webhook, for redelivery when `lp:webhook-error` is called.
    sent: Mutex<HashMap<String, Value>>,
}

/// Most redeliveries `lp:webhook-error` starts for one webhook: HICAPS sets no limit, but a
/// gateway that asked without end must not make the simulator loop with it.
pub const MAX_REDELIVERIES: usize = 100;

#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    InvoiceSubmitted,
    CancellationRequested,
    PredeterminationSubmitted,
    MemberCheck,
    PaymentScheduled,
    PaymentFailed,
    PaymentHeld,
    InvoiceOverpaid,
}

impl Example {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "invoice-submitted" => Self::InvoiceSubmitted,
            "cancellation-requested" => Self::CancellationRequested,
            "predetermination-submitted" => Self::PredeterminationSubmitted,
            "member-check" => Self::MemberCheck,
            "payment-scheduled" => Self::PaymentScheduled,
            "payment-failed" => Self::PaymentFailed,
            "payment-held" => Self::PaymentHeld,
            "invoice-overpaid" => Self::InvoiceOverpaid,
            _ => return None,
        })
    }

    /// The spec's example of this webhook (the member check has none in the spec; ours follows
    /// its Member Parameters table).
    pub fn template(self) -> &'static str {
        match self {
            Self::InvoiceSubmitted => {
                include_str!("../../../shared/tests/fixtures/hicaps/invoice-submitted-webhook.json")
            }
            Self::CancellationRequested => {
                include_str!("../../../shared/tests/fixtures/hicaps/invoice-cancellation-requested-webhook.json")
            }
            Self::PredeterminationSubmitted => {
                include_str!("../../../shared/tests/fixtures/hicaps/predetermination-submitted-webhook.json")
            }
            Self::MemberCheck => {
                r#"{"id": "", "created": 1565140165, "type": "admin.member.check",
                   "data": {"memberNumber": "789456123", "program": "mpl", "givenName": "Spongebob",
                            "familyName": "Squarepants", "birthDate": "1990-04-01", "gender": "female"},
                   "_links": {}}"#
            }
            Self::PaymentScheduled => {
                include_str!("../../../shared/tests/fixtures/hicaps/payment-scheduled-webhook.json")
            }
            Self::PaymentFailed => include_str!("../../../shared/tests/fixtures/hicaps/payment-failed-webhook.json"),
            Self::PaymentHeld => {
                include_str!("../../../shared/tests/fixtures/hicaps/invoice-payment-held-webhook.json")
            }
            Self::InvoiceOverpaid => {
                include_str!("../../../shared/tests/fixtures/hicaps/invoice-overpaid-webhook.json")
            }
        }
    }
}

/// HICAPS's retry policy around one delivery `attempt`, which answers a status (0 for none):
/// received on a 2xx, abandoned on a 4xx, tried again after a 5xx or no answer, up to
/// [`DELIVERY_ATTEMPTS`] times with [`retry_delay`] before each. Returns the last status.
pub async fn with_retry_policy<F, Fut>(mut attempt: F) -> u16
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let mut status = 0;
    for number in 1..=DELIVERY_ATTEMPTS {
        tokio::time::sleep(retry_delay(number)).await;
        status = attempt().await;
        if (200..500).contains(&status) {
            break;
        }
    }
    status
}

/// HICAPS's wait before delivery attempt `attempt` (1-based): (webhooks already sent)² x 80 ms.
pub fn retry_delay(attempt: u32) -> Duration {
    let already_sent = u64::from(attempt.saturating_sub(1));
    Duration::from_millis(already_sent * already_sent * 80)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Simulator {
    pub fn new(vars: &Vars, base_url: &str, http: SharedHttp) -> anyhow::Result<Self> {
        let auth_value = vars.get("WEBHOOK_AUTH_VALUE").unwrap_or(LOCAL_WEBHOOK_SECRET);
        // With rotation several values are accepted; HICAPS sends one.
        let auth_value = auth_value.split(',').next().unwrap_or_default().trim().to_owned();
        Ok(Self {
            inner: Arc::new(Inner {
                receiver_url: format!("{base_url}/hicaps/webhooks"),
                auth_header: vars
                    .get("WEBHOOK_AUTH_HEADER")
                    .unwrap_or(webhook_receiver::DEFAULT_AUTH_HEADER)
                    .to_owned(),
                auth_value,
                base_url: base_url.to_owned(),
                http,
                posts: Mutex::default(),
                deliveries: Mutex::default(),
                faults: Mutex::default(),
                invoices: Mutex::default(),
                payments: Mutex::default(),
                sent: Mutex::default(),
            }),
        })
    }

    pub fn auth_header(&self) -> &str {
        &self.inner.auth_header
    }

    /// The header value, printed only when it is the local default.
    pub fn auth_value_hint(&self) -> &str {
        if self.inner.auth_value == LOCAL_WEBHOOK_SECRET {
            LOCAL_WEBHOOK_SECRET
        } else {
            "(the value of WEBHOOK_AUTH_VALUE)"
        }
    }

    pub fn posts(&self) -> Vec<RecordedPost> {
        lock(&self.inner.posts).clone()
    }

    pub fn delivery(&self, webhook_id: &str) -> Option<Delivery> {
        lock(&self.inner.deliveries).get(webhook_id).cloned()
    }

    /// The next `times` callbacks answer `status` (at most 10,000 queued).
    pub fn fail_next(&self, status: u16, times: usize) {
        let mut faults = lock(&self.inner.faults);
        let room = 10_000usize.saturating_sub(faults.len());
        faults.extend(std::iter::repeat_n(status, times.min(room)));
    }

    /// How many times `lp:webhook-error` restarted the delivery of `webhook_id`.
    pub fn redeliveries(&self, webhook_id: &str) -> usize {
        lock(&self.inner.posts)
            .iter()
            .filter(|post| post.kind == "webhook-error" && post.reference == webhook_id)
            .count()
    }

    /// A webhook from the HICAPS Program API's example with a fresh `id`, links to this simulator, and
    /// `overrides` merged into `data`. An invoice or predetermination gets fresh invoice and
    /// claim ids unless overridden.
    pub fn webhook(&self, example: Example, overrides: &Value) -> anyhow::Result<Value> {
        let mut webhook: Value = serde_json::from_str(example.template())?;
        let id = new_id();
        webhook["id"] = json!(id);
        let data = webhook
            .get_mut("data")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow::anyhow!("example has no data"))?;
        if matches!(example, Example::InvoiceSubmitted | Example::PredeterminationSubmitted) {
            data.insert("invoiceId".into(), json!(new_id()));
            if let Some(claims) = data.get_mut("claims").and_then(Value::as_array_mut) {
                for claim in claims {
                    claim["claimId"] = json!(new_id());
                }
            }
        }
        if matches!(example, Example::PaymentScheduled | Example::PaymentFailed | Example::PaymentHeld) {
            data.insert("paymentId".into(), json!(new_id()));
        }
        let invoice_ids: Vec<String> = overrides
            .get("invoiceIds")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        if let Some(overrides) = overrides.as_object() {
            for (name, value) in overrides.iter().filter(|(name, _)| name.as_str() != "invoiceIds") {
                data.insert(name.clone(), value.clone());
            }
        }
        let base = format!("{}/sim/hicaps", self.inner.base_url);
        let invoice_id = data.get("invoiceId").and_then(Value::as_str).unwrap_or_default().to_owned();
        let payment_id = data.get("paymentId").and_then(Value::as_str).unwrap_or_default().to_owned();
        let claim_ids: Vec<String> = data
            .get("claims")
            .and_then(Value::as_array)
            .map(|claims| claims.iter().filter_map(|c| c["claimId"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let mut links = serde_json::Map::new();
        let mut link = |rel: &str, href: String| {
            links.insert(rel.to_owned(), json!({"href": href}));
        };
        match example {
            Example::InvoiceSubmitted | Example::CancellationRequested => {
                link("lp:invoice-status-updated", format!("{base}/callbacks/invoice-status/{invoice_id}"));
            }
            Example::PredeterminationSubmitted => {
                link(
                    "lp:predetermination-status-updated",
                    format!("{base}/callbacks/predetermination-status/{invoice_id}"),
                );
            }
            Example::MemberCheck => link("lp:update-member-state", format!("{base}/callbacks/member-state/{id}")),
            Example::PaymentScheduled | Example::PaymentFailed | Example::PaymentHeld => {
                link("lp:payment-invoices", format!("{base}/payments/{payment_id}/invoices"));
            }
            Example::InvoiceOverpaid => {}
        }
        link("lp:webhook-error", format!("{base}/callbacks/webhook-error/{id}"));
        webhook["_links"] = Value::Object(links);

        if example == Example::InvoiceSubmitted {
            lock(&self.inner.invoices).insert(invoice_id, claim_ids);
        }
        if !payment_id.is_empty() {
            let invoices = lock(&self.inner.invoices);
            let listed: Vec<Value> = invoice_ids
                .iter()
                .map(|invoice_id| {
                    let claims: Vec<Value> = invoices
                        .get(invoice_id)
                        .map(|claims| {
                            claims.iter().map(|claim_id| json!({"claimId": claim_id, "amount": 10.00})).collect()
                        })
                        .unwrap_or_default();
                    json!({"invoiceId": invoice_id, "claimTransactions": claims})
                })
                .collect();
            drop(invoices);
            lock(&self.inner.payments).insert(payment_id, json!({"invoices": listed}));
        }
        Ok(webhook)
    }

    /// Delivers `webhook` to the receiver with HICAPS's retry policy; returns the attempts'
    /// statuses (0 for no answer).
    pub async fn deliver(&self, webhook: &Value) -> Delivery {
        let webhook_id = webhook["id"].as_str().unwrap_or_default().to_owned();
        let body = webhook.to_string().into_bytes();
        lock(&self.inner.sent).insert(webhook_id.clone(), webhook.clone());
        lock(&self.inner.deliveries)
            .insert(webhook_id.clone(), Delivery { webhook_id: webhook_id.clone(), ..Default::default() });
        with_retry_policy(|| {
            let request = OutboundRequest::new(Method::Post, &self.inner.receiver_url)
                .header(&self.inner.auth_header, &self.inner.auth_value)
                .json(body.clone())
                .timeout(Duration::from_secs(10));
            let webhook_id = webhook_id.clone();
            async move {
                let status = self.inner.http.send(request).await.map(|r| r.status).unwrap_or(0);
                lock(&self.inner.deliveries).entry(webhook_id).or_default().attempts.push(status);
                status
            }
        })
        .await;
        let mut deliveries = lock(&self.inner.deliveries);
        let delivery = deliveries.entry(webhook_id).or_default();
        delivery.finished = true;
        delivery.clone()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/oauth/token", post(token))
            .route("/callbacks/{kind}/{reference}", post(callback))
            .route("/payments/{payment_id}/invoices", get(payment_invoices))
            .route("/send/{example}", post(send))
            .route("/deliveries/{id}", get(delivery))
            .route("/posts", get(posts))
            .route("/faults", post(faults))
            .with_state(self.clone())
    }
}

async fn token(body: String) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let valid = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some(LOCAL_CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(LOCAL_CLIENT_SECRET);
    if !valid {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
    }
    Json(json!({"access_token": LOCAL_TOKEN, "token_type": "Bearer", "expires_in": 3600})).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {LOCAL_TOKEN}"))
}

async fn callback(
    State(sim): State<Simulator>,
    Path((kind, reference)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"title": "Missing or invalid bearer token."}))).into_response();
    }
    let status = lock(&sim.inner.faults).pop_front().unwrap_or(200);
    let body = if body.is_empty() { Value::Null } else { serde_json::from_str(&body).unwrap_or(Value::String(body)) };
    // As HICAPS does: an accepted `lp:webhook-error` restarts the webhook's delivery.
    let redeliver =
        (kind == "webhook-error" && (200..300).contains(&status) && sim.redeliveries(&reference) < MAX_REDELIVERIES)
            .then(|| lock(&sim.inner.sent).get(&reference).cloned())
            .flatten();
    lock(&sim.inner.posts).push(RecordedPost { kind, reference, body, status });
    if let Some(webhook) = redeliver {
        let delivering = sim.clone();
        tokio::spawn(async move { delivering.deliver(&webhook).await });
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if status.is_client_error() {
        return (status, Json(json!({"title": "Simulated rejection."}))).into_response();
    }
    status.into_response()
}

async fn payment_invoices(
    State(sim): State<Simulator>,
    Path(payment_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match lock(&sim.inner.payments).get(&payment_id) {
        Some(invoices) => Json(invoices.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"title": "Unknown payment."}))).into_response(),
    }
}

async fn send(State(sim): State<Simulator>, Path(example): Path<String>, body: String) -> Response {
    let Some(example) = Example::parse(&example) else {
        return (StatusCode::NOT_FOUND, Json(json!({"title": format!("No example named {example}.")}))).into_response();
    };
    let overrides: Value =
        if body.trim().is_empty() { json!({}) } else { serde_json::from_str(&body).unwrap_or(json!({})) };
    let webhook = match sim.webhook(example, &overrides) {
        Ok(webhook) => webhook,
        Err(error) => return (StatusCode::BAD_REQUEST, Json(json!({"title": error.to_string()}))).into_response(),
    };
    let answer = json!({"id": webhook["id"], "data": webhook["data"]});
    let delivering = sim.clone();
    tokio::spawn(async move { delivering.deliver(&webhook).await });
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}

async fn delivery(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    match sim.delivery(&id) {
        Some(delivery) => Json(delivery).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn posts(State(sim): State<Simulator>, Query(query): Query<HashMap<String, String>>) -> Response {
    let posts: Vec<RecordedPost> =
        sim.posts().into_iter().filter(|post| query.get("invoiceId").is_none_or(|id| &post.reference == id)).collect();
    Json(posts).into_response()
}

async fn faults(State(sim): State<Simulator>, Json(body): Json<Value>) -> Response {
    let status = body["status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(500);
    let times = body["times"].as_u64().and_then(|t| usize::try_from(t).ok()).unwrap_or(1);
    sim.fail_next(status, times);
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_follow_the_spec_table() {
        let millis: Vec<u128> = [1, 2, 3, 4, 5, 6, 23, 24].iter().map(|n| retry_delay(*n).as_millis()).collect();
        assert_eq!(millis, [0, 80, 320, 720, 1280, 2000, 38720, 42320]);
        let total: u128 = (1..=DELIVERY_ATTEMPTS).map(|n| retry_delay(n).as_millis()).sum();
        assert_eq!(total, 345_920, "about 5.5 minutes over 24 attempts");
    }
}
