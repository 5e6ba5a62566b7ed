//! The call to ACC and what its answer becomes for our caller.

use crate::config::Config;
use secrecy::{ExposeSecret, SecretString};
use shared::acc::{AccError, IcpClaimDetails, IcpQuery};
use shared::http_client::{HttpError, Method, OutboundRequest, OutboundResponse};
use url::Url;
use uuid::Uuid;

/// The header that carries the correlation id to ACC and back to our caller.
pub const CORRELATION_HEADER: &str = "ACC-CorrelationId";

/// `{ACC_BASE_URL}/claims/icp/{claimNumber}?dateOfBirth=...&vendorId=...&providerId=...`, every value
/// percent-encoded (the vendor ID's `/` becomes `%2F`).
pub fn query_url(base: &Url, query: &IcpQuery) -> Option<Url> {
    let mut url = base.clone();
    url.path_segments_mut().ok()?.pop_if_empty().extend(["claims", "icp", query.claim_number.as_str()]);
    url.query_pairs_mut()
        .append_pair("dateOfBirth", &query.date_of_birth.to_iso())
        .append_pair("vendorId", query.vendor_id.as_str())
        .append_pair("providerId", query.provider_id.as_str());
    Some(url)
}

pub fn request(config: &Config, api_key: &SecretString, url: &Url, correlation_id: Uuid) -> OutboundRequest {
    OutboundRequest::new(Method::Get, url.as_str())
        .header(config.acc_api_key_header.as_str(), api_key.expose_secret())
        .header(CORRELATION_HEADER, correlation_id.to_string())
        .header("accept", "application/json")
        .timeout(config.acc_timeout)
}

/// What became of the query upstream.
#[derive(Debug)]
pub enum Upstream {
    /// ACC answered with a status our caller should see as is (2xx, and 4xx but 401/403).
    PassThrough(OutboundResponse),
    /// Our answer replaces ACC's (or stands in for a missing one).
    Failed { error: AccError, result: &'static str },
}

pub fn classify(outcome: Result<OutboundResponse, HttpError>, config: &Config) -> Upstream {
    let failed =
        |status: u16, result, message: String| Upstream::Failed { error: AccError::new(status, message), result };
    match outcome {
        Ok(response) => match response.status {
            200..=299 => Upstream::PassThrough(response),
            401 | 403 => failed(
                502,
                "upstream_refused_credentials",
                "ACC refused this gateway's credentials, so the query could not be made; please try again later."
                    .to_owned(),
            ),
            400..=499 => Upstream::PassThrough(response),
            500..=599 => failed(
                502,
                "upstream_error",
                format!("ACC could not answer the query (HTTP {}); please try again later.", response.status),
            ),
            other => failed(
                502,
                "upstream_unexpected",
                format!("ACC gave an unexpected answer (HTTP {other}); please try again later."),
            ),
        },
        Err(HttpError::Timeout) => {
            let seconds = config.acc_timeout.as_secs();
            let unit = if seconds == 1 { "second" } else { "seconds" };
            failed(
                504,
                "upstream_timeout",
                format!("ACC did not answer within {seconds} {unit}; please try again later."),
            )
        }
        Err(HttpError::Connect(_)) => {
            failed(502, "upstream_unreachable", "ACC could not be reached; please try again later.".to_owned())
        }
        Err(HttpError::TooLarge(_)) => failed(
            502,
            "upstream_too_large",
            "ACC's answer was larger than this gateway accepts; please try again later.".to_owned(),
        ),
        Err(HttpError::Other(_)) => failed(
            502,
            "upstream_failed",
            "The query to ACC failed before ACC answered; please try again later.".to_owned(),
        ),
    }
}

/// Where and how a 200 body departs from the Appendix A/B shape. Carries field paths and serde's
/// own words for missing fields only: never a value from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The JSON path of the offending field (`.` for the document itself).
    pub path: String,
    pub problem: String,
}

/// Parses a 200 body into the typed models.
pub fn check_shape(body: &[u8]) -> Result<IcpClaimDetails, ShapeMismatch> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed: Result<IcpClaimDetails, _> = serde_path_to_error::deserialize(&mut deserializer);
    match parsed {
        Ok(details) => match deserializer.end() {
            Ok(()) => Ok(details),
            Err(_) => {
                Err(ShapeMismatch { path: ".".to_owned(), problem: "trailing characters after the JSON".to_owned() })
            }
        },
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let problem = if inner.is_syntax() || inner.is_eof() {
                "not valid JSON".to_owned()
            } else {
                // serde's messages quote the offending value ("invalid type: string \"...\""), which
                // may be health information: keep only the name of a missing field.
                let text = inner.to_string();
                match text.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
                    Some(field) => format!("missing field `{field}`"),
                    None => "wrong type or value".to_owned(),
                }
            };
            Err(ShapeMismatch { path, problem })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_mismatches_name_the_path_and_never_the_value() {
        let wrong_type = br#"{"claimNumber":"X1","coverStatus":"Accept","occuredAtWork":"SECRET","diagnoses":[]}"#;
        let mismatch = check_shape(wrong_type).expect_err("mismatch");
        assert_eq!(mismatch.path, "occuredAtWork");
        assert!(!mismatch.problem.contains("SECRET"));

        let nested = br#"{"claimNumber":"X1","coverStatus":"A","diagnoses":[{},{"diagnosisSide":7}]}"#;
        assert_eq!(check_shape(nested).err().map(|m| m.path), Some("diagnoses[1].diagnosisSide".to_owned()));

        let missing = br#"{"claimNumber":"X1"}"#;
        assert_eq!(check_shape(missing).err().map(|m| m.problem), Some("missing field `coverStatus`".to_owned()));

        assert_eq!(check_shape(b"<html>").err().map(|m| m.problem), Some("not valid JSON".to_owned()));
        assert!(check_shape(shared::acc::APPENDIX_B_SAMPLE.as_bytes()).is_ok());
    }
}
