//! `POST /icare/notifications` and `GET /icare/notifications/{notificationId}`, and the retry of a
//! notification from the queue.
//!
//! Order of work for a new notification: validate; check the policy; bind the `Idempotency-Key`
//! to a new notification id (conditional write); record the notification with the lease of its
//! first attempt; call iCare; settle the record; answer 201, or 202 after queueing a retry.
//! A crash anywhere leaves a record the same request (same key) picks up again.

use crate::records::{
    self, Created, Delivery, KeyClaim, RetryKind, RetryMessage, Status, Stored, Tracked, claim_key, notification_key,
};
use crate::retry::Retried;
use crate::{App, MAX_SMALL_BODY_BYTES, Rejection, idempotency_key, invalid, json_body, located, located_error};
use http::StatusCode;
use lambda_http::Request;
use serde::{Deserialize, Serialize};
use shared::api_error::{ApiError, Problems};
use shared::icare::{ICARE_REJECTED_TYPE, IcareError, InitialNotification, validate_notification};
use shared::store::{Key, StoreError};
use shared::web::{self, HttpResponse};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NotificationRecord {
    pub caller: String,
    pub policy_id: String,
    pub icare_policy_number: String,
    /// The notification's content, kept until iCare has it (or refused it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<InitialNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_number: Option<String>,
    pub delivery: Delivery,
}

impl Tracked for NotificationRecord {
    fn delivery(&self) -> &Delivery {
        &self.delivery
    }
    fn delivery_mut(&mut self) -> &mut Delivery {
        &mut self.delivery
    }
}

/// A claim number iCare gave this caller: documents are accepted only for these.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClaimRecord {
    pub notification_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct View<'a> {
    notification_id: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    claim_number: Option<&'a str>,
    policy_id: &'a str,
    attempts: u32,
    created_at: &'a str,
    updated_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a ApiError>,
}

fn location(id: &str) -> String {
    format!("/icare/notifications/{id}")
}

fn view<'a>(id: &'a str, record: &'a NotificationRecord) -> View<'a> {
    View {
        notification_id: id,
        status: record.delivery.status.as_str(),
        claim_number: record.claim_number.as_deref(),
        policy_id: &record.policy_id,
        attempts: record.delivery.attempts,
        created_at: &record.delivery.created_at,
        updated_at: &record.delivery.updated_at,
        failure: record.delivery.failure.as_ref(),
    }
}

/// The answer to a POST for the record as it stands.
fn respond(id: &str, record: &NotificationRecord) -> HttpResponse {
    match (record.delivery.status, &record.delivery.failure) {
        (Status::Failed, Some(failure)) => {
            let status = if failure.kind.as_deref() == Some(ICARE_REJECTED_TYPE) {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::BAD_GATEWAY
            };
            located_error(status, failure, &location(id))
        }
        (Status::Queued, _) => located(StatusCode::ACCEPTED, &view(id, record), &location(id)),
        _ => located(StatusCode::CREATED, &view(id, record), &location(id)),
    }
}

pub(crate) async fn post(app: &App, caller: &str, request: &Request) -> Result<HttpResponse, Rejection> {
    if web::body_bytes(request.body()).len() > MAX_SMALL_BODY_BYTES {
        return Err(Rejection::TooLarge(format!("A notification must be at most {MAX_SMALL_BODY_BYTES} bytes.")));
    }
    let mut problems = Problems::new();
    let key = idempotency_key(request, &mut problems, true);
    let Some(body) = json_body(request, &mut problems) else {
        return Err(invalid(problems));
    };
    let notification = validate_notification(&body, app.clock.now(), problems).map_err(Rejection::Invalid)?;
    let Some(key) = key else {
        let mut problems = Problems::new();
        problems.push("Idempotency-Key", "is required");
        return Err(invalid(problems));
    };
    let policy_id = notification.policy_id.clone();
    let Some(policy) = crate::policies::load(app, caller, &policy_id).await? else {
        return Err(Rejection::NotFound(format!(
            "Policy {policy_id} was not found: create it with PUT /icare/policies/{policy_id} first."
        )));
    };
    let Some(icare_policy_number) = policy.icare_policy_number_if_on().map(str::to_owned) else {
        return Err(Rejection::Conflict(shared::icare::Policy::how_to_turn_on(&policy_id)));
    };
    let hash = records::hash_json(&notification);
    let new_id = uuid::Uuid::new_v4().to_string();
    let table = app.table.as_ref();
    let claimed = records::bind_key(
        table,
        &records::idempotency_key(caller, RetryKind::Notification, &key),
        &hash,
        &new_id,
        app.expires_at(),
    )
    .await
    .map_err(Rejection::store)?;
    let id = match claimed {
        KeyClaim::Mismatch => return Err(Rejection::KeyReused),
        KeyClaim::New => new_id,
        KeyClaim::Replay(id) => {
            tracing::info!(notification_id = %id, "iCare notification replayed for its Idempotency-Key");
            shared::metrics::count("IcareIdempotentReplay", ("Kind", "notification"));
            id
        }
    };
    let record = NotificationRecord {
        caller: caller.to_owned(),
        policy_id,
        icare_policy_number,
        request: Some(notification),
        claim_number: None,
        delivery: Delivery::first_attempt(&app.now_text(), app.config.timeout),
    };
    // Absent unless this is a replay, or a retry after a crash between the key and this write.
    let mut stored = match records::create(table, &notification_key(&id), record, app.expires_at()).await {
        Ok(Created::New(stored)) => {
            tracing::info!(notification_id = %id, "iCare notification recorded");
            stored
        }
        Ok(Created::Existing(mut stored)) => {
            if stored.value.caller != caller {
                return Err(Rejection::Unavailable("The notification could not be recorded.".to_owned()));
            }
            let stalled = !stored.value.delivery.status.is_final() && !stored.value.delivery.enqueued;
            let now = app.now_text();
            if !(stalled
                && records::take_lease(table, &notification_key(&id), &mut stored, app.config.timeout, &now)
                    .await
                    .map_err(Rejection::store)?)
            {
                return Ok(respond(&id, &stored.value));
            }
            tracing::info!(notification_id = %id, "stalled iCare notification picked up again by its replay");
            stored
        }
        Err(error) => return Err(Rejection::store(error)),
    };
    deliver(app, &id, &mut stored, app.config.timeout).await.map_err(Rejection::store)?;
    if stored.value.delivery.status.is_final() || stored.value.delivery.enqueued {
        return Ok(respond(&id, &stored.value));
    }
    enqueue(app, &id, &mut stored).await?;
    Ok(respond(&id, &stored.value))
}

/// Hands a notification iCare did not answer in time to the retry queue.
async fn enqueue(app: &App, id: &str, stored: &mut Stored<NotificationRecord>) -> Result<(), Rejection> {
    if let Err(error) = app.queues.retries.send(RetryMessage::body(RetryKind::Notification, id)).await {
        tracing::error!(notification_id = %id, %error, "iCare retry could not be queued");
        shared::metrics::count("IcareQueueFailed", ("Kind", "notification"));
        return Err(Rejection::Unavailable(
            "iCare did not answer in time and the notification could not be queued for retry; send the same request \
             again with the same Idempotency-Key."
                .to_owned(),
        ));
    }
    shared::metrics::count("IcareQueued", ("Kind", "notification"));
    tracing::info!(notification_id = %id, "iCare notification queued for retry");
    let now = app.now_text();
    if let Err(error) = records::modify(app.table.as_ref(), &notification_key(id), stored, |r| {
        r.delivery.enqueued = true;
        r.delivery.updated_at.clone_from(&now);
    })
    .await
    {
        // The message is on the queue; the flag only spares a replay from sending it again.
        tracing::warn!(notification_id = %id, %error, "could not mark the notification as queued");
        stored.value.delivery.enqueued = true;
    }
    Ok(())
}

impl Retried for NotificationRecord {
    const KIND: RetryKind = RetryKind::Notification;
    type Payload = ();

    fn key(id: &str) -> Key {
        notification_key(id)
    }

    async fn payload(_: &App, _: &str, _: &Stored<Self>) -> Result<Result<(), ApiError>, StoreError> {
        Ok(Ok(()))
    }

    async fn deliver(
        app: &App,
        id: &str,
        stored: &mut Stored<Self>,
        (): (),
        timeout: Duration,
    ) -> Result<(), StoreError> {
        deliver(app, id, stored, timeout).await
    }
}

/// One attempt at iCare for a record whose lease this caller holds; settles the record.
async fn deliver(
    app: &App,
    id: &str,
    stored: &mut Stored<NotificationRecord>,
    timeout: Duration,
) -> Result<(), StoreError> {
    let table = app.table.as_ref();
    let key = notification_key(id);
    let Some(request) = stored.value.request.clone() else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let result = app.client.create_notification(id, &stored.value.icare_policy_number, &request, timeout).await;
    shared::metrics::millis(
        "IcareUpstreamLatency",
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        ("Kind", "notification"),
    );
    let now = app.now_text();
    match result {
        Ok(received) => {
            let claim = ClaimRecord { notification_id: id.to_owned() };
            records::put(
                table,
                &claim_key(&stored.value.caller, &received.claim_number),
                &claim,
                stored.expires_at.unwrap_or_else(|| app.expires_at()),
            )
            .await?;
            records::modify(table, &key, stored, |r| {
                r.claim_number = Some(received.claim_number.clone());
                r.request = None;
                r.delivery.finished(&now, Status::ClaimNumberReceived, None);
            })
            .await?;
            tracing::info!(notification_id = %id, attempts = stored.value.delivery.attempts, "iCare claim number received");
            shared::metrics::count("IcareOutcome", ("Outcome", "claimNumberReceived"));
        }
        Err(IcareError::Rejected { status, invalid_params }) => {
            let failure = ApiError {
                kind: Some(ICARE_REJECTED_TYPE.to_owned()),
                title: format!(
                    "iCare refused the notification (status {status}); correct it and send it with a new Idempotency-Key."
                ),
                invalid_params,
            };
            records::modify(table, &key, stored, |r| {
                r.request = None;
                r.delivery.finished(&now, Status::Failed, Some(failure.clone()));
            })
            .await?;
            tracing::warn!(notification_id = %id, status, "iCare refused the notification");
            shared::metrics::count("IcareOutcome", ("Outcome", "rejected"));
        }
        Err(IcareError::Unavailable(reason)) => {
            records::modify(table, &key, stored, |r| r.delivery.unfinished(&now, &reason)).await?;
            tracing::warn!(notification_id = %id, %reason, "iCare did not answer the notification");
            shared::metrics::count("IcareOutcome", ("Outcome", "unavailable"));
        }
    }
    Ok(())
}

pub(crate) async fn get(app: &App, caller: &str, id: &str) -> Result<HttpResponse, Rejection> {
    let not_found = || Rejection::NotFound("No notification with this id was found.".to_owned());
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    let stored = records::load::<NotificationRecord>(app.table.as_ref(), &notification_key(id))
        .await
        .map_err(Rejection::store)?
        .filter(|stored| stored.value.caller == caller)
        .ok_or_else(not_found)?;
    Ok(web::json(StatusCode::OK, &view(id, &stored.value)))
}
