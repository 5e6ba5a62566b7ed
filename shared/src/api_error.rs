//! The API Error Payload (HICAPS Program API, "API Error Payload"), used by every route of ours except the
//! ICP proxy (which answers in ACC's `{code, message}` form).

use serde::{Deserialize, Serialize};

/// One field that failed validation. `name` uses the spec's `array[index].field` paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

impl InvalidParam {
    pub fn new(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { name: name.into(), reason: reason.into() }
    }
}

/// The API Error Payload: `type` (a documentation link), `title`, and `invalidParams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub title: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
}

/// A URI naming the error type; README "Errors" documents each.
pub const VALIDATION_ERROR_TYPE: &str = "urn:claims-gateway:error:validation";

impl ApiError {
    pub fn titled(title: impl Into<String>) -> Self {
        Self { kind: None, title: title.into(), invalid_params: Vec::new() }
    }

    /// A validation failure listing every bad field at once.
    pub fn validation(invalid_params: Vec<InvalidParam>) -> Self {
        Self {
            kind: Some(VALIDATION_ERROR_TYPE.to_owned()),
            title: "Your request parameters didn't validate.".to_owned(),
            invalid_params,
        }
    }
}

/// Collects every problem with a request so one answer can name them all.
#[derive(Debug, Default)]
pub struct Problems(Vec<InvalidParam>);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, name: impl Into<String>, reason: impl Into<String>) {
        self.0.push(InvalidParam::new(name, reason));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_vec(self) -> Vec<InvalidParam> {
        self.0
    }
    /// `Ok(value)` when nothing was found wrong, else the validation error.
    pub fn finish<T>(self, value: T) -> Result<T, ApiError> {
        if self.0.is_empty() { Ok(value) } else { Err(ApiError::validation(self.0)) }
    }
}
