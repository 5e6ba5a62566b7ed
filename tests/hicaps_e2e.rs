//! The HICAPS flow end to end through the real local stack over HTTP: webhook -> receiver -> queue
//! -> poster -> HICAPS simulator, on the embedded adapters and on DynamoDB/SQS (moto).

use futures::StreamExt;
use gateway_tests::{BOTH, client, eventually, start};
use local::sim::hicaps::{Example, RecordedPost};
use serde_json::{Value, json};
use std::time::Duration;

/// An upper bound, not a wait: moto shared with the 500-invoice test can be slow for a while.
const SETTLE: Duration = Duration::from_secs(60);
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
        serde_json::from_str(include_str!("../shared/tests/fixtures/hicaps/invoice-submitted-webhook.json"))
            .expect("fixture");
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
        assert!(
            eventually(SETTLE, || !posts_for(&stack, invoice_id, "invoice-status").is_empty()).await,
            "{backend:?}: no post"
        );
        let post = &posts_for(&stack, invoice_id, "invoice-status")[0];
        let status = &post.body["claimStatuses"][0];
        assert_eq!(status["claimId"], "7329d4a5-a15d-4db0-a831-da2e6bbba425");
        assert_eq!(status["state"], "approved");
        // 1 x 55.63 at 80% is 44.50, capped at 40.00 a unit by the sample schedule.
        assert_eq!(status["benefit"].to_string(), "40.00", "{backend:?}: {status}");
        assert!(status["adjudications"].as_array().is_some_and(|a| a.len() == 3), "{status}");
        // GET /local/queues: the work queue drains once the poster deletes, nothing dead-lettered.
        let mut depths = queue_depths(&stack).await;
        let deadline = tokio::time::Instant::now() + SETTLE;
        while depths["work"]["messages"] != 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            depths = queue_depths(&stack).await;
        }
        assert_eq!(
            (depths["work"]["messages"].as_u64(), depths["workDlq"]["messages"].as_u64()),
            (Some(0), Some(0)),
            "{backend:?}: {depths}"
        );
        stack.stop();
    }
}

async fn queue_depths(stack: &local::Stack) -> Value {
    let response = client().get(format!("{}/local/queues", stack.base_url)).send().await.expect("GET /local/queues");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
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

async fn claim_states(stack: &local::Stack, invoice_id: &str) -> Vec<String> {
    shared::program::records::load_invoice(stack.backend.table.as_ref(), invoice_id)
        .await
        .expect("load invoice")
        .map(|invoice| invoice.claims.iter().map(|c| c.state.as_str().to_owned()).collect())
        .unwrap_or_default()
}

async fn submit_invoice(stack: &local::Stack) -> (String, String) {
    submit_invoice_with(stack, json!({})).await
}

async fn submit_invoice_with(stack: &local::Stack, overrides: Value) -> (String, String) {
    let webhook = stack.hicaps.webhook(Example::InvoiceSubmitted, &overrides).expect("webhook");
    let invoice_id = webhook["data"]["invoiceId"].as_str().expect("id").to_owned();
    let claim_id = webhook["data"]["claims"][0]["claimId"].as_str().expect("claim").to_owned();
    assert_eq!(send(stack, &webhook).await.status(), 202);
    assert!(eventually(SETTLE, || posts_for(stack, &invoice_id, "invoice-status").len() == 1).await, "no adjudication");
    // HICAPS has the post before the poster records the invoice (its records follow the post):
    // wait for the record too, or a decision sent now finds no invoice (404).
    let deadline = std::time::Instant::now() + SETTLE;
    while claim_states(stack, &invoice_id).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the invoice was posted but never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (invoice_id, claim_id)
}

#[tokio::test]
async fn every_webhook_type_does_what_the_spec_asks() {
    for backend in BOTH {
        let stack = start(backend, &[]).await;
        let (invoice_id, _) = submit_invoice(&stack).await;
        assert_eq!(claim_states(&stack, &invoice_id).await, ["approved"], "{backend:?}");

        // Predetermination: same rules, its own link, no claim state changes.
        let predetermination = stack.hicaps.webhook(Example::PredeterminationSubmitted, &json!({})).expect("webhook");
        let predetermination_id = predetermination["data"]["invoiceId"].as_str().expect("id").to_owned();
        assert_eq!(send(&stack, &predetermination).await.status(), 202);
        assert!(
            eventually(SETTLE, || posts_for(&stack, &predetermination_id, "predetermination-status").len() == 1).await
        );
        assert!(claim_states(&stack, &predetermination_id).await.is_empty(), "no state for a predetermination");

        // Member check: a registered member is approved, an unknown one rejected.
        for (member, expected) in [("789456123", "approved"), ("000000000", "rejected")] {
            let check = stack.hicaps.webhook(Example::MemberCheck, &json!({"memberNumber": member})).expect("webhook");
            let id = check["id"].as_str().expect("id").to_owned();
            assert_eq!(send(&stack, &check).await.status(), 202);
            assert!(eventually(SETTLE, || posts_for(&stack, &id, "member-state").len() == 1).await);
            let post = &posts_for(&stack, &id, "member-state")[0];
            assert_eq!(
                (post.body["memberNumber"].as_str(), post.body["setState"].as_str()),
                (Some(member), Some(expected))
            );
        }

        // Payment scheduled: the listed claims become paid; then a cancellation goes to cancelPending.
        let payment =
            stack.hicaps.webhook(Example::PaymentScheduled, &json!({"invoiceIds": [invoice_id]})).expect("webhook");
        assert_eq!(send(&stack, &payment).await.status(), 202);
        assert!(
            eventually_async(SETTLE, || claim_states(&stack, &invoice_id), |s| *s == ["paid"]).await,
            "{backend:?}: not paid"
        );
        let cancel =
            stack.hicaps.webhook(Example::CancellationRequested, &json!({"invoiceId": invoice_id})).expect("webhook");
        assert_eq!(send(&stack, &cancel).await.status(), 202);
        assert!(eventually(SETTLE, || posts_for(&stack, &invoice_id, "invoice-status").len() == 2).await);
        assert_eq!(posts_for(&stack, &invoice_id, "invoice-status")[1].body, json!({"state": "cancelPending"}));
        assert!(eventually_async(SETTLE, || claim_states(&stack, &invoice_id), |s| *s == ["cancelPending"]).await);

        // Payment held and overpaid are recorded; overpaid is flagged for operators.
        let held = stack.hicaps.webhook(Example::PaymentHeld, &json!({})).expect("webhook");
        assert_eq!(send(&stack, &held).await.status(), 202);
        let overpaid = stack.hicaps.webhook(Example::InvoiceOverpaid, &json!({})).expect("webhook");
        let overpaid_invoice = overpaid["data"]["invoiceId"].as_str().expect("id").to_owned();
        assert_eq!(send(&stack, &overpaid).await.status(), 202);
        let table = stack.backend.table.clone();
        assert!(
            eventually_async(SETTLE, || flagged(table.as_ref(), "invoiceOverpaid", &overpaid_invoice), |found| *found)
                .await,
            "{backend:?}: overpaid not flagged"
        );

        // A type we do not handle is acknowledged and kept.
        let unknown = json!({"id": uuid::Uuid::new_v4().to_string(), "created": 1, "type": "claiming.invoice.future", "data": {}});
        assert_eq!(send(&stack, &unknown).await.status(), 202);
        let unknown_id = unknown["id"].as_str().expect("id").to_owned();
        assert!(
            eventually_async(SETTLE, || flagged(table.as_ref(), "unhandledType", &unknown_id), |found| *found).await
        );
        stack.stop();
    }
}

async fn flagged(table: &dyn shared::store::Table, reason: &str, id: &str) -> bool {
    table.get(&shared::store::Key::new(format!("flagged#{reason}"), id)).await.ok().flatten().is_some()
}

async fn eventually_async<T, F, Fut>(timeout: Duration, mut read: F, check: impl Fn(&T) -> bool) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check(&read().await) {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_cancellation_before_its_invoice_wins() {
    for backend in BOTH {
        let stack = start(backend, &[]).await;
        let invoice = stack.hicaps.webhook(Example::InvoiceSubmitted, &json!({})).expect("webhook");
        let invoice_id = invoice["data"]["invoiceId"].as_str().expect("id").to_owned();
        let cancel =
            stack.hicaps.webhook(Example::CancellationRequested, &json!({"invoiceId": invoice_id})).expect("webhook");
        assert_eq!(send(&stack, &cancel).await.status(), 202);
        assert!(eventually(SETTLE, || posts_for(&stack, &invoice_id, "invoice-status").len() == 1).await);
        assert_eq!(posts_for(&stack, &invoice_id, "invoice-status")[0].body, json!({"state": "cancelled"}));
        assert_eq!(send(&stack, &invoice).await.status(), 202);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            posts_for(&stack, &invoice_id, "invoice-status").len(),
            1,
            "{backend:?}: the late submission is disregarded"
        );
        stack.stop();
    }
}

#[tokio::test]
async fn later_decisions_are_validated_queued_and_posted() {
    for backend in BOTH {
        let stack = start(backend, &[]).await;
        // Item 507 of the sample schedule is left pending for a case manager.
        let claim = json!({"claimId": uuid::Uuid::new_v4(), "itemCode": "507", "quantity": 1, "unitPrice": 120.00});
        let (invoice_id, claim_id) = submit_invoice_with(&stack, json!({"claims": [claim]})).await;
        assert_eq!(posts_for(&stack, &invoice_id, "invoice-status")[0].body["claimStatuses"][0]["state"], "pending");
        let url = format!("{}/invoices/{invoice_id}/status", stack.base_url);
        let unauthenticated = client().post(&url).json(&json!({"state": "pending"})).send().await.expect("post");
        assert_eq!(unauthenticated.status(), 401);

        let bad = json!({"state": "rejected", "claimStatuses": [{"claimId": claim_id, "state": "approved", "benefit": 1.234}]});
        let answer = client().post(&url).bearer_auth(gateway_tests::API_KEY).json(&bad).send().await.expect("post");
        assert_eq!(answer.status(), 400);
        let body: Value = answer.json().await.expect("json");
        let names: Vec<&str> =
            body["invalidParams"].as_array().expect("params").iter().filter_map(|p| p["name"].as_str()).collect();
        assert!(names.contains(&"state") || names.contains(&"claimStatuses"), "{body}");
        assert!(names.contains(&"claimStatuses[0].benefit"), "{body}");

        let unknown_claim =
            json!({"claimStatuses": [{"claimId": uuid::Uuid::new_v4(), "state": "rejected", "benefit": 0}]});
        let answer =
            client().post(&url).bearer_auth(gateway_tests::API_KEY).json(&unknown_claim).send().await.expect("post");
        assert_eq!(answer.status(), 400);

        let missing = client()
            .post(format!("{}/invoices/{}/status", stack.base_url, uuid::Uuid::new_v4()))
            .bearer_auth(gateway_tests::API_KEY)
            .json(&json!({"state": "pending"}))
            .send()
            .await
            .expect("post");
        assert_eq!(missing.status(), 404);

        // Written as text: a `json!` literal would make 100.00 a float and drop the zero.
        let good: Value = serde_json::from_str(&format!(
            r#"{{"claimStatuses": [{{"claimId": "{claim_id}", "state": "approved", "benefit": 100.00, "statusTitle": "Reviewed"}}]}}"#
        ))
        .expect("json");
        let answer = client().post(&url).bearer_auth(gateway_tests::API_KEY).json(&good).send().await.expect("post");
        assert_eq!(answer.status(), 202);
        assert!(
            eventually(SETTLE, || posts_for(&stack, &invoice_id, "invoice-status").len() == 2).await,
            "{backend:?}"
        );
        let decided = &posts_for(&stack, &invoice_id, "invoice-status")[1].body["claimStatuses"][0];
        assert_eq!((decided["state"].as_str(), decided["benefit"].to_string().as_str()), (Some("approved"), "100.00"));
        assert!(eventually_async(SETTLE, || claim_states(&stack, &invoice_id), |s| *s == ["approved"]).await);
        stack.stop();
    }
}

#[tokio::test]
async fn bad_input_over_http_gets_the_error_payload() {
    let stack = start(gateway_tests::Backend::Embedded, &[]).await;
    let url = format!("{}/hicaps/webhooks", stack.base_url);
    let no_auth = client().post(&url).body("{}").send().await.expect("post");
    assert_eq!(no_auth.status(), 401);
    let broken = client().post(&url).header(AUTH.0, AUTH.1).body("{\"id\":").send().await.expect("post");
    assert_eq!(broken.status(), 400);
    let body: Value = broken.json().await.expect("json");
    assert_eq!(body["invalidParams"][0]["name"], "body");
    let oversize =
        client().post(&url).header(AUTH.0, AUTH.1).body(vec![b' '; 1024 * 1024 + 1]).send().await.expect("post");
    assert_eq!(oversize.status(), 413);
    let health = client().get(format!("{}/health", stack.base_url)).send().await.expect("get");
    assert_eq!(health.status(), 200);
    stack.stop();
}

/// 500 invoices, each delivered several times (some at once, some after completion), a tenth of
/// them with their cancellation first: every invoice ends with exactly the posts it should have.
#[tokio::test]
async fn hundreds_of_invoices_delivered_repeatedly_are_answered_exactly_once() {
    delivered_repeatedly(gateway_tests::Backend::Embedded, 500).await;
}

/// The same on moto, as its own test so the two run side by side.
/// moto answers about fifteen requests a second on this machine once its queue holds a thousand
/// copies waiting for their locks (its ReceiveMessage walks every message), and the poster's
/// batches can outlive their 30 s invocation, which the local stack treats as Lambda does, as a
/// crash. 150 invoices keep that rare and the run short; when it happens, the only repeat
/// allowed is the crash window's, with the same body.
#[tokio::test]
async fn invoices_delivered_repeatedly_through_moto_are_answered_exactly_once() {
    delivered_repeatedly(gateway_tests::Backend::Moto, 150).await;
}

async fn delivered_repeatedly(backend: gateway_tests::Backend, count: usize) {
    let stack = start(backend, &[]).await;
    let mut invoices = Vec::new();
    let mut cancellations = Vec::new();
    for n in 0..count {
        let invoice = stack.hicaps.webhook(Example::InvoiceSubmitted, &json!({})).expect("webhook");
        let invoice_id = invoice["data"]["invoiceId"].as_str().expect("id").to_owned();
        if n % 10 == 0 {
            cancellations.push(
                stack
                    .hicaps
                    .webhook(Example::CancellationRequested, &json!({"invoiceId": invoice_id}))
                    .expect("webhook"),
            );
        }
        invoices.push((invoice_id, invoice, n % 10 == 0));
    }
    // Checked every 50 ms on the thread the stack runs on: one set of the posts' references per
    // check, not a scan of every post for each of 500 ids.
    let answered = |ids: &[&str]| {
        let posts = stack.hicaps.posts();
        let posted: std::collections::HashSet<&str> = posts.iter().map(|p| p.reference.as_str()).collect();
        ids.iter().all(|id| posted.contains(id))
    };
    // The cancellations arrive (and are answered) before their invoices.
    let sent = send_all(&stack, cancellations.iter().map(|c| (c, 1))).await;
    assert!(sent.iter().all(|status| *status == 202));
    let cancelled: Vec<&str> = invoices.iter().filter(|(_, _, c)| *c).map(|(id, _, _)| id.as_str()).collect();
    assert!(
        eventually(Duration::from_secs(240), || answered(&cancelled)).await,
        "{backend:?}: cancellations unanswered"
    );
    // Each invoice three times at once, at most 64 connections as a busy HICAPS would hold.
    let sent = send_all(&stack, invoices.iter().map(|(_, webhook, _)| (webhook, 3))).await;
    assert!(sent.iter().all(|status| *status == 202));
    let all: Vec<&str> = invoices.iter().map(|(id, _, _)| id.as_str()).collect();
    assert!(
        eventually(Duration::from_secs(480), || answered(&all)).await,
        "{backend:?}: not every invoice was answered"
    );
    // And once more after completion.
    let sent = send_all(&stack, invoices.iter().map(|(_, webhook, _)| (webhook, 1))).await;
    assert!(sent.iter().all(|status| *status == 202));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let posts = stack.hicaps.posts();
    let crashes = stack.abandoned_poster_batches.load(std::sync::atomic::Ordering::Relaxed);
    let mut repeats = 0;
    for (invoice_id, _, cancelled_first) in &invoices {
        let mine: Vec<&RecordedPost> = posts.iter().filter(|p| &p.reference == invoice_id).collect();
        let bodies = || mine.iter().map(|p| &p.body).collect::<Vec<_>>();
        assert!(!mine.is_empty(), "{backend:?}: invoice {invoice_id} was not answered");
        // A repeat is allowed only in a crash's window between a post and its note, and then
        // carries the same body: the stack must have abandoned a batch, as Lambda would.
        if mine.len() > 1 {
            repeats += mine.len() - 1;
            assert!(crashes > 0, "{backend:?}: invoice {invoice_id} posted twice without a crash: {:?}", bodies());
            assert!(mine.iter().all(|p| p.body == mine[0].body), "{backend:?}: different bodies: {:?}", bodies());
        }
        if *cancelled_first {
            assert_eq!(mine[0].body, json!({"state": "cancelled"}));
        } else {
            assert_eq!(mine[0].body["claimStatuses"][0]["state"], "approved");
        }
    }
    let dead = stack.backend.work_dlq.receive(10, Duration::from_millis(100)).await.expect("dlq");
    assert!(dead.is_empty(), "{backend:?}: the DLQ is not empty");
    println!("{backend:?}: {count} invoices, {repeats} identical repeats after {crashes} abandoned batches");
    stack.stop();
}

/// Sends each webhook `copies` times at once, over at most 64 connections in all.
async fn send_all<'a>(stack: &local::Stack, webhooks: impl Iterator<Item = (&'a Value, usize)>) -> Vec<u16> {
    futures::stream::iter(webhooks.flat_map(|(webhook, copies)| std::iter::repeat_n(webhook, copies)))
        .map(|webhook| async move { send(stack, webhook).await.status().as_u16() })
        .buffer_unordered(64)
        .collect()
        .await
}

#[tokio::test]
async fn a_hicaps_400_ends_in_one_dead_letter_and_no_redelivery_loop() {
    for backend in BOTH {
        let stack = start(backend, &[]).await;
        // HICAPS refuses the status post. The simulator redelivers whenever lp:webhook-error is
        // called, as HICAPS does: a gateway that called it would loop.
        stack.hicaps.fail_next(400, 1);
        let webhook = stack.hicaps.webhook(Example::InvoiceSubmitted, &json!({})).expect("webhook");
        let id = webhook["id"].as_str().expect("id").to_owned();
        let invoice_id = webhook["data"]["invoiceId"].as_str().expect("invoiceId").to_owned();
        assert_eq!(send(&stack, &webhook).await.status(), 202);
        let dead_lettered = || async { queue_depths(&stack).await["workDlq"]["messages"].as_u64() == Some(1) };
        let deadline = tokio::time::Instant::now() + SETTLE;
        while !dead_lettered().await && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // HICAPS retrying the same webhook meanwhile is acknowledged and changes nothing.
        assert_eq!(send(&stack, &webhook).await.status(), 202);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let depths = queue_depths(&stack).await;
        assert_eq!(depths["workDlq"]["messages"].as_u64(), Some(1), "{backend:?}: {depths}");
        assert!(posts_for(&stack, &id, "webhook-error").len() <= 1, "{backend:?}: at most one lp:webhook-error");
        assert_eq!(
            posts_for(&stack, &invoice_id, "invoice-status").len(),
            1,
            "{backend:?}: the refused post was made once"
        );
        stack.stop();
    }
}

#[tokio::test]
async fn poisonous_webhooks_leave_the_stack_answering() {
    let stack = start(gateway_tests::Backend::Embedded, &[]).await;
    let mut poisons = Vec::new();
    for claim in [
        json!({"quantity": 100000000000000000u64, "unitPrice": 10000000000000u64}),
        json!({"quantity": "Zebediah-77"}),
        json!({"unitPrice": -50}),
        json!({"quantity": 1e300, "unitPrice": {"nested": [1, 2, 3]}}),
    ] {
        let mut webhook = stack.hicaps.webhook(Example::InvoiceSubmitted, &json!({})).expect("webhook");
        for (name, value) in claim.as_object().expect("object") {
            webhook["data"]["claims"][0][name] = value.clone();
        }
        poisons.push(webhook["data"]["invoiceId"].as_str().expect("id").to_owned());
        assert_eq!(send(&stack, &webhook).await.status(), 202);
    }
    for invoice_id in &poisons {
        assert!(
            eventually(SETTLE, || posts_for(&stack, invoice_id, "invoice-status").len() == 1).await,
            "no answer for {invoice_id}"
        );
        let post = &posts_for(&stack, invoice_id, "invoice-status")[0];
        assert_eq!(post.body["claimStatuses"][0]["state"], "rejected", "{}", post.body);
        assert!(
            post.body["claimStatuses"][0]["invalidParams"][0]["name"]
                .as_str()
                .is_some_and(|n| n == "quantity" || n == "unitPrice")
        );
    }
    // And an ordinary one afterwards.
    let (ordinary, _) = submit_invoice(&stack).await;
    assert_eq!(posts_for(&stack, &ordinary, "invoice-status")[0].body["claimStatuses"][0]["state"], "approved");
    stack.stop();
}

/// The poisonous-webhook test above runs the stack as `cargo test` builds it; Lambda and the
/// bench run the release profile. Both must unwind, or one panic ends every batch in flight.
#[test]
fn the_release_profile_unwinds_as_the_tested_one_does() {
    let manifest = include_str!("../Cargo.toml");
    let release = manifest
        .split("[profile.release]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("[profile.release]");
    let panic = release.lines().find(|line| line.trim_start().starts_with("panic")).expect("a panic strategy");
    assert_eq!(panic.split('=').nth(1).map(|v| v.trim().trim_matches('"')), Some("unwind"), "{panic}");
}

/// An invoice whose one claim (item 507) waits for a case manager: its id, its decision route, and
/// an approval and a rejection of the claim.
async fn pending_invoice(stack: &local::Stack) -> (String, String, Value, Value) {
    let claim = json!({"claimId": uuid::Uuid::new_v4(), "itemCode": "507", "quantity": 1, "unitPrice": 120.00});
    let (invoice_id, claim_id) = submit_invoice_with(stack, json!({"claims": [claim]})).await;
    // The poster records the invoice just after its post: a decision before that finds none (404).
    assert!(
        eventually_async(SETTLE, || claim_states(stack, &invoice_id), |s| *s == ["pending"]).await,
        "the invoice is recorded"
    );
    let url = format!("{}/invoices/{invoice_id}/status", stack.base_url);
    let approve = json!({"claimStatuses": [{"claimId": claim_id, "state": "approved", "benefit": 100}]});
    let reject = json!({"claimStatuses": [{"claimId": claim_id, "state": "rejected", "benefit": 0}]});
    (invoice_id, url, approve, reject)
}

#[tokio::test]
async fn decisions_are_the_programs_alone_idempotent_and_never_contradict() {
    for backend in BOTH {
        let stack = start(backend, &[]).await;
        let (invoice_id, url, approve, reject) = pending_invoice(&stack).await;
        let post = |key: &'static str, body: &Value, idempotency: Option<&str>| {
            let mut request = client().post(&url).bearer_auth(key).json(body);
            if let Some(idempotency) = idempotency {
                request = request.header("Idempotency-Key", idempotency);
            }
            request.send()
        };
        // A partner that is not the program: 403 in the API Error Payload, nothing queued.
        let partner = post("partner-key", &approve, None).await.expect("post");
        assert_eq!(partner.status(), 403, "{backend:?}");
        assert!(partner.json::<Value>().await.expect("json")["title"].as_str().is_some_and(|t| !t.is_empty()));
        // The same key and body twice: one decision, one post.
        let first = post(gateway_tests::API_KEY, &approve, Some("decide-1")).await.expect("post");
        assert_eq!(first.status(), 202);
        let first: Value = first.json().await.expect("json");
        let again = post(gateway_tests::API_KEY, &approve, Some("decide-1")).await.expect("post");
        assert_eq!(again.status(), 202);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.json::<Value>().await.expect("json")["decisionId"], first["decisionId"], "{backend:?}");
        // The same key with another body: 422.
        let changed = post(gateway_tests::API_KEY, &reject, Some("decide-1")).await.expect("post");
        assert_eq!(changed.status(), 422, "{backend:?}");
        assert!(
            eventually(SETTLE, || posts_for(&stack, &invoice_id, "invoice-status").len() == 2).await,
            "{backend:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(posts_for(&stack, &invoice_id, "invoice-status").len(), 2, "{backend:?}: the repeat was not posted");
        stack.stop();
    }
}

#[tokio::test]
async fn decision_idempotency_keys_are_at_most_128_characters_and_kept_per_caller() {
    for backend in BOTH {
        // A second program caller: `partner-key` is caller `partner` in the test stack.
        let stack = start(backend, &[("DECISION_CALLERS", "test-caller,partner")]).await;
        let (invoice_id, url, approve, _) = pending_invoice(&stack).await;
        let post = |key: &'static str, idempotency: String| {
            client().post(&url).bearer_auth(key).json(&approve).header("Idempotency-Key", idempotency).send()
        };
        // 129 characters: 400 naming the header.
        let too_long = post(gateway_tests::API_KEY, "k".repeat(129)).await.expect("post");
        assert_eq!(too_long.status(), 400, "{backend:?}");
        let error: Value = too_long.json().await.expect("json");
        assert_eq!(error["invalidParams"][0]["name"], "Idempotency-Key", "{backend:?}: {error}");
        assert!(
            error["invalidParams"][0]["reason"].as_str().is_some_and(|r| r.contains("128")),
            "{backend:?}: {error}"
        );
        // Exactly 128: accepted.
        let longest = "k".repeat(128);
        let first = post(gateway_tests::API_KEY, longest.clone()).await.expect("post");
        assert_eq!(first.status(), 202, "{backend:?}");
        let first: Value = first.json().await.expect("json");
        // The same key and body from another caller: a decision of its own, not a replay.
        let other = post("partner-key", longest.clone()).await.expect("post");
        assert_eq!(other.status(), 202, "{backend:?}");
        assert!(other.headers().get("idempotent-replayed").is_none(), "{backend:?}");
        let other: Value = other.json().await.expect("json");
        assert!(other["decisionId"].is_string() && first["decisionId"].is_string(), "{first} {other}");
        assert_ne!(other["decisionId"], first["decisionId"], "{backend:?}: a separate decision");
        // Each caller's own retry still replays its own decision.
        let again = post("partner-key", longest).await.expect("post");
        assert_eq!(again.headers()["idempotent-replayed"], "true", "{backend:?}");
        assert_eq!(again.json::<Value>().await.expect("json")["decisionId"], other["decisionId"]);
        // The adjudication, then each caller's decision (the same approval, so neither is stale).
        assert!(
            eventually(SETTLE, || posts_for(&stack, &invoice_id, "invoice-status").len() == 3).await,
            "{backend:?}"
        );
        stack.stop();
    }
}

#[tokio::test]
async fn two_contradicting_decisions_accepted_together_post_once() {
    for backend in BOTH {
        let stack = start(backend, &[]).await;
        let (invoice_id, url, approve, reject) = pending_invoice(&stack).await;
        let (a, b) = futures::join!(
            client().post(&url).bearer_auth(gateway_tests::API_KEY).json(&approve).send(),
            client().post(&url).bearer_auth(gateway_tests::API_KEY).json(&reject).send(),
        );
        assert_eq!(
            (a.expect("a").status().as_u16(), b.expect("b").status().as_u16()),
            (202, 202),
            "both valid against the pending claim"
        );
        let dead_lettered = || async { queue_depths(&stack).await["workDlq"]["messages"].as_u64() == Some(1) };
        let deadline = tokio::time::Instant::now() + SETTLE;
        while !dead_lettered().await && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(dead_lettered().await, "{backend:?}: the stale one is dead-lettered with its reason");
        assert_eq!(
            posts_for(&stack, &invoice_id, "invoice-status").len(),
            2,
            "{backend:?}: the adjudication and one decision"
        );
        let letters = stack.backend.work_dlq.receive(10, Duration::from_millis(500)).await.expect("dlq");
        assert_eq!(letters.len(), 1, "{backend:?}");
        let letter: Value = serde_json::from_str(&letters[0].body).expect("a dead letter is JSON");
        assert!(letter["reason"].as_str().is_some_and(|r| r.starts_with("stale decision:")), "{backend:?}: {letter}");
        stack.stop();
    }
}

#[tokio::test]
async fn in_jwt_mode_only_hicaps_may_deliver_webhooks() {
    let stack = start(
        gateway_tests::Backend::Embedded,
        &[("WEBHOOK_AUTH_MODE", "jwt"), ("WEBHOOK_JWT_CALLERS", "test-caller")],
    )
    .await;
    let webhook = stack.hicaps.webhook(Example::InvoiceSubmitted, &json!({})).expect("webhook");
    let url = format!("{}/hicaps/webhooks", stack.base_url);
    let partner = client().post(&url).bearer_auth("partner-key").json(&webhook).send().await.expect("post");
    assert_eq!(partner.status(), 403);
    let hicaps = client().post(&url).bearer_auth(gateway_tests::API_KEY).json(&webhook).send().await.expect("post");
    assert_eq!(hicaps.status(), 202);
    stack.stop();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let vars = shared::config::Vars::default().with("WEBHOOK_AUTH_MODE", "jwt");
    let error = local::start(vars, listener).await.err().expect("jwt mode without WEBHOOK_JWT_CALLERS does not start");
    assert!(format!("{error:#}").contains("WEBHOOK_JWT_CALLERS"), "{error:#}");
}

#[tokio::test]
async fn icp_date_of_birth_guesses_get_429_on_both_stores() {
    for backend in BOTH {
        let grants = [("ICP_VENDOR_GRANTS", "test-caller=VEND01"), ("ICP_DOB_MISMATCH_LIMIT", "2")];
        let stack = start(backend, &grants).await;
        let query = |date_of_birth: &str| {
            client()
                .get(format!("{}/claims/icp/P4865824770", stack.base_url))
                .query(&[("dateOfBirth", date_of_birth), ("vendorId", "VEND01"), ("providerId", "PROV01")])
                .bearer_auth(gateway_tests::API_KEY)
                .send()
        };
        for guess in ["1985-03-15", "1985-03-16"] {
            assert_eq!(query(guess).await.expect("query").status(), 400, "{backend:?}: ACC's mismatch");
        }
        let limited = query("1985-03-14").await.expect("query");
        assert_eq!(limited.status(), 429, "{backend:?}");
        assert_eq!(limited.json::<Value>().await.expect("json")["code"], 429, "ACC's error form");
        stack.stop();
    }
}

#[tokio::test]
async fn an_ungranted_eligibility_location_is_refused_and_audited_on_both_stores() {
    for backend in BOTH {
        let stack = start(backend, &[("ECF_LOCATION_GRANTS", "test-caller=99")]).await;
        let answer = client()
            .post(format!("{}/eligibility?location=25", stack.base_url))
            .bearer_auth(gateway_tests::API_KEY)
            .json(&json!({}))
            .send()
            .await
            .expect("post");
        assert_eq!(answer.status(), 403, "{backend:?}");
        let check_id: uuid::Uuid =
            answer.headers()["x-eligibility-check-id"].to_str().expect("ascii").parse().expect("uuid");
        let key = shared::store::Key::new(format!("eligibility-check#{check_id}"), "#");
        let audit = stack.backend.table.get(&key).await.expect("get").expect("audited");
        assert_eq!(audit.str_attr("outcome"), Some("forbidden"), "{backend:?}");
        stack.stop();
    }
}
