//! Operator tasks against DynamoDB and SQS (a real account, or moto with AWS_ENDPOINT_URL).

use anyhow::{Context, bail};
use shared::queue::sqs::SqsQueue;
use shared::store::dynamo::DynamoTable;
use shared::store::{Condition, ItemPut};

fn option<'a>(options: &'a [String], name: &str) -> Option<&'a str> {
    options.iter().position(|o| o == name).and_then(|i| options.get(i + 1)).map(String::as_str)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Lists the dead-letter queue, or sends chosen letters back to the work queue
/// (`shared::program::replay`). Letters the poster dead-lettered carry
/// `{"kind":"deadLetter","reason":..,"message":..}`: the original goes back, marked as a replay.
/// (SQS's StartMessageMoveTask would do the plain case, but it cannot unwrap ours and moto lacks it.)
///
/// `--list` prints id, type, reason and age of each letter and removes nothing. `--id ID`
/// (repeatable), `--since TIME` (RFC 3339, or an age such as `6h`) and `--reason TEXT` choose
/// letters; `--dry-run` says which would go back. `--show-personal-data` also prints each letter's
/// detail, which may quote the payload.
pub fn replay_dlq(options: &[String]) -> anyhow::Result<()> {
    use shared::program::replay::{Mode, Selection, describe_age, parse_since, run};
    const USAGE: &str = "usage: cargo xtask replay-dlq --queue-url URL --dlq-url URL [--list] [--id ID]... [--since TIME] [--reason TEXT] [--dry-run] [--show-personal-data]";
    // A letter's detail (HICAPS's answer, serde's message) may quote the webhook's personal data.
    let show_personal_data = options.iter().any(|o| o == "--show-personal-data");
    let (Some(queue_url), Some(dlq_url)) = (option(options, "--queue-url"), option(options, "--dlq-url")) else {
        bail!(USAGE);
    };
    let now_ms = chrono_now_ms();
    let since_ms = match option(options, "--since") {
        Some(text) => Some(
            parse_since(text, now_ms)
                .with_context(|| format!("--since {text}: an RFC 3339 time or an age such as 6h"))?,
        ),
        None => None,
    };
    let ids: Vec<String> = options.windows(2).filter(|pair| pair[0] == "--id").map(|pair| pair[1].clone()).collect();
    let selection = Selection { ids, since_ms, reason: option(options, "--reason").map(str::to_owned) };
    let mode = if options.iter().any(|o| o == "--list") {
        Mode::List
    } else if options.iter().any(|o| o == "--dry-run") {
        Mode::DryRun
    } else {
        Mode::Replay
    };
    runtime()?.block_on(async {
        let config = shared::aws_config(&shared::config::Vars::from_env()).await?;
        let queue = SqsQueue::from_sdk_config(&config, queue_url);
        let dlq = SqsQueue::from_sdk_config(&config, dlq_url);
        let pass = run(&dlq, &queue, &selection, mode).await.context("walking the dead-letter queue")?;
        let shown = if mode == Mode::List { &pass.letters } else { &pass.selected };
        for letter in shown {
            let age = describe_age(now_ms.saturating_sub(letter.dead_lettered_at_ms));
            println!("{:<38} {:<44} {:>8}  {}", letter.id, letter.kind, age, letter.reason);
            if let (true, Some(detail)) = (show_personal_data, &letter.detail) {
                println!("    detail: {detail}");
            }
        }
        match mode {
            Mode::List => println!("{} dead letter(s); none removed", pass.letters.len()),
            Mode::DryRun => println!("would replay {} of {} dead letter(s)", pass.selected.len(), pass.letters.len()),
            Mode::Replay => println!("replayed {} of {} dead letter(s)", pass.replayed, pass.letters.len()),
        }
        Ok(())
    })
}

/// What happened to a webhook (or decision) or an invoice, as a timeline: from the local stack's
/// `GET /local/inspect/...` (`--url`, default http://127.0.0.1:3000), or from a DynamoDB table
/// (`--table NAME`, AWS credentials from the environment). The records hold no personal data;
/// `--show-personal-data` adds a dead letter's detail, which may quote the webhook, read from the
/// dead-letter queue (the local stack's, or `--dlq-url` with `--queue-url` beside `--table`).
pub fn inspect(options: &[String]) -> anyhow::Result<()> {
    use shared::program::inspect::{self, InvoiceReport, WorkReport};
    const USAGE: &str = "usage: cargo xtask inspect (--webhook-id ID | --invoice-id ID) [--table NAME [--queue-url URL --dlq-url URL] | --url URL] [--json] [--show-personal-data]";
    let json = options.iter().any(|o| o == "--json");
    let show_personal_data = options.iter().any(|o| o == "--show-personal-data");
    let webhook_id = option(options, "--webhook-id");
    let invoice_id = option(options, "--invoice-id");
    if webhook_id.is_some() == invoice_id.is_some() {
        bail!(USAGE);
    }
    // Written, not printed: a reader that stops early (`| head`) is not an error.
    let print = |text: String, value: serde_json::Value| {
        use std::io::Write;
        let text = if json { serde_json::to_string_pretty(&value).unwrap_or_default() + "\n" } else { text };
        let _ = std::io::stdout().write_all(text.as_bytes());
    };
    runtime()?.block_on(async {
        if let Some(table) = option(options, "--table") {
            let config = shared::aws_config(&shared::config::Vars::from_env()).await?;
            let table = DynamoTable::from_sdk_config(&config, table);
            if let Some(id) = webhook_id {
                let mut report = inspect::work(&table, id).await?;
                if show_personal_data {
                    let (Some(queue_url), Some(dlq_url)) = (option(options, "--queue-url"), option(options, "--dlq-url")) else {
                        bail!("--show-personal-data with --table reads the dead-letter queue: give --queue-url and --dlq-url");
                    };
                    let queue = SqsQueue::from_sdk_config(&config, queue_url);
                    let dlq = SqsQueue::from_sdk_config(&config, dlq_url);
                    inspect::attach_dead_letter_detail(&mut report, &dlq, &queue).await?;
                }
                print(inspect::render_work(&report), serde_json::to_value(&report)?);
            } else if let Some(id) = invoice_id {
                let report = inspect::invoice(&table, id).await?;
                print(inspect::render_invoice(&report), serde_json::to_value(&report)?);
            }
            return Ok(());
        }
        let base = option(options, "--url").unwrap_or("http://127.0.0.1:3000").trim_end_matches('/').to_owned();
        shared::install_tls_provider();
        let http = reqwest::Client::new();
        if let Some(id) = webhook_id {
            let url = format!("{base}/local/inspect/webhooks/{}?showPersonalData={show_personal_data}", path_segment(id));
            let report: WorkReport = fetch_json(&http, &url).await?;
            print(inspect::render_work(&report), serde_json::to_value(&report)?);
        } else if let Some(id) = invoice_id {
            let url = format!("{base}/local/inspect/invoices/{}", path_segment(id));
            let report: InvoiceReport = fetch_json(&http, &url).await?;
            print(inspect::render_invoice(&report), serde_json::to_value(&report)?);
        }
        Ok(())
    })
}

async fn fetch_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> anyhow::Result<T> {
    let response = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("{url}: is the local stack running (cargo run -p local)?"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    Ok(response.json().await?)
}

/// `id` as one path segment.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

pub fn load_reference(options: &[String]) -> anyhow::Result<()> {
    let Some(table) = option(options, "--table") else {
        bail!("usage: cargo xtask load-reference --table NAME [--schedule FILE] [--members FILE]");
    };
    let root = crate::repo_root();
    let schedule =
        option(options, "--schedule").map(Into::into).unwrap_or_else(|| root.join("local/data/benefit-schedule.json"));
    let members =
        option(options, "--members").map(Into::into).unwrap_or_else(|| root.join("local/data/member-registry.json"));
    let schedule = std::fs::read_to_string(&schedule).with_context(|| format!("reading {}", schedule.display()))?;
    let members = std::fs::read_to_string(&members).with_context(|| format!("reading {}", members.display()))?;
    let items: Vec<_> = shared::program::reference::schedule_items(&schedule)?
        .into_iter()
        .chain(shared::program::reference::member_items(&members)?)
        .collect();
    runtime()?.block_on(async {
        let config = shared::aws_config(&shared::config::Vars::from_env()).await?;
        let table = DynamoTable::from_sdk_config(&config, table);
        for item in &items {
            table.put(item, Condition::Always).await?;
        }
        println!("loaded {} item(s)", items.len());
        Ok(())
    })
}
