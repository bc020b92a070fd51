//! A test broker with a SASL_SSL listener: a CA and a server certificate made with `openssl` at
//! start, SCRAM-SHA-256/512 users created through AlterUserScramCredentials, and a plaintext
//! listener beside it for the harness's own requests.
//!
//! With a config file the test broker binds its KRaft controller on `0.0.0.0:9093`, so only one
//! such broker runs at a time, and no other test broker beside it: secured tests take
//! [`SecuredBroker::exclusive`] and live in their own test binary.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::broker::{
    compact_string, ensure_installed, flexible_request, free_loopback, set_transaction_version,
    uuid_like, uvarint, Reader,
};

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
    child: Child,
    dir: tempfile::TempDir,
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

/// SCRAM's SaltedPassword: PBKDF2-HMAC-`digest` (through `openssl kdf`, no extra crate).
fn salted_password(
    digest: &str,
    len: usize,
    salt: &[u8],
    iterations: i32,
) -> Result<Vec<u8>, String> {
    let hex: String = salt.iter().map(|b| format!("{b:02x}")).collect();
    let out = run(Command::new("openssl").args([
        "kdf",
        "-keylen",
        &len.to_string(),
        "-kdfopt",
        &format!("digest:{digest}"),
        "-kdfopt",
        &format!("pass:{PASSWORD}"),
        "-kdfopt",
        &format!("hexsalt:{hex}"),
        "-kdfopt",
        &format!("iter:{iterations}"),
        "PBKDF2",
    ]))?;
    String::from_utf8_lossy(&out)
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).map_err(|e| e.to_string()))
        .collect()
}

/// AlterUserScramCredentials v0: [`USER`] with [`PASSWORD`] for SCRAM-SHA-256 and -512.
fn create_scram_user(addr: &SocketAddr) -> Result<(), String> {
    let iterations = 4096i32;
    let salt: Vec<u8> = uuid_like().bytes().take(16).collect();
    let mut body = Vec::new();
    uvarint(1, &mut body); // no deletions
    uvarint(3, &mut body); // two upsertions
    for (mechanism, digest, len) in [(1i8, "SHA256", 32usize), (2, "SHA512", 64)] {
        compact_string(USER, &mut body);
        body.push(mechanism as u8);
        body.extend_from_slice(&iterations.to_be_bytes());
        uvarint(salt.len() as u64 + 1, &mut body);
        body.extend_from_slice(&salt);
        let salted = salted_password(digest, len, &salt, iterations)?;
        uvarint(salted.len() as u64 + 1, &mut body);
        body.extend_from_slice(&salted);
        uvarint(0, &mut body);
    }
    uvarint(0, &mut body);
    let r = flexible_request(addr, 51, 0, &body)?;
    let mut rd = Reader::new(&r, 4);
    rd.uvarint()?; // header tags
    rd.take(4)?; // throttle
    for _ in 0..rd.uvarint()?.saturating_sub(1) {
        let user = rd.compact_string()?;
        let code = rd.i16()?;
        let message = rd.compact_string()?;
        rd.uvarint()?;
        if code != 0 {
            return Err(format!(
                "AlterUserScramCredentials({user}) error {code}: {message}"
            ));
        }
    }
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
        let bin = ensure_installed();
        let (ip, plain_port) = free_loopback();
        let secure_port = TcpListener::bind(SocketAddr::from((ip, 0)))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| e.to_string())?;
        let dir = tempfile::Builder::new()
            .prefix("secured-broker-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        make_certs(d, "broker", Some(ip))?;
        make_certs(d, "other", None)?;
        let data = d.join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let cluster_id = uuid_like();
        std::fs::write(
            data.join("meta.properties.json"),
            format!(
                "{{\"cluster_id\":\"{cluster_id}\",\"directory_id\":\"{}\",\"version\":1}}\n",
                uuid_like()
            ),
        )
        .map_err(|e| e.to_string())?;
        let config = d.join("broker.toml");
        std::fs::write(
            &config,
            format!(
                r#"inter_broker_listener_name = "plain"

[[listeners]]
name = "plain"
bind_addr = "{ip}:{plain_port}"
advertised = "{ip}:{plain_port}"
protocol = "Plaintext"

[[listeners]]
name = "secure"
bind_addr = "{ip}:{secure_port}"
advertised = "{ip}:{secure_port}"
protocol = "SaslSsl"
tls_config = {{ cert_path = "{cert}", key_path = "{key}", client_auth = "Disabled" }}
sasl_config = {{ enabled_mechanisms = ["SCRAM-SHA-256", "SCRAM-SHA-512"] }}
"#,
                cert = d.join("broker-server.crt").display(),
                key = d.join("broker-server.key").display(),
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(d.join("broker.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("--config-file")
            .arg(&config)
            .arg("--log-dir")
            .arg(&data)
            .arg("--cluster-id")
            .arg(&cluster_id)
            .args([
                "--metrics-listen-addr",
                "none",
                "--partition-disk-scan-interval-secs",
                "0",
            ])
            .env(
                "RUST_LOG",
                std::env::var("BROKER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut b = SecuredBroker {
            plaintext: format!("{ip}:{plain_port}"),
            sasl_ssl: format!("{ip}:{secure_port}"),
            ca: d.join("broker-ca.crt"),
            other_ca: d.join("other-ca.crt"),
            child,
            dir,
        };
        let addr = SocketAddr::from((ip, plain_port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = b.child.try_wait() {
                return Err(format!("exited with {status}: {}", b.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!("not listening after 30 s: {}", b.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut last = String::new();
        for _ in 0..50 {
            match set_transaction_version(&addr, 1).and_then(|()| create_scram_user(&addr)) {
                Ok(()) => return Ok(b),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "setting up the broker failed: {last}: {}",
            b.log_tail()
        ))
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
        let text = std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for SecuredBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
