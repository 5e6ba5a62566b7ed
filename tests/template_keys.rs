//! Each function's role in infra/template.yaml may touch exactly the table keys its code uses:
//! its statements on the table all carry `dynamodb:LeadingKeys`, and together they allow the
//! function's `TABLE_KEY_PREFIXES` (built from the constants its key builders use), no prefix
//! missing and none stale. moto enforces no IAM, so without this a wrong prefix shows only as
//! AccessDenied in AWS.

use std::collections::BTreeSet;

const TEMPLATE: &str = include_str!("../infra/template.yaml");

/// The lines of the template's resource `name`, below its header.
fn resource(name: &str) -> Vec<&'static str> {
    let header = format!("  {name}:");
    TEMPLATE
        .lines()
        .skip_while(|line| *line != header)
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with("   "))
        .collect()
}

/// The role's `dynamodb:LeadingKeys` over all its statements, and the `Sid`s of its statements
/// on the table that have none.
fn leading_keys(role: &str) -> (BTreeSet<String>, Vec<String>) {
    let body = resource(role);
    assert!(!body.is_empty(), "no resource {role} in the template");
    let mut allowed = BTreeSet::new();
    let mut open = Vec::new();
    for statement in body.join("\n").split("- Sid: ").skip(1) {
        if !statement.contains("Table.Arn") {
            continue;
        }
        let keys = statement.lines().find_map(|line| line.trim().strip_prefix("dynamodb:LeadingKeys:"));
        match keys {
            Some(list) => allowed.extend(
                list.trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .split(',')
                    .map(|key| key.trim().trim_matches('"').to_owned()),
            ),
            None => open.push(statement.lines().next().unwrap_or_default().to_owned()),
        }
    }
    (allowed, open)
}

#[test]
fn each_role_may_touch_exactly_the_keys_its_code_uses() {
    let roles: [(&str, &[&str]); 5] = [
        ("WebhookReceiverRole", webhook_receiver::TABLE_KEY_PREFIXES),
        ("InvoiceStatusPosterRole", invoice_status_poster::TABLE_KEY_PREFIXES),
        ("IcpQueryProxyRole", icp_query_proxy::TABLE_KEY_PREFIXES),
        ("EligibilityCheckRole", eligibility_check::TABLE_KEY_PREFIXES),
        ("IcareSenderRole", icare_sender::TABLE_KEY_PREFIXES),
    ];
    for (role, prefixes) in roles {
        let (allowed, open) = leading_keys(role);
        assert!(open.is_empty(), "{role}: statements on the table without dynamodb:LeadingKeys: {open:?}");
        let expected: BTreeSet<String> = prefixes.iter().map(|prefix| format!("{prefix}*")).collect();
        let missing: Vec<_> = expected.difference(&allowed).collect();
        let stale: Vec<_> = allowed.difference(&expected).collect();
        assert!(missing.is_empty() && stale.is_empty(), "{role}: missing {missing:?}, stale {stale:?}");
    }
    let table_users = TEMPLATE.matches("Resource: !GetAtt Table.Arn").count();
    let checked: usize = roles
        .iter()
        .map(|(role, _)| {
            let header = format!("  {role}:");
            TEMPLATE
                .lines()
                .skip_while(|l| *l != header)
                .skip(1)
                .take_while(|l| l.is_empty() || l.starts_with("   "))
                .filter(|l| l.contains("Resource: !GetAtt Table.Arn"))
                .count()
        })
        .sum();
    assert_eq!(table_users, checked, "a resource outside the five roles is granted the table");
}

/// The prefixes themselves: what the key builders produce starts with them.
#[test]
fn the_prefixes_are_the_ones_keys_are_built_with() {
    assert!(shared::program::records::invoice_pk("i").starts_with(shared::program::records::INVOICE_PREFIX));
    assert!(shared::program::reference::schedule_pk("mpl").starts_with(shared::program::reference::SCHEDULE_PREFIX));
    assert!(
        shared::program::reference::member_key("mpl", "1").pk.starts_with(shared::program::reference::MEMBER_PREFIX)
    );
    assert!(shared::idempotency::key("w").pk.starts_with(shared::idempotency::KEY_PREFIX));
    for prefixes in [
        webhook_receiver::TABLE_KEY_PREFIXES,
        invoice_status_poster::TABLE_KEY_PREFIXES,
        icp_query_proxy::TABLE_KEY_PREFIXES,
        eligibility_check::TABLE_KEY_PREFIXES,
        icare_sender::TABLE_KEY_PREFIXES,
    ] {
        assert!(prefixes.iter().all(|p| p.ends_with('#') && !p[..p.len() - 1].contains('#')), "{prefixes:?}");
    }
}

/// The poster honours `Retry-After` up to the work queue's visibility timeout: the template's
/// queue must have the visibility the code caps at.
#[test]
fn the_work_queue_visibility_is_the_retry_after_cap() {
    let queue = resource("WorkQueue");
    let visibility = queue
        .iter()
        .find_map(|line| line.trim().strip_prefix("VisibilityTimeout:"))
        .and_then(|value| value.trim().parse::<u64>().ok())
        .expect("WorkQueue has a VisibilityTimeout");
    assert_eq!(visibility, invoice_status_poster::RETRY_AFTER_MAX.as_secs());
}

/// Later decisions are the program's alone: API Gateway asks for the decision scope before the
/// function runs, and the function is told which callers may decide.
#[test]
fn the_decision_route_requires_its_scope_and_the_function_its_callers() {
    let route = resource("InvoiceStatusRoute");
    assert!(route.iter().any(|line| line.trim() == "RouteKey: POST /invoices/{invoiceId}/status"), "{route:#?}");
    assert!(route.iter().any(|line| line.trim() == "AuthorizationType: JWT"), "{route:#?}");
    assert!(route.iter().any(|line| line.trim() == "AuthorizationScopes: [!Ref DecisionScope]"), "{route:#?}");
    assert!(TEMPLATE.contains("DECISION_CALLERS: !Ref DecisionCallers"), "the receiver gets DECISION_CALLERS");
}
