//! `cargo xtask soak`, in process: the webhook receiver, the work queue, the invoice status poster
//! and a HICAPS double in one process on the embedded adapters, every port wrapped in a fault
//! injector driven by a seed (`faults`). Each seed drives its webhooks (invoices, some with a
//! cancellation, some cancelled before they arrive; each delivered up to 25 times, some copies at
//! once and some after completion) with HICAPS's retry policy, drains the system, replays the
//! dead-letter queue once, drains again and checks the invariants (`check`):
//!
//! 1. every acknowledged webhook has its effect, or was refused for good and is in the DLQ, which
//!    holds nothing else but stale letters of work done since (counted);
//! 2. no webhook's effect is posted twice with different bodies, and an identical repeat happens
//!    only to a webhook whose invocation crashed;
//! 3. no claim moves against the state machine;
//! 4. `lp:webhook-error` is called at most once per webhook id.
//!
//! A seed reproduces its run exactly. It fixes the workload and every fault decision
//! (`faults::Faults::draw`), and seeds the thread's `fastrand` (the backoff jitter). The tasks run
//! on one thread, on a current-thread runtime whose clock is paused: time moves only when every
//! task waits, straight to the next timer, and `shared::time::now` follows that clock from a fixed
//! epoch. So the visibility timeouts, the locks' lapse, HICAPS's slow answers and the invocations'
//! timeouts happen at the same virtual instants on every run and every machine, and
//! [`SeedReport::fingerprint`] (a digest of every post, in order, with its virtual time) is the
//! same. The price: CPU work takes no virtual time, so races that need a slow machine are left to
//! the crash run and the moto tests, which run on the real clock.

pub mod crash;
pub mod double;
pub mod faults;

use aws_lambda_events::sqs::SqsEvent;
use double::Double;
use faults::{Faults, FaultyQueue, FaultyTable, rate};
use serde::Serialize;
use serde_json::{Value, json};
use shared::config::Vars;
use shared::handoff::Handoff;
use shared::hicaps::ClaimState;
use shared::queue::embedded::EmbeddedQueue;
use shared::queue::{MessageSender, MessageSource};
use shared::store::SharedTable;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
// The paused runtime's clock: virtual here (see the module doc).
use tokio::time::Instant;

/// What `cargo xtask soak` runs in process.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Webhooks per seed (invoices and their cancellations; copies not counted).
    pub webhooks: usize,
    pub seeds: u64,
    pub first_seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { webhooks: 500, seeds: 5, first_seed: 1 }
    }
}

/// One seed's figures.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub seed: u64,
    pub webhooks: usize,
    pub acknowledged: usize,
    /// Copies of webhooks delivered beyond the first (planned repeats and HICAPS's retries after
    /// a 503 are not the same: this counts the planned ones).
    pub duplicates_delivered: u64,
    /// Deliveries restarted by an `lp:webhook-error` call.
    pub redeliveries: u64,
    pub faults: BTreeMap<String, u64>,
    /// Poster invocations cancelled at a random await point or at their timeout.
    pub crashes: u64,
    pub posts: u64,
    pub identical_repeats: u64,
    pub dead_letters_before_replay: usize,
    pub dead_letters_after_replay: usize,
    /// Letters left for work that completed after them: given up during the replay while an
    /// outage lasted, then done by HICAPS's redelivery. Harmless (a replay is a duplicate).
    pub stale_dead_letters: usize,
    pub webhook_error_calls: u64,
    /// Wall-clock time the seed took (virtual time runs faster).
    pub millis: u64,
    /// SHA-256 of every post HICAPS received, in order, with its virtual time: equal for two runs
    /// of a seed exactly when they did the same thing at the same instants.
    pub fingerprint: String,
    pub violations: Vec<String>,
}

/// The queue's visibility timeout here: longer than an invocation, as in the template (where it
/// is six times the poster's timeout), short so a crashed batch comes back soon.
const VISIBILITY: Duration = Duration::from_secs(7);
/// An invocation's lock lives this long; the invocation is cancelled just before, as Lambda ends
/// one at its timeout. The poster posts only with the call's timeout (1 s here) and 3 s to
/// record it left, so this leaves it 2 s to start.
const INVOCATION_SECONDS: i64 = 6;
const MAX_RECEIVE_COUNT: u32 = 8;
const POSTER_WORKERS: usize = 4;
/// A seed that has not drained by then has lost something.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);
const BASE: &str = "https://hicaps.soak";

/// One webhook of the workload.
struct Planned {
    id: String,
    body: Arc<str>,
    /// Start offsets of each copy, the first included.
    copies: Vec<Duration>,
}

/// Runs every seed, `parallel` at a time, each on a thread and a paused current-thread runtime of
/// its own: with the seed, that fixes the order and the time of everything.
pub fn run_parallel(options: Options, parallel: usize) -> anyhow::Result<Vec<SeedReport>> {
    let seeds: Vec<u64> = (options.first_seed..options.first_seed.saturating_add(options.seeds)).collect();
    let mut reports = Vec::with_capacity(seeds.len());
    for chunk in seeds.chunks(parallel.max(1)) {
        let threads: Vec<_> = chunk
            .iter()
            .map(|&seed| {
                std::thread::spawn(move || -> anyhow::Result<SeedReport> {
                    let runtime =
                        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?;
                    runtime.block_on(run_seed(seed, options.webhooks))
                })
            })
            .collect();
        for thread in threads {
            reports.push(thread.join().map_err(|_| anyhow::anyhow!("a seed's thread panicked"))??);
        }
    }
    Ok(reports)
}

fn seeded_uuid() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_be_bytes()).into_uuid().to_string()
}

/// Invoices from the spec's example, with fresh ids; about one in seven with a cancellation,
/// a third of those sent before the invoice. Returns the webhooks, the invoices HICAPS refuses
/// (2 in 100) and those it has an outage for (1 in 100).
fn workload(
    base: &str,
    webhooks: usize,
    spacing: Duration,
) -> anyhow::Result<(Vec<Planned>, HashSet<String>, HashSet<String>)> {
    use crate::sim::hicaps::Example;
    let invoice_template: Value = serde_json::from_str(Example::InvoiceSubmitted.template())?;
    let cancellation_template: Value = serde_json::from_str(Example::CancellationRequested.template())?;
    let mut planned = Vec::with_capacity(webhooks);
    let mut refused = HashSet::new();
    let mut outage = HashSet::new();
    let mut start = Duration::ZERO;
    while planned.len() < webhooks {
        let invoice_id = seeded_uuid();
        match fastrand::u32(0..100) {
            0..2 => refused.insert(invoice_id.clone()),
            2 => outage.insert(invoice_id.clone()),
            _ => false,
        };
        let mut invoice = invoice_template.clone();
        let id = seeded_uuid();
        invoice["id"] = json!(id);
        invoice["data"]["invoiceId"] = json!(invoice_id);
        if let Some(claims) = invoice["data"]["claims"].as_array_mut() {
            for claim in claims {
                claim["claimId"] = json!(seeded_uuid());
            }
        }
        invoice["_links"] = links(base, &invoice_id, &id);
        let invoice = Planned { copies: copies(start), id, body: invoice.to_string().into() };
        start += spacing;
        let cancellation = (fastrand::u32(0..7) == 0 && planned.len() + 1 < webhooks).then(|| {
            let mut cancellation = cancellation_template.clone();
            let id = seeded_uuid();
            cancellation["id"] = json!(id);
            cancellation["data"]["invoiceId"] = json!(invoice_id);
            cancellation["_links"] = links(base, &invoice_id, &id);
            let before = fastrand::u32(0..3) == 0;
            let at = if before {
                start.saturating_sub(Duration::from_millis(5))
            } else {
                start + Duration::from_millis(fastrand::u64(0..1500))
            };
            Planned { copies: copies(at), id, body: cancellation.to_string().into() }
        });
        planned.push(invoice);
        planned.extend(cancellation);
    }
    Ok((planned, refused, outage))
}

fn links(base: &str, invoice_id: &str, webhook_id: &str) -> Value {
    json!({
        "lp:invoice-status-updated": {"href": format!("{base}/callbacks/invoice-status/{invoice_id}/{webhook_id}")},
        "lp:webhook-error": {"href": format!("{base}/callbacks/webhook-error/{webhook_id}")},
    })
}

/// When each copy of a webhook starting at `start` is sent: most once, some up to 25 times, the
/// repeats either together with the first or up to four seconds later (after it completed).
fn copies(start: Duration) -> Vec<Duration> {
    let repeats = match fastrand::u32(0..100) {
        0..60 => 0,
        60..85 => fastrand::u32(1..=3),
        85..95 => fastrand::u32(4..=10),
        _ => fastrand::u32(11..=24),
    };
    let mut copies = vec![start];
    for _ in 0..repeats {
        copies.push(if fastrand::bool() { start } else { start + Duration::from_millis(fastrand::u64(200..4000)) });
    }
    copies
}

/// What the deliveries and invocations learn, for the invariants.
#[derive(Default)]
struct Observed {
    acknowledged: Mutex<HashSet<String>>,
    crashed: Mutex<HashSet<String>>,
    crashes: AtomicU64,
    in_flight: AtomicUsize,
    redeliveries: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Soak {
    receiver: webhook_receiver::Receiver,
    poster: invoice_status_poster::Poster,
    work: Arc<EmbeddedQueue>,
    faulty_work: Arc<FaultyQueue<EmbeddedQueue>>,
    faults: Arc<Faults>,
    observed: Observed,
    bodies: HashMap<String, Arc<str>>,
}

/// Where a seed's virtual clock starts: 2027-01-15T00:00:00Z, a fixed instant, so that even the
/// rounding of deadlines to whole seconds is the same on every run.
pub const VIRTUAL_EPOCH_MS: i64 = 1_800_000_000_000;

/// One seed on the current runtime, which must be a paused current-thread one for the run to be
/// exactly reproducible ([`run_parallel`] makes one).
pub async fn run_seed(seed: u64, webhooks: usize) -> anyhow::Result<SeedReport> {
    let started = std::time::Instant::now();
    shared::time::use_virtual_clock(VIRTUAL_EPOCH_MS);
    fastrand::seed(seed);
    let faults = Arc::new(Faults::new(seed));
    let (planned, refused, outage) = workload(BASE, webhooks, Duration::from_millis(3))?;
    let plain: SharedTable = Arc::new(shared::store::embedded::EmbeddedTable::new());
    crate::sim::hicaps::load_reference_data(plain.as_ref()).await?;
    let table: SharedTable = Arc::new(FaultyTable { inner: Arc::clone(&plain), faults: Arc::clone(&faults) });
    let dlq = Arc::new(EmbeddedQueue::new(VISIBILITY));
    let work = Arc::new(EmbeddedQueue::new(VISIBILITY).with_dead_letter(Arc::clone(&dlq), MAX_RECEIVE_COUNT));
    let faulty_work = Arc::new(FaultyQueue { inner: Arc::clone(&work), faults: Arc::clone(&faults) });
    let faulty_dlq = Arc::new(FaultyQueue { inner: Arc::clone(&dlq), faults: Arc::clone(&faults) });
    let (redeliver, mut redeliveries) = tokio::sync::mpsc::unbounded_channel();
    let double = Arc::new(Double::new(BASE, Some(Arc::clone(&faults)), refused, outage, redeliver));

    let vars = Vars::default()
        .with("WEBHOOK_AUTH_HEADER", webhook_receiver::DEFAULT_AUTH_HEADER)
        .with("WEBHOOK_AUTH_VALUE", "soak-webhook-secret")
        .with("HICAPS_TOKEN_URL", format!("{BASE}/oauth/token"))
        .with("HICAPS_CLIENT_ID", double::CLIENT_ID)
        .with("HICAPS_CLIENT_SECRET", double::CLIENT_SECRET)
        .with("HICAPS_CALLBACK_HOSTS", "hicaps.soak")
        .with("HICAPS_TIMEOUT_SECONDS", "1")
        .with("RETRY_BASE_MILLIS", "20")
        .with("MAX_RECEIVE_COUNT", MAX_RECEIVE_COUNT.to_string());
    let receiver = webhook_receiver::Receiver::new(
        webhook_receiver::Config::from_vars(&vars).await?,
        Handoff::new(faulty_work.clone(), table.clone()),
        Arc::clone(&table),
    );
    let poster = invoice_status_poster::Poster::new(
        invoice_status_poster::Config::from_vars(&vars).await?,
        Arc::clone(&table),
        double.clone(),
        faulty_work.clone(),
        faulty_dlq,
    );
    let bodies = planned.iter().map(|p| (p.id.clone(), Arc::clone(&p.body))).collect();
    let soak = Arc::new(Soak {
        receiver,
        poster,
        work: Arc::clone(&work),
        faulty_work,
        faults: Arc::clone(&faults),
        observed: Observed::default(),
        bodies,
    });

    let mut tasks = tokio::task::JoinSet::new();
    let mut duplicates = 0u64;
    for webhook in &planned {
        duplicates += webhook.copies.len().saturating_sub(1) as u64;
        for at in &webhook.copies {
            soak.observed.in_flight.fetch_add(1, Ordering::SeqCst);
            let (soak, id, body, at) = (Arc::clone(&soak), webhook.id.clone(), Arc::clone(&webhook.body), *at);
            tasks.spawn(async move {
                tokio::time::sleep(at).await;
                soak.deliver(&id, &body).await;
            });
        }
    }
    {
        let soak = Arc::clone(&soak);
        tasks.spawn(async move {
            while let Some(id) = redeliveries.recv().await {
                let Some(body) = soak.bodies.get(&id).cloned() else { continue };
                soak.observed.redeliveries.fetch_add(1, Ordering::SeqCst);
                soak.observed.in_flight.fetch_add(1, Ordering::SeqCst);
                let soak = Arc::clone(&soak);
                tokio::spawn(async move { soak.deliver(&id, &body).await });
            }
        });
    }
    let batches = Arc::new(AtomicU64::new(0));
    for _ in 0..POSTER_WORKERS {
        let (soak, batches) = (Arc::clone(&soak), Arc::clone(&batches));
        tasks.spawn(async move { soak.poll(&batches).await });
    }

    let mut violations = Vec::new();
    if !soak.drained().await {
        violations.push(format!("lost: the system did not drain in {DRAIN_LIMIT:?}"));
    }
    let replayed = replay(dlq.as_ref(), work.as_ref()).await?;
    if !soak.drained().await {
        violations.push(format!("lost: the system did not drain after the replay in {DRAIN_LIMIT:?}"));
    }
    tasks.abort_all();
    let remaining = read_all(dlq.as_ref()).await?;

    let records = double.take_records();
    let acknowledged = lock(&soak.observed.acknowledged).clone();
    let crashed = lock(&soak.observed.crashed).clone();
    let (identical_repeats, stale_dead_letters) =
        check(&plain, &planned, &acknowledged, &crashed, &records, &remaining, &mut violations).await?;
    Ok(SeedReport {
        seed,
        webhooks: planned.len(),
        acknowledged: acknowledged.len(),
        duplicates_delivered: duplicates,
        redeliveries: soak.observed.redeliveries.load(Ordering::SeqCst),
        faults: faults.injected().into_iter().map(|(kind, count)| (kind.to_owned(), count)).collect(),
        crashes: soak.observed.crashes.load(Ordering::SeqCst),
        posts: records.posts.len() as u64,
        identical_repeats,
        dead_letters_before_replay: replayed,
        dead_letters_after_replay: remaining.len(),
        stale_dead_letters,
        webhook_error_calls: records.webhook_errors.values().sum(),
        fingerprint: fingerprint(&records.posts),
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        violations,
    })
}

impl Soak {
    /// One webhook, with HICAPS's retry policy: again after a 5xx or no answer, up to 24 times.
    async fn deliver(&self, id: &str, body: &str) {
        let status = crate::sim::hicaps::with_retry_policy(|| async {
            let request = http::Request::builder()
                .method("POST")
                .uri("/hicaps/webhooks")
                .header(webhook_receiver::DEFAULT_AUTH_HEADER, "soak-webhook-secret")
                .body(lambda_http::Body::Text(body.to_owned()));
            match request {
                Ok(request) => self.receiver.handle(request).await.status().as_u16(),
                Err(_) => 400,
            }
        })
        .await;
        if (200..300).contains(&status) {
            lock(&self.observed.acknowledged).insert(id.to_owned());
        }
        self.observed.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// What Lambda's event source mapping does, with crashes: some invocations are cancelled at a
    /// random await point, and every one at its timeout; nothing of theirs is deleted.
    async fn poll(&self, batches: &AtomicU64) {
        loop {
            let Ok(messages) = self.work.receive(10, Duration::from_millis(100)).await else { continue };
            if messages.is_empty() {
                continue;
            }
            let batch = batches.fetch_add(1, Ordering::SeqCst).to_string();
            let crash_after = (self.faults.draw("crash", &batch) % 1000 < rate::CRASH)
                .then(|| 1 + self.faults.fixed("crashPoint", &batch, 0) % 12);
            let mut event = SqsEvent::default();
            event.records = messages.iter().map(|m| crate::poller::to_record(m, "arn:soak:sqs:work")).collect();
            let deadline_seconds = shared::time::now_seconds() + INVOCATION_SECONDS;
            let until_deadline = deadline_seconds.saturating_mul(1000) - shared::time::now_millis() - 100;
            let timeout = Duration::from_millis(u64::try_from(until_deadline).unwrap_or(0));
            let invocation = CrashAfter {
                invocation: Box::pin(self.poster.handle(event, deadline_seconds)),
                polls_left: crash_after,
            };
            let response = match tokio::time::timeout(timeout, invocation).await {
                Ok(Some(response)) => response,
                crashed => {
                    if matches!(crashed, Ok(None)) {
                        self.faults.count("poster.crash");
                    } else {
                        self.faults.count("poster.timeout");
                    }
                    self.observed.crashes.fetch_add(1, Ordering::SeqCst);
                    lock(&self.observed.crashed).extend(messages.iter().filter_map(|m| webhook_id(&m.body)));
                    continue;
                }
            };
            let failed: HashSet<String> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
            for message in messages.iter().filter(|m| !failed.contains(&m.message_id)) {
                let _ = self.faulty_work.delete(&message.receipt_handle).await;
            }
        }
    }

    /// Waits until no delivery is under way and the work queue is empty, twice in a row.
    async fn drained(&self) -> bool {
        let deadline = Instant::now() + DRAIN_LIMIT;
        let mut quiet = 0;
        while Instant::now() < deadline {
            let idle = self.observed.in_flight.load(Ordering::SeqCst) == 0 && self.work.is_empty();
            quiet = if idle { quiet + 1 } else { 0 };
            if quiet >= 3 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// Polls the invocation until it finishes or has been polled `polls_left` times; then it is
/// dropped where it stands, as a crash leaves it.
struct CrashAfter<F> {
    invocation: Pin<Box<F>>,
    polls_left: Option<u64>,
}

impl<F: Future> Future for CrashAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(left) = self.polls_left.as_mut() {
            if *left == 0 {
                return Poll::Ready(None);
            }
            *left -= 1;
        }
        self.invocation.as_mut().poll(cx).map(Some)
    }
}

fn fingerprint(posts: &[double::Post]) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for post in posts {
        digest.update(post.at_ms.to_be_bytes());
        digest.update(post.webhook_id.as_bytes());
        digest.update(post.body.to_string().as_bytes());
    }
    hex::encode(digest.finalize())
}

/// The webhook id in a work message (a replay's included).
fn webhook_id(message: &str) -> Option<String> {
    let message = shared::program::work::unmarked(message);
    match shared::program::work::Work::parse(&message).ok()? {
        shared::program::work::Work::Webhook { body, .. } => {
            serde_json::from_str::<Value>(&body).ok()?.get("id")?.as_str().map(str::to_owned)
        }
        shared::program::work::Work::Decision { decision_id, .. } => Some(decision_id),
    }
}

/// Every message on `queue`, removed.
async fn take_all<Q: MessageSource + ?Sized>(queue: &Q) -> anyhow::Result<Vec<String>> {
    let mut bodies = Vec::new();
    loop {
        let messages = queue.receive(10, Duration::ZERO).await?;
        if messages.is_empty() {
            return Ok(bodies);
        }
        for message in messages {
            queue.delete(&message.receipt_handle).await?;
            bodies.push(message.body);
        }
    }
}

/// `cargo xtask replay-dlq` with no selection: every dead letter back on the work queue.
async fn replay<D, W>(dlq: &D, work: &W) -> anyhow::Result<usize>
where
    D: MessageSource + shared::queue::MessageVisibility + ?Sized,
    W: MessageSender + ?Sized,
{
    use shared::program::replay::{Mode, Selection, run};
    Ok(run(dlq, work, &Selection::default(), Mode::Replay).await?.replayed)
}

/// The dead letters' webhook ids, removed.
async fn read_all<Q: MessageSource + ?Sized>(dlq: &Q) -> anyhow::Result<Vec<String>> {
    Ok(take_all(dlq)
        .await?
        .iter()
        .map(|letter| {
            webhook_id(&shared::program::work::unwrap_dead_letter(letter)).unwrap_or_else(|| "(unreadable)".into())
        })
        .collect())
}

/// Checks invariants 1 to 4; returns the identical repeats and the stale dead letters.
async fn check(
    table: &SharedTable,
    planned: &[Planned],
    acknowledged: &HashSet<String>,
    crashed: &HashSet<String>,
    records: &double::Records,
    dead_letters: &[String],
    violations: &mut Vec<String>,
) -> anyhow::Result<(u64, usize)> {
    // 1. Every acknowledged webhook has its effect, or is in the DLQ, which holds nothing else:
    // a letter of work done since (given up in the replay, then redelivered by HICAPS) is stale.
    let posted: HashSet<&str> = records.posts.iter().map(|post| post.webhook_id.as_str()).collect();
    for webhook in planned.iter().filter(|w| acknowledged.contains(&w.id)) {
        let item = table.get(&shared::idempotency::key(&webhook.id)).await?;
        let status = item.as_ref().and_then(|i| i.str_attr("status")).unwrap_or("missing");
        let outcome = item.as_ref().and_then(|i| i.str_attr("outcome")).unwrap_or("-");
        let refused = records.refused.contains_key(&webhook.id);
        let in_dlq = dead_letters.contains(&webhook.id);
        match (refused, status) {
            // In the DLQ, where a refusal belongs. Its record says so, unless the crash or store
            // fault that the DLQ send survived kept the record from saying it: then the record's
            // lock lapses, and a later delivery is refused and dead-lettered again.
            (true, "deadLettered" | "inProgress" | "released") if in_dlq => {}
            (true, _) => {
                violations.push(format!(
                    "lost: {} was refused for good but is {status} ({outcome}), in the DLQ: {in_dlq}",
                    webhook.id
                ));
            }
            (false, "completed") => {
                let posts_expected =
                    matches!(outcome, "invoiceAdjudicated" | "cancellationAnswered" | "cancelledBeforeSubmission");
                if posts_expected && !posted.contains(webhook.id.as_str()) {
                    violations.push(format!("lost: {} completed ({outcome}) without a post", webhook.id));
                }
            }
            (false, _) => violations.push(format!("lost: {} is {status} ({outcome})", webhook.id)),
        }
    }
    let mut stale = 0;
    for id in dead_letters.iter().filter(|id| !records.refused.contains_key(*id)) {
        let item = table.get(&shared::idempotency::key(id)).await?;
        if item.as_ref().and_then(|i| i.str_attr("status")) == Some("completed") {
            stale += 1;
        } else {
            violations.push(format!("the DLQ holds {id}, which HICAPS never refused and which is not done"));
        }
    }
    // 2. No effect posted twice with different bodies; identical repeats only after a crash.
    let mut by_webhook: HashMap<&str, Vec<&Value>> = HashMap::new();
    for post in &records.posts {
        by_webhook.entry(post.webhook_id.as_str()).or_default().push(&post.body);
    }
    let mut repeats = 0u64;
    for (id, bodies) in &by_webhook {
        if bodies.iter().any(|body| *body != bodies[0]) {
            violations.push(format!("posted twice with different bodies: {id}"));
        }
        let extra = bodies.len().saturating_sub(1) as u64;
        repeats += extra;
        if extra > 0 && !crashed.contains(*id) {
            violations.push(format!("{id} was posted {} times without a crash", bodies.len()));
        }
    }
    // 3. No claim moves against the state machine: each claim's posted states, in the order
    // HICAPS received them, from `awaitingResponse`; a cancellation passes through
    // `awaitingCancelResponse`, which HICAPS sets.
    let mut states: HashMap<String, ClaimState> = HashMap::new();
    for post in &records.posts {
        for status in post.body["claimStatuses"].as_array().into_iter().flatten() {
            let (Some(claim_id), Some(state)) = (status["claimId"].as_str(), status.get("state")) else { continue };
            let Ok(next) = serde_json::from_value::<ClaimState>(state.clone()) else { continue };
            let previous = states.get(claim_id).copied().unwrap_or(ClaimState::AwaitingResponse);
            let allowed = previous.can_transition_to(next)
                || (previous.can_transition_to(ClaimState::AwaitingCancelResponse)
                    && ClaimState::AwaitingCancelResponse.can_transition_to(next));
            if !allowed {
                violations.push(format!(
                    "claim {claim_id} of invoice {} moved from {previous:?} to {next:?}",
                    post.invoice_id
                ));
            }
            states.insert(claim_id.to_owned(), next);
        }
    }
    // 4. `lp:webhook-error` at most once per webhook.
    for (id, calls) in records.webhook_errors.iter().filter(|(_, calls)| **calls > 1) {
        violations.push(format!("lp:webhook-error called {calls} times for {id}"));
    }
    Ok((repeats, stale))
}

/// One line of figures for a seed.
pub fn summary_line(report: &SeedReport) -> String {
    let faults: u64 = report.faults.values().sum();
    format!(
        "seed {}: {} webhooks ({} acknowledged), {} duplicates, {} redeliveries, {} faults, {} crashes, {} posts, {} identical repeats, DLQ {} -> {} after replay ({} stale), {} lp:webhook-error, {} violations, {} ms, fingerprint {}",
        report.seed,
        report.webhooks,
        report.acknowledged,
        report.duplicates_delivered,
        report.redeliveries,
        faults,
        report.crashes,
        report.posts,
        report.identical_repeats,
        report.dead_letters_before_replay,
        report.dead_letters_after_replay,
        report.stale_dead_letters,
        report.webhook_error_calls,
        report.violations.len(),
        report.millis,
        &report.fingerprint[..report.fingerprint.len().min(12)],
    )
}
