//! The oha cross-check of the load figures: oha (`cargo install oha --locked` into
//! target/xtask-tools) or, failing that, wrk from Debian if it is on PATH, once against a fresh
//! stack. oha picks a body line at random per request (`-Z`), so it cannot send the load run's
//! exact webhooks and repeats ([`super::load`]); it checks the acknowledgement figures.

use super::load::Plan;
use super::webhooks::{run_seed, webhook};
use super::{LOAD_CONNECTIONS, LOAD_WEBHOOKS, WEBHOOK_HEADER, WEBHOOK_SECRET, command_line, start_stack, target_dir};
use crate::process::cargo;
use anyhow::{Context, bail};
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Cross-check with a standard tool: oha (`cargo install oha --locked` into target/xtask-tools)
/// or, failing that, wrk from Debian if it is on PATH.
pub(super) struct Notes(pub(super) Vec<String>);

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
    let status = cargo()
        .args(["install", "oha", "--version", OHA_VERSION, "--locked", "--root"])
        .arg(&tools)
        .status()
        .context("running cargo install oha")?;
    if !status.success() || !binary.is_file() {
        bail!("cargo install oha --locked failed ({status})");
    }
    Ok(binary)
}

pub(super) fn cross_check(root: &Path, work: &Path, template: &Value) -> anyhow::Result<Notes> {
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
