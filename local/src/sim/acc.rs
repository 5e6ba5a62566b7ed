//! Simulator of NZ ACC's ICP query (`GET claims/icp/{claimNumber}`), mounted at `/sim/acc`.
//!
//! It checks the API key (`x-api-key` must be [`API_KEY`]), validates the parameters as ACC does
//! (ACC ICP Query API v1.1, §2.2–2.5, with `shared::acc`), then answers from fixtures. Every fixture's date of birth is
//! [`FIXTURE_DATE_OF_BIRTH`]; another date gives the "DOB do not match" rejection.
//!
//! | claimNumber | answer |
//! | --- | --- |
//! | `P4865824770`, `SP90065` | 200, the Appendix B sample |
//! | `HELD001` | 400 cover held |
//! | `DECLINE001` | 400 cover declined |
//! | `TPA001` | 400 managed by a TPA |
//! | `NOTELIG001` | 400 not eligible |
//! | `UNLIKELY001` | 400 unlikely to be eligible |
//! | `ASSESS001` | 400 needs assessment |
//! | `SLOW5` | 200 after 5 s (a slow but normal answer) |
//! | `SLOW25` | 200 after 25 s (past the proxy's default 20 s timeout: 504) |
//! | `DOWN500` | 500 (the proxy answers 502) |
//! | `SHAPE001` | 200 whose body departs from Appendix B (the proxy passes it on and logs a warning) |
//! | anything else | 404 `{"code": 404, "message": "No claim was found with this claim number."}` (a guess: ACC ICP Query API v1.1 is silent) |

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use shared::acc::{APPENDIX_B_SAMPLE, AccError, IcpQuery, IcpRejection, RawIcpQuery};
use shared::time::{NEW_ZEALAND, today_in};
use std::collections::HashMap;
use std::time::Duration;

/// The API key the simulator accepts (the local default of `ACC_API_KEY`).
pub const API_KEY: &str = "local-acc-api-key";
/// The header it is read from (the proxy's default `ACC_API_KEY_HEADER`).
pub const API_KEY_HEADER: &str = "x-api-key";
/// The date of birth of every fixture claim.
pub const FIXTURE_DATE_OF_BIRTH: &str = "1985-03-14";

/// The vendor IDs granted to the local stack's default caller `local`.
pub const LOCAL_VENDOR_IDS: [&str; 2] = ["VEND01", "ICP/01"];

const CORRELATION_HEADER: &str = "ACC-CorrelationId";

/// Routes mounted under `/sim/acc` by the local stack.
pub fn router() -> Router {
    Router::new().route("/claims/icp/{claim_number}", get(icp_query))
}

/// Configuration defaults that point the ICP proxy at this simulator.
pub fn defaults(base_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ACC_BASE_URL", format!("{}/sim/acc", base_url.trim_end_matches('/'))),
        ("ACC_API_KEY", API_KEY.to_owned()),
        ("ACC_API_KEY_HEADER", API_KEY_HEADER.to_owned()),
        // The local stack's default caller is `local`; any other vendor ID shows the 403.
        ("ICP_VENDOR_GRANTS", format!("local={}", LOCAL_VENDOR_IDS.join("|"))),
    ]
}

enum Fixture {
    Details { delay: Duration, body: String },
    Rejected(IcpRejection),
    ServerError,
}

fn fixture(claim_number: &str) -> Option<Fixture> {
    let sample_as = |claim: &str| {
        let mut body = serde_json::from_str::<Value>(APPENDIX_B_SAMPLE).unwrap_or(Value::Null);
        if let Some(object) = body.as_object_mut() {
            object.insert("claimNumber".to_owned(), Value::from(claim));
        }
        body
    };
    let text = |body: Value| body.to_string();
    let details = |delay_secs, body| Some(Fixture::Details { delay: Duration::from_secs(delay_secs), body });
    match claim_number {
        "P4865824770" | "SP90065" => details(0, APPENDIX_B_SAMPLE.to_owned()),
        "SLOW5" => details(5, text(sample_as("SLOW5"))),
        "SLOW25" => details(25, text(sample_as("SLOW25"))),
        "SHAPE001" => {
            let mut body = sample_as("SHAPE001");
            if let Some(weekly) = body.get_mut("weeklyCompensation").and_then(Value::as_object_mut) {
                weekly.insert("daysPaid".to_owned(), Value::from("one hundred and twenty-five"));
            }
            details(0, text(body))
        }
        "HELD001" => Some(Fixture::Rejected(IcpRejection::CoverHeld)),
        "DECLINE001" => Some(Fixture::Rejected(IcpRejection::CoverDeclined)),
        "TPA001" => Some(Fixture::Rejected(IcpRejection::TpaExclusion)),
        "NOTELIG001" => Some(Fixture::Rejected(IcpRejection::NotEligible)),
        "UNLIKELY001" => Some(Fixture::Rejected(IcpRejection::UnlikelyEligible)),
        "ASSESS001" => Some(Fixture::Rejected(IcpRejection::NeedsAssessment)),
        "DOWN500" => Some(Fixture::ServerError),
        _ => None,
    }
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(error: &AccError) -> Response {
    json(StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), error)
}

async fn icp_query(
    Path(claim_number): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let correlation = headers.get(CORRELATION_HEADER).cloned();
    let mut response = answer(&claim_number, &params, &headers).await;
    if let Some(value) = correlation {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

async fn answer(claim_number: &str, params: &HashMap<String, String>, headers: &HeaderMap) -> Response {
    let key_ok = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok()) == Some(API_KEY);
    if !key_ok {
        return error(&AccError::new(401, "The API key is missing or invalid."));
    }
    let raw = RawIcpQuery {
        claim_number: Some(claim_number),
        date_of_birth: params.get("dateOfBirth").map(String::as_str),
        vendor_id: params.get("vendorId").map(String::as_str),
        provider_id: params.get("providerId").map(String::as_str),
    };
    let today = today_in(NEW_ZEALAND, chrono::Utc::now());
    let query = match IcpQuery::parse(raw, today) {
        Ok(query) => query,
        Err(errors) => return error(&AccError::invalid_parameters(errors)),
    };
    let Some(fixture) = fixture(query.claim_number.as_str()) else {
        return error(&AccError::new(404, "No claim was found with this claim number."));
    };
    if query.date_of_birth.to_iso() != FIXTURE_DATE_OF_BIRTH {
        return error(&IcpRejection::DateOfBirthMismatch.to_error());
    }
    match fixture {
        Fixture::Details { delay, body } => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Fixture::Rejected(rejection) => error(&rejection.to_error()),
        Fixture::ServerError => error(&AccError::new(500, "An unexpected error occurred.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_has_a_fixture_and_the_sample_is_served() {
        let rejections: Vec<_> = ["HELD001", "DECLINE001", "TPA001", "NOTELIG001", "UNLIKELY001", "ASSESS001"]
            .into_iter()
            .filter_map(|claim| match fixture(claim) {
                Some(Fixture::Rejected(rejection)) => Some(rejection),
                _ => None,
            })
            .collect();
        assert_eq!(rejections.len(), 6);
        assert!(matches!(fixture("P4865824770"), Some(Fixture::Details { body, .. }) if body == APPENDIX_B_SAMPLE));
        let Some(Fixture::Details { body, .. }) = fixture("SLOW5") else { panic!("SLOW5 is a fixture") };
        assert!(body.contains(r#""claimNumber":"SLOW5""#));
        assert!(fixture("UNKNOWN").is_none());
    }

    #[test]
    fn defaults_point_at_the_simulator() {
        let defaults = defaults("http://127.0.0.1:3000/");
        assert!(defaults.contains(&("ACC_BASE_URL", "http://127.0.0.1:3000/sim/acc".to_owned())));
    }
}
