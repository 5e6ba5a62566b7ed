//! What every function's `main` does at init, once: logging, configuration from the environment,
//! the AWS SDK configuration and the clients built from it, and the runtime loops every `main`
//! ends in. Nothing here runs per invocation but the loops' own glue.

use crate::config::{ConfigError, Vars};
use crate::http_client::{Method, OutboundRequest, SharedHttp};
use crate::queue::sqs::SqsQueue;
use crate::queue::sqs_send::SqsSender;
use crate::store::dynamo::DynamoTable;
use crate::store::{ItemGet, Key};
use crate::web::HttpHandler;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use futures::future::BoxFuture;
use lambda_http::RequestExt;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub struct Init {
    pub vars: Vars,
    pub aws: aws_config::SdkConfig,
}

impl Init {
    pub async fn new() -> Result<Self, ConfigError> {
        crate::telemetry::init();
        let vars = Vars::from_env();
        let aws = crate::aws_config(&vars).await?;
        let vars = vars.with_secrets_manager(aws_sdk_secretsmanager::Client::new(&aws));
        Ok(Self { vars, aws })
    }

    /// The table named by `TABLE_NAME`.
    pub fn table(&self) -> Result<Arc<DynamoTable>, ConfigError> {
        Ok(Arc::new(DynamoTable::from_sdk_config(&self.aws, self.vars.required("TABLE_NAME")?)))
    }

    /// A sender to the queue whose URL is in `variable`: one signed request per message, for a
    /// handler whose only queue operation is the send on its hot path.
    pub fn queue_sender(&self, variable: &str) -> Result<Arc<SqsSender>, ConfigError> {
        Ok(Arc::new(SqsSender::new(&self.aws, &self.vars, self.vars.required(variable)?)?))
    }

    /// The queue whose URL is in `variable`.
    pub fn queue(&self, variable: &str) -> Result<Arc<SqsQueue>, ConfigError> {
        Ok(Arc::new(SqsQueue::from_sdk_config(&self.aws, self.vars.required(variable)?)))
    }
}

/// Serves an HTTP API handler under the Lambda runtime until the environment is shut down.
pub async fn serve_http(handler: Arc<dyn HttpHandler>) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<crate::web::HttpApiEvent>| {
        let handler = Arc::clone(&handler);
        async move {
            let request = crate::web::request_from_event(event.payload).with_lambda_context(event.context);
            Ok::<_, std::convert::Infallible>(crate::web::response_to_event(handler.call(request).await))
        }
    }))
    .await
}

/// A handler of SQS batches, answering with the records to retry (`ReportBatchItemFailures`).
pub trait SqsHandler: Send + Sync {
    fn call_sqs(&self, event: SqsEvent) -> BoxFuture<'_, SqsBatchResponse>;
}

/// Serves one function that takes both HTTP API requests and SQS batches (the iCare sender: its
/// routes and its retry queue) until the environment is shut down.
pub async fn serve_http_and_sqs<H: HttpHandler + SqsHandler + 'static>(
    handler: Arc<H>,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<Value>| {
        let handler = Arc::clone(&handler);
        async move { dispatch(handler.as_ref(), event).await }
    }))
    .await
}

/// The event's shape picks the handler: an SQS event (`Records[].eventSource == "aws:sqs"`) goes
/// to [`SqsHandler`]; anything else is read as an API Gateway HTTP API (v2) request.
pub async fn dispatch<H: HttpHandler + SqsHandler>(
    handler: &H,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    if is_sqs_event(&payload) {
        let event: SqsEvent = serde_json::from_value(payload)?;
        return Ok(serde_json::to_value(handler.call_sqs(event).await)?);
    }
    let event: crate::web::HttpApiEvent = serde_json::from_value(payload)?;
    let request = crate::web::request_from_event(event).with_lambda_context(context);
    Ok(serde_json::to_value(crate::web::response_to_event(handler.call(request).await))?)
}

fn is_sqs_event(event: &Value) -> bool {
    event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .and_then(|record| record.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

/// The invocation's deadline in epoch seconds, rounded up: the locks an invocation takes lapse
/// then, and one that lapsed before Lambda ends the invocation would let a redelivery post while
/// this one still could (the moto end-to-end test caught exactly that). A deadline already past
/// is not Lambda's (cargo lambda watch sends a fixed `600000` ms, in 1970): then assume the
/// template's 30 s.
pub fn invocation_deadline(deadline_ms: u64) -> i64 {
    let now_ms = crate::time::now_millis();
    let deadline_ms = i64::try_from(deadline_ms).unwrap_or(i64::MAX);
    let deadline_ms = if deadline_ms > now_ms { deadline_ms } else { now_ms.saturating_add(30_000) };
    crate::time::seconds_rounded_up(deadline_ms)
}

/// The longest init waits for [`warm_up`]. In Lambda the init phase has the whole CPU, while an
/// invocation at 256 MB has about a seventh of it, so a TLS handshake costs far less here than in
/// the first invocation (BENCHMARKS.md measures both). An endpoint that does not answer must not
/// hold init up: past this, init carries on, and the first invocation connects as it would have.
pub const WARM_UP_LIMIT: Duration = Duration::from_secs(1);

/// One connection to open at init: what it is (for the log) and the request that opens it.
pub type WarmUp = (&'static str, BoxFuture<'static, Result<(), String>>);

/// Opens, together and for at most [`WARM_UP_LIMIT`], the connections the first invocation would
/// otherwise open: each step is one harmless request whose answer is ignored. Never fails; what
/// did not finish is logged (the endpoint, never a payload) and left to the first invocation.
/// `WARM_UP=off` skips it (to measure what it saves, or if an upstream objects to the `HEAD`).
pub async fn warm_up(vars: &Vars, steps: Vec<WarmUp>) {
    if vars.get("WARM_UP") == Some("off") {
        return;
    }
    let (names, requests): (Vec<&'static str>, Vec<_>) = steps.into_iter().unzip();
    match tokio::time::timeout(WARM_UP_LIMIT, futures::future::join_all(requests)).await {
        Ok(results) => {
            for (name, result) in names.iter().zip(results) {
                if let Err(error) = result {
                    tracing::info!(connection = name, %error, "warm-up at init failed; the first invocation connects");
                }
            }
        }
        Err(_) => {
            tracing::info!(connections = ?names, limit_ms = WARM_UP_LIMIT.as_millis() as u64, "warm-up at init not done in time; carrying on")
        }
    }
}

/// Opens the table's connection with a read of an item that never exists under `prefix` (one of
/// the function's own key prefixes, which its role may read): half a read unit per cold start.
pub fn warm_table(table: Arc<dyn ItemGet>, prefix: &'static str) -> WarmUp {
    (
        "dynamodb",
        Box::pin(async move {
            table.get(&Key::new(format!("{prefix}warm-up"), "#")).await.map(drop).map_err(|e| e.to_string())
        }),
    )
}

/// Opens the connection to an upstream whose host configuration fixes (`base_url`): a `HEAD` of
/// the base URL, with no credentials, which changes nothing there.
pub fn warm_upstream(name: &'static str, http: SharedHttp, base_url: String) -> WarmUp {
    let request = OutboundRequest::new(Method::Head, base_url).timeout(WARM_UP_LIMIT).max_body(0);
    (name, Box::pin(async move { http.send(request).await.map(drop).map_err(|e| e.to_string()) }))
}

/// Opens the connection a [`SqsSender`] sends on.
pub fn warm_queue_sender(sender: Arc<SqsSender>) -> WarmUp {
    ("sqs", Box::pin(async move { sender.warm_up().await }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client::ReqwestClient;
    use std::time::Instant;

    #[test]
    fn sqs_events_are_told_from_http_events() {
        assert!(is_sqs_event(&serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]})));
        assert!(!is_sqs_event(&serde_json::json!({"version": "2.0", "routeKey": "POST /icare/notifications"})));
        assert!(!is_sqs_event(&serde_json::json!({"Records": []})));
    }

    #[test]
    fn the_deadline_is_rounded_up_and_a_past_one_replaced() {
        let now = crate::time::now_millis();
        let soon = u64::try_from(now + 10_001).expect("positive");
        assert_eq!(invocation_deadline(soon), (now + 10_001 + 999) / 1000);
        let assumed = invocation_deadline(600_000);
        assert!((now / 1000 + 30..=now / 1000 + 32).contains(&assumed), "{assumed}");
    }

    #[tokio::test]
    async fn an_endpoint_that_never_answers_holds_init_up_no_longer_than_the_limit() {
        let (silent, held) = crate::testing::silent_endpoint().await;
        let silent_url = format!("{silent}/");
        // Refuses connections: a stopped endpoint.
        let refused_url = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("http://{}/", listener.local_addr().expect("address"))
        };
        let http: SharedHttp = Arc::new(ReqwestClient::new().expect("client"));
        let vars = Vars::default();
        let started = Instant::now();
        warm_up(
            &vars,
            vec![warm_upstream("silent", http.clone(), silent_url), warm_upstream("refused", http, refused_url)],
        )
        .await;
        let took = started.elapsed();
        assert!(took >= WARM_UP_LIMIT - Duration::from_millis(50), "it waited for the silent endpoint: {took:?}");
        assert!(took < WARM_UP_LIMIT + Duration::from_millis(500), "and no longer than the limit: {took:?}");
        held.abort();
    }

    #[tokio::test]
    async fn warm_up_off_does_nothing() {
        let http: SharedHttp = Arc::new(ReqwestClient::new().expect("client"));
        let started = Instant::now();
        warm_up(
            &Vars::default().with("WARM_UP", "off"),
            vec![warm_upstream("never", http, "http://192.0.2.1/".into())],
        )
        .await;
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
