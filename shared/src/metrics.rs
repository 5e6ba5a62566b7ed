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

/// One value of a metric, with its one dimension (name, value).
pub struct Metric<'a> {
    pub name: &'a str,
    pub value: u64,
    pub unit: Unit,
    pub dimension: (&'a str, &'a str),
}

impl<'a> Metric<'a> {
    pub fn count(name: &'a str, dimension: (&'a str, &'a str)) -> Self {
        Self { name, value: 1, unit: Unit::Count, dimension }
    }

    pub fn millis(name: &'a str, millis: u64, dimension: (&'a str, &'a str)) -> Self {
        Self { name, value: millis, unit: Unit::Milliseconds, dimension }
    }
}

/// Records `metrics` in one EMF line, a directive per metric so each keeps its own dimension: a
/// line is a write on the invocation's path, so what one event records goes out together. Two
/// metrics of one line must not give one dimension different values.
pub fn record(metrics: &[Metric<'_>]) {
    {
        let mut counters = counters().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for metric in metrics.iter().filter(|metric| matches!(metric.unit, Unit::Count)) {
            *counters.entry(format!("{}|{}", metric.name, metric.dimension.1)).or_default() += metric.value;
        }
    }
    if emf_enabled() && !metrics.is_empty() {
        println!("{}", emf_line(metrics, chrono::Utc::now().timestamp_millis()));
    }
}

fn emf_line(metrics: &[Metric<'_>], timestamp_ms: i64) -> serde_json::Value {
    let directives: Vec<serde_json::Value> = metrics
        .iter()
        .map(|metric| {
            serde_json::json!({
                "Namespace": NAMESPACE,
                "Dimensions": [[metric.dimension.0]],
                "Metrics": [{"Name": metric.name, "Unit": metric.unit.as_str()}]
            })
        })
        .collect();
    let mut line = serde_json::Map::new();
    line.insert("_aws".into(), serde_json::json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}));
    for metric in metrics {
        debug_assert!(
            line.get(metric.dimension.0).is_none_or(|value| value == metric.dimension.1),
            "dimension {} given two values in one EMF line",
            metric.dimension.0
        );
        line.insert(metric.dimension.0.into(), metric.dimension.1.into());
        line.insert(metric.name.into(), metric.value.into());
    }
    serde_json::Value::Object(line)
}

pub fn count(name: &str, dimension: (&str, &str)) {
    record(&[Metric::count(name, dimension)]);
}

pub fn millis(name: &str, millis: u64, dimension: (&str, &str)) {
    record(&[Metric::millis(name, millis, dimension)]);
}

/// The in-process count of `name` with `dimension_value`.
pub fn counted(name: &str, dimension_value: &str) -> u64 {
    let counters = counters().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    counters.get(&format!("{name}|{dimension_value}")).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_carries_each_metric_with_its_own_dimension() {
        let line = emf_line(
            &[
                Metric::count("WebhookReceived", ("Type", "claiming.invoice.submitted")),
                Metric::millis("AckLatency", 3, ("Route", "hicaps-webhook")),
            ],
            1_795_425_302_000,
        );
        assert_eq!(
            line,
            serde_json::json!({
                "_aws": {"Timestamp": 1_795_425_302_000_i64, "CloudWatchMetrics": [
                    {"Namespace": NAMESPACE, "Dimensions": [["Type"]], "Metrics": [{"Name": "WebhookReceived", "Unit": "Count"}]},
                    {"Namespace": NAMESPACE, "Dimensions": [["Route"]], "Metrics": [{"Name": "AckLatency", "Unit": "Milliseconds"}]}
                ]},
                "Type": "claiming.invoice.submitted", "WebhookReceived": 1,
                "Route": "hicaps-webhook", "AckLatency": 3
            })
        );
    }
}
