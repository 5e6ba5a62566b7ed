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

/// Counts by metric name, then dimension value: nested, so counting one already seen looks both up
/// by `&str` and allocates nothing (a key formatted per record was an allocation per event).
type Counters = BTreeMap<String, BTreeMap<String, u64>>;

fn counters() -> &'static Mutex<Counters> {
    static COUNTERS: OnceLock<Mutex<Counters>> = OnceLock::new();
    COUNTERS.get_or_init(Default::default)
}

fn add(counters: &mut Counters, name: &str, dimension_value: &str, value: u64) {
    let by_value = match counters.get_mut(name) {
        Some(by_value) => by_value,
        None => counters.entry(name.to_owned()).or_default(),
    };
    match by_value.get_mut(dimension_value) {
        Some(count) => *count = count.saturating_add(value),
        None => {
            by_value.insert(dimension_value.to_owned(), value);
        }
    }
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
            add(&mut counters, metric.name, metric.dimension.1, metric.value);
        }
    }
    if emf_enabled() && !metrics.is_empty() {
        let mut line = emf_line(metrics, chrono::Utc::now().timestamp_millis());
        line.push('\n');
        // One write per line, as `println!` would, without its formatting machinery.
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), line.as_bytes());
    }
}

/// The EMF line, serialised straight from `metrics`: building a `serde_json::Value` first cost
/// the receiver about 2% of its CPU per webhook (a profile of the warm invocations).
fn emf_line(metrics: &[Metric<'_>], timestamp_ms: i64) -> String {
    serde_json::to_string(&EmfLine { metrics, timestamp_ms }).unwrap_or_default()
}

struct EmfLine<'a> {
    metrics: &'a [Metric<'a>],
    timestamp_ms: i64,
}

impl serde::Serialize for EmfLine<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut line = serializer.serialize_map(None)?;
        line.serialize_entry("_aws", &Aws { metrics: self.metrics, timestamp_ms: self.timestamp_ms })?;
        for (index, metric) in self.metrics.iter().enumerate() {
            let earlier = &self.metrics[..index];
            let (dimension, value) = metric.dimension;
            debug_assert!(
                earlier.iter().all(|other| other.dimension.0 != dimension || other.dimension.1 == value),
                "dimension {dimension} given two values in one EMF line"
            );
            if !earlier.iter().any(|other| other.dimension.0 == dimension) {
                line.serialize_entry(dimension, value)?;
            }
            line.serialize_entry(metric.name, &metric.value)?;
        }
        line.end()
    }
}

struct Aws<'a> {
    metrics: &'a [Metric<'a>],
    timestamp_ms: i64,
}

impl serde::Serialize for Aws<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut aws = serializer.serialize_map(Some(2))?;
        aws.serialize_entry("Timestamp", &self.timestamp_ms)?;
        aws.serialize_entry("CloudWatchMetrics", &Directives(self.metrics))?;
        aws.end()
    }
}

struct Directives<'a>(&'a [Metric<'a>]);

impl serde::Serialize for Directives<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Directive<'a> {
            namespace: &'static str,
            dimensions: [[&'a str; 1]; 1],
            metrics: [MetricDefinition<'a>; 1],
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct MetricDefinition<'a> {
            name: &'a str,
            unit: &'static str,
        }
        serializer.collect_seq(self.0.iter().map(|metric| Directive {
            namespace: NAMESPACE,
            dimensions: [[metric.dimension.0]],
            metrics: [MetricDefinition { name: metric.name, unit: metric.unit.as_str() }],
        }))
    }
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
    counters.get(name).and_then(|by_value| by_value.get(dimension_value)).copied().unwrap_or_default()
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
        let line: serde_json::Value = serde_json::from_str(&line).expect("the line is JSON");
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

    #[test]
    fn a_dimension_two_metrics_share_is_written_once() {
        let line = emf_line(
            &[
                Metric::count("WebhookReceived", ("Route", "hicaps-webhook")),
                Metric::millis("AckLatency", 3, ("Route", "hicaps-webhook")),
            ],
            1,
        );
        assert_eq!(line.matches("\"Route\":").count(), 1, "{line}");
        let line: serde_json::Value = serde_json::from_str(&line).expect("the line is JSON");
        assert_eq!(
            (line["Route"].as_str(), line["WebhookReceived"].as_u64(), line["AckLatency"].as_u64()),
            (Some("hicaps-webhook"), Some(1), Some(3))
        );
    }

    #[test]
    fn counts_add_up_by_name_and_dimension_value_and_only_counts_are_counted() {
        // Names of this test's own, so other tests' counts do not mix in.
        for _ in 0..3 {
            record(&[
                Metric::count("CountedTestA", ("Type", "x|y")),
                Metric::count("CountedTestA|x", ("Type", "y")),
                Metric::millis("CountedTestMillis", 7, ("Route", "r")),
            ]);
        }
        count("CountedTestA", ("Type", "z"));
        assert_eq!(counted("CountedTestA", "x|y"), 3);
        assert_eq!(counted("CountedTestA|x", "y"), 3, "a name and a value never run together");
        assert_eq!(counted("CountedTestA", "z"), 1);
        assert_eq!(counted("CountedTestMillis", "r"), 0);
        assert_eq!(counted("CountedTestNever", "x"), 0);
    }
}
