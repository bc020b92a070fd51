//! Client helpers for tests: topics, producing input, reading output back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Timestamp (broker time: [`event_time`] of the test's own times).
    pub timestamp: i64,
}

impl ReadRecord {
    /// The timestamp as a test time, the inverse of [`event_time`].
    pub fn event_timestamp(&self) -> i64 {
        self.timestamp - event_epoch()
    }

    /// The key as UTF-8 (lossy).
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }
}

fn base(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c.set_log_level(rdkafka::config::RDKafkaLogLevel::Error);
    c
}

/// The names of every topic the cluster has.
pub fn topic_names(bootstrap: &str) -> Vec<String> {
    let c: BaseConsumer = base(bootstrap).create().expect("metadata client");
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("topic metadata");
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

/// Creates topics (name, partitions), waiting until metadata shows them.
pub fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = base(bootstrap).create().expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let res = block_on(admin.create_topics(&new, &AdminOptions::new())).expect("create_topics");
    for r in res {
        if let Err((t, e)) = r {
            assert_eq!(
                e,
                rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                "creating {t}"
            );
        }
    }
    let probe: BaseConsumer = base(bootstrap).create().expect("metadata client");
    let deadline = Instant::now() + Duration::from_secs(30);
    for (t, p) in topics {
        loop {
            let md = probe.fetch_metadata(Some(t), Duration::from_secs(5));
            if md.is_ok_and(|m| {
                m.topics()
                    .first()
                    .is_some_and(|x| x.partitions().len() == *p as usize)
            }) {
                break;
            }
            assert!(Instant::now() < deadline, "topic {t} did not appear");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Produces `(key, value)` string records (idempotent producer, acks=all), waiting for all acks.
pub fn produce(bootstrap: &str, topic: &str, records: &[(Option<&str>, Option<&str>)]) {
    produce_with_timestamps(
        bootstrap,
        topic,
        &records
            .iter()
            .map(|(k, v)| (*k, *v, None))
            .collect::<Vec<_>>(),
    );
}

/// Time zero of the tests' event times: the hour boundary one to two hours before this process
/// first asked. Tests write small times (a window at 0..10 s reads well), but a broker deletes
/// records older than `retention.ms` (7 days unless the topic says otherwise; a windowed
/// changelog keeps a day past its store) at its retention check, 30 s after it starts and then
/// every 5 minutes: inputs and changelogs stamped in 1970 vanished in the middle of tests. An
/// hour boundary keeps every window of up to an hour aligned as it would be at 0.
pub fn event_epoch() -> i64 {
    static EPOCH: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(|| {
        const HOUR_MS: i64 = 3_600_000;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        (now / HOUR_MS - 1) * HOUR_MS
    })
}

/// A test's event time `t` (milliseconds after [`event_epoch`]) as a record timestamp.
pub fn event_time(t: i64) -> i64 {
    event_epoch() + t
}

/// Produces `(key, value, timestamp)` string records, waiting for all acks. Timestamps are test
/// times, stamped as [`event_time`]; `None` leaves the producer's wall clock.
pub fn produce_with_timestamps(
    bootstrap: &str,
    topic: &str,
    records: &[(Option<&str>, Option<&str>, Option<i64>)],
) {
    let p: BaseProducer = base(bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    for (k, v, ts) in records {
        let mut r: BaseRecord<'_, str, str> = BaseRecord::to(topic);
        if let Some(k) = k {
            r = r.key(*k);
        }
        if let Some(v) = v {
            r = r.payload(*v);
        }
        if let Some(ts) = ts {
            r = r.timestamp(event_time(*ts));
        }
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "produce failed: {e}"
                    );
                    r = back;
                    p.poll(Duration::from_millis(20));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
}

/// A consumer that reads a topic from the beginning, outside any group.
pub struct TopicReader {
    consumer: BaseConsumer,
    /// Everything read so far, in arrival order.
    pub records: Vec<ReadRecord>,
}

impl TopicReader {
    /// Reads `topic` (all partitions) from the beginning; `read_committed` hides aborted and open
    /// transactions.
    pub fn new(bootstrap: &str, topic: &str, read_committed: bool) -> TopicReader {
        let consumer = Self::consumer(bootstrap, read_committed);
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let mut tpl = TopicPartitionList::new();
        for p in md.topics().first().expect("topic").partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("tpl");
        }
        consumer.assign(&tpl).expect("assign");
        TopicReader {
            consumer,
            records: Vec::new(),
        }
    }

    /// Reads one partition of `topic` from `offset` on.
    pub fn partition_from(
        bootstrap: &str,
        topic: &str,
        partition: i32,
        offset: i64,
        read_committed: bool,
    ) -> TopicReader {
        let consumer = Self::consumer(bootstrap, read_committed);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        TopicReader {
            consumer,
            records: Vec::new(),
        }
    }

    fn consumer(bootstrap: &str, read_committed: bool) -> BaseConsumer {
        base(bootstrap)
            .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set(
                "isolation.level",
                if read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            )
            .create()
            .expect("reader")
    }

    /// Polls for up to `d`, appending what arrives; returns how many arrived.
    pub fn poll_for(&mut self, d: Duration) -> usize {
        let deadline = Instant::now() + d;
        let before = self.records.len();
        while Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => self.records.push(ReadRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    timestamp: m.timestamp().to_millis().unwrap_or(-1),
                }),
                Some(Err(e)) => panic!("reading: {e}"),
                None => {}
            }
        }
        self.records.len() - before
    }

    /// Polls until `done(records)` holds (returns true) or `timeout` passes (returns false).
    pub fn poll_until(&mut self, timeout: Duration, done: impl Fn(&[ReadRecord]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(&self.records) {
                return true;
            }
            self.poll_for(Duration::from_millis(200));
        }
        done(&self.records)
    }

    /// The last value per key, decoding values with `decode`.
    pub fn latest<V>(&self, decode: impl Fn(&[u8]) -> V) -> BTreeMap<String, V> {
        let mut m = BTreeMap::new();
        for r in &self.records {
            if let Some(v) = &r.value {
                m.insert(r.key_str(), decode(v));
            }
        }
        m
    }
}

/// Decodes an 8-byte big-endian long (Kafka's LongSerializer).
pub fn long(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// Installs a `tracing` subscriber for a test (RUST_LOG controls it; default warnings).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// The assignment protocol the consumer group `group` agreed on, as the broker describes it once
/// the group is stable (waits up to a minute; a rebalancing group reports none).
pub fn group_protocol(bootstrap: &str, group: &str) -> String {
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("probe client");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let groups = probe
            .fetch_group_list(Some(group), Duration::from_secs(10))
            .expect("describing the group");
        let g = &groups.groups()[0];
        if g.state() == "Stable" || Instant::now() > deadline {
            return g.protocol().to_string();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits up to `timeout` until `streams` runs `threads` live stream threads that each own at
/// least one task and together own `tasks`, and returns them as last seen. `RUNNING` alone does
/// not say that: after a thread joins late, a cooperative rebalance holds its tasks back from it
/// for about a heartbeat interval while the instance already reports `RUNNING`.
pub fn settled_threads(
    streams: &streams_core::KafkaStreams,
    threads: usize,
    tasks: usize,
    timeout: Duration,
) -> Vec<streams_core::ThreadMetadata> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = streams.metadata_for_local_threads();
        let settled = streams.state() == streams_core::State::Running
            && now.len() == threads
            && now.iter().all(|t| !t.active_tasks.is_empty())
            && now.iter().map(|t| t.active_tasks.len()).sum::<usize>() == tasks;
        if settled || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
