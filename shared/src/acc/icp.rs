//! The ICP query's answer: the claim details of Appendix A, shaped as the sample of Appendix B, and
//! the section 3 rejections.
//!
//! The sample "is not illustrative of a true response but outlines the data structure", so the
//! models are tolerant: only `claimNumber` and `coverStatus` are required, every other field may be
//! absent or null, unknown fields are ignored, and open-ended codes (cover status, diagnosis side,
//! incapacity type, ...) stay strings. ACC's spelling `occuredAtWork` is kept on the wire.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The claim details (Appendix A), as in the sample of Appendix B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IcpClaimDetails {
    /// The ACC45 claim or form number (the "Medical fees number").
    #[serde(default)]
    pub acc45_number: Option<String>,
    /// The claim ID: the ACC45 number or the Eos case number.
    pub claim_number: String,
    /// For example "Accept", "Accepted", "Received", "Failed".
    pub cover_status: String,
    #[serde(default)]
    pub accident_description: Option<String>,
    #[serde(default)]
    pub accident_date: Option<NaiveDate>,
    /// Did the accident happen at work? ACC spells the field `occuredAtWork`.
    #[serde(rename = "occuredAtWork", default)]
    pub occured_at_work: Option<bool>,
    #[serde(default)]
    pub patient_indicators: Option<PatientIndicators>,
    /// Diagnoses of the covered injuries.
    #[serde(default)]
    pub diagnoses: Option<Vec<Diagnosis>>,
    #[serde(default)]
    pub weekly_compensation: Option<WeeklyCompensation>,
    /// Medical incapacity, as the provider submitted it.
    #[serde(default)]
    pub medical_incapacity: Option<Vec<MedicalIncapacity>>,
    /// The incapacity ACC has approved.
    #[serde(default)]
    pub latest_approved_incapacity: Option<LatestApprovedIncapacity>,
    #[serde(default)]
    pub services_received: Option<Vec<ServiceReceived>>,
}

/// Indicators active against the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientIndicators {
    /// The client could pose a risk to someone's safety.
    #[serde(default)]
    pub care: Option<bool>,
    /// The client's safety, health or wellbeing may be under threat.
    #[serde(default)]
    pub vulnerable_situation: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    #[serde(default)]
    pub diagnosis_code_type: Option<String>,
    #[serde(default)]
    pub diagnosis_code: Option<String>,
    #[serde(default)]
    pub diagnosis_description: Option<String>,
    #[serde(default)]
    pub snomed_code: Option<String>,
    #[serde(default)]
    pub snomed_code_description: Option<String>,
    /// For example "Provisional", "Investigating".
    #[serde(default)]
    pub injury_status: Option<String>,
    /// For example "right", "left", "notApplicable".
    #[serde(default)]
    pub diagnosis_side: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeeklyCompensation {
    /// Weekly compensation days paid so far on this claim.
    #[serde(default)]
    pub days_paid: Option<u32>,
    /// The first date weekly compensation was paid for.
    #[serde(default)]
    pub date_of_first_entitlement: Option<NaiveDate>,
    /// The date to which weekly compensation is currently paid.
    #[serde(default)]
    pub latest_payment_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicalIncapacity {
    /// For example "Fitforselectedwork", "Fullyunfitforwork".
    #[serde(default)]
    pub incapacity_type: Option<String>,
    /// ACC45, ACC18 or ACC.
    #[serde(default)]
    pub source: Option<String>,
    /// The certifying provider's HPI number.
    #[serde(default)]
    pub provider_hpi_number: Option<String>,
    /// The sample's second entry names the provider `providerId` instead.
    #[serde(default)]
    pub provider_id: Option<String>,
    #[serde(default)]
    pub incapacity_date_range: Option<IncapacityDateRange>,
    /// Only when the incapacity type is "fit for selected work".
    #[serde(default)]
    pub selected_alternative_work: Option<SelectedAlternativeWork>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncapacityDateRange {
    #[serde(default)]
    pub from_date: Option<NaiveDate>,
    #[serde(default)]
    pub to_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectedAlternativeWork {
    /// Hours per day (up to 24); a JSON number, kept exact.
    #[serde(default, with = "rust_decimal::serde::arbitrary_precision_option")]
    pub restricted_hours_per_day: Option<Decimal>,
    /// Days per week (0-7); a JSON number, kept exact.
    #[serde(default, with = "rust_decimal::serde::arbitrary_precision_option")]
    pub restricted_days_per_week: Option<Decimal>,
    #[serde(default)]
    pub restriction_comment: Option<String>,
    #[serde(default)]
    pub physical_restrictions: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatestApprovedIncapacity {
    #[serde(default)]
    pub to_date: Option<NaiveDate>,
    /// For example "FullyUnfitForWork".
    #[serde(rename = "type", default)]
    pub incapacity_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReceived {
    /// For example "PHY3".
    #[serde(default)]
    pub service_code: Option<String>,
    #[serde(default)]
    pub service_date: Option<NaiveDate>,
    #[serde(default)]
    pub service_description: Option<String>,
    /// A string: "1", "00:45".
    #[serde(default)]
    pub qty_value: Option<String>,
    /// Weeks, days, hours, minutes, units.
    #[serde(default)]
    pub qty_units: Option<String>,
}

/// ACC ICP Query API v1.1, §3: ACC's rejections of a well-formed query (all HTTP 400, `{code, message}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcpRejection {
    /// The claim number was found but the date of birth does not match.
    DateOfBirthMismatch,
    CoverHeld,
    CoverDeclined,
    /// The claim is managed by a Third Party Administrator.
    TpaExclusion,
    NotEligible,
    UnlikelyEligible,
    NeedsAssessment,
}

impl IcpRejection {
    pub const ALL: [IcpRejection; 7] = [
        IcpRejection::DateOfBirthMismatch,
        IcpRejection::CoverHeld,
        IcpRejection::CoverDeclined,
        IcpRejection::TpaExclusion,
        IcpRejection::NotEligible,
        IcpRejection::UnlikelyEligible,
        IcpRejection::NeedsAssessment,
    ];

    /// The message of ACC ICP Query API v1.1, §3, character for character.
    pub fn message(self) -> &'static str {
        match self {
            IcpRejection::DateOfBirthMismatch => "The Claim and specified Patient DOB do not match.",
            IcpRejection::CoverHeld => {
                "This claim has not yet been accepted for cover and cannot be entered into ICP. Please contact ACC on 0800 101 996 for more information if required."
            }
            IcpRejection::CoverDeclined => "This claim has been declined for cover and cannot be entered into ICP.",
            IcpRejection::TpaExclusion => {
                "This claim is managed by a Third Party Administrator (TPA) and cannot be entered into ICP. Please ask the Client to contact their TPA Provider and discuss having their claim returned to ACC if they would like to enter ICP."
            }
            IcpRejection::NotEligible => {
                "This claim is not eligible for ICP. Please check that the correct claim number has been used."
            }
            IcpRejection::UnlikelyEligible => {
                "This claim is unlikely to be eligible for ICP. Please check the claim number used. Contact ACC on 0800 101 996 ext. 77097 for more information or have a staff member assess eligibility."
            }
            IcpRejection::NeedsAssessment => {
                "This claim requires assessment from an ACC staff member before it can be entered into ICP. Please contact ACC on 0800 101 996 ext. 77097 to discuss."
            }
        }
    }

    /// ACC's body for this rejection.
    pub fn to_error(self) -> super::AccError {
        super::AccError::new(400, self.message())
    }
}

/// The sample response of ACC ICP Query API v1.1, Appendix B, verbatim
/// but for the layout; the local simulator serves it and the tests parse it.
pub const APPENDIX_B_SAMPLE: &str = r#"{
  "acc45Number": "SP90065",
  "claimNumber": "P4865824770",
  "coverStatus": "Accept",
  "accidentDescription": "Was running, tripped and fell, twisting ankle",
  "accidentDate": "2022-05-24",
  "occuredAtWork": false,
  "patientIndicators": {
    "care": false,
    "vulnerableSituation": false
  },
  "diagnoses": [{
    "diagnosisCodeType": "1",
    "diagnosisCode": "Az...",
    "diagnosisDescription": "Infectious and parasitic diseases NOS",
    "snomedCode": null,
    "snomedCodeDescription": null,
    "injuryStatus": "Provisional",
    "diagnosisSide": "right"
  },
  {
    "diagnosisCodeType": "1",
    "diagnosisCode": "Dz...",
    "diagnosisDescription": "Blood/blood forming organ NOS",
    "snomedCode": null,
    "snomedCodeDescription": null,
    "injuryStatus": "Investigating",
    "diagnosisSide": "notApplicable"
  }],
  "weeklyCompensation": {
    "daysPaid": 125,
    "dateOfFirstEntitlement": "2022-01-24",
    "latestPaymentDate": "2022-11-24"
  },
  "medicalIncapacity": [{
    "incapacityType": "Fitforselectedwork",
    "source": "ACC45",
    "providerHpiNumber": "ABC123",
    "incapacityDateRange": {
      "fromDate": "2019-09-04",
      "toDate": "2019-09-06"
    },
    "selectedAlternativeWork": {
      "restrictedHoursPerDay": 5,
      "restrictedDaysPerWeek": 1,
      "restrictionComment": "There are are additional restriction details - please discuss with the patient.",
      "physicalRestrictions": ["Lifting", "Other"]
    }
  }, {
    "incapacityType": "Fullyunfitforwork",
    "source": "ACC18",
    "providerId": "ABC123",
    "incapacityDateRange": {
      "fromDate": "2019-09-01",
      "toDate": "2019-09-03"
    }
  }],
  "latestApprovedIncapacity": {
    "toDate": "2022-12-24",
    "type": "FullyUnfitForWork"
  },
  "servicesReceived": [{
    "serviceCode": "RB03",
    "serviceDate": "2019-09-07",
    "serviceDescription": "Lumbarspine Incl. Lumbosacral Joint",
    "qtyValue": "1",
    "qtyUnits": "Units"
  }, {
    "serviceCode": "PHY3",
    "serviceDate": "2019-09-14",
    "serviceDescription": "Physiotherapy Treatment",
    "qtyValue": "00:45",
    "qtyUnits": "Hours"
  }]
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_appendix_b_sample_parses() {
        let details: IcpClaimDetails = serde_json::from_str(APPENDIX_B_SAMPLE).expect("sample parses");
        assert_eq!(details.claim_number, "P4865824770");
        assert_eq!(details.acc45_number.as_deref(), Some("SP90065"));
        assert_eq!(details.occured_at_work, Some(false));
        assert_eq!(details.diagnoses.as_ref().map(Vec::len), Some(2));
        assert_eq!(details.weekly_compensation.as_ref().and_then(|w| w.days_paid), Some(125));
        let incapacity = details.medical_incapacity.unwrap_or_default();
        assert_eq!(incapacity[1].provider_id.as_deref(), Some("ABC123"));
        let work = incapacity[0].selected_alternative_work.as_ref().expect("alternative work");
        assert_eq!(work.restricted_hours_per_day, Some(Decimal::from(5)));
        assert_eq!(
            details.latest_approved_incapacity.and_then(|l| l.incapacity_type).as_deref(),
            Some("FullyUnfitForWork")
        );
        assert_eq!(details.services_received.map(|s| s[1].qty_value.clone()), Some(Some("00:45".to_owned())));
    }

    #[test]
    fn the_spelling_occured_is_kept_on_the_wire() {
        let details: IcpClaimDetails = serde_json::from_str(APPENDIX_B_SAMPLE).expect("sample parses");
        let json = serde_json::to_value(&details).expect("serialises");
        assert!(json.get("occuredAtWork").is_some() && json.get("occurredAtWork").is_none());
    }

    #[test]
    fn rejections_are_400_with_the_spec_text() {
        let body = serde_json::to_value(IcpRejection::CoverDeclined.to_error()).expect("serialises");
        assert_eq!(
            body,
            serde_json::json!({"code": 400, "message": "This claim has been declined for cover and cannot be entered into ICP."})
        );
    }
}
