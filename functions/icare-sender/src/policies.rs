//! `PUT|GET /icare/policies/{policyId}`: a workplace policy and its iCare API integration.
//! Policies are the caller's configuration, not health information: they are kept without expiry.

use crate::records::{self, policy_key};
use crate::{App, MAX_SMALL_BODY_BYTES, Rejection, invalid, json_body};
use http::StatusCode;
use lambda_http::Request;
use shared::api_error::Problems;
use shared::icare::{Policy, validate_policy, validate_policy_id};
use shared::store::{Condition, StoreError};
use shared::web::{self, HttpResponse};

pub(crate) async fn load(app: &App, caller: &str, policy_id: &str) -> Result<Option<Policy>, Rejection> {
    if validate_policy_id(policy_id).is_some() {
        return Ok(None);
    }
    let stored =
        records::load::<Policy>(app.table.as_ref(), &policy_key(caller, policy_id)).await.map_err(Rejection::store)?;
    Ok(stored.map(|stored| stored.value))
}

pub(crate) async fn put(
    app: &App,
    caller: &str,
    policy_id: &str,
    request: &Request,
) -> Result<HttpResponse, Rejection> {
    if web::body_bytes(request.body()).len() > MAX_SMALL_BODY_BYTES {
        return Err(Rejection::TooLarge(format!("A policy must be at most {MAX_SMALL_BODY_BYTES} bytes.")));
    }
    let mut problems = Problems::new();
    let Some(body) = json_body(request, &mut problems) else {
        return Err(invalid(problems));
    };
    let policy = validate_policy(policy_id, &body).map_err(Rejection::Invalid)?;
    let attrs = match serde_json::to_value(&policy) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(Rejection::Unavailable("The policy could not be recorded.".to_owned())),
    };
    let item = shared::store::Item::new(policy_key(caller, policy_id), attrs);
    // Created (201) if no policy had the id, else replaced (200): one conditional write tells
    // which, where a read first cost a second round trip on every save. A replacement writes
    // twice; policies are created far more often than changed.
    let existed = match app.table.put(&item, Condition::Absent).await {
        Ok(_) => false,
        Err(StoreError::Conflict { .. }) => {
            app.table.put(&item, Condition::Always).await.map_err(Rejection::store)?;
            true
        }
        Err(error) => return Err(Rejection::store(error)),
    };
    tracing::info!(policy_id, integration = policy.insurer_api_integration, "iCare policy saved");
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok(crate::located(status, &policy, &format!("/icare/policies/{policy_id}")))
}

pub(crate) async fn get(app: &App, caller: &str, policy_id: &str) -> Result<HttpResponse, Rejection> {
    match load(app, caller, policy_id).await? {
        Some(policy) => Ok(web::json(StatusCode::OK, &policy)),
        None => Err(Rejection::NotFound(format!("Policy {policy_id} was not found."))),
    }
}
