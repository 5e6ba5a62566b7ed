//! What every function's `main` does at init, once: logging, configuration from the environment,
//! the AWS SDK configuration and the clients built from it. Nothing here runs per invocation.

use crate::config::{ConfigError, Vars};
use crate::queue::sqs::SqsQueue;
use crate::queue::sqs_send::SqsSender;
use crate::store::dynamo::DynamoTable;
use crate::web::HttpHandler;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::RequestExt;
use std::sync::Arc;

pub struct Init {
    pub vars: Vars,
    pub aws: aws_config::SdkConfig,
}

impl Init {
    pub async fn new() -> Result<Self, ConfigError> {
        crate::telemetry::init();
        let vars = Vars::from_env();
        let aws = crate::aws_config(&vars).await?;
        let vars = vars.with_secrets_manager(aws_sdk_secretsmanager::Client::new(&aws));
        Ok(Self { vars, aws })
    }

    /// The table named by `TABLE_NAME`.
    pub fn table(&self) -> Result<Arc<DynamoTable>, ConfigError> {
        Ok(Arc::new(DynamoTable::from_sdk_config(&self.aws, self.vars.required("TABLE_NAME")?)))
    }

    /// A sender to the queue whose URL is in `variable`: one signed request per message, for a
    /// handler whose only queue operation is the send on its hot path.
    pub fn queue_sender(&self, variable: &str) -> Result<Arc<SqsSender>, ConfigError> {
        Ok(Arc::new(SqsSender::new(&self.aws, &self.vars, self.vars.required(variable)?)?))
    }

    /// The queue whose URL is in `variable`.
    pub fn queue(&self, variable: &str) -> Result<Arc<SqsQueue>, ConfigError> {
        Ok(Arc::new(SqsQueue::from_sdk_config(&self.aws, self.vars.required(variable)?)))
    }
}

/// Serves an HTTP API handler under the Lambda runtime until the environment is shut down.
pub async fn serve_http(handler: Arc<dyn HttpHandler>) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<crate::web::HttpApiEvent>| {
        let handler = Arc::clone(&handler);
        async move {
            let request = crate::web::request_from_event(event.payload).with_lambda_context(event.context);
            Ok::<_, std::convert::Infallible>(crate::web::response_to_event(handler.call(request).await))
        }
    }))
    .await
}
