//! Operators' view end to end: webhooks sent through the real local stack, then read back with
//! the routes behind `cargo xtask inspect` and the flow page, on the embedded adapters and on
//! DynamoDB/SQS (moto).

use gateway_tests::{BOTH, client, eventually, start};
use serde_json::{Value, json};
use std::time::Duration;

/// An upper bound, not a wait (moto can be slow while other tests load it).
const SETTLE: Duration = Duration::from_secs(60);

async fn post(stack: &local::Stack, path: &str, body: Value) -> Value {
    let response = client().post(format!("{}{path}", stack.base_url)).json(&body).send().await.expect("POST");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap_or(Value::Null)
}

async fn get(stack: &local::Stack, path: &str) -> Value {
    let response = client().get(format!("{}{path}", stack.base_url)).send().await.expect("GET");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("JSON")
}

/// Sends an example through the HICAPS simulator; returns its webhook id and invoice id.
async fn send_invoice(stack: &local::Stack) -> (String, String) {
    let sent = post(stack, "/sim/hicaps/send/invoice-submitted", json!({})).await;
    let id = sent["id"].as_str().expect("id").to_owned();
    let invoice_id = sent["data"]["invoiceId"].as_str().expect("invoiceId").to_owned();
    (id, invoice_id)
}

async fn settled(stack: &local::Stack, id: &str, status: &str) -> Value {
    let path = format!("/local/inspect/webhooks/{id}");
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let report = get(stack, &path).await;
        if report["status"] == status || std::time::Instant::now() > deadline {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn inspect_tells_a_webhooks_and_an_invoices_story_without_personal_data() {
    for backend in BOTH {
        let stack = start(backend, &[]).await;
        let (id, invoice_id) = send_invoice(&stack).await;
        let report = settled(&stack, &id, "completed").await;
        assert_eq!(report["found"], true, "{backend:?}: {report}");
        assert_eq!(report["kind"], "claiming.invoice.submitted");
        assert_eq!(report["invoiceId"], invoice_id.as_str());
        assert_eq!(report["outcome"], "invoiceAdjudicated");
        assert_eq!(report["posted"], true);
        assert_eq!(report["webhookErrorCalled"], false);
        assert_eq!(report["effects"][0]["state"], "approved", "{report}");
        let events: Vec<&str> =
            report["events"].as_array().expect("events").iter().filter_map(|e| e["what"].as_str()).collect();
        assert!(events.first().is_some_and(|first| first.starts_with("received")), "{events:?}");
        assert!(events.iter().any(|e| e.contains("moved to approved")), "{events:?}");

        let invoice = get(&stack, &format!("/local/inspect/invoices/{invoice_id}")).await;
        assert_eq!(invoice["found"], true);
        assert_eq!(invoice["claims"][0]["state"], "approved");
        assert_eq!(invoice["claims"][0]["history"][0]["by"], id.as_str());
        assert_eq!(invoice["work"][0]["id"], id.as_str());
        assert_eq!(invoice["work"][0]["kind"], "claiming.invoice.submitted");

        // A flag: an overpaid invoice, under the webhook that reported it and under the invoice.
        let overpaid = post(&stack, "/sim/hicaps/send/invoice-overpaid", json!({})).await;
        let overpaid_id = overpaid["id"].as_str().expect("id");
        let report = settled(&stack, overpaid_id, "completed").await;
        assert_eq!(report["flags"], json!(["invoiceOverpaid"]), "{report}");
        let overpaid_invoice = overpaid["data"]["invoiceId"].as_str().expect("invoiceId");
        let invoice = get(&stack, &format!("/local/inspect/invoices/{overpaid_invoice}")).await;
        assert_eq!(invoice["overpaid"], true, "{invoice}");
        assert_eq!(invoice["work"][0]["id"], overpaid_id);

        // A refused post: dead-lettered with its reason; the detail only on request.
        post(&stack, "/sim/hicaps/faults", json!({"status": 400, "times": 1})).await;
        let (refused, refused_invoice) = send_invoice(&stack).await;
        let report = settled(&stack, &refused, "deadLettered").await;
        assert_eq!(report["reason"], "HICAPS answered 400", "{backend:?}: {report}");
        assert!(report["deadLetteredAt"].is_string());
        assert!(report.get("deadLetterDetail").is_none());
        let personal = get(&stack, &format!("/local/inspect/webhooks/{refused}?showPersonalData=true")).await;
        assert!(personal["deadLetterDetail"].as_str().is_some_and(|d| d.contains("Simulated rejection")), "{personal}");
        let invoice = get(&stack, &format!("/local/inspect/invoices/{refused_invoice}")).await;
        assert_eq!(invoice["claims"][0]["state"], "pending", "recorded as it stood: {invoice}");

        // No names, member numbers or dates of birth, whatever the webhooks carried.
        for text in [report.to_string(), invoice.to_string()] {
            for personal in ["789456123", "Spongebob", "Squarepants", "1990-04-01"] {
                assert!(!text.contains(personal), "{personal} in {text}");
            }
        }

        // The flow page's feed: both webhooks, where they stand, and HICAPS's posts.
        let activity = get(&stack, "/local/activity").await;
        let stage_of = |id: &str| {
            activity["work"].as_array().expect("work").iter().find(|w| w["id"] == id).map(|w| w["stage"].clone())
        };
        assert_eq!(stage_of(&id), Some(json!("posted")), "{activity}");
        assert_eq!(stage_of(&refused), Some(json!("dead-lettered")), "{activity}");
        assert!(activity["queues"]["workDlq"].as_u64().is_some_and(|n| n >= 1), "{activity}");
        assert!(!activity["posts"].as_array().expect("posts").is_empty());

        // The page's replay button: the letter goes back and, HICAPS answering now, is posted.
        let replayed = post(&stack, "/local/replay-dlq", json!({})).await;
        assert_eq!(replayed["replayed"], 1, "{replayed}");
        assert!(
            eventually(SETTLE, || stack
                .hicaps
                .posts()
                .iter()
                .filter(|p| p.reference == refused_invoice && p.status == 200)
                .count()
                == 1)
            .await
        );
        let page = client().get(format!("{}/local/", stack.base_url)).send().await.expect("page");
        assert_eq!(page.status(), 200);
        assert!(page.text().await.expect("html").contains("send-invoice-submitted"));
    }
}

#[tokio::test]
async fn unknown_and_impossible_ids_are_simply_not_found() {
    let stack = start(gateway_tests::Backend::Embedded, &[]).await;
    for id in ["no-such-webhook".to_owned(), "x".repeat(3000)] {
        let report = get(&stack, &format!("/local/inspect/webhooks/{id}")).await;
        assert_eq!(report["found"], false);
        let invoice = get(&stack, &format!("/local/inspect/invoices/{id}")).await;
        assert_eq!(invoice["found"], false);
    }
}
