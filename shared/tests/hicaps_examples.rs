//! Every example JSON of the HICAPS Program API spec (tests/fixtures/hicaps, copied verbatim)
//! parses into its type, round-trips to an equal value, and re-serialises to the same JSON up to
//! the documented normalisations (see `normalise`), so any other loss is caught.

use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::hicaps::{
    ApiError, ClaimState, InvoiceStatusUpdate, LineAmount, PaymentInvoices, PredeterminationStatusUpdate, RootResponse,
    Webhook, WebhookEvent, WebhookType, parse_envelope, parse_status_update, parse_webhook, validate_status_update,
};
use std::path::PathBuf;
use std::str::FromStr;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hicaps").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

/// Applies to a spec example the normalisations our types make on output:
/// - webhook `created` (integer, quoted integer or ISO date-time) -> integer epoch seconds;
/// - `_links` keys `lp_x` -> `lp:x` (the payment webhooks' `lp_webhook-error`);
/// - biller address `postalCode` -> `postcode` (the parameter table's spelling);
/// - payment invoice `claims` -> `claimTransactions`.
fn normalise(mut value: Value) -> Value {
    let Some(top) = value.as_object_mut() else { return value };
    let is_webhook = top.contains_key("id") && top.contains_key("type") && top.contains_key("data");
    if is_webhook && let Some(created) = top.get_mut("created") {
        *created = json!(epoch_seconds(created));
    }
    if let Some(Value::Object(links)) = top.get_mut("_links") {
        let renamed = std::mem::take(links)
            .into_iter()
            .map(|(rel, link)| match rel.strip_prefix("lp_") {
                Some(rest) => (format!("lp:{rest}"), link),
                None => (rel, link),
            })
            .collect();
        *links = renamed;
    }
    if let Some(Value::Object(address)) = top.get_mut("data").and_then(|d| d.pointer_mut("/biller/address"))
        && let Some(postcode) = address.remove("postalCode")
    {
        address.insert("postcode".into(), postcode);
    }
    if let Some(Value::Array(invoices)) = top.get_mut("invoices") {
        for invoice in invoices.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(claims) = invoice.remove("claims") {
                invoice.insert("claimTransactions".into(), claims);
            }
        }
    }
    value
}

/// Epoch seconds of a spec `created`, computed independently of the library.
fn epoch_seconds(created: &Value) -> i64 {
    match created {
        Value::Number(n) => n.as_i64().expect("integer epoch"),
        Value::String(s) => s
            .parse::<i64>()
            .unwrap_or_else(|_| chrono::DateTime::parse_from_rfc3339(s).expect("ISO date-time").timestamp()),
        other => panic!("created: {other}"),
    }
}

/// Parses a fixture as `T`, checks the round trips, returns the value.
fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(name: &str) -> T {
    let bytes = fixture(name);
    let parsed: T = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let out = serde_json::to_value(&parsed).expect("serialise");
    let again: T = serde_json::from_value(out.clone()).unwrap_or_else(|e| panic!("{name} again: {e}"));
    assert_eq!(again, parsed, "{name}: serialise + parse changed the value");
    let original: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(out, normalise(original), "{name}: serialised JSON differs beyond the documented normalisations");
    parsed
}

fn webhook(name: &str) -> Webhook {
    let typed: Webhook = round_trip(name);
    assert_eq!(parse_webhook(&fixture(name)).expect("parse_webhook"), typed);
    let envelope = parse_envelope(&fixture(name)).expect("envelope");
    assert_eq!(envelope.id, typed.id);
    assert_eq!(envelope.webhook_type(), Some(typed.webhook_type()));
    typed
}

#[test]
fn invoice_submitted_webhook() {
    let hook = webhook("invoice-submitted-webhook.json");
    assert_eq!(hook.id.to_string(), "8ad735a2-21a0-481a-9174-205817e95110");
    assert_eq!(hook.created.expect("created").epoch_seconds(), 1565140165);
    assert_eq!(hook.webhook_type(), WebhookType::InvoiceSubmitted);
    assert_eq!(
        hook.action_href(),
        Some("https://lanternpay.com/sample/invoices/9a15ad10-dbf0-4ab6-83f1-e42019f188b5/res")
    );
    assert_eq!(hook.links.invoice_status_updated_href(), hook.action_href());
    assert_eq!(
        hook.webhook_error_href(),
        Some("https://lanternpay.com/sample/webhook/8ad735a2-21a0-481a-9174-205817e95110")
    );
    let WebhookEvent::InvoiceSubmitted(invoice) = &hook.event else { panic!("{:?}", hook.event) };
    let claim = &invoice.claims[0];
    assert_eq!(claim.unit_price.as_ref().and_then(LineAmount::number), Some(dec("55.63")));
    assert_eq!(claim.unit_price.as_ref().and_then(LineAmount::number).map(|p| p.to_string()), Some("55.63".into()));
    assert_eq!(claim.quantity.as_ref().and_then(LineAmount::number), Some(dec("1")));
    let biller = invoice.biller.as_ref().expect("biller");
    assert_eq!(biller.address.as_ref().map(|a| a.postcode.as_str()), Some("2095"));
    let pharmacy = claim.item_custom_fields.as_ref().and_then(|f| f.pharmacy.as_ref()).expect("pharmacy");
    assert_eq!(pharmacy.script_number.as_deref(), Some("123123"));
    assert_eq!(pharmacy.extra.get("dispensingPharmacistName"), Some(&json!("Patrick Star")));
    // The example's serviceDateTime has no seconds; it is kept as written and still readable.
    let service = claim.service_date_time.as_ref().expect("serviceDateTime");
    assert_eq!(service.as_str(), "2019-08-07T00:00.000+10:00");
    assert!(service.to_datetime().is_some());
    assert_eq!(
        invoice.member.as_ref().and_then(|m| m.birth_date.as_ref()).and_then(|d| d.to_date()).map(|d| d.to_string()),
        Some("1990-04-01".into())
    );
    // Emitted with the documented forms.
    let out = serde_json::to_value(&hook).expect("json");
    assert_eq!(out["created"], json!(1565140165));
    assert_eq!(out["data"]["claims"][0]["unitPrice"].to_string(), "55.63");
}

#[test]
fn invoice_cancellation_requested_webhook() {
    let hook = webhook("invoice-cancellation-requested-webhook.json");
    let WebhookEvent::InvoiceCancellationRequested(request) = &hook.event else { panic!("{:?}", hook.event) };
    assert_eq!(request.program_invoice_id.as_deref(), Some("IC2342348_90"));
    assert_eq!(request.reason.as_deref(), Some("The invoice has been submitted by mistake."));
    assert!(hook.action_href().is_some_and(|h| h.ends_with("/response")));
}

#[test]
fn predetermination_submitted_webhook() {
    let hook = webhook("predetermination-submitted-webhook.json");
    let WebhookEvent::PredeterminationSubmitted(invoice) = &hook.event else { panic!("{:?}", hook.event) };
    // The example's biller has only its id, though the table marks the rest Mandatory.
    let biller = invoice.biller.as_ref().expect("biller");
    assert!(biller.name.is_none() && biller.address.is_none());
    assert!(hook.links.predetermination_status_updated_href().is_some_and(|h| h.ends_with("/predet")));
    assert_eq!(hook.action_href(), hook.links.predetermination_status_updated_href());
}

#[test]
fn payment_scheduled_and_failed_webhooks() {
    for (name, kind) in [
        ("payment-scheduled-webhook.json", WebhookType::PaymentScheduled),
        ("payment-failed-webhook.json", WebhookType::PaymentFailed),
    ] {
        let hook = webhook(name);
        assert_eq!(hook.webhook_type(), kind);
        // "2020-10-30T09:10:11.2321413+11:00"
        assert_eq!(hook.created.expect("created").epoch_seconds(), 1604009411);
        // Sent as `lp_webhook-error`.
        assert_eq!(
            hook.webhook_error_href(),
            Some("https://lanternpay.com/sample/webhook/url/8ad735a2-21a0-481a-9174-205817e95110")
        );
        assert!(hook.links.payment_invoices_href().is_some_and(|h| h.ends_with("/invoices")));
        let (WebhookEvent::PaymentScheduled(payment) | WebhookEvent::PaymentFailed(payment)) = &hook.event else {
            panic!("{:?}", hook.event)
        };
        assert_eq!(payment.amount.to_string(), "2322.23");
        let account = payment.biller_bank_account.as_ref().expect("billerBankAccount");
        assert_eq!((account.bsb.as_str(), account.account_number.as_str()), ("123123", "123456789"));
        let out = serde_json::to_value(&hook).expect("json");
        assert!(out["_links"].get("lp:webhook-error").is_some() && out["_links"].get("lp_webhook-error").is_none());
    }
}

#[test]
fn invoice_payment_held_webhook() {
    let hook = webhook("invoice-payment-held-webhook.json");
    let WebhookEvent::PaymentHeld(held) = &hook.event else { panic!("{:?}", hook.event) };
    assert_eq!(held.amount, dec("2322.23"));
    assert_eq!(hook.created.expect("created").epoch_seconds(), 1580356165);
}

#[test]
fn invoice_overpaid_webhook() {
    let hook = webhook("invoice-overpaid-webhook.json");
    // `created` is a quoted epoch here, and there are no `_links`.
    assert_eq!(hook.created.expect("created").epoch_seconds(), 1596012705);
    assert!(hook.links.is_empty() && hook.action_href().is_none() && hook.webhook_error_href().is_none());
    let WebhookEvent::InvoiceOverpaid(overpaid) = &hook.event else { panic!("{:?}", hook.event) };
    let amounts: Vec<String> = overpaid.overpaid_claims.iter().map(|c| c.amount.to_string()).collect();
    assert_eq!(amounts, ["123.45", "87.15"]);
}

#[test]
fn member_check_webhook() {
    // The spec has no example ("Example code here"); this follows the Member table.
    let body = json!({
        "id": "0d8f9c0e-7f3a-4a52-9a57-0f5a1c3e9b11",
        "created": 1565140165,
        "data": {"memberNumber": "789456123", "program": "nib", "givenName": "Spongebob", "familyName": "Squarepants",
            "birthDate": "1990-04-01", "gender": "male", "email": "sb@example.com",
            "memberCustomFields": {"personIdentifier": "02"}},
        "type": "admin.member.check",
        "_links": {"lp:update-member-state": {"href": "https://x/members/789456123/state"}, "lp:webhook-error": null}
    });
    let hook: Webhook = serde_json::from_value(body.clone()).expect("member check");
    assert_eq!(hook.action_href(), Some("https://x/members/789456123/state"));
    assert_eq!(hook.webhook_error_href(), None);
    assert_eq!(serde_json::to_value(&hook).expect("json"), body);
}

#[test]
fn invoice_status_updated_request() {
    let update: InvoiceStatusUpdate = round_trip("invoice-status-updated-request.json");
    assert_eq!(parse_status_update(&fixture("invoice-status-updated-request.json")), Ok(update.clone()));
    assert_eq!(update.claim_statuses.len(), 3);
    assert_eq!(update.claim_statuses[0].benefit, Some(dec("690")));
    assert_eq!(update.claim_statuses[0].state, Some(ClaimState::Approved));
    assert_eq!(update.claim_statuses[2].invalid_params[1].name, "location");
}

#[test]
fn predetermination_response() {
    let update: PredeterminationStatusUpdate = round_trip("predetermination-response.json");
    assert_eq!(update.claim_statuses[1].benefit.map(|b| b.to_string()), Some("90.05".into()));
    assert_eq!(update.claim_statuses[0].adjudications[0].amount, Some(dec("690")));
}

#[test]
fn payment_and_held_invoices_responses() {
    for name in ["payment-invoices-response.json", "held-invoices-response.json"] {
        let response: PaymentInvoices = round_trip(name);
        // `claimTransactions` in the first invoice, `claims` in the second: both read.
        assert_eq!(response.invoices[0].claims.len(), 2);
        assert_eq!(response.invoices[1].claims.len(), 2);
        assert!(response.invoices[1].program_invoice_id.is_none());
        assert_eq!(response.invoices[1].claims[1].amount.to_string(), "45.12");
        assert_eq!(response.total(), Some(dec("327.70")));
    }
}

#[test]
fn api_error_payload() {
    let error: ApiError = round_trip("api-error-payload.json");
    assert_eq!(error.invalid_params[1].name, "claimStatuses[2].benefit");
}

#[test]
fn get_root_response() {
    let root: RootResponse = round_trip("get-root-response.json");
    assert_eq!(root.oauth_token_href(), Some("https://www.lanternpay.com/ui/iam/identity/oauth/connect/token"));
    assert_eq!(root.links.get("curies").and_then(|c| c.templated), Some(true));
}

#[test]
fn unknown_claim_state_fails_clearly() {
    let body = String::from_utf8(fixture("predetermination-response.json")).expect("utf-8");
    let body = body.replacen("\"state\": \"approved\"", "\"state\": \"accepted\"", 1);
    let error = serde_json::from_str::<PredeterminationStatusUpdate>(&body).expect_err("unknown state");
    let message = error.to_string();
    assert!(message.contains("unknown variant `accepted`"), "{message}");
    assert!(message.contains("provisionallyApproved"), "{message}");

    let body = String::from_utf8(fixture("invoice-status-updated-request.json")).expect("utf-8");
    let body = body.replacen("\"state\": \"rejected\"", "\"state\": \"declined\"", 1);
    let problems = parse_status_update(body.as_bytes()).expect_err("unknown state");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].name, "claimStatuses[1].state");
    assert!(problems[0].reason.contains("not 'declined'"), "{}", problems[0].reason);
}

#[test]
fn benefit_with_three_dp_fails_validation() {
    let body = String::from_utf8(fixture("invoice-status-updated-request.json")).expect("utf-8");
    let body = body.replacen("\"benefit\": 690,", "\"benefit\": 690.125,", 1);
    let update = parse_status_update(body.as_bytes()).expect("well-formed");
    assert_eq!(update.claim_statuses[0].benefit.map(|b| b.to_string()), Some("690.125".into()));
    let known = [
        ("ef5bc5d2-943e-473c-bfc4-dab2e252a000".to_owned(), ClaimState::Pending),
        ("ac2a7251-149e-4e5a-b526-bbc9e256723b".to_owned(), ClaimState::Pending),
        ("68e1a679-a455-4726-b52d-d467c7f2d1f5".to_owned(), ClaimState::Pending),
    ];
    let problems = validate_status_update(&update, &known).expect_err("3 dp");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].name, "claimStatuses[0].benefit");
    assert!(problems[0].reason.contains("at most 2 decimal places"), "{}", problems[0].reason);
}

#[test]
fn missing_id_fails_clearly() {
    let body = String::from_utf8(fixture("invoice-submitted-webhook.json")).expect("utf-8");
    let body = body.replacen("\"id\": \"8ad735a2-21a0-481a-9174-205817e95110\",", "", 1);
    for error in [
        parse_webhook(body.as_bytes()).expect_err("no id"),
        parse_envelope(body.as_bytes()).map(drop).expect_err("no id"),
    ] {
        assert!(error.to_string().contains("missing field `id`"), "{error}");
    }
}

#[test]
fn bad_data_names_the_webhook_type_and_field() {
    let body = String::from_utf8(fixture("invoice-submitted-webhook.json")).expect("utf-8");
    let body = body.replacen("\"itemCode\": \"10|1|1\",", "", 1);
    let error = parse_webhook(body.as_bytes()).expect_err("no itemCode");
    let message = error.to_string();
    assert!(
        message.contains("claiming.invoice.submitted") && message.contains("missing field `itemCode`"),
        "{message}"
    );
    // The envelope alone still parses, so the receiver can acknowledge and keep it.
    assert!(parse_envelope(body.as_bytes()).is_ok());

    let body = String::from_utf8(fixture("payment-scheduled-webhook.json")).expect("utf-8");
    let body = body.replacen("\"amount\": 2322.23", "\"amount\": true", 1);
    assert!(parse_webhook(body.as_bytes()).is_err());
}

#[test]
fn decimals_never_pass_through_floats() {
    // 0.1 + 0.2 style values and long 4 dp quantities survive exactly.
    let body = String::from_utf8(fixture("invoice-submitted-webhook.json")).expect("utf-8");
    let body =
        body.replacen("\"quantity\": 1,", "\"quantity\": 0.3000,", 1).replacen("55.63", "12345678901234.0001", 1);
    let hook = parse_webhook(body.as_bytes()).expect("parses");
    let WebhookEvent::InvoiceSubmitted(invoice) = &hook.event else { panic!() };
    assert_eq!(
        invoice.claims[0].quantity.as_ref().and_then(LineAmount::number).map(|q| q.to_string()),
        Some("0.3000".into())
    );
    assert_eq!(
        invoice.claims[0].unit_price.as_ref().and_then(LineAmount::number).map(|q| q.to_string()),
        Some("12345678901234.0001".into())
    );
    let out = serde_json::to_string(&hook).expect("json");
    assert!(out.contains("\"quantity\":0.3000") && out.contains("\"unitPrice\":12345678901234.0001"), "{out}");
}
