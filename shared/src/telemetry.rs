//! Logging: `tracing` with JSON lines in Lambda (CloudWatch parses them; the runtime's span adds
//! the request id) and readable lines on a laptop. Log ids only: never names, dates of birth,
//! member or claim numbers, tokens or bodies.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
        || std::env::var("LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = if json {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).without_time().try_init()
    } else {
        builder.compact().try_init()
    };
    // Already initialised (tests, or the local stack hosting several handlers): keep the first.
    drop(result);
}
