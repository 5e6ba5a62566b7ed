//! The webhook envelope (`id`, `created`, `type`, `data`, `_links`), its HAL links and the typed
//! webhook kinds.

use super::invoice::{CancellationRequest, Invoice, Member};
use super::settlement::{InvoiceOverpaid, Payment, PaymentHeld};
use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Link relation names used by the Program API.
pub mod rel {
    /// Where to POST the Invoice Status Updated callback (invoice and cancellation webhooks).
    pub const INVOICE_STATUS_UPDATED: &str = "lp:invoice-status-updated";
    /// Where to POST the Predetermination Status Updated callback.
    pub const PREDETERMINATION_STATUS_UPDATED: &str = "lp:predetermination-status-updated";
    /// Where to POST the Member Status Updated callback.
    pub const UPDATE_MEMBER_STATE: &str = "lp:update-member-state";
    /// Where to GET the invoices of a payment (on the `api.payments` host).
    pub const PAYMENT_INVOICES: &str = "lp:payment-invoices";
    /// An empty authenticated POST here restarts HICAPS's retry policy for the webhook; may be null.
    pub const WEBHOOK_ERROR: &str = "lp:webhook-error";
}

/// One HAL link. `href` is all the Program API uses; `name`/`templated` appear on `curies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templated: Option<bool>,
    /// Other HAL link properties (`title`, `type`, ...), kept for relaying.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Link {
    pub fn new(href: impl Into<String>) -> Self {
        Self { href: href.into(), name: None, templated: None, extra: Map::new() }
    }
}

/// What a link relation holds: the spec shows an object or `null` (no retry possible); HAL also
/// allows an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkValue {
    Null,
    One(Link),
    Many(Vec<Link>),
}

impl LinkValue {
    /// The (first) link, if any.
    pub fn first(&self) -> Option<&Link> {
        match self {
            LinkValue::Null => None,
            LinkValue::One(link) => Some(link),
            LinkValue::Many(links) => links.first(),
        }
    }
}

impl Serialize for LinkValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            LinkValue::Null => serializer.serialize_none(),
            LinkValue::One(link) => link.serialize(serializer),
            LinkValue::Many(links) => links.serialize(serializer),
        }
    }
}

impl LinkValue {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(LinkValue::Null),
            value @ Value::Object(_) => serde_json::from_value(value).map(LinkValue::One).map_err(|e| e.to_string()),
            value @ Value::Array(_) => serde_json::from_value(value).map(LinkValue::Many).map_err(|e| e.to_string()),
            _ => Err("a link must be an object with `href`, an array of them, or null".to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for LinkValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        LinkValue::from_value(Value::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

/// The `_links` block: link relation -> link. Keys written `lp_x` (the payment webhooks' typo
/// `lp_webhook-error`) are read as `lp:x` and always emitted in the documented `lp:` form; when both
/// spellings are present, the `lp:` one wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links(BTreeMap<String, LinkValue>);

impl Links {
    pub fn new() -> Self {
        Self::default()
    }

    /// The documented spelling of a relation name (`lp_x` -> `lp:x`).
    pub fn canonical_rel(rel: &str) -> std::borrow::Cow<'_, str> {
        match rel.strip_prefix("lp_") {
            Some(rest) => format!("lp:{rest}").into(),
            None => rel.into(),
        }
    }

    /// The (first) link of a relation; `None` when absent or null.
    pub fn get(&self, rel: &str) -> Option<&Link> {
        self.0.get(Self::canonical_rel(rel).as_ref()).and_then(LinkValue::first)
    }

    /// The `href` of a relation; `None` when absent or null.
    pub fn href(&self, rel: &str) -> Option<&str> {
        self.get(rel).map(|link| link.href.as_str())
    }

    /// The raw entry, distinguishing an explicit `null` from an absent relation.
    pub fn entry(&self, rel: &str) -> Option<&LinkValue> {
        self.0.get(Self::canonical_rel(rel).as_ref())
    }

    pub fn insert(&mut self, rel: &str, value: LinkValue) {
        self.0.insert(Self::canonical_rel(rel).into_owned(), value);
    }

    /// Builder form of [`Self::insert`] for one href.
    pub fn with(mut self, rel: &str, href: impl Into<String>) -> Self {
        self.insert(rel, LinkValue::One(Link::new(href)));
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &LinkValue)> {
        self.0.iter().map(|(rel, value)| (rel.as_str(), value))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `lp:webhook-error` (or `lp_webhook-error`): where to ask HICAPS to retry; `None` if null.
    pub fn webhook_error_href(&self) -> Option<&str> {
        self.href(rel::WEBHOOK_ERROR)
    }

    /// `lp:invoice-status-updated`.
    pub fn invoice_status_updated_href(&self) -> Option<&str> {
        self.href(rel::INVOICE_STATUS_UPDATED)
    }

    /// `lp:predetermination-status-updated`.
    pub fn predetermination_status_updated_href(&self) -> Option<&str> {
        self.href(rel::PREDETERMINATION_STATUS_UPDATED)
    }

    /// `lp:update-member-state`.
    pub fn update_member_state_href(&self) -> Option<&str> {
        self.href(rel::UPDATE_MEMBER_STATE)
    }

    /// `lp:payment-invoices`.
    pub fn payment_invoices_href(&self) -> Option<&str> {
        self.href(rel::PAYMENT_INVOICES)
    }
}

impl Serialize for Links {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Links {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Option::<Map<String, Value>>::deserialize(deserializer)?.unwrap_or_default();
        let mut links = BTreeMap::new();
        // Documented spellings first, so they win over an `lp_` duplicate.
        let (aliased, documented): (Vec<_>, Vec<_>) = raw.into_iter().partition(|(rel, _)| rel.starts_with("lp_"));
        for (rel, value) in documented.into_iter().chain(aliased) {
            let value =
                LinkValue::from_value(value).map_err(|e| D::Error::custom(format!("link relation `{rel}`: {e}")))?;
            links.entry(Links::canonical_rel(&rel).into_owned()).or_insert(value);
        }
        Ok(Links(links))
    }
}

/// The webhook `created`: the spec says Unix epoch time, and the examples send an integer
/// (`1565140165`), a quoted integer (`"1596012705"`) and an ISO date-time
/// (`"2020-10-30T09:10:11.2321413+11:00"`). All read into one instant, truncated to whole seconds,
/// and emitted in the documented form: an integer of epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebhookCreated(DateTime<Utc>);

impl WebhookCreated {
    /// `None` when out of chrono's range.
    pub fn from_epoch_seconds(seconds: i64) -> Option<Self> {
        DateTime::from_timestamp(seconds, 0).map(Self)
    }
    pub fn epoch_seconds(&self) -> i64 {
        self.0.timestamp()
    }
    pub fn to_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Reads the three forms above; the reason names the form expected.
    pub fn parse_value(value: &Value) -> Result<Self, String> {
        let out_of_range = || "`created` is out of range".to_owned();
        match value {
            Value::Number(number) => {
                let seconds = match number.as_i64() {
                    Some(seconds) => Some(seconds),
                    // A fractional epoch: keep whole seconds, never through a float.
                    None => Decimal::from_str(&number.to_string())
                        .or_else(|_| Decimal::from_scientific(&number.to_string()))
                        .ok()
                        .and_then(|d| d.floor().to_i64()),
                };
                seconds.and_then(Self::from_epoch_seconds).ok_or_else(out_of_range)
            }
            Value::String(text) => {
                let trimmed = text.trim();
                if let Ok(seconds) = trimmed.parse::<i64>() {
                    return Self::from_epoch_seconds(seconds).ok_or_else(out_of_range);
                }
                super::common::parse_loose_datetime(trimmed).map(|at| Self::from(at.with_timezone(&Utc))).ok_or_else(
                    || format!("`created` must be Unix epoch seconds or an ISO 8601 date-time, not {text:?}"),
                )
            }
            _ => Err("`created` must be Unix epoch seconds (a number or a string) or an ISO 8601 date-time".to_owned()),
        }
    }
}

impl From<DateTime<Utc>> for WebhookCreated {
    /// Truncates to whole seconds, the precision of the documented form.
    fn from(at: DateTime<Utc>) -> Self {
        Self(at.trunc_subsecs(0))
    }
}

impl fmt::Display for WebhookCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.epoch_seconds())
    }
}

impl Serialize for WebhookCreated {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.epoch_seconds())
    }
}

impl<'de> Deserialize<'de> for WebhookCreated {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::parse_value(&value).map_err(D::Error::custom)
    }
}

/// The eight webhook `type` values of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WebhookType {
    #[serde(rename = "claiming.invoice.submitted")]
    InvoiceSubmitted,
    #[serde(rename = "claiming.invoice.cancellationRequested")]
    InvoiceCancellationRequested,
    #[serde(rename = "claiming.predetermination.submitted")]
    PredeterminationSubmitted,
    #[serde(rename = "admin.member.check")]
    MemberCheck,
    #[serde(rename = "settlement.payment.scheduled")]
    PaymentScheduled,
    #[serde(rename = "settlement.payment.failed")]
    PaymentFailed,
    #[serde(rename = "settlement.payment.held")]
    PaymentHeld,
    #[serde(rename = "settlement.invoice.overpaid")]
    InvoiceOverpaid,
}

impl WebhookType {
    pub const ALL: [WebhookType; 8] = [
        WebhookType::InvoiceSubmitted,
        WebhookType::InvoiceCancellationRequested,
        WebhookType::PredeterminationSubmitted,
        WebhookType::MemberCheck,
        WebhookType::PaymentScheduled,
        WebhookType::PaymentFailed,
        WebhookType::PaymentHeld,
        WebhookType::InvoiceOverpaid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookType::InvoiceSubmitted => "claiming.invoice.submitted",
            WebhookType::InvoiceCancellationRequested => "claiming.invoice.cancellationRequested",
            WebhookType::PredeterminationSubmitted => "claiming.predetermination.submitted",
            WebhookType::MemberCheck => "admin.member.check",
            WebhookType::PaymentScheduled => "settlement.payment.scheduled",
            WebhookType::PaymentFailed => "settlement.payment.failed",
            WebhookType::PaymentHeld => "settlement.payment.held",
            WebhookType::InvoiceOverpaid => "settlement.invoice.overpaid",
        }
    }

    /// The type for a `type` string; `None` for one the HICAPS Program API does not define.
    pub fn parse(value: &str) -> Option<WebhookType> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    /// The link relation the program acts on next: where to post its answer, or for payment
    /// webhooks where to read the payment's invoices. `None` for the overpaid notification.
    pub fn action_rel(self) -> Option<&'static str> {
        match self {
            WebhookType::InvoiceSubmitted | WebhookType::InvoiceCancellationRequested => {
                Some(rel::INVOICE_STATUS_UPDATED)
            }
            WebhookType::PredeterminationSubmitted => Some(rel::PREDETERMINATION_STATUS_UPDATED),
            WebhookType::MemberCheck => Some(rel::UPDATE_MEMBER_STATE),
            WebhookType::PaymentScheduled | WebhookType::PaymentFailed | WebhookType::PaymentHeld => {
                Some(rel::PAYMENT_INVOICES)
            }
            WebhookType::InvoiceOverpaid => None,
        }
    }
}

impl fmt::Display for WebhookType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A webhook with its `data` still untyped: enough to acknowledge and de-duplicate on `id`
/// whatever the `type`, including types this version does not know.
///
/// `id` is any non-empty string and `created` is optional: the HICAPS Program API's webhook examples carry a
/// UUID and a time, but its "Member Validation Requested" table lists neither, and de-duplication needs only an id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEnvelope {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<WebhookCreated>,
    pub data: Value,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "_links", default, skip_serializing_if = "Links::is_empty")]
    pub links: Links,
}

impl WebhookEnvelope {
    /// The known type, if it is one.
    pub fn webhook_type(&self) -> Option<WebhookType> {
        WebhookType::parse(&self.kind)
    }

    /// Types `data` by `type`. Errors name the type and what in `data` is wrong.
    pub fn into_webhook(self) -> Result<Webhook, serde_json::Error> {
        let kind = WebhookType::parse(&self.kind).ok_or_else(|| {
            serde_json::Error::custom(format!(
                "unknown webhook type `{}`, expected one of: {}",
                self.kind,
                WebhookType::ALL.map(WebhookType::as_str).join(", ")
            ))
        })?;
        let event = WebhookEvent::from_data(kind, self.data)?;
        Ok(Webhook { id: self.id, created: self.created, event, links: self.links })
    }

    /// [`Self::into_webhook`] for a known type, failing with where `data` does not fit
    /// (`data.claims[0].claimId: invalid type`) rather than serde's message, which quotes values.
    pub fn into_typed(self, kind: WebhookType) -> Result<Webhook, crate::parse_problem::ParseProblem> {
        let event = WebhookEvent::typed(kind, self.data).map_err(|problem| problem.under("data"))?;
        Ok(Webhook { id: self.id, created: self.created, event, links: self.links })
    }
}

/// The typed `data` of each webhook type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum WebhookEvent {
    /// `claiming.invoice.submitted`; answer at `lp:invoice-status-updated`.
    InvoiceSubmitted(Invoice),
    /// `claiming.invoice.cancellationRequested`; answer at `lp:invoice-status-updated`.
    InvoiceCancellationRequested(CancellationRequest),
    /// `claiming.predetermination.submitted`; answer at `lp:predetermination-status-updated`.
    PredeterminationSubmitted(Invoice),
    /// `admin.member.check`; answer at `lp:update-member-state`.
    MemberCheck(Member),
    /// `settlement.payment.scheduled`.
    PaymentScheduled(Payment),
    /// `settlement.payment.failed`.
    PaymentFailed(Payment),
    /// `settlement.payment.held`.
    PaymentHeld(PaymentHeld),
    /// `settlement.invoice.overpaid`.
    InvoiceOverpaid(InvoiceOverpaid),
}

impl WebhookEvent {
    pub fn webhook_type(&self) -> WebhookType {
        match self {
            WebhookEvent::InvoiceSubmitted(_) => WebhookType::InvoiceSubmitted,
            WebhookEvent::InvoiceCancellationRequested(_) => WebhookType::InvoiceCancellationRequested,
            WebhookEvent::PredeterminationSubmitted(_) => WebhookType::PredeterminationSubmitted,
            WebhookEvent::MemberCheck(_) => WebhookType::MemberCheck,
            WebhookEvent::PaymentScheduled(_) => WebhookType::PaymentScheduled,
            WebhookEvent::PaymentFailed(_) => WebhookType::PaymentFailed,
            WebhookEvent::PaymentHeld(_) => WebhookType::PaymentHeld,
            WebhookEvent::InvoiceOverpaid(_) => WebhookType::InvoiceOverpaid,
        }
    }

    /// Reads `data` as the schema of `kind`.
    pub fn from_data(kind: WebhookType, data: Value) -> Result<Self, serde_json::Error> {
        Self::typed(kind, data).map_err(|problem| {
            serde_json::Error::custom(format!("invalid `data` of a {kind} webhook: {}", problem.message))
        })
    }

    /// Reads `data` as the schema of `kind`, saying where it does not fit.
    pub fn typed(kind: WebhookType, data: Value) -> Result<Self, crate::parse_problem::ParseProblem> {
        use crate::parse_problem::from_value;
        match kind {
            WebhookType::InvoiceSubmitted => from_value(data).map(WebhookEvent::InvoiceSubmitted),
            WebhookType::InvoiceCancellationRequested => {
                from_value(data).map(WebhookEvent::InvoiceCancellationRequested)
            }
            WebhookType::PredeterminationSubmitted => from_value(data).map(WebhookEvent::PredeterminationSubmitted),
            WebhookType::MemberCheck => from_value(data).map(WebhookEvent::MemberCheck),
            WebhookType::PaymentScheduled => from_value(data).map(WebhookEvent::PaymentScheduled),
            WebhookType::PaymentFailed => from_value(data).map(WebhookEvent::PaymentFailed),
            WebhookType::PaymentHeld => from_value(data).map(WebhookEvent::PaymentHeld),
            WebhookType::InvoiceOverpaid => from_value(data).map(WebhookEvent::InvoiceOverpaid),
        }
    }
}

/// A webhook with typed `data`, keyed on `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Unique per event and repeated on every retry: de-duplicate on it.
    pub id: String,
    pub created: Option<WebhookCreated>,
    pub event: WebhookEvent,
    pub links: Links,
}

impl Webhook {
    pub fn webhook_type(&self) -> WebhookType {
        self.event.webhook_type()
    }

    /// The href of the relation the program acts on next ([`WebhookType::action_rel`]).
    pub fn action_href(&self) -> Option<&str> {
        self.webhook_type().action_rel().and_then(|rel| self.links.href(rel))
    }

    /// Shorthand for `links.webhook_error_href()`.
    pub fn webhook_error_href(&self) -> Option<&str> {
        self.links.webhook_error_href()
    }
}

#[derive(Serialize)]
struct WebhookOut<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: &'a Option<WebhookCreated>,
    data: &'a WebhookEvent,
    #[serde(rename = "type")]
    kind: WebhookType,
    #[serde(rename = "_links", skip_serializing_if = "Links::is_empty")]
    links: &'a Links,
}

impl Serialize for Webhook {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WebhookOut {
            id: &self.id,
            created: &self.created,
            data: &self.event,
            kind: self.webhook_type(),
            links: &self.links,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Webhook {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WebhookEnvelope::deserialize(deserializer)?.into_webhook().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_forms() {
        let read = |v: Value| WebhookCreated::parse_value(&v);
        assert_eq!(read(json!(1565140165)).map(|c| c.epoch_seconds()), Ok(1565140165));
        assert_eq!(read(json!("1596012705")).map(|c| c.epoch_seconds()), Ok(1596012705));
        // 2020-10-30T09:10:11+11:00 = 2020-10-29T22:10:11Z
        assert_eq!(read(json!("2020-10-30T09:10:11.2321413+11:00")).map(|c| c.epoch_seconds()), Ok(1604009411));
        assert_eq!(read(json!("2020-01-30T03:49:25.548+00:00")).map(|c| c.epoch_seconds()), Ok(1580356165));
        assert!(read(json!("yesterday")).expect_err("not a time").contains("ISO 8601"));
        assert!(read(json!(true)).is_err());
        assert!(read(json!(i64::MAX)).is_err());
        let created: WebhookCreated = serde_json::from_str("1565140165.9").expect("fractional epoch");
        assert_eq!(created.epoch_seconds(), 1565140165);
        assert_eq!(serde_json::to_string(&created).expect("json"), "1565140165");
    }

    #[test]
    fn links_alias_and_null() {
        let links: Links = serde_json::from_value(json!({
            "lp_webhook-error": {"href": "https://x/retry"},
            "lp:payment-invoices": {"href": "https://x/invoices"},
        }))
        .expect("links");
        assert_eq!(links.webhook_error_href(), Some("https://x/retry"));
        assert_eq!(links.href("lp_webhook-error"), Some("https://x/retry"));
        assert_eq!(links.payment_invoices_href(), Some("https://x/invoices"));
        assert_eq!(
            serde_json::to_value(&links).expect("json"),
            json!({"lp:webhook-error": {"href": "https://x/retry"}, "lp:payment-invoices": {"href": "https://x/invoices"}})
        );

        let links: Links = serde_json::from_value(json!({"lp:webhook-error": null})).expect("null link");
        assert_eq!(links.webhook_error_href(), None);
        assert_eq!(links.entry(rel::WEBHOOK_ERROR), Some(&LinkValue::Null));
        assert_eq!(serde_json::to_value(&links).expect("json"), json!({"lp:webhook-error": null}));

        let links: Links = serde_json::from_value(json!({
            "lp_webhook-error": {"href": "https://x/alias"},
            "lp:webhook-error": {"href": "https://x/documented"},
        }))
        .expect("both");
        assert_eq!(links.webhook_error_href(), Some("https://x/documented"));

        let links: Links =
            serde_json::from_value(json!({"curies": [{"name": "lp", "href": "https://d/{rel}", "templated": true}]}))
                .expect("array");
        assert_eq!(links.get("curies").and_then(|l| l.templated), Some(true));

        assert!(serde_json::from_value::<Links>(json!({"self": "https://x"})).is_err());
        assert!(serde_json::from_value::<Links>(json!({"self": {}})).is_err());
    }

    #[test]
    fn webhook_types() {
        for kind in WebhookType::ALL {
            assert_eq!(WebhookType::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).expect("json"), kind.as_str());
        }
        assert_eq!(WebhookType::parse("claiming.invoice.updated"), None);
        assert_eq!(WebhookType::MemberCheck.action_rel(), Some(rel::UPDATE_MEMBER_STATE));
    }

    #[test]
    fn unknown_type_is_kept_by_the_envelope_and_refused_by_the_typed_webhook() {
        let body = json!({"id": "8ad735a2-21a0-481a-9174-205817e95110", "created": 1, "type": "x.y", "data": {}});
        let envelope: WebhookEnvelope = serde_json::from_value(body.clone()).expect("envelope");
        assert_eq!(envelope.webhook_type(), None);
        let error = envelope.into_webhook().expect_err("unknown type");
        assert!(error.to_string().contains("unknown webhook type `x.y`"), "{error}");
        let error = serde_json::from_value::<Webhook>(body).expect_err("unknown type");
        assert!(error.to_string().contains("claiming.invoice.submitted"), "{error}");
    }
}
