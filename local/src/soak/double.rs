//! A HICAPS double for the soak: serves the OAuth token and the callbacks, records every post it
//! applied, and answers with the seed's faults. Its links carry the webhook id
//! (`/callbacks/invoice-status/{invoiceId}/{webhookId}`), so each post is tied to the webhook that
//! caused it. An accepted `lp:webhook-error` call asks the driver to deliver that webhook again,
//! as HICAPS does.

use super::faults::{Faults, rate};
use async_trait::async_trait;
use serde_json::Value;
use shared::http_client::{HttpClient, HttpError, OutboundRequest, OutboundResponse};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub const CLIENT_ID: &str = "soak-program";
pub const CLIENT_SECRET: &str = "soak-program-secret";
const TOKEN: &str = "soak-access-token";

/// A status post HICAPS applied.
#[derive(Debug, Clone)]
pub struct Post {
    pub webhook_id: String,
    pub invoice_id: String,
    pub body: Value,
    /// `shared::time::now_millis` when it was received (virtual in the in-process soak).
    pub at_ms: i64,
}

/// What the double saw.
#[derive(Debug, Default)]
pub struct Records {
    /// Applied posts, in the order they arrived.
    pub posts: Vec<Post>,
    /// Webhook id -> how many of its posts were refused with 400.
    pub refused: HashMap<String, u64>,
    /// Webhook id -> `lp:webhook-error` calls.
    pub webhook_errors: HashMap<String, u64>,
    /// Webhook id -> posts answered 503 during its invoice's outage.
    pub outage_answers: HashMap<String, u64>,
}

/// An outage answers this many posts of each webhook of the invoice with 503: more than the
/// queue's receives, so the webhook is dead-lettered and redelivered through `lp:webhook-error`.
pub const OUTAGE_POSTS: u64 = 10;

pub struct Double {
    base: String,
    faults: Option<Arc<Faults>>,
    /// Invoices whose posts are refused with 400, every time.
    refused_invoices: HashSet<String>,
    /// Invoices whose first [`OUTAGE_POSTS`] posts per webhook are answered 503.
    outage_invoices: HashSet<String>,
    records: Mutex<Records>,
    redeliver: tokio::sync::mpsc::UnboundedSender<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An answer: status, headers, body.
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

impl Double {
    /// `base` is what the links start with; webhook ids to deliver again arrive on `redeliver`.
    pub fn new(
        base: &str,
        faults: Option<Arc<Faults>>,
        refused_invoices: HashSet<String>,
        outage_invoices: HashSet<String>,
        redeliver: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        Self { base, faults, refused_invoices, outage_invoices, records: Mutex::default(), redeliver }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn records(&self) -> MutexGuard<'_, Records> {
        lock(&self.records)
    }

    /// What the double saw, once the run is over (no lock held while it is checked).
    pub fn take_records(&self) -> Records {
        std::mem::take(&mut *lock(&self.records))
    }

    /// Answers one request to `path` (below the base). `Err` is a call that never got an answer.
    pub async fn answer(&self, path: &str, authorization: Option<&str>, body: &[u8]) -> Result<Answer, HttpError> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if segments == ["oauth", "token"] {
            return Ok(self.token(body));
        }
        if authorization != Some(&format!("Bearer {TOKEN}")) {
            return Ok((401, Vec::new(), br#"{"title":"Missing or invalid bearer token."}"#.to_vec()));
        }
        match segments.as_slice() {
            ["callbacks", "webhook-error", webhook_id] => {
                *self.records().webhook_errors.entry((*webhook_id).to_owned()).or_insert(0) += 1;
                let _ = self.redeliver.send((*webhook_id).to_owned());
                Ok((204, Vec::new(), Vec::new()))
            }
            ["callbacks", "invoice-status", invoice_id, webhook_id] => {
                self.status_post(invoice_id, webhook_id, body).await
            }
            _ => Ok((404, Vec::new(), br#"{"title":"Not found."}"#.to_vec())),
        }
    }

    fn token(&self, body: &[u8]) -> Answer {
        if let Some(faults) = &self.faults
            && faults.pick("token", "token", &[("hicaps.token503", rate::TOKEN_503)]).is_some()
        {
            return (503, Vec::new(), Vec::new());
        }
        let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
        if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
            || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
        {
            return (401, Vec::new(), br#"{"error":"invalid_client"}"#.to_vec());
        }
        let token = serde_json::json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600});
        (200, vec![("content-type".into(), "application/json".into())], token.to_string().into_bytes())
    }

    async fn status_post(&self, invoice_id: &str, webhook_id: &str, body: &[u8]) -> Result<Answer, HttpError> {
        if self.refused_invoices.contains(invoice_id) {
            *self.records().refused.entry(webhook_id.to_owned()).or_insert(0) += 1;
            return Ok((400, Vec::new(), br#"{"title":"Simulated refusal."}"#.to_vec()));
        }
        if self.outage_invoices.contains(invoice_id) {
            let mut records = self.records();
            let answered = records.outage_answers.entry(webhook_id.to_owned()).or_insert(0);
            if *answered < OUTAGE_POSTS {
                *answered += 1;
                return Ok((503, Vec::new(), Vec::new()));
            }
        }
        if let Some(faults) = &self.faults {
            let picked = faults.pick(
                "status",
                webhook_id,
                &[
                    ("hicaps.503", rate::HICAPS_503),
                    ("hicaps.429", rate::HICAPS_429),
                    ("hicaps.408", rate::HICAPS_408),
                    ("hicaps.timeout", rate::HICAPS_TIMEOUT),
                    ("hicaps.slow", rate::HICAPS_SLOW),
                ],
            );
            match picked {
                Some("hicaps.503") => return Ok((503, Vec::new(), Vec::new())),
                Some("hicaps.429") => return Ok((429, vec![("retry-after".into(), "1".into())], Vec::new())),
                Some("hicaps.408") => return Ok((408, Vec::new(), Vec::new())),
                Some("hicaps.timeout") => return Err(HttpError::Timeout),
                Some(_) => {
                    let millis = 50 + faults.fixed("slow", webhook_id, 0) % 250;
                    tokio::time::sleep(Duration::from_millis(millis)).await;
                }
                None => {}
            }
        }
        let body = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.records().posts.push(Post {
            webhook_id: webhook_id.to_owned(),
            invoice_id: invoice_id.to_owned(),
            body,
            at_ms: shared::time::now_millis(),
        });
        Ok((200, Vec::new(), Vec::new()))
    }
}

/// The poster's HTTP client in the in-process soak: every call goes to the double.
#[async_trait]
impl HttpClient for Double {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, HttpError> {
        tokio::task::yield_now().await;
        let Some(path) = request.url.strip_prefix(&self.base) else {
            return Err(HttpError::Connect(format!("{} is not the double", request.url)));
        };
        let authorization = request
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| value.as_str());
        let (status, headers, body) =
            self.answer(path, authorization, request.body.as_deref().unwrap_or_default()).await?;
        Ok(OutboundResponse { status, headers, body })
    }
}
