//! [`Security`]: TLS and SASL on the group member's connections, read from the same librdkafka
//! keys the stream threads' consumers take (`security.protocol`, `ssl.*`, `sasl.*`), so a
//! secured cluster needs no second set of settings.
//!
//! TLS goes through OpenSSL, the library librdkafka links already; SASL speaks PLAIN and
//! SCRAM-SHA-256/512 (RFC 5802, Kafka's KIP-84) over SaslHandshake v1 and SaslAuthenticate.
//! [`Security::from_settings`] says which settings it cannot follow (GSSAPI, OAUTHBEARER, PKCS#12
//! key stores, ...); the runtime then leaves the membership to librdkafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::X509;

/// How the member's connections are secured.
#[derive(Clone, Default)]
pub struct Security {
    /// TLS, for `SSL` and `SASL_SSL`.
    pub(crate) tls: Option<Tls>,
    /// SASL, for `SASL_PLAINTEXT` and `SASL_SSL`.
    pub(crate) sasl: Option<Sasl>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|s| s.mechanism))
            .finish()
    }
}

/// A TLS client context.
#[derive(Clone)]
pub(crate) struct Tls {
    pub connector: Arc<SslConnector>,
    /// `ssl.endpoint.identification.algorithm=https` (librdkafka's default): the broker's
    /// certificate must name the host connected to.
    pub verify_hostname: bool,
}

/// SASL credentials.
#[derive(Clone)]
pub(crate) struct Sasl {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

/// The SASL mechanisms the member speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    /// The name SaslHandshake carries.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Keys of `ssl.*` and `sasl.*` the member follows; any other one present makes it leave the
/// membership to librdkafka (it may change what a connection must do).
const FOLLOWED: &[&str] = &[
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.certificate.pem",
    "ssl.key.location",
    "ssl.key.pem",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
];

impl Security {
    /// No TLS, no SASL.
    pub fn plaintext() -> Security {
        Security::default()
    }

    /// The security `settings` (librdkafka keys) ask for. `Ok(None)` when they ask for what
    /// the member does not speak (the reason is logged); `Err` names a setting that cannot be
    /// used (an unreadable certificate file, ...) and the fix.
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<Option<Security>, String> {
        let get = |k: &str| settings.get(k).map(|v| v.trim().to_string());
        let protocol = get("security.protocol").unwrap_or_else(|| "plaintext".into());
        let (tls, sasl) = match protocol.to_ascii_lowercase().as_str() {
            "plaintext" => (false, false),
            "ssl" => (true, false),
            "sasl_plaintext" => (false, true),
            "sasl_ssl" => (true, true),
            other => {
                return Err(format!(
                "`security.protocol` is `{other}`; use plaintext, ssl, sasl_plaintext or sasl_ssl"
            ))
            }
        };
        if let Some(key) = settings
            .keys()
            .find(|k| {
                (k.starts_with("ssl.") || k.starts_with("sasl.")) && !FOLLOWED.contains(&k.as_str())
            })
            .filter(|_| tls || sasl)
        {
            tracing::info!(%key, "the runtime's group member does not follow this setting");
            return Ok(None);
        }
        let tls = if tls {
            Some(tls_context(&get).map_err(|e| e.to_string())?)
        } else {
            None
        };
        let sasl = if sasl {
            let mechanism = get("sasl.mechanisms")
                .or_else(|| get("sasl.mechanism"))
                .unwrap_or_else(|| "GSSAPI".into());
            let mechanism = match mechanism.to_ascii_uppercase().as_str() {
                "PLAIN" => Mechanism::Plain,
                "SCRAM-SHA-256" => Mechanism::ScramSha256,
                "SCRAM-SHA-512" => Mechanism::ScramSha512,
                other => {
                    tracing::info!(mechanism = %other, "the runtime's group member does not speak this SASL mechanism");
                    return Ok(None);
                }
            };
            let need = |k: &str| {
                get(k).ok_or_else(|| format!("SASL {} needs `{k}`; set it", mechanism.name()))
            };
            Some(Sasl {
                mechanism,
                username: need("sasl.username")?,
                password: settings.get("sasl.password").cloned().ok_or_else(|| {
                    format!("SASL {} needs `sasl.password`; set it", mechanism.name())
                })?,
            })
        } else {
            None
        };
        Ok(Some(Security { tls, sasl }))
    }
}

/// An OpenSSL context from the `ssl.*` keys, as librdkafka reads them: CA from a file or
/// directory (or PEM text), else the system's; a client certificate and key for mutual TLS.
fn tls_context(get: &dyn Fn(&str) -> Option<String>) -> Result<Tls, Box<dyn std::error::Error>> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    let named = |key: &str, e: openssl::error::ErrorStack| -> Box<dyn std::error::Error> {
        format!("cannot use `{key}`: {e}").into()
    };
    if let Some(ca) = get("ssl.ca.location") {
        let path = std::path::Path::new(&ca);
        if path.is_dir() {
            builder
                .cert_store_mut()
                .add_lookup(openssl::x509::store::X509Lookup::hash_dir())
                .and_then(|l| l.add_dir(&ca, SslFiletype::PEM))
                .map_err(|e| named("ssl.ca.location", e))?;
        } else {
            builder
                .set_ca_file(path)
                .map_err(|e| named("ssl.ca.location", e))?;
        }
    }
    if let Some(pem) = get("ssl.ca.pem") {
        for cert in X509::stack_from_pem(pem.as_bytes()).map_err(|e| named("ssl.ca.pem", e))? {
            builder
                .cert_store_mut()
                .add_cert(cert)
                .map_err(|e| named("ssl.ca.pem", e))?;
        }
    }
    if let Some(file) = get("ssl.certificate.location") {
        builder
            .set_certificate_chain_file(&file)
            .map_err(|e| named("ssl.certificate.location", e))?;
    }
    if let Some(pem) = get("ssl.certificate.pem") {
        let cert = X509::from_pem(pem.as_bytes()).map_err(|e| named("ssl.certificate.pem", e))?;
        builder
            .set_certificate(&cert)
            .map_err(|e| named("ssl.certificate.pem", e))?;
    }
    let key_pem = match (get("ssl.key.location"), get("ssl.key.pem")) {
        (Some(file), _) => Some((
            "ssl.key.location",
            std::fs::read(&file)
                .map_err(|e| format!("cannot read `ssl.key.location` {file}: {e}"))?,
        )),
        (None, Some(pem)) => Some(("ssl.key.pem", pem.into_bytes())),
        (None, None) => None,
    };
    if let Some((key, pem)) = key_pem {
        let pkey = match get("ssl.key.password") {
            Some(pass) => PKey::private_key_from_pem_passphrase(&pem, pass.as_bytes()),
            None => PKey::private_key_from_pem(&pem),
        }
        .map_err(|e| named(key, e))?;
        builder.set_private_key(&pkey).map_err(|e| named(key, e))?;
    }
    if get("enable.ssl.certificate.verification").is_some_and(|v| v.eq_ignore_ascii_case("false")) {
        builder.set_verify(SslVerifyMode::NONE);
    }
    let verify_hostname = get("ssl.endpoint.identification.algorithm")
        .is_none_or(|v| v.eq_ignore_ascii_case("https"));
    Ok(Tls {
        connector: Arc::new(builder.build()),
        verify_hostname,
    })
}

/// One SASL exchange: the client's messages, each answering the server's last.
pub(crate) struct SaslExchange {
    sasl: Sasl,
    step: ScramStep,
}

enum ScramStep {
    Start,
    /// The client-first message sent, without its GS2 header, and the client nonce.
    SentFirst {
        bare: String,
        nonce: String,
    },
    /// The proof sent; the server's signature expected.
    SentFinal {
        server_signature: Vec<u8>,
    },
    Done,
}

impl SaslExchange {
    /// An exchange with `sasl`'s credentials.
    pub fn new(sasl: Sasl) -> Self {
        SaslExchange {
            sasl,
            step: ScramStep::Start,
        }
    }

    /// The next message for the server, given its last answer (empty before the first);
    /// `Ok(None)` once authenticated.
    pub fn next(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let digest = match self.sasl.mechanism {
            Mechanism::Plain => {
                return Ok(match self.step {
                    ScramStep::Start => {
                        self.step = ScramStep::Done;
                        Some(
                            format!("\0{}\0{}", self.sasl.username, self.sasl.password)
                                .into_bytes(),
                        )
                    }
                    _ => None,
                })
            }
            Mechanism::ScramSha256 => MessageDigest::sha256(),
            Mechanism::ScramSha512 => MessageDigest::sha512(),
        };
        match std::mem::replace(&mut self.step, ScramStep::Done) {
            ScramStep::Start => {
                let mut raw = [0u8; 24];
                openssl::rand::rand_bytes(&mut raw).map_err(|e| e.to_string())?;
                let nonce = BASE64.encode(raw);
                let bare = format!("n={},r={nonce}", escape(&self.sasl.username));
                let first = format!("n,,{bare}");
                self.step = ScramStep::SentFirst { bare, nonce };
                Ok(Some(first.into_bytes()))
            }
            ScramStep::SentFirst { bare, nonce } => {
                let server_first = String::from_utf8_lossy(server).into_owned();
                let (final_message, server_signature) =
                    scram_final(digest, &self.sasl.password, &bare, &nonce, &server_first)?;
                self.step = ScramStep::SentFinal { server_signature };
                Ok(Some(final_message.into_bytes()))
            }
            ScramStep::SentFinal { server_signature } => {
                let server_final = String::from_utf8_lossy(server);
                if let Some(e) = attribute(&server_final, 'e') {
                    return Err(format!("the broker refused the SCRAM proof: {e}"));
                }
                let verifier = attribute(&server_final, 'v')
                    .and_then(|v| BASE64.decode(v).ok())
                    .ok_or("the broker's SCRAM answer has no signature")?;
                if verifier.len() != server_signature.len()
                    || !openssl::memcmp::eq(&verifier, &server_signature)
                {
                    return Err(
                        "the broker's SCRAM signature does not match: not the broker \
                                holding these credentials"
                            .into(),
                    );
                }
                Ok(None)
            }
            ScramStep::Done => Ok(None),
        }
    }
}

/// `,` and `=` escaped in a SCRAM user name (RFC 5802 5.1).
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The value of attribute `key` (`k=value`) in a SCRAM message.
fn attribute(message: &str, key: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(key) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

/// The client-final message answering `server_first`, and the server signature to expect.
fn scram_final(
    digest: MessageDigest,
    password: &str,
    client_first_bare: &str,
    client_nonce: &str,
    server_first: &str,
) -> Result<(String, Vec<u8>), String> {
    let nonce = attribute(server_first, 'r').ok_or("the broker's SCRAM answer has no nonce")?;
    if !nonce.starts_with(client_nonce) {
        return Err("the broker's SCRAM nonce does not extend the client's".into());
    }
    let salt = attribute(server_first, 's')
        .and_then(|s| BASE64.decode(s).ok())
        .ok_or("the broker's SCRAM answer has no salt")?;
    let iterations: usize = attribute(server_first, 'i')
        .and_then(|i| i.parse().ok())
        .filter(|i| *i > 0)
        .ok_or("the broker's SCRAM answer has no iteration count")?;
    let ssl = |e: openssl::error::ErrorStack| e.to_string();
    let mut salted = vec![0u8; digest.size()];
    openssl::pkcs5::pbkdf2_hmac(password.as_bytes(), &salt, iterations, digest, &mut salted)
        .map_err(ssl)?;
    let client_key = hmac(digest, &salted, b"Client Key").map_err(ssl)?;
    let stored_key = openssl::hash::hash(digest, &client_key).map_err(ssl)?;
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let client_signature = hmac(digest, &stored_key, auth_message.as_bytes()).map_err(ssl)?;
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&client_signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = hmac(digest, &salted, b"Server Key").map_err(ssl)?;
    let server_signature = hmac(digest, &server_key, auth_message.as_bytes()).map_err(ssl)?;
    Ok((
        format!("{without_proof},p={}", BASE64.encode(proof)),
        server_signature,
    ))
}

fn hmac(
    digest: MessageDigest,
    key: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let key = PKey::hmac(key)?;
    let mut signer = openssl::sign::Signer::new(digest, &key)?;
    signer.update(data)?;
    signer.sign_to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn scram_sha_256_matches_rfc_7677() {
        // RFC 7677 section 3: user "user", password "pencil".
        let bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (message, server_signature) = scram_final(
            MessageDigest::sha256(),
            "pencil",
            bare,
            "rOprNGfwEbeRWgbNEkqO",
            server_first,
        )
        .expect("final message");
        assert_eq!(
            message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            BASE64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        // A nonce the client did not start is refused.
        assert!(scram_final(
            MessageDigest::sha256(),
            "pencil",
            bare,
            "other",
            server_first
        )
        .is_err());
    }

    #[test]
    fn a_scram_exchange_checks_the_brokers_signature() {
        let mut exchange = SaslExchange::new(Sasl {
            mechanism: Mechanism::ScramSha512,
            username: "a=b,c".into(),
            password: "secret".into(),
        });
        let first = String::from_utf8(exchange.next(b"").unwrap().unwrap()).unwrap();
        assert!(first.starts_with("n,,n=a=3Db=2Cc,r="), "{first}");
        let nonce = attribute(&first[3..], 'r').unwrap().to_string();
        let server_first = format!("r={nonce}xyz,s={},i=4096", BASE64.encode(b"salt"));
        let last = exchange.next(server_first.as_bytes()).unwrap().unwrap();
        assert!(String::from_utf8(last).unwrap().contains(",p="));
        let forged = format!("v={}", BASE64.encode([0u8; 64]));
        assert!(exchange.next(forged.as_bytes()).is_err());
    }

    #[test]
    fn settings_choose_the_member_or_leave_it_to_librdkafka() {
        let plain = Security::from_settings(&settings(&[])).unwrap().unwrap();
        assert!(plain.tls.is_none() && plain.sasl.is_none());
        let scram = Security::from_settings(&settings(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            scram.sasl.as_ref().map(|s| s.mechanism),
            Some(Mechanism::ScramSha256)
        );
        // GSSAPI (librdkafka's default mechanism) and OAUTHBEARER stay with librdkafka.
        for mechanism in [None, Some("OAUTHBEARER")] {
            let mut s = settings(&[("security.protocol", "sasl_ssl")]);
            if let Some(m) = mechanism {
                s.insert("sasl.mechanism".into(), m.into());
            }
            assert!(Security::from_settings(&s).unwrap().is_none());
        }
        let keystore = settings(&[
            ("security.protocol", "ssl"),
            ("ssl.keystore.location", "/k.p12"),
        ]);
        assert!(Security::from_settings(&keystore).unwrap().is_none());
        let missing = Security::from_settings(&settings(&[
            ("security.protocol", "ssl"),
            ("ssl.ca.location", "/nonexistent/ca.pem"),
        ]))
        .err()
        .unwrap();
        assert!(missing.contains("ssl.ca.location"), "{missing}");
        let no_user = Security::from_settings(&settings(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "PLAIN"),
        ]))
        .err()
        .unwrap();
        assert!(no_user.contains("sasl.username"), "{no_user}");
    }
}
