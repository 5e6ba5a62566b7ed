//! What HICAPS sends for adjudication: the Invoice (also the Predetermination), its Biller,
//! Member and Claims with every nested parameter object, and the CancellationRequest.
//!
//! Fields the spec marks Mandatory are required unless a spec example omits them (the
//! predetermination example's biller has only `billerId`). Custom-field objects, whose keys the
//! spec says vary by program or discipline, keep unknown keys in `extra` so relaying is lossless;
//! other objects ignore unknown keys.

use super::common::{DateText, DateTimeText, Gender, Program, ResponsePriority, SourceChannel, TaxCode, open_enum};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Unknown keys of an open-ended object.
pub type Extra = Map<String, Value>;

/// An invoice submitted by a biller: a request for payment made of claims (line items).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    pub invoice_id: Uuid,
    pub source_channel: SourceChannel,
    pub program: Program,
    pub response_priority: ResponsePriority,
    /// When the provider created it in their system.
    pub created: DateTimeText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_date: Option<DateText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biller: Option<Biller>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<Member>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_custom_fields: Option<InvoiceCustomFields>,
    pub claims: Vec<Claim>,
}

/// A predetermination has the structure of an invoice.
pub type Predetermination = Invoice;

impl Invoice {
    pub fn claim(&self, claim_id: &Uuid) -> Option<&Claim> {
        self.claims.iter().find(|claim| claim.claim_id == *claim_id)
    }
}

/// The biller: makes the claim and receives the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Biller {
    pub biller_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 11 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<BillerAddress>,
}

/// The biller's address. The parameter table says `postcode`, the example `postalCode`: both
/// are read, `postcode` (the table) is emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillerAddress {
    /// Line 1 and line 2 of the street address.
    pub lines: Vec<String>,
    pub city: String,
    #[serde(alias = "postalCode")]
    pub postcode: String,
    /// E.g. NSW, VIC.
    pub state: String,
    pub country: String,
}

/// A person with membership of the program (invoice level; the `admin.member.check` data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub member_number: String,
    /// Mandatory in the member check; the invoice's member table omits it but its example has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<Program>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<DateText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<Gender>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_custom_fields: Option<MemberCustomFields>,
}

/// Member fields that depend on the program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberCustomFields {
    /// The person's identifier on the membership card for the whole invoice, e.g. "02".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_identifier: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Invoice-level fields that depend on the program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceCustomFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medicare: Option<MedicareInvoiceFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<MedicareReferral>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medicare_dva: Option<MedicareDva>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ndis: Option<NdisInvoiceFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wcq: Option<WcqInvoiceFields>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Medicare invoice parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicareInvoiceFields {
    /// The payee provider, if different from the servicing provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payee_provider_number: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

open_enum! {
    /// Medicare referral `overrideCode`: why services were provided without a referral.
    ReferralOverrideCode { Lost = "L", Emergency = "E", Hospital = "H", NotRequired = "N", RemoteExemption = "R" }
}

open_enum! {
    /// Medicare referral `periodType`.
    ReferralPeriodType {
        /// 12 months from a GP, 3 months from a specialist.
        Standard = "S",
        /// `period` months.
        NonStandard = "N",
        Indefinite = "I",
    }
}

open_enum! {
    /// Medicare referral provider `providerType`.
    ReferralProviderType { GeneralPractitioner = "G", Specialist = "S" }
}

/// Medicare referral parameters (required for some Medicare claims).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicareReferral {
    pub issue_date: DateText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_code: Option<ReferralOverrideCode>,
    pub period_type: ReferralPeriodType,
    /// Months, e.g. "7"; only with `periodType` N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    pub referral_provider: ReferralProvider,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The referring provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferralProvider {
    /// Medicare provider number.
    pub provider_number: String,
    pub provider_type: ReferralProviderType,
}

/// Medicare DVA parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicareDva {
    pub disability: Disability,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The member's White Card condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disability {
    /// Must match Medicare's value exactly; `null` when no description is provided (so it is
    /// always emitted, as `null` when `None`).
    #[serde(default)]
    pub description: Option<String>,
    /// Whether the treatment relates to the condition; false by default.
    pub is_related: bool,
}

/// NDIS invoice parameters (the Payee module).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NdisInvoiceFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payee_invoice: Option<bool>,
    /// Required when `payeeInvoice` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payee: Option<NdisPayee>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The NDIS payee (all required when `payeeInvoice` is true, except `reference`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NdisPayee {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the remittance is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// 6 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsb: Option<String>,
    /// 1 to 9 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_holder: Option<String>,
}

/// WorkCover Queensland invoice parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WcqInvoiceFields {
    /// The account number WCQ issued to this biller.
    pub biller_account_number: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One claim: an invoice line item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub claim_id: Uuid,
    /// The line's identifier in the biller's system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Who defines `itemCode` (the same code can appear in several publishers' lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_publisher: Option<String>,
    pub item_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_custom_fields: Option<ItemCustomFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Patient>,
    /// One of `serviceDate`, `serviceDateTime`, `servicePeriod` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_date: Option<DateText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_date_time: Option<DateTimeText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_period: Option<Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_received: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_authority: Option<String>,
    /// Up to 4 dp; the unit is defined by the program per item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<LineAmount>,
    /// Up to 4 dp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<LineAmount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_code: Option<TaxCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_line_item_number: Option<String>,
}

impl Claim {
    /// `quantity * unitPrice` when both are given and readable (exact; `None` on overflow).
    pub fn line_total(&self) -> Option<Decimal> {
        self.quantity.as_ref()?.number()?.checked_mul(self.unit_price.as_ref()?.number()?)
    }
}

/// A claim's `quantity` or `unitPrice` as HICAPS sent it: a decimal number, or something that is
/// not one (a string, a boolean, an object, a number beyond 28 digits). An unreadable amount is
/// kept rather than refused, so that line is answered `rejected` naming its field while the
/// invoice's other claims are adjudicated as usual. It is never logged: it could be anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineAmount {
    Number(Decimal),
    Unreadable,
}

impl LineAmount {
    pub fn number(&self) -> Option<Decimal> {
        match self {
            LineAmount::Number(number) => Some(*number),
            LineAmount::Unreadable => None,
        }
    }
}

impl From<Decimal> for LineAmount {
    fn from(number: Decimal) -> Self {
        LineAmount::Number(number)
    }
}

impl Serialize for LineAmount {
    /// As the number was written (`1.5000` stays `1.5000`); an unreadable amount as `null`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            LineAmount::Number(number) => rust_decimal::serde::arbitrary_precision::serialize(number, serializer),
            LineAmount::Unreadable => serializer.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for LineAmount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Any JSON value is accepted here; only a number that fits a Decimal is a Number.
        Ok(match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Number(number) => {
                let text = number.to_string();
                text.parse::<Decimal>()
                    .or_else(|_| Decimal::from_scientific(&text))
                    .map_or(LineAmount::Unreadable, LineAmount::Number)
            }
            _ => LineAmount::Unreadable,
        })
    }
}

/// Who provided the service: a person or an organization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Organization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrations: Option<Registrations>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_point: Option<ContactPoint>,
    /// Free text: the spec lists display names ("Physiotherapist") but its example sends
    /// "pharmacy", so no code list is enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discipline: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// E.g. the name of a gym or sports complex.
    pub facility_name: String,
}

/// The provider's registrations; open-ended ("any registrations that the provider has").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registrations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahpra_registration_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medicare_provider_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medibank_provider_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worksafevic_provider_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbs_pharmacy_approval_number: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactPoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
}

/// Claim fields that depend on the discipline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemCustomFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ndis: Option<NdisItemFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medicare: Option<MedicareItemFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub general_medical: Option<GeneralMedicalFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pharmacy: Option<PharmacyFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambulance: Option<AmbulanceFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pathologist: Option<PathologistFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radiologist: Option<RadiologistFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dental: Option<DentalFields>,
    #[serde(flatten)]
    pub extra: Extra,
}

open_enum! {
    /// NDIS `claimType`; absent or null for a standard claim.
    NdisClaimType {
        /// NDIA required report.
        Repw = "REPW",
        /// Provider travel.
        Tran = "TRAN",
        /// Non-face-to-face service.
        Nf2f = "NF2F",
        /// Telehealth support.
        Thlt = "THLT",
        /// Irregular SIL support.
        Irss = "IRSS",
        /// Cancellation (an NDIS claim type, not an invoice cancellation); needs `cancellationReason`.
        Canc = "CANC",
    }
}

open_enum! {
    /// NDIS `cancellationReason` for a CANC claim.
    NdisCancellationReason {
        /// No show due to health reason.
        Nsdh = "NSDH",
        /// No show due to family issue.
        Nsdf = "NSDF",
        /// No show due to unavailability or transport.
        Nsdt = "NSDT",
        /// Other.
        Nsdo = "NSDO",
    }
}

open_enum! {
    /// NDIS ABN `exemptionReason` mnemonic.
    NdisExemptionReason {
        /// Participant reimbursement.
        Reimb = "REIMB",
        /// ATO excluded supply.
        Excls = "EXCLS",
    }
}

/// NDIS claim parameters (NDIS API managed claims).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NdisItemFields {
    /// At most 10 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_booking_number: Option<u64>,
    /// 11-digit ABN of the payee (plan managed bookings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_abn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption_reason: Option<NdisExemptionReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_type: Option<NdisClaimType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<NdisCancellationReason>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Medicare claim parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicareItemFields {
    /// Km; `itemCode` must be "KM", and not with location type R.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<u32>,
    /// The practitioner attended the patient more than once that day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_service_override: Option<bool>,
    /// The service is not normal aftercare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_care_override: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// General medical claim parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneralMedicalFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_patients: Option<u32>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Pharmacy claim parameters. The spec's example also sends `dispensingPharmacistName`
/// (not in the table; kept in `extra`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PharmacyFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prescribing_doctor_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prescribing_doctor_name: Option<String>,
    /// Individual items dispensed from a part-pack (a string in the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_dispensed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_script_private: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Ambulance claim parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmbulanceFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick_up_date_time: Option<DateTimeText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick_up_address_line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick_up_address_line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick_up_city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick_up_postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick_up_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_off_date_time: Option<DateTimeText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_off_address_line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_off_address_line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_off_city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_off_postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_off_state: Option<String>,
    /// Kilometres travelled (a string in the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Pathology and radiology parameters: the doctor who prescribed or referred the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferringDoctorFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prescribing_doctor_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prescribing_doctor_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

pub type PathologistFields = ReferringDoctorFields;
pub type RadiologistFields = ReferringDoctorFields;

open_enum! {
    /// Dental `jaw`.
    Jaw { Upper = "upper", Lower = "lower" }
}

/// Dental claim parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DentalFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jaw: Option<Jaw>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_teeth: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tooth_number: Option<u32>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The person receiving the service, when not the member (not used for Medicare).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub member_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<DateText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<Gender>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_custom_fields: Option<PatientCustomFields>,
}

/// Patient fields that depend on the program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientCustomFields {
    /// The person's identifier on the membership card for this line, e.g. "1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_identifier: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// When a service started and ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub start: DateTimeText,
    pub end: DateTimeText,
}

open_enum! {
    /// Location `type` (required for Medicare).
    LocationType {
        Hospital = "H",
        HomeVisit = "V",
        /// Rooms; `itemCustomFields.medicare.distance` cannot be used with it.
        Rooms = "R",
        ResidentialCareFacility = "N",
        CommunityHealthCentre = "C",
    }
}

/// Where the service occurred.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<LocationType>,
}

/// A service address (`postalCode`, unlike the biller's `postcode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub lines: Vec<String>,
    pub city: String,
    pub postal_code: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// A WGS84 position. Decimals, so coordinates are relayed exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub longitude: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub latitude: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub altitude: Decimal,
}

/// `claiming.invoice.cancellationRequested` data: the biller asks to cancel an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancellationRequest {
    pub program: Program,
    pub invoice_id: Uuid,
    /// The program's own invoice id, if it gave one earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_invoice_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_nested_object_round_trips() {
        let claim: Value = serde_json::from_str(
            r#"{
            "claimId": "7329d4a5-a15d-4db0-a831-da2e6bbba425",
            "sequence": "3",
            "provider": {
                "person": {"givenName": "Sandy", "familyName": "Cheeks"},
                "registrations": {"ahpraRegistrationNumber": "PHY0001", "medicareProviderNumber": "2433411Y",
                    "worksafevicProviderNumber": "W1", "pbsPharmacyApprovalNumber": "P1", "dvaNumber": "X"},
                "contactPoint": {"email": "a@b.c", "mobile": "0400", "other": "fax"},
                "discipline": "Physiotherapist"
            },
            "itemCode": "KM",
            "itemCustomFields": {
                "ndis": {"serviceBookingNumber": 1234567890, "providerAbn": "51824753556", "exemptionReason": "REIMB",
                    "claimType": "CANC", "cancellationReason": "NSDH"},
                "medicare": {"distance": 15, "duplicateServiceOverride": true, "afterCareOverride": false},
                "generalMedical": {"numberOfPatients": 2},
                "ambulance": {"pickUpDateTime": "2019-08-07T10:00:00.000+10:00", "pickUpAddressLine1": "1 A St",
                    "pickUpAddressLine2": "", "pickUpCity": "Manly", "pickUpPostalCode": "2095", "pickUpState": "NSW",
                    "dropOffDateTime": "2019-08-07T11:00:00.000+10:00", "dropOffAddressLine1": "2 B St",
                    "dropOffAddressLine2": "", "dropOffCity": "Sydney", "dropOffPostalCode": "2000",
                    "dropOffState": "NSW", "kms": "20"},
                "pathologist": {"prescribingDoctorNumber": "1", "prescribingDoctorName": "Dr P"},
                "radiologist": {"prescribingDoctorNumber": "2", "prescribingDoctorName": "Dr R"},
                "dental": {"jaw": "upper", "numberOfTeeth": 2, "toothNumber": 18},
                "optical": {"lens": "left"}
            },
            "patient": {"memberNumber": "1", "givenName": "Pearl", "familyName": "Krabs", "birthDate": "2010-01-01",
                "gender": "unspecified", "patientCustomFields": {"personIdentifier": "1"}},
            "serviceDate": "2019-08-07",
            "servicePeriod": {"start": "2019-08-07T10:00:00.000+10:00", "end": "2019-08-07T11:00:00.000+10:00"},
            "location": {"address": {"lines": ["1 A St"], "city": "Manly", "postalCode": "2095", "state": "NSW",
                "country": "Australia"}, "position": {"longitude": 151.2853, "latitude": -33.7969, "altitude": 0.0},
                "type": "V"},
            "consentReceived": true,
            "consentAuthority": "patient",
            "quantity": 1.5000,
            "unitPrice": 12.3456,
            "taxCode": "FRE",
            "contractNumber": "C1",
            "contractLineItemNumber": "L1"
        }"#,
        )
        .expect("json");
        let parsed: Claim = serde_json::from_value(claim.clone()).expect("claim");
        assert_eq!(serde_json::to_value(&parsed).expect("json"), claim);
        let custom = parsed.item_custom_fields.as_ref().expect("custom fields");
        assert_eq!(custom.ndis.as_ref().and_then(|n| n.service_booking_number), Some(1234567890));
        assert_eq!(custom.extra.get("optical"), Some(&json!({"lens": "left"})));
        assert_eq!(parsed.line_total().map(|t| t.to_string()), Some("18.51840000".to_owned()));
        assert_eq!(parsed.location.as_ref().and_then(|l| l.kind.clone()), Some(LocationType::HomeVisit));

        let fields = json!({
            "medicare": {"payeeProviderNumber": "2433411Y"},
            "referral": {"issueDate": "2019-01-01", "overrideCode": "E", "periodType": "N", "period": "7",
                "referralProvider": {"providerNumber": "9988770W", "providerType": "G"}},
            "medicareDva": {"disability": {"description": null, "isRelated": false}},
            "ndis": {"payeeInvoice": true, "payee": {"name": "P", "email": "p@q.r", "reference": "R", "bsb": "123123",
                "accountNumber": "123456789", "accountHolder": "P"}},
            "wcq": {"billerAccountNumber": "W-1"}
        });
        let parsed: InvoiceCustomFields = serde_json::from_value(fields.clone()).expect("invoice custom fields");
        assert_eq!(serde_json::to_value(&parsed).expect("json"), fields);

        let member = json!({"memberNumber": "1", "program": "nib", "email": "m@n.o",
            "memberCustomFields": {"personIdentifier": "02", "planCode": "X"}});
        let parsed: Member = serde_json::from_value(member.clone()).expect("member");
        assert_eq!(serde_json::to_value(&parsed).expect("json"), member);
    }

    #[test]
    fn biller_postcode_spellings() {
        let address =
            json!({"lines": ["a", "b"], "city": "Manly", "postalCode": "2095", "state": "NSW", "country": "Australia"});
        let parsed: BillerAddress = serde_json::from_value(address).expect("postalCode");
        assert_eq!(parsed.postcode, "2095");
        let out = serde_json::to_value(&parsed).expect("json");
        assert_eq!(out["postcode"], "2095");
        assert!(out.get("postalCode").is_none());
    }
}
