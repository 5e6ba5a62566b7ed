//! Logging: `tracing` with JSON lines in Lambda (CloudWatch parses them; the runtime's span adds
//! the request id) and readable lines on a laptop. Log ids only: never names, dates of birth,
//! member or claim numbers, tokens or bodies.
//!
//! The level comes from Lambda's own control first (`AWS_LAMBDA_LOG_LEVEL`, set from the
//! function's `LoggingConfig.ApplicationLogLevel`, so operators change it in the console), then
//! `RUST_LOG` (any `tracing` filter, for a laptop), then `info`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = match std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref().and_then(lambda_level) {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
    };
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

/// Lambda's application log levels as `tracing` levels (`FATAL` has no equal: `error`).
fn lambda_level(level: &str) -> Option<&'static str> {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some("trace"),
        "DEBUG" => Some("debug"),
        "INFO" => Some("info"),
        "WARN" => Some("warn"),
        "ERROR" | "FATAL" => Some("error"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lambda_levels_map_to_tracing_levels_and_others_fall_back() {
        assert_eq!(super::lambda_level("DEBUG"), Some("debug"));
        assert_eq!(super::lambda_level("fatal"), Some("error"));
        assert_eq!(super::lambda_level("WARN"), Some("warn"));
        assert_eq!(super::lambda_level(""), None);
        assert_eq!(super::lambda_level("info,shared=debug"), None);
    }
}
