//! The store port's contract, run against both adapters: the embedded table and DynamoDB on moto.

mod support;

use serde_json::{Map, json};
use shared::store::embedded::EmbeddedTable;
use shared::store::{Condition, Item, Key, MAX_ITEM_BYTES, MAX_PK_BYTES, MAX_SK_BYTES, StoreError, Table};
use shared::time::now_seconds;

fn item(pk: &str, sk: &str, value: i64) -> Item {
    let mut attrs = Map::new();
    attrs.insert("value".into(), json!(value));
    attrs.insert("money".into(), serde_json::from_str("12345678901234.5678").expect("number"));
    Item::new(Key::new(pk, sk), attrs)
}

async fn conditional_put_conflicts(table: &dyn Table) {
    let first = item("p#1", "s", 1);
    assert_eq!(table.put(&first, Condition::Absent).await.expect("first put"), 1);
    match table.put(&item("p#1", "s", 2), Condition::Absent).await {
        Err(StoreError::Conflict { current: Some(current) }) => assert_eq!(current.attrs["value"], json!(1)),
        other => panic!("expected a conflict with the current item, got {other:?}"),
    }
    let stored = table.get(&first.key).await.expect("get").expect("present");
    assert_eq!(stored.attrs["value"], json!(1));
    assert_eq!(stored.attrs["money"].to_string(), "12345678901234.5678", "numbers keep their exact text");
}

async fn optimistic_versions(table: &dyn Table) {
    let key = Key::new("p#2", "s");
    table.put(&item("p#2", "s", 1), Condition::Absent).await.expect("create");
    assert_eq!(table.put(&item("p#2", "s", 2), Condition::Version(1)).await.expect("v1 -> v2"), 2);
    assert!(matches!(table.put(&item("p#2", "s", 3), Condition::Version(1)).await, Err(StoreError::Conflict { .. })));
    let stored = table.get(&key).await.expect("get").expect("present");
    assert_eq!((stored.version, stored.attrs["value"].clone()), (2, json!(2)));
    assert!(matches!(
        table.put(&item("p#none", "s", 1), Condition::Version(1)).await,
        Err(StoreError::Conflict { current: None })
    ));
}

async fn expiry_honoured_on_read(table: &dyn Table) {
    let expired = item("p#3", "s", 1).expiring_at(now_seconds() - 10);
    table.put(&expired, Condition::Always).await.expect("put expired");
    assert!(table.get(&expired.key).await.expect("get").is_none(), "an expired item reads as absent");
    assert!(table.query("p#3", "").await.expect("query").is_empty(), "and is left out of queries");
    // An expired item counts as absent for a conditional create.
    assert_eq!(table.put(&item("p#3", "s", 2), Condition::Absent).await.expect("create over expired"), 1);
    let live = item("p#4", "s", 1).expiring_at(now_seconds() + 3600);
    table.put(&live, Condition::Always).await.expect("put live");
    assert_eq!(table.get(&live.key).await.expect("get").expect("live").expires_at, live.expires_at);
}

async fn query_by_prefix_in_order(table: &dyn Table) {
    for sk in ["claim#b", "claim#a", "#invoice", "other"] {
        table.put(&item("p#5", sk, 1), Condition::Always).await.expect("put");
    }
    let claims: Vec<String> =
        table.query("p#5", "claim#").await.expect("query").into_iter().map(|i| i.key.sk).collect();
    assert_eq!(claims, ["claim#a", "claim#b"]);
    assert_eq!(table.query("p#5", "").await.expect("query all").len(), 4);
    table.delete(&Key::new("p#5", "other")).await.expect("delete");
    assert_eq!(table.query("p#5", "").await.expect("query all").len(), 3);
    // A partition key no item can have (a hostile id) finds nothing; it is not an outage.
    assert!(table.query(&"p".repeat(3000), "").await.expect("an impossible key").is_empty());
    assert!(table.query("", "").await.expect("an empty key").is_empty());
}

async fn reserved_attributes_refused(table: &dyn Table) {
    let mut bad = item("p#6", "s", 1);
    bad.attrs.insert("ttl".into(), json!(1));
    assert!(matches!(table.put(&bad, Condition::Always).await, Err(StoreError::Invalid(_))));
}

async fn many_at_once(table: &dyn Table) {
    // More than one BatchWriteItem's 25, a key given twice (the last wins), an expired item.
    let mut items: Vec<Item> = (0..30).map(|i| item("p#7", &format!("s{i:02}"), i)).collect();
    items.push(item("p#7", "s00", 100));
    items.push(item("p#7", "gone", 1).expiring_at(now_seconds() - 10));
    table.put_many(&items).await.expect("put many");
    let stored = table.query("p#7", "s").await.expect("query");
    assert_eq!(stored.len(), 30);
    assert_eq!((stored[0].attrs["value"].clone(), stored[29].attrs["value"].clone()), (json!(100), json!(29)));
    assert_eq!(stored[0].attrs["money"].to_string(), "12345678901234.5678");

    let keys = [Key::new("p#7", "s05"), Key::new("p#7", "missing"), Key::new("p#7", "gone"), Key::new("p#7", "s05")];
    let found = table.get_many(&keys).await.expect("get many");
    let values: Vec<Option<serde_json::Value>> =
        found.iter().map(|i| i.as_ref().map(|i| i.attrs["value"].clone())).collect();
    assert_eq!(values, [Some(json!(5)), None, None, Some(json!(5))], "in the keys' order, absent and expired as None");
    let too_many: Vec<Key> = (0..101).map(|i| Key::new("p#7", format!("k{i}"))).collect();
    assert!(matches!(table.get_many(&too_many).await, Err(StoreError::Invalid(_))));

    let mut bad = item("p#7", "bad", 1);
    bad.attrs.insert("pk".into(), json!("x"));
    assert!(matches!(table.put_many(&[bad]).await, Err(StoreError::Invalid(_))));
}

/// DynamoDB's own limits, refused alike by both adapters before anything is sent.
async fn dynamodb_limits_refused(table: &dyn Table) {
    let at_limit = item(&format!("p#{}", "k".repeat(MAX_PK_BYTES - 2)), &"s".repeat(MAX_SK_BYTES), 1);
    table.put(&at_limit, Condition::Always).await.expect("keys at their limits");
    assert!(table.get(&at_limit.key).await.expect("get").is_some());
    let long_pk = item(&"k".repeat(MAX_PK_BYTES + 1), "s", 1);
    let long_sk = item("p#8", &"s".repeat(MAX_SK_BYTES + 1), 1);
    let empty_sk = item("p#8", "", 1);
    for bad in [&long_pk, &long_sk, &empty_sk] {
        assert!(
            matches!(table.put(bad, Condition::Always).await, Err(StoreError::Invalid(_))),
            "{:?}",
            bad.key.sk.len()
        );
        assert!(matches!(table.get(&bad.key).await, Err(StoreError::Invalid(_))));
        assert!(matches!(table.get_many(std::slice::from_ref(&bad.key)).await, Err(StoreError::Invalid(_))));
        assert!(matches!(table.put_many(std::slice::from_ref(bad)).await, Err(StoreError::Invalid(_))));
    }
    let mut large = item("p#8", "large", 1);
    large.attrs.insert("blob".into(), json!("x".repeat(MAX_ITEM_BYTES)));
    assert!(matches!(table.put(&large, Condition::Always).await, Err(StoreError::Invalid(_))), "over 400 KB");
    let mut fits = item("p#8", "fits", 1);
    fits.attrs.insert("blob".into(), json!("x".repeat(300 * 1024)));
    table.put(&fits, Condition::Always).await.expect("300 KB fits");
}

async fn contract(table: &dyn Table) {
    conditional_put_conflicts(table).await;
    optimistic_versions(table).await;
    expiry_honoured_on_read(table).await;
    query_by_prefix_in_order(table).await;
    reserved_attributes_refused(table).await;
    many_at_once(table).await;
    dynamodb_limits_refused(table).await;
}

#[tokio::test]
async fn embedded_table_meets_the_contract() {
    contract(&EmbeddedTable::new()).await;
}

#[tokio::test]
async fn dynamodb_on_moto_meets_the_contract() {
    contract(support::dynamo_table().await.as_ref()).await;
}
