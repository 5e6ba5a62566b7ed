//! What the poster does for each kind of work. Each handler is deterministic given the webhook
//! and the stored state, so a redelivery after a crash repeats the same outcome.

use crate::{Failure, Poster};
use serde::Deserialize;
use serde_json::{Map, json};
use shared::hicaps::{
    ClaimState, ClaimStatus, InvalidParam, InvoiceLevelState, InvoiceStatusUpdate, Links, MemberState,
    MemberStatusUpdate, PaymentInvoices, PredeterminationStatusUpdate, Webhook, WebhookEnvelope, WebhookEvent,
    WebhookType,
};
use shared::idempotency::{About, Lock};
use shared::program::adjudication::{MemberStanding, Schedule, adjudicate, member_standing};
use shared::program::records::{self, ClaimRecord, InvoiceRecord};
use shared::program::reference::member_key;
use shared::program::work::Work;
use shared::store::{Condition, Item, Key, MAX_GET_MANY, StoreError};
use std::collections::HashMap;
use std::time::Instant;

/// Time kept after the last possible moment a callback returns, to record completion.
const COMPLETION_MARGIN_SECONDS: i64 = 3;

/// The poster while it processes one record: its clients, the invocation's deadline and the
/// record's idempotency lock, which notes the post as soon as it happened.
struct Context<'a> {
    poster: &'a Poster,
    /// The webhook or decision id the lock is on: what claims' histories name as their mover.
    work_id: String,
    deadline: i64,
    lock: tokio::sync::Mutex<Lock>,
}

impl Context<'_> {
    /// The note that this attempt's post happened, to ride in the next batch of record writes.
    async fn pending_note(&self) -> Option<Item> {
        self.poster.idempotency.pending_note(&*self.lock.lock().await)
    }

    /// A batch carrying the pending note has landed.
    async fn noted(&self) {
        self.lock.lock().await.note_pending = false;
    }
}

impl std::ops::Deref for Context<'_> {
    type Target = Poster;
    fn deref(&self) -> &Poster {
        self.poster
    }
}

#[derive(Deserialize)]
struct LinksOnly {
    #[serde(rename = "_links", default)]
    links: Option<Links>,
}

/// The longest invoice id kept on a webhook's idempotency record: HICAPS's are UUIDs, and a
/// longer one is not ours to store (the record then just names no invoice).
const MAX_KEPT_INVOICE_ID: usize = 64;

/// A webhook's id and what an operator wants to know of it later, from the envelope alone: its
/// type when it is a known one (an unknown `type` is the sender's free text, not kept) and the
/// invoice its `data` names.
pub(crate) fn webhook_heading(body: &str, received_at_ms: i64) -> (Option<String>, About) {
    #[derive(Deserialize)]
    struct Data {
        #[serde(rename = "invoiceId", default)]
        invoice_id: Option<String>,
    }
    #[derive(Deserialize)]
    struct Heading {
        #[serde(default)]
        id: Option<String>,
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        data: Option<Data>,
    }
    let Ok(heading) = serde_json::from_str::<Heading>(body) else {
        return (None, About::default());
    };
    let kind = heading.kind.as_deref().and_then(WebhookType::parse).map_or("unknown", WebhookType::as_str);
    let invoice_id = heading.data.and_then(|data| data.invoice_id).filter(|id| {
        !id.is_empty() && id.len() <= MAX_KEPT_INVOICE_ID && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    let about =
        About { kind: kind.to_owned(), received_at_ms: (received_at_ms > 0).then_some(received_at_ms), invoice_id };
    (heading.id.filter(|id| !id.is_empty()), about)
}

pub(crate) fn webhook_error_href(body: &str) -> Option<String> {
    serde_json::from_str::<LinksOnly>(body).ok()?.links?.webhook_error_href().map(str::to_owned)
}

/// Keeps an item for operators (`flagged#<reason>`), e.g. an overpaid invoice or a changed payload.
pub(crate) async fn flag(poster: &Poster, id: &str, reason: &str) -> Result<(), Failure> {
    flag_with(poster, id, reason, Map::new()).await
}

async fn flag_with(
    poster: &Poster,
    id: &str,
    reason: &str,
    mut attrs: Map<String, serde_json::Value>,
) -> Result<(), Failure> {
    attrs.insert("reason".into(), json!(reason));
    attrs.insert("at".into(), json!(shared::time::now().to_rfc3339()));
    let item = Item::new(records::flag_key(reason, id), attrs).expiring_at(poster.record_expiry());
    poster.table.put(&item, Condition::Always).await?;
    Ok(())
}

/// Does the work; gives the lock back with what it learnt (whether the post happened).
pub(crate) async fn process(
    poster: &Poster,
    work: &Work,
    deadline: i64,
    lock: Lock,
) -> (Result<&'static str, Failure>, Lock) {
    let context = Context { poster, work_id: lock.id.clone(), deadline, lock: tokio::sync::Mutex::new(lock) };
    let result = process_with(&context, work).await;
    (result, context.lock.into_inner())
}

async fn process_with(poster: &Context<'_>, work: &Work) -> Result<&'static str, Failure> {
    match work {
        Work::Webhook { body, .. } => {
            let envelope: WebhookEnvelope = shared::parse_problem::from_str(body)
                .map_err(|problem| Failure::unreadable("webhook envelope", problem))?;
            let Some(kind) = envelope.webhook_type() else {
                let id = envelope.id.clone();
                tracing::warn!(webhook_id = %id, "unhandled webhook type kept for operators");
                let mut attrs = Map::new();
                attrs.insert("type".into(), json!(envelope.kind));
                flag_with(poster, &id, records::FLAG_UNHANDLED_TYPE, attrs).await?;
                return Ok("unhandledType");
            };
            let webhook = envelope.into_typed(kind).map_err(|problem| Failure::unreadable("webhook", problem))?;
            handle_webhook(poster, &webhook).await
        }
        Work::Decision { decision_id, invoice_id, update } => {
            // One decision per invoice at a time, checked against the state the previous one
            // left: two contradicting decisions accepted together cannot both reach HICAPS.
            let lock = decision_lock(invoice_id, decision_id, poster.deadline);
            match poster.table.put(&lock, Condition::Absent).await {
                Ok(_) => {}
                // Back after the usual backoff: the holder frees the lock as soon as it has posted.
                Err(StoreError::Conflict { current: Some(current) })
                    if current.str_attr("decisionId") != Some(decision_id) =>
                {
                    return Err(Failure::transient("another decision on this invoice is being posted"));
                }
                Err(StoreError::Conflict { .. }) => {}
                Err(error) => return Err(error.into()),
            }
            let result = post_decision(poster, decision_id, invoice_id, update).await;
            if let Err(error) = poster.table.delete(&lock.key).await {
                tracing::warn!(%decision_id, %error, "could not free the invoice's decision lock; it lapses by itself");
            }
            result
        }
    }
}

/// The key under which one decision at a time holds an invoice.
const DECISION_LOCK_SK: &str = "#decision-lock";

fn decision_lock(invoice_id: &str, decision_id: &str, until: i64) -> Item {
    let mut attrs = Map::new();
    attrs.insert("decisionId".into(), json!(decision_id));
    Item::new(Key::new(records::invoice_pk(invoice_id), DECISION_LOCK_SK), attrs).expiring_at(until)
}

async fn post_decision(
    poster: &Context<'_>,
    decision_id: &str,
    invoice_id: &str,
    update: &InvoiceStatusUpdate,
) -> Result<&'static str, Failure> {
    let invoice = records::load_invoice(poster.table.as_ref(), invoice_id)
        .await?
        .ok_or_else(|| Failure::permanent("the decision's invoice is not known"))?;
    let href = invoice.status_href.clone().ok_or_else(|| Failure::permanent("invoice has no status link"))?;
    // Once posted (an earlier attempt), the stored states may already show it: resume instead.
    if !poster.lock.lock().await.posted
        && let Err(params) = shared::hicaps::validate_status_update(update, &invoice.claim_states())
    {
        let detail = serde_json::to_string(&params).unwrap_or_default();
        return Err(Failure::Permanent {
            reason: "stale decision: the invoice's claims moved since it was accepted".into(),
            detail: Some(detail),
        });
    }
    post(poster, &href, update, "invoice-status-updated").await?;
    apply_update(poster, &invoice, update).await?;
    tracing::info!(%decision_id, %invoice_id, "decision posted");
    Ok("decisionPosted")
}

async fn handle_webhook(poster: &Context<'_>, webhook: &Webhook) -> Result<&'static str, Failure> {
    let webhook_id = webhook.id.to_string();
    match &webhook.event {
        WebhookEvent::InvoiceSubmitted(invoice) => {
            let invoice_id = invoice.invoice_id.to_string();
            let inputs = adjudication_inputs(poster, invoice, Some(&invoice_id)).await?;
            if inputs.known.as_ref().is_some_and(|record| record.cancelled_before_submission) {
                tracing::info!(%webhook_id, %invoice_id, "invoice was cancelled before it arrived; disregarded");
                return Ok("disregarded");
            }
            let href = required_link(webhook.links.invoice_status_updated_href(), "lp:invoice-status-updated")?;
            // The header names the submission whose post its claims record: this webhook's post
            // happened in an attempt that crashed before its completion. Resume after it.
            if inputs.known.as_ref().and_then(|record| record.posted_by.as_deref()) == Some(webhook_id.as_str()) {
                poster.lock.lock().await.posted = true;
            }
            let mut statuses = adjudicate(invoice, &inputs.schedule, inputs.standing.as_ref());
            // A resubmission (a new webhook id for a known invoice) never moves a stored claim
            // against the state machine: a paid claim stays paid, and is left out of the answer.
            let before = statuses.len();
            statuses.retain(|status| {
                let stored = inputs.claims.iter().find(|claim| claim.claim_id == status.claim_id.to_string());
                match (stored, status.state) {
                    (Some(stored), Some(next)) => stored.state == next || stored.state.can_transition_to(next),
                    _ => true,
                }
            });
            if statuses.len() < before {
                tracing::warn!(%webhook_id, %invoice_id, kept = before - statuses.len(), "resubmission would move claims back; their states are kept");
            }
            if statuses.is_empty() && before > 0 {
                return Ok("resubmissionUnchanged");
            }
            let update = InvoiceStatusUpdate { claim_statuses: statuses, ..Default::default() };
            let answered = post(poster, href, &update, "invoice-status-updated").await;
            // Recorded once, after the post, header and claims together: with the decided
            // claims when the answer went; when it did not, as it stood before any answer (a new
            // invoice's claims pending), so a later decision by the program can still reach it.
            let claims: Vec<ClaimRecord> = match (&answered, &inputs.known) {
                (Ok(()), _) => update
                    .claim_statuses
                    .iter()
                    .map(|status| {
                        let claim_id = status.claim_id.to_string();
                        let state = status.state.unwrap_or(ClaimState::Pending);
                        match inputs.claims.iter().find(|stored| stored.claim_id == claim_id) {
                            Some(stored) => stored.moved_to(state, status.benefit, &poster.work_id),
                            None => ClaimRecord::new(claim_id, state, status.benefit, &poster.work_id),
                        }
                    })
                    .collect(),
                (Err(_), None) => invoice
                    .claims
                    .iter()
                    .map(|claim| {
                        ClaimRecord::new(claim.claim_id.to_string(), ClaimState::Pending, None, &poster.work_id)
                    })
                    .collect(),
                (Err(_), Some(_)) => Vec::new(),
            };
            let record = InvoiceRecord {
                invoice_id: invoice_id.clone(),
                program: invoice.program.as_str().to_owned(),
                status_href: Some(href.to_owned()),
                webhook_error_href: webhook.links.webhook_error_href().map(str::to_owned),
                cancelled_before_submission: false,
                recorded_by: Some(webhook_id.clone()),
                // The post's note (see `posted_by`): one write unit less than the lock's own note.
                posted_by: answered.is_ok().then(|| webhook_id.clone()),
                claims,
            };
            let saved = records::save_invoice(poster.table.as_ref(), &record, poster.record_expiry(), None).await;
            if saved.is_ok() {
                poster.noted().await;
            }
            // A post that failed for now is retried whatever the write did. A refused one is
            // dead-lettered only once the invoice is recorded: a cancellation that came later
            // would otherwise find no invoice and answer as if it had never been submitted (the
            // soak found this; RELIABILITY.md).
            match (answered, saved) {
                (Err(failure @ Failure::Transient { .. }), _) => return Err(failure),
                (_, Err(error)) => return Err(error.into()),
                (Err(refused), Ok(_)) => return Err(refused),
                (Ok(()), Ok(_)) => {}
            }
            tracing::info!(%webhook_id, %invoice_id, claims = update.claim_statuses.len(), "invoice adjudicated and posted");
            Ok("invoiceAdjudicated")
        }
        WebhookEvent::InvoiceCancellationRequested(request) => {
            let invoice_id = request.invoice_id.to_string();
            let href = required_link(webhook.links.invoice_status_updated_href(), "lp:invoice-status-updated")?;
            let expires = poster.record_expiry();
            let known =
                records::load_invoice(poster.table.as_ref(), &invoice_id).await?.filter(InvoiceRecord::is_submitted);
            let Some(invoice) = known else {
                // Out of sequence: answer cancelled, keep the id, disregard the submission later.
                let record = InvoiceRecord {
                    invoice_id: invoice_id.clone(),
                    program: request.program.as_str().to_owned(),
                    status_href: Some(href.to_owned()),
                    webhook_error_href: webhook.links.webhook_error_href().map(str::to_owned),
                    cancelled_before_submission: true,
                    recorded_by: Some(webhook_id.clone()),
                    posted_by: None,
                    claims: Vec::new(),
                };
                match records::save_new_header(poster.table.as_ref(), &record, expires).await {
                    Ok(()) => {}
                    // This cancellation's own earlier attempt.
                    Err(StoreError::Conflict { current: Some(current) })
                        if records::is_cancelled_before_submission(&current) => {}
                    // The invoice arrived since it was read (the soak found this race): next time
                    // the cancellation finds it.
                    Err(StoreError::Conflict { .. }) => {
                        return Err(Failure::transient("the invoice arrived while its cancellation was read"));
                    }
                    Err(error) => return Err(error.into()),
                }
                post(
                    poster,
                    href,
                    &InvoiceStatusUpdate::invoice_level(InvoiceLevelState::Cancelled),
                    "invoice-status-updated",
                )
                .await?;
                tracing::info!(%webhook_id, %invoice_id, "cancellation before submission: invoice cancelled");
                return Ok("cancelledBeforeSubmission");
            };
            let update = cancellation_update(&invoice);
            post(poster, href, &update, "invoice-status-updated").await?;
            apply_update(poster, &invoice, &update).await?;
            tracing::info!(%webhook_id, %invoice_id, "cancellation answered");
            Ok("cancellationAnswered")
        }
        WebhookEvent::PredeterminationSubmitted(invoice) => {
            let href = required_link(
                webhook.links.predetermination_status_updated_href(),
                "lp:predetermination-status-updated",
            )?;
            let inputs = adjudication_inputs(poster, invoice, None).await?;
            let statuses = adjudicate(invoice, &inputs.schedule, inputs.standing.as_ref());
            let update = PredeterminationStatusUpdate { claim_statuses: statuses, ..Default::default() };
            post(poster, href, &update, "predetermination-status-updated").await?;
            tracing::info!(%webhook_id, "predetermination answered");
            Ok("predeterminationAnswered")
        }
        WebhookEvent::MemberCheck(member) => {
            let href = required_link(webhook.links.update_member_state_href(), "lp:update-member-state")?;
            let update = match &member.program {
                // Never looked up under an empty program: the check is answered for its own data.
                None => MemberStatusUpdate {
                    member_number: member.member_number.clone(),
                    set_state: Some(MemberState::Rejected),
                    status_title: Some("Program missing".to_owned()),
                    status_description: Some("The member check does not say which program it is for.".to_owned()),
                    invalid_params: vec![InvalidParam::new("program", "'program' must not be empty.")],
                },
                Some(program) => {
                    let key = member_key(program.as_str(), &member.member_number);
                    let standing = match key.check() {
                        Ok(()) => {
                            member_standing(poster.table.as_ref(), program.as_str(), &member.member_number).await?
                        }
                        Err(_) => None,
                    };
                    let (state, title, description) = match standing {
                        Some(standing) if standing.active => (
                            MemberState::Approved,
                            "Member found".to_owned(),
                            "The member is covered by this program.".to_owned(),
                        ),
                        Some(standing) => (
                            MemberState::Rejected,
                            standing.status_title.unwrap_or_else(|| "Not covered".into()),
                            standing
                                .status_description
                                .unwrap_or_else(|| "The membership does not cover claims.".into()),
                        ),
                        None => (
                            MemberState::Rejected,
                            "Member not found".into(),
                            "No member with this number in this program.".into(),
                        ),
                    };
                    MemberStatusUpdate {
                        member_number: member.member_number.clone(),
                        set_state: Some(state),
                        status_title: Some(title.chars().take(20).collect()),
                        status_description: Some(description),
                        invalid_params: Vec::new(),
                    }
                }
            };
            post(poster, href, &update, "update-member-state").await?;
            tracing::info!(%webhook_id, "member check answered");
            Ok("memberChecked")
        }
        WebhookEvent::PaymentScheduled(payment) | WebhookEvent::PaymentFailed(payment) => {
            let paid = matches!(webhook.event, WebhookEvent::PaymentScheduled(_));
            let href = required_link(webhook.links.payment_invoices_href(), "lp:payment-invoices")?;
            record_event(
                poster,
                &format!("{}{}", records::PAYMENT_PREFIX, payment.payment_id),
                &webhook_id,
                webhook.webhook_type().as_str(),
            )
            .await?;
            let response = poster.hicaps.get(href).await?;
            let invoices: PaymentInvoices = serde_json::from_slice(&response.body)
                .map_err(|e| Failure::permanent(format!("payment invoices response: {e}")))?;
            let next = if paid { ClaimState::Paid } else { ClaimState::PaymentFailed };
            let mut moved = 0usize;
            for listed in &invoices.invoices {
                let Some(invoice) =
                    records::load_invoice(poster.table.as_ref(), &listed.invoice_id.to_string()).await?
                else {
                    tracing::warn!(%webhook_id, invoice_id = %listed.invoice_id, "payment lists an invoice we do not know");
                    continue;
                };
                for transaction in &listed.claims {
                    let claim_id = transaction.claim_id.to_string();
                    if let Some(claim) = invoice.claims.iter().find(|c| c.claim_id == claim_id)
                        && claim.state != next
                        && claim.state.can_transition_to(next)
                    {
                        let updated = claim.moved_to(next, claim.benefit, &webhook_id);
                        records::save_claim(
                            poster.table.as_ref(),
                            &invoice.invoice_id,
                            &updated,
                            poster.record_expiry(),
                        )
                        .await?;
                        moved += 1;
                    }
                }
            }
            tracing::info!(%webhook_id, moved, "payment recorded");
            Ok(if paid { "paymentScheduled" } else { "paymentFailed" })
        }
        WebhookEvent::PaymentHeld(held) => {
            record_event(
                poster,
                &format!("{}{}", records::PAYMENT_PREFIX, held.payment_id),
                &webhook_id,
                "settlement.payment.held",
            )
            .await?;
            tracing::warn!(%webhook_id, "payment held for a biller");
            Ok("paymentHeld")
        }
        WebhookEvent::InvoiceOverpaid(overpaid) => {
            let mut attrs = Map::new();
            attrs.insert("webhookId".into(), json!(webhook_id));
            flag_with(poster, &overpaid.invoice_id.to_string(), records::FLAG_INVOICE_OVERPAID, attrs).await?;
            shared::metrics::count("InvoiceOverpaid", ("Type", "settlement.invoice.overpaid"));
            tracing::warn!(%webhook_id, invoice_id = %overpaid.invoice_id, "invoice overpaid; flagged for operators");
            Ok("overpaidFlagged")
        }
    }
}

fn required_link<'a>(href: Option<&'a str>, rel: &str) -> Result<&'a str, Failure> {
    href.ok_or_else(|| Failure::permanent(format!("the webhook has no {rel} link")))
}

/// What an invoice is adjudicated on.
struct AdjudicationInputs {
    /// The invoice's stored header, for a submission, if the invoice is known.
    known: Option<InvoiceRecord>,
    /// The invoice's claims as stored, for a submission.
    claims: Vec<ClaimRecord>,
    schedule: Schedule,
    standing: Option<MemberStanding>,
}

/// Reads what an invoice is adjudicated on by key, in one request (one per 100 keys): the
/// schedule's rules for its item codes, the member's standing and, for a submission
/// (`header_of`), the invoice's stored header and claims. A key DynamoDB would refuse (an item
/// code or member number over its key limits) is not read: that claim is then rejected as an
/// unknown item, or the invoice's claims as from an unknown member.
async fn adjudication_inputs(
    poster: &Context<'_>,
    invoice: &shared::hicaps::Invoice,
    header_of: Option<&str>,
) -> Result<AdjudicationInputs, StoreError> {
    let program = invoice.program.as_str();
    let header = header_of.map(records::header_key);
    let member = invoice
        .member
        .as_ref()
        .map(|member| member_key(program, &member.member_number))
        .filter(|key| key.check().is_ok());
    let mut keys: Vec<Key> = header.iter().chain(member.iter()).cloned().collect();
    for claim in &invoice.claims {
        let rule = Schedule::rule_key(program, &claim.item_code);
        let stored = header_of.map(|id| records::claim_key(id, &claim.claim_id.to_string()));
        for key in std::iter::once(rule).chain(stored) {
            if key.check().is_ok() && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    let mut found: HashMap<Key, Item> = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(MAX_GET_MANY) {
        found.extend(poster.table.get_many(chunk).await?.into_iter().flatten().map(|item| (item.key.clone(), item)));
    }
    let known = header
        .as_ref()
        .and_then(|key| found.get(key))
        .zip(header_of)
        .map(|(item, id)| records::header_from_item(id, item));
    let claims = found
        .values()
        .filter(|item| item.key.pk.starts_with(records::INVOICE_PREFIX))
        .filter_map(records::claim_from_item)
        .collect();
    let standing = member.and_then(|key| found.get(&key)).map(MemberStanding::from_item);
    Ok(AdjudicationInputs { known, claims, schedule: Schedule::from_items(found.values()), standing })
}

/// The answer to a cancellation of a known invoice: each claim `cancelled`, or `cancelPending`
/// where it was already paid (a person decides). Invoice-level when every claim agrees.
fn cancellation_update(invoice: &InvoiceRecord) -> InvoiceStatusUpdate {
    let next = |state: ClaimState| {
        if matches!(state, ClaimState::Paid | ClaimState::CancelPending) {
            ClaimState::CancelPending
        } else {
            ClaimState::Cancelled
        }
    };
    let states: Vec<ClaimState> = invoice.claims.iter().map(|claim| next(claim.state)).collect();
    if states.iter().all(|s| *s == ClaimState::Cancelled) {
        return InvoiceStatusUpdate::invoice_level(InvoiceLevelState::Cancelled);
    }
    if states.iter().all(|s| *s == ClaimState::CancelPending) {
        return InvoiceStatusUpdate::invoice_level(InvoiceLevelState::CancelPending);
    }
    let claim_statuses = invoice
        .claims
        .iter()
        .zip(states)
        .filter_map(|(claim, state)| Some(ClaimStatus::new(claim.claim_id.parse().ok()?, state)))
        .collect();
    InvoiceStatusUpdate { claim_statuses, ..Default::default() }
}

/// Applies a posted update to the stored claim states.
async fn apply_update(
    poster: &Context<'_>,
    invoice: &InvoiceRecord,
    update: &InvoiceStatusUpdate,
) -> Result<(), Failure> {
    let expires = poster.record_expiry();
    let updated: Vec<ClaimRecord> = invoice
        .claims
        .iter()
        .filter_map(|claim| {
            let (state, benefit) = match update.state.and_then(InvoiceLevelState::claim_state) {
                Some(state) => (state, claim.benefit),
                None => update
                    .claim_statuses
                    .iter()
                    .find(|s| s.claim_id.to_string() == claim.claim_id)
                    .and_then(|s| Some((s.state?, s.benefit.or(claim.benefit))))?,
            };
            Some(claim.moved_to(state, benefit, &poster.work_id))
        })
        .collect();
    let note = poster.pending_note().await;
    records::save_claims(poster.table.as_ref(), &invoice.invoice_id, &updated, expires, note).await?;
    poster.noted().await;
    Ok(())
}

async fn record_event(poster: &Context<'_>, pk: &str, webhook_id: &str, kind: &str) -> Result<(), Failure> {
    let mut attrs = Map::new();
    attrs.insert("type".into(), json!(kind));
    let item = Item::new(Key::new(pk, format!("webhook#{webhook_id}")), attrs).expiring_at(poster.record_expiry());
    poster.table.put(&item, Condition::Always).await?;
    Ok(())
}

/// Posts the work's one callback, unless an earlier attempt already did (then it resumes after
/// it), and marks on the lock that it happened.
async fn post(poster: &Context<'_>, href: &str, body: &impl serde::Serialize, rel: &str) -> Result<(), Failure> {
    if poster.lock.lock().await.posted {
        tracing::info!(rel, "posted by an earlier attempt; resuming after it");
        return Ok(());
    }
    // Post only when the call (token fetch and refresh included) and the completion record fit
    // before the invocation's deadline: a post cut off by the timeout would leave its lock to
    // expire and be posted again.
    let timeout = i64::try_from(poster.hicaps.timeout().as_secs()).unwrap_or(i64::MAX);
    let latest_start = poster.deadline.saturating_sub(timeout).saturating_sub(COMPLETION_MARGIN_SECONDS);
    if shared::time::now_seconds() > latest_start {
        return Err(Failure::transient("too little time left in this invocation to post safely"));
    }
    let body = serde_json::to_vec(body).map_err(|e| Failure::permanent(e.to_string()))?;
    let started = Instant::now();
    let result = poster.hicaps.post_json(href, body).await;
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    shared::metrics::millis("CallbackLatency", elapsed, ("Rel", rel));
    shared::metrics::millis("UpstreamLatency", elapsed, ("Connector", "hicaps"));
    match result {
        Ok(_) => {
            shared::metrics::count("CallbackOutcome", ("Outcome", "posted"));
            // Noted by the next write, which costs no request of its own: the records' batch, or
            // the completion itself. A failure before either notes it alone (`lib.rs`).
            let mut lock = poster.lock.lock().await;
            lock.posted = true;
            lock.note_pending = true;
            Ok(())
        }
        Err(error) => {
            if matches!(error, shared::hicaps::client::CallbackError::Refused) {
                shared::metrics::count("CallbackOutcome", ("Outcome", "refused"));
                tracing::error!(rel, "callback refused: the link's host is not an allowed HICAPS host");
            }
            Err(error.into())
        }
    }
}
