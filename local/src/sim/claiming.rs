//! Simulator of Claiming.com.au v2 (token and fund eligibility, ECF), mounted at `/sim/claiming`.
//!
//! - `POST /v2/oauth/token` with the JSON client-credentials body: [`CLIENT_ID`] and
//!   [`CLIENT_SECRET`] get `{"access_token": "sim-...", "expiry": "YYYY-MM-DD HH:MM:SS"}` (UTC,
//!   24 hours ahead); other credentials get 401.
//! - `POST /v2/eligibility?location=...` with `Authorization: Bearer <issued token>` (else 401):
//!   answers in the spec's example response form, echoing the request with booleans and numbers,
//!   the scenario chosen by `patient.fund.number`:
//!
//! | `patient.fund.number` | answer |
//! | --- | --- |
//! | `4545454` (the spec's) and any other number | 200: eligible, the spec's example response (notes 0 and 1001; each item note 2001, benefit 20) |
//! | `1000001` | 200: the patient is not a member (note 3001, financial status N, assessment code R, no table, items benefit 0) |
//! | `1000002` | 200: eligible, but the fund rejects the first item (its note 2002, benefit 0) |
//! | `1000401` | 401 for every token (the gateway fetches one new token, retries once, then answers 502) |
//! | `1000500` | 500 (the gateway answers 502) |
//! | `1000030` | 200 after 30 s (past the gateway's default 8 s timeout: 504) |
//!
//! Codes other than 0, 1001 and 2001 are the simulator's own: the "Fund Eligibility (ECF)" examples show no other.
//! Requests are not validated beyond "is it JSON with a `location` query parameter": the gateway
//! validates before anything leaves.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{TimeDelta, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The client id the simulator accepts (the local default of `CLAIMING_CLIENT_ID`).
pub const CLIENT_ID: &str = "local-claiming-client";
/// The client secret it accepts (the local default of `CLAIMING_CLIENT_SECRET`).
pub const CLIENT_SECRET: &str = "local-claiming-secret";
/// How long an issued token lives (as Claiming.com.au's do).
pub const TOKEN_LIFETIME: TimeDelta = TimeDelta::hours(24);

pub const NOT_A_MEMBER: &str = "1000001";
pub const ITEM_REJECTED: &str = "1000002";
pub const ALWAYS_401: &str = "1000401";
pub const SERVER_ERROR: &str = "1000500";
pub const SLOW: &str = "1000030";
const SLOW_DELAY: Duration = Duration::from_secs(30);
/// Issued tokens kept; the oldest are forgotten past this.
const MAX_TOKENS: usize = 10_000;

#[derive(Default)]
struct Simulator {
    tokens: Mutex<HashSet<String>>,
    eligibility_ids: AtomicU64,
}

/// Routes mounted under `/sim/claiming` by the local stack.
pub fn router() -> Router {
    let simulator = Arc::new(Simulator { eligibility_ids: AtomicU64::new(31), ..Simulator::default() });
    Router::new()
        .route("/v2/oauth/token", post(token))
        .route("/v2/eligibility", post(eligibility))
        .with_state(simulator)
}

/// Configuration defaults that point the eligibility check at this simulator.
pub fn defaults(base_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CLAIMING_BASE_URL", format!("{}/sim/claiming", base_url.trim_end_matches('/'))),
        ("CLAIMING_CLIENT_ID", CLIENT_ID.to_owned()),
        ("CLAIMING_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
    ]
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn token(State(simulator): State<Arc<Simulator>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |name: &str| request.get(name).and_then(Value::as_str);
    if field("grant_type") != Some("client_credentials") {
        return json_response(StatusCode::BAD_REQUEST, json!({"error": "unsupported_grant_type"}));
    }
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
        return json_response(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    }
    let token = format!("sim-{}", uuid::Uuid::new_v4().simple());
    {
        let mut tokens = simulator.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if tokens.len() >= MAX_TOKENS {
            tokens.clear();
        }
        tokens.insert(token.clone());
    }
    let expiry = (Utc::now() + TOKEN_LIFETIME).format("%Y-%m-%d %H:%M:%S").to_string();
    json_response(StatusCode::OK, json!({"access_token": token, "expiry": expiry}))
}

fn authorized(simulator: &Simulator, headers: &HeaderMap) -> bool {
    let Some(token) =
        headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    simulator.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(token.trim())
}

async fn eligibility(
    State(simulator): State<Arc<Simulator>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&simulator, &headers) {
        return json_response(StatusCode::UNAUTHORIZED, json!({"message": "Unauthorised: invalid or expired token"}));
    }
    if params.get("location").is_none_or(|l| l.trim().is_empty()) {
        return json_response(StatusCode::BAD_REQUEST, json!({"message": "The location parameter is required"}));
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return json_response(StatusCode::BAD_REQUEST, json!({"message": "The body must be a JSON object"}));
    };
    let fund_number =
        request.get("patient").and_then(|p| p.pointer("/fund/number")).and_then(Value::as_str).unwrap_or_default();
    let scenario = Scenario::of(fund_number);
    match scenario {
        Scenario::Always401 => {
            return json_response(
                StatusCode::UNAUTHORIZED,
                json!({"message": "Unauthorised: invalid or expired token"}),
            );
        }
        Scenario::ServerError => {
            return json_response(StatusCode::INTERNAL_SERVER_ERROR, json!({"message": "Internal Server Error"}));
        }
        Scenario::Slow => tokio::time::sleep(SLOW_DELAY).await,
        _ => {}
    }
    let eligibility_id = simulator.eligibility_ids.fetch_add(1, Ordering::SeqCst);
    json_response(StatusCode::OK, answer(&request, scenario, eligibility_id))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Eligible,
    NotAMember,
    ItemRejected,
    Always401,
    ServerError,
    Slow,
}

impl Scenario {
    fn of(fund_number: &str) -> Self {
        match fund_number {
            NOT_A_MEMBER => Scenario::NotAMember,
            ITEM_REJECTED => Scenario::ItemRejected,
            ALWAYS_401 => Scenario::Always401,
            SERVER_ERROR => Scenario::ServerError,
            SLOW => Scenario::Slow,
            _ => Scenario::Eligible,
        }
    }
}

fn note(code: &str, text: &str) -> Value {
    json!({"assessor": "Fund", "code": code, "note": text})
}

/// `"Y"`/`"N"` -> `true`/`false`, anything else unchanged.
fn to_bool(value: &Value) -> Value {
    match value.as_str() {
        Some("Y") => Value::Bool(true),
        Some("N") => Value::Bool(false),
        _ => value.clone(),
    }
}

/// `"144.40"` -> `144.4`, `"1000.00"` -> `1000`; anything else unchanged.
fn to_number(value: &Value) -> Value {
    value
        .as_str()
        .and_then(|text| Decimal::from_str(text).ok())
        .and_then(|amount| serde_json::Number::from_str(&amount.normalize().to_string()).ok())
        .map_or_else(|| value.clone(), Value::Number)
}

/// A copy of `section` with the `fields` converted by `convert`.
fn converted(section: Option<&Value>, fields: &[&str], convert: fn(&Value) -> Value) -> Value {
    let mut section = section.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    if let Some(object) = section.as_object_mut() {
        for field in fields {
            if let Some(value) = object.get_mut(*field) {
                *value = convert(value);
            }
        }
    }
    section
}

/// The spec's example response for `request`, adjusted for `scenario`.
fn answer(request: &Map<String, Value>, scenario: Scenario, eligibility_id: u64) -> Value {
    let items: Vec<Value> = request
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let mut item = converted(Some(item), &["chargeAmount", "serviceRate"], to_number);
            let (code, text, benefit) = match (scenario, index) {
                (Scenario::NotAMember, _) => ("2003", "The patient is not covered by the Fund.", 0),
                (Scenario::ItemRejected, 0) => {
                    ("2002", "The Fund rejects this item: it is not covered by the patient's table.", 0)
                }
                _ => ("2001", "The Fund does not pay for this sort of stuff", 20),
            };
            if let Some(object) = item.as_object_mut() {
                object.insert("MedicareVoucherId".into(), json!("01"));
                object.insert("MedicareServiceId".into(), json!(format!("{:04}", index + 1)));
                object.insert("assessmentNotes".into(), json!([note(code, text)]));
                object.insert("benefit".into(), json!([{"assessor": "Fund", "benefit": benefit}]));
            }
            item
        })
        .collect();
    let (notes, fund) = if scenario == Scenario::NotAMember {
        (
            json!([note("3001", "Patient is not a member of the Health Fund specified in the request.")]),
            json!({"financialStatus": "N", "assessmentCode": "R", "referenceId": format!("STS{eligibility_id:06}")}),
        )
    } else {
        (
            json!([
                note("0", "Patient is eligible to claim with Health Fund specified in the request."),
                note("1001", "Patient to contact Health Fund"),
            ]),
            json!({
                "benefitLimitations": "This is to test a return of 100 character entry in the table description or benefit limitations....",
                "financialStatus": "Y",
                "assessmentCode": "A",
                "referenceId": format!("STS{eligibility_id:06}"),
                "table": {"name": "Basic Hospital", "scale": "SINGLE", "description": "Hospital cover only"},
                "peaPotentialInd": "N"
            }),
        )
    };
    let transaction_id: String = format!("SIM{}", uuid::Uuid::new_v4().simple()).chars().take(24).collect();
    let mut response = json!({
        "type": "OEC",
        "flags": converted(request.get("flags"), &["compensationClaim", "isAccident"], to_bool),
        "admission": converted(request.get("admission"), &["preExistingAilmentInd", "sameDay", "emergencyAdmission"], to_bool),
        "location": request.get("location").cloned().unwrap_or(Value::Null),
        "patient": request.get("patient").cloned().unwrap_or(Value::Null),
        "items": items,
        "eligibilityId": eligibility_id,
        "transactionId": transaction_id,
        "timeReceived": Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        "medicareResponse": "0",
        "assessmentNotes": notes,
        "estimations": {"fund": fund},
        "status": "COMPLETE"
    });
    if let (Some(contact), Some(object)) = (request.get("contact"), response.as_object_mut()) {
        object.insert("contact".into(), contact.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use eligibility_check::{App, Config};
    use lambda_http::{Body, RequestExt};
    use shared::store::ItemGet;
    use std::sync::Arc;

    const MANDATORY: &str =
        include_str!("../../../functions/eligibility-check/tests/fixtures/ecf-mandatory-request.json");
    const MANDATORY_RESPONSE: &str =
        include_str!("../../../functions/eligibility-check/tests/fixtures/ecf-mandatory-response.json");

    /// The spec's mandatory example with `{{today-N}}` filled in.
    fn example(fund_number: &str) -> Value {
        let today = shared::time::today_in(shared::time::NEW_SOUTH_WALES, Utc::now());
        let mut text = MANDATORY.to_owned();
        for days in [3, 4] {
            let date = (today - TimeDelta::days(days)).format("%Y-%m-%d").to_string();
            text = text.replace(&format!("{{{{today-{days}}}}}"), &date);
        }
        let mut body: Value = serde_json::from_str(&text).expect("fixture is JSON");
        body["patient"]["fund"]["number"] = json!(fund_number);
        body
    }

    fn request(body: &Value) -> lambda_http::Request {
        use aws_lambda_events::apigw::{
            ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequestContext,
        };
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims.insert("client_id".to_owned(), "local".to_owned());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.authorizer = Some(authorizer);
        http::Request::builder()
            .method("POST")
            .uri("/eligibility?location=25")
            .body(Body::Text(body.to_string()))
            .expect("request")
            .with_query_string_parameters(HashMap::from([("location".to_owned(), vec!["25".to_owned()])]))
            .with_request_context(lambda_http::request::RequestContext::ApiGatewayV2(context))
    }

    /// The real eligibility check against this simulator on a local port.
    async fn start() -> (App, Arc<shared::store::embedded::EmbeddedTable>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, Router::new().nest("/sim/claiming", router())).await });
        let mut vars = shared::config::Vars::default()
            .with("CLAIMING_TIMEOUT_SECONDS", "2")
            .with("ECF_LOCATION_GRANTS", "local=*");
        for (name, value) in defaults(&base) {
            vars = vars.with_default(name, value);
        }
        let table = Arc::new(shared::store::embedded::EmbeddedTable::new());
        let http = Arc::new(shared::http_client::ReqwestClient::new().expect("client"));
        let app = App::new(
            Config::from_vars(&vars).await.expect("config"),
            table.clone(),
            http,
            Arc::new(shared::time::SystemClock),
        );
        (app, table)
    }

    async fn check(app: &App, fund_number: &str) -> (u16, Value) {
        let response = app.handle(request(&example(fund_number))).await;
        let status = response.status().as_u16();
        let body = serde_json::from_slice(shared::web::body_bytes(response.body())).unwrap_or(Value::Null);
        (status, body)
    }

    #[tokio::test]
    async fn the_spec_example_gets_the_spec_example_response() {
        let (app, table) = start().await;
        let (status, body) = check(&app, "4545454").await;
        assert_eq!(status, 200);
        let mut expected: Value = serde_json::from_str(MANDATORY_RESPONSE).expect("fixture is JSON");
        // What varies per call: ids, time, and the dates the request carried.
        for field in ["eligibilityId", "transactionId", "timeReceived"] {
            expected[field] = body[field].clone();
        }
        expected["admission"]["admissionDate"] = body["admission"]["admissionDate"].clone();
        expected["items"][0]["date"] = body["items"][0]["date"].clone();
        expected["estimations"]["fund"]["referenceId"] = body["estimations"]["fund"]["referenceId"].clone();
        assert_eq!(body, expected);
        let transaction = body["transactionId"].as_str().expect("transaction id");
        let record = table.get(&eligibility_check::audit::transaction_key(transaction)).await.expect("get");
        assert_eq!(record.expect("recorded").str_attr("status"), Some("COMPLETE"));
    }

    #[tokio::test]
    async fn scenarios_by_fund_number() {
        let (app, _) = start().await;
        let (status, body) = check(&app, NOT_A_MEMBER).await;
        assert_eq!(status, 200);
        assert_eq!(body["assessmentNotes"][0]["code"], "3001");
        assert_eq!(body["estimations"]["fund"]["financialStatus"], "N");
        let (status, body) = check(&app, ITEM_REJECTED).await;
        assert_eq!(status, 200);
        assert_eq!(body["items"][0]["assessmentNotes"][0]["code"], "2002");
        assert_eq!(body["items"][0]["benefit"][0]["benefit"].to_string(), "0");
        assert_eq!(check(&app, ALWAYS_401).await.0, 502);
        assert_eq!(check(&app, SERVER_ERROR).await.0, 502);
        // Past the 2 s timeout of this test's configuration.
        assert_eq!(check(&app, SLOW).await.0, 504);
    }

    #[test]
    fn defaults_point_at_the_simulator() {
        let defaults = defaults("http://127.0.0.1:3000/");
        assert!(defaults.contains(&("CLAIMING_BASE_URL", "http://127.0.0.1:3000/sim/claiming".to_owned())));
        assert!(defaults.contains(&("CLAIMING_CLIENT_SECRET", CLIENT_SECRET.to_owned())));
    }
}
