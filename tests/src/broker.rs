//! Apache Kafka test clusters: KRaft in combined mode (every node broker and controller), 1 or 3
//! nodes on loopback ports chosen at run time, each node a JVM running the jars that
//! `tests/kafka/install.sh` fetched from Maven Central.
//!
//! A JVM start costs seconds, so [`TestBroker::start`] shares one single-node cluster per test
//! binary (tests use their own application ids and topic names); tests that stop, kill or restart
//! brokers take a cluster of their own ([`TestBroker::start_own`], [`KafkaCluster::start`]).
//! `KAFKA_BOOTSTRAP_SERVERS` points [`TestBroker::start`] at an existing cluster instead.
//!
//! No broker outlives its test: a dropped cluster kills its nodes, and every node has a watchdog
//! (a `sh` loop) that kills it and removes the cluster's data once the test process is gone, so
//! the shared cluster, which is never dropped, and the clusters of a test that aborted die too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The Apache Kafka the tests run on: the newest 4.x that resolves from Maven Central and runs here.
pub const KAFKA_VERSION: &str = "4.4.0";
/// The last 3.x, for the compatibility tests.
pub const KAFKA_3_VERSION: &str = "3.9.2";

/// How long a cluster may take to answer metadata with every node (JVM start on 2 shared cores).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of Kafka `version`'s jars, fetching them first (once per machine; concurrent
/// callers wait on the script's lock).
pub fn kafka_libs(version: &str) -> Result<PathBuf, String> {
    let script = tests_dir().join("kafka/install.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(version)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {version} failed ({}); it needs java and mvn with Maven Central reachable, or set \
             KAFKA_BOOTSTRAP_SERVERS to use an existing cluster",
            script.display(),
            out.status
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// `$JAVA_HOME/bin/java`, else `java` from the PATH.
fn java() -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .map(|h| PathBuf::from(h).join("bin/java"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| "java".into())
}

/// A free TCP port on 127.0.0.1 (the OS's choice; it is free again once the probe closes).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// A Kafka cluster id: 16 random bytes in URL-safe base64 without padding (22 characters), as
/// `kafka-storage random-uuid` prints it (saves a JVM start).
fn cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = u128::from_be_bytes(*uuid::Uuid::new_v4().as_bytes());
    // 22 digits of 6 bits cover 132 bits: the 128 of the id, then 4 zero bits, as base64 has.
    (0..22)
        .map(|i| {
            let shift = 128 - 6 * (i + 1);
            let digit = if shift >= 0 {
                bits >> shift
            } else {
                bits << -shift
            };
            ALPHABET[(digit & 63) as usize] as char
        })
        .collect()
}

/// What kind of cluster to start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Nodes, each broker and controller.
    pub nodes: usize,
    /// Apache Kafka version (installed on demand).
    pub version: String,
    /// Broker settings added to (or overriding) the harness's.
    pub settings: Vec<(String, String)>,
    /// A second listener `(name, security protocol)` on a port of its own, e.g. SASL_SSL.
    pub extra_listener: Option<(String, String)>,
    /// Extra arguments of `kafka-storage format` (e.g. `--add-scram`).
    pub format_args: Vec<String>,
}

impl ClusterOptions {
    /// `nodes` nodes of [`KAFKA_VERSION`] with the harness's settings.
    pub fn nodes(nodes: usize) -> Self {
        ClusterOptions {
            nodes,
            version: KAFKA_VERSION.to_string(),
            settings: Vec::new(),
            extra_listener: None,
            format_args: Vec::new(),
        }
    }

    /// Another Kafka version.
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_string();
        self
    }

    /// One more broker setting.
    pub fn setting(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }
}

/// One node of a cluster.
struct Node {
    id: usize,
    port: u16,
    extra_port: Option<u16>,
    config: PathBuf,
    log: PathBuf,
    jvm: Option<Child>,
    watchdog: Option<Child>,
}

impl Node {
    fn stop_processes(&mut self) {
        if let Some(mut jvm) = self.jvm.take() {
            // A stopped process must be continued to die promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &jvm.id().to_string()])
                .status();
            let _ = jvm.kill();
            let _ = jvm.wait();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// A running Apache Kafka cluster; its nodes are killed and its data removed on drop.
pub struct KafkaCluster {
    nodes: Mutex<Vec<Node>>,
    libs: PathBuf,
    version: String,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for KafkaCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaCluster")
            .field("version", &self.version)
            .field("bootstrap", &self.bootstrap_servers())
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl KafkaCluster {
    /// Starts a fresh cluster (fresh data directories, new ports) and waits until every node
    /// answers metadata requests.
    pub fn start(o: &ClusterOptions) -> Result<KafkaCluster, String> {
        let libs = kafka_libs(&o.version)?;
        let mut last = String::new();
        // A port found free may be taken before the JVM binds it: try again with new ports.
        for _ in 0..3 {
            match Self::try_start(o, &libs) {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start(o: &ClusterOptions, libs: &Path) -> Result<KafkaCluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("kafka-cluster-")
            .tempdir()
            .map_err(|e| format!("creating the cluster directory: {e}"))?;
        let mut ports = Vec::new();
        for _ in 0..o.nodes {
            ports.push((
                free_port()?,
                free_port()?,
                o.extra_listener.as_ref().map(|_| free_port()).transpose()?,
            ));
        }
        let voters: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c, _))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect();
        let id = cluster_id();
        let mut nodes = Vec::new();
        for (i, (port, controller_port, extra_port)) in ports.iter().enumerate() {
            let node_dir = dir.path().join(format!("node-{}", i + 1));
            std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
            let config = node_dir.join("server.properties");
            let props = server_properties(
                o,
                i + 1,
                *port,
                *controller_port,
                *extra_port,
                &voters.join(","),
                &node_dir.join("data"),
            );
            std::fs::write(&config, props).map_err(|e| e.to_string())?;
            nodes.push(Node {
                id: i + 1,
                port: *port,
                extra_port: *extra_port,
                config,
                log: node_dir.join("broker.log"),
                jvm: None,
                watchdog: None,
            });
        }
        // Format every node's storage at once: each format is a JVM start.
        let formats: Vec<(usize, Child)> = nodes
            .iter()
            .map(|n| {
                let mut cmd = Command::new(java());
                cmd.arg("-Xmx256m")
                    .arg("-XX:TieredStopAtLevel=1")
                    .arg(format!(
                        "-Dlog4j2.configurationFile={}",
                        log4j2_config().display()
                    ))
                    .arg(format!("-Dkafka.log.file={}", n.log.display()))
                    .arg("-cp")
                    .arg(format!("{}/*", libs.display()))
                    .args(["kafka.tools.StorageTool", "format", "-t", &id, "-c"])
                    .arg(&n.config)
                    .args(&o.format_args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                cmd.spawn()
                    .map(|c| (n.id, c))
                    .map_err(|e| format!("running {} (is a JDK installed?): {e}", java().display()))
            })
            .collect::<Result<_, _>>()?;
        for (node, child) in formats {
            let out = child
                .wait_with_output()
                .map_err(|e| format!("formatting node {node}: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "formatting node {node} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let cluster = KafkaCluster {
            nodes: Mutex::new(nodes),
            libs: libs.to_path_buf(),
            version: o.version.clone(),
            dir,
        };
        let ids = cluster.node_ids();
        for &id in &ids {
            cluster.launch(id)?;
        }
        cluster.await_nodes(&ids)?;
        Ok(cluster)
    }

    fn nodes(&self) -> MutexGuard<'_, Vec<Node>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts node `id`'s JVM (and its watchdog) on its existing data directory.
    fn launch(&self, id: usize) -> Result<(), String> {
        let mut nodes = self.nodes();
        let n = &mut nodes[id - 1];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(n.log.with_extension("out"))
            .map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let jvm = Command::new(java())
            .args(["-Xms512m", "-Xmx512m", "-XX:+ExitOnOutOfMemoryError"])
            .arg("-Djava.awt.headless=true")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                log4j2_config().display()
            ))
            .arg(format!("-Dkafka.log.file={}", n.log.display()))
            .arg("-cp")
            .arg(format!("{}/*", self.libs.display()))
            .arg("kafka.Kafka")
            .arg(&n.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("starting node {id} with {}: {e}", java().display()))?;
        // Kills the JVM and removes the cluster's data once this test process is gone (the
        // shared cluster is never dropped; an aborted test runs no destructor); ends by itself
        // when the JVM is gone.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                "while kill -0 \"$1\" 2>/dev/null && kill -0 \"$2\" 2>/dev/null; do sleep 1; done; \
                 if ! kill -0 \"$1\" 2>/dev/null; then kill -9 \"$2\" 2>/dev/null; rm -rf \"$3\"; fi",
            )
            .arg("kafka-test-watchdog")
            .arg(std::process::id().to_string())
            .arg(jvm.id().to_string())
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the watchdog of node {id}: {e}"))?;
        n.jvm = Some(jvm);
        n.watchdog = Some(watchdog);
        Ok(())
    }

    /// Waits until each of `ids` answers a metadata request listing itself (a node that does is
    /// registered and unfenced), failing early when one of them exits.
    fn await_nodes(&self, ids: &[usize]) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for &id in ids {
            let port = self.nodes()[id - 1].port;
            let client: BaseConsumer = quiet_client(&format!("127.0.0.1:{port}"))
                .create()
                .map_err(|e| format!("metadata client: {e}"))?;
            loop {
                if let Some(n) = self.nodes().get_mut(id - 1) {
                    if let Some(Ok(Some(status))) = n.jvm.as_mut().map(Child::try_wait) {
                        return Err(format!(
                            "Kafka node {id} exited with {status}:\n{}{}",
                            tail(&n.log.with_extension("out"), 30),
                            tail(&n.log, 30)
                        ));
                    }
                }
                let listed = client
                    .fetch_metadata(None, Duration::from_secs(2))
                    .is_ok_and(|md| md.brokers().iter().any(|b| b.id() as usize == id));
                if listed {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "Kafka node {id} not ready after {READY_TIMEOUT:?}:\n{}",
                        self.log_tail()
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// A client configuration with this cluster's bootstrap servers and quiet logging.
    pub fn client_config(&self) -> ClientConfig {
        quiet_client(&self.bootstrap_servers())
    }

    /// `host:port` of every node, comma-separated.
    pub fn bootstrap_servers(&self) -> String {
        self.nodes()
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `host:port` of every node's extra listener (see [`ClusterOptions::extra_listener`]).
    pub fn extra_listener(&self) -> Option<String> {
        let nodes = self.nodes();
        let ports: Option<Vec<String>> = nodes
            .iter()
            .map(|n| n.extra_port.map(|p| format!("127.0.0.1:{p}")))
            .collect();
        ports.map(|p| p.join(","))
    }

    /// The Kafka version running.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The node ids (1-based).
    pub fn node_ids(&self) -> Vec<usize> {
        (1..=self.nodes().len()).collect()
    }

    /// The process id of node `id`'s JVM, while it runs.
    pub fn pid(&self, id: usize) -> Option<u32> {
        self.nodes()[id - 1].jvm.as_ref().map(Child::id)
    }

    /// SIGKILLs node `id` (no shutdown: its log recovery runs at the next start).
    pub fn kill(&self, id: usize) {
        tracing::info!(node = id, "SIGKILL Kafka node");
        self.nodes()[id - 1].stop_processes();
    }

    /// Freezes node `id` (SIGSTOP): it keeps its sockets and state but answers nothing.
    pub fn freeze(&self, id: usize) {
        tracing::info!(node = id, "SIGSTOP Kafka node");
        self.signal(id, "-STOP");
    }

    /// Resumes a frozen node (SIGCONT).
    pub fn thaw(&self, id: usize) {
        tracing::info!(node = id, "SIGCONT Kafka node");
        self.signal(id, "-CONT");
    }

    fn signal(&self, id: usize, sig: &str) {
        let pid = self
            .pid(id)
            .unwrap_or_else(|| panic!("Kafka node {id} is not running"));
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid} (Kafka node {id}) failed");
    }

    /// Starts killed nodes again on their data directories (their log recovery runs) and waits
    /// until each answers.
    pub fn restart(&self, ids: &[usize]) -> Result<(), String> {
        for &id in ids {
            tracing::info!(node = id, "restarting Kafka node");
            if self.pid(id).is_some() {
                self.kill(id);
            }
            self.launch(id)?;
        }
        self.await_nodes(ids)
    }

    /// The node leading `topic`'s `partition`, from a fresh metadata request.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Result<usize, String> {
        let client: BaseConsumer = self
            .client_config()
            .create()
            .map_err(|e| format!("metadata client: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leader = client
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .ok()
                .and_then(|md| {
                    md.topics()
                        .first()?
                        .partitions()
                        .iter()
                        .find(|p| p.id() == partition)
                        .map(|p| p.leader())
                })
                .filter(|l| *l > 0);
            if let Some(l) = leader {
                return Ok(l as usize);
            }
            if Instant::now() > deadline {
                return Err(format!("no leader for {topic}-{partition}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The partitions where a transaction hangs: open there, while its coordinator counts the
    /// partition in no ongoing transaction of that producer, so no marker will come and
    /// read_committed readers stay at its first offset for good. One line each, read with
    /// `tests/kafka/HangingTransactions.java` (the Admin API's DescribeProducers and
    /// DescribeTransactions, which librdkafka does not offer) on the cluster's own jars.
    pub fn hanging_transactions(&self) -> Result<Vec<String>, String> {
        let tool = tests_dir().join("kafka/HangingTransactions.java");
        let out = Command::new(java())
            .arg("-cp")
            .arg(format!("{}/*", self.libs.display()))
            .arg(&tool)
            .arg(self.bootstrap_servers())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", tool.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}): {}",
                tool.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// The last lines of every node's log (for failure messages).
    pub fn log_tail(&self) -> String {
        self.log_tail_lines(20)
    }

    /// The last `lines` lines of every node's log and of its JVM's output.
    pub fn log_tail_lines(&self, lines: usize) -> String {
        self.nodes()
            .iter()
            .map(|n| {
                format!(
                    "--- node {} ---\n{}{}",
                    n.id,
                    tail(&n.log.with_extension("out"), lines),
                    tail(&n.log, lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        for n in self.nodes().iter_mut() {
            n.stop_processes();
        }
    }
}

/// A client configuration for `bootstrap` that keeps librdkafka's logs out of the test output.
fn quiet_client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c.set_log_level(rdkafka::config::RDKafkaLogLevel::Emerg);
    c
}

fn log4j2_config() -> PathBuf {
    tests_dir().join("kafka/log4j2.properties")
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A node's `server.properties`: KRaft combined mode with a static quorum, settings right for the
/// cluster's size (replication factors and min ISR of 1 on one node; on three, Kafka's defaults of
/// 3 with `min.insync.replicas=2` and no unclean election), then `o.settings`.
fn server_properties(
    o: &ClusterOptions,
    id: usize,
    port: u16,
    controller_port: u16,
    extra_port: Option<u16>,
    voters: &str,
    data: &Path,
) -> String {
    let mut listeners =
        format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}");
    let mut advertised = format!("PLAINTEXT://127.0.0.1:{port}");
    let mut protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_string();
    if let (Some((name, protocol)), Some(p)) = (&o.extra_listener, extra_port) {
        listeners += &format!(",{name}://127.0.0.1:{p}");
        advertised += &format!(",{name}://127.0.0.1:{p}");
        protocols += &format!(",{name}:{protocol}");
    }
    let rf = o.nodes.min(3);
    let min_isr = if o.nodes >= 3 { 2 } else { 1 };
    let mut settings: Vec<(String, String)> = [
        ("process.roles", "broker,controller".to_string()),
        ("node.id", id.to_string()),
        ("controller.quorum.voters", voters.to_string()),
        ("listeners", listeners),
        ("advertised.listeners", advertised),
        ("controller.listener.names", "CONTROLLER".into()),
        ("inter.broker.listener.name", "PLAINTEXT".into()),
        ("listener.security.protocol.map", protocols),
        ("log.dirs", data.display().to_string()),
        ("default.replication.factor", rf.to_string()),
        ("min.insync.replicas", min_isr.to_string()),
        ("unclean.leader.election.enable", "false".into()),
        ("offsets.topic.replication.factor", rf.to_string()),
        ("transaction.state.log.replication.factor", rf.to_string()),
        ("transaction.state.log.min.isr", min_isr.to_string()),
        (
            "share.coordinator.state.topic.replication.factor",
            rf.to_string(),
        ),
        ("share.coordinator.state.topic.min.isr", min_isr.to_string()),
        // Fewer coordinator partitions than the default 50: each is created (and, on three
        // nodes, replicated) when the first group or transaction needs it.
        ("offsets.topic.num.partitions", "10".into()),
        ("transaction.state.log.num.partitions", "10".into()),
        // Tests start groups and expect them to form at once.
        ("group.initial.rebalance.delay.ms", "0".into()),
        // Each segment's offset and time indexes are sparse files of this size, mmapped. The
        // first write to one faults, and the kernel reads around the fault as far as the disk's
        // readahead (8 MiB on these VMs' virtio disk) or the file's end, zeroing page cache for
        // the holes it reads. A transaction's markers are the first writes to many fresh
        // partitions at once: with the default 10 MiB a 200-partition commit waited seconds on
        // that zeroing (67% of the broker's CPU in a profile), with 1 MiB still 0.25-0.5 s per
        // WriteTxnMarkers (16% of it). 64 KiB indexes 8192 entries, one per 4 KiB of log
        // (`index.interval.bytes`): segments roll at 21-32 MiB instead of 1 GiB.
        ("log.index.size.max.bytes", "65536".into()),
        // Applications create their topics; a missing one must be an error, not a new topic.
        ("auto.create.topics.enable", "false".into()),
        ("num.partitions", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in &o.settings {
        settings.retain(|(key, _)| key != k);
        settings.push((k.clone(), v.clone()));
    }
    settings.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// The single-node cluster of Kafka `version` this test binary shares: started by the first test
/// that asks, killed by its watchdogs when the binary exits.
fn shared_cluster(version: &str) -> Arc<KafkaCluster> {
    static SHARED: Mutex<Vec<Arc<KafkaCluster>>> = Mutex::new(Vec::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = shared.iter().find(|c| c.version() == version) {
        return c.clone();
    }
    let cluster = KafkaCluster::start(&ClusterOptions::nodes(1).version(version))
        .map(Arc::new)
        .unwrap_or_else(|e| panic!("the shared Kafka {version} test cluster did not start: {e}"));
    shared.push(cluster.clone());
    cluster
}

/// The broker a test talks to: `KAFKA_BOOTSTRAP_SERVERS`, the test binary's shared cluster, or a
/// single-node cluster of the test's own.
pub struct TestBroker {
    bootstrap: String,
    cluster: Option<Arc<KafkaCluster>>,
    own: bool,
}

impl std::fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBroker")
            .field("bootstrap", &self.bootstrap)
            .field("own", &self.own)
            .finish()
    }
}

impl TestBroker {
    /// The cluster in `KAFKA_BOOTSTRAP_SERVERS`, else the shared single-node cluster.
    pub fn start() -> TestBroker {
        if let Ok(b) = std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
            if !b.trim().is_empty() {
                return TestBroker {
                    bootstrap: b,
                    cluster: None,
                    own: false,
                };
            }
        }
        Self::shared(KAFKA_VERSION)
    }

    /// The shared single-node cluster of Kafka `version` (e.g. [`KAFKA_3_VERSION`] for the
    /// compatibility tests), whatever `KAFKA_BOOTSTRAP_SERVERS` says.
    pub fn shared(version: &str) -> TestBroker {
        let cluster = shared_cluster(version);
        TestBroker {
            bootstrap: cluster.bootstrap_servers(),
            cluster: Some(cluster),
            own: false,
        }
    }

    /// A fresh single-node cluster of this test's own (for tests that stop or kill the broker),
    /// whatever `KAFKA_BOOTSTRAP_SERVERS` says.
    pub fn start_own() -> TestBroker {
        Self::start_own_with(ClusterOptions::nodes(1))
    }

    /// Like [`Self::start_own`], with the cluster of `options`.
    pub fn start_own_with(options: ClusterOptions) -> TestBroker {
        let cluster = KafkaCluster::start(&options)
            .unwrap_or_else(|e| panic!("test cluster did not start: {e}"));
        TestBroker {
            bootstrap: cluster.bootstrap_servers(),
            cluster: Some(Arc::new(cluster)),
            own: true,
        }
    }

    /// `host:port` to give clients.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The cluster behind this broker, when the harness started it.
    pub fn cluster(&self) -> Option<&KafkaCluster> {
        self.cluster.as_deref()
    }

    fn own_cluster(&self) -> &KafkaCluster {
        assert!(
            self.own,
            "only a broker from TestBroker::start_own may be stopped or killed"
        );
        self.cluster
            .as_deref()
            .unwrap_or_else(|| unreachable!("an own broker has a cluster"))
    }

    /// The last lines of the broker's log (for failure messages).
    pub fn log_tail(&self) -> String {
        self.cluster
            .as_ref()
            .map(|c| c.log_tail())
            .unwrap_or_default()
    }

    /// Suspends the broker process (SIGSTOP): an outage without losing its state.
    pub fn pause(&self) {
        self.own_cluster().freeze(1);
    }

    /// Resumes a paused broker (SIGCONT).
    pub fn resume(&self) {
        self.own_cluster().thaw(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_22_url_safe_base64_characters() {
        let id = cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        // The last digit carries 2 bits of the id and 4 zero bits.
        let last = id.as_bytes()[21];
        assert!(b"AQgw".contains(&last), "{id}");
        assert_ne!(cluster_id(), id);
    }
}
