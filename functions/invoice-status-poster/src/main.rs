//! Lambda entry point: build clients and config once, then consume SQS batches.

use aws_lambda_events::sqs::SqsEvent;
use invoice_status_poster::{Config, Poster};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::config::Vars;
use shared::http_client::ReqwestClient;
use shared::queue::sqs::SqsQueue;
use shared::store::dynamo::DynamoTable;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let vars = Vars::from_env();
    let config = Config::from_vars(&vars).await?;
    let aws = shared::aws_config().await;
    let table = Arc::new(DynamoTable::from_sdk_config(&aws, vars.required("TABLE_NAME")?));
    let queue = Arc::new(SqsQueue::from_sdk_config(&aws, vars.required("QUEUE_URL")?));
    let dead_letters = Arc::new(SqsQueue::from_sdk_config(&aws, vars.required("DLQ_URL")?));
    let poster = Arc::new(Poster::new(config, table, Arc::new(ReqwestClient::new()?), queue, dead_letters));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let poster = Arc::clone(&poster);
        async move {
            let deadline = (event.context.deadline / 1000) as i64;
            Ok::<_, Error>(poster.handle(event.payload, deadline).await)
        }
    }))
    .await
}
