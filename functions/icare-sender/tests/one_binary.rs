//! One binary serves the HTTP API routes and the retry queue: `shared::lambda::dispatch` tells
//! their events apart.

use icare_sender::{App, Config, Queues};
use lambda_runtime::LambdaEvent;
use shared::config::Vars;
use shared::http_client::ReqwestClient;
use shared::queue::embedded::EmbeddedQueue;
use shared::time::SystemClock;
use std::sync::Arc;
use std::time::Duration;

async fn app() -> App {
    let vars = Vars::default().with("ICARE_BASE_URL", "http://127.0.0.1:9").with("ICARE_API_KEY", "k");
    let config = Config::from_vars(&vars).await.expect("config");
    App::new(
        config,
        Arc::new(shared::store::embedded::EmbeddedTable::new()),
        Arc::new(ReqwestClient::new().expect("http")),
        Arc::new(SystemClock),
        Queues {
            retries: Arc::new(EmbeddedQueue::new(Duration::from_secs(1))),
            dead_letters: Arc::new(EmbeddedQueue::new(Duration::from_secs(1))),
        },
    )
}

#[tokio::test]
async fn one_binary_serves_http_api_and_sqs_events() {
    let app = app().await;
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
    let answer = shared::lambda::dispatch(&app, LambdaEvent::new(http_event, lambda_runtime::Context::default()))
        .await
        .expect("answer");
    assert_eq!(answer["statusCode"], 404);
    assert_eq!(answer["headers"]["content-type"], "application/json");
    assert!(answer["body"].as_str().is_some_and(|body| body.contains("p1")));

    let sqs_event = serde_json::json!({"Records": [{"messageId": "m1", "eventSource": "aws:sqs",
        "body": "{\"kind\":\"notification\",\"id\":\"00000000-0000-4000-8000-000000000000\"}",
        "attributes": {"ApproximateReceiveCount": "1"}}]});
    let answer = shared::lambda::dispatch(&app, LambdaEvent::new(sqs_event, lambda_runtime::Context::default()))
        .await
        .expect("answer");
    assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));
}
