//! In-process table with DynamoDB's semantics for the operations the ports expose.

use super::{
    Condition, Item, ItemDelete, ItemGet, ItemGetMany, ItemPut, ItemPutMany, ItemQuery, Key, MAX_GET_MANY, StoreError,
    check_attrs,
};
use crate::time::now_seconds;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct EmbeddedTable {
    items: Mutex<BTreeMap<Key, Item>>,
}

impl EmbeddedTable {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Item>> {
        // A panic while holding the lock cannot leave a half-written item: every write is one insert.
        self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ItemGet for EmbeddedTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        key.check()?;
        let now = now_seconds();
        Ok(self.lock().get(key).filter(|item| !item.is_expired(now)).cloned())
    }
}

#[async_trait]
impl ItemPut for EmbeddedTable {
    async fn put(&self, item: &Item, condition: Condition) -> Result<u64, StoreError> {
        check_attrs(item)?;
        let now = now_seconds();
        let mut items = self.lock();
        let live = items.get(&item.key).filter(|current| !current.is_expired(now));
        let holds = match condition {
            Condition::Always => true,
            Condition::Absent => live.is_none(),
            Condition::Version(v) => live.is_some_and(|current| current.version == v),
        };
        if !holds {
            return Err(StoreError::Conflict { current: live.cloned().map(Box::new) });
        }
        let version = condition.written_version(item.version);
        let mut stored = item.clone();
        stored.version = version;
        items.insert(item.key.clone(), stored);
        Ok(version)
    }
}

#[async_trait]
impl ItemDelete for EmbeddedTable {
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        key.check()?;
        self.lock().remove(key);
        Ok(())
    }
}

#[async_trait]
impl ItemQuery for EmbeddedTable {
    async fn query(&self, pk: &str, sk_prefix: &str) -> Result<Vec<Item>, StoreError> {
        if !crate::store::pk_fits(pk) {
            return Ok(Vec::new());
        }
        let now = now_seconds();
        let start = Key::new(pk, sk_prefix);
        Ok(self
            .lock()
            .range(start..)
            .take_while(|(key, _)| key.pk == pk && key.sk.starts_with(sk_prefix))
            .filter(|(_, item)| !item.is_expired(now))
            .map(|(_, item)| item.clone())
            .collect())
    }
}

#[async_trait]
impl ItemGetMany for EmbeddedTable {
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        if keys.len() > MAX_GET_MANY {
            return Err(StoreError::Invalid(format!("{} keys in one read; at most {MAX_GET_MANY}", keys.len())));
        }
        for key in keys {
            key.check()?;
        }
        let now = now_seconds();
        let items = self.lock();
        Ok(keys.iter().map(|key| items.get(key).filter(|item| !item.is_expired(now)).cloned()).collect())
    }
}

#[async_trait]
impl ItemPutMany for EmbeddedTable {
    async fn put_many(&self, items: &[Item]) -> Result<(), StoreError> {
        for item in items {
            check_attrs(item)?;
        }
        let mut stored = self.lock();
        for item in items {
            stored.insert(item.key.clone(), item.clone());
        }
        Ok(())
    }
}
