//! Lambda entry point: build clients and config once, then serve.

use lambda_http::{Error, service_fn};
use shared::config::Vars;
use shared::handoff::Handoff;
use shared::queue::sqs::SqsQueue;
use shared::store::dynamo::DynamoTable;
use std::sync::Arc;
use webhook_receiver::{Config, Receiver};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let vars = Vars::from_env();
    let config = Config::from_vars(&vars).await?;
    let aws = shared::aws_config().await;
    let table = Arc::new(DynamoTable::from_sdk_config(&aws, vars.required("TABLE_NAME")?));
    let queue = Arc::new(SqsQueue::from_sdk_config(&aws, vars.required("QUEUE_URL")?));
    let receiver = Arc::new(Receiver::new(config, Handoff::new(queue, table.clone()), table));
    lambda_http::run(service_fn(move |request| {
        let receiver = Arc::clone(&receiver);
        async move { Ok::<_, std::convert::Infallible>(receiver.handle(request).await) }
    }))
    .await
}
