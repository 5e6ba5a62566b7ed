//! Every file in events/ runs through its function's handler and gets the answer its README row
//! promises, so no sample event goes stale. The order matters where one event needs another's
//! effect (a policy before its notification, an invoice before its decision).

use gateway_tests::{Backend, start};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// (file under events/, the status class or SQS outcome expected)
const EVENTS: &[(&str, &str)] = &[
    ("webhook-receiver/invoice-submitted.json", "202"),
    ("webhook-receiver/invoice-cancellation-requested.json", "202"),
    ("webhook-receiver/predetermination-submitted.json", "202"),
    ("webhook-receiver/member-check.json", "202"),
    ("webhook-receiver/payment-scheduled.json", "202"),
    ("webhook-receiver/payment-failed.json", "202"),
    ("webhook-receiver/payment-held.json", "202"),
    ("webhook-receiver/invoice-overpaid.json", "202"),
    ("webhook-receiver/invalid-missing-id.json", "400"),
    ("invoice-status-poster/sqs-invoice-submitted.json", "sqs"),
    ("webhook-receiver/invoice-status-decision.json", "202"),
    ("invoice-status-poster/sqs-decision.json", "sqs"),
    ("icp-query-proxy/valid.json", "200"),
    ("icp-query-proxy/invalid.json", "400"),
    ("eligibility-check/mandatory.json", "200"),
    ("eligibility-check/optional.json", "200"),
    ("icare-sender/put-policy.json", "2xx"),
    ("icare-sender/notification.json", "201"),
    ("icare-sender/document.json", "201"),
];

fn event_files(dir: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for function in std::fs::read_dir(dir).expect("events/").flatten().filter(|e| e.path().is_dir()) {
        for file in std::fs::read_dir(function.path()).expect("function dir").flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "json") {
                let relative = path.strip_prefix(dir).expect("under events/").to_string_lossy().into_owned();
                files.insert(relative);
            }
        }
    }
    files
}

/// Waits for the stack's own poster to finish what the receiver's events queued: the poster's
/// sample events carry the same webhooks, and the decision needs its invoice stored, so they run
/// after it, whichever of the two delivery paths got there first.
async fn work_queue_drained(stack: &local::Stack) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stack.backend.work.depth().await.expect("work queue depth") > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the work queue did not drain in 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_sample_event_runs_through_its_handler() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("events");
    let listed: BTreeSet<String> = EVENTS.iter().map(|(file, _)| (*file).to_owned()).collect();
    assert_eq!(event_files(&root), listed, "every file in events/ is listed here, and every listed file exists");

    // The sample events carry the caller `local`, as the cargo-lambda steps configure it.
    let grants =
        [("ICP_VENDOR_GRANTS", "local=VEND01"), ("DECISION_CALLERS", "local"), ("ECF_LOCATION_GRANTS", "local=*")];
    let stack = start(Backend::Embedded, &grants).await;
    for (file, expected) in EVENTS {
        let function = file.split('/').next().expect("function");
        if *expected == "sqs" {
            work_queue_drained(&stack).await;
        }
        let event: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join(file)).expect("read")).expect("JSON");
        let answer = stack.invoke(function, event).await.unwrap_or_else(|e| panic!("{file}: {e}"));
        match *expected {
            "sqs" => assert!(answer["batchItemFailures"].is_array(), "{file}: {answer}"),
            "2xx" => {
                assert!(answer["statusCode"].as_u64().is_some_and(|s| (200..300).contains(&s)), "{file}: {answer}")
            }
            status => assert_eq!(answer["statusCode"].to_string(), status, "{file}: {answer}"),
        }
    }
    stack.stop();
}
