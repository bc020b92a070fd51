//! Integration tests against a real Kafka-compatible broker and real RocksDB.
//!
//! [`broker`] runs Apache Kafka clusters (KRaft, 1 or 3 nodes, the jars `tests/kafka/install.sh`
//! fetches from Maven Central) on loopback ports chosen at run time; [`TestBroker`] is the cluster a
//! test talks to: the one named by `KAFKA_BOOTSTRAP_SERVERS`, the test binary's shared single node,
//! or one of its own. [`kafka`] has the small client
//! helpers the tests share (create topics, produce, read everything back read_committed).
#![forbid(missing_docs)]

pub mod apps;
pub mod assignment_scenario;
pub mod broker;
pub mod kafka;
pub mod scenarios;
pub mod secured;
pub mod verify_child;
pub mod wordcount;

pub use broker::{ClusterOptions, KafkaCluster, TestBroker};
