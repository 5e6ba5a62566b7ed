//! The program's reference data as table items: the benefit schedule (`schedule#<program>` /
//! `item#<itemCode>`) and the member registry (`member#<program>` / `<memberNumber>`). Loaded from
//! JSON files by the local stack and by `cargo xtask load-reference` into DynamoDB.

use crate::store::{Item, Key};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Partition-key prefixes of the benefit schedule and the member registry.
pub const SCHEDULE_PREFIX: &str = "schedule#";
pub const MEMBER_PREFIX: &str = "member#";

pub fn schedule_pk(program: &str) -> String {
    format!("{SCHEDULE_PREFIX}{program}")
}

pub fn member_key(program: &str, member_number: &str) -> Key {
    Key::new(format!("{MEMBER_PREFIX}{program}"), member_number)
}

#[derive(Deserialize)]
struct File {
    programs: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("reference data file: {0}")]
pub struct ReferenceError(String);

fn items(json: &str, key: impl Fn(&str, &str) -> Key) -> Result<Vec<Item>, ReferenceError> {
    let file: File = serde_json::from_str(json).map_err(|e| ReferenceError(e.to_string()))?;
    Ok(file
        .programs
        .iter()
        .flat_map(|(program, entries)| entries.iter().map(move |(id, attrs)| (program, id, attrs)))
        .map(|(program, id, attrs)| Item::new(key(program, id), attrs.clone()))
        .collect())
}

/// `{"programs": {"<program>": {"<itemCode>": {"percentage": "80", "unitBenefitCap": "40.00"}}}}`
pub fn schedule_items(json: &str) -> Result<Vec<Item>, ReferenceError> {
    items(json, |program, code| Key::new(schedule_pk(program), format!("item#{code}")))
}

/// `{"programs": {"<program>": {"<memberNumber>": {"status": "active"}}}}`
pub fn member_items(json: &str) -> Result<Vec<Item>, ReferenceError> {
    items(json, member_key)
}
