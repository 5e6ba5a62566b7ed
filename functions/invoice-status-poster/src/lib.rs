//! Invoice status poster: consumes the work queue (SQS, batches of up to ten,
//! `ReportBatchItemFailures`), processes each webhook exactly once in effect, and posts the
//! program's answers back to HICAPS.
//!
//! Per record: resolve the claim check, take the idempotency lock on the webhook `id`, act,
//! record completion. A transient failure (HICAPS 5xx, timeout, our store) releases the lock and
//! reports the record as a batch item failure with backoff; a permanent one (HICAPS 4xx, a
//! message that can never be processed) or the last allowed attempt dead-letters it with the
//! reason and asks HICAPS to redeliver through `lp:webhook-error`.

pub mod callback;
mod handlers;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use callback::{CallbackError, HicapsClient, HicapsCredentials};
use shared::config::{ConfigError, Vars};
use shared::handoff;
use shared::http_client::SharedHttp;
use shared::idempotency::{Begin, Idempotency, payload_hash};
use shared::program::work::Work;
use shared::queue::{MessageSender, MessageVisibility};
use shared::store::{SharedTable, StoreError, now_epoch_seconds};
use std::sync::Arc;
use std::time::Duration;

pub struct Config {
    /// Moved into the HICAPS client at construction.
    pub credentials: HicapsCredentials,
    pub callback_hosts: Vec<String>,
    /// How long a completed webhook id is remembered (at least 7 days).
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
                client_secret: vars.required_secret("HICAPS_CLIENT_SECRET").await?,
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

/// Why processing did not complete. Reasons are logged; `detail` (HICAPS's answer, which may
/// echo personal data) goes only into the dead letter.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("transient: {0}")]
    Transient(String),
    #[error("permanent: {reason}")]
    Permanent { reason: String, detail: Option<String> },
}

impl Failure {
    pub fn permanent(reason: impl Into<String>) -> Self {
        Failure::Permanent { reason: reason.into(), detail: None }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Transient(error.to_string())
    }
}

impl From<CallbackError> for Failure {
    fn from(error: CallbackError) -> Self {
        match error {
            CallbackError::Transient(reason) => Failure::Transient(reason),
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

impl Poster {
    pub fn new(
        config: Config,
        table: SharedTable,
        http: SharedHttp,
        visibility: Arc<dyn MessageVisibility>,
        dead_letters: Arc<dyn MessageSender>,
    ) -> Self {
        let Config { credentials, callback_hosts, idempotency_days, record_days, max_receive_count, retry_base, call_timeout } =
            config;
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
            futures::future::join_all(event.records.iter().map(|record| self.process_record(record, deadline))).await;
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

    async fn process_record(&self, record: &SqsMessage, deadline: i64) -> Disposition {
        let message_id = record.message_id.as_deref().unwrap_or_default();
        let receive_count: u32 =
            record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
        let raw = record.body.as_deref().unwrap_or_default();
        let body = match handoff::resolve(raw, self.table.as_ref()).await {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(message_id, %error, "claim check not readable yet");
                return self.retry(record, receive_count, None, &error.to_string()).await;
            }
        };
        let work = match Work::parse(&body) {
            Ok(work) => work,
            Err(error) => return self.dead_letter(raw, None, &Failure::permanent(error.to_string())).await,
        };
        let (id, webhook_error) = match &work {
            Work::Webhook { body, .. } => (handlers::webhook_id(body), handlers::webhook_error_href(body)),
            Work::Decision { decision_id, .. } => (Some(decision_id.clone()), None),
        };
        let Some(id) = id else {
            return self.dead_letter(raw, None, &Failure::permanent("work without an id")).await;
        };
        // The payload is the webhook as HICAPS sent it: the receiver's `receivedAt` differs on
        // every redelivery and must not make a repeat look like a changed payload.
        let payload = match &work {
            Work::Webhook { body, .. } => body.as_str(),
            Work::Decision { .. } => body.as_str(),
        };
        let hash = payload_hash(payload.as_bytes());
        match self.idempotency.begin(&id, &hash, deadline).await {
            Ok(Begin::Acquired) => {}
            Ok(Begin::AlreadyCompleted) => {
                tracing::info!(work_id = %id, "duplicate delivery; already processed");
                shared::metrics::count("DuplicateDelivery", ("Kind", work.describe()));
                return Disposition::Done;
            }
            Ok(Begin::InProgress { lock_expires_at }) => {
                // Back no sooner than the holder's lock lapses: asking earlier only adds load
                // (a burst of copies retrying every backoff step swamped the store in tests) and
                // spends the copy's receives towards the dead-letter queue.
                let lapse = u64::try_from(lock_expires_at - now_epoch_seconds()).unwrap_or(0) + 1;
                let delay = backoff(self.retry_base, receive_count).max(Duration::from_secs(lapse));
                return self.retry_in(record, receive_count, delay, Some(&id), "in progress elsewhere").await;
            }
            Ok(Begin::PayloadChanged) => {
                tracing::warn!(work_id = %id, "payload changed under a known id; flagged, not processed");
                shared::metrics::count("PayloadChanged", ("Kind", work.describe()));
                return match handlers::flag(self, &id, "payloadChanged").await {
                    Ok(()) => Disposition::Done,
                    Err(error) => self.retry(record, receive_count, Some(&id), &error.to_string()).await,
                };
            }
            Err(error) => return self.retry(record, receive_count, Some(&id), &error.to_string()).await,
        };
        match handlers::process(self, &work, deadline).await {
            Ok(outcome) => match self.idempotency.complete(&id, &hash, outcome).await {
                Ok(()) => Disposition::Done,
                // The effect happened; a redelivery after the lock lapses repeats the same outcome.
                Err(error) => self.retry(record, receive_count, Some(&id), &error.to_string()).await,
            },
            Err(failure) => {
                if let Err(error) = self.idempotency.release(&id).await {
                    tracing::warn!(work_id = %id, %error, "could not release the lock; it expires by itself");
                }
                match failure {
                    Failure::Transient(reason) if receive_count < self.max_receive_count => {
                        self.retry(record, receive_count, Some(&id), &reason).await
                    }
                    failure => self.dead_letter(raw, webhook_error.as_deref(), &failure).await,
                }
            }
        }
    }

    async fn retry(&self, record: &SqsMessage, receive_count: u32, id: Option<&str>, reason: &str) -> Disposition {
        self.retry_in(record, receive_count, backoff(self.retry_base, receive_count), id, reason).await
    }

    /// Reports the record as failed and makes it visible again after `delay`.
    async fn retry_in(&self, record: &SqsMessage, receive_count: u32, delay: Duration, id: Option<&str>, reason: &str) -> Disposition {
        tracing::warn!(work_id = id.unwrap_or("-"), receive_count, delay_ms = delay.as_millis() as u64, reason, "will retry");
        shared::metrics::count("CallbackOutcome", ("Outcome", "retried"));
        if let Some(receipt) = record.receipt_handle.as_deref()
            && let Err(error) = self.visibility.change_visibility(receipt, delay).await
        {
            tracing::warn!(%error, "could not set the retry delay; the queue's visibility timeout applies");
        }
        Disposition::Retry
    }

    /// Moves the message to the dead-letter queue with the reason, then asks HICAPS to redeliver.
    async fn dead_letter(&self, raw: &str, webhook_error: Option<&str>, failure: &Failure) -> Disposition {
        let (reason, kept) = match failure {
            Failure::Transient(reason) => (reason.as_str(), format!("gave up after retries: {reason}")),
            Failure::Permanent { reason, detail: None } => (reason.as_str(), reason.clone()),
            Failure::Permanent { reason, detail: Some(detail) } => (reason.as_str(), format!("{reason}: {detail}")),
        };
        let letter = shared::program::work::dead_letter(raw, &kept);
        if let Err(error) = self.dead_letters.send(letter).await {
            tracing::error!(%error, "dead-letter queue unavailable; the message stays on the queue");
            return Disposition::Retry;
        }
        tracing::error!(reason, "dead-lettered");
        shared::metrics::count("CallbackOutcome", ("Outcome", "deadLettered"));
        if let Some(href) = webhook_error {
            match self.hicaps.post_empty(href).await {
                Ok(_) => tracing::info!("asked HICAPS to redeliver through lp:webhook-error"),
                Err(error) => tracing::error!(%error, "lp:webhook-error call failed"),
            }
        }
        Disposition::Done
    }

    pub(crate) fn record_expiry(&self) -> i64 {
        now_epoch_seconds() + i64::from(self.record_days) * 86_400
    }
}

/// Exponential backoff by receive count: base, 2x base, 4x base..., at most 15 minutes.
pub fn backoff(base: Duration, receive_count: u32) -> Duration {
    let factor = 1u32.checked_shl(receive_count.saturating_sub(1).min(16)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(Duration::from_secs(900))
}
