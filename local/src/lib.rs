//! The local stack: all five handlers behind one HTTP server, as API Gateway and Lambda would run
//! them, with the embedded store and queue (or DynamoDB and SQS when `AWS_ENDPOINT_URL` is set)
//! and simulators of the four upstreams.

pub mod bridge;
pub mod flow;
pub mod poller;
pub mod sim;
pub mod soak;
pub mod usage;

use anyhow::Context;
use aws_lambda_events::sqs::SqsEvent;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use shared::config::Vars;
use shared::handoff::Handoff;
use shared::http_client::{ReqwestClient, SharedHttp};
use shared::queue::{MessageSender, MessageSource, MessageVisibility, QueueDepth};
use shared::store::SharedTable;
use shared::time::SystemClock;
use shared::web::HttpHandler;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Lambda's timeout for the poster in the SAM template; the local poller gives each batch as long.
const POSTER_TIMEOUT: Duration = Duration::from_secs(30);
/// The iCare sender's Lambda timeout in the SAM template.
const ICARE_TIMEOUT: Duration = Duration::from_secs(28);
/// The iCare retry queue's visibility timeout: a retry that crashed comes back after it (the
/// sender sets each message's next attempt itself).
const ICARE_RETRY_SPACING: Duration = Duration::from_secs(10);
/// The work queue's redrive policy, as in the SAM template.
pub const MAX_RECEIVE_COUNT: u32 = 8;
/// The iCare retry queue's, as in the template: above the attempts its 48-hour schedule makes.
pub const ICARE_MAX_RECEIVE_COUNT: u32 = 50;

/// A queue as the local stack needs it: send, receive, set visibility, and count.
pub trait LocalQueue: icare_sender::RetryQueue + MessageSource + QueueDepth {}
impl<T: MessageSender + MessageSource + MessageVisibility + QueueDepth> LocalQueue for T {}

/// Where state lives: in process, or DynamoDB and SQS at `AWS_ENDPOINT_URL`.
pub struct Backend {
    pub table: SharedTable,
    pub work: Arc<dyn LocalQueue>,
    pub work_dlq: Arc<dyn LocalQueue>,
    pub icare: Arc<dyn LocalQueue>,
    pub icare_dlq: Arc<dyn LocalQueue>,
    pub description: String,
    /// What the work would be billed in AWS (embedded state only; `GET /local/usage`).
    pub usage: Option<Arc<usage::Usage>>,
}

impl Backend {
    pub fn embedded() -> Self {
        use shared::queue::embedded::EmbeddedQueue;
        use usage::{MeteredQueue, MeteredTable, Usage};
        let usage = Arc::new(Usage::default());
        let metered = |queue: Arc<dyn LocalQueue>, name| -> Arc<dyn LocalQueue> {
            Arc::new(MeteredQueue::new(queue, usage.clone(), name))
        };
        let visibility = POSTER_TIMEOUT * 6;
        let work_dlq = Arc::new(EmbeddedQueue::new(visibility));
        let work = EmbeddedQueue::new(visibility).with_dead_letter(Arc::clone(&work_dlq), MAX_RECEIVE_COUNT);
        let icare_dlq = Arc::new(EmbeddedQueue::new(ICARE_RETRY_SPACING));
        let icare =
            EmbeddedQueue::new(ICARE_RETRY_SPACING).with_dead_letter(Arc::clone(&icare_dlq), ICARE_MAX_RECEIVE_COUNT);
        Self {
            table: Arc::new(MeteredTable::new(Arc::new(shared::store::embedded::EmbeddedTable::new()), usage.clone())),
            work: metered(Arc::new(work), "work"),
            work_dlq: metered(work_dlq, "workDlq"),
            icare: metered(Arc::new(icare), "icare"),
            icare_dlq: metered(icare_dlq, "icareDlq"),
            description: "embedded (in-process store and queues)".into(),
            usage: Some(usage),
        }
    }

    /// DynamoDB and SQS at the configured endpoint; creates the table and queues if missing.
    pub async fn aws(vars: &Vars) -> anyhow::Result<Self> {
        use shared::queue::sqs::SqsQueue;
        use shared::store::dynamo::DynamoTable;
        let config = shared::aws_config(vars).await?;
        let table_name = vars.get("TABLE_NAME").unwrap_or("claims-gateway").to_owned();
        let table = DynamoTable::from_sdk_config(&config, &table_name);
        table.ensure_exists().await.context("creating the DynamoDB table")?;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let visibility = POSTER_TIMEOUT * 6;
        let (work, work_dlq) =
            SqsQueue::ensure_exists(&sqs, &format!("{table_name}-work"), visibility, MAX_RECEIVE_COUNT)
                .await
                .context("creating the work queue")?;
        let (icare, icare_dlq) =
            SqsQueue::ensure_exists(&sqs, &format!("{table_name}-icare"), ICARE_RETRY_SPACING, ICARE_MAX_RECEIVE_COUNT)
                .await
                .context("creating the iCare queue")?;
        let endpoint = vars.get("AWS_ENDPOINT_URL").unwrap_or("the default AWS endpoint").to_owned();
        Ok(Self {
            table: Arc::new(table),
            description: format!("DynamoDB table {table_name} and SQS queue {} at {endpoint}", work.url()),
            work: Arc::new(work),
            work_dlq: Arc::new(work_dlq),
            icare: Arc::new(icare),
            icare_dlq: Arc::new(icare_dlq),
            usage: None,
        })
    }
}

/// The running stack, for `main` and for end-to-end tests.
pub struct Stack {
    pub base_url: String,
    pub backend: Arc<Backend>,
    pub api_keys: HashMap<String, String>,
    pub hicaps: sim::hicaps::Simulator,
    /// Poster batches abandoned at their 30 s timeout (or to a panic): crashes, in Lambda's terms.
    pub abandoned_poster_batches: Arc<std::sync::atomic::AtomicU64>,
    apps: Arc<Apps>,
    poster: Arc<invoice_status_poster::Poster>,
    tasks: tokio::task::JoinSet<()>,
    _consumers: Consumers,
}

/// The queue consumers (the poster and the iCare retries), on a thread and runtime of their own
/// at the lowest CPU priority. In AWS they are other functions on other capacity; here they share
/// the machine with the HTTP front, and draining the queue must not hold up acknowledgements
/// (BENCHMARKS.md, load run). Dropping this stops them; unfinished batches come back from the
/// queue as they would after a Lambda timeout.
struct Consumers {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Consumers {
    fn start(consumers: Vec<BoxFuture<'static, ()>>) -> std::io::Result<Self> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name("queue-consumers".into()).spawn(move || {
            lower_this_threads_priority();
            runtime.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for consumer in consumers {
                    tasks.spawn(consumer);
                }
                // Resolves when the stack drops its sender.
                let _ = stopped.await;
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        })?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Consumers {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Nice 19 for the calling thread alone (Linux gives each thread its own nice value).
#[cfg(target_os = "linux")]
fn lower_this_threads_priority() {
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(%error, "queue consumers keep the default priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority() {}

impl Stack {
    /// Runs a ready Lambda event through the named function's handler, as `cargo lambda invoke`
    /// would: an API Gateway HTTP request for the HTTP functions, an SQS event for the poster and
    /// the iCare sender's retry queue. Returns the handler's answer as JSON.
    pub async fn invoke(&self, function: &str, event: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let is_sqs = event["Records"][0]["eventSource"] == "aws:sqs";
        if is_sqs {
            let event: SqsEvent = serde_json::from_value(event)?;
            let deadline = shared::time::seconds_rounded_up(
                chrono::Utc::now().timestamp_millis() + POSTER_TIMEOUT.as_millis() as i64,
            );
            let response = match function {
                "invoice-status-poster" => self.poster.handle(event, deadline).await,
                "icare-sender" => self.apps.icare.handle_retries(event).await,
                other => anyhow::bail!("{other} has no SQS handler"),
            };
            return Ok(serde_json::to_value(response)?);
        }
        let request = shared::web::request_from_event(serde_json::from_value(event)?);
        let handler: &dyn HttpHandler = match function {
            "webhook-receiver" => &self.apps.receiver,
            "icp-query-proxy" => &self.apps.icp,
            "eligibility-check" => &self.apps.eligibility,
            "icare-sender" => &self.apps.icare,
            other => anyhow::bail!("{other} has no HTTP handler"),
        };
        let response = handler.call(request).await;
        let body = match response.body() {
            lambda_http::Body::Text(text) => {
                serde_json::from_str(text).unwrap_or(serde_json::Value::String(text.clone()))
            }
            _ => serde_json::Value::Null,
        };
        Ok(serde_json::json!({"statusCode": response.status().as_u16(), "body": body}))
    }

    /// Stops the server and the pollers.
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

struct Apps {
    receiver: webhook_receiver::Receiver,
    icp: icp_query_proxy::App,
    eligibility: eligibility_check::App,
    icare: icare_sender::App,
    api_keys: HashMap<String, String>,
    /// What the receiver accepted lately, for the flow page.
    recent: flow::Recent,
    usage: Option<Arc<usage::Usage>>,
}

/// The defaults that make every connector talk to its simulator on this stack.
pub fn local_defaults(vars: Vars, base_url: &str, port: u16) -> Vars {
    let mut vars = vars
        .with_default("WEBHOOK_AUTH_HEADER", webhook_receiver::DEFAULT_AUTH_HEADER)
        .with_default("WEBHOOK_AUTH_VALUE", sim::hicaps::LOCAL_WEBHOOK_SECRET)
        .with_default("HICAPS_CALLBACK_HOSTS", format!("127.0.0.1:{port}"))
        .with_default("RETRY_BASE_MILLIS", "1000")
        // The generated local caller is the program's staff: it may post decisions and check
        // any location's eligibility.
        .with_default("DECISION_CALLERS", LOCAL_CALLER)
        .with_default("ECF_LOCATION_GRANTS", format!("{LOCAL_CALLER}=*"))
        // A fresh key per start: audit hashes from one run are not comparable with the next.
        .with_default(
            "ICP_AUDIT_HMAC_KEY",
            format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
        );
    let simulator_defaults = sim::hicaps::defaults(base_url)
        .into_iter()
        .chain(sim::acc::defaults(base_url))
        .chain(sim::claiming::defaults(base_url))
        .chain(sim::icare::defaults(base_url));
    for (name, value) in simulator_defaults {
        vars = vars.with_default(name, value);
    }
    vars
}

/// The caller of the generated local API key.
pub const LOCAL_CALLER: &str = "local";

/// `LOCAL_API_KEYS` as key -> caller; without it, one generated key for caller `local`.
pub fn api_keys(vars: &Vars) -> HashMap<String, String> {
    let keys: HashMap<String, String> = vars
        .list("LOCAL_API_KEYS")
        .iter()
        .filter_map(|pair| pair.split_once('=').map(|(key, caller)| (key.trim().to_owned(), caller.trim().to_owned())))
        .collect();
    if keys.is_empty() {
        HashMap::from([(format!("local-{}", uuid::Uuid::new_v4().simple()), LOCAL_CALLER.to_owned())])
    } else {
        keys
    }
}

/// Starts the stack on `listener`. With `AWS_ENDPOINT_URL` set, state lives in DynamoDB and SQS there.
pub async fn start(vars: Vars, listener: tokio::net::TcpListener) -> anyhow::Result<Stack> {
    let address: SocketAddr = listener.local_addr()?;
    let base_url = format!("http://127.0.0.1:{}", address.port());
    let vars = local_defaults(vars, &base_url, address.port());
    let backend =
        Arc::new(if vars.get("AWS_ENDPOINT_URL").is_some() { Backend::aws(&vars).await? } else { Backend::embedded() });
    sim::hicaps::load_reference_data(backend.table.as_ref())
        .await
        .context("loading the benefit schedule and member registry")?;

    let http: SharedHttp = Arc::new(ReqwestClient::new()?);
    let clock = Arc::new(SystemClock);
    let handoff = Handoff::new(backend.work.clone(), backend.table.clone());
    let receiver = webhook_receiver::Receiver::new(
        webhook_receiver::Config::from_vars(&vars).await?,
        handoff,
        backend.table.clone(),
    );
    let poster = Arc::new(invoice_status_poster::Poster::new(
        invoice_status_poster::Config::from_vars(&vars).await?,
        backend.table.clone(),
        http.clone(),
        backend.work.clone(),
        backend.work_dlq.clone(),
    ));
    let icare = icare_sender::App::new(
        icare_sender::Config::from_vars(&vars).await?,
        backend.table.clone(),
        http.clone(),
        clock.clone(),
        icare_sender::Queues { retries: backend.icare.clone(), dead_letters: backend.icare_dlq.clone() },
    );
    let api_keys = api_keys(&vars);
    let apps = Arc::new(Apps {
        receiver,
        icp: icp_query_proxy::App::new(
            icp_query_proxy::Config::from_vars(&vars).await?,
            backend.table.clone(),
            http.clone(),
            clock.clone(),
        ),
        eligibility: eligibility_check::App::new(
            eligibility_check::Config::from_vars(&vars).await?,
            backend.table.clone(),
            http.clone(),
            clock.clone(),
        ),
        icare,
        api_keys: api_keys.clone(),
        recent: flow::Recent::default(),
        usage: backend.usage.clone(),
    });
    let hicaps = sim::hicaps::Simulator::new(&vars, &base_url, http.clone())?;

    let mut router = Router::new().route("/health", get(|| async { "ok" }));
    for route in LAMBDA_ROUTES {
        let method = axum::routing::MethodFilter::try_from(http::Method::from_bytes(route.method.as_bytes())?)?;
        router = router.route(route.path, axum::routing::on(method, lambda(route)));
    }
    let router = router
        .with_state(Arc::clone(&apps))
        .route(
            "/local/queues",
            get({
                let backend = Arc::clone(&backend);
                move || queue_depths(Arc::clone(&backend))
            }),
        )
        .route(
            "/local/usage",
            get({
                let usage = backend.usage.clone();
                move || usage_report(usage.clone())
            }),
        )
        .merge(flow::router(Arc::clone(&backend), hicaps.clone(), apps.recent.clone()))
        .nest("/sim/hicaps", hicaps.router())
        .nest("/sim/acc", sim::acc::router())
        .nest("/sim/claiming", sim::claiming::router())
        .nest("/sim/icare", sim::icare::router());

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "server stopped");
        }
    });
    let concurrency = vars.parse_or("POSTER_CONCURRENCY", 4usize)?;
    let work_source: Arc<dyn MessageSource> = backend.work.clone();
    let polling_poster = Arc::clone(&poster);
    let icare_source: Arc<dyn MessageSource> = backend.icare.clone();
    let polling_apps = Arc::clone(&apps);
    let abandoned = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let consumers = Consumers::start(vec![
        Box::pin(poller::run(
            work_source,
            "arn:local:sqs:work".into(),
            concurrency,
            POSTER_TIMEOUT,
            abandoned.clone(),
            move |event: SqsEvent| {
                let poster = Arc::clone(&polling_poster);
                async move {
                    let deadline = shared::time::seconds_rounded_up(
                        chrono::Utc::now().timestamp_millis() + POSTER_TIMEOUT.as_millis() as i64,
                    );
                    poster.handle(event, deadline).await
                }
            },
        )),
        Box::pin(poller::run(
            icare_source,
            "arn:local:sqs:icare".into(),
            1,
            ICARE_TIMEOUT,
            Arc::default(),
            move |event: SqsEvent| {
                let apps = Arc::clone(&polling_apps);
                async move { apps.icare.handle_retries(event).await }
            },
        )),
    ])?;
    Ok(Stack {
        base_url,
        backend,
        api_keys,
        hicaps,
        apps,
        poster,
        tasks,
        abandoned_poster_batches: abandoned,
        _consumers: consumers,
    })
}

/// The caller of a local API key (`Authorization: Bearer <key>`), standing in for the JWT
/// authorizer; `None` lets the handler answer 401 in its own error format.
fn caller_of(apps: &Apps, request: &Request) -> Option<String> {
    let value = request.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let key = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
    apps.api_keys.get(key.trim()).cloned()
}

/// One API Gateway route: method, path (axum's syntax is API Gateway's), and the function that
/// serves it.
struct LambdaRoute {
    method: &'static str,
    path: &'static str,
    function: &'static str,
    handler: fn(&Apps) -> &dyn HttpHandler,
}

/// `GET /local/queues`: how many messages each queue holds (visible and in flight), so a load
/// run or a curious developer can see the work queue drain and the dead-letter queue stay empty.
async fn queue_depths(backend: Arc<Backend>) -> Response {
    let queues: [(&str, &dyn QueueDepth); 3] =
        [("work", &*backend.work), ("workDlq", &*backend.work_dlq), ("icare", &*backend.icare)];
    let mut depths = serde_json::Map::new();
    for (name, queue) in queues {
        match queue.depth().await {
            Ok(messages) => depths.insert(name.into(), serde_json::json!({ "messages": messages })),
            Err(error) => {
                let problem = serde_json::json!({ "error": format!("{name}: {error}") });
                return (http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(problem)).into_response();
            }
        };
    }
    axum::Json(serde_json::Value::Object(depths)).into_response()
}

/// `GET /local/usage`: what the stack's work so far would be billed in AWS (`usage` module).
async fn usage_report(usage: Option<Arc<usage::Usage>>) -> Response {
    match usage {
        Some(usage) => axum::Json(usage.report()).into_response(),
        None => {
            let problem = serde_json::json!({ "error": "usage is counted on the embedded store and queues only" });
            (http::StatusCode::NOT_FOUND, axum::Json(problem)).into_response()
        }
    }
}

const fn route(
    method: &'static str,
    path: &'static str,
    function: &'static str,
    handler: fn(&Apps) -> &dyn HttpHandler,
) -> LambdaRoute {
    LambdaRoute { method, path, function, handler }
}

const LAMBDA_ROUTES: &[LambdaRoute] = &[
    // In header mode the receiver checks HICAPS's header itself; with WEBHOOK_AUTH_MODE=jwt a local
    // key stands in for HICAPS's token, as for every other route.
    route("POST", "/hicaps/webhooks", "webhook-receiver", |a| &a.receiver),
    route("POST", "/invoices/{invoiceId}/status", "webhook-receiver", |a| &a.receiver),
    route("GET", "/claims/icp/{claimNumber}", "icp-query-proxy", |a| &a.icp),
    route("POST", "/eligibility", "eligibility-check", |a| &a.eligibility),
    route("PUT", "/icare/policies/{policyId}", "icare-sender", |a| &a.icare),
    route("GET", "/icare/policies/{policyId}", "icare-sender", |a| &a.icare),
    route("POST", "/icare/notifications", "icare-sender", |a| &a.icare),
    route("GET", "/icare/notifications/{notificationId}", "icare-sender", |a| &a.icare),
    route("POST", "/icare/claims/{claimNumber}/documents", "icare-sender", |a| &a.icare),
    route("GET", "/icare/claims/{claimNumber}/documents/{documentId}", "icare-sender", |a| &a.icare),
];

/// A route's path parameters, as axum extracts them.
type PathParameters = Option<Path<HashMap<String, String>>>;

/// The axum handler for one route: the request as API Gateway would hand it to the function.
fn lambda(
    route: &'static LambdaRoute,
) -> impl Fn(State<Arc<Apps>>, PathParameters, Request) -> BoxFuture<'static, Response> + Clone + Send + Sync + 'static
{
    move |State(apps): State<Arc<Apps>>, path: PathParameters, request: Request| {
        Box::pin(async move {
            if let Some(usage) = &apps.usage {
                usage.api_request(route.function);
            }
            let caller = caller_of(&apps, &request);
            let path = path.map(|Path(path)| path).unwrap_or_default();
            let route_key = format!("{} {}", route.method, route.path);
            let request = match bridge::to_lambda(request, &route_key, path, caller.as_deref()).await {
                Ok(request) => request,
                Err(response) => return response,
            };
            if route.function != "webhook-receiver" {
                return bridge::from_lambda((route.handler)(&apps).call(request).await);
            }
            let request_body = request.body().to_vec();
            let response = (route.handler)(&apps).call(request).await;
            flow::note_accepted(&apps.recent, route.path, &request_body, response.status().as_u16(), response.body());
            bridge::from_lambda(response)
        })
    }
}

const SIMULATORS: [(&str, &str); 4] = [
    ("/sim/hicaps", "HICAPS simulator"),
    ("/sim/acc", "ACC simulator"),
    ("/sim/claiming", "Claiming.com.au simulator"),
    ("/sim/icare", "iCare simulator"),
];

/// The routes API Gateway serves in AWS, as (method, path): what openapi.yaml describes.
pub fn lambda_routes() -> Vec<(&'static str, &'static str)> {
    LAMBDA_ROUTES.iter().map(|route| (route.method, route.path)).collect()
}

/// Every route, for the start-up banner.
pub fn routes() -> Vec<(String, &'static str)> {
    let mut routes = vec![("GET /health".to_owned(), "liveness"), ("GET /local/".to_owned(), "flow page (local only)")];
    routes.extend(LAMBDA_ROUTES.iter().map(|r| (format!("{} {}", r.method, r.path), r.function)));
    routes.extend(SIMULATORS.iter().map(|(path, what)| (format!("{path}/..."), *what)));
    routes
}
