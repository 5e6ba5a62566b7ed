//! Checks an Invoice Status Updated message before it is posted to HICAPS, so the program's
//! staff hear about every problem at once, named the way HICAPS Program API, "Invalid Parameters", names fields
//! (`claimStatuses[0].state`), instead of HICAPS answering 4xx later.

use super::callbacks::{ClaimStatus, InvoiceStatusUpdate};
use super::common::{MONEY_DP, has_at_most_dp};
use super::state::{ClaimState, InvoiceLevelState};
use crate::api_error::InvalidParam;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::collections::HashSet;
use uuid::Uuid;

/// The maximum length of `statusTitle`, in characters (HICAPS Program API, "ClaimStatuses
/// Parameters").
pub const STATUS_TITLE_MAX_CHARS: usize = 20;

/// Checks `update` against the spec and the invoice's claims (`known_claims`: claim id and current
/// state). Lists every problem:
/// - exactly one of the invoice-level `state` and `claimStatuses`;
/// - each claim status names a claim of this invoice, once, and sets a `state` the program may set
///   (not `awaitingResponse`/`awaitingCancelResponse`, which only HICAPS sets);
/// - approving (`approved`, `provisionallyApproved`) carries a `benefit`;
/// - `benefit` is non-negative with at most 2 dp; adjudication amounts have at most 2 dp;
/// - `statusTitle` has at most 20 characters;
/// - every claim may move from its current state ([`ClaimState::can_transition_to`]); for an
///   invoice-level state, every claim of the invoice may; `cancelRejected` needs a claim whose
///   cancellation is pending.
pub fn validate_status_update(
    update: &InvoiceStatusUpdate,
    known_claims: &[(String, ClaimState)],
) -> Result<(), Vec<InvalidParam>> {
    let mut problems = Vec::new();
    let mut problem = |name: String, reason: String| problems.push(InvalidParam { name, reason });
    let current = |claim_id: &Uuid| -> Option<ClaimState> {
        let wanted = claim_id.to_string();
        known_claims.iter().find(|(id, _)| id.trim().eq_ignore_ascii_case(&wanted)).map(|(_, state)| *state)
    };

    match (update.state, update.claim_statuses.is_empty()) {
        (Some(_), false) => problem(
            "state".into(),
            "'state' must not be set together with 'claimStatuses': set the whole invoice or each claim, not both."
                .into(),
        ),
        (None, true) => problem(
            "claimStatuses".into(),
            "Either an invoice-level 'state' or at least one entry in 'claimStatuses' is required.".into(),
        ),
        _ => {}
    }

    if let Some(state) = update.state {
        check_invoice_level(state, known_claims, &mut problem);
    }

    let mut seen = HashSet::new();
    for (i, status) in update.claim_statuses.iter().enumerate() {
        let at = |field: &str| format!("claimStatuses[{i}].{field}");
        if !seen.insert(status.claim_id) {
            problem(at("claimId"), format!("Claim {} appears more than once in 'claimStatuses'.", status.claim_id));
        }
        let known_state = current(&status.claim_id);
        if known_state.is_none() {
            problem(at("claimId"), format!("Claim {} is not on this invoice.", status.claim_id));
        }
        check_claim_status(status, known_state, &at, &mut problem);
    }

    check_invalid_params("invalidParams", &update.invalid_params, &mut problem);
    for (i, status) in update.claim_statuses.iter().enumerate() {
        check_invalid_params(&format!("claimStatuses[{i}].invalidParams"), &status.invalid_params, &mut problem);
    }

    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

fn check_invoice_level(
    state: InvoiceLevelState,
    known_claims: &[(String, ClaimState)],
    problem: &mut impl FnMut(String, String),
) {
    match state.claim_state() {
        Some(target) => {
            for (claim_id, from) in known_claims {
                if !from.can_transition_to(target) {
                    problem(
                        "state".into(),
                        format!("Claim {claim_id} cannot move from '{from}' to '{target}' (invoice-level '{state}')."),
                    );
                }
            }
        }
        None => {
            if !known_claims.iter().any(|(_, from)| from.is_cancellation_pending()) {
                problem(
                    "state".into(),
                    "'cancelRejected' declines a cancellation, but no claim of this invoice has a cancellation pending."
                        .into(),
                );
            }
        }
    }
}

fn check_claim_status(
    status: &ClaimStatus,
    known_state: Option<ClaimState>,
    at: &dyn Fn(&str) -> String,
    problem: &mut impl FnMut(String, String),
) {
    match status.state {
        None => problem(at("state"), "'state' must not be empty.".into()),
        Some(state) => {
            if !state.is_program_settable() {
                problem(at("state"), format!("'{state}' is set by HICAPS, not by the program."));
            } else if let Some(from) = known_state.filter(|from| !from.can_transition_to(state)) {
                problem(at("state"), format!("The claim cannot move from '{from}' to '{state}'."));
            }
            if state.is_approval() && status.benefit.is_none() {
                problem(at("benefit"), format!("'benefit' is required when 'state' is '{state}'."));
            }
        }
    }
    if let Some(benefit) = &status.benefit {
        if *benefit < Decimal::ZERO {
            problem(at("benefit"), "'benefit' must not be negative.".into());
        }
        if !has_at_most_dp(benefit, MONEY_DP) {
            problem(at("benefit"), format!("'benefit' must have at most {MONEY_DP} decimal places, not {benefit}."));
        }
    }
    for (j, adjudication) in status.adjudications.iter().enumerate() {
        if let Some(amount) = &adjudication.amount
            && !has_at_most_dp(amount, MONEY_DP)
        {
            problem(
                at(&format!("adjudications[{j}].amount")),
                format!("'amount' must have at most {MONEY_DP} decimal places, not {amount}."),
            );
        }
    }
    if let Some(title) = &status.status_title {
        let chars = title.chars().count();
        if chars > STATUS_TITLE_MAX_CHARS {
            problem(
                at("statusTitle"),
                format!("'statusTitle' must be at most {STATUS_TITLE_MAX_CHARS} characters, not {chars}."),
            );
        }
    }
}

fn check_invalid_params(prefix: &str, params: &[InvalidParam], problem: &mut impl FnMut(String, String)) {
    for (k, param) in params.iter().enumerate() {
        if param.name.trim().is_empty() {
            problem(format!("{prefix}[{k}].name"), "'name' must not be empty.".into());
        }
        if param.reason.trim().is_empty() {
            problem(format!("{prefix}[{k}].reason"), "'reason' must not be empty.".into());
        }
    }
}

/// Reads an Invoice Status Updated body. JSON that does not fit the schema is reported per field
/// (`claimStatuses[1].benefit`: "'benefit' must be a number."), every problem at once, by checking
/// the parsed JSON before typing it. Rules needing the invoice are in [`validate_status_update`].
pub fn parse_status_update(body: &[u8]) -> Result<InvoiceStatusUpdate, Vec<InvalidParam>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| vec![InvalidParam::new("body", format!("The body is not valid JSON: {e}."))])?;
    let Value::Object(object) = &value else {
        return Err(vec![InvalidParam::new("body", "The body must be a JSON object.")]);
    };
    let mut check = Shape::default();
    check.status_update(object);
    if !check.problems.is_empty() {
        return Err(check.problems);
    }
    // The shape check covers every field the type reads; this is a backstop.
    serde_json::from_value(value).map_err(|e| vec![InvalidParam::new("body", e.to_string())])
}

/// Checks the JSON shape of a status update, collecting problems named by field path.
#[derive(Default)]
struct Shape {
    problems: Vec<InvalidParam>,
}

impl Shape {
    fn push(&mut self, name: String, reason: String) {
        self.problems.push(InvalidParam { name, reason });
    }

    fn status_update(&mut self, object: &Map<String, Value>) {
        self.optional_string(object, "", "programInvoiceId");
        if let Some(state) = present(object, "state") {
            self.invoice_level_state(state);
        }
        self.array_of_objects(object, "", "actions", |shape, path, action| {
            for field in ["title", "description", "href", "class"] {
                shape.optional_string(action, path, field);
            }
        });
        self.array_of_objects(object, "", "claimStatuses", |shape, path, status| shape.claim_status(path, status));
        self.invalid_params(object, "");
    }

    fn invoice_level_state(&mut self, state: &Value) {
        let expected = InvoiceLevelState::ALL.map(InvoiceLevelState::as_str).join(", ");
        match state.as_str() {
            None => self.push("state".into(), "'state' must be a string.".into()),
            Some(text) if text.parse::<InvoiceLevelState>().is_ok() => {}
            Some(text) if text.parse::<ClaimState>().is_ok_and(ClaimState::is_approval) => self.push(
                "state".into(),
                format!(
                    "'{text}' cannot be an invoice-level state: set each claim's 'state' and 'benefit' in 'claimStatuses'."
                ),
            ),
            Some(text) => self.push("state".into(), format!("'state' must be one of {expected}, not '{text}'.")),
        }
    }

    fn claim_status(&mut self, path: &str, status: &Map<String, Value>) {
        let name = |field: &str| format!("{path}.{field}");
        match status.get("claimId") {
            None | Some(Value::Null) => self.push(name("claimId"), "'claimId' must not be empty.".into()),
            Some(Value::String(id)) if id.trim().is_empty() => {
                self.push(name("claimId"), "'claimId' must not be empty.".into())
            }
            Some(Value::String(id)) => {
                if Uuid::parse_str(id).is_err() {
                    self.push(name("claimId"), format!("'claimId' must be a UUID, not '{id}'."));
                }
            }
            Some(_) => self.push(name("claimId"), "'claimId' must be a string.".into()),
        }
        self.optional_string(status, path, "programClaimId");
        self.optional_decimal(status, path, "benefit");
        self.array_of_objects(status, path, "adjudications", |shape, path, adjudication| {
            shape.optional_string(adjudication, path, "reason");
            shape.optional_decimal(adjudication, path, "amount");
            shape.optional_string(adjudication, path, "value");
        });
        if let Some(state) = present(status, "state") {
            match state.as_str() {
                None => self.push(name("state"), "'state' must be a string.".into()),
                Some(text) => {
                    if let Err(unknown) = text.parse::<ClaimState>() {
                        self.push(name("state"), format!("'state' must be one of {}, not '{text}'.", unknown.expected));
                    }
                }
            }
        }
        self.optional_string(status, path, "statusTitle");
        self.optional_string(status, path, "statusDescription");
        self.invalid_params(status, path);
    }

    fn invalid_params(&mut self, object: &Map<String, Value>, path: &str) {
        self.array_of_objects(object, path, "invalidParams", |shape, path, param| {
            for field in ["name", "reason"] {
                match param.get(field) {
                    Some(Value::String(_)) => {}
                    None | Some(Value::Null) => {
                        shape.push(format!("{path}.{field}"), format!("'{field}' is required."))
                    }
                    Some(_) => shape.push(format!("{path}.{field}"), format!("'{field}' must be a string.")),
                }
            }
        });
    }

    fn optional_string(&mut self, object: &Map<String, Value>, path: &str, field: &str) {
        if present(object, field).is_some_and(|v| !v.is_string()) {
            self.push(join(path, field), format!("'{field}' must be a string."));
        }
    }

    /// A JSON number (not a string) that fits a decimal exactly.
    fn optional_decimal(&mut self, object: &Map<String, Value>, path: &str, field: &str) {
        let Some(value) = present(object, field) else { return };
        match value {
            Value::Number(_) => {
                if rust_decimal::serde::arbitrary_precision::deserialize(value.clone()).is_err() {
                    self.push(join(path, field), format!("'{field}' is out of range for a decimal amount."));
                }
            }
            _ => self.push(join(path, field), format!("'{field}' must be a number.")),
        }
    }

    fn array_of_objects(
        &mut self,
        object: &Map<String, Value>,
        path: &str,
        field: &str,
        mut each: impl FnMut(&mut Self, &str, &Map<String, Value>),
    ) {
        let Some(value) = present(object, field) else { return };
        let Value::Array(items) = value else {
            self.push(join(path, field), format!("'{field}' must be an array."));
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{}[{i}]", join(path, field));
            match item {
                Value::Object(inner) => each(self, &item_path, inner),
                _ => self.push(item_path, "Each entry must be an object.".into()),
            }
        }
    }
}

/// A field that is present and not `null` (the spec's conditional fields may be either).
fn present<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    object.get(field).filter(|v| !v.is_null())
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") }
}

/// Whether a decimal amount is usable as a benefit: non-negative, at most 2 dp.
pub fn is_valid_benefit(benefit: &Decimal) -> bool {
    *benefit >= Decimal::ZERO && has_at_most_dp(benefit, MONEY_DP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClaimState::*;
    use std::str::FromStr;

    const A: &str = "ef5bc5d2-943e-473c-bfc4-dab2e252a000";
    const B: &str = "ac2a7251-149e-4e5a-b526-bbc9e256723b";
    const C: &str = "68e1a679-a455-4726-b52d-d467c7f2d1f5";

    fn id(s: &str) -> Uuid {
        Uuid::parse_str(s).expect("uuid")
    }
    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }
    fn known(states: &[(&str, ClaimState)]) -> Vec<(String, ClaimState)> {
        states.iter().map(|(id, state)| ((*id).to_owned(), *state)).collect()
    }
    fn names(result: Result<(), Vec<InvalidParam>>) -> Vec<String> {
        result.expect_err("invalid").into_iter().map(|p| p.name).collect()
    }

    #[test]
    fn the_spec_example_is_valid() {
        let body = include_bytes!("../../tests/fixtures/hicaps/invoice-status-updated-request.json");
        let update = parse_status_update(body).expect("parses");
        let claims = known(&[(A, Pending), (B, AwaitingResponse), (C, AwaitingResponse)]);
        assert_eq!(validate_status_update(&update, &claims), Ok(()));
    }

    #[test]
    fn approving_needs_state_and_benefit() {
        let update = InvoiceStatusUpdate::claims(vec![
            ClaimStatus::new(id(A), Approved),
            ClaimStatus { state: None, ..ClaimStatus::new(id(B), Approved).with_benefit(dec("1")) },
            ClaimStatus::new(id(C), ProvisionallyApproved),
        ]);
        let claims = known(&[(A, Pending), (B, Pending), (C, Pending)]);
        assert_eq!(
            names(validate_status_update(&update, &claims)),
            ["claimStatuses[0].benefit", "claimStatuses[1].state", "claimStatuses[2].benefit"]
        );
    }

    #[test]
    fn benefit_non_negative_two_dp() {
        let update = InvoiceStatusUpdate::claims(vec![
            ClaimStatus::new(id(A), Approved).with_benefit(dec("10.123")),
            ClaimStatus::new(id(B), Approved).with_benefit(dec("-1.00")),
            ClaimStatus::new(id(C), Approved).with_benefit(dec("690.00")),
        ]);
        let claims = known(&[(A, Pending), (B, Pending), (C, Pending)]);
        let problems = validate_status_update(&update, &claims).expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].name, "claimStatuses[0].benefit");
        assert!(problems[0].reason.contains("at most 2 decimal places"), "{}", problems[0].reason);
        assert_eq!(problems[1].name, "claimStatuses[1].benefit");
        assert!(problems[1].reason.contains("negative"));
        assert!(is_valid_benefit(&dec("0")) && is_valid_benefit(&dec("-0.00")) && !is_valid_benefit(&dec("0.001")));
    }

    #[test]
    fn status_title_at_most_20_chars() {
        let mut ok = ClaimStatus::new(id(A), Rejected);
        ok.status_title = Some("ÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉ".into()); // 20 chars, 40 bytes
        let mut long = ClaimStatus::new(id(B), Rejected);
        long.status_title = Some("Pending Review by CM!".into()); // 21
        let update = InvoiceStatusUpdate::claims(vec![ok, long]);
        let claims = known(&[(A, Pending), (B, Pending)]);
        assert_eq!(names(validate_status_update(&update, &claims)), ["claimStatuses[1].statusTitle"]);
    }

    #[test]
    fn state_and_claim_statuses_are_exclusive() {
        let both = InvoiceStatusUpdate {
            state: Some(InvoiceLevelState::Rejected),
            ..InvoiceStatusUpdate::claims(vec![ClaimStatus::new(id(A), Rejected)])
        };
        let claims = known(&[(A, Pending)]);
        assert_eq!(names(validate_status_update(&both, &claims)), ["state"]);
        let neither = InvoiceStatusUpdate { program_invoice_id: Some("X".into()), ..InvoiceStatusUpdate::default() };
        assert_eq!(names(validate_status_update(&neither, &claims)), ["claimStatuses"]);
        let invoice_level = InvoiceStatusUpdate::invoice_level(InvoiceLevelState::Rejected);
        assert_eq!(validate_status_update(&invoice_level, &claims), Ok(()));
    }

    #[test]
    fn claims_must_belong_to_the_invoice_once() {
        let update = InvoiceStatusUpdate::claims(vec![
            ClaimStatus::new(id(A), Rejected),
            ClaimStatus::new(id(C), Rejected),
            ClaimStatus::new(id(A), Rejected),
        ]);
        // Known ids compare case-insensitively.
        let claims = known(&[(&A.to_uppercase(), Pending), (B, Pending)]);
        assert_eq!(
            names(validate_status_update(&update, &claims)),
            ["claimStatuses[1].claimId", "claimStatuses[2].claimId"]
        );
    }

    #[test]
    fn only_allowed_transitions() {
        let update = InvoiceStatusUpdate::claims(vec![
            ClaimStatus::new(id(A), Pending),
            ClaimStatus::new(id(B), Approved).with_benefit(dec("5")),
            ClaimStatus::new(id(C), AwaitingCancelResponse),
        ]);
        let claims = known(&[(A, Paid), (B, Approved), (C, Pending)]);
        let problems = validate_status_update(&update, &claims).expect_err("invalid");
        let names: Vec<_> = problems.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["claimStatuses[0].state", "claimStatuses[2].state"]);
        assert!(problems[0].reason.contains("from 'paid' to 'pending'"), "{}", problems[0].reason);
        assert!(problems[1].reason.contains("set by HICAPS"), "{}", problems[1].reason);
    }

    #[test]
    fn invoice_level_transitions() {
        let pending = InvoiceStatusUpdate::invoice_level(InvoiceLevelState::Pending);
        let claims = known(&[(A, AwaitingResponse), (B, Paid), (C, Cancelled)]);
        let problems = validate_status_update(&pending, &claims).expect_err("invalid");
        assert_eq!(problems.len(), 2);
        assert!(problems.iter().all(|p| p.name == "state"));
        assert!(problems[0].reason.contains(B) && problems[1].reason.contains(C));

        let cancel_rejected = InvoiceStatusUpdate::invoice_level(InvoiceLevelState::CancelRejected);
        assert_eq!(names(validate_status_update(&cancel_rejected, &known(&[(A, Approved)]))), ["state"]);
        assert_eq!(validate_status_update(&cancel_rejected, &known(&[(A, CancelPending), (B, Approved)])), Ok(()));

        let cancelled = InvoiceStatusUpdate::invoice_level(InvoiceLevelState::Cancelled);
        assert_eq!(validate_status_update(&cancelled, &known(&[(A, Approved), (B, Rejected), (C, Paid)])), Ok(()));
    }

    #[test]
    fn every_problem_is_listed() {
        let mut status = ClaimStatus::new(id(C), Approved).with_benefit(dec("1.001"));
        status.status_title = Some("x".repeat(21));
        status.adjudications.push(super::super::Adjudication { amount: Some(dec("0.555")), ..Default::default() });
        status.invalid_params.push(InvalidParam::new("", "r"));
        let update = InvoiceStatusUpdate {
            state: Some(InvoiceLevelState::Pending),
            claim_statuses: vec![status],
            ..Default::default()
        };
        assert_eq!(
            names(validate_status_update(&update, &known(&[(A, Paid)]))),
            [
                "state",
                "state",
                "claimStatuses[0].claimId",
                "claimStatuses[0].benefit",
                "claimStatuses[0].adjudications[0].amount",
                "claimStatuses[0].statusTitle",
                "claimStatuses[0].invalidParams[0].name",
            ]
        );
    }

    fn parse_names(body: &str) -> Vec<(String, String)> {
        parse_status_update(body.as_bytes()).expect_err("invalid").into_iter().map(|p| (p.name, p.reason)).collect()
    }

    #[test]
    fn parse_names_the_field() {
        let problems = parse_names(
            r#"{"claimStatuses": [
                {"claimId": "ef5bc5d2-943e-473c-bfc4-dab2e252a000", "state": ""},
                {"claimId": "not-a-uuid", "benefit": "12.50", "state": "approved"},
                {"claimId": "68e1a679-a455-4726-b52d-d467c7f2d1f5", "benefit": 1e40, "state": "submitted",
                 "adjudications": [{"amount": "5"}], "statusTitle": 5, "invalidParams": [{"name": "x"}]},
                7
            ], "actions": {}, "invalidParams": null, "programInvoiceId": 12}"#,
        );
        let names: Vec<_> = problems.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "programInvoiceId",
                "actions",
                "claimStatuses[0].state",
                "claimStatuses[1].claimId",
                "claimStatuses[1].benefit",
                "claimStatuses[2].benefit",
                "claimStatuses[2].adjudications[0].amount",
                "claimStatuses[2].state",
                "claimStatuses[2].statusTitle",
                "claimStatuses[2].invalidParams[0].reason",
                "claimStatuses[3]",
            ]
        );
        assert_eq!(problems[4].1, "'benefit' must be a number.");
        assert!(problems[7].1.contains("not 'submitted'") && problems[7].1.contains("provisionallyApproved"));
    }

    #[test]
    fn parse_invoice_level_state() {
        let problems = parse_names(r#"{"state": "approved"}"#);
        assert_eq!(problems[0].0, "state");
        assert!(problems[0].1.contains("claimStatuses"), "{}", problems[0].1);
        let problems = parse_names(r#"{"state": "closed"}"#);
        assert!(problems[0].1.contains("cancelRejected"), "{}", problems[0].1);
        assert_eq!(parse_names(r#"{"state": 1}"#)[0].0, "state");
        let ok = parse_status_update(br#"{"state": "cancelRejected", "actions": null}"#).expect("valid");
        assert_eq!(ok.state, Some(InvoiceLevelState::CancelRejected));
    }

    #[test]
    fn parse_body_errors() {
        assert_eq!(parse_names("{")[0].0, "body");
        assert_eq!(parse_names("[]")[0].0, "body");
        assert_eq!(parse_names("")[0].0, "body");
    }

    #[test]
    fn parse_keeps_decimals_exact() {
        let update = parse_status_update(
            br#"{"claimStatuses": [{"claimId": "ef5bc5d2-943e-473c-bfc4-dab2e252a000", "benefit": 90.05, "state": "approved",
                 "adjudications": [{"amount": 0.10}]}]}"#,
        )
        .expect("valid");
        assert_eq!(update.claim_statuses[0].benefit.map(|b| b.to_string()), Some("90.05".into()));
        assert_eq!(update.claim_statuses[0].adjudications[0].amount.map(|b| b.to_string()), Some("0.10".into()));
        let out = serde_json::to_string(&update).expect("json");
        assert!(out.contains(r#""benefit":90.05"#) && out.contains(r#""amount":0.10"#), "{out}");
    }
}
