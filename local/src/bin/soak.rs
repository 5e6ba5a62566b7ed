//! `cargo xtask soak` runs this: the in-process seeds, then (with `--crash-webhooks N`) the
//! crash run against moto. Prints each run's figures, writes them as JSON with `--json FILE`,
//! and exits non-zero naming every violated invariant.
//!
//! Options: `--webhooks N` per seed, `--seeds N`, `--first-seed S`, `--parallel N` seeds at once,
//! `--crash-webhooks N` with `--stack PATH` (the local stack's binary) and `--crash-log FILE`.

use local::soak::{Options, SeedReport};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let mut options = Options::default();
    let mut json = None;
    let mut parallel = 4usize;
    let mut crash_webhooks = 0usize;
    let mut stack = None;
    let mut crash_log = PathBuf::from("target/soak-crash-stack.log");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--webhooks" => options.webhooks = value()?.parse()?,
            "--seeds" => options.seeds = value()?.parse()?,
            "--first-seed" => options.first_seed = value()?.parse()?,
            "--parallel" => parallel = value()?.parse::<usize>()?.max(1),
            "--json" => json = Some(value()?),
            "--crash-webhooks" => crash_webhooks = value()?.parse()?,
            "--stack" => stack = Some(PathBuf::from(value()?)),
            "--crash-log" => crash_log = PathBuf::from(value()?),
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    let mut reports = local::soak::run_parallel(options, parallel)?;
    for report in &reports {
        print_report("seed", report);
    }
    let mut crash = None;
    if crash_webhooks > 0 {
        let stack = stack.ok_or_else(|| anyhow::anyhow!("--crash-webhooks needs --stack PATH"))?;
        let options = local::soak::crash::CrashOptions {
            webhooks: crash_webhooks,
            seed: options.first_seed,
            stack,
            log: crash_log,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let report = runtime.block_on(local::soak::crash::run(&options))?;
        print_report("crash run", &report);
        crash = Some(report);
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&serde_json::json!({"seeds": reports, "crash": crash}))?)?;
    }
    reports.extend(crash);
    let violations: usize = reports.iter().map(|r| r.violations.len()).sum();
    if violations > 0 {
        anyhow::bail!("{violations} invariant violation(s); a seed reruns alone with --first-seed S --seeds 1");
    }
    Ok(())
}

fn print_report(what: &str, report: &SeedReport) {
    println!("{what} {}", local::soak::summary_line(report));
    for violation in &report.violations {
        println!("  VIOLATION ({what} {}): {violation}", report.seed);
    }
}
