//! Building blocks shared by the HICAPS messages: code lists, dates kept as written, money rules.

use chrono::{DateTime, FixedOffset, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

/// Decimal places the spec allows for `benefit` and `amount` ("decimal 2dp").
pub const MONEY_DP: u32 = 2;
/// Decimal places the spec allows for `quantity` and `unitPrice` ("decimal (4 dp)").
pub const QUANTITY_DP: u32 = 4;

/// Whether `d` is written with at most `dp` decimal places. Counts the scale as written
/// (`1.500` has 3), because HICAPS receives the number exactly as we serialise it.
pub fn has_at_most_dp(d: &Decimal, dp: u32) -> bool {
    d.scale() <= dp
}

/// A HICAPS Program API code list that HICAPS may extend ("Values include ..."). Known values get a variant;
/// anything else is kept verbatim in `Other`, so a new code never makes us refuse a webhook
/// (a 4xx makes HICAPS abandon it). Closed lists we send ourselves are plain enums instead.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value not (yet) in the spec, kept as received.
            Other(String),
        }

        impl $name {
            /// The wire values the HICAPS Program API lists.
            pub const KNOWN: &'static [&'static str] = &[$($wire),+];

            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Other(value) => value,
                }
            }

            /// False for a value the HICAPS Program API does not list.
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Other(_))
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $( $wire => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Ok(Self::from(value.as_ref()))
            }
        }
    };
}
pub(crate) use open_enum;

open_enum! {
    /// Program codes ("Note this list is continually being updated").
    Program {
        MedicareBulkbill = "medicare-bulkbill",
        MedicareDva = "medicare-dva",
        MedicarePci = "medicare-pci",
        MedicareEasyclaimPc = "medicare-easyclaim-pc",
        MedicareEasyclaimBulkbill = "medicare-easyclaim-bulkbill",
        NdisAgency = "ndis-agency",
        Tac = "tac",
        Wsv = "wsv",
        Mpl = "mpl",
        Nib = "nib",
        Wcq = "wcq",
        Icwa = "icwa",
    }
}

open_enum! {
    /// Invoice `sourceChannel`.
    SourceChannel { Bulkimport = "bulkimport", Web = "web", App = "app", Pms = "pms" }
}

open_enum! {
    /// Invoice `responsePriority`: the SLA the biller's channel expects.
    ResponsePriority {
        /// Immediately / real time.
        Stat = "stat",
        /// With best effort.
        Normal = "normal",
        /// Later, when possible.
        Deferred = "deferred",
    }
}

open_enum! {
    /// Member and patient `gender`.
    Gender { Male = "male", Female = "female", Unspecified = "unspecified" }
}

open_enum! {
    /// Claim `taxCode`.
    TaxCode { Gst = "GST", Fre = "FRE" }
}

/// A date (`YYYY-MM-DD`) kept exactly as received, so relaying it is lossless; [`DateText::to_date`]
/// reads it. Kept as text because a malformed optional date must not make us reject a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DateText(pub String);

impl DateText {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The date, when the text is a valid `YYYY-MM-DD`.
    pub fn to_date(&self) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(&self.0, "%Y-%m-%d").ok()
    }
}

impl From<NaiveDate> for DateText {
    fn from(date: NaiveDate) -> Self {
        Self(date.format("%Y-%m-%d").to_string())
    }
}

/// A date-time (`YYYY-MM-DDTHH:mm:ss.SSS±HH:mm`) kept exactly as received. The spec's own example
/// omits the seconds (`2019-08-07T00:00.000+10:00`), so reading is tolerant: see [`Self::to_datetime`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DateTimeText(pub String);

impl DateTimeText {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// RFC 3339, or RFC 3339 without seconds (read as `:00`, keeping any fraction). `None` otherwise.
    pub fn to_datetime(&self) -> Option<DateTime<FixedOffset>> {
        parse_loose_datetime(&self.0)
    }
}

impl From<DateTime<FixedOffset>> for DateTimeText {
    fn from(at: DateTime<FixedOffset>) -> Self {
        Self(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
    }
}

/// RFC 3339, accepting a time written `HH:MM` (optionally with a fraction) before the offset.
pub(crate) fn parse_loose_datetime(text: &str) -> Option<DateTime<FixedOffset>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at);
    }
    // `YYYY-MM-DDTHH:MM` is 16 bytes; if no `:SS` follows, insert `:00` and try again.
    let (head, tail) = (text.get(..16)?, text.get(16..)?);
    if tail.starts_with(':') {
        return None;
    }
    let fraction_len = tail.strip_prefix('.').map_or(0, |f| 1 + f.bytes().take_while(u8::is_ascii_digit).count());
    let (fraction, offset) = tail.split_at(fraction_len);
    DateTime::parse_from_rfc3339(&format!("{head}:00{fraction}{offset}")).ok()
}

/// `null` read as the type's default: optional arrays arrive as `null` or absent interchangeably.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn scale_counts_as_written() {
        let d = |s: &str| Decimal::from_str(s).expect("decimal");
        assert!(has_at_most_dp(&d("690"), MONEY_DP));
        assert!(has_at_most_dp(&d("690.00"), MONEY_DP));
        assert!(has_at_most_dp(&d("90.05"), MONEY_DP));
        assert!(!has_at_most_dp(&d("10.123"), MONEY_DP));
        assert!(!has_at_most_dp(&d("1.500"), MONEY_DP));
        assert!(has_at_most_dp(&d("1.2345"), QUANTITY_DP));
        assert!(!has_at_most_dp(&d("1.23456"), QUANTITY_DP));
    }

    #[test]
    fn open_enums_keep_unknown_values() {
        let p: Program = serde_json::from_str("\"mpl\"").expect("program");
        assert_eq!(p, Program::Mpl);
        let p: Program = serde_json::from_str("\"hcf\"").expect("program");
        assert_eq!(p, Program::Other("hcf".into()));
        assert!(!p.is_known());
        assert_eq!(serde_json::to_string(&p).expect("json"), "\"hcf\"");
        for known in Program::KNOWN {
            assert_eq!(Program::from(*known).as_str(), *known);
            assert!(Program::from(*known).is_known());
        }
    }

    #[test]
    fn loose_datetimes() {
        let at = DateTimeText::new("2019-08-07T00:00.000+10:00").to_datetime().expect("no seconds");
        assert_eq!(at.to_rfc3339(), "2019-08-07T00:00:00+10:00");
        let at = DateTimeText::new("2019-08-07T10:30+10:00").to_datetime().expect("no seconds, no fraction");
        assert_eq!(at.to_rfc3339(), "2019-08-07T10:30:00+10:00");
        assert!(DateTimeText::new("2020-10-30T09:10:11.2321413+11:00").to_datetime().is_some());
        assert!(DateTimeText::new("2019-11-15T01:09:23.633+10:00").to_datetime().is_some());
        assert!(DateTimeText::new("2019-08-07").to_datetime().is_none());
        assert!(DateTimeText::new("2019-08-07T10:30").to_datetime().is_none());
        assert!(DateTimeText::new("é").to_datetime().is_none());
        assert!(DateTimeText::new("2019-08-07T10:3é+10:00").to_datetime().is_none());
        assert_eq!(DateText::new("1990-04-01").to_date(), NaiveDate::from_ymd_opt(1990, 4, 1));
        assert_eq!(DateText::new("1990-13-01").to_date(), None);
    }
}
