//! Operator tasks against DynamoDB and SQS (a real account, or moto with AWS_ENDPOINT_URL).

use anyhow::{Context, bail};
use shared::queue::sqs::SqsQueue;
use shared::queue::{MessageSender, MessageSource};
use shared::store::dynamo::DynamoTable;
use shared::store::{Condition, ItemPut};
use std::time::Duration;

fn option<'a>(options: &'a [String], name: &str) -> Option<&'a str> {
    options.iter().position(|o| o == name).and_then(|i| options.get(i + 1)).map(String::as_str)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Moves every message on the dead-letter queue back to the work queue. Messages the poster
/// dead-lettered carry `{"kind":"deadLetter","reason":..,"message":..}`: the original goes back.
/// (SQS's StartMessageMoveTask would do the plain case, but it cannot unwrap ours and moto lacks it.)
pub fn replay_dlq(options: &[String]) -> anyhow::Result<()> {
    let (Some(queue_url), Some(dlq_url)) = (option(options, "--queue-url"), option(options, "--dlq-url")) else {
        bail!("usage: cargo xtask replay-dlq --queue-url URL --dlq-url URL");
    };
    runtime()?.block_on(async {
        let config = shared::aws_config(&shared::config::Vars::from_env()).await?;
        let queue = SqsQueue::from_sdk_config(&config, queue_url);
        let dlq = SqsQueue::from_sdk_config(&config, dlq_url);
        let mut replayed = 0usize;
        loop {
            let messages = dlq.receive(10, Duration::from_secs(1)).await?;
            if messages.is_empty() {
                break;
            }
            for message in messages {
                let original = shared::program::work::replayable(&message.body);
                queue.send(original).await.context("sending back to the work queue")?;
                dlq.delete(&message.receipt_handle).await.context("deleting from the dead-letter queue")?;
                replayed += 1;
            }
        }
        println!("replayed {replayed} message(s)");
        Ok(())
    })
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
