//! Adjudication as rules in data: a benefit schedule per program (item code -> share of the
//! charge and/or cap per unit) and a member registry. Deterministic: the same invoice against the
//! same schedule always gets the same answer, so a redelivered webhook repeats its outcome.

use super::reference::{member_key, schedule_pk};
use crate::api_error::InvalidParam;
use crate::hicaps::{Adjudication, ClaimState, ClaimStatus, Invoice};
use crate::store::{Item, ItemGet, ItemQuery, Key, StoreError};
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::HashMap;

/// The schedule's rule for one item code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemRule {
    /// Share of the charge paid, in percent (100 when absent).
    pub percentage: Option<Decimal>,
    /// Most paid per unit.
    pub unit_benefit_cap: Option<Decimal>,
    /// A case manager decides: the claim is answered `pending` and decided later through
    /// `POST /invoices/{invoiceId}/status`.
    pub review: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Schedule(HashMap<String, ItemRule>);

const RULE_PREFIX: &str = "item#";

impl Schedule {
    pub fn from_rules(rules: impl IntoIterator<Item = (String, ItemRule)>) -> Self {
        Self(rules.into_iter().collect())
    }

    /// One Query for the whole program's schedule.
    pub async fn load(store: &dyn ItemQuery, program: &str) -> Result<Self, StoreError> {
        Ok(Self::from_items(&store.query(&schedule_pk(program), RULE_PREFIX).await?))
    }

    /// The key of the program's rule for `item_code`: an invoice's rules can be read by key, with
    /// whatever else its adjudication needs, instead of the whole schedule.
    pub fn rule_key(program: &str, item_code: &str) -> Key {
        Key::new(schedule_pk(program), format!("{RULE_PREFIX}{item_code}"))
    }

    /// The rules among `items` (schedule items; anything else is skipped).
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> Self {
        let decimal = |item: &Item, name: &str| item.str_attr(name).and_then(|v| v.parse::<Decimal>().ok());
        Self(
            items
                .into_iter()
                .filter(|item| item.key.pk.starts_with("schedule#"))
                .filter_map(|item| {
                    let code = item.key.sk.strip_prefix(RULE_PREFIX)?;
                    let rule = ItemRule {
                        percentage: decimal(item, "percentage"),
                        unit_benefit_cap: decimal(item, "unitBenefitCap"),
                        review: item.attrs.get("review").and_then(serde_json::Value::as_bool).unwrap_or(false),
                    };
                    Some((code.to_owned(), rule))
                })
                .collect(),
        )
    }
}

/// A member as the registry knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStanding {
    pub active: bool,
    pub status_title: Option<String>,
    pub status_description: Option<String>,
}

pub async fn member_standing(store: &dyn ItemGet, program: &str, member_number: &str) -> Result<Option<MemberStanding>, StoreError> {
    Ok(store.get(&member_key(program, member_number)).await?.as_ref().map(MemberStanding::from_item))
}

impl MemberStanding {
    /// The standing a member registry item records.
    pub fn from_item(item: &Item) -> Self {
        MemberStanding {
            active: item.str_attr("status") == Some("active"),
            status_title: item.str_attr("statusTitle").map(str::to_owned),
            status_description: item.str_attr("statusDescription").map(str::to_owned),
        }
    }
}

fn money(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn adjudication(reason: String, amount: Option<Decimal>, value: Option<String>) -> Adjudication {
    Adjudication { reason: Some(reason), amount, value }
}

fn rejected(claim_id: uuid::Uuid, title: &str, param: InvalidParam) -> ClaimStatus {
    let mut status = ClaimStatus::new(claim_id, ClaimState::Rejected).with_benefit(Decimal::ZERO);
    status.status_title = Some(title.to_owned());
    status.status_description = Some(param.reason.clone());
    status.invalid_params = vec![param];
    status
}

/// Every claim of `invoice` gets a status with its state, its benefit (2 dp) and the
/// adjudications explaining the amount. `member` is the registry's answer for the invoice's member.
pub fn adjudicate(invoice: &Invoice, schedule: &Schedule, member: Option<&MemberStanding>) -> Vec<ClaimStatus> {
    invoice
        .claims
        .iter()
        .map(|claim| {
            match member {
                None => {
                    return rejected(
                        claim.claim_id,
                        "Member not found",
                        InvalidParam::new("member.memberNumber", "The member is not registered with this program."),
                    );
                }
                Some(standing) if !standing.active => {
                    let mut status = rejected(
                        claim.claim_id,
                        "Member not covered",
                        InvalidParam::new("member.memberNumber", "The membership does not cover this claim."),
                    );
                    if let Some(title) = &standing.status_title {
                        status.status_title = Some(title.chars().take(20).collect());
                    }
                    if let Some(description) = &standing.status_description {
                        status.status_description = Some(description.clone());
                    }
                    return status;
                }
                Some(_) => {}
            }
            let Some(rule) = schedule.0.get(&claim.item_code) else {
                return rejected(
                    claim.claim_id,
                    "Unknown item",
                    InvalidParam::new("itemCode", format!("Item {} is unknown", claim.item_code)),
                );
            };
            if rule.review {
                let mut status = ClaimStatus::new(claim.claim_id, ClaimState::Pending);
                status.status_title = Some("Pending Review".to_owned());
                status.status_description =
                    Some("This claim is under review by a case manager and will be updated soon".to_owned());
                return status;
            }
            let quantity = claim.quantity.unwrap_or(Decimal::ONE);
            let unit_price = claim.unit_price.unwrap_or(Decimal::ZERO);
            let charged = money(quantity * unit_price);
            let mut adjudications = vec![adjudication(format!("Charged {quantity} x {unit_price}"), Some(charged), None)];
            let mut benefit = charged;
            if let Some(percentage) = rule.percentage {
                benefit = money(charged * percentage / Decimal::ONE_HUNDRED);
                adjudications.push(adjudication(
                    format!("The schedule pays {}% of the charge", percentage.normalize()),
                    Some(benefit),
                    Some(format!("{}%", percentage.normalize())),
                ));
            }
            if let Some(cap) = rule.unit_benefit_cap {
                let limit = money(quantity * cap);
                if benefit > limit {
                    benefit = limit;
                    adjudications.push(adjudication(format!("Capped at {cap} per unit"), Some(limit), None));
                }
            }
            let mut status = ClaimStatus::new(claim.claim_id, ClaimState::Approved).with_benefit(benefit);
            status.adjudications = adjudications;
            status
        })
        .collect()
}
