//! The ICP query proxy end to end: a lambda_http request in, the real `ReqwestClient` to a
//! `wiremock` ACC, the embedded table for the audit.

use chrono::{DateTime, TimeZone, Utc};
use icp_query_proxy::{App, Config};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::{Value, json};
use shared::acc::{APPENDIX_B_SAMPLE, IcpRejection, messages};
use shared::config::Vars;
use shared::http_client::ReqwestClient;
use shared::store::ItemQuery;
use shared::store::embedded::EmbeddedTable;
use shared::time::FixedClock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::{header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CALLER: &str = "physio-app";
const CLAIM: &str = "P4865824770";
const DOB: &str = "1985-03-14";
const HMAC_KEY: &str = "a-test-key-for-the-audit-hmac-of-claim-numbers";

fn instant(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().expect("valid instant")
}

/// 2024-06-30 00:00 UTC is 12:00 on 2024-06-30 in Auckland (NZST, UTC+12).
fn default_now() -> DateTime<Utc> {
    instant(2024, 6, 30, 0, 0, 0)
}

struct Harness {
    app: App,
    table: Arc<EmbeddedTable>,
}

async fn harness(base_url: &str, now: DateTime<Utc>, extra: &[(&str, &str)]) -> Harness {
    let mut vars = Vars::default()
        .with("ACC_BASE_URL", base_url)
        .with("ACC_API_KEY", "test-key")
        .with("ICP_VENDOR_GRANTS", "physio-app=VEND01|AB/12|ABCDEFGHIJKL,admin=*")
        .with("ICP_AUDIT_HMAC_KEY", HMAC_KEY);
    for (name, value) in extra {
        vars = vars.with(name, *value);
    }
    let config = Config::from_vars(&vars).await.expect("config");
    let table = Arc::new(EmbeddedTable::new());
    let http = Arc::new(ReqwestClient::new().expect("http client"));
    let app = App::new(config, table.clone(), http, Arc::new(FixedClock(now)));
    Harness { app, table }
}

/// A request as API Gateway (payload v2) and lambda_http hand it over: the query string decoded
/// with form-urlencoded rules, the path parameter already decoded.
fn request_with(method: &str, caller: Option<&str>, claim: Option<&str>, raw_query: &str) -> lambda_http::Request {
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        query.entry(name.into_owned()).or_default().push(value.into_owned());
    }
    let context = shared::testing::jwt_context(caller);
    let mut path_parameters: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(claim) = claim {
        path_parameters.insert("claimNumber".to_owned(), vec![claim.to_owned()]);
    }
    http::Request::builder()
        .method(method)
        .uri("https://gateway.example/claims/icp/x")
        .body(Body::Empty)
        .expect("request")
        .with_query_string_parameters(query)
        .with_path_parameters(path_parameters)
        .with_request_context(RequestContext::ApiGatewayV2(context))
}

fn request(claim: &str, raw_query: &str) -> lambda_http::Request {
    request_with("GET", Some(CALLER), Some(claim), raw_query)
}

fn good_query() -> String {
    format!("dateOfBirth={DOB}&vendorId=VEND01&providerId=PROV01")
}

fn body_text(response: &lambda_http::Response<Body>) -> String {
    match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

fn body_json(response: &lambda_http::Response<Body>) -> Value {
    serde_json::from_str(&body_text(response)).unwrap_or(Value::Null)
}

fn header_of<'a>(response: &'a lambda_http::Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// An ACC that must not be called.
async fn silent_acc() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(500)).expect(0).mount(&server).await;
    server
}

/// An ACC answering the sample to any ICP query.
async fn answering_acc() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(APPENDIX_B_SAMPLE, "application/json"))
        .mount(&server)
        .await;
    server
}

/// The `errors` of a 400 as (parameter, message) pairs; panics unless the answer is a 400 in ACC's form.
fn errors_of(response: &lambda_http::Response<Body>) -> Vec<(String, String)> {
    assert_eq!(response.status(), 400, "{}", body_text(response));
    assert_eq!(header_of(response, "content-type"), Some("application/json"));
    let body = body_json(response);
    let errors: Vec<(String, String)> = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (e["parameter"].as_str().unwrap_or("").to_owned(), e["message"].as_str().unwrap_or("").to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(body["code"], 400);
    assert_eq!(body["message"].as_str(), errors.first().map(|(_, m)| m.as_str()));
    errors
}

fn only_error(response: &lambda_http::Response<Body>) -> (String, String) {
    let errors = errors_of(response);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().unwrap_or_default()
}

fn pair(parameter: &str, message: &str) -> (String, String) {
    (parameter.to_owned(), message.to_owned())
}

#[tokio::test]
async fn every_failing_parameter_is_listed_in_order_with_the_first_as_message() {
    let acc = silent_acc().await;
    let h = harness(&acc.uri(), default_now(), &[]).await;
    let response = h
        .app
        .handle(request_with("GET", Some(CALLER), None, "dateOfBirth=2023-02-29&vendorId=&providerId=AB/12"))
        .await;
    assert_eq!(
        body_json(&response),
        json!({
            "code": 400,
            "message": messages::CLAIM_NUMBER_REQUIRED,
            "errors": [
                {"parameter": "claimNumber", "message": "The Claim Number is required."},
                {"parameter": "dateOfBirth", "message": "The date does not exist, or the format is invalid; use YYYY-MM-DD."},
                {"parameter": "vendorId", "message": "The Vendor ID is required."},
                {"parameter": "providerId", "message": "The provider ID can only contain letters and numbers, no more than 12 characters in all."}
            ]
        })
    );
    assert_eq!(response.status(), 400);
    assert_eq!(header_of(&response, "content-type"), Some("application/json"));
    let response = h.app.handle(request_with("GET", Some(CALLER), Some(CLAIM), "")).await;
    assert_eq!(
        errors_of(&response),
        vec![
            pair("dateOfBirth", "The date of birth of the client is required."),
            pair("vendorId", "The Vendor ID is required."),
            pair("providerId", "The Provider ID is required."),
        ]
    );
}

#[tokio::test]
async fn claim_number_rules_and_boundaries() {
    let acc = answering_acc().await;
    let h = harness(&acc.uri(), default_now(), &[]).await;
    let query = good_query();
    for good in ["A", "9", "AB12cd34EF56", "SP90065"] {
        let response = h.app.handle(request(good, &query)).await;
        assert_eq!(response.status(), 200, "{good:?}");
    }
    let invalid = pair("claimNumber", messages::CLAIM_NUMBER_INVALID);
    for bad in [
        "AB12cd34EF567",
        "AB-123",
        "AB 123",
        " AB123",
        "AB123 ",
        "AB123\n",
        "AB/123",
        "AB%20123",
        "ÄB123",
        "ＡＢ123",
        "١٢٣",
        "éééééééééééé",
    ] {
        assert_eq!(only_error(&h.app.handle(request(bad, &query)).await), invalid, "{bad:?}");
    }
    let required = pair("claimNumber", messages::CLAIM_NUMBER_REQUIRED);
    for blank in ["", " ", "\t \u{a0}"] {
        assert_eq!(only_error(&h.app.handle(request(blank, &query)).await), required, "{blank:?}");
    }
    assert_eq!(only_error(&h.app.handle(request_with("GET", Some(CALLER), None, &query)).await), required);
}

#[tokio::test]
async fn date_of_birth_rules_and_boundaries() {
    let acc = answering_acc().await;
    // Auckland: 2024-06-30 12:00.
    let h = harness(&acc.uri(), default_now(), &[]).await;
    let with_dob = |dob: &str| request(CLAIM, &format!("dateOfBirth={dob}&vendorId=VEND01&providerId=PROV01"));
    for good in ["1900-01-01", "2000-02-29", "2024-02-29", "2024-06-30", "1985%2D03%2D14"] {
        assert_eq!(h.app.handle(with_dob(good)).await.status(), 200, "{good:?}");
    }
    let cases = [
        ("1899-12-31", messages::DATE_OF_BIRTH_TOO_EARLY),
        ("0001-01-01", messages::DATE_OF_BIRTH_TOO_EARLY),
        ("2024-07-01", messages::DATE_OF_BIRTH_IN_FUTURE),
        ("9999-12-31", messages::DATE_OF_BIRTH_IN_FUTURE),
        ("2023-02-29", messages::DATE_OF_BIRTH_INVALID),
        ("1900-02-29", messages::DATE_OF_BIRTH_INVALID),
        ("2024-04-31", messages::DATE_OF_BIRTH_INVALID),
        ("2024-13-01", messages::DATE_OF_BIRTH_INVALID),
        ("1985-3-14", messages::DATE_OF_BIRTH_INVALID),
        ("14/03/1985", messages::DATE_OF_BIRTH_INVALID),
        ("1985-03-14T00:00:00", messages::DATE_OF_BIRTH_INVALID),
        ("%201985-03-14", messages::DATE_OF_BIRTH_INVALID),
        ("1985-03-14+", messages::DATE_OF_BIRTH_INVALID),
        ("１９８５-03-14", messages::DATE_OF_BIRTH_INVALID),
        ("", messages::DATE_OF_BIRTH_REQUIRED),
        ("+++", messages::DATE_OF_BIRTH_REQUIRED),
        ("%20%09", messages::DATE_OF_BIRTH_REQUIRED),
    ];
    for (dob, message) in cases {
        assert_eq!(only_error(&h.app.handle(with_dob(dob)).await), pair("dateOfBirth", message), "{dob:?}");
    }
}

/// "Today" is Auckland's date, whatever the UTC date: (instant, the last date accepted).
#[tokio::test]
async fn today_is_the_date_in_auckland_across_the_utc_date_line() {
    let acc = answering_acc().await;
    let cases = [
        // NZST (UTC+12): midnight in Auckland is 12:00 UTC the day before.
        (instant(2024, 6, 30, 11, 59, 59), "2024-06-30", "2024-07-01"),
        (instant(2024, 6, 30, 12, 0, 0), "2024-07-01", "2024-07-02"),
        // NZDT (UTC+13): midnight in Auckland is 11:00 UTC the day before.
        (instant(2024, 12, 31, 10, 59, 59), "2024-12-31", "2025-01-01"),
        (instant(2024, 12, 31, 11, 0, 0), "2025-01-01", "2025-01-02"),
        // A leap day that exists in Auckland while UTC is still on the 28th.
        (instant(2024, 2, 28, 10, 59, 59), "2024-02-28", "2024-02-29"),
        (instant(2024, 2, 28, 11, 0, 0), "2024-02-29", "2024-03-01"),
    ];
    for (now, today, tomorrow) in cases {
        let h = harness(&acc.uri(), now, &[]).await;
        let with_dob = |dob: &str| request(CLAIM, &format!("dateOfBirth={dob}&vendorId=VEND01&providerId=PROV01"));
        assert_eq!(h.app.handle(with_dob(today)).await.status(), 200, "{now} {today}");
        assert_eq!(
            only_error(&h.app.handle(with_dob(tomorrow)).await),
            pair("dateOfBirth", messages::DATE_OF_BIRTH_IN_FUTURE),
            "{now} {tomorrow}"
        );
    }
}

#[tokio::test]
async fn vendor_and_provider_id_rules_and_boundaries() {
    let acc = answering_acc().await;
    let h = harness(&acc.uri(), default_now(), &[("ICP_VENDOR_GRANTS", "physio-app=*")]).await;
    let with = |vendor: &str, provider: &str| {
        request(CLAIM, &format!("dateOfBirth={DOB}&vendorId={vendor}&providerId={provider}"))
    };
    for (vendor, provider) in
        [("V", "P"), ("AB/12", "ABCDEFGHIJ12"), ("AB%2F12", "abc123"), ("////////////", "1"), ("ABCDEFGHIJ/2", "P1")]
    {
        assert_eq!(h.app.handle(with(vendor, provider)).await.status(), 200, "{vendor:?} {provider:?}");
    }
    let vendor_invalid = pair("vendorId", messages::VENDOR_ID_INVALID);
    for vendor in ["ABCDEFGHIJ/23", "AB-12", "AB+12", "AB%2B12", "AB%5C12", "ÄB12", "%E2%80%8BAB", "AB%0A", "AB%FF"] {
        assert_eq!(only_error(&h.app.handle(with(vendor, "P1")).await), vendor_invalid, "{vendor:?}");
    }
    let provider_invalid = pair("providerId", messages::PROVIDER_ID_INVALID);
    for provider in ["ABCDEFGHIJ123", "AB/12", "AB%2F12", "AB_12", "ß1", "P1%20"] {
        assert_eq!(only_error(&h.app.handle(with("V1", provider)).await), provider_invalid, "{provider:?}");
    }
    assert_eq!(only_error(&h.app.handle(with("%20", "P1")).await), pair("vendorId", messages::VENDOR_ID_REQUIRED));
    assert_eq!(only_error(&h.app.handle(with("V1", "+")).await), pair("providerId", messages::PROVIDER_ID_REQUIRED));
    // A parameter given twice is refused rather than guessed.
    let twice = request(CLAIM, &format!("dateOfBirth={DOB}&vendorId=V1&vendorId=V2&providerId=P1"));
    assert_eq!(only_error(&h.app.handle(twice).await), vendor_invalid);
}

#[tokio::test]
async fn no_caller_is_401_and_an_ungranted_vendor_is_403_after_validation() {
    let acc = silent_acc().await;
    let h = harness(&acc.uri(), default_now(), &[]).await;
    let response = h.app.handle(request_with("GET", None, Some(CLAIM), &good_query())).await;
    assert_eq!(response.status(), 401);
    let body = body_json(&response);
    assert_eq!(body["code"], 401);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(body.as_object().map(|o| o.len()), Some(2));

    let ungranted = format!("dateOfBirth={DOB}&vendorId=OTHER1&providerId=PROV01");
    let response = h.app.handle(request(CLAIM, &ungranted)).await;
    assert_eq!(response.status(), 403);
    assert_eq!(body_json(&response)["code"], 403);
    assert_eq!(header_of(&response, "content-type"), Some("application/json"));
    // Vendor IDs compare exactly.
    let lower = format!("dateOfBirth={DOB}&vendorId=vend01&providerId=PROV01");
    assert_eq!(h.app.handle(request(CLAIM, &lower)).await.status(), 403);
    // An unknown caller with bad parameters learns about the parameters first.
    let response = h.app.handle(request_with("GET", Some("stranger"), Some(CLAIM), "vendorId=OTHER1")).await;
    assert_eq!(errors_of(&response).len(), 2);
    let response = h.app.handle(request_with("GET", Some("stranger"), Some(CLAIM), &good_query())).await;
    assert_eq!(response.status(), 403);

    let response = h.app.handle(request_with("POST", Some(CALLER), Some(CLAIM), &good_query())).await;
    assert_eq!(response.status(), 405);
    assert_eq!(body_json(&response)["code"], 405);
}

#[tokio::test]
async fn a_200_passes_through_unchanged_with_key_correlation_and_encoded_query() {
    let acc = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/acc/v1/claims/icp/{CLAIM}")))
        .and(query_param("dateOfBirth", DOB))
        .and(query_param("vendorId", "AB/12"))
        .and(query_param("providerId", "PROV01"))
        .and(header("x-acc-key", "test-key"))
        .and(header_exists("ACC-CorrelationId"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(APPENDIX_B_SAMPLE, "application/json; charset=utf-8"))
        .expect(1)
        .mount(&acc)
        .await;
    let base = format!("{}/acc/v1/", acc.uri());
    let h = harness(&base, default_now(), &[("ACC_API_KEY_HEADER", "X-ACC-Key")]).await;
    let response = h.app.handle(request(CLAIM, &format!("dateOfBirth={DOB}&vendorId=AB%2F12&providerId=PROV01"))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_text(&response), APPENDIX_B_SAMPLE);
    assert_eq!(header_of(&response, "content-type"), Some("application/json; charset=utf-8"));

    let received = acc.received_requests().await.unwrap_or_default();
    let sent = &received[0];
    assert_eq!(sent.url.query(), Some("dateOfBirth=1985-03-14&vendorId=AB%2F12&providerId=PROV01"));
    let correlation = sent.headers.get("ACC-CorrelationId").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(uuid::Uuid::parse_str(correlation).is_ok());
    assert_eq!(header_of(&response, "ACC-CorrelationId"), Some(correlation));
}

#[tokio::test]
async fn a_200_of_another_shape_still_passes_through_unchanged() {
    let acc = MockServer::start().await;
    let odd = r#"{"claimNumber": 42, "occurredAtWork": "yes"}"#;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(odd, "application/json"))
        .mount(&acc)
        .await;
    let h = harness(&acc.uri(), default_now(), &[]).await;
    let response = h.app.handle(request(CLAIM, &good_query())).await;
    assert_eq!((response.status().as_u16(), body_text(&response)), (200, odd.to_owned()));
}

#[tokio::test]
async fn section_3_rejections_and_other_4xx_pass_through_unchanged() {
    let acc = MockServer::start().await;
    let claims: Vec<(String, IcpRejection)> =
        IcpRejection::ALL.iter().enumerate().map(|(i, r)| (format!("REJECT{i}"), *r)).collect();
    for (claim, rejection) in &claims {
        // ACC's own bytes, spacing and all.
        let body = format!("{{ \"code\": 400, \"message\": {} }}", json!(rejection.message()));
        Mock::given(path(format!("/claims/icp/{claim}")))
            .respond_with(ResponseTemplate::new(400).set_body_raw(body, "application/json"))
            .mount(&acc)
            .await;
    }
    Mock::given(path("/claims/icp/NOTFOUND"))
        .respond_with(
            ResponseTemplate::new(404).set_body_raw(r#"{"code":404,"message":"Not found"}"#, "application/json"),
        )
        .mount(&acc)
        .await;
    Mock::given(path("/claims/icp/BUSY"))
        .respond_with(ResponseTemplate::new(429).set_body_raw("slow down", "text/plain"))
        .mount(&acc)
        .await;
    let h = harness(&acc.uri(), default_now(), &[]).await;
    for (claim, rejection) in &claims {
        let response = h.app.handle(request(claim, &good_query())).await;
        assert_eq!(response.status(), 400);
        assert_eq!(body_text(&response), format!("{{ \"code\": 400, \"message\": {} }}", json!(rejection.message())));
    }
    let response = h.app.handle(request("NOTFOUND", &good_query())).await;
    assert_eq!(
        (response.status().as_u16(), body_text(&response)),
        (404, r#"{"code":404,"message":"Not found"}"#.to_owned())
    );
    let response = h.app.handle(request("BUSY", &good_query())).await;
    assert_eq!((response.status().as_u16(), body_text(&response)), (429, "slow down".to_owned()));
    assert_eq!(header_of(&response, "content-type"), Some("text/plain"));
}

#[tokio::test]
async fn acc_5xx_and_refused_credentials_become_502() {
    let acc = MockServer::start().await;
    for (claim, status) in [("E500", 500), ("E503", 503), ("E401", 401), ("E403", 403), ("E302", 302)] {
        Mock::given(path(format!("/claims/icp/{claim}")))
            .respond_with(ResponseTemplate::new(status).set_body_string("upstream detail P4865824770"))
            .mount(&acc)
            .await;
    }
    let h = harness(&acc.uri(), default_now(), &[]).await;
    for claim in ["E500", "E503", "E401", "E403", "E302"] {
        let response = h.app.handle(request(claim, &good_query())).await;
        assert_eq!(response.status(), 502, "{claim}");
        let body = body_json(&response);
        assert_eq!(body["code"], 502);
        assert!(body["message"].as_str().is_some_and(|m| m.contains("ACC") && !m.contains("P48")), "{body}");
    }
}

#[tokio::test]
async fn an_acc_answer_over_1_mib_is_502_not_read_whole() {
    let acc = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(vec![b' '; 1024 * 1024 + 1], "application/json"))
        .mount(&acc)
        .await;
    let h = harness(&acc.uri(), default_now(), &[]).await;
    let response = h.app.handle(request(CLAIM, &good_query())).await;
    assert_eq!(response.status(), 502);
    assert_eq!(body_json(&response)["code"], 502);
}

#[tokio::test]
async fn a_rotated_acc_key_is_read_again_when_acc_refuses_it() {
    for refusal in [401, 403] {
        let acc = MockServer::start().await;
        Mock::given(method("GET"))
            .and(header("x-api-key", "rotated-key"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(APPENDIX_B_SAMPLE, "application/json"))
            .expect(1)
            .mount(&acc)
            .await;
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(refusal)).expect(1).mount(&acc).await;
        let source = Arc::new(shared::secrets::FakeSource(std::sync::Mutex::new("old-key".into())));
        let vars = Vars::default()
            .with("ACC_BASE_URL", acc.uri())
            .with_secret_source("ACC_API_KEY", source.clone())
            .with("ICP_VENDOR_GRANTS", "physio-app=VEND01")
            .with("ICP_AUDIT_HMAC_KEY", HMAC_KEY);
        let config = Config::from_vars(&vars).await.expect("config");
        let http = Arc::new(ReqwestClient::new().expect("http client"));
        let app = App::new(config, Arc::new(EmbeddedTable::new()), http, Arc::new(FixedClock(default_now())));
        // The operator rotates the key in Secrets Manager; the function still holds the old one.
        *source.0.lock().expect("lock") = "rotated-key".into();
        assert_eq!(app.handle(request(CLAIM, &good_query())).await.status(), 502, "{refusal}: ACC refused the old key");
        assert_eq!(app.handle(request(CLAIM, &good_query())).await.status(), 200, "{refusal}: the re-read key works");
        let sent: Vec<String> = acc
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| r.headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned())
            .collect();
        assert_eq!(sent, ["old-key", "rotated-key"], "{refusal}: one refusal, then the key read again");
        acc.verify().await;
    }
}

#[tokio::test]
async fn no_answer_within_the_configured_timeout_is_504() {
    let acc = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(APPENDIX_B_SAMPLE, "application/json")
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&acc)
        .await;
    let h = harness(&acc.uri(), default_now(), &[("ACC_TIMEOUT_SECONDS", "1")]).await;
    let started = Instant::now();
    let response = h.app.handle(request(CLAIM, &good_query())).await;
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(response.status(), 504);
    assert_eq!(
        body_json(&response),
        json!({"code": 504, "message": "ACC did not answer within 1 second; please try again later."})
    );
}

#[tokio::test]
async fn a_refused_connection_is_502() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let h = harness(&format!("http://127.0.0.1:{port}"), default_now(), &[]).await;
    let started = Instant::now();
    let response = h.app.handle(request(CLAIM, &good_query())).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(response.status(), 502);
    assert_eq!(body_json(&response)["code"], 502);
    assert!(header_of(&response, "ACC-CorrelationId").is_some());
}

#[tokio::test]
async fn every_query_is_audited_without_the_claim_number_or_date_of_birth() {
    let acc = answering_acc().await;
    // The embedded table checks expiry against the real clock: audit "now".
    let now = Utc::now();
    let h = harness(&acc.uri(), now, &[("ICP_AUDIT_TTL_DAYS", "7")]).await;
    assert_eq!(h.app.handle(request(CLAIM, &good_query())).await.status(), 200);
    let bad = format!("dateOfBirth={DOB}&vendorId=VEND01&providerId=P/1");
    assert_eq!(h.app.handle(request(CLAIM, &bad)).await.status(), 400);
    let forbidden = format!("dateOfBirth={DOB}&vendorId=OTHER1&providerId=PROV01");
    assert_eq!(h.app.handle(request(CLAIM, &forbidden)).await.status(), 403);

    let pk = format!("icp-audit#{}", now.format("%Y-%m-%d"));
    let items = h.table.query(&pk, "").await.expect("query");
    assert_eq!(items.len(), 3);
    let digest = icp_query_proxy::audit::hash_claim_number(&secrecy::SecretString::from(HMAC_KEY), CLAIM);
    let plain = shared::acc::ClaimNumber::parse(CLAIM).expect("valid").sha256_hex();
    assert_ne!(digest, plain, "keyed, not a plain hash anyone can recompute");
    for item in &items {
        let text = serde_json::to_string(&item.attrs).expect("serialises");
        assert!(!text.contains(CLAIM) && !text.contains(DOB) && !text.contains("1985"), "{text}");
        assert_eq!(item.attrs["claimNumberHmac"], json!(digest));
        assert_eq!(item.attrs["caller"], json!(CALLER));
        assert_eq!(item.expires_at, Some(now.timestamp() + 7 * 86_400));
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        assert!(item.key.sk.starts_with(&format!("{at}#")), "{}", item.key.sk);
        assert_eq!(item.attrs["at"], json!(at));
    }
    let by_outcome = |code: u64| items.iter().find(|i| i.attrs["outcome"] == json!(code)).map(|i| i.attrs.clone());
    let answered = by_outcome(200).expect("200 audited");
    assert_eq!(answered["result"], "answered");
    assert_eq!(answered["vendorId"], "VEND01");
    assert_eq!(answered["providerId"], "PROV01");
    assert_eq!(answered["upstreamStatus"], 200);
    assert!(answered["upstreamLatencyMs"].is_u64());
    let invalid = by_outcome(400).expect("400 audited");
    assert_eq!((invalid["result"].clone(), invalid["providerId"].clone()), (json!("invalid"), Value::Null));
    assert!(invalid["upstreamLatencyMs"].is_null());
    let forbidden = by_outcome(403).expect("403 audited");
    assert_eq!((forbidden["result"].clone(), forbidden["vendorId"].clone()), (json!("forbidden"), json!("OTHER1")));
}

#[tokio::test]
async fn configuration_errors_name_the_variable() {
    let base = Vars::default()
        .with("ACC_BASE_URL", "https://acc.example/api")
        .with("ACC_API_KEY", "k")
        .with("ICP_AUDIT_HMAC_KEY", HMAC_KEY);
    let error_variable = |vars: Vars| async move { Config::from_vars(&vars).await.err().map(|e| e.variable) };
    assert!(Config::from_vars(&base).await.is_ok());
    let config = Config::from_vars(&base).await.expect("config");
    assert_eq!(config.acc_timeout(), Duration::from_secs(20));
    assert!(config.grants().is_empty());
    let cases = [
        (Vars::default().with("ACC_API_KEY", "k"), "ACC_BASE_URL"),
        (base.clone().with("ACC_BASE_URL", "ftp://acc.example"), "ACC_BASE_URL"),
        (base.clone().with("ACC_BASE_URL", "https://acc.example/?x=1"), "ACC_BASE_URL"),
        (Vars::default().with("ACC_BASE_URL", "https://acc.example"), "ACC_API_KEY"),
        (base.clone().with("ACC_API_KEY_HEADER", "x api key"), "ACC_API_KEY_HEADER"),
        (base.clone().with("ICP_VENDOR_GRANTS", "physio-app"), "ICP_VENDOR_GRANTS"),
        (base.clone().with("ACC_TIMEOUT_SECONDS", "0"), "ACC_TIMEOUT_SECONDS"),
        (base.clone().with("ACC_TIMEOUT_SECONDS", "29"), "ACC_TIMEOUT_SECONDS"),
        (base.clone().with("ACC_TIMEOUT_SECONDS", "1.5"), "ACC_TIMEOUT_SECONDS"),
        (base.clone().with("ICP_AUDIT_TTL_DAYS", "0"), "ICP_AUDIT_TTL_DAYS"),
    ];
    for (vars, variable) in cases {
        assert_eq!(error_variable(vars).await.as_deref(), Some(variable));
    }
}

#[tokio::test]
async fn a_guessed_date_of_birth_gets_429_after_the_limit_without_calling_acc() {
    let acc = MockServer::start().await;
    let mismatch = json!({"code": 400, "message": "The Claim and specified Patient DOB do not match."});
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(mismatch))
        .expect(4)
        .mount(&acc)
        .await;
    let h = harness(&acc.uri(), default_now(), &[("ICP_DOB_MISMATCH_LIMIT", "3")]).await;
    for guess in ["1985-03-15", "1985-03-16", "1985-03-17"] {
        let query = format!("dateOfBirth={guess}&vendorId=VEND01&providerId=PROV01");
        assert_eq!(h.app.handle(request(CLAIM, &query)).await.status(), 400, "{guess}: ACC's answer");
    }
    let query = format!("dateOfBirth={DOB}&vendorId=VEND01&providerId=PROV01");
    let response = h.app.handle(request(CLAIM, &query)).await;
    assert_eq!(response.status(), 429, "even the right date: the claim is locked for this caller for a day");
    let body: Value = match response.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text).expect("json"),
        _ => Value::Null,
    };
    assert_eq!(body["code"], 429, "ACC's error form: {body}");
    // Another caller is not affected.
    let other =
        request_with("GET", Some("admin"), Some(CLAIM), "dateOfBirth=1985-03-18&vendorId=VEND01&providerId=PROV01");
    assert_eq!(h.app.handle(other).await.status(), 400);
    acc.verify().await;
}

#[tokio::test]
async fn the_date_of_birth_counter_expires_a_day_after_its_first_mismatch() {
    use shared::store::ItemGet;
    let acc = MockServer::start().await;
    let mismatch = json!({"code": 400, "message": "The Claim and specified Patient DOB do not match."});
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(mismatch))
        .expect(2)
        .mount(&acc)
        .await;
    let h = harness(&acc.uri(), default_now(), &[]).await;
    let digest = icp_query_proxy::audit::hash_claim_number(&secrecy::SecretString::from(HMAC_KEY), CLAIM);
    let counter = icp_query_proxy::audit::dob_counter_key(CALLER, &digest);
    let query = "dateOfBirth=1985-03-15&vendorId=VEND01&providerId=PROV01";
    // The table expires items by the real clock, whatever the proxy's clock says.
    let before = Utc::now().timestamp();
    assert_eq!(h.app.handle(request(CLAIM, query)).await.status(), 400);
    let after = Utc::now().timestamp();
    let first = h.table.get(&counter).await.expect("get").expect("the counter is stored");
    assert_eq!(first.attrs["count"], json!(1));
    let expires_at = first.expires_at.expect("the counter carries an expiry");
    assert!((before + 86_400..=after + 86_400).contains(&expires_at), "{expires_at} is not a day from now ({before})");
    // A second mismatch counts in the same day: the expiry stays where the first one set it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(h.app.handle(request(CLAIM, query)).await.status(), 400);
    let second = h.table.get(&counter).await.expect("get").expect("the counter is stored");
    assert_eq!((second.attrs["count"].clone(), second.expires_at), (json!(2), Some(expires_at)));
    acc.verify().await;
}
