//! What a million webhooks cost in AWS, from what the bench measured: the load run's requests
//! (`GET /local/usage`: API requests, invocations, SQS requests, DynamoDB request units by item
//! size) and the cold-start part's warm invocations (CPU, wall time and log bytes per invocation),
//! priced at published ap-southeast-2 (Sydney) list prices.

use super::report::{Figure, Goal, Section, Unit, spread};
use serde_json::Value;

/// The list prices used, ap-southeast-2, on-demand, first tier, in USD. Read from the AWS pricing
/// pages of each service as published in November 2026 (this machine has no route to them, so
/// check them before budgeting with this table):
/// - API Gateway HTTP APIs: $1.29 per million requests (first 300 million a month);
/// - Lambda: $0.20 per million requests; Arm $0.0000133334 per GB-second;
/// - SQS standard queues: $0.40 per million requests (each 64 KB chunk of a payload is one);
/// - DynamoDB on-demand, Standard table class: $0.7116 per million write request units and
///   $0.1423 per million read request units (half of the pre-November-2024 $1.4231 / $0.2846);
/// - CloudWatch Logs, Standard class ingestion: $0.57 per GB (Lambda's first tier).
pub(super) const PRICES_AS_OF: &str = "November 2026";
const API_GATEWAY_HTTP_PER_MILLION: f64 = 1.29;
const LAMBDA_REQUEST_PER_MILLION: f64 = 0.20;
const LAMBDA_ARM_PER_GB_SECOND: f64 = 0.000_013_333_4;
const SQS_PER_MILLION: f64 = 0.40;
const DYNAMODB_WRITE_UNIT_PER_MILLION: f64 = 0.7116;
const DYNAMODB_READ_UNIT_PER_MILLION: f64 = 0.1423;
const LOGS_PER_GB: f64 = 0.57;

/// The template's memory sizes (infra/template.yaml) for the two functions a webhook runs.
const RECEIVER_MEMORY_MB: f64 = 256.0;
const POSTER_MEMORY_MB: f64 = 256.0;
/// Lambda's `platform.start` and `platform.report` records in JSON log format, per invocation
/// (the examples in the Lambda Developer Guide, "Log format": about 150 and 330 bytes).
const PLATFORM_LOG_BYTES_PER_INVOCATION: f64 = 480.0;

/// The target for the whole: at most this many USD per million webhooks at these prices. About
/// $8.10 before the poster's header took over the post's note (one write unit less per
/// invoice); the target keeps that saving, with room for the runs' spread.
pub(super) const COST_PER_MILLION_MAX_USD: f64 = 8.0;

/// One load run's counts and how many webhooks and deliveries it made.
pub(super) struct LoadUsage {
    pub report: Value,
    pub webhooks: f64,
    pub deliveries: f64,
}

/// A function's warm invocations, from the cold-start part (medians over its runs).
#[derive(Clone, Copy)]
pub(super) struct Warm {
    pub cpu_ms: f64,
    pub wall_ms: f64,
    pub log_bytes: f64,
    pub emf_bytes: f64,
}

impl Warm {
    /// Billed milliseconds at `memory_mb`: the wall time measured at a whole core, with its CPU
    /// part stretched to the share of a vCPU that memory buys (1,769 MB is one vCPU).
    fn billed_ms(&self, memory_mb: f64) -> f64 {
        let stretch = (super::LAMBDA_MB_PER_VCPU / memory_mb).max(1.0);
        (self.wall_ms + self.cpu_ms * (stretch - 1.0)).ceil()
    }
}

#[derive(Default)]
pub(super) struct Inputs {
    pub loads: Vec<LoadUsage>,
    pub receiver: Option<Warm>,
    pub poster: Option<Warm>,
}

fn count(report: &Value, group: &str, name: &str) -> f64 {
    report[group][name].as_f64().unwrap_or(0.0)
}

/// One line of the table: per webhook, in its unit, and its USD per million webhooks.
struct Line {
    name: &'static str,
    per_webhook: Vec<f64>,
    unit: &'static str,
    usd_per_million: Vec<f64>,
}

pub(super) fn section(inputs: &Inputs) -> anyhow::Result<Section> {
    let mut section = Section::new("What a million webhooks cost");
    let (Some(receiver), Some(poster)) = (inputs.receiver, inputs.poster) else {
        anyhow::bail!("needs the cold-start part's warm receiver and poster (cargo xtask bench load cold-start)");
    };
    anyhow::ensure!(!inputs.loads.is_empty(), "needs the load part's usage counts (GET /local/usage)");
    let per =
        |f: &dyn Fn(&LoadUsage) -> f64| inputs.loads.iter().map(|load| f(load) / load.webhooks).collect::<Vec<f64>>();
    let receiver_invocations = per(&|l| count(&l.report, "invocations", "webhook-receiver"));
    let poster_invocations = per(&|l| count(&l.report, "invocations", "invoice-status-poster"));
    let records_per_batch: Vec<f64> = inputs
        .loads
        .iter()
        .map(|l| count(&l.report, "sqs", "messagesReceived") / count(&l.report, "sqs", "ReceiveMessage").max(1.0))
        .collect();
    // The event source mapping deletes each batch's successes with one DeleteMessageBatch; the
    // local poller deletes them one by one, so its deletes are billed as at most one per batch.
    let sqs = per(&|l| {
        let deletes = count(&l.report, "sqs", "DeleteMessage");
        let batches = count(&l.report, "sqs", "ReceiveMessage");
        count(&l.report, "sqs", "billedRequests") - deletes + deletes.min(batches)
    });
    let api = per(&|l| l.report["apiRequests"].as_f64().unwrap_or(0.0));
    let writes = per(&|l| count(&l.report, "dynamodb", "writeUnits"));
    let reads = per(&|l| count(&l.report, "dynamodb", "readUnits"));
    let receiver_gb_s: Vec<f64> = receiver_invocations
        .iter()
        .map(|n| n * receiver.billed_ms(RECEIVER_MEMORY_MB) / 1e3 * RECEIVER_MEMORY_MB / 1024.0)
        .collect();
    let poster_gb_s: Vec<f64> = poster_invocations
        .iter()
        .zip(&records_per_batch)
        .map(|(n, records)| n * (poster.billed_ms(POSTER_MEMORY_MB) * records).ceil() / 1e3 * POSTER_MEMORY_MB / 1024.0)
        .collect();
    let log_bytes: Vec<f64> = receiver_invocations
        .iter()
        .zip(&poster_invocations)
        .zip(&records_per_batch)
        .map(|((r, p), records)| {
            r * (receiver.log_bytes + PLATFORM_LOG_BYTES_PER_INVOCATION)
                + p * (poster.log_bytes * records + PLATFORM_LOG_BYTES_PER_INVOCATION)
        })
        .collect();
    let scale = |values: &[f64], price: f64| values.iter().map(|v| v * price).collect::<Vec<f64>>();
    let invocations: Vec<f64> = receiver_invocations.iter().zip(&poster_invocations).map(|(r, p)| r + p).collect();
    let gb_s: Vec<f64> = receiver_gb_s.iter().zip(&poster_gb_s).map(|(r, p)| r + p).collect();
    let lines = [
        Line {
            name: "API Gateway HTTP API requests",
            usd_per_million: scale(&api, API_GATEWAY_HTTP_PER_MILLION),
            per_webhook: api,
            unit: "requests",
        },
        Line {
            name: "Lambda requests (receiver + poster)",
            usd_per_million: scale(&invocations, LAMBDA_REQUEST_PER_MILLION),
            per_webhook: invocations,
            unit: "invocations",
        },
        Line {
            name: "Lambda duration (Arm, 256 MB each)",
            usd_per_million: scale(&gb_s, LAMBDA_ARM_PER_GB_SECOND * 1e6),
            per_webhook: gb_s,
            unit: "GB-seconds",
        },
        Line {
            name: "SQS requests (64 KB chunks)",
            usd_per_million: scale(&sqs, SQS_PER_MILLION),
            per_webhook: sqs,
            unit: "requests",
        },
        Line {
            name: "DynamoDB writes",
            usd_per_million: scale(&writes, DYNAMODB_WRITE_UNIT_PER_MILLION),
            per_webhook: writes,
            unit: "write units",
        },
        Line {
            name: "DynamoDB reads (strongly consistent)",
            usd_per_million: scale(&reads, DYNAMODB_READ_UNIT_PER_MILLION),
            per_webhook: reads,
            unit: "read units",
        },
        Line {
            name: "CloudWatch Logs ingestion (EMF included)",
            usd_per_million: scale(&log_bytes, LOGS_PER_GB * 1e6 / 1e9),
            per_webhook: log_bytes,
            unit: "bytes",
        },
    ];
    let runs = inputs.loads.len();
    let totals: Vec<f64> = (0..runs).map(|run| lines.iter().map(|line| line.usd_per_million[run]).sum()).collect();
    let median = |values: &[f64]| spread(values).map_or(f64::NAN, |s| s.median);
    let batch = median(&records_per_batch);

    let mut table = String::from("| Line | per webhook | USD per million webhooks |\n|---|---:|---:|\n");
    for line in &lines {
        table.push_str(&format!(
            "| {} | {} {} | {:.2} |\n",
            line.name,
            significant(median(&line.per_webhook)),
            line.unit,
            median(&line.usd_per_million)
        ));
    }
    table.push_str(&format!("| **Total** | | **{:.2}** |", median(&totals)));
    section.notes.push(table);

    let largest = lines
        .iter()
        .max_by(|a, b| median(&a.usd_per_million).total_cmp(&median(&b.usd_per_million)))
        .map_or("", |l| l.name);
    section.figures.extend([
        Figure::new(
            "Cost per million webhooks (USD, prices above)",
            Unit::Usd,
            totals,
            Some(Goal::AtMost(COST_PER_MILLION_MAX_USD)),
        ),
        Figure::new("Deliveries per webhook (the load run's repeats)", Unit::Decimal, per(&|l| l.deliveries), None),
        Figure::new("DynamoDB write units per webhook", Unit::Decimal, lines[4].per_webhook.clone(), None),
        Figure::new("SQS requests per webhook", Unit::Decimal, lines[3].per_webhook.clone(), None),
        Figure::new("Poster records per invocation (load run)", Unit::Decimal, records_per_batch, None),
    ]);
    let mut by_item: Vec<(String, f64)> = Vec::new();
    if let Some(Value::Object(items)) = inputs.loads.first().map(|l| &l.report["writesByItem"]) {
        let webhooks = inputs.loads[0].webhooks;
        for (kind, counts) in items {
            by_item.push((kind.clone(), counts["writeUnits"].as_f64().unwrap_or(0.0) / webhooks));
        }
    }
    by_item.sort_by(|a, b| b.1.total_cmp(&a.1));
    section.notes.push(format!(
        "Largest line: {largest}. Write units per webhook by item kind (first run): {}.",
        by_item
            .iter()
            .filter(|(_, units)| *units >= 0.005)
            .map(|(kind, units)| format!("`{kind}` {units:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    section.notes.push(format!(
        "Prices: ap-southeast-2 list prices as of {PRICES_AS_OF}: API Gateway HTTP API ${API_GATEWAY_HTTP_PER_MILLION}/million; \
         Lambda ${LAMBDA_REQUEST_PER_MILLION}/million requests and ${LAMBDA_ARM_PER_GB_SECOND}/GB-s (Arm); SQS \
         ${SQS_PER_MILLION}/million requests; DynamoDB on-demand ${DYNAMODB_WRITE_UNIT_PER_MILLION}/million write and \
         ${DYNAMODB_READ_UNIT_PER_MILLION}/million read request units; CloudWatch Logs ${LOGS_PER_GB}/GB ingested. Free \
         tiers are left out. Not per webhook, so not in the table: EMF custom metrics ($0.30 per metric a month, about a \
         dozen), the event source mapping's idle long polls (a few SQS requests a minute), storage, alarms."
    ));
    section.notes.push(format!(
        "How: per webhook = the load runs' counts (`GET /local/usage` after each run drained) over their distinct \
         webhooks, so the repeats the run delivers (every {}th delivery) are included. DynamoDB units follow the \
         Developer Guide's item-size rules; SQS deletes are billed as the event source mapping's one DeleteMessageBatch \
         per batch. Lambda durations: the cold-start part's warm wall time per invocation over TLS to moto, with its CPU \
         stretched to 256 MB's share of a vCPU (receiver {:.0} ms, poster {:.0} ms per record, {} records a batch, \
         taken as if run one after another). moto answers slower than AWS (a warm SendMessage waits on it for most of \
         the receiver's wall time, as its queue grows), so the duration line overstates; it is small either way. Logs: what the warm invocations wrote \
         (receiver {:.0} bytes of which EMF {:.0}; poster {:.0} of which EMF {:.0}) plus {PLATFORM_LOG_BYTES_PER_INVOCATION} \
         bytes of Lambda's platform records per invocation.",
        super::LOAD_REPEAT_EVERY,
        receiver.billed_ms(RECEIVER_MEMORY_MB),
        poster.billed_ms(POSTER_MEMORY_MB),
        significant(batch),
        receiver.log_bytes,
        receiver.emf_bytes,
        poster.log_bytes,
        poster.emf_bytes,
    ));
    Ok(section)
}

/// Three significant figures, without a trailing zero run.
fn significant(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    let digits = if value == 0.0 { 0 } else { (2 - value.abs().log10().floor() as i32).clamp(0, 8) as usize };
    format!("{value:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billed_time_stretches_only_the_cpu_part() {
        let warm = Warm { cpu_ms: 1.0, wall_ms: 5.0, log_bytes: 0.0, emf_bytes: 0.0 };
        // 1 ms of CPU at 256/1769 of a vCPU takes 6.9 ms; the 4 ms of waiting stay 4 ms.
        assert_eq!(warm.billed_ms(256.0), (5.0 + 1769.0 / 256.0 - 1.0_f64).ceil());
        assert_eq!(warm.billed_ms(4096.0), 5.0);
    }

    #[test]
    fn significant_figures() {
        assert_eq!(significant(5.1234), "5.12");
        assert_eq!(significant(0.0123456), "0.0123");
        assert_eq!(significant(1234.5), "1234");
        assert_eq!(significant(0.0), "0");
    }
}
