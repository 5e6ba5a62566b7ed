//! Configuration from the environment: the same variable names in Lambda and in the local stack.
//! Errors name the variable so a bad deployment stops at init with a message that says what to fix.

use secrecy::SecretString;
use std::collections::HashMap;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {variable}: {reason}")]
pub struct ConfigError {
    pub variable: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(variable: &str, reason: impl Into<String>) -> Self {
        Self { variable: variable.to_owned(), reason: reason.into() }
    }
}

/// The configuration variables a handler is built from: the process environment in Lambda, and
/// the environment overlaid on the local stack's defaults on a laptop.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: HashMap<String, String>,
    /// Reads `*_SECRET_ARN` secrets; set in Lambda by `shared::lambda::Init`.
    #[cfg(feature = "aws")]
    secrets_manager: Option<aws_sdk_secretsmanager::Client>,
    /// Sources standing in for Secrets Manager, by variable name (tests, and the local stack).
    pub(crate) secret_sources: SecretSources,
}

/// Secret sources by variable name.
#[derive(Clone, Default)]
pub(crate) struct SecretSources(pub(crate) HashMap<String, std::sync::Arc<dyn crate::secrets::SecretSource>>);

impl std::fmt::Debug for SecretSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Vars {
    pub fn from_env() -> Self {
        Self { values: std::env::vars().collect(), ..Self::default() }
    }

    /// Lets `secret` read `NAME_SECRET_ARN` through this client (built once, at init).
    #[cfg(feature = "aws")]
    pub fn with_secrets_manager(mut self, client: aws_sdk_secretsmanager::Client) -> Self {
        self.secrets_manager = Some(client);
        self
    }

    /// Reads the secret `name` from `source`, kept fresh as one from Secrets Manager would be.
    pub fn with_secret_source(mut self, name: &str, source: std::sync::Arc<dyn crate::secrets::SecretSource>) -> Self {
        self.secret_sources.0.insert(name.to_owned(), source);
        self
    }

    /// Sets `name` unless it is already set (to a non-blank value).
    pub fn with_default(mut self, name: &str, value: impl Into<String>) -> Self {
        if self.get(name).is_none() {
            self.values.insert(name.to_owned(), value.into());
        }
        self
    }

    /// Sets `name`, replacing any value.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.values.insert(name.to_owned(), value.into());
        self
    }

    /// The variable's value, or `None` when it is unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str).filter(|value| !value.trim().is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// Parses the variable, or returns `default` when it is unset.
    pub fn parse_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(text) => {
                text.trim().parse().map_err(|e| ConfigError::new(name, format!("cannot parse {text:?}: {e}")))
            }
        }
    }

    /// A comma-separated list, blanks dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|text| text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// A secret: the value of `NAME`, or, in Lambda, the secret whose ARN is in `NAME_SECRET_ARN`,
    /// fetched once at init. `None` when neither is set.
    pub async fn secret(&self, name: &str) -> Result<Option<SecretString>, ConfigError> {
        if let Some(value) = self.get(name) {
            return Ok(Some(SecretString::from(value.to_owned())));
        }
        let arn_variable = format!("{name}_SECRET_ARN");
        let Some(arn) = self.get(&arn_variable) else {
            return Ok(None);
        };
        self.fetch_secret(&arn_variable, arn).await.map(Some)
    }

    pub async fn required_secret(&self, name: &str) -> Result<SecretString, ConfigError> {
        self.secret(name)
            .await?
            .ok_or_else(|| ConfigError::new(name, format!("is required: set {name} or {name}_SECRET_ARN")))
    }
}

impl Vars {
    #[cfg(feature = "aws")]
    async fn fetch_secret(&self, variable: &str, arn: &str) -> Result<SecretString, ConfigError> {
        let client = self
            .secrets_manager
            .as_ref()
            .ok_or_else(|| ConfigError::new(variable, "Secrets Manager is not available here; set the value itself"))?;
        let output = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| ConfigError::new(variable, format!("cannot read the secret: {e}")))?;
        output
            .secret_string
            .map(SecretString::from)
            .ok_or_else(|| ConfigError::new(variable, "the secret has no string value"))
    }

    #[cfg(not(feature = "aws"))]
    async fn fetch_secret(&self, variable: &str, _arn: &str) -> Result<SecretString, ConfigError> {
        Err(ConfigError::new(variable, "secrets from Secrets Manager need the `aws` feature"))
    }

    /// Secrets Manager as the source of `arn`, for [`crate::secrets::Rotating`].
    #[cfg(feature = "aws")]
    pub(crate) fn secret_source(
        &self,
        variable: &str,
        arn: &str,
    ) -> Result<std::sync::Arc<dyn crate::secrets::SecretSource>, ConfigError> {
        let client = self
            .secrets_manager
            .clone()
            .ok_or_else(|| ConfigError::new(variable, "Secrets Manager is not available here; set the value itself"))?;
        Ok(std::sync::Arc::new(SecretsManagerSource { client, arn: arn.to_owned() }))
    }

    #[cfg(not(feature = "aws"))]
    pub(crate) fn secret_source(
        &self,
        variable: &str,
        _arn: &str,
    ) -> Result<std::sync::Arc<dyn crate::secrets::SecretSource>, ConfigError> {
        Err(ConfigError::new(variable, "secrets from Secrets Manager need the `aws` feature"))
    }
}

/// One secret in Secrets Manager, read with GetSecretValue (its current version).
#[cfg(feature = "aws")]
struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

#[cfg(feature = "aws")]
#[async_trait::async_trait]
impl crate::secrets::SecretSource for SecretsManagerSource {
    async fn read(&self) -> Result<SecretString, String> {
        let output = self.client.get_secret_value().secret_id(&self.arn).send().await.map_err(|e| {
            format!("cannot read the secret: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(&e))
        })?;
        output.secret_string.map(SecretString::from).ok_or_else(|| "the secret has no string value".to_owned())
    }
}
