//! SQS `SendMessage` as one SigV4-signed POST of SQS's JSON protocol over a kept-alive
//! connection, for the webhook receiver's hot path. The SDK's orchestrator (interceptors,
//! endpoint rules, identity cache, stalled-stream guard, retry classifiers) cost more CPU per
//! call than the whole rest of the receiver; signing is still the SDK's own `aws-sigv4`, and
//! credentials come from the SDK configuration's provider. Everything else uses `SqsQueue`.
//!
//! The POST goes out on hyper-util's pooled client with hyper-rustls, the stack under both
//! reqwest and the SDK's HTTPS client. reqwest on top of it cost about 10% of the receiver's CPU
//! per warm webhook in a profile of the cold-start bench (`XTASK_BENCH_PERF`): it parsed a URL
//! twice per request (once for its redirect policy, once for the response) and ran its tower
//! layers. What reqwest gave is kept by hand and tested below: the connect and per-attempt
//! timeouts and no redirects, with a cap on the answer's size added; `shared/tests/queue_contract.rs`
//! proves the wire protocol on moto.

use super::{MessageSender, QueueError, check_size};
use crate::config::{ConfigError, Vars};
use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Attempts per message: transport errors, 5xx and throttling are retried, as the SDK's
/// standard retry mode does; if all fail the receiver answers 503 and HICAPS delivers again.
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// SQS answers a SendMessage with a few hundred bytes, an error with less; anything longer is
/// not SQS, and is not read further.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Credentials are asked for again this long before they expire, and, when they carry no expiry
/// (the environment's, in Lambda), after this long: the SDK's lazy identity cache does the same.
const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);
const NO_EXPIRY_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The headers SQS's JSON protocol needs, signed and sent.
const PROTOCOL_HEADERS: [(&str, &str); 2] =
    [("content-type", "application/x-amz-json-1.0"), ("x-amz-target", "AmazonSQS.SendMessage")];

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

pub struct SqsSender {
    http: Client<Https, Full<Bytes>>,
    /// `{endpoint}/`, where the JSON protocol is posted, parsed once and as the signer reads it.
    uri: http::Uri,
    uri_text: String,
    region: String,
    credentials: CachedCredentials,
    queue_url: String,
    attempt_timeout: Duration,
}

impl SqsSender {
    /// The sender for `queue_url`, with the region, credentials and endpoint of `config`
    /// (`AWS_ENDPOINT_URL_SQS` or `AWS_ENDPOINT_URL` in `vars` override the regional endpoint).
    pub fn new(config: &aws_config::SdkConfig, vars: &Vars, queue_url: &str) -> Result<Self, ConfigError> {
        let region =
            config.region().ok_or_else(|| ConfigError::new("AWS_REGION", "is required but not set"))?.to_string();
        let provider = config
            .credentials_provider()
            .ok_or_else(|| ConfigError::new("AWS_ACCESS_KEY_ID", "no AWS credentials provider is configured"))?;
        let endpoint = vars
            .get("AWS_ENDPOINT_URL_SQS")
            .or_else(|| vars.get("AWS_ENDPOINT_URL"))
            .map(|url| url.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://sqs.{region}.amazonaws.com"));
        let uri_text = format!("{endpoint}/");
        let uri: http::Uri =
            uri_text.parse().map_err(|e| ConfigError::new("AWS_ENDPOINT_URL", format!("is not a URL: {e}")))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
            return Err(ConfigError::new("AWS_ENDPOINT_URL", "is not an http or https URL with a host"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::client_tls(crate::aws_roots(vars)?))
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(Self {
            http,
            uri,
            uri_text,
            region,
            credentials: CachedCredentials { provider, current: Mutex::new(None) },
            queue_url: queue_url.to_owned(),
            attempt_timeout: ATTEMPT_TIMEOUT,
        })
    }

    /// Opens the connection to the SQS endpoint, TLS handshake included, so that the first send
    /// does not pay for it: an unsigned `GET /`, which SQS answers with an error and no effect.
    /// Any answer will do; only a failure to connect is an error.
    pub async fn warm_up(&self) -> Result<(), String> {
        let request = http::Request::get(self.uri.clone()).body(Full::default()).map_err(|e| e.to_string())?;
        // Read to the end, so the connection goes back to the pool.
        self.exchange(request).await.map(drop).map_err(|e| format!("GET {}: {}", self.uri, e.reason()))
    }

    /// Sends `request` and reads its answer, within the attempt's time and the answer's cap. An
    /// answer over the cap is final: the same endpoint would give it again.
    async fn exchange(&self, request: http::Request<Full<Bytes>>) -> Result<(http::StatusCode, Bytes), Attempt> {
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| Attempt::Retry(transport_error(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Attempt::Final(format!("an answer over {MAX_ANSWER_BYTES} bytes"))
                } else {
                    Attempt::Retry(e.to_string())
                }
            })?;
            Ok((status, body.to_bytes()))
        };
        tokio::time::timeout(self.attempt_timeout, exchange).await.unwrap_or_else(|_| {
            Err(Attempt::Retry(format!("no answer within {} ms", self.attempt_timeout.as_millis())))
        })
    }

    async fn attempt(&self, payload: &Bytes) -> Result<String, Attempt> {
        let credentials = self.credentials.get().await.map_err(Attempt::Final)?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sqs")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Attempt::Final(format!("signing: {e}")))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            &self.uri_text,
            PROTOCOL_HEADERS.iter().copied(),
            SignableBody::Bytes(payload),
        )
        .map_err(|e| Attempt::Final(format!("signing: {e}")))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| Attempt::Final(format!("signing: {e}")))?.into_parts();
        let mut request = http::Request::post(self.uri.clone())
            .body(Full::new(payload.clone()))
            .map_err(|e| Attempt::Final(format!("request: {e}")))?;
        for (name, value) in PROTOCOL_HEADERS.into_iter().chain(instructions.headers()) {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| Attempt::Final(format!("signing: {e}")))?;
            let value = HeaderValue::from_str(value).map_err(|e| Attempt::Final(format!("signing: {e}")))?;
            request.headers_mut().insert(name, value);
        }
        let (status, body) =
            self.exchange(request).await.map_err(|e| e.map(|reason| format!("SendMessage: {reason}")))?;
        if status.is_success() {
            let sent: SendMessageResult =
                serde_json::from_slice(&body).map_err(|e| Attempt::Final(format!("SendMessage answer: {e}")))?;
            return Ok(sent.message_id);
        }
        let code = serde_json::from_slice::<ErrorAnswer>(&body).map(|e| e.kind).unwrap_or_default();
        let message = format!("SendMessage answered {status} {code}");
        if status.is_server_error() || code.contains("Throttl") || code.contains("RequestThrottled") {
            Err(Attempt::Retry(message))
        } else {
            Err(Attempt::Final(message))
        }
    }
}

/// hyper-util's error says only "client error (Connect)"; its source says what failed.
fn transport_error(error: &hyper_util::client::legacy::Error) -> String {
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

/// The provider's credentials, kept until shortly before they expire. Asking the default chain
/// on every send walked the chain each time (2% of the receiver's CPU per warm webhook).
struct CachedCredentials {
    provider: SharedCredentialsProvider,
    current: Mutex<Option<(Credentials, SystemTime)>>,
}

impl CachedCredentials {
    async fn get(&self) -> Result<Credentials, String> {
        let now = SystemTime::now();
        if let Some((credentials, refresh_at)) = &*self.current.lock().unwrap_or_else(PoisonError::into_inner)
            && now < *refresh_at
        {
            return Ok(credentials.clone());
        }
        let credentials = self.provider.provide_credentials().await.map_err(|e| format!("credentials: {e}"))?;
        let refresh_at = match credentials.expiry() {
            Some(expiry) => expiry.checked_sub(REFRESH_AHEAD).unwrap_or(now),
            None => now + NO_EXPIRY_LIFETIME,
        };
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some((credentials.clone(), refresh_at));
        Ok(credentials)
    }
}

enum Attempt {
    Retry(String),
    Final(String),
}

impl Attempt {
    fn reason(&self) -> &str {
        match self {
            Attempt::Retry(reason) | Attempt::Final(reason) => reason,
        }
    }

    fn map(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Attempt::Retry(reason) => Attempt::Retry(f(reason)),
            Attempt::Final(reason) => Attempt::Final(f(reason)),
        }
    }
}

#[derive(serde::Serialize)]
struct SendMessageRequest<'a> {
    #[serde(rename = "QueueUrl")]
    queue_url: &'a str,
    #[serde(rename = "MessageBody")]
    message_body: &'a str,
}

#[derive(serde::Deserialize)]
struct SendMessageResult {
    #[serde(rename = "MessageId")]
    message_id: String,
}

#[derive(serde::Deserialize)]
struct ErrorAnswer {
    /// `com.amazonaws.sqs#QueueDoesNotExist`, or the bare code.
    #[serde(rename = "__type", default)]
    kind: String,
}

#[async_trait]
impl MessageSender for SqsSender {
    async fn send(&self, body: String) -> Result<String, QueueError> {
        check_size(&body)?;
        let payload = serde_json::to_vec(&SendMessageRequest { queue_url: &self.queue_url, message_body: &body })
            .map(Bytes::from)
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.attempt(&payload).await {
                Ok(message_id) => return Ok(message_id),
                Err(Attempt::Retry(reason)) if attempt < ATTEMPTS => {
                    tracing::warn!(attempt, %reason, "SendMessage failed; retrying");
                    tokio::time::sleep(crate::time::jittered(backoff)).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(Attempt::Retry(reason) | Attempt::Final(reason)) => return Err(QueueError::Unavailable(reason)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// Credentials that expire `lifetime` from when they are asked for, counting the asks.
    #[derive(Debug)]
    struct Counting {
        asked: Arc<AtomicUsize>,
        lifetime: Option<Duration>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.asked.fetch_add(1, Ordering::SeqCst);
            let expiry = self.lifetime.map(|lifetime| SystemTime::now() + lifetime);
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
                "AKID", "secret", None, expiry, "test",
            )))
        }
    }

    fn sender(endpoint: &str, lifetime: Option<Duration>) -> (SqsSender, Arc<AtomicUsize>) {
        let asked = Arc::new(AtomicUsize::new(0));
        let config = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("ap-southeast-2"))
            .credentials_provider(SharedCredentialsProvider::new(Counting { asked: asked.clone(), lifetime }))
            .build();
        let vars = Vars::default().with("AWS_ENDPOINT_URL_SQS", endpoint);
        let sender = SqsSender::new(&config, &vars, "https://sqs.example/123456789012/q").expect("sender");
        (sender, asked)
    }

    fn sent(id: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_string(format!(r#"{{"MessageId":"{id}","MD5OfMessageBody":"x"}}"#))
    }

    #[tokio::test]
    async fn credentials_are_asked_for_once_until_they_near_expiry() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(sent("m-1")).mount(&server).await;
        let (lasting, asked) = sender(&server.uri(), Some(Duration::from_secs(3600)));
        for _ in 0..3 {
            assert_eq!(lasting.send("{}".into()).await.expect("sent"), "m-1");
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        // Credentials within the refresh margin of their expiry are asked for again each time.
        let (expiring, asked) = sender(&server.uri(), Some(Duration::from_secs(60)));
        for _ in 0..2 {
            expiring.send("{}".into()).await.expect("sent");
        }
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_and_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(307).insert_header("location", "http://127.0.0.1:9/"))
            .expect(1)
            .mount(&server)
            .await;
        let (sender, _) = sender(&server.uri(), None);
        let error = sender.send("{}".into()).await.expect_err("not sent");
        assert!(error.to_string().contains("307"), "{error}");
    }

    #[tokio::test]
    async fn an_answer_over_the_cap_is_not_read_not_taken_for_sent_and_not_retried() {
        let server = MockServer::start().await;
        let huge = format!(r#"{{"MessageId":"m-1","Padding":"{}"}}"#, "x".repeat(MAX_ANSWER_BYTES));
        // Asked once: the same endpoint would answer the same again.
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string(huge))
            .expect(1)
            .mount(&server)
            .await;
        let (sender, _) = sender(&server.uri(), None);
        assert!(matches!(sender.send("{}".into()).await, Err(QueueError::Unavailable(_))));
    }

    #[tokio::test]
    async fn an_endpoint_that_never_answers_is_given_up_on_after_each_attempts_timeout() {
        let (endpoint, held) = crate::testing::silent_endpoint().await;
        let (mut sender, _) = sender(&endpoint, None);
        sender.attempt_timeout = Duration::from_millis(200);
        let started = std::time::Instant::now();
        let error = sender.send("{}".into()).await.expect_err("not sent");
        assert!(error.to_string().contains("no answer within 200 ms"), "{error}");
        // Three attempts and two backoffs (50 and 100 ms, jittered), well short of a second each.
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        held.abort();
    }
}
