//! `TopologyTestDriver`: runs a topology in process, record by record, with real stores and no broker.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::rc::Rc;

use state_stores::{RocksDbResources, TaskDirLock};

use crate::global::GlobalStores;
use crate::processor::PunctuationType;
use crate::query;
use crate::record::{Data, Headers, Record};
use crate::serdes::SerdeRef;
use crate::store::ValueAndTimestamp;
use crate::task::{ProducedRecord, StreamTask, TaskId};
use crate::{Result, StreamsConfig, StreamsError, Topology};

/// A record waiting to be fed to the tasks that read its topic.
type Pending = (String, Option<Vec<u8>>, Option<Vec<u8>>, i64, Headers);

struct DriverInner {
    tasks: Vec<StreamTask>,
    outputs: HashMap<String, VecDeque<ProducedRecord>>,
    offsets: HashMap<String, i64>,
    wall_clock: i64,
    dropped_records: u64,
    globals: GlobalStores,
    _locks: Vec<TaskDirLock>,
    _state_dir: tempfile::TempDir,
}

impl DriverInner {
    /// Runs one record through its task and everything downstream of it (internal topics are
    /// looped back in memory), as the real runtime would across sub-topologies.
    fn pipe(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        if !self.tasks.iter().any(|t| t.reads_topic(topic)) {
            return Err(StreamsError::IllegalState(format!(
                "no source node reads topic `{topic}`"
            )));
        }
        let mut queue = VecDeque::from([(topic.to_string(), key, value, timestamp, headers)]);
        while let Some((topic, key, value, ts, headers)) = queue.pop_front() {
            let offset = self.offsets.entry(topic.clone()).or_insert(0);
            let this_offset = *offset;
            *offset += 1;
            for i in 0..self.tasks.len() {
                if !self.tasks[i].reads_topic(&topic) {
                    continue;
                }
                let extracted = self.tasks[i].extract_timestamp(
                    &topic,
                    0,
                    this_offset,
                    key.as_deref(),
                    value.as_deref(),
                    ts,
                    &headers,
                )?;
                let Some(ts) = extracted else {
                    self.dropped_records += self.tasks[i].take_dropped_records();
                    continue;
                };
                self.tasks[i].process(
                    &topic,
                    0,
                    this_offset,
                    key.as_deref(),
                    value.as_deref(),
                    ts,
                    headers.clone(),
                )?;
                self.dropped_records += self.tasks[i].take_dropped_records();
                let out = self.tasks[i].drain_output();
                self.route(out, &mut queue);
            }
        }
        Ok(())
    }

    fn route(&mut self, out: Vec<ProducedRecord>, queue: &mut VecDeque<Pending>) {
        for r in out {
            // Records for a topic the topology reads (repartition and other internal topics) go
            // round again; changelog topics are read by no task.
            if self.tasks.iter().any(|t| t.reads_topic(&r.topic)) {
                queue.push_back((
                    r.topic.to_string(),
                    r.key.clone(),
                    r.value.clone(),
                    r.timestamp,
                    r.headers.clone(),
                ));
            }
            self.outputs
                .entry(r.topic.to_string())
                .or_default()
                .push_back(r);
        }
    }

    fn task_with_store(&mut self, name: &str) -> Result<&mut StreamTask> {
        self.tasks
            .iter_mut()
            .find(|t| t.store_names().iter().any(|s| s == name))
            .ok_or_else(|| {
                StreamsError::IllegalState(format!("no store named `{name}` in the topology"))
            })
    }
}

/// Runs a [`Topology`] in process: pipe records into input topics, read output topics and stores,
/// advance wall-clock time. Each sub-topology runs as one task on partition 0, with real stores
/// (RocksDB for persistent ones) in a temporary state directory removed on drop.
///
/// ```
/// use streams_core::{serdes::Serdes, StreamsConfig, Topology, TopologyTestDriver};
/// let mut t = Topology::new();
/// t.add_source::<String, String>("in", &["a"], Serdes::string(), Serdes::string()).unwrap();
/// t.add_sink::<String, String>("out", "b", Serdes::string(), Serdes::string(), &["in"]).unwrap();
/// let driver = TopologyTestDriver::new(t, StreamsConfig::new("doc").unwrap()).unwrap();
/// let input = driver.create_input_topic("a", Serdes::string(), Serdes::string());
/// let output = driver.create_output_topic("b", Serdes::string(), Serdes::string());
/// input.pipe_input("k".to_string(), "v".to_string()).unwrap();
/// assert_eq!(output.read_key_value().unwrap(), Some(("k".to_string(), "v".to_string())));
/// ```
pub struct TopologyTestDriver {
    inner: Rc<RefCell<DriverInner>>,
    application_id: String,
}

impl TopologyTestDriver {
    /// Validates `topology`, opens every task's stores and initializes the processors.
    pub fn new(mut topology: Topology, config: StreamsConfig) -> Result<Self> {
        topology.validate()?;
        topology.optimize(&config)?;
        let state_dir = tempfile::Builder::new()
            .prefix("topology-test-driver-")
            .tempdir()
            .map_err(|source| StreamsError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let resources = RocksDbResources::new(config.rocksdb_memory_bytes as usize);
        let app = config.application_id.clone();
        let mut tasks = Vec::new();
        let mut locks = Vec::new();
        let global_dir = state_dir.path().join(&app).join("global");
        let globals = GlobalStores::open(&topology, &global_dir, &resources)?;
        if !globals.is_empty() {
            // The global task runs first, so a global table is current before stream tasks look
            // it up: what the global thread's bootstrap gives the real runtime.
            tasks.push(StreamTask::build(
                &topology,
                TaskId::GLOBAL,
                &app,
                &global_dir,
                &resources,
                None,
                false,
                Some(&globals),
            )?);
        }
        for s in topology.subtopologies() {
            let id = TaskId {
                subtopology: s.id,
                partition: 0,
            };
            let dir = state_dir.path().join(&app).join(id.to_string());
            locks.push(TaskDirLock::acquire(&dir)?);
            // Like Kafka's driver, which commits (flushing record caches) after every input record,
            // the driver runs without caches: the output is the same.
            let mut task = StreamTask::build(
                &topology,
                id,
                &app,
                &dir,
                &resources,
                None,
                false,
                Some(&globals),
            )?;
            task.set_wall_clock(0);
            task.set_default_timestamp_extractor(config.default_timestamp_extractor.clone());
            tasks.push(task);
        }
        let mut inner = DriverInner {
            tasks,
            outputs: HashMap::new(),
            offsets: HashMap::new(),
            wall_clock: 0,
            dropped_records: 0,
            globals,
            _locks: locks,
            _state_dir: state_dir,
        };
        let mut queue = VecDeque::new();
        for i in 0..inner.tasks.len() {
            inner.tasks[i].init()?;
            let out = inner.tasks[i].drain_output();
            inner.route(out, &mut queue);
        }
        Ok(TopologyTestDriver {
            inner: Rc::new(RefCell::new(inner)),
            application_id: app,
        })
    }

    /// The application id (internal topic names start with it).
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// A typed handle to pipe records into `topic`.
    pub fn create_input_topic<K: Data, V: Data>(
        &self,
        topic: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            key,
            value,
            next_timestamp: RefCell::new(0),
        }
    }

    /// A typed handle to read what was written to `topic`.
    pub fn create_output_topic<K: Data, V: Data>(
        &self,
        topic: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            key,
            value,
        }
    }

    /// Advances wall-clock time by `ms` and fires due wall-clock punctuations.
    pub fn advance_wall_clock_time(&self, ms: i64) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        inner.wall_clock += ms;
        let now = inner.wall_clock;
        let mut queue = VecDeque::new();
        for i in 0..inner.tasks.len() {
            inner.tasks[i].punctuate(PunctuationType::WallClockTime, now)?;
            let out = inner.tasks[i].drain_output();
            inner.route(out, &mut queue);
        }
        while let Some((topic, key, value, ts, headers)) = queue.pop_front() {
            inner.pipe(&topic, key, value, ts, headers)?;
        }
        Ok(())
    }

    /// All entries of a key-value store (plain or timestamped; timestamps are dropped).
    pub fn key_value_store_all<K: Data, V: Data>(&self, store: &str) -> Result<Vec<(K, V)>> {
        let mut inner = self.inner.borrow_mut();
        inner
            .task_with_store(store)?
            .with_store(store, |slot| query::kv_range(slot, None, None))
    }

    /// The value of `key` in a key-value store (plain or timestamped).
    pub fn key_value_store_get<K: Data, V: Data>(&self, store: &str, key: &K) -> Result<Option<V>> {
        Ok(self
            .timestamped_key_value_store_get::<K, V>(store, key)?
            .map(|v| v.value))
    }

    /// The value and timestamp of `key` (plain stores report timestamp -1).
    pub fn timestamped_key_value_store_get<K: Data, V: Data>(
        &self,
        store: &str,
        key: &K,
    ) -> Result<Option<ValueAndTimestamp<V>>> {
        let mut inner = self.inner.borrow_mut();
        inner
            .task_with_store(store)?
            .with_store(store, |slot| query::kv_get(slot, key))
    }

    /// How many records processors dropped on purpose so far (late for their window, null keys...):
    /// the `dropped_records` metric of the real runtime.
    pub fn dropped_records(&self) -> u64 {
        self.inner.borrow().dropped_records
    }

    /// Every entry of a window store as (key, window start, value); for timestamped window stores
    /// (windowed aggregations) the timestamps are dropped.
    pub fn window_store_all<K: Data, V: Data>(&self, store: &str) -> Result<Vec<(K, i64, V)>> {
        Ok(self
            .timestamped_window_store_all::<K, V>(store)?
            .into_iter()
            .map(|(k, s, v)| (k, s, v.value))
            .collect())
    }

    /// Every session of a session store as (key, session window, value).
    pub fn session_store_all<K: Data, V: Data>(
        &self,
        store: &str,
    ) -> Result<Vec<(K, state_stores::SessionWindow, V)>> {
        let mut inner = self.inner.borrow_mut();
        inner
            .task_with_store(store)?
            .with_store(store, |slot| query::sessions(slot))
    }

    /// Every entry of a window store as (key, window start, value and timestamp); plain window
    /// stores report timestamp -1.
    pub fn timestamped_window_store_all<K: Data, V: Data>(
        &self,
        store: &str,
    ) -> Result<Vec<(K, i64, ValueAndTimestamp<V>)>> {
        let mut inner = self.inner.borrow_mut();
        inner.task_with_store(store)?.with_store(store, |slot| {
            query::window_fetch(slot, None, i64::MIN, i64::MAX)
        })
    }

    /// Closes every task (processors, then stores).
    pub fn close(self) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        for t in &mut inner.tasks {
            t.close()?;
        }
        inner.globals.close();
        Ok(())
    }
}

/// Pipes typed records into one topic of a [`TopologyTestDriver`].
pub struct TestInputTopic<K, V> {
    inner: Rc<RefCell<DriverInner>>,
    topic: String,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
    next_timestamp: RefCell<i64>,
}

impl<K: Data, V: Data> TestInputTopic<K, V> {
    /// Pipes `key`/`value` with the topic's current timestamp (starts at 0; see [`Self::advance_time`]).
    pub fn pipe_input(&self, key: K, value: V) -> Result<()> {
        let ts = *self.next_timestamp.borrow();
        self.pipe_input_with_timestamp(key, value, ts)
    }

    /// Pipes one record with an explicit timestamp.
    pub fn pipe_input_with_timestamp(&self, key: K, value: V, timestamp: i64) -> Result<()> {
        self.pipe_record(Record::new(key, value, timestamp))
    }

    /// Pipes one record with headers.
    pub fn pipe_record(&self, record: Record<K, V>) -> Result<()> {
        let ser = |part, r: std::result::Result<Option<Vec<u8>>, crate::serdes::SerdeError>| {
            r.map_err(|source| StreamsError::Serialization {
                part,
                target: format!("topic `{}`", self.topic),
                source,
            })
        };
        let mut headers = record.headers;
        let k = ser(
            "key",
            self.key
                .serialize_for(&self.topic, &mut headers, &record.key),
        )?;
        let v = ser(
            "value",
            self.value
                .serialize_for(&self.topic, &mut headers, &record.value),
        )?;
        self.inner
            .borrow_mut()
            .pipe(&self.topic, k, v, record.timestamp, headers)
    }

    /// Pipes many key/value pairs with the current timestamp.
    pub fn pipe_key_value_list(&self, records: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        for (k, v) in records {
            self.pipe_input(k, v)?;
        }
        Ok(())
    }

    /// Pipes raw bytes (e.g. undecodable data) as they would arrive from Kafka.
    pub fn pipe_raw(
        &self,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
    ) -> Result<()> {
        self.inner
            .borrow_mut()
            .pipe(&self.topic, key, value, timestamp, Headers::new())
    }

    /// Moves the timestamp used by [`Self::pipe_input`] forward by `ms`.
    pub fn advance_time(&self, ms: i64) {
        *self.next_timestamp.borrow_mut() += ms;
    }
}

/// Reads typed records written to one topic of a [`TopologyTestDriver`], oldest first.
pub struct TestOutputTopic<K, V> {
    inner: Rc<RefCell<DriverInner>>,
    topic: String,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
}

impl<K: Data, V: Data> TestOutputTopic<K, V> {
    /// Removes and returns the oldest unread record.
    pub fn read_record(&self) -> Result<Option<Record<K, V>>> {
        let next = self
            .inner
            .borrow_mut()
            .outputs
            .get_mut(&self.topic)
            .and_then(VecDeque::pop_front);
        let Some(r) = next else { return Ok(None) };
        let topic = &self.topic;
        let de =
            |part: &'static str, source: crate::serdes::SerdeError| StreamsError::Deserialization {
                part,
                topic: topic.clone(),
                partition: 0,
                offset: -1,
                source,
            };
        let key = self
            .key
            .deserialize_from(topic, &r.headers, r.key.as_deref())
            .map_err(|e| de("key", e))?;
        let value = self
            .value
            .deserialize_from(topic, &r.headers, r.value.as_deref())
            .map_err(|e| de("value", e))?;
        Ok(Some(Record {
            key,
            value,
            timestamp: r.timestamp,
            headers: r.headers,
        }))
    }

    /// The oldest unread key/value pair.
    pub fn read_key_value(&self) -> Result<Option<(K, V)>> {
        Ok(self.read_record()?.map(|r| (r.key, r.value)))
    }

    /// The oldest unread value.
    pub fn read_value(&self) -> Result<Option<V>> {
        Ok(self.read_record()?.map(|r| r.value))
    }

    /// Every unread record, oldest first.
    pub fn read_records_to_list(&self) -> Result<Vec<Record<K, V>>> {
        let mut out = Vec::new();
        while let Some(r) = self.read_record()? {
            out.push(r);
        }
        Ok(out)
    }

    /// Every unread value, oldest first.
    pub fn read_values_to_list(&self) -> Result<Vec<V>> {
        Ok(self
            .read_records_to_list()?
            .into_iter()
            .map(|r| r.value)
            .collect())
    }

    /// Every unread key/value pair, oldest first.
    pub fn read_key_values_to_list(&self) -> Result<Vec<(K, V)>> {
        Ok(self
            .read_records_to_list()?
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect())
    }

    /// The latest value per key among the unread records (a table's final state).
    pub fn read_key_values_to_map(&self) -> Result<HashMap<K, V>>
    where
        K: Eq + Hash,
    {
        Ok(self.read_key_values_to_list()?.into_iter().collect())
    }

    /// Number of unread records.
    pub fn queue_size(&self) -> usize {
        self.inner
            .borrow()
            .outputs
            .get(&self.topic)
            .map_or(0, VecDeque::len)
    }

    /// Whether all records were read.
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }
}
