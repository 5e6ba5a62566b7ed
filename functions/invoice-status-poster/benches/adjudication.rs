//! The poster's CPU work per invoice, in process: adjudicating a 50-claim invoice against the
//! sample benefit schedule (local/data/benefit-schedule.json, program `mpl`) and serialising the
//! Invoice Status Updated body it posts to HICAPS. Target (issue 8): at most 100 µs median.
//!
//! A second, informational figure adds what precedes it on the poster's path: parsing the queued
//! webhook (envelope and typed invoice) from its JSON.
//!
//! `cargo bench -p invoice-status-poster --bench adjudication`; `cargo xtask bench` runs it.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use shared::hicaps::{Invoice, InvoiceStatusUpdate, WebhookEnvelope, WebhookEvent};
use shared::program::adjudication::{MemberStanding, Schedule, adjudicate};
use shared::store::embedded::EmbeddedTable;
use shared::store::{Condition, ItemPut};
use std::hint::black_box;

const EXAMPLE: &str = include_str!("../../../shared/tests/fixtures/hicaps/invoice-submitted-webhook.json");
const SCHEDULE: &str = include_str!("../../../local/data/benefit-schedule.json");
const CLAIMS: usize = 50;

/// The spec's example webhook with 50 claims: the example claim repeated with its own claim id,
/// cycling through the schedule's kinds of rule (percentage with a cap, a cap, a percentage,
/// review) with varied quantities and prices.
fn webhook_with_claims(claims: usize) -> String {
    let mut webhook: Value = serde_json::from_str(EXAMPLE).expect("fixture");
    let template = webhook["data"]["claims"][0].clone();
    let codes = ["10|1|1", "505", "506", "507"];
    let list: Vec<Value> = (0..claims)
        .map(|index| {
            let mut claim = template.clone();
            claim["claimId"] = json!(format!("7329d4a5-a15d-4db0-a831-{index:012x}"));
            claim["itemCode"] = json!(codes[index % codes.len()]);
            claim["quantity"] = json!(1 + index % 3);
            claim["unitPrice"] =
                serde_json::from_str(&format!("{}.{:02}", 40 + index, (index * 37) % 100)).expect("price");
            claim
        })
        .collect();
    webhook["data"]["claims"] = Value::Array(list);
    webhook.to_string()
}

fn parse_invoice(body: &str) -> Invoice {
    let envelope: WebhookEnvelope = serde_json::from_str(body).expect("envelope");
    match envelope.into_webhook().expect("webhook").event {
        WebhookEvent::InvoiceSubmitted(invoice) => invoice,
        _ => panic!("not an invoice"),
    }
}

fn schedule() -> Schedule {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let table = EmbeddedTable::new();
        for item in shared::program::reference::schedule_items(SCHEDULE).expect("schedule") {
            table.put(&item, Condition::Always).await.expect("put");
        }
        Schedule::load(&table, "mpl").await.expect("load")
    })
}

fn status_body(invoice: &Invoice, schedule: &Schedule, member: &MemberStanding) -> Vec<u8> {
    let statuses = adjudicate(invoice, schedule, Some(member));
    let update = InvoiceStatusUpdate { claim_statuses: statuses, ..Default::default() };
    serde_json::to_vec(&update).expect("serialise")
}

fn bench(c: &mut Criterion) {
    let body = webhook_with_claims(CLAIMS);
    let invoice = parse_invoice(&body);
    assert_eq!(invoice.claims.len(), CLAIMS);
    let schedule = schedule();
    let member = MemberStanding { active: true, status_title: None, status_description: None };

    // Once, outside the measurement: every claim gets a status, and none is rejected as unknown.
    let sample: Value = serde_json::from_slice(&status_body(&invoice, &schedule, &member)).expect("json");
    let statuses = sample["claimStatuses"].as_array().expect("claimStatuses");
    assert_eq!(statuses.len(), CLAIMS);
    assert!(statuses.iter().all(|s| s["state"] != "rejected"), "{sample}");

    let mut group = c.benchmark_group("invoice-status-poster");
    group.bench_function("adjudicate-50-claims-and-serialise", |b| {
        b.iter(|| status_body(black_box(&invoice), black_box(&schedule), black_box(&member)))
    });
    group.bench_function("parse-adjudicate-serialise-50-claims", |b| {
        b.iter(|| {
            let invoice = parse_invoice(black_box(&body));
            status_body(&invoice, black_box(&schedule), black_box(&member))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
