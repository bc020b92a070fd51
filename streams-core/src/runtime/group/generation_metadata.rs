//! [`GenerationMetadata`]: the group metadata a transactional offset commit carries (KIP-447),
//! built from the generation this runtime's own group membership holds, and the one call that
//! sends offsets with it. The only module of the workspace allowed `unsafe`.
//!
//! librdkafka fences a zombie's offset commit by the generation and member id inside the
//! `rd_kafka_consumer_group_metadata_t` passed to `rd_kafka_send_offsets_to_transaction`. Its
//! consumer fills them only when librdkafka itself is the group member; here the membership is
//! ours ([`super::member`]), so the metadata comes from
//! `rd_kafka_consumer_group_metadata_new_with_genid`, which rust-rdkafka does not wrap, and the
//! send goes through the C API too because rust-rdkafka's `send_offsets_to_transaction` only
//! takes metadata it built itself.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;
use rdkafka_sys as sys;

/// Group id, generation, member id and static instance id of one group member, in librdkafka's
/// form, ready to go into a transaction.
pub struct GenerationMetadata {
    ptr: NonNull<sys::rd_kafka_consumer_group_metadata_t>,
    generation: i32,
    member_id: String,
}

// SAFETY: librdkafka never changes a group metadata object after creating it; it only copies
// from it (`rd_kafka_send_offsets_to_transaction` duplicates it into its own request). So one
// object may be read from several threads and freed on any thread, once, by `Drop`.
unsafe impl Send for GenerationMetadata {}
// SAFETY: see `Send`: every use through `&self` is a read.
unsafe impl Sync for GenerationMetadata {}

impl GenerationMetadata {
    /// Metadata for `member_id` in `generation` of `group_id` (`group_instance_id` under static
    /// membership). `None` when a string contains a NUL byte, which no Kafka id can.
    pub fn new(
        group_id: &str,
        generation: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Option<Self> {
        let group = CString::new(group_id).ok()?;
        let member = CString::new(member_id).ok()?;
        let instance = match group_instance_id {
            Some(id) => Some(CString::new(id).ok()?),
            None => None,
        };
        // SAFETY: the three strings are valid NUL-terminated C strings for the duration of the
        // call (librdkafka copies them); a null instance id means "no static membership", as
        // documented in rdkafka.h. The result is a new object we own, or null on allocation
        // failure, which `NonNull::new` turns into `None`.
        let raw = unsafe {
            sys::rd_kafka_consumer_group_metadata_new_with_genid(
                group.as_ptr(),
                generation,
                member.as_ptr(),
                instance.as_ref().map_or(std::ptr::null(), |i| i.as_ptr()),
            )
        };
        Some(GenerationMetadata {
            ptr: NonNull::new(raw)?,
            generation,
            member_id: member_id.to_string(),
        })
    }

    /// The metadata of the group membership librdkafka's own consumer holds (subscribed
    /// consumers: the KIP-848 protocol and secured clusters); `None` for a consumer without a
    /// group.
    pub fn of_consumer<C: ClientContext>(consumer: &Client<C>) -> Option<Self> {
        // SAFETY: the consumer handle is live for the call (borrowed); librdkafka returns a new
        // object we own (null for a handle without a group), read by its accessors, whose
        // strings are copied at once, and freed by `Drop`.
        unsafe {
            let ptr = NonNull::new(sys::rd_kafka_consumer_group_metadata(consumer.native_ptr()))?;
            let generation = sys::rd_kafka_consumer_group_metadata_generation_id(ptr.as_ptr());
            let member = sys::rd_kafka_consumer_group_metadata_member_id(ptr.as_ptr());
            let member_id = if member.is_null() {
                String::new()
            } else {
                CStr::from_ptr(member).to_string_lossy().into_owned()
            };
            Some(GenerationMetadata {
                ptr,
                generation,
                member_id,
            })
        }
    }

    /// The generation the metadata was built for.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The member id the metadata was built for.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }
}

impl Drop for GenerationMetadata {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `rd_kafka_consumer_group_metadata_new_with_genid`, is owned by
        // this value alone and is freed exactly once, here.
        unsafe { sys::rd_kafka_consumer_group_metadata_destroy(self.ptr.as_ptr()) }
    }
}

impl std::fmt::Debug for GenerationMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationMetadata")
            .field("generation", &self.generation)
            .field("member_id", &self.member_id)
            .finish()
    }
}

/// Why `rd_kafka_send_offsets_to_transaction` failed, with librdkafka's classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetsError {
    /// The error code (e.g. `IllegalGeneration` for a fenced zombie).
    pub code: RDKafkaErrorCode,
    /// librdkafka's description.
    pub message: String,
    /// The producer is unusable and must be replaced.
    pub fatal: bool,
    /// The transaction must be aborted; the producer stays usable.
    pub requires_abort: bool,
    /// The same call may be tried again.
    pub retriable: bool,
}

impl std::fmt::Display for TxnOffsetsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.code)
    }
}

impl std::error::Error for TxnOffsetsError {}

impl From<&rdkafka::error::KafkaError> for TxnOffsetsError {
    /// The same classification for an error rust-rdkafka reported (a transaction call of its
    /// own), so one rule sorts both.
    fn from(e: &rdkafka::error::KafkaError) -> Self {
        match e {
            rdkafka::error::KafkaError::Transaction(t) => TxnOffsetsError {
                code: t.code(),
                message: t.string(),
                fatal: t.is_fatal(),
                requires_abort: t.txn_requires_abort(),
                retriable: t.is_retriable(),
            },
            other => TxnOffsetsError {
                code: other
                    .rdkafka_error_code()
                    .unwrap_or(RDKafkaErrorCode::Unknown),
                message: other.to_string(),
                fatal: false,
                requires_abort: false,
                retriable: false,
            },
        }
    }
}

/// Adds `offsets` to the producer's open transaction for the group member `group`, waiting up to
/// `timeout`, as rust-rdkafka's `send_offsets_to_transaction` does with a consumer's metadata.
pub fn send_offsets_to_transaction<C: ClientContext>(
    producer: &Client<C>,
    offsets: &TopicPartitionList,
    group: &GenerationMetadata,
    timeout: Duration,
) -> Result<(), TxnOffsetsError> {
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the producer handle and the partition list are live for the call (borrowed), and
    // librdkafka only reads the list and the metadata; the returned error, if any, is ours to
    // read and free, which `take_error` does.
    let error = unsafe {
        sys::rd_kafka_send_offsets_to_transaction(
            producer.native_ptr(),
            offsets.ptr(),
            group.ptr.as_ptr(),
            timeout_ms,
        )
    };
    match NonNull::new(error) {
        None => Ok(()),
        Some(error) => Err(take_error(error)),
    }
}

/// Reads and frees a librdkafka error object.
fn take_error(error: NonNull<sys::rd_kafka_error_t>) -> TxnOffsetsError {
    let e = error.as_ptr();
    // SAFETY: `e` is a valid error object we own; the accessors only read it, the strings they
    // return live until the destroy below and are copied before it; destroyed exactly once.
    unsafe {
        let message = CStr::from_ptr(sys::rd_kafka_error_string(e))
            .to_string_lossy()
            .into_owned();
        let result = TxnOffsetsError {
            code: sys::rd_kafka_error_code(e).into(),
            message,
            fatal: sys::rd_kafka_error_is_fatal(e) != 0,
            requires_abort: sys::rd_kafka_error_txn_requires_abort(e) != 0,
            retriable: sys::rd_kafka_error_is_retriable(e) != 0,
        };
        sys::rd_kafka_error_destroy(e);
        result
    }
}
