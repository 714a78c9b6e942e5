//! `chimpsync secret`: the key-encryption secret of multi-account mode. `generate` makes one;
//! `rotate` re-encrypts every account API key for a new one in one transaction.

use anyhow::{bail, Context, Result};
use secrecy::ExposeSecret;
use secrets::{KeyRing, SecretKey};
use store::accounts::{self, KeyEncryption};
use tracing::{info, warn};

use crate::config::Config;
use crate::db;

/// How many times `rotate` goes over the accounts again for keys an application connected with
/// the old public key while the rotation ran (their encryption read the key before it changed).
const ROTATION_PASSES: usize = 3;

/// Prints a new `CHIMPSYNC_SECRET_KEY` value on stdout and nothing else there.
pub async fn generate() -> Result<()> {
    eprintln!("generating an RSA 3072 key pair (a few seconds)...");
    let key = tokio::task::spawn_blocking(SecretKey::generate)
        .await
        .context("key generation stopped")??;
    println!("{}", key.to_env_text().expose_secret());
    eprintln!(
        "key {}: set it as CHIMPSYNC_SECRET_KEY for `chimpsync setup` and every worker, and keep it \
         as you keep DATABASE_URL's password: without it the account API keys cannot be read",
        key.fingerprint()
    );
    Ok(())
}

/// Re-encrypts every account's key from the current secret (`CHIMPSYNC_SECRET_KEY`, and
/// `CHIMPSYNC_PREVIOUS_SECRET_KEY` for keys a previous rotation left) to
/// `CHIMPSYNC_NEW_SECRET_KEY`, installs the new public key, and says what to do next.
pub async fn rotate(config: &Config) -> Result<()> {
    let ring = config.key_ring()?;
    let new = config.new_secret_key()?;
    if new.fingerprint() == ring.current().fingerprint() {
        bail!(
            "CHIMPSYNC_NEW_SECRET_KEY is the same key as CHIMPSYNC_SECRET_KEY ({}): make a new one \
             with `chimpsync secret generate`",
            new.fingerprint()
        );
    }
    let public_key = new.public_key_armored();
    let fingerprint = new.fingerprint();
    let target = KeyEncryption {
        public_key: &public_key,
        fingerprint: &fingerprint,
    };
    let mut client = db::connect(config).await?;
    let mut resealed = 0;
    let mut already = None;
    for _ in 0..ROTATION_PASSES {
        let rotated = accounts::rotate(&mut client, target, |sealed| reseal(&ring, &new, sealed))
            .await
            .context("rotation failed; nothing was changed")?;
        resealed += rotated.resealed;
        already.get_or_insert(rotated.already);
        if accounts::sealed_for_others(&client, &fingerprint).await? == 0 {
            break;
        }
        warn!(
            "accounts were connected with the old key during the rotation; going over them again"
        );
    }
    let left = accounts::sealed_for_others(&client, &fingerprint).await?;
    info!(resealed, fingerprint = %fingerprint, "account API keys re-encrypted");
    println!(
        "re-encrypted {resealed} account API key(s) for key {fingerprint}{} and installed its public key",
        match already {
            Some(n) if n > 0 => format!(" ({n} were encrypted for it already)"),
            _ => String::new(),
        }
    );
    if left > 0 {
        println!(
            "warning: {left} key(s) are still encrypted for another key (connected while this ran): \
             run `chimpsync secret rotate` again with the same settings"
        );
    }
    println!("next:");
    println!(
        "  1. roll the workers to CHIMPSYNC_SECRET_KEY=<the new secret> and \
         CHIMPSYNC_PREVIOUS_SECRET_KEY=<the old secret>"
    );
    println!(
        "  2. once every replica runs with them, remove CHIMPSYNC_PREVIOUS_SECRET_KEY and \
         destroy the old secret"
    );
    Ok(())
}

/// One account's key, decrypted with the ring and encrypted for `new`. The error says why
/// without any key material.
fn reseal(
    ring: &KeyRing,
    new: &SecretKey,
    sealed: &accounts::SealedKey,
) -> Result<Vec<u8>, String> {
    let key = ring
        .decrypt(&sealed.ciphertext, &sealed.encrypted_for)
        .map_err(|e| e.to_string())?;
    new.encrypt(key.expose_secret()).map_err(|e| e.to_string())
}
