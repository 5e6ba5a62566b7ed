//! The store port on DynamoDB: one table keyed by `pk` (hash) and `sk` (range), with `version`
//! for optimistic locking and `ttl` (epoch seconds) as the table's TTL attribute.

use super::{
    Condition, Item, ItemDelete, ItemGet, ItemGetMany, ItemPut, ItemPutMany, ItemQuery, Key, MAX_GET_MANY, StoreError,
    check_attrs, last_per_key,
};
use crate::time::now_seconds;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes, PutRequest,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification, WriteRequest,
};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

#[derive(Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

impl DynamoTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn from_sdk_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    /// Creates the table (on-demand, TTL on `ttl`) unless it exists: for the local stack and tests.
    /// In AWS the SAM template owns the table.
    pub async fn ensure_exists(&self) -> Result<(), StoreError> {
        let exists = self.client.describe_table().table_name(&self.table).send().await.is_ok();
        if exists {
            return Ok(());
        }
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(unavailable)
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(unavailable)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .send()
            .await;
        if let Err(error) = created {
            // Another process may have created it between our describe and create.
            if !error.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) {
                return Err(unavailable(error));
            }
        }
        let ttl =
            TimeToLiveSpecification::builder().attribute_name("ttl").enabled(true).build().map_err(unavailable)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn key_attributes(key: &Key) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(key.pk.clone())),
            ("sk".to_owned(), AttributeValue::S(key.sk.clone())),
        ])
    }
}

fn unavailable(error: impl std::fmt::Display + std::fmt::Debug) -> StoreError {
    StoreError::Unavailable(format!("{error:?}"))
}

#[async_trait]
impl ItemGet for DynamoTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        key.check()?;
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let now = now_seconds();
        Ok(output.item.map(from_attributes).transpose()?.filter(|item| !item.is_expired(now)))
    }
}

#[async_trait]
impl ItemPut for DynamoTable {
    async fn put(&self, item: &Item, condition: Condition) -> Result<u64, StoreError> {
        check_attrs(item)?;
        let version = condition.written_version(item.version);
        let now = now_seconds().to_string();
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(item, version)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let request = match condition {
            Condition::Always => request,
            Condition::Absent => request
                .condition_expression("attribute_not_exists(pk) OR (attribute_exists(#ttl) AND #ttl <= :now)")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":now", AttributeValue::N(now)),
            Condition::Version(expected) => request
                .condition_expression("#version = :expected AND (attribute_not_exists(#ttl) OR #ttl > :now)")
                .expression_attribute_names("#version", "version")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
                .expression_attribute_values(":now", AttributeValue::N(now)),
        };
        match request.send().await {
            Ok(_) => Ok(version),
            Err(SdkError::ServiceError(context)) => match context.into_err() {
                PutItemError::ConditionalCheckFailedException(failed) => {
                    let current = failed.item.map(from_attributes).transpose()?;
                    let now = now_seconds();
                    Err(StoreError::Conflict { current: current.filter(|item| !item.is_expired(now)).map(Box::new) })
                }
                other => Err(unavailable(other)),
            },
            Err(other) => Err(unavailable(other)),
        }
    }
}

#[async_trait]
impl ItemDelete for DynamoTable {
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        key.check()?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key_attributes(key)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl ItemQuery for DynamoTable {
    async fn query(&self, pk: &str, sk_prefix: &str) -> Result<Vec<Item>, StoreError> {
        // Nothing can be stored under a key DynamoDB would refuse; asking would be a
        // ValidationException, which would read as the store being unavailable.
        if !crate::store::pk_fits(pk) {
            return Ok(Vec::new());
        }
        let mut items = Vec::new();
        let mut start_key = None;
        let now = now_seconds();
        loop {
            let request = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()));
            // DynamoDB refuses an empty string in a key condition: no prefix means the whole partition.
            let request = if sk_prefix.is_empty() {
                request.key_condition_expression("pk = :pk")
            } else {
                request
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", AttributeValue::S(sk_prefix.to_owned()))
            };
            let output =
                request.consistent_read(true).set_exclusive_start_key(start_key).send().await.map_err(unavailable)?;
            for attributes in output.items.unwrap_or_default() {
                let item = from_attributes(attributes)?;
                if !item.is_expired(now) {
                    items.push(item);
                }
            }
            start_key = output.last_evaluated_key;
            if start_key.is_none() {
                return Ok(items);
            }
        }
    }
}

/// Items per BatchWriteItem request.
const BATCH_WRITE_ITEMS: usize = 25;
/// Requests per batch before keys or items DynamoDB left unprocessed (throttling) are an error.
const BATCH_ATTEMPTS: u32 = 5;

/// The pause before asking again for what a batch left unprocessed: 50 ms, doubling.
async fn batch_backoff(attempt: u32) {
    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(6))).await;
}

#[async_trait]
impl ItemGetMany for DynamoTable {
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        if keys.len() > MAX_GET_MANY {
            return Err(StoreError::Invalid(format!("{} keys in one read; at most {MAX_GET_MANY}", keys.len())));
        }
        for key in keys {
            key.check()?;
        }
        let mut unique: Vec<&Key> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        let mut pending: Vec<HashMap<String, AttributeValue>> = unique.into_iter().map(Self::key_attributes).collect();
        let mut found: HashMap<Key, Item> = HashMap::new();
        for attempt in 0..BATCH_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                batch_backoff(attempt).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(unavailable)?;
            let output =
                self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(unavailable)?;
            for attributes in output.responses.and_then(|mut tables| tables.remove(&self.table)).unwrap_or_default() {
                let item = from_attributes(attributes)?;
                found.insert(item.key.clone(), item);
            }
            pending = output
                .unprocessed_keys
                .and_then(|mut tables| tables.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
        }
        if !pending.is_empty() {
            return Err(StoreError::Unavailable(format!("BatchGetItem left {} keys unprocessed", pending.len())));
        }
        let now = now_seconds();
        Ok(keys.iter().map(|key| found.get(key).filter(|item| !item.is_expired(now)).cloned()).collect())
    }
}

#[async_trait]
impl ItemPutMany for DynamoTable {
    async fn put_many(&self, items: &[Item]) -> Result<(), StoreError> {
        for item in items {
            check_attrs(item)?;
        }
        for chunk in last_per_key(items).chunks(BATCH_WRITE_ITEMS) {
            let mut pending = chunk
                .iter()
                .map(|item| {
                    let put = PutRequest::builder()
                        .set_item(Some(to_attributes(item, item.version)))
                        .build()
                        .map_err(unavailable)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            for attempt in 0..BATCH_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                if attempt > 0 {
                    batch_backoff(attempt).await;
                }
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(unavailable)?;
                pending =
                    output.unprocessed_items.and_then(|mut tables| tables.remove(&self.table)).unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable(format!(
                    "BatchWriteItem left {} items unprocessed",
                    pending.len()
                )));
            }
        }
        Ok(())
    }
}

fn to_attributes(item: &Item, version: u64) -> HashMap<String, AttributeValue> {
    let mut attributes: HashMap<String, AttributeValue> =
        item.attrs.iter().map(|(name, value)| (name.clone(), to_attribute(value))).collect();
    attributes.extend(DynamoTable::key_attributes(&item.key));
    attributes.insert("version".to_owned(), AttributeValue::N(version.to_string()));
    if let Some(at) = item.expires_at {
        attributes.insert("ttl".to_owned(), AttributeValue::N(at.to_string()));
    }
    attributes
}

fn from_attributes(mut attributes: HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    let mut take_string = |name: &str| match attributes.remove(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::Invalid(format!("item has no string `{name}`"))),
    };
    let key = Key { pk: take_string("pk")?, sk: take_string("sk")? };
    let number = |value: Option<AttributeValue>| match value {
        Some(AttributeValue::N(text)) => text.parse::<i64>().ok(),
        _ => None,
    };
    let version = number(attributes.remove("version")).unwrap_or(0).max(0).unsigned_abs();
    let expires_at = number(attributes.remove("ttl"));
    let attrs = attributes.into_iter().map(|(name, value)| (name, from_attribute(value))).collect();
    Ok(Item { key, version, expires_at, attrs })
}

/// JSON to DynamoDB. Numbers keep their exact text (serde_json's arbitrary precision), so money
/// never passes through a float on its way to the table. Written here rather than with
/// serde_dynamo: with `arbitrary_precision` a serde_json number serialises as a private
/// single-field map, which serde_dynamo would store as a map, not as `N`.
fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(flag) => AttributeValue::Bool(*flag),
        Value::Number(number) => AttributeValue::N(number.to_string()),
        Value::String(text) => AttributeValue::S(text.clone()),
        Value::Array(values) => AttributeValue::L(values.iter().map(to_attribute).collect()),
        Value::Object(map) => AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), to_attribute(v))).collect()),
    }
}

fn from_attribute(value: AttributeValue) -> Value {
    match value {
        AttributeValue::Bool(flag) => Value::Bool(flag),
        AttributeValue::N(text) => text.parse::<Number>().map(Value::Number).unwrap_or(Value::String(text)),
        AttributeValue::S(text) => Value::String(text),
        AttributeValue::L(values) => Value::Array(values.into_iter().map(from_attribute).collect()),
        AttributeValue::M(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, from_attribute(v))).collect::<Map<_, _>>())
        }
        _ => Value::Null,
    }
}
