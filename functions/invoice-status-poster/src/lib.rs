//! Invoice status poster: consumes the work queue (SQS, batches of up to ten,
//! `ReportBatchItemFailures`), processes each webhook exactly once in effect, and posts the
//! program's answers back to HICAPS.
//!
//! Per record: resolve the claim check, take the idempotency lock on the webhook `id`, act,
//! record completion. Each record succeeds or fails alone, a panic included.
//!
//! - A transient failure (HICAPS 408, 425, 429, 5xx or timeout, our store) releases the lock and
//!   reports the record as a batch item failure, back after a jittered backoff or HICAPS's
//!   `Retry-After`. The one outbound post is recorded on the lock as soon as HICAPS took it, so a
//!   retry after a later step failed resumes after the post instead of posting again.
//! - The last allowed attempt of a transient failure dead-letters the message with the reason and
//!   asks HICAPS to redeliver through `lp:webhook-error`, at most once per webhook id.
//! - A permanent failure (HICAPS 400, 403, 404, 409, 422; data that cannot be read; a link
//!   outside `HICAPS_CALLBACK_HOSTS`) is dead-lettered with the reason for a person and the id
//!   is recorded as finished: HICAPS's redelivery could only fail the same way, so none is
//!   asked for, and one that comes anyway is a duplicate. A replay from the dead-letter queue
//!   processes it again.

mod handlers;

/// The partition-key prefixes this function reads or writes: exactly its role's
/// `dynamodb:LeadingKeys` in infra/template.yaml (tests/template_keys.rs holds them together).
pub const TABLE_KEY_PREFIXES: &[&str] = &[
    shared::handoff::KEY_PREFIX,
    shared::idempotency::KEY_PREFIX,
    shared::program::records::INVOICE_PREFIX,
    shared::program::reference::SCHEDULE_PREFIX,
    shared::program::reference::MEMBER_PREFIX,
    shared::program::records::FLAGGED_PREFIX,
    shared::program::records::PAYMENT_PREFIX,
];

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::FutureExt;
use shared::config::{ConfigError, Vars};
use shared::handoff;
use shared::hicaps::client::{CallbackError, HicapsClient, HicapsCredentials};
use shared::http_client::SharedHttp;
use shared::idempotency::{About, Idempotency, Lock, LockOutcome, payload_hash};
use shared::program::work::Work;
use shared::queue::{MessageSender, MessageVisibility};
use shared::store::{SharedTable, StoreError};
use shared::time::jittered;
use shared::time::now_seconds;
use std::sync::Arc;
use std::time::Duration;

pub struct Config {
    /// Moved into the HICAPS client at construction.
    pub credentials: HicapsCredentials,
    pub callback_hosts: Vec<String>,
    /// How long a completed webhook id is remembered (at least 1 day).
    pub idempotency_days: u32,
    /// How long invoice records are kept.
    pub record_days: u32,
    /// The queue's redrive `maxReceiveCount`: the last attempt dead-letters by itself.
    pub max_receive_count: u32,
    /// First retry delay; doubles with each receive, capped at 15 minutes.
    pub retry_base: Duration,
    /// Total time allowed for each call to HICAPS.
    pub call_timeout: Duration,
}

impl Config {
    pub async fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let idempotency_days = vars.parse_or("IDEMPOTENCY_TTL_DAYS", 7u32)?;
        if idempotency_days < 1 {
            return Err(ConfigError::new("IDEMPOTENCY_TTL_DAYS", "must be at least 1 day"));
        }
        let callback_hosts = vars.list("HICAPS_CALLBACK_HOSTS");
        if callback_hosts.is_empty() {
            return Err(ConfigError::new("HICAPS_CALLBACK_HOSTS", "must list at least one host"));
        }
        Ok(Self {
            credentials: HicapsCredentials {
                token_url: vars.required("HICAPS_TOKEN_URL")?.to_owned(),
                client_id: vars.required("HICAPS_CLIENT_ID")?.to_owned(),
                client_secret: vars.required_rotating_secret("HICAPS_CLIENT_SECRET", shared::secrets::as_is).await?,
            },
            callback_hosts,
            idempotency_days,
            record_days: vars.parse_or("RECORD_RETENTION_DAYS", 90u32)?,
            max_receive_count: vars.parse_or("MAX_RECEIVE_COUNT", 8u32)?.max(1),
            retry_base: Duration::from_millis(vars.parse_or("RETRY_BASE_MILLIS", 5_000u64)?),
            call_timeout: Duration::from_secs(vars.parse_or("HICAPS_TIMEOUT_SECONDS", 10u64)?.clamp(1, 20)),
        })
    }
}

pub struct Poster {
    record_days: u32,
    max_receive_count: u32,
    retry_base: Duration,
    table: SharedTable,
    hicaps: HicapsClient,
    idempotency: Idempotency,
    visibility: Arc<dyn MessageVisibility>,
    dead_letters: Arc<dyn MessageSender>,
}

/// Why processing did not complete. Reasons are kinds and statuses, safe to log; `detail`
/// (HICAPS's answer, or serde's message, either of which may quote personal data) goes only into
/// the dead letter.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("transient: {reason}")]
    Transient { reason: String, retry_after: Option<Duration> },
    #[error("permanent: {reason}")]
    Permanent { reason: String, detail: Option<String> },
}

impl Failure {
    pub fn permanent(reason: impl Into<String>) -> Self {
        Failure::Permanent { reason: reason.into(), detail: None }
    }

    pub fn transient(reason: impl Into<String>) -> Self {
        Failure::Transient { reason: reason.into(), retry_after: None }
    }

    /// Data that cannot be read: where and what for the log, serde's message for the letter.
    pub fn unreadable(what: &str, problem: shared::parse_problem::ParseProblem) -> Self {
        Failure::Permanent { reason: format!("{what}: {problem}"), detail: Some(problem.message) }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            // A key or item the table refuses is refused again on every retry.
            StoreError::Invalid(reason) => Failure::permanent(format!("the table refused the item: {reason}")),
            other => Failure::transient(other.to_string()),
        }
    }
}

impl From<CallbackError> for Failure {
    fn from(error: CallbackError) -> Self {
        match error {
            CallbackError::Transient { reason, retry_after } => Failure::Transient { reason, retry_after },
            CallbackError::Refused => Failure::permanent("callback link is not on an allowed HICAPS host"),
            CallbackError::Rejected { status, body } => {
                Failure::Permanent { reason: format!("HICAPS answered {status}"), detail: Some(body) }
            }
        }
    }
}

enum Disposition {
    Done,
    Retry,
}

/// The longest a record waits before its next attempt, whatever the backoff or `Retry-After`
/// asks: SQS would allow 12 hours, but a webhook's effect should not wait longer than this.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(900);

/// The longest HICAPS's `Retry-After` may hold a record back: the work queue's visibility timeout
/// (the template's `WorkQueue`, held equal by `tests/template_keys.rs`). An upstream asks for a
/// pause, not for a message parked beyond one visibility period.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(180);

/// Times a record tries to note that its post happened before carrying on without the note.
const MARK_POSTED_ATTEMPTS: u32 = 3;

impl Poster {
    pub fn new(
        config: Config,
        table: SharedTable,
        http: SharedHttp,
        visibility: Arc<dyn MessageVisibility>,
        dead_letters: Arc<dyn MessageSender>,
    ) -> Self {
        let Config {
            credentials,
            callback_hosts,
            idempotency_days,
            record_days,
            max_receive_count,
            retry_base,
            call_timeout,
        } = config;
        Self {
            record_days,
            max_receive_count,
            retry_base,
            hicaps: HicapsClient::new(http, credentials, callback_hosts, call_timeout),
            idempotency: Idempotency::new(Arc::clone(&table), idempotency_days),
            table,
            visibility,
            dead_letters,
        }
    }

    /// One SQS batch. `deadline` is when this invocation must be done (epoch seconds): the
    /// idempotency locks expire then, so a crash frees them for the redelivery.
    pub async fn handle(&self, event: SqsEvent, deadline: i64) -> SqsBatchResponse {
        let outcomes =
            futures::future::join_all(event.records.iter().map(|record| self.process_isolated(record, deadline))).await;
        let mut response = SqsBatchResponse::default();
        for (record, disposition) in event.records.iter().zip(outcomes) {
            if let Disposition::Retry = disposition {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// A record that panics fails alone: it is reported as a batch item failure (and comes back
    /// until the queue dead-letters it), while the rest of the batch is answered. The release
    /// profile unwinds for this reason (README, "Build and package").
    async fn process_isolated(&self, record: &SqsMessage, deadline: i64) -> Disposition {
        match std::panic::AssertUnwindSafe(self.process_record(record, deadline)).catch_unwind().await {
            Ok(disposition) => disposition,
            Err(_) => {
                tracing::error!(
                    message_id = record.message_id.as_deref().unwrap_or("-"),
                    "processing panicked; the record is retried alone"
                );
                shared::metrics::count("RecordPanicked", ("Function", "invoice-status-poster"));
                Disposition::Retry
            }
        }
    }

    async fn process_record(&self, record: &SqsMessage, deadline: i64) -> Disposition {
        let message_id = record.message_id.as_deref().unwrap_or_default();
        let receive_count: u32 =
            record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
        let raw = record.body.as_deref().unwrap_or_default();
        let message = match handoff::resolve(raw, self.table.as_ref()).await {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(message_id, %error, "claim check not readable yet");
                return self.retry(record, receive_count, None, &error.to_string(), None).await;
            }
        };
        let work = match Work::parse(&message) {
            Ok(work) => work,
            Err(error) => return self.dead_letter(raw, &Failure::permanent(error.to_string())).await,
        };
        let (id, about) = match &work {
            Work::Webhook { body, received_at_ms } => handlers::webhook_heading(body, *received_at_ms),
            Work::Decision { decision_id, invoice_id, .. } => (
                Some(decision_id.clone()),
                About { kind: "decision".into(), received_at_ms: None, invoice_id: Some(invoice_id.clone()) },
            ),
        };
        let Some(id) = id else {
            return self.dead_letter(raw, &Failure::permanent("work without an id")).await;
        };
        // The payload is the webhook as HICAPS sent it: the receiver's `receivedAt` differs on
        // every redelivery and must not make a repeat look like a changed payload.
        let payload = match &work {
            Work::Webhook { body, .. } => body.as_str().into(),
            Work::Decision { .. } => shared::program::work::unmarked(&message),
        };
        let hash = payload_hash(payload.as_bytes());
        let replay = shared::program::work::is_replay(&message);
        let lock = match self.idempotency.begin(&id, &hash, about, deadline, replay).await {
            Ok(LockOutcome::Acquired(lock)) => lock,
            Ok(LockOutcome::AlreadyCompleted | LockOutcome::DeadLettered) => {
                tracing::info!(work_id = %id, "duplicate delivery; already processed");
                shared::metrics::count("DuplicateDelivery", ("Kind", work.describe()));
                self.discard_claim_check(raw).await;
                return Disposition::Done;
            }
            Ok(LockOutcome::InProgress { lock_expires_at }) => {
                // Back no sooner than the holder's lock lapses: asking earlier only adds load
                // (a burst of copies retrying every backoff step swamped the store in tests) and
                // spends the copy's receives towards the dead-letter queue.
                let lapse = u64::try_from(lock_expires_at.saturating_sub(now_seconds())).unwrap_or(0).saturating_add(1);
                let delay = self.backoff(receive_count).max(Duration::from_secs(lapse)).min(MAX_RETRY_DELAY);
                return self.retry_in(record, receive_count, delay, Some(&id), "in progress elsewhere").await;
            }
            Ok(LockOutcome::PayloadChanged) => {
                tracing::warn!(work_id = %id, "payload changed under a known id; flagged, not processed");
                shared::metrics::count("PayloadChanged", ("Kind", work.describe()));
                return match handlers::flag(self, &id, shared::program::records::FLAG_PAYLOAD_CHANGED).await {
                    Ok(()) => {
                        self.discard_claim_check(raw).await;
                        Disposition::Done
                    }
                    Err(error) => self.retry(record, receive_count, Some(&id), &error.to_string(), None).await,
                };
            }
            Err(error) => return self.retry(record, receive_count, Some(&id), &error.to_string(), None).await,
        };
        let (result, mut lock) = handlers::process(self, &work, deadline, lock).await;
        match result {
            Ok(outcome) => match self.idempotency.complete(&lock, outcome).await {
                Ok(()) => {
                    self.discard_claim_check(raw).await;
                    Disposition::Done
                }
                // The effect happened: once the post is noted, a redelivery after the lock lapses
                // resumes after it.
                Err(error) => {
                    self.note_post(&mut lock).await;
                    self.retry(record, receive_count, Some(&id), &error.to_string(), None).await
                }
            },
            Err(Failure::Transient { reason, retry_after }) if receive_count < self.max_receive_count => {
                // The released lock carries the post's note, if there was a post.
                if let Err(error) = self.idempotency.release(&lock).await {
                    tracing::warn!(work_id = %id, %error, "could not release the lock; it lapses by itself");
                    self.note_post(&mut lock).await;
                }
                self.retry(record, receive_count, Some(&id), &reason, retry_after).await
            }
            Err(failure @ Failure::Transient { .. }) => {
                let disposition = self.dead_letter(raw, &failure).await;
                if let (Disposition::Done, Failure::Transient { reason, .. }) = (&disposition, &failure) {
                    self.ask_for_redelivery(&work, lock, reason).await;
                }
                disposition
            }
            Err(failure @ Failure::Permanent { .. }) => {
                let disposition = self.dead_letter(raw, &failure).await;
                if let (Disposition::Done, Failure::Permanent { reason, .. }) = (&disposition, &failure)
                    && let Err(error) = self.idempotency.dead_letter(&lock, reason).await
                {
                    tracing::warn!(work_id = %id, %error, "could not record the dead letter; the lock lapses by itself");
                }
                disposition
            }
        }
    }

    /// After the last transient failure: free the id for HICAPS's redelivery and ask for it
    /// through `lp:webhook-error`, once per id. The call is recorded before it is made, so a
    /// crash or a failed call never leads to a second one.
    async fn ask_for_redelivery(&self, work: &Work, mut lock: Lock, reason: &str) {
        let href = match work {
            Work::Webhook { body, .. } => handlers::webhook_error_href(body),
            Work::Decision { .. } => None,
        };
        let ask = href.filter(|_| !lock.webhook_error_called);
        lock.webhook_error_called |= ask.is_some();
        if let Err(error) = self.idempotency.give_up(&lock, &format!("gave up after retries: {reason}")).await {
            tracing::warn!(work_id = %lock.id, %error, "could not release the lock; not asking HICAPS to redeliver");
            return;
        }
        let Some(href) = ask else {
            return;
        };
        match self.hicaps.post_empty(&href).await {
            Ok(_) => tracing::info!(work_id = %lock.id, "asked HICAPS to redeliver through lp:webhook-error"),
            Err(error) => tracing::error!(work_id = %lock.id, %error, "lp:webhook-error call failed"),
        }
        shared::metrics::count("CallbackOutcome", ("Outcome", "webhookErrorCalled"));
    }

    /// Deletes the claim-check parts of a message nothing will process again (a dead letter keeps
    /// them for its replay). Parts that stay lapse with their TTL.
    async fn discard_claim_check(&self, raw: &str) {
        if let Err(error) = handoff::discard(raw, self.table.as_ref()).await {
            tracing::warn!(%error, "could not delete the claim check's parts; they lapse by themselves");
        }
    }

    /// The jittered backoff for the `receive_count`-th attempt.
    fn backoff(&self, receive_count: u32) -> Duration {
        jittered(backoff(self.retry_base, receive_count))
    }

    async fn retry(
        &self,
        record: &SqsMessage,
        receive_count: u32,
        id: Option<&str>,
        reason: &str,
        retry_after: Option<Duration>,
    ) -> Disposition {
        let delay =
            self.backoff(receive_count).max(retry_after.unwrap_or_default().min(RETRY_AFTER_MAX)).min(MAX_RETRY_DELAY);
        self.retry_in(record, receive_count, delay, id, reason).await
    }

    /// Reports the record as failed and makes it visible again after `delay`.
    async fn retry_in(
        &self,
        record: &SqsMessage,
        receive_count: u32,
        delay: Duration,
        id: Option<&str>,
        reason: &str,
    ) -> Disposition {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(work_id = id.unwrap_or("-"), receive_count, delay_ms, reason, "will retry");
        shared::metrics::count("CallbackOutcome", ("Outcome", "retried"));
        if let Some(receipt) = record.receipt_handle.as_deref()
            && let Err(error) = self.visibility.change_visibility(receipt, delay).await
        {
            tracing::warn!(%error, "could not set the retry delay; the queue's visibility timeout applies");
        }
        Disposition::Retry
    }

    /// Moves the message to the dead-letter queue with the reason (and, in the letter only, the
    /// detail).
    async fn dead_letter(&self, raw: &str, failure: &Failure) -> Disposition {
        let (reason, kept, detail) = match failure {
            Failure::Transient { reason, .. } => (reason.as_str(), format!("gave up after retries: {reason}"), None),
            Failure::Permanent { reason, detail } => (reason.as_str(), reason.clone(), detail.as_deref()),
        };
        let letter = shared::program::work::dead_letter(raw, &kept, detail);
        if let Err(error) = self.dead_letters.send(letter).await {
            tracing::error!(%error, "dead-letter queue unavailable; the message stays on the queue");
            return Disposition::Retry;
        }
        tracing::error!(reason, "dead-lettered");
        shared::metrics::count("CallbackOutcome", ("Outcome", "deadLettered"));
        Disposition::Done
    }

    /// Notes on its own that this attempt's post happened, when no write has yet, retrying
    /// briefly: without the note a retry after a later failure would post again (the same body).
    async fn note_post(&self, lock: &mut Lock) {
        if !lock.note_pending {
            return;
        }
        for attempt in 1..=MARK_POSTED_ATTEMPTS {
            match self.idempotency.mark_posted(lock).await {
                Ok(()) => return,
                Err(error) if attempt < MARK_POSTED_ATTEMPTS => {
                    tracing::warn!(work_id = %lock.id, %error, attempt, "could not note the post; trying again");
                    tokio::time::sleep(jittered(Duration::from_millis(100) * attempt)).await;
                }
                Err(error) => {
                    tracing::error!(work_id = %lock.id, %error, "could not note the post; a retry would post again")
                }
            }
        }
    }

    /// The HICAPS token, fetched at init ([`HicapsClient::warm_up`]).
    pub async fn warm_up_hicaps(&self) -> Result<(), String> {
        self.hicaps.warm_up().await
    }

    pub(crate) fn record_expiry(&self) -> i64 {
        now_seconds() + i64::from(self.record_days) * 86_400
    }
}

/// Exponential backoff by receive count: base, 2x base, 4x base..., at most 15 minutes.
pub fn backoff(base: Duration, receive_count: u32) -> Duration {
    let factor = 1u32.checked_shl(receive_count.saturating_sub(1).min(16)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(MAX_RETRY_DELAY)
}
