//! Starts and stops the test broker.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The broker's KRaft controller listener is fixed at this port on the broker's host address, so
/// every broker gets its own loopback address.
const CONTROLLER_PORT: u16 = 9093;

static NEXT_ADDRESS: AtomicU32 = AtomicU32::new(0);

/// A broker for one test: started on demand, killed on drop.
pub struct TestBroker {
    bootstrap: String,
    child: Option<Child>,
    data: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBroker")
            .field("bootstrap", &self.bootstrap)
            .field("pid", &self.child.as_ref().map(Child::id))
            .finish()
    }
}

/// Where the broker binary is: `BROKER_BIN`, else `$BROKER_HOME/bin/crabka-broker`, else
/// `~/.cache/test-broker/bin/crabka-broker` (where `tests/broker/install.sh` puts it).
pub fn broker_binary() -> PathBuf {
    if let Ok(p) = std::env::var("BROKER_BIN") {
        return p.into();
    }
    let home = std::env::var("BROKER_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/test-broker")
        });
    home.join("bin/crabka-broker")
}

/// The broker binary, building it first (once, ~10 min, under a lock shared by all test
/// processes) if this machine does not have it yet.
pub fn ensure_installed() -> PathBuf {
    let bin = broker_binary();
    if bin.exists() {
        return bin;
    }
    let cache = bin
        .parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&cache).expect("creating the broker cache directory");
    let lock = std::fs::File::create(cache.join(".install.lock")).expect("broker install lock");
    lock.lock().expect("locking the broker install");
    if !bin.exists() {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("broker/install.sh");
        eprintln!(
            "test broker missing at {}: building it with {} (about 10 minutes, once)",
            bin.display(),
            script.display()
        );
        let status = Command::new("bash")
            .arg(&script)
            .env("BROKER_HOME", &cache)
            .stdout(Stdio::null())
            .status()
            .expect("running tests/broker/install.sh");
        assert!(status.success(), "tests/broker/install.sh failed ({status}); set KAFKA_BOOTSTRAP_SERVERS to use an existing cluster instead");
    }
    assert!(
        bin.exists(),
        "tests/broker/install.sh did not produce {}",
        bin.display()
    );
    bin
}

pub(crate) fn free_loopback() -> (Ipv4Addr, u16) {
    let base = std::process::id().wrapping_mul(7919);
    for _ in 0..10_000 {
        let n = base.wrapping_add(NEXT_ADDRESS.fetch_add(1, Ordering::SeqCst)) % 60_000;
        let ip = Ipv4Addr::new(127, 1 + (n / 250 % 250) as u8, (n % 250) as u8 + 2, 1);
        // The controller port must be free on that address, and we need a free client port.
        let Ok(ctl) = TcpListener::bind(SocketAddr::from((ip, CONTROLLER_PORT))) else {
            continue;
        };
        let Ok(client) = TcpListener::bind(SocketAddr::from((ip, 0))) else {
            continue;
        };
        let port = client.local_addr().map(|a| a.port()).unwrap_or(0);
        drop((ctl, client));
        if port != 0 {
            return (ip, port);
        }
    }
    panic!("no free loopback address for a test broker");
}

impl TestBroker {
    /// The cluster in `KAFKA_BOOTSTRAP_SERVERS`, or a fresh test broker.
    pub fn start() -> TestBroker {
        if let Ok(b) = std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
            if !b.trim().is_empty() {
                return TestBroker {
                    bootstrap: b,
                    child: None,
                    data: None,
                };
            }
        }
        Self::start_own()
    }

    /// Always starts a fresh broker (tests that pause or kill the broker need their own).
    pub fn start_own() -> TestBroker {
        let bin = ensure_installed();
        let mut last_err = String::new();
        for _ in 0..5 {
            match Self::try_start(&bin) {
                Ok(b) => return b,
                Err(e) => last_err = e,
            }
        }
        panic!("test broker did not start: {last_err}");
    }

    fn try_start(bin: &PathBuf) -> Result<TestBroker, String> {
        let (ip, port) = free_loopback();
        let data = tempfile::Builder::new()
            .prefix("test-broker-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let cluster_id = uuid_like();
        std::fs::write(
            data.path().join("meta.properties.json"),
            format!(
                "{{\"cluster_id\":\"{cluster_id}\",\"directory_id\":\"{}\",\"version\":1}}\n",
                uuid_like()
            ),
        )
        .map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(data.path().join("broker.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("--listen-addr")
            .arg(format!("{ip}:{port}"))
            .arg("--log-dir")
            .arg(data.path())
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
            .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
        let mut broker = TestBroker {
            bootstrap: format!("{ip}:{port}"),
            child: Some(child),
            data: Some(data),
        };
        let addr = SocketAddr::from((ip, port));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = broker.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(format!(
                        "broker exited with {status}: {}",
                        broker.log_tail()
                    ));
                }
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "broker not listening after 30 s: {}",
                    broker.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // librdkafka needs transaction.version 1 (see BROKERS.md); retry while the broker settles.
        let mut attempt = 0;
        loop {
            match set_transaction_version(&addr, 1) {
                Ok(()) => break,
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(format!("downgrading transaction.version failed: {e}")),
            }
        }
        Ok(broker)
    }

    /// `host:port` to give clients.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The broker's process id, when this harness started it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines of the broker's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let Some(d) = &self.data else {
            return String::new();
        };
        let text = std::fs::read_to_string(d.path().join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Suspends the broker process (SIGSTOP): an outage without losing its state.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused broker (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .pid()
            .expect("only a broker this harness started can be signalled");
        let ok = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill {sig} {pid} failed");
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A stopped process must be continued to die promptly.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(c.id().to_string())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn uuid_like() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn uvarint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

pub(crate) fn compact_string(s: &str, out: &mut Vec<u8>) {
    uvarint(s.len() as u64 + 1, out);
    out.extend_from_slice(s.as_bytes());
}

/// Sets the finalized feature `transaction.version` through a raw UpdateFeatures v1 request
/// (what `kafka-features.sh downgrade --feature transaction.version=1` does). No Kafka client
/// library exposes UpdateFeatures, so the request is written by hand.
pub fn set_transaction_version(addr: &SocketAddr, level: i16) -> Result<(), String> {
    let mut body = Vec::new();
    body.extend_from_slice(&30_000i32.to_be_bytes()); // timeout_ms
    uvarint(2, &mut body); // one feature update
    compact_string("transaction.version", &mut body);
    body.extend_from_slice(&level.to_be_bytes());
    body.push(2); // upgrade_type: safe downgrade
    uvarint(0, &mut body); // tagged fields
    body.push(0); // validate_only = false
    uvarint(0, &mut body);
    let r = flexible_request(addr, 57, 1, &body)?; // UpdateFeatures v1
    let mut rd = Reader { r: &r, pos: 4 }; // after the correlation id
    rd.uvarint()?; // response header tags
    rd.take(4)?; // throttle_time_ms
    let code = rd.i16()?;
    let message = rd.compact_string()?;
    if code != 0 {
        return Err(format!("UpdateFeatures error {code}: {message}"));
    }
    for _ in 0..rd.uvarint()?.saturating_sub(1) {
        let feature = rd.compact_string()?;
        let code = rd.i16()?;
        let message = rd.compact_string()?;
        rd.uvarint()?;
        if code != 0 {
            return Err(format!("UpdateFeatures({feature}) error {code}: {message}"));
        }
    }
    Ok(())
}

/// Sends one request with a flexible (v2) header over plaintext and returns the response bytes
/// (starting with the correlation id).
pub(crate) fn flexible_request(
    addr: &SocketAddr,
    api_key: i16,
    version: i16,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let client_id = b"streams-tests";
    let mut msg = Vec::new();
    msg.extend_from_slice(&api_key.to_be_bytes());
    msg.extend_from_slice(&version.to_be_bytes());
    msg.extend_from_slice(&42i32.to_be_bytes()); // correlation id
    msg.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    msg.extend_from_slice(client_id);
    uvarint(0, &mut msg);
    msg.extend_from_slice(body);
    let mut s =
        TcpStream::connect_timeout(addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.write_all(&(msg.len() as i32).to_be_bytes())
        .and_then(|()| s.write_all(&msg))
        .map_err(|e| e.to_string())?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut r = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
    s.read_exact(&mut r).map_err(|e| e.to_string())?;
    Ok(r)
}

pub(crate) struct Reader<'a> {
    r: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(r: &'a [u8], pos: usize) -> Self {
        Reader { r, pos }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let b = self
            .r
            .get(self.pos..self.pos + n)
            .ok_or("short UpdateFeatures response")?;
        self.pos += n;
        Ok(b)
    }
    pub(crate) fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn uvarint(&mut self) -> Result<u64, String> {
        let (mut n, mut shift) = (0u64, 0);
        loop {
            let b = self.take(1)?[0];
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
            shift += 7;
        }
    }
    pub(crate) fn compact_string(&mut self) -> Result<String, String> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(String::new());
        }
        let b = self.take(n as usize - 1)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }
}
