//! The Kafka clients the runtime owns, and the seam the rest of the runtime reaches them through.
//!
//! Builds librdkafka configurations from `StreamsConfig` (`config`), routes client logs to
//! `tracing`, decides which errors are retried and for how long (`retry`), changes the
//! partitions of group-less consumers safely (`manual_assignment`), and defines the traits the
//! task manager uses instead of concrete clients (`seam`). Calls nothing else in the runtime.

pub mod config;
pub(crate) mod manual_assignment;
pub(crate) mod retry;
pub(crate) mod seam;
