//! Every parser and validator that reads input from outside returns a result for any input,
//! never a panic: arbitrary bytes, arbitrary JSON, and the spec's own examples with arbitrary
//! values spliced in where fields go.
//!
//! `cargo xtask test` runs proptest's default 256 cases per property. A longer run:
//! `PROPTEST_CASES=100000 cargo test -p shared --test parsers_never_panic --release`.

use chrono::{NaiveDate, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use shared::acc::{IcpQuery, RawIcpQuery};
use shared::api_error::Problems;
use shared::hicaps::{
    ClaimState, WebhookEnvelope, WebhookType, parse_envelope, parse_status_update, parse_webhook,
    validate_status_update,
};
use shared::program::adjudication::{ItemRule, MemberStanding, Schedule, adjudicate};

const INVOICE: &str = include_str!("fixtures/hicaps/invoice-submitted-webhook.json");

/// Any JSON value, nested a few levels, with strings, numbers of every size and sign, and keys
/// that the parsers look for.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("claims".to_owned()),
        Just("quantity".to_owned()),
        Just("unitPrice".to_owned()),
        Just("claimId".to_owned()),
        Just("state".to_owned()),
        Just("benefit".to_owned()),
        Just("claimStatuses".to_owned()),
        Just("_links".to_owned()),
        Just("href".to_owned()),
        "[a-zA-Z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        "-?[0-9]{1,40}(\\.[0-9]{1,30})?(e-?[0-9]{1,4})?".prop_map(|n| serde_json::from_str(&n).unwrap_or(Value::Null)),
        ".{0,40}".prop_map(Value::String),
        Just(json!("7329d4a5-a15d-4db0-a831-da2e6bbba425")),
        Just(json!("approved")),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The spec's invoice webhook with one field replaced by an arbitrary value.
fn mutated_invoice() -> impl Strategy<Value = Value> {
    let pointers = prop_oneof![
        Just("/id"),
        Just("/created"),
        Just("/type"),
        Just("/data"),
        Just("/data/invoiceId"),
        Just("/data/program"),
        Just("/data/member"),
        Just("/data/member/memberNumber"),
        Just("/data/claims"),
        Just("/data/claims/0"),
        Just("/data/claims/0/quantity"),
        Just("/data/claims/0/unitPrice"),
        Just("/data/claims/0/itemCode"),
        Just("/data/claims/0/claimId"),
        Just("/data/claims/0/serviceDateTime"),
        Just("/_links"),
    ];
    (pointers, any_json()).prop_map(|(pointer, value)| {
        let mut webhook: Value = serde_json::from_str(INVOICE).unwrap_or(Value::Null);
        if let Some(slot) = webhook.pointer_mut(pointer) {
            *slot = value;
        }
        webhook
    })
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn schedule() -> Schedule {
    let rule = ItemRule { percentage: Some(80.into()), unit_benefit_cap: Some(40.into()), review: false };
    Schedule::from_rules([("10|1|1".to_owned(), rule)])
}

/// Every HICAPS body reader on `bytes`; adjudication too when they make an invoice of it.
fn read_hicaps(bytes: &[u8]) {
    let _ = parse_webhook(bytes);
    let Ok(envelope) = parse_envelope(bytes) else {
        return;
    };
    for kind in WebhookType::ALL {
        let envelope: WebhookEnvelope = envelope.clone();
        if let Ok(webhook) = envelope.into_typed(kind)
            && let shared::hicaps::WebhookEvent::InvoiceSubmitted(invoice) = &webhook.event
        {
            let member = MemberStanding { active: true, status_title: None, status_description: None };
            let _ = adjudicate(invoice, &schedule(), Some(&member));
        }
    }
}

fn read_decision(bytes: &[u8]) {
    if let Ok(update) = parse_status_update(bytes) {
        let claims: Vec<(String, ClaimState)> =
            ClaimState::ALL.iter().map(|state| ("7329d4a5-a15d-4db0-a831-da2e6bbba425".to_owned(), *state)).collect();
        let _ = validate_status_update(&update, &claims);
    }
}

fn read_others(value: &Value, bytes: &[u8]) {
    let _ = shared::claiming::validate_check(Some("25"), bytes, today());
    let _ = shared::icare::validate_notification(value, Utc::now(), Problems::new());
    let _ = shared::icare::validate_policy("POL-1", value);
    let _ = shared::icare::validate_document(value, 4 * 1024 * 1024);
}

proptest! {
    #[test]
    fn hicaps_readers_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        read_hicaps(&bytes);
        read_decision(&bytes);
        read_others(&Value::Null, &bytes);
    }

    #[test]
    fn every_reader_takes_any_json(value in any_json()) {
        let bytes = value.to_string().into_bytes();
        read_hicaps(&bytes);
        read_decision(&bytes);
        read_others(&value, &bytes);
    }

    #[test]
    fn the_spec_invoice_with_any_field_replaced_is_read_or_refused(webhook in mutated_invoice()) {
        read_hicaps(webhook.to_string().as_bytes());
    }

    #[test]
    fn decisions_with_any_claim_status_are_read_or_refused(status in any_json(), state in any_json()) {
        let body = json!({"claimStatuses": [status], "state": state});
        read_decision(body.to_string().as_bytes());
        read_decision(json!({"claimStatuses": [{"claimId": "7329d4a5-a15d-4db0-a831-da2e6bbba425", "state": state}]}).to_string().as_bytes());
    }

    #[test]
    fn icp_queries_take_any_parameters(
        claim_number in proptest::option::of(".{0,40}"),
        date_of_birth in proptest::option::of(".{0,20}"),
        vendor_id in proptest::option::of(".{0,20}"),
        provider_id in proptest::option::of(".{0,20}"),
    ) {
        let raw = RawIcpQuery {
            claim_number: claim_number.as_deref(),
            date_of_birth: date_of_birth.as_deref(),
            vendor_id: vendor_id.as_deref(),
            provider_id: provider_id.as_deref(),
        };
        let _ = IcpQuery::parse(raw, today());
    }
}
