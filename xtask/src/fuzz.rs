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
        let status =
            crate::process::cargo().current_dir(root).args(["build", "-p", "local", "--bin", "local"]).status()?;
        if !status.success() {
            bail!("building the local stack failed ({status})");
        }
    }
    let stack = crate::process::LocalStack::start(root, &[("LOCAL_API_KEYS", &format!("{KEY}=local"))])?;
    let url = stack.url.clone();
    let report = root.join("target").join("schemathesis");
    std::fs::create_dir_all(&report)?;
    let config = report.join("schemathesis.toml");
    let invoice_id = seed_pending_invoice(&url)?;
    std::fs::write(&config, decision_config(&invoice_id)).with_context(|| format!("writing {}", config.display()))?;
    let status = Command::new(venv.join("bin").join("st"))
        .current_dir(root)
        .arg("--config-file")
        .arg(&config)
        .args(["run", "openapi.yaml", "--url", &url])
        .args(["--header", &format!("Authorization: Bearer {KEY}")])
        // The receiver's default webhook header and the local stack's value.
        .args(["--header", "x-hicaps-webhook-key: local-webhook-secret"])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"])
        // One worker: with two, hypothesis's cache of lambda sources raced and failed the run
        // with a "Runtime Error" of its own about one time in two.
        .args(["--max-examples", MAX_EXAMPLES, "--seed", "1", "--workers", "1"])
        // Stateful: openapi.yaml's links take each created iCare notification and document to
        // its GET, which random ids only ever find missing.
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
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

/// The decision route answers 404 for an invoice the program has not received, so random ids never
/// reach its validation: every decision schemathesis makes is about this invoice instead.
fn decision_config(invoice_id: &str) -> String {
    format!(
        "# Written by cargo xtask fuzz: the pending invoice it seeded through the HICAPS simulator.\n\
         [[operations]]\ninclude-name = \"POST /invoices/{{invoiceId}}/status\"\nparameters = {{ \"path.invoiceId\" = \"{invoice_id}\" }}\n"
    )
}

/// Sends an invoice whose claim waits for a person (item 507 in the sample schedule) through the
/// HICAPS simulator, and waits until the poster has recorded it.
fn seed_pending_invoice(url: &str) -> anyhow::Result<String> {
    let invoice_id = uuid::Uuid::new_v4().to_string();
    let overrides = serde_json::json!({
        "invoiceId": invoice_id,
        "claims": [{"claimId": "0f0e0d0c-0b0a-4908-8706-050403020100", "itemCode": "507", "quantity": 1, "unitPrice": 120.00}],
    });
    shared::install_tls_provider();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let sent = http.post(format!("{url}/sim/hicaps/send/invoice-submitted")).json(&overrides).send().await?;
        if !sent.status().is_success() {
            bail!("seeding an invoice through the simulator answered {}", sent.status());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let report: serde_json::Value =
                http.get(format!("{url}/local/inspect/invoices/{invoice_id}")).send().await?.json().await?;
            if report["claims"][0]["state"] == "pending" {
                return Ok(invoice_id);
            }
            if std::time::Instant::now() > deadline {
                bail!("the seeded invoice was not recorded within 30 s: {report}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
}
