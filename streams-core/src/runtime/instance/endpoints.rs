//! `application.server`: the host:port where each instance answers interactive queries, and the
//! tasks it hosts, so any instance can tell which one holds a key.
//!
//! As in Kafka Streams, the runtime's own membership carries it in the assignment protocol: each
//! member's subscription names its endpoint, and the leader sends every member where every
//! instance's tasks are (`Directory::replace`). librdkafka's membership (KIP-848 groups, TLS or
//! SASL clusters) carries no user data: there each instance publishes `{endpoint, active,
//! standby}` under its process id to the compacted topic `<application.id>-streams-metadata`
//! whenever its tasks change (a tombstone on close), and follows that topic
//! (`EndpointThread`). Either view may name the previous owner for a moment during a
//! rebalance, as Kafka Streams' may.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::{HostInfo, StreamsConfig};
use crate::runtime::assignment::assignment_info::{task_ids, HostTasks};
use crate::runtime::clients::config::{
    client_config, creation_error, unjoined_consumer, ClientKind, TracingContext,
};
use crate::runtime::internal_topics::metadata_topic;
use crate::task::TaskId;
use crate::{Result, StreamsError};

/// How often the instance checks whether its tasks changed.
const PUBLISH_CHECK: Duration = Duration::from_millis(250);
/// An unchanged entry is published again this often, in case a write was lost.
const REPUBLISH: Duration = Duration::from_secs(30);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// One instance of the application, as the metadata topic describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsMetadata {
    /// Its `application.server`.
    pub host_info: HostInfo,
    /// Its process id.
    pub process_id: String,
    /// Tasks it runs.
    pub active_tasks: BTreeSet<TaskId>,
    /// Tasks it keeps standby copies of.
    pub standby_tasks: BTreeSet<TaskId>,
    /// Stores of its active tasks.
    pub state_store_names: BTreeSet<String>,
}

/// Where a key of a store lives (Kafka Streams' `KeyQueryMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    /// The instance running the key's task, if one is known.
    pub active_host: Option<HostInfo>,
    /// Instances with a standby copy of the key's task.
    pub standby_hosts: Vec<HostInfo>,
    /// The key's partition.
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    endpoint: HostInfo,
    active: BTreeSet<String>,
    standby: BTreeSet<String>,
}

/// What this instance knows of all instances (its own included, once published and read back).
#[derive(Debug, Default)]
pub(crate) struct Directory {
    entries: Mutex<BTreeMap<String, Entry>>,
}

fn tasks(ids: &BTreeSet<String>) -> BTreeSet<TaskId> {
    ids.iter().filter_map(|t| t.parse().ok()).collect()
}

impl Directory {
    /// Every known instance; `stores_of` names the stores of a task's sub-topology.
    pub fn all(&self, stores_of: &dyn Fn(TaskId) -> Vec<String>) -> Vec<StreamsMetadata> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .map(|(pid, e)| {
                let active_tasks = tasks(&e.active);
                StreamsMetadata {
                    host_info: e.endpoint.clone(),
                    process_id: pid.clone(),
                    state_store_names: active_tasks.iter().flat_map(|t| stores_of(*t)).collect(),
                    active_tasks,
                    standby_tasks: tasks(&e.standby),
                }
            })
            .collect()
    }

    /// Takes every instance's endpoint and tasks from an assignment (an assignment from a
    /// leader that sent none, of an older version, changes nothing).
    pub fn replace(&self, hosts: &[HostTasks]) {
        if hosts.is_empty() {
            return;
        }
        let names = |pairs: &[(u32, i32)]| task_ids(pairs).map(|t| t.to_string()).collect();
        let fresh: BTreeMap<String, Entry> = hosts
            .iter()
            .filter_map(|h| match HostInfo::parse(&h.endpoint) {
                Ok(endpoint) => Some((
                    h.process_id.clone(),
                    Entry {
                        endpoint,
                        active: names(&h.active),
                        standby: names(&h.standby),
                    },
                )),
                Err(e) => {
                    tracing::debug!(error = %e, "skipping an instance's unreadable endpoint");
                    None
                }
            })
            .collect();
        *self.entries.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// The instances hosting `task`, active and standby.
    pub fn hosts_of(&self, task: TaskId) -> (Option<HostInfo>, Vec<HostInfo>) {
        let id = task.to_string();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let active = entries
            .values()
            .find(|e| e.active.contains(&id))
            .map(|e| e.endpoint.clone());
        let standby = entries
            .values()
            .filter(|e| e.standby.contains(&id))
            .map(|e| e.endpoint.clone())
            .collect();
        (active, standby)
    }
}

/// Publishes this instance's endpoint and tasks, and follows everyone's.
pub(crate) struct EndpointThread {
    pub config: StreamsConfig,
    pub process_id: String,
    pub endpoint: HostInfo,
    /// This instance's (active, standby) tasks now.
    pub current_tasks: Box<dyn Fn() -> (BTreeSet<TaskId>, BTreeSet<TaskId>) + Send>,
    pub directory: Arc<Directory>,
}

impl EndpointThread {
    /// Creates the clients; fails early (in `start()`) on bad client settings.
    pub fn clients(&self) -> Result<(BaseProducer<TracingContext>, BaseConsumer<TracingContext>)> {
        let producer: BaseProducer<TracingContext> = client_config(
            &self.config,
            ClientKind::Producer,
            &[("acks", "all")],
            &[(
                "client.id",
                &format!(
                    "{}-{}-metadata-producer",
                    self.config.application_id, self.process_id
                ),
            )],
        )?
        .create_with_context(TracingContext)
        .map_err(|e| creation_error("metadata producer", e))?;
        let consumer = unjoined_consumer(
            &self.config,
            ClientKind::RestoreConsumer,
            &format!(
                "{}-{}-metadata-consumer",
                self.config.application_id, self.process_id
            ),
            &[],
        )?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &metadata_topic(&self.config.application_id),
            0,
            Offset::Beginning,
        )
        .map_err(|e| StreamsError::kafka("following the metadata topic", e))?;
        consumer
            .assign(&tpl)
            .map_err(|e| StreamsError::kafka("following the metadata topic", e))?;
        Ok((producer, consumer))
    }

    fn publish(&self, producer: &BaseProducer<TracingContext>, entry: Option<&Entry>) {
        let topic = metadata_topic(&self.config.application_id);
        let value = entry.and_then(|e| serde_json::to_vec(e).ok());
        let mut record: BaseRecord<'_, str, [u8]> =
            BaseRecord::to(&topic).key(self.process_id.as_str());
        if let Some(v) = &value {
            record = record.payload(v.as_slice());
        }
        if let Err((e, _)) = producer.send(record) {
            tracing::warn!(error = %e, "publishing this instance's metadata failed");
        }
        if let Err(e) = producer.flush(FLUSH_TIMEOUT) {
            tracing::warn!(error = %e, "publishing this instance's metadata failed");
        }
    }

    fn follow(&self, consumer: &BaseConsumer<TracingContext>, wait: Duration) {
        let deadline = Instant::now() + wait;
        while let Some(m) = consumer.poll(deadline.saturating_duration_since(Instant::now())) {
            let Ok(m) = m else { continue };
            let Some(key) = m.key().map(|k| String::from_utf8_lossy(k).into_owned()) else {
                continue;
            };
            let mut entries = self
                .directory
                .entries
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match m.payload().map(serde_json::from_slice::<Entry>) {
                None => {
                    entries.remove(&key);
                }
                Some(Ok(e)) => {
                    entries.insert(key, e);
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "skipping an unreadable metadata record")
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
    }

    /// Runs until `shutdown`; withdraws this instance's entry on the way out.
    pub fn run(
        self,
        producer: BaseProducer<TracingContext>,
        consumer: BaseConsumer<TracingContext>,
        shutdown: Arc<AtomicBool>,
    ) {
        let mut published: Option<Entry> = None;
        let mut last_publish = Instant::now();
        while !shutdown.load(Ordering::SeqCst) {
            let (active, standby) = (self.current_tasks)();
            let entry = Entry {
                endpoint: self.endpoint.clone(),
                active: active.iter().map(TaskId::to_string).collect(),
                standby: standby.iter().map(TaskId::to_string).collect(),
            };
            if published.as_ref() != Some(&entry) || last_publish.elapsed() >= REPUBLISH {
                self.publish(&producer, Some(&entry));
                published = Some(entry);
                last_publish = Instant::now();
            }
            self.follow(&consumer, PUBLISH_CHECK);
        }
        self.publish(&producer, None);
    }
}

/// Kafka's default partitioner for a key: murmur2 of its bytes, made positive, modulo the
/// partition count. Stores are partitioned like their input, which producers (ours included)
/// partition this way.
pub(crate) fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions.max(1) as u32) as i32
}

/// The 32-bit murmur2 hash with Kafka's seed, as its `Utils.murmur2`.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values of Kafka's own partitioner test (`UtilsTest.testMurmur2`).
        let cases: [(&[u8], i32); 3] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
        ];
        for (k, want) in cases {
            assert_eq!(murmur2(k) as i32, want, "{}", String::from_utf8_lossy(k));
        }
        assert_eq!(partition_for_key(b"foobar", 1), 0);
    }

    #[test]
    fn host_info_parses_and_rejects_with_a_fix() {
        assert_eq!(
            HostInfo::parse("app-1:7070").ok(),
            Some(HostInfo {
                host: "app-1".into(),
                port: 7070
            })
        );
        for bad in ["app-1", ":80", "h:port", "h:70000"] {
            let e = HostInfo::parse(bad).err().map(|e| e.to_string());
            assert!(e.is_some_and(|e| e.contains("host:port")), "{bad}");
        }
    }

    #[test]
    fn an_assignment_replaces_the_directory() {
        let d = Directory::default();
        let host = |process: &str, endpoint: &str, active: &[(u32, i32)]| HostTasks {
            process_id: process.into(),
            endpoint: endpoint.into(),
            active: active.to_vec(),
            standby: vec![(0, 9)],
        };
        d.replace(&[host("a", "h:1", &[(0, 0)]), host("b", "h:2", &[(0, 1)])]);
        let t = |p| TaskId {
            subtopology: 0,
            partition: p,
        };
        let h = |port| HostInfo {
            host: "h".into(),
            port,
        };
        assert_eq!(d.hosts_of(t(1)), (Some(h(2)), vec![]));
        assert_eq!(d.hosts_of(t(9)), (None, vec![h(1), h(2)]));
        // The next generation: b is gone, a took its task; an unreadable endpoint is skipped.
        d.replace(&[
            host("a", "h:1", &[(0, 0), (0, 1)]),
            host("c", "no-port", &[]),
        ]);
        assert_eq!(d.hosts_of(t(1)), (Some(h(1)), vec![]));
        assert_eq!(d.all(&|_| Vec::new()).len(), 1);
        // A leader of an older version sends no hosts: the directory stays.
        d.replace(&[]);
        assert_eq!(d.all(&|_| Vec::new()).len(), 1);
    }

    #[test]
    fn directory_finds_active_and_standby_hosts() {
        let d = Directory::default();
        let h = |p| HostInfo {
            host: "h".into(),
            port: p,
        };
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        d.entries.lock().unwrap_or_else(|p| p.into_inner()).extend([
            (
                "a".to_string(),
                Entry {
                    endpoint: h(1),
                    active: set(&["0_0", "1_0"]),
                    standby: set(&["1_1"]),
                },
            ),
            (
                "b".to_string(),
                Entry {
                    endpoint: h(2),
                    active: set(&["0_1", "1_1"]),
                    standby: set(&["1_0"]),
                },
            ),
        ]);
        let t = |s, p| TaskId {
            subtopology: s,
            partition: p,
        };
        assert_eq!(d.hosts_of(t(1, 0)), (Some(h(1)), vec![h(2)]));
        assert_eq!(d.hosts_of(t(1, 1)), (Some(h(2)), vec![h(1)]));
        assert_eq!(d.hosts_of(t(1, 2)), (None, vec![]));
        let all = d.all(&|t| {
            if t.subtopology == 1 {
                vec!["counts".into()]
            } else {
                vec![]
            }
        });
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].state_store_names,
            BTreeSet::from(["counts".to_string()])
        );
    }
}
