//! [`KafkaStreams`]: runs a [`Topology`] against a Kafka cluster with `num.stream.threads` threads.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use state_stores::RocksDbResources;

use crate::config::StreamsConfig;
use crate::global::GlobalStores;
use crate::iq::Reopen;
use crate::query;
use crate::record::Data;
use crate::runtime::assignment::instance_assignment::InstanceAssignment;
use crate::runtime::commit::producer::KafkaProducers;
use crate::runtime::env::ThreadEnv;
use crate::runtime::instance::endpoints::{
    partition_for_key, EndpointThread, KeyQueryMetadata, StreamsMetadata,
};
use crate::runtime::instance::process_identity::{self, ProcessIdentity};
use crate::runtime::internal_topics::{prepare_topics, TopicLayout};
use crate::runtime::metrics::server::MetricsServer;
use crate::runtime::metrics::RuntimeCounters;
use crate::runtime::metrics::{MetricsHandle, StreamsMetrics};
use crate::runtime::restore::standby::{self, run_standby_thread, SharedStandbys, StandbyTasks};
use crate::runtime::state::{StandbyUpdateListener, State, StateListener, StateRestoreListener};
use crate::runtime::thread::close_options::{CloseOptions, GroupMembershipOperation};
use crate::runtime::thread::global_thread::GlobalStreamThread;
use crate::runtime::thread::membership::own_membership;
use crate::runtime::thread::pool::ThreadPool;
use crate::runtime::thread::supervisor::{
    StreamThreadExceptionResponse, Supervisor, UncaughtExceptionHandler,
};
use crate::topology::Topology;
use crate::{Result, StreamsError};

/// A streams application instance: the Kafka Streams `KafkaStreams` object.
///
/// ```no_run
/// use std::time::Duration;
/// use streams_core::{KafkaStreams, StreamsConfig, Topology};
/// # fn topology() -> Topology { Topology::new() }
/// let config = StreamsConfig::from_pairs([
///     ("application.id", "word-count"),
///     ("bootstrap.servers", "localhost:9092"),
///     ("processing.guarantee", "exactly_once_v2"),
/// ])?;
/// let mut streams = KafkaStreams::new(topology(), config)?;
/// streams.start()?;
/// // ... until shutdown is wanted:
/// streams.close(Duration::from_secs(30));
/// # Ok::<(), streams_core::StreamsError>(())
/// ```
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: StreamsConfig,
    supervisor: Arc<Supervisor>,
    /// The stream threads, once started.
    pool: Option<Arc<ThreadPool>>,
    global_thread: Option<JoinHandle<()>>,
    globals: Option<GlobalStores>,
    restore_listener: Option<Arc<dyn StateRestoreListener>>,
    standby_listener: Option<Arc<dyn StandbyUpdateListener>>,
    counters: Arc<RuntimeCounters>,
    process_id: uuid::Uuid,
    /// The lock on the application's state directory and the process id kept there, once started.
    identity: Option<ProcessIdentity>,
    layout: Option<TopicLayout>,
    metrics: Arc<StreamsMetrics>,
    metrics_server: Option<MetricsServer>,
    standbys: SharedStandbys,
    standby_thread: Option<JoinHandle<()>>,
    /// The instance's share of the group's assignments (standbys, endpoints).
    assignment: Arc<InstanceAssignment>,
    endpoint_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for KafkaStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStreams")
            .field("application_id", &self.config.application_id)
            .field("process_id", &self.process_id)
            .field("state", &self.state())
            .finish()
    }
}

impl KafkaStreams {
    /// Validates the topology and config; nothing connects to Kafka until [`KafkaStreams::start`].
    pub fn new(mut topology: Topology, config: StreamsConfig) -> Result<Self> {
        topology.validate()?;
        topology.optimize(&config)?;
        if config.bootstrap_servers.is_none() {
            return Err(StreamsError::Config(
                "`bootstrap.servers` is not set; give the host:port list of the Kafka cluster"
                    .into(),
            ));
        }
        let metrics = Arc::new(StreamsMetrics::new(config.metrics_recording_level)?);
        Ok(KafkaStreams {
            topology: Arc::new(topology),
            metrics,
            metrics_server: None,
            standbys: SharedStandbys::default(),
            standby_thread: None,
            assignment: Arc::default(),
            endpoint_thread: None,
            config,
            supervisor: Arc::new(Supervisor::new()),
            pool: None,
            global_thread: None,
            globals: None,
            restore_listener: None,
            standby_listener: None,
            counters: Arc::new(RuntimeCounters::default()),
            process_id: uuid::Uuid::new_v4(),
            identity: None,
            layout: None,
        })
    }

    /// Calls `listener(new, old)` on every state change. Set it before `start`.
    pub fn set_state_listener(&mut self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        let l: StateListener = Arc::new(listener);
        self.supervisor.machine.set_listener(l);
    }

    /// Observes restoration progress. Set it before `start`.
    pub fn set_restore_listener(&mut self, listener: Arc<dyn StateRestoreListener>) {
        self.restore_listener = Some(listener);
    }

    /// Observes the standby copies (`num.standby.replicas`) following their changelogs (Kafka
    /// Streams' `setStandbyUpdateListener`). Set before [`KafkaStreams::start`].
    pub fn set_standby_update_listener(&mut self, listener: Arc<dyn StandbyUpdateListener>) {
        self.standby_listener = Some(listener);
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.supervisor.machine.get()
    }

    /// The error that stopped the instance, if it is in [`State::Error`] or [`State::PendingError`].
    pub fn last_error(&self) -> Option<Arc<StreamsError>> {
        self.supervisor.error()
    }

    /// Runtime counters (records processed, commits, open transactional producers...).
    pub fn counters(&self) -> &RuntimeCounters {
        &self.counters
    }

    /// The instance's metrics, a Prometheus collector: register it in your own registry
    /// (`registry.register(Box::new(streams.metrics()))`), or set `metrics.http.address` to have
    /// the instance serve `/metrics` itself.
    pub fn metrics(&self) -> MetricsHandle {
        MetricsHandle(self.metrics.clone())
    }

    /// The tasks this instance's stream threads run as active tasks now.
    pub fn active_tasks(&self) -> Vec<crate::TaskId> {
        let mut tasks: Vec<crate::TaskId> = self
            .pool
            .as_ref()
            .map(|p| {
                p.task_managers()
                    .iter()
                    .flat_map(|tm| tm.lock().unwrap_or_else(|p| p.into_inner()).task_ids())
                    .collect()
            })
            .unwrap_or_default();
        tasks.sort_unstable();
        tasks
    }

    /// Each live stream thread with its active tasks (Kafka Streams' `metadataForLocalThreads`).
    /// An instance can be [`State::Running`] while a cooperative rebalance still holds tasks
    /// back from a thread that just joined; this shows where every task is.
    pub fn metadata_for_local_threads(&self) -> Vec<crate::runtime::ThreadMetadata> {
        self.pool
            .as_ref()
            .map(|p| p.live_task_managers())
            .unwrap_or_default()
            .into_iter()
            .map(|(thread_name, tm)| {
                let mut active_tasks = tm.lock().unwrap_or_else(|p| p.into_inner()).task_ids();
                active_tasks.sort_unstable();
                crate::runtime::ThreadMetadata {
                    thread_name,
                    active_tasks,
                }
            })
            .collect()
    }

    /// The tasks this instance keeps standby copies of: its standby replicas
    /// (`num.standby.replicas`) and warm-up replicas (`max.warmup.replicas`).
    pub fn standby_tasks(&self) -> Vec<crate::TaskId> {
        standby::lock(&self.standbys)
            .as_ref()
            .map(|s| s.task_ids().into_iter().collect())
            .unwrap_or_default()
    }

    /// Where `/metrics` is served (`metrics.http.address`, with the port bound), once started.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics_server.as_ref().map(MetricsServer::address)
    }

    /// This instance's process id, part of its transactional ids under exactly_once_v2. From
    /// [`KafkaStreams::start`] on it is the one kept in the application's state directory, the
    /// same across restarts.
    pub fn process_id(&self) -> uuid::Uuid {
        self.process_id
    }

    /// Creates missing internal topics, then starts the stream threads. Returns once the threads
    /// run; the instance is [`State::Rebalancing`] until they have their tasks restored.
    pub fn start(&mut self) -> Result<()> {
        if self.state() != State::Created {
            return Err(StreamsError::IllegalState(format!(
                "start() called in state {}; an instance starts once",
                self.state()
            )));
        }
        if let Some(address) = &self.config.metrics_http_address {
            self.metrics_server = Some(MetricsServer::start(address, self.metrics.clone())?);
        }
        let layout = prepare_topics(&self.topology, &self.config)?;
        let identity = process_identity::claim(&self.config.app_state_dir())?;
        self.process_id = identity.id;
        self.identity = Some(identity);
        self.layout = Some(layout.clone());
        let resources = RocksDbResources::new(self.config.rocksdb_memory_bytes as usize);
        let globals = GlobalStores::open(
            &self.topology,
            &self.config.app_state_dir().join("global"),
            &resources,
        )?;
        self.supervisor.machine.transition(State::Rebalancing);
        if !globals.is_empty() {
            let mut global = GlobalStreamThread::new(
                &self.topology,
                &self.config,
                &globals,
                &resources,
                self.counters.clone(),
            )?;
            // Like Kafka Streams, start() returns once the global stores hold their topics.
            global.bootstrap(&self.supervisor.shutdown)?;
            let (shutdown, supervisor) =
                (self.supervisor.shutdown.clone(), self.supervisor.clone());
            let name = format!("{}-GlobalStreamThread", self.config.application_id);
            self.global_thread = Some(
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || global.run(shutdown, |e| supervisor.thread_failed(0, e)))
                    .map_err(|e| StreamsError::Io {
                        path: name.into(),
                        source: e,
                    })?,
            );
        }
        self.globals = Some(globals.clone());
        let env = Arc::new(ThreadEnv {
            topology: self.topology.clone(),
            config: self.config.clone(),
            layout,
            resources,
            process_id: self.process_id,
            counters: self.counters.clone(),
            globals,
            metrics: self.metrics.clone(),
            producers: Arc::new(KafkaProducers),
            standbys: self.standbys.clone(),
            assignment: self.assignment.clone(),
            own_membership: own_membership(&self.config),
            commit_turns: Default::default(),
        });
        let own_membership = env.own_membership.is_some();
        // Standbys, and with the runtime's own membership warm-up replicas of stateful tasks,
        // are kept by the standby thread.
        let stateful = self
            .topology
            .subtopologies()
            .iter()
            .any(|s| !s.stores.is_empty());
        if self.config.num_standby_replicas > 0 || (own_membership && stateful) {
            *standby::lock(&self.standbys) = Some(StandbyTasks::new(
                env.clone(),
                self.standby_listener.clone(),
            )?);
            let (env2, standbys, shutdown, supervisor) = (
                env.clone(),
                self.standbys.clone(),
                self.supervisor.shutdown.clone(),
                self.supervisor.clone(),
            );
            let name = format!("{}-StandbyThread", self.config.application_id);
            let paused = move || supervisor.paused.load(Ordering::SeqCst);
            self.standby_thread = Some(
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || run_standby_thread(env2, standbys, shutdown, paused))
                    .map_err(|e| StreamsError::Io {
                        path: name.into(),
                        source: e,
                    })?,
            );
        }
        let pool = ThreadPool::new(
            env.clone(),
            self.supervisor.clone(),
            self.restore_listener.clone(),
        );
        self.pool = Some(pool.clone());
        for _ in 0..self.config.num_stream_threads {
            pool.spawn()?;
        }
        // The runtime's own membership carries endpoints in the assignments.
        if let Some(endpoint) = self
            .config
            .application_server
            .clone()
            .filter(|_| !own_membership)
        {
            let (managers, standbys) = (pool.clone(), self.standbys.clone());
            let publisher = EndpointThread {
                config: self.config.clone(),
                process_id: self.process_id.to_string(),
                endpoint,
                current_tasks: Box::new(move || {
                    let active = managers
                        .task_managers()
                        .iter()
                        .flat_map(|tm| tm.lock().unwrap_or_else(|p| p.into_inner()).task_ids())
                        .collect();
                    let standby = standby::lock(&standbys)
                        .as_ref()
                        .map(|s| s.task_ids())
                        .unwrap_or_default();
                    (active, standby)
                }),
                directory: self.assignment.directory.clone(),
            };
            let (producer, consumer) = publisher.clients()?;
            let shutdown = self.supervisor.shutdown.clone();
            let name = format!("{}-MetadataThread", self.config.application_id);
            self.endpoint_thread = Some(
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || publisher.run(producer, consumer, shutdown))
                    .map_err(|e| StreamsError::Io {
                        path: name.into(),
                        source: e,
                    })?,
            );
        }
        Ok(())
    }

    /// The sub-topology holding the (non-global) store `store`.
    fn subtopology_of_store(&self, store: &str) -> Option<u32> {
        self.topology
            .node_groups()
            .iter()
            .position(|g| {
                g.iter()
                    .any(|&n| self.topology.nodes[n].stores.iter().any(|s| s == store))
            })
            .map(|i| i as u32)
    }

    fn stores_of(&self, task: crate::TaskId) -> Vec<String> {
        let groups = self.topology.node_groups();
        let mut out: Vec<String> = groups
            .get(task.subtopology as usize)
            .map(|g| {
                g.iter()
                    .flat_map(|&n| self.topology.nodes[n].stores.iter().cloned())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out.dedup();
        out
    }

    fn require_application_server(&self) -> Result<()> {
        if self.config.application_server.is_none() {
            return Err(StreamsError::Config(
                "instance metadata needs `application.server` (this instance's host:port for queries) on every instance".into(),
            ));
        }
        Ok(())
    }

    /// Every instance of the application with its endpoint, tasks and stores (Kafka Streams'
    /// `metadataForAllStreamsClients`). Needs `application.server`; eventually consistent.
    pub fn metadata_for_all_clients(&self) -> Result<Vec<StreamsMetadata>> {
        self.require_application_server()?;
        Ok(self.assignment.directory.all(&|t| self.stores_of(t)))
    }

    /// The instances hosting store `store`, in an active or a standby task (Kafka Streams'
    /// `streamsMetadataForStore`); every instance for a global store. Needs
    /// `application.server`; eventually consistent.
    pub fn streams_metadata_for_store(&self, store: &str) -> Result<Vec<StreamsMetadata>> {
        let global = self
            .topology
            .global_stores()
            .iter()
            .any(|s| s.name() == store);
        if !global && !self.topology.stores().iter().any(|s| s.name() == store) {
            return Err(StreamsError::IllegalState(format!(
                "no store named `{store}` in the topology"
            )));
        }
        Ok(self
            .metadata_for_all_clients()?
            .into_iter()
            .filter(|m| {
                global
                    || m.state_store_names.contains(store)
                    || m.standby_tasks
                        .iter()
                        .any(|t| self.stores_of(*t).iter().any(|s| s == store))
            })
            .collect())
    }

    /// Which instance hosts `key` of store `store` (Kafka Streams' `queryMetadataForKey`): the
    /// key's partition, the instance running that task, and those with standby copies. Needs
    /// `application.server`; `active_host` is `None` while no instance has announced the task.
    pub fn query_metadata_for_key<K: Data, V: Data>(
        &self,
        store: &str,
        key: &K,
    ) -> Result<KeyQueryMetadata> {
        self.require_application_server()?;
        let builder = self
            .topology
            .stores()
            .iter()
            .find(|b| b.name() == store)
            .ok_or_else(|| {
                StreamsError::IllegalState(format!(
                    "no local (non-global) store named `{store}` in the topology"
                ))
            })?;
        let serdes = builder
            .serdes
            .downcast_ref::<crate::store::StoreSerdes<K, V>>()
            .ok_or_else(|| {
                StreamsError::IllegalState(format!(
                    "store `{store}` holds ({}, {}); ask with those types",
                    builder.types.0, builder.types.1
                ))
            })?;
        let bytes = serdes
            .key
            .serialize(key)
            .map_err(|source| StreamsError::Serialization {
                part: "key",
                target: format!("store `{store}`"),
                source,
            })?
            .unwrap_or_default();
        let sub = self.subtopology_of_store(store).ok_or_else(|| {
            StreamsError::IllegalState(format!("store `{store}` is not connected to a processor"))
        })?;
        let partitions = self
            .layout
            .as_ref()
            .and_then(|l| l.tasks_per_subtopology.get(&sub).copied())
            .ok_or_else(|| StreamsError::IllegalState("the instance is not started".into()))?;
        let partition = partition_for_key(&bytes, partitions);
        let (active_host, standby_hosts) = self.assignment.directory.hosts_of(crate::TaskId {
            subtopology: sub,
            partition,
        });
        Ok(KeyQueryMetadata {
            active_host,
            standby_hosts,
            partition,
        })
    }

    /// Runs `f` on every local copy of store `name`: the global store, or the store of each running
    /// task hosting it. Fails for a store the topology does not have.
    fn with_local_stores(
        &self,
        name: &str,
        f: &mut dyn FnMut(&mut crate::task::StoreSlot) -> Result<()>,
    ) -> Result<()> {
        if let Some(g) = &self.globals {
            if let Some((b, h)) = g.handles(false).into_iter().find(|(b, _)| b.name() == name) {
                return f(&mut crate::task::global_slot(&b, h));
            }
        }
        if !self.topology.stores().iter().any(|s| s.name() == name)
            && !self
                .topology
                .global_stores()
                .iter()
                .any(|s| s.name() == name)
        {
            return Err(unknown_store(name));
        }
        self.for_each_task_manager(name, &mut |tm| tm.with_stores(name, f).map(|_| ()))
    }

    /// Runs `f` on the task manager of every stream thread, locked in turn. A thread that
    /// panicked while holding its tasks may have left a write to store `store` half applied:
    /// that fails the query rather than answering from such state.
    fn for_each_task_manager(
        &self,
        store: &str,
        f: &mut dyn FnMut(&mut crate::runtime::tasks::task_manager::TaskManager) -> Result<()>,
    ) -> Result<()> {
        each_task_manager(self.pool.as_ref(), store, f)
    }

    /// Interactive query v2 (Kafka Streams' `query(StateQueryRequest)`): runs the request's
    /// query on every local copy of its store (active, and standby unless the request requires
    /// active copies), per partition; a global store answers once. See [`crate::iq`].
    pub fn query<Q: crate::iq::StateQuery>(
        &self,
        request: crate::iq::StateQueryRequest<Q>,
    ) -> Result<crate::iq::StateQueryResult<Q::Output>> {
        let name = request.store().to_string();
        let answers = crate::iq::Answers::new(&request);
        if let Some(g) = &self.globals {
            if let Some((b, h)) = g.handles(false).into_iter().find(|(b, _)| b.name() == name) {
                let reopen = reopen_global(g.clone(), name.clone());
                return Ok(answers.global(&mut crate::task::global_slot(&b, h), reopen));
            }
        }
        if !self.topology.stores().iter().any(|s| s.name() == name) {
            return Err(unknown_store(&name));
        }
        let mut answers = answers;
        self.for_each_task_manager(&name, &mut |tm| {
            tm.with_positioned_stores(&name, &mut |partition, position, slot| {
                answers.answer(crate::iq::LocalCopy {
                    partition,
                    active: true,
                    position,
                    slot,
                    reopen: reopen_active(self.pool.clone(), name.clone(), partition),
                })
            })
        })?;
        if let Some(copies) = standby::lock(&self.standbys).as_mut() {
            copies.with_positioned_stores(&name, &mut |partition, position, slot| {
                answers.answer(crate::iq::LocalCopy {
                    partition,
                    active: false,
                    position,
                    slot,
                    reopen: reopen_standby(self.standbys.clone(), name.clone(), partition),
                })
            })?;
        }
        Ok(answers.finish())
    }

    /// How far every local copy of every store is behind its changelog, per store and
    /// partition (Kafka Streams' `allLocalStorePartitionLags`): running active tasks are caught
    /// up, restoring ones report what they still have to apply, standby copies their distance
    /// to the changelog's end (looked up now, one request per changelog partition).
    pub fn all_local_store_partition_lags(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<i32, crate::iq::LagInfo>>> {
        let managers = self
            .pool
            .as_ref()
            .map(|p| p.task_managers())
            .unwrap_or_default();
        let mut active = Vec::new();
        for tm in &managers {
            let tm = tm.lock().map_err(|_| {
                StreamsError::IllegalState(
                    "store lags are not read: a stream thread panicked while processing".into(),
                )
            })?;
            active.extend(tm.changelog_lags());
        }
        let standby = standby::lock(&self.standbys)
            .as_ref()
            .map(|s| s.changelog_positions())
            .unwrap_or_default();
        if active.is_empty() && standby.is_empty() {
            return Ok(BTreeMap::new());
        }
        let client_id = format!("{}-{}-lags", self.config.application_id, self.process_id);
        let consumer = crate::runtime::clients::config::unjoined_consumer(
            &self.config,
            crate::runtime::clients::config::ClientKind::RestoreConsumer,
            &client_id,
            &[],
        )?;
        let end = |topic: &str, p: i32| -> Result<i64> {
            use rdkafka::consumer::Consumer;
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .map(|(_, high)| high)
                .map_err(|e| StreamsError::kafka(format!("reading the end of `{topic}`-{p}"), e))
        };
        let mut out: BTreeMap<String, BTreeMap<i32, crate::iq::LagInfo>> = BTreeMap::new();
        for (store, topic, p, lag) in active {
            let e = end(&topic, p)?;
            let info = match lag {
                None => crate::iq::LagInfo::new(e, e),
                Some(remaining) => crate::iq::LagInfo::new(e - remaining, e),
            };
            out.entry(store).or_default().insert(p, info);
        }
        for (store, topic, p, position) in standby {
            let e = end(&topic, p)?;
            out.entry(store)
                .or_default()
                .entry(p)
                .or_insert(crate::iq::LagInfo::new(position, e));
        }
        Ok(out)
    }

    /// Interactive query: the value of `key` in the key-value store `store`, if a task of this
    /// instance (or the global store) holds it. Keys of other instances' partitions are `None`.
    pub fn query_key_value<K: Data, V: Data>(&self, store: &str, key: &K) -> Result<Option<V>> {
        let mut found = None;
        self.with_local_stores(store, &mut |slot| {
            if found.is_none() {
                found = query::kv_get::<K, V>(slot, key)?.map(|v| v.value);
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Interactive query: the local entries of `store` with `from <= key <= to` (`None` = open),
    /// in serialized-key order per partition.
    pub fn query_key_value_range<K: Data, V: Data>(
        &self,
        store: &str,
        from: Option<&K>,
        to: Option<&K>,
    ) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        self.with_local_stores(store, &mut |slot| {
            out.extend(query::kv_range::<K, V>(slot, from, to)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Interactive query: the values of `key` in the local window store `store` in windows
    /// starting in `[from, to]`, as (window start, value).
    pub fn query_window<K: Data, V: Data>(
        &self,
        store: &str,
        key: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, V)>> {
        let mut out = Vec::new();
        self.with_local_stores(store, &mut |slot| {
            out.extend(
                query::window_fetch::<K, V>(slot, Some(key), from, to)?
                    .into_iter()
                    .map(|(_, s, v)| (s, v.value)),
            );
            Ok(())
        })?;
        out.sort_by_key(|(s, _)| *s);
        Ok(out)
    }

    /// Waits until the state satisfies `pred` or `timeout` passes; returns the state reached.
    pub fn wait_for_state(&self, timeout: Duration, pred: impl Fn(State) -> bool) -> State {
        self.supervisor.machine.wait_for(timeout, pred)
    }

    /// Waits until [`State::Running`]; fails if the instance stopped or the time ran out.
    pub fn wait_until_running(&self, timeout: Duration) -> Result<()> {
        let s = self.wait_for_state(timeout, |s| {
            matches!(
                s,
                State::Running | State::Error | State::NotRunning | State::PendingError
            )
        });
        match s {
            State::Running => Ok(()),
            State::Error | State::PendingError => Err(StreamsError::IllegalState(format!(
                "the application failed: {}",
                self.last_error()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "unknown error".into())
            ))),
            s => Err(StreamsError::IllegalState(format!(
                "not running after {timeout:?} (state {s})"
            ))),
        }
    }

    /// Decides what a stream thread failure leads to (Kafka Streams'
    /// `setUncaughtExceptionHandler`): replace the thread, stop this instance (the default), or
    /// stop the application (which, without Kafka Streams' assignor, stops only this instance).
    pub fn set_uncaught_exception_handler(
        &mut self,
        handler: impl Fn(&StreamsError) -> StreamThreadExceptionResponse + Send + Sync + 'static,
    ) {
        let handler: UncaughtExceptionHandler = Arc::new(handler);
        self.supervisor.set_handler(handler);
    }

    /// Starts one more stream thread while the instance runs (Kafka Streams'
    /// `addStreamThread`); returns its name. The group rebalances to give it tasks.
    pub fn add_stream_thread(&mut self) -> Result<String> {
        match (&self.pool, self.state()) {
            (Some(pool), State::Running | State::Rebalancing) => pool.spawn(),
            (_, state) => Err(StreamsError::IllegalState(format!(
                "add_stream_thread() in state {state}: threads are added to a running instance"
            ))),
        }
    }

    /// Stops one stream thread (it commits, closes its tasks and leaves the group), waiting up to
    /// `timeout` for it; returns its name, or `None` when no thread is left (Kafka Streams'
    /// `removeStreamThread`).
    pub fn remove_stream_thread(&mut self, timeout: Duration) -> Result<Option<String>> {
        let Some(pool) = &self.pool else {
            return Ok(None);
        };
        let Some(name) = pool.remove() else {
            return Ok(None);
        };
        let deadline = Instant::now() + timeout;
        while !pool.is_finished(&name) {
            if Instant::now() >= deadline {
                return Err(StreamsError::IllegalState(format!(
                    "{name} did not stop within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        pool.join_finished();
        Ok(Some(name))
    }

    /// Names of the stream threads running now.
    pub fn stream_threads(&self) -> Vec<String> {
        self.pool.as_ref().map(|p| p.live()).unwrap_or_default()
    }

    /// Stops processing without leaving the group (Kafka Streams' `pause`): the threads keep
    /// their tasks and membership but process, punctuate and fetch nothing until [`resume`];
    /// standby replicas stop following their changelogs too.
    ///
    /// [`resume`]: KafkaStreams::resume
    pub fn pause(&self) {
        self.supervisor.paused.store(true, Ordering::SeqCst);
    }

    /// Resumes processing after [`KafkaStreams::pause`].
    pub fn resume(&self) {
        self.supervisor.paused.store(false, Ordering::SeqCst);
    }

    /// Whether [`KafkaStreams::pause`] is in effect.
    pub fn is_paused(&self) -> bool {
        self.supervisor.paused.load(Ordering::SeqCst)
    }

    /// Deletes this application's local state directory (Kafka Streams' `cleanUp`), so the next
    /// start restores every store from its changelog. Only before `start` or after `close`.
    pub fn clean_up(&self) -> Result<()> {
        match self.state() {
            State::Created | State::NotRunning | State::Error => {}
            state => {
                return Err(StreamsError::IllegalState(format!(
                    "clean_up() in state {state}: call it before start() or after close()"
                )))
            }
        }
        let dir = self.config.app_state_dir();
        if dir.exists() {
            // Another instance on the same state directory holds its lock: leave it alone.
            let lock = state_stores::TaskDirLock::acquire(&dir)?;
            std::fs::remove_dir_all(&dir).map_err(|source| StreamsError::Io {
                path: dir.clone(),
                source,
            })?;
            drop(lock);
        }
        Ok(())
    }

    /// Every thread the instance started and has not joined yet: stream, global, standby and
    /// metadata threads.
    fn running_threads(&self) -> impl Iterator<Item = &JoinHandle<()>> {
        self.global_thread
            .iter()
            .chain(self.standby_thread.iter())
            .chain(self.endpoint_thread.iter())
    }

    /// Whether every thread has finished.
    fn all_finished(&self) -> bool {
        self.running_threads().all(JoinHandle::is_finished)
            && self.pool.as_ref().is_none_or(|p| p.all_finished())
    }

    /// Stops the threads: each commits, closes its tasks (writing checkpoints) and leaves the
    /// group (static members stay until their session times out). Returns whether all threads
    /// stopped within `timeout`.
    pub fn close(&mut self, timeout: Duration) -> bool {
        self.close_with(CloseOptions::default().timeout(timeout))
    }

    /// [`Self::close`] with Kafka Streams' `CloseOptions`: leave the group (static members
    /// too) or stay in it. Under `group.membership=librdkafka` the consumer decides (dynamic
    /// members leave, static ones stay) and the operation is logged as not applied.
    pub fn close_with(&mut self, options: CloseOptions) -> bool {
        if options.operation != GroupMembershipOperation::Default
            && self.config.group_membership == crate::config::GroupMembership::Librdkafka
        {
            tracing::warn!(operation = ?options.operation, "close: librdkafka's consumer decides whether its member leaves; the operation is not applied");
        }
        self.supervisor.set_close_options(options);
        let timeout = options.timeout;
        let pending = self.supervisor.machine.transition(State::PendingShutdown);
        self.supervisor.shutdown.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && !self.all_finished() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let all_done = self.all_finished();
        if all_done {
            for (what, t) in [
                ("metadata", self.endpoint_thread.take()),
                ("standby", self.standby_thread.take()),
                ("global", self.global_thread.take()),
            ] {
                if t.is_some_and(|t| t.join().is_err()) {
                    tracing::error!("the {what} thread panicked");
                }
            }
            if let Some(g) = self.globals.take() {
                g.close();
            }
            if let Some(pool) = &self.pool {
                pool.join_finished();
            }
            self.metrics_server = None;
            // Every task directory is closed: another instance may take the state directory.
            self.identity = None;
            if pending || self.state() == State::PendingShutdown {
                self.supervisor.machine.transition(State::NotRunning);
            }
            if self.state() == State::PendingError {
                self.supervisor.machine.transition(State::Error);
            }
        }
        all_done
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if self.running_threads().next().is_some() || !self.all_finished() {
            self.close(Duration::from_secs(60));
        }
    }
}

/// The error for a query of a store the topology does not have.
fn unknown_store(name: &str) -> StreamsError {
    StreamsError::IllegalState(format!(
        "no store named `{name}` in the topology (name stores with Materialized::as_ to query them)"
    ))
}

fn moved_away(store: &str, partition: i32) -> StreamsError {
    StreamsError::IllegalState(format!(
        "partition {partition} of store `{store}` is no longer here (its task moved or closed): query it again"
    ))
}

/// Runs `f` on every stream thread's task manager, each locked in turn.
fn each_task_manager(
    pool: Option<&Arc<ThreadPool>>,
    store: &str,
    f: &mut dyn FnMut(&mut crate::runtime::tasks::task_manager::TaskManager) -> Result<()>,
) -> Result<()> {
    let managers = pool.map(|p| p.task_managers()).unwrap_or_default();
    for tm in &managers {
        let mut tm = tm.lock().map_err(|_| {
            StreamsError::IllegalState(format!(
                "store `{store}` is not queried: a stream thread panicked while processing, so its stores may hold half-applied writes"
            ))
        })?;
        f(&mut tm)?;
    }
    Ok(())
}

/// The copies of a store one holder (a task manager, the standby tasks) walks.
type Copies<'a> = &'a mut dyn FnMut(i32, crate::iq::Position, &mut crate::task::StoreSlot);

/// Runs `f` on the copy of `partition` among those `walk` visits: `None` when it has none.
fn on_partition(
    partition: i32,
    f: &mut dyn FnMut(&mut crate::task::StoreSlot) -> Result<()>,
    walk: impl FnOnce(Copies<'_>) -> Result<()>,
) -> Result<Option<Result<()>>> {
    let mut ran = None;
    walk(&mut |p, _, slot| {
        if p == partition && ran.is_none() {
            ran = Some(f(slot));
        }
    })?;
    Ok(ran)
}

/// Finds the active copy of `store`'s `partition` again, on whichever stream thread runs it.
fn reopen_active(pool: Option<Arc<ThreadPool>>, store: String, partition: i32) -> Reopen {
    Arc::new(move |f| {
        let mut ran = None;
        each_task_manager(pool.as_ref(), &store, &mut |tm| {
            if ran.is_none() {
                ran = on_partition(partition, f, |copies| {
                    tm.with_positioned_stores(&store, copies)
                })?;
            }
            Ok(())
        })?;
        ran.unwrap_or_else(|| Err(moved_away(&store, partition)))
    })
}

/// Finds the standby copy of `store`'s `partition` again.
fn reopen_standby(standbys: SharedStandbys, store: String, partition: i32) -> Reopen {
    Arc::new(move |f| {
        let ran = match standby::lock(&standbys).as_mut() {
            Some(held) => on_partition(partition, f, |copies| {
                held.with_positioned_stores(&store, copies)
            })?,
            None => None,
        };
        ran.unwrap_or_else(|| Err(moved_away(&store, partition)))
    })
}

/// Opens the global store `store` again.
fn reopen_global(globals: GlobalStores, store: String) -> Reopen {
    Arc::new(move |f| {
        let (b, h) = globals
            .handles(false)
            .into_iter()
            .find(|(b, _)| b.name() == store)
            .ok_or_else(|| unknown_store(&store))?;
        f(&mut crate::task::global_slot(&b, h))
    })
}
