//! The client for ACC's `GET claims/icp/{claimNumber}` (ACC ICP Query API v1.1, §2.1): the call
//! with our API key and a correlation id, and what ACC's answer becomes for our caller.

use super::{AccError, IcpClaimDetails, IcpQuery};
use crate::http_client::{HttpError, Method, OutboundRequest, OutboundResponse, SharedHttp};
use crate::secrets::Rotating;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use url::Url;
use uuid::Uuid;

/// The header that carries the correlation id to ACC and back to our caller.
pub const CORRELATION_HEADER: &str = "ACC-CorrelationId";

/// Where ACC is and how we authenticate to it, read once at init.
pub struct AccSettings {
    /// ACC's API base; queries go to `{base_url}/claims/icp/{claimNumber}`.
    pub base_url: Url,
    /// Re-read after `SECRETS_TTL_SECONDS`, and at once when ACC refuses it.
    pub api_key: Rotating<SecretString>,
    /// The header that carries the API key.
    pub api_key_header: http::HeaderName,
    /// Total time allowed for the call, connect included.
    pub timeout: Duration,
}

pub struct AccClient {
    http: SharedHttp,
    settings: AccSettings,
}

impl AccClient {
    pub fn new(http: SharedHttp, settings: AccSettings) -> Self {
        Self { http, settings }
    }

    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// Asks ACC for the claim: its answer and how long the call took (a refused key's re-read
    /// included, as the proxy has always measured it). A 401 or 403 means our key
    /// may have been rotated: the next query uses what Secrets Manager holds then. `None` when
    /// the URL cannot be built, which configuration refuses at init.
    pub async fn query(
        &self,
        query: &IcpQuery,
        correlation_id: Uuid,
    ) -> Option<(Result<OutboundResponse, HttpError>, Duration)> {
        let url = query_url(&self.settings.base_url, query)?;
        let api_key = self.settings.api_key.current().await;
        let request = OutboundRequest::new(Method::Get, url.as_str())
            .header(self.settings.api_key_header.as_str(), api_key.expose_secret())
            .header(CORRELATION_HEADER, correlation_id.to_string())
            .header("accept", "application/json")
            .timeout(self.settings.timeout);
        let started = std::time::Instant::now();
        let outcome = self.http.send(request).await;
        if outcome.as_ref().is_ok_and(|response| matches!(response.status, 401 | 403)) {
            self.settings.api_key.refused().await;
        }
        Some((outcome, started.elapsed()))
    }
}

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

/// What became of the query upstream.
#[derive(Debug)]
pub enum Upstream {
    /// ACC answered with a status our caller should see as is (2xx, and 4xx but 401/403).
    PassThrough(OutboundResponse),
    /// Our answer replaces ACC's (or stands in for a missing one).
    Failed { error: AccError, result: &'static str },
}

/// What ACC's answer (or its absence, after `timeout`) becomes for our caller.
pub fn classify(outcome: Result<OutboundResponse, HttpError>, timeout: Duration) -> Upstream {
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
            let seconds = timeout.as_secs();
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

/// Where and how a 200 body departs from ACC ICP Query API v1.1, Appendix A/B. Carries field paths and serde's
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
        assert!(check_shape(crate::acc::APPENDIX_B_SAMPLE.as_bytes()).is_ok());
    }
}
