//! Parse failures described by where and what, never by the value: `data.claims[0].quantity:
//! invalid type`. serde's own message quotes the offending value ("invalid type: string
//! \"Zebediah-77\""), which could be a name or a member number, so it goes only where the whole
//! message already is (a dead letter), never into a log line or a metric.

use serde::de::DeserializeOwned;
use std::fmt;

#[derive(Debug, Clone)]
pub struct ParseProblem {
    /// The JSON path of the field (`.` for the document itself).
    pub path: String,
    /// What kind of problem, from a closed list: safe to log.
    pub kind: &'static str,
    /// serde's full message, which may quote the value: for the dead letter only.
    pub message: String,
}

impl ParseProblem {
    fn new(path: String, error: &serde_json::Error) -> Self {
        let message = error.to_string();
        let path = if path.is_empty() || path == "?" { ".".to_owned() } else { path };
        Self { path, kind: kind_of(&message), message }
    }

    /// The same problem seen from a containing document: `claims[0]` under `data`.
    pub fn under(mut self, parent: &str) -> Self {
        self.path = match self.path.as_str() {
            "." => parent.to_owned(),
            path if path.starts_with('[') => format!("{parent}{path}"),
            path => format!("{parent}.{path}"),
        };
        self
    }
}

/// `path: kind`, nothing from the input.
impl fmt::Display for ParseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)
    }
}

/// The kind of a serde_json message, by its fixed opening words (serde's `de::Error` texts and
/// serde_json's syntax errors). Anything else, including our own custom messages, is `invalid`.
pub fn kind_of(message: &str) -> &'static str {
    const KINDS: [&str; 14] = [
        "invalid type",
        "invalid value",
        "invalid length",
        "missing field",
        "unknown variant",
        "unknown field",
        "duplicate field",
        "recursion limit exceeded",
        "EOF while parsing",
        "trailing characters",
        "number out of range",
        "expected",
        "key must be a string",
        "control character",
    ];
    KINDS.into_iter().find(|kind| message.starts_with(kind)).unwrap_or("invalid")
}

/// `serde_json::from_str` that says where it failed.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, ParseProblem> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| ParseProblem::new(error.path().to_string(), error.inner()))?;
    deserializer.end().map_err(|error| ParseProblem::new(String::new(), &error))?;
    Ok(result)
}

/// `serde_json::from_value` that says where it failed.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ParseProblem> {
    serde_path_to_error::deserialize(value).map_err(|error| ParseProblem::new(error.path().to_string(), error.inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Claim {
        quantity: u32,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Data {
        claims: Vec<Claim>,
    }

    #[test]
    fn a_bad_value_is_described_by_path_and_kind_only() {
        let problem = from_str::<Data>(r#"{"claims": [{"quantity": "Zebediah-77"}]}"#).expect_err("invalid");
        assert_eq!(problem.to_string(), "claims[0].quantity: invalid type");
        assert!(problem.message.contains("Zebediah-77"), "the full message is kept for the dead letter");
        assert_eq!(problem.under("data").to_string(), "data.claims[0].quantity: invalid type");
        let missing = from_value::<Data>(serde_json::json!({"claims": [{}]})).expect_err("missing");
        assert_eq!(missing.to_string(), "claims[0]: missing field");
        assert_eq!(from_str::<Data>("{").expect_err("eof").to_string(), ".: EOF while parsing");
        assert_eq!(
            from_str::<Data>(r#"{"claims": []} x"#).expect_err("trailing").to_string(),
            ".: trailing characters"
        );
    }
}
