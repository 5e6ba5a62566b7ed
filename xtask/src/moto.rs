//! The pinned moto server the AWS adapters are tested against (DynamoDB and SQS over their real
//! wire protocols, on loopback).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MOTO_VERSION: &str = "5.2.5";
/// The HTTP server in front of moto's WSGI app (`moto_server.py` says why it is not moto's own).
const GRANIAN_VERSION: &str = "2.8.9";

/// Requirements installed in the venv: moto and its server for the tests, the IaC checkers for
/// the template.
fn requirements() -> Vec<String> {
    let mut requirements = vec![format!("moto[server]=={MOTO_VERSION}"), format!("granian=={GRANIAN_VERSION}")];
    requirements.extend(crate::iac::REQUIREMENTS.iter().map(|r| (*r).to_owned()));
    requirements
}

fn python() -> anyhow::Result<String> {
    for candidate in ["python3", "python"] {
        if Command::new(candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return Ok(candidate.to_owned());
        }
    }
    bail!(
        "Python 3 is required to run moto (the AWS wire-protocol server the tests use); install python3 with venv and pip"
    )
}

/// Creates `target/xtask-venv` with the pinned requirements unless it already has them.
pub fn ensure_venv(root: &Path) -> anyhow::Result<PathBuf> {
    ensure_venv_with(&root.join("target").join("xtask-venv"), &requirements())
}

/// Creates the venv `venv` with `requirements` (pinned) unless it already has them.
pub fn ensure_venv_with(venv: &Path, requirements: &[String]) -> anyhow::Result<PathBuf> {
    let venv = venv.to_path_buf();
    let stamp = venv.join("requirements.txt");
    let wanted = requirements.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|have| have == wanted) {
        return Ok(venv);
    }
    let python = python()?;
    println!("xtask: creating {} with {}", venv.display(), requirements.join(", "));
    let status = Command::new(&python).args(["-m", "venv"]).arg(&venv).status().context("python3 -m venv")?;
    if !status.success() {
        bail!("could not create a venv with {python} -m venv (on Debian: apt-get install python3-venv)");
    }
    let pip = venv.join("bin").join("pip");
    let status = Command::new(&pip)
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(requirements)
        .status()
        .context("pip install")?;
    if !status.success() {
        bail!("pip could not install {}", requirements.join(", "));
    }
    std::fs::write(&stamp, wanted)?;
    Ok(venv)
}

/// moto's app (what `moto_server` serves), patched (`moto_server.py`) where our tests need it to
/// behave as AWS does, and served by granian instead of werkzeug's development server:
/// - Each `PutItem` runs under one lock. moto serves on threads and checks a write's condition,
///   then stores the item, with nothing held between: two concurrent conditional puts on one key
///   can both pass, where DynamoDB lets one. The end-to-end test that delivers each invoice three
///   times at once found it (one invoice posted twice with no crash, under CI load).
/// - A table `Query` reads its partition only, and SQS sends and receives do not count the
///   queue. moto walks and sorts the whole table on each Query, and walks the whole queue three
///   times on each SendMessage and on each message received, so a run slows as it grows. The
///   soak's crash run at 2,000 webhooks fell behind that way until moto refused connections
///   (py-spy: 60% of moto's CPU in those walks).
/// - Speed alone: werkzeug's development server (a thread per connection, `Connection: close`)
///   and moto's per-request lookups of its service (a directory listing, 180 URL patterns) took
///   about 5 ms of CPU for a `GetItem`, of which moto's app took under 2. With the lookups'
///   answers kept and granian (an HTTP/1.1 server in Rust with a WSGI thread pool) in front, a
///   `PutItem` or `GetItem` on loopback takes about 1.5–2.5 ms by the hour (200 each, a
///   connection per request). Every test that uses moto, and the bench's first invocations, wait on it less;
///   what moto answers is unchanged.
const MOTO_SERVER: &str = include_str!("moto_server.py");

pub struct Server {
    child: Child,
    port: u16,
}

impl Server {
    pub fn start(venv: &Path) -> anyhow::Result<Self> {
        let port = crate::process::free_port()?;
        let child = Command::new(venv.join("bin").join("python"))
            .args(["-c", MOTO_SERVER, "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting moto")?;
        let mut server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = server.child.try_wait()? {
                bail!("moto exited at start ({status})");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("moto did not answer on port {port} within 30 s")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment that points the AWS SDK at this server, with dummy credentials so no
    /// real account is ever touched.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_SESSION_TOKEN", "testing".into()),
            ("AWS_REGION", "ap-southeast-2".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve_forever() -> anyhow::Result<()> {
    let venv = ensure_venv(&crate::repo_root())?;
    let mut server = Server::start(&venv)?;
    println!("moto {MOTO_VERSION} is serving DynamoDB and SQS. In another shell:");
    for (name, value) in server.environment() {
        println!("  export {name}={value}");
    }
    println!("Ctrl-C stops it.");
    let status = server.child.wait()?;
    bail!("moto exited ({status})")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// granian serves from a worker process forked from the one xtask starts: stopping the
    /// server must not leave that worker holding the port (it dies with its parent).
    #[test]
    fn a_stopped_server_leaves_nothing_listening() {
        let venv = ensure_venv(&crate::repo_root()).expect("the moto venv");
        let server = Server::start(&venv).expect("moto starts");
        let port = server.port();
        assert!(crate::lambda::http_ok(port, "/moto-api/"), "moto answers 200");
        drop(server);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "something still listens on moto's port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
