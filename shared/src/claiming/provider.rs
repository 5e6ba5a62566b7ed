//! The Medicare provider number of a hospital or practitioner location (`location.provider`).
//!
//! Eight characters: a 6-digit stem, a location character from `0123456789ABCDEFGHJKLMNPQRTUVWXY`
//! (its index is the location value) and a check character
//! `"YXWTLKJHFBA"[(3*d1 + 5*d2 + 8*d3 + 4*d4 + 2*d5 + d6 + 6*location) mod 11]`. *Unverified*: no
//! published source states it; Claiming.com.au v2, "Fund Eligibility (ECF)", uses `9988770W`, which passes.

use serde::{Serialize, Serializer};
use std::fmt;

/// The location characters; a character's index is its location value.
pub const LOCATION_CHARACTERS: &str = "0123456789ABCDEFGHJKLMNPQRTUVWXY";
/// The check characters, indexed by the weighted sum modulo 11.
pub const CHECK_CHARACTERS: &str = "YXWTLKJHFBA";
const STEM_WEIGHTS: [u32; 6] = [3, 5, 8, 4, 2, 1];
const LOCATION_WEIGHT: u32 = 6;

/// Why a provider number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderNumberError {
    /// Not 8 characters of the form `999999LC`.
    Format,
    /// Well formed, but the last character is not the check character of the first seven.
    CheckCharacter,
}

impl ProviderNumberError {
    pub fn reason(self) -> &'static str {
        match self {
            ProviderNumberError::Format => {
                "Must be a Medicare provider number: 6 digits, a location character and a check character, e.g. 9988770W."
            }
            ProviderNumberError::CheckCharacter => {
                "Is not a valid Medicare provider number: the check character does not match."
            }
        }
    }
}

/// A Medicare provider number whose check character has been verified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderNumber(String);

impl ProviderNumber {
    /// Checks `value` exactly as given (upper case, no spaces).
    pub fn parse(value: &str) -> Result<Self, ProviderNumberError> {
        let bytes = value.as_bytes();
        if bytes.len() != 8 || !bytes[..6].iter().all(u8::is_ascii_digit) {
            return Err(ProviderNumberError::Format);
        }
        let location = LOCATION_CHARACTERS.bytes().position(|c| c == bytes[6]).ok_or(ProviderNumberError::Format)?;
        if !CHECK_CHARACTERS.as_bytes().contains(&bytes[7]) {
            return Err(ProviderNumberError::Format);
        }
        if check_character(&bytes[..6], location) == bytes[7] {
            Ok(Self(value.to_owned()))
        } else {
            Err(ProviderNumberError::CheckCharacter)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The check character of a 6-digit stem (ASCII digits) at `location`.
fn check_character(stem: &[u8], location: usize) -> u8 {
    let stem_sum: u32 = stem.iter().zip(STEM_WEIGHTS).map(|(digit, weight)| u32::from(digit - b'0') * weight).sum();
    // `location` < 32, so the cast is exact.
    let sum = stem_sum + LOCATION_WEIGHT * location as u32;
    CHECK_CHARACTERS.as_bytes()[(sum % 11) as usize]
}

impl fmt::Display for ProviderNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ProviderNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_notes_examples_are_valid() {
        assert!(ProviderNumber::parse("9988770W").is_ok());
        assert!(ProviderNumber::parse("2433411Y").is_ok());
    }

    #[test]
    fn a_wrong_check_character_is_refused() {
        assert_eq!(ProviderNumber::parse("9988770X"), Err(ProviderNumberError::CheckCharacter));
        assert_eq!(ProviderNumber::parse("2433411W"), Err(ProviderNumberError::CheckCharacter));
        // Same stem, another location: the check character moves with it.
        assert_eq!(ProviderNumber::parse("9988771W"), Err(ProviderNumberError::CheckCharacter));
    }

    #[test]
    fn malformed_numbers_are_refused() {
        for value in
            ["", "9988770", "9988770W0", "998877OW", "99887I0W", "9988770w", " 9988770W", "99887a0W", "9988770Z"]
        {
            assert_eq!(ProviderNumber::parse(value), Err(ProviderNumberError::Format), "{value:?}");
        }
    }

    #[test]
    fn every_stem_and_location_has_exactly_one_valid_check_character() {
        for (stem, location) in [("000000", '0'), ("123456", 'A'), ("999999", 'Y'), ("054321", 'K')] {
            let valid: Vec<char> = CHECK_CHARACTERS
                .chars()
                .filter(|check| ProviderNumber::parse(&format!("{stem}{location}{check}")).is_ok())
                .collect();
            assert_eq!(valid.len(), 1, "{stem}{location}: {valid:?}");
        }
    }
}
