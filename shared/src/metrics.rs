//! Metrics in CloudWatch embedded metric format (one JSON line on stdout, which CloudWatch turns
//! into a metric with no API call), plus in-process counters the local stack and tests can read.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

pub const NAMESPACE: &str = "ClaimsGateway";

#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

fn counters() -> &'static Mutex<BTreeMap<String, u64>> {
    static COUNTERS: OnceLock<Mutex<BTreeMap<String, u64>>> = OnceLock::new();
    COUNTERS.get_or_init(Default::default)
}

fn emf_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() || std::env::var("METRICS").is_ok_and(|v| v == "emf")
    })
}

/// Records `value` of `name`, with one dimension (`dimension` = `dimension_value`).
pub fn record(name: &str, value: u64, unit: Unit, dimension: (&str, &str)) {
    if matches!(unit, Unit::Count) {
        let mut counters = counters().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counters.entry(format!("{name}|{}", dimension.1)).or_default() += value;
    }
    if emf_enabled() {
        let (dimension_name, dimension_value) = dimension;
        let line = serde_json::json!({
            "_aws": {
                "Timestamp": chrono::Utc::now().timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[dimension_name]],
                    "Metrics": [{"Name": name, "Unit": unit.as_str()}]
                }]
            },
            dimension_name: dimension_value,
            name: value,
        });
        println!("{line}");
    }
}

pub fn count(name: &str, dimension: (&str, &str)) {
    record(name, 1, Unit::Count, dimension);
}

pub fn millis(name: &str, millis: u64, dimension: (&str, &str)) {
    record(name, millis, Unit::Milliseconds, dimension);
}

/// The in-process count of `name` with `dimension_value`.
pub fn counted(name: &str, dimension_value: &str) -> u64 {
    let counters = counters().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    counters.get(&format!("{name}|{dimension_value}")).copied().unwrap_or_default()
}
