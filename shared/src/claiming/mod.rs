//! Claiming.com.au v2, "Fund Eligibility (ECF)": "POST - Mandatory elements (ECF)" and
//! "POST - Optional elements (ECF)".
//!
//! - [`request`]: the ECF request, validated before it leaves ([`validate_check`]) and serialized
//!   in the wire form (Y/N strings, amounts as 2-decimal strings, `YYYY-MM-DD` dates).
//! - [`provider`]: the Medicare provider number and its check character.
//! - [`response`]: the answer (booleans and numbers) and the [`CheckSummary`] kept of it.
//! - [`token`]: the access token, cached per execution environment and refreshed before expiry
//!   and once on a 401.
//! - [`client`]: the settings (`CLAIMING_*`) and the eligibility call.
//!
//! Privacy: patient names, dates of birth and member numbers are health information. The patient
//! and contact types have redacted `Debug` output; nothing here logs them.

pub mod client;
pub mod provider;
pub mod request;
pub mod response;
pub mod token;

pub use client::{CheckError, ClaimingSettings, EligibilityClient, Reply};
pub use provider::{ProviderNumber, ProviderNumberError};
pub use request::{
    Admission, Alias, Amount, Contact, Count, EcfRequest, Flags, Fund, Item, Location, LocationId, MAX_ITEMS, Patient,
    PersonName, YesNo, validate_check,
};
pub use response::{
    AssessmentNote, Benefit, CheckSummary, CoverTable, EcfResponse, Echo, Estimations, FundEstimation, Indicator,
    Money, ResponseAdmission, ResponseFlags, ResponseItem, ResponseLocation, Scalar,
};
pub use token::{AccessToken, TokenError, TokenManager};
