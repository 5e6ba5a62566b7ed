//! Processes the tasks start and must stop, and what starting them takes: the local stack on a
//! free port and any child with its output in a log ([`Background`]), both ended on drop; a free
//! loopback port, the end of a log, and the cargo to run.

use anyhow::{Context, bail};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A command for the cargo running this task (`CARGO`, which cargo sets for what it runs, else
/// `cargo` on `PATH`), without the variables `cargo run` set for xtask itself. Build scripts ask
/// to rerun when some of them change (ring's names `CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR` and
/// `OUT_DIR`), so with them a nested build compiled ring and everything above it again, and the
/// next plain `cargo build` compiled them back.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_run) {
            command.env_remove(name);
        }
    }
    command
}

/// Whether `name` is one of the variables cargo sets for a crate it runs (The Cargo Book,
/// "Environment variables Cargo sets for crates"), rather than one a user sets to steer cargo.
fn set_by_cargo_run(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

/// A loopback port nothing listens on (one the system just handed out).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last `lines` lines of a log, for an error message.
pub fn tail(path: &Path, lines: usize) -> String {
    let content = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = content.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child process with its output (stdout and stderr) in a log file, ended when dropped.
pub struct Background {
    name: String,
    child: Child,
    log: PathBuf,
    /// Just before the spawn.
    started: Instant,
    /// Whether the child leads a process group of its own ([`Background::spawn_group`]).
    group: bool,
}

impl Background {
    /// Starts `command`, stdin closed and output to `log`; killed when dropped.
    pub fn spawn(name: &str, command: Command, log: PathBuf) -> anyhow::Result<Self> {
        Self::start(name, command, log, false)
    }

    /// Like [`Background::spawn`], but the child leads a process group of its own (on Unix), for
    /// a child with children of its own (`cargo lambda watch` runs `cargo run` and the functions
    /// under it): when dropped, the whole group gets SIGTERM, up to 5 s to end, then SIGKILL.
    pub fn spawn_group(name: &str, command: Command, log: PathBuf) -> anyhow::Result<Self> {
        Self::start(name, command, log, true)
    }

    fn start(name: &str, mut command: Command, log: PathBuf, group: bool) -> anyhow::Result<Self> {
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
        if group {
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        let started = Instant::now();
        let child = command.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Self { name: name.to_owned(), child, log, started, group })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where its output goes.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// When it was started (just before the spawn).
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited, naming it and quoting the last `lines` lines of its log.
    pub fn check_running(&mut self, lines: usize) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); the end of {}:\n{}", self.name, self.log.display(), tail(&self.log, lines));
        }
        Ok(())
    }

    /// Asks the process group the child leads to end (SIGTERM), waits up to 5 s for the child,
    /// then kills the group (SIGKILL).
    fn end_group(&mut self) {
        #[cfg(unix)]
        {
            // The group this child leads: process_group(0) made the child's id its group id.
            let group = format!("-{}", self.child.id());
            let signal = |name: &str| Command::new("kill").args([name, "--", &group]).stderr(Stdio::null()).status();
            let _ = signal("-TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = signal("-KILL");
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.group {
            self.end_group();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
        let port = free_port()?;
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

#[cfg(test)]
mod tests {
    use super::set_by_cargo_run;

    #[test]
    fn nested_cargo_drops_what_cargo_run_set_and_keeps_what_users_set() {
        for name in ["CARGO_PKG_NAME", "CARGO_PKG_VERSION_MAJOR", "CARGO_MANIFEST_DIR", "OUT_DIR", "CARGO_BIN_NAME"] {
            assert!(set_by_cargo_run(name), "{name}");
        }
        for name in
            ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_PROFILE_RELEASE_DEBUG", "CARGO_TERM_COLOR", "PATH"]
        {
            assert!(!set_by_cargo_run(name), "{name}");
        }
    }
}
