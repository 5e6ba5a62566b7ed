//! `POST /icare/claims/{claimNumber}/documents` and
//! `GET /icare/claims/{claimNumber}/documents/{documentId}`, and the retry of a document.
//!
//! Only for a claim number iCare gave this caller. The document is recorded first (its content
//! in parts of at most 300 KB, under DynamoDB's 400 KB item limit), then sent; the content is
//! deleted once iCare has it. `Idempotency-Key` is optional here: with it, the same key and body
//! return the same document and a different body is a 422.

use crate::records::{
    self, Created, Delivery, KeyClaim, RetryKind, RetryMessage, Status, Stored, Tracked, claim_key, document_key,
    document_part_key,
};
use crate::retry::Retried;
use crate::{App, Rejection, idempotency_key, invalid, json_body, located, located_error};
use http::StatusCode;
use lambda_http::Request;
use serde::{Deserialize, Serialize};
use shared::api_error::{ApiError, Problems};
use shared::icare::{
    DocumentError, DocumentToSend, DocumentType, DocumentUpload, ICARE_REJECTED_TYPE, IcareError, validate_document,
};
use shared::store::{Condition, Item, Key, StoreError};
use shared::web::{self, HttpResponse};
use std::time::Duration;

const PART_CHARS: usize = 300 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DocumentRecord {
    pub caller: String,
    pub claim_number: String,
    pub document_type: DocumentType,
    pub file_name: String,
    pub content_type: String,
    pub size: usize,
    pub content_sha256: String,
    /// Content parts in the table (0 once deleted).
    pub parts: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icare_document_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    pub delivery: Delivery,
}

impl Tracked for DocumentRecord {
    fn delivery(&self) -> &Delivery {
        &self.delivery
    }
    fn delivery_mut(&mut self) -> &mut Delivery {
        &mut self.delivery
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct View<'a> {
    document_id: &'a str,
    claim_number: &'a str,
    document_type: DocumentType,
    file_name: &'a str,
    size: usize,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icare_document_id: Option<&'a str>,
    attempts: u32,
    created_at: &'a str,
    updated_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a ApiError>,
}

fn location(claim_number: &str, id: &str) -> String {
    let claim: String = claim_number
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("/icare/claims/{claim}/documents/{id}")
}

fn view<'a>(id: &'a str, r: &'a DocumentRecord) -> View<'a> {
    View {
        document_id: id,
        claim_number: &r.claim_number,
        document_type: r.document_type,
        file_name: &r.file_name,
        size: r.size,
        status: r.delivery.status.as_str(),
        sent_at: r.sent_at.as_deref(),
        icare_document_id: r.icare_document_id.as_deref(),
        attempts: r.delivery.attempts,
        created_at: &r.delivery.created_at,
        updated_at: &r.delivery.updated_at,
        failure: r.delivery.failure.as_ref(),
    }
}

fn respond(id: &str, record: &DocumentRecord) -> HttpResponse {
    let here = location(&record.claim_number, id);
    match (record.delivery.status, &record.delivery.failure) {
        (Status::Failed, Some(failure)) => {
            let status = if failure.kind.as_deref() == Some(ICARE_REJECTED_TYPE) {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::BAD_GATEWAY
            };
            located_error(status, failure, &here)
        }
        (Status::Queued, _) => located(StatusCode::ACCEPTED, &view(id, record), &here),
        _ => located(StatusCode::CREATED, &view(id, record), &here),
    }
}

fn usable_claim_number(claim_number: &str) -> bool {
    !claim_number.is_empty() && claim_number.chars().count() <= 64 && !claim_number.chars().any(char::is_control)
}

fn no_such_claim() -> Rejection {
    Rejection::NotFound(
        "No claim with this number was received from iCare through this gateway for your account: documents can be \
         sent only for a claim number returned by POST /icare/notifications."
            .to_owned(),
    )
}

pub(crate) async fn post(
    app: &App,
    caller: &str,
    claim_number: &str,
    request: &Request,
) -> Result<HttpResponse, Rejection> {
    let limit = app.config.max_document_bytes;
    let too_large =
        || Rejection::TooLarge(format!("The document must be at most {limit} bytes (before base64 encoding)."));
    // Base64 is 4/3 of the content; allow 64 KiB for the other fields before parsing anything.
    if web::body_bytes(request.body()).len() > limit.div_ceil(3) * 4 + 64 * 1024 {
        return Err(too_large());
    }
    let mut problems = Problems::new();
    let key = idempotency_key(request, &mut problems, false);
    let Some(body) = json_body(request, &mut problems) else {
        return Err(invalid(problems));
    };
    let upload = match validate_document(&body, limit) {
        Err(DocumentError::TooLarge { .. }) => return Err(too_large()),
        Err(DocumentError::Invalid(mut error)) => {
            let mut params = problems.into_vec();
            params.append(&mut error.invalid_params);
            error.invalid_params = params;
            return Err(Rejection::Invalid(error));
        }
        Ok(_) if !problems.is_empty() => return Err(invalid(problems)),
        Ok(upload) => upload,
    };
    if !usable_claim_number(claim_number) {
        return Err(no_such_claim());
    }
    let table = app.table.as_ref();
    if table.get(&claim_key(caller, claim_number)).await.map_err(Rejection::store)?.is_none() {
        return Err(no_such_claim());
    }
    let new_id = uuid::Uuid::new_v4().to_string();
    let id = match key {
        None => new_id,
        Some(key) => {
            let hash = records::hash_json(&serde_json::json!({
                "claimNumber": claim_number,
                "documentType": upload.document_type,
                "fileName": upload.file_name,
                "contentType": upload.content_type,
                "contentSha256": upload.content_sha256,
            }));
            let idempotency = records::idempotency_key(caller, RetryKind::Document, &key);
            match records::bind_key(table, &idempotency, &hash, &new_id, app.expires_at())
                .await
                .map_err(Rejection::store)?
            {
                KeyClaim::Mismatch => return Err(Rejection::KeyReused),
                KeyClaim::New => new_id,
                KeyClaim::Replay(id) => {
                    shared::metrics::count("IcareIdempotentReplay", ("Kind", "document"));
                    id
                }
            }
        }
    };
    let mut stored = match record(app, caller, claim_number, &id, &upload).await.map_err(Rejection::store)? {
        Created::New(stored) => stored,
        Created::Existing(mut stored) => {
            if stored.value.caller != caller {
                return Err(Rejection::Unavailable("The document could not be recorded.".to_owned()));
            }
            let stalled = !stored.value.delivery.status.is_final() && !stored.value.delivery.enqueued;
            let now = app.now_text();
            if !(stalled
                && records::take_lease(table, &document_key(&id), &mut stored, app.config.timeout, &now)
                    .await
                    .map_err(Rejection::store)?)
            {
                return Ok(respond(&id, &stored.value));
            }
            stored
        }
    };
    deliver(app, &id, &mut stored, &upload.content_base64, app.config.timeout).await.map_err(Rejection::store)?;
    if stored.value.delivery.status.is_final() || stored.value.delivery.enqueued {
        return Ok(respond(&id, &stored.value));
    }
    if let Err(error) = app.queues.retries.send(RetryMessage::body(RetryKind::Document, &id)).await {
        tracing::error!(document_id = %id, %error, "iCare document retry could not be queued");
        shared::metrics::count("IcareQueueFailed", ("Kind", "document"));
        return Err(Rejection::Unavailable(
            "iCare did not answer in time and the document could not be queued for retry; send the same request again \
             (with the same Idempotency-Key)."
                .to_owned(),
        ));
    }
    shared::metrics::count("IcareQueued", ("Kind", "document"));
    let now = app.now_text();
    if let Err(error) = records::modify(table, &document_key(&id), &mut stored, |r| {
        r.delivery.enqueued = true;
        r.delivery.updated_at.clone_from(&now);
    })
    .await
    {
        tracing::warn!(document_id = %id, %error, "could not mark the document as queued");
        stored.value.delivery.enqueued = true;
    }
    Ok(respond(&id, &stored.value))
}

/// Records the content parts, then the metadata with the lease of the first attempt.
async fn record(
    app: &App,
    caller: &str,
    claim_number: &str,
    id: &str,
    upload: &DocumentUpload,
) -> Result<Created<DocumentRecord>, StoreError> {
    let table = app.table.as_ref();
    let key = document_key(id);
    if let Some(existing) = records::load::<DocumentRecord>(table, &key).await? {
        return Ok(Created::Existing(existing));
    }
    let expires_at = app.expires_at();
    let content = upload.content_base64.as_bytes();
    let chunks: Vec<&[u8]> = content.chunks(PART_CHARS).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let mut attrs = serde_json::Map::new();
        // Base64 is ASCII, so every chunk is valid UTF-8.
        attrs.insert("data".into(), serde_json::Value::String(String::from_utf8_lossy(chunk).into_owned()));
        let item = Item::new(document_part_key(id, index), attrs).expiring_at(expires_at);
        table.put(&item, Condition::Always).await?;
    }
    let record = DocumentRecord {
        caller: caller.to_owned(),
        claim_number: claim_number.to_owned(),
        document_type: upload.document_type,
        file_name: upload.file_name.clone(),
        content_type: upload.content_type.clone(),
        size: upload.size,
        content_sha256: upload.content_sha256.clone(),
        parts: chunks.len(),
        icare_document_id: None,
        sent_at: None,
        delivery: Delivery::first_attempt(&app.now_text(), app.config.timeout),
    };
    let created = records::create(table, &key, record, expires_at).await?;
    if matches!(created, Created::New(_)) {
        tracing::info!(document_id = %id, size = upload.size, "iCare document recorded");
    }
    Ok(created)
}

async fn load_content(app: &App, id: &str, parts: usize) -> Result<Option<String>, StoreError> {
    let items = app.table.query(&document_key(id).pk, "part#").await?;
    if items.len() != parts {
        return Ok(None);
    }
    let mut content = String::new();
    for item in &items {
        match item.str_attr("data") {
            Some(data) => content.push_str(data),
            None => return Ok(None),
        }
    }
    Ok(Some(content))
}

async fn delete_content(app: &App, id: &str, parts: usize) {
    for index in 0..parts {
        if let Err(error) = app.table.delete(&document_part_key(id, index)).await {
            tracing::warn!(document_id = %id, %error, "document content not deleted; it expires with its retention");
            return;
        }
    }
}

impl Retried for DocumentRecord {
    const KIND: RetryKind = RetryKind::Document;
    /// The content, base64 as received, from its parts in the table.
    type Payload = String;

    fn key(id: &str) -> Key {
        document_key(id)
    }

    async fn payload(app: &App, id: &str, stored: &Stored<Self>) -> Result<Result<String, ApiError>, StoreError> {
        Ok(load_content(app, id, stored.value.parts)
            .await?
            .ok_or_else(|| ApiError::titled("The document's content is no longer stored; send it again.")))
    }

    async fn deliver(
        app: &App,
        id: &str,
        stored: &mut Stored<Self>,
        content: String,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        deliver(app, id, stored, &content, timeout).await
    }
}

/// One attempt at iCare for a document whose lease this caller holds; settles the record.
async fn deliver(
    app: &App,
    id: &str,
    stored: &mut Stored<DocumentRecord>,
    content_base64: &str,
    timeout: Duration,
) -> Result<(), StoreError> {
    let table = app.table.as_ref();
    let key = document_key(id);
    let document = DocumentToSend {
        document_type: stored.value.document_type,
        file_name: &stored.value.file_name,
        content_type: &stored.value.content_type,
        content_base64,
    };
    let result = app.client.send_document(id, &stored.value.claim_number, document, timeout).await;
    let now = app.now_text();
    let parts = stored.value.parts;
    match result {
        Ok(received) => {
            records::modify(table, &key, stored, |r| {
                r.icare_document_id.clone_from(&received.icare_document_id);
                r.sent_at = Some(now.clone());
                r.parts = 0;
                r.delivery.finished(&now, Status::Sent, None);
            })
            .await?;
            delete_content(app, id, parts).await;
            tracing::info!(document_id = %id, attempts = stored.value.delivery.attempts, "document sent to iCare");
            shared::metrics::count("IcareOutcome", ("Outcome", "documentSent"));
        }
        Err(IcareError::Rejected { status, invalid_params }) => {
            let failure = ApiError {
                kind: Some(ICARE_REJECTED_TYPE.to_owned()),
                title: format!("iCare refused the document (status {status})."),
                invalid_params,
            };
            records::modify(table, &key, stored, |r| {
                r.parts = 0;
                r.delivery.finished(&now, Status::Failed, Some(failure.clone()));
            })
            .await?;
            delete_content(app, id, parts).await;
            tracing::warn!(document_id = %id, status, "iCare refused the document");
            shared::metrics::count("IcareOutcome", ("Outcome", "documentRejected"));
        }
        Err(IcareError::Unavailable(reason)) => {
            records::modify(table, &key, stored, |r| r.delivery.unfinished(&now, &reason)).await?;
            tracing::warn!(document_id = %id, %reason, "iCare did not answer the document");
            shared::metrics::count("IcareOutcome", ("Outcome", "unavailable"));
        }
    }
    Ok(())
}

pub(crate) async fn get(app: &App, caller: &str, claim_number: &str, id: &str) -> Result<HttpResponse, Rejection> {
    let not_found = || Rejection::NotFound("No document with this id was found for this claim.".to_owned());
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    let stored = records::load::<DocumentRecord>(app.table.as_ref(), &document_key(id))
        .await
        .map_err(Rejection::store)?
        .filter(|stored| stored.value.caller == caller && stored.value.claim_number == claim_number)
        .ok_or_else(not_found)?;
    Ok(web::json(StatusCode::OK, &view(id, &stored.value)))
}
