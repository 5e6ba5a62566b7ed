//! Ids and webhooks: version-4-shaped UUIDs unique within a run, and copies of the spec's example
//! invoice webhook with their own ids and their links at the local stack's HICAPS simulator.

use anyhow::Context;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version-4-shaped UUID, unique per (`seed`, `n`) within a run: `n` is its last group.
pub(super) fn uuid(seed: u64, n: u64) -> String {
    let a = splitmix(seed ^ splitmix(n));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((a >> 40) & 0x3fff),
        n & 0xffff_ffff_ffff
    )
}

pub(super) fn run_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or_default();
    splitmix(nanos ^ u64::from(std::process::id()))
}

pub(super) fn webhook_template(root: &Path) -> anyhow::Result<Value> {
    let path = root.join("shared/tests/fixtures/hicaps/invoice-submitted-webhook.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Gives `webhook` its own webhook, invoice and claim ids (number `n` of the run `seed`) and points
/// its links at the HICAPS simulator on `simulator_port`. Returns its invoice id.
pub(super) fn reidentify(webhook: &mut Value, seed: u64, n: u64, simulator_port: u16) -> String {
    let id = uuid(seed, 3 * n);
    let invoice_id = uuid(seed, 3 * n + 1);
    webhook["id"] = json!(id);
    webhook["data"]["invoiceId"] = json!(invoice_id);
    if let Some(claims) = webhook["data"]["claims"].as_array_mut() {
        for (index, claim) in claims.iter_mut().enumerate() {
            claim["claimId"] = json!(uuid(seed ^ (index as u64 + 1), 3 * n + 2));
        }
    }
    link_to_simulator(webhook, simulator_port);
    invoice_id
}

/// Points the webhook's callback links at the HICAPS simulator on `simulator_port`.
pub(super) fn link_to_simulator(webhook: &mut Value, simulator_port: u16) {
    let id = webhook["id"].as_str().unwrap_or_default().to_owned();
    let invoice_id = webhook["data"]["invoiceId"].as_str().unwrap_or_default().to_owned();
    let base = format!("http://127.0.0.1:{simulator_port}/sim/hicaps");
    webhook["_links"] = json!({
        "lp:invoice-status-updated": {"href": format!("{base}/callbacks/invoice-status/{invoice_id}")},
        "lp:webhook-error": {"href": format!("{base}/callbacks/webhook-error/{id}")},
    });
}

/// The spec's example invoice, [`reidentify`]d. Returns (body, invoice id).
pub(super) fn webhook(template: &Value, seed: u64, n: u64, simulator_port: u16) -> (String, String) {
    let mut webhook = template.clone();
    let invoice_id = reidentify(&mut webhook, seed, n, simulator_port);
    (webhook.to_string(), invoice_id)
}

#[cfg(test)]
mod tests {
    use super::uuid;
    use std::collections::HashSet;

    #[test]
    fn ids_are_uuids_and_unique() {
        let ids: HashSet<String> = (0..10_000).map(|n| uuid(42, n)).collect();
        assert_eq!(ids.len(), 10_000);
        let id = uuid(42, 1);
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }
}
