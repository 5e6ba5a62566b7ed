//! `cargo xtask bench`: measures what issue 8 asks, on this machine, and writes `BENCHMARKS.md`.
//!
//! 1. **Handler cost**: the criterion benches `functions/webhook-receiver/benches/receiver.rs` and
//!    `functions/invoice-status-poster/benches/adjudication.rs`, run [`CRITERION_RUNS`] times; each
//!    run's median is read from `target/criterion/<group>/<bench>/new/estimates.json`.
//! 2. **Load**: `target/release/local` on a free loopback port; [`LOAD_WEBHOOKS`] HICAPS webhooks
//!    over [`LOAD_CONNECTIONS`] keep-alive connections, every tenth a repeated delivery of an
//!    earlier one (same id, same body), while the poster drains the queue into the HICAPS
//!    simulator. Then every distinct webhook must have exactly one status post and nothing may be
//!    dead-lettered. The load generator is here (tokio tasks on one thread, HTTP/1.1 written by hand) because
//!    oha picks a body line at random per request (`-Z`), which cannot make "these 45,000 webhooks,
//!    5,000 of them twice" nor tell which were sent; oha (or wrk) runs once more as a cross-check of
//!    the acknowledgement figures.
//! 3. **Cold start**: a Lambda Runtime API emulator (below) starts each function's release binary
//!    with its Lambda environment (moto for DynamoDB and SQS, the local stack's simulators for the
//!    upstreams) and times process start -> first `next` (init) and -> first response (first
//!    invoke); then CPU per warm invocation (utime + stime from `/proc/<pid>/stat`) and peak RSS
//!    (`VmHWM`).
//! 4. **Package size**: `crate::lambda::package` (`cargo lambda build --release --arm64`, zipped).
//!
//! While profiling: `XTASK_BENCH_FUNCTIONS=webhook-receiver` limits the cold-start part to the
//! named functions, `XTASK_BENCH_PERF=<dir>` records their warm invocations with
//! `perf record -g` into `<dir>`, and `XTASK_BENCH_NO_BUILD=1` measures the release binaries as
//! they are (a build with symbols, say, from `CARGO_PROFILE_RELEASE_STRIP=false`).
//!
//! Every figure is the median of several runs with its min-max spread. Targets are checked on
//! the median (counts that must be zero: on every run); the task fails naming each missed one,
//! after writing the file. Nothing here asserts timing in a unit test.

#![allow(clippy::float_arithmetic)] // statistics of measurements, not money

mod cost;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use shared::queue::sqs::SqsQueue;
use shared::store::dynamo::DynamoTable;
use shared::store::{Condition, ItemPut};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Targets (issue 8) and run counts

const RECEIVER_HANDLER_MAX_NS: f64 = 10_000.0;
const POSTER_ADJUDICATION_MAX_NS: f64 = 100_000.0;
const LOAD_MIN_ACKS_PER_SECOND: f64 = 10_000.0;
const LOAD_MAX_P99_MS: f64 = 5.0;
/// Issue 19's targets hold over TLS (the figures without TLS are shown beside them, unjudged).
const INIT_MAX_MS: f64 = 30.0;
/// The first invocation alone (first `next` to its response): HTTP functions, and the poster.
const FIRST_INVOCATION_MAX_MS: f64 = 10.0;
const POSTER_FIRST_INVOCATION_MAX_MS: f64 = 20.0;
/// Lambda gives a function CPU in proportion to its memory, a whole vCPU at 1,769 MB (AWS Lambda
/// Developer Guide, "Memory and computing power"); at the template's 256 MB about a seventh.
const LAMBDA_MB_PER_VCPU: f64 = 1769.0;
const TEMPLATE_MEMORY_MB: f64 = 256.0;
/// Our receiver's warm CPU per webhook must be at least this many times below the peer's.
const RECEIVER_CPU_MIN_ADVANTAGE: f64 = 5.0;
/// The Python peer of the receiver (xtask/peer/receiver.py) and what it runs on, pinned.
const POWERTOOLS_PEER_NAME: &str = "powertools-peer";
const POWERTOOLS_PEER: &str = "awslambdaric==3.1.1 aws-lambda-powertools==3.23.0 boto3==1.40.0";
const RECEIVER_CPU_MAX_MS: f64 = 0.5;
const FUNCTION_RSS_MAX_MIB: f64 = 16.0;
/// 4 MB, as 1 MB = 1,000,000 bytes (what `PackageReport::megabytes` prints).
const PACKAGE_MAX_BYTES: f64 = 4_000_000.0;

const CRITERION_RUNS: usize = 5;
const LOAD_RUNS: usize = 3;
const LOAD_WEBHOOKS: usize = 50_000;
const LOAD_CONNECTIONS: usize = 64;
/// Every `LOAD_REPEAT_EVERY`-th delivery repeats an earlier webhook: 10%.
const LOAD_REPEAT_EVERY: usize = 10;
/// A repeat is of one of the last this many distinct webhooks: some still queued or in progress
/// (the poster's lock), some done (its completion record).
const LOAD_REPEAT_WINDOW: usize = 2_000;
/// How long the poster may take to drain the queue after the last acknowledgement.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Once every status is posted, how long no further post may arrive before the run is judged.
const QUIET_PERIOD: Duration = Duration::from_secs(5);
const COLD_STARTS: usize = 5;
const RECEIVER_WARM_INVOCATIONS: usize = 1_000;
const OTHER_WARM_INVOCATIONS: usize = 300;

const WEBHOOK_HEADER: &str = "x-hicaps-webhook-key";
const WEBHOOK_SECRET: &str = "local-webhook-secret";
const TABLE_NAME: &str = "claims-gateway-bench";
const MAX_RECEIVE_COUNT: u32 = 8;
const REGION: &str = "ap-southeast-2";
const ACCOUNT: &str = "123456789012";

fn functions() -> [&'static str; 5] {
    ["webhook-receiver", "invoice-status-poster", "icp-query-proxy", "eligibility-check", "icare-sender"]
}

// ---------------------------------------------------------------------------------------------
// The report

#[derive(Clone, Copy, Debug, PartialEq)]
enum Goal {
    AtMost(f64),
    AtLeast(f64),
    /// On every run (counts that must be zero).
    Exactly(f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Unit {
    Nanos,
    Millis,
    PerSecond,
    Kib,
    Bytes,
    Count,
    /// A ratio of two figures ("times").
    Ratio,
    Cores,
    /// US dollars.
    Usd,
    /// A count or a mean, with two decimals.
    Decimal,
}

fn format_value(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Nanos if value >= 1_000.0 => format!("{:.2} µs", value / 1_000.0),
        Unit::Nanos => format!("{value:.0} ns"),
        Unit::Millis if value < 1.0 => format!("{value:.3} ms"),
        Unit::Millis => format!("{value:.2} ms"),
        Unit::PerSecond => format!("{value:.0}/s"),
        Unit::Kib => format!("{:.1} MiB", value / 1024.0),
        Unit::Bytes => format!("{:.2} MB ({value:.0} B)", value / 1_000_000.0),
        Unit::Count => format!("{value:.0}"),
        Unit::Ratio => format!("{value:.1}×"),
        Unit::Cores => format!("{value:.2} cores"),
        Unit::Usd => format!("${value:.2}"),
        Unit::Decimal => format!("{value:.2}"),
    }
}

fn format_goal(unit: Unit, goal: Goal) -> String {
    match goal {
        Goal::AtMost(value) => format!("≤ {}", format_value(unit, value)),
        Goal::AtLeast(value) => format!("≥ {}", format_value(unit, value)),
        Goal::Exactly(value) => format!("= {} (every run)", format_value(unit, value)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(values: &[f64]) -> Option<Spread> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2.0 };
    Some(Spread { median, min: sorted[0], max: sorted[sorted.len() - 1] })
}

/// The value at `quantile` (0..=1) of sorted `values`, nearest rank.
fn percentile(sorted: &[u64], quantile: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Clone)]
struct Figure {
    name: String,
    unit: Unit,
    values: Vec<f64>,
    goal: Option<Goal>,
}

impl Figure {
    fn new(name: impl Into<String>, unit: Unit, values: Vec<f64>, goal: Option<Goal>) -> Self {
        Self { name: name.into(), unit, values, goal }
    }

    /// `None` without a goal; whether the goal is met otherwise (no value: not met).
    fn met(&self) -> Option<bool> {
        let goal = self.goal?;
        let Some(spread) = spread(&self.values) else {
            return Some(false);
        };
        Some(match goal {
            Goal::AtMost(limit) => spread.median <= limit,
            Goal::AtLeast(floor) => spread.median >= floor,
            Goal::Exactly(wanted) => self.values.iter().all(|v| (*v - wanted).abs() < f64::EPSILON),
        })
    }

    fn row(&self) -> String {
        let (median, range) = match spread(&self.values) {
            Some(s) if self.values.len() > 1 => (
                format_value(self.unit, s.median),
                format!("{} – {}", format_value(self.unit, s.min), format_value(self.unit, s.max)),
            ),
            Some(s) => (format_value(self.unit, s.median), "(one run)".to_owned()),
            None => ("not measured".to_owned(), String::new()),
        };
        let goal = self.goal.map(|g| format_goal(self.unit, g)).unwrap_or_default();
        let verdict = match self.met() {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        };
        format!("| {} | {median} | {range} | {} | {goal} | {verdict} |", self.name, self.values.len())
    }
}

#[derive(Debug, Default)]
struct Section {
    title: String,
    commands: Vec<String>,
    figures: Vec<Figure>,
    notes: Vec<String>,
    /// Why the section (or part of it) could not be measured.
    failures: Vec<String>,
}

impl Section {
    fn new(title: &str) -> Self {
        Self { title: title.to_owned(), ..Self::default() }
    }
}

/// What the machine and the checkout are.
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) cpu: String,
    pub(crate) memory: String,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    pub(crate) commit: String,
    pub(crate) dirty: bool,
    pub(crate) date: String,
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

pub(crate) fn machine(root: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:").map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok()))
        .flatten()
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".to_owned());
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    Machine {
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        cpu,
        memory,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|k| k.trim().to_owned()).unwrap_or_default(),
        rustc: command_line("rustc", &["-V"]).unwrap_or_else(|| "unknown".to_owned()),
        commit: git(&["rev-parse", "--short", "HEAD"])
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned()),
        dirty: git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.stdout.is_empty()),
        date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
    }
}

/// Marks where the hand-written part of BENCHMARKS.md starts; everything from it on is kept.
const KEEP_MARKER: &str = "<!-- cargo xtask bench keeps everything below this line -->";

fn render(machine: &Machine, sections: &[Section], kept: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench` (xtask/src/bench.rs) on {}. Re-run it to refresh every figure; the \
         part below the marker at the end is kept.\n",
        machine.date
    );
    let _ =
        writeln!(md, "- commit: `{}`{}", machine.commit, if machine.dirty { " with uncommitted changes" } else { "" });
    let _ = writeln!(
        md,
        "- machine: {} cores, {}, {} RAM, Linux {}",
        machine.cores, machine.cpu, machine.memory, machine.kernel
    );
    let _ = writeln!(
        md,
        "- toolchain: {}; release profile: fat LTO, one codegen unit, stripped, panic = unwind, dependencies at opt-level \"s\" but for the event, JSON and runtime-API path (Cargo.toml)",
        machine.rustc
    );
    let _ = writeln!(
        md,
        "- each figure: the median of its runs, with the smallest and largest run; targets from issue 8 are checked on the median, and counts that must be zero on every run\n"
    );

    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(md, "| figure | median | spread (min – max) | runs | target | |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for section in sections {
        for figure in section.figures.iter().filter(|f| f.goal.is_some()) {
            let _ = writeln!(md, "{}", figure.row());
        }
        for failure in &section.failures {
            let _ = writeln!(
                md,
                "| {}: not measured ({}) | | | | | **missed** |",
                section.title,
                first_line(failure).replace('|', "/")
            );
        }
    }
    let _ = writeln!(md);

    for section in sections {
        let _ = writeln!(md, "## {}\n", section.title);
        if !section.commands.is_empty() {
            let _ = writeln!(md, "```sh");
            for command in &section.commands {
                let _ = writeln!(md, "{command}");
            }
            let _ = writeln!(md, "```\n");
        }
        if !section.figures.is_empty() {
            let _ = writeln!(md, "| figure | median | spread (min – max) | runs | target | |");
            let _ = writeln!(md, "|---|---|---|---|---|---|");
            for figure in &section.figures {
                let _ = writeln!(md, "{}", figure.row());
            }
            let _ = writeln!(md);
        }
        for failure in &section.failures {
            let _ = writeln!(md, "**Not measured:** {}\n", failure.replace('\n', " "));
        }
        for note in &section.notes {
            // A note that is a table stands alone; the others are a list.
            if note.starts_with('|') {
                let _ = writeln!(md, "{note}\n");
            } else {
                let _ = writeln!(md, "- {note}");
            }
        }
        if !section.notes.is_empty() {
            let _ = writeln!(md);
        }
    }
    let _ = writeln!(md, "{KEEP_MARKER}");
    md.push_str(kept);
    md
}

fn missed(sections: &[Section]) -> Vec<String> {
    let mut missed = Vec::new();
    for section in sections {
        for figure in &section.figures {
            if figure.met() == Some(false) {
                let value = spread(&figure.values)
                    .map(|s| format_value(figure.unit, s.median))
                    .unwrap_or_else(|| "not measured".into());
                let goal = figure.goal.map(|g| format_goal(figure.unit, g)).unwrap_or_default();
                missed.push(format!("{}: {value} (target {goal})", figure.name));
            }
        }
        for failure in &section.failures {
            missed.push(format!("{}: not measured ({})", section.title, first_line(failure)));
        }
    }
    missed
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Entry point

/// The parts of the run, by the names `cargo xtask bench <part>...` takes.
const PARTS: [&str; 4] = ["criterion", "load", "cold-start", "package"];

/// Runs every measurement (or only the named `parts`), writes `BENCHMARKS.md` at `root` (a
/// partial run writes `target/bench/partial.md` instead), and fails naming every missed target.
pub fn run(root: &Path, venv: &Path, parts: &[String]) -> anyhow::Result<()> {
    if let Some(unknown) = parts.iter().find(|part| !PARTS.contains(&part.as_str())) {
        bail!("unknown part {unknown:?}; cargo xtask bench [{}]...", PARTS.join("|"));
    }
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let machine = machine(root);
    println!(
        "xtask bench: commit {}{} on {} cores ({})",
        machine.commit,
        if machine.dirty { " (uncommitted changes)" } else { "" },
        machine.cores,
        machine.cpu
    );
    let work = target_dir(root).join("bench");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    let mut sections = Vec::new();
    if wanted("criterion") {
        sections.push(guarded("Handler cost (criterion, in process)", || criterion(root)));
    }
    let needs_release = wanted("load") || wanted("cold-start");
    // XTASK_BENCH_NO_BUILD=1: measure the release binaries as they are (a profiling build).
    let built =
        if needs_release && std::env::var_os("XTASK_BENCH_NO_BUILD").is_none() { build_release(root) } else { Ok(()) };
    let release_parts = [
        ("load", "Load through the local stack"),
        ("cold-start", "Cold start, CPU per invocation and memory (Lambda Runtime API emulator)"),
    ];
    let mut costs = cost::Inputs::default();
    for (part, title) in release_parts.into_iter().filter(|(part, _)| wanted(part)) {
        let section = match &built {
            Ok(()) if part == "load" => guarded(title, || load(root, &work, &mut costs)),
            Ok(()) => guarded(title, || cold_start(root, venv, &work, &mut costs)),
            Err(error) => {
                let mut section = Section::new(title);
                section.failures.push(format!("the release build failed: {error:#}"));
                section
            }
        };
        sections.push(section);
    }
    if wanted("load") && wanted("cold-start") && built.is_ok() {
        sections.push(guarded("What a million webhooks cost", || cost::section(&costs)));
    }
    if wanted("package") {
        sections.push(guarded("Package size", || package(root, venv)));
    }

    let path = if parts.is_empty() { root.join("BENCHMARKS.md") } else { work.join("partial.md") };
    let kept = std::fs::read_to_string(root.join("BENCHMARKS.md"))
        .ok()
        .and_then(|old| old.split_once(KEEP_MARKER).map(|(_, tail)| tail.to_owned()))
        .unwrap_or_else(|| {
            "\n## Changes made for these targets\n\n(What was profiled and changed, with before and after figures.)\n"
                .to_owned()
        });
    std::fs::write(&path, render(&machine, &sections, &kept)).with_context(|| format!("writing {}", path.display()))?;
    println!("xtask bench: wrote {}", path.display());

    let missed = missed(&sections);
    if !missed.is_empty() {
        bail!("{} target(s) missed:\n  {}", missed.len(), missed.join("\n  "));
    }
    println!("xtask bench: every target met");
    Ok(())
}

/// A section, or what stopped it, so one failure does not lose the others' figures. Notes the
/// machine's load average around it: other work on the machine shows in every figure.
fn guarded(title: &str, measure: impl FnOnce() -> anyhow::Result<Section>) -> Section {
    println!("xtask bench: {title}");
    let before = load_average();
    let started = Instant::now();
    let mut section = match measure() {
        Ok(section) => section,
        Err(error) => {
            println!("xtask bench: {title}: not measured: {error:#}");
            let mut section = Section::new(title);
            section.failures.push(format!("{error:#}"));
            section
        }
    };
    section.notes.push(format!(
        "Took {:.0} s; load average (1 min) {before} before, {} after, on {} cores: anything above what this section \
         itself runs means other work shared the machine.",
        started.elapsed().as_secs_f64(),
        load_average(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    ));
    section
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

fn release_binary(root: &Path, name: &str) -> PathBuf {
    target_dir(root).join("release").join(name)
}

fn build_release(root: &Path) -> anyhow::Result<()> {
    let mut packages = vec!["local"];
    packages.extend(functions());
    println!("xtask bench: cargo build --release -p {}", packages.join(" -p "));
    let mut command = Command::new(cargo());
    command.current_dir(root).args(["build", "--release"]);
    for package in &packages {
        command.args(["-p", package]);
    }
    let status = command.status().context("running cargo build --release")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. Criterion

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

fn criterion(root: &Path) -> anyhow::Result<Section> {
    let mut section = Section::new("Handler cost (criterion, in process)");
    let home = target_dir(root).join("criterion");
    // Its own target directory: a bench build enables the dev-dependencies' features (the
    // embedded adapters) and would overwrite target/release's Lambda binaries with that build.
    let build_dir = target_dir(root).join("criterion-build");
    let mut benches: Vec<(&str, &str)> = CRITERION_FIGURES.iter().map(|f| (f.package, f.bench)).collect();
    benches.dedup();
    for (package, bench) in &benches {
        let status = Command::new(cargo())
            .current_dir(root)
            .env("CARGO_TARGET_DIR", &build_dir)
            .args(["bench", "-p", package, "--bench", bench, "--no-run"])
            .status()
            .context("running cargo bench --no-run")?;
        if !status.success() {
            bail!("cargo bench -p {package} --bench {bench} does not build ({status})");
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
            let output = Command::new(cargo())
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
         Gateway HTTP API v2 event) is deserialised from bytes as the runtime does and made the handler's request by `shared::web::request_from_event` \
         (as `serve_http` does), handled by `Receiver::handle` (header check in constant time, envelope check, `SendMessage` \
         on an `EmbeddedQueue`), and its response made the 202 response event (`shared::web::response_to_event`); the queue is drained, untimed, every 1,000 webhooks and must hold exactly one message per webhook. No \
         tracing subscriber is installed, so log lines cost nothing here (they are in the cold-start CPU figure)."
            .into(),
    );
    section.notes.push(
        "Poster: the spec's example claim repeated 50 times, cycling through the `mpl` schedule's rules (percentage with a \
         cap, cap, percentage, review), adjudicated against local/data/benefit-schedule.json for an active member, and the \
         Invoice Status Updated body serialised to bytes."
            .into(),
    );
    Ok(section)
}

// ---------------------------------------------------------------------------------------------
// Processes and /proc

/// A child process, killed when dropped; its output goes to `log`.
struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    /// Just before the spawn.
    started: Instant,
}

impl Process {
    fn spawn(name: &str, mut command: Command, log: PathBuf) -> anyhow::Result<Self> {
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
        let started = Instant::now();
        let child = command.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Self { name: name.to_owned(), child, log, started })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); the end of {}:\n{}", self.name, self.log.display(), tail(&self.log));
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(path: &Path) -> String {
    let content = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = content.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// CPU time of the process's live threads, in nanoseconds (the first field of each
/// `/proc/<pid>/task/<tid>/schedstat`): fine enough for an init of a few milliseconds, which
/// `stat`'s 10 ms ticks are not.
fn cpu_nanos(pid: &str) -> anyhow::Result<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).with_context(|| format!("reading /proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat")).unwrap_or_default();
        total = total.saturating_add(stat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).unwrap_or(0));
    }
    Ok(total)
}

/// utime + stime of the process (all its threads, live and exited), in clock ticks.
fn cpu_ticks(pid: &str) -> anyhow::Result<u64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may contain spaces) start at field 3, `state`;
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn ticks_per_second() -> f64 {
    command_line("getconf", &["CLK_TCK"]).and_then(|t| t.parse::<f64>().ok()).unwrap_or(100.0)
}

/// Peak resident set size (VmHWM) in KiB.
fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_vm_hwm(&status).context("no VmHWM in /proc/<pid>/status")
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Minimal HTTP/1.1 (blocking), for the control requests, the relay and the emulator (the load
// generator's async reader is `read_answer`)

/// Where `needle` starts in `haystack` (up to its first byte that is not UTF-8: HTTP heads are
/// ASCII). `str::find` is core's optimised searcher even in xtask's unoptimised build, which
/// keeps the load generator's own CPU low.
fn find(haystack: &[u8], needle: &str) -> Option<usize> {
    let text = match std::str::from_utf8(haystack) {
        Ok(text) => text,
        Err(error) => std::str::from_utf8(&haystack[..error.valid_up_to()]).unwrap_or_default(),
    };
    text.find(needle)
}

struct Head {
    /// Request line or status line.
    first: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        let text = std::str::from_utf8(bytes).context("HTTP head is not UTF-8")?;
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Ok(Self { first, headers })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn status(&self) -> u16 {
        self.first.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
}

/// Reads one HTTP message (head and body, Content-Length or chunked) from `stream`; `buffer`
/// holds bytes read past the previous message. Returns `None` at a clean end of stream.
fn read_message(stream: &mut impl Read, buffer: &mut Vec<u8>) -> anyhow::Result<Option<(Head, Vec<u8>)>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(position) = find(buffer, "\r\n\r\n") {
            break position + 4;
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            if buffer.is_empty() {
                return Ok(None);
            }
            bail!("connection closed inside an HTTP head");
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = Head::parse(&buffer[..head_end - 4])?;
    let chunked = head.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        let mut position = head_end;
        loop {
            let line_end = loop {
                if let Some(offset) = find(&buffer[position..], "\r\n") {
                    break position + offset;
                }
                let read = stream.read(&mut chunk)?;
                if read == 0 {
                    bail!("connection closed inside a chunked body");
                }
                buffer.extend_from_slice(&chunk[..read]);
            };
            let size_text = std::str::from_utf8(&buffer[position..line_end])?
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            let size =
                usize::from_str_radix(&size_text, 16).with_context(|| format!("bad chunk size {size_text:?}"))?;
            // The chunk, then its CRLF (for the last chunk: optional trailers, then CRLF).
            let needed = line_end + 2 + size + 2;
            while buffer.len() < needed {
                let read = stream.read(&mut chunk)?;
                if read == 0 {
                    bail!("connection closed inside a chunk");
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            if size == 0 {
                position = needed;
                break;
            }
            body.extend_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
            position = needed;
        }
        buffer.drain(..position);
        body
    } else {
        let length: usize = head.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buffer.len() < head_end + length {
            let read = stream.read(&mut chunk)?;
            if read == 0 {
                bail!("connection closed inside a body");
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        let body = buffer[head_end..head_end + length].to_vec();
        buffer.drain(..head_end + length);
        body
    };
    Ok(Some((head, body)))
}

/// One request on a fresh connection; (status, body).
fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    http_request_with(port, method, path, &[], body, timeout)
}

fn http_request_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(timeout))?;
    let body = body.unwrap_or_default();
    let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut buffer = Vec::new();
    let (head, body) =
        read_message(&mut stream, &mut buffer)?.with_context(|| format!("{method} {path}: no answer"))?;
    Ok((head.status(), body))
}

fn wait_for_health(process: &mut Process, port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        process.check_running()?;
        if http_request(port, "GET", "/health", None, Duration::from_secs(2)).is_ok_and(|(status, _)| status == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{} did not answer GET /health within {} s:\n{}", process.name, timeout.as_secs(), tail(&process.log))
}

/// `target/release/local` on a free port, embedded store and queues.
fn start_stack(root: &Path, log: PathBuf) -> anyhow::Result<(Process, u16)> {
    let port = free_port()?;
    let mut command = Command::new(release_binary(root, "local"));
    // The stack's defaults, whatever the caller's environment: embedded store and queues, info
    // logs (to a file here, as `cargo run` would print them), four concurrent poster batches.
    command
        .current_dir(root)
        .env("PORT", port.to_string())
        .env("RUST_LOG", "info")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("POSTER_CONCURRENCY")
        .env_remove("LOG_FORMAT");
    let mut process = Process::spawn("the local stack (target/release/local)", command, log)?;
    wait_for_health(&mut process, port, Duration::from_secs(30))?;
    Ok((process, port))
}

// ---------------------------------------------------------------------------------------------
// Ids and webhooks

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version-4-shaped UUID, unique per (`seed`, `n`) within a run: `n` is its last group.
fn uuid(seed: u64, n: u64) -> String {
    let a = splitmix(seed ^ splitmix(n));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((a >> 40) & 0x3fff),
        n & 0xffff_ffff_ffff
    )
}

fn run_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or_default();
    splitmix(nanos ^ u64::from(std::process::id()))
}

fn webhook_template(root: &Path) -> anyhow::Result<Value> {
    let path = root.join("shared/tests/fixtures/hicaps/invoice-submitted-webhook.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Gives `webhook` its own webhook, invoice and claim ids (number `n` of the run `seed`) and points
/// its links at the HICAPS simulator on `simulator_port`. Returns its invoice id.
fn reidentify(webhook: &mut Value, seed: u64, n: u64, simulator_port: u16) -> String {
    let id = uuid(seed, 3 * n);
    let invoice_id = uuid(seed, 3 * n + 1);
    webhook["id"] = json!(id);
    webhook["data"]["invoiceId"] = json!(invoice_id);
    if let Some(claims) = webhook["data"]["claims"].as_array_mut() {
        for (index, claim) in claims.iter_mut().enumerate() {
            claim["claimId"] = json!(uuid(seed ^ (index as u64 + 1), 3 * n + 2));
        }
    }
    link_to_simulator(webhook, simulator_port);
    invoice_id
}

/// Points the webhook's callback links at the HICAPS simulator on `simulator_port`.
fn link_to_simulator(webhook: &mut Value, simulator_port: u16) {
    let id = webhook["id"].as_str().unwrap_or_default().to_owned();
    let invoice_id = webhook["data"]["invoiceId"].as_str().unwrap_or_default().to_owned();
    let base = format!("http://127.0.0.1:{simulator_port}/sim/hicaps");
    webhook["_links"] = json!({
        "lp:invoice-status-updated": {"href": format!("{base}/callbacks/invoice-status/{invoice_id}")},
        "lp:webhook-error": {"href": format!("{base}/callbacks/webhook-error/{id}")},
    });
}

/// The spec's example invoice, [`reidentify`]d. Returns (body, invoice id).
fn webhook(template: &Value, seed: u64, n: u64, simulator_port: u16) -> (String, String) {
    let mut webhook = template.clone();
    let invoice_id = reidentify(&mut webhook, seed, n, simulator_port);
    (webhook.to_string(), invoice_id)
}

// ---------------------------------------------------------------------------------------------
// 2. Load

/// What one load run sends: the distinct webhooks and the order of deliveries (indices into them).
struct Plan {
    requests: Vec<Vec<u8>>,
    bodies: Vec<String>,
    invoice_ids: Vec<String>,
    order: Vec<usize>,
}

/// Which distinct webhook each delivery carries: every `repeat_every`-th repeats one of the last
/// `window` distinct webhooks (pseudo-random, from `seed`). Returns (order, distinct count).
fn delivery_order(deliveries: usize, repeat_every: usize, window: usize, seed: u64) -> (Vec<usize>, usize) {
    let mut order = Vec::with_capacity(deliveries);
    let mut distinct = 0usize;
    let mut state = seed;
    for position in 0..deliveries {
        if position % repeat_every == repeat_every - 1 && distinct > 0 {
            state = splitmix(state);
            let span = distinct.min(window);
            order.push(distinct - 1 - (state as usize % span));
        } else {
            order.push(distinct);
            distinct += 1;
        }
    }
    (order, distinct)
}

impl Plan {
    fn new(template: &Value, port: u16, seed: u64) -> Self {
        let (order, distinct) = delivery_order(LOAD_WEBHOOKS, LOAD_REPEAT_EVERY, LOAD_REPEAT_WINDOW, seed);
        let mut requests = Vec::with_capacity(distinct);
        let mut bodies = Vec::with_capacity(distinct);
        let mut invoice_ids = Vec::with_capacity(distinct);
        for n in 0..distinct {
            let (body, invoice_id) = webhook(template, seed, n as u64, port);
            let mut request = format!(
                "POST /hicaps/webhooks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
                 {WEBHOOK_HEADER}: {WEBHOOK_SECRET}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(body.as_bytes());
            requests.push(request);
            bodies.push(body);
            invoice_ids.push(invoice_id);
        }
        Self { requests, bodies, invoice_ids, order }
    }
}

/// One delivery's outcome.
#[derive(Clone, Copy)]
struct Sent {
    webhook: usize,
    status: u16,
    nanos: u64,
}

struct Driven {
    started: Instant,
    sent: Vec<Sent>,
    wall: Duration,
    generator_cpu_seconds: f64,
}

/// Sends the plan over `connections` keep-alive connections, each taking the next delivery as
/// soon as its previous one is answered (a closed loop, like oha and wrk). All connections are
/// tasks on one thread: a blocking thread per connection (as before) spent the cores the stack
/// needs on 64 threads' context switches, and their wake-ups showed in the latencies.
fn drive(port: u16, plan: &Arc<Plan>, connections: usize) -> anyhow::Result<Driven> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let ticks = ticks_per_second();
    let cpu_before = cpu_ticks("self")?;
    let started = Instant::now();
    let parts = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..connections {
            tasks.spawn(drive_connection(
                port,
                Arc::clone(plan),
                Arc::clone(&next),
                plan.order.len() / connections + 16,
            ));
        }
        let mut parts = Vec::with_capacity(connections);
        while let Some(part) = tasks.join_next().await {
            parts.push(part.map_err(|_| anyhow!("a load generator task panicked"))??);
        }
        anyhow::Ok(parts)
    })?;
    let cpu_after = cpu_ticks("self")?;
    let mut sent = Vec::with_capacity(LOAD_WEBHOOKS);
    let mut finished = started;
    for (part, last) in parts {
        sent.extend(part);
        finished = finished.max(last);
    }
    Ok(Driven {
        started,
        sent,
        wall: finished - started,
        generator_cpu_seconds: (cpu_after - cpu_before) as f64 / ticks,
    })
}

/// One connection of [`drive`]: (what it sent, when its last answer arrived).
async fn drive_connection(
    port: u16,
    plan: Arc<Plan>,
    next: Arc<AtomicUsize>,
    expected: usize,
) -> anyhow::Result<(Vec<Sent>, Instant)> {
    use tokio::io::AsyncWriteExt;
    let connect = || async move {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        anyhow::Ok(stream)
    };
    let mut stream = connect().await?;
    let mut buffer = Vec::with_capacity(4096);
    let mut sent = Vec::with_capacity(expected);
    let mut last = Instant::now();
    loop {
        let position = next.fetch_add(1, Ordering::Relaxed);
        let Some(&webhook) = plan.order.get(position) else { break };
        let begun = Instant::now();
        let exchange = async {
            stream.write_all(&plan.requests[webhook]).await?;
            read_answer(&mut stream, &mut buffer).await
        };
        let answer = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .unwrap_or_else(|_| Err(anyhow!("no answer in 30 s")));
        last = Instant::now();
        let nanos = (last - begun).as_nanos() as u64;
        match answer {
            Ok(head) => {
                sent.push(Sent { webhook, status: head.status(), nanos });
                if head.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                    stream = connect().await?;
                    buffer.clear();
                }
            }
            Err(_) => {
                sent.push(Sent { webhook, status: 0, nanos });
                stream = connect().await?;
                buffer.clear();
            }
        }
    }
    Ok((sent, last))
}

/// Reads one answer (head and Content-Length body, which is all the receiver sends) from `stream`;
/// `buffer` holds bytes read past the previous answer.
async fn read_answer(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<Head> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(position) = find(buffer, "\r\n\r\n") {
            let head = Head::parse(&buffer[..position])?;
            if head.header("transfer-encoding").is_some() {
                bail!("a chunked answer, where the receiver sends a Content-Length");
            }
            let end = position + 4 + head.header("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
            while buffer.len() < end {
                let read = stream.read(&mut chunk).await?;
                if read == 0 {
                    bail!("connection closed inside a body");
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            buffer.drain(..end);
            return Ok(head);
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            bail!("connection closed before an answer");
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// The callbacks the HICAPS simulator received: (kind, reference, status) each.
fn simulator_posts(port: u16) -> anyhow::Result<Vec<(String, String, u16)>> {
    let (status, body) = http_request(port, "GET", "/sim/hicaps/posts", None, Duration::from_secs(60))?;
    if status != 200 {
        bail!("GET /sim/hicaps/posts answered {status}");
    }
    let posts: Value = serde_json::from_slice(&body).context("GET /sim/hicaps/posts is not JSON")?;
    Ok(posts
        .as_array()
        .map(|posts| {
            posts
                .iter()
                .map(|post| {
                    (
                        post["kind"].as_str().unwrap_or_default().to_owned(),
                        post["reference"].as_str().unwrap_or_default().to_owned(),
                        post["status"].as_u64().unwrap_or_default() as u16,
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Depths of the local stack's queues, from `GET /local/queues` (see the report: the endpoint
/// this wants), as (work visible + in flight, dead-letter) when the stack has it.
fn queue_depths(port: u16) -> Option<(u64, u64)> {
    let (status, body) = http_request(port, "GET", "/local/queues", None, Duration::from_secs(10)).ok()?;
    if status != 200 {
        return None;
    }
    let depths: Value = serde_json::from_slice(&body).ok()?;
    let count = |queue: &str| depths[queue]["messages"].as_u64();
    Some((count("work")?, count("workDlq")?))
}

struct LoadRun {
    acks_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    not_acknowledged: usize,
    acknowledged_distinct: usize,
    missing: usize,
    posted_twice: usize,
    unexpected: usize,
    webhook_errors: usize,
    dead_lettered: usize,
    retries_logged: usize,
    flagged_changed: usize,
    dlq_depth: Option<u64>,
    /// From the first delivery until every acknowledged webhook's status was posted.
    posted_seconds: f64,
    /// Until, besides, the work queue was empty: repeats that met a held lock wait for it to lapse.
    drained_seconds: f64,
    generator_cores: f64,
    stack_cpu_ms_per_webhook: f64,
    stack_rss_kib: u64,
    statuses: String,
    deliveries: usize,
    /// `GET /local/usage` once drained: what the run would be billed in AWS.
    usage: Option<Value>,
}

fn load_run(root: &Path, work: &Path, template: &Value, run: usize) -> anyhow::Result<LoadRun> {
    let log = work.join(format!("load-{run}-local.log"));
    let (mut stack, port) = start_stack(root, log.clone())?;
    let pid = stack.pid().to_string();
    let plan = Arc::new(Plan::new(template, port, run_seed()));
    let ticks = ticks_per_second();
    let stack_cpu_before = cpu_ticks(&pid)?;
    let driven = drive(port, &plan, LOAD_CONNECTIONS)?;
    stack.check_running()?;

    let mut latencies: Vec<u64> = driven.sent.iter().filter(|s| s.status == 202).map(|s| s.nanos).collect();
    latencies.sort_unstable();
    let acknowledged: HashSet<usize> = driven.sent.iter().filter(|s| s.status == 202).map(|s| s.webhook).collect();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for sent in &driven.sent {
        *statuses.entry(sent.status).or_default() += 1;
    }
    let mut statuses: Vec<(u16, usize)> = statuses.into_iter().collect();
    statuses.sort_unstable();
    let statuses = statuses
        .iter()
        .map(|(s, n)| format!("{n} x {}", if *s == 0 { "no answer".to_owned() } else { s.to_string() }))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "  run {run}/{LOAD_RUNS}: {} deliveries in {:.2} s, {statuses}; waiting for the poster",
        driven.sent.len(),
        driven.wall.as_secs_f64()
    );

    // Wait until every acknowledged webhook's status is posted (and, with /local/queues, the work
    // queue is empty), then for a quiet period in which nothing more is posted.
    let wanted: HashSet<&str> = acknowledged.iter().map(|i| plan.invoice_ids[*i].as_str()).collect();
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut drained_at = None;
    let mut posted_at = None;
    let posts = loop {
        stack.check_running()?;
        let posts = simulator_posts(port)?;
        let posted: HashSet<&str> =
            posts.iter().filter(|(kind, _, _)| kind == "invoice-status").map(|(_, r, _)| r.as_str()).collect();
        let all_posted = wanted.iter().all(|id| posted.contains(id));
        if all_posted {
            posted_at.get_or_insert_with(Instant::now);
        }
        let queue_empty = queue_depths(port).is_none_or(|(work, _)| work == 0);
        if all_posted && queue_empty {
            let at = *drained_at.get_or_insert_with(Instant::now);
            if at.elapsed() >= QUIET_PERIOD {
                break posts;
            }
        } else {
            drained_at = None;
        }
        if Instant::now() > deadline {
            let missing = wanted.iter().filter(|id| !posted.contains(*id)).count();
            bail!(
                "after {} s the poster had not posted {missing} acknowledged webhooks' statuses (log: {})",
                DRAIN_TIMEOUT.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(1_000));
    };
    let since_start = |at: Option<Instant>| at.map(|at| (at - driven.started).as_secs_f64()).unwrap_or(f64::NAN);
    let (posted_seconds, drained_seconds) = (since_start(posted_at), since_start(drained_at));
    let stack_cpu_seconds = (cpu_ticks(&pid)? - stack_cpu_before) as f64 / ticks;
    let stack_rss_kib = peak_rss_kib(stack.pid())?;
    let dlq_depth = queue_depths(port).map(|(_, dlq)| dlq);
    let usage = http_request(port, "GET", "/local/usage", None, Duration::from_secs(10))
        .ok()
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, body)| serde_json::from_slice::<Value>(&body).ok());

    let ours: HashSet<&str> = plan.invoice_ids.iter().map(String::as_str).collect();
    let mut per_invoice: HashMap<&str, usize> = HashMap::new();
    let mut unexpected = 0;
    let mut webhook_errors = 0;
    for (kind, reference, _) in &posts {
        match kind.as_str() {
            "invoice-status" if ours.contains(reference.as_str()) => {
                *per_invoice.entry(reference.as_str()).or_default() += 1
            }
            "webhook-error" => webhook_errors += 1,
            _ => unexpected += 1,
        }
    }
    let missing = wanted.iter().filter(|id| !per_invoice.contains_key(*id)).count();
    let posted_twice = per_invoice.values().filter(|n| **n > 1).count();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let dead_lettered = log_text.lines().filter(|l| l.contains("dead-lettered")).count();
    let retries_logged = log_text.lines().filter(|l| l.contains("will retry")).count();
    let flagged_changed = log_text.lines().filter(|l| l.contains("payload changed")).count();
    drop(stack);

    let processed = per_invoice.len().max(1);
    Ok(LoadRun {
        acks_per_second: latencies.len() as f64 / driven.wall.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50) as f64 / 1e6,
        p99_ms: percentile(&latencies, 0.99) as f64 / 1e6,
        max_ms: latencies.last().copied().unwrap_or_default() as f64 / 1e6,
        not_acknowledged: driven.sent.iter().filter(|s| s.status != 202).count(),
        acknowledged_distinct: acknowledged.len(),
        missing,
        posted_twice,
        unexpected,
        webhook_errors,
        dead_lettered,
        retries_logged,
        flagged_changed,
        dlq_depth,
        posted_seconds,
        drained_seconds,
        generator_cores: driven.generator_cpu_seconds / driven.wall.as_secs_f64(),
        stack_cpu_ms_per_webhook: stack_cpu_seconds * 1e3 / processed as f64,
        stack_rss_kib,
        statuses,
        deliveries: driven.sent.len(),
        usage,
    })
}

fn load(root: &Path, work: &Path, costs: &mut cost::Inputs) -> anyhow::Result<Section> {
    let mut section = Section::new("Load through the local stack");
    let template = webhook_template(root)?;
    section.commands.push(format!(
        "target/release/local   # PORT=<free port>, embedded store and queues, poster and HICAPS simulator in process\n\
         # cargo xtask bench's generator: {LOAD_WEBHOOKS} x POST /hicaps/webhooks, {LOAD_CONNECTIONS} keep-alive connections, \
         every {LOAD_REPEAT_EVERY}th a repeated delivery; x{LOAD_RUNS}, a fresh stack each run"
    ));
    let mut runs = Vec::new();
    for run in 1..=LOAD_RUNS {
        let result = load_run(root, work, &template, run)?;
        println!(
            "  run {run}/{LOAD_RUNS}: {:.0} acks/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} distinct acknowledged, {} missing, {} posted twice, all posted after {:.1} s, queue empty after {:.1} s",
            result.acks_per_second,
            result.p50_ms,
            result.p99_ms,
            result.max_ms,
            result.acknowledged_distinct,
            result.missing,
            result.posted_twice,
            result.posted_seconds,
            result.drained_seconds
        );
        if let Some(report) = result.usage.clone() {
            costs.loads.push(cost::LoadUsage {
                report,
                webhooks: result.acknowledged_distinct as f64,
                deliveries: result.deliveries as f64,
            });
        }
        runs.push(result);
    }
    let column = |f: fn(&LoadRun) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    section.figures.extend([
        Figure::new(
            "Load: acknowledgements per second",
            Unit::PerSecond,
            column(|r| r.acks_per_second),
            Some(Goal::AtLeast(LOAD_MIN_ACKS_PER_SECOND)),
        ),
        Figure::new("Load: acknowledgement latency p50", Unit::Millis, column(|r| r.p50_ms), None),
        Figure::new(
            "Load: acknowledgement latency p99",
            Unit::Millis,
            column(|r| r.p99_ms),
            Some(Goal::AtMost(LOAD_MAX_P99_MS)),
        ),
        Figure::new("Load: acknowledgement latency max", Unit::Millis, column(|r| r.max_ms), None),
        Figure::new("Load: deliveries not acknowledged 202", Unit::Count, column(|r| r.not_acknowledged as f64), None),
        Figure::new(
            "Load: acknowledged webhooks never posted (lost)",
            Unit::Count,
            column(|r| r.missing as f64),
            Some(Goal::Exactly(0.0)),
        ),
        Figure::new(
            "Load: webhooks posted more than once",
            Unit::Count,
            column(|r| r.posted_twice as f64),
            Some(Goal::Exactly(0.0)),
        ),
        Figure::new(
            "Load: dead-lettered (log lines `dead-lettered` + `lp:webhook-error` posts)",
            Unit::Count,
            column(|r| (r.dead_lettered + r.webhook_errors) as f64),
            Some(Goal::Exactly(0.0)),
        ),
        Figure::new(
            "Load: repeated deliveries taken for changed payloads (log lines `payload changed`)",
            Unit::Count,
            column(|r| r.flagged_changed as f64),
            Some(Goal::Exactly(0.0)),
        ),
        Figure::new(
            "Load: posts not for a webhook we sent",
            Unit::Count,
            column(|r| r.unexpected as f64),
            Some(Goal::Exactly(0.0)),
        ),
        Figure::new(
            "Load: every status posted, after the first delivery (polled each second)",
            Unit::Millis,
            column(|r| r.posted_seconds * 1e3),
            None,
        ),
        Figure::new(
            "Load: work queue empty, after the first delivery",
            Unit::Millis,
            column(|r| r.drained_seconds * 1e3),
            None,
        ),
        Figure::new(
            "Load: stack CPU per webhook (receiver + poster + simulators)",
            Unit::Millis,
            column(|r| r.stack_cpu_ms_per_webhook),
            None,
        ),
        Figure::new("Load: the load generator's own CPU", Unit::Cores, column(|r| r.generator_cores), None),
        Figure::new(
            "Memory: local stack peak RSS during the load run",
            Unit::Kib,
            column(|r| r.stack_rss_kib as f64),
            None,
        ),
    ]);
    if runs.iter().any(|r| r.dlq_depth.is_some()) {
        section.figures.push(Figure::new(
            "Load: dead-letter queue depth at the end (GET /local/queues)",
            Unit::Count,
            runs.iter().filter_map(|r| r.dlq_depth.map(|d| d as f64)).collect(),
            Some(Goal::Exactly(0.0)),
        ));
    } else {
        section.notes.push(
            "The local stack has no endpoint for its queues' depths, so the dead-letter queue is checked indirectly: the \
             poster logs `dead-lettered` and calls the webhook's `lp:webhook-error` link (every webhook here has one) whenever \
             it dead-letters, and the run waits until every acknowledged webhook has its status post and no post arrives for \
             5 s. A message redriven by the queue itself (8 receives) would not show; `GET /local/queues` (work and DLQ \
             depths) would make this direct, and the bench uses it as soon as the stack answers it."
                .into(),
        );
    }
    for (index, run) in runs.iter().enumerate() {
        section.notes.push(format!(
            "Run {}: {} distinct webhooks acknowledged; answers {}; {} `will retry` log lines (repeats that met the first \
             delivery's lock, back when it lapses).",
            index + 1,
            run.acknowledged_distinct,
            run.statuses,
            run.retries_logged
        ));
    }
    section.notes.push(format!(
        "Each run: {} distinct copies of the spec's Example Invoice Submitted Webhook (own webhook, invoice and claim ids; links \
         to the stack's HICAPS simulator), {} deliveries: every {LOAD_REPEAT_EVERY}th repeats, same id and body, one of the \
         previous {LOAD_REPEAT_WINDOW} webhooks (some still queued or being processed, some done). Latency is from writing the \
         request to reading the whole answer, on loopback; acknowledgements per second count 202s over the time from the \
         first request to the last answer. The generator shares the machine's cores with the stack.",
        LOAD_WEBHOOKS - LOAD_WEBHOOKS / LOAD_REPEAT_EVERY,
        LOAD_WEBHOOKS
    ));
    section.notes.push(
        "Why not oha alone: its `-Z` takes a random line of a file for each request, so it cannot send exactly these webhooks \
         with exactly 10% repeats, nor say which it sent; so the generator is here, and oha (or wrk) runs once more below as \
         a cross-check of the acknowledgement figures."
            .into(),
    );
    match poison_check(root, work, &template) {
        Ok(failures) => {
            section.figures.push(Figure::new(
                "Release stack: 4 poisonous webhooks, then an ordinary one, not answered as the spec says",
                Unit::Count,
                vec![failures.len() as f64],
                Some(Goal::Exactly(0.0)),
            ));
            section.notes.extend(failures.into_iter().map(|failure| format!("Poison check: {failure}")));
        }
        Err(error) => section.failures.push(format!("poison check: {error:#}")),
    }
    match cross_check(root, work, &template) {
        Ok(notes) => section.notes.extend(notes.0),
        Err(error) => section.notes.push(format!("Cross-check not run: {error:#}")),
    }
    Ok(section)
}

/// The release-profile stack under poisonous webhooks (issue 14; `tests/hicaps_e2e.rs` runs the
/// same on the test build): each claim answered `rejected` naming the field, and an ordinary
/// webhook still adjudicated afterwards. Returns what went otherwise.
fn poison_check(root: &Path, work: &Path, template: &Value) -> anyhow::Result<Vec<String>> {
    const SETTLE: Duration = Duration::from_secs(30);
    let (mut stack, port) = start_stack(root, work.join("poison-local.log"))?;
    let poisons = [
        json!({"quantity": 100_000_000_000_000_000u64, "unitPrice": 10_000_000_000_000u64}),
        json!({"quantity": "Zebediah-77"}),
        json!({"unitPrice": -50}),
        json!({"quantity": 1e300, "unitPrice": {"nested": [1, 2, 3]}}),
    ];
    let seed = run_seed();
    let mut wanted = Vec::new();
    let mut failures = Vec::new();
    for (n, claim) in poisons.iter().chain(std::iter::once(&json!({}))).enumerate() {
        let mut webhook = template.clone();
        let invoice_id = reidentify(&mut webhook, seed, n as u64, port);
        for (name, value) in claim.as_object().into_iter().flatten() {
            webhook["data"]["claims"][0][name] = value.clone();
        }
        let body = webhook.to_string();
        let (status, _) = http_request_with(
            port,
            "POST",
            "/hicaps/webhooks",
            &[(WEBHOOK_HEADER, WEBHOOK_SECRET)],
            Some(body.as_bytes()),
            SETTLE,
        )?;
        if status != 202 {
            failures.push(format!("webhook {n} answered {status}"));
        }
        wanted
            .push((invoice_id, if claim.as_object().is_some_and(|c| c.is_empty()) { "approved" } else { "rejected" }));
    }
    let deadline = Instant::now() + SETTLE;
    for (invoice_id, state) in &wanted {
        let posted = loop {
            stack.check_running()?;
            let (_, body) =
                http_request(port, "GET", &format!("/sim/hicaps/posts?invoiceId={invoice_id}"), None, SETTLE)?;
            let posts: Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some(post) = posts.as_array().and_then(|posts| posts.first()) {
                break Some(post["body"]["claimStatuses"][0]["state"].as_str().unwrap_or_default().to_owned());
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        match posted {
            Some(posted) if posted == *state => {}
            Some(posted) => failures.push(format!("invoice {invoice_id}: {posted}, wanted {state}")),
            None => failures.push(format!("invoice {invoice_id}: no status posted in {} s", SETTLE.as_secs())),
        }
    }
    stack.check_running()?;
    Ok(failures)
}

/// Cross-check with a standard tool: oha (`cargo install oha --locked` into target/xtask-tools)
/// or, failing that, wrk from Debian if it is on PATH.
struct Notes(Vec<String>);

/// The oha the cross-check installs (crates.io), pinned like the venv's tools.
const OHA_VERSION: &str = "1.16.0";

fn oha_binary(root: &Path) -> anyhow::Result<PathBuf> {
    if let Some(path) = command_line("which", &["oha"]) {
        return Ok(PathBuf::from(path));
    }
    let tools = target_dir(root).join("xtask-tools");
    let binary = tools.join("bin").join("oha");
    if binary.is_file() {
        return Ok(binary);
    }
    println!("xtask bench: cargo install oha --version {OHA_VERSION} --locked --root {}", tools.display());
    let status = Command::new(cargo())
        .args(["install", "oha", "--version", OHA_VERSION, "--locked", "--root"])
        .arg(&tools)
        .status()
        .context("running cargo install oha")?;
    if !status.success() || !binary.is_file() {
        bail!("cargo install oha --locked failed ({status})");
    }
    Ok(binary)
}

fn cross_check(root: &Path, work: &Path, template: &Value) -> anyhow::Result<Notes> {
    match oha_binary(root) {
        Ok(oha) => oha_cross_check(root, work, template, &oha),
        Err(oha_error) => match command_line("which", &["wrk"]) {
            Some(wrk) => {
                let mut notes = wrk_cross_check(root, work, template, Path::new(&wrk))?;
                notes.0.insert(
                    0,
                    format!("oha could not be installed ({oha_error:#}); wrk from Debian was used instead."),
                );
                Ok(notes)
            }
            None => bail!("oha could not be installed ({oha_error:#}) and wrk is not on PATH (apt-get install wrk)"),
        },
    }
}

fn oha_cross_check(root: &Path, work: &Path, template: &Value, oha: &Path) -> anyhow::Result<Notes> {
    let (stack, port) = start_stack(root, work.join("load-oha-local.log"))?;
    let plan = Plan::new(template, port, run_seed());
    let lines = work.join("oha-bodies.txt");
    let mut file = std::io::BufWriter::new(File::create(&lines)?);
    for body in &plan.bodies {
        writeln!(file, "{body}")?;
    }
    file.flush()?;
    drop(file);
    let url = format!("http://127.0.0.1:{port}/hicaps/webhooks");
    let output = Command::new(oha)
        .args([
            "-n",
            &LOAD_WEBHOOKS.to_string(),
            "-c",
            &LOAD_CONNECTIONS.to_string(),
            "-m",
            "POST",
            "-T",
            "application/json",
        ])
        .args(["-H", &format!("{WEBHOOK_HEADER}: {WEBHOOK_SECRET}"), "-Z"])
        .arg(&lines)
        .args(["--no-tui", "--output-format", "json", &url])
        .output()
        .context("running oha")?;
    if !output.status.success() {
        bail!("oha failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let result: Value = serde_json::from_slice(&output.stdout).context("oha printed no JSON")?;
    drop(stack);
    let metric = |pointer: &str| result.pointer(pointer).and_then(Value::as_f64).unwrap_or(f64::NAN);
    Ok(Notes(vec![format!(
        "Cross-check, one run on a fresh stack: `oha -n {LOAD_WEBHOOKS} -c {LOAD_CONNECTIONS} -m POST -T application/json -H \
         '{WEBHOOK_HEADER}: {WEBHOOK_SECRET}' -Z target/bench/oha-bodies.txt --no-tui --output-format json \
         http://127.0.0.1:<port>/hicaps/webhooks` ({} distinct webhooks, one line each, which oha draws at random for \
         each request, so about 40% of its deliveries repeat an earlier one): {:.0} requests/s, \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, success rate {:.3}, status codes {}.",
        plan.bodies.len(),
        metric("/summary/requestsPerSec"),
        metric("/metrics/latency_ms/p50"),
        metric("/metrics/latency_ms/p99"),
        metric("/metrics/latency_ms/max"),
        metric("/summary/successRate"),
        result.get("statusCodeDistribution").map(Value::to_string).unwrap_or_default()
    )]))
}

fn wrk_cross_check(root: &Path, work: &Path, template: &Value, wrk: &Path) -> anyhow::Result<Notes> {
    let (stack, port) = start_stack(root, work.join("load-wrk-local.log"))?;
    let (body, _) = webhook(template, run_seed(), 0, port);
    let script = work.join("wrk-webhook.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"{WEBHOOK_HEADER}\"] = \"{WEBHOOK_SECRET}\"\nwrk.body = [==[{body}]==]\n"
        ),
    )?;
    let url = format!("http://127.0.0.1:{port}/hicaps/webhooks");
    let output = Command::new(wrk)
        .args(["-t2", &format!("-c{LOAD_CONNECTIONS}"), "-d5s", "--latency", "-s"])
        .arg(&script)
        .arg(&url)
        .output()
        .context("running wrk")?;
    drop(stack);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains("Requests/sec") || l.trim_start().starts_with("50%") || l.trim_start().starts_with("99%")
        })
        .collect();
    Ok(Notes(vec![format!(
        "Cross-check: `wrk -t2 -c{LOAD_CONNECTIONS} -d5s --latency -s target/bench/wrk-webhook.lua http://127.0.0.1:<port>/hicaps/webhooks` \
         (one webhook body for every request, so all but the first are repeated deliveries): {}",
        summary.iter().map(|l| l.trim()).collect::<Vec<_>>().join("; ")
    )]))
}

// ---------------------------------------------------------------------------------------------
// 3. Cold start: a Lambda Runtime API emulator

const RUNTIME_PREFIX: &str = "/2018-06-01/runtime";

/// What the emulator saw, with when.
#[derive(Debug)]
enum Observed {
    Next(Instant),
    Response { at: Instant, body: Vec<u8> },
    Error { body: Vec<u8> },
    InitError { body: Vec<u8> },
}

struct Invocation {
    id: String,
    body: Vec<u8>,
}

/// The Runtime API on a loopback port: `GET /invocation/next` hands out queued invocations (and
/// waits for one), `POST /invocation/{id}/response|error` and `POST /init/error` are reported.
struct Emulator {
    port: u16,
    invocations: Option<mpsc::Sender<Invocation>>,
    observed: mpsc::Receiver<Observed>,
    stop: Arc<AtomicBool>,
    next_id: usize,
}

impl Emulator {
    fn start(function: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (invocations, queue) = mpsc::channel::<Invocation>();
        let queue = Arc::new(Mutex::new(queue));
        let (report, observed) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}");
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let queue = Arc::clone(&queue);
                let report = report.clone();
                let arn = arn.clone();
                std::thread::spawn(move || {
                    let _ = serve_runtime_connection(stream, &queue, &report, &arn);
                });
            }
        });
        Ok(Self { port, invocations: Some(invocations), observed, stop, next_id: 0 })
    }

    fn invoke(&mut self, body: Vec<u8>) -> anyhow::Result<()> {
        self.next_id += 1;
        let id = format!("00000000-0000-4000-8000-{:012x}", self.next_id);
        self.invocations
            .as_ref()
            .context("emulator stopped")?
            .send(Invocation { id, body })
            .map_err(|_| anyhow!("emulator stopped"))
    }

    /// The next observation, within `timeout`.
    fn observe(&self, timeout: Duration) -> Option<Observed> {
        self.observed.recv_timeout(timeout).ok()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Wakes the connection waiting in `next` (its queue closes) and the accept loop.
        self.invocations = None;
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_runtime_connection(
    mut stream: TcpStream,
    queue: &Mutex<mpsc::Receiver<Invocation>>,
    report: &mpsc::Sender<Observed>,
    arn: &str,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = Vec::new();
    while let Some((head, body)) = read_message(&mut stream, &mut buffer)? {
        let mut parts = head.first.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let route = path.strip_prefix(RUNTIME_PREFIX).unwrap_or(&path);
        if method == "GET" && route == "/invocation/next" {
            let _ = report.send(Observed::Next(Instant::now()));
            let invocation = {
                let queue = queue.lock().map_err(|_| anyhow!("poisoned"))?;
                match queue.recv() {
                    Ok(invocation) => invocation,
                    Err(_) => return Ok(()),
                }
            };
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() + 30_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: {arn}\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0\r\n\
                 Content-Length: {}\r\n\r\n",
                invocation.id,
                invocation.body.len()
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(&invocation.body)?;
            continue;
        }
        let at = Instant::now();
        let observed = if method == "POST" && route.starts_with("/invocation/") && route.ends_with("/response") {
            Some(Observed::Response { at, body })
        } else if method == "POST" && route.starts_with("/invocation/") && route.ends_with("/error") {
            Some(Observed::Error { body })
        } else if method == "POST" && route == "/init/error" {
            Some(Observed::InitError { body })
        } else {
            None
        };
        let answer: &[u8] = if observed.is_some() {
            b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}"
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        };
        // Reported before answering: the runtime asks for the next event as soon as it has the answer.
        if let Some(observed) = observed {
            let _ = report.send(observed);
        }
        stream.write_all(answer)?;
    }
    Ok(())
}

/// One function's cold-start subject: its first event and how to tell a good answer.
struct Subject {
    function: &'static str,
    event: &'static str,
    warm_invocations: usize,
    /// HTTP status wanted, or `None` for an SQS batch answer with no item failures.
    status: Option<&'static [u64]>,
}

const SUBJECTS: &[Subject] = &[
    Subject {
        function: "webhook-receiver",
        event: "webhook-receiver/invoice-submitted.json",
        warm_invocations: RECEIVER_WARM_INVOCATIONS,
        status: Some(&[202]),
    },
    Subject {
        function: "invoice-status-poster",
        event: "invoice-status-poster/sqs-invoice-submitted.json",
        warm_invocations: OTHER_WARM_INVOCATIONS,
        status: None,
    },
    Subject {
        function: "icp-query-proxy",
        event: "icp-query-proxy/valid.json",
        warm_invocations: OTHER_WARM_INVOCATIONS,
        status: Some(&[200]),
    },
    Subject {
        function: "eligibility-check",
        event: "eligibility-check/mandatory.json",
        warm_invocations: OTHER_WARM_INVOCATIONS,
        status: Some(&[200]),
    },
    Subject {
        function: "icare-sender",
        event: "icare-sender/put-policy.json",
        warm_invocations: OTHER_WARM_INVOCATIONS,
        status: Some(&[200, 201]),
    },
];

fn check_answer(subject: &Subject, body: &[u8]) -> Result<(), String> {
    let answer: Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(body)))?;
    match subject.status {
        Some(wanted) => match answer["statusCode"].as_u64() {
            Some(status) if wanted.contains(&status) => Ok(()),
            _ => Err(format!("wanted status {wanted:?}, got {answer}")),
        },
        None => match answer["batchItemFailures"].as_array() {
            Some(failures) if failures.is_empty() => Ok(()),
            _ => Err(format!("wanted no batch item failures, got {answer}")),
        },
    }
}

/// The poster's SQS event with its webhook's links at the HICAPS simulator and, for `n > 0`, its
/// own webhook, invoice and claim ids (a new invoice each warm invocation, not a duplicate).
fn poster_event(event: &Value, seed: u64, n: u64, simulator_port: u16) -> anyhow::Result<Vec<u8>> {
    let mut event = event.clone();
    let record = event["Records"][0].as_object_mut().context("the poster's event has no record")?;
    let mut message: Value = serde_json::from_str(record.get("body").and_then(Value::as_str).context("no body")?)?;
    let webhook = message.get_mut("webhook").context("the record is not a webhook work message")?;
    if n == 0 {
        link_to_simulator(webhook, simulator_port);
    } else {
        reidentify(webhook, seed, n, simulator_port);
    }
    record.insert("body".into(), json!(message.to_string()));
    record.insert("messageId".into(), json!(uuid(seed ^ 0x5151, n)));
    Ok(serde_json::to_vec(&event)?)
}

/// Where the functions' state lives in moto.
struct Moto {
    server: crate::moto::Server,
    /// The functions' AWS endpoint: a keep-alive relay to moto (see [`start_keep_alive_relay`]).
    relay_port: u16,
    /// The same relay behind TLS, with a certificate from a throw-away CA (see [`TlsFront`]).
    tls: TlsFront,
    /// Time spent waiting on moto, as the relay saw it.
    wait: Arc<MotoWait>,
    runtime: tokio::runtime::Runtime,
    config: aws_config::SdkConfig,
    /// The reference data (benefit schedule, member registry) every table is loaded with.
    reference: Vec<shared::store::Item>,
    table: String,
    work_queue: String,
    dead_letter_queue: String,
    icare_queue: String,
}

impl Moto {
    /// A new table with only the reference data and new, empty queues for the next run (the old
    /// ones deleted), so every run meets the same moto: its calls slow down as a table or queue
    /// grows (a run of the poster leaves some 1,500 items, of the receiver a thousand messages),
    /// which DynamoDB's and SQS's do not. (moto, like SQS, allows one PurgeQueue a minute.)
    fn fresh_state(&mut self, tag: &str) -> anyhow::Result<()> {
        let old_queues = [&self.work_queue, &self.dead_letter_queue, &self.icare_queue];
        let (table, work, dlq, icare) = self.runtime.block_on(async {
            let sqs = aws_sdk_sqs::Client::new(&self.config);
            for queue in old_queues.into_iter().filter(|queue| !queue.is_empty()) {
                sqs.delete_queue()
                    .queue_url(queue)
                    .send()
                    .await
                    .with_context(|| format!("deleting {queue} in moto"))?;
            }
            if !self.table.is_empty() {
                let dynamodb = aws_sdk_dynamodb::Client::new(&self.config);
                dynamodb
                    .delete_table()
                    .table_name(&self.table)
                    .send()
                    .await
                    .with_context(|| format!("deleting {} in moto", self.table))?;
            }
            let name = format!("{TABLE_NAME}-{tag}");
            let table = DynamoTable::from_sdk_config(&self.config, &name);
            table.ensure_exists().await.context("creating the table in moto")?;
            for item in &self.reference {
                table.put(item, Condition::Always).await.context("loading reference data into moto")?;
            }
            let (work, dlq) = SqsQueue::ensure_exists(
                &sqs,
                &format!("{TABLE_NAME}-work-{tag}"),
                Duration::from_secs(180),
                MAX_RECEIVE_COUNT,
            )
            .await?;
            let (icare, _) = SqsQueue::ensure_exists(
                &sqs,
                &format!("{TABLE_NAME}-icare-{tag}"),
                Duration::from_secs(10),
                MAX_RECEIVE_COUNT,
            )
            .await?;
            anyhow::Ok((name, work.url().to_owned(), dlq.url().to_owned(), icare.url().to_owned()))
        })?;
        (self.table, self.work_queue, self.dead_letter_queue, self.icare_queue) = (table, work, dlq, icare);
        Ok(())
    }
}

fn start_moto(root: &Path, venv: &Path) -> anyhow::Result<Moto> {
    let server = crate::moto::Server::start(venv)?;
    let environment = server.environment();
    let setting =
        |name: &str| environment.iter().find(|(key, _)| *key == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let credentials = aws_sdk_sqs::config::Credentials::new(
        setting("AWS_ACCESS_KEY_ID"),
        setting("AWS_SECRET_ACCESS_KEY"),
        Some(setting("AWS_SESSION_TOKEN")),
        None,
        "xtask-bench",
    );
    let config = runtime.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(shared::aws_http_client(&shared::config::Vars::from_env())?)
            .endpoint_url(server.endpoint())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(credentials)
            .load(),
    );
    let read = |file: &str| {
        std::fs::read_to_string(root.join("local/data").join(file))
            .with_context(|| format!("reading local/data/{file}"))
    };
    let reference = shared::program::reference::schedule_items(&read("benefit-schedule.json")?)?
        .into_iter()
        .chain(shared::program::reference::member_items(&read("member-registry.json")?)?)
        .collect();
    let wait = Arc::new(MotoWait::default());
    let relay_port = start_keep_alive_relay(server.port(), None, Arc::clone(&wait))?;
    let tls = TlsFront::new(&root.join("target").join("bench-tls"))?;
    let tls_port = start_keep_alive_relay(server.port(), Some(Arc::clone(&tls.config)), Arc::clone(&wait))?;
    Ok(Moto {
        server,
        relay_port,
        tls: TlsFront { port: tls_port, ..tls },
        wait,
        runtime,
        config,
        reference,
        table: String::new(),
        work_queue: String::new(),
        dead_letter_queue: String::new(),
        icare_queue: String::new(),
    })
}

/// moto (werkzeug) answers every request with `Connection: close`, so a function talking to it
/// directly would open a TCP connection per AWS call, which in Lambda it does not: the SDK keeps
/// its connection to SQS or DynamoDB alive between invocations. The relay keeps the function's
/// connection alive and opens one to moto per request itself, so that cost lands in xtask, not in
/// the function's CPU figure. Requests and answers pass unchanged but for `Connection`.
///
/// With `tls`, the relay speaks HTTPS to the function (as every AWS endpoint does), so a cold
/// start pays its handshake, and keeps that connection alive as AWS's endpoints do.
fn start_keep_alive_relay(
    moto_port: u16,
    tls: Option<Arc<rustls::ServerConfig>>,
    wait: Arc<MotoWait>,
) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            wait.connections.fetch_add(1, Ordering::Relaxed);
            let (wait, tls) = (Arc::clone(&wait), tls.clone());
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let _ = match tls {
                    Some(config) => {
                        rustls::ServerConnection::new(config).map_err(anyhow::Error::from).and_then(|connection| {
                            relay_connection(&mut rustls::StreamOwned::new(connection, stream), moto_port, &wait)
                        })
                    }
                    None => relay_connection(&mut { stream }, moto_port, &wait),
                };
            });
        }
    });
    Ok(port)
}

/// A throw-away CA and a certificate for 127.0.0.1 it signed, made with `openssl` for this run:
/// the functions trust the CA through `AWS_CA_BUNDLE`, as they would a private endpoint's.
struct TlsFront {
    config: Arc<rustls::ServerConfig>,
    ca_bundle: PathBuf,
    port: u16,
}

impl TlsFront {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        std::fs::create_dir_all(dir)?;
        let openssl = |args: &[&str]| -> anyhow::Result<()> {
            let output = Command::new("openssl")
                .current_dir(dir)
                .args(args)
                .output()
                .context("running openssl (Debian's openssl package)")?;
            if !output.status.success() {
                bail!("openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
            }
            Ok(())
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=xtask bench CA"],
                &["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        )?;
        openssl(
            &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat(),
        )?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ])?;
        shared::install_tls_provider();
        let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key"))?;
        let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key)?;
        Ok(Self { config: Arc::new(config), ca_bundle: dir.join("ca.pem"), port: 0 })
    }
}

/// The time during which at least one request to moto was outstanding (concurrent requests
/// counted once), and how many requests there were: how much of an invocation was moto's.
#[derive(Default)]
struct MotoWait {
    state: Mutex<MotoWaitState>,
    /// Client connections the relay accepted: a warm function should open none.
    connections: AtomicUsize,
}

#[derive(Default)]
struct MotoWaitState {
    in_flight: usize,
    busy_since: Option<Instant>,
    busy: Duration,
    requests: u64,
}

impl MotoWait {
    fn begin(&self) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.in_flight == 0 {
            state.busy_since = Some(Instant::now());
        }
        state.in_flight += 1;
        state.requests += 1;
    }

    fn end(&self) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.in_flight -= 1;
        if state.in_flight == 0
            && let Some(since) = state.busy_since.take()
        {
            state.busy += since.elapsed();
        }
    }

    /// (busy time so far, requests so far).
    fn reading(&self) -> (Duration, u64) {
        let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (state.busy + state.busy_since.map(|since| since.elapsed()).unwrap_or_default(), state.requests)
    }
}

fn relay_connection(client: &mut (impl Read + Write), moto_port: u16, wait: &MotoWait) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    while let Some((head, body)) = read_message(client, &mut buffer)? {
        wait.begin();
        let answer = relay_request(&head, &body, moto_port);
        wait.end();
        let (answer, answer_body) = answer?;
        client.write_all(&message_bytes(&answer, &answer_body, "keep-alive"))?;
        client.flush()?;
    }
    Ok(())
}

fn relay_request(head: &Head, body: &[u8], moto_port: u16) -> anyhow::Result<(Head, Vec<u8>)> {
    {
        let mut upstream = TcpStream::connect(("127.0.0.1", moto_port))?;
        upstream.set_nodelay(true)?;
        upstream.write_all(&message_bytes(head, body, "close"))?;
        read_message(&mut upstream, &mut Vec::new())?.context("moto closed without answering")
    }
}

/// `head` and `body` as one HTTP/1.1 message with a Content-Length (chunked bodies arrive here
/// already joined) and the given `Connection`.
fn message_bytes(head: &Head, body: &[u8], connection: &str) -> Vec<u8> {
    let mut bytes = format!("{}\r\n", head.first).into_bytes();
    for (name, value) in &head.headers {
        if !matches!(name.as_str(), "connection" | "content-length" | "transfer-encoding" | "keep-alive") {
            bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    bytes.extend_from_slice(format!("content-length: {}\r\nconnection: {connection}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// The environment `function` has in Lambda (infra/template.yaml), secrets as plain values,
/// upstreams at the local stack's simulators on `simulator_port`.
/// How a cold run reaches moto, and whether init opens its connections first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Plain,
    TlsWithoutWarmUp,
    Tls,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Plain => "plain HTTP",
            Transport::TlsWithoutWarmUp => "over TLS, WARM_UP=off",
            Transport::Tls => "over TLS",
        }
    }
}

fn lambda_environment(
    function: &str,
    runtime_api: u16,
    moto: &Moto,
    simulator_port: u16,
    transport: Transport,
) -> Vec<(String, String)> {
    let tls = transport != Transport::Plain;
    let simulators = format!("http://127.0.0.1:{simulator_port}");
    let mut environment: Vec<(String, String)> = vec![
        ("AWS_LAMBDA_RUNTIME_API".into(), format!("127.0.0.1:{runtime_api}")),
        ("AWS_LAMBDA_FUNCTION_NAME".into(), function.into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME".into(), format!("/aws/lambda/{function}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), "2026/11/23/[$LATEST]bench".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        ("AWS_EXECUTION_ENV".into(), "AWS_Lambda_provided.al2023".into()),
        ("_HANDLER".into(), "bootstrap".into()),
        ("LANG".into(), "en_US.UTF-8".into()),
        ("TZ".into(), ":UTC".into()),
        ("PATH".into(), "/usr/local/bin:/usr/bin/:/bin".into()),
        ("AWS_DEFAULT_REGION".into(), REGION.into()),
        ("RUST_LOG".into(), "info".into()),
        ("TABLE_NAME".into(), moto.table.clone()),
    ];
    if transport == Transport::TlsWithoutWarmUp {
        environment.push(("WARM_UP".into(), "off".into()));
    }
    for (name, value) in moto.server.environment() {
        match name {
            "AWS_EC2_METADATA_DISABLED" => {}
            "AWS_ENDPOINT_URL" if tls => {
                environment.push((name.into(), format!("https://127.0.0.1:{}", moto.tls.port)));
                environment.push(("AWS_CA_BUNDLE".into(), moto.tls.ca_bundle.display().to_string()));
            }
            "AWS_ENDPOINT_URL" => environment.push((name.into(), format!("http://127.0.0.1:{}", moto.relay_port))),
            _ => environment.push((name.into(), value)),
        }
    }
    let specific: Vec<(&str, String)> = match function {
        "webhook-receiver" => vec![
            ("QUEUE_URL", moto.work_queue.clone()),
            ("WEBHOOK_AUTH_MODE", "header".into()),
            ("WEBHOOK_AUTH_HEADER", WEBHOOK_HEADER.into()),
            ("WEBHOOK_AUTH_VALUE", WEBHOOK_SECRET.into()),
        ],
        "invoice-status-poster" => vec![
            ("QUEUE_URL", moto.work_queue.clone()),
            ("DLQ_URL", moto.dead_letter_queue.clone()),
            ("MAX_RECEIVE_COUNT", MAX_RECEIVE_COUNT.to_string()),
            ("HICAPS_TOKEN_URL", format!("{simulators}/sim/hicaps/oauth/token")),
            ("HICAPS_CLIENT_ID", "local-program".into()),
            ("HICAPS_CLIENT_SECRET", "local-program-secret".into()),
            ("HICAPS_CALLBACK_HOSTS", format!("127.0.0.1:{simulator_port}")),
            ("IDEMPOTENCY_TTL_DAYS", "7".into()),
            ("RECORD_RETENTION_DAYS", "90".into()),
        ],
        "icp-query-proxy" => vec![
            ("ACC_BASE_URL", format!("{simulators}/sim/acc")),
            ("ACC_API_KEY", "local-acc-api-key".into()),
            ("ACC_API_KEY_HEADER", "x-api-key".into()),
            ("ICP_VENDOR_GRANTS", "local=VEND01".into()),
            ("ICP_AUDIT_HMAC_KEY", "local-icp-audit-hmac-key-for-the-bench".into()),
            ("ACC_TIMEOUT_SECONDS", "20".into()),
            ("ICP_AUDIT_TTL_DAYS", "90".into()),
        ],
        "eligibility-check" => vec![
            ("CLAIMING_BASE_URL", format!("{simulators}/sim/claiming")),
            ("CLAIMING_CLIENT_ID", "local-claiming-client".into()),
            ("CLAIMING_CLIENT_SECRET", "local-claiming-secret".into()),
            ("ECF_LOCATION_GRANTS", "local=*".into()),
        ],
        "icare-sender" => vec![
            ("ICARE_BASE_URL", format!("{simulators}/sim/icare")),
            ("ICARE_API_KEY", "local-icare-key".into()),
            ("ICARE_QUEUE_URL", moto.icare_queue.clone()),
            // Any queue: init only needs a URL, and the bench sends no unreadable retry.
            ("ICARE_DLQ_URL", moto.dead_letter_queue.clone()),
            ("ICARE_RETENTION_DAYS", "365".into()),
        ],
        _ => Vec::new(),
    };
    environment.extend(specific.into_iter().map(|(name, value)| (name.to_owned(), value)));
    environment
}

struct ColdRun {
    init_ms: f64,
    first_invoke_ms: f64,
    first_invocation_only_ms: f64,
    /// CPU time (all threads, nanosecond schedstat) of init, and of the first invocation.
    init_cpu_ms: f64,
    first_invocation_cpu_ms: f64,
    /// Of the first invoke, the time with a request to moto outstanding, and how many requests.
    first_invoke_moto_ms: f64,
    first_invoke_moto_requests: u64,
    warm_cpu_ms: f64,
    warm_wall_ms: f64,
    /// What a warm invocation writes to its log (CloudWatch Logs bytes), and of it EMF lines.
    warm_log_bytes: f64,
    warm_emf_bytes: f64,
    /// Connections to the AWS endpoint opened during the warm invocations (all of them).
    warm_connections: f64,
    rss_kib: u64,
}

/// Bytes a log gained after `offset`, and of them the bytes of EMF lines (`"_aws"`).
fn log_bytes_since(log: &Path, offset: u64) -> (u64, u64) {
    let text = std::fs::read(log).unwrap_or_default();
    let added = text.get(usize::try_from(offset).unwrap_or(usize::MAX)..).unwrap_or_default();
    let emf = added
        .split_inclusive(|b| *b == b'\n')
        .filter(|line| find(line, "\"_aws\"").is_some())
        .map(<[u8]>::len)
        .sum::<usize>();
    (added.len() as u64, emf as u64)
}

fn millis_between(from: Instant, to: Instant) -> f64 {
    (to - from).as_secs_f64() * 1e3
}

fn cold_run(
    subject: &Subject,
    command: impl Fn(u16) -> Command,
    moto_wait: &MotoWait,
    first: &[u8],
    warm: &[Vec<u8>],
    log: PathBuf,
) -> anyhow::Result<ColdRun> {
    const WAIT: Duration = Duration::from_secs(30);
    let mut emulator = Emulator::start(subject.function)?;
    let command = command(emulator.port);
    let moto_before = moto_wait.reading();
    let mut process = Process::spawn(subject.function, command, log)?;
    let started = process.started;
    let pid = process.pid().to_string();

    let fail = |process: &mut Process, what: String| -> anyhow::Error {
        let _ = process.check_running();
        anyhow!("{}: {what}; the end of {}:\n{}", subject.function, process.log.display(), tail(&process.log))
    };
    let next_within = |emulator: &Emulator, process: &mut Process| -> anyhow::Result<Instant> {
        match emulator.observe(WAIT) {
            Some(Observed::Next(at)) => Ok(at),
            Some(Observed::InitError { body }) => {
                Err(fail(process, format!("init error {}", String::from_utf8_lossy(&body))))
            }
            other => Err(fail(process, format!("expected GET next, got {other:?}"))),
        }
    };
    let answer_within = |emulator: &Emulator, process: &mut Process| -> anyhow::Result<(Instant, Vec<u8>)> {
        match emulator.observe(WAIT) {
            Some(Observed::Response { at, body }) => Ok((at, body)),
            Some(Observed::Error { body, .. }) => {
                Err(fail(process, format!("invocation error {}", String::from_utf8_lossy(&body))))
            }
            other => Err(fail(process, format!("expected a response, got {other:?}"))),
        }
    };

    // The first event is handed over only once init has asked for it, so that init's CPU time can
    // be read while the process waits in `next`.
    let init = next_within(&emulator, &mut process)?;
    let init_cpu_ns = cpu_nanos(&pid)?;
    let handed = Instant::now();
    emulator.invoke(first.to_vec())?;
    let (answered, body) = answer_within(&emulator, &mut process)?;
    check_answer(subject, &body).map_err(|e| fail(&mut process, format!("first invocation: {e}")))?;
    let moto_after = moto_wait.reading();
    // The runtime asks for the next event once it is done with this one: from here it is warm.
    next_within(&emulator, &mut process)?;
    let first_cpu_ns = cpu_nanos(&pid)?.saturating_sub(init_cpu_ns);
    // XTASK_BENCH_PERF=<dir>: `perf record -g` on the warm invocations, into <dir>.
    let perf = match std::env::var_os("XTASK_BENCH_PERF") {
        Some(dir) => {
            let data = Path::new(&dir).join(format!("{}-{pid}.data", subject.function));
            let perf = Command::new("perf")
                .args(["record", "-g", "-p", &pid, "-o"])
                .arg(data)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            std::thread::sleep(Duration::from_millis(500));
            Some(perf)
        }
        None => None,
    };
    let log_before = std::fs::metadata(&process.log).map_or(0, |m| m.len());
    let connections_before = moto_wait.connections.load(Ordering::Relaxed);
    let cpu_before = cpu_ticks(&pid)?;
    let warm_started = Instant::now();
    for event in warm {
        emulator.invoke(event.clone())?;
        let (_, body) = answer_within(&emulator, &mut process)?;
        check_answer(subject, &body).map_err(|e| fail(&mut process, format!("warm invocation: {e}")))?;
        next_within(&emulator, &mut process)?;
    }
    let warm_elapsed = warm_started.elapsed();
    let cpu_after = cpu_ticks(&pid)?;
    let (warm_log_bytes, warm_emf_bytes) = log_bytes_since(&process.log, log_before);
    let warm_connections = moto_wait.connections.load(Ordering::Relaxed) - connections_before;
    if let Some(mut perf) = perf {
        // SIGINT, so perf writes its data out.
        let _ = Command::new("kill").args(["-INT", &perf.id().to_string()]).status();
        let _ = perf.wait();
    }
    let rss_kib = peak_rss_kib(process.pid())?;
    drop(process);
    drop(emulator);
    let count = warm.len().max(1) as f64;
    let first_invocation_only_ms = millis_between(handed, answered);
    Ok(ColdRun {
        init_ms: millis_between(started, init),
        // As Lambda would see it: without the moment xtask took to read the CPU time.
        first_invoke_ms: millis_between(started, init) + first_invocation_only_ms,
        first_invocation_only_ms,
        init_cpu_ms: init_cpu_ns as f64 / 1e6,
        first_invocation_cpu_ms: first_cpu_ns as f64 / 1e6,
        first_invoke_moto_ms: (moto_after.0 - moto_before.0).as_secs_f64() * 1e3,
        first_invoke_moto_requests: moto_after.1 - moto_before.1,
        warm_cpu_ms: (cpu_after - cpu_before) as f64 / ticks_per_second() * 1e3 / count,
        warm_wall_ms: warm_elapsed.as_secs_f64() * 1e3 / count,
        warm_log_bytes: warm_log_bytes as f64 / count,
        warm_connections: warm_connections as f64,
        warm_emf_bytes: warm_emf_bytes as f64 / count,
        rss_kib,
    })
}

/// The Powertools peer's cold runs, over TLS, with the receiver's environment and event.
fn powertools_peer(root: &Path, moto: &mut Moto, simulator_port: u16, work: &Path) -> anyhow::Result<Vec<ColdRun>> {
    let venv = crate::moto::ensure_venv_with(
        &root.join("target").join("powertools-venv"),
        &POWERTOOLS_PEER.split(' ').map(str::to_owned).collect::<Vec<_>>(),
    )?;
    let subject = SUBJECTS.iter().find(|s| s.function == "webhook-receiver").context("no receiver subject")?;
    let event = std::fs::read(root.join("events").join(subject.event))?;
    let warm = vec![event.clone(); subject.warm_invocations];
    let peer_dir = root.join("xtask").join("peer");
    let mut runs = Vec::new();
    for run in 0..=COLD_STARTS {
        moto.fresh_state(&format!("peer-{run}"))?;
        let command = |port| {
            let mut command = Command::new(venv.join("bin").join("python"));
            command
                .current_dir(&peer_dir)
                .env_clear()
                .envs(lambda_environment("webhook-receiver", port, moto, simulator_port, Transport::Tls))
                .envs([
                    ("LAMBDA_TASK_ROOT", peer_dir.display().to_string()),
                    ("POWERTOOLS_SERVICE_NAME", "webhook-receiver".to_owned()),
                ])
                .args(["-m", "awslambdaric", "receiver.handler"]);
            command
        };
        let result = cold_run(
            subject,
            command,
            &moto.wait,
            &event,
            &warm,
            work.join(format!("cold-start-powertools-peer-{run}.log")),
        )?;
        println!(
            "  Powertools peer run {run}/{COLD_STARTS}: init {:.2} ms, first invocation {:.2} ms ({:.2} ms CPU), warm CPU {:.3} ms/invocation",
            result.init_ms, result.first_invocation_only_ms, result.first_invocation_cpu_ms, result.warm_cpu_ms
        );
        if run > 0 {
            runs.push(result);
        }
    }
    Ok(runs)
}

fn cold_start(root: &Path, venv: &Path, work: &Path, costs: &mut cost::Inputs) -> anyhow::Result<Section> {
    let mut section = Section::new("Cold start, CPU per invocation and memory (Lambda Runtime API emulator)");
    let mut moto = start_moto(root, venv)?;
    let (mut stack, simulator_port) = start_stack(root, work.join("cold-start-simulators.log"))?;
    section.commands.push(format!(
        "# per function, {COLD_STARTS} times: env -i <its Lambda environment> AWS_LAMBDA_RUNTIME_API=127.0.0.1:<emulator> \
         AWS_ENDPOINT_URL=<moto {}> target/release/<function>",
        crate::moto::MOTO_VERSION
    ));
    let seed = run_seed();
    let mut missing = Vec::new();
    // XTASK_BENCH_FUNCTIONS=a,b: only these functions (while profiling one).
    let only = std::env::var("XTASK_BENCH_FUNCTIONS").ok();
    for subject in
        SUBJECTS.iter().filter(|s| only.as_deref().is_none_or(|only| only.split(',').any(|f| f == s.function)))
    {
        let path = root.join("events").join(subject.event);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let event: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for transport in [Transport::Plain, Transport::TlsWithoutWarmUp, Transport::Tls] {
            let label = transport.label();
            let mut runs = Vec::new();
            // Run 0 primes the page cache with the freshly linked binary and is not recorded.
            for run in 0..=COLD_STARTS {
                stack.check_running()?;
                moto.fresh_state(&format!("{}-{run}", subject.function))?;
                let round = (run as u64) << 32;
                let (first, warm): (Vec<u8>, Vec<Vec<u8>>) = if subject.function == "invoice-status-poster" {
                    // A new invoice each run (the unrecorded run 0 keeps the file's ids).
                    let first = poster_event(&event, seed, round, simulator_port)?;
                    let warm = (1..=subject.warm_invocations as u64)
                        .map(|n| poster_event(&event, seed, round + n, simulator_port))
                        .collect::<anyhow::Result<_>>()?;
                    (first, warm)
                } else {
                    let body = text.clone().into_bytes();
                    (body.clone(), vec![body; subject.warm_invocations])
                };
                let log = work.join(format!("cold-start-{}-{transport:?}-{run}.log", subject.function));
                let command = |port| {
                    let mut command = Command::new(release_binary(root, subject.function));
                    command.current_dir(root).env_clear().envs(lambda_environment(
                        subject.function,
                        port,
                        &moto,
                        simulator_port,
                        transport,
                    ));
                    command
                };
                // Warm CPU and memory are measured over TLS alone: the other two transports are there
                // for init and the first invocation.
                let warm: &[Vec<u8>] = if transport == Transport::Tls { &warm } else { &[] };
                match cold_run(subject, command, &moto.wait, &first, warm, log) {
                    Ok(result) => {
                        println!(
                            "  {} {label} run {run}/{COLD_STARTS}: init {:.2} ms ({:.2} ms CPU), first invocation {:.2} ms ({:.2} ms CPU), warm CPU {:.3} ms/invocation ({} new connections), peak RSS {:.1} MiB",
                            subject.function,
                            result.init_ms,
                            result.init_cpu_ms,
                            result.first_invocation_only_ms,
                            result.first_invocation_cpu_ms,
                            result.warm_cpu_ms,
                            result.warm_connections,
                            result.rss_kib as f64 / 1024.0
                        );
                        if run > 0 {
                            runs.push(result);
                        }
                    }
                    Err(error) => {
                        println!("  {} {label} run {run}/{COLD_STARTS}: failed: {error:#}", subject.function);
                        missing.push(format!("{} ({label}): {error:#}", subject.function));
                        break;
                    }
                }
            }
            let column = |f: fn(&ColdRun) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
            let function = subject.function;
            if transport != Transport::Tls {
                section.figures.extend([
                    Figure::new(
                        format!("Cold start, {label}: {function} init (start → first next)"),
                        Unit::Millis,
                        column(|r| r.init_ms),
                        None,
                    ),
                    Figure::new(
                        format!("Cold start, {label}: {function} init, CPU"),
                        Unit::Millis,
                        column(|r| r.init_cpu_ms),
                        None,
                    ),
                    Figure::new(
                        format!("Cold start, {label}: {function} first invocation (first next → response)"),
                        Unit::Millis,
                        column(|r| r.first_invocation_only_ms),
                        None,
                    ),
                    Figure::new(
                        format!("Cold start, {label}: {function} first invocation, CPU"),
                        Unit::Millis,
                        column(|r| r.first_invocation_cpu_ms),
                        None,
                    ),
                ]);
                continue;
            }
            let median_of = |f: fn(&ColdRun) -> f64| spread(&column(f)).map(|s| s.median);
            if let (Some(cpu_ms), Some(wall_ms), Some(log_bytes), Some(emf_bytes)) = (
                median_of(|r| r.warm_cpu_ms),
                median_of(|r| r.warm_wall_ms),
                median_of(|r| r.warm_log_bytes),
                median_of(|r| r.warm_emf_bytes),
            ) {
                let warm = Some(cost::Warm { cpu_ms, wall_ms, log_bytes, emf_bytes });
                match function {
                    "webhook-receiver" => costs.receiver = warm,
                    "invoice-status-poster" => costs.poster = warm,
                    _ => {}
                }
            }
            let first_invocation_goal = if function == "invoice-status-poster" {
                POSTER_FIRST_INVOCATION_MAX_MS
            } else {
                FIRST_INVOCATION_MAX_MS
            };
            let at_256_mb = |r: &ColdRun| r.first_invocation_cpu_ms * LAMBDA_MB_PER_VCPU / TEMPLATE_MEMORY_MB;
            section.figures.extend([
            Figure::new(format!("Cold start over TLS: {function} init (start → first next)"), Unit::Millis, column(|r| r.init_ms), Some(Goal::AtMost(INIT_MAX_MS))),
            Figure::new(format!("Cold start over TLS: {function} init, CPU"), Unit::Millis, column(|r| r.init_cpu_ms), None),
            Figure::new(
                format!("Cold start over TLS: {function} first invocation (first next → response)"),
                Unit::Millis,
                column(|r| r.first_invocation_only_ms),
                Some(Goal::AtMost(first_invocation_goal)),
            ),
            Figure::new(format!("Cold start over TLS: {function} first invocation, CPU"), Unit::Millis, column(|r| r.first_invocation_cpu_ms), None),
            Figure::new(format!("Cold start over TLS: {function} first invocation at 256 MB, estimated (its CPU ÷ 256/1769 of a vCPU)"), Unit::Millis, runs.iter().map(at_256_mb).collect(), None),
            Figure::new(format!("Cold start over TLS: {function} first invoke (start → first response)"), Unit::Millis, column(|r| r.first_invoke_ms), None),
            Figure::new(format!("Cold start over TLS: {function} first invoke, of it waiting on moto"), Unit::Millis, column(|r| r.first_invoke_moto_ms), None),
            Figure::new(format!("Cold start over TLS: {function} first invoke, requests to moto"), Unit::Count, column(|r| r.first_invoke_moto_requests as f64), None),
            Figure::new(
                format!("Cold start over TLS: {function} first invoke less the wait on moto"),
                Unit::Millis,
                column(|r| r.first_invoke_ms - r.first_invoke_moto_ms),
                None,
            ),
            Figure::new(
                format!("CPU per warm invocation: {function} (user + system, {} invocations)", subject.warm_invocations),
                Unit::Millis,
                column(|r| r.warm_cpu_ms),
                (function == "webhook-receiver").then_some(Goal::AtMost(RECEIVER_CPU_MAX_MS)),
            ),
            Figure::new(format!("Wall time per warm invocation: {function} (moto and simulators included)"), Unit::Millis, column(|r| r.warm_wall_ms), None),
            Figure::new(format!("Log bytes per warm invocation: {function} (EMF included)"), Unit::Decimal, column(|r| r.warm_log_bytes), None),
            Figure::new(
                format!("New connections to the AWS endpoint in {} warm invocations: {function} (kept alive: 0)", subject.warm_invocations),
                Unit::Count,
                column(|r| r.warm_connections),
                None,
            ),
            Figure::new(format!("Memory: {function} peak RSS (VmHWM)"), Unit::Kib, column(|r| r.rss_kib as f64), Some(Goal::AtMost(FUNCTION_RSS_MAX_MIB * 1024.0))),
        ]);
            section.notes.push(format!("{function}: first event events/{}, then the same {} times{}.", subject.event, subject.warm_invocations, if function == "invoice-status-poster" {
             " (for the poster each with its own webhook, invoice and claim ids, and every link at the HICAPS simulator, so each is a new invoice adjudicated, posted and recorded)"
        } else {
            ""
        }));
        }
    }
    if only.as_deref().is_none_or(|only| only.split(',').any(|f| f == POWERTOOLS_PEER_NAME)) {
        match powertools_peer(root, &mut moto, simulator_port, work) {
            Ok(peer) => {
                let ours: Vec<f64> = section
                    .figures
                    .iter()
                    .find(|figure| figure.name.starts_with("CPU per warm invocation: webhook-receiver"))
                    .map(|figure| figure.values.clone())
                    .unwrap_or_default();
                let median = |values: &[f64]| spread(values).map(|s| s.median).unwrap_or(f64::NAN);
                let ratio = median(&peer.iter().map(|r| r.warm_cpu_ms).collect::<Vec<_>>()) / median(&ours);
                let column = |f: fn(&ColdRun) -> f64| peer.iter().map(f).collect::<Vec<f64>>();
                section.figures.extend([
                    Figure::new(
                        "Cold start over TLS: Powertools peer init (start → first next)",
                        Unit::Millis,
                        column(|r| r.init_ms),
                        None,
                    ),
                    Figure::new(
                        "Cold start over TLS: Powertools peer first invocation (first next → response)",
                        Unit::Millis,
                        column(|r| r.first_invocation_only_ms),
                        None,
                    ),
                    Figure::new(
                        "Cold start over TLS: Powertools peer first invocation, CPU",
                        Unit::Millis,
                        column(|r| r.first_invocation_cpu_ms),
                        None,
                    ),
                    Figure::new(
                        format!("CPU per warm invocation: Powertools peer ({RECEIVER_WARM_INVOCATIONS} invocations)"),
                        Unit::Millis,
                        column(|r| r.warm_cpu_ms),
                        None,
                    ),
                    Figure::new(
                        "Memory: Powertools peer peak RSS (VmHWM)",
                        Unit::Kib,
                        column(|r| r.rss_kib as f64),
                        None,
                    ),
                    Figure::new(
                        "Receiver warm CPU: the Powertools peer's ÷ ours (medians, this run)",
                        Unit::Ratio,
                        vec![ratio],
                        Some(Goal::AtLeast(RECEIVER_CPU_MIN_ADVANTAGE)),
                    ),
                ]);
                section.notes.push(format!(
                    "The Powertools peer is xtask/peer/receiver.py: the same receiver written with Python 3, Powertools for AWS Lambda \
                     (APIGatewayHttpResolver, Logger, Metrics) and boto3, run by awslambdaric ({POWERTOOLS_PEER}, in target/powertools-venv) \
                     under the same emulator, over TLS, with the same environment and events."
                ));
            }
            Err(error) => missing.push(format!("Powertools peer: {error:#}")),
        }
    }
    stack.check_running()?;
    drop(stack);
    section.failures.extend(missing);
    section.notes.push(format!(
        "The emulator answers `GET /2018-06-01/runtime/invocation/next` with the event and the `Lambda-Runtime-Aws-Request-Id`, \
         `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id` headers and records `POST .../invocation/<id>/response|error`; \
         the process starts with only its Lambda environment (`env -i`: AWS_LAMBDA_* including AWS_LAMBDA_FUNCTION_NAME, so logs \
         and metrics are JSON lines on stdout as in Lambda; credentials and region; AWS_ENDPOINT_URL at moto {}; the template's \
         variables with secrets as plain values; upstreams at the local stack's simulators). Each function is started once unrecorded (to \
         have its freshly linked binary in the page cache), then {COLD_STARTS} times, each with a new table holding only the \
         reference data (benefit schedule, member registry) and new, empty queues in moto. Init is from just before the \
         process is spawned to its first `next`; first invoke to the first response; an invocation is warm once the runtime \
         has asked for the next event. CPU is utime + stime of the whole process from /proc/<pid>/stat (10 ms ticks) across \
         the warm invocations, divided by their number; RSS is VmHWM at the end. moto speaks plain HTTP and answers \
         `Connection: close`; in AWS a warm function reuses one connection, so the functions reach moto through a \
         keep-alive relay in xtask (which opens moto's connection per request in its own process), and none does TLS \
         (in AWS the first invocation pays one TLS handshake). moto's own latency (a Python server) is in the \
         first-invoke and wall times; the relay clocks it: \"waiting on moto\" is the time from process start to the first \
         response during which at least one request to moto was outstanding (concurrent requests counted once), and what \
         is left when it is taken away is the function's own part (its start, its work, the simulators).",
        crate::moto::MOTO_VERSION
    ));
    drop(moto);
    Ok(section)
}

// ---------------------------------------------------------------------------------------------
// 4. Package size

fn package(root: &Path, venv: &Path) -> anyhow::Result<Section> {
    let mut section = Section::new("Package size");
    section.commands.push(
        "cargo xtask package   # cargo lambda build --release --arm64 --output-format zip, every function".into(),
    );
    let reports = crate::lambda::package(root, venv)?;
    for report in &reports {
        section.figures.push(Figure::new(
            format!("Package: {} bootstrap.zip ({})", report.function, report.architecture),
            Unit::Bytes,
            vec![report.zip_bytes as f64],
            Some(Goal::AtMost(PACKAGE_MAX_BYTES)),
        ));
    }
    if reports.iter().any(|r| r.architecture != "arm64") {
        section.notes.push("The arm64 standard library could not be installed here, so these are x86-64 zips (the template deploys arm64).".into());
    }
    section.notes.push("One build: a zip's size does not vary between runs of the same commit.".into());
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some(Spread { median: 2.0, min: 1.0, max: 3.0 }));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]).map(|s| s.median), Some(2.5));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), 50);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&values, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn goals_are_checked_on_the_median_and_zero_counts_on_every_run() {
        let figure = |values: Vec<f64>, goal| Figure::new("f", Unit::Millis, values, Some(goal));
        assert_eq!(figure(vec![1.0, 9.0, 2.0], Goal::AtMost(5.0)).met(), Some(true));
        assert_eq!(figure(vec![6.0, 9.0, 2.0], Goal::AtMost(5.0)).met(), Some(false));
        assert_eq!(figure(vec![0.0, 1.0, 0.0], Goal::Exactly(0.0)).met(), Some(false));
        assert_eq!(figure(vec![], Goal::AtLeast(1.0)).met(), Some(false));
        assert_eq!(Figure::new("f", Unit::Millis, vec![1.0], None).met(), None);
    }

    #[test]
    fn a_tenth_of_deliveries_repeat_earlier_webhooks() {
        let (order, distinct) = delivery_order(50_000, 10, 2_000, 7);
        assert_eq!(order.len(), 50_000);
        assert_eq!(distinct, 45_000);
        let mut seen = HashSet::new();
        let mut repeats = 0;
        for (position, webhook) in order.iter().enumerate() {
            if !seen.insert(*webhook) {
                repeats += 1;
                assert_eq!(position % 10, 9);
            }
        }
        assert_eq!(repeats, 5_000);
        assert_eq!(seen.len(), 45_000);
    }

    #[test]
    fn ids_are_uuids_and_unique() {
        let ids: HashSet<String> = (0..10_000).map(|n| uuid(42, n)).collect();
        assert_eq!(ids.len(), 10_000);
        let id = uuid(42, 1);
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn proc_files_are_parsed() {
        let stat = "1234 (tokio runtime) S 1 1234 1234 0 -1 4194560 500 0 0 0 71 29 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(100));
        assert_eq!(parse_vm_hwm("Name:\tx\nVmHWM:\t    8192 kB\nVmRSS:\t 100 kB\n"), Some(8192));
    }

    #[test]
    fn http_messages_with_length_or_chunks_are_read() {
        let mut input: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut buffer = Vec::new();
        let (head, body) = read_message(&mut input, &mut buffer).expect("read").expect("message");
        assert_eq!((head.status(), body.as_slice()), (202, b"ok".as_slice()));
        let (head, body) = read_message(&mut input, &mut buffer).expect("read").expect("message");
        assert_eq!((head.status(), body.as_slice()), (200, b"abcde".as_slice()));
        assert!(read_message(&mut input, &mut buffer).expect("read").is_none());
    }

    #[test]
    fn the_poster_event_gets_fresh_ids_and_simulator_links() {
        let event = json!({"Records": [{"messageId": "m", "body": json!({"kind": "webhook", "receivedAt": 1, "webhook": {
            "id": "a", "type": "claiming.invoice.submitted", "data": {"invoiceId": "i", "claims": [{"claimId": "c"}]},
            "_links": {"lp:invoice-status-updated": {"href": "https://lanternpay.com/x"}}}}).to_string()}]});
        let first: Value = serde_json::from_slice(&poster_event(&event, 1, 0, 4000).expect("event")).expect("json");
        let message: Value =
            serde_json::from_str(first["Records"][0]["body"].as_str().expect("body")).expect("message");
        assert_eq!(message["webhook"]["id"], "a");
        assert_eq!(
            message["webhook"]["_links"]["lp:invoice-status-updated"]["href"],
            "http://127.0.0.1:4000/sim/hicaps/callbacks/invoice-status/i"
        );
        let later: Value = serde_json::from_slice(&poster_event(&event, 1, 5, 4000).expect("event")).expect("json");
        let message: Value =
            serde_json::from_str(later["Records"][0]["body"].as_str().expect("body")).expect("message");
        assert_ne!(message["webhook"]["id"], "a");
        assert_ne!(message["webhook"]["data"]["claims"][0]["claimId"], "c");
    }
}
