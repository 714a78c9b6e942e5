//! TLS to Postgres, the way libpq reads `DATABASE_URL`: `sslmode` and `sslrootcert`.
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require`, and it refuses the libpq
//! keys it does not know (`verify-full`, `sslrootcert`). So the TLS keys are taken out of the
//! connection string here, the rest goes to tokio-postgres, and the connector is built to match:
//!
//! | `sslmode` | connection | certificate check |
//! | --- | --- | --- |
//! | `disable`, `allow`, `prefer` (the default) | plain | none |
//! | `require` | TLS or fail | none, as in libpq (with `sslrootcert`: as `verify-ca`, as in libpq) |
//! | `verify-ca` | TLS or fail | the chain must end at a trusted root; the name is not checked |
//! | `verify-full` | TLS or fail | chain and host name |
//!
//! Trusted roots are the PEM certificates in `sslrootcert`; without it (or with
//! `sslrootcert=system`) the Mozilla roots bundled through `webpki-roots`. `prefer` stays plain
//! (chimpsync does not opportunistically encrypt): whoever wants TLS says `require` or stronger.

use std::path::PathBuf;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Error, Result};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// libpq tries plain first; chimpsync connects plain.
    Allow,
    /// libpq's default; chimpsync connects plain (say `require` for TLS).
    #[default]
    Prefer,
    /// TLS, certificate not checked (encryption against passive eavesdropping only).
    Require,
    /// TLS, the certificate chain must end at a trusted root.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::Url(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }

    /// Whether the connection must be encrypted.
    pub fn uses_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

/// A parsed `DATABASE_URL`: what tokio-postgres takes, plus the TLS settings it does not know.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Everything but the TLS keys (its own `ssl_mode` is `require` whenever TLS is wanted).
    pub config: tokio_postgres::Config,
    /// The `sslmode`.
    pub ssl_mode: SslMode,
    /// The `sslrootcert` (a PEM file, or `system`).
    pub root_cert: Option<String>,
}

/// The connector for one [`ConnectOptions`].
pub(crate) enum Connector {
    /// No TLS.
    Plain,
    /// rustls with the verifier the `sslmode` asks for.
    Rustls(MakeRustlsConnect),
}

/// The TLS keys chimpsync reads itself; tokio-postgres gets the rest.
const TLS_KEYS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword"];

impl ConnectOptions {
    /// Parses a URL (`postgres://...?sslmode=verify-full&sslrootcert=/path`) or a key-value
    /// string (`host=... sslmode=require`). Errors never echo the password.
    pub fn parse(url: &str) -> Result<ConnectOptions> {
        let (rest, tls) = split_tls_keys(url)?;
        let mut ssl_mode = SslMode::default();
        let mut root_cert = None;
        for (key, value) in tls {
            match key.as_str() {
                "sslmode" => ssl_mode = SslMode::parse(&value)?,
                "sslrootcert" => root_cert = Some(value),
                other => {
                    return Err(Error::Url(format!(
                    "{other} (client certificates) is not supported; authenticate with a password"
                )))
                }
            }
        }
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| Error::Url(e.to_string()))?;
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        Ok(ConnectOptions {
            config,
            ssl_mode,
            root_cert,
        })
    }

    /// The certificate check actually applied: libpq treats `require` with a root certificate
    /// as `verify-ca`.
    pub fn effective_mode(&self) -> SslMode {
        match self.ssl_mode {
            SslMode::Require if self.root_cert.is_some() => SslMode::VerifyCa,
            mode => mode,
        }
    }

    /// Builds the connector (reads `sslrootcert`).
    pub(crate) fn connector(&self) -> Result<Connector> {
        let mode = self.effective_mode();
        if !mode.uses_tls() {
            return Ok(Connector::Plain);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let config = if mode == SslMode::VerifyFull {
            builder
                .with_root_certificates(self.roots()?)
                .with_no_client_auth()
        } else {
            let roots = match mode {
                SslMode::VerifyCa => Some(Arc::new(self.roots()?)),
                _ => None,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(WithoutHostName { roots, provider }))
                .with_no_client_auth()
        };
        Ok(Connector::Rustls(MakeRustlsConnect::new(config)))
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match self.root_cert.as_deref() {
            None | Some("system") => {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Some(path) => {
                let path = PathBuf::from(path);
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
                    .and_then(|certs| certs.collect())
                    .map_err(|e| Error::Tls(format!("sslrootcert {}: {e}", path.display())))?;
                let (added, _ignored) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(Error::Tls(format!(
                        "sslrootcert {}: no usable PEM certificate",
                        path.display()
                    )));
                }
            }
        }
        Ok(roots)
    }
}

/// Splits the TLS keys off a connection string, returning the rest (for tokio-postgres) and
/// the TLS keys with their decoded values.
fn split_tls_keys(url: &str) -> Result<(String, Vec<(String, String)>)> {
    let mut tls = Vec::new();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), tls));
        };
        let mut kept: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            if TLS_KEYS.contains(&key.as_str()) {
                tls.push((key, decode(value)?));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, tls));
    }
    // Key-value form: `key = value` pairs, values optionally in single quotes with backslash
    // escapes. The pairs kept are written back quoted, so any value survives.
    let mut rest = String::new();
    let mut chars = url.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(Error::Url(format!("{key:?} is not followed by '='")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(Error::Url(format!("unterminated quote in {key}"))),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if TLS_KEYS.contains(&key.as_str()) {
            tls.push((key, value));
        } else {
            let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
            rest.push_str(&format!("{key}='{escaped}' "));
        }
    }
    Ok((rest.trim_end().to_string(), tls))
}

fn decode(s: &str) -> Result<String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::Url("a parameter is not valid percent-encoded UTF-8".into()))
}

/// The certificate checks of `sslmode=require` and `verify-ca`, which rustls's own verifier
/// cannot do since it always checks the host name. The handshake signatures are checked in
/// both (the server must hold the key of the certificate it shows).
#[derive(Debug)]
struct WithoutHostName {
    /// `verify-ca`: the chain must end at one of these roots. `None` for `require`: encryption
    /// without authentication of the server, as libpq does it.
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for WithoutHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_of(url: &str) -> (String, Vec<(String, String)>) {
        split_tls_keys(url).expect("parses")
    }

    #[test]
    fn url_form_loses_only_the_tls_keys() {
        let (rest, tls) = tls_of(
            "postgres://u:p%40ss@db:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(rest, "postgres://u:p%40ss@db:5432/app?application_name=x");
        assert_eq!(
            tls,
            vec![
                ("sslmode".to_string(), "verify-full".to_string()),
                ("sslrootcert".to_string(), "/etc/ca.pem".to_string())
            ]
        );
        let (rest, tls) = tls_of("postgres://u@db/app?sslmode=require");
        assert_eq!(rest, "postgres://u@db/app");
        assert_eq!(tls.len(), 1);
    }

    #[test]
    fn key_value_form_keeps_quoted_values() {
        let (rest, tls) =
            tls_of(r"host=db  password='it\'s' user = u sslmode=require sslrootcert='/a b/ca.pem'");
        assert_eq!(tls[1], ("sslrootcert".into(), "/a b/ca.pem".into()));
        let config: tokio_postgres::Config = rest.parse().expect("tokio-postgres parses the rest");
        assert_eq!(config.get_user(), Some("u"));
    }

    #[test]
    fn modes_map_onto_what_tokio_postgres_knows() {
        use tokio_postgres::config::SslMode as Pg;
        for (mode, pg, tls) in [
            ("disable", Pg::Disable, false),
            ("allow", Pg::Prefer, false),
            ("prefer", Pg::Prefer, false),
            ("require", Pg::Require, true),
            ("verify-ca", Pg::Require, true),
            ("verify-full", Pg::Require, true),
        ] {
            let options =
                ConnectOptions::parse(&format!("postgres://u@db/app?sslmode={mode}")).expect(mode);
            assert_eq!(options.config.get_ssl_mode(), pg, "{mode}");
            assert_eq!(options.ssl_mode.uses_tls(), tls, "{mode}");
        }
        let default = ConnectOptions::parse("postgres://u@db/app").expect("parses");
        assert_eq!(default.ssl_mode, SslMode::Prefer);
        assert!(matches!(
            default.connector().expect("plain"),
            Connector::Plain
        ));
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_like_libpq() {
        let options =
            ConnectOptions::parse("postgres://u@db/app?sslmode=require&sslrootcert=/x.pem")
                .expect("parses");
        assert_eq!(options.effective_mode(), SslMode::VerifyCa);
    }

    #[test]
    fn bad_values_are_refused_without_echoing_the_password() {
        let err = ConnectOptions::parse("postgres://u:secret@db/app?sslmode=bogus")
            .expect_err("bad mode");
        assert!(err.to_string().contains("sslmode"));
        assert!(!err.to_string().contains("secret"));
        let err = ConnectOptions::parse("postgres://u:secret@db/app?sslcert=/c.pem")
            .expect_err("client certs");
        assert!(err.to_string().contains("sslcert"));
        let err = ConnectOptions::parse(
            "postgres://u:secret@db/app?sslmode=verify-full&sslrootcert=/does/not/exist.pem",
        )
        .expect("parses")
        .connector()
        .err()
        .expect("missing file");
        assert!(err.to_string().contains("/does/not/exist.pem"));
    }
}
