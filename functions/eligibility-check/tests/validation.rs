//! Every validation rule of the issue, checked on `shared::claiming::validate_check` (what the
//! handler runs) and, for the HTTP shape, through `App::handle` with an upstream that must not be
//! called.

mod support;

use chrono::{Duration as TimeDelta, NaiveDate, Utc};
use serde_json::{Value, json};
use shared::api_error::ApiError;
use shared::claiming::{EcfRequest, validate_check};
use support::*;
use wiremock::MockServer;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 23).expect("valid date")
}

fn check(body: &Value) -> Result<EcfRequest, ApiError> {
    validate_check(Some(LOCATION), body.to_string().as_bytes(), today()).map(|(_, request)| request)
}

fn problems(body: &Value) -> Vec<(String, String)> {
    match check(body) {
        Ok(_) => Vec::new(),
        Err(error) => error.invalid_params.into_iter().map(|p| (p.name, p.reason)).collect(),
    }
}

/// The reason given for `name`, failing the test if `name` is not listed.
fn reason_for(body: &Value, name: &str) -> String {
    let found = problems(body);
    found
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, reason)| reason.clone())
        .unwrap_or_else(|| panic!("expected a problem named {name}, got {found:?}"))
}

fn set(mut body: Value, pointer: &str, value: Value) -> Value {
    *body.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer}")) = value;
    body
}

fn remove(mut body: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let parent = if parent.is_empty() { &mut body } else { body.pointer_mut(parent).expect("parent exists") };
    parent.as_object_mut().expect("parent is an object").remove(key).unwrap_or_else(|| panic!("no {pointer}"));
    body
}

/// `/items/0/serviceRate` -> `items[0].serviceRate`.
fn name_of(pointer: &str) -> String {
    let mut name = String::new();
    for part in pointer.trim_start_matches('/').split('/') {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            name.push_str(&format!("[{part}]"));
        } else {
            if !name.is_empty() {
                name.push('.');
            }
            name.push_str(part);
        }
    }
    name
}

fn leaves(value: &Value, pointer: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| leaves(v, format!("{pointer}/{k}"), out)),
        Value::Array(values) => values.iter().enumerate().for_each(|(i, v)| leaves(v, format!("{pointer}/{i}"), out)),
        _ => out.push(pointer),
    }
}

#[test]
fn the_spec_examples_are_accepted_and_forwarded_as_written() {
    for example in [mandatory(today()), optional(today())] {
        let request = check(&example).unwrap_or_else(|e| panic!("example refused: {:?}", e.invalid_params));
        assert_eq!(serde_json::to_value(&request).expect("serializes"), example);
    }
}

#[test]
fn the_optional_example_keeps_every_optional_element() {
    let request = check(&optional(today())).expect("valid");
    assert_eq!(request.admission.length_of_stay.map(|c| c.get()), Some(2));
    assert!(request.admission.emergency_admission.is_some_and(|e| e.is_yes()));
    assert_eq!(request.admission.discharge_date, Some(today() - TimeDelta::days(2)));
    assert!(request.patient.alias.is_some());
    assert_eq!(request.patient.name.second.as_deref(), Some("P"));
    assert_eq!(request.contact.as_ref().and_then(|c| c.email.as_deref()), Some("steve@email.co"));
    assert_eq!(request.items[0].service_rate.value(), rust_decimal::Decimal::from(1000));
}

#[test]
fn every_element_of_the_mandatory_example_is_required() {
    let example = mandatory(today());
    let mut pointers = Vec::new();
    leaves(&example, String::new(), &mut pointers);
    assert!(pointers.len() >= 25, "{pointers:?}");
    for pointer in pointers {
        let name = name_of(&pointer);
        let reason = reason_for(&remove(example.clone(), &pointer), &name);
        assert!(reason.starts_with("Required"), "{name}: {reason}");
        // Blank and null count as missing too.
        assert!(
            reason_for(&set(example.clone(), &pointer, json!("  ")), &name).starts_with("Required"),
            "{name} blank"
        );
        assert!(reason_for(&set(example.clone(), &pointer, Value::Null), &name).starts_with("Required"), "{name} null");
    }
}

#[test]
fn missing_sections_are_named_once() {
    for section in ["flags", "admission", "items", "location", "patient"] {
        let found = problems(&remove(mandatory(today()), &format!("/{section}")));
        assert_eq!(found.len(), 1, "{section}: {found:?}");
        assert_eq!(found[0].0, section);
    }
    assert_eq!(reason_for(&remove(mandatory(today()), "/patient/name"), "patient.name"), "Required.");
    assert_eq!(reason_for(&remove(mandatory(today()), "/patient/fund"), "patient.fund"), "Required.");
    assert_eq!(reason_for(&set(mandatory(today()), "/flags", json!("N")), "flags"), "Must be a JSON object.");
}

#[test]
fn yes_no_flags_must_be_y_or_n_strings() {
    let pointers = [
        "/flags/accountPaid",
        "/flags/compensationClaim",
        "/flags/financialInterestDisclosureInd",
        "/flags/isAccident",
        "/admission/preExistingAilmentInd",
        "/admission/sameDay",
        "/admission/emergencyAdmission",
    ];
    for pointer in pointers {
        let name = name_of(pointer);
        for bad in [json!("Yes"), json!("y"), json!("N "), json!("1")] {
            let body = set(optional(today()), pointer, bad.clone());
            assert_eq!(reason_for(&body, &name), "Must be \"Y\" or \"N\".", "{name} = {bad}");
        }
        assert_eq!(reason_for(&set(optional(today()), pointer, json!(true)), &name), "Must be a string.");
    }
}

#[test]
fn type_and_check_type_are_fixed() {
    assert_eq!(reason_for(&set(mandatory(today()), "/type", json!("ECM")), "type"), "Must be \"OEC\".");
    assert_eq!(
        reason_for(&set(mandatory(today()), "/flags/oecTypeCode", json!("OEC")), "flags.oecTypeCode"),
        "Must be \"ECF\"."
    );
    let reason = reason_for(&set(mandatory(today()), "/flags/ifc", json!("Q")), "flags.ifc");
    assert!(reason.starts_with("Must be one of"), "{reason}");
    for ifc in ["V", "W", "N", "X"] {
        assert!(check(&set(mandatory(today()), "/flags/ifc", json!(ifc))).is_ok(), "{ifc}");
    }
}

#[test]
fn dates_must_exist_in_iso_form() {
    for pointer in [
        "/admission/admissionDate",
        "/admission/accidentDate",
        "/admission/dischargeDate",
        "/items/0/date",
        "/patient/dateOfBirth",
    ] {
        let name = name_of(pointer);
        for bad in ["2021-02-30", "2021-13-01", "24/04/1951", "2021-5-3", "2021-05-03T00:00:00Z", "yesterday"] {
            let body = set(optional(today()), pointer, json!(bad));
            assert_eq!(reason_for(&body, &name), "Must be a date that exists, as YYYY-MM-DD.", "{name} = {bad}");
        }
    }
    assert!(check(&set(mandatory(today()), "/patient/dateOfBirth", json!("2024-02-29"))).is_ok());
}

#[test]
fn date_of_birth_is_not_in_the_future() {
    let tomorrow = (today() + TimeDelta::days(1)).format("%Y-%m-%d").to_string();
    let body = set(mandatory(today()), "/patient/dateOfBirth", json!(tomorrow));
    assert_eq!(reason_for(&body, "patient.dateOfBirth"), "Must not be in the future.");
    let born_today = today().format("%Y-%m-%d").to_string();
    assert!(check(&set(mandatory(today()), "/patient/dateOfBirth", json!(born_today))).is_ok());
}

#[test]
fn today_is_the_date_in_sydney() {
    // 14:30 UTC on 22 November is already 23 November in Sydney (UTC+11 in daylight time).
    let clock = shared::time::FixedClock(
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 22, 14, 30, 0).single().expect("valid"),
    );
    let sydney_today = support::today(&clock);
    assert_eq!(sydney_today, today());
    let body = set(mandatory(today()), "/patient/dateOfBirth", json!("2026-11-23"));
    assert!(validate_check(Some(LOCATION), body.to_string().as_bytes(), sydney_today).is_ok());
}

#[test]
fn discharge_is_not_before_admission() {
    let admitted = today() - TimeDelta::days(4);
    let before = (admitted - TimeDelta::days(1)).format("%Y-%m-%d").to_string();
    let body = set(optional(today()), "/admission/dischargeDate", json!(before));
    assert_eq!(reason_for(&body, "admission.dischargeDate"), "Must not be before admission.admissionDate.");
    let same = admitted.format("%Y-%m-%d").to_string();
    assert!(check(&set(optional(today()), "/admission/dischargeDate", json!(same))).is_ok());
}

#[test]
fn amounts_are_strings_with_at_most_two_decimals() {
    for pointer in ["/items/0/chargeAmount", "/items/0/serviceRate"] {
        let name = name_of(pointer);
        for bad in [json!("144.400"), json!("-1.00"), json!("1,000.00"), json!(144.40), json!(1000)] {
            let reason = reason_for(&set(mandatory(today()), pointer, bad.clone()), &name);
            assert!(
                reason.starts_with("Must be an amount in dollars with at most 2 decimals"),
                "{name} = {bad}: {reason}"
            );
        }
        for good in ["0.00", "144", "144.4"] {
            assert!(check(&set(mandatory(today()), pointer, json!(good))).is_ok(), "{good}");
        }
    }
}

#[test]
fn service_code_type_is_p_or_m_and_then_needs_quantity_and_rate() {
    assert!(check(&set(mandatory(today()), "/items/0/serviceCodeType", json!("M"))).is_ok());
    let reason =
        reason_for(&set(mandatory(today()), "/items/0/serviceCodeType", json!("X")), "items[0].serviceCodeType");
    assert_eq!(reason, "Must be one of \"P\" or \"M\".");
    for field in ["serviceQuantity", "serviceRate"] {
        let body = remove(mandatory(today()), &format!("/items/0/{field}"));
        assert_eq!(reason_for(&body, &format!("items[0].{field}")), "Required when serviceCodeType is \"P\" or \"M\".");
    }
    for bad in [json!("0"), json!("1.5"), json!("-1"), json!("10000"), json!(1), json!("one")] {
        let reason =
            reason_for(&set(mandatory(today()), "/items/0/serviceQuantity", bad.clone()), "items[0].serviceQuantity");
        assert!(reason.starts_with("Must be a whole number"), "{bad}: {reason}");
    }
}

#[test]
fn one_to_fifty_items() {
    let item = mandatory(today())["items"][0].clone();
    assert_eq!(reason_for(&set(mandatory(today()), "/items", json!([])), "items"), "At least one item is required.");
    let fifty = Value::Array(vec![item.clone(); 50]);
    assert_eq!(check(&set(mandatory(today()), "/items", fifty)).map(|r| r.items.len()).ok(), Some(50));
    let fifty_one = Value::Array(vec![item.clone(); 51]);
    let reason = reason_for(&set(mandatory(today()), "/items", fifty_one), "items");
    assert!(reason.starts_with("At most 50 items"), "{reason}");
    assert_eq!(reason_for(&set(mandatory(today()), "/items", item), "items"), "Must be an array of 1 to 50 items.");
    let body = set(mandatory(today()), "/items", json!([mandatory(today())["items"][0].clone(), "EG009"]));
    assert_eq!(reason_for(&body, "items[1]"), "Must be a JSON object.");
}

#[test]
fn problems_in_later_items_name_their_index() {
    let mut second = mandatory(today())["items"][0].clone();
    second["serviceRate"] = json!("12.505");
    let body = set(mandatory(today()), "/items", json!([mandatory(today())["items"][0].clone(), second]));
    assert_eq!(problems(&body).iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["items[1].serviceRate"]);
}

#[test]
fn provider_number_needs_a_valid_check_character() {
    assert!(check(&set(mandatory(today()), "/location/provider", json!("2433411Y"))).is_ok());
    let reason = reason_for(&set(mandatory(today()), "/location/provider", json!("9988770X")), "location.provider");
    assert!(reason.contains("check character does not match"), "{reason}");
    for bad in ["998877", "9988770w", "99887700W", "ABCDEF0W", "998877IW"] {
        let reason = reason_for(&set(mandatory(today()), "/location/provider", json!(bad)), "location.provider");
        assert!(reason.starts_with("Must be a Medicare provider number"), "{bad}: {reason}");
    }
}

#[test]
fn location_type_gender_and_fund() {
    let reason = reason_for(&set(mandatory(today()), "/location/type", json!("Z")), "location.type");
    assert!(reason.starts_with("Must be one of"), "{reason}");
    let reason = reason_for(&set(mandatory(today()), "/patient/gender", json!("female")), "patient.gender");
    assert!(reason.starts_with("Must be one of"), "{reason}");
    for bad in ["tst", "TS", "TSTX", "T-T"] {
        let reason =
            reason_for(&set(mandatory(today()), "/patient/fund/eclipseId", json!(bad)), "patient.fund.eclipseId");
        assert!(reason.contains("ECLIPSE id"), "{bad}: {reason}");
    }
    for bad in ["4545-454", "45454545454545454545", "45 45"] {
        let reason = reason_for(&set(mandatory(today()), "/patient/fund/number", json!(bad)), "patient.fund.number");
        assert!(reason.contains("membership number"), "{bad}: {reason}");
    }
    let long_name = "A".repeat(41);
    let reason = reason_for(&set(mandatory(today()), "/patient/name/family", json!(long_name)), "patient.name.family");
    assert!(reason.starts_with("Must be at most 40 characters"), "{reason}");
}

#[test]
fn an_accident_needs_its_date() {
    let body = set(mandatory(today()), "/flags/isAccident", json!("Y"));
    assert_eq!(reason_for(&body, "admission.accidentDate"), "Required when flags.isAccident is \"Y\".");
    let date = (today() - TimeDelta::days(28)).format("%Y-%m-%d").to_string();
    let mut with_date = body;
    with_date["admission"]["accidentDate"] = json!(date);
    assert!(check(&with_date).is_ok());
    let no_date = remove(optional(today()), "/admission/accidentDate");
    assert_eq!(reason_for(&no_date, "admission.accidentDate"), "Required when flags.isAccident is \"Y\".");
}

#[test]
fn an_overnight_stay_needs_a_discharge_date_or_length_of_stay() {
    let body = set(mandatory(today()), "/admission/sameDay", json!("N"));
    let reason = reason_for(&body, "admission.dischargeDate");
    assert_eq!(reason, "Required, or admission.lengthOfStay, when admission.sameDay is \"N\".");
    let mut with_length = body;
    with_length["admission"]["lengthOfStay"] = json!("3");
    assert!(check(&with_length).is_ok());
    let only_discharge = remove(optional(today()), "/admission/lengthOfStay");
    assert!(check(&only_discharge).is_ok());
    let only_length = remove(optional(today()), "/admission/dischargeDate");
    assert!(check(&only_length).is_ok());
    let neither = remove(only_length, "/admission/lengthOfStay");
    assert!(reason_for(&neither, "admission.dischargeDate").starts_with("Required"));
    let zero = set(optional(today()), "/admission/lengthOfStay", json!("0"));
    assert!(reason_for(&zero, "admission.lengthOfStay").starts_with("Must be a whole number"));
}

#[test]
fn optional_contact_is_checked_when_present() {
    let reason = reason_for(&set(optional(today()), "/contact/email", json!("steve")), "contact.email");
    assert!(reason.starts_with("Must be an email address"), "{reason}");
    let reason = reason_for(&set(optional(today()), "/contact/phone", json!("call me")), "contact.phone");
    assert!(reason.starts_with("Must be a phone number"), "{reason}");
    assert!(check(&remove(optional(today()), "/contact")).is_ok());
    assert!(check(&remove(optional(today()), "/patient/alias")).is_ok());
}

#[test]
fn the_location_query_parameter_is_required_and_plain() {
    let body = mandatory(today()).to_string();
    for location in [None, Some(""), Some("  ")] {
        let error = validate_check(location, body.as_bytes(), today()).expect_err("refused");
        assert_eq!(error.invalid_params.len(), 1);
        assert_eq!(error.invalid_params[0].name, "location");
        assert!(error.invalid_params[0].reason.contains("query parameter"));
    }
    let error = validate_check(Some("25&x=1"), body.as_bytes(), today()).expect_err("refused");
    assert_eq!(error.invalid_params[0].name, "location");
}

#[test]
fn bodies_that_are_not_json_objects() {
    for (body, reason_start) in [
        ("", "The ECF request body is required."),
        ("{\"type\":", "Must be a JSON object (invalid JSON"),
        ("[]", "Must be a JSON object."),
    ] {
        let error = validate_check(Some(LOCATION), body.as_bytes(), today()).expect_err("refused");
        assert_eq!(error.invalid_params[0].name, "body");
        assert!(error.invalid_params[0].reason.starts_with(reason_start), "{body:?}: {:?}", error.invalid_params);
    }
}

#[test]
fn every_problem_is_listed_at_once() {
    let mut body = mandatory(today());
    body["flags"]["isAccident"] = json!("Y");
    body["admission"]["sameDay"] = json!("N");
    body["items"][0]["serviceRate"] = json!("1000.001");
    body["location"]["provider"] = json!("9988770X");
    body["patient"]["gender"] = json!("Q");
    body["patient"]["fund"].as_object_mut().expect("object").remove("number");
    let error = validate_check(None, body.to_string().as_bytes(), today()).expect_err("refused");
    let mut names: Vec<&str> = error.invalid_params.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "admission.accidentDate",
            "admission.dischargeDate",
            "items[0].serviceRate",
            "location",
            "location.provider",
            "patient.fund.number",
            "patient.gender",
        ]
    );
    assert_eq!(error.kind.as_deref(), Some(shared::api_error::VALIDATION_ERROR_TYPE));
}

#[test]
fn unknown_fields_are_not_forwarded() {
    let mut body = mandatory(today());
    body["extra"] = json!("dropped");
    body["patient"]["medicare"] = json!({"number": "2123456701"});
    let request = check(&body).expect("valid");
    assert_eq!(serde_json::to_value(&request).expect("serializes"), mandatory(today()));
}

#[test]
fn patient_details_are_redacted_in_debug_output() {
    let request = check(&optional(today())).expect("valid");
    let debug = format!("{request:?}");
    for secret in ["POST", "Jamee", "1951-04-24", "4545454", "McName", "steve@email.co", "0414 456 789"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

// Through the handler: the HTTP shape, and nothing leaves.

#[tokio::test]
async fn no_caller_is_401_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    let (app, _) = app(&server.uri(), clock.clone()).await;
    let body = mandatory(support::today(clock.as_ref())).to_string();
    let response = app.handle(request(None, Some(LOCATION), &body)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(json_body(response).await["title"], "Authentication is required.");
    assert!(server.received_requests().await.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn invalid_checks_are_400_with_the_api_error_payload_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let clock = SteppingClock::new(Utc::now());
    let (app, table) = app(&server.uri(), clock.clone()).await;
    let mut body = mandatory(support::today(clock.as_ref()));
    body["items"][0]["serviceRate"] = json!("1000.001");
    let response = app.handle(request(Some(CALLER), None, &body.to_string())).await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().contains_key(eligibility_check::CHECK_ID_HEADER));
    let error = json_body(response).await;
    assert_eq!(error["type"], shared::api_error::VALIDATION_ERROR_TYPE);
    assert_eq!(error["title"], "Your request parameters didn't validate.");
    assert_eq!(invalid_names(&error), ["location", "items[0].serviceRate"]);
    assert!(error["invalidParams"][1]["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(server.received_requests().await.unwrap_or_default().is_empty());
    use shared::store::ItemQuery;
    assert!(table.query("eligibility", "").await.expect("query").is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let server = MockServer::start().await;
    let (app, _) = app(&server.uri(), SteppingClock::new(Utc::now())).await;
    let body = format!("{{\"padding\":\"{}\"}}", "x".repeat(eligibility_check::MAX_BODY_BYTES));
    let response = app.handle(request(Some(CALLER), Some(LOCATION), &body)).await;
    assert_eq!(response.status(), 413);
}
