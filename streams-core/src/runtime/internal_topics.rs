//! Works out the partition count of every topic a topology touches, checks co-partitioning, and
//! creates the internal (changelog and repartition) topics that are missing.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::StreamsConfig;
use crate::runtime::clients::config::{
    client_config, creation_error, ClientKind, ConnectContext, TracingContext,
};
use crate::runtime::thread::membership::own_membership;
use crate::store::{changelog_topic, StoreKind};
use crate::task::runtime_topic;
use crate::topology::Topology;
use crate::{Result, StreamsError};

/// Kafka Streams keeps window changelog records one day past the store retention.
const WINDOW_CHANGELOG_EXTRA_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// An internal topic the topology needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopicSpec {
    /// Full name, with the `<application.id>-` prefix.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
}

/// How the topology maps onto topics at runtime.
#[derive(Debug, Clone, Default)]
pub struct TopicLayout {
    /// Tasks per sub-topology (= the partition count of its source topics).
    pub tasks_per_subtopology: BTreeMap<u32, i32>,
    /// Runtime source topic name -> sub-topology.
    pub source_topics: HashMap<String, u32>,
    /// Regex sources: (pattern, sub-topology).
    pub source_patterns: Vec<(regex::Regex, u32)>,
    /// What the consumers subscribe to (`^...` entries are patterns).
    pub subscription: Vec<String>,
    /// Internal topics, in creation order.
    pub internal_topics: Vec<InternalTopicSpec>,
}

impl TopicLayout {
    /// The sub-topology reading `topic`, if any.
    pub fn subtopology_of(&self, topic: &str) -> Option<u32> {
        self.source_topics.get(topic).copied().or_else(|| {
            self.source_patterns
                .iter()
                .find(|(p, _)| p.is_match(topic))
                .map(|(_, s)| *s)
        })
    }
}

/// Computes the layout from the topology and a lookup of existing topics' partition counts.
///
/// Repartition topics get the partition count of the sub-topologies writing to them; changelogs get
/// the task count of the sub-topology owning the store. Source topics of one sub-topology must be
/// co-partitioned (same count), since task `s_p` reads partition `p` of each.
pub fn plan_layout(
    topology: &Topology,
    application_id: &str,
    partitions_of: &dyn Fn(&str) -> Option<i32>,
    matching: &dyn Fn(&regex::Regex) -> Vec<String>,
) -> Result<TopicLayout> {
    let subs = topology.subtopologies();
    let mut layout = TopicLayout::default();
    let mut internal: BTreeMap<String, Option<i32>> = BTreeMap::new();
    // Topics with a given partition count keep it; the others follow their writers.
    let mut given: std::collections::HashSet<String> = std::collections::HashSet::new();
    for s in &subs {
        for t in s.source_topics.iter().chain(&s.sink_topics) {
            if topology.is_internal_topic(t) {
                let name = runtime_topic(topology, application_id, t);
                let n = topology.internal_topic_partitions(t);
                if n.is_some() {
                    given.insert(name.clone());
                }
                internal.insert(name, n);
            }
        }
    }
    // External source topics must exist; their counts seed the fixpoint below.
    let mut counts: HashMap<u32, i32> = HashMap::new();
    let mut fixed: std::collections::HashSet<u32> = std::collections::HashSet::new();
    for s in &subs {
        let mut external: Vec<(String, i32)> = Vec::new();
        for t in &s.source_topics {
            let name = runtime_topic(topology, application_id, t);
            layout.source_topics.insert(name.clone(), s.id);
            layout.subscription.push(name.clone());
            if topology.is_internal_topic(t) {
                continue;
            }
            let n = partitions_of(&name).ok_or_else(|| {
                StreamsError::Topology(format!(
                    "source topic `{name}` of sub-topology {} does not exist; create it before starting the application",
                    s.id
                ))
            })?;
            external.push((name, n));
        }
        for p in &s.source_patterns {
            let re = regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                StreamsError::Topology(format!("source pattern `{p}` is not a valid regex: {e}"))
            })?;
            for t in matching(&re) {
                if let Some(n) = partitions_of(&t) {
                    external.push((t, n));
                }
            }
            layout.subscription.push(format!("^{p}"));
            layout.source_patterns.push((re, s.id));
        }
        if let Some((first, n)) = external.first() {
            if let Some((other, m)) = external.iter().find(|(_, m)| m != n) {
                return Err(StreamsError::Topology(format!(
                    "sub-topology {} reads topics that are not co-partitioned: `{first}` has {n} partitions but `{other}` has {m}; give them the same partition count (or repartition one side)",
                    s.id
                )));
            }
            counts.insert(s.id, *n);
            fixed.insert(s.id);
        }
    }
    // Fixpoint: a repartition topic has the largest task count among its writers; a sub-topology
    // reading only repartition topics has their count.
    loop {
        let mut changed = false;
        for s in &subs {
            if let Some(&n) = counts.get(&s.id) {
                for t in &s.sink_topics {
                    if topology.is_internal_topic(t) {
                        let name = runtime_topic(topology, application_id, t);
                        if given.contains(&name) {
                            continue;
                        }
                        let e = internal.entry(name).or_insert(None);
                        if e.is_none_or(|c| c < n) {
                            *e = Some(n);
                            changed = true;
                        }
                    }
                }
            }
            let from_internal = s
                .source_topics
                .iter()
                .filter(|t| topology.is_internal_topic(t))
                .filter_map(|t| {
                    internal
                        .get(&runtime_topic(topology, application_id, t))?
                        .as_ref()
                        .copied()
                })
                .max();
            // A sub-topology that also reads external topics has their count; its repartition
            // inputs follow it (co-partitioned), whatever their writers' counts.
            if let Some(n) = from_internal.filter(|_| !fixed.contains(&s.id)) {
                let e = counts.entry(s.id).or_insert(0);
                if *e < n {
                    *e = n;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for s in &subs {
        let n = *counts.get(&s.id).ok_or_else(|| {
            StreamsError::Topology(format!(
                "cannot tell how many tasks sub-topology {} has: none of its source topics exist yet",
                s.id
            ))
        })?;
        layout.tasks_per_subtopology.insert(s.id, n);
        // Source repartition topics follow the sub-topology's count (co-partitioned with its other
        // inputs); one with a given count must agree with them.
        for t in &s.source_topics {
            if topology.is_internal_topic(t) {
                let name = runtime_topic(topology, application_id, t);
                if given.contains(&name) && internal.get(&name) != Some(&Some(n)) {
                    return Err(StreamsError::Topology(format!(
                        "repartition topic `{name}` is given {} partitions but sub-topology {} \
                         reads it with inputs of {n}: give them the same count",
                        internal.get(&name).copied().flatten().unwrap_or(0),
                        s.id
                    )));
                }
                internal.insert(name, Some(n));
            }
        }
    }
    for (name, n) in &internal {
        let partitions = n.ok_or_else(|| {
            StreamsError::Topology(format!("cannot tell the partition count of `{name}`"))
        })?;
        layout.internal_topics.push(InternalTopicSpec {
            name: name.clone(),
            partitions,
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "delete".to_string()),
                ("retention.ms".to_string(), "-1".to_string()),
            ]),
        });
    }
    for s in &subs {
        let n = layout.tasks_per_subtopology[&s.id];
        for store in &s.stores {
            let Some(b) = topology.stores().iter().find(|b| &b.name == store) else {
                continue;
            };
            if !b.logging || b.source_changelog {
                continue;
            }
            let mut configs = BTreeMap::new();
            match b.kind {
                StoreKind::KeyValue | StoreKind::TimestampedKeyValue => {
                    configs.insert("cleanup.policy".into(), "compact".into());
                }
                StoreKind::VersionedKeyValue {
                    history_retention_ms,
                } => {
                    // Compaction keeps older versions for the history retention plus a day, as
                    // Kafka Streams configures versioned changelogs.
                    configs.insert("cleanup.policy".into(), "compact".into());
                    configs.insert(
                        "min.compaction.lag.ms".into(),
                        history_retention_ms
                            .saturating_add(WINDOW_CHANGELOG_EXTRA_RETENTION_MS)
                            .to_string(),
                    );
                }
                StoreKind::Window { retention_ms, .. } | StoreKind::Session { retention_ms } => {
                    configs.insert("cleanup.policy".into(), "compact,delete".into());
                    configs.insert(
                        "retention.ms".into(),
                        retention_ms
                            .saturating_add(WINDOW_CHANGELOG_EXTRA_RETENTION_MS)
                            .to_string(),
                    );
                }
            }
            // The store's own changelog configs, but its cleanup policy.
            for (k, v) in &b.changelog_configs {
                if k != "cleanup.policy" {
                    configs.insert(k.clone(), v.clone());
                }
            }
            layout.internal_topics.push(InternalTopicSpec {
                name: changelog_topic(application_id, store),
                partitions: n,
                configs,
            });
        }
    }
    Ok(layout)
}

fn metadata(client: &BaseConsumer<ConnectContext>) -> Result<Metadata> {
    client
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| StreamsError::kafka("fetching cluster metadata", e))
}

/// The first contact with the cluster: like [`metadata`], but a refused login or an untrusted
/// certificate fails at once with its cause rather than after the whole timeout.
fn first_metadata(client: &BaseConsumer<ConnectContext>, bootstrap: &str) -> Result<Metadata> {
    let deadline = Instant::now() + METADATA_TIMEOUT;
    loop {
        let attempt = client.fetch_metadata(None, Duration::from_millis(500));
        // Error events reach the context only when the client's queue is served.
        let _ = client.poll(Duration::ZERO);
        if let Some(f) = client.context().failure() {
            return Err(f.into_error(bootstrap));
        }
        match attempt {
            Ok(md) => return Ok(md),
            Err(e) if Instant::now() >= deadline => {
                return Err(StreamsError::kafka(
                    format!(
                        "fetching cluster metadata from `{bootstrap}` for {METADATA_TIMEOUT:?}"
                    ),
                    e,
                ))
            }
            Err(_) => {}
        }
    }
}

fn partition_counts(md: &Metadata) -> HashMap<String, i32> {
    md.topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect()
}

/// Plans the layout against the live cluster, creates missing internal topics and checks existing ones.
pub fn prepare_topics(topology: &Topology, config: &StreamsConfig) -> Result<TopicLayout> {
    let md_client: BaseConsumer<ConnectContext> =
        client_config(config, ClientKind::Admin, &[], &[])?
            .create_with_context(ConnectContext::default())
            .map_err(|e| creation_error("metadata client", e))?;
    let bootstrap = config.bootstrap_servers.as_deref().unwrap_or_default();
    let counts = partition_counts(&first_metadata(&md_client, bootstrap)?);
    let mut layout = plan_layout(
        topology,
        &config.application_id,
        &|t| counts.get(t).copied(),
        &|re| counts.keys().filter(|t| re.is_match(t)).cloned().collect(),
    )?;
    // `topic.*` settings fill in what the layout leaves open (the cleanup policy and retention
    // it sets stay, since stores and repartitions depend on them).
    for spec in &mut layout.internal_topics {
        for (k, v) in &config.topic_configs {
            spec.configs.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if config.application_server.is_some() && own_membership(config).is_none() {
        // Where instances publish their endpoints when the assignments cannot carry them (see
        // `endpoints`).
        layout.internal_topics.push(InternalTopicSpec {
            name: metadata_topic(&config.application_id),
            partitions: 1,
            configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
        });
    }
    let mut missing = Vec::new();
    for spec in &layout.internal_topics {
        match counts.get(&spec.name) {
            Some(&n) if n == spec.partitions => {}
            Some(&n) => {
                return Err(StreamsError::Topology(format!(
                    "internal topic `{}` has {n} partitions but the topology needs {}; delete it (the application reset tool does) and restart",
                    spec.name, spec.partitions
                )))
            }
            None => missing.push(spec),
        }
    }
    if missing.is_empty() {
        return Ok(layout);
    }
    let admin: AdminClient<TracingContext> = client_config(config, ClientKind::Admin, &[], &[])?
        .create_with_context(TracingContext)
        .map_err(|e| creation_error("admin client", e))?;
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|s| {
            let mut t = NewTopic::new(
                &s.name,
                s.partitions,
                TopicReplication::Fixed(config.replication_factor),
            );
            for (k, v) in &s.configs {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = block_on(admin.create_topics(&new_topics, &opts))
        .map_err(|e| StreamsError::kafka("creating internal topics", e))?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, "created internal topic"),
            // Another instance of the application created it first.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(StreamsError::Topology(format!(
                    "cannot create internal topic `{name}`: {code}; check that the principal may create topics prefixed `{}-`",
                    config.application_id
                )))
            }
        }
    }
    // Wait until the new topics show up in metadata with the right count, so the first
    // subscription sees them.
    let deadline = Instant::now() + METADATA_TIMEOUT;
    loop {
        let counts = partition_counts(&metadata(&md_client)?);
        let pending: Vec<&str> = missing
            .iter()
            .filter(|s| counts.get(&s.name) != Some(&s.partitions))
            .map(|s| s.name.as_str())
            .collect();
        if pending.is_empty() {
            return Ok(layout);
        }
        if Instant::now() > deadline {
            return Err(StreamsError::Topology(format!(
                "internal topics {pending:?} were created but do not appear in metadata after {METADATA_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The compacted topic holding every instance's endpoint and tasks.
pub fn metadata_topic(application_id: &str) -> String {
    format!("{application_id}-streams-metadata")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use crate::serdes::StringSerde;
    use crate::StoreBuilder;

    struct Forward;
    impl crate::Processor<String, String> for Forward {
        fn process(
            &mut self,
            ctx: &mut crate::ProcessorContext<'_>,
            r: crate::Record<String, String>,
        ) -> crate::Result<()> {
            ctx.forward(r)
        }
    }

    /// source(a, b) -> sink(rep) | source(rep) -> proc(store) ; internal: rep, store changelog.
    fn two_stage() -> Topology {
        let mut t = Topology::new();
        let s = || Arc::new(StringSerde);
        t.add_source("src", &["a", "b"], s(), s()).unwrap();
        t.add_sink("to-rep", "rep", s(), s(), &["src"]).unwrap();
        t.add_internal_topic("rep");
        t.add_source("rep-src", &["rep"], s(), s()).unwrap();
        t.add_processor("fwd", || Forward, &["rep-src"]).unwrap();
        t.add_state_store(StoreBuilder::key_value("store", s(), s()), &["fwd"])
            .unwrap();
        t
    }

    #[test]
    fn internal_topics_follow_the_writers_partition_count() {
        let t = two_stage();
        let layout = plan_layout(
            &t,
            "app",
            &|n| ["a", "b"].contains(&n).then_some(6),
            &|_| vec![],
        )
        .unwrap();
        assert_eq!(
            layout.tasks_per_subtopology,
            BTreeMap::from([(0, 6), (1, 6)])
        );
        let names: Vec<(&str, i32, &str)> = layout
            .internal_topics
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.partitions,
                    s.configs["cleanup.policy"].as_str(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("app-rep", 6, "delete"),
                ("app-store-changelog", 6, "compact")
            ]
        );
        assert_eq!(layout.subtopology_of("app-rep"), Some(1));
        assert_eq!(layout.subtopology_of("b"), Some(0));
        assert_eq!(layout.subscription, ["a", "b", "app-rep"]);
    }

    #[test]
    fn missing_and_not_copartitioned_sources_are_clear_errors() {
        let t = two_stage();
        let e = plan_layout(&t, "app", &|n| (n == "a").then_some(3), &|_| vec![])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("source topic `b`") && e.contains("does not exist"),
            "{e}"
        );
        let e = plan_layout(
            &t,
            "app",
            &|n| match n {
                "a" => Some(3),
                "b" => Some(4),
                _ => None,
            },
            &|_| vec![],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("not co-partitioned") && e.contains("`a` has 3") && e.contains("`b` has 4"),
            "{e}"
        );
    }
}
