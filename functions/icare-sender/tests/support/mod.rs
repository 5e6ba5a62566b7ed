//! Test support: the App on the embedded store and queue, talking to a wiremock iCare, and
//! requests shaped as API Gateway's HTTP API hands them over.
#![allow(dead_code)]

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use icare_sender::{App, Config};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::{Value, json};
use shared::config::Vars;
use shared::http_client::ReqwestClient;
use shared::queue::MessageSource;
use shared::queue::embedded::EmbeddedQueue;
use shared::store::embedded::EmbeddedTable;
use shared::time::SystemClock;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use wiremock::MockServer;

pub const CALLER: &str = "employer-system";
pub const API_KEY: &str = "test-icare-key";

pub struct Harness {
    pub app: App,
    pub queue: Arc<EmbeddedQueue>,
    pub dead_letters: Arc<EmbeddedQueue>,
    pub server: MockServer,
}

pub async fn harness(extra: &[(&str, &str)]) -> Harness {
    let server = MockServer::start().await;
    let mut vars = Vars::default()
        .with("ICARE_BASE_URL", server.uri())
        .with("ICARE_API_KEY", API_KEY)
        .with("ICARE_TIMEOUT_SECONDS", "1")
        .with("ICARE_RETRY_TIMEOUT_SECONDS", "1");
    for (name, value) in extra {
        vars = vars.with(name, *value);
    }
    let config = Config::from_vars(&vars).await.expect("config");
    // A short visibility timeout stands in for the retry queue's backoff.
    let queue = Arc::new(EmbeddedQueue::new(Duration::from_millis(20)));
    let dead_letters = Arc::new(EmbeddedQueue::new(Duration::from_millis(20)));
    let app = App::new(
        config,
        Arc::new(EmbeddedTable::new()),
        Arc::new(ReqwestClient::new().expect("http client")),
        Arc::new(SystemClock),
        icare_sender::Queues { retries: queue.clone(), dead_letters: dead_letters.clone() },
    );
    Harness { app, queue, dead_letters, server }
}

/// A request as API Gateway (HTTP API, payload 2.0) hands it to the function.
pub fn request(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    caller: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> lambda_http::Request {
    let mut context = shared::testing::jwt_context(caller);
    context.http.method = method.parse().expect("method");
    context.http.path = Some(path.to_owned());
    let mut builder = http::Request::builder().method(method).uri(path).header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = body.map_or(Body::Empty, |body| Body::Text(body.to_string()));
    let params: HashMap<String, Vec<String>> =
        params.iter().map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()])).collect();
    builder
        .body(body)
        .expect("request builds")
        .with_path_parameters(params)
        .with_request_context(RequestContext::ApiGatewayV2(context))
}

pub async fn call(app: &App, request: lambda_http::Request) -> (u16, Value) {
    let response = app.handle(request).await;
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

pub fn policy(integration: bool) -> Value {
    json!({"policyType": "Insurer Scheme – NSW", "insurer": "iCare", "policyNumber": "WC-100",
           "insurerApiIntegration": integration, "icarePolicyNumber": "IC-777"})
}

pub async fn put_policy(app: &App, id: &str, body: &Value) -> (u16, Value) {
    let path = format!("/icare/policies/{id}");
    call(app, request("PUT", &path, &[("policyId", id)], Some(CALLER), &[], Some(body))).await
}

pub fn notification() -> Value {
    json!({
        "policyId": "nsw-1",
        "worker": {"givenName": "Alex", "familyName": "Citizen", "phone": "0400 000 000",
            "postalAddress": {"lines": ["1 George St"], "city": "Sydney", "postcode": "2000", "state": "NSW"}},
        "employer": {"businessName": "Acme Pty Ltd", "contactName": "Sam Boss", "phone": "02 9999 9999", "email": "sam@acme.example"},
        "treatingDoctor": {"name": "Dr Who", "practice": "City Clinic"},
        "injury": {"date": "2025-03-09", "time": "14:30", "howItHappened": "Lifting a box",
            "description": "Lower back strain", "treatmentRequired": true, "incapacity": "partial", "lossOfIncome": false},
        "notifier": {"name": "Sam Boss", "relationship": "Supervisor", "phone": "02 9999 9999", "email": "sam@acme.example"}
    })
}

pub async fn post_notification(app: &App, key: Option<&str>, body: &Value) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = key.map(|key| vec![("Idempotency-Key", key)]).unwrap_or_default();
    call(app, request("POST", "/icare/notifications", &[], Some(CALLER), &headers, Some(body))).await
}

pub async fn get_notification(app: &App, id: &str) -> (u16, Value) {
    let path = format!("/icare/notifications/{id}");
    call(app, request("GET", &path, &[("notificationId", id)], Some(CALLER), &[], None)).await
}

pub fn pdf_base64(extra_bytes: usize) -> String {
    use base64::Engine;
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.resize(bytes.len() + extra_bytes, b'x');
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn document(content_base64: String) -> Value {
    json!({"documentType": "medicalCertificate", "fileName": "certificate.pdf", "contentType": "application/pdf",
           "contentBase64": content_base64})
}

pub async fn post_document(app: &App, claim: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let path = format!("/icare/claims/{claim}/documents");
    let headers: Vec<(&str, &str)> = key.map(|key| vec![("Idempotency-Key", key)]).unwrap_or_default();
    call(app, request("POST", &path, &[("claimNumber", claim)], Some(CALLER), &headers, Some(body))).await
}

/// One poll of the retry queue, as Lambda's event source mapping does it: the batch goes to
/// `handle_retries`, records not reported as failures are deleted. Returns the response.
pub async fn drain_once(harness: &Harness) -> Option<SqsBatchResponse> {
    let messages = harness.queue.receive(10, Duration::from_millis(500)).await.expect("receive");
    if messages.is_empty() {
        return None;
    }
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|message| {
            let mut record = SqsMessage::default();
            record.message_id = Some(message.message_id.clone());
            record.receipt_handle = Some(message.receipt_handle.clone());
            record.body = Some(message.body.clone());
            record.event_source = Some("aws:sqs".to_owned());
            record.attributes = HashMap::from([
                ("ApproximateReceiveCount".to_owned(), message.receive_count.to_string()),
                ("SentTimestamp".to_owned(), message.sent_at_ms.to_string()),
            ]);
            record
        })
        .collect();
    let response = harness.app.handle_retries(event).await;
    let failed: HashSet<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    for message in messages.iter().filter(|m| !failed.contains(m.message_id.as_str())) {
        harness.queue.delete(&message.receipt_handle).await.expect("delete");
    }
    Some(response)
}

/// Requests the mock iCare received on `path`.
pub async fn received(server: &MockServer, path: &str) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default().into_iter().filter(|r| r.url.path() == path).collect()
}
