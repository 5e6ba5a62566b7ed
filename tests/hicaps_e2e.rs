//! The HICAPS flow end to end through the real local stack over HTTP: webhook -> receiver -> queue
//! -> poster -> HICAPS simulator, on the embedded adapters and on DynamoDB/SQS (moto).

use gateway_tests::{BOTH, client, eventually, start};
use local::sim::hicaps::{Example, RecordedPost};
use serde_json::{Value, json};
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(20);
const AUTH: (&str, &str) = ("x-hicaps-webhook-key", "local-webhook-secret");

async fn send(stack: &local::Stack, webhook: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/hicaps/webhooks", stack.base_url))
        .header(AUTH.0, AUTH.1)
        .json(webhook)
        .send()
        .await
        .expect("POST /hicaps/webhooks")
}

fn posts_for(stack: &local::Stack, reference: &str, kind: &str) -> Vec<RecordedPost> {
    stack.hicaps.posts().into_iter().filter(|p| p.reference == reference && p.kind == kind).collect()
}

/// The spec's example with only its links pointed at the simulator (its hosts are not ours to call).
fn spec_example_with_local_links(stack: &local::Stack) -> Value {
    let mut webhook: Value =
        serde_json::from_str(include_str!("../shared/tests/fixtures/hicaps/invoice-submitted-webhook.json")).expect("fixture");
    let invoice_id = webhook["data"]["invoiceId"].as_str().expect("invoiceId").to_owned();
    let base = format!("{}/sim/hicaps/callbacks", stack.base_url);
    webhook["_links"] = json!({
        "lp:invoice-status-updated": {"href": format!("{base}/invoice-status/{invoice_id}")},
        "lp:webhook-error": {"href": format!("{base}/webhook-error/{}", webhook["id"].as_str().unwrap_or_default())}
    });
    webhook
}

#[tokio::test]
async fn spec_invoice_example_travels_receiver_queue_poster() {
    for backend in BOTH {
        let stack = start(backend, &[]).await;
        let webhook = spec_example_with_local_links(&stack);
        let response = send(&stack, &webhook).await;
        assert_eq!(response.status(), 202, "{backend:?}");
        assert_eq!(response.text().await.expect("body"), "", "202 with an empty body");
        let invoice_id = "9a15ad10-dbf0-4ab6-83f1-e42019f188b5";
        assert!(eventually(SETTLE, || !posts_for(&stack, invoice_id, "invoice-status").is_empty()).await, "{backend:?}: no post");
        let post = &posts_for(&stack, invoice_id, "invoice-status")[0];
        let status = &post.body["claimStatuses"][0];
        assert_eq!(status["claimId"], "7329d4a5-a15d-4db0-a831-da2e6bbba425");
        assert_eq!(status["state"], "approved");
        // 1 x 55.63 at 80% is 44.50, capped at 40.00 a unit by the sample schedule.
        assert_eq!(status["benefit"].to_string(), "40.00", "{backend:?}: {status}");
        assert!(status["adjudications"].as_array().is_some_and(|a| a.len() == 3), "{status}");
        stack.stop();
    }
}

#[tokio::test]
async fn repeated_and_concurrent_deliveries_have_one_effect() {
    for backend in BOTH {
        let stack = start(backend, &[]).await;
        let webhook = stack.hicaps.webhook(Example::InvoiceSubmitted, &json!({})).expect("webhook");
        let invoice_id = webhook["data"]["invoiceId"].as_str().expect("id").to_owned();
        let concurrent = futures_join(&stack, &webhook, 4).await;
        assert!(concurrent.iter().all(|s| *s == 202), "{concurrent:?}");
        assert!(eventually(SETTLE, || posts_for(&stack, &invoice_id, "invoice-status").len() == 1).await);
        // After completion, HICAPS's retries change nothing.
        for _ in 0..3 {
            assert_eq!(send(&stack, &webhook).await.status(), 202);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(posts_for(&stack, &invoice_id, "invoice-status").len(), 1, "{backend:?}: processed twice");
        stack.stop();
    }
}

async fn futures_join(stack: &local::Stack, webhook: &Value, times: usize) -> Vec<u16> {
    futures::future::join_all((0..times).map(|_| async { send(stack, webhook).await.status().as_u16() })).await
}
