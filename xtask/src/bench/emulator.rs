//! A Lambda Runtime API emulator for the cold-start part ([`super::cold_start`]): it hands the
//! function's runtime its invocations and reports, with when, each `next`, response and error.

use super::http1::read_message;
use super::{ACCOUNT, REGION};
use anyhow::{Context, anyhow};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RUNTIME_PREFIX: &str = "/2018-06-01/runtime";

/// What the emulator saw, with when.
#[derive(Debug)]
pub(super) enum Observed {
    Next(Instant),
    Response { at: Instant, body: Vec<u8> },
    Error { body: Vec<u8> },
    InitError { body: Vec<u8> },
}

struct Invocation {
    id: String,
    body: Vec<u8>,
}

/// The Runtime API on a loopback port: `GET /invocation/next` hands out queued invocations (and
/// waits for one), `POST /invocation/{id}/response|error` and `POST /init/error` are reported.
pub(super) struct Emulator {
    pub(super) port: u16,
    invocations: Option<mpsc::Sender<Invocation>>,
    observed: mpsc::Receiver<Observed>,
    stop: Arc<AtomicBool>,
    next_id: usize,
}

impl Emulator {
    pub(super) fn start(function: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (invocations, queue) = mpsc::channel::<Invocation>();
        let queue = Arc::new(Mutex::new(queue));
        let (report, observed) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}");
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let queue = Arc::clone(&queue);
                let report = report.clone();
                let arn = arn.clone();
                std::thread::spawn(move || {
                    let _ = serve_runtime_connection(stream, &queue, &report, &arn);
                });
            }
        });
        Ok(Self { port, invocations: Some(invocations), observed, stop, next_id: 0 })
    }

    pub(super) fn invoke(&mut self, body: Vec<u8>) -> anyhow::Result<()> {
        self.next_id += 1;
        let id = format!("00000000-0000-4000-8000-{:012x}", self.next_id);
        self.invocations
            .as_ref()
            .context("emulator stopped")?
            .send(Invocation { id, body })
            .map_err(|_| anyhow!("emulator stopped"))
    }

    /// The next observation, within `timeout`.
    pub(super) fn observe(&self, timeout: Duration) -> Option<Observed> {
        self.observed.recv_timeout(timeout).ok()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Wakes the connection waiting in `next` (its queue closes) and the accept loop.
        self.invocations = None;
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_runtime_connection(
    mut stream: TcpStream,
    queue: &Mutex<mpsc::Receiver<Invocation>>,
    report: &mpsc::Sender<Observed>,
    arn: &str,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = Vec::new();
    while let Some((head, body)) = read_message(&mut stream, &mut buffer)? {
        let mut parts = head.first.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let route = path.strip_prefix(RUNTIME_PREFIX).unwrap_or(&path);
        if method == "GET" && route == "/invocation/next" {
            let _ = report.send(Observed::Next(Instant::now()));
            let invocation = {
                let queue = queue.lock().map_err(|_| anyhow!("poisoned"))?;
                match queue.recv() {
                    Ok(invocation) => invocation,
                    Err(_) => return Ok(()),
                }
            };
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() + 30_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: {arn}\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0\r\n\
                 Content-Length: {}\r\n\r\n",
                invocation.id,
                invocation.body.len()
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(&invocation.body)?;
            continue;
        }
        let at = Instant::now();
        let observed = if method == "POST" && route.starts_with("/invocation/") && route.ends_with("/response") {
            Some(Observed::Response { at, body })
        } else if method == "POST" && route.starts_with("/invocation/") && route.ends_with("/error") {
            Some(Observed::Error { body })
        } else if method == "POST" && route == "/init/error" {
            Some(Observed::InitError { body })
        } else {
            None
        };
        let answer: &[u8] = if observed.is_some() {
            b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}"
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        };
        // Reported before answering: the runtime asks for the next event as soon as it has the answer.
        if let Some(observed) = observed {
            let _ = report.send(observed);
        }
        stream.write_all(answer)?;
    }
    Ok(())
}
