//! What the program keeps about invoices: one header item and one item per claim under
//! `invoice#<invoiceId>`, so one Query loads an invoice whole.

use crate::hicaps::ClaimState;
use crate::store::{Condition, Item, ItemPut, ItemPutMany, ItemQuery, Key, StoreError};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

const HEADER_SK: &str = "#invoice";
const CLAIM_PREFIX: &str = "claim#";

/// Partition-key prefix of everything kept about one invoice.
pub const INVOICE_PREFIX: &str = "invoice#";

/// Partition-key prefix of the items kept for operators: `flagged#<reason>`, one item per id.
pub const FLAGGED_PREFIX: &str = "flagged#";
/// Partition-key prefix of a payment's events: `payment#<paymentId>`, one item per webhook.
pub const PAYMENT_PREFIX: &str = "payment#";

/// A webhook id came again with a different payload (keyed on the webhook id).
pub const FLAG_PAYLOAD_CHANGED: &str = "payloadChanged";
/// A webhook of a type the program does not handle (keyed on the webhook id).
pub const FLAG_UNHANDLED_TYPE: &str = "unhandledType";
/// HICAPS reported an invoice overpaid (keyed on the invoice id).
pub const FLAG_INVOICE_OVERPAID: &str = "invoiceOverpaid";

/// The key of the item flagging `id` for `reason`.
pub fn flag_key(reason: &str, id: &str) -> Key {
    Key::new(format!("{FLAGGED_PREFIX}{reason}"), id)
}

pub fn invoice_pk(invoice_id: &str) -> String {
    format!("{INVOICE_PREFIX}{invoice_id}")
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRecord {
    pub claim_id: String,
    pub state: ClaimState,
    pub benefit: Option<Decimal>,
    /// The claim's moves, oldest first, the last [`MAX_CLAIM_HISTORY`] of them: they ride in
    /// the claim's own item, so keeping them costs no write of its own.
    pub history: Vec<ClaimMove>,
}

/// One move of a claim: to which state, when, and by which webhook or decision id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimMove {
    pub state: ClaimState,
    /// Epoch milliseconds.
    pub at: i64,
    pub by: String,
}

/// Moves kept per claim. A claim moves a handful of times in its life (pending, decided, paid,
/// perhaps cancelled); the bound keeps a claim item far below 1 KB whatever happens to it.
pub const MAX_CLAIM_HISTORY: usize = 12;

impl ClaimRecord {
    /// A claim first recorded in `state` by the work `by`.
    pub fn new(claim_id: impl Into<String>, state: ClaimState, benefit: Option<Decimal>, by: &str) -> Self {
        ClaimRecord { claim_id: claim_id.into(), state, benefit, history: Vec::new() }.moved_to(state, benefit, by)
    }

    /// This claim after the work `by` set it to `state` (and `benefit`), the move kept in its history.
    #[must_use]
    pub fn moved_to(&self, state: ClaimState, benefit: Option<Decimal>, by: &str) -> Self {
        let mut history = self.history.clone();
        if history.last().is_none_or(|last| last.state != state || last.by != by) {
            history.push(ClaimMove { state, at: crate::time::now_millis(), by: by.to_owned() });
        }
        let excess = history.len().saturating_sub(MAX_CLAIM_HISTORY);
        history.drain(..excess);
        ClaimRecord { claim_id: self.claim_id.clone(), state, benefit, history }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct InvoiceRecord {
    pub invoice_id: String,
    pub program: String,
    pub status_href: Option<String>,
    pub webhook_error_href: Option<String>,
    /// A cancellation arrived before the invoice: its submission is to be disregarded.
    pub cancelled_before_submission: bool,
    /// The webhook that wrote the header (the submission, or a cancellation that came first).
    pub recorded_by: Option<String>,
    /// The submission whose status post the claims record. Written in the same batch as the
    /// claims, it is that post's note: a redelivery of the webhook after a crash finds it and
    /// resumes after the post, with no idempotency write of its own (BENCHMARKS.md, cost).
    pub posted_by: Option<String>,
    pub claims: Vec<ClaimRecord>,
}

impl InvoiceRecord {
    pub fn claim_states(&self) -> Vec<(String, ClaimState)> {
        self.claims.iter().map(|c| (c.claim_id.clone(), c.state)).collect()
    }
    pub fn is_submitted(&self) -> bool {
        !self.claims.is_empty()
    }
}

fn state_text(state: ClaimState) -> Value {
    serde_json::to_value(state).unwrap_or(Value::Null)
}

/// The key of an invoice's header item.
pub fn header_key(invoice_id: &str) -> Key {
    Key::new(invoice_pk(invoice_id), HEADER_SK)
}

/// An invoice as its header item has it, without its claims.
pub fn header_from_item(invoice_id: &str, item: &Item) -> InvoiceRecord {
    InvoiceRecord {
        invoice_id: invoice_id.to_owned(),
        program: item.str_attr("program").unwrap_or_default().to_owned(),
        status_href: item.str_attr("statusHref").map(str::to_owned),
        webhook_error_href: item.str_attr("webhookErrorHref").map(str::to_owned),
        cancelled_before_submission: item
            .attrs
            .get("cancelledBeforeSubmission")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        recorded_by: item.str_attr("recordedBy").map(str::to_owned),
        posted_by: item.str_attr("postedBy").map(str::to_owned),
        claims: Vec::new(),
    }
}

pub async fn load_invoice(store: &dyn ItemQuery, invoice_id: &str) -> Result<Option<InvoiceRecord>, StoreError> {
    let items = store.query(&invoice_pk(invoice_id), "").await?;
    if items.is_empty() {
        return Ok(None);
    }
    let mut record = InvoiceRecord { invoice_id: invoice_id.to_owned(), ..Default::default() };
    for item in items {
        if item.key.sk == HEADER_SK {
            record = InvoiceRecord { claims: record.claims, ..header_from_item(invoice_id, &item) };
        } else if let Some(claim_id) = item.key.sk.strip_prefix(CLAIM_PREFIX) {
            let claim =
                claim_from_item(&item).ok_or_else(|| StoreError::Invalid(format!("claim {claim_id} has no state")))?;
            record.claims.push(claim);
        }
    }
    Ok(Some(record))
}

fn header_item(record: &InvoiceRecord, expires_at: i64) -> Item {
    let mut attrs = Map::new();
    attrs.insert("program".into(), json!(record.program));
    if let Some(href) = &record.status_href {
        attrs.insert("statusHref".into(), json!(href));
    }
    if let Some(href) = &record.webhook_error_href {
        attrs.insert("webhookErrorHref".into(), json!(href));
    }
    attrs.insert("cancelledBeforeSubmission".into(), json!(record.cancelled_before_submission));
    if let Some(by) = &record.recorded_by {
        attrs.insert("recordedBy".into(), json!(by));
    }
    if let Some(by) = &record.posted_by {
        attrs.insert("postedBy".into(), json!(by));
    }
    Item::new(header_key(&record.invoice_id), attrs).expiring_at(expires_at)
}

/// The key of one claim's item.
pub fn claim_key(invoice_id: &str, claim_id: &str) -> Key {
    Key::new(invoice_pk(invoice_id), format!("{CLAIM_PREFIX}{claim_id}"))
}

/// A claim as its item records it; `None` for an item that is not a claim or has no state.
pub fn claim_from_item(item: &Item) -> Option<ClaimRecord> {
    let claim_id = item.key.sk.strip_prefix(CLAIM_PREFIX)?;
    let state = item.attrs.get("state").and_then(|s| serde_json::from_value::<ClaimState>(s.clone()).ok())?;
    let benefit = item.str_attr("benefit").and_then(|b| b.parse::<Decimal>().ok());
    let history = item.attrs.get("history").and_then(|h| serde_json::from_value(h.clone()).ok()).unwrap_or_default();
    Some(ClaimRecord { claim_id: claim_id.to_owned(), state, benefit, history })
}

fn claim_item(invoice_id: &str, claim: &ClaimRecord, expires_at: i64) -> Item {
    let mut attrs = Map::new();
    attrs.insert("state".into(), state_text(claim.state));
    if let Some(benefit) = claim.benefit {
        attrs.insert("benefit".into(), json!(benefit.to_string()));
    }
    if !claim.history.is_empty() {
        attrs.insert("history".into(), serde_json::to_value(&claim.history).unwrap_or(Value::Null));
    }
    Item::new(claim_key(invoice_id, &claim.claim_id), attrs).expiring_at(expires_at)
}

/// Writes the header; idempotent (the same record written twice is the same state).
/// Records the header of an invoice not known yet (a cancellation that came first). Refuses with
/// [`StoreError::Conflict`] when a header exists: the invoice may have arrived since it was read,
/// and an unconditional write would mark a submitted invoice as cancelled before submission.
pub async fn save_new_header(store: &dyn ItemPut, record: &InvoiceRecord, expires_at: i64) -> Result<(), StoreError> {
    store.put(&header_item(record, expires_at), Condition::Absent).await.map(drop)
}

/// Whether a stored header records a cancellation that came before its invoice.
pub fn is_cancelled_before_submission(header: &Item) -> bool {
    header.attrs.get("cancelledBeforeSubmission").and_then(Value::as_bool).unwrap_or(false)
}

/// Sets a claim's state (and benefit, when one is decided); idempotent.
pub async fn save_claim(
    store: &dyn ItemPut,
    invoice_id: &str,
    claim: &ClaimRecord,
    expires_at: i64,
) -> Result<(), StoreError> {
    store.put(&claim_item(invoice_id, claim, expires_at), Condition::Always).await.map(drop)
}

/// Sets the states of `claims`, 25 to a request, with `also` (an item that belongs in the same
/// batch, such as the idempotency note that the post happened) first; idempotent.
pub async fn save_claims(
    store: &dyn ItemPutMany,
    invoice_id: &str,
    claims: &[ClaimRecord],
    expires_at: i64,
    also: Option<Item>,
) -> Result<(), StoreError> {
    let items: Vec<Item> =
        also.into_iter().chain(claims.iter().map(|claim| claim_item(invoice_id, claim, expires_at))).collect();
    store.put_many(&items).await
}

/// Writes the header and every claim of `record` together (one request up to 24 claims), with
/// `also` as [`save_claims`] does; idempotent.
pub async fn save_invoice(
    store: &dyn ItemPutMany,
    record: &InvoiceRecord,
    expires_at: i64,
    also: Option<Item>,
) -> Result<(), StoreError> {
    let items: Vec<Item> = also
        .into_iter()
        .chain(std::iter::once(header_item(record, expires_at)))
        .chain(record.claims.iter().map(|claim| claim_item(&record.invoice_id, claim, expires_at)))
        .collect();
    store.put_many(&items).await
}
