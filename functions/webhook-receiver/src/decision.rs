//! `POST /invoices/{invoiceId}/status`: a later decision by the program's own staff or system.
//! Validated against the spec and the invoice's current claim states, then queued; the poster
//! posts it to HICAPS.

use super::{Receiver, Rejection, invalid};
use http::StatusCode;
use lambda_http::{Request, RequestExt};
use shared::api_error::ApiError;
use shared::hicaps::{parse_status_update, validate_status_update};
use shared::program::records;
use shared::program::work::Work;
use shared::web::{self, HttpResponse};

pub(crate) async fn handle(receiver: &Receiver, request: &Request) -> Result<HttpResponse, Rejection> {
    let Some(caller) = shared::caller::caller_id(request) else {
        return Ok(web::api_error(StatusCode::UNAUTHORIZED, &ApiError::titled("Missing or invalid credentials.")));
    };
    let invoice_id = request.path_parameters_ref().and_then(|p| p.first("invoiceId")).unwrap_or_default().to_owned();
    let body = web::body_bytes(request.body());
    if body.len() > super::MAX_BODY_BYTES {
        return Err(Rejection::TooLarge);
    }
    let update = parse_status_update(body).map_err(|params| Rejection::Invalid(ApiError::validation(params)))?;
    let invoice = records::load_invoice(receiver.invoices.as_ref(), &invoice_id)
        .await
        .map_err(|error| {
            tracing::error!(%error, "invoice lookup failed");
            Rejection::HandoffFailed
        })?
        .ok_or_else(|| Rejection::NotFound(format!("Invoice {invoice_id} is not known to this program.")))?;
    if invoice.status_href.is_none() {
        return Err(invalid("invoiceId", "This invoice has no lp:invoice-status-updated link to post to."));
    }
    validate_status_update(&update, &invoice.claim_states())
        .map_err(|params| Rejection::Invalid(ApiError::validation(params)))?;
    let decision_id = uuid::Uuid::new_v4().to_string();
    let work = Work::Decision { decision_id: decision_id.clone(), invoice_id: invoice_id.clone(), update };
    let message = work.to_message();
    receiver.handoff.send(message).await.map_err(|error| {
        tracing::error!(%decision_id, %error, "decision hand-off failed");
        Rejection::HandoffFailed
    })?;
    tracing::info!(%decision_id, %invoice_id, %caller, "status decision accepted");
    Ok(web::json(StatusCode::ACCEPTED, &serde_json::json!({"decisionId": decision_id, "invoiceId": invoice_id})))
}
