//! Addresses: the subscriber hash and the emulator's validity rules.

use md5::{Digest, Md5};

/// Domains Mailchimp refuses as "looks fake or invalid" (RFC 2606 examples plus `test.com`).
const FAKE_DOMAINS: [&str; 4] = ["example.com", "example.org", "example.net", "test.com"];

/// Mailchimp's subscriber hash: lowercase hex MD5 of the trimmed, lower-cased address.
pub fn subscriber_hash(email: &str) -> String {
    let lower = email.trim().to_lowercase();
    hex::encode(Md5::digest(lower.as_bytes()))
}

/// The member key a path segment names: a raw address (it contains `@`) is hashed, a hash is
/// lower-cased.
pub(crate) fn path_key(segment: &str) -> String {
    if segment.contains('@') {
        subscriber_hash(segment)
    } else {
        segment.to_ascii_lowercase()
    }
}

/// Whether the address is syntactically acceptable (a pragmatic subset of RFC 5321: ASCII
/// dot-atom local part, a dotted domain with an alphabetic top-level label).
pub(crate) fn is_valid(email: &str) -> bool {
    let e = email.trim();
    if e.is_empty() || e.len() > 254 {
        return false;
    }
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    if local.is_empty()
        || local.len() > 64
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b))
    {
        return false;
    }
    let mut labels = 0;
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2
        && last.len() >= 2
        && (last.bytes().all(|b| b.is_ascii_alphabetic()) || last.starts_with("xn--"))
}

/// Whether Mailchimp would call the address fake (a reserved example or test domain).
pub(crate) fn is_fake(email: &str) -> bool {
    let Some((_, domain)) = email.trim().rsplit_once('@') else {
        return false;
    };
    FAKE_DOMAINS
        .iter()
        .any(|fake| domain.eq_ignore_ascii_case(fake))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_hashes_to_the_documented_value() {
        assert_eq!(
            subscriber_hash(" Urist.McVankab@freddiesjokes.com "),
            "62eeb292278cc15f5817cb78f7790b08"
        );
    }

    #[test]
    fn validity_rules_accept_ordinary_addresses_and_refuse_broken_ones() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.domain.org",
            "x_y-z@xn--bcher-kva.de",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a@@b.co",
            "a b@c.co",
            ".a@b.co",
            "a..b@c.co",
            "a@-b.co",
            "a@b..co",
            "a@b.c",
            "a@b.123",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn reserved_domains_are_fake_in_any_case() {
        assert!(is_fake("x@Example.COM"));
        assert!(is_fake("x@test.com"));
        assert!(!is_fake("x@example.co"));
        assert!(!is_fake("x@sub.example.com"));
    }

    #[test]
    fn a_path_segment_with_an_at_sign_is_hashed() {
        assert_eq!(path_key("A@B.co"), subscriber_hash("a@b.co"));
        assert_eq!(path_key("ABCDEF"), "abcdef");
    }
}
