//! Lambda entry point: one binary for the HTTP API routes and the iCare retry queue.
//!
//! The event's shape picks the handler: an SQS event (`Records[].eventSource == "aws:sqs"`) goes
//! to `App::handle_retries` (answering `SqsBatchResponse`, for `ReportBatchItemFailures`); anything
//! else is read as an API Gateway HTTP API (v2) request and answered with its response.

use aws_lambda_events::sqs::SqsEvent;
use icare_sender::{App, Config, Queues};
use lambda_http::RequestExt;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use shared::http_client::ReqwestClient;
use shared::lambda::Init;
use shared::time::SystemClock;
use std::sync::Arc;

fn is_sqs_event(event: &Value) -> bool {
    event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .and_then(|record| record.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

async fn dispatch(app: &App, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if is_sqs_event(&payload) {
        let event: SqsEvent = serde_json::from_value(payload)?;
        return Ok(serde_json::to_value(app.handle_retries(event).await)?);
    }
    let event: shared::web::HttpApiEvent = serde_json::from_value(payload)?;
    let request = shared::web::request_from_event(event).with_lambda_context(context);
    Ok(serde_json::to_value(shared::web::response_to_event(app.handle(request).await))?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let init = Init::new().await?;
    let config = Config::from_vars(&init.vars).await?;
    let queues = Queues { retries: init.queue("ICARE_QUEUE_URL")?, dead_letters: init.queue("ICARE_DLQ_URL")? };
    let (table, http) = (init.table()?, Arc::new(ReqwestClient::new()?));
    // Requests read and write the table, and notifications and documents go to iCare: open both
    // connections now.
    shared::lambda::warm_up(
        &init.vars,
        vec![
            shared::lambda::warm_table(table.clone(), icare_sender::TABLE_KEY_PREFIXES[0]),
            shared::lambda::warm_upstream("icare", http.clone(), init.vars.required("ICARE_BASE_URL")?.to_owned()),
        ],
    )
    .await;
    let app = Arc::new(App::new(config, table, http, Arc::new(SystemClock), queues));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = Arc::clone(&app);
        async move { dispatch(&app, event).await }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::Vars;

    #[test]
    fn sqs_events_are_told_from_http_events() {
        assert!(is_sqs_event(&serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]})));
        assert!(!is_sqs_event(&serde_json::json!({"version": "2.0", "routeKey": "POST /icare/notifications"})));
        assert!(!is_sqs_event(&serde_json::json!({"Records": []})));
    }

    fn app() -> App {
        let vars = Vars::default().with("ICARE_BASE_URL", "http://127.0.0.1:9").with("ICARE_API_KEY", "k");
        let config = futures::executor::block_on(Config::from_vars(&vars)).expect("config");
        App::new(
            config,
            Arc::new(shared::store::embedded::EmbeddedTable::new()),
            Arc::new(ReqwestClient::new().expect("http")),
            Arc::new(SystemClock),
            Queues {
                retries: Arc::new(shared::queue::embedded::EmbeddedQueue::new(std::time::Duration::from_secs(1))),
                dead_letters: Arc::new(shared::queue::embedded::EmbeddedQueue::new(std::time::Duration::from_secs(1))),
            },
        )
    }

    #[tokio::test]
    async fn one_binary_serves_http_api_and_sqs_events() {
        let app = app();
        let http_event = serde_json::json!({
            "version": "2.0", "routeKey": "GET /icare/policies/{policyId}", "rawPath": "/icare/policies/p1",
            "rawQueryString": "", "headers": {"accept": "application/json"},
            "pathParameters": {"policyId": "p1"},
            "requestContext": {"accountId": "1", "apiId": "a", "domainName": "x", "domainPrefix": "x",
                "http": {"method": "GET", "path": "/icare/policies/p1", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "GET /icare/policies/{policyId}", "stage": "$default", "time": "t", "timeEpoch": 0,
                "authorizer": {"jwt": {"claims": {"client_id": "c1"}, "scopes": null}}},
            "isBase64Encoded": false
        });
        let answer =
            dispatch(&app, LambdaEvent::new(http_event, lambda_runtime::Context::default())).await.expect("answer");
        assert_eq!(answer["statusCode"], 404);
        assert_eq!(answer["headers"]["content-type"], "application/json");
        assert!(answer["body"].as_str().is_some_and(|body| body.contains("p1")));

        let sqs_event = serde_json::json!({"Records": [{"messageId": "m1", "eventSource": "aws:sqs",
            "body": "{\"kind\":\"notification\",\"id\":\"00000000-0000-4000-8000-000000000000\"}",
            "attributes": {"ApproximateReceiveCount": "1"}}]});
        let answer =
            dispatch(&app, LambdaEvent::new(sqs_event, lambda_runtime::Context::default())).await.expect("answer");
        assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));
    }
}
