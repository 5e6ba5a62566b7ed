//! The short soak `cargo xtask test` runs: three seeds of 500 webhooks each under every kind of
//! fault, the invariants of `local::soak` checked after each. `cargo xtask soak` runs the long
//! one and the crash run, and writes RELIABILITY.md.

use local::soak::{Options, run_parallel, summary_line};

#[test]
fn seeded_faults_and_crashes_break_no_invariant() {
    let reports = run_parallel(Options { webhooks: 500, seeds: 3, first_seed: 1 }, 3).expect("the soak ran");
    for report in &reports {
        println!("{}", summary_line(report));
    }
    let violations: Vec<String> =
        reports.iter().flat_map(|r| r.violations.iter().map(move |v| format!("seed {}: {v}", r.seed))).collect();
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(reports.iter().all(|r| r.acknowledged == r.webhooks), "every webhook is acknowledged in the end");
    let injected: std::collections::BTreeSet<&str> =
        reports.iter().flat_map(|r| r.faults.iter().filter(|(_, n)| **n > 0).map(|(kind, _)| kind.as_str())).collect();
    for kind in ["store.throttled", "store.lostReply", "queue.sendFailed", "hicaps.503", "hicaps.429", "poster.crash"] {
        assert!(injected.contains(kind), "no {kind} was injected: {injected:?}");
    }
    assert!(reports.iter().any(|r| r.webhook_error_calls > 0), "an outage ran into lp:webhook-error");
}

#[test]
fn a_seed_reproduces_its_run_exactly() {
    let options = Options { webhooks: 120, seeds: 1, first_seed: 7 };
    let mut first = run_parallel(options, 1).expect("the soak ran");
    let mut second = run_parallel(options, 1).expect("the soak ran again");
    for report in first.iter_mut().chain(second.iter_mut()) {
        report.millis = 0;
    }
    let (first, second) = (serde_json::to_value(&first).expect("json"), serde_json::to_value(&second).expect("json"));
    assert_eq!(first, second, "the same seed, the same faults, posts, crashes and instants");
    assert!(first[0]["posts"].as_u64().is_some_and(|posts| posts > 0));
}
