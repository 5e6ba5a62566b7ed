//! The initial notification of injury (SIRA, Workers compensation guidelines, Part 1): our request
//! shape, stable for clients
//! and events, and its validation. Every missing or malformed field is named with its path in one
//! API Error Payload; dates must exist and not be in the future in Australia/Sydney.

use super::fields::{self, Object, join, object};
use crate::api_error::{ApiError, Problems};
use crate::time::{NEW_SOUTH_WALES, today_in};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const NAME_CHARS: usize = 100;
const SHORT_CHARS: usize = 200;
const NARRATIVE_CHARS: usize = 4000;
const PHONE_CHARS: usize = 30;
const EMAIL_CHARS: usize = 254;
const MAX_ADDRESS_LINES: usize = 4;
pub const STATES: [&str; 8] = ["NSW", "VIC", "QLD", "SA", "WA", "TAS", "NT", "ACT"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitialNotification {
    pub policy_id: String,
    pub worker: Worker,
    pub employer: Employer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treating_doctor: Option<TreatingDoctor>,
    pub injury: Injury,
    pub notifier: Notifier,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    pub given_name: String,
    pub family_name: String,
    pub phone: String,
    pub postal_address: PostalAddress,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostalAddress {
    pub lines: Vec<String>,
    pub city: String,
    pub postcode: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Employer {
    pub business_name: String,
    pub contact_name: String,
    pub phone: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreatingDoctor {
    pub name: String,
    pub practice: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Incapacity {
    #[default]
    None,
    Partial,
    Total,
}

impl Incapacity {
    pub fn as_str(self) -> &'static str {
        match self {
            Incapacity::None => "none",
            Incapacity::Partial => "partial",
            Incapacity::Total => "total",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Injury {
    pub date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<NaiveDate>,
    /// `HH:MM`, 24-hour, NSW local time.
    pub time: String,
    pub how_it_happened: String,
    pub description: String,
    pub treatment_required: bool,
    pub incapacity: Incapacity,
    pub loss_of_income: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notifier {
    pub name: String,
    pub relationship: String,
    pub phone: String,
    pub email: String,
}

fn phone(problems: &mut Problems, object: &Object, prefix: &str, name: &str) -> Option<String> {
    let value = fields::text(problems, object, prefix, name, PHONE_CHARS)?;
    if fields::is_phone(&value) {
        Some(value)
    } else {
        problems.push(join(prefix, name), "must be a phone number: 6 to 15 digits, with spaces, '+', '-', '(' or ')'");
        None
    }
}

fn email(problems: &mut Problems, object: &Object, prefix: &str, name: &str) -> Option<String> {
    let value = fields::text(problems, object, prefix, name, EMAIL_CHARS)?;
    if fields::is_email(&value) {
        Some(value)
    } else {
        problems.push(join(prefix, name), "must be an email address");
        None
    }
}

/// A `YYYY-MM-DD` calendar date that is not after `today`.
fn read_date(problems: &mut Problems, value: Option<&Value>, path: &str, today: NaiveDate) -> Option<NaiveDate> {
    let text = fields::text_value(problems, value, path, 10)?;
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes.iter().enumerate().all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shaped {
        problems.push(path, "must be a date in the form YYYY-MM-DD");
        return None;
    }
    let Ok(date) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") else {
        problems.push(path, "is not a calendar date");
        return None;
    };
    if date > today {
        problems.push(path, format!("must not be in the future (today in NSW is {today})"));
        return None;
    }
    Some(date)
}

fn read_time(problems: &mut Problems, object: &Object, path: &str) -> Option<NaiveTime> {
    let text = fields::text_value(problems, object.get("time"), path, 5)?;
    let bytes = text.as_bytes();
    let shaped =
        bytes.len() == 5 && bytes[2] == b':' && bytes.iter().enumerate().all(|(i, b)| i == 2 || b.is_ascii_digit());
    match NaiveTime::parse_from_str(&text, "%H:%M") {
        Ok(time) if shaped => Some(time),
        _ => {
            problems.push(path, "must be a time in the form HH:MM (24-hour)");
            None
        }
    }
}

fn worker(problems: &mut Problems, body: &Object) -> Option<Worker> {
    let object = object(problems, body.get("worker"), "worker", true)?;
    let p = "worker";
    let given_name = fields::text(problems, object, p, "givenName", NAME_CHARS);
    let family_name = fields::text(problems, object, p, "familyName", NAME_CHARS);
    let phone = phone(problems, object, p, "phone");
    let postal_address = postal_address(problems, object);
    Some(Worker { given_name: given_name?, family_name: family_name?, phone: phone?, postal_address: postal_address? })
}

fn postal_address(problems: &mut Problems, worker: &Object) -> Option<PostalAddress> {
    let p = "worker.postalAddress";
    let object = object(problems, worker.get("postalAddress"), p, true)?;
    let lines_path = join(p, "lines");
    let lines = match object.get("lines") {
        None | Some(Value::Null) => {
            problems.push(&lines_path, "is required");
            None
        }
        Some(Value::Array(items)) if items.is_empty() => {
            problems.push(&lines_path, "must have at least one line");
            None
        }
        Some(Value::Array(items)) if items.len() > MAX_ADDRESS_LINES => {
            problems.push(&lines_path, format!("must have at most {MAX_ADDRESS_LINES} lines"));
            None
        }
        Some(Value::Array(items)) => {
            let lines: Vec<Option<String>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| fields::text_value(problems, Some(item), &format!("{lines_path}[{i}]"), SHORT_CHARS))
                .collect();
            lines.into_iter().collect::<Option<Vec<_>>>()
        }
        Some(_) => {
            problems.push(&lines_path, "must be an array of strings");
            None
        }
    };
    let city = fields::text(problems, object, p, "city", NAME_CHARS);
    let postcode = fields::text(problems, object, p, "postcode", 4).and_then(|code| {
        if code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()) {
            Some(code)
        } else {
            problems.push(join(p, "postcode"), "must be a 4-digit postcode");
            None
        }
    });
    let state_path = join(p, "state");
    let state = match object.get("state") {
        Some(Value::String(text)) => {
            let upper = text.trim().to_ascii_uppercase();
            if STATES.contains(&upper.as_str()) {
                Some(upper)
            } else {
                problems.push(&state_path, format!("must be one of {}", STATES.join(", ")));
                None
            }
        }
        other => fields::text_value(problems, other, &state_path, 3),
    };
    Some(PostalAddress { lines: lines?, city: city?, postcode: postcode?, state: state? })
}

fn employer(problems: &mut Problems, body: &Object) -> Option<Employer> {
    let object = object(problems, body.get("employer"), "employer", true)?;
    let p = "employer";
    let business_name = fields::text(problems, object, p, "businessName", SHORT_CHARS);
    let contact_name = fields::text(problems, object, p, "contactName", NAME_CHARS);
    let phone = phone(problems, object, p, "phone");
    let email = email(problems, object, p, "email");
    Some(Employer { business_name: business_name?, contact_name: contact_name?, phone: phone?, email: email? })
}

/// `Ok(None)` when no treating doctor is given; `Err(())` when one is given but invalid.
fn treating_doctor(problems: &mut Problems, body: &Object) -> Result<Option<TreatingDoctor>, ()> {
    let p = "treatingDoctor";
    if body.get(p).is_none_or(Value::is_null) {
        return Ok(None);
    }
    let object = object(problems, body.get(p), p, false).ok_or(())?;
    let name = fields::text(problems, object, p, "name", NAME_CHARS);
    let practice = fields::text(problems, object, p, "practice", SHORT_CHARS);
    match (name, practice) {
        (Some(name), Some(practice)) => Ok(Some(TreatingDoctor { name, practice })),
        _ => Err(()),
    }
}

fn injury(problems: &mut Problems, body: &Object, now: DateTime<Utc>) -> Option<Injury> {
    let p = "injury";
    let object = object(problems, body.get(p), p, true)?;
    let today = today_in(NEW_SOUTH_WALES, now);
    let date = read_date(problems, object.get("date"), "injury.date", today);
    let period_end = match object.get("periodEnd") {
        None | Some(Value::Null) => Ok(None),
        value => match read_date(problems, value, "injury.periodEnd", today) {
            Some(end) if date.is_some_and(|start| end < start) => {
                problems.push("injury.periodEnd", "must be on or after injury.date");
                Err(())
            }
            Some(end) => Ok(Some(end)),
            None => Err(()),
        },
    };
    let time = read_time(problems, object, "injury.time");
    if let (Some(date), Some(time)) = (date, time) {
        let local_now = now.with_timezone(&NEW_SOUTH_WALES).time();
        if date == today && time > local_now {
            problems.push("injury.time", "must not be in the future (NSW time)");
        }
    }
    let how_it_happened = fields::text(problems, object, p, "howItHappened", NARRATIVE_CHARS);
    let description = fields::text(problems, object, p, "description", NARRATIVE_CHARS);
    let treatment_required = fields::boolean(problems, object, p, "treatmentRequired");
    let incapacity = match object.get("incapacity") {
        Some(Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
            "none" => Some(Incapacity::None),
            "partial" => Some(Incapacity::Partial),
            "total" => Some(Incapacity::Total),
            _ => {
                problems.push("injury.incapacity", "must be one of none, partial, total");
                None
            }
        },
        other => {
            // Missing, null or not a string: let the text reader name it.
            fields::text_value(problems, other, "injury.incapacity", 10);
            None
        }
    };
    let loss_of_income = fields::boolean(problems, object, p, "lossOfIncome");
    Some(Injury {
        date: date?,
        period_end: period_end.ok()?,
        time: time?.format("%H:%M").to_string(),
        how_it_happened: how_it_happened?,
        description: description?,
        treatment_required: treatment_required?,
        incapacity: incapacity?,
        loss_of_income: loss_of_income?,
    })
}

fn notifier(problems: &mut Problems, body: &Object) -> Option<Notifier> {
    let p = "notifier";
    let object = object(problems, body.get(p), p, true)?;
    let name = fields::text(problems, object, p, "name", NAME_CHARS);
    let relationship = fields::text(problems, object, p, "relationship", NAME_CHARS);
    let phone = phone(problems, object, p, "phone");
    let email = email(problems, object, p, "email");
    Some(Notifier { name: name?, relationship: relationship?, phone: phone?, email: email? })
}

/// Reads the body of `POST /icare/notifications`. `problems` may already hold problems found
/// elsewhere in the request (a missing `Idempotency-Key`), so one answer names them all.
pub fn validate_notification(
    body: &Value,
    now: DateTime<Utc>,
    mut problems: Problems,
) -> Result<InitialNotification, ApiError> {
    let Some(object) = object(&mut problems, Some(body), "body", true) else {
        return Err(ApiError::validation(problems.into_vec()));
    };
    let policy_id = fields::text(&mut problems, object, "", "policyId", 64);
    let worker = worker(&mut problems, object);
    let employer = employer(&mut problems, object);
    let treating_doctor = treating_doctor(&mut problems, object);
    let injury = injury(&mut problems, object, now);
    let notifier = notifier(&mut problems, object);
    match (policy_id, worker, employer, treating_doctor, injury, notifier) {
        (Some(policy_id), Some(worker), Some(employer), Ok(treating_doctor), Some(injury), Some(notifier))
            if problems.is_empty() =>
        {
            Ok(InitialNotification { policy_id, worker, employer, treating_doctor, injury, notifier })
        }
        _ if problems.is_empty() => Err(ApiError::validation(vec![crate::api_error::InvalidParam::new(
            "body",
            "is not a valid initial notification",
        )])),
        _ => Err(ApiError::validation(problems.into_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    /// 2026-03-10 09:00 in Sydney (daylight time, UTC+11).
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 9, 22, 0, 0).single().expect("valid instant")
    }

    pub(crate) fn example() -> Value {
        json!({
            "policyId": "nsw-1",
            "worker": {"givenName": "Alex", "familyName": "Citizen", "phone": "0400 000 000",
                "postalAddress": {"lines": ["1 George St"], "city": "Sydney", "postcode": "2000", "state": "NSW"}},
            "employer": {"businessName": "Acme Pty Ltd", "contactName": "Sam Boss", "phone": "02 9999 9999", "email": "sam@acme.example"},
            "treatingDoctor": {"name": "Dr Who", "practice": "City Clinic"},
            "injury": {"date": "2026-03-09", "periodEnd": "2026-03-10", "time": "14:30", "howItHappened": "Lifting a box",
                "description": "Lower back strain", "treatmentRequired": true, "incapacity": "partial", "lossOfIncome": false},
            "notifier": {"name": "Sam Boss", "relationship": "Supervisor", "phone": "02 9999 9999", "email": "sam@acme.example"}
        })
    }

    fn names(body: &Value) -> Vec<String> {
        validate_notification(body, now(), Problems::new())
            .expect_err("invalid")
            .invalid_params
            .into_iter()
            .map(|p| p.name)
            .collect()
    }

    #[test]
    fn the_example_is_valid_and_optional_parts_may_go() {
        let parsed = validate_notification(&example(), now(), Problems::new()).expect("valid");
        assert_eq!(parsed.injury.incapacity, Incapacity::Partial);
        let mut body = example();
        body.as_object_mut().expect("object").remove("treatingDoctor");
        body["injury"].as_object_mut().expect("object").remove("periodEnd");
        let parsed = validate_notification(&body, now(), Problems::new()).expect("valid");
        assert!(parsed.treating_doctor.is_none() && parsed.injury.period_end.is_none());
    }

    #[test]
    fn every_required_field_is_named_when_missing() {
        let required = [
            "policyId",
            "worker",
            "worker.givenName",
            "worker.familyName",
            "worker.phone",
            "worker.postalAddress",
            "worker.postalAddress.lines",
            "worker.postalAddress.city",
            "worker.postalAddress.postcode",
            "worker.postalAddress.state",
            "employer",
            "employer.businessName",
            "employer.contactName",
            "employer.phone",
            "employer.email",
            "injury",
            "injury.date",
            "injury.time",
            "injury.howItHappened",
            "injury.description",
            "injury.treatmentRequired",
            "injury.incapacity",
            "injury.lossOfIncome",
            "notifier",
            "notifier.name",
            "notifier.relationship",
            "notifier.phone",
            "notifier.email",
        ];
        for path in required {
            let mut body = example();
            let (parent, leaf) = path.rsplit_once('.').map_or((None, path), |(p, l)| (Some(p), l));
            let target = match parent {
                None => &mut body,
                Some(parent) => parent.split('.').fold(&mut body, |v, k| &mut v[k]),
            };
            target.as_object_mut().expect("object").remove(leaf);
            assert_eq!(names(&body), [path], "removing {path}");
        }
    }

    #[test]
    fn all_problems_come_back_in_one_answer() {
        let mut body = example();
        body["worker"]["familyName"] = json!("  ");
        body["worker"]["postalAddress"]["lines"] = json!(["ok", 5]);
        body["injury"]["date"] = json!("2026-02-30");
        body["injury"]["incapacity"] = json!("some");
        body["employer"]["email"] = json!("nope");
        assert_eq!(
            names(&body),
            [
                "worker.familyName",
                "worker.postalAddress.lines[1]",
                "employer.email",
                "injury.date",
                "injury.incapacity"
            ]
        );
    }

    #[test]
    fn dates_must_exist_and_not_be_in_the_future_in_sydney() {
        // 22:00 UTC on 9 March is already 10 March in Sydney: today there, not the future.
        let mut body = example();
        body["injury"]["date"] = json!("2026-03-10");
        body["injury"]["periodEnd"] = json!(null);
        body["injury"]["time"] = json!("08:59");
        validate_notification(&body, now(), Problems::new()).expect("today in Sydney is fine");
        body["injury"]["time"] = json!("09:01");
        assert_eq!(names(&body), ["injury.time"]);
        body["injury"]["time"] = json!("08:00");
        body["injury"]["date"] = json!("2026-03-11");
        assert_eq!(names(&body), ["injury.date"]);
        body["injury"]["date"] = json!("2026-03-09");
        body["injury"]["periodEnd"] = json!("2026-03-08");
        assert_eq!(names(&body), ["injury.periodEnd"]);
        body["injury"]["periodEnd"] = json!("10/03/2026");
        assert_eq!(names(&body), ["injury.periodEnd"]);
        body["injury"]["periodEnd"] = json!(null);
        body["injury"]["time"] = json!("24:00");
        assert_eq!(names(&body), ["injury.time"]);
    }

    #[test]
    fn earlier_problems_are_kept() {
        let mut problems = Problems::new();
        problems.push("Idempotency-Key", "is required");
        let error = validate_notification(&example(), now(), problems).expect_err("invalid");
        assert_eq!(error.invalid_params.len(), 1);
        let error = validate_notification(&json!([1]), now(), Problems::new()).expect_err("invalid");
        assert_eq!(error.invalid_params[0].name, "body");
    }
}
