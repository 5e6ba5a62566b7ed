//! Lambda entry point: build clients and config once, then consume SQS batches.

use aws_lambda_events::sqs::SqsEvent;
use invoice_status_poster::{Config, Poster};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::http_client::ReqwestClient;
use shared::lambda::Init;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let init = Init::new().await;
    let config = Config::from_vars(&init.vars).await?;
    let http = Arc::new(ReqwestClient::new()?);
    let poster = Arc::new(Poster::new(config, init.table()?, http, init.queue("QUEUE_URL")?, init.queue("DLQ_URL")?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let poster = Arc::clone(&poster);
        async move {
            // The idempotency locks this invocation takes expire when Lambda would stop it.
            let deadline = (event.context.deadline / 1000) as i64;
            Ok::<_, Error>(poster.handle(event.payload, deadline).await)
        }
    }))
    .await
}
