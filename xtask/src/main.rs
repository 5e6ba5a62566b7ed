//! `cargo xtask <task>`: the project's tasks, in Rust so they run wherever cargo does.
//!
//! - `test`: checks the format (`cargo fmt --check`) and the lints (`cargo clippy -- -D warnings`),
//!   installs pinned moto, cfn-lint and checkov in a venv, checks the SAM template, starts
//!   moto on a free loopback port, runs every test in the workspace against it, stops it, then
//!   runs schemathesis (its own venv) against the local stack from `openapi.yaml`, then clicks
//!   through the flow page in headless Chromium (installed with apt-get if missing); exits non-zero
//!   if anything failed.
//! - `fuzz`: only the schemathesis part of `test`.
//! - `browser`: only the flow page's headless Chromium test, the last part of `test`.
//! - `moto`: starts the same moto server alone and prints the environment to use it.
//! - `package`: `cargo lambda build --release --arm64 --output-format zip` of every function
//!   (x86-64 if the arm64 std can't be installed, said so), with each zip's size.
//! - `lambda-invoke`: fresh moto + `cargo lambda watch` + `cargo lambda invoke` of every file in
//!   events/, each answer checked.
//! - `bench [criterion|load|cold-start|package]...`: every measurement of issue 8 (criterion, load through the local stack, cold start,
//!   CPU and memory under a Runtime API emulator, package size) into `BENCHMARKS.md`; exits
//!   non-zero naming each missed target.
//! - `soak [--webhooks N] [--seeds N] [--first-seed S] [--parallel N] [--crash-webhooks N]`:
//!   seeded faults in process and a `kill -9` on moto, invariants checked, into `RELIABILITY.md`.
//! - `replay-dlq --queue-url URL --dlq-url URL [--list] [--id ID]... [--since TIME] [--reason TEXT]
//!   [--dry-run]`: lists dead-lettered work, or sends chosen letters back to the queue.
//! - `inspect (--webhook-id ID | --invoice-id ID) [--table NAME] [--json] [--show-personal-data]`:
//!   a webhook's or an invoice's timeline, from the local stack or a DynamoDB table.
//! - `load-reference --table NAME [--schedule FILE] [--members FILE]`: loads the benefit
//!   schedule and member registry into a DynamoDB table.

mod bench;
mod browser;
mod fuzz;
mod iac;
mod lambda;
mod moto;
mod ops;
mod process;
mod soak;

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        bail!(
            "usage: cargo xtask <test|bench|soak|fuzz|browser|moto|package|lambda-invoke|replay-dlq|inspect|load-reference> [options]"
        );
    };
    let options = &args[1..];
    match task.as_str() {
        "test" => test(options),
        "bench" => bench(options),
        "moto" => moto::serve_forever(),
        "browser" => browser::run(&repo_root()),
        "fuzz" => {
            let root = repo_root();
            fuzz::run(&root, &fuzz::ensure_venv(&root)?, true)
        }
        "package" => package(),
        "lambda-invoke" => lambda_invoke(),
        "soak" => {
            let root = repo_root();
            let venv = moto::ensure_venv(&root)?;
            soak::run(&root, &venv, options)
        }
        "replay-dlq" => ops::replay_dlq(options),
        "inspect" => ops::inspect(options),
        "load-reference" => ops::load_reference(options),
        other => bail!(
            "unknown task {other:?}; tasks: test, bench, soak, fuzz, browser, moto, package, lambda-invoke, replay-dlq, inspect, load-reference"
        ),
    }
}

/// Runs every test with the AWS adapters pointed at a fresh moto server, then schemathesis
/// against the local stack from openapi.yaml.
fn test(extra: &[String]) -> anyhow::Result<()> {
    let root = repo_root();
    // The Python tools install while clippy runs, and the template is linted while the workspace
    // compiles: on a clean clone, each of these ran alone for about two minutes.
    let venv = {
        let root = root.clone();
        std::thread::spawn(move || moto::ensure_venv(&root))
    };
    let fuzz_venv = {
        let root = root.clone();
        std::thread::spawn(move || fuzz::ensure_venv(&root))
    };
    lint(&root)?;
    let venv = venv.join().map_err(|_| anyhow::anyhow!("installing moto panicked"))??;
    let server = moto::Server::start(&venv)?;
    println!("xtask: moto {} on {}", moto::MOTO_VERSION, server.endpoint());
    let iac = {
        let (python, root) = (venv.join("bin").join("python"), root.clone());
        std::thread::spawn(move || iac::check(&python, &root))
    };
    let status = crate::process::cargo()
        .current_dir(&root)
        .args(["test", "--workspace"])
        .args(extra)
        .envs(server.environment())
        .status()
        .context("running cargo test")?;
    drop(server);
    iac.join().map_err(|_| anyhow::anyhow!("checking the template panicked"))??;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    let fuzz_venv = fuzz_venv.join().map_err(|_| anyhow::anyhow!("installing schemathesis panicked"))??;
    fuzz::run(&root, &fuzz_venv, false)?;
    browser::run(&root)
}

/// The format and the lints, enforced: `cargo fmt --check`, then clippy with warnings as errors
/// (the workspace's own lints, `unwrap_used` and `float_arithmetic` among them, included).
fn lint(root: &Path) -> anyhow::Result<()> {
    let cargo = |args: &[&str]| crate::process::cargo().current_dir(root).args(args).status();
    let quiet = |args: &[&str]| crate::process::cargo().args(args).output().is_ok_and(|o| o.status.success());
    if !quiet(&["fmt", "--version"]) || !quiet(&["clippy", "--version"]) {
        println!("xtask: installing rustfmt and clippy (rustup component add)");
        let added = Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]).status();
        if !added.is_ok_and(|s| s.success()) {
            bail!("cargo fmt and cargo clippy are needed: rustup component add rustfmt clippy");
        }
    }
    if !cargo(&["fmt", "--all", "--", "--check"]).context("running cargo fmt")?.success() {
        bail!("cargo fmt --check found unformatted code: run cargo fmt --all");
    }
    let clippy = ["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"];
    if !cargo(&clippy).context("running cargo clippy")?.success() {
        bail!("cargo clippy --workspace --all-targets -- -D warnings failed");
    }
    Ok(())
}

/// Every benchmark of issue 8, written to BENCHMARKS.md.
fn bench(parts: &[String]) -> anyhow::Result<()> {
    let root = repo_root();
    let venv = moto::ensure_venv(&root)?;
    bench::run(&root, &venv, parts)
}

/// Release zips of every function for Lambda (arm64, else x86-64, said so), with their sizes.
fn package() -> anyhow::Result<()> {
    let root = repo_root();
    let venv = moto::ensure_venv(&root)?;
    lambda::package(&root, &venv).map(drop)
}

/// The README's cargo-lambda steps against a fresh moto server, every answer checked.
fn lambda_invoke() -> anyhow::Result<()> {
    let root = repo_root();
    let venv = moto::ensure_venv(&root)?;
    let server = moto::Server::start(&venv)?;
    println!("xtask: moto {} on {}", moto::MOTO_VERSION, server.endpoint());
    lambda::invoke_check(&root, &venv, &server.environment())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// Each package's feature sets as `cargo tree` resolves them for `selection`.
    fn features(selection: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        let output = crate::process::cargo()
            .current_dir(super::repo_root())
            .args(["tree", "--prefix", "none", "--format", "{p}|{f}"])
            .args(selection)
            .output()
            .expect("cargo tree");
        assert!(output.status.success(), "cargo tree: {}", String::from_utf8_lossy(&output.stderr));
        let mut features: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((package, enabled)) = line.split_once('|') else { continue };
            // `(*)` marks a package already listed, with the same features.
            let package = package.split(" (").next().unwrap_or(package).to_owned();
            let enabled = enabled.trim_end_matches(" (*)").to_owned();
            features.entry(package).or_default().insert(enabled);
        }
        features
    }

    /// `cargo xtask test` builds xtask alone and then the workspace's tests: every package the
    /// two builds share must get the same features, or the second compiles it (and everything
    /// above it, the AWS SDK included) again. The feature-only dependencies in
    /// `xtask/Cargo.toml` keep them equal; this names any that drifted.
    #[test]
    fn xtask_asks_for_the_features_the_workspace_tests_build() {
        let alone = features(&["--package", "xtask", "--edges", "normal,build"]);
        let workspace = features(&["--workspace"]);
        let drifted: Vec<String> = alone
            .iter()
            .filter(|(package, enabled)| workspace.get(*package).is_some_and(|all| all != *enabled))
            .map(|(package, enabled)| format!("{package}: xtask {enabled:?}, workspace {:?}", workspace[package]))
            .collect();
        assert!(drifted.is_empty(), "add these features to xtask/Cargo.toml:\n{}", drifted.join("\n"));
    }
}
