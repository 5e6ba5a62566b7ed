//! `cargo run -p local`: the whole gateway on http://127.0.0.1:3000 (`PORT` overrides).

use shared::config::Vars;

fn main() -> anyhow::Result<()> {
    // The queue consumers have a thread of their own (`local::start`); the HTTP front gets the
    // other cores, so on two cores one worker, which no consumer preempts while it holds
    // connections (BENCHMARKS.md, load run).
    let workers = std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1).max(1));
    tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    shared::telemetry::init();
    let vars = Vars::from_env();
    let port: u16 = vars.parse_or("PORT", 3000)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let stack = local::start(vars, listener).await?;
    println!("Claims gateway (local stack) on {}", stack.base_url);
    println!("State: {}", stack.backend.description);
    println!("Routes:");
    for (route, what) in local::routes() {
        println!("  {route:<60} {what}");
    }
    println!("Webhook auth header: {}: {}", stack.hicaps.auth_header(), stack.hicaps.auth_value_hint());
    println!("API keys (Authorization: Bearer <key>):");
    for (key, caller) in &stack.api_keys {
        println!("  {key}  caller={caller}");
    }
    tokio::signal::ctrl_c().await?;
    println!("Stopping.");
    stack.stop();
    Ok(())
}
