//! The `KafkaStreams` instance: what it starts and stops around its threads.
//!
//! Owns the instance's lifecycle (topic preparation, thread start and replacement, close), its
//! hold on the state directory (lock and process id), and the interactive-query endpoints of
//! `application.server`. May call every other runtime concept; nothing below calls it.

pub mod endpoints;
pub(crate) mod kafka_streams;
pub(crate) mod process_identity;
pub mod thread_metadata;
