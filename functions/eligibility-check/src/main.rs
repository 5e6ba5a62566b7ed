//! Lambda entry point: build clients and config once, then serve.

use eligibility_check::{App, Config};
use shared::http_client::ReqwestClient;
use shared::lambda::{Init, serve_http};
use shared::time::SystemClock;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let init = Init::new().await?;
    let config = Config::from_vars(&init.vars).await?;
    serve_http(Arc::new(App::new(config, init.table()?, Arc::new(ReqwestClient::new()?), Arc::new(SystemClock)))).await
}
