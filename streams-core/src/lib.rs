//! The core of a Kafka Streams analogue in Rust: the Processor API, [`Topology`], serdes, state
//! store access, configuration, the task runtime and the [`TopologyTestDriver`].
//!
//! The DSL (`streams-dsl`) compiles to a [`Topology`]; this crate never looks at DSL types.
#![forbid(missing_docs)]

mod commit_metadata;
pub mod config;
mod describe;
mod describe_order;
mod error;
mod fixed_key;
mod global;
pub mod iq;
mod processor;
mod query;
mod record;
mod repartition_merge;
pub mod runtime;
pub mod serdes;
pub mod store;
pub mod stores;
mod task;
mod test_driver;
pub mod timestamp;
mod topology;

pub use config::{OnError, ProcessingGuarantee, StreamsConfig};
pub use describe::{
    NodeDescription, NodeKindDescription, SubtopologyDescription, TopologyDescription,
};
pub use error::{KafkaClientError, Result, StreamsError};
pub use fixed_key::{fixed_key_processor, FixedKeyContext, FixedKeyProcessor, FixedKeyRecord};
pub use processor::{Processor, ProcessorContext, PunctuationType, PunctuatorId};
pub use record::{Data, Headers, Record, RecordMetadata};
pub use runtime::{
    KafkaStreams, RuntimeCounters, State, StateRestoreListener, StreamThreadExceptionResponse,
    ThreadMetadata,
};
pub use store::{StoreBuilder, StoreKind, ValueAndTimestamp};
pub use stores::{StoreSupplier, Stores, SupplierShape};
pub use task::TaskId;
pub use test_driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
pub use topology::{PartitionChooser, Subtopology, TopicChooser, Topology};

/// Re-exported so users name store-level types from one place.
pub use state_stores;
