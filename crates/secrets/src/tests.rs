use std::sync::OnceLock;

use secrecy::ExposeSecret;

use super::*;

/// Two generated keys, shared by the tests of this process (RSA generation takes seconds).
fn keys() -> &'static (SecretKey, SecretKey) {
    static KEYS: OnceLock<(SecretKey, SecretKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            SecretKey::generate().expect("generate"),
            SecretKey::generate().expect("generate"),
        )
    })
}

const API_KEY: &str = "0123456789abcdef0123456789abcdef-us21";

#[test]
fn encrypts_and_decrypts_round_trip_through_the_env_text() {
    let (key, _) = keys();
    let env = key.to_env_text();
    assert!(!env.expose_secret().contains(char::is_whitespace));
    // The env text, the bare armor, and either with whitespace around all read back.
    let armor = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(env.expose_secret())
            .expect("base64"),
    )
    .expect("utf-8");
    for text in [
        env.expose_secret().to_string(),
        format!("  {}\n", env.expose_secret()),
        armor.clone(),
        format!("\n{armor}\n\n"),
    ] {
        let read = SecretKey::from_env_text(&text).expect("reads");
        assert_eq!(read.fingerprint(), key.fingerprint());
        let ring = KeyRing::new(read, None);
        let sealed = key.encrypt(API_KEY).expect("encrypt");
        assert!(!sealed
            .windows(8)
            .any(|w| API_KEY.as_bytes().windows(8).any(|k| k == w)));
        let opened = ring.decrypt(&sealed, &key.fingerprint()).expect("decrypt");
        assert_eq!(opened.expose_secret(), API_KEY);
    }
    assert_eq!(key.fingerprint().len(), 40);
    assert!(key
        .fingerprint()
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert!(key
        .public_key_armored()
        .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
}

#[test]
fn debug_shows_only_the_fingerprint() {
    let (key, previous) = keys();
    let ring = KeyRing::new(key.clone(), Some(previous.clone()));
    let shown = format!("{key:?} {key:#?} {ring:?}");
    assert!(shown.contains(&key.fingerprint()), "{shown}");
    let env = key.to_env_text();
    let armor = key
        .secret
        .to_armored_string(ArmorOptions::default())
        .unwrap();
    // No line of the private key (nor its base64) shows up.
    for line in armor.lines().filter(|l| l.len() > 16) {
        assert!(!shown.contains(line), "{shown}");
    }
    assert!(!shown.contains(&env.expose_secret()[..40]));
    assert!(!format!("{env:?}").contains(&env.expose_secret()[..40]));
}

#[test]
fn the_wrong_secret_is_refused_with_a_clear_message() {
    let (key, other) = keys();
    let sealed = key.encrypt(API_KEY).expect("encrypt");
    let ring = KeyRing::new(other.clone(), None);
    // The ring does not hold the key the ciphertext names.
    let error = ring.decrypt(&sealed, &key.fingerprint()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&key.fingerprint()), "{text}");
    assert!(text.contains(&other.fingerprint()), "{text}");
    assert!(text.contains("CHIMPSYNC_SECRET_KEY"), "{text}");
    // The ciphertext claims the held key but was encrypted for another one.
    let error = ring.decrypt(&sealed, &other.fingerprint()).unwrap_err();
    assert!(matches!(error, Error::Decrypt { .. }), "{error}");
    assert!(
        error.to_string().contains("not encrypted for this key"),
        "{error}"
    );
    // With the previous secret in the ring, it decrypts.
    let ring = KeyRing::new(other.clone(), Some(key.clone()));
    let opened = ring
        .decrypt(&sealed, &key.fingerprint().to_uppercase())
        .unwrap();
    assert_eq!(opened.expose_secret(), API_KEY);
    assert_eq!(ring.current().fingerprint(), other.fingerprint());
}

#[test]
fn bad_env_text_is_refused_without_echoing_it() {
    let (key, _) = keys();
    let public = key.public_key_armored();
    let cases = [
        ("", "empty"),
        ("not a key PLANTED", "base64"),
        (public.as_str(), "public key"),
        (
            "LS0tLS1CRUdJTiBQR1AgUFJJVkFURSBLRVkgQkxPQ0stLS0tLQpQTEFOVEVE",
            "does not parse",
        ),
    ];
    for (text, expected) in cases {
        let error = SecretKey::from_env_text(text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
        assert!(!error.contains("PLANTED"), "{error}");
    }
}
