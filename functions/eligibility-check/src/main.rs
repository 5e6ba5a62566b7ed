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
    let (table, http) = (init.table()?, Arc::new(ReqwestClient::new()?));
    // A check calls Claiming.com.au (token, then the check), then writes its audit record: open
    // both connections now.
    shared::lambda::warm_up(
        &init.vars,
        vec![
            shared::lambda::warm_table(table.clone(), eligibility_check::audit::CHECK_PREFIX),
            shared::lambda::warm_upstream(
                "claiming",
                http.clone(),
                init.vars.required(shared::claiming::client::BASE_URL_VARIABLE)?.to_owned(),
            ),
        ],
    )
    .await;
    serve_http(Arc::new(App::new(config, table, http, Arc::new(SystemClock)))).await
}
