//! Lambda entry point: build clients and config once, then consume SQS batches.

use aws_lambda_events::sqs::SqsEvent;
use invoice_status_poster::{Config, Poster};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::http_client::ReqwestClient;
use shared::lambda::Init;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let init = Init::new().await?;
    let config = Config::from_vars(&init.vars).await?;
    let http = Arc::new(ReqwestClient::new()?);
    let table = init.table()?;
    let poster = Arc::new(Poster::new(config, table.clone(), http, init.queue("QUEUE_URL")?, init.queue("DLQ_URL")?));
    // The first record reads and writes the table and posts with HICAPS's token: open the table's
    // connection and fetch the token now. (Callback hosts come with each webhook.)
    let hicaps = Arc::clone(&poster);
    shared::lambda::warm_up(
        &init.vars,
        vec![
            shared::lambda::warm_table(table, shared::idempotency::KEY_PREFIX),
            ("hicaps-token", Box::pin(async move { hicaps.warm_up_hicaps().await })),
        ],
    )
    .await;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let poster = Arc::clone(&poster);
        async move {
            // The idempotency locks this invocation takes expire when Lambda would stop it.
            let deadline = invocation_deadline(event.context.deadline);
            Ok::<_, Error>(poster.handle(event.payload, deadline).await)
        }
    }))
    .await
}

/// The invocation's deadline in epoch seconds, rounded up: the locks lapse then, and one that
/// lapsed before Lambda ends the invocation would let a redelivery post while this one still
/// could (the moto end-to-end test caught exactly that). A deadline already past is not Lambda's
/// (cargo lambda watch sends a fixed `600000` ms, in 1970): then assume the template's 30 s.
fn invocation_deadline(deadline_ms: u64) -> i64 {
    let now_ms = shared::time::now_millis();
    let deadline_ms = i64::try_from(deadline_ms).unwrap_or(i64::MAX);
    let deadline_ms = if deadline_ms > now_ms { deadline_ms } else { now_ms.saturating_add(30_000) };
    shared::time::seconds_rounded_up(deadline_ms)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_deadline_is_rounded_up_and_a_past_one_replaced() {
        let now = shared::time::now_millis();
        let soon = u64::try_from(now + 10_001).expect("positive");
        assert_eq!(super::invocation_deadline(soon), (now + 10_001 + 999) / 1000);
        let assumed = super::invocation_deadline(600_000);
        assert!((now / 1000 + 30..=now / 1000 + 32).contains(&assumed), "{assumed}");
    }
}
