//! NZ ACC: the "ICP Query (Get Incapacity & WC Details)" API, v1.1
//! (ACC ICP Query API v1.1, software specification, October 2023).
//!
//! - [`query`]: the four query parameters as validated newtypes, with the §2.2–2.5 rules and
//!   its error messages character for character, and ACC's `{code, message, errors}` error body.
//! - [`icp`]: the typed response of Appendix A/B (`occuredAtWork` spelt as ACC spells it) and the
//!   section 3 rejections.
//! - [`client`]: the call to ACC with our API key, and what its answer becomes for our caller.
//!
//! Privacy: a claim number and a date of birth are health information. Their `Debug` output is
//! redacted and they have no `Display`, so they cannot end up in a log line by accident.

pub mod client;
pub mod icp;
pub mod query;

pub use icp::{
    APPENDIX_B_SAMPLE, Diagnosis, IcpClaimDetails, IcpRejection, IncapacityDateRange, LatestApprovedIncapacity,
    MedicalIncapacity, PatientIndicators, SelectedAlternativeWork, ServiceReceived, WeeklyCompensation,
};
pub use query::{
    AccError, ClaimNumber, DateOfBirth, IcpParameter, IcpQuery, ParameterError, ProviderId, RawIcpQuery, VendorId,
    messages,
};
