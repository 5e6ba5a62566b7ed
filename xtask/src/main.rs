//! `cargo xtask <task>`: the project's tasks, in Rust so they run wherever cargo does.
//!
//! - `test`: installs pinned moto, cfn-lint and checkov in a venv, checks the SAM template, starts
//!   moto on a free loopback port, runs every test in the workspace against it, stops it, and
//!   exits with the tests' status.
//! - `moto`: starts the same moto server alone and prints the environment to use it.
//! - `replay-dlq --queue-url URL --dlq-url URL`: sends dead-lettered work back to the queue.
//! - `load-reference --table NAME [--schedule FILE] [--members FILE]`: loads the benefit
//!   schedule and member registry into a DynamoDB table.

mod iac;
mod moto;
mod ops;

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        bail!("usage: cargo xtask <test|moto|replay-dlq|load-reference> [options]");
    };
    let options = &args[1..];
    match task.as_str() {
        "test" => test(options),
        "moto" => moto::serve_forever(),
        "replay-dlq" => ops::replay_dlq(options),
        "load-reference" => ops::load_reference(options),
        other => bail!("unknown task {other:?}; tasks: test, moto, replay-dlq, load-reference"),
    }
}

/// Runs every test with the AWS adapters pointed at a fresh moto server.
fn test(extra: &[String]) -> anyhow::Result<()> {
    let root = repo_root();
    let venv = moto::ensure_venv(&root)?;
    iac::check(&venv.join("bin").join("python"), &root)?;
    let server = moto::Server::start(&venv)?;
    println!("xtask: moto {} on {}", moto::MOTO_VERSION, server.endpoint());
    let status = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["test", "--workspace"])
        .args(extra)
        .envs(server.environment())
        .status()
        .context("running cargo test")?;
    drop(server);
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(())
}
