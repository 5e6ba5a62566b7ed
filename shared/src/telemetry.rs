//! Logging: `tracing` with JSON lines in Lambda (CloudWatch parses them; the runtime's span adds
//! the request id) and readable lines on a laptop. Log ids only: never names, dates of birth,
//! member or claim numbers, tokens or bodies.
//!
//! The level comes from Lambda's own control first (`AWS_LAMBDA_LOG_LEVEL`, set from the
//! function's `LoggingConfig.ApplicationLogLevel`, so operators change it in the console), then
//! `RUST_LOG` (any `tracing` filter, for a laptop), then `info`.

use tracing_subscriber::EnvFilter;

/// Libraries whose debug and trace lines carry whole requests or answers (the AWS SDK logs
/// request bodies at TRACE: member data on their way to DynamoDB): held at `info` whatever level
/// an operator picks in Lambda. `RUST_LOG` on a laptop is taken as written.
const QUIET_LIBRARIES: &str = "aws_smithy_runtime=info,aws_smithy_runtime_api=info,aws_smithy_http_client=info,\
aws_smithy_types=info,aws_sdk_dynamodb=info,aws_sdk_sqs=info,aws_sdk_secretsmanager=info,aws_config=info,hyper=info,\
hyper_util=info,h2=info,reqwest=info,rustls=info";

/// The filter for a Lambda log level: the level for our code, at most `info` for the libraries.
fn lambda_directives(level: &str) -> String {
    format!("{level},{QUIET_LIBRARIES}")
}

pub fn init() {
    let filter = match std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref().and_then(lambda_level) {
        Some(level) => EnvFilter::new(lambda_directives(level)),
        None => EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(lambda_directives("info"))),
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

    /// A log sink for the test below.
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn trace_in_lambda_leaves_the_sdk_at_info() {
        let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = {
            let sink = sink.clone();
            move || Captured(sink.clone())
        };
        let filter = tracing_subscriber::EnvFilter::new(super::lambda_directives("trace"));
        let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "request body: member 789456123");
            tracing::trace!(target: "invoice_status_poster", "ours at trace");
        });
        let text = String::from_utf8(sink.lock().expect("sink").clone()).expect("utf-8");
        assert!(text.contains("ours at trace"), "{text}");
        assert!(!text.contains("789456123"), "{text}");
    }
}
