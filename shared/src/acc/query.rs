//! The ICP query's parameters (ACC ICP Query API v1.1, §2.2–2.5): `claimNumber` (path), `dateOfBirth`, `vendorId`,
//! `providerId` (query), each a validated newtype whose `parse` applies that section's rules and answers
//! with its message, character for character.
//!
//! Rules common to all four:
//! - a missing, blank or whitespace-only value is "required";
//! - formats are checked on the value exactly as given: nothing is trimmed, so `" A1"` is invalid,
//!   not `"A1"`;
//! - only ASCII letters and digits are letters and digits (`é`, `٣`, full-width `Ａ` are not).
//!
//! The provider ID's error row in §2.5 repeats the vendor regex (with `/`), while its format row
//! and its message say letters and numbers only: the message is the contract.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The error messages of ACC ICP Query API v1.1, §2.2–2.5, character for character.
pub mod messages {
    pub const CLAIM_NUMBER_REQUIRED: &str = "The Claim Number is required.";
    pub const CLAIM_NUMBER_INVALID: &str =
        "The Claim Number can only contain letters and numbers, no more than 12 characters in all.";
    pub const DATE_OF_BIRTH_REQUIRED: &str = "The date of birth of the client is required.";
    pub const DATE_OF_BIRTH_INVALID: &str = "The date does not exist, or the format is invalid; use YYYY-MM-DD.";
    pub const DATE_OF_BIRTH_TOO_EARLY: &str = "The date cannot be before 1900-01-01.";
    pub const DATE_OF_BIRTH_IN_FUTURE: &str = "That date is in the future; enter a date no later than today.";
    pub const VENDOR_ID_REQUIRED: &str = "The Vendor ID is required.";
    pub const VENDOR_ID_INVALID: &str =
        "The Vendor ID is invalid; it can only contain letters, numbers, and '/', no more than 12 characters in all.";
    pub const PROVIDER_ID_REQUIRED: &str = "The Provider ID is required.";
    pub const PROVIDER_ID_INVALID: &str =
        "The provider ID can only contain letters and numbers, no more than 12 characters in all.";
}

/// The longest claim number, vendor ID and provider ID (`{1,12}` in the spec's regexes).
pub const MAX_ID_LENGTH: usize = 12;

/// The four parameters, in the order their errors are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcpParameter {
    ClaimNumber,
    DateOfBirth,
    VendorId,
    ProviderId,
}

impl IcpParameter {
    pub const ALL: [IcpParameter; 4] =
        [IcpParameter::ClaimNumber, IcpParameter::DateOfBirth, IcpParameter::VendorId, IcpParameter::ProviderId];

    /// The parameter's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            IcpParameter::ClaimNumber => "claimNumber",
            IcpParameter::DateOfBirth => "dateOfBirth",
            IcpParameter::VendorId => "vendorId",
            IcpParameter::ProviderId => "providerId",
        }
    }
}

/// One failing parameter in ACC's error body: `{"parameter": "claimNumber", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterError {
    pub parameter: String,
    pub message: String,
}

impl ParameterError {
    pub fn new(parameter: IcpParameter, message: &str) -> Self {
        Self { parameter: parameter.name().to_owned(), message: message.to_owned() }
    }
}

impl fmt::Display for ParameterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.parameter, self.message)
    }
}

impl std::error::Error for ParameterError {}

/// ACC's error body: `{"code": 400, "message": "..."}`, with `errors` (one per failing parameter)
/// when parameters failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccError {
    pub code: u16,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ParameterError>,
}

impl AccError {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), errors: Vec::new() }
    }

    /// 400 with every failing parameter; the message is the first one's.
    pub fn invalid_parameters(errors: Vec<ParameterError>) -> Self {
        let message =
            errors.first().map_or_else(|| "The query parameters are invalid.".to_owned(), |e| e.message.clone());
        Self { code: 400, message, errors }
    }
}

fn is_blank(value: &str) -> bool {
    value.trim().is_empty()
}

/// 1-12 characters, each an ASCII letter or digit, or one of `extra`.
fn is_short_id(value: &str, extra: &[u8]) -> bool {
    (1..=MAX_ID_LENGTH).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

fn parse_short_id(
    value: &str,
    parameter: IcpParameter,
    extra: &[u8],
    required: &str,
    invalid: &str,
) -> Result<String, ParameterError> {
    if is_blank(value) {
        Err(ParameterError::new(parameter, required))
    } else if is_short_id(value, extra) {
        Ok(value.to_owned())
    } else {
        Err(ParameterError::new(parameter, invalid))
    }
}

/// A claim number: the ACC45 number or the Eos case number, `^[a-zA-Z0-9]{1,12}$`.
/// Its `Debug` is redacted and it has no `Display`: never log it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClaimNumber(String);

impl ClaimNumber {
    pub fn parse(value: &str) -> Result<Self, ParameterError> {
        parse_short_id(
            value,
            IcpParameter::ClaimNumber,
            b"",
            messages::CLAIM_NUMBER_REQUIRED,
            messages::CLAIM_NUMBER_INVALID,
        )
        .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lower-case hex SHA-256 of the claim number as given: what audit records keep instead of it.
    pub fn sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for ClaimNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimNumber(<redacted>)")
    }
}

/// The patient's date of birth: `YYYY-MM-DD`, a real calendar date, from 1900-01-01 to today.
/// Its `Debug` is redacted and it has no `Display`: never log it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateOfBirth(NaiveDate);

impl DateOfBirth {
    /// The earliest date of birth accepted.
    pub fn earliest() -> NaiveDate {
        NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN)
    }

    /// Parses `value`; `today` is the date in Pacific/Auckland at the moment of the request
    /// (`crate::time::today_in(crate::time::NEW_ZEALAND, now)`).
    pub fn parse(value: &str, today: NaiveDate) -> Result<Self, ParameterError> {
        let error = |message| ParameterError::new(IcpParameter::DateOfBirth, message);
        if is_blank(value) {
            return Err(error(messages::DATE_OF_BIRTH_REQUIRED));
        }
        let date = parse_iso_date(value).ok_or_else(|| error(messages::DATE_OF_BIRTH_INVALID))?;
        if date < Self::earliest() {
            Err(error(messages::DATE_OF_BIRTH_TOO_EARLY))
        } else if date > today {
            Err(error(messages::DATE_OF_BIRTH_IN_FUTURE))
        } else {
            Ok(Self(date))
        }
    }

    pub fn date(&self) -> NaiveDate {
        self.0
    }

    /// `YYYY-MM-DD`, as sent upstream.
    pub fn to_iso(&self) -> String {
        self.0.format("%Y-%m-%d").to_string()
    }
}

impl fmt::Debug for DateOfBirth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DateOfBirth(<redacted>)")
    }
}

/// Exactly `DDDD-DD-DD` (ASCII digits) naming a real date. chrono's own parser is laxer (it takes
/// `2000-1-1`), so the shape is checked by hand first.
fn parse_iso_date(value: &str) -> Option<NaiveDate> {
    let bytes = value.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
    if !shape_ok {
        return None;
    }
    let number = |range: std::ops::Range<usize>| value.get(range)?.parse::<u32>().ok();
    let year = i32::try_from(number(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?)
}

/// The vendor ID (identifies the ICP supplier): letters, digits and `/`, 1-12 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VendorId(String);

impl VendorId {
    pub fn parse(value: &str) -> Result<Self, ParameterError> {
        parse_short_id(value, IcpParameter::VendorId, b"/", messages::VENDOR_ID_REQUIRED, messages::VENDOR_ID_INVALID)
            .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VendorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The ACC provider ID (ACC_Provider_Number): letters and digits, 1-12 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderId(String);

impl ProviderId {
    pub fn parse(value: &str) -> Result<Self, ParameterError> {
        parse_short_id(
            value,
            IcpParameter::ProviderId,
            b"",
            messages::PROVIDER_ID_REQUIRED,
            messages::PROVIDER_ID_INVALID,
        )
        .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The parameters as received (`None` when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawIcpQuery<'a> {
    pub claim_number: Option<&'a str>,
    pub date_of_birth: Option<&'a str>,
    pub vendor_id: Option<&'a str>,
    pub provider_id: Option<&'a str>,
}

/// A query that passed the validation of ACC ICP Query API v1.1, §2.2–2.5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcpQuery {
    pub claim_number: ClaimNumber,
    pub date_of_birth: DateOfBirth,
    pub vendor_id: VendorId,
    pub provider_id: ProviderId,
}

impl IcpQuery {
    /// Validates all four parameters, returning every failure in the order claimNumber,
    /// dateOfBirth, vendorId, providerId.
    pub fn parse(raw: RawIcpQuery<'_>, today: NaiveDate) -> Result<Self, Vec<ParameterError>> {
        let claim_number = ClaimNumber::parse(raw.claim_number.unwrap_or_default());
        let date_of_birth = DateOfBirth::parse(raw.date_of_birth.unwrap_or_default(), today);
        let vendor_id = VendorId::parse(raw.vendor_id.unwrap_or_default());
        let provider_id = ProviderId::parse(raw.provider_id.unwrap_or_default());
        match (claim_number, date_of_birth, vendor_id, provider_id) {
            (Ok(claim_number), Ok(date_of_birth), Ok(vendor_id), Ok(provider_id)) => {
                Ok(Self { claim_number, date_of_birth, vendor_id, provider_id })
            }
            (claim_number, date_of_birth, vendor_id, provider_id) => {
                Err([claim_number.err(), date_of_birth.err(), vendor_id.err(), provider_id.err()]
                    .into_iter()
                    .flatten()
                    .collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn message<T>(result: Result<T, ParameterError>) -> String {
        result.err().map(|e| e.message).unwrap_or_default()
    }

    #[test]
    fn claim_number_boundaries() {
        assert!(ClaimNumber::parse("A").is_ok());
        assert!(ClaimNumber::parse("AB12cd34EF56").is_ok());
        assert_eq!(message(ClaimNumber::parse("AB12cd34EF567")), messages::CLAIM_NUMBER_INVALID);
        assert_eq!(message(ClaimNumber::parse("")), messages::CLAIM_NUMBER_REQUIRED);
        assert_eq!(message(ClaimNumber::parse(" \t ")), messages::CLAIM_NUMBER_REQUIRED);
        assert_eq!(message(ClaimNumber::parse(" A1")), messages::CLAIM_NUMBER_INVALID);
        assert_eq!(message(ClaimNumber::parse("A1\n")), messages::CLAIM_NUMBER_INVALID);
        assert_eq!(message(ClaimNumber::parse("AB/12")), messages::CLAIM_NUMBER_INVALID);
        assert_eq!(message(ClaimNumber::parse("Aé1")), messages::CLAIM_NUMBER_INVALID);
        assert_eq!(message(ClaimNumber::parse("Ａ1")), messages::CLAIM_NUMBER_INVALID);
    }

    #[test]
    fn twelve_non_ascii_characters_are_not_twelve_letters() {
        assert_eq!(message(ClaimNumber::parse("éééééééééééé")), messages::CLAIM_NUMBER_INVALID);
        assert_eq!(message(ProviderId::parse("١٢٣")), messages::PROVIDER_ID_INVALID);
    }

    #[test]
    fn vendor_id_allows_slash_and_provider_id_does_not() {
        assert!(VendorId::parse("AB/12").is_ok());
        assert!(VendorId::parse("////////////").is_ok());
        assert_eq!(message(VendorId::parse("AB/12/CD/34/E")), messages::VENDOR_ID_INVALID);
        assert_eq!(message(VendorId::parse("AB\\12")), messages::VENDOR_ID_INVALID);
        assert_eq!(message(VendorId::parse("  ")), messages::VENDOR_ID_REQUIRED);
        assert_eq!(message(ProviderId::parse("AB/12")), messages::PROVIDER_ID_INVALID);
        assert_eq!(message(ProviderId::parse("")), messages::PROVIDER_ID_REQUIRED);
    }

    #[test]
    fn date_of_birth_rules() {
        let today = day(2024, 2, 29);
        assert_eq!(DateOfBirth::parse("1900-01-01", today).map(|d| d.date()).ok(), Some(day(1900, 1, 1)));
        assert_eq!(message(DateOfBirth::parse("1899-12-31", today)), messages::DATE_OF_BIRTH_TOO_EARLY);
        assert_eq!(message(DateOfBirth::parse("0000-01-01", today)), messages::DATE_OF_BIRTH_TOO_EARLY);
        assert!(DateOfBirth::parse("2024-02-29", today).is_ok());
        assert_eq!(message(DateOfBirth::parse("2024-03-01", today)), messages::DATE_OF_BIRTH_IN_FUTURE);
        assert_eq!(message(DateOfBirth::parse("2023-02-29", today)), messages::DATE_OF_BIRTH_INVALID);
        assert_eq!(message(DateOfBirth::parse("1900-02-29", today)), messages::DATE_OF_BIRTH_INVALID);
        assert!(DateOfBirth::parse("2000-02-29", today).is_ok());
        for bad in [
            "2000-1-01",
            "2000-01-1",
            "20000-01-01",
            "2000/01/01",
            "01-01-2000",
            "2000-01-01T00:00",
            " 2000-01-01",
            "2000-01-01 ",
            "2000-13-01",
            "2000-00-10",
            "2000-01-32",
            "+200-01-01",
            "２０００-01-01",
        ] {
            assert_eq!(message(DateOfBirth::parse(bad, today)), messages::DATE_OF_BIRTH_INVALID, "{bad:?}");
        }
        assert_eq!(message(DateOfBirth::parse(" ", today)), messages::DATE_OF_BIRTH_REQUIRED);
    }

    #[test]
    fn every_failure_is_listed_in_parameter_order() {
        let errors = IcpQuery::parse(
            RawIcpQuery { claim_number: None, date_of_birth: Some("x"), vendor_id: Some(""), provider_id: Some("a/b") },
            day(2024, 1, 1),
        )
        .err()
        .unwrap_or_default();
        let names: Vec<_> = errors.iter().map(|e| e.parameter.as_str()).collect();
        assert_eq!(names, ["claimNumber", "dateOfBirth", "vendorId", "providerId"]);
        let body = AccError::invalid_parameters(errors);
        assert_eq!(body.message, messages::CLAIM_NUMBER_REQUIRED);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let claim = ClaimNumber::parse("P4865824770").expect("valid");
        let dob = DateOfBirth::parse("1985-03-14", day(2024, 1, 1)).expect("valid");
        assert!(!format!("{claim:?}{dob:?}").contains("4865") && !format!("{dob:?}").contains("1985"));
        assert_eq!(claim.sha256_hex().len(), 64);
    }
}
