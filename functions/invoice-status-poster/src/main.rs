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
    let poster = Arc::new(Poster::new(config, init.table()?, http, init.queue("QUEUE_URL")?, init.queue("DLQ_URL")?));
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

/// The invocation's deadline in epoch seconds. A deadline already past is not Lambda's (cargo
/// lambda watch sends a fixed `600000` ms, in 1970): then assume the template's 30 s timeout.
fn invocation_deadline(deadline_ms: u64) -> i64 {
    let now = chrono::Utc::now().timestamp();
    let deadline = (deadline_ms / 1000) as i64;
    if deadline > now { deadline } else { now + 30 }
}
