//! NSW iCare simulator, speaking the ASSUMED wire contract of `shared::icare::client` (iCare's
//! real API is not public). Mounted under `/sim/icare`.
//!
//! - `POST /notifications` (headers `x-api-key`, `Idempotency-Key`): 201 `{"claimNumber"}`; the
//!   same key again answers 200 with the same claim number and creates nothing.
//! - `POST /claims/{claimNumber}/documents`: 201 `{"documentId","receivedAt"}`; 404 for a claim it
//!   never issued; the same key again answers 200 with the same document.
//! - `GET|PUT /scenario`: `{"mode": "ok"|"slow"|"down"|"reject", "times": N?, "slowSeconds": 5,
//!   "rejectField": "worker.phone"}`. `slow` creates the claim at once but answers only after
//!   `slowSeconds` (a caller that gave up finds it under the same key next time); `down` answers 503; `reject` answers 422 naming
//!   `rejectField`. With `times`, the mode applies to the next N requests and then reverts to `ok`.
//! - Fixtures: the iCare policy numbers `SIM-SLOW`, `SIM-DOWN` and `SIM-REJECT` force that mode
//!   for their notifications whatever the scenario.
//! - `GET /stats`: request and creation counts; `POST /reset`: scenario `ok`, counts to zero
//!   (claims already issued stay valid).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEFAULT_SLOW_SECONDS: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Ok,
    Slow,
    Down,
    Reject,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scenario {
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    #[serde(default = "default_slow_seconds")]
    pub slow_seconds: u64,
    #[serde(default = "default_reject_field")]
    pub reject_field: String,
}

fn default_slow_seconds() -> u64 {
    DEFAULT_SLOW_SECONDS
}

fn default_reject_field() -> String {
    "worker.phone".to_owned()
}

impl Default for Scenario {
    fn default() -> Self {
        Self { mode: Mode::Ok, times: None, slow_seconds: DEFAULT_SLOW_SECONDS, reject_field: default_reject_field() }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    notification_requests: u64,
    notifications_created: u64,
    document_requests: u64,
    documents_received: u64,
}

#[derive(Default)]
struct Sim {
    scenario: Scenario,
    stats: Stats,
    /// Idempotency key -> claim number.
    notifications: HashMap<String, String>,
    claims: HashSet<String>,
    /// (claim number, idempotency key) -> answer.
    documents: HashMap<(String, String), Value>,
    next_number: u64,
}

type Shared = Arc<Mutex<Sim>>;

fn lock(sim: &Shared) -> std::sync::MutexGuard<'_, Sim> {
    sim.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sim {
    /// The mode for this request, spending one of `times`.
    fn take_mode(&mut self) -> (Mode, u64, String) {
        let scenario = &mut self.scenario;
        let taken = (scenario.mode, scenario.slow_seconds, scenario.reject_field.clone());
        if let Some(times) = scenario.times.as_mut() {
            *times = times.saturating_sub(1);
            if *times == 0 {
                scenario.mode = Mode::Ok;
                scenario.times = None;
            }
        }
        taken
    }
}

fn errors(status: StatusCode, field: Option<&str>, message: &str) -> Response {
    let error = match field {
        Some(field) => json!({"field": field, "message": message}),
        None => json!({"message": message}),
    };
    (status, axum::Json(json!({"errors": [error]}))).into_response()
}

/// The API key and idempotency key every call needs: the key, or the refusal.
#[allow(clippy::result_large_err)]
fn check_headers(headers: &HeaderMap) -> Result<String, Response> {
    let present = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    if present("x-api-key").is_none() {
        return Err(errors(StatusCode::UNAUTHORIZED, None, "missing x-api-key"));
    }
    present("idempotency-key")
        .map(str::to_owned)
        .ok_or_else(|| errors(StatusCode::BAD_REQUEST, Some("Idempotency-Key"), "is required"))
}

/// The refusal for `down` and `reject`; `None` when the request goes ahead.
fn refusal(mode: Mode, reject_field: &str) -> Option<Response> {
    match mode {
        Mode::Ok | Mode::Slow => None,
        Mode::Down => Some(errors(StatusCode::SERVICE_UNAVAILABLE, None, "iCare is unavailable (simulated)")),
        Mode::Reject => {
            Some(errors(StatusCode::UNPROCESSABLE_ENTITY, Some(reject_field), "is not accepted by iCare (simulated)"))
        }
    }
}

/// A slow iCare has already done the work when it answers late: the delay comes after the change,
/// so a caller that gives up still finds the claim under its key next time.
async fn answer(mode: Mode, slow_seconds: u64, status: StatusCode, body: Value) -> Response {
    if mode == Mode::Slow {
        tokio::time::sleep(Duration::from_secs(slow_seconds)).await;
    }
    (status, axum::Json(body)).into_response()
}

async fn notifications(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let key = match check_headers(&headers) {
        Ok(key) => key,
        Err(response) => return response,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return errors(StatusCode::BAD_REQUEST, None, "the body must be JSON");
    };
    let Some(policy_number) = body.get("policyNumber").and_then(Value::as_str).filter(|p| !p.trim().is_empty()) else {
        return errors(StatusCode::UNPROCESSABLE_ENTITY, Some("policyNumber"), "is required");
    };
    for part in ["worker", "employer", "injury", "notifier"] {
        if !body.get(part).is_some_and(Value::is_object) {
            return errors(StatusCode::UNPROCESSABLE_ENTITY, Some(part), "is required");
        }
    }
    let (mode, slow_seconds, reject_field) = {
        let mut sim = lock(&sim);
        sim.stats.notification_requests += 1;
        let taken = sim.take_mode();
        match policy_number {
            "SIM-SLOW" => (Mode::Slow, taken.1, taken.2),
            "SIM-DOWN" => (Mode::Down, taken.1, taken.2),
            "SIM-REJECT" => (Mode::Reject, taken.1, taken.2),
            _ => taken,
        }
    };
    if let Some(response) = refusal(mode, &reject_field) {
        return response;
    }
    let (status, claim_number) = {
        let mut sim = lock(&sim);
        match sim.notifications.get(&key) {
            Some(claim_number) => (StatusCode::OK, claim_number.clone()),
            None => {
                sim.next_number += 1;
                let claim_number = format!("ICN{:07}", sim.next_number);
                sim.notifications.insert(key, claim_number.clone());
                sim.claims.insert(claim_number.clone());
                sim.stats.notifications_created += 1;
                (StatusCode::CREATED, claim_number)
            }
        }
    };
    answer(mode, slow_seconds, status, json!({"claimNumber": claim_number})).await
}

async fn documents(
    State(sim): State<Shared>,
    Path(claim_number): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = match check_headers(&headers) {
        Ok(key) => key,
        Err(response) => return response,
    };
    let (mode, slow_seconds, reject_field) = {
        let mut sim = lock(&sim);
        sim.stats.document_requests += 1;
        if !sim.claims.contains(&claim_number) {
            return errors(StatusCode::NOT_FOUND, Some("claimNumber"), "is not a claim iCare knows");
        }
        sim.take_mode()
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return errors(StatusCode::BAD_REQUEST, None, "the body must be JSON");
    };
    for field in ["documentType", "fileName", "contentType", "content"] {
        if body.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
            return errors(StatusCode::UNPROCESSABLE_ENTITY, Some(field), "is required");
        }
    }
    if let Some(response) = refusal(mode, &reject_field) {
        return response;
    }
    let (status, body) = {
        let mut sim = lock(&sim);
        let slot = (claim_number, key);
        match sim.documents.get(&slot) {
            Some(body) => (StatusCode::OK, body.clone()),
            None => {
                sim.next_number += 1;
                let body = json!({"documentId": format!("ICD{:07}", sim.next_number), "receivedAt": chrono::Utc::now().to_rfc3339()});
                sim.documents.insert(slot, body.clone());
                sim.stats.documents_received += 1;
                (StatusCode::CREATED, body)
            }
        }
    };
    answer(mode, slow_seconds, status, body).await
}

async fn get_scenario(State(sim): State<Shared>) -> Response {
    axum::Json(lock(&sim).scenario.clone()).into_response()
}

async fn put_scenario(State(sim): State<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<Scenario>(&body) {
        Ok(scenario) => {
            lock(&sim).scenario = scenario.clone();
            axum::Json(scenario).into_response()
        }
        Err(error) => errors(StatusCode::BAD_REQUEST, None, &format!("not a scenario: {error}")),
    }
}

async fn stats(State(sim): State<Shared>) -> Response {
    axum::Json(lock(&sim).stats).into_response()
}

async fn reset(State(sim): State<Shared>) -> Response {
    let mut sim = lock(&sim);
    sim.scenario = Scenario::default();
    sim.stats = Stats::default();
    StatusCode::NO_CONTENT.into_response()
}

/// Routes mounted under `/sim/icare` by the local stack.
pub fn router() -> Router {
    let state: Shared = Arc::default();
    Router::new()
        .route("/notifications", post(notifications))
        .route("/claims/{claim_number}/documents", post(documents))
        .route("/scenario", get(get_scenario).put(put_scenario))
        .route("/stats", get(stats))
        .route("/reset", post(reset))
        // Documents arrive base64-encoded, up to the sender's limit (4.5 MB decoded at most).
        .layer(DefaultBodyLimit::max(8 * 1024 * 1024))
        .with_state(state)
}

/// Configuration defaults that point the iCare sender at this simulator. The timeouts are short
/// so the queued path shows quickly: the `slow` scenario (5 s) outlasts the 3 s in-request wait
/// and fits the 10 s retry wait.
pub fn defaults(base_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ICARE_BASE_URL", format!("{base_url}/sim/icare")),
        ("ICARE_API_KEY", "local-icare-key".to_owned()),
        ("ICARE_TIMEOUT_SECONDS", "3".to_owned()),
        ("ICARE_RETRY_TIMEOUT_SECONDS", "10".to_owned()),
        // Retries every few seconds, given up after a minute, so a local run shows both.
        ("ICARE_RETRY_FIRST_SECONDS", "2".to_owned()),
        ("ICARE_RETRY_HORIZON_SECONDS", "60".to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    //! The iCare sender against this simulator, end to end: the sender's `IcareClient` and the
    //! simulator must agree on the assumed wire contract.
    use super::*;
    use shared::config::Vars;
    use shared::http_client::{HttpClient, Method, OutboundRequest, ReqwestClient};
    use shared::queue::embedded::EmbeddedQueue;
    use std::collections::HashMap;

    const CALLER: &str = "sim-test";

    struct Setup {
        app: Arc<icare_sender::App>,
        sim_url: String,
        http: ReqwestClient,
    }

    async fn setup() -> Setup {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let sim_url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, router()).await });
        let mut vars = Vars::default();
        for (name, value) in defaults("http://unused") {
            vars = vars.with(name, value);
        }
        let vars = vars
            .with("ICARE_BASE_URL", &sim_url)
            .with("ICARE_TIMEOUT_SECONDS", "1")
            .with("ICARE_RETRY_TIMEOUT_SECONDS", "5");
        let config = icare_sender::Config::from_vars(&vars).await.expect("config");
        let queue = Arc::new(EmbeddedQueue::new(Duration::from_millis(200)));
        let http = ReqwestClient::new().expect("http");
        let app = Arc::new(icare_sender::App::new(
            config,
            Arc::new(shared::store::embedded::EmbeddedTable::new()),
            Arc::new(http.clone()),
            Arc::new(shared::time::SystemClock),
            icare_sender::Queues {
                retries: queue.clone(),
                dead_letters: Arc::new(EmbeddedQueue::new(Duration::from_millis(200))),
            },
        ));
        let consumer = Arc::clone(&app);
        tokio::spawn(crate::poller::run(
            queue,
            "arn:test:icare".into(),
            1,
            std::time::Duration::from_secs(28),
            Arc::default(),
            move |event| {
                let app = Arc::clone(&consumer);
                async move { app.handle_retries(event).await }
            },
        ));
        Setup { app, sim_url, http }
    }

    impl Setup {
        async fn call(
            &self,
            method: &str,
            path: &str,
            params: &[(&str, &str)],
            key: Option<&str>,
            body: Option<Value>,
        ) -> (u16, Value) {
            let mut builder =
                axum::http::Request::builder().method(method).uri(path).header("content-type", "application/json");
            if let Some(key) = key {
                builder = builder.header("Idempotency-Key", key);
            }
            let body = body.map_or_else(axum::body::Body::empty, |b| axum::body::Body::from(b.to_string()));
            let request = builder.body(body).expect("request");
            let params: HashMap<String, String> =
                params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            let request = crate::bridge::to_lambda(request, "test", params, Some(CALLER)).await.expect("bridge");
            let response = self.app.handle(request).await;
            let status = response.status().as_u16();
            let body = match response.body() {
                lambda_http::Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
                _ => Value::Null,
            };
            (status, body)
        }

        async fn sim(&self, method: Method, path: &str, body: Option<Value>) -> Value {
            let mut request = OutboundRequest::new(method, format!("{}{path}", self.sim_url));
            if let Some(body) = body {
                request = request.json(body.to_string().into_bytes());
            }
            let response = self.http.send(request).await.expect("simulator answers");
            serde_json::from_slice(&response.body).unwrap_or(Value::Null)
        }

        async fn status_of(&self, id: &str) -> Value {
            self.call("GET", &format!("/icare/notifications/{id}"), &[("notificationId", id)], None, None).await.1
        }
    }

    fn notification() -> Value {
        json!({
            "policyId": "nsw-1",
            "worker": {"givenName": "Alex", "familyName": "Citizen", "phone": "0400 000 000",
                "postalAddress": {"lines": ["1 George St"], "city": "Sydney", "postcode": "2000", "state": "NSW"}},
            "employer": {"businessName": "Acme Pty Ltd", "contactName": "Sam Boss", "phone": "02 9999 9999", "email": "sam@acme.example"},
            "injury": {"date": "2025-03-09", "time": "14:30", "howItHappened": "Lifting a box",
                "description": "Lower back strain", "treatmentRequired": true, "incapacity": "none", "lossOfIncome": false},
            "notifier": {"name": "Sam Boss", "relationship": "Supervisor", "phone": "02 9999 9999", "email": "sam@acme.example"}
        })
    }

    async fn with_policy(setup: &Setup, icare_policy_number: &str) {
        let policy = json!({"policyType": "Insurer Scheme – NSW", "insurer": "iCare", "policyNumber": "WC-1",
                            "insurerApiIntegration": true, "icarePolicyNumber": icare_policy_number});
        let (status, _) =
            setup.call("PUT", "/icare/policies/nsw-1", &[("policyId", "nsw-1")], None, Some(policy)).await;
        assert!(status == 200 || status == 201);
    }

    async fn wait_for_status(setup: &Setup, id: &str, status: &str) -> Value {
        for _ in 0..100 {
            let view = setup.status_of(id).await;
            if view["status"] == status {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("notification {id} never reached {status}: {}", setup.status_of(id).await);
    }

    #[tokio::test]
    async fn notification_and_document_in_real_time() {
        let setup = setup().await;
        with_policy(&setup, "IC-1").await;
        let (status, body) = setup.call("POST", "/icare/notifications", &[], Some("k1"), Some(notification())).await;
        assert_eq!((status, body["status"].as_str()), (201, Some("claimNumberReceived")), "{body}");
        let claim = body["claimNumber"].as_str().expect("claim number").to_owned();
        let document = json!({"documentType": "invoice", "fileName": "invoice.pdf", "contentType": "application/pdf",
                              "contentBase64": "JVBERi0xLjcKJSVFT0YK"});
        let path = format!("/icare/claims/{claim}/documents");
        let (status, body) = setup.call("POST", &path, &[("claimNumber", &claim)], None, Some(document)).await;
        assert_eq!((status, body["status"].as_str()), (201, Some("sent")), "{body}");
        let stats = setup.sim(Method::Get, "/stats", None).await;
        assert_eq!((stats["notificationsCreated"].as_u64(), stats["documentsReceived"].as_u64()), (Some(1), Some(1)));
    }

    #[tokio::test]
    async fn slow_icare_queues_and_the_retry_gets_the_same_claim_without_creating_another() {
        let setup = setup().await;
        with_policy(&setup, "IC-1").await;
        setup.sim(Method::Put, "/scenario", Some(json!({"mode": "slow", "times": 1, "slowSeconds": 2}))).await;
        let (status, body) =
            setup.call("POST", "/icare/notifications", &[], Some("k-slow"), Some(notification())).await;
        assert_eq!((status, body["status"].as_str()), (202, Some("queued")), "{body}");
        let id = body["notificationId"].as_str().expect("id").to_owned();
        let view = wait_for_status(&setup, &id, "claimNumberReceived").await;
        assert!(view["claimNumber"].as_str().is_some_and(|c| c.starts_with("ICN")));
        let stats = setup.sim(Method::Get, "/stats", None).await;
        // The slow first request created the claim; the retry got it back under the same key.
        assert_eq!(stats["notificationsCreated"].as_u64(), Some(1));
        assert!(stats["notificationRequests"].as_u64().is_some_and(|n| n >= 2));
    }

    #[tokio::test]
    async fn down_then_up_and_rejected_fields() {
        let setup = setup().await;
        with_policy(&setup, "IC-1").await;
        setup.sim(Method::Put, "/scenario", Some(json!({"mode": "down", "times": 1}))).await;
        let (status, body) =
            setup.call("POST", "/icare/notifications", &[], Some("k-down"), Some(notification())).await;
        assert_eq!(status, 202, "{body}");
        let id = body["notificationId"].as_str().expect("id").to_owned();
        wait_for_status(&setup, &id, "claimNumberReceived").await;

        setup.sim(Method::Put, "/scenario", Some(json!({"mode": "reject", "rejectField": "worker.familyName"}))).await;
        let (status, body) =
            setup.call("POST", "/icare/notifications", &[], Some("k-reject"), Some(notification())).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["invalidParams"][0]["name"], "worker.familyName");
        setup.sim(Method::Post, "/reset", None).await;

        // The fixture policy number forces "down" whatever the scenario.
        with_policy(&setup, "SIM-DOWN").await;
        let (status, _) =
            setup.call("POST", "/icare/notifications", &[], Some("k-fixture"), Some(notification())).await;
        assert_eq!(status, 202);
    }
}
