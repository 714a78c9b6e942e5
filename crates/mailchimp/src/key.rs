//! The API key and the subscriber hash.

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};
use secrecy::{ExposeSecret, SecretString};

use crate::Error;

/// Mailchimp's id for a list member: the lowercase hex MD5 of the lower-cased, trimmed address.
///
/// Mailchimp documents the hash of the lower-cased address; trimming as well means a stray
/// space in the source table cannot produce a second contact.
///
/// ```
/// assert_eq!(
///     mailchimp::subscriber_hash(" Urist.McVankab@freddiesjokes.com"),
///     "62eeb292278cc15f5817cb78f7790b08",
/// );
/// ```
pub fn subscriber_hash(email: &str) -> String {
    hex::encode(Md5::digest(email.trim().to_lowercase().as_bytes()))
}

/// A Mailchimp API key (`<key>-<dc>`), kept secret.
///
/// `Debug` prints `ApiKey(<redacted>)` and there is no `Display`, so the key cannot end up
/// in a log line or an error message by accident.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// Parses `<anything non-empty>-<dc>`, where the data centre `dc` is the text after the
    /// last `-` and must be non-empty and alphanumeric (e.g. `us6`). Surrounding whitespace
    /// (a trailing newline from a secrets file) is ignored.
    ///
    /// The error names the expected shape, never any part of the input.
    pub fn parse(s: &str) -> Result<ApiKey, Error> {
        let s = s.trim();
        let shape_error = || {
            Error::InvalidInput(
                "the Mailchimp API key must look like <key>-<data centre>, e.g. …-us6".to_owned(),
            )
        };
        let (key, dc) = s.rsplit_once('-').ok_or_else(shape_error)?;
        if key.is_empty() || dc.is_empty() || !dc.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(shape_error());
        }
        Ok(ApiKey(SecretString::from(s)))
    }

    /// The data centre this key belongs to (`us6` for `…-us6`); it picks the API host.
    pub fn data_center(&self) -> &str {
        // `parse` guarantees a '-' followed by a non-empty alphanumeric suffix.
        self.0
            .expose_secret()
            .rsplit_once('-')
            .map_or("", |(_, dc)| dc)
    }

    /// The whole key, for the HTTP Basic password only.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl FromStr for ApiKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ApiKey::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef-us6";

    #[test]
    fn subscriber_hash_matches_mailchimps_worked_example() {
        assert_eq!(
            subscriber_hash("Urist.McVankab@freddiesjokes.com"),
            "62eeb292278cc15f5817cb78f7790b08"
        );
    }

    #[test]
    fn subscriber_hash_ignores_case_and_surrounding_whitespace() {
        assert_eq!(
            subscriber_hash("  URIST.mcvankab@FreddiesJokes.com\n"),
            subscriber_hash("urist.mcvankab@freddiesjokes.com")
        );
    }

    #[test]
    fn data_center_is_the_text_after_the_last_dash() {
        assert_eq!(ApiKey::parse(KEY).unwrap().data_center(), "us6");
        assert_eq!(ApiKey::parse("a-b-us21").unwrap().data_center(), "us21");
        assert_eq!(
            ApiKey::parse(&format!("{KEY}\n")).unwrap().data_center(),
            "us6"
        );
    }

    #[test]
    fn keys_without_a_usable_data_center_are_refused() {
        for bad in [
            "", "nodash", "-us6", "abc-", "abc-us 6", "abc-us.6", "abc-ü6",
        ] {
            assert!(ApiKey::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn parse_errors_name_no_key_material() {
        let secret = "0123456789abcdef0123456789abcdef-us_6";
        let err = secret.parse::<ApiKey>().unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert!(!text.contains("us_6"), "{text}");
    }

    #[test]
    fn debug_of_an_api_key_is_redacted() {
        let key = ApiKey::parse(KEY).unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert_eq!(format!("{key:#?}"), "ApiKey(<redacted>)");
    }
}
