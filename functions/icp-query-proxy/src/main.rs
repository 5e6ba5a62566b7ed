//! Lambda entry point: build clients and config once, then serve.

use lambda_http::{Error, service_fn};
use shared::config::Vars;
use shared::http_client::ReqwestClient;
use shared::store::dynamo::DynamoTable;
use shared::time::SystemClock;
use std::sync::Arc;
use icp_query_proxy::{App, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let vars = Vars::from_env();
    let config = Config::from_vars(&vars).await?;
    let aws = shared::aws_config().await;
    let table = Arc::new(DynamoTable::from_sdk_config(&aws, vars.required("TABLE_NAME")?));
    let app = Arc::new(App::new(config, table, Arc::new(ReqwestClient::new()?), Arc::new(SystemClock)));
    lambda_http::run(service_fn(move |request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, std::convert::Infallible>(app.handle(request).await) }
    }))
    .await
}
