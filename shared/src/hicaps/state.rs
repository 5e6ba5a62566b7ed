//! Claim, invoice-level and member states, and the claim state machine.
//!
//! These are closed enums: an unknown value fails to parse ("unknown variant `x`, expected one
//! of ..."), because a state we cannot place in the machine must not be stored or forwarded.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The state of one claim (HICAPS Program API, "Claim State Definitions" tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClaimState {
    /// Submitted, awaiting the program's adjudication (set by HICAPS).
    AwaitingResponse,
    /// The program needs more time.
    Pending,
    /// Approved, but the decision may still change.
    ProvisionallyApproved,
    /// Rejected; the biller expects no payment.
    Rejected,
    /// Approved; paid in the next payment run to the value of `benefit`.
    Approved,
    /// The biller asked to cancel; awaiting the program (set by HICAPS).
    AwaitingCancelResponse,
    /// The program received the cancellation but will decide later.
    CancelPending,
    /// Cancelled by the program.
    Cancelled,
    /// Paid to the value of `benefit`.
    Paid,
    /// The payment failed.
    PaymentFailed,
}

use ClaimState::*;

/// The claim state machine, as data: each state and the states it may move to (besides itself).
///
/// | from | to |
/// | --- | --- |
/// | awaitingResponse | pending, provisionallyApproved, approved, rejected, + cancellation |
/// | pending | provisionallyApproved, approved, rejected, + cancellation |
/// | provisionallyApproved | approved, rejected, + cancellation |
/// | approved | paid, paymentFailed, + cancellation |
/// | rejected | + cancellation |
/// | paid | paymentFailed (a returned payment), + cancellation (overpaid invoice) |
/// | paymentFailed | paid, + cancellation |
/// | awaitingCancelResponse | cancelPending, cancelled, or back to any pre-cancellation state |
/// | cancelPending | cancelled, or back to any pre-cancellation state |
/// | cancelled | (terminal) |
///
/// "+ cancellation" is awaitingCancelResponse, cancelPending and cancelled: the biller may ask to
/// cancel "at any time", and a paid claim may still be cancelled (the Invoice Overpaid webhook).
/// "Back": the spec has the program move a claim "from cancelPending either back to approved (or
/// which ever state the claim had before) or to cancelled"; the prior state is not known here, so
/// any pre-cancellation state is accepted. Repeating the current state is always allowed: it
/// updates `statusTitle`, `benefit` or adjudications, and keeps retried posts idempotent.
pub const CLAIM_TRANSITIONS: &[(ClaimState, &[ClaimState])] = &[
    (
        AwaitingResponse,
        &[Pending, ProvisionallyApproved, Approved, Rejected, AwaitingCancelResponse, CancelPending, Cancelled],
    ),
    (Pending, &[ProvisionallyApproved, Approved, Rejected, AwaitingCancelResponse, CancelPending, Cancelled]),
    (ProvisionallyApproved, &[Approved, Rejected, AwaitingCancelResponse, CancelPending, Cancelled]),
    (Approved, &[Paid, PaymentFailed, AwaitingCancelResponse, CancelPending, Cancelled]),
    (Rejected, &[AwaitingCancelResponse, CancelPending, Cancelled]),
    (Paid, &[PaymentFailed, AwaitingCancelResponse, CancelPending, Cancelled]),
    (PaymentFailed, &[Paid, AwaitingCancelResponse, CancelPending, Cancelled]),
    (
        AwaitingCancelResponse,
        &[
            CancelPending,
            Cancelled,
            AwaitingResponse,
            Pending,
            ProvisionallyApproved,
            Approved,
            Rejected,
            Paid,
            PaymentFailed,
        ],
    ),
    (
        CancelPending,
        &[Cancelled, AwaitingResponse, Pending, ProvisionallyApproved, Approved, Rejected, Paid, PaymentFailed],
    ),
    (Cancelled, &[]),
];

impl ClaimState {
    pub const ALL: [ClaimState; 10] = [
        AwaitingResponse,
        Pending,
        ProvisionallyApproved,
        Rejected,
        Approved,
        AwaitingCancelResponse,
        CancelPending,
        Cancelled,
        Paid,
        PaymentFailed,
    ];

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            AwaitingResponse => "awaitingResponse",
            Pending => "pending",
            ProvisionallyApproved => "provisionallyApproved",
            Rejected => "rejected",
            Approved => "approved",
            AwaitingCancelResponse => "awaitingCancelResponse",
            CancelPending => "cancelPending",
            Cancelled => "cancelled",
            Paid => "paid",
            PaymentFailed => "paymentFailed",
        }
    }

    /// Whether a claim in `self` may move to `next` ([`CLAIM_TRANSITIONS`]).
    pub fn can_transition_to(self, next: ClaimState) -> bool {
        self == next
            || CLAIM_TRANSITIONS.iter().find(|(from, _)| *from == self).is_some_and(|(_, to)| to.contains(&next))
    }

    /// No way out: only `cancelled`.
    pub fn is_terminal(self) -> bool {
        self == Cancelled
    }

    /// A cancellation has been asked for and not yet decided.
    pub fn is_cancellation_pending(self) -> bool {
        matches!(self, AwaitingCancelResponse | CancelPending)
    }

    /// Whether the program may set this state in a status update. `awaitingResponse` and
    /// `awaitingCancelResponse` describe HICAPS waiting for the program, so only HICAPS sets them.
    /// `paid` and `paymentFailed` come only from HICAPS's payment webhooks: a program's later
    /// decision that set them would record a payment that never happened.
    pub fn is_program_settable(self) -> bool {
        !matches!(self, AwaitingResponse | AwaitingCancelResponse | Paid | PaymentFailed)
    }

    /// Approving states, for which HICAPS Program API, "Invoice Status Updated", requires a `benefit` per claim.
    pub fn is_approval(self) -> bool {
        matches!(self, Approved | ProvisionallyApproved)
    }
}

impl fmt::Display for ClaimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown state name; names the accepted values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`, expected one of: {expected}")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
    pub expected: String,
}

impl FromStr for ClaimState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| UnknownState {
            kind: "claim state",
            value: s.to_owned(),
            expected: Self::ALL.map(ClaimState::as_str).join(", "),
        })
    }
}

/// A state the program may set for a whole invoice instead of per claim ("Accepted values for
/// invoice-level state are: rejected, cancelled, cancelRejected, pending or cancelPending").
/// Approving is never invoice-level: each claim needs its own state and benefit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InvoiceLevelState {
    Rejected,
    Cancelled,
    /// The program declines the biller's cancellation: claims go back to their prior state.
    CancelRejected,
    Pending,
    CancelPending,
}

impl InvoiceLevelState {
    pub const ALL: [InvoiceLevelState; 5] = [
        InvoiceLevelState::Rejected,
        InvoiceLevelState::Cancelled,
        InvoiceLevelState::CancelRejected,
        InvoiceLevelState::Pending,
        InvoiceLevelState::CancelPending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceLevelState::Rejected => "rejected",
            InvoiceLevelState::Cancelled => "cancelled",
            InvoiceLevelState::CancelRejected => "cancelRejected",
            InvoiceLevelState::Pending => "pending",
            InvoiceLevelState::CancelPending => "cancelPending",
        }
    }

    /// The state every claim moves to; `None` for `cancelRejected`, which restores each claim's
    /// prior state.
    pub fn claim_state(self) -> Option<ClaimState> {
        match self {
            InvoiceLevelState::Rejected => Some(Rejected),
            InvoiceLevelState::Cancelled => Some(Cancelled),
            InvoiceLevelState::CancelRejected => None,
            InvoiceLevelState::Pending => Some(Pending),
            InvoiceLevelState::CancelPending => Some(CancelPending),
        }
    }
}

impl fmt::Display for InvoiceLevelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InvoiceLevelState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| UnknownState {
            kind: "invoice-level state",
            value: s.to_owned(),
            expected: Self::ALL.map(InvoiceLevelState::as_str).join(", "),
        })
    }
}

/// Member Status Updated `setState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemberState {
    Approved,
    Rejected,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Approved => "approved",
            MemberState::Rejected => "rejected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for state in ClaimState::ALL {
            assert_eq!(serde_json::to_value(state).expect("json"), state.as_str());
            assert_eq!(state.as_str().parse::<ClaimState>(), Ok(state));
        }
        for state in InvoiceLevelState::ALL {
            assert_eq!(serde_json::to_value(state).expect("json"), state.as_str());
            assert_eq!(state.as_str().parse::<InvoiceLevelState>(), Ok(state));
        }
        for state in [MemberState::Approved, MemberState::Rejected] {
            assert_eq!(serde_json::to_value(state).expect("json"), state.as_str());
        }
    }

    #[test]
    fn unknown_states_fail_clearly() {
        let error = serde_json::from_str::<ClaimState>("\"submitted\"").expect_err("not a state");
        assert!(error.to_string().contains("unknown variant `submitted`"), "{error}");
        assert!(error.to_string().contains("provisionallyApproved"), "{error}");
        let error = serde_json::from_str::<InvoiceLevelState>("\"approved\"").expect_err("not invoice-level");
        assert!(error.to_string().contains("unknown variant `approved`"), "{error}");
        let error = "Approved".parse::<ClaimState>().expect_err("case matters");
        assert!(error.to_string().contains("expected one of: awaitingResponse"), "{error}");
    }

    #[test]
    fn table_covers_every_state_once() {
        for state in ClaimState::ALL {
            assert_eq!(CLAIM_TRANSITIONS.iter().filter(|(from, _)| *from == state).count(), 1, "{state}");
        }
    }

    #[test]
    fn adjudication_flow() {
        for from in [AwaitingResponse, Pending] {
            for to in [Pending, ProvisionallyApproved, Approved, Rejected] {
                assert!(from.can_transition_to(to), "{from} -> {to}");
            }
        }
        assert!(ProvisionallyApproved.can_transition_to(Approved));
        assert!(ProvisionallyApproved.can_transition_to(Rejected));
        assert!(!ProvisionallyApproved.can_transition_to(Pending));
        assert!(!Pending.can_transition_to(AwaitingResponse));
        assert!(!Approved.can_transition_to(Rejected));
        assert!(!Approved.can_transition_to(Pending));
        assert!(!Rejected.can_transition_to(Approved));
        assert!(!Rejected.can_transition_to(Pending));
    }

    #[test]
    fn payment_flow() {
        assert!(Approved.can_transition_to(Paid));
        assert!(Approved.can_transition_to(PaymentFailed));
        assert!(PaymentFailed.can_transition_to(Paid));
        assert!(Paid.can_transition_to(PaymentFailed));
        for from in [AwaitingResponse, Pending, ProvisionallyApproved, Rejected] {
            assert!(!from.can_transition_to(Paid), "{from} -> paid");
        }
        assert!(!Paid.can_transition_to(Approved));
        assert!(!Paid.can_transition_to(Pending));
    }

    #[test]
    fn cancellation_flow() {
        for from in ClaimState::ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert!(from.can_transition_to(Cancelled), "{from} -> cancelled");
            assert!(from.can_transition_to(CancelPending), "{from} -> cancelPending");
        }
        for from in [AwaitingCancelResponse, CancelPending] {
            for back in [Pending, ProvisionallyApproved, Approved, Paid] {
                assert!(from.can_transition_to(back), "{from} -> {back}");
            }
        }
        assert!(AwaitingCancelResponse.can_transition_to(CancelPending));
        assert!(!CancelPending.can_transition_to(AwaitingCancelResponse));
    }

    #[test]
    fn cancelled_is_terminal() {
        for to in ClaimState::ALL {
            assert_eq!(Cancelled.can_transition_to(to), to == Cancelled, "cancelled -> {to}");
        }
    }

    #[test]
    fn repeating_a_state_is_allowed() {
        for state in ClaimState::ALL {
            assert!(state.can_transition_to(state), "{state}");
        }
    }

    #[test]
    fn program_settable() {
        assert!(!AwaitingResponse.is_program_settable());
        assert!(!AwaitingCancelResponse.is_program_settable());
        assert!(!Paid.is_program_settable() && !PaymentFailed.is_program_settable(), "only payment webhooks set them");
        assert!(Approved.is_program_settable());
        assert!(CancelPending.is_program_settable());
    }

    #[test]
    fn invoice_level_maps_to_claims() {
        assert_eq!(InvoiceLevelState::Rejected.claim_state(), Some(Rejected));
        assert_eq!(InvoiceLevelState::CancelRejected.claim_state(), None);
        assert_eq!(InvoiceLevelState::CancelPending.claim_state(), Some(CancelPending));
    }
}
