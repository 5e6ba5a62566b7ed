//! The iCare sender against a wiremock iCare, with the real `ReqwestClient`, the embedded store
//! and the embedded retry queue.

mod support;

use serde_json::{Value, json};
use shared::config::Vars;
use shared::http_client::ReqwestClient;
use shared::queue::embedded::EmbeddedQueue;
use shared::secrets::FakeSource;
use shared::store::embedded::EmbeddedTable;
use shared::time::SystemClock;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn names(body: &Value) -> Vec<String> {
    body["invalidParams"]
        .as_array()
        .map(|params| params.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn icare_answers(harness: &Harness, status: u16, body: Value) {
    Mock::given(method("POST"))
        .and(path("/notifications"))
        .and(header("x-api-key", API_KEY))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&harness.server)
        .await;
}

async fn with_policy(harness: &Harness) {
    let (status, _) = put_policy(&harness.app, "nsw-1", &policy(true)).await;
    assert_eq!(status, 201);
}

/// A notification that got claim number `claim` (the mock answers it), for document tests.
async fn claim(harness: &Harness, claim: &str) {
    with_policy(harness).await;
    Mock::given(method("POST"))
        .and(path("/notifications"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"claimNumber": claim})))
        .up_to_n_times(1)
        .mount(&harness.server)
        .await;
    let (status, body) = post_notification(&harness.app, Some("for-documents"), &notification()).await;
    assert_eq!((status, body["claimNumber"].as_str()), (201, Some(claim)));
}

// ---------------------------------------------------------------- policies

#[tokio::test]
async fn policies_are_saved_read_and_scoped_to_the_caller() {
    let h = harness(&[]).await;
    let (status, body) = put_policy(&h.app, "nsw-1", &policy(true)).await;
    assert_eq!(status, 201);
    assert_eq!(body["icarePolicyNumber"], "IC-777");
    assert_eq!(put_policy(&h.app, "nsw-1", &policy(false)).await.0, 200);
    let get = |caller| request("GET", "/icare/policies/nsw-1", &[("policyId", "nsw-1")], caller, &[], None);
    let (status, body) = call(&h.app, get(Some(CALLER))).await;
    assert_eq!((status, body["insurerApiIntegration"].as_bool()), (200, Some(false)));
    assert_eq!(call(&h.app, get(Some("someone-else"))).await.0, 404);
    assert_eq!(call(&h.app, get(None)).await.0, 401);
}

#[tokio::test]
async fn turning_the_integration_on_needs_nsw_scheme_icare_and_an_icare_policy_number() {
    let h = harness(&[]).await;
    let body = json!({"policyType": "Insurer Scheme – VIC", "insurer": "Allianz", "policyNumber": "WC-1",
                      "insurerApiIntegration": true});
    let (status, error) = put_policy(&h.app, "nsw-1", &body).await;
    assert_eq!(status, 400);
    assert_eq!(names(&error), ["policyType", "insurer", "icarePolicyNumber"]);
    assert_eq!(error["title"], "Your request parameters didn't validate.");
    // The iCare policy number may differ from the insurer's.
    let (status, saved) = put_policy(&h.app, "nsw-1", &policy(true)).await;
    assert_eq!(
        (status, saved["policyNumber"].as_str(), saved["icarePolicyNumber"].as_str()),
        (201, Some("WC-100"), Some("IC-777"))
    );
    let (status, _) = put_policy(&h.app, "nsw-1", &json!("not an object")).await;
    assert_eq!(status, 400);
}

// ---------------------------------------------------------------- notifications

#[tokio::test]
async fn a_notification_gets_its_claim_number_in_real_time() {
    let h = harness(&[]).await;
    with_policy(&h).await;
    icare_answers(&h, 201, json!({"claimNumber": "ICN0000042"})).await;
    let (status, body) = post_notification(&h.app, Some("key-1"), &notification()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "claimNumberReceived");
    assert_eq!(body["claimNumber"], "ICN0000042");
    let id = body["notificationId"].as_str().expect("notificationId").to_owned();

    let calls = received(&h.server, "/notifications").await;
    assert_eq!(calls.len(), 1);
    let sent = &calls[0];
    // Our notification id is iCare's idempotency key; the iCare policy number is sent.
    assert_eq!(sent.headers.get("idempotency-key").and_then(|v| v.to_str().ok()), Some(id.as_str()));
    let wire: Value = serde_json::from_slice(&sent.body).expect("json");
    assert_eq!(wire["policyNumber"], "IC-777");
    assert_eq!(wire["worker"]["familyName"], "Citizen");
    assert_eq!(wire["injury"]["incapacity"], "partial");

    let (status, body) = get_notification(&h.app, &id).await;
    assert_eq!(
        (status, body["status"].as_str(), body["claimNumber"].as_str()),
        (200, Some("claimNumberReceived"), Some("ICN0000042"))
    );
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn every_required_field_and_the_idempotency_key_are_named_in_one_answer() {
    let h = harness(&[]).await;
    with_policy(&h).await;
    let mut body = notification();
    body["worker"].as_object_mut().expect("worker").remove("familyName");
    body["injury"]["date"] = json!("2999-01-01");
    body["notifier"]["email"] = json!("not-an-email");
    let (status, error) = post_notification(&h.app, None, &body).await;
    assert_eq!(status, 400);
    assert_eq!(names(&error), ["Idempotency-Key", "worker.familyName", "injury.date", "notifier.email"]);

    // Each required field on its own.
    for (parent, field) in [
        ("", "policyId"),
        ("worker", "givenName"),
        ("worker", "phone"),
        ("worker", "postalAddress"),
        ("employer", "businessName"),
        ("employer", "contactName"),
        ("employer", "phone"),
        ("employer", "email"),
        ("injury", "date"),
        ("injury", "time"),
        ("injury", "howItHappened"),
        ("injury", "description"),
        ("injury", "treatmentRequired"),
        ("injury", "incapacity"),
        ("injury", "lossOfIncome"),
        ("notifier", "name"),
        ("notifier", "relationship"),
        ("notifier", "phone"),
        ("notifier", "email"),
        ("", "worker"),
        ("", "employer"),
        ("", "injury"),
        ("", "notifier"),
    ] {
        let mut body = notification();
        let target = if parent.is_empty() { &mut body } else { &mut body[parent] };
        target.as_object_mut().expect("object").remove(field);
        let (status, error) = post_notification(&h.app, Some("k"), &body).await;
        let expected = if parent.is_empty() { field.to_owned() } else { format!("{parent}.{field}") };
        assert_eq!((status, names(&error)), (400, vec![expected]));
    }
    assert!(received(&h.server, "/notifications").await.is_empty());
}

#[tokio::test]
async fn a_policy_without_the_integration_is_409_with_how_to_turn_it_on() {
    let h = harness(&[]).await;
    put_policy(&h.app, "nsw-1", &policy(false)).await;
    let (status, error) = post_notification(&h.app, Some("k"), &notification()).await;
    assert_eq!(status, 409);
    let title = error["title"].as_str().expect("title");
    assert!(title.contains("PUT /icare/policies/nsw-1") && title.contains("insurerApiIntegration true"), "{title}");
    let mut body = notification();
    body["policyId"] = json!("unknown");
    assert_eq!(post_notification(&h.app, Some("k"), &body).await.0, 404);
}

#[tokio::test]
async fn the_same_key_twice_is_one_notification_and_one_upstream_call() {
    let h = harness(&[]).await;
    with_policy(&h).await;
    icare_answers(&h, 201, json!({"claimNumber": "ICN1"})).await;
    let (first_status, first) = post_notification(&h.app, Some("same-key"), &notification()).await;
    let (second_status, second) = post_notification(&h.app, Some("same-key"), &notification()).await;
    assert_eq!((first_status, second_status), (201, 201));
    assert_eq!(first["notificationId"], second["notificationId"]);
    assert_eq!(second["claimNumber"], "ICN1");
    assert_eq!(received(&h.server, "/notifications").await.len(), 1);

    // A different body under the same key is refused.
    let mut changed = notification();
    changed["injury"]["description"] = json!("Something else");
    let (status, error) = post_notification(&h.app, Some("same-key"), &changed).await;
    assert_eq!(status, 422);
    assert_eq!(names(&error), ["Idempotency-Key"]);
    assert_eq!(received(&h.server, "/notifications").await.len(), 1);
}

#[tokio::test]
async fn icare_down_then_up_queues_and_the_retry_brings_the_claim_number() {
    let h = harness(&[]).await;
    with_policy(&h).await;
    Mock::given(method("POST"))
        .and(path("/notifications"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&h.server)
        .await;
    icare_answers(&h, 201, json!({"claimNumber": "ICN7"})).await;
    let (status, body) = post_notification(&h.app, Some("k-down"), &notification()).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("queued")), "{body}");
    let id = body["notificationId"].as_str().expect("id").to_owned();
    assert_eq!(get_notification(&h.app, &id).await.1["status"], "queued");
    // The same key while queued: the same notification, no new call.
    let (status, again) = post_notification(&h.app, Some("k-down"), &notification()).await;
    assert_eq!((status, again["notificationId"].as_str()), (202, Some(id.as_str())));
    assert_eq!(h.queue.len(), 1);

    let response = drain_once(&h).await.expect("a retry message");
    assert!(response.batch_item_failures.is_empty());
    let (_, body) = get_notification(&h.app, &id).await;
    assert_eq!((body["status"].as_str(), body["claimNumber"].as_str()), (Some("claimNumberReceived"), Some("ICN7")));
    assert!(h.queue.is_empty());
    // Two calls, both under the notification id, so iCare creates one claim.
    let calls = received(&h.server, "/notifications").await;
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(call.headers.get("idempotency-key").and_then(|v| v.to_str().ok()), Some(id.as_str()));
    }
}

#[tokio::test]
async fn a_slow_icare_answers_202_queued_within_the_timeout() {
    let h = harness(&[]).await;
    with_policy(&h).await;
    Mock::given(method("POST"))
        .and(path("/notifications"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"claimNumber": "ICN9"})).set_delay(Duration::from_secs(3)),
        )
        .mount(&h.server)
        .await;
    let started = std::time::Instant::now();
    let (status, body) = post_notification(&h.app, Some("slow"), &notification()).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("queued")));
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert_eq!(h.queue.len(), 1);
}

#[tokio::test]
async fn a_failed_retry_comes_back_at_the_next_step_of_the_schedule() {
    let h = harness(&[]).await;
    with_policy(&h).await;
    icare_answers(&h, 503, json!({})).await;
    let (status, body) = post_notification(&h.app, Some("k"), &notification()).await;
    assert_eq!(status, 202);
    let first = drain_once(&h).await.expect("first retry");
    assert_eq!(first.batch_item_failures.len(), 1, "comes back");
    // Not after the queue's 20 ms visibility timeout: after the first step, 15 to 30 s.
    assert!(drain_once(&h).await.is_none(), "the next attempt waits for its step");
    assert_eq!(h.queue.len(), 1);
    let id = body["notificationId"].as_str().expect("id");
    assert_eq!(get_notification(&h.app, id).await.1["status"], "queued");
}

#[tokio::test]
async fn at_the_horizon_the_last_failure_gives_the_notification_up() {
    let h = harness(&[("ICARE_RETRY_HORIZON_SECONDS", "0")]).await;
    with_policy(&h).await;
    icare_answers(&h, 503, json!({})).await;
    let (status, body) = post_notification(&h.app, Some("k"), &notification()).await;
    assert_eq!(status, 202);
    let id = body["notificationId"].as_str().expect("id").to_owned();
    let last = drain_once(&h).await.expect("the retry at the horizon");
    assert!(last.batch_item_failures.is_empty(), "done for good");
    let (_, body) = get_notification(&h.app, &id).await;
    assert_eq!(body["status"], "failed");
    assert_eq!(body["attempts"], 2);
    assert_eq!(body["failure"]["type"], shared::icare::ICARE_GAVE_UP_TYPE);
    assert!(h.queue.is_empty());
}

/// The harness with the iCare API key read from `source`, as from Secrets Manager.
async fn harness_with_api_key_from(source: Arc<FakeSource>) -> Harness {
    let server = MockServer::start().await;
    let vars = Vars::default()
        .with("ICARE_BASE_URL", server.uri())
        .with_secret_source("ICARE_API_KEY", source)
        .with("ICARE_TIMEOUT_SECONDS", "1")
        .with("ICARE_RETRY_TIMEOUT_SECONDS", "1");
    let config = icare_sender::Config::from_vars(&vars).await.expect("config");
    let queue = Arc::new(EmbeddedQueue::new(Duration::from_millis(20)));
    let dead_letters = Arc::new(EmbeddedQueue::new(Duration::from_millis(20)));
    let app = icare_sender::App::new(
        config,
        Arc::new(EmbeddedTable::new()),
        Arc::new(ReqwestClient::new().expect("http client")),
        Arc::new(SystemClock),
        icare_sender::Queues { retries: queue.clone(), dead_letters: dead_letters.clone() },
    );
    Harness { app, queue, dead_letters, server }
}

#[tokio::test]
async fn a_rotated_api_key_is_read_again_when_icare_refuses_it() {
    for refusal in [401, 403] {
        let source = Arc::new(FakeSource(Mutex::new("old-key".into())));
        let h = harness_with_api_key_from(source.clone()).await;
        with_policy(&h).await;
        Mock::given(method("POST"))
            .and(path("/notifications"))
            .and(header("x-api-key", "rotated-key"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"claimNumber": "ICN-ROTATED"})))
            .expect(1)
            .mount(&h.server)
            .await;
        Mock::given(method("POST"))
            .and(path("/notifications"))
            .respond_with(ResponseTemplate::new(refusal))
            .expect(1)
            .mount(&h.server)
            .await;
        // The operator rotates the key in Secrets Manager; the function still holds the old one.
        *source.0.lock().expect("lock") = "rotated-key".into();
        let (status, body) = post_notification(&h.app, Some("rotated"), &notification()).await;
        assert_eq!((status, body["status"].as_str()), (202, Some("queued")), "{refusal}: refused, so queued: {body}");
        let id = body["notificationId"].as_str().expect("id").to_owned();
        assert!(drain_once(&h).await.expect("a retry message").batch_item_failures.is_empty(), "{refusal}");
        let (_, body) = get_notification(&h.app, &id).await;
        assert_eq!(
            (body["status"].as_str(), body["claimNumber"].as_str()),
            (Some("claimNumberReceived"), Some("ICN-ROTATED")),
            "{refusal}"
        );
        let keys: Vec<String> = received(&h.server, "/notifications")
            .await
            .iter()
            .map(|r| r.headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
            .collect();
        assert_eq!(keys, ["old-key", "rotated-key"], "{refusal}: one refusal, then the key read again");
        assert!(h.queue.is_empty());
        h.server.verify().await;
    }
}

#[tokio::test]
async fn a_field_icare_rejects_is_named_and_not_retried() {
    let h = harness(&[]).await;
    with_policy(&h).await;
    icare_answers(&h, 422, json!({"errors": [{"field": "worker.phone", "message": "is not a valid phone number"}]}))
        .await;
    let (status, error) = post_notification(&h.app, Some("k"), &notification()).await;
    assert_eq!(status, 422);
    assert_eq!(names(&error), ["worker.phone"]);
    assert_eq!(error["type"], shared::icare::ICARE_REJECTED_TYPE);
    assert!(h.queue.is_empty());
    // Replaying gives the same answer without calling iCare again.
    assert_eq!(post_notification(&h.app, Some("k"), &notification()).await.0, 422);
    assert_eq!(received(&h.server, "/notifications").await.len(), 1);
}

#[tokio::test]
async fn unreadable_retry_messages_go_to_the_dead_letter_queue_and_unknown_routes_are_404() {
    let h = harness(&[]).await;
    let mut record = aws_lambda_events::sqs::SqsMessage::default();
    record.message_id = Some("m1".into());
    record.body = Some("not json".into());
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = vec![record];
    assert!(h.app.handle_retries(event).await.batch_item_failures.is_empty());
    assert_eq!(h.dead_letters.len(), 1, "kept for an operator, never dropped");
    let (status, _) = call(&h.app, request("GET", "/icare/unknown", &[], Some(CALLER), &[], None)).await;
    assert_eq!(status, 404);
    let (status, _) = call(&h.app, request("DELETE", "/icare/notifications", &[], Some(CALLER), &[], None)).await;
    assert_eq!(status, 405);
    assert_eq!(get_notification(&h.app, "not-a-uuid").await.0, 404);
}

// ---------------------------------------------------------------- documents

#[tokio::test]
async fn documents_need_a_claim_number_this_gateway_received() {
    let h = harness(&[]).await;
    let (status, error) = post_document(&h.app, "ICN-UNKNOWN", None, &document(pdf_base64(100))).await;
    assert_eq!(status, 404);
    assert!(error["title"].as_str().expect("title").contains("POST /icare/notifications"));
    assert!(received(&h.server, "/claims/ICN-UNKNOWN/documents").await.is_empty());
}

#[tokio::test]
async fn oversize_documents_are_413_and_non_pdfs_400() {
    let h = harness(&[("ICARE_MAX_DOCUMENT_BYTES", "2048")]).await;
    claim(&h, "ICN5").await;
    let (status, error) = post_document(&h.app, "ICN5", None, &document(pdf_base64(2048))).await;
    assert_eq!(status, 413);
    assert!(error["title"].as_str().expect("title").contains("2048"));
    let mut wrong = document(base64_of(b"GIF89a not a pdf"));
    wrong["contentType"] = json!("image/gif");
    let (status, error) = post_document(&h.app, "ICN5", None, &wrong).await;
    assert_eq!(status, 400);
    assert_eq!(names(&error), ["contentType", "contentBase64"]);
    let mut body = document(pdf_base64(10));
    body["documentType"] = json!("photo");
    let (status, error) = post_document(&h.app, "ICN5", None, &body).await;
    assert_eq!((status, names(&error)), (400, vec!["documentType".to_owned()]));
    assert!(received(&h.server, "/claims/ICN5/documents").await.is_empty());
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_document_is_sent_with_its_id_as_idempotency_key() {
    let h = harness(&[]).await;
    claim(&h, "ICN5").await;
    Mock::given(method("POST"))
        .and(path("/claims/ICN5/documents"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"documentId": "ICD1", "receivedAt": "2025-01-01T00:00:00Z"})),
        )
        .mount(&h.server)
        .await;
    let content = pdf_base64(500);
    let (status, body) = post_document(&h.app, "ICN5", Some("doc-key"), &document(content.clone())).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "sent");
    assert!(body["sentAt"].as_str().is_some_and(|at| at.ends_with('Z')));
    let id = body["documentId"].as_str().expect("documentId").to_owned();
    let calls = received(&h.server, "/claims/ICN5/documents").await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].headers.get("idempotency-key").and_then(|v| v.to_str().ok()), Some(id.as_str()));
    let wire: Value = serde_json::from_slice(&calls[0].body).expect("json");
    assert_eq!(
        (wire["documentType"].as_str(), wire["content"].as_str()),
        (Some("medicalCertificate"), Some(content.as_str()))
    );
    // Same key and body: same document, no second upload; different body: 422.
    let (status, again) = post_document(&h.app, "ICN5", Some("doc-key"), &document(content)).await;
    assert_eq!((status, again["documentId"].as_str()), (201, Some(id.as_str())));
    assert_eq!(post_document(&h.app, "ICN5", Some("doc-key"), &document(pdf_base64(501))).await.0, 422);
    assert_eq!(received(&h.server, "/claims/ICN5/documents").await.len(), 1);
    let path = format!("/icare/claims/ICN5/documents/{id}");
    let (status, view) =
        call(&h.app, request("GET", &path, &[("claimNumber", "ICN5"), ("documentId", &id)], Some(CALLER), &[], None))
            .await;
    assert_eq!((status, view["status"].as_str()), (200, Some("sent")));
}

#[tokio::test]
async fn a_document_is_queued_while_icare_is_down_and_sent_by_the_retry() {
    let h = harness(&[]).await;
    claim(&h, "ICN6").await;
    Mock::given(method("POST"))
        .and(path("/claims/ICN6/documents"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .mount(&h.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/claims/ICN6/documents"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"documentId": "ICD9"})))
        .mount(&h.server)
        .await;
    let content = pdf_base64(700 * 1024); // several parts in the table
    let (status, body) = post_document(&h.app, "ICN6", None, &document(content.clone())).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("queued")), "{body}");
    let id = body["documentId"].as_str().expect("id").to_owned();
    assert!(drain_once(&h).await.expect("retry").batch_item_failures.is_empty());
    let path = format!("/icare/claims/ICN6/documents/{id}");
    let (_, view) =
        call(&h.app, request("GET", &path, &[("claimNumber", "ICN6"), ("documentId", &id)], Some(CALLER), &[], None))
            .await;
    assert_eq!((view["status"].as_str(), view["icareDocumentId"].as_str()), (Some("sent"), Some("ICD9")));
    let calls = received(&h.server, "/claims/ICN6/documents").await;
    assert_eq!(calls.len(), 2);
    let wire: Value = serde_json::from_slice(&calls[1].body).expect("json");
    assert_eq!(wire["content"].as_str(), Some(content.as_str()), "the retry sends the stored content whole");
}

// ---------------------------------------------------------------- configuration

#[tokio::test]
async fn configuration_errors_name_the_variable() {
    use shared::config::Vars;
    let error =
        icare_sender::Config::from_vars(&Vars::default().with("ICARE_API_KEY", "k")).await.err().expect("error");
    assert_eq!(error.variable, "ICARE_BASE_URL");
    let vars = Vars::default().with("ICARE_BASE_URL", "https://icare.example").with("ICARE_API_KEY", "k");
    let error = icare_sender::Config::from_vars(&vars.clone().with("ICARE_MAX_DOCUMENT_BYTES", "6000000"))
        .await
        .err()
        .expect("error");
    assert_eq!(error.variable, "ICARE_MAX_DOCUMENT_BYTES");
    let error =
        icare_sender::Config::from_vars(&vars.clone().with("ICARE_TIMEOUT_SECONDS", "30")).await.err().expect("error");
    assert_eq!(error.variable, "ICARE_TIMEOUT_SECONDS");
    let config = icare_sender::Config::from_vars(&vars).await.expect("defaults");
    assert_eq!(config.timeout, Duration::from_secs(icare_sender::DEFAULT_TIMEOUT_SECONDS));
    assert_eq!(config.max_document_bytes, icare_sender::DEFAULT_MAX_DOCUMENT_BYTES);
}
