//! `StreamsConfig`: Kafka Streams' configuration keys, parsed and checked up front.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

mod java_keys;
mod values;

pub use values::{HostInfo, RecordingLevel};

use crate::timestamp::{timestamp_extractor_by_name, FailOnInvalidTimestamp, TimestampExtractor};
use crate::{Result, StreamsError};

/// Who holds a stream thread's place in the application's consumer group (`group.membership`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupMembership {
    /// The default: the runtime joins itself and assigns tasks: sticky, placed where their
    /// state is, cooperative (only moving tasks pause). Needs the classic protocol on a
    /// plaintext connection; otherwise librdkafka's membership is used.
    Streams,
    /// librdkafka's consumer joins with its eager `range` assignor, and every rebalance revokes
    /// every task. Kept for comparison and for what the runtime's member does not speak yet.
    Librdkafka,
}

/// How records are processed across failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Offsets are committed after outputs are flushed; a crash can repeat output, never lose it.
    AtLeastOnce,
    /// KIP-447: one transactional producer per stream thread; outputs, changelogs and offsets
    /// commit atomically. Also selected by the deprecated alias `exactly_once_beta`.
    ExactlyOnceV2,
    /// Legacy (pre-KIP-447) exactly-once: one transactional producer per task. Only for migrating
    /// old deployments to `exactly_once_v2`.
    ExactlyOnceLegacy,
}

impl ProcessingGuarantee {
    /// Whether outputs are transactional.
    pub fn is_exactly_once(self) -> bool {
        !matches!(self, ProcessingGuarantee::AtLeastOnce)
    }
    /// The config value naming this guarantee.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessingGuarantee::AtLeastOnce => "at_least_once",
            ProcessingGuarantee::ExactlyOnceV2 => "exactly_once_v2",
            ProcessingGuarantee::ExactlyOnceLegacy => "exactly_once",
        }
    }
}

/// Prefixes whose keys are passed to the librdkafka clients the runtime creates.
pub const CLIENT_PREFIXES: &[&str] = &[
    "main.consumer.",
    "consumer.",
    "producer.",
    "admin.",
    "restore.consumer.",
    "global.consumer.",
];

/// What to do with a record that fails (cannot be deserialized, or its processing fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Log it and stop the instance (Kafka Streams' default).
    LogAndFail,
    /// Log it, count it as dropped, and go on with the next record (and send it to the dead
    /// letter queue if `errors.dead.letter.queue.topic.name` is set).
    LogAndContinue,
}

impl OnError {
    fn parse(key: &str, value: &str) -> Result<Self> {
        // Kafka Streams' handler classes mean the same.
        let short = value
            .trim()
            .strip_prefix("org.apache.kafka.streams.errors.")
            .unwrap_or(value.trim());
        match short {
            "log_and_fail"
            | "fail"
            | "LogAndFailExceptionHandler"
            | "LogAndFailProcessingExceptionHandler"
            | "DefaultProductionExceptionHandler" => Ok(OnError::LogAndFail),
            "log_and_continue"
            | "continue"
            | "LogAndContinueExceptionHandler"
            | "LogAndContinueProcessingExceptionHandler" => Ok(OnError::LogAndContinue),
            other => Err(StreamsError::Config(format!(
                "`{key}` = `{other}` is not valid; choose log_and_fail or log_and_continue"
            ))),
        }
    }
}

/// Client keys (librdkafka names) that apply to every client: security settings above all.
const COMMON_CLIENT_PREFIXES: &[&str] = &["security.protocol", "ssl.", "sasl.", "client.id"];

/// Keys this version understands, with a one-line description for error messages and docs.
pub const KNOWN_KEYS: &[(&str, &str)] = &[
    (
        "application.id",
        "required; names the consumer group, internal topics and state directory",
    ),
    ("bootstrap.servers", "host:port list of the Kafka cluster"),
    (
        "processing.guarantee",
        "at_least_once | exactly_once_v2 | exactly_once_beta | exactly_once",
    ),
    (
        "max.task.idle.ms",
        "how long a task waits for an empty input before processing out of time order; 0 (default) waits only for data already on the broker, -1 never waits",
    ),
    (
        "group.instance.id",
        "static membership: a restart within session.timeout.ms causes no rebalance",
    ),
    (
        "commit.interval.ms",
        "how often to commit; default 30000, or 100 under exactly-once",
    ),
    (
        "num.stream.threads",
        "worker threads per instance; default 1",
    ),
    (
        "task.timeout.ms",
        "how long a task may make no progress through retriable Kafka errors (a leader moving, a broker down) before the thread fails; default 300000",
    ),
    (
        "state.dir",
        "where task state lives; default <tmp>/kafka-streams",
    ),
    (
        "replication.factor",
        "replication of internal topics; default -1 (broker default)",
    ),
    (
        "num.standby.replicas",
        "standby copies of each store; default 0",
    ),
    (
        "acceptable.recovery.lag",
        "changelog records a task's state may lag and still count as caught up, so the task may move there; default 10000",
    ),
    (
        "max.warmup.replicas",
        "tasks warmed up at once on instances they should move to (beyond the standbys); default 2",
    ),
    (
        "probing.rebalance.interval.ms",
        "how often the group rebalances while warm-up replicas catch up; default 600000",
    ),
    (
        "upgrade.from",
        "version an instance is rolling-upgraded from, during the first bounce",
    ),
    (
        "group.membership",
        "`streams` (default: the runtime joins the group itself: sticky, state-aware, cooperative task assignment, SHUTDOWN_APPLICATION to every instance) or `librdkafka` (librdkafka's consumer joins, eager `range` assignment)",
    ),
    (
        "default.key.serde",
        "serde for keys where none is given: string | bytes | long | integer | double",
    ),
    (
        "default.value.serde",
        "serde for values where none is given: string | bytes | long | integer | double",
    ),
    (
        "statestore.cache.max.bytes",
        "record cache size per instance; default 10485760",
    ),
    (
        "cache.max.bytes.buffering",
        "deprecated alias of statestore.cache.max.bytes",
    ),
    (
        "enable.transactional.statestores",
        "true (default) | false: under exactly-once, RocksDB stores keep writes in memory until the commit, so a crash restores only the changelog tail",
    ),
    (
        "statestore.uncommitted.max.bytes",
        "uncommitted store writes a thread may hold under exactly-once before it commits early; default 67108864",
    ),
    (
        "buffered.records.per.partition",
        "records a task buffers per input partition before that partition's fetching pauses; default 1000",
    ),
    (
        "default.timestamp.extractor",
        "FailOnInvalidTimestamp (default) | LogAndSkipOnInvalidTimestamp | UsePartitionTimeOnInvalidTimestamp | WallclockTimestampExtractor: the event time of consumed records",
    ),
    (
        "deserialization.exception.handler",
        "log_and_fail (default) | log_and_continue: a record whose key or value cannot be deserialized",
    ),
    (
        "processing.exception.handler",
        "log_and_fail (default) | log_and_continue: a record whose processing fails",
    ),
    (
        "production.exception.handler",
        "fail (default) | continue: a record the producer could not write (at_least_once only)",
    ),
    (
        "errors.dead.letter.queue.topic.name",
        "topic receiving the original bytes of records dropped by a log_and_continue handler",
    ),
    (
        "rocksdb.memory.bound.bytes",
        "total RocksDB block cache + memtable memory per instance; default 67108864",
    ),
    (
        "application.server",
        "host:port where this instance serves interactive queries; enables key -> host lookups",
    ),
    (
        "metrics.recording.level",
        "INFO (default) | DEBUG (adds state store latencies) | TRACE",
    ),
    (
        "metrics.http.address",
        "host:port serving Prometheus metrics at /metrics (port 0: any free port); default off",
    ),
];

/// Typed configuration of a streams application.
#[derive(Clone)]
pub struct StreamsConfig {
    /// `application.id`.
    pub application_id: String,
    /// `bootstrap.servers`; `None` means the embedded demo broker (examples only).
    pub bootstrap_servers: Option<String>,
    /// `processing.guarantee`.
    pub processing_guarantee: ProcessingGuarantee,
    /// `commit.interval.ms`.
    pub commit_interval_ms: u64,
    /// `max.task.idle.ms`: how long a task with several inputs waits for an input with no
    /// buffered records before processing the others out of time order (-1: never waits).
    pub max_task_idle_ms: i64,
    /// `num.stream.threads`.
    pub num_stream_threads: usize,
    /// `task.timeout.ms` (KIP-572): how long a task may be stuck on retriable Kafka errors while it
    /// initializes or restores before they fail the thread.
    pub task_timeout_ms: u64,
    /// `state.dir`.
    pub state_dir: PathBuf,
    /// `replication.factor` of internal topics (-1 = broker default).
    pub replication_factor: i32,
    /// `num.standby.replicas`.
    pub num_standby_replicas: u32,
    /// `acceptable.recovery.lag`: how many changelog records an instance's state of a task may
    /// lag the most advanced state and still count as caught up; a task moves only to an
    /// instance caught up on it (otherwise that instance warms it up first).
    pub acceptable_recovery_lag: u64,
    /// `max.warmup.replicas`: warm-up replicas placed at once, beyond the standbys.
    pub max_warmup_replicas: u32,
    /// `probing.rebalance.interval.ms`: while warm-up replicas catch up, the group rebalances
    /// this often to move the tasks that have.
    pub probing_rebalance_interval_ms: u64,
    /// `upgrade.from`.
    pub upgrade_from: Option<String>,
    /// `group.membership`: who holds the stream threads' group membership.
    pub group_membership: GroupMembership,
    /// `group.instance.id`: static membership. Thread `n` of the instance joins as `<id>-<n>`, so a
    /// restart within the session timeout takes its partitions back without a rebalance.
    pub group_instance_id: Option<String>,
    /// `default.key.serde`.
    pub default_key_serde: Option<String>,
    /// `default.value.serde`.
    pub default_value_serde: Option<String>,
    /// `statestore.cache.max.bytes`.
    pub cache_max_bytes: u64,
    /// `rocksdb.memory.bound.bytes`.
    pub rocksdb_memory_bytes: u64,
    /// `enable.transactional.statestores`: under exactly-once, persistent stores commit their
    /// writes with the changelog offset in one atomic write, so a crash needs no full restore.
    pub transactional_state_stores: bool,
    /// `statestore.uncommitted.max.bytes`: per instance; each thread commits early when its share
    /// of uncommitted store writes is exceeded.
    pub uncommitted_max_bytes: u64,
    /// `buffered.records.per.partition`: past this many records buffered for one input
    /// partition, the thread pauses fetching it until its task drains the buffer.
    pub buffered_records_per_partition: usize,
    /// `default.timestamp.extractor`: the event time of records whose source has no extractor of
    /// its own (see [`crate::timestamp`]); Kafka Streams' `FailOnInvalidTimestamp` by default.
    pub default_timestamp_extractor: Arc<dyn TimestampExtractor>,
    /// The name `default.timestamp.extractor` was given, for display.
    timestamp_extractor_name: String,
    /// `deserialization.exception.handler`.
    pub on_deserialization_error: OnError,
    /// `processing.exception.handler`.
    pub on_processing_error: OnError,
    /// `production.exception.handler`.
    pub on_production_error: OnError,
    /// `errors.dead.letter.queue.topic.name`.
    pub dead_letter_topic: Option<String>,
    /// `application.server`: where this instance answers interactive queries.
    pub application_server: Option<HostInfo>,
    /// `topology.optimization` includes `reuse.ktable.source.topics` (or is `all`): a source
    /// table's topic is its store's changelog.
    pub reuse_source_topics: bool,
    /// `topology.optimization` includes `merge.repartition.topics` (or is `all`): the
    /// repartitions below one key-changing operation share one topic.
    pub merge_repartition_topics: bool,
    /// `metrics.recording.level`.
    pub metrics_recording_level: RecordingLevel,
    /// `metrics.http.address`: where `/metrics` is served, if anywhere.
    pub metrics_http_address: Option<String>,
    /// Client settings: common ones under "", the rest under their prefix (`consumer.` ...), prefix stripped.
    pub client: BTreeMap<String, BTreeMap<String, String>>,
    /// `topic.*`: configs for the internal topics the application creates (prefix stripped).
    pub topic_configs: BTreeMap<String, String>,
    /// Keys of a Kafka Streams properties file that mean nothing here, with the reason (each is
    /// logged once, when set).
    pub ignored_keys: Vec<(String, String)>,
    commit_interval_explicit: bool,
}

fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.ends_with("sasl.jaas.config")
        || k.contains("ssl.key.pem")
}

impl fmt::Debug for StreamsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client: BTreeMap<&String, BTreeMap<&String, &str>> = self
            .client
            .iter()
            .map(|(p, kv)| {
                (
                    p,
                    kv.iter()
                        .map(|(k, v)| {
                            (
                                k,
                                if is_secret(k) {
                                    "[redacted]"
                                } else {
                                    v.as_str()
                                },
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        f.debug_struct("StreamsConfig")
            .field("application_id", &self.application_id)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("processing_guarantee", &self.processing_guarantee)
            .field("commit_interval_ms", &self.commit_interval_ms)
            .field("task_timeout_ms", &self.task_timeout_ms)
            .field("max_task_idle_ms", &self.max_task_idle_ms)
            .field("num_stream_threads", &self.num_stream_threads)
            .field("state_dir", &self.state_dir)
            .field("replication_factor", &self.replication_factor)
            .field("num_standby_replicas", &self.num_standby_replicas)
            .field("acceptable_recovery_lag", &self.acceptable_recovery_lag)
            .field("max_warmup_replicas", &self.max_warmup_replicas)
            .field(
                "probing_rebalance_interval_ms",
                &self.probing_rebalance_interval_ms,
            )
            .field("upgrade_from", &self.upgrade_from)
            .field("group_membership", &self.group_membership)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .field(
                "transactional_state_stores",
                &self.transactional_state_stores,
            )
            .field("uncommitted_max_bytes", &self.uncommitted_max_bytes)
            .field(
                "buffered_records_per_partition",
                &self.buffered_records_per_partition,
            )
            .field(
                "default_timestamp_extractor",
                &self.timestamp_extractor_name,
            )
            .field("client", &client)
            .finish()
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str, what: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| StreamsError::Config(format!("`{key}` = `{value}` is not {what}")))
}

impl StreamsConfig {
    /// A config with defaults and the given `application.id`.
    pub fn new(application_id: impl Into<String>) -> Result<Self> {
        let mut c = StreamsConfig {
            application_id: String::new(),
            bootstrap_servers: None,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            commit_interval_ms: 30_000,
            max_task_idle_ms: 0,
            num_stream_threads: 1,
            task_timeout_ms: 300_000,
            state_dir: std::env::temp_dir().join("kafka-streams"),
            replication_factor: -1,
            num_standby_replicas: 0,
            acceptable_recovery_lag: 10_000,
            max_warmup_replicas: 2,
            probing_rebalance_interval_ms: 600_000,
            upgrade_from: None,
            group_membership: GroupMembership::Streams,
            group_instance_id: None,
            default_key_serde: None,
            default_value_serde: None,
            cache_max_bytes: 10 * 1024 * 1024,
            rocksdb_memory_bytes: 64 * 1024 * 1024,
            transactional_state_stores: true,
            uncommitted_max_bytes: 64 * 1024 * 1024,
            buffered_records_per_partition: 1000,
            default_timestamp_extractor: Arc::new(FailOnInvalidTimestamp),
            timestamp_extractor_name: "FailOnInvalidTimestamp".to_string(),
            on_deserialization_error: OnError::LogAndFail,
            on_processing_error: OnError::LogAndFail,
            on_production_error: OnError::LogAndFail,
            dead_letter_topic: None,
            application_server: None,
            reuse_source_topics: false,
            merge_repartition_topics: false,
            metrics_recording_level: RecordingLevel::Info,
            metrics_http_address: None,
            client: BTreeMap::new(),
            topic_configs: BTreeMap::new(),
            ignored_keys: Vec::new(),
            commit_interval_explicit: false,
        };
        c.set("application.id", &application_id.into())?;
        Ok(c)
    }

    /// Builds a config from `key = value` pairs, as a properties file or `-c` flags give them.
    /// Unknown keys and bad values are errors that list the valid choices.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
            .collect();
        let app = pairs
            .iter()
            .find(|(k, _)| k == "application.id")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| StreamsError::Config("`application.id` is required".into()))?;
        let mut c = StreamsConfig::new(app)?;
        for (k, v) in &pairs {
            c.set(k, v)?;
        }
        Ok(c)
    }

    /// Sets one key. See [`KNOWN_KEYS`]; client keys go under `consumer.`, `producer.`, `admin.`,
    /// `restore.consumer.`, or apply to all clients (`security.protocol`, `ssl.*`, `sasl.*`, `client.id`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        match key {
            "application.id" => {
                let ok = !value.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !ok {
                    return Err(StreamsError::Config(format!(
                        "`application.id` = `{value}` must be non-empty and use only [a-zA-Z0-9._-] (it prefixes topic names)"
                    )));
                }
                self.application_id = value.to_string();
            }
            "bootstrap.servers" => {
                self.bootstrap_servers = Some(value.to_string()).filter(|v| !v.trim().is_empty())
            }
            "processing.guarantee" => {
                self.processing_guarantee = match value {
                    "at_least_once" => ProcessingGuarantee::AtLeastOnce,
                    "exactly_once_v2" => ProcessingGuarantee::ExactlyOnceV2,
                    "exactly_once_beta" => {
                        tracing::warn!("processing.guarantee=exactly_once_beta is deprecated; use exactly_once_v2");
                        ProcessingGuarantee::ExactlyOnceV2
                    }
                    "exactly_once" => {
                        tracing::warn!(
                            "processing.guarantee=exactly_once (one producer per task) is legacy; migrate to exactly_once_v2"
                        );
                        ProcessingGuarantee::ExactlyOnceLegacy
                    }
                    other => {
                        return Err(StreamsError::Config(format!(
                            "`processing.guarantee` = `{other}` is not valid; choose one of at_least_once, exactly_once_v2, exactly_once_beta, exactly_once"
                        )))
                    }
                };
                if !self.commit_interval_explicit {
                    self.commit_interval_ms = if self.processing_guarantee.is_exactly_once() {
                        100
                    } else {
                        30_000
                    };
                }
            }
            "max.task.idle.ms" => {
                let v: i64 = parse(key, value, "-1, 0 or a number of milliseconds")?;
                if v < -1 {
                    return Err(StreamsError::Config(format!(
                        "`max.task.idle.ms` = {v}: use -1 (never wait), 0, or a positive number of milliseconds"
                    )));
                }
                self.max_task_idle_ms = v;
            }
            "commit.interval.ms" => {
                self.commit_interval_ms =
                    parse(key, value, "a non-negative number of milliseconds")?;
                self.commit_interval_explicit = true;
            }
            "task.timeout.ms" => {
                self.task_timeout_ms = parse(key, value, "a non-negative number of milliseconds")?;
            }
            "num.stream.threads" => {
                let n: usize = parse(key, value, "a positive number")?;
                if n == 0 {
                    return Err(StreamsError::Config(
                        "`num.stream.threads` must be at least 1".into(),
                    ));
                }
                self.num_stream_threads = n;
            }
            "state.dir" => self.state_dir = PathBuf::from(value),
            "replication.factor" => {
                let r: i32 = parse(key, value, "an integer")?;
                if r == 0 || r < -1 {
                    return Err(StreamsError::Config(
                        "`replication.factor` must be -1 (broker default) or >= 1".into(),
                    ));
                }
                self.replication_factor = r;
            }
            "num.standby.replicas" => {
                self.num_standby_replicas = parse(key, value, "a non-negative number")?
            }
            "acceptable.recovery.lag" => {
                self.acceptable_recovery_lag =
                    parse(key, value, "a non-negative number of records")?
            }
            "max.warmup.replicas" => {
                let n: u32 = parse(key, value, "a positive number")?;
                if n == 0 {
                    return Err(StreamsError::Config(
                        "`max.warmup.replicas` must be at least 1".into(),
                    ));
                }
                self.max_warmup_replicas = n;
            }
            "probing.rebalance.interval.ms" => {
                let ms: u64 = parse(key, value, "a positive number of milliseconds")?;
                if ms == 0 {
                    return Err(StreamsError::Config(
                        "`probing.rebalance.interval.ms` must be positive".into(),
                    ));
                }
                self.probing_rebalance_interval_ms = ms;
            }
            "upgrade.from" => self.upgrade_from = Some(value.to_string()).filter(|v| !v.is_empty()),
            "group.membership" => {
                self.group_membership = match value.trim() {
                    "streams" => GroupMembership::Streams,
                    "librdkafka" => GroupMembership::Librdkafka,
                    other => {
                        return Err(StreamsError::Config(format!(
                    "`group.membership` is `{other}`; use `streams` (the default) or `librdkafka`"
                )))
                    }
                }
            }
            "group.instance.id" => {
                self.group_instance_id = Some(value.to_string()).filter(|v| !v.is_empty())
            }
            "default.key.serde" | "default.value.serde" => {
                if crate::serdes::serde_by_name::<String>(value).is_none()
                    && crate::serdes::serde_by_name::<Vec<u8>>(value).is_none()
                    && crate::serdes::serde_by_name::<i64>(value).is_none()
                    && crate::serdes::serde_by_name::<i32>(value).is_none()
                    && crate::serdes::serde_by_name::<f64>(value).is_none()
                {
                    return Err(StreamsError::Config(format!(
                        "`{key}` = `{value}` is not a known serde; choose one of {}",
                        crate::serdes::SERDE_NAMES.join(", ")
                    )));
                }
                if key == "default.key.serde" {
                    self.default_key_serde = Some(value.to_string());
                } else {
                    self.default_value_serde = Some(value.to_string());
                }
            }
            "statestore.cache.max.bytes" | "cache.max.bytes.buffering" => {
                self.cache_max_bytes = parse(key, value, "a non-negative number of bytes")?
            }
            "rocksdb.memory.bound.bytes" => {
                self.rocksdb_memory_bytes = parse(key, value, "a number of bytes")?
            }
            "enable.transactional.statestores" => {
                self.transactional_state_stores = parse(key, value, "true or false")?
            }
            "statestore.uncommitted.max.bytes" => {
                self.uncommitted_max_bytes = parse(key, value, "a non-negative number of bytes")?
            }
            "buffered.records.per.partition" => {
                let n: usize = parse(key, value, "a positive number of records")?;
                if n == 0 {
                    return Err(StreamsError::Config(
                        "`buffered.records.per.partition` must be at least 1".into(),
                    ));
                }
                self.buffered_records_per_partition = n;
            }
            "default.timestamp.extractor" => {
                self.default_timestamp_extractor = timestamp_extractor_by_name(value).ok_or_else(|| {
                    StreamsError::Config(format!(
                        "`{key}` = `{value}` is not a built-in extractor: use FailOnInvalidTimestamp, \
                         LogAndSkipOnInvalidTimestamp, UsePartitionTimeOnInvalidTimestamp or \
                         WallclockTimestampExtractor (Java class names work too); a custom one is \
                         set in code with `StreamsConfig::default_timestamp_extractor`"
                    ))
                })?;
                self.timestamp_extractor_name = value.trim().to_string();
            }
            "deserialization.exception.handler" | "default.deserialization.exception.handler" => {
                self.on_deserialization_error = OnError::parse(key, value)?
            }
            "processing.exception.handler" => {
                self.on_processing_error = OnError::parse(key, value)?
            }
            "production.exception.handler" | "default.production.exception.handler" => {
                self.on_production_error = OnError::parse(key, value)?
            }
            "errors.dead.letter.queue.topic.name" => {
                self.dead_letter_topic = Some(value.to_string()).filter(|v| !v.trim().is_empty())
            }
            "topology.optimization" => {
                self.reuse_source_topics = false;
                self.merge_repartition_topics = false;
                for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match part {
                        "all" => {
                            self.reuse_source_topics = true;
                            self.merge_repartition_topics = true;
                        }
                        "reuse.ktable.source.topics" => self.reuse_source_topics = true,
                        "merge.repartition.topics" => self.merge_repartition_topics = true,
                        "none" => {}
                        "single.store.self.join" => tracing::warn!(
                            optimization = part,
                            "topology.optimization: `{part}` is not applied here (a self-join keeps its two stores)"
                        ),
                        other => {
                            return Err(StreamsError::Config(format!(
                                "`topology.optimization` = `{other}` is not one of all, none, reuse.ktable.source.topics, merge.repartition.topics, single.store.self.join"
                            )))
                        }
                    }
                }
            }
            "application.server" => {
                self.application_server = if value.trim().is_empty() {
                    None
                } else {
                    Some(HostInfo::parse(value)?)
                }
            }
            "metrics.recording.level" => {
                self.metrics_recording_level = RecordingLevel::parse(value)?
            }
            "metrics.http.address" => {
                let v = value.trim();
                if !v.is_empty()
                    && v.rsplit_once(':')
                        .is_none_or(|(_, p)| p.parse::<u16>().is_err())
                {
                    return Err(StreamsError::Config(format!(
                        "`metrics.http.address` = `{value}` is not host:port (e.g. 0.0.0.0:9464, or 127.0.0.1:0 for any free port)"
                    )));
                }
                self.metrics_http_address = Some(v.to_string()).filter(|v| !v.is_empty())
            }
            _ if key.starts_with("topic.") && key.len() > "topic.".len() => {
                self.topic_configs
                    .insert(key["topic.".len()..].to_string(), value.to_string());
            }
            _ if java_keys::ignored_java_key(key).is_some() => {
                let reason = java_keys::ignored_java_key(key).unwrap_or_default();
                tracing::warn!(key, reason, "ignoring a Kafka Streams (Java) setting");
                self.ignored_keys
                    .push((key.to_string(), reason.to_string()));
            }
            _ => {
                if let Some(prefix) = CLIENT_PREFIXES.iter().find(|p| key.starts_with(*p)) {
                    let rest = &key[prefix.len()..];
                    if rest.is_empty() {
                        return Err(StreamsError::Config(format!(
                            "`{key}` names no client setting after the prefix"
                        )));
                    }
                    self.client
                        .entry(prefix.to_string())
                        .or_default()
                        .insert(rest.to_string(), value.to_string());
                } else if COMMON_CLIENT_PREFIXES.iter().any(|p| key.starts_with(p)) {
                    self.client
                        .entry(String::new())
                        .or_default()
                        .insert(key.to_string(), value.to_string());
                } else if let Some((prefix, name)) = java_keys::unprefixed_client_key(key) {
                    // As Kafka Streams: an unprefixed client key goes to the clients it is for.
                    self.client
                        .entry(prefix.to_string())
                        .or_default()
                        .insert(name.to_string(), value.to_string());
                } else {
                    let mut valid: Vec<&str> = KNOWN_KEYS.iter().map(|(k, _)| *k).collect();
                    valid.extend([
                        "main.consumer.*",
                        "consumer.*",
                        "producer.*",
                        "admin.*",
                        "restore.consumer.*",
                        "global.consumer.*",
                        "security.protocol",
                        "ssl.*",
                        "sasl.*",
                        "client.id",
                        "topic.*",
                    ]);
                    return Err(StreamsError::Config(format!(
                        "unknown key `{key}`; valid keys: {}",
                        valid.join(", ")
                    )));
                }
            }
        }
        Ok(self)
    }

    /// Client settings for one client kind (`"consumer."`, `"producer."`, `"admin."`, `"restore.consumer."`):
    /// the common ones first, then that prefix's, which override them.
    pub fn client_settings(&self, prefix: &str) -> BTreeMap<String, String> {
        let mut out = self.client.get("").cloned().unwrap_or_default();
        if prefix == "restore.consumer." || prefix == "global.consumer." {
            out.extend(self.client.get("consumer.").cloned().unwrap_or_default());
        }
        out.extend(self.client.get(prefix).cloned().unwrap_or_default());
        if prefix == "consumer." {
            // `main.consumer.` is for the stream threads' consumers only.
            out.extend(
                self.client
                    .get("main.consumer.")
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        out
    }

    /// The directory holding this application's task directories.
    pub fn app_state_dir(&self) -> PathBuf {
        self.state_dir.join(&self.application_id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn topology_optimization_turns_source_topic_reuse_on() {
        let reuse = |v: &str| {
            StreamsConfig::from_pairs([("application.id", "a"), ("topology.optimization", v)])
                .map(|c| c.reuse_source_topics)
        };
        assert!(!reuse("none").unwrap());
        assert!(reuse("all").unwrap());
        assert!(reuse("merge.repartition.topics, reuse.ktable.source.topics").unwrap());
        assert!(!reuse("merge.repartition.topics").unwrap());
        let e = reuse("everything").unwrap_err().to_string();
        assert!(e.contains("topology.optimization"), "{e}");
    }

    #[test]
    fn a_kafka_streams_properties_file_works_unchanged() {
        let c = StreamsConfig::from_pairs([
            ("application.id", "orders"),
            ("bootstrap.servers", "broker:9092"),
            ("processing.guarantee", "exactly_once_v2"),
            ("auto.offset.reset", "earliest"),
            ("fetch.max.wait.ms", "200"),
            ("linger.ms", "5"),
            ("send.buffer.bytes", "131072"),
            ("main.consumer.max.poll.interval.ms", "600000"),
            ("restore.consumer.fetch.max.bytes", "1048576"),
            ("topic.min.insync.replicas", "2"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required;",
            ),
            ("rack.aware.assignment.strategy", "min_traffic"),
            ("key.serializer", "x"),
            (
                "default.deserialization.exception.handler",
                "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler",
            ),
            (
                "default.key.serde",
                "org.apache.kafka.common.serialization.Serdes$StringSerde",
            ),
        ])
        .unwrap();
        let main = c.client_settings("consumer.");
        assert_eq!(
            main.get("auto.offset.reset").map(String::as_str),
            Some("earliest")
        );
        assert_eq!(
            main.get("fetch.wait.max.ms").map(String::as_str),
            Some("200")
        );
        assert_eq!(
            main.get("max.poll.interval.ms").map(String::as_str),
            Some("600000")
        );
        assert_eq!(
            main.get("socket.send.buffer.bytes").map(String::as_str),
            Some("131072")
        );
        let restore = c.client_settings("restore.consumer.");
        assert_eq!(
            restore.get("auto.offset.reset").map(String::as_str),
            Some("earliest")
        );
        assert!(
            !restore.contains_key("max.poll.interval.ms"),
            "main.consumer. is main only"
        );
        assert_eq!(
            restore.get("fetch.max.bytes").map(String::as_str),
            Some("1048576")
        );
        let producer = c.client_settings("producer.");
        assert_eq!(producer.get("linger.ms").map(String::as_str), Some("5"));
        assert!(!producer.contains_key("auto.offset.reset"));
        assert!(!producer.contains_key("sasl.jaas.config"));
        assert_eq!(
            c.topic_configs
                .get("min.insync.replicas")
                .map(String::as_str),
            Some("2")
        );
        assert_eq!(c.on_deserialization_error, OnError::LogAndContinue);
        let ignored: Vec<&str> = c.ignored_keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            ignored,
            vec![
                "sasl.jaas.config",
                "rack.aware.assignment.strategy",
                "key.serializer"
            ]
        );
        assert!(c.ignored_keys[0].1.contains("sasl.username"));
        // A typo is still an error.
        let e = StreamsConfig::from_pairs([("application.id", "x"), ("comit.interval.ms", "5")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `comit.interval.ms`"), "{e}");
    }

    #[test]
    fn defaults_follow_the_guarantee() {
        let c = StreamsConfig::from_pairs([
            ("application.id", "wc"),
            ("processing.guarantee", "exactly_once_v2"),
        ])
        .unwrap();
        assert_eq!(c.processing_guarantee, ProcessingGuarantee::ExactlyOnceV2);
        assert_eq!(c.commit_interval_ms, 100);
        let c = StreamsConfig::from_pairs([
            ("application.id", "wc"),
            ("commit.interval.ms", "500"),
            ("processing.guarantee", "exactly_once_beta"),
        ])
        .unwrap();
        assert_eq!(
            (c.processing_guarantee, c.commit_interval_ms),
            (ProcessingGuarantee::ExactlyOnceV2, 500)
        );
        let c = StreamsConfig::new("wc").unwrap();
        assert_eq!(
            (
                c.commit_interval_ms,
                c.num_stream_threads,
                c.cache_max_bytes
            ),
            (30_000, 1, 10 * 1024 * 1024)
        );
        let c = StreamsConfig::from_pairs([
            ("application.id", "wc"),
            ("processing.guarantee", "exactly_once"),
        ])
        .unwrap();
        assert_eq!(
            c.processing_guarantee,
            ProcessingGuarantee::ExactlyOnceLegacy
        );
    }

    #[test]
    fn errors_name_the_key_and_the_choices() {
        let e = StreamsConfig::from_pairs([
            ("application.id", "wc"),
            ("processing.guarantee", "exactly_twice"),
        ])
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("exactly_twice") && m.contains("at_least_once, exactly_once_v2"),
            "{m}"
        );
        let e = StreamsConfig::from_pairs([("application.id", "wc"), ("comit.interval.ms", "5")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown key `comit.interval.ms`") && e.contains("commit.interval.ms"),
            "{e}"
        );
        let e =
            StreamsConfig::from_pairs([("application.id", "wc"), ("num.stream.threads", "two")])
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("`num.stream.threads` = `two` is not a positive number"),
            "{e}"
        );
        assert!(StreamsConfig::from_pairs([("num.stream.threads", "2")])
            .unwrap_err()
            .to_string()
            .contains("application.id"));
        assert!(StreamsConfig::new("bad app id").is_err());
        let e =
            StreamsConfig::from_pairs([("application.id", "wc"), ("default.key.serde", "avro")])
                .unwrap_err()
                .to_string();
        assert!(e.contains("string, bytes, long"), "{e}");
        assert!(
            StreamsConfig::from_pairs([("application.id", "wc"), ("replication.factor", "0")])
                .is_err()
        );
    }

    #[test]
    fn exception_handlers_parse_and_name_the_choices() {
        let c = StreamsConfig::from_pairs([
            ("application.id", "wc"),
            ("deserialization.exception.handler", "log_and_continue"),
            ("errors.dead.letter.queue.topic.name", "wc-dlq"),
        ])
        .unwrap();
        assert_eq!(c.on_deserialization_error, OnError::LogAndContinue);
        assert_eq!(c.on_processing_error, OnError::LogAndFail);
        assert_eq!(c.dead_letter_topic.as_deref(), Some("wc-dlq"));
        let e = StreamsConfig::from_pairs([
            ("application.id", "wc"),
            ("processing.exception.handler", "ignore"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`processing.exception.handler` = `ignore`")
                && e.contains("log_and_continue"),
            "{e}"
        );
    }

    #[test]
    fn client_keys_pass_through_and_secrets_stay_hidden() {
        let c = StreamsConfig::from_pairs([
            ("application.id", "wc"),
            ("security.protocol", "SASL_SSL"),
            ("sasl.password", "hunter2"),
            ("consumer.fetch.min.bytes", "10"),
            ("producer.sasl.password", "s3cret"),
            ("producer.linger.ms", "5"),
        ])
        .unwrap();
        let p = c.client_settings("producer.");
        assert_eq!(
            p.get("security.protocol").map(String::as_str),
            Some("SASL_SSL")
        );
        assert_eq!(p.get("sasl.password").map(String::as_str), Some("s3cret"));
        assert_eq!(p.get("linger.ms").map(String::as_str), Some("5"));
        assert!(!p.contains_key("fetch.min.bytes"));
        assert_eq!(
            c.client_settings("restore.consumer.")
                .get("fetch.min.bytes")
                .map(String::as_str),
            Some("10")
        );
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("s3cret") && dbg.contains("[redacted]"),
            "{dbg}"
        );
    }
}
