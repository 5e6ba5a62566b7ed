//! Payment webhooks (scheduled, failed, held, invoice overpaid) and the Payment Invoices / Held
//! Invoices response. HICAPS Program API, "Payments", gives no parameter tables, only examples: ids and amounts
//! are required, the rest optional.

use super::common::{DateText, Program};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `settlement.payment.scheduled` and `settlement.payment.failed` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// The program paying (a program code, e.g. "tac").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remitter: Option<Program>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_date: Option<DateText>,
    pub biller_id: Uuid,
    pub payment_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_reference: Option<String>,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub amount: Decimal,
    /// The account the biller was (or was to be) paid into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biller_bank_account: Option<BankAccount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BankAccount {
    pub bsb: String,
    pub account_number: String,
    pub account_name: String,
}

/// `settlement.payment.held` data: payments to the biller are held; invoices accumulate on
/// the open payment (see `lp:payment-invoices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentHeld {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remitter: Option<Program>,
    pub biller_id: Uuid,
    pub payment_id: Uuid,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub amount: Decimal,
}

/// `settlement.invoice.overpaid` data: claims cancelled or reduced after payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceOverpaid {
    pub biller_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<Program>,
    pub invoice_id: Uuid,
    pub overpaid_claims: Vec<ClaimAmount>,
}

/// A claim and an amount: a claim transaction of a payment, or an overpaid claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimAmount {
    pub claim_id: Uuid,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub amount: Decimal,
}

pub type ClaimTransaction = ClaimAmount;
pub type OverpaidClaim = ClaimAmount;

/// `GET /payments/{paymentId}/invoices`: the invoices and claim transactions of one payment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentInvoices {
    pub invoices: Vec<PaymentInvoice>,
}

/// The Held Invoices response has the same shape.
pub type HeldInvoices = PaymentInvoices;

impl PaymentInvoices {
    /// The sum of every claim transaction (exact; `None` on overflow).
    pub fn total(&self) -> Option<Decimal> {
        self.invoices.iter().try_fold(Decimal::ZERO, |sum, invoice| sum.checked_add(invoice.total()?))
    }
}

/// One invoice of a payment. Its claims are listed under `claimTransactions` in one example and
/// `claims` in another: both are read into `claims`, and emitted as `claimTransactions` (the
/// spec's words: "made up of claim transactions").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentInvoice {
    pub invoice_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_invoice_id: Option<String>,
    #[serde(rename = "claimTransactions", alias = "claims", default)]
    pub claims: Vec<ClaimTransaction>,
}

impl PaymentInvoice {
    /// The sum of the invoice's claim transactions (exact; `None` on overflow).
    pub fn total(&self) -> Option<Decimal> {
        self.claims.iter().try_fold(Decimal::ZERO, |sum, claim| sum.checked_add(claim.amount))
    }
}
