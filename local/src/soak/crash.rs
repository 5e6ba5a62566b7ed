//! The crash part of `cargo xtask soak`: the local stack as its own process on DynamoDB and SQS
//! (moto, at `AWS_ENDPOINT_URL`), a HICAPS double here, a load of webhooks with repeats, and a
//! `kill -9` of the stack half-way. The stack is started again on the same table and queues, the
//! system drains (SQS brings back what was in flight after its visibility timeout, and the dead
//! invocations' locks lapse), the dead-letter queue is replayed once, and invariants 1 to 4 are
//! checked as for the in-process seeds.

use super::double::{self, Double};
use super::{Planned, SeedReport, check, lock, workload};
use anyhow::Context;
use shared::http_client::{Method, OutboundRequest, ReqwestClient, SharedHttp};
use shared::queue::sqs::SqsQueue;
use shared::store::SharedTable;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct CrashOptions {
    pub webhooks: usize,
    pub seed: u64,
    /// The local stack's binary (`target/<profile>/local`).
    pub stack: PathBuf,
    /// Where the stack's log goes.
    pub log: PathBuf,
}

/// Time between invoices, about 18 deliveries a second with their repeats. moto is one Python
/// process: at this rate it uses about two thirds of a core (2,000 webhooks, 2 cores), so the
/// stack, not moto, decides how fast the work queue drains.
const SPACING: Duration = Duration::from_millis(200);
const WEBHOOK_SECRET: &str = "soak-webhook-secret";
/// The stack's visibility timeout is 180 s: what was in flight at the kill is back after that.
const DRAIN_LIMIT: Duration = Duration::from_secs(900);

struct Driver {
    http: SharedHttp,
    stack_url: String,
    in_flight: AtomicUsize,
    acknowledged: std::sync::Mutex<HashSet<String>>,
    bodies: HashMap<String, Arc<str>>,
    redeliveries: AtomicU64,
}

pub async fn run(options: &CrashOptions) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    fastrand::seed(options.seed);
    let double_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let double_port = double_listener.local_addr()?.port();
    let base = format!("http://127.0.0.1:{double_port}/hicaps");
    let (planned, refused, _outage) = workload(&base, options.webhooks, SPACING)?;
    let (redeliver, mut redeliveries) = tokio::sync::mpsc::unbounded_channel();
    let double = Arc::new(Double::new(&base, None, refused, HashSet::new(), redeliver));
    let serving = Arc::clone(&double);
    let server = tokio::spawn(async move {
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let double = Arc::clone(&serving);
            async move { serve(&double, request).await }
        });
        let _ = axum::serve(double_listener, app).await;
    });

    let stack_port = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
    let table_name = format!("soak-crash-{}", uuid::Uuid::new_v4().simple());
    let environment = [
        ("PORT", stack_port.to_string()),
        ("TABLE_NAME", table_name.clone()),
        ("WEBHOOK_AUTH_VALUE", WEBHOOK_SECRET.to_owned()),
        ("HICAPS_TOKEN_URL", format!("{base}/oauth/token")),
        ("HICAPS_CLIENT_ID", double::CLIENT_ID.to_owned()),
        ("HICAPS_CLIENT_SECRET", double::CLIENT_SECRET.to_owned()),
        ("HICAPS_CALLBACK_HOSTS", format!("127.0.0.1:{double_port}")),
        ("RUST_LOG", "error".to_owned()),
    ];
    let log = std::fs::File::create(&options.log).with_context(|| format!("creating {}", options.log.display()))?;
    let start_stack = || -> anyhow::Result<Child> {
        Command::new(&options.stack)
            .envs(environment.iter().map(|(name, value)| (*name, value.as_str())))
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .spawn()
            .with_context(|| format!("starting {}", options.stack.display()))
    };
    let http: SharedHttp = Arc::new(ReqwestClient::new()?);
    let stack_url = format!("http://127.0.0.1:{stack_port}");
    let mut stack = start_stack()?;
    wait_until_up(&http, &stack_url).await?;

    let bodies = planned.iter().map(|p| (p.id.clone(), Arc::clone(&p.body))).collect();
    let driver = Arc::new(Driver {
        http,
        stack_url,
        in_flight: AtomicUsize::new(0),
        acknowledged: std::sync::Mutex::default(),
        bodies,
        redeliveries: AtomicU64::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    let duplicates = spawn_deliveries(&driver, &planned, &mut tasks);
    {
        let driver = Arc::clone(&driver);
        tasks.spawn(async move {
            while let Some(id) = redeliveries.recv().await {
                let Some(body) = driver.bodies.get(&id).cloned() else { continue };
                driver.redeliveries.fetch_add(1, Ordering::SeqCst);
                driver.in_flight.fetch_add(1, Ordering::SeqCst);
                let driver = Arc::clone(&driver);
                tokio::spawn(async move { driver.deliver(&id, &body).await });
            }
        });
    }

    // Half-way through the load: kill -9, and start again on the same table and queues.
    let span = planned.iter().flat_map(|p| p.copies.iter()).max().copied().unwrap_or_default();
    tokio::time::sleep(span / 2).await;
    let killed_at_ms = shared::time::now_millis();
    stack.kill().context("kill -9 of the local stack")?;
    let _ = stack.wait();
    println!("crash run: killed the local stack (kill -9) after {:?}; starting it again", span / 2);
    let mut stack = start_stack()?;
    wait_until_up(&driver.http, &driver.stack_url).await?;

    let mut violations = Vec::new();
    let config = shared::aws_config(&shared::config::Vars::from_env()).await?;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = |name: String| {
        let sqs = sqs.clone();
        async move {
            let url = sqs.get_queue_url().queue_name(&name).send().await?.queue_url.unwrap_or_default();
            anyhow::Ok(SqsQueue::new(sqs, url))
        }
    };
    let work = queue(format!("{table_name}-work")).await?;
    let dlq = queue(format!("{table_name}-work-dlq")).await?;
    if !driver.drained().await {
        violations.push(format!("lost: the system did not drain in {DRAIN_LIMIT:?}"));
    }
    let replayed = super::replay(&dlq, &work).await?;
    if !driver.drained().await {
        violations.push(format!("lost: the system did not drain after the replay in {DRAIN_LIMIT:?}"));
    }
    let remaining = super::read_all(&dlq).await?;
    stack.kill()?;
    let _ = stack.wait();
    tasks.abort_all();
    server.abort();

    let table: SharedTable = Arc::new(shared::store::dynamo::DynamoTable::from_sdk_config(&config, &table_name));
    let records = double.take_records();
    // A webhook posted before the kill may be posted again after it: the kill is the crash. A
    // post sent just before the kill can reach the double just after it; one from the new stack
    // cannot come within the grace, which is shorter than the dead invocations' 30 s locks.
    let grace_ms = 5_000;
    let crashed: HashSet<String> = records
        .posts
        .iter()
        .filter(|post| post.at_ms < killed_at_ms + grace_ms)
        .map(|post| post.webhook_id.clone())
        .collect();
    let acknowledged = lock(&driver.acknowledged).clone();
    let (identical_repeats, stale_dead_letters) =
        check(&table, &planned, &acknowledged, &crashed, &records, &remaining, &mut violations).await?;
    let log = std::fs::read_to_string(&options.log).unwrap_or_default();
    let abandoned = log.matches("will be redelivered").count() as u64;
    Ok(SeedReport {
        seed: options.seed,
        webhooks: planned.len(),
        acknowledged: acknowledged.len(),
        duplicates_delivered: duplicates,
        redeliveries: driver.redeliveries.load(Ordering::SeqCst),
        faults: [("kill -9".to_owned(), 1), ("poster batches abandoned at their timeout".to_owned(), abandoned)]
            .into_iter()
            .collect(),
        crashes: 1 + abandoned,
        posts: records.posts.len() as u64,
        identical_repeats,
        dead_letters_before_replay: replayed,
        dead_letters_after_replay: remaining.len(),
        stale_dead_letters,
        webhook_error_calls: records.webhook_errors.values().sum(),
        // On the real clock and a real kill, no two crash runs are alike.
        fingerprint: String::new(),
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        violations,
    })
}

fn spawn_deliveries(driver: &Arc<Driver>, planned: &[Planned], tasks: &mut tokio::task::JoinSet<()>) -> u64 {
    let mut duplicates = 0u64;
    for webhook in planned {
        duplicates += webhook.copies.len().saturating_sub(1) as u64;
        for at in &webhook.copies {
            driver.in_flight.fetch_add(1, Ordering::SeqCst);
            let (driver, id, body, at) = (Arc::clone(driver), webhook.id.clone(), Arc::clone(&webhook.body), *at);
            tasks.spawn(async move {
                tokio::time::sleep(at).await;
                driver.deliver(&id, &body).await;
            });
        }
    }
    duplicates
}

async fn serve(double: &Double, request: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path().strip_prefix("/hicaps").unwrap_or_default().to_owned();
    let authorization = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Ok(body) = axum::body::to_bytes(request.into_body(), 1024 * 1024).await else {
        return http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    match double.answer(&path, authorization.as_deref(), &body).await {
        Ok((status, headers, body)) => {
            let mut response =
                (http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK), body).into_response();
            for (name, value) in headers {
                if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(name), http::HeaderValue::try_from(value)) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        Err(_) => http::StatusCode::GATEWAY_TIMEOUT.into_response(),
    }
}

async fn wait_until_up(http: &SharedHttp, stack_url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let request = OutboundRequest::new(Method::Get, format!("{stack_url}/health")).timeout(Duration::from_secs(1));
        if http.send(request).await.is_ok_and(|r| r.status == 200) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the local stack did not answer on {stack_url} within 60 s")
}

impl Driver {
    /// One webhook over HTTP with HICAPS's retry policy; no answer (the stack is down) is retried.
    async fn deliver(&self, id: &str, body: &str) {
        let status = crate::sim::hicaps::with_retry_policy(|| {
            let request = OutboundRequest::new(Method::Post, format!("{}/hicaps/webhooks", self.stack_url))
                .header(webhook_receiver::DEFAULT_AUTH_HEADER, WEBHOOK_SECRET)
                .json(body.as_bytes().to_vec())
                .timeout(Duration::from_secs(10));
            async move { self.http.send(request).await.map(|r| r.status).unwrap_or(0) }
        })
        .await;
        if (200..300).contains(&status) {
            lock(&self.acknowledged).insert(id.to_owned());
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// No delivery under way and the work queue empty (in flight included), three times in a row.
    async fn drained(&self) -> bool {
        let deadline = Instant::now() + DRAIN_LIMIT;
        let mut quiet = 0;
        while Instant::now() < deadline {
            let request = OutboundRequest::new(Method::Get, format!("{}/local/queues", self.stack_url));
            let depth = match self.http.send(request).await {
                Ok(response) => serde_json::from_slice::<serde_json::Value>(&response.body)
                    .ok()
                    .and_then(|v| v["work"]["messages"].as_u64()),
                Err(_) => None,
            };
            let idle = self.in_flight.load(Ordering::SeqCst) == 0 && depth == Some(0);
            quiet = if idle { quiet + 1 } else { 0 };
            if quiet >= 3 {
                return true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        false
    }
}
