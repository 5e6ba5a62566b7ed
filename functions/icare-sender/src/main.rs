//! Lambda entry point: one binary for the HTTP API routes and the iCare retry queue
//! ([`shared::lambda::serve_http_and_sqs`] tells their events apart).

use icare_sender::{App, Config, Queues};
use lambda_runtime::Error;
use shared::http_client::ReqwestClient;
use shared::lambda::Init;
use shared::time::SystemClock;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let init = Init::new().await?;
    let config = Config::from_vars(&init.vars).await?;
    let queues = Queues { retries: init.queue("ICARE_QUEUE_URL")?, dead_letters: init.queue("ICARE_DLQ_URL")? };
    let (table, http) = (init.table()?, Arc::new(ReqwestClient::new()?));
    // Requests read and write the table, and notifications and documents go to iCare: open both
    // connections now.
    shared::lambda::warm_up(
        &init.vars,
        vec![
            shared::lambda::warm_table(table.clone(), icare_sender::TABLE_KEY_PREFIXES[0]),
            shared::lambda::warm_upstream("icare", http.clone(), init.vars.required("ICARE_BASE_URL")?.to_owned()),
        ],
    )
    .await;
    shared::lambda::serve_http_and_sqs(Arc::new(App::new(config, table, http, Arc::new(SystemClock), queues))).await
}
