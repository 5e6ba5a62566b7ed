//! 3. Cold start: the Lambda Runtime API emulator ([`super::emulator`]) starts each function's
//!    release binary with its Lambda environment (moto for DynamoDB and SQS, through
//!    [`super::relay`], the local stack's simulators for the upstreams) and times process start ->
//!    first `next` (init) and -> first response (first invoke); then CPU per warm invocation
//!    (utime + stime from `/proc/<pid>/stat`) and peak RSS (`VmHWM`). The receiver's Python peer
//!    (xtask/peer/receiver.py, on Powertools) runs under the same emulator.

use super::emulator::{Emulator, Observed};
use super::http1::find;
use super::procfs::{cpu_nanos, cpu_ticks, peak_rss_kib, ticks_per_second};
use super::relay::{Moto, MotoWait, start_moto};
use super::report::{Figure, Goal, Section, Unit, spread};
use super::webhooks::{link_to_simulator, reidentify, run_seed, uuid};
use super::{
    COLD_STARTS, FIRST_INVOCATION_MAX_MS, FUNCTION_RSS_MAX_MIB, INIT_MAX_MS, LAMBDA_MB_PER_VCPU, LOG_TAIL_LINES,
    MAX_RECEIVE_COUNT, OTHER_WARM_INVOCATIONS, POSTER_FIRST_INVOCATION_MAX_MS, POWERTOOLS_PEER, POWERTOOLS_PEER_NAME,
    RECEIVER_CPU_MAX_MS, RECEIVER_CPU_MIN_ADVANTAGE, RECEIVER_WARM_INVOCATIONS, REGION, TEMPLATE_MEMORY_MB,
    WEBHOOK_HEADER, WEBHOOK_SECRET, cost, release_binary, start_stack,
};
use crate::process::{Background, tail};
use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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

/// The environment `function` has in Lambda (infra/template.yaml), secrets as plain values,
/// upstreams at the local stack's simulators on `simulator_port`.
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
    let mut process = Background::spawn(subject.function, command, log)?;
    let started = process.started();
    let pid = process.pid().to_string();

    let fail = |process: &mut Background, what: String| -> anyhow::Error {
        let _ = process.check_running(LOG_TAIL_LINES);
        anyhow!(
            "{}: {what}; the end of {}:\n{}",
            subject.function,
            process.log().display(),
            tail(process.log(), LOG_TAIL_LINES)
        )
    };
    let next_within = |emulator: &Emulator, process: &mut Background| -> anyhow::Result<Instant> {
        match emulator.observe(WAIT) {
            Some(Observed::Next(at)) => Ok(at),
            Some(Observed::InitError { body }) => {
                Err(fail(process, format!("init error {}", String::from_utf8_lossy(&body))))
            }
            other => Err(fail(process, format!("expected GET next, got {other:?}"))),
        }
    };
    let answer_within = |emulator: &Emulator, process: &mut Background| -> anyhow::Result<(Instant, Vec<u8>)> {
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
    // XTASK_BENCH_PERF=<dir>: `perf record` on the warm invocations, into <dir>, with call graphs
    // from frame pointers, or as XTASK_BENCH_PERF_CALL_GRAPH says (`dwarf` for a release build,
    // which has none).
    let perf = match std::env::var_os("XTASK_BENCH_PERF") {
        Some(dir) => {
            let data = Path::new(&dir).join(format!("{}-{pid}.data", subject.function));
            let call_graph = std::env::var("XTASK_BENCH_PERF_CALL_GRAPH").unwrap_or_else(|_| "fp".to_owned());
            let perf = Command::new("perf")
                .args(["record", "--call-graph", &call_graph, "-p", &pid, "-o"])
                .arg(data)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            std::thread::sleep(Duration::from_millis(500));
            Some(perf)
        }
        None => None,
    };
    let log_before = std::fs::metadata(process.log()).map_or(0, |m| m.len());
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
    let (warm_log_bytes, warm_emf_bytes) = log_bytes_since(process.log(), log_before);
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

pub(super) fn cold_start(root: &Path, venv: &Path, work: &Path, costs: &mut cost::Inputs) -> anyhow::Result<Section> {
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
                stack.check_running(LOG_TAIL_LINES)?;
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
    stack.check_running(LOG_TAIL_LINES)?;
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
         the warm invocations, divided by their number; RSS is VmHWM at the end. moto (served by granian, xtask/src/moto.rs) speaks \
         plain HTTP; in AWS a warm function reuses one connection, so the functions reach moto through a \
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

#[cfg(test)]
mod tests {
    use super::poster_event;
    use serde_json::{Value, json};

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
