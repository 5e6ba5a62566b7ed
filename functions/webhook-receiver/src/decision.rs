//! `POST /invoices/{invoiceId}/status`: a later decision by the program's own staff or system.
//! Only the callers in `DECISION_CALLERS` may post one. Validated against the spec and the
//! invoice's current claim states, then queued; the poster re-checks the transition under a
//! per-invoice lock and posts it to HICAPS.
//!
//! An `Idempotency-Key` header (1 to 128 visible ASCII characters) makes a decision safe to
//! retry, as Stripe's and Powertools' keys do: the same key with the same body from the same
//! caller answers the original `decisionId` without queuing again; with a different body, 422;
//! while the first request is still being queued, 409. Keys are kept 24 hours.

use super::{Receiver, Rejection, invalid};
use http::StatusCode;
use lambda_http::{Request, RequestExt};
use serde_json::json;
use shared::api_error::ApiError;
use shared::hicaps::{parse_status_update, validate_status_update};
use shared::idempotency::payload_hash;
use shared::program::records;
use shared::program::work::Work;
use shared::store::{Condition, Item, Key, StoreError};
use shared::time::now_seconds;
use shared::web::{self, HttpResponse};

/// Key prefix of the decisions' idempotency keys (`decision-key#<caller>` / `<key>`).
pub const KEY_PREFIX: &str = "decision-key#";
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;
const KEY_RETENTION_SECONDS: i64 = 24 * 3600;

/// What an `Idempotency-Key` already says about this request.
enum Known {
    /// Not seen: go on, and record it.
    New,
    /// Queued before as `decision_id`: answer that again.
    Replay { decision_id: String },
    /// The first request with this key is still being queued.
    InFlight,
    /// Used before with another body or invoice.
    Mismatch,
}

pub(crate) async fn handle(receiver: &Receiver, request: &Request) -> Result<HttpResponse, Rejection> {
    let Some(caller) = shared::caller::caller_id(request) else {
        return Ok(web::api_error(StatusCode::UNAUTHORIZED, &ApiError::titled("Missing or invalid credentials.")));
    };
    if !receiver.may_decide(&caller) {
        tracing::warn!(%caller, "decision refused: the caller is not in DECISION_CALLERS");
        return Err(Rejection::Forbidden("Only the program may post decisions on invoices.".into()));
    }
    let invoice_id = request.path_parameters_ref().and_then(|p| p.first("invoiceId")).unwrap_or_default().to_owned();
    let body = web::body_bytes(request.body());
    if body.len() > super::MAX_BODY_BYTES {
        return Err(Rejection::TooLarge);
    }
    let idempotency_key = idempotency_key(request)?;
    let update = parse_status_update(body).map_err(|params| Rejection::Invalid(ApiError::validation(params)))?;
    let body_hash = payload_hash(&[invoice_id.as_bytes(), b"\n", body].concat());
    let key = idempotency_key.map(|key| Key::new(format!("{KEY_PREFIX}{caller}"), key));
    if let Some(key) = &key {
        match known(receiver, key, &body_hash).await? {
            Known::New => {}
            Known::Replay { decision_id } => return Ok(accepted(&decision_id, &invoice_id, true)),
            Known::InFlight => return Err(in_flight()),
            Known::Mismatch => return Err(mismatch()),
        }
    }
    let invoice = records::load_invoice(receiver.table.as_ref(), &invoice_id)
        .await
        .map_err(|error| {
            tracing::error!(%error, "invoice lookup failed");
            Rejection::StoreUnavailable
        })?
        .ok_or_else(|| Rejection::NotFound(format!("Invoice {invoice_id} is not known to this program.")))?;
    if invoice.status_href.is_none() {
        return Err(invalid("invoiceId", "This invoice has no lp:invoice-status-updated link to post to."));
    }
    validate_status_update(&update, &invoice.claim_states())
        .map_err(|params| Rejection::Invalid(ApiError::validation(params)))?;
    let decision_id = uuid::Uuid::new_v4().to_string();
    if let Some(key) = &key {
        // Recorded before the hand-off: a concurrent retry then waits (409) instead of queuing twice.
        let pending = key_item(key, "pending", &body_hash, &decision_id);
        match receiver.table.put(&pending, Condition::Absent).await {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return match known(receiver, key, &body_hash).await? {
                    Known::Replay { decision_id } => Ok(accepted(&decision_id, &invoice_id, true)),
                    Known::Mismatch => Err(mismatch()),
                    Known::New | Known::InFlight => Err(in_flight()),
                };
            }
            Err(error) => {
                tracing::error!(%error, "idempotency key not recorded");
                return Err(Rejection::StoreUnavailable);
            }
        }
    }
    let work = Work::Decision { decision_id: decision_id.clone(), invoice_id: invoice_id.clone(), update };
    if let Err(error) = receiver.handoff.send(work.to_message()).await {
        tracing::error!(%decision_id, %error, "decision hand-off failed");
        if let Some(key) = &key
            && let Err(error) = receiver.table.delete(key).await
        {
            tracing::warn!(%error, "could not free the idempotency key; a retry with it waits until it expires");
        }
        return Err(Rejection::HandoffFailed);
    }
    if let Some(key) = &key
        && let Err(error) =
            receiver.table.put(&key_item(key, "queued", &body_hash, &decision_id), Condition::Always).await
    {
        // The decision is queued either way; a retry with the key meanwhile is answered 409.
        tracing::warn!(%decision_id, %error, "idempotency key not marked queued");
    }
    tracing::info!(%decision_id, %invoice_id, %caller, "status decision accepted");
    Ok(accepted(&decision_id, &invoice_id, false))
}

/// The `Idempotency-Key` header, if given: 1 to 128 visible ASCII characters.
fn idempotency_key(request: &Request) -> Result<Option<String>, Rejection> {
    let Some(value) = request.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let text = value.to_str().ok().map(str::trim).filter(|text| {
        !text.is_empty() && text.len() <= MAX_IDEMPOTENCY_KEY_CHARS && text.bytes().all(|b| b.is_ascii_graphic())
    });
    match text {
        Some(text) => Ok(Some(text.to_owned())),
        None => Err(invalid(
            "Idempotency-Key",
            &format!("'Idempotency-Key' must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters."),
        )),
    }
}

async fn known(receiver: &Receiver, key: &Key, body_hash: &str) -> Result<Known, Rejection> {
    let item = receiver.table.get(key).await.map_err(|error| {
        tracing::error!(%error, "idempotency key lookup failed");
        Rejection::StoreUnavailable
    })?;
    let Some(item) = item else {
        return Ok(Known::New);
    };
    Ok(match (item.str_attr("bodyHash") == Some(body_hash), item.str_attr("status"), item.str_attr("decisionId")) {
        (false, _, _) => Known::Mismatch,
        (true, Some("queued"), Some(decision_id)) => Known::Replay { decision_id: decision_id.to_owned() },
        (true, _, _) => Known::InFlight,
    })
}

fn key_item(key: &Key, status: &str, body_hash: &str, decision_id: &str) -> Item {
    let attrs = json!({"status": status, "bodyHash": body_hash, "decisionId": decision_id});
    let attrs = match attrs {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    Item::new(key.clone(), attrs).expiring_at(now_seconds() + KEY_RETENTION_SECONDS)
}

fn accepted(decision_id: &str, invoice_id: &str, replayed: bool) -> HttpResponse {
    let mut response = web::json(StatusCode::ACCEPTED, &json!({"decisionId": decision_id, "invoiceId": invoice_id}));
    if replayed {
        response.headers_mut().insert("idempotent-replayed", http::HeaderValue::from_static("true"));
    }
    response
}

fn mismatch() -> Rejection {
    Rejection::Unprocessable("This Idempotency-Key was used with a different request.".into())
}

fn in_flight() -> Rejection {
    Rejection::Conflict("A request with this Idempotency-Key is still being processed; retry shortly.".into())
}
