//! SQS `SendMessage` as one SigV4-signed POST of SQS's JSON protocol over a kept-alive
//! connection, for the webhook receiver's hot path. The SDK's orchestrator (interceptors,
//! endpoint rules, identity cache, stalled-stream guard, retry classifiers) cost more CPU per
//! call than the whole rest of the receiver; signing is still the SDK's own `aws-sigv4`, and
//! credentials come from the SDK configuration's provider. Everything else uses `SqsQueue`.

use super::{MessageSender, QueueError, check_size};
use crate::config::{ConfigError, Vars};
use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use std::time::{Duration, SystemTime};

/// Attempts per message: transport errors, 5xx and throttling are retried, as the SDK's
/// standard retry mode does; if all fail the receiver answers 503 and HICAPS delivers again.
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqsSender {
    http: reqwest::Client,
    /// `{endpoint}/`, where the JSON protocol is posted; parsed once, as reqwest would on every
    /// request given a string (1.5% of the receiver's CPU per webhook in a profile).
    url: reqwest::Url,
    region: String,
    credentials: SharedCredentialsProvider,
    queue_url: String,
}

impl SqsSender {
    /// The sender for `queue_url`, with the region, credentials and endpoint of `config`
    /// (`AWS_ENDPOINT_URL_SQS` or `AWS_ENDPOINT_URL` in `vars` override the regional endpoint).
    pub fn new(config: &aws_config::SdkConfig, vars: &Vars, queue_url: &str) -> Result<Self, ConfigError> {
        let region =
            config.region().ok_or_else(|| ConfigError::new("AWS_REGION", "is required but not set"))?.to_string();
        let credentials = config
            .credentials_provider()
            .ok_or_else(|| ConfigError::new("AWS_ACCESS_KEY_ID", "no AWS credentials provider is configured"))?;
        let endpoint = vars
            .get("AWS_ENDPOINT_URL_SQS")
            .or_else(|| vars.get("AWS_ENDPOINT_URL"))
            .map(|url| url.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://sqs.{region}.amazonaws.com"));
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::client_tls(crate::aws_roots(vars)?))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .map_err(|e| ConfigError::new("QUEUE_URL", format!("cannot build the HTTP client: {e}")))?;
        let url = reqwest::Url::parse(&format!("{endpoint}/"))
            .map_err(|e| ConfigError::new("AWS_ENDPOINT_URL", format!("is not a URL: {e}")))?;
        Ok(Self { http, url, region, credentials, queue_url: queue_url.to_owned() })
    }

    /// Opens the connection to the SQS endpoint, TLS handshake included, so that the first send
    /// does not pay for it: an unsigned `GET /`, which SQS answers with an error and no effect.
    /// Any answer will do; only a failure to connect is an error.
    pub async fn warm_up(&self) -> Result<(), String> {
        let response = self.http.get(self.url.clone()).send().await.map_err(|e| format!("GET {}: {e}", self.url))?;
        // Read to the end, so the connection goes back to the pool.
        response.bytes().await.map(drop).map_err(|e| format!("GET {}: {e}", self.url))
    }

    async fn attempt(&self, payload: &[u8]) -> Result<String, Attempt> {
        let credentials =
            self.credentials.provide_credentials().await.map_err(|e| Attempt::Final(format!("credentials: {e}")))?;
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
        let headers = [("content-type", "application/x-amz-json-1.0"), ("x-amz-target", "AmazonSQS.SendMessage")];
        let signable =
            SignableRequest::new("POST", self.url.as_str(), headers.iter().copied(), SignableBody::Bytes(payload))
                .map_err(|e| Attempt::Final(format!("signing: {e}")))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| Attempt::Final(format!("signing: {e}")))?.into_parts();
        let mut request = self.http.post(self.url.clone());
        for (name, value) in headers.into_iter().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let response =
            request.body(payload.to_vec()).send().await.map_err(|e| Attempt::Retry(format!("SendMessage: {e}")))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| Attempt::Retry(format!("SendMessage: {e}")))?;
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

enum Attempt {
    Retry(String),
    Final(String),
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
