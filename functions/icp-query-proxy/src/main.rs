//! Lambda entry point: build clients and config once, then serve.

use icp_query_proxy::{App, Config};
use shared::http_client::ReqwestClient;
use shared::lambda::{Init, serve_http};
use shared::time::SystemClock;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let init = Init::new().await?;
    let config = Config::from_vars(&init.vars).await?;
    let (table, http) = (init.table()?, Arc::new(ReqwestClient::new()?));
    // A query calls ACC, then writes its audit record: open both connections now.
    shared::lambda::warm_up(
        &init.vars,
        vec![
            shared::lambda::warm_table(table.clone(), icp_query_proxy::audit::DOB_COUNTER_PREFIX),
            shared::lambda::warm_upstream("acc", http.clone(), init.vars.required("ACC_BASE_URL")?.to_owned()),
        ],
    )
    .await;
    serve_http(Arc::new(App::new(config, table, http, Arc::new(SystemClock)))).await
}
