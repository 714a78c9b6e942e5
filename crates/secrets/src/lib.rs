//! The key-encryption key of multi-account mode.
//!
//! Account API keys are stored encrypted in `chimpsync.accounts`. The application's SQL encrypts
//! them with pgcrypto's `pgp_pub_encrypt` to a public key installed in
//! `chimpsync.key_encryption`, so a settings page can connect an account without holding any
//! secret; only the worker holds the private half ([`SecretKey`], from `CHIMPSYNC_SECRET_KEY`)
//! and decrypts here, in the process, so the private key never reaches the database server.
//!
//! The keys are OpenPGP v4: an RSA primary key (certification only) with one RSA encryption
//! subkey. RSA because pgcrypto encrypts to RSA and Elgamal keys only; one encryption subkey
//! because pgcrypto refuses a key with several.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use pgp::composed::{
    ArmorOptions, Deserializable, EncryptionCaps, KeyType, Message, MessageBuilder,
    SecretKeyParamsBuilder, SignedPublicKey, SignedPublicSubKey, SignedSecretKey,
    SubkeyParamsBuilder,
};
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::DataMode;
use pgp::types::{KeyDetails, Password};
use secrecy::zeroize::{Zeroize, Zeroizing};
use secrecy::SecretString;

/// RSA modulus size of generated keys: 3072 bits is the size recommended for use beyond 2030.
const RSA_BITS: u32 = 3072;

/// The user id of generated keys (OpenPGP wants one; nothing reads it).
const USER_ID: &str = "chimpsync key encryption";

const ARMOR_HEADER: &str = "-----BEGIN PGP PRIVATE KEY BLOCK-----";

/// What went wrong. Never holds key material: the messages are chimpsync's own, not the OpenPGP
/// library's (whose parse errors may quote their input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not a usable private key (the message says why).
    #[error("not a usable chimpsync secret key: {0}")]
    InvalidSecret(String),
    /// Key generation failed.
    #[error("cannot generate a key: {0}")]
    Generate(String),
    /// Encryption failed.
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    /// The ciphertext is encrypted for a key the ring does not hold.
    #[error(
        "the API key is encrypted for key-encryption key {encrypted_for}, but the worker holds {held}: \
         set CHIMPSYNC_SECRET_KEY (or, during a rotation, CHIMPSYNC_PREVIOUS_SECRET_KEY) to that key's secret"
    )]
    UnknownKey {
        /// The fingerprint the ciphertext was encrypted for.
        encrypted_for: String,
        /// The fingerprints of the secrets held.
        held: String,
    },
    /// The ciphertext could not be decrypted with the key it names (damaged, or not encrypted
    /// for that key after all).
    #[error("cannot decrypt the API key with key-encryption key {fingerprint}: {reason}")]
    Decrypt {
        /// The key that was tried.
        fingerprint: String,
        /// Why it failed.
        reason: String,
    },
}

/// A key-encryption secret: an OpenPGP private key. `Debug` shows only its fingerprint.
#[derive(Clone)]
pub struct SecretKey {
    // Arc: the worker clones the ring into each task; the key material is not copied.
    secret: Arc<SignedSecretKey>,
    public: Arc<SignedPublicKey>,
    fingerprint: String,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A new key pair (RSA 3072, v4), for `chimpsync secret generate`. Takes a few seconds.
    pub fn generate() -> Result<SecretKey, Error> {
        let generate = |e: &dyn fmt::Display| Error::Generate(e.to_string());
        let mut subkey = SubkeyParamsBuilder::default();
        subkey
            .key_type(KeyType::Rsa(RSA_BITS))
            .can_sign(false)
            .can_encrypt(EncryptionCaps::All)
            .can_authenticate(false);
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Rsa(RSA_BITS))
            .can_certify(true)
            .can_sign(false)
            .can_encrypt(EncryptionCaps::None)
            .primary_user_id(USER_ID.into())
            .subkeys(vec![subkey.build().map_err(|e| generate(&e))?]);
        let secret = params
            .build()
            .map_err(|e| generate(&e))?
            .generate(rand_pgp::thread_rng())
            .map_err(|e| generate(&e))?;
        SecretKey::from_key(secret)
    }

    /// Reads what `CHIMPSYNC_SECRET_KEY` holds: the armored private key, or the base64 of that
    /// armor (one line, as [`SecretKey::to_env_text`] writes it); surrounding whitespace is
    /// ignored.
    pub fn from_env_text(text: &str) -> Result<SecretKey, Error> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::InvalidSecret("it is empty".into()));
        }
        // Base64 of the armor; spaces and line breaks from copying are dropped.
        let decoded = if text.starts_with("-----BEGIN ") {
            None
        } else {
            let compact: Zeroizing<String> =
                Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|_| {
                    Error::InvalidSecret(
                        "neither an armored OpenPGP private key nor base64 of one \
                         (use the output of `chimpsync secret generate`)"
                            .into(),
                    )
                })?;
            Some(Zeroizing::new(String::from_utf8(bytes).map_err(|e| {
                e.into_bytes().zeroize();
                Error::InvalidSecret("its base64 does not hold an armored key".into())
            })?))
        };
        let armor = decoded.as_deref().map_or(text, |s| s.trim());
        if armor.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
            return Err(Error::InvalidSecret(
                "it is a public key; the worker needs the private key".into(),
            ));
        }
        if !armor.starts_with(ARMOR_HEADER) {
            return Err(Error::InvalidSecret(format!(
                "an armored private key starts with {ARMOR_HEADER}"
            )));
        }
        let secret = SignedSecretKey::from_string(armor)
            .map(|(key, _headers)| key)
            .map_err(|_| Error::InvalidSecret("the OpenPGP private key does not parse".into()))?;
        secret
            .verify_bindings()
            .map_err(|_| Error::InvalidSecret("the key's self-signatures do not verify".into()))?;
        SecretKey::from_key(secret)
    }

    fn from_key(secret: SignedSecretKey) -> Result<SecretKey, Error> {
        let public = SignedPublicKey::from(secret.clone());
        let fingerprint = hex_fingerprint(&secret);
        let key = SecretKey {
            secret: Arc::new(secret),
            public: Arc::new(public),
            fingerprint,
        };
        // Checked once here, so that encrypt and pgcrypto agree on the subkey.
        key.encryption_subkey()?;
        Ok(key)
    }

    /// The value of `CHIMPSYNC_SECRET_KEY`: the base64 of the armored private key, on one line.
    pub fn to_env_text(&self) -> SecretString {
        let mut armored = self
            .secret
            .to_armored_string(ArmorOptions::default())
            .expect("a parsed or generated key serializes");
        let text = base64::engine::general_purpose::STANDARD.encode(armored.as_bytes());
        armored.zeroize();
        SecretString::from(text)
    }

    /// The public half, armored: what `chimpsync.key_encryption` holds for pgcrypto's `dearmor`.
    pub fn public_key_armored(&self) -> String {
        self.public
            .to_armored_string(ArmorOptions::default())
            .expect("a parsed or generated key serializes")
    }

    /// The primary key's fingerprint, lowercase hex (`chimpsync.accounts.encrypted_for`).
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// Encrypts `plaintext` to this key's public half, as pgcrypto's `pgp_pub_encrypt` does
    /// (SEIPD v1 with MDC, text literal data), so either side can read what the other wrote.
    pub fn encrypt(&self, plaintext: &str) -> Result<Vec<u8>, Error> {
        let encrypt = |e: &dyn fmt::Display| Error::Encrypt(e.to_string());
        let subkey = self.encryption_subkey()?;
        let mut rng = rand_pgp::thread_rng();
        let mut builder = MessageBuilder::from_bytes("", plaintext.as_bytes().to_vec())
            .seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
        // pgcrypto's pgp_pub_decrypt (text) refuses binary literal data.
        builder.data_mode(DataMode::Utf8).map_err(|e| encrypt(&e))?;
        builder
            .encrypt_to_key(&mut rng, subkey)
            .map_err(|e| encrypt(&e))?;
        builder.to_vec(&mut rng).map_err(|e| encrypt(&e))
    }

    /// The one RSA encryption subkey (what pgcrypto encrypts to).
    fn encryption_subkey(&self) -> Result<&SignedPublicSubKey, Error> {
        let mut usable = self.public.public_subkeys.iter().filter(|k| {
            k.algorithm().can_encrypt()
                && matches!(
                    k.algorithm(),
                    PublicKeyAlgorithm::RSA | PublicKeyAlgorithm::RSAEncrypt
                )
        });
        match (usable.next(), usable.next()) {
            (Some(key), None) => Ok(key),
            (None, _) => Err(Error::InvalidSecret(
                "it has no RSA encryption subkey (pgcrypto encrypts to RSA keys only)".into(),
            )),
            (Some(_), Some(_)) => Err(Error::InvalidSecret(
                "it has several encryption subkeys (pgcrypto accepts one)".into(),
            )),
        }
    }
}

fn hex_fingerprint(key: &SignedSecretKey) -> String {
    key.fingerprint()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The secrets the worker decrypts with: the current one and, during a rotation, the previous
/// one (keys not yet re-encrypted, as a replica running the old secret might still see them).
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: SecretKey,
    previous: Option<SecretKey>,
}

impl KeyRing {
    /// A ring of `current` and, optionally, `previous`.
    pub fn new(current: SecretKey, previous: Option<SecretKey>) -> KeyRing {
        KeyRing { current, previous }
    }

    /// The current secret.
    pub fn current(&self) -> &SecretKey {
        &self.current
    }

    /// Decrypts an API key with the secret whose fingerprint is `encrypted_for`
    /// (`chimpsync.accounts.encrypted_for`).
    pub fn decrypt(&self, ciphertext: &[u8], encrypted_for: &str) -> Result<SecretString, Error> {
        let wanted = encrypted_for.trim().to_ascii_lowercase();
        let key = std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.fingerprint == wanted)
            .ok_or_else(|| Error::UnknownKey {
                encrypted_for: wanted.clone(),
                held: std::iter::once(&self.current)
                    .chain(self.previous.as_ref())
                    .map(|k| k.fingerprint.as_str())
                    .collect::<Vec<_>>()
                    .join(" and "),
            })?;
        let failed = |reason: &str| Error::Decrypt {
            fingerprint: key.fingerprint.clone(),
            reason: reason.into(),
        };
        let message = Message::from_bytes(ciphertext)
            .map_err(|_| failed("the ciphertext is not an OpenPGP message"))?;
        let mut message = message
            .decrypt(&Password::empty(), &key.secret)
            .map_err(|_| failed("it is not encrypted for this key, or it is damaged"))?;
        if message.is_compressed() {
            message = message
                .decompress()
                .map_err(|_| failed("its compressed data is damaged"))?;
        }
        let bytes = message
            .as_data_vec()
            .map_err(|_| failed("its integrity check failed"))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            e.into_bytes().zeroize();
            failed("the plaintext is not UTF-8")
        })?;
        Ok(SecretString::from(text))
    }
}

#[cfg(test)]
mod tests;
