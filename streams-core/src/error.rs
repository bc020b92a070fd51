use crate::serdes::SerdeError;

/// Everything that can go wrong in the streams runtime, with enough context to act on.
///
/// New variants may be added: match with a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamsError {
    /// The topology is not valid (unknown parent, duplicate name, cycle, store misuse...).
    #[error("invalid topology: {0}")]
    Topology(String),
    /// A configuration key or value is not valid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A record read from Kafka could not be deserialized.
    #[error("cannot deserialize the {part} of the record at {topic}-{partition} offset {offset}: {source}")]
    Deserialization {
        /// `key` or `value`.
        part: &'static str,
        /// Source topic.
        topic: String,
        /// Source partition.
        partition: i32,
        /// Offset of the record.
        offset: i64,
        /// What the serde reported.
        #[source]
        source: SerdeError,
    },
    /// A key or value could not be serialized (for a topic or a store).
    #[error("cannot serialize the {part} for {target}: {source}")]
    Serialization {
        /// `key` or `value`.
        part: &'static str,
        /// Topic or store name.
        target: String,
        /// What the serde reported.
        #[source]
        source: SerdeError,
    },
    /// A consumed record has a timestamp its timestamp extractor refuses.
    #[error(
        "the record at {topic}-{partition} offset {offset} has an invalid timestamp {timestamp}: {reason}"
    )]
    InvalidTimestamp {
        /// Source topic.
        topic: String,
        /// Source partition.
        partition: i32,
        /// Offset of the record.
        offset: i64,
        /// The record's timestamp.
        timestamp: i64,
        /// What to do about it.
        reason: String,
    },
    /// A value read back from a store could not be deserialized.
    #[error("cannot deserialize a {part} read from store `{store}`: {source}")]
    StoreDeserialization {
        /// `key` or `value`.
        part: &'static str,
        /// Store name.
        store: String,
        /// What the serde reported.
        #[source]
        source: SerdeError,
    },
    /// A state store failed.
    #[error("state store error: {0}")]
    Store(#[from] state_stores::StoreError),
    /// A processor received a record of a type it was not built for.
    #[error("processor `{node}` expects records of type ({key}, {value}) but its parent forwarded another type")]
    TypeMismatch {
        /// The receiving node.
        node: String,
        /// Expected key type.
        key: &'static str,
        /// Expected value type.
        value: &'static str,
    },
    /// A processor asked for a store it may not use, or with the wrong types.
    #[error("processor `{node}` cannot use store `{store}`: {reason}")]
    StoreAccess {
        /// The node asking.
        node: String,
        /// The store.
        store: String,
        /// Why not.
        reason: String,
    },
    /// User processing code failed.
    #[error("processor `{node}` failed: {message}")]
    Processing {
        /// The node.
        node: String,
        /// The failure.
        message: String,
        /// The error the processor returned, when it returned one
        /// ([`StreamsError::processor_failed`]).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A Kafka client call failed.
    #[error("Kafka error while {context}: {source}")]
    Kafka {
        /// What the runtime was doing.
        context: String,
        /// The client error.
        #[source]
        source: KafkaClientError,
    },
    /// A filesystem operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A Kafka transaction call failed (librdkafka's classification is in `reason`).
    #[error("transaction failed while {context}: {reason}")]
    Transaction {
        /// What the runtime was doing.
        context: String,
        /// librdkafka's error and code.
        reason: String,
    },
    /// The group membership (JoinGroup, heartbeats, offset commits) failed.
    #[error("group membership failed while {context}: {reason}")]
    Group {
        /// What the member was doing.
        context: String,
        /// The broker's error or the network failure.
        reason: String,
        /// The member is no longer in the generation it acted for (unknown member, illegal
        /// generation, fenced instance): its partitions may be someone else's.
        fenced: bool,
    },
    /// The application is not in a state that allows the call.
    #[error("illegal state: {0}")]
    IllegalState(String),
}

/// Result alias for this crate.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;

impl StreamsError {
    /// A processing failure raised by user code in `node`, described by `message`.
    pub fn processing(node: impl Into<String>, message: impl std::fmt::Display) -> Self {
        StreamsError::Processing {
            node: node.into(),
            message: message.to_string(),
            source: None,
        }
    }

    /// A processing failure in `node` caused by `error`, kept as the [`std::error::Error::source`]
    /// so handlers can downcast it.
    ///
    /// ```
    /// use streams_core::StreamsError;
    ///
    /// let parse = "x".parse::<i64>().unwrap_err();
    /// let e = StreamsError::processor_failed("parse-amount", parse);
    /// let source = std::error::Error::source(&e).expect("the cause is kept");
    /// assert!(source.downcast_ref::<std::num::ParseIntError>().is_some());
    /// ```
    pub fn processor_failed(
        node: impl Into<String>,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = error.into();
        StreamsError::Processing {
            node: node.into(),
            message: source.to_string(),
            source: Some(source),
        }
    }

    /// A Kafka client call failed while doing `context`; for tools that drive their own
    /// librdkafka clients next to the runtime (the verifier, the embedded cluster).
    pub fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        StreamsError::Kafka {
            context: context.into(),
            source: KafkaClientError(source),
        }
    }
}

/// An error the Kafka client library (librdkafka) reported. Its message names the broker error
/// or the local condition; the client's own error type stays out of this crate's API.
#[derive(Debug)]
pub struct KafkaClientError(rdkafka::error::KafkaError);

impl std::fmt::Display for KafkaClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for KafkaClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}
