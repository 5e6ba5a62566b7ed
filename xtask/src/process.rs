//! Processes the tasks start and must stop: the local stack on a free port, killed on drop.

use anyhow::{Context, bail};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `target/debug/local` on a free loopback port, on the embedded store and queues; killed when
/// dropped.
pub struct LocalStack {
    child: Child,
    pub url: String,
}

impl LocalStack {
    /// Starts the stack `cargo test --workspace` built, with `envs` added, and waits until it
    /// accepts connections.
    pub fn start(root: &Path, envs: &[(&str, &str)]) -> anyhow::Result<Self> {
        let port = crate::moto::free_port()?;
        let child = Command::new(root.join("target").join("debug").join("local"))
            .current_dir(root)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "off")
            // The embedded store and queues: the answers are what is under test, not moto.
            .env_remove("AWS_ENDPOINT_URL")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the local stack (target/debug/local)")?;
        let stack = LocalStack { child, url: format!("http://127.0.0.1:{port}") };
        wait_for_port(port, Duration::from_secs(60)).with_context(|| format!("the local stack on {}", stack.url))?;
        Ok(stack)
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts connections on the loopback `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing answered on port {port} within {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
