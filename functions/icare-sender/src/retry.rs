//! One retry from the iCare retry queue, the same for every record kind: load the record, take
//! its lease, make one attempt, and give up at the retry horizon.

use crate::App;
use crate::records::{self, RetryKind, Status, Stored, Tracked};
use shared::api_error::ApiError;
use shared::icare::ICARE_GAVE_UP_TYPE;
use shared::store::{Key, StoreError};
use std::time::Duration;

/// Logs with the record's id under the field its kind's other log lines use (`notification_id`
/// or `document_id`), so one query finds a record's whole history.
macro_rules! log_by_kind {
    ($level:ident, $kind:expr, $id:expr, $($rest:tt)+) => {
        match $kind {
            RetryKind::Notification => tracing::$level!(notification_id = %$id, $($rest)+),
            RetryKind::Document => tracing::$level!(document_id = %$id, $($rest)+),
        }
    };
}

/// A record kind the retry queue carries (notifications and documents).
pub(crate) trait Retried: Tracked {
    const KIND: RetryKind;
    /// What an attempt needs besides the record (a document's content, kept apart).
    type Payload: Send;

    fn key(id: &str) -> Key;

    /// The payload, or the failure to record when it is gone.
    async fn payload(app: &App, id: &str, stored: &Stored<Self>)
    -> Result<Result<Self::Payload, ApiError>, StoreError>;

    /// One attempt at iCare for a record whose lease this caller holds; settles the record.
    async fn deliver(
        app: &App,
        id: &str,
        stored: &mut Stored<Self>,
        payload: Self::Payload,
        timeout: Duration,
    ) -> Result<(), StoreError>;
}

/// One retry from the queue; `true` when the message must come back.
/// `last` is the attempt at the horizon: when it fails, the record is given up.
pub(crate) async fn retry<T: Retried>(app: &App, id: &str, last: bool) -> bool {
    match retry_inner::<T>(app, id, last).await {
        Ok(again) => again,
        Err(error) => {
            log_by_kind!(error, T::KIND, id, %error, "iCare {} retry failed on the store", T::KIND.as_str());
            true
        }
    }
}

async fn retry_inner<T: Retried>(app: &App, id: &str, last: bool) -> Result<bool, StoreError> {
    let (table, key, kind) = (app.table.as_ref(), T::key(id), T::KIND.as_str());
    let Some(mut stored) = records::load::<T>(table, &key).await? else {
        log_by_kind!(warn, T::KIND, id, "iCare retry for a {kind} that no longer exists");
        return Ok(false);
    };
    if stored.value.delivery().status.is_final() {
        return Ok(false);
    }
    let now = app.now_text();
    let payload = match T::payload(app, id, &stored).await? {
        Ok(payload) => payload,
        Err(failure) => {
            records::modify(table, &key, &mut stored, |r| {
                r.delivery_mut().finished(&now, Status::Failed, Some(failure.clone()));
            })
            .await?;
            log_by_kind!(error, T::KIND, id, "{kind} content missing; marked failed");
            return Ok(false);
        }
    };
    if !records::take_lease(table, &key, &mut stored, app.config.retry_timeout, &now).await? {
        return Ok(!stored.value.delivery().status.is_final());
    }
    T::deliver(app, id, &mut stored, payload, app.config.retry_timeout).await?;
    if stored.value.delivery().status.is_final() {
        return Ok(false);
    }
    if last {
        let attempts = stored.value.delivery().attempts;
        let failure = ApiError {
            kind: Some(ICARE_GAVE_UP_TYPE.to_owned()),
            title: format!("iCare did not accept the {kind} after {attempts} attempts."),
            invalid_params: Vec::new(),
        };
        // The content stays until the retention ends, so an operator can still send it.
        records::modify(table, &key, &mut stored, |r| {
            r.delivery_mut().finished(&now, Status::Failed, Some(failure.clone()));
        })
        .await?;
        log_by_kind!(error, T::KIND, id, attempts, "iCare {kind} given up at the retry horizon");
        shared::metrics::count("IcareOutcome", ("Outcome", "gaveUp"));
        return Ok(false);
    }
    Ok(true)
}
