//! The HICAPS Program API: webhooks HICAPS sends to a Program and the callbacks the Program posts.
//!
//! - Receiving: [`parse_envelope`] (enough to acknowledge and de-duplicate on `id` whatever the
//!   `type`) and [`parse_webhook`] (typed [`WebhookEvent`] keyed on `type`).
//! - Posting: [`InvoiceStatusUpdate`], [`PredeterminationStatusUpdate`], [`MemberStatusUpdate`];
//!   a status update from the program's staff goes through [`parse_status_update`] and
//!   [`validate_status_update`] first.
//! - Claim states and their transitions: [`ClaimState`], [`CLAIM_TRANSITIONS`].
//! - The client that posts them: [`client::HicapsClient`] (OAuth2 client credentials, allowed
//!   hosts only).
//!
//! Money and quantities are [`rust_decimal::Decimal`] read and written as JSON numbers through
//! serde_json's `arbitrary_precision`, so `55.63` never passes through a float. Where the HICAPS Program API is
//! inconsistent (`created`, `lp_webhook-error`, `postcode`/`postalCode`, `claims`/
//! `claimTransactions`) every form is read and the documented one emitted; see each type.

mod callbacks;
pub mod client;
mod common;
mod invoice;
mod settlement;
mod state;
mod validate;
mod webhook;

pub use crate::api_error::{ApiError, InvalidParam};
pub use callbacks::{
    Action, ActionClass, Adjudication, ClaimStatus, InvoiceStatusUpdate, MemberStatusUpdate,
    PredeterminationStatusUpdate, RootResponse,
};
pub use common::{
    DateText, DateTimeText, Gender, MONEY_DP, Program, QUANTITY_DP, ResponsePriority, SourceChannel, TaxCode,
    has_at_most_dp,
};
pub use invoice::{
    Address, AmbulanceFields, Biller, BillerAddress, CancellationRequest, Claim, ContactPoint, DentalFields,
    Disability, Extra, GeneralMedicalFields, Invoice, InvoiceCustomFields, ItemCustomFields, Jaw, LineAmount, Location,
    LocationType, MedicareDva, MedicareInvoiceFields, MedicareItemFields, MedicareReferral, Member, MemberCustomFields,
    NdisCancellationReason, NdisClaimType, NdisExemptionReason, NdisInvoiceFields, NdisItemFields, NdisPayee,
    Organization, PathologistFields, Patient, PatientCustomFields, Period, Person, PharmacyFields, Position,
    Predetermination, Provider, RadiologistFields, ReferralOverrideCode, ReferralPeriodType, ReferralProvider,
    ReferralProviderType, ReferringDoctorFields, Registrations, WcqInvoiceFields,
};
pub use settlement::{
    BankAccount, ClaimAmount, ClaimTransaction, HeldInvoices, InvoiceOverpaid, OverpaidClaim, Payment, PaymentHeld,
    PaymentInvoice, PaymentInvoices,
};
pub use state::{CLAIM_TRANSITIONS, ClaimState, InvoiceLevelState, MemberState, UnknownState};
pub use validate::{STATUS_TITLE_MAX_CHARS, is_valid_benefit, parse_status_update, validate_status_update};
pub use webhook::{Link, LinkValue, Links, Webhook, WebhookCreated, WebhookEnvelope, WebhookEvent, WebhookType, rel};

/// Reads a webhook body into its typed form. Errors say what is wrong: a missing field, an
/// unknown `type` (listing the known ones), or which part of `data` does not fit its schema.
pub fn parse_webhook(body: &[u8]) -> Result<Webhook, serde_json::Error> {
    parse_envelope(body)?.into_webhook()
}

/// Reads only the envelope (`id`, `created`, `type`, `_links`; `data` untyped), so a receiver can
/// acknowledge and de-duplicate any webhook, including types this version does not know.
pub fn parse_envelope(body: &[u8]) -> Result<WebhookEnvelope, serde_json::Error> {
    serde_json::from_slice(body)
}
