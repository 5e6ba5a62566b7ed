//! cargo-lambda tasks: `cargo xtask package` (release zips of the five functions) and
//! `cargo xtask lambda-invoke` (the README's `cargo lambda watch` / `cargo lambda invoke` steps,
//! run for real against moto and the local stack's upstream simulators, with every answer checked).
//!
//! cargo-lambda and zig come from PyPI (`cargo-lambda` ships the binary; `cargo lambda build`
//! finds PyPI `ziglang` in the same venv), pinned, in the xtask venv: see [`ensure_tools`].

use crate::process::{Background, cargo, free_port, tail};
use anyhow::{Context, bail};
use serde_json::Value;
use shared::queue::QueueDepth;
use shared::queue::sqs::SqsQueue;
use shared::store::dynamo::DynamoTable;
use shared::store::{Condition, ItemPut};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// PyPI `cargo-lambda`, which ships the `cargo-lambda` binary.
pub const CARGO_LAMBDA_VERSION: &str = "1.9.2";
/// PyPI `ziglang`: the linker `cargo lambda build` cross-links with.
pub const ZIGLANG_VERSION: &str = "0.17.1";

/// The SAM template deploys every function on arm64 (Graviton).
const ARM64_TARGET: &str = "aarch64-unknown-linux-gnu";
const X86_64_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The names the check gives the table and queues it creates in moto (the local stack's defaults).
const TABLE_NAME: &str = "claims-gateway";
const WORK_QUEUE: &str = "claims-gateway-work";
const ICARE_QUEUE: &str = "claims-gateway-icare";
/// The SAM template's redrive count and the poster's Lambda timeout times six (the visibility
/// timeout AWS asks for on an event source mapping's queue).
const MAX_RECEIVE_COUNT: u32 = 8;
const WORK_VISIBILITY: Duration = Duration::from_secs(180);
const ICARE_VISIBILITY: Duration = Duration::from_secs(10);

/// How long to wait for `cargo lambda watch` to listen, and for one `cargo lambda invoke` (the
/// first invocation of a function starts it with `cargo run`, which waits while another cargo
/// holds the build directory lock).
const WATCH_START_TIMEOUT: Duration = Duration::from_secs(120);
const INVOKE_TIMEOUT_SECONDS: u64 = 900;
/// How many of a log's last lines an error quotes.
const LOG_TAIL_LINES: usize = 30;

// ---------------------------------------------------------------------------------------------
// Tools

fn bin_dir(venv: &Path) -> PathBuf {
    venv.join("bin")
}

/// `PATH` with the venv's `bin` first, so cargo-lambda finds `cargo-lambda` and PyPI's zig.
fn path_with_venv(venv: &Path) -> anyhow::Result<OsString> {
    let mut paths = vec![bin_dir(venv)];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).context("building PATH with the xtask venv's bin directory")
}

/// `cargo-lambda lambda ...` from the venv (what `cargo lambda ...` runs when the venv is on PATH).
fn cargo_lambda(venv: &Path) -> anyhow::Result<Command> {
    let mut command = Command::new(bin_dir(venv).join("cargo-lambda"));
    command.arg("lambda").env("PATH", path_with_venv(venv)?);
    Ok(command)
}

/// The installed version of a PyPI distribution in the venv, if any.
fn installed_version(venv: &Path, distribution: &str) -> anyhow::Result<Option<String>> {
    let output = Command::new(bin_dir(venv).join("pip"))
        .args(["show", "--disable-pip-version-check", distribution])
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("running pip show {distribution} in {}", venv.display()))?;
    if !output.status.success() {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("Version:"))
        .map(|v| v.trim().to_owned()))
}

/// Installs the pinned `cargo-lambda` and `ziglang` from PyPI into `venv` (the one
/// `moto::ensure_venv` made) unless they are there already, and checks the binary runs.
pub fn ensure_tools(venv: &Path) -> anyhow::Result<()> {
    let wanted = [("cargo-lambda", CARGO_LAMBDA_VERSION), ("ziglang", ZIGLANG_VERSION)];
    let mut missing = Vec::new();
    for (distribution, version) in wanted {
        if installed_version(venv, distribution)?.as_deref() != Some(version) {
            missing.push(format!("{distribution}=={version}"));
        }
    }
    if !missing.is_empty() {
        println!("xtask: installing {} into {}", missing.join(", "), venv.display());
        let status = Command::new(bin_dir(venv).join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(&missing)
            .status()
            .with_context(|| format!("running pip from {}", venv.display()))?;
        if !status.success() {
            bail!("pip could not install {} from PyPI into {} ({status})", missing.join(" "), venv.display());
        }
    }
    let version = cargo_lambda(venv)?.arg("--version").output().context("running cargo-lambda --version")?;
    if !version.status.success() {
        bail!("cargo-lambda from PyPI does not run ({}):\n{}", version.status, text(&version));
    }
    Ok(())
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The Lambda functions: the crates under `functions/` (each builds a binary of its name).
fn functions(root: &Path) -> anyhow::Result<Vec<String>> {
    let dir = root.join("functions");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.path().join("Cargo.toml").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("no function crates under {}", dir.display());
    }
    Ok(names)
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

// ---------------------------------------------------------------------------------------------
// cargo xtask package

/// One function's deployment package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageReport {
    pub function: String,
    /// `arm64` or `x86_64`, as the SAM template's `Architectures` spells them.
    pub architecture: &'static str,
    pub zip_bytes: u64,
}

impl PackageReport {
    /// The size in MB (1 MB = 1,000,000 bytes), two decimals.
    pub fn megabytes(&self) -> String {
        let hundredths = (self.zip_bytes + 5_000) / 10_000;
        format!("{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

#[derive(Clone, Copy)]
struct Architecture {
    name: &'static str,
    flag: &'static str,
    triple: &'static str,
    /// ELF `e_machine`.
    elf_machine: u16,
}

const ARM64: Architecture = Architecture { name: "arm64", flag: "--arm64", triple: ARM64_TARGET, elf_machine: 0xB7 };
const X86_64: Architecture =
    Architecture { name: "x86_64", flag: "--x86-64", triple: X86_64_TARGET, elf_machine: 0x3E };

fn arm64_std_installed() -> Option<bool> {
    let output = Command::new("rustup").args(["target", "list", "--installed"]).output().ok()?;
    Some(
        output.status.success()
            && String::from_utf8_lossy(&output.stdout).lines().any(|line| line.trim() == ARM64_TARGET),
    )
}

/// arm64 (the template's architecture) when its standard library is installed or rustup can add
/// it once; otherwise x86-64, said loudly.
fn choose_architecture() -> Architecture {
    match arm64_std_installed() {
        Some(true) => return ARM64,
        None => {
            println!(
                "xtask: WARNING: rustup not found, so the {ARM64_TARGET} standard library cannot be checked or added: building x86_64"
            );
            return X86_64;
        }
        Some(false) => {}
    }
    println!("xtask: rustup target add {ARM64_TARGET} (the functions deploy on arm64)");
    match Command::new("rustup").args(["target", "add", ARM64_TARGET]).output() {
        Ok(output) if output.status.success() && arm64_std_installed() == Some(true) => ARM64,
        Ok(output) => {
            println!(
                "xtask: WARNING: rustup could not add {ARM64_TARGET} ({}): building x86_64 instead.\n{}",
                output.status,
                text(&output).trim()
            );
            X86_64
        }
        Err(error) => {
            println!("xtask: WARNING: rustup target add failed to run ({error}): building x86_64 instead");
            X86_64
        }
    }
}

fn elf_machine(path: &Path) -> anyhow::Result<u16> {
    let mut header = [0u8; 20];
    File::open(path)
        .and_then(|mut file| file.read_exact(&mut header))
        .with_context(|| format!("reading the ELF header of {}", path.display()))?;
    if &header[..4] != b"\x7fELF" {
        bail!("{} is not an ELF binary", path.display());
    }
    Ok(u16::from_le_bytes([header[18], header[19]]))
}

/// Builds every function with `cargo lambda build --release --arm64 --output-format zip` (x86-64
/// when the arm64 standard library is not installed and cannot be added) and reports each
/// `target/lambda/<function>/bootstrap.zip`.
pub fn package(root: &Path, venv: &Path) -> anyhow::Result<Vec<PackageReport>> {
    ensure_tools(venv)?;
    let functions = functions(root)?;
    let architecture = choose_architecture();
    let lambda_dir = root.join("target").join("lambda");
    for function in &functions {
        let zip = lambda_dir.join(function).join("bootstrap.zip");
        if zip.exists() {
            std::fs::remove_file(&zip).with_context(|| format!("removing the old {}", zip.display()))?;
        }
    }
    println!(
        "xtask: cargo lambda build --release {} --output-format zip ({})",
        architecture.flag,
        functions.join(", ")
    );
    let mut build = cargo_lambda(venv)?;
    build
        .current_dir(root)
        .args(["build", "--release", architecture.flag, "--output-format", "zip", "--lambda-dir"])
        .arg(&lambda_dir);
    for function in &functions {
        build.args(["--package", function]);
    }
    let status = build.status().context("running cargo-lambda build")?;
    if !status.success() {
        bail!("cargo-lambda build failed ({status}); its output is above");
    }

    let binaries = target_dir(root).join(architecture.triple).join("release");
    let mut reports = Vec::new();
    for function in &functions {
        let zip = lambda_dir.join(function).join("bootstrap.zip");
        let zip_bytes = std::fs::metadata(&zip)
            .with_context(|| format!("cargo-lambda build succeeded but left no {}", zip.display()))?
            .len();
        let binary = binaries.join(function);
        if binary.is_file() {
            let machine = elf_machine(&binary)?;
            if machine != architecture.elf_machine {
                bail!("{} is ELF machine {machine:#x}, not {}", binary.display(), architecture.name);
            }
        }
        reports.push(PackageReport { function: function.clone(), architecture: architecture.name, zip_bytes });
    }

    println!("\n{:<24} {:<8} {:>12} {:>8}  zip", "function", "arch", "bytes", "MB");
    for report in &reports {
        println!(
            "{:<24} {:<8} {:>12} {:>8}  {}",
            report.function,
            report.architecture,
            report.zip_bytes,
            report.megabytes(),
            lambda_dir.join(&report.function).join("bootstrap.zip").strip_prefix(root).unwrap_or(&lambda_dir).display()
        );
    }
    if architecture.name != ARM64.name {
        println!(
            "xtask: WARNING: these zips are x86_64; infra/template.yaml deploys on arm64. Install the {ARM64_TARGET} \
             standard library (rustup target add {ARM64_TARGET}) and package again before deploying."
        );
    }
    Ok(reports)
}

// ---------------------------------------------------------------------------------------------
// cargo xtask lambda-invoke

/// What an event must produce.
#[derive(Clone, Copy)]
enum Expect {
    /// An HTTP response with this status whose body names each of these (fields of an error
    /// payload, or of the answer).
    Status(u16, &'static [&'static str]),
    /// An HTTP response with a 2xx status.
    Success,
    /// An SQS batch response with no item failures.
    NoBatchItemFailures,
}

/// Every file in events/, in an order where each event finds what it needs (an invoice before
/// its decision, a policy before its notification, the notification's claim before the document).
const EVENTS: &[(&str, &str, Expect)] = &[
    ("webhook-receiver", "invoice-submitted.json", Expect::Status(202, &[])),
    ("webhook-receiver", "invoice-cancellation-requested.json", Expect::Status(202, &[])),
    ("webhook-receiver", "predetermination-submitted.json", Expect::Status(202, &[])),
    ("webhook-receiver", "member-check.json", Expect::Status(202, &[])),
    ("webhook-receiver", "payment-scheduled.json", Expect::Status(202, &[])),
    ("webhook-receiver", "payment-failed.json", Expect::Status(202, &[])),
    ("webhook-receiver", "payment-held.json", Expect::Status(202, &[])),
    ("webhook-receiver", "invoice-overpaid.json", Expect::Status(202, &[])),
    ("webhook-receiver", "invalid-missing-id.json", Expect::Status(400, &["invalidParams", "\"id\""])),
    ("invoice-status-poster", "sqs-invoice-submitted.json", Expect::NoBatchItemFailures),
    ("webhook-receiver", "invoice-status-decision.json", Expect::Status(202, &["decisionId"])),
    ("invoice-status-poster", "sqs-decision.json", Expect::NoBatchItemFailures),
    ("icp-query-proxy", "valid.json", Expect::Status(200, &[])),
    (
        "icp-query-proxy",
        "invalid.json",
        Expect::Status(400, &["\"claimNumber\"", "\"dateOfBirth\"", "\"vendorId\"", "\"providerId\""]),
    ),
    ("eligibility-check", "mandatory.json", Expect::Status(200, &[])),
    ("eligibility-check", "optional.json", Expect::Status(200, &[])),
    ("icare-sender", "put-policy.json", Expect::Success),
    ("icare-sender", "notification.json", Expect::Status(201, &["claimNumber"])),
    ("icare-sender", "document.json", Expect::Status(201, &["documentId"])),
];

/// The local stack's simulator credentials (`local/src/sim/*.rs`), which the functions need to
/// talk to them.
fn upstream_environment(simulators: &str, simulator_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("WEBHOOK_AUTH_HEADER", "x-hicaps-webhook-key".into()),
        ("WEBHOOK_AUTH_VALUE", "local-webhook-secret".into()),
        ("HICAPS_TOKEN_URL", format!("{simulators}/sim/hicaps/oauth/token")),
        ("HICAPS_CLIENT_ID", "local-program".into()),
        ("HICAPS_CLIENT_SECRET", "local-program-secret".into()),
        ("HICAPS_CALLBACK_HOSTS", format!("127.0.0.1:{simulator_port}")),
        ("RETRY_BASE_MILLIS", "1000".into()),
        ("ACC_BASE_URL", format!("{simulators}/sim/acc")),
        ("ACC_API_KEY", "local-acc-api-key".into()),
        ("ACC_API_KEY_HEADER", "x-api-key".into()),
        ("ICP_VENDOR_GRANTS", "local=VEND01".into()),
        ("ICP_AUDIT_HMAC_KEY", "local-icp-audit-hmac-key-for-lambda-invoke".into()),
        ("ECF_LOCATION_GRANTS", "local=*".into()),
        ("DECISION_CALLERS", "local".into()),
        ("CLAIMING_BASE_URL", format!("{simulators}/sim/claiming")),
        ("CLAIMING_CLIENT_ID", "local-claiming-client".into()),
        ("CLAIMING_CLIENT_SECRET", "local-claiming-secret".into()),
        ("ICARE_BASE_URL", format!("{simulators}/sim/icare")),
        ("ICARE_API_KEY", "local-icare-key".into()),
        ("ICARE_TIMEOUT_SECONDS", "3".into()),
        ("ICARE_RETRY_TIMEOUT_SECONDS", "10".into()),
        ("ICARE_RETRY_FIRST_SECONDS", "2".into()),
        ("ICARE_RETRY_HORIZON_SECONDS", "60".into()),
    ]
}

/// `GET path` on loopback answers 200.
pub(crate) fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn wait_until(what: &str, process: &mut Background, timeout: Duration, ready: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        process.check_running(LOG_TAIL_LINES)?;
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "{what} was not ready within {} s; output in {}:\n{}",
        timeout.as_secs(),
        process.log().display(),
        tail(process.log(), LOG_TAIL_LINES)
    )
}

/// The moto environment as a string map, and the SDK configuration it describes.
fn setting<'a>(moto_env: &'a [(&str, String)], name: &str) -> anyhow::Result<&'a str> {
    moto_env
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.as_str())
        .with_context(|| format!("the moto environment has no {name}"))
}

async fn sdk_config(moto_env: &[(&str, String)]) -> anyhow::Result<aws_config::SdkConfig> {
    let credentials = aws_sdk_sqs::config::Credentials::new(
        setting(moto_env, "AWS_ACCESS_KEY_ID")?,
        setting(moto_env, "AWS_SECRET_ACCESS_KEY")?,
        moto_env.iter().find(|(key, _)| *key == "AWS_SESSION_TOKEN").map(|(_, value)| value.clone()),
        None,
        "xtask-moto",
    );
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(shared::aws_http_client(&shared::config::Vars::from_env())?)
        .endpoint_url(setting(moto_env, "AWS_ENDPOINT_URL")?)
        .region(aws_config::Region::new(setting(moto_env, "AWS_REGION")?.to_owned()))
        .credentials_provider(credentials)
        .load()
        .await)
}

/// Where the check's state lives in moto.
struct Resources {
    work: SqsQueue,
    dlq: SqsQueue,
    icare: SqsQueue,
    icare_dlq: SqsQueue,
}

/// Creates the table and queues with the gateway's own adapters and loads the sample benefit
/// schedule and member registry (the poster adjudicates against them).
async fn create_resources(root: &Path, config: &aws_config::SdkConfig) -> anyhow::Result<Resources> {
    let table = DynamoTable::from_sdk_config(config, TABLE_NAME);
    table.ensure_exists().await.context("creating the DynamoDB table in moto")?;
    let sqs = aws_sdk_sqs::Client::new(config);
    let (work, dlq) = SqsQueue::ensure_exists(&sqs, WORK_QUEUE, WORK_VISIBILITY, MAX_RECEIVE_COUNT)
        .await
        .context("creating the work queue in moto")?;
    let (icare, icare_dlq) = SqsQueue::ensure_exists(&sqs, ICARE_QUEUE, ICARE_VISIBILITY, MAX_RECEIVE_COUNT)
        .await
        .context("creating the iCare retry queue in moto")?;
    let read = |file: &str| {
        let path = root.join("local").join("data").join(file);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let items: Vec<_> = shared::program::reference::schedule_items(&read("benefit-schedule.json")?)?
        .into_iter()
        .chain(shared::program::reference::member_items(&read("member-registry.json")?)?)
        .collect();
    for item in &items {
        table.put(item, Condition::Always).await.context("loading reference data into moto")?;
    }
    Ok(Resources { work, dlq, icare, icare_dlq })
}

/// `cargo lambda invoke FUNCTION --data-file FILE`; the function's answer as JSON.
fn invoke(venv: &Path, root: &Path, port: u16, function: &str, file: &Path) -> anyhow::Result<Value> {
    let output = cargo_lambda(venv)?
        .current_dir(root)
        .args([
            "invoke",
            function,
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
            "--output-format",
            "json",
        ])
        .arg("--data-file")
        .arg(file)
        .output()
        .context("running cargo-lambda invoke")?;
    if !output.status.success() {
        bail!(
            "cargo-lambda invoke {function} --data-file {} failed ({}):\n{}",
            file.display(),
            output.status,
            text(&output)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).with_context(|| {
        format!("cargo-lambda invoke {function} --data-file {} printed no JSON:\n{}", file.display(), text(&output))
    })
}

/// Checks one answer; returns a short description of it.
fn check(answer: &Value, expect: Expect) -> Result<String, String> {
    match expect {
        Expect::NoBatchItemFailures => match answer.get("batchItemFailures").and_then(Value::as_array) {
            Some(failures) if failures.is_empty() => Ok("batchItemFailures: []".into()),
            _ => Err(format!("expected {{\"batchItemFailures\": []}}, got {answer}")),
        },
        Expect::Success | Expect::Status(..) => {
            let Some(status) = answer.get("statusCode").and_then(Value::as_u64) else {
                return Err(format!("expected an HTTP response, got {answer}"));
            };
            let body = answer.get("body").and_then(Value::as_str).unwrap_or_default();
            match expect {
                Expect::Status(wanted, names) => {
                    if status != u64::from(wanted) {
                        return Err(format!("expected {wanted}, got {status}: {body}"));
                    }
                    if let Some(missing) = names.iter().find(|name| !body.contains(*name)) {
                        return Err(format!("expected the body to name {missing}: {body}"));
                    }
                }
                _ if !(200..300).contains(&status) => return Err(format!("expected 2xx, got {status}: {body}")),
                _ => {}
            }
            Ok(if body.is_empty() { status.to_string() } else { format!("{status} {}", abbreviate(body)) })
        }
    }
}

/// The body on one line, cut at 100 characters.
fn abbreviate(body: &str) -> String {
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = body.chars().take(100).collect();
    if short.len() < body.len() {
        short.push('…');
    }
    short
}

/// Runs the README's cargo-lambda steps for real: creates the table and queues in moto (given by
/// `moto_env`, the AWS_* variables of a running moto server), starts the local stack (embedded,
/// on a free port) only for its upstream simulators, starts `cargo lambda watch` with the
/// functions' environment, invokes every file in events/ with `cargo lambda invoke` and checks
/// each answer, and that the receiver really queued to SQS. Stops what it started.
pub fn invoke_check(root: &Path, venv: &Path, moto_env: &[(&str, String)]) -> anyhow::Result<()> {
    ensure_tools(venv)?;
    let functions = functions(root)?;
    for function in &functions {
        if !EVENTS.iter().any(|(f, _, _)| f == function) {
            bail!("functions/{function} has no event in the lambda-invoke check (xtask/src/lambda.rs EVENTS)");
        }
    }
    for (function, file, _) in EVENTS {
        let path = root.join("events").join(function).join(file);
        if !path.is_file() {
            bail!("{} is missing", path.display());
        }
    }

    // Debug builds first, so neither the stack nor watch's first `cargo run` compiles.
    println!(
        "xtask: cargo build -p local {}",
        functions.iter().map(|f| format!("-p {f}")).collect::<Vec<_>>().join(" ")
    );
    let mut build = cargo();
    build.current_dir(root).args(["build", "-p", "local"]);
    for function in &functions {
        build.args(["-p", function]);
    }
    let status = build.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of the local stack and the functions failed ({status})");
    }

    let logs = root.join("target").join("lambda-invoke");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    // The local stack, embedded (no AWS_ENDPOINT_URL), serves the four upstream simulators.
    let stack_port = free_port()?;
    let mut stack_command = Command::new(target_dir(root).join("debug").join("local"));
    stack_command.current_dir(root).env("PORT", stack_port.to_string()).env_remove("AWS_ENDPOINT_URL");
    let mut stack =
        Background::spawn_group("the local stack (target/debug/local)", stack_command, logs.join("local.log"))?;
    wait_until("the local stack", &mut stack, Duration::from_secs(60), || http_ok(stack_port, "/health"))?;
    let simulators = format!("http://127.0.0.1:{stack_port}");
    println!("xtask: local stack simulators on {simulators}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let config = runtime.block_on(sdk_config(moto_env))?;
    let resources = runtime.block_on(create_resources(root, &config))?;
    println!(
        "xtask: created table {TABLE_NAME}, queues {}, {} and {} in moto",
        resources.work.url(),
        resources.dlq.url(),
        resources.icare.url()
    );

    let mut environment: Vec<(&str, String)> = moto_env.to_vec();
    environment.extend([
        ("TABLE_NAME", TABLE_NAME.to_owned()),
        ("QUEUE_URL", resources.work.url().to_owned()),
        ("DLQ_URL", resources.dlq.url().to_owned()),
        ("ICARE_QUEUE_URL", resources.icare.url().to_owned()),
        ("ICARE_DLQ_URL", resources.icare_dlq.url().to_owned()),
        ("MAX_RECEIVE_COUNT", MAX_RECEIVE_COUNT.to_string()),
    ]);
    environment.extend(upstream_environment(&simulators, stack_port));
    if std::env::var_os("RUST_LOG").is_none() {
        environment.push(("RUST_LOG", "info".into()));
    }

    let watch_port = free_port()?;
    let mut watch_command = cargo_lambda(venv)?;
    watch_command
        .current_dir(root)
        .args(["watch", "--ignore-changes", "--invoke-address", "127.0.0.1", "--invoke-port", &watch_port.to_string()])
        .args(["--timeout", &INVOKE_TIMEOUT_SECONDS.to_string()])
        .envs(environment.iter().map(|(name, value)| (*name, value.as_str())));
    println!("xtask: cargo lambda watch on 127.0.0.1:{watch_port} (log: {})", logs.join("watch.log").display());
    let mut watch = Background::spawn_group("cargo-lambda watch", watch_command, logs.join("watch.log"))?;
    wait_until("cargo lambda watch", &mut watch, WATCH_START_TIMEOUT, || {
        TcpStream::connect(("127.0.0.1", watch_port)).is_ok()
    })?;

    let mut failures = Vec::new();
    let mut deferred = Vec::new();
    for (function, file, expect) in EVENTS {
        let relative = Path::new("events").join(function).join(file);
        let queued_before =
            runtime.block_on(resources.work.depth()).context("reading the work queue's length in moto")?;
        let deferred_before = occurrences(watch.log(), DEFERRED_FOR_TIME);
        let answer = invoke(venv, root, watch_port, function, &relative);
        watch.check_running(LOG_TAIL_LINES)?;
        let outcome = match answer {
            Err(error) => Outcome::Failed(format!("{error:#}")),
            Ok(answer) => match check(&answer, *expect) {
                Ok(said) if *function == "webhook-receiver" => {
                    // A webhook or decision the receiver accepted is on the work queue; nothing else is.
                    let queued =
                        runtime.block_on(resources.work.depth()).context("reading the work queue's length in moto")?;
                    let wanted = usize::from(matches!(expect, Expect::Status(202, _)));
                    if queued == queued_before + wanted {
                        Outcome::Ok(format!("{said}; work queue {queued_before} -> {queued}"))
                    } else {
                        Outcome::Failed(format!(
                            "{said}, but the work queue went from {queued_before} to {queued} messages (wanted +{wanted})"
                        ))
                    }
                }
                Ok(said) => Outcome::Ok(said),
                Err(problem) => {
                    let retried = answer.get("batchItemFailures").and_then(Value::as_array).map_or(0, Vec::len);
                    if matches!(expect, Expect::NoBatchItemFailures)
                        && retried > 0
                        && wait_for_occurrences(watch.log(), DEFERRED_FOR_TIME, deferred_before + retried)
                    {
                        Outcome::Deferred(format!(
                            "{answer}: the poster deferred its HICAPS post (\"{DEFERRED_FOR_TIME}\")"
                        ))
                    } else {
                        Outcome::Failed(problem)
                    }
                }
            },
        };
        let shown = relative.display();
        match outcome {
            Outcome::Ok(said) => println!("  ok    cargo lambda invoke {function} --data-file {shown}: {said}"),
            Outcome::Deferred(said) => {
                println!("  ok*   cargo lambda invoke {function} --data-file {shown}: {said}");
                deferred.push(shown.to_string());
            }
            Outcome::Failed(error) => {
                println!("  FAIL  cargo lambda invoke {function} --data-file {shown}: {error}");
                failures.push(shown.to_string());
            }
        }
    }
    let dead_letters =
        runtime.block_on(resources.dlq.depth()).context("reading the dead-letter queue's length in moto")?;
    println!("xtask: the dead-letter queue holds {dead_letters} message(s)");
    drop(watch);
    drop(stack);
    if !failures.is_empty() {
        bail!(
            "{} of {} events did not get the answer they should ({}); function logs in {}",
            failures.len(),
            EVENTS.len(),
            failures.join(", "),
            logs.join("watch.log").display()
        );
    }
    println!("xtask: all {} events answered as expected through cargo lambda watch", EVENTS.len());
    if !deferred.is_empty() {
        println!(
            "xtask: ok* ({}): cargo lambda watch hands every invocation `Lambda-Runtime-Deadline-Ms: 600000`, a fixed \
             number rather than now + the timeout, so the poster sees its deadline in 1970 and retries the record \
             instead of posting to HICAPS. Everything before the post ran (the decision above found the invoice). \
             In Lambda, and once the poster treats a past deadline as unknown, the answer is {{\"batchItemFailures\": []}}.",
            deferred.join(", ")
        );
    }
    Ok(())
}

/// What the poster logs when it retries a record rather than post to HICAPS without time for it
/// (functions/invoice-status-poster/src/handlers.rs).
const DEFERRED_FOR_TIME: &str = "too little time left in this invocation";

enum Outcome {
    Ok(String),
    /// The poster's retry for cargo lambda watch's fixed deadline (see `invoke_check`).
    Deferred(String),
    Failed(String),
}

fn occurrences(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log).map_or(0, |content| content.matches(needle).count())
}

/// Whether `log` says `needle` at least `count` times within two seconds (the watch copies the
/// function's output to its log a moment after the answer).
fn wait_for_occurrences(log: &Path, needle: &str, count: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if occurrences(log, needle) >= count {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megabytes_round_to_hundredths() {
        let report = |zip_bytes| PackageReport { function: "f".into(), architecture: "arm64", zip_bytes };
        assert_eq!(report(0).megabytes(), "0.00");
        assert_eq!(report(4_999).megabytes(), "0.00");
        assert_eq!(report(5_000).megabytes(), "0.01");
        assert_eq!(report(3_456_789).megabytes(), "3.46");
        assert_eq!(report(12_000_000).megabytes(), "12.00");
    }

    #[test]
    fn answers_are_checked() {
        let http = |status: u64, body: &str| serde_json::json!({"statusCode": status, "body": body});
        assert!(check(&http(202, ""), Expect::Status(202, &[])).is_ok());
        assert!(check(&http(500, ""), Expect::Status(202, &[])).is_err());
        assert!(check(&http(400, r#"{"invalidParams":[{"name":"id"}]}"#), Expect::Status(400, &["\"id\""])).is_ok());
        assert!(check(&http(400, r#"{"invalidParams":[]}"#), Expect::Status(400, &["\"id\""])).is_err());
        assert!(check(&http(201, "{}"), Expect::Success).is_ok());
        assert!(check(&http(404, "{}"), Expect::Success).is_err());
        assert!(check(&serde_json::json!({"batchItemFailures": []}), Expect::NoBatchItemFailures).is_ok());
        let failed = serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m1"}]});
        assert!(check(&failed, Expect::NoBatchItemFailures).is_err());
        assert!(check(&http(200, ""), Expect::NoBatchItemFailures).is_err());
    }

    #[test]
    fn every_event_file_is_checked() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut on_disk = Vec::new();
        for function in std::fs::read_dir(root.join("events")).expect("events/").flatten().filter(|e| e.path().is_dir())
        {
            for file in std::fs::read_dir(function.path()).expect("dir").flatten() {
                if file.path().extension().is_some_and(|e| e == "json") {
                    on_disk.push(format!(
                        "{}/{}",
                        function.file_name().to_string_lossy(),
                        file.file_name().to_string_lossy()
                    ));
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = EVENTS.iter().map(|(f, file, _)| format!("{f}/{file}")).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }
}
