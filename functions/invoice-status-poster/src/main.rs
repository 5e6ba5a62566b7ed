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
            let deadline = shared::lambda::invocation_deadline(event.context.deadline);
            Ok::<_, Error>(poster.handle(event.payload, deadline).await)
        }
    }))
    .await
}
