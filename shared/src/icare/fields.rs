//! Reading request JSON field by field, naming every problem with its path (`worker.familyName`,
//! `worker.postalAddress.lines[0]`) so one answer lists them all.

use crate::api_error::Problems;
use serde_json::{Map, Value};

pub(crate) type Object = Map<String, Value>;

pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") }
}

/// The object at `path`; `None` (with a problem when `required`) when it is missing or null, and
/// `None` with a problem when it is not an object.
pub(crate) fn object<'v>(
    problems: &mut Problems,
    value: Option<&'v Value>,
    path: &str,
    required: bool,
) -> Option<&'v Object> {
    match value {
        None | Some(Value::Null) => {
            if required {
                problems.push(path, "is required");
            }
            None
        }
        Some(Value::Object(map)) => Some(map),
        Some(_) => {
            problems.push(path, "must be an object");
            None
        }
    }
}

/// A string checked on its own (an array element, say): trimmed, not blank, at most `max_chars`.
pub(crate) fn text_value(
    problems: &mut Problems,
    value: Option<&Value>,
    path: &str,
    max_chars: usize,
) -> Option<String> {
    match value {
        None | Some(Value::Null) => {
            problems.push(path, "is required");
            None
        }
        Some(Value::String(text)) => {
            let text = text.trim();
            if text.is_empty() {
                problems.push(path, "must not be blank");
                None
            } else if text.chars().count() > max_chars {
                problems.push(path, format!("must be at most {max_chars} characters"));
                None
            } else if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
                problems.push(path, "must not contain control characters");
                None
            } else {
                Some(text.to_owned())
            }
        }
        Some(_) => {
            problems.push(path, "must be a string");
            None
        }
    }
}

/// A required string member of `object`.
pub(crate) fn text(
    problems: &mut Problems,
    object: &Object,
    prefix: &str,
    name: &str,
    max_chars: usize,
) -> Option<String> {
    text_value(problems, object.get(name), &join(prefix, name), max_chars)
}

/// An optional string member: missing or null is fine, anything present must be valid.
pub(crate) fn optional_text(
    problems: &mut Problems,
    object: &Object,
    prefix: &str,
    name: &str,
    max_chars: usize,
) -> Option<String> {
    match object.get(name) {
        None | Some(Value::Null) => None,
        value => text_value(problems, value, &join(prefix, name), max_chars),
    }
}

/// A required boolean member.
pub(crate) fn boolean(problems: &mut Problems, object: &Object, prefix: &str, name: &str) -> Option<bool> {
    let path = join(prefix, name);
    match object.get(name) {
        None | Some(Value::Null) => {
            problems.push(path, "is required");
            None
        }
        Some(Value::Bool(value)) => Some(*value),
        Some(_) => {
            problems.push(path, "must be true or false");
            None
        }
    }
}

/// A phone number as people write it: digits with spaces, `+`, `-`, `(`, `)`; 6 to 15 digits.
pub(crate) fn is_phone(text: &str) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    (6..=15).contains(&digits)
        && text.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')'))
        && text.find('+').is_none_or(|at| at == 0 && text.matches('+').count() == 1)
}

/// A plausible email address: one `@`, a local part, a dotted domain, no spaces.
pub(crate) fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_and_emails() {
        assert!(is_phone("+61 2 9999 9999"));
        assert!(is_phone("(02) 9999-9999"));
        assert!(!is_phone("12345"));
        assert!(!is_phone("02 9999 999x"));
        assert!(!is_phone("02+99999999"));
        assert!(is_email("a.b@example.com.au"));
        assert!(!is_email("a@b"));
        assert!(!is_email("a b@example.com"));
        assert!(!is_email("@example.com"));
    }
}
