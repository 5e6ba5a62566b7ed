//! The eligibility check against a wiremock Claiming.com.au, through the real `ReqwestClient`:
//! the spec's examples end to end, the token's caching, expiry and 401 refresh, upstream errors
//! and timeouts, and the audit record.

mod support;

use chrono::{Duration as TimeDelta, Utc};
use serde_json::{Value, json};
use shared::store::ItemGet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TRANSACTION: &str = "SAP00000nM0HfoGhycbNCu9d";

fn token_body() -> Value {
    json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "client_credentials"})
}

/// A token endpoint that expects the JSON client-credentials body and issues `tok-1`, `tok-2`, ...
async fn mount_tokens(server: &MockServer, expiry: chrono::DateTime<Utc>, expected_calls: u64) {
    Mock::given(method("POST"))
        .and(path("/v2/oauth/token"))
        .and(body_json(token_body()))
        .respond_with(TokenResponder::new(expiry))
        .expect(expected_calls)
        .named("token")
        .mount(server)
        .await;
}

fn eligibility() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(path("/v2/eligibility")).and(query_param("location", LOCATION))
}

fn answer(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/json")
}

async fn eligibility_calls(server: &MockServer) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/v2/eligibility")
        .collect()
}

fn authorization(request: &wiremock::Request) -> String {
    request.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_mandatory_example_goes_out_as_written_and_the_answer_comes_back() {
    let server = MockServer::start().await;
    let now = Utc::now();
    let clock = SteppingClock::new(now);
    let today = support::today(clock.as_ref());
    mount_tokens(&server, now + TimeDelta::hours(24), 1).await;
    eligibility()
        .and(header("authorization", "Bearer tok-1"))
        .and(header("content-type", "application/json"))
        .and(body_json(mandatory(today)))
        .respond_with(answer("ecf-mandatory-response.json"))
        .expect(1)
        .mount(&server)
        .await;
    let (app, table) = app(&server.uri(), clock.clone()).await;

    let response = app.handle(check_request(&mandatory(today))).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let check_id = response.headers()[eligibility_check::CHECK_ID_HEADER].to_str().expect("ascii").to_owned();
    let body = json_body(response).await;
    assert_eq!(body, example("ecf-mandatory-response.json", today));
    // Booleans and numbers as the fund sent them.
    assert_eq!(body["flags"]["isAccident"], json!(false));
    assert_eq!(body["items"][0]["chargeAmount"].to_string(), "144.4");
    let typed: shared::claiming::EcfResponse = serde_json::from_value(body).expect("typed response");
    assert_eq!(typed.status.as_deref(), Some("COMPLETE"));

    let record =
        table.get(&eligibility_check::audit::transaction_key(TRANSACTION)).await.expect("get").expect("recorded");
    let attrs = Value::Object(record.attrs.clone());
    assert_eq!(attrs["checkId"], check_id);
    assert_eq!(attrs["caller"], CALLER);
    assert_eq!(attrs["location"], LOCATION);
    assert_eq!(attrs["provider"], "9988770W");
    assert_eq!(attrs["fundEclipseId"], "TST");
    assert_eq!(attrs["eligibilityId"], "31");
    assert_eq!(attrs["transactionId"], TRANSACTION);
    assert_eq!(attrs["status"], "COMPLETE");
    assert_eq!(attrs["outcome"], "answered");
    assert_eq!(attrs["httpStatus"], 200);
    assert_eq!(attrs["upstreamStatus"], 200);
    assert_eq!(attrs["assessmentCodes"], json!(["0", "1001"]));
    assert_eq!(attrs["itemAssessmentCodes"], json!([["2001"]]));
    assert_eq!(attrs["fundAssessmentCode"], "A");
    assert_eq!(attrs["financialStatus"], "Y");
    assert!(attrs["latencyMs"].is_u64());
    let ttl = record.expires_at.expect("expires") - now.timestamp();
    assert!((90 * 86_400 - 5..=90 * 86_400 + 5).contains(&ttl), "{ttl}");
    let stored = attrs.to_string();
    for private in ["POST", "Jamee", "1951-04-24", "4545454"] {
        assert!(!stored.contains(private), "{private} stored: {stored}");
    }
}

#[tokio::test]
async fn the_optional_example_goes_out_as_written_and_the_answer_comes_back() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    let today = support::today(clock.as_ref());
    mount_tokens(&server, Utc::now() + TimeDelta::hours(24), 1).await;
    eligibility()
        .and(body_json(optional(today)))
        .respond_with(answer("ecf-optional-response.json"))
        .expect(1)
        .mount(&server)
        .await;
    let (app, table) = app(&server.uri(), clock.clone()).await;

    let response = app.handle(check_request(&optional(today))).await;

    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await, example("ecf-optional-response.json", today));
    let record = table.get(&eligibility_check::audit::transaction_key("SAP00000pU54asdryCmuGlNc")).await.expect("get");
    assert_eq!(record.expect("recorded").str_attr("eligibilityId"), Some("36"));
}

#[tokio::test]
async fn n_checks_fetch_one_token() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    let today = support::today(clock.as_ref());
    mount_tokens(&server, Utc::now() + TimeDelta::hours(24), 1).await;
    eligibility().respond_with(answer("ecf-mandatory-response.json")).expect(5).mount(&server).await;
    let (app, _) = app(&server.uri(), clock.clone()).await;
    for _ in 0..5 {
        assert_eq!(app.handle(check_request(&mandatory(today))).await.status(), 200);
    }
    assert!(eligibility_calls(&server).await.iter().all(|r| authorization(r) == "Bearer tok-1"));
}

#[tokio::test]
async fn concurrent_checks_share_one_token_refresh() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    let today = support::today(clock.as_ref());
    Mock::given(method("POST"))
        .and(path("/v2/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"access_token": "tok-1", "expiry": expiry_text(Utc::now() + TimeDelta::hours(24))}),
                )
                .set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&server)
        .await;
    eligibility().respond_with(answer("ecf-mandatory-response.json")).expect(10).mount(&server).await;
    let (app, _) = app(&server.uri(), clock.clone()).await;
    let app = Arc::new(app);
    let checks = (0..10).map(|_| {
        let app = Arc::clone(&app);
        let body = mandatory(today);
        async move { app.handle(check_request(&body)).await.status() }
    });
    let statuses = futures::future::join_all(checks).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test]
async fn the_token_is_refreshed_a_few_minutes_before_expiry() {
    let server = MockServer::start().await;
    let start = Utc::now();
    let expiry = start + TimeDelta::hours(24);
    let clock = SteppingClock::new(start);
    let today = support::today(clock.as_ref());
    let tokens = Arc::new(TokenResponder::new(expiry));
    Mock::given(method("POST"))
        .and(path("/v2/oauth/token"))
        .respond_with(ArcResponder(tokens.clone()))
        .mount(&server)
        .await;
    eligibility().respond_with(answer("ecf-mandatory-response.json")).mount(&server).await;
    let (app, _) = app(&server.uri(), clock.clone()).await;

    assert_eq!(app.handle(check_request(&mandatory(today))).await.status(), 200);
    assert_eq!(app.client().tokens().expires_at().await, Some(expiry.with_nanosecond_zero()));
    clock.set(expiry - TimeDelta::minutes(10));
    assert_eq!(app.handle(check_request(&mandatory(today))).await.status(), 200);
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 1, "still early: the cached token is used");
    clock.set(expiry - TimeDelta::minutes(4));
    assert_eq!(app.handle(check_request(&mandatory(today))).await.status(), 200);
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 2, "within 5 minutes of expiry: refreshed");

    let used: Vec<String> = eligibility_calls(&server).await.iter().map(authorization).collect();
    assert_eq!(used, ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]);
}

/// Shares one `TokenResponder` between the mock and the test.
struct ArcResponder(Arc<TokenResponder>);

impl wiremock::Respond for ArcResponder {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        self.0.respond(request)
    }
}

trait NanosecondZero {
    fn with_nanosecond_zero(self) -> Self;
}

impl NanosecondZero for chrono::DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        chrono::Timelike::with_nanosecond(&self, 0).expect("valid")
    }
}

#[tokio::test]
async fn a_401_fetches_a_new_token_once_and_retries() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    let today = support::today(clock.as_ref());
    mount_tokens(&server, Utc::now() + TimeDelta::hours(24), 2).await;
    eligibility()
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    eligibility()
        .and(header("authorization", "Bearer tok-2"))
        .respond_with(answer("ecf-mandatory-response.json"))
        .expect(2)
        .mount(&server)
        .await;
    let (app, table) = app(&server.uri(), clock.clone()).await;

    assert_eq!(app.handle(check_request(&mandatory(today))).await.status(), 200);
    let record =
        table.get(&eligibility_check::audit::transaction_key(TRANSACTION)).await.expect("get").expect("recorded");
    assert_eq!(record.attrs["retriedWithNewToken"], json!(true));
    // The new token is kept for the next check.
    assert_eq!(app.handle(check_request(&mandatory(today))).await.status(), 200);
}

#[tokio::test]
async fn a_second_401_is_a_502_without_a_loop() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    let today = support::today(clock.as_ref());
    mount_tokens(&server, Utc::now() + TimeDelta::hours(24), 2).await;
    eligibility().respond_with(ResponseTemplate::new(401)).expect(2).mount(&server).await;
    let (app, table) = app(&server.uri(), clock.clone()).await;

    let response = app.handle(check_request(&mandatory(today))).await;
    assert_eq!(response.status(), 502);
    let check_id: uuid::Uuid =
        response.headers()[eligibility_check::CHECK_ID_HEADER].to_str().expect("ascii").parse().expect("uuid");
    let title = json_body(response).await["title"].as_str().unwrap_or_default().to_owned();
    assert!(title.contains("refused the gateway's credentials"), "{title}");
    let record = table.get(&eligibility_check::audit::check_key(check_id)).await.expect("get").expect("recorded");
    assert_eq!(record.str_attr("outcome"), Some("credentialsRefused"));
    assert_eq!(record.attrs["upstreamStatus"], json!(401));
}

#[tokio::test]
async fn a_403_is_a_502() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    mount_tokens(&server, Utc::now() + TimeDelta::hours(24), 1).await;
    eligibility().respond_with(ResponseTemplate::new(403)).expect(1).mount(&server).await;
    let (app, _) = app(&server.uri(), clock.clone()).await;
    assert_eq!(app.handle(check_request(&mandatory(support::today(clock.as_ref())))).await.status(), 502);
}

#[tokio::test]
async fn upstream_4xx_answers_pass_through() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    let today = support::today(clock.as_ref());
    mount_tokens(&server, Utc::now() + TimeDelta::hours(24), 1).await;
    let rejection = json!({"status": "ERROR", "transactionId": "SAP0000REJECTED", "message": "Invalid fund"});
    eligibility()
        .and(body_json(mandatory(today)))
        .respond_with(ResponseTemplate::new(400).set_body_json(rejection.clone()))
        .mount(&server)
        .await;
    let mut other = mandatory(today);
    other["patient"]["fund"]["number"] = json!("1111111");
    eligibility()
        .and(body_json(other.clone()))
        .respond_with(ResponseTemplate::new(422).set_body_string("Member not found"))
        .mount(&server)
        .await;
    let (app, table) = app(&server.uri(), clock.clone()).await;

    let response = app.handle(check_request(&mandatory(today))).await;
    assert_eq!(response.status(), 400);
    assert_eq!(json_body(response).await, rejection);
    let record =
        table.get(&eligibility_check::audit::transaction_key("SAP0000REJECTED")).await.expect("get").expect("recorded");
    assert_eq!(record.str_attr("outcome"), Some("rejected"));

    let response = app.handle(check_request(&other)).await;
    assert_eq!(response.status(), 422);
    assert_eq!(json_body(response).await["title"], "Claiming.com.au rejected the request (HTTP 422): Member not found");
}

#[tokio::test]
async fn upstream_5xx_is_a_502() {
    for status in [500, 503] {
        let server = MockServer::start().await;
        let clock = SteppingClock::new(Utc::now());
        mount_tokens(&server, Utc::now() + TimeDelta::hours(24), 1).await;
        eligibility()
            .respond_with(ResponseTemplate::new(status).set_body_string("<html>oops</html>"))
            .mount(&server)
            .await;
        let (app, table) = app(&server.uri(), clock.clone()).await;
        let response = app.handle(check_request(&mandatory(support::today(clock.as_ref())))).await;
        assert_eq!(response.status(), 502);
        let check_id: uuid::Uuid =
            response.headers()[eligibility_check::CHECK_ID_HEADER].to_str().expect("ascii").parse().expect("uuid");
        let error = json_body(response).await;
        assert_eq!(
            error["title"],
            format!("Claiming.com.au failed (HTTP {status}); the eligibility check was not completed. Please retry.")
        );
        let record = table.get(&eligibility_check::audit::check_key(check_id)).await.expect("get").expect("recorded");
        assert_eq!(record.str_attr("outcome"), Some("upstreamError"));
        assert_eq!(record.attrs["httpStatus"], json!(502));
    }
}

#[tokio::test]
async fn answers_over_their_caps_are_502_not_read_whole() {
    // The fund's answer over 1 MiB; then a token answer over 16 KiB.
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    mount_tokens(&server, Utc::now() + TimeDelta::hours(24), 1).await;
    eligibility()
        .respond_with(ResponseTemplate::new(200).set_body_raw(vec![b' '; 1024 * 1024 + 1], "application/json"))
        .mount(&server)
        .await;
    let (big_answer, _) = app(&server.uri(), clock.clone()).await;
    assert_eq!(big_answer.handle(check_request(&mandatory(support::today(clock.as_ref())))).await.status(), 502);

    let server = MockServer::start().await;
    let mut token =
        json!({"access_token": "tok-1", "expiry": Utc::now() + TimeDelta::hours(24)}).to_string().into_bytes();
    token.extend(std::iter::repeat_n(b' ', 16 * 1024));
    Mock::given(method("POST"))
        .and(path("/v2/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(token, "application/json"))
        .mount(&server)
        .await;
    eligibility().respond_with(answer("ecf-mandatory-response.json")).expect(0).mount(&server).await;
    let (big_token, _) = app(&server.uri(), clock.clone()).await;
    assert_eq!(big_token.handle(check_request(&mandatory(support::today(clock.as_ref())))).await.status(), 502);
}

#[tokio::test]
async fn an_answer_that_is_not_json_is_a_502() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    mount_tokens(&server, Utc::now() + TimeDelta::hours(24), 1).await;
    eligibility().respond_with(ResponseTemplate::new(200).set_body_string("OK")).mount(&server).await;
    let (app, _) = app(&server.uri(), clock.clone()).await;
    let response = app.handle(check_request(&mandatory(support::today(clock.as_ref())))).await;
    assert_eq!(response.status(), 502);
}

#[tokio::test]
async fn a_slow_eligibility_answer_is_a_504() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    mount_tokens(&server, Utc::now() + TimeDelta::hours(24), 1).await;
    eligibility()
        .respond_with(answer("ecf-mandatory-response.json").set_delay(Duration::from_millis(2500)))
        .mount(&server)
        .await;
    let (app, table) = app(&server.uri(), clock.clone()).await;
    let started = std::time::Instant::now();
    let response = app.handle(check_request(&mandatory(support::today(clock.as_ref())))).await;
    assert!(started.elapsed() < Duration::from_millis(2000), "gave up after the 1 s timeout");
    assert_eq!(response.status(), 504);
    let check_id: uuid::Uuid =
        response.headers()[eligibility_check::CHECK_ID_HEADER].to_str().expect("ascii").parse().expect("uuid");
    let title = json_body(response).await["title"].as_str().unwrap_or_default().to_owned();
    assert!(title.starts_with("Claiming.com.au did not answer in time"), "{title}");
    let record = table.get(&eligibility_check::audit::check_key(check_id)).await.expect("get").expect("recorded");
    assert_eq!(record.str_attr("outcome"), Some("timeout"));
}

#[tokio::test]
async fn a_slow_token_endpoint_is_a_504() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    Mock::given(method("POST"))
        .and(path("/v2/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"access_token": "tok-1", "expiry": expiry_text(Utc::now() + TimeDelta::hours(24))}),
                )
                .set_delay(Duration::from_millis(2500)),
        )
        .mount(&server)
        .await;
    eligibility().respond_with(answer("ecf-mandatory-response.json")).expect(0).mount(&server).await;
    let (app, _) = app(&server.uri(), clock.clone()).await;
    let response = app.handle(check_request(&mandatory(support::today(clock.as_ref())))).await;
    assert_eq!(response.status(), 504);
}

#[tokio::test]
async fn token_endpoint_failures_are_502_and_nothing_is_checked() {
    let cases = [
        (
            ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})),
            "refused the client credentials (HTTP 401)",
        ),
        (ResponseTemplate::new(500), "answered HTTP 500"),
        (ResponseTemplate::new(200).set_body_json(json!({"expiry": "2030-01-01 00:00:00"})), "no usable access_token"),
        (ResponseTemplate::new(200).set_body_string("not json"), "no usable access_token"),
    ];
    for (template, expected) in cases {
        let server = MockServer::start().await;
        let clock = SteppingClock::new(Utc::now());
        Mock::given(method("POST")).and(path("/v2/oauth/token")).respond_with(template).mount(&server).await;
        eligibility().respond_with(answer("ecf-mandatory-response.json")).expect(0).mount(&server).await;
        let (app, _) = app(&server.uri(), clock.clone()).await;
        let response = app.handle(check_request(&mandatory(support::today(clock.as_ref())))).await;
        assert_eq!(response.status(), 502, "{expected}");
        let title = json_body(response).await["title"].as_str().unwrap_or_default().to_owned();
        assert!(title.contains(expected), "{title}");
        assert!(!title.contains(CLIENT_SECRET));
    }
}

#[tokio::test]
async fn a_rotated_client_secret_is_read_again_when_the_token_endpoint_refuses_it() {
    for refusal in [401, 403] {
        let server = MockServer::start().await;
        let clock = SteppingClock::new(Utc::now());
        let today = support::today(clock.as_ref());
        let rotated =
            json!({"client_id": CLIENT_ID, "client_secret": "rotated-secret", "grant_type": "client_credentials"});
        Mock::given(method("POST"))
            .and(path("/v2/oauth/token"))
            .and(body_json(rotated))
            .respond_with(TokenResponder::new(Utc::now() + TimeDelta::hours(24)))
            .expect(1)
            .named("token for the rotated secret")
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v2/oauth/token"))
            .respond_with(ResponseTemplate::new(refusal).set_body_json(json!({"error": "invalid_client"})))
            .expect(1)
            .named("token for the old secret")
            .mount(&server)
            .await;
        eligibility()
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(answer("ecf-mandatory-response.json"))
            .expect(1)
            .mount(&server)
            .await;
        let source = Arc::new(shared::secrets::FakeSource(std::sync::Mutex::new(CLIENT_SECRET.into())));
        let vars = vars(&server.uri())
            .with("CLAIMING_CLIENT_SECRET", "")
            .with_secret_source("CLAIMING_CLIENT_SECRET", source.clone());
        let (app, _) = app_with(vars, clock.clone()).await;
        // The operator rotates the secret in Secrets Manager; the function still holds the old one.
        *source.0.lock().expect("lock") = "rotated-secret".into();

        let response = app.handle(check_request(&mandatory(today))).await;
        assert_eq!(response.status(), 502, "{refusal}: the old secret is refused");
        let title = json_body(response).await["title"].as_str().unwrap_or_default().to_owned();
        assert!(title.contains(&format!("refused the client credentials (HTTP {refusal})")), "{title}");
        assert_eq!(
            app.handle(check_request(&mandatory(today))).await.status(),
            200,
            "{refusal}: the re-read secret works"
        );
        let secrets: Vec<Value> = server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == "/v2/oauth/token")
            .map(|r| {
                serde_json::from_slice::<Value>(&r.body)
                    .map(|body| body["client_secret"].clone())
                    .unwrap_or(Value::Null)
            })
            .collect();
        assert_eq!(
            secrets,
            [json!(CLIENT_SECRET), json!("rotated-secret")],
            "{refusal}: one refusal, then the secret read again"
        );
        server.verify().await;
    }
}

#[tokio::test]
async fn an_unreachable_claiming_is_a_502() {
    // A port nobody listens on: bind, note the address, close.
    let address = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let clock = SteppingClock::new(Utc::now());
    let (app, _) = app(&format!("http://{address}"), clock.clone()).await;
    let response = app.handle(check_request(&mandatory(support::today(clock.as_ref())))).await;
    assert_eq!(response.status(), 502);
    let title = json_body(response).await["title"].as_str().unwrap_or_default().to_owned();
    assert!(title.contains("could not be reached"), "{title}");
}

#[tokio::test]
async fn a_failed_refresh_before_expiry_keeps_using_the_current_token() {
    let server = MockServer::start().await;
    let start = Utc::now();
    let expiry = start + TimeDelta::hours(24);
    let clock = SteppingClock::new(start);
    let today = support::today(clock.as_ref());
    Mock::given(method("POST"))
        .and(path("/v2/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"access_token": "tok-1", "expiry": expiry_text(expiry)})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/oauth/token"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    eligibility().respond_with(answer("ecf-mandatory-response.json")).mount(&server).await;
    let (app, _) = app(&server.uri(), clock.clone()).await;
    assert_eq!(app.handle(check_request(&mandatory(today))).await.status(), 200);
    clock.set(expiry - TimeDelta::minutes(2));
    assert_eq!(app.handle(check_request(&mandatory(today))).await.status(), 200);
    clock.set(expiry + TimeDelta::seconds(1));
    assert_eq!(app.handle(check_request(&mandatory(today))).await.status(), 502);
}

#[tokio::test]
async fn configuration_errors_name_the_variable() {
    let base = vars("http://127.0.0.1:1");
    for (name, value) in [
        ("CLAIMING_BASE_URL", "ftp://x"),
        ("CLAIMING_TIMEOUT_SECONDS", "0"),
        ("CLAIMING_TIMEOUT_SECONDS", "60"),
        ("ELIGIBILITY_AUDIT_TTL_DAYS", "0"),
    ] {
        let error = eligibility_check::Config::from_vars(&base.clone().with(name, value)).await.err().expect("refused");
        assert_eq!(error.variable, name);
    }
    for name in ["CLAIMING_BASE_URL", "CLAIMING_CLIENT_ID", "CLAIMING_CLIENT_SECRET"] {
        let error = eligibility_check::Config::from_vars(&base.clone().with(name, "")).await.err().expect("refused");
        assert_eq!(error.variable, name);
    }
    let config =
        eligibility_check::Config::from_vars(&base.with("CLAIMING_BASE_URL", "https://sandbox.claiming.com.au/"))
            .await
            .expect("valid");
    assert_eq!(config.claiming.token_url(), "https://sandbox.claiming.com.au/v2/oauth/token");
    assert_eq!(config.audit_ttl_days, 90);
}

#[tokio::test]
async fn a_location_the_caller_is_not_granted_is_refused_and_audited_without_calling_the_fund() {
    let server = MockServer::start().await;
    eligibility().respond_with(answer("ecf-mandatory-response.json")).expect(0).mount(&server).await;
    let clock = SteppingClock::new(Utc::now());
    let body = mandatory(support::today(clock.as_ref()));
    let (app, table) = app(&server.uri(), clock.clone()).await;
    let response = app.handle(request(Some(OTHER_CALLER), Some(LOCATION), &body.to_string())).await;
    assert_eq!(response.status(), 403);
    let check_id = response.headers()[eligibility_check::CHECK_ID_HEADER].to_str().expect("id").parse().expect("uuid");
    let audit = table.get(&eligibility_check::audit::check_key(check_id)).await.expect("get").expect("audited");
    assert_eq!(audit.str_attr("outcome"), Some("forbidden"));
    assert_eq!(audit.str_attr("caller"), Some(OTHER_CALLER));
    let stored = serde_json::to_string(&audit.attrs).expect("json");
    let member = body["patient"]["fund"]["number"].as_str().unwrap_or("none").to_owned();
    for personal in ["familyName", "dateOfBirth", member.as_str()] {
        assert!(!stored.contains(personal), "{personal} in the audit record: {stored}");
    }
    server.verify().await;
}

#[tokio::test]
async fn empty_location_grants_refuse_every_caller() {
    let server = MockServer::start().await;
    mount_tokens(&server, Utc::now() + TimeDelta::hours(24), 0).await;
    eligibility().respond_with(answer("ecf-mandatory-response.json")).expect(0).mount(&server).await;
    let clock = SteppingClock::new(Utc::now());
    let body = mandatory(support::today(clock.as_ref()));
    let (app, table) = app_with(vars(&server.uri()).with("ECF_LOCATION_GRANTS", ""), clock.clone()).await;
    for (caller, location) in [(CALLER, LOCATION), (OTHER_CALLER, "99")] {
        let response = app.handle(request(Some(caller), Some(location), &body.to_string())).await;
        assert_eq!(response.status(), 403, "{caller} at {location}");
        let check_id =
            response.headers()[eligibility_check::CHECK_ID_HEADER].to_str().expect("id").parse().expect("uuid");
        let audit = table.get(&eligibility_check::audit::check_key(check_id)).await.expect("get").expect("audited");
        assert_eq!((audit.str_attr("outcome"), audit.str_attr("caller")), (Some("forbidden"), Some(caller)));
    }
    server.verify().await;
}
