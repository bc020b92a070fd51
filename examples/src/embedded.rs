//! The embedded demo broker: librdkafka's in-process mock cluster.
//!
//! It needs nothing installed, which makes it the default of the examples when no
//! `--bootstrap-servers` is given. It does NOT implement transactions faithfully (read_committed,
//! transactional offset commits and fencing are missing), so exactly-once on it proves nothing: use
//! a real Kafka cluster (the tests run Apache Kafka from Maven Central: `tests/kafka/`) for that.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use streams_core::runtime::internal_topics::plan_layout;
use streams_core::{Result, StreamsError, Topology};

/// An in-process mock Kafka cluster, alive as long as this value.
pub struct EmbeddedCluster {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl std::fmt::Debug for EmbeddedCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedCluster")
            .field("bootstrap", &self.cluster.bootstrap_servers())
            .finish()
    }
}

fn mock_error(what: &str, e: rdkafka::error::KafkaError) -> StreamsError {
    StreamsError::kafka(format!("embedded cluster: {what}"), e)
}

impl EmbeddedCluster {
    /// Starts a one-broker mock cluster and warns, loudly, what it cannot do.
    pub fn start() -> Result<Self> {
        let cluster = MockCluster::new(1).map_err(|e| mock_error("starting", e))?;
        tracing::warn!(
            "USING THE EMBEDDED MOCK KAFKA CLUSTER (no --bootstrap-servers given). It is for demos only: \
             it does not implement transactions, read_committed or fencing, so exactly_once_v2 on it \
             guarantees nothing. Point --bootstrap-servers at a real cluster for anything else."
        );
        Ok(EmbeddedCluster { cluster })
    }

    /// `host:port` of the mock broker.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates a topic (the mock has no admin API for it).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        self.cluster
            .create_topic(name, partitions, 1)
            .map_err(|e| mock_error(&format!("creating topic `{name}`"), e))
    }

    /// Creates the source topics (with `partitions` each) and every internal topic `topology`
    /// needs under `application_id`, since the runtime's admin-client path does not work on the mock.
    pub fn create_topics_for(
        &self,
        topology: &Topology,
        application_id: &str,
        sources: &[&str],
        partitions: i32,
    ) -> Result<()> {
        for s in sources {
            self.create_topic(s, partitions)?;
        }
        let layout = plan_layout(
            topology,
            application_id,
            &|t| sources.contains(&t).then_some(partitions),
            &|_| Vec::new(),
        )?;
        for t in &layout.internal_topics {
            self.create_topic(&t.name, t.partitions)?;
        }
        Ok(())
    }
}
