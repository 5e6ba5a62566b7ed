//! Secrets that rotate without a restart. A value set in the environment is fixed; one read from
//! Secrets Manager (`NAME_SECRET_ARN`) is read at init, again once it is older than
//! `SECRETS_TTL_SECONDS` (300 by default), and again at once when the partner it is for refuses
//! it (401 or 403), so the README's rotation steps work without touching the functions.
//!
//! Reading never waits on Secrets Manager on the hot path: [`Rotating::cached`] answers the
//! value in hand and, when it is stale, starts one re-read in the background
//! (stale-while-revalidate). A failed re-read keeps the value in hand and is tried again later.

use crate::config::{ConfigError, Vars};
use async_trait::async_trait;
use secrecy::SecretString;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long a value read from Secrets Manager is used before it is read again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The most often a refusal may force a re-read: a partner refusing every call must not turn
/// into a Secrets Manager call per request.
pub const MIN_FORCED_INTERVAL: Duration = Duration::from_secs(10);

/// Where a secret's current text comes from.
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn read(&self) -> Result<SecretString, String>;
}

/// A secret's parsed form, kept fresh.
pub struct Rotating<T> {
    inner: Arc<Inner<T>>,
}

impl<T> std::fmt::Debug for Rotating<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotating").field("variable", &self.inner.variable).finish_non_exhaustive()
    }
}

impl<T> Clone for Rotating<T> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

type Parse<T> = Arc<dyn Fn(SecretString) -> Result<T, String> + Send + Sync>;

struct Inner<T> {
    variable: String,
    /// `None` for a value fixed in the environment.
    source: Option<Arc<dyn SecretSource>>,
    parse: Parse<T>,
    ttl: Duration,
    current: RwLock<(Arc<T>, Instant)>,
    /// One re-read at a time.
    reading: tokio::sync::Mutex<()>,
    last_forced: Mutex<Option<Instant>>,
}

impl<T: Send + Sync + 'static> Rotating<T> {
    /// A value that never changes.
    pub fn fixed(value: T) -> Self {
        Self::build(String::new(), None, Arc::new(|_| Err("fixed".into())), DEFAULT_TTL, value)
    }

    /// Reads `source` once now (an error names `variable`), then keeps it fresh.
    pub async fn from_source(
        variable: &str,
        source: Arc<dyn SecretSource>,
        ttl: Duration,
        parse: impl Fn(SecretString) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        let text = source.read().await.map_err(|reason| ConfigError::new(variable, reason))?;
        let value = parse(text).map_err(|reason| ConfigError::new(variable, reason))?;
        Ok(Self::build(variable.to_owned(), Some(source), Arc::new(parse), ttl, value))
    }

    fn build(
        variable: String,
        source: Option<Arc<dyn SecretSource>>,
        parse: Parse<T>,
        ttl: Duration,
        value: T,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                variable,
                source,
                parse,
                ttl,
                current: RwLock::new((Arc::new(value), Instant::now())),
                reading: tokio::sync::Mutex::new(()),
                last_forced: Mutex::new(None),
            }),
        }
    }

    fn snapshot(&self) -> (Arc<T>, Instant) {
        let current = self.inner.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        (Arc::clone(&current.0), current.1)
    }

    fn is_stale(&self, read_at: Instant) -> bool {
        self.inner.source.is_some() && read_at.elapsed() >= self.inner.ttl
    }

    /// The value in hand, never waiting: when it is stale, one re-read starts in the background
    /// and a later call gets its result.
    pub fn cached(&self) -> Arc<T> {
        let (value, read_at) = self.snapshot();
        if self.is_stale(read_at)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let this = self.clone();
            runtime.spawn(async move { this.reread(false).await });
        }
        value
    }

    /// The value, re-read first when it is stale (for a call that is about to go out anyway).
    pub async fn current(&self) -> Arc<T> {
        let (value, read_at) = self.snapshot();
        if !self.is_stale(read_at) {
            return value;
        }
        self.reread(false).await;
        self.snapshot().0
    }

    /// The partner refused the value (401 or 403): read it again now, at most once per
    /// [`MIN_FORCED_INTERVAL`]. Returns whether a new value is in hand.
    pub async fn refused(&self) -> bool {
        if self.inner.source.is_none() {
            return false;
        }
        {
            let mut last = self.inner.last_forced.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < MIN_FORCED_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        self.reread(true).await
    }

    /// Reads the source again (unless another caller just did) and keeps the value if it parses.
    async fn reread(&self, forced: bool) -> bool {
        let Some(source) = &self.inner.source else {
            return false;
        };
        let Ok(_reading) = self.inner.reading.try_lock() else {
            // Someone else is reading it right now.
            return false;
        };
        if !forced && !self.is_stale(self.snapshot().1) {
            return false;
        }
        let variable = self.inner.variable.as_str();
        let parsed = source.read().await.and_then(|text| (self.inner.parse)(text));
        let mut current = self.inner.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match parsed {
            Ok(value) => {
                *current = (Arc::new(value), Instant::now());
                tracing::info!(variable, forced, "secret re-read");
                true
            }
            Err(reason) => {
                // Keep the value in hand; try again after another TTL.
                current.1 = Instant::now();
                tracing::warn!(variable, reason, "secret could not be re-read; the value in hand stays");
                false
            }
        }
    }
}

/// A source whose text tests change, standing in for Secrets Manager.
#[derive(Default)]
pub struct FakeSource(pub Mutex<String>);

#[async_trait]
impl SecretSource for FakeSource {
    async fn read(&self) -> Result<SecretString, String> {
        Ok(SecretString::from(self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()))
    }
}

impl Vars {
    /// `SECRETS_TTL_SECONDS`: how long a secret from Secrets Manager is used before it is read
    /// again (300 by default, 1 to 86,400).
    pub fn secrets_ttl(&self) -> Result<Duration, ConfigError> {
        let seconds: u64 = self.parse_or("SECRETS_TTL_SECONDS", DEFAULT_TTL.as_secs())?;
        if !(1..=86_400).contains(&seconds) {
            return Err(ConfigError::new("SECRETS_TTL_SECONDS", "must be 1 to 86400 seconds"));
        }
        Ok(Duration::from_secs(seconds))
    }

    /// A secret that rotates: `NAME` (fixed), or the secret `NAME_SECRET_ARN` names, kept fresh.
    /// `None` when neither is set.
    pub async fn rotating_secret<T: Send + Sync + 'static>(
        &self,
        name: &str,
        parse: impl Fn(SecretString) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Option<Rotating<T>>, ConfigError> {
        if let Some(value) = self.get(name) {
            return parse(SecretString::from(value.to_owned()))
                .map(|value| Some(Rotating::fixed(value)))
                .map_err(|reason| ConfigError::new(name, reason));
        }
        if let Some(source) = self.secret_sources.0.get(name) {
            return Rotating::from_source(name, source.clone(), self.secrets_ttl()?, parse).await.map(Some);
        }
        let arn_variable = format!("{name}_SECRET_ARN");
        let Some(arn) = self.get(&arn_variable) else {
            return Ok(None);
        };
        let source = self.secret_source(&arn_variable, arn)?;
        Rotating::from_source(&arn_variable, source, self.secrets_ttl()?, parse).await.map(Some)
    }

    pub async fn required_rotating_secret<T: Send + Sync + 'static>(
        &self,
        name: &str,
        parse: impl Fn(SecretString) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Rotating<T>, ConfigError> {
        self.rotating_secret(name, parse)
            .await?
            .ok_or_else(|| ConfigError::new(name, format!("is required: set {name} or {name}_SECRET_ARN")))
    }
}

/// The secret text as it is.
pub fn as_is(text: SecretString) -> Result<SecretString, String> {
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn text(value: &Arc<SecretString>) -> String {
        value.expose_secret().to_owned()
    }

    #[tokio::test]
    async fn a_rotated_value_is_read_after_the_ttl_and_a_failed_read_keeps_the_old_one() {
        let source = Arc::new(FakeSource(Mutex::new("old".into())));
        let secret = Rotating::from_source("X_SECRET_ARN", source.clone(), Duration::from_millis(50), as_is)
            .await
            .expect("read");
        *source.0.lock().expect("lock") = "new".into();
        assert_eq!(text(&secret.current().await), "old", "fresh: not read again");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(text(&secret.current().await), "new", "stale: read again before use");
        // `cached` never waits: the stale value now, the new one once the background read lands.
        *source.0.lock().expect("lock") = "newer".into();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(text(&secret.cached()), "new");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(text(&secret.cached()), "newer");
    }

    #[tokio::test]
    async fn a_refusal_forces_one_read_and_no_more_than_one_per_interval() {
        let source = Arc::new(FakeSource(Mutex::new("old".into())));
        let secret = Rotating::from_source("X_SECRET_ARN", source.clone(), DEFAULT_TTL, as_is).await.expect("read");
        *source.0.lock().expect("lock") = "new".into();
        assert!(secret.refused().await);
        assert_eq!(text(&secret.cached()), "new");
        *source.0.lock().expect("lock") = "newer".into();
        assert!(!secret.refused().await, "not again within the interval");
        assert_eq!(text(&secret.cached()), "new");
        assert!(!Rotating::fixed(SecretString::from("env")).refused().await, "a value from the environment is fixed");
    }
}
