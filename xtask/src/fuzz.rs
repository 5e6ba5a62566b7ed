//! schemathesis against the local stack, from `openapi.yaml`: every documented operation gets
//! examples, boundary values and random inputs, and every answer must be documented (status,
//! body schema, headers) and never a 5xx. `cargo xtask test` runs it after the tests.
//!
//! schemathesis lives in a venv of its own (`target/schemathesis-venv`): its dependencies and
//! checkov's pin different versions of the same packages.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// The API key the fuzzed stack admits, for caller `local` (who may decide and check eligibility).
const KEY: &str = "schemathesis-key";
/// Cases per operation in the fuzzing phase (the coverage phase adds its boundary cases): about
/// 1,400 requests in 20 s on this machine.
const MAX_EXAMPLES: &str = "15";

pub fn ensure_venv(root: &Path) -> anyhow::Result<PathBuf> {
    crate::moto::ensure_venv_with(&root.join("target").join("schemathesis-venv"), &[SCHEMATHESIS.to_owned()])
}

/// `build`: build the local stack first. `cargo xtask test` passes false: its `cargo test
/// --workspace` has just built `target/debug/local`, and `cargo build -p local` resolves features
/// differently and would compile the AWS SDK again (minutes).
pub fn run(root: &Path, venv: &Path, build: bool) -> anyhow::Result<()> {
    if build {
        let status = Command::new(env!("CARGO")).current_dir(root).args(["build", "-p", "local", "--bin", "local"]).status()?;
        if !status.success() {
            bail!("building the local stack failed ({status})");
        }
    }
    let stack = crate::process::LocalStack::start(root, &[("LOCAL_API_KEYS", &format!("{KEY}=local"))])?;
    let url = stack.url.clone();
    let report = root.join("target").join("schemathesis");
    let status = Command::new(venv.join("bin").join("st"))
        .current_dir(root)
        .args(["run", "openapi.yaml", "--url", &url])
        .args(["--header", &format!("Authorization: Bearer {KEY}")])
        // The receiver's default webhook header and the local stack's value.
        .args(["--header", "x-hicaps-webhook-key: local-webhook-secret"])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"])
        // One worker: with two, hypothesis's cache of lambda sources raced and failed the run
        // with a "Runtime Error" of its own about one time in two.
        .args(["--max-examples", MAX_EXAMPLES, "--seed", "1", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .arg("--report-dir")
        .arg(&report)
        .args(["--report", "junit", "--no-color"])
        .status()
        .context("running schemathesis");
    drop(stack);
    let status = status?;
    if !status.success() {
        bail!("schemathesis found answers openapi.yaml does not describe ({status}); report in {}", report.display());
    }
    println!("xtask: schemathesis: every answer conforms to openapi.yaml");
    Ok(())
}
