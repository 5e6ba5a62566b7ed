//! Helpers shared by this crate's tests: the spec's fixtures with concrete dates, requests shaped
//! as API Gateway delivers them, a clock that can be moved, and an `App` wired to a wiremock
//! Claiming.com.au through the real `ReqwestClient`.
#![allow(dead_code)]

use chrono::{DateTime, Duration as TimeDelta, NaiveDate, Utc};
use eligibility_check::{App, Config};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::Value;
use shared::config::Vars;
use shared::http_client::ReqwestClient;
use shared::store::embedded::EmbeddedTable;
use shared::time::{Clock, NEW_SOUTH_WALES, today_in};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use wiremock::{Request, Respond, ResponseTemplate};

pub const CLIENT_ID: &str = "gateway-client";
pub const CLIENT_SECRET: &str = "gateway-secret";
pub const CALLER: &str = "hospital-system";
pub const LOCATION: &str = "25";

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Replaces each `{{today-N}}` with the date N days before `today`.
pub fn with_dates(text: &str, today: NaiveDate) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{today-") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "{{today-".len()..];
        let end = after.find("}}").expect("placeholder closes");
        let days: i64 = after[..end].parse().expect("placeholder is {{today-N}}");
        out.push_str(&(today - TimeDelta::days(days)).format("%Y-%m-%d").to_string());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A fixture as JSON, dates filled in for `today`.
pub fn example(name: &str, today: NaiveDate) -> Value {
    serde_json::from_str(&with_dates(&fixture(name), today)).expect("fixture is JSON")
}

pub fn mandatory(today: NaiveDate) -> Value {
    example("ecf-mandatory-request.json", today)
}

pub fn optional(today: NaiveDate) -> Value {
    example("ecf-optional-request.json", today)
}

/// A clock the test moves by hand.
pub struct SteppingClock(Mutex<DateTime<Utc>>);

impl SteppingClock {
    pub fn new(at: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(at)))
    }
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = at;
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

pub fn today(clock: &dyn Clock) -> NaiveDate {
    today_in(NEW_SOUTH_WALES, clock.now())
}

/// `POST /eligibility?location=...` as API Gateway hands it to the function.
pub fn request(caller: Option<&str>, location: Option<&str>, body: &str) -> lambda_http::Request {
    let uri = match location {
        Some(location) => format!("/eligibility?location={location}"),
        None => "/eligibility".to_owned(),
    };
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(location) = location {
        query.insert("location".to_owned(), vec![location.to_owned()]);
    }
    let mut context = shared::testing::jwt_context(caller);
    context.route_key = Some("POST /eligibility".to_owned());
    context.http.method = http::Method::POST;
    let body = if body.is_empty() { Body::Empty } else { Body::Text(body.to_owned()) };
    http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .body(body)
        .expect("request builds")
        .with_query_string_parameters(query)
        .with_request_context(RequestContext::ApiGatewayV2(context))
}

pub fn check_request(body: &Value) -> lambda_http::Request {
    request(Some(CALLER), Some(LOCATION), &body.to_string())
}

pub fn vars(base_url: &str) -> Vars {
    Vars::default()
        .with("CLAIMING_BASE_URL", base_url)
        .with("CLAIMING_CLIENT_ID", CLIENT_ID)
        .with("CLAIMING_CLIENT_SECRET", CLIENT_SECRET)
        .with("CLAIMING_TIMEOUT_SECONDS", "1")
        .with("ECF_LOCATION_GRANTS", format!("{CALLER}={LOCATION},{OTHER_CALLER}=99"))
}

/// A caller granted another location only.
pub const OTHER_CALLER: &str = "other-hospital";

pub async fn app_with(vars: Vars, clock: Arc<dyn Clock>) -> (App, Arc<EmbeddedTable>) {
    let config = Config::from_vars(&vars).await.expect("config");
    let table = Arc::new(EmbeddedTable::new());
    let http = Arc::new(ReqwestClient::new().expect("client"));
    (App::new(config, table.clone(), http, clock), table)
}

pub async fn app(base_url: &str, clock: Arc<dyn Clock>) -> (App, Arc<EmbeddedTable>) {
    app_with(vars(base_url), clock).await
}

pub fn expiry_text(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The token endpoint: `tok-1`, `tok-2`, ... each expiring at `expiry`.
pub struct TokenResponder {
    pub issued: AtomicUsize,
    pub expiry: String,
}

impl TokenResponder {
    pub fn new(expiry: DateTime<Utc>) -> Self {
        Self { issued: AtomicUsize::new(0), expiry: expiry_text(expiry) }
    }
}

impl Respond for TokenResponder {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"access_token": format!("tok-{n}"), "expiry": self.expiry}))
    }
}

pub async fn json_body(response: lambda_http::Response<Body>) -> Value {
    let bytes = shared::web::body_bytes(response.body());
    serde_json::from_slice(bytes).unwrap_or_else(|_| panic!("JSON body: {}", String::from_utf8_lossy(bytes)))
}

/// The `name`s of the API Error Payload's invalid params.
pub fn invalid_names(error: &Value) -> Vec<String> {
    error["invalidParams"]
        .as_array()
        .map(|params| params.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}
