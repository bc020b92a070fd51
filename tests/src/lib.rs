//! Integration tests against a real Kafka-compatible broker and real RocksDB.
//!
//! [`TestBroker`] starts the pinned transactional test broker (crabka-broker 0.3.8, installed by
//! `tests/broker/install.sh`) on a free loopback address with a fresh data directory, or uses the
//! cluster named by `KAFKA_BOOTSTRAP_SERVERS` when that is set. [`kafka`] has the small client
//! helpers the tests share (create topics, produce, read everything back read_committed).
#![forbid(missing_docs)]

pub mod apps;
pub mod broker;
pub mod kafka;
pub mod secured;
pub mod verify_child;
pub mod wordcount;

pub use broker::TestBroker;
