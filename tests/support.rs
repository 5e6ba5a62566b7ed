//! Support for the end-to-end tests: start the real local stack on a free port, on the embedded
//! adapters or on DynamoDB and SQS at the moto server `cargo xtask test` started, and talk to it
//! over HTTP.

use shared::config::Vars;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Moto,
}

pub const BOTH: [Backend; 2] = [Backend::Embedded, Backend::Moto];

/// Starts the stack. On moto each stack gets its own table and queues.
pub async fn start(backend: Backend, extra: &[(&str, &str)]) -> local::Stack {
    // `RUST_LOG=warn cargo xtask test -p gateway-tests` shows the stack's own log lines.
    if std::env::var_os("RUST_LOG").is_some() {
        static LOGS: std::sync::Once = std::sync::Once::new();
        LOGS.call_once(shared::telemetry::init);
    }
    let mut vars = Vars::default()
        .with("RETRY_BASE_MILLIS", "200")
        .with("LOCAL_API_KEYS", "test-key=test-caller,partner-key=partner")
        .with("DECISION_CALLERS", "test-caller")
        .with("ECF_LOCATION_GRANTS", "test-caller=*");
    if backend == Backend::Moto {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect(
            "AWS_ENDPOINT_URL is not set: these tests run against moto; run `cargo xtask test`, which starts it",
        );
        vars = vars
            .with("AWS_ENDPOINT_URL", endpoint)
            .with("TABLE_NAME", format!("e2e-{}", uuid::Uuid::new_v4().simple()));
    }
    for (name, value) in extra {
        vars = vars.with(name, *value);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
    local::start(vars, listener).await.expect("start the local stack")
}

pub const API_KEY: &str = "test-key";

/// A client for the local stack. Each call gets its own client and connection pool, so no
/// connection outlives the test's runtime; the TLS set-up is built once per process. With
/// `reqwest::Client::new()` each client loaded the platform's roots, a PEM bundle of some 150
/// certificates: 60% of the 500-invoice test's CPU, which builds one per delivery.
pub fn client() -> reqwest::Client {
    static TLS: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    let tls = TLS.get_or_init(|| shared::client_tls(shared::public_roots())).clone();
    reqwest::Client::builder().tls_backend_preconfigured(tls).build().expect("a reqwest client")
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, mut check: F) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}
