//! The receiver's cost per webhook, in process on the embedded adapters: the raw API Gateway v2
//! event JSON (events/webhook-receiver/invoice-submitted.json, the spec's Example Invoice
//! Submitted Webhook) deserialised as `lambda_runtime` deserialises every event (serde_json
//! through `serde_path_to_error`, which owns a copy of each key it passes to name the path of an
//! error) and turned into the handler's request as `serve_http` does, handled, and answered with
//! the 202 response event, the message on an `EmbeddedQueue`. Target (issue 8): at most 10 µs
//! median.
//!
//! `cargo bench -p webhook-receiver --bench receiver`; `cargo xtask bench` runs it and reads
//! target/criterion/**/new/estimates.json. With `RECEIVER_BENCH_WEBHOOKS=<n>` the binary instead
//! sends n webhooks down the same path and exits: `cargo xtask bench` counts its instructions
//! under callgrind for two values of n, and the difference per webhook is a figure this host's
//! neighbours cannot move (its timings can, by half).

use criterion::{Criterion, criterion_group};
use shared::config::Vars;
use shared::handoff::Handoff;
use shared::queue::MessageSource;
use shared::queue::embedded::EmbeddedQueue;
use shared::store::embedded::EmbeddedTable;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhook_receiver::{Config, Receiver};

const EVENT: &str = include_str!("../../../events/webhook-receiver/invoice-submitted.json");
/// Webhooks handled between two (untimed) drains of the queue, so it never grows large.
const DRAIN_EVERY: u64 = 1_000;

/// A receiver whose webhook value, as in AWS, comes from a secret source and is kept fresh
/// (`shared::secrets`): the common case, a value in hand that is not stale, is what every webhook
/// pays. With `fixed`, the value is set in the environment instead, which never rotates: the two
/// `handle-request-to-202` figures differ by what rotation costs the acknowledgement path.
fn receiver(runtime: &tokio::runtime::Runtime, queue: Arc<EmbeddedQueue>, fixed: bool) -> Receiver {
    let vars = Vars::default().with("WEBHOOK_AUTH_HEADER", webhook_receiver::DEFAULT_AUTH_HEADER);
    let vars = if fixed {
        vars.with("WEBHOOK_AUTH_VALUE", "local-webhook-secret")
    } else {
        let source = Arc::new(shared::secrets::FakeSource(std::sync::Mutex::new("local-webhook-secret".into())));
        vars.with_secret_source("WEBHOOK_AUTH_VALUE", source)
    };
    let config = runtime.block_on(Config::from_vars(&vars)).expect("config");
    let table = Arc::new(EmbeddedTable::new());
    Receiver::new(config, Handoff::new(queue, table.clone()), table)
}

/// The event bytes as the runtime hands them over, into the handler's request: read as
/// `lambda_runtime` 1.5's `deserializer::deserialize` reads them (it is not public), then made
/// the request as `serve_http` makes it.
fn request(event: &[u8]) -> lambda_http::Request {
    let event: shared::web::HttpApiEvent =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(event))
            .expect("API Gateway v2 event");
    shared::web::request_from_event(event)
}

async fn drain(queue: &EmbeddedQueue) -> usize {
    let mut drained = 0;
    loop {
        let messages = queue.receive(10, Duration::ZERO).await.expect("receive");
        if messages.is_empty() {
            return drained;
        }
        for message in &messages {
            queue.delete(&message.receipt_handle).await.expect("delete");
        }
        drained += messages.len();
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let queue = Arc::new(EmbeddedQueue::new(Duration::from_secs(30)));
    let receiver = receiver(&runtime, queue.clone(), false);
    let fixed = self::receiver(&runtime, queue.clone(), true);

    // Once, outside the measurement: the path really answers 202 and queues the body.
    runtime.block_on(async {
        let response = receiver.handle(request(EVENT.as_bytes())).await;
        assert_eq!(response.status().as_u16(), 202, "the sample event must be accepted: {:?}", response.body());
        assert_eq!(drain(&queue).await, 1, "exactly one message queued");
    });

    let mut group = c.benchmark_group("webhook-receiver");
    group.bench_function("apigw-v2-event-to-202", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let queue = queue.clone();
            let receiver = &receiver;
            async move {
                let mut timed = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let chunk = (iters - done).min(DRAIN_EVERY);
                    let started = Instant::now();
                    for _ in 0..chunk {
                        let response = receiver.handle(request(std::hint::black_box(EVENT.as_bytes()))).await;
                        let response = shared::web::response_to_event(response);
                        assert_eq!(response.status_code, 202);
                    }
                    timed += started.elapsed();
                    done += chunk;
                    let drained = drain(&queue).await;
                    assert_eq!(drained as u64, chunk, "every webhook queued exactly once");
                }
                timed
            }
        })
    });
    // The same path in its two halves, to show where the time goes (informational).
    group.bench_function("apigw-v2-event-deserialise", |b| b.iter(|| request(std::hint::black_box(EVENT.as_bytes()))));
    for (name, receiver) in [("handle-request-to-202", &receiver), ("handle-request-to-202-fixed-secret", &fixed)] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let queue = queue.clone();
                async move {
                    let mut timed = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let chunk = (iters - done).min(DRAIN_EVERY);
                        let requests: Vec<_> = (0..chunk).map(|_| request(EVENT.as_bytes())).collect();
                        let started = Instant::now();
                        for request in requests {
                            let response = shared::web::response_to_event(receiver.handle(request).await);
                            assert_eq!(response.status_code, 202);
                        }
                        timed += started.elapsed();
                        done += chunk;
                        assert_eq!(drain(&queue).await as u64, chunk, "every webhook queued exactly once");
                    }
                    timed
                }
            })
        });
    }
    group.finish();
}

/// `n` webhooks down the timed path (event bytes → request → handler → 202 response event), the
/// queue drained as in the benchmark.
fn send_webhooks(n: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let queue = Arc::new(EmbeddedQueue::new(Duration::from_secs(30)));
    let receiver = receiver(&runtime, queue.clone(), false);
    runtime.block_on(async {
        for sent in 1..=n {
            let response = shared::web::response_to_event(receiver.handle(request(EVENT.as_bytes())).await);
            assert_eq!(response.status_code, 202);
            if sent % DRAIN_EVERY == 0 {
                assert_eq!(drain(&queue).await as u64, DRAIN_EVERY, "every webhook queued exactly once");
            }
        }
    });
}

criterion_group!(benches, bench);

fn main() {
    match std::env::var("RECEIVER_BENCH_WEBHOOKS") {
        Ok(n) => send_webhooks(n.parse().expect("RECEIVER_BENCH_WEBHOOKS is a count")),
        // What `criterion_main!(benches)` expands to.
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
