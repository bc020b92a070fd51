//! Integration tests against a real Kafka-compatible broker and real RocksDB.
//!
//! `tests/broker/` carries the pinned install and start recipe of the transactional test broker
//! (crabka-broker 0.3.8, see `tests/broker/install.sh`); the broker harness and the end-to-end
//! tests arrive with the Kafka runtime.
#![forbid(missing_docs)]
