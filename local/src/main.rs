//! `cargo run -p local`: the whole gateway on http://127.0.0.1:3000 (`PORT` overrides).

use shared::config::Vars;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
