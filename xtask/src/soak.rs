//! `cargo xtask soak`: the delivery guarantees under seeded faults and a real crash, written to
//! `RELIABILITY.md`. Starts moto, builds the local stack and `local/src/bin/soak.rs`, runs the
//! in-process seeds and the crash run (see `local/src/soak/`), and exits non-zero naming every
//! missed target.
//!
//! Options (defaults in brackets): `--webhooks N` per seed [500], `--seeds N` [5], `--first-seed
//! S` [1], `--parallel N` seeds at once [4], `--crash-webhooks N` for the crash run [2000,
//! 7 to 9 minutes; 0 skips it].

use crate::bench::machine;
use anyhow::{Context, bail};
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;
use std::process::Command;

const KEEP_MARKER: &str = "<!-- cargo xtask soak keeps everything below this line -->";

pub fn run(root: &Path, venv: &Path, options: &[String]) -> anyhow::Result<()> {
    let mut passed: Vec<String> = options.to_vec();
    if !passed.iter().any(|o| o == "--crash-webhooks") {
        passed.extend(["--crash-webhooks".into(), "2000".into()]);
    }
    let status = crate::process::cargo().current_dir(root).args(["build", "-p", "local", "--bins"]).status()?;
    if !status.success() {
        bail!("building the local stack failed ({status})");
    }
    let server = crate::moto::Server::start(venv)?;
    println!("xtask soak: moto {} on {}", crate::moto::MOTO_VERSION, server.endpoint());
    let target = root.join("target");
    let json = target.join("soak.json");
    let _ = std::fs::remove_file(&json);
    let status = Command::new(target.join("debug").join("soak"))
        .current_dir(root)
        .args(&passed)
        .arg("--stack")
        .arg(target.join("debug").join("local"))
        .arg("--crash-log")
        .arg(target.join("soak-crash-stack.log"))
        .arg("--json")
        .arg(&json)
        .envs(server.environment())
        .env("RUST_LOG", "off")
        .status()
        .context("running the soak")?;
    drop(server);
    let figures: Value = serde_json::from_str(&std::fs::read_to_string(&json).context("the soak wrote no figures")?)?;
    let command = format!("cargo xtask soak {}", options.join(" ")).trim_end().to_owned();
    let path = root.join("RELIABILITY.md");
    let kept = std::fs::read_to_string(&path)
        .ok()
        .and_then(|old| old.split_once(KEEP_MARKER).map(|(_, tail)| tail.to_owned()))
        .unwrap_or_default();
    let (markdown, missed) = render(&command, root, &figures);
    std::fs::write(&path, format!("{markdown}\n{KEEP_MARKER}{kept}"))
        .with_context(|| format!("writing {}", path.display()))?;
    println!("xtask soak: wrote {}", path.display());
    if !missed.is_empty() || !status.success() {
        bail!("{} target(s) missed:\n  {}", missed.len(), missed.join("\n  "));
    }
    println!("xtask soak: every target met");
    Ok(())
}

fn sum(runs: &[&Value], field: &str) -> u64 {
    runs.iter().map(|run| run[field].as_u64().unwrap_or(0)).sum()
}

/// The figures as Markdown, and the targets missed.
fn render(command: &str, root: &Path, figures: &Value) -> (String, Vec<String>) {
    let machine = machine(root);
    let seeds: Vec<&Value> = figures["seeds"].as_array().map(|runs| runs.iter().collect()).unwrap_or_default();
    let crash: Vec<&Value> = figures["crash"].as_object().map(|_| vec![&figures["crash"]]).unwrap_or_default();
    let mut md = String::new();
    let _ = writeln!(md, "# Reliability\n");
    md.push_str(&machine.provenance(command, "xtask/src/soak.rs"));
    let _ = writeln!(
        md,
        "- machine: {} cores, {}, {} RAM, Linux {}; {}\n",
        machine.cores, machine.cpu, machine.memory, machine.kernel, machine.rustc
    );
    let mut missed = Vec::new();
    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(md, "| figure | in process ({} seeds) | crash run (kill -9 on moto) | target | |", seeds.len());
    let _ = writeln!(md, "|---|---|---|---|---|");
    let count = |runs: &[&Value], prefix: &str| -> u64 {
        runs.iter()
            .flat_map(|run| run["violations"].as_array().into_iter().flatten())
            .filter(|v| v.as_str().is_some_and(|v| v.starts_with(prefix) || v.contains(prefix)))
            .count() as u64
    };
    let rows: [(&str, &str); 4] = [
        ("lost", "lost"),
        ("posted twice with different bodies", "different bodies"),
        ("state-machine violations", "moved from"),
        ("`lp:webhook-error` more than once", "lp:webhook-error called"),
    ];
    for (figure, marker) in rows {
        let (in_process, crashed) = (count(&seeds, marker), count(&crash, marker));
        let met = in_process == 0 && crashed == 0;
        if !met {
            missed.push(format!("{figure}: {in_process} in process, {crashed} in the crash run (target 0)"));
        }
        let _ = writeln!(
            md,
            "| {figure} | {in_process} | {} | 0 | {} |",
            if crash.is_empty() { "not run".into() } else { crashed.to_string() },
            if met { "met" } else { "**missed**" }
        );
    }
    let other = |runs: &[&Value]| -> u64 {
        let all: u64 = runs.iter().map(|run| run["violations"].as_array().map_or(0, |v| v.len() as u64)).sum();
        all - rows.iter().map(|(_, marker)| count(runs, marker)).sum::<u64>()
    };
    let (in_process, crashed) = (other(&seeds), other(&crash));
    if in_process + crashed > 0 {
        missed.push(format!("other violations (an identical repeat without a crash, a DLQ entry never refused): {in_process} in process, {crashed} in the crash run"));
    }
    let _ = writeln!(
        md,
        "| other violations (identical repeat without a crash; DLQ entry HICAPS never refused for work not done) | {in_process} | {} | 0 | {} |",
        if crash.is_empty() { "not run".into() } else { crashed.to_string() },
        if in_process + crashed == 0 { "met" } else { "**missed**" }
    );
    let per_thousand = |runs: &[&Value]| {
        let repeats = sum(runs, "identicalRepeats");
        match (repeats * 1000).checked_div(sum(runs, "crashes")) {
            None => "no crashes".to_owned(),
            Some(per_thousand) => format!("{repeats} ({per_thousand} per 1,000 crashes)"),
        }
    };
    let _ = writeln!(
        md,
        "| identical repeats | {} | {} | counted | |\n",
        per_thousand(&seeds),
        if crash.is_empty() { "not run".into() } else { per_thousand(&crash) }
    );

    let _ = writeln!(md, "## Each run\n");
    let _ = writeln!(
        md,
        "| run | webhooks (acknowledged) | duplicates delivered | redeliveries | faults injected | crashes | posts | identical repeats | DLQ before → after replay (stale) | `lp:webhook-error` | violations | seconds | fingerprint |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, run) in seeds
        .iter()
        .map(|run| (format!("seed {}", run["seed"]), *run))
        .chain(crash.iter().map(|run| ("crash run".to_owned(), *run)))
    {
        let faults: u64 = run["faults"].as_object().map_or(0, |f| f.values().filter_map(Value::as_u64).sum());
        let _ = writeln!(
            md,
            "| {name} | {} ({}) | {} | {} | {faults} | {} | {} | {} | {} → {} ({}) | {} | {} | {} | {} |",
            run["webhooks"],
            run["acknowledged"],
            run["duplicatesDelivered"],
            run["redeliveries"],
            run["crashes"],
            run["posts"],
            run["identicalRepeats"],
            run["deadLettersBeforeReplay"],
            run["deadLettersAfterReplay"],
            run["staleDeadLetters"].as_u64().unwrap_or(0),
            run["webhookErrorCalls"],
            run["violations"].as_array().map_or(0, Vec::len),
            run["millis"].as_u64().unwrap_or(0) / 1000,
            run["fingerprint"]
                .as_str()
                .filter(|f| !f.is_empty())
                .map_or("(real clock)".to_owned(), |f| format!("`{}`", &f[..f.len().min(12)])),
        );
    }
    let _ = writeln!(md, "\n## Faults injected, by kind\n");
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    for run in seeds.iter().chain(crash.iter()) {
        for (kind, n) in run["faults"].as_object().into_iter().flatten() {
            *kinds.entry(kind.clone()).or_default() += n.as_u64().unwrap_or(0);
        }
    }
    let _ = writeln!(md, "| kind | count |\n|---|---|");
    for (kind, n) in kinds {
        let _ = writeln!(md, "| {kind} | {n} |");
    }
    let violations: Vec<String> = seeds
        .iter()
        .chain(crash.iter())
        .flat_map(|run| {
            run["violations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |v| format!("seed {}: {}", run["seed"], v.as_str().unwrap_or_default()))
        })
        .take(50)
        .collect();
    if !violations.is_empty() {
        let _ = writeln!(md, "\n## Violations (first 50)\n");
        for violation in violations {
            let _ = writeln!(md, "- {violation}");
        }
    }
    (md, missed)
}
