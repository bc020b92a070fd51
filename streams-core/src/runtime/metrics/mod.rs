//! Metrics: Kafka Streams' metric groups as Prometheus series (`registry`), the `/metrics`
//! endpoint (`server`) and the instance's plain counters (`RuntimeCounters`). Calls nothing
//! else in the runtime; everything else may record into it.

mod counters;
pub mod registry;
pub(crate) mod server;

pub use counters::RuntimeCounters;
pub use registry::*;
