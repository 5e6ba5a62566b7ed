//! Adjudication as rules in data: a benefit schedule per program (item code -> share of the
//! charge and/or cap per unit) and a member registry. Deterministic: the same invoice against the
//! same schedule always gets the same answer, so a redelivered webhook repeats its outcome.

use super::reference::{member_key, schedule_pk};
use crate::api_error::InvalidParam;
use crate::hicaps::{Adjudication, Claim, ClaimState, ClaimStatus, Invoice, LineAmount};
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
                .filter(|item| item.key.pk.starts_with(crate::program::reference::SCHEDULE_PREFIX))
                .filter_map(|item| {
                    let code = item.key.sk.strip_prefix(RULE_PREFIX)?;
                    let percentage = decimal(item, "percentage");
                    let unit_benefit_cap = decimal(item, "unitBenefitCap");
                    // A negative share or cap would post a negative benefit: a person decides.
                    let negative =
                        [percentage, unit_benefit_cap].iter().flatten().any(|d| d.is_sign_negative() && !d.is_zero());
                    let rule = ItemRule {
                        percentage,
                        unit_benefit_cap,
                        review: negative
                            || item.attrs.get("review").and_then(serde_json::Value::as_bool).unwrap_or(false),
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

pub async fn member_standing(
    store: &dyn ItemGet,
    program: &str,
    member_number: &str,
) -> Result<Option<MemberStanding>, StoreError> {
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

fn rejected_params(claim_id: uuid::Uuid, title: &str, params: Vec<InvalidParam>) -> ClaimStatus {
    let mut status = ClaimStatus::new(claim_id, ClaimState::Rejected).with_benefit(Decimal::ZERO);
    status.status_title = Some(title.to_owned());
    status.status_description = params.first().map(|param| param.reason.clone());
    status.invalid_params = params;
    status
}

/// Most units one claim line may carry. Quantities are sessions, items or kilometres; ten
/// thousand of them on one line is already far past any real invoice.
pub const MAX_QUANTITY: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);
/// Most a unit may cost, in dollars. Above the dearest single health service line (a prosthesis
/// or a day in intensive care is tens of thousands); it also keeps the line total, at most
/// 10^10, far inside a Decimal.
pub const MAX_UNIT_PRICE: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// The line's quantity (1 when absent) and unit price (0 when absent), or every field that is
/// unreadable, negative or over its bound.
fn line_amounts(claim: &Claim) -> Result<(Decimal, Decimal), Vec<InvalidParam>> {
    let check =
        |amount: Option<&LineAmount>, default: Decimal, max: Decimal, name: &str, problems: &mut Vec<InvalidParam>| {
            let reason = match amount {
                None => return default,
                Some(LineAmount::Unreadable) => format!("'{name}' must be a decimal number."),
                Some(LineAmount::Number(number)) if number.is_sign_negative() && !number.is_zero() => {
                    format!("'{name}' must not be negative.")
                }
                Some(LineAmount::Number(number)) if *number > max => format!("'{name}' must be at most {max}."),
                Some(LineAmount::Number(number)) => return *number,
            };
            problems.push(InvalidParam::new(name, reason));
            default
        };
    let mut problems = Vec::new();
    let quantity = check(claim.quantity.as_ref(), Decimal::ONE, MAX_QUANTITY, "quantity", &mut problems);
    let unit_price = check(claim.unit_price.as_ref(), Decimal::ZERO, MAX_UNIT_PRICE, "unitPrice", &mut problems);
    if problems.is_empty() { Ok((quantity, unit_price)) } else { Err(problems) }
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
            let (quantity, unit_price) = match line_amounts(claim) {
                Ok(amounts) => amounts,
                Err(params) => return rejected_params(claim.claim_id, "Invalid amount", params),
            };
            // Within the bounds the line total is at most 10^10 and every step below fits a
            // Decimal; the checked operations keep that true whatever the bounds become.
            let too_large = || {
                rejected(
                    claim.claim_id,
                    "Invalid amount",
                    InvalidParam::new("unitPrice", "The line total is too large."),
                )
            };
            let Some(charged) = quantity.checked_mul(unit_price).map(money) else {
                return too_large();
            };
            let mut adjudications =
                vec![adjudication(format!("Charged {quantity} x {unit_price}"), Some(charged), None)];
            let mut benefit = charged;
            if let Some(percentage) = rule.percentage {
                let Some(share) = charged.checked_mul(percentage).and_then(|d| d.checked_div(Decimal::ONE_HUNDRED))
                else {
                    return too_large();
                };
                benefit = money(share);
                adjudications.push(adjudication(
                    format!("The schedule pays {}% of the charge", percentage.normalize()),
                    Some(benefit),
                    Some(format!("{}%", percentage.normalize())),
                ));
            }
            if let Some(cap) = rule.unit_benefit_cap {
                let Some(limit) = quantity.checked_mul(cap).map(money) else {
                    return too_large();
                };
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const WEBHOOK: &str = include_str!("../../tests/fixtures/hicaps/invoice-submitted-webhook.json");

    fn invoice_with(claims: Vec<Value>) -> Invoice {
        let mut data: Value = serde_json::from_str::<Value>(WEBHOOK).expect("fixture")["data"].clone();
        data["claims"] = Value::Array(claims);
        serde_json::from_value(data).expect("invoice")
    }

    fn claim(quantity: Value, unit_price: Value) -> Value {
        json!({"claimId": uuid::Uuid::new_v4(), "itemCode": "10|1|1", "quantity": quantity, "unitPrice": unit_price})
    }

    fn schedule() -> Schedule {
        let rule =
            ItemRule { percentage: Some(Decimal::from(80)), unit_benefit_cap: Some(Decimal::from(40)), review: false };
        Schedule::from_rules([("10|1|1".to_owned(), rule)])
    }

    fn active() -> MemberStanding {
        MemberStanding { active: true, status_title: None, status_description: None }
    }

    fn rejected_fields(status: &ClaimStatus) -> Vec<&str> {
        assert_eq!(status.state, Some(ClaimState::Rejected));
        assert_eq!(status.benefit, Some(Decimal::ZERO));
        status.invalid_params.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn amounts_that_would_overflow_reject_the_claim_and_the_others_are_adjudicated() {
        let invoice = invoice_with(vec![
            claim(json!(100000000000000000u64), json!(10000000000000u64)),
            claim(json!(1), json!(55.63)),
        ]);
        let statuses = adjudicate(&invoice, &schedule(), Some(&active()));
        assert_eq!(rejected_fields(&statuses[0]), ["quantity", "unitPrice"]);
        assert_eq!(statuses[1].state, Some(ClaimState::Approved));
        assert_eq!(statuses[1].benefit, Some(Decimal::new(4000, 2)));
    }

    #[test]
    fn negative_and_unreadable_amounts_are_rejected_naming_the_field() {
        let invoice = invoice_with(vec![
            claim(json!(1), json!(-50)),
            claim(json!("Zebediah-77"), json!(10)),
            claim(json!(-1), json!(10)),
            claim(json!(1), json!(1e300)),
            claim(json!(true), json!({"a": 1})),
        ]);
        let statuses = adjudicate(&invoice, &schedule(), Some(&active()));
        assert_eq!(rejected_fields(&statuses[0]), ["unitPrice"]);
        assert_eq!(rejected_fields(&statuses[1]), ["quantity"]);
        assert_eq!(rejected_fields(&statuses[2]), ["quantity"]);
        assert_eq!(rejected_fields(&statuses[3]), ["unitPrice"]);
        assert_eq!(rejected_fields(&statuses[4]), ["quantity", "unitPrice"]);
    }

    #[test]
    fn amounts_at_the_bounds_are_adjudicated() {
        let invoice = invoice_with(vec![claim(json!(10000), json!(1000000)), claim(json!(0), json!(0))]);
        let statuses = adjudicate(&invoice, &schedule(), Some(&active()));
        assert_eq!(statuses[0].state, Some(ClaimState::Approved));
        assert_eq!(statuses[0].benefit, Some(Decimal::from(400_000)), "capped at 40 per unit");
        assert_eq!(statuses[1].benefit, Some(Decimal::ZERO));
    }

    #[test]
    fn a_schedule_rule_with_a_negative_share_goes_to_review() {
        let item = Item::new(
            Schedule::rule_key("mpl", "10|1|1"),
            serde_json::from_value(json!({"percentage": "-80"})).expect("attrs"),
        );
        let invoice = invoice_with(vec![claim(json!(1), json!(50))]);
        let statuses = adjudicate(&invoice, &Schedule::from_items([&item]), Some(&active()));
        assert_eq!(statuses[0].state, Some(ClaimState::Pending));
    }

    proptest::proptest! {
        #[test]
        fn no_benefit_is_ever_negative_or_a_panic(quantity in proptest::num::i64::ANY, scale in 0u32..28, price in proptest::num::i64::ANY) {
            let quantity = Decimal::new(quantity, scale);
            let price = Decimal::new(price, scale.min(4));
            let number = |d: Decimal| serde_json::from_str::<Value>(&d.to_string()).expect("a JSON number");
            let invoice = invoice_with(vec![claim(number(quantity), number(price))]);
            for status in adjudicate(&invoice, &schedule(), Some(&active())) {
                proptest::prop_assert!(status.benefit.is_none_or(|b| !b.is_sign_negative() || b.is_zero()));
            }
        }
    }
}
