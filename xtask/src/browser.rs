//! The local stack's flow page (`GET /local/`) in a real browser: headless Chromium driven by
//! ChromeDriver over WebDriver (W3C), the protocol spoken here with reqwest rather than a client
//! crate, since five calls are all the test needs. It clicks "send invoice", waits until the
//! page's timeline shows the post, checks HICAPS's posts table, and saves a screenshot as
//! `target/flow-page.png`. `cargo xtask test` runs it after schemathesis.
//!
//! Chromium and ChromeDriver are Debian's (`chromium`, `chromium-driver`), installed with apt-get
//! when missing, as the moto venv is. The flags are those that work on a machine with no outside
//! network: without the background-networking ones Chromium keeps trying Google's hosts.

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// W3C's key for an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// An upper bound for the invoice's post to show: it takes well under a second.
const SHOWS_WITHIN: Duration = Duration::from_secs(30);

/// Installs Chromium and ChromeDriver from Debian's packages if either is missing.
pub fn ensure_chromium() -> anyhow::Result<()> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    println!("xtask: installing Debian's chromium and chromium-driver for the browser test");
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends", "chromium", "chromium-driver"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .context("running apt-get (the browser test needs Debian's chromium and chromium-driver)")?;
    if !status.success() {
        bail!("apt-get install chromium chromium-driver failed ({status}); as root, or install them by hand");
    }
    Ok(())
}

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(root: &Path) -> anyhow::Result<()> {
    ensure_chromium()?;
    let stack = crate::process::LocalStack::start(root, &[])?;
    let port = crate::process::free_port()?;
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting chromedriver")?;
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    crate::process::wait_for_port(port, Duration::from_secs(30)).context("chromedriver")?;
    let profile = root.join("target").join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let screenshot = root.join("target").join("flow-page.png");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(click_send_invoice(&driver.url, &stack.url, &profile, &screenshot));
    drop(driver);
    drop(stack);
    result?;
    println!("xtask: flow page: the invoice's post showed in headless Chromium; screenshot {}", screenshot.display());
    Ok(())
}

async fn click_send_invoice(driver: &str, stack: &str, profile: &Path, screenshot: &Path) -> anyhow::Result<()> {
    shared::install_tls_provider();
    let http = reqwest::Client::new();
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000", format!("--user-data-dir={}", profile.display()),
            ],
        },
    }}});
    let session = call(&http, reqwest::Method::POST, &format!("{driver}/session"), Some(capabilities)).await?;
    let session_id = session["sessionId"].as_str().context("WebDriver gave no session id")?.to_owned();
    let session = format!("{driver}/session/{session_id}");
    let result = async {
        call(&http, reqwest::Method::POST, &format!("{session}/url"), Some(json!({"url": format!("{stack}/local/")})))
            .await?;
        let button =
            find(&http, &session, "#send-invoice-submitted").await?.context("no #send-invoice-submitted button")?;
        call(&http, reqwest::Method::POST, &format!("{session}/element/{button}/click"), Some(json!({}))).await?;
        let deadline = Instant::now() + SHOWS_WITHIN;
        while find(&http, &session, r#"#work .stage[data-stage="posted"]"#).await?.is_none() {
            if Instant::now() > deadline {
                save_screenshot(&http, &session, screenshot).await?;
                bail!(
                    "the timeline did not show the invoice as posted within {} s; see {}",
                    SHOWS_WITHIN.as_secs(),
                    screenshot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        find(&http, &session, "#posts tr")
            .await?
            .context("the timeline shows the post, but HICAPS's posts table is empty")?;
        save_screenshot(&http, &session, screenshot).await
    }
    .await;
    let _ = call(&http, reqwest::Method::DELETE, &session, None).await;
    result
}

/// One WebDriver command; its `value`.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.with_context(|| format!("WebDriver {url}"))?;
    let status = response.status();
    let answer: Value = response.json().await.with_context(|| format!("WebDriver {url}: not JSON"))?;
    if !status.is_success() {
        bail!("WebDriver {url} answered {status}: {}", answer["value"]["message"]);
    }
    Ok(answer["value"].clone())
}

/// The first element matching `selector`, if any.
async fn find(http: &reqwest::Client, session: &str, selector: &str) -> anyhow::Result<Option<String>> {
    let found = call(
        http,
        reqwest::Method::POST,
        &format!("{session}/elements"),
        Some(json!({"using": "css selector", "value": selector})),
    )
    .await?;
    Ok(found
        .as_array()
        .and_then(|elements| elements.first())
        .and_then(|element| element[ELEMENT].as_str())
        .map(str::to_owned))
}

async fn save_screenshot(http: &reqwest::Client, session: &str, path: &Path) -> anyhow::Result<()> {
    let encoded = call(http, reqwest::Method::GET, &format!("{session}/screenshot"), None).await?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_str().unwrap_or_default())
        .context("screenshot is not base64")?;
    std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
}
