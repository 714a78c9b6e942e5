//! Authentication: the API key of a request, as Mailchimp reads it.

use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;

use crate::accounts::{AccountId, Accounts};
use crate::problem::ApiError;

/// The key of `Authorization: Basic base64(user:key)`, `Bearer key` or `OAuth key`.
fn api_key_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    let key = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(base64_decode(rest)?).ok()?;
        match decoded.split_once(':') {
            Some((_, password)) => password.to_owned(),
            None => decoded,
        }
    } else if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth") {
        rest.to_owned()
    } else {
        return None;
    };
    (!key.is_empty()).then_some(key)
}

/// The account of the request's key; refuses a request without a key, or with a key that is not
/// accepted (unknown, or revoked).
pub(crate) fn authenticate(
    accounts: &Accounts,
    headers: &HeaderMap,
) -> Result<AccountId, ApiError> {
    let key = api_key_of(headers).ok_or_else(ApiError::api_key_missing)?;
    accounts.authenticate(&key)
}

/// Standard base64 (padding optional); `None` on any other character.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in input.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    #[test]
    fn basic_auth_yields_the_password_and_bearer_the_token() {
        let mut h = HeaderMap::new();
        // "anystring:key-us6"
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic YW55c3RyaW5nOmtleS11czY="),
        );
        assert_eq!(api_key_of(&h).as_deref(), Some("key-us6"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer tok"));
        assert_eq!(api_key_of(&h).as_deref(), Some("tok"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(api_key_of(&h), None);
    }
}
