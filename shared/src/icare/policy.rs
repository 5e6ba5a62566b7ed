//! A workplace policy and its opt-in to the iCare API integration ("Insurer API Integration").
//!
//! Turning the integration on requires the policy type "Insurer Scheme – NSW" (with an en dash),
//! the insurer "iCare" and an iCare policy number, which may differ from the insurer's policy
//! number. Both names are read tolerantly (any dash, any case, extra spaces) and kept in the
//! documented form.

use super::fields::{self, object};
use crate::api_error::{ApiError, Problems};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const NSW_INSURER_SCHEME: &str = "Insurer Scheme – NSW";
pub const ICARE: &str = "iCare";
const MAX_ID_CHARS: usize = 64;
const MAX_TEXT_CHARS: usize = 100;
const MAX_POLICY_NUMBER_CHARS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub policy_id: String,
    pub policy_type: String,
    pub insurer: String,
    pub policy_number: String,
    pub insurer_api_integration: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icare_policy_number: Option<String>,
}

impl Policy {
    /// The iCare policy number to notify under, when the integration is on.
    pub fn icare_policy_number_if_on(&self) -> Option<&str> {
        self.icare_policy_number.as_deref().filter(|_| self.insurer_api_integration)
    }

    /// What to do when a notification names a policy whose integration is off.
    pub fn how_to_turn_on(policy_id: &str) -> String {
        format!(
            "Policy {policy_id} does not have the iCare API integration turned on. Turn it on with \
             PUT /icare/policies/{policy_id} setting policyType \"{NSW_INSURER_SCHEME}\", insurer \"{ICARE}\", \
             insurerApiIntegration true and the icarePolicyNumber iCare gave you."
        )
    }
}

/// `None` when `id` can be a policy id (1-64 letters, digits, `.`, `_`, `-`), else the reason.
pub fn validate_policy_id(id: &str) -> Option<String> {
    let valid = !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    (!valid).then(|| format!("must be 1 to {MAX_ID_CHARS} letters, digits, '.', '_' or '-'"))
}

fn canonical(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if matches!(c, '–' | '—' | '‐' | '‑' | '−') { '-' } else { c })
        .collect::<String>()
        .to_lowercase()
}

/// Normalises a policy type that means the NSW insurer scheme to its documented form.
fn normalise_policy_type(text: String) -> String {
    if canonical(&text) == canonical(NSW_INSURER_SCHEME) { NSW_INSURER_SCHEME.to_owned() } else { text }
}

fn normalise_insurer(text: String) -> String {
    if text.trim().eq_ignore_ascii_case(ICARE) { ICARE.to_owned() } else { text }
}

/// Reads the body of `PUT /icare/policies/{policyId}`, naming every problem at once.
pub fn validate_policy(policy_id: &str, body: &Value) -> Result<Policy, ApiError> {
    let mut problems = Problems::new();
    if let Some(reason) = validate_policy_id(policy_id) {
        problems.push("policyId", reason);
    }
    let Some(object) = object(&mut problems, Some(body), "body", true) else {
        return Err(ApiError::validation(problems.into_vec()));
    };
    let policy_type = fields::text(&mut problems, object, "", "policyType", MAX_TEXT_CHARS).map(normalise_policy_type);
    let insurer = fields::text(&mut problems, object, "", "insurer", MAX_TEXT_CHARS).map(normalise_insurer);
    let policy_number = fields::text(&mut problems, object, "", "policyNumber", MAX_POLICY_NUMBER_CHARS);
    let integration = match object.get("insurerApiIntegration") {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(on)) => Some(*on),
        Some(_) => {
            problems.push("insurerApiIntegration", "must be true or false");
            None
        }
    };
    let icare_policy_number =
        fields::optional_text(&mut problems, object, "", "icarePolicyNumber", MAX_POLICY_NUMBER_CHARS);
    if integration == Some(true) {
        if policy_type.as_deref().is_some_and(|t| t != NSW_INSURER_SCHEME) {
            problems.push("policyType", format!("must be \"{NSW_INSURER_SCHEME}\" to turn on insurerApiIntegration"));
        }
        if insurer.as_deref().is_some_and(|i| i != ICARE) {
            problems.push("insurer", format!("must be \"{ICARE}\" to turn on insurerApiIntegration"));
        }
        if icare_policy_number.is_none() && object.get("icarePolicyNumber").is_none_or(Value::is_null) {
            problems.push("icarePolicyNumber", "is required when insurerApiIntegration is true");
        }
    }
    problems.finish(Policy {
        policy_id: policy_id.to_owned(),
        policy_type: policy_type.unwrap_or_default(),
        insurer: insurer.unwrap_or_default(),
        policy_number: policy_number.unwrap_or_default(),
        insurer_api_integration: integration.unwrap_or_default(),
        icare_policy_number,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(error: &ApiError) -> Vec<&str> {
        error.invalid_params.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn integration_on_needs_nsw_scheme_icare_and_an_icare_policy_number() {
        let error = validate_policy(
            "p1",
            &json!({"policyType": "Self insurer", "insurer": "Allianz", "policyNumber": "P-1", "insurerApiIntegration": true}),
        )
        .expect_err("invalid");
        assert_eq!(names(&error), ["policyType", "insurer", "icarePolicyNumber"]);
    }

    #[test]
    fn integration_on_with_everything_is_valid_and_normalised() {
        let policy = validate_policy(
            "p1",
            &json!({"policyType": "insurer scheme - NSW", "insurer": "ICARE", "policyNumber": "P-1",
                    "insurerApiIntegration": true, "icarePolicyNumber": "IC-9"}),
        )
        .expect("valid");
        assert_eq!(policy.policy_type, NSW_INSURER_SCHEME);
        assert_eq!(policy.insurer, ICARE);
        assert_eq!(policy.icare_policy_number_if_on(), Some("IC-9"));
    }

    #[test]
    fn integration_off_allows_any_policy() {
        let policy =
            validate_policy("p-2", &json!({"policyType": "Self insurer", "insurer": "Allianz", "policyNumber": "X"}))
                .expect("valid");
        assert!(!policy.insurer_api_integration);
        assert_eq!(policy.icare_policy_number_if_on(), None);
    }

    #[test]
    fn missing_fields_and_bad_id_are_all_named() {
        let error = validate_policy("bad id", &json!({"insurerApiIntegration": "yes"})).expect_err("invalid");
        assert_eq!(names(&error), ["policyId", "policyType", "insurer", "policyNumber", "insurerApiIntegration"]);
    }
}
