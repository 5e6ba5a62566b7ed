//! What the program posts back to HICAPS (Invoice, Predetermination and Member Status Updated),
//! and the API root resource.

use super::common::{null_as_default, open_enum};
use super::state::{ClaimState, InvoiceLevelState, MemberState};
use super::webhook::Links;
use crate::api_error::InvalidParam;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST {lp:invoice-status-updated}`: the program's decision on some or all claims of an
/// invoice, or on the whole invoice (`state`), never both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceStatusUpdate {
    /// The program's reference for the invoice, usable in later calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_invoice_id: Option<String>,
    /// Steps the biller must take before the invoice can proceed.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
    /// The whole invoice's state; exclusive with `claimStatuses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<InvoiceLevelState>,
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub claim_statuses: Vec<ClaimStatus>,
    /// Invoice-level fields that led to the outcome.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

impl InvoiceStatusUpdate {
    /// A whole-invoice decision.
    pub fn invoice_level(state: InvoiceLevelState) -> Self {
        Self { state: Some(state), ..Self::default() }
    }

    /// Per-claim decisions.
    pub fn claims(claim_statuses: Vec<ClaimStatus>) -> Self {
        Self { claim_statuses, ..Self::default() }
    }
}

open_enum! {
    /// Action `class` ("for example info or action").
    ActionClass { Info = "info", Action = "action" }
}

/// Something the biller must do before the invoice can be processed (invoice level).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// Short; may display as a tooltip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the biller completes the action or reads more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ActionClass>,
}

/// The program's outcome for one claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimStatus {
    /// From the claim in the Invoice Submitted webhook.
    pub claim_id: Uuid,
    /// The program's reference for the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_claim_id: Option<String>,
    /// The amount the program pays, 2 dp; may be absent for a status-only update.
    #[serde(
        default,
        with = "rust_decimal::serde::arbitrary_precision_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub benefit: Option<Decimal>,
    /// How the decision was reached; does not affect `benefit`.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub adjudications: Vec<Adjudication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ClaimState>,
    /// A custom status shown instead of or beside the state; at most 20 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_description: Option<String>,
    /// Claim-level fields that led to the outcome.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

impl ClaimStatus {
    pub fn new(claim_id: Uuid, state: ClaimState) -> Self {
        Self {
            claim_id,
            program_claim_id: None,
            benefit: None,
            adjudications: Vec::new(),
            state: Some(state),
            status_title: None,
            status_description: None,
            invalid_params: Vec::new(),
        }
    }

    pub fn with_benefit(mut self, benefit: Decimal) -> Self {
        self.benefit = Some(benefit);
        self
    }
}

/// One component of a funding decision, for the receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Adjudication {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A monetary component, 2 dp.
    #[serde(
        default,
        with = "rust_decimal::serde::arbitrary_precision_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub amount: Option<Decimal>,
    /// A non-monetary component, e.g. "70%".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `POST {lp:predetermination-status-updated}`: the expected outcome per claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PredeterminationStatusUpdate {
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
    pub claim_statuses: Vec<ClaimStatus>,
}

/// `POST {lp:update-member-state}`: the answer to a member check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatusUpdate {
    /// The program's number for this member.
    pub member_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_state: Option<MemberState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_description: Option<String>,
    /// Why a check was rejected for its own data (not in HICAPS Program API, "Member Status Updated"; the
    /// API Error Payload's form, as the claim statuses use it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

/// `GET /`: the API root, with the OAuth endpoints among its links.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootResponse {
    #[serde(rename = "_links", default)]
    pub links: Links,
}

impl RootResponse {
    /// `lp:oauth-token`: where to obtain a client-credentials access token.
    pub fn oauth_token_href(&self) -> Option<&str> {
        self.links.href("lp:oauth-token")
    }
}
