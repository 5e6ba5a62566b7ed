//! 1. Criterion: the handlers' cost in process, from the criterion benches
//!    `functions/webhook-receiver/benches/receiver.rs` and
//!    `functions/invoice-status-poster/benches/adjudication.rs`, run [`CRITERION_RUNS`] times; each
//!    run's median is read from `target/criterion/<group>/<bench>/new/estimates.json`.
//!    The receiver's path is also counted in instructions under callgrind (valgrind), which the
//!    host's load does not move: see [`instructions_per_webhook`].

use super::report::{Figure, Goal, Section, Unit, format_value};
use super::{CRITERION_RUNS, POSTER_ADJUDICATION_MAX_NS, RECEIVER_HANDLER_MAX_NS, target_dir};
use crate::process::cargo;
use anyhow::{Context, bail};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;

struct CriterionFigure {
    package: &'static str,
    bench: &'static str,
    group: &'static str,
    function: &'static str,
    name: &'static str,
    max_ns: Option<f64>,
}

const CRITERION_FIGURES: &[CriterionFigure] = &[
    CriterionFigure {
        package: "webhook-receiver",
        bench: "receiver",
        group: "webhook-receiver",
        function: "apigw-v2-event-to-202",
        name: "Receiver: API Gateway v2 event JSON → 202, queued (criterion)",
        max_ns: Some(RECEIVER_HANDLER_MAX_NS),
    },
    CriterionFigure {
        package: "webhook-receiver",
        bench: "receiver",
        group: "webhook-receiver",
        function: "apigw-v2-event-deserialise",
        name: "Receiver, first half: the event JSON into a `lambda_http::Request` (criterion)",
        max_ns: None,
    },
    CriterionFigure {
        package: "webhook-receiver",
        bench: "receiver",
        group: "webhook-receiver",
        function: "handle-request-to-202",
        name: "Receiver, second half: `Receiver::handle` → 202, queued, its value from a rotating secret (criterion)",
        max_ns: None,
    },
    CriterionFigure {
        package: "webhook-receiver",
        bench: "receiver",
        group: "webhook-receiver",
        function: "handle-request-to-202-fixed-secret",
        name: "Receiver, second half, its value fixed in the environment: what rotation costs is the difference (criterion)",
        max_ns: None,
    },
    CriterionFigure {
        package: "invoice-status-poster",
        bench: "adjudication",
        group: "invoice-status-poster",
        function: "adjudicate-50-claims-and-serialise",
        name: "Poster: adjudicate a 50-claim invoice and serialise the status body (criterion)",
        max_ns: Some(POSTER_ADJUDICATION_MAX_NS),
    },
    CriterionFigure {
        package: "invoice-status-poster",
        bench: "adjudication",
        group: "invoice-status-poster",
        function: "parse-adjudicate-serialise-50-claims",
        name: "Poster: the same, parsing the 50-claim webhook first (criterion)",
        max_ns: None,
    },
];

pub(super) fn criterion(root: &Path) -> anyhow::Result<Section> {
    let mut section = Section::new("Handler cost (criterion, in process)");
    let home = target_dir(root).join("criterion");
    // Its own target directory: a bench build enables the dev-dependencies' features (the
    // embedded adapters) and would overwrite target/release's Lambda binaries with that build.
    let build_dir = target_dir(root).join("criterion-build");
    let mut benches: Vec<(&str, &str)> = CRITERION_FIGURES.iter().map(|f| (f.package, f.bench)).collect();
    benches.dedup();
    let mut receiver_bench = None;
    for (package, bench) in &benches {
        let output = cargo()
            .current_dir(root)
            .env("CARGO_TARGET_DIR", &build_dir)
            .args(["bench", "-p", package, "--bench", bench, "--no-run", "--message-format=json"])
            .stderr(Stdio::inherit())
            .output()
            .context("running cargo bench --no-run")?;
        if !output.status.success() {
            bail!("cargo bench -p {package} --bench {bench} does not build ({})", output.status);
        }
        if (*package, *bench) == ("webhook-receiver", "receiver") {
            receiver_bench = executable(&output.stdout, bench);
        }
        section.commands.push(format!(
            "CARGO_TARGET_DIR=target/criterion-build CRITERION_HOME=target/criterion cargo bench -p {package} --bench {bench} -- --noplot   # x{CRITERION_RUNS}"
        ));
    }
    let mut medians: Vec<Vec<f64>> = vec![Vec::new(); CRITERION_FIGURES.len()];
    let mut intervals: Vec<String> = vec![String::new(); CRITERION_FIGURES.len()];
    for run in 1..=CRITERION_RUNS {
        for (package, bench) in &benches {
            let estimates = |figure: &CriterionFigure| {
                home.join(figure.group).join(figure.function).join("new").join("estimates.json")
            };
            for figure in CRITERION_FIGURES.iter().filter(|f| f.package == *package && f.bench == *bench) {
                let _ = std::fs::remove_file(estimates(figure));
            }
            let output = cargo()
                .current_dir(root)
                .env("CARGO_TARGET_DIR", &build_dir)
                .env("CRITERION_HOME", &home)
                .args(["bench", "-p", package, "--bench", bench, "--", "--noplot"])
                .stderr(Stdio::inherit())
                .output()
                .context("running cargo bench")?;
            if !output.status.success() {
                bail!(
                    "cargo bench -p {package} --bench {bench} failed ({}):\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stdout)
                );
            }
            for (index, figure) in
                CRITERION_FIGURES.iter().enumerate().filter(|(_, f)| f.package == *package && f.bench == *bench)
            {
                let path = estimates(figure);
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("criterion wrote no {}", path.display()))?;
                let value: Value =
                    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
                let median = value["median"]["point_estimate"]
                    .as_f64()
                    .with_context(|| format!("{} has no median", path.display()))?;
                let low = value["median"]["confidence_interval"]["lower_bound"].as_f64().unwrap_or(f64::NAN);
                let high = value["median"]["confidence_interval"]["upper_bound"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "  run {run}/{CRITERION_RUNS}: {} median {}",
                    figure.function,
                    format_value(Unit::Nanos, median)
                );
                medians[index].push(median);
                let separator = if intervals[index].is_empty() { "" } else { "; " };
                let interval =
                    format!("{separator}{} – {}", format_value(Unit::Nanos, low), format_value(Unit::Nanos, high));
                intervals[index].push_str(&interval);
            }
        }
    }
    let instructions = receiver_bench
        .context("cargo named no executable for the receiver bench")
        .and_then(|executable| instructions_per_webhook(&executable));
    for (index, figure) in CRITERION_FIGURES.iter().enumerate() {
        section.figures.push(Figure::new(
            figure.name,
            Unit::Nanos,
            medians[index].clone(),
            figure.max_ns.map(Goal::AtMost),
        ));
        section.notes.push(format!(
            "`{}/{}`: criterion's 95% interval of the median, per run: {}",
            figure.group, figure.function, intervals[index]
        ));
    }
    section.notes.push(
        "Receiver: events/webhook-receiver/invoice-submitted.json (the spec's Example Invoice Submitted Webhook in an API \
         Gateway HTTP API v2 event) is deserialised from bytes as `lambda_runtime` does (serde_json through `serde_path_to_error`) and made the handler's request by `shared::web::request_from_event` \
         (as `serve_http` does), handled by `Receiver::handle` (header check in constant time, envelope check, `SendMessage` \
         on an `EmbeddedQueue`), and its response made the 202 response event (`shared::web::response_to_event`); the queue is drained, untimed, every 1,000 webhooks and must hold exactly one message per webhook. No \
         tracing subscriber is installed, so log lines cost nothing here (they are in the cold-start CPU figure)."
            .into(),
    );
    match instructions {
        Ok(per_webhook) => {
            section.figures.push(Figure::new(
                "Receiver: instructions per webhook, the same path (callgrind; the host's load does not move it)",
                Unit::Count,
                vec![per_webhook],
                None,
            ));
            section.commands.push(format!(
                "RECEIVER_BENCH_WEBHOOKS=<n> valgrind --tool=callgrind target/criterion-build/release/deps/receiver-<hash>   # n = 0 and {COUNTED_WEBHOOKS}"
            ));
            section.notes.push(format!(
                "Instructions per webhook: the receiver bench's binary sends n webhooks down the timed path and exits; \
                 callgrind counts every instruction it runs for n = 0 and n = {COUNTED_WEBHOOKS}, and the difference is divided \
                 by {COUNTED_WEBHOOKS}. Unlike the times above it does not change with the hour: compare it between commits."
            ));
        }
        // A figure without a target: not having valgrind leaves it out, and says so.
        Err(error) => section.notes.push(format!("Instructions per webhook not counted: {error:#}")),
    }
    section.notes.push(
        "Poster: the spec's example claim repeated 50 times, cycling through the `mpl` schedule's rules (percentage with a \
         cap, cap, percentage, review), adjudicated against local/data/benefit-schedule.json for an active member, and the \
         Invoice Status Updated body serialised to bytes."
            .into(),
    );
    Ok(section)
}

/// Webhooks the counted run sends (the uncounted one sends none).
const COUNTED_WEBHOOKS: u64 = 2_000;

/// The executable cargo built for `bench`, from its `--message-format=json` output.
fn executable(cargo_json: &[u8], bench: &str) -> Option<String> {
    String::from_utf8_lossy(cargo_json)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["target"]["name"] == bench)
        .find_map(|message| message["executable"].as_str().map(str::to_owned))
}

/// The receiver's instructions per webhook on the criterion path: its bench binary run under
/// callgrind with `RECEIVER_BENCH_WEBHOOKS` 0 and [`COUNTED_WEBHOOKS`], the difference divided.
fn instructions_per_webhook(executable: &str) -> anyhow::Result<f64> {
    let count = |webhooks: u64| -> anyhow::Result<f64> {
        let output = std::process::Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null", executable])
            .env("RECEIVER_BENCH_WEBHOOKS", webhooks.to_string())
            .output()
            .context("running valgrind (Debian's valgrind package)")?;
        let report = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("valgrind exited {}:\n{report}", output.status);
        }
        collected(&report).with_context(|| format!("callgrind reported no count:\n{report}"))
    };
    let base = count(0)?;
    let counted = count(COUNTED_WEBHOOKS)?;
    Ok((counted - base) / COUNTED_WEBHOOKS as f64)
}

/// The instruction count in callgrind's summary line `==pid== Collected : 807038430`.
fn collected(report: &str) -> Option<f64> {
    report.lines().find_map(|line| line.split_once("Collected :").and_then(|(_, count)| count.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn callgrinds_count_is_read_from_its_summary() {
        let report = "==26805== Events    : Ir\n==26805== Collected : 807038430\n==26805==\n==26805== I   refs:      807,038,430\n";
        assert_eq!(super::collected(report), Some(807_038_430.0));
        assert_eq!(super::collected("==1== no summary\n"), None);
    }
}
