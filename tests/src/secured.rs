//! A single-node Apache Kafka cluster with a SASL_SSL listener: a CA and a server certificate made
//! with `openssl` at start (a PEM key store), SCRAM-SHA-256/512 credentials written by the broker's
//! own storage tool when it formats the node (`kafka-storage format --add-scram`), and a plaintext
//! listener beside it for the harness's own requests.
//!
//! Each secured test starts its own cluster (they use the same topic names); they take
//! [`SecuredBroker::exclusive`] so that only one such JVM runs at a time on a 2-core machine.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use crate::broker::{ClusterOptions, KafkaCluster};

/// The SCRAM user every secured broker has.
pub const USER: &str = "streams-app";
/// Its password.
pub const PASSWORD: &str = "s3cret-Pa55word";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running secured broker; killed on drop.
pub struct SecuredBroker {
    plaintext: String,
    sasl_ssl: String,
    ca: PathBuf,
    other_ca: PathBuf,
    cluster: KafkaCluster,
    _dir: tempfile::TempDir,
}

fn run(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("running {cmd:?}: {e} (is openssl installed?)"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// A CA (`<name>-ca.crt`) and, when `server_ip` is given, a certificate for it signed by the CA.
fn make_certs(dir: &Path, name: &str, server_ip: Option<Ipv4Addr>) -> Result<(), String> {
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt"))
        .args(["-subj", &format!("/CN={name} test CA")]))?;
    let Some(ip) = server_ip else { return Ok(()) };
    run(Command::new("openssl")
        .args(["req", "-newkey", "rsa:2048", "-nodes"])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr"))
        .args(["-subj", &format!("/CN={ip}")]))?;
    std::fs::write(
        p("ext.cnf"),
        format!("subjectAltName=IP:{ip},DNS:localhost\n"),
    )
    .map_err(|e| e.to_string())?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("server.crt"))
        .arg("-extfile")
        .arg(p("ext.cnf")))?;
    Ok(())
}

impl SecuredBroker {
    /// Serializes the secured tests (see the module docs).
    pub fn exclusive() -> MutexGuard<'static, ()> {
        ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a broker with a plaintext and a SASL_SSL (SCRAM) listener.
    pub fn start() -> SecuredBroker {
        Self::try_start().unwrap_or_else(|e| panic!("secured test broker: {e}"))
    }

    fn try_start() -> Result<SecuredBroker, String> {
        let dir = tempfile::Builder::new()
            .prefix("secured-broker-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        make_certs(d, "broker", Some(Ipv4Addr::LOCALHOST))?;
        make_certs(d, "other", None)?;
        // A PEM key store (KIP-651) holds the unencrypted PKCS#8 key and the certificate.
        let keystore = d.join("broker-keystore.pem");
        let pem = [d.join("broker-server.key"), d.join("broker-server.crt")]
            .iter()
            .map(std::fs::read_to_string)
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| e.to_string())?
            .concat();
        std::fs::write(&keystore, pem).map_err(|e| e.to_string())?;
        let scram_module = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        let mut o = ClusterOptions::nodes(1)
            .setting(
                "listener.name.secure.sasl.enabled.mechanisms",
                "SCRAM-SHA-256,SCRAM-SHA-512",
            )
            .setting(
                "listener.name.secure.scram-sha-256.sasl.jaas.config",
                scram_module,
            )
            .setting(
                "listener.name.secure.scram-sha-512.sasl.jaas.config",
                scram_module,
            )
            .setting("ssl.keystore.type", "PEM")
            .setting("ssl.keystore.location", &keystore.display().to_string());
        o.extra_listener = Some(("SECURE".into(), "SASL_SSL".into()));
        // The broker's own SCRAM credentials, written into its metadata when it is formatted.
        for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
            o.format_args.push("--add-scram".into());
            o.format_args
                .push(format!("{mechanism}=[name={USER},password={PASSWORD}]"));
        }
        let cluster = KafkaCluster::start(&o)?;
        Ok(SecuredBroker {
            plaintext: cluster.bootstrap_servers(),
            sasl_ssl: cluster
                .extra_listener()
                .ok_or("the secured cluster has no SASL_SSL listener")?,
            ca: d.join("broker-ca.crt"),
            other_ca: d.join("other-ca.crt"),
            cluster,
            _dir: dir,
        })
    }

    /// The plaintext listener (for the harness: topics, produce, read back).
    pub fn plaintext(&self) -> &str {
        &self.plaintext
    }

    /// The SASL_SSL listener.
    pub fn sasl_ssl(&self) -> &str {
        &self.sasl_ssl
    }

    /// PEM of the CA that signed the broker's certificate.
    pub fn ca_pem(&self) -> &Path {
        &self.ca
    }

    /// PEM of a CA that did not.
    pub fn untrusted_ca_pem(&self) -> &Path {
        &self.other_ca
    }

    /// The last lines of the broker's log.
    pub fn log_tail(&self) -> String {
        self.cluster.log_tail()
    }
}
