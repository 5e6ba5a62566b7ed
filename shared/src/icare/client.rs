//! `IcareClient`: the one place that knows iCare's wire contract.
//!
//! iCare's API specification is given to partners under agreement and is not public, so this is
//! an ASSUMED contract (the README documents it). Matching the real one is a change here only:
//! the handler and the simulator's users see only [`IcareClient`]'s methods and [`IcareError`].
//!
//! Assumed contract:
//! - Authentication: header `x-api-key: {ICARE_API_KEY}` on every call.
//! - Idempotency: header `Idempotency-Key`; iCare answers a repeated key with the original result
//!   and creates nothing new. We pass our `notificationId` / `documentId`, so a retry after a
//!   timeout (when iCare may already have created the claim) returns the same claim number.
//! - `POST {base}/notifications`, JSON:
//!   `{"externalReference", "policyNumber" (the iCare policy number), "worker": {"givenName",
//!   "familyName", "phone", "postalAddress": {"lines", "city", "postcode", "state"}}, "employer":
//!   {"businessName", "contactName", "phone", "email"}, "treatingDoctor"?: {"name", "practice"},
//!   "injury": {"date", "periodEnd"?, "time", "howItHappened", "description", "treatmentRequired",
//!   "incapacity", "lossOfIncome"}, "notifier": {"name", "relationship", "phone", "email"}}`
//!   -> 201 (or 200 for a repeated key) `{"claimNumber": "..."}`.
//! - `POST {base}/claims/{claimNumber}/documents`, JSON `{"externalReference", "documentType",
//!   "fileName", "contentType", "content"}` (content in base64) -> 201 (or 200)
//!   `{"documentId": "...", "receivedAt": "..."}`; 404 for a claim iCare does not know.
//! - Refusals: 400/404/413/422 with `{"errors": [{"field": "worker.phone", "message": "..."}]}`
//!   (field paths in the request's names; `policyNumber` is reported as our `policyId`).
//! - 408, 409 (the same key still in progress), 425, 429, 5xx, timeouts and connection failures are transient: retried with the same key.
//!   401/403 (our key refused) are treated as transient too, so nothing is dropped while the key is
//!   fixed; they are logged as errors.

use super::document::DocumentType;
use super::notification::InitialNotification;
use crate::api_error::InvalidParam;
use crate::http_client::{HttpError, Method, OutboundRequest, SharedHttp};
use crate::secrets::Rotating;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNumberReceived {
    pub claim_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentReceived {
    /// iCare's own id for the document, when it gives one.
    pub icare_document_id: Option<String>,
}

/// A document as the client sends it; `content_base64` is canonical base64.
#[derive(Debug, Clone, Copy)]
pub struct DocumentToSend<'a> {
    pub document_type: DocumentType,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub content_base64: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcareError {
    /// iCare answered and refused the content: sending the same again cannot succeed.
    #[error("iCare refused the request with status {status}")]
    Rejected { status: u16, invalid_params: Vec<InvalidParam> },
    /// Slow, down, throttled, or an answer we could not read: try again later with the same key.
    /// The reason holds no request content.
    #[error("iCare unavailable: {0}")]
    Unavailable(String),
}

impl IcareError {
    pub fn is_transient(&self) -> bool {
        matches!(self, IcareError::Unavailable(_))
    }
}

#[derive(Clone)]
pub struct IcareClient {
    http: SharedHttp,
    base_url: String,
    /// Re-read after `SECRETS_TTL_SECONDS`, and at once when iCare refuses it.
    api_key: Rotating<SecretString>,
}

#[derive(Deserialize)]
struct WireErrors {
    #[serde(default)]
    errors: Vec<WireError>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireClaim {
    claim_number: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDocument {
    #[serde(default)]
    document_id: Option<String>,
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved characters).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// iCare's field path in our request's names.
fn our_field(field: &str) -> String {
    match field {
        "policyNumber" => "policyId".to_owned(),
        "content" => "contentBase64".to_owned(),
        other => other.to_owned(),
    }
}

impl IcareClient {
    pub fn new(http: SharedHttp, base_url: impl Into<String>, api_key: Rotating<SecretString>) -> Self {
        Self { http, base_url: base_url.into().trim_end_matches('/').to_owned(), api_key }
    }

    /// Sends an initial notification under the iCare policy number and returns the claim number.
    pub async fn create_notification(
        &self,
        idempotency_key: &str,
        icare_policy_number: &str,
        notification: &InitialNotification,
        timeout: Duration,
    ) -> Result<ClaimNumberReceived, IcareError> {
        let n = notification;
        let address = &n.worker.postal_address;
        let mut body = json!({
            "externalReference": idempotency_key,
            "policyNumber": icare_policy_number,
            "worker": {
                "givenName": n.worker.given_name,
                "familyName": n.worker.family_name,
                "phone": n.worker.phone,
                "postalAddress": {"lines": address.lines, "city": address.city, "postcode": address.postcode, "state": address.state},
            },
            "employer": {
                "businessName": n.employer.business_name,
                "contactName": n.employer.contact_name,
                "phone": n.employer.phone,
                "email": n.employer.email,
            },
            "injury": {
                "date": n.injury.date.format("%Y-%m-%d").to_string(),
                "time": n.injury.time,
                "howItHappened": n.injury.how_it_happened,
                "description": n.injury.description,
                "treatmentRequired": n.injury.treatment_required,
                "incapacity": n.injury.incapacity.as_str(),
                "lossOfIncome": n.injury.loss_of_income,
            },
            "notifier": {"name": n.notifier.name, "relationship": n.notifier.relationship, "phone": n.notifier.phone, "email": n.notifier.email},
        });
        if let Some(doctor) = &n.treating_doctor {
            body["treatingDoctor"] = json!({"name": doctor.name, "practice": doctor.practice});
        }
        if let Some(end) = n.injury.period_end {
            body["injury"]["periodEnd"] = Value::String(end.format("%Y-%m-%d").to_string());
        }
        let url = format!("{}/notifications", self.base_url);
        let body = self.post(url, idempotency_key, &body, timeout).await?;
        let claim: WireClaim = serde_json::from_slice(&body)
            .map_err(|_| IcareError::Unavailable("the notification answer has no readable claimNumber".into()))?;
        let claim_number = claim.claim_number.trim().to_owned();
        if claim_number.is_empty() || claim_number.chars().count() > 64 || claim_number.chars().any(char::is_control) {
            return Err(IcareError::Unavailable("the notification answer has an unusable claimNumber".into()));
        }
        Ok(ClaimNumberReceived { claim_number })
    }

    /// Sends one document for a claim iCare gave us.
    pub async fn send_document(
        &self,
        idempotency_key: &str,
        claim_number: &str,
        document: DocumentToSend<'_>,
        timeout: Duration,
    ) -> Result<DocumentReceived, IcareError> {
        let body = json!({
            "externalReference": idempotency_key,
            "documentType": document.document_type.as_str(),
            "fileName": document.file_name,
            "contentType": document.content_type,
            "content": document.content_base64,
        });
        let url = format!("{}/claims/{}/documents", self.base_url, segment(claim_number));
        let body = self.post(url, idempotency_key, &body, timeout).await?;
        let received: WireDocument = serde_json::from_slice(&body).unwrap_or(WireDocument { document_id: None });
        Ok(DocumentReceived { icare_document_id: received.document_id.filter(|id| !id.trim().is_empty()) })
    }

    async fn post(
        &self,
        url: String,
        idempotency_key: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Vec<u8>, IcareError> {
        let bytes = serde_json::to_vec(body).map_err(|e| IcareError::Unavailable(format!("cannot encode: {e}")))?;
        let api_key = self.api_key.current().await;
        let request = OutboundRequest::new(Method::Post, url)
            .header("x-api-key", api_key.expose_secret())
            .header("Idempotency-Key", idempotency_key)
            .header("accept", "application/json")
            .json(bytes)
            .timeout(timeout);
        let response = self.http.send(request).await.map_err(|error| {
            IcareError::Unavailable(match error {
                HttpError::Timeout => "timed out".to_owned(),
                HttpError::Connect(_) => "could not connect".to_owned(),
                HttpError::Other(_) => "request failed".to_owned(),
                HttpError::TooLarge(_) => "answer too large".to_owned(),
            })
        })?;
        match response.status {
            200..=299 => Ok(response.body),
            401 | 403 => {
                tracing::error!(status = response.status, "iCare refused our API key: check ICARE_API_KEY");
                // Perhaps rotated: the retry uses what Secrets Manager holds now.
                self.api_key.refused().await;
                Err(IcareError::Unavailable(format!("iCare refused our credentials ({})", response.status)))
            }
            400 | 404 | 413 | 422 => {
                let invalid_params = serde_json::from_slice::<WireErrors>(&response.body)
                    .map(|wire| {
                        wire.errors
                            .into_iter()
                            .map(|e| {
                                InvalidParam::new(
                                    e.field.as_deref().map_or_else(|| "body".to_owned(), our_field),
                                    e.message.unwrap_or_else(|| "was refused by iCare".to_owned()),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Err(IcareError::Rejected { status: response.status, invalid_params })
            }
            status => Err(IcareError::Unavailable(format!("iCare answered {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("ICN-0001"), "ICN-0001");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
