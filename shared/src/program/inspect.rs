//! What happened to a webhook, a decision or an invoice, read back from the table for operators:
//! `cargo xtask inspect`, and the local stack's `GET /local/inspect/...`.
//!
//! Everything here comes from records the poster keeps anyway (no write exists for this page
//! alone): the idempotency record of each webhook or decision id (what it is, when it arrived,
//! where its processing stands), the invoice's header and claims (each claim's moves, and which id
//! made them) and the operators' flags. Those records hold ids, kinds, states, amounts and times,
//! never names, member numbers or bodies, so a report is free of personal data. The one exception
//! is a dead letter's `detail` (HICAPS's answer, or a parse error, either of which may quote a
//! value), which is attached only on request, from the dead-letter queue itself.

use super::records::{self, ClaimMove, FLAG_INVOICE_OVERPAID, FLAG_PAYLOAD_CHANGED, FLAG_UNHANDLED_TYPE};
use super::replay::{self, Mode, Selection};
use crate::idempotency;
use crate::queue::{MessageSender, MessageSource, MessageVisibility, QueueError};
use crate::store::{Item, Key, MAX_GET_MANY, StoreError, Table};
use chrono::{SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write;

/// Most distinct webhook and decision ids an invoice's report looks up (a claim keeps its last
/// [`records::MAX_CLAIM_HISTORY`] moves, so a normal invoice names a handful).
pub const MAX_WORK_PER_INVOICE: usize = MAX_GET_MANY;

/// One line of a timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds: sorts as text.
    pub at: String,
    pub what: String,
}

/// A claim move made by the reported webhook or decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Effect {
    pub invoice_id: String,
    pub claim_id: String,
    pub state: String,
    pub at: String,
}

/// What is known of one webhook or decision id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkReport {
    pub id: String,
    /// Whether the table knows the id at all (records lapse with their retention).
    pub found: bool,
    pub kind: Option<String>,
    pub received_at: Option<String>,
    pub invoice_id: Option<String>,
    /// `inProgress`, `released`, `completed` or `deadLettered`.
    pub status: Option<String>,
    pub outcome: Option<String>,
    /// Why it was dead-lettered, as a kind (never a value).
    pub reason: Option<String>,
    pub attempts: Option<u64>,
    /// The one outbound post happened.
    pub posted: bool,
    pub webhook_error_called: bool,
    pub lock_expires_at: Option<String>,
    pub updated_at: Option<String>,
    pub dead_lettered_at: Option<String>,
    /// `payloadChanged`, `unhandledType`.
    pub flags: Vec<String>,
    pub effects: Vec<Effect>,
    pub events: Vec<Event>,
    /// Personal data: present only when asked for, read from the dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_detail: Option<String>,
}

/// One claim of an invoice, with its moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimReport {
    pub claim_id: String,
    pub state: String,
    pub benefit: Option<String>,
    pub history: Vec<ClaimMove>,
}

/// A webhook or decision that touched an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkSummary {
    pub id: String,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub outcome: Option<String>,
    pub received_at: Option<String>,
}

/// What is known of one invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceReport {
    pub invoice_id: String,
    pub found: bool,
    pub program: Option<String>,
    /// A cancellation came before the invoice: its submission is disregarded.
    pub cancelled_before_submission: bool,
    pub overpaid: bool,
    pub claims: Vec<ClaimReport>,
    /// The webhooks and decisions that moved its claims or wrote its header, payments and
    /// cancellations among them.
    pub work: Vec<WorkSummary>,
    pub events: Vec<Event>,
}

fn time_of_seconds(epoch_seconds: i64) -> Option<String> {
    time_of_millis(epoch_seconds.checked_mul(1000)?)
}

fn time_of_millis(epoch_millis: i64) -> Option<String> {
    Utc.timestamp_millis_opt(epoch_millis).single().map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn int(item: &Item, name: &str) -> Option<i64> {
    item.attrs.get(name).and_then(Value::as_i64)
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.str_attr(name).map(str::to_owned)
}

fn flag(item: &Item, name: &str) -> bool {
    item.attrs.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// The event of a flag item, at the time it records (an RFC 3339 `at`, in any offset).
fn flag_event(item: &Item, what: String) -> Option<Event> {
    let at = chrono::DateTime::parse_from_rfc3339(item.str_attr("at")?).ok()?;
    Some(Event { at: at.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Millis, true), what })
}

/// A key the table could hold; anything else is simply not found.
fn readable(key: Key) -> Option<Key> {
    key.check().is_ok().then_some(key)
}

fn work_from_record(id: &str, record: Option<&Item>) -> WorkReport {
    let Some(item) = record else {
        return WorkReport { id: id.to_owned(), ..WorkReport::default() };
    };
    WorkReport {
        id: id.to_owned(),
        found: true,
        kind: text(item, "kind"),
        received_at: int(item, "receivedAt").and_then(time_of_millis),
        invoice_id: text(item, "invoiceId"),
        status: text(item, "status"),
        outcome: text(item, "outcome"),
        reason: text(item, "reason"),
        attempts: item.attrs.get("attempts").and_then(Value::as_u64),
        posted: flag(item, "posted"),
        webhook_error_called: flag(item, "webhookErrorCalled"),
        lock_expires_at: int(item, "lockExpiresAt").and_then(time_of_seconds),
        updated_at: int(item, "updatedAt").and_then(time_of_millis),
        dead_lettered_at: int(item, "deadLetteredAt").and_then(time_of_millis),
        ..WorkReport::default()
    }
}

/// The report on one webhook or decision id.
pub async fn work(store: &dyn Table, id: &str) -> Result<WorkReport, StoreError> {
    let keys: Vec<Key> =
        [idempotency::key(id), records::flag_key(FLAG_PAYLOAD_CHANGED, id), records::flag_key(FLAG_UNHANDLED_TYPE, id)]
            .into_iter()
            .filter_map(readable)
            .collect();
    if keys.len() < 3 {
        return Ok(WorkReport { id: id.to_owned(), ..WorkReport::default() });
    }
    let found = store.get_many(&keys).await?;
    let mut report = work_from_record(id, found[0].as_ref());
    let mut flag_events = Vec::new();
    for (reason, item) in [FLAG_PAYLOAD_CHANGED, FLAG_UNHANDLED_TYPE].into_iter().zip(&found[1..]) {
        if let Some(item) = item {
            report.found = true;
            report.flags.push(reason.to_owned());
            flag_events.extend(flag_event(item, format!("flagged for operators: {reason}")));
        }
    }
    // An overpaid invoice is flagged under its own id; the flag names the webhook that reported it.
    if let Some(key) = report
        .invoice_id
        .as_deref()
        .and_then(|invoice_id| readable(records::flag_key(FLAG_INVOICE_OVERPAID, invoice_id)))
        && let Some(item) = store.get(&key).await?
        && item.str_attr("webhookId") == Some(id)
    {
        report.flags.push(FLAG_INVOICE_OVERPAID.to_owned());
        flag_events.extend(flag_event(&item, format!("flagged for operators: {FLAG_INVOICE_OVERPAID}")));
    }
    if let Some(invoice_id) = report.invoice_id.clone()
        && let Some(invoice) = records::load_invoice(store, &invoice_id).await.ok().flatten()
    {
        for claim in &invoice.claims {
            for step in claim.history.iter().filter(|step| step.by == id) {
                report.effects.push(Effect {
                    invoice_id: invoice_id.clone(),
                    claim_id: claim.claim_id.clone(),
                    state: state_name(step.state),
                    at: time_of_millis(step.at).unwrap_or_default(),
                });
            }
        }
        if invoice.cancelled_before_submission && invoice.recorded_by.as_deref() == Some(id) {
            report.effects.push(Effect {
                invoice_id: invoice_id.clone(),
                claim_id: String::new(),
                state: "cancelled before submission".into(),
                at: report.updated_at.clone().unwrap_or_default(),
            });
        }
    }
    report.events = work_events(&report, flag_events);
    Ok(report)
}

fn state_name(state: crate::hicaps::ClaimState) -> String {
    serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn work_events(report: &WorkReport, mut events: Vec<Event>) -> Vec<Event> {
    let kind = report.kind.as_deref().unwrap_or("work");
    if let Some(at) = &report.received_at {
        events.push(Event { at: at.clone(), what: format!("received: {kind}") });
    }
    for effect in &report.effects {
        let what = if effect.claim_id.is_empty() {
            format!("invoice {}: {}", effect.invoice_id, effect.state)
        } else {
            format!("claim {} of invoice {} moved to {}", effect.claim_id, effect.invoice_id, effect.state)
        };
        events.push(Event { at: effect.at.clone(), what });
    }
    if let Some(at) = &report.dead_lettered_at {
        let reason = report.reason.as_deref().unwrap_or("no reason recorded");
        events.push(Event { at: at.clone(), what: format!("dead-lettered: {reason}") });
    }
    // Where the work stands now: the record's last write, which is the latest event.
    if let (Some(at), Some(status)) = (&report.updated_at, &report.status) {
        let what = match (status.as_str(), &report.outcome) {
            ("inProgress", _) => {
                format!("in progress, locked until {}", report.lock_expires_at.as_deref().unwrap_or("?"))
            }
            (status, Some(outcome)) if status != outcome => format!("{status}: {outcome}"),
            (status, _) => status.to_owned(),
        };
        events.push(Event { at: at.clone(), what: format!("now {what}") });
    }
    // Stable: within one millisecond, events keep the order above.
    events.sort_by(|a, b| a.at.cmp(&b.at));
    events
}

/// The report on one invoice.
pub async fn invoice(store: &dyn Table, invoice_id: &str) -> Result<InvoiceReport, StoreError> {
    let mut report = InvoiceReport { invoice_id: invoice_id.to_owned(), ..InvoiceReport::default() };
    let Some(overpaid_key) = readable(records::flag_key(FLAG_INVOICE_OVERPAID, invoice_id)) else {
        return Ok(report);
    };
    let overpaid = store.get(&overpaid_key).await?;
    let invoice = records::load_invoice(store, invoice_id).await?;
    let mut events = Vec::new();
    if let Some(item) = &overpaid {
        report.found = true;
        report.overpaid = true;
        let by = text(item, "webhookId").map(|id| format!(" (webhook {id})")).unwrap_or_default();
        events.extend(flag_event(item, format!("HICAPS reported the invoice overpaid{by}; flagged for operators")));
    }
    let mut ids: Vec<String> = Vec::new();
    if let Some(invoice) = &invoice {
        report.found = true;
        report.program = Some(invoice.program.clone()).filter(|p| !p.is_empty());
        report.cancelled_before_submission = invoice.cancelled_before_submission;
        ids.extend(invoice.recorded_by.iter().cloned());
        for claim in &invoice.claims {
            for step in &claim.history {
                if !ids.contains(&step.by) {
                    ids.push(step.by.clone());
                }
                events.push(Event {
                    at: time_of_millis(step.at).unwrap_or_default(),
                    what: format!("claim {} moved to {} by {}", claim.claim_id, state_name(step.state), step.by),
                });
            }
            report.claims.push(ClaimReport {
                claim_id: claim.claim_id.clone(),
                state: state_name(claim.state),
                benefit: claim.benefit.map(|b| b.to_string()),
                history: claim.history.clone(),
            });
        }
    }
    if let Some(by) = overpaid.as_ref().and_then(|item| text(item, "webhookId"))
        && !ids.contains(&by)
    {
        ids.push(by);
    }
    ids.truncate(MAX_WORK_PER_INVOICE);
    let keys: Vec<Key> = ids.iter().filter_map(|id| readable(idempotency::key(id))).collect();
    let records = if keys.is_empty() { Vec::new() } else { store.get_many(&keys).await? };
    for (key, record) in keys.iter().zip(records) {
        let id = key.pk.strip_prefix(idempotency::KEY_PREFIX).unwrap_or(&key.pk);
        let work = work_from_record(id, record.as_ref());
        if let Some(at) = &work.received_at {
            events.push(Event {
                at: at.clone(),
                what: format!("received {} {id}", work.kind.as_deref().unwrap_or("work")),
            });
        }
        if let (Some(at), Some(reason)) = (&work.dead_lettered_at, &work.reason) {
            events.push(Event { at: at.clone(), what: format!("{id} dead-lettered: {reason}") });
        }
        report.work.push(WorkSummary {
            id: id.to_owned(),
            kind: work.kind,
            status: work.status,
            outcome: work.outcome,
            received_at: work.received_at,
        });
    }
    events.sort_by(|a, b| a.at.cmp(&b.at));
    report.events = events;
    Ok(report)
}

/// Attaches the dead letter's `detail` (personal data) from the dead-letter queue, if the id has a
/// letter there. Reads the queue as `replay-dlq --list` does: every letter stays where it was.
pub async fn attach_dead_letter_detail<D, W>(report: &mut WorkReport, dlq: &D, work: &W) -> Result<(), QueueError>
where
    D: MessageSource + MessageVisibility + ?Sized,
    W: MessageSender + ?Sized,
{
    let selection = Selection { ids: vec![report.id.clone()], ..Selection::default() };
    let pass = replay::run(dlq, work, &selection, Mode::List).await?;
    report.dead_letter_detail = pass
        .letters
        .into_iter()
        .filter(|letter| selection.matches(letter))
        .find_map(|letter| letter.detail.or(Some(letter.reason)));
    Ok(())
}

/// A webhook's or decision's report for a person to read.
pub fn render_work(report: &WorkReport) -> String {
    let mut out = String::new();
    let kind = report.kind.as_deref().unwrap_or("webhook or decision");
    let _ = writeln!(out, "{kind} {}", report.id);
    if !report.found {
        let _ = writeln!(out, "  not found: no record (never received, or past its retention)");
        return out;
    }
    if let Some(invoice_id) = &report.invoice_id {
        let _ = writeln!(out, "  invoice: {invoice_id}");
    }
    if let Some(status) = &report.status {
        let outcome = report.outcome.as_deref().map(|o| format!(" ({o})")).unwrap_or_default();
        let attempts = report.attempts.map(|n| format!(", attempt {n}")).unwrap_or_default();
        let _ = writeln!(out, "  status: {status}{outcome}{attempts}");
    }
    let _ = writeln!(
        out,
        "  posted to HICAPS: {}; lp:webhook-error called: {}",
        if report.posted { "yes" } else { "no" },
        if report.webhook_error_called { "yes" } else { "no" }
    );
    if !report.flags.is_empty() {
        let _ = writeln!(out, "  flags: {}", report.flags.join(", "));
    }
    if let Some(detail) = &report.dead_letter_detail {
        let _ = writeln!(out, "  dead letter detail (personal data): {detail}");
    }
    render_events(&mut out, &report.events);
    out
}

/// An invoice's report for a person to read.
pub fn render_invoice(report: &InvoiceReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "invoice {}", report.invoice_id);
    if !report.found {
        let _ = writeln!(out, "  not found: no record (never received, or past its retention)");
        return out;
    }
    if let Some(program) = &report.program {
        let _ = writeln!(out, "  program: {program}");
    }
    if report.cancelled_before_submission {
        let _ = writeln!(out, "  cancelled before its submission arrived: a submission is disregarded");
    }
    if report.overpaid {
        let _ = writeln!(out, "  flagged: overpaid");
    }
    for claim in &report.claims {
        let benefit = claim.benefit.as_deref().map(|b| format!(", benefit {b}")).unwrap_or_default();
        let _ = writeln!(out, "  claim {}: {}{benefit}", claim.claim_id, claim.state);
    }
    for work in &report.work {
        let kind = work.kind.as_deref().unwrap_or("?");
        let status = work.status.as_deref().unwrap_or("no record");
        let outcome = work.outcome.as_deref().map(|o| format!(" ({o})")).unwrap_or_default();
        let _ = writeln!(out, "  {kind} {}: {status}{outcome}", work.id);
    }
    render_events(&mut out, &report.events);
    out
}

fn render_events(out: &mut String, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    let _ = writeln!(out, "  timeline:");
    for event in events {
        let _ = writeln!(out, "    {}  {}", event.at, event.what);
    }
}
