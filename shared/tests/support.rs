//! Shared by the contract tests: the adapters under test.

#![allow(dead_code)]

use std::sync::Arc;

/// The moto endpoint `cargo xtask test` started. A missing endpoint is a failure, never a skip.
pub fn moto_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL is not set: the AWS adapters are tested against moto; run `cargo xtask test`, which starts it",
    )
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    moto_endpoint();
    shared::aws_config(&shared::config::Vars::from_env()).await.expect("AWS SDK configuration")
}

pub async fn dynamo_table() -> Arc<shared::store::dynamo::DynamoTable> {
    let config = sdk_config().await;
    let table = shared::store::dynamo::DynamoTable::from_sdk_config(&config, unique("contract"));
    table.ensure_exists().await.expect("create table on moto");
    Arc::new(table)
}
