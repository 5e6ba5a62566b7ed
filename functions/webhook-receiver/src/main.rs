//! Lambda entry point: build clients and config once, then serve.

use shared::handoff::Handoff;
use shared::lambda::{Init, serve_http};
use std::sync::Arc;
use webhook_receiver::{Config, Receiver};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let init = Init::new().await?;
    let config = Config::from_vars(&init.vars).await?;
    let table = init.table()?;
    let sender = init.queue_sender("QUEUE_URL")?;
    // The first webhook's one AWS call is its SendMessage: open that connection now.
    shared::lambda::warm_up(&init.vars, vec![shared::lambda::warm_queue_sender(sender.clone())]).await;
    let handoff = Handoff::new(sender, table.clone());
    serve_http(Arc::new(Receiver::new(config, handoff, table))).await
}
