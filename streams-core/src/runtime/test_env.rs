//! A `ThreadEnv` for unit tests of the runtime: a pass-through topology (`in` -> `out`, two
//! partitions), a state directory of the test's choosing, producers from the test, no broker.

use std::path::Path;
use std::sync::{Arc, Mutex};

use state_stores::RocksDbResources;

use crate::config::{RecordingLevel, StreamsConfig};
use crate::global::GlobalStores;
use crate::runtime::commit::producer::ProducerSupplier;
use crate::runtime::env::ThreadEnv;
use crate::runtime::internal_topics::plan_layout;
use crate::runtime::metrics::{RuntimeCounters, StreamsMetrics};
use crate::runtime::restore::standby::StandbyTasks;
use crate::serdes::Serdes;
use crate::topology::Topology;

/// The application id of [`pass_through_env`].
pub(crate) const APP: &str = "tm-test";

/// An environment whose clients point at a closed port: creating them works, using them fails.
pub(crate) fn pass_through_env(
    guarantee: &str,
    state_dir: &Path,
    producers: Arc<dyn ProducerSupplier>,
    counters: Arc<RuntimeCounters>,
) -> ThreadEnv {
    let mut config = StreamsConfig::new(APP).expect("config");
    config
        .set("bootstrap.servers", "127.0.0.1:9")
        .and_then(|c| c.set("processing.guarantee", guarantee))
        .and_then(|c| c.set("state.dir", &state_dir.display().to_string()))
        .expect("settings");
    let mut topology = Topology::new();
    topology
        .add_source::<String, String>("source", &["in"], Serdes::string(), Serdes::string())
        .and_then(|t| {
            t.add_sink::<String, String>(
                "sink",
                "out",
                Serdes::string(),
                Serdes::string(),
                &["source"],
            )
        })
        .expect("topology");
    let layout = plan_layout(&topology, APP, &|_| Some(2), &|_| Vec::new()).expect("layout");
    ThreadEnv {
        topology: Arc::new(topology),
        config,
        layout,
        resources: RocksDbResources::new(16 << 20),
        process_id: uuid::Uuid::nil(),
        counters,
        globals: GlobalStores::default(),
        metrics: Arc::new(StreamsMetrics::new(RecordingLevel::Info).expect("metrics")),
        producers,
        standbys: Arc::new(Mutex::new(None::<StandbyTasks>)),
        assignment: Arc::default(),
        own_membership: None,
        commit_turns: Default::default(),
    }
}
