//! `cargo xtask bench`: measures what issue 8 asks, on this machine, and writes `BENCHMARKS.md`.
//!
//! 1. **Handler cost**: the criterion benches `functions/webhook-receiver/benches/receiver.rs` and
//!    `functions/invoice-status-poster/benches/adjudication.rs`, run [`CRITERION_RUNS`] times; each
//!    run's median is read from `target/criterion/<group>/<bench>/new/estimates.json`. The
//!    receiver's path is also counted in instructions per webhook under callgrind, a figure the
//!    host's load does not move.
//! 2. **Load**: `target/release/local` on a free loopback port; [`LOAD_WEBHOOKS`] HICAPS webhooks
//!    over [`LOAD_CONNECTIONS`] keep-alive connections, every tenth a repeated delivery of an
//!    earlier one (same id, same body), while the poster drains the queue into the HICAPS
//!    simulator. Then every distinct webhook must have exactly one status post and nothing may be
//!    dead-lettered. The load generator is in `bench/load.rs` (tokio tasks on one thread, HTTP/1.1 written by hand) because
//!    oha picks a body line at random per request (`-Z`), which cannot make "these 45,000 webhooks,
//!    5,000 of them twice" nor tell which were sent; oha (or wrk) runs once more as a cross-check of
//!    the acknowledgement figures.
//! 3. **Cold start**: a Lambda Runtime API emulator (`bench/emulator.rs`) starts each function's release binary
//!    with its Lambda environment (moto for DynamoDB and SQS, the local stack's simulators for the
//!    upstreams) and times process start -> first `next` (init) and -> first response (first
//!    invoke); then CPU per warm invocation (utime + stime from `/proc/<pid>/stat`) and peak RSS
//!    (`VmHWM`).
//! 4. **Package size**: `crate::lambda::package` (`cargo lambda build --release --arm64`, zipped).
//!
//! While profiling: `XTASK_BENCH_FUNCTIONS=webhook-receiver` limits the cold-start part to the
//! named functions, `XTASK_BENCH_PERF=<dir>` records their warm invocations with
//! `perf record -g` into `<dir>` (`XTASK_BENCH_PERF_CALL_GRAPH=dwarf` unwinds without frame
//! pointers), and `XTASK_BENCH_NO_BUILD=1` measures the release binaries as they are (a build with
//! symbols, say, from `CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only`).
//!
//! Every figure is the median of several runs with its min-max spread. Targets are checked on
//! the median (counts that must be zero: on every run); the task fails naming each missed one,
//! after writing the file. Nothing here asserts timing in a unit test.
//!
//! The parts are modules under `bench/`: `criterion.rs`, `load.rs` (with the cross-check in
//! `oha.rs`), `cold_start.rs` (with the Runtime API emulator in `emulator.rs` and moto behind its
//! keep-alive relay in `relay.rs`), `package.rs` and `cost.rs`. `report.rs` holds the figures and
//! renders the file; `http1.rs`, `procfs.rs` and `webhooks.rs` are what the parts share. This file
//! has the targets, the entry point and the local stack the parts start.

#![allow(clippy::float_arithmetic)] // statistics of measurements, not money

mod cold_start;
mod cost;
mod criterion;
mod emulator;
mod http1;
mod load;
mod oha;
mod package;
mod procfs;
mod relay;
mod report;
mod webhooks;

pub(crate) use report::machine;

use crate::process::{Background, cargo, free_port, tail};
use anyhow::{Context, bail};
use http1::http_request;
use report::{KEEP_MARKER, Section, missed, render};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
        sections.push(guarded("Handler cost (criterion, in process)", || criterion::criterion(root)));
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
            Ok(()) if part == "load" => guarded(title, || load::load(root, &work, &mut costs)),
            Ok(()) => guarded(title, || cold_start::cold_start(root, venv, &work, &mut costs)),
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
        sections.push(guarded("Package size", || package::package(root, venv)));
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
/// machine's load average around it and the share of its CPU time the hypervisor took (steal):
/// other work on the machine, or on its host, shows in every figure.
fn guarded(title: &str, measure: impl FnOnce() -> anyhow::Result<Section>) -> Section {
    println!("xtask bench: {title}");
    let before = load_average();
    let ticks_before = procfs::machine_ticks();
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
    if let (Some((total_before, steal_before)), Some((total, steal))) = (ticks_before, procfs::machine_ticks()) {
        let (total, steal) = (total.saturating_sub(total_before), steal.saturating_sub(steal_before));
        section.notes.push(format!(
            "The hypervisor took {:.1}% of the machine's CPU time during this section (steal in /proc/stat): time \
             this VM's cores waited for the host, which slows every figure here.",
            if total == 0 { 0.0 } else { steal as f64 * 100.0 / total as f64 }
        ));
    }
    section
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
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
    let mut command = cargo();
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

/// `program args`'s standard output, trimmed, if it ran and succeeded.
fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

// ---------------------------------------------------------------------------------------------
// The local stack

/// How many of a log's last lines an error quotes.
const LOG_TAIL_LINES: usize = 20;

fn wait_for_health(process: &mut Background, port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        process.check_running(LOG_TAIL_LINES)?;
        if http_request(port, "GET", "/health", None, Duration::from_secs(2)).is_ok_and(|(status, _)| status == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "{} did not answer GET /health within {} s:\n{}",
        process.name(),
        timeout.as_secs(),
        tail(process.log(), LOG_TAIL_LINES)
    )
}

/// `target/release/local` on a free port, embedded store and queues.
fn start_stack(root: &Path, log: PathBuf) -> anyhow::Result<(Background, u16)> {
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
    let mut process = Background::spawn("the local stack (target/release/local)", command, log)?;
    wait_for_health(&mut process, port, Duration::from_secs(30))?;
    Ok((process, port))
}
