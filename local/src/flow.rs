//! The local stack's operator routes: a page to watch the flows, and the timelines behind
//! `cargo xtask inspect`. They exist only here (the SAM template serves none of them), read the
//! same records the poster keeps in AWS (`shared::program::inspect`), and ask for no key, like
//! the simulators: the local stack listens on loopback only.
//!
//! | route | what |
//! |---|---|
//! | `GET /local/` | the flow page (`flow.html`): recent webhooks and decisions, queues, HICAPS's posts |
//! | `GET /local/activity` | what the page shows, as JSON |
//! | `GET /local/inspect/webhooks/{id}` | a webhook's (or decision's) timeline; `?showPersonalData=true` adds its dead letter's detail |
//! | `GET /local/inspect/invoices/{id}` | an invoice's timeline |
//! | `POST /local/replay-dlq` | sends every dead letter back to the work queue, as `cargo xtask replay-dlq` does |

use crate::Backend;
use crate::sim::hicaps::Simulator;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use shared::program::inspect;
use shared::program::replay::{self, Mode, Selection};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Webhooks and decisions the page lists: the latest this many.
pub const RECENT: usize = 20;
/// HICAPS posts the page lists.
const RECENT_POSTS: usize = 20;

const PAGE: &str = include_str!("flow.html");

/// One piece of work the receiver accepted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub id: String,
    /// `webhook` or `decision`.
    pub kind: &'static str,
    pub accepted_at: String,
}

/// The latest work the receiver accepted, newest first, bounded.
#[derive(Default, Clone)]
pub struct Recent(Arc<Mutex<VecDeque<Accepted>>>);

impl Recent {
    pub fn note(&self, id: String, kind: &'static str) {
        let accepted_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut recent = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.retain(|known| known.id != id);
        recent.push_front(Accepted { id, kind, accepted_at });
        recent.truncate(RECENT);
    }

    fn list(&self) -> Vec<Accepted> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }
}

/// Notes what the receiver accepted (202) from a request it was given: a webhook's `id`, or the
/// `decisionId` it answered a decision with.
pub fn note_accepted(recent: &Recent, route_path: &str, request_body: &[u8], status: u16, response_body: &[u8]) {
    #[derive(serde::Deserialize)]
    struct WithId {
        #[serde(default)]
        id: Option<String>,
        #[serde(rename = "decisionId", default)]
        decision_id: Option<String>,
    }
    if status != 202 {
        return;
    }
    let (body, kind) = match route_path {
        "/hicaps/webhooks" => (request_body, "webhook"),
        "/invoices/{invoiceId}/status" => (response_body, "decision"),
        _ => return,
    };
    let Ok(found) = serde_json::from_slice::<WithId>(body) else {
        return;
    };
    if let Some(id) = found.id.or(found.decision_id).filter(|id| !id.is_empty() && id.len() <= 128) {
        recent.note(id, kind);
    }
}

#[derive(Clone)]
struct Flow {
    backend: Arc<Backend>,
    hicaps: Simulator,
    recent: Recent,
}

pub fn router(backend: Arc<Backend>, hicaps: Simulator, recent: Recent) -> Router {
    Router::new()
        .route("/local", get(|| async { Html(PAGE) }))
        .route("/local/", get(|| async { Html(PAGE) }))
        .route("/local/activity", get(activity))
        .route("/local/inspect/webhooks/{id}", get(inspect_work))
        .route("/local/inspect/invoices/{id}", get(inspect_invoice))
        .route("/local/replay-dlq", post(replay_dlq))
        .with_state(Flow { backend, hicaps, recent })
}

fn unavailable(error: impl std::fmt::Display) -> Response {
    (http::StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": error.to_string() }))).into_response()
}

/// Where a piece of work stands, in the page's words.
fn stage(report: &inspect::WorkReport) -> &'static str {
    match report.status.as_deref() {
        None => "queued",
        Some("inProgress") => "processing",
        Some("deadLettered") => "dead-lettered",
        Some("released") if report.dead_lettered_at.is_some() => "dead-lettered",
        Some("released") => "retrying",
        Some("completed") if report.posted => "posted",
        Some("completed") => "done",
        Some(_) => "unknown",
    }
}

async fn activity(State(flow): State<Flow>) -> Response {
    let mut work = Vec::new();
    for accepted in flow.recent.list() {
        match inspect::work(flow.backend.table.as_ref(), &accepted.id).await {
            Ok(report) => work.push(json!({
                "id": accepted.id,
                "kind": report.kind.clone().unwrap_or_else(|| accepted.kind.to_owned()),
                "acceptedAt": accepted.accepted_at,
                "stage": stage(&report),
                "outcome": report.outcome,
                "invoiceId": report.invoice_id,
                "events": report.events,
            })),
            Err(error) => return unavailable(error),
        }
    }
    let mut queues = serde_json::Map::new();
    let depths: [(&str, &dyn shared::queue::QueueDepth); 4] = [
        ("work", &*flow.backend.work),
        ("workDlq", &*flow.backend.work_dlq),
        ("icare", &*flow.backend.icare),
        ("icareDlq", &*flow.backend.icare_dlq),
    ];
    for (name, queue) in depths {
        match queue.depth().await {
            Ok(messages) => queues.insert(name.into(), json!(messages)),
            Err(error) => return unavailable(format!("{name}: {error}")),
        };
    }
    let posts = flow.hicaps.posts();
    let latest: Vec<_> = posts
        .iter()
        .rev()
        .take(RECENT_POSTS)
        .map(|post| json!({"kind": post.kind, "reference": post.reference, "status": post.status}))
        .collect();
    Json(json!({ "work": work, "queues": queues, "posts": latest })).into_response()
}

async fn inspect_work(
    State(flow): State<Flow>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut report = match inspect::work(flow.backend.table.as_ref(), &id).await {
        Ok(report) => report,
        Err(error) => return unavailable(error),
    };
    if query.get("showPersonalData").is_some_and(|v| v == "true")
        && let Err(error) =
            inspect::attach_dead_letter_detail(&mut report, &*flow.backend.work_dlq, &*flow.backend.work).await
    {
        return unavailable(error);
    }
    Json(report).into_response()
}

async fn inspect_invoice(State(flow): State<Flow>, Path(id): Path<String>) -> Response {
    match inspect::invoice(flow.backend.table.as_ref(), &id).await {
        Ok(report) => Json(report).into_response(),
        Err(error) => unavailable(error),
    }
}

async fn replay_dlq(State(flow): State<Flow>) -> Response {
    match replay::run(&*flow.backend.work_dlq, &*flow.backend.work, &Selection::default(), Mode::Replay).await {
        Ok(pass) => Json(json!({ "replayed": pass.replayed, "letters": pass.letters.len() })).into_response(),
        Err(error) => unavailable(error),
    }
}
