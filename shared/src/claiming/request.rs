//! The ECF request (`POST /v2/eligibility?location=...`, `flags.oecTypeCode` "ECF"), validated
//! before anything leaves: [`validate_check`] turns the caller's JSON into an [`EcfRequest`] or
//! lists every problem at once, with names such as `items[0].serviceRate`.
//!
//! The validated types serialize to exactly the wire form of the spec: Y/N strings, amounts as
//! strings with 2 decimals (`"144.40"`; `"144"` and `"144.4"` are read and sent as `"144.00"`, `"144.40"`), counts as strings (`"1"`), dates as `YYYY-MM-DD`.
//!
//! Rules (the spec's "Mandatory elements" example is mandatory; the "Optional elements" are
//! checked when present):
//! - `type` is `OEC` and `flags.oecTypeCode` is `ECF`;
//! - Y/N flags are the strings `"Y"` or `"N"`; `flags.ifc` is one of [`IFC_CODES`];
//! - dates are `YYYY-MM-DD` and exist; the patient's date of birth is not after today (in Sydney);
//!   a discharge date is not before the admission date;
//! - 1 to [`MAX_ITEMS`] items; `serviceCodeType` is `P` or `M`, which need `serviceQuantity` (a
//!   positive whole number as a string) and `serviceRate` (an amount); `chargeAmount` is an amount;
//! - `location.provider` is a Medicare provider number with a valid check character;
//!   `location.type` is one of [`LOCATION_TYPES`];
//! - `patient`: date of birth, `gender` (one of [`GENDER_CODES`]), `name.family`, `name.first`,
//!   `fund.eclipseId` and `fund.number`;
//! - `flags.isAccident` "Y" needs `admission.accidentDate`; `admission.sameDay` "N" needs
//!   `admission.dischargeDate` or `admission.lengthOfStay`;
//! - the `location` query parameter (the Claiming.com.au location id) is present.
//!
//! `null`, and an empty or blank string, count as absent. Values are checked exactly as given:
//! nothing is trimmed or upper-cased. Fields "Fund Eligibility (ECF)" does not name are not forwarded.
//!
//! Privacy: [`Patient`] and [`Contact`] have redacted `Debug` output and no `Display`.

use super::provider::ProviderNumber;
use crate::api_error::{ApiError, Problems};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// At most this many items in one check. *Unverified*: Claiming.com.au v2, "Fund Eligibility
/// (ECF)", states no limit.
pub const MAX_ITEMS: usize = 50;
/// Informed financial consent: V verbal, W written, N not issued, X not obtained.
/// *Unverified*: Claiming.com.au v2, "Fund Eligibility (ECF)", shows only `W`; these are the ECLIPSE IFC issue codes.
pub const IFC_CODES: [&str; 4] = ["V", "W", "N", "X"];
/// Patient gender codes. *Unverified*: the spec shows only `F`; these are Medicare's codes.
pub const GENDER_CODES: [&str; 4] = ["M", "F", "X", "I"];
/// `location.type`: H hospital, D day hospital facility. *Unverified*: the spec shows only `H`.
pub const LOCATION_TYPES: [&str; 2] = ["H", "D"];
/// `serviceCodeType`: P prostheses, M miscellaneous.
pub const SERVICE_CODE_TYPES: [&str; 2] = ["P", "M"];
/// The largest whole number accepted for `serviceQuantity` and `lengthOfStay`.
pub const MAX_COUNT: u32 = 9_999;
/// The most digits before the decimal point of an amount.
const MAX_AMOUNT_DIGITS: usize = 9;
/// Longest names (Medicare's limit for family and first names).
pub const MAX_NAME_CHARS: usize = 40;
const MAX_TEXT_CHARS: usize = 100;
const MAX_CODE_CHARS: usize = 10;
const MAX_MEMBER_NUMBER_CHARS: usize = 19;
const MAX_LOCATION_ID_CHARS: usize = 64;

/// Reasons, shared by every field of a kind.
pub mod reasons {
    pub const REQUIRED: &str = "Required.";
    pub const STRING: &str = "Must be a string.";
    pub const OBJECT: &str = "Must be a JSON object.";
    pub const YES_NO: &str = "Must be \"Y\" or \"N\".";
    pub const DATE: &str = "Must be a date that exists, as YYYY-MM-DD.";
    pub const AMOUNT: &str = "Must be an amount in dollars with at most 2 decimals, as a string such as \"144.40\".";
    pub const COUNT: &str = "Must be a whole number from 1 to 9999, as a string such as \"1\".";
    pub const CODE: &str = "Must be 1 to 10 letters and digits.";
    pub const DATE_OF_BIRTH_IN_FUTURE: &str = "Must not be in the future.";
    pub const LOCATION_QUERY: &str =
        "The `location` query parameter (the Claiming.com.au location id: letters, digits, '-' or '_') is required.";
    pub const LOCATION_QUERY_INVALID: &str =
        "The `location` query parameter must be 1 to 64 letters, digits, '-' or '_'.";
}

/// A Y/N indicator, `"Y"` or `"N"` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum YesNo {
    Yes,
    No,
}

impl YesNo {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "Y" => Some(YesNo::Yes),
            "N" => Some(YesNo::No),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            YesNo::Yes => "Y",
            YesNo::No => "N",
        }
    }
    pub fn is_yes(self) -> bool {
        self == YesNo::Yes
    }
}

impl Serialize for YesNo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An amount in dollars, never negative, sent with exactly 2 decimals: `"144.40"` on the wire.
/// Read as 1 to 9 digits with up to 2 decimals (`"144"`, `"144.4"`, `"144.40"`): the spec's
/// examples all have two, but it states no rule, and the fund reads the value, not its form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Amount(Decimal);

impl Amount {
    pub fn parse(value: &str) -> Option<Self> {
        let (whole, cents) = value.split_once('.').unwrap_or((value, "00"));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || whole.len() > MAX_AMOUNT_DIGITS
            || !(1..=2).contains(&cents.len())
            || !digits(whole)
            || !digits(cents)
        {
            return None;
        }
        Decimal::from_str(value).ok().map(Self)
    }
    pub fn value(self) -> Decimal {
        self.0
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = self.0;
        value.rescale(2);
        serializer.collect_str(&value)
    }
}

/// A whole number from 1 to [`MAX_COUNT`]; `"1"` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Count(u32);

impl Count {
    pub fn parse(value: &str) -> Option<Self> {
        if value.is_empty() || value.len() > 4 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = value.parse().ok()?;
        (1..=MAX_COUNT).contains(&n).then_some(Self(n))
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// `YYYY-MM-DD`, exactly 10 characters, a date that exists.
pub fn parse_date(value: &str) -> Option<NaiveDate> {
    let b = value.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
}

/// The Claiming.com.au location id of the `location` query parameter (e.g. `25`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocationId(String);

impl LocationId {
    pub fn parse(value: &str) -> Option<Self> {
        let ok = (1..=MAX_LOCATION_ID_CHARS).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The validated ECF request, serialized exactly as Claiming.com.au expects it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EcfRequest {
    /// Always `OEC`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub flags: Flags,
    pub admission: Admission,
    pub items: Vec<Item>,
    pub location: Location,
    pub patient: Patient,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flags {
    pub account_paid: YesNo,
    pub compensation_claim: YesNo,
    pub financial_interest_disclosure_ind: YesNo,
    pub ifc: String,
    pub is_accident: YesNo,
    /// Always `ECF`.
    pub oec_type_code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Admission {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accident_date: Option<NaiveDate>,
    pub admission_date: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discharge_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emergency_admission: Option<YesNo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length_of_stay: Option<Count>,
    pub pre_existing_ailment_ind: YesNo,
    pub presenting_illness_item_number: String,
    pub same_day: YesNo,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub charge_amount: Amount,
    pub date: NaiveDate,
    pub service_code: String,
    /// `P` (prostheses) or `M` (miscellaneous).
    pub service_code_type: String,
    pub service_quantity: Count,
    pub service_rate: Amount,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub name: String,
    pub provider: ProviderNumber,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub date_of_birth: NaiveDate,
    pub gender: String,
    pub name: PersonName,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
    pub fund: Fund,
}

impl fmt::Debug for Patient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Patient").field("fund", &self.fund.eclipse_id).finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Serialize)]
pub struct PersonName {
    pub family: String,
    pub first: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second: Option<String>,
}

#[derive(Clone, PartialEq, Serialize)]
pub struct Alias {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
}

#[derive(Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fund {
    /// The fund's ECLIPSE brand id, e.g. `TST`.
    pub eclipse_id: String,
    /// The patient's membership number: health information, never logged.
    pub number: String,
}

#[derive(Clone, PartialEq, Serialize)]
pub struct Contact {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Contact { .. }")
    }
}

/// Validates a whole check: the `location` query parameter and the body, every problem at once.
pub fn validate_check(
    location: Option<&str>,
    body: &[u8],
    today: NaiveDate,
) -> Result<(LocationId, EcfRequest), ApiError> {
    let mut problems = Problems::new();
    let location = match location {
        None => {
            problems.push("location", reasons::LOCATION_QUERY);
            None
        }
        Some(value) if value.trim().is_empty() => {
            problems.push("location", reasons::LOCATION_QUERY);
            None
        }
        Some(value) => {
            let parsed = LocationId::parse(value);
            if parsed.is_none() {
                problems.push("location", reasons::LOCATION_QUERY_INVALID);
            }
            parsed
        }
    };
    let request = match serde_json::from_slice::<Value>(body) {
        _ if body.iter().all(u8::is_ascii_whitespace) => {
            problems.push("body", "The ECF request body is required.");
            None
        }
        Ok(value) => EcfRequest::validate(&value, today, &mut problems),
        Err(error) => {
            problems.push(
                "body",
                format!("Must be a JSON object (invalid JSON at line {}, column {}).", error.line(), error.column()),
            );
            None
        }
    };
    match (location, request) {
        (Some(location), Some(request)) if problems.is_empty() => Ok((location, request)),
        _ => Err(ApiError::validation(problems.into_vec())),
    }
}

impl EcfRequest {
    /// Validates `body`, adding every problem to `problems`. `Some` only when nothing was wrong
    /// with the body (other problems already in `problems` do not matter).
    pub fn validate(body: &Value, today: NaiveDate, problems: &mut Problems) -> Option<Self> {
        let Some(root) = body.as_object() else {
            problems.push("body", "Must be a JSON object.");
            return None;
        };
        let mut c = Checker { problems, found: 0 };
        c.constant(root, "", "type", "OEC");
        let flags = c.flags(root);
        let admission = c.admission(root, flags.as_ref());
        let items = c.items(root);
        let location = c.location(root);
        let patient = c.patient(root, today);
        let contact = c.contact(root);
        if c.found > 0 {
            return None;
        }
        Some(EcfRequest {
            kind: "OEC",
            flags: flags?.flags?,
            admission: admission?,
            items: items?,
            location: location?,
            patient: patient?,
            contact,
        })
    }

    /// The fund's ECLIPSE id, which can be logged and stored (it names a fund, not a person).
    pub fn fund_eclipse_id(&self) -> &str {
        &self.patient.fund.eclipse_id
    }
}

/// The flags as far as they parsed, for the rules that depend on them.
struct ParsedFlags {
    is_accident: Option<YesNo>,
    flags: Option<Flags>,
}

fn path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

/// The value under `key`, `None` when missing, `null`, or a blank string.
fn present<'a>(parent: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    match parent.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(value) => Some(value),
    }
}

struct Checker<'p> {
    problems: &'p mut Problems,
    /// Problems found by this checker.
    found: usize,
}

impl Checker<'_> {
    fn push(&mut self, name: String, reason: impl Into<String>) {
        self.found += 1;
        self.problems.push(name, reason);
    }

    /// A string field; reports "Required." when `required` and absent, "Must be a string." when
    /// of another type.
    fn string<'a>(
        &mut self,
        parent: &'a Map<String, Value>,
        prefix: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a str> {
        match present(parent, key) {
            None => {
                if required {
                    self.push(path(prefix, key), reasons::REQUIRED);
                }
                None
            }
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.push(path(prefix, key), reasons::STRING);
                None
            }
        }
    }

    fn object<'a>(
        &mut self,
        parent: &'a Map<String, Value>,
        prefix: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a Map<String, Value>> {
        match present(parent, key) {
            None => {
                if required {
                    self.push(path(prefix, key), reasons::REQUIRED);
                }
                None
            }
            Some(Value::Object(map)) => Some(map),
            Some(_) => {
                self.push(path(prefix, key), reasons::OBJECT);
                None
            }
        }
    }

    /// A string parsed by `parse`; `reason` when it does not parse.
    fn parsed<T>(
        &mut self,
        parent: &Map<String, Value>,
        prefix: &str,
        key: &str,
        required: bool,
        reason: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.string(parent, prefix, key, required)?;
        let parsed = parse(text);
        if parsed.is_none() {
            self.push(path(prefix, key), reason);
        }
        parsed
    }

    fn yes_no(&mut self, parent: &Map<String, Value>, prefix: &str, key: &str, required: bool) -> Option<YesNo> {
        self.parsed(parent, prefix, key, required, reasons::YES_NO, YesNo::parse)
    }

    fn date(&mut self, parent: &Map<String, Value>, prefix: &str, key: &str, required: bool) -> Option<NaiveDate> {
        self.parsed(parent, prefix, key, required, reasons::DATE, parse_date)
    }

    fn amount(&mut self, parent: &Map<String, Value>, prefix: &str, key: &str, required: bool) -> Option<Amount> {
        match present(parent, key) {
            // A JSON number is the response's form, not the request's: say what is wanted.
            Some(Value::Number(_)) => {
                self.push(path(prefix, key), reasons::AMOUNT);
                None
            }
            _ => self.parsed(parent, prefix, key, required, reasons::AMOUNT, Amount::parse),
        }
    }

    fn count(
        &mut self,
        parent: &Map<String, Value>,
        prefix: &str,
        key: &str,
        required: bool,
        required_reason: &str,
    ) -> Option<Count> {
        match present(parent, key) {
            None if required => {
                self.push(path(prefix, key), required_reason);
                None
            }
            Some(Value::Number(_)) => {
                self.push(path(prefix, key), reasons::COUNT);
                None
            }
            _ => self.parsed(parent, prefix, key, false, reasons::COUNT, Count::parse),
        }
    }

    fn one_of(
        &mut self,
        parent: &Map<String, Value>,
        prefix: &str,
        key: &str,
        required: bool,
        allowed: &[&str],
    ) -> Option<String> {
        let reason = format!("Must be one of {}.", quoted_list(allowed));
        self.parsed(parent, prefix, key, required, &reason, |s| allowed.contains(&s).then(|| s.to_owned()))
    }

    fn constant(&mut self, parent: &Map<String, Value>, prefix: &str, key: &str, expected: &str) {
        let reason = format!("Must be \"{expected}\".");
        self.parsed(parent, prefix, key, true, &reason, |s| (s == expected).then_some(()));
    }

    /// 1 to `max` characters, no control characters.
    fn text(
        &mut self,
        parent: &Map<String, Value>,
        prefix: &str,
        key: &str,
        required: bool,
        max: usize,
    ) -> Option<String> {
        let reason = format!("Must be at most {max} characters, without control characters.");
        self.parsed(parent, prefix, key, required, &reason, |s| {
            (s.chars().count() <= max && !s.chars().any(char::is_control)).then(|| s.to_owned())
        })
    }

    /// 1 to 10 ASCII letters and digits (item numbers, service codes).
    fn code(&mut self, parent: &Map<String, Value>, prefix: &str, key: &str) -> Option<String> {
        self.parsed(parent, prefix, key, true, reasons::CODE, |s| {
            (s.len() <= MAX_CODE_CHARS && s.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| s.to_owned())
        })
    }

    fn flags(&mut self, root: &Map<String, Value>) -> Option<ParsedFlags> {
        let p = "flags";
        let flags = self.object(root, "", p, true)?;
        let account_paid = self.yes_no(flags, p, "accountPaid", true);
        let compensation_claim = self.yes_no(flags, p, "compensationClaim", true);
        let disclosure = self.yes_no(flags, p, "financialInterestDisclosureInd", true);
        let ifc = self.one_of(flags, p, "ifc", true, &IFC_CODES);
        let is_accident = self.yes_no(flags, p, "isAccident", true);
        let before = self.found;
        self.constant(flags, p, "oecTypeCode", "ECF");
        let type_ok = self.found == before;
        let complete = (|| {
            Some(Flags {
                account_paid: account_paid?,
                compensation_claim: compensation_claim?,
                financial_interest_disclosure_ind: disclosure?,
                ifc: ifc?,
                is_accident: is_accident?,
                oec_type_code: type_ok.then_some("ECF")?,
            })
        })();
        Some(ParsedFlags { is_accident, flags: complete })
    }

    fn admission(&mut self, root: &Map<String, Value>, flags: Option<&ParsedFlags>) -> Option<Admission> {
        let p = "admission";
        let admission = self.object(root, "", p, true)?;
        let is_accident = flags.and_then(|f| f.is_accident);
        let accident_date = if is_accident == Some(YesNo::Yes) && present(admission, "accidentDate").is_none() {
            self.push(path(p, "accidentDate"), "Required when flags.isAccident is \"Y\".");
            None
        } else {
            self.date(admission, p, "accidentDate", false)
        };
        let admission_date = self.date(admission, p, "admissionDate", true);
        let discharge_date = self.date(admission, p, "dischargeDate", false);
        if let (Some(admitted), Some(discharged)) = (admission_date, discharge_date)
            && discharged < admitted
        {
            self.push(path(p, "dischargeDate"), "Must not be before admission.admissionDate.");
        }
        let emergency_admission = self.yes_no(admission, p, "emergencyAdmission", false);
        let length_of_stay = self.count(admission, p, "lengthOfStay", false, reasons::REQUIRED);
        let pre_existing = self.yes_no(admission, p, "preExistingAilmentInd", true);
        let item_number = self.code(admission, p, "presentingIllnessItemNumber");
        let same_day = self.yes_no(admission, p, "sameDay", true);
        if same_day == Some(YesNo::No)
            && present(admission, "dischargeDate").is_none()
            && present(admission, "lengthOfStay").is_none()
        {
            self.push(
                path(p, "dischargeDate"),
                "Required, or admission.lengthOfStay, when admission.sameDay is \"N\".",
            );
        }
        Some(Admission {
            accident_date,
            admission_date: admission_date?,
            discharge_date,
            emergency_admission,
            length_of_stay,
            pre_existing_ailment_ind: pre_existing?,
            presenting_illness_item_number: item_number?,
            same_day: same_day?,
        })
    }

    fn items(&mut self, root: &Map<String, Value>) -> Option<Vec<Item>> {
        let values = match present(root, "items") {
            None => {
                self.push("items".to_owned(), "Required: 1 to 50 items.");
                return None;
            }
            Some(Value::Array(values)) => values,
            Some(_) => {
                self.push("items".to_owned(), "Must be an array of 1 to 50 items.");
                return None;
            }
        };
        if values.is_empty() {
            self.push("items".to_owned(), "At least one item is required.");
            return None;
        }
        if values.len() > MAX_ITEMS {
            self.push(
                "items".to_owned(),
                format!("At most {MAX_ITEMS} items in one check; there are {}.", values.len()),
            );
        }
        let mut items = Vec::with_capacity(values.len());
        let mut complete = true;
        for (index, value) in values.iter().enumerate() {
            match self.item(value, &format!("items[{index}]")) {
                Some(item) => items.push(item),
                None => complete = false,
            }
        }
        (complete && values.len() <= MAX_ITEMS).then_some(items)
    }

    fn item(&mut self, value: &Value, p: &str) -> Option<Item> {
        let Some(item) = value.as_object() else {
            self.push(p.to_owned(), reasons::OBJECT);
            return None;
        };
        let charge_amount = self.amount(item, p, "chargeAmount", true);
        let date = self.date(item, p, "date", true);
        let service_code = self.code(item, p, "serviceCode");
        let service_code_type = self.one_of(item, p, "serviceCodeType", true, &SERVICE_CODE_TYPES);
        let needs = "Required when serviceCodeType is \"P\" or \"M\".";
        let service_quantity = self.count(item, p, "serviceQuantity", true, needs);
        let service_rate = match present(item, "serviceRate") {
            None => {
                self.push(path(p, "serviceRate"), needs);
                None
            }
            Some(_) => self.amount(item, p, "serviceRate", true),
        };
        Some(Item {
            charge_amount: charge_amount?,
            date: date?,
            service_code: service_code?,
            service_code_type: service_code_type?,
            service_quantity: service_quantity?,
            service_rate: service_rate?,
        })
    }

    fn location(&mut self, root: &Map<String, Value>) -> Option<Location> {
        let p = "location";
        let location = self.object(root, "", p, true)?;
        let name = self.text(location, p, "name", true, MAX_TEXT_CHARS);
        let provider =
            self.string(location, p, "provider", true).and_then(|value| match ProviderNumber::parse(value) {
                Ok(number) => Some(number),
                Err(error) => {
                    self.push(path(p, "provider"), error.reason());
                    None
                }
            });
        let kind = self.one_of(location, p, "type", true, &LOCATION_TYPES);
        Some(Location { name: name?, provider: provider?, kind: kind? })
    }

    fn patient(&mut self, root: &Map<String, Value>, today: NaiveDate) -> Option<Patient> {
        let p = "patient";
        let patient = self.object(root, "", p, true)?;
        let date_of_birth = match self.date(patient, p, "dateOfBirth", true) {
            Some(dob) if dob > today => {
                self.push(path(p, "dateOfBirth"), reasons::DATE_OF_BIRTH_IN_FUTURE);
                None
            }
            other => other,
        };
        let gender = self.one_of(patient, p, "gender", true, &GENDER_CODES);
        let name = self.object(patient, p, "name", true).map(|name| {
            let np = "patient.name";
            (
                self.text(name, np, "family", true, MAX_NAME_CHARS),
                self.text(name, np, "first", true, MAX_NAME_CHARS),
                self.text(name, np, "second", false, MAX_NAME_CHARS),
            )
        });
        let alias = self.object(patient, p, "alias", false).map(|alias| {
            let ap = "patient.alias";
            Alias {
                first: self.text(alias, ap, "first", false, MAX_NAME_CHARS),
                family: self.text(alias, ap, "family", false, MAX_NAME_CHARS),
            }
        });
        let fund = self.object(patient, p, "fund", true).map(|fund| {
            let fp = "patient.fund";
            let eclipse_id = self.parsed(
                fund,
                fp,
                "eclipseId",
                true,
                "Must be the fund's 3-character ECLIPSE id: upper-case letters and digits, e.g. TST.",
                |s| {
                    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
                        .then(|| s.to_owned())
                },
            );
            let number = self.parsed(
                fund,
                fp,
                "number",
                true,
                "Must be the fund membership number: 1 to 19 letters and digits.",
                |s| {
                    (s.len() <= MAX_MEMBER_NUMBER_CHARS && s.bytes().all(|b| b.is_ascii_alphanumeric()))
                        .then(|| s.to_owned())
                },
            );
            (eclipse_id, number)
        });
        let (family, first, second) = name?;
        let (eclipse_id, number) = fund?;
        Some(Patient {
            date_of_birth: date_of_birth?,
            gender: gender?,
            name: PersonName { family: family?, first: first?, second },
            alias,
            fund: Fund { eclipse_id: eclipse_id?, number: number? },
        })
    }

    fn contact(&mut self, root: &Map<String, Value>) -> Option<Contact> {
        let p = "contact";
        let contact = self.object(root, "", p, false)?;
        let name = self.text(contact, p, "name", false, MAX_TEXT_CHARS);
        let email =
            self.parsed(contact, p, "email", false, "Must be an email address, e.g. name@example.com.au.", |s| {
                is_email(s).then(|| s.to_owned())
            });
        let phone = self.parsed(
            contact,
            p,
            "phone",
            false,
            "Must be a phone number: 6 to 15 digits, with optional spaces, '+', '-', '(' and ')'.",
            |s| is_phone(s).then(|| s.to_owned()),
        );
        Some(Contact { name, email, phone })
    }
}

fn quoted_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `local@domain.tld`, no spaces, at most 254 characters: a plausibility check, not RFC 5322.
fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    value.len() <= 254
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_phone(value: &str) -> bool {
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    (6..=15).contains(&digits) && value.bytes().all(|b| b.is_ascii_digit() || b" +-()".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_need_exactly_two_decimals() {
        for ok in ["144.40", "0.00", "1000.00", "123456789.99", "144.4", "144"] {
            assert!(Amount::parse(ok).is_some(), "{ok}");
        }
        for bad in ["144.400", "144.", "-1.00", "+1.00", ".50", "1,000.00", "1e3", "1234567890.00", " 1.00", "1.0O", ""]
        {
            assert!(Amount::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn amounts_serialize_with_two_decimals() {
        let amount = Amount::parse("1000.00").expect("valid");
        assert_eq!(serde_json::to_string(&amount).expect("serializes"), "\"1000.00\"");
        for (given, sent) in [("144", "\"144.00\""), ("144.4", "\"144.40\"")] {
            assert_eq!(serde_json::to_string(&Amount::parse(given).expect("valid")).expect("serializes"), sent);
        }
        assert_eq!(amount.value(), Decimal::from(1000));
    }

    #[test]
    fn counts_are_positive_whole_numbers() {
        assert_eq!(Count::parse("1").map(Count::get), Some(1));
        assert_eq!(Count::parse("9999").map(Count::get), Some(9999));
        for bad in ["0", "", "-1", "1.0", "10000", "one", " 1"] {
            assert!(Count::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn dates_must_exist_and_be_padded() {
        assert!(parse_date("2024-02-29").is_some());
        for bad in ["2023-02-29", "2021-13-01", "2021-5-03", "03/05/2021", "2021-05-03T00:00:00", "20210503"] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn location_ids() {
        assert!(LocationId::parse("25").is_some());
        assert!(LocationId::parse("minor-ID_1").is_some());
        assert!(LocationId::parse("25&x=1").is_none());
        assert!(LocationId::parse("").is_none());
    }

    #[test]
    fn emails_and_phones() {
        assert!(is_email("steve@email.co"));
        assert!(!is_email("steve"));
        assert!(!is_email("steve@email"));
        assert!(is_phone("0414 456 789"));
        assert!(is_phone("+61 (2) 9999-9999"));
        assert!(!is_phone("call me"));
    }
}
