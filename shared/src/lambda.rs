//! What every function's `main` does at init, once: logging, configuration from the environment,
//! the AWS SDK configuration and the clients built from it. Nothing here runs per invocation.

use crate::config::{ConfigError, Vars};
use crate::queue::sqs::SqsQueue;
use crate::store::dynamo::DynamoTable;
use crate::web::HttpHandler;
use std::sync::Arc;

pub struct Init {
    pub vars: Vars,
    pub aws: aws_config::SdkConfig,
}

impl Init {
    pub async fn new() -> Self {
        crate::telemetry::init();
        let aws = crate::aws_config().await;
        let vars = Vars::from_env().with_secrets_manager(aws_sdk_secretsmanager::Client::new(&aws));
        Self { vars, aws }
    }

    /// The table named by `TABLE_NAME`.
    pub fn table(&self) -> Result<Arc<DynamoTable>, ConfigError> {
        Ok(Arc::new(DynamoTable::from_sdk_config(&self.aws, self.vars.required("TABLE_NAME")?)))
    }

    /// The queue whose URL is in `variable`.
    pub fn queue(&self, variable: &str) -> Result<Arc<SqsQueue>, ConfigError> {
        Ok(Arc::new(SqsQueue::from_sdk_config(&self.aws, self.vars.required(variable)?)))
    }
}

/// Serves an HTTP API handler under the Lambda runtime until the environment is shut down.
pub async fn serve_http(handler: Arc<dyn HttpHandler>) -> Result<(), lambda_http::Error> {
    lambda_http::run(lambda_http::service_fn(move |request| {
        let handler = Arc::clone(&handler);
        async move { Ok::<_, std::convert::Infallible>(handler.call(request).await) }
    }))
    .await
}
