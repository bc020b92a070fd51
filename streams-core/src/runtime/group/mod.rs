//! The application's consumer group membership, spoken by the runtime itself rather than by
//! librdkafka, so the assignment is the application's own (Kafka Streams' `StreamsPartitionAssignor`
//! role; librdkafka has no public custom-assignor API).
//!
//! - [`member`]: [`GroupMember`], a member's JoinGroup / SyncGroup / Heartbeat / LeaveGroup
//!   cycle on a thread of its own, cooperative revocation, and the [`Assignor`] it consults
//!   when it leads.
//! - [`offsets`]: [`OffsetClient`], committed offsets read and written with the member's
//!   generation.
//! - [`generation_metadata`]: the generation in librdkafka's form for a transactional offset
//!   commit (KIP-447); the workspace's only `unsafe`.
//! - [`consumer_protocol`]: the subscription and assignment bytes of protocol type `consumer`.
//! - `range`: the consumer protocol's range assignment, for groups mid-upgrade from plain
//!   consumers.
//! - [`security`]: TLS and SASL (PLAIN, SCRAM) on the member's connections.

mod connection;
pub mod consumer_protocol;
mod coordinator;
pub mod generation_metadata;
pub mod member;
pub mod offsets;
mod range;
pub mod security;

pub use consumer_protocol::{Assignment, Partition, Subscription};
pub use generation_metadata::{send_offsets_to_transaction, GenerationMetadata, TxnOffsetsError};
pub use member::{
    Assignor, Generation, GroupMember, MemberConfig, MemberEvent, MemberSubscription,
};
pub use offsets::{CommittedOffset, OffsetClient};
pub use security::Security;
