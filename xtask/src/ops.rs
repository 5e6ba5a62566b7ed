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
        Some(text) => Some(parse_since(text, now_ms).with_context(|| format!("--since {text}: an RFC 3339 time or an age such as 6h"))?),
        None => None,
    };
    let ids: Vec<String> =
        options.windows(2).filter(|pair| pair[0] == "--id").map(|pair| pair[1].clone()).collect();
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
    let schedule = option(options, "--schedule").map(Into::into).unwrap_or_else(|| root.join("local/data/benefit-schedule.json"));
    let members = option(options, "--members").map(Into::into).unwrap_or_else(|| root.join("local/data/member-registry.json"));
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
