//! The ECF response. Responses echo the request with booleans and numbers where the request had
//! Y/N strings and amount strings (`"isAccident": false`, `"chargeAmount": 144.4`), but not
//! everywhere (`"accountPaid": "N"` stays a string): the types here read either form and write back
//! the form they read.
//!
//! [`CheckSummary`] is what the gateway keeps of an answer: ids, status and codes, nothing about
//! the patient. It is read from any JSON, so an unexpected shape never loses the fund's answer.

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// A Y/N indicator as Claiming.com.au answers it: a boolean or a `"Y"`/`"N"` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indicator {
    Flag(bool),
    Code(super::YesNo),
}

impl Indicator {
    pub fn is_yes(self) -> bool {
        match self {
            Indicator::Flag(flag) => flag,
            Indicator::Code(code) => code.is_yes(),
        }
    }
}

impl<'de> Deserialize<'de> for Indicator {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Bool(flag) => Ok(Indicator::Flag(flag)),
            Value::String(text) => super::YesNo::parse(&text)
                .map(Indicator::Code)
                .ok_or_else(|| D::Error::custom("expected a boolean, \"Y\" or \"N\"")),
            _ => Err(D::Error::custom("expected a boolean, \"Y\" or \"N\"")),
        }
    }
}

impl Serialize for Indicator {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Indicator::Flag(flag) => serializer.serialize_bool(*flag),
            Indicator::Code(code) => code.serialize(serializer),
        }
    }
}

/// Dollars as Claiming.com.au answers them: a JSON number (`144.4`, `1000`) or a string.
/// Written back as a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(pub Decimal);

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = match Value::deserialize(deserializer)? {
            Value::Number(number) => number.to_string(),
            Value::String(text) => text,
            _ => return Err(D::Error::custom("expected an amount")),
        };
        Decimal::from_str(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .map(Money)
            .map_err(|_| D::Error::custom("expected an amount"))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let number =
            serde_json::Number::from_str(&self.0.normalize().to_string()).map_err(serde::ser::Error::custom)?;
        number.serialize(serializer)
    }
}

/// A string, number or boolean kept as it came (ids and codes whose JSON type varies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(Value);

impl Scalar {
    /// The value as text: a string as is, a number or boolean as JSON writes it.
    pub fn text(&self) -> String {
        scalar_text(&self.0).unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            value @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => Ok(Scalar(value)),
            _ => Err(D::Error::custom("expected a string, number or boolean")),
        }
    }
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The echo of the patient or contact: health information, opaque here and redacted in `Debug`.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Echo(pub Value);

impl fmt::Debug for Echo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

/// The ECF answer (Claiming.com.au v2, "Fund Eligibility (ECF)", "Example Response").
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EcfResponse {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<ResponseFlags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<ResponseAdmission>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ResponseLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Echo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Echo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ResponseItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligibility_id: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_received: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medicare_response: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assessment_notes: Vec<AssessmentNote>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimations: Option<Estimations>,
    /// e.g. `COMPLETE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseFlags {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_paid: Option<Indicator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensation_claim: Option<Indicator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_interest_disclosure_ind: Option<Indicator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_accident: Option<Indicator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oec_type_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseAdmission {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accident_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discharge_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_admission: Option<Indicator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_of_stay: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_existing_ailment_ind: Option<Indicator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presenting_illness_item_number: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_day: Option<Indicator>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct ResponseLocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_amount: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_code: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_code_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_quantity: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_rate: Option<Money>,
    /// Spelt with a capital M on the wire.
    #[serde(rename = "MedicareVoucherId", default, skip_serializing_if = "Option::is_none")]
    pub medicare_voucher_id: Option<Scalar>,
    #[serde(rename = "MedicareServiceId", default, skip_serializing_if = "Option::is_none")]
    pub medicare_service_id: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assessment_notes: Vec<AssessmentNote>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub benefit: Vec<Benefit>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct AssessmentNote {
    /// `Fund` or `Medicare`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Benefit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benefit: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Estimations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fund: Option<FundEstimation>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FundEstimation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benefit_limitations: Option<String>,
    /// `Y` when the member is financial (premiums paid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_status: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment_code: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<CoverTable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pea_potential_ind: Option<Scalar>,
}

/// The patient's level of cover, e.g. "Basic Hospital", "SINGLE".
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct CoverTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Longest id or code kept in a summary; longer ones are cut.
const MAX_SUMMARY_CHARS: usize = 128;

/// What the gateway keeps of an answer: no names, dates of birth or member numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckSummary {
    pub eligibility_id: Option<String>,
    pub transaction_id: Option<String>,
    pub status: Option<String>,
    pub time_received: Option<String>,
    pub medicare_response: Option<String>,
    /// The codes of the top-level assessment notes, in order.
    pub assessment_codes: Vec<String>,
    /// The codes of each item's assessment notes, item by item.
    pub item_assessment_codes: Vec<Vec<String>>,
    /// `estimations.fund.assessmentCode`.
    pub fund_assessment_code: Option<String>,
    /// `estimations.fund.financialStatus`.
    pub financial_status: Option<String>,
}

fn scalar_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return None,
    };
    Some(text.chars().take(MAX_SUMMARY_CHARS).collect())
}

fn note_codes(notes: Option<&Value>) -> Vec<String> {
    notes
        .and_then(Value::as_array)
        .map(|notes| notes.iter().filter_map(|note| note.get("code").and_then(scalar_text)).collect())
        .unwrap_or_default()
}

impl CheckSummary {
    /// Reads what it can from any JSON answer; missing parts stay empty.
    pub fn from_json(answer: &Value) -> Self {
        let text = |pointer: &str| answer.pointer(pointer).and_then(scalar_text);
        Self {
            eligibility_id: text("/eligibilityId"),
            transaction_id: text("/transactionId"),
            status: text("/status"),
            time_received: text("/timeReceived"),
            medicare_response: text("/medicareResponse"),
            assessment_codes: note_codes(answer.get("assessmentNotes")),
            item_assessment_codes: answer
                .get("items")
                .and_then(Value::as_array)
                .map(|items| items.iter().map(|item| note_codes(item.get("assessmentNotes"))).collect())
                .unwrap_or_default(),
            fund_assessment_code: text("/estimations/fund/assessmentCode"),
            financial_status: text("/estimations/fund/financialStatus"),
        }
    }
}
