//! 2. Load: `target/release/local` on a free loopback port; [`LOAD_WEBHOOKS`] HICAPS webhooks over
//!    [`LOAD_CONNECTIONS`] keep-alive connections, every tenth a repeated delivery of an earlier
//!    one (same id, same body), while the poster drains the queue into the HICAPS simulator. Then
//!    every distinct webhook must have exactly one status post and nothing may be dead-lettered.
//!    Also the release stack under poisonous webhooks, and the cross-check with oha or wrk
//!    ([`super::oha`]).

use super::http1::{Head, find, http_request, http_request_with};
use super::oha::cross_check;
use super::procfs::{cpu_ticks, peak_rss_kib, ticks_per_second};
use super::report::{Figure, Goal, Section, Unit, percentile};
use super::webhooks::{reidentify, run_seed, splitmix, webhook, webhook_template};
use super::{
    DRAIN_TIMEOUT, LOAD_CONNECTIONS, LOAD_MAX_P99_MS, LOAD_MIN_ACKS_PER_SECOND, LOAD_REPEAT_EVERY, LOAD_REPEAT_WINDOW,
    LOAD_RUNS, LOAD_WEBHOOKS, LOG_TAIL_LINES, QUIET_PERIOD, WEBHOOK_HEADER, WEBHOOK_SECRET, cost, start_stack,
};
use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one load run sends: the distinct webhooks and the order of deliveries (indices into them).
pub(super) struct Plan {
    requests: Vec<Vec<u8>>,
    pub(super) bodies: Vec<String>,
    invoice_ids: Vec<String>,
    order: Vec<usize>,
}

/// Which distinct webhook each delivery carries: every `repeat_every`-th repeats one of the last
/// `window` distinct webhooks (pseudo-random, from `seed`). Returns (order, distinct count).
fn delivery_order(deliveries: usize, repeat_every: usize, window: usize, seed: u64) -> (Vec<usize>, usize) {
    let mut order = Vec::with_capacity(deliveries);
    let mut distinct = 0usize;
    let mut state = seed;
    for position in 0..deliveries {
        if position % repeat_every == repeat_every - 1 && distinct > 0 {
            state = splitmix(state);
            let span = distinct.min(window);
            order.push(distinct - 1 - (state as usize % span));
        } else {
            order.push(distinct);
            distinct += 1;
        }
    }
    (order, distinct)
}

impl Plan {
    pub(super) fn new(template: &Value, port: u16, seed: u64) -> Self {
        let (order, distinct) = delivery_order(LOAD_WEBHOOKS, LOAD_REPEAT_EVERY, LOAD_REPEAT_WINDOW, seed);
        let mut requests = Vec::with_capacity(distinct);
        let mut bodies = Vec::with_capacity(distinct);
        let mut invoice_ids = Vec::with_capacity(distinct);
        for n in 0..distinct {
            let (body, invoice_id) = webhook(template, seed, n as u64, port);
            let mut request = format!(
                "POST /hicaps/webhooks HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
                 {WEBHOOK_HEADER}: {WEBHOOK_SECRET}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(body.as_bytes());
            requests.push(request);
            bodies.push(body);
            invoice_ids.push(invoice_id);
        }
        Self { requests, bodies, invoice_ids, order }
    }
}

/// One delivery's outcome.
#[derive(Clone, Copy)]
struct Sent {
    webhook: usize,
    status: u16,
    nanos: u64,
}

struct Driven {
    started: Instant,
    sent: Vec<Sent>,
    wall: Duration,
    generator_cpu_seconds: f64,
}

/// Sends the plan over `connections` keep-alive connections, each taking the next delivery as
/// soon as its previous one is answered (a closed loop, like oha and wrk). All connections are
/// tasks on one thread: a blocking thread per connection (as before) spent the cores the stack
/// needs on 64 threads' context switches, and their wake-ups showed in the latencies.
fn drive(port: u16, plan: &Arc<Plan>, connections: usize) -> anyhow::Result<Driven> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let ticks = ticks_per_second();
    let cpu_before = cpu_ticks("self")?;
    let started = Instant::now();
    let parts = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..connections {
            tasks.spawn(drive_connection(
                port,
                Arc::clone(plan),
                Arc::clone(&next),
                plan.order.len() / connections + 16,
            ));
        }
        let mut parts = Vec::with_capacity(connections);
        while let Some(part) = tasks.join_next().await {
            parts.push(part.map_err(|_| anyhow!("a load generator task panicked"))??);
        }
        anyhow::Ok(parts)
    })?;
    let cpu_after = cpu_ticks("self")?;
    let mut sent = Vec::with_capacity(LOAD_WEBHOOKS);
    let mut finished = started;
    for (part, last) in parts {
        sent.extend(part);
        finished = finished.max(last);
    }
    Ok(Driven {
        started,
        sent,
        wall: finished - started,
        generator_cpu_seconds: (cpu_after - cpu_before) as f64 / ticks,
    })
}

/// One connection of [`drive`]: (what it sent, when its last answer arrived).
async fn drive_connection(
    port: u16,
    plan: Arc<Plan>,
    next: Arc<AtomicUsize>,
    expected: usize,
) -> anyhow::Result<(Vec<Sent>, Instant)> {
    use tokio::io::AsyncWriteExt;
    let connect = || async move {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        anyhow::Ok(stream)
    };
    let mut stream = connect().await?;
    let mut buffer = Vec::with_capacity(4096);
    let mut sent = Vec::with_capacity(expected);
    let mut last = Instant::now();
    loop {
        let position = next.fetch_add(1, Ordering::Relaxed);
        let Some(&webhook) = plan.order.get(position) else { break };
        let begun = Instant::now();
        let exchange = async {
            stream.write_all(&plan.requests[webhook]).await?;
            read_answer(&mut stream, &mut buffer).await
        };
        let answer = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .unwrap_or_else(|_| Err(anyhow!("no answer in 30 s")));
        last = Instant::now();
        let nanos = (last - begun).as_nanos() as u64;
        match answer {
            Ok(head) => {
                sent.push(Sent { webhook, status: head.status(), nanos });
                if head.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                    stream = connect().await?;
                    buffer.clear();
                }
            }
            Err(_) => {
                sent.push(Sent { webhook, status: 0, nanos });
                stream = connect().await?;
                buffer.clear();
            }
        }
    }
    Ok((sent, last))
}

/// Reads one answer (head and Content-Length body, which is all the receiver sends) from `stream`;
/// `buffer` holds bytes read past the previous answer.
async fn read_answer(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<Head> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(position) = find(buffer, "\r\n\r\n") {
            let head = Head::parse(&buffer[..position])?;
            if head.header("transfer-encoding").is_some() {
                bail!("a chunked answer, where the receiver sends a Content-Length");
            }
            let end = position + 4 + head.header("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
            while buffer.len() < end {
                let read = stream.read(&mut chunk).await?;
                if read == 0 {
                    bail!("connection closed inside a body");
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            buffer.drain(..end);
            return Ok(head);
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            bail!("connection closed before an answer");
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// The callbacks the HICAPS simulator received: (kind, reference, status) each.
fn simulator_posts(port: u16) -> anyhow::Result<Vec<(String, String, u16)>> {
    let (status, body) = http_request(port, "GET", "/sim/hicaps/posts", None, Duration::from_secs(60))?;
    if status != 200 {
        bail!("GET /sim/hicaps/posts answered {status}");
    }
    let posts: Value = serde_json::from_slice(&body).context("GET /sim/hicaps/posts is not JSON")?;
    Ok(posts
        .as_array()
        .map(|posts| {
            posts
                .iter()
                .map(|post| {
                    (
                        post["kind"].as_str().unwrap_or_default().to_owned(),
                        post["reference"].as_str().unwrap_or_default().to_owned(),
                        post["status"].as_u64().unwrap_or_default() as u16,
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Depths of the local stack's queues, from `GET /local/queues` (see the report: the endpoint
/// this wants), as (work visible + in flight, dead-letter) when the stack has it.
fn queue_depths(port: u16) -> Option<(u64, u64)> {
    let (status, body) = http_request(port, "GET", "/local/queues", None, Duration::from_secs(10)).ok()?;
    if status != 200 {
        return None;
    }
    let depths: Value = serde_json::from_slice(&body).ok()?;
    let count = |queue: &str| depths[queue]["messages"].as_u64();
    Some((count("work")?, count("workDlq")?))
}

struct LoadRun {
    acks_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    not_acknowledged: usize,
    acknowledged_distinct: usize,
    missing: usize,
    posted_twice: usize,
    unexpected: usize,
    webhook_errors: usize,
    dead_lettered: usize,
    retries_logged: usize,
    flagged_changed: usize,
    dlq_depth: Option<u64>,
    /// From the first delivery until every acknowledged webhook's status was posted.
    posted_seconds: f64,
    /// Until, besides, the work queue was empty: repeats that met a held lock wait for it to lapse.
    drained_seconds: f64,
    generator_cores: f64,
    stack_cpu_ms_per_webhook: f64,
    stack_rss_kib: u64,
    statuses: String,
    deliveries: usize,
    /// `GET /local/usage` once drained: what the run would be billed in AWS.
    usage: Option<Value>,
}

fn load_run(root: &Path, work: &Path, template: &Value, run: usize) -> anyhow::Result<LoadRun> {
    let log = work.join(format!("load-{run}-local.log"));
    let (mut stack, port) = start_stack(root, log.clone())?;
    let pid = stack.pid().to_string();
    let plan = Arc::new(Plan::new(template, port, run_seed()));
    let ticks = ticks_per_second();
    let stack_cpu_before = cpu_ticks(&pid)?;
    let driven = drive(port, &plan, LOAD_CONNECTIONS)?;
    stack.check_running(LOG_TAIL_LINES)?;

    let mut latencies: Vec<u64> = driven.sent.iter().filter(|s| s.status == 202).map(|s| s.nanos).collect();
    latencies.sort_unstable();
    let acknowledged: HashSet<usize> = driven.sent.iter().filter(|s| s.status == 202).map(|s| s.webhook).collect();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for sent in &driven.sent {
        *statuses.entry(sent.status).or_default() += 1;
    }
    let mut statuses: Vec<(u16, usize)> = statuses.into_iter().collect();
    statuses.sort_unstable();
    let statuses = statuses
        .iter()
        .map(|(s, n)| format!("{n} x {}", if *s == 0 { "no answer".to_owned() } else { s.to_string() }))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "  run {run}/{LOAD_RUNS}: {} deliveries in {:.2} s, {statuses}; waiting for the poster",
        driven.sent.len(),
        driven.wall.as_secs_f64()
    );

    // Wait until every acknowledged webhook's status is posted (and, with /local/queues, the work
    // queue is empty), then for a quiet period in which nothing more is posted.
    let wanted: HashSet<&str> = acknowledged.iter().map(|i| plan.invoice_ids[*i].as_str()).collect();
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut drained_at = None;
    let mut posted_at = None;
    let posts = loop {
        stack.check_running(LOG_TAIL_LINES)?;
        let posts = simulator_posts(port)?;
        let posted: HashSet<&str> =
            posts.iter().filter(|(kind, _, _)| kind == "invoice-status").map(|(_, r, _)| r.as_str()).collect();
        let all_posted = wanted.iter().all(|id| posted.contains(id));
        if all_posted {
            posted_at.get_or_insert_with(Instant::now);
        }
        let queue_empty = queue_depths(port).is_none_or(|(work, _)| work == 0);
        if all_posted && queue_empty {
            let at = *drained_at.get_or_insert_with(Instant::now);
            if at.elapsed() >= QUIET_PERIOD {
                break posts;
            }
        } else {
            drained_at = None;
        }
        if Instant::now() > deadline {
            let missing = wanted.iter().filter(|id| !posted.contains(*id)).count();
            bail!(
                "after {} s the poster had not posted {missing} acknowledged webhooks' statuses (log: {})",
                DRAIN_TIMEOUT.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(1_000));
    };
    let since_start = |at: Option<Instant>| at.map(|at| (at - driven.started).as_secs_f64()).unwrap_or(f64::NAN);
    let (posted_seconds, drained_seconds) = (since_start(posted_at), since_start(drained_at));
    let stack_cpu_seconds = (cpu_ticks(&pid)? - stack_cpu_before) as f64 / ticks;
    let stack_rss_kib = peak_rss_kib(stack.pid())?;
    let dlq_depth = queue_depths(port).map(|(_, dlq)| dlq);
    let usage = http_request(port, "GET", "/local/usage", None, Duration::from_secs(10))
        .ok()
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, body)| serde_json::from_slice::<Value>(&body).ok());

    let ours: HashSet<&str> = plan.invoice_ids.iter().map(String::as_str).collect();
    let mut per_invoice: HashMap<&str, usize> = HashMap::new();
    let mut unexpected = 0;
    let mut webhook_errors = 0;
    for (kind, reference, _) in &posts {
        match kind.as_str() {
            "invoice-status" if ours.contains(reference.as_str()) => {
                *per_invoice.entry(reference.as_str()).or_default() += 1
            }
            "webhook-error" => webhook_errors += 1,
            _ => unexpected += 1,
        }
    }
    let missing = wanted.iter().filter(|id| !per_invoice.contains_key(*id)).count();
    let posted_twice = per_invoice.values().filter(|n| **n > 1).count();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let dead_lettered = log_text.lines().filter(|l| l.contains("dead-lettered")).count();
    let retries_logged = log_text.lines().filter(|l| l.contains("will retry")).count();
    let flagged_changed = log_text.lines().filter(|l| l.contains("payload changed")).count();
    drop(stack);

    let processed = per_invoice.len().max(1);
    Ok(LoadRun {
        acks_per_second: latencies.len() as f64 / driven.wall.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50) as f64 / 1e6,
        p99_ms: percentile(&latencies, 0.99) as f64 / 1e6,
        max_ms: latencies.last().copied().unwrap_or_default() as f64 / 1e6,
        not_acknowledged: driven.sent.iter().filter(|s| s.status != 202).count(),
        acknowledged_distinct: acknowledged.len(),
        missing,
        posted_twice,
        unexpected,
        webhook_errors,
        dead_lettered,
        retries_logged,
        flagged_changed,
        dlq_depth,
        posted_seconds,
        drained_seconds,
        generator_cores: driven.generator_cpu_seconds / driven.wall.as_secs_f64(),
        stack_cpu_ms_per_webhook: stack_cpu_seconds * 1e3 / processed as f64,
        stack_rss_kib,
        statuses,
        deliveries: driven.sent.len(),
        usage,
    })
}

pub(super) fn load(root: &Path, work: &Path, costs: &mut cost::Inputs) -> anyhow::Result<Section> {
    let mut section = Section::new("Load through the local stack");
    let template = webhook_template(root)?;
    section.commands.push(format!(
        "target/release/local   # PORT=<free port>, embedded store and queues, poster and HICAPS simulator in process\n\
         # cargo xtask bench's generator: {LOAD_WEBHOOKS} x POST /hicaps/webhooks, {LOAD_CONNECTIONS} keep-alive connections, \
         every {LOAD_REPEAT_EVERY}th a repeated delivery; x{LOAD_RUNS}, a fresh stack each run"
    ));
    let mut runs = Vec::new();
    for run in 1..=LOAD_RUNS {
        let result = load_run(root, work, &template, run)?;
        println!(
            "  run {run}/{LOAD_RUNS}: {:.0} acks/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} distinct acknowledged, {} missing, {} posted twice, all posted after {:.1} s, queue empty after {:.1} s",
            result.acks_per_second,
            result.p50_ms,
            result.p99_ms,
            result.max_ms,
            result.acknowledged_distinct,
            result.missing,
            result.posted_twice,
            result.posted_seconds,
            result.drained_seconds
        );
        if let Some(report) = result.usage.clone() {
            costs.loads.push(cost::LoadUsage {
                report,
                webhooks: result.acknowledged_distinct as f64,
                deliveries: result.deliveries as f64,
            });
        }
        runs.push(result);
    }
    let column = |f: fn(&LoadRun) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    section.figures.extend([
        Figure::new(
            "Load: acknowledgements per second",
            Unit::PerSecond,
            column(|r| r.acks_per_second),
            Some(Goal::AtLeast(LOAD_MIN_ACKS_PER_SECOND)),
        ),
        Figure::new("Load: acknowledgement latency p50", Unit::Millis, column(|r| r.p50_ms), None),
        Figure::new(
            "Load: acknowledgement latency p99",
            Unit::Millis,
            column(|r| r.p99_ms),
            Some(Goal::AtMost(LOAD_MAX_P99_MS)),
        ),
        Figure::new("Load: acknowledgement latency max", Unit::Millis, column(|r| r.max_ms), None),
        Figure::new("Load: deliveries not acknowledged 202", Unit::Count, column(|r| r.not_acknowledged as f64), None),
        Figure::new(
            "Load: acknowledged webhooks never posted (lost)",
            Unit::Count,
            column(|r| r.missing as f64),
            Some(Goal::Exactly(0.0)),
        ),
        Figure::new(
            "Load: webhooks posted more than once",
            Unit::Count,
            column(|r| r.posted_twice as f64),
            Some(Goal::Exactly(0.0)),
        ),
        Figure::new(
            "Load: dead-lettered (log lines `dead-lettered` + `lp:webhook-error` posts)",
            Unit::Count,
            column(|r| (r.dead_lettered + r.webhook_errors) as f64),
            Some(Goal::Exactly(0.0)),
        ),
        Figure::new(
            "Load: repeated deliveries taken for changed payloads (log lines `payload changed`)",
            Unit::Count,
            column(|r| r.flagged_changed as f64),
            Some(Goal::Exactly(0.0)),
        ),
        Figure::new(
            "Load: posts not for a webhook we sent",
            Unit::Count,
            column(|r| r.unexpected as f64),
            Some(Goal::Exactly(0.0)),
        ),
        Figure::new(
            "Load: every status posted, after the first delivery (polled each second)",
            Unit::Millis,
            column(|r| r.posted_seconds * 1e3),
            None,
        ),
        Figure::new(
            "Load: work queue empty, after the first delivery",
            Unit::Millis,
            column(|r| r.drained_seconds * 1e3),
            None,
        ),
        Figure::new(
            "Load: stack CPU per webhook (receiver + poster + simulators)",
            Unit::Millis,
            column(|r| r.stack_cpu_ms_per_webhook),
            None,
        ),
        Figure::new("Load: the load generator's own CPU", Unit::Cores, column(|r| r.generator_cores), None),
        Figure::new(
            "Memory: local stack peak RSS during the load run",
            Unit::Kib,
            column(|r| r.stack_rss_kib as f64),
            None,
        ),
    ]);
    if runs.iter().any(|r| r.dlq_depth.is_some()) {
        section.figures.push(Figure::new(
            "Load: dead-letter queue depth at the end (GET /local/queues)",
            Unit::Count,
            runs.iter().filter_map(|r| r.dlq_depth.map(|d| d as f64)).collect(),
            Some(Goal::Exactly(0.0)),
        ));
    } else {
        section.notes.push(
            "The local stack has no endpoint for its queues' depths, so the dead-letter queue is checked indirectly: the \
             poster logs `dead-lettered` and calls the webhook's `lp:webhook-error` link (every webhook here has one) whenever \
             it dead-letters, and the run waits until every acknowledged webhook has its status post and no post arrives for \
             5 s. A message redriven by the queue itself (8 receives) would not show; `GET /local/queues` (work and DLQ \
             depths) would make this direct, and the bench uses it as soon as the stack answers it."
                .into(),
        );
    }
    for (index, run) in runs.iter().enumerate() {
        section.notes.push(format!(
            "Run {}: {} distinct webhooks acknowledged; answers {}; {} `will retry` log lines (repeats that met the first \
             delivery's lock, back when it lapses).",
            index + 1,
            run.acknowledged_distinct,
            run.statuses,
            run.retries_logged
        ));
    }
    section.notes.push(format!(
        "Each run: {} distinct copies of the spec's Example Invoice Submitted Webhook (own webhook, invoice and claim ids; links \
         to the stack's HICAPS simulator), {} deliveries: every {LOAD_REPEAT_EVERY}th repeats, same id and body, one of the \
         previous {LOAD_REPEAT_WINDOW} webhooks (some still queued or being processed, some done). Latency is from writing the \
         request to reading the whole answer, on loopback; acknowledgements per second count 202s over the time from the \
         first request to the last answer. The generator shares the machine's cores with the stack.",
        LOAD_WEBHOOKS - LOAD_WEBHOOKS / LOAD_REPEAT_EVERY,
        LOAD_WEBHOOKS
    ));
    section.notes.push(
        "Why not oha alone: its `-Z` takes a random line of a file for each request, so it cannot send exactly these webhooks \
         with exactly 10% repeats, nor say which it sent; so the generator is here, and oha (or wrk) runs once more below as \
         a cross-check of the acknowledgement figures."
            .into(),
    );
    match poison_check(root, work, &template) {
        Ok(failures) => {
            section.figures.push(Figure::new(
                "Release stack: 4 poisonous webhooks, then an ordinary one, not answered as the spec says",
                Unit::Count,
                vec![failures.len() as f64],
                Some(Goal::Exactly(0.0)),
            ));
            section.notes.extend(failures.into_iter().map(|failure| format!("Poison check: {failure}")));
        }
        Err(error) => section.failures.push(format!("poison check: {error:#}")),
    }
    match cross_check(root, work, &template) {
        Ok(notes) => section.notes.extend(notes.0),
        Err(error) => section.notes.push(format!("Cross-check not run: {error:#}")),
    }
    Ok(section)
}

/// The release-profile stack under poisonous webhooks (issue 14; `tests/hicaps_e2e.rs` runs the
/// same on the test build): each claim answered `rejected` naming the field, and an ordinary
/// webhook still adjudicated afterwards. Returns what went otherwise.
fn poison_check(root: &Path, work: &Path, template: &Value) -> anyhow::Result<Vec<String>> {
    const SETTLE: Duration = Duration::from_secs(30);
    let (mut stack, port) = start_stack(root, work.join("poison-local.log"))?;
    let poisons = [
        json!({"quantity": 100_000_000_000_000_000u64, "unitPrice": 10_000_000_000_000u64}),
        json!({"quantity": "Zebediah-77"}),
        json!({"unitPrice": -50}),
        json!({"quantity": 1e300, "unitPrice": {"nested": [1, 2, 3]}}),
    ];
    let seed = run_seed();
    let mut wanted = Vec::new();
    let mut failures = Vec::new();
    for (n, claim) in poisons.iter().chain(std::iter::once(&json!({}))).enumerate() {
        let mut webhook = template.clone();
        let invoice_id = reidentify(&mut webhook, seed, n as u64, port);
        for (name, value) in claim.as_object().into_iter().flatten() {
            webhook["data"]["claims"][0][name] = value.clone();
        }
        let body = webhook.to_string();
        let (status, _) = http_request_with(
            port,
            "POST",
            "/hicaps/webhooks",
            &[(WEBHOOK_HEADER, WEBHOOK_SECRET)],
            Some(body.as_bytes()),
            SETTLE,
        )?;
        if status != 202 {
            failures.push(format!("webhook {n} answered {status}"));
        }
        wanted
            .push((invoice_id, if claim.as_object().is_some_and(|c| c.is_empty()) { "approved" } else { "rejected" }));
    }
    let deadline = Instant::now() + SETTLE;
    for (invoice_id, state) in &wanted {
        let posted = loop {
            stack.check_running(LOG_TAIL_LINES)?;
            let (_, body) =
                http_request(port, "GET", &format!("/sim/hicaps/posts?invoiceId={invoice_id}"), None, SETTLE)?;
            let posts: Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some(post) = posts.as_array().and_then(|posts| posts.first()) {
                break Some(post["body"]["claimStatuses"][0]["state"].as_str().unwrap_or_default().to_owned());
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        match posted {
            Some(posted) if posted == *state => {}
            Some(posted) => failures.push(format!("invoice {invoice_id}: {posted}, wanted {state}")),
            None => failures.push(format!("invoice {invoice_id}: no status posted in {} s", SETTLE.as_secs())),
        }
    }
    stack.check_running(LOG_TAIL_LINES)?;
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::delivery_order;
    use std::collections::HashSet;

    #[test]
    fn a_tenth_of_deliveries_repeat_earlier_webhooks() {
        let (order, distinct) = delivery_order(50_000, 10, 2_000, 7);
        assert_eq!(order.len(), 50_000);
        assert_eq!(distinct, 45_000);
        let mut seen = HashSet::new();
        let mut repeats = 0;
        for (position, webhook) in order.iter().enumerate() {
            if !seen.insert(*webhook) {
                repeats += 1;
                assert_eq!(position % 10, 9);
            }
        }
        assert_eq!(repeats, 5_000);
        assert_eq!(seen.len(), 45_000);
    }
}
