//! moto for the cold-start part ([`super::cold_start`]): the functions' table and queues, fresh for
//! each run, and the keep-alive relay (plain, and behind TLS with a throw-away CA) through which
//! the functions reach it, clocking the time spent waiting on moto.

use super::http1::{Head, read_message};
use super::{MAX_RECEIVE_COUNT, REGION, TABLE_NAME};
use anyhow::{Context, bail};
use shared::queue::sqs::SqsQueue;
use shared::store::dynamo::DynamoTable;
use shared::store::{Condition, ItemPut};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the functions' state lives in moto.
pub(super) struct Moto {
    pub(super) server: crate::moto::Server,
    /// The functions' AWS endpoint: a keep-alive relay to moto (see [`start_keep_alive_relay`]).
    pub(super) relay_port: u16,
    /// The same relay behind TLS, with a certificate from a throw-away CA (see [`TlsFront`]).
    pub(super) tls: TlsFront,
    /// Time spent waiting on moto, as the relay saw it.
    pub(super) wait: Arc<MotoWait>,
    runtime: tokio::runtime::Runtime,
    config: aws_config::SdkConfig,
    /// The reference data (benefit schedule, member registry) every table is loaded with.
    reference: Vec<shared::store::Item>,
    pub(super) table: String,
    pub(super) work_queue: String,
    pub(super) dead_letter_queue: String,
    pub(super) icare_queue: String,
}

impl Moto {
    /// A new table with only the reference data and new, empty queues for the next run (the old
    /// ones deleted), so every run meets the same moto: its calls slow down as a table or queue
    /// grows (a run of the poster leaves some 1,500 items, of the receiver a thousand messages),
    /// which DynamoDB's and SQS's do not. (moto, like SQS, allows one PurgeQueue a minute.)
    pub(super) fn fresh_state(&mut self, tag: &str) -> anyhow::Result<()> {
        let old_queues = [&self.work_queue, &self.dead_letter_queue, &self.icare_queue];
        let (table, work, dlq, icare) = self.runtime.block_on(async {
            let sqs = aws_sdk_sqs::Client::new(&self.config);
            for queue in old_queues.into_iter().filter(|queue| !queue.is_empty()) {
                sqs.delete_queue()
                    .queue_url(queue)
                    .send()
                    .await
                    .with_context(|| format!("deleting {queue} in moto"))?;
            }
            if !self.table.is_empty() {
                let dynamodb = aws_sdk_dynamodb::Client::new(&self.config);
                dynamodb
                    .delete_table()
                    .table_name(&self.table)
                    .send()
                    .await
                    .with_context(|| format!("deleting {} in moto", self.table))?;
            }
            let name = format!("{TABLE_NAME}-{tag}");
            let table = DynamoTable::from_sdk_config(&self.config, &name);
            table.ensure_exists().await.context("creating the table in moto")?;
            for item in &self.reference {
                table.put(item, Condition::Always).await.context("loading reference data into moto")?;
            }
            let (work, dlq) = SqsQueue::ensure_exists(
                &sqs,
                &format!("{TABLE_NAME}-work-{tag}"),
                Duration::from_secs(180),
                MAX_RECEIVE_COUNT,
            )
            .await?;
            let (icare, _) = SqsQueue::ensure_exists(
                &sqs,
                &format!("{TABLE_NAME}-icare-{tag}"),
                Duration::from_secs(10),
                MAX_RECEIVE_COUNT,
            )
            .await?;
            anyhow::Ok((name, work.url().to_owned(), dlq.url().to_owned(), icare.url().to_owned()))
        })?;
        (self.table, self.work_queue, self.dead_letter_queue, self.icare_queue) = (table, work, dlq, icare);
        Ok(())
    }
}

pub(super) fn start_moto(root: &Path, venv: &Path) -> anyhow::Result<Moto> {
    let server = crate::moto::Server::start(venv)?;
    let environment = server.environment();
    let setting =
        |name: &str| environment.iter().find(|(key, _)| *key == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let credentials = aws_sdk_sqs::config::Credentials::new(
        setting("AWS_ACCESS_KEY_ID"),
        setting("AWS_SECRET_ACCESS_KEY"),
        Some(setting("AWS_SESSION_TOKEN")),
        None,
        "xtask-bench",
    );
    let config = runtime.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(shared::aws_http_client(&shared::config::Vars::from_env())?)
            .endpoint_url(server.endpoint())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(credentials)
            .load(),
    );
    let read = |file: &str| {
        std::fs::read_to_string(root.join("local/data").join(file))
            .with_context(|| format!("reading local/data/{file}"))
    };
    let reference = shared::program::reference::schedule_items(&read("benefit-schedule.json")?)?
        .into_iter()
        .chain(shared::program::reference::member_items(&read("member-registry.json")?)?)
        .collect();
    let wait = Arc::new(MotoWait::default());
    let relay_port = start_keep_alive_relay(server.port(), None, Arc::clone(&wait))?;
    let tls = TlsFront::new(&root.join("target").join("bench-tls"))?;
    let tls_port = start_keep_alive_relay(server.port(), Some(Arc::clone(&tls.config)), Arc::clone(&wait))?;
    Ok(Moto {
        server,
        relay_port,
        tls: TlsFront { port: tls_port, ..tls },
        wait,
        runtime,
        config,
        reference,
        table: String::new(),
        work_queue: String::new(),
        dead_letter_queue: String::new(),
        icare_queue: String::new(),
    })
}

/// In Lambda the SDK keeps its connection to SQS or DynamoDB alive between invocations. moto's
/// own server closed every connection (`Connection: close`), so a function talking to it directly
/// opened a TCP connection per AWS call. The relay keeps the function's connection alive and
/// opens one to moto per request itself, so that cost lands in xtask, not in the function's CPU
/// figure. granian, which now serves moto, would keep a connection; the relay still opens one per
/// request, as issue 19 asked. Requests and answers pass unchanged but for `Connection`.
///
/// With `tls`, the relay speaks HTTPS to the function (as every AWS endpoint does), so a cold
/// start pays its handshake, and keeps that connection alive as AWS's endpoints do.
fn start_keep_alive_relay(
    moto_port: u16,
    tls: Option<Arc<rustls::ServerConfig>>,
    wait: Arc<MotoWait>,
) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            wait.connections.fetch_add(1, Ordering::Relaxed);
            let (wait, tls) = (Arc::clone(&wait), tls.clone());
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let _ = match tls {
                    Some(config) => {
                        rustls::ServerConnection::new(config).map_err(anyhow::Error::from).and_then(|connection| {
                            relay_connection(&mut rustls::StreamOwned::new(connection, stream), moto_port, &wait)
                        })
                    }
                    None => relay_connection(&mut { stream }, moto_port, &wait),
                };
            });
        }
    });
    Ok(port)
}

/// A throw-away CA and a certificate for 127.0.0.1 it signed, made with `openssl` for this run:
/// the functions trust the CA through `AWS_CA_BUNDLE`, as they would a private endpoint's.
pub(super) struct TlsFront {
    config: Arc<rustls::ServerConfig>,
    pub(super) ca_bundle: PathBuf,
    pub(super) port: u16,
}

impl TlsFront {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        std::fs::create_dir_all(dir)?;
        let openssl = |args: &[&str]| -> anyhow::Result<()> {
            let output = Command::new("openssl")
                .current_dir(dir)
                .args(args)
                .output()
                .context("running openssl (Debian's openssl package)")?;
            if !output.status.success() {
                bail!("openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
            }
            Ok(())
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=xtask bench CA"],
                &["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        )?;
        openssl(
            &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]].concat(),
        )?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ])?;
        shared::install_tls_provider();
        let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key"))?;
        let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key)?;
        Ok(Self { config: Arc::new(config), ca_bundle: dir.join("ca.pem"), port: 0 })
    }
}

/// The time during which at least one request to moto was outstanding (concurrent requests
/// counted once), and how many requests there were: how much of an invocation was moto's.
#[derive(Default)]
pub(super) struct MotoWait {
    state: Mutex<MotoWaitState>,
    /// Client connections the relay accepted: a warm function should open none.
    pub(super) connections: AtomicUsize,
}

#[derive(Default)]
struct MotoWaitState {
    in_flight: usize,
    busy_since: Option<Instant>,
    busy: Duration,
    requests: u64,
}

impl MotoWait {
    fn begin(&self) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.in_flight == 0 {
            state.busy_since = Some(Instant::now());
        }
        state.in_flight += 1;
        state.requests += 1;
    }

    fn end(&self) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.in_flight -= 1;
        if state.in_flight == 0
            && let Some(since) = state.busy_since.take()
        {
            state.busy += since.elapsed();
        }
    }

    /// (busy time so far, requests so far).
    pub(super) fn reading(&self) -> (Duration, u64) {
        let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (state.busy + state.busy_since.map(|since| since.elapsed()).unwrap_or_default(), state.requests)
    }
}

fn relay_connection(client: &mut (impl Read + Write), moto_port: u16, wait: &MotoWait) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    while let Some((head, body)) = read_message(client, &mut buffer)? {
        wait.begin();
        let answer = relay_request(&head, &body, moto_port);
        wait.end();
        let (answer, answer_body) = answer?;
        client.write_all(&message_bytes(&answer, &answer_body, "keep-alive"))?;
        client.flush()?;
    }
    Ok(())
}

fn relay_request(head: &Head, body: &[u8], moto_port: u16) -> anyhow::Result<(Head, Vec<u8>)> {
    {
        let mut upstream = TcpStream::connect(("127.0.0.1", moto_port))?;
        upstream.set_nodelay(true)?;
        upstream.write_all(&message_bytes(head, body, "close"))?;
        read_message(&mut upstream, &mut Vec::new())?.context("moto closed without answering")
    }
}

/// `head` and `body` as one HTTP/1.1 message with a Content-Length (chunked bodies arrive here
/// already joined) and the given `Connection`.
fn message_bytes(head: &Head, body: &[u8], connection: &str) -> Vec<u8> {
    let mut bytes = format!("{}\r\n", head.first).into_bytes();
    for (name, value) in &head.headers {
        if !matches!(name.as_str(), "connection" | "content-length" | "transfer-encoding" | "keep-alive") {
            bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    bytes.extend_from_slice(format!("content-length: {}\r\nconnection: {connection}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    bytes
}
