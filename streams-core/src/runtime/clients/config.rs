//! Building the librdkafka clients the runtime owns, and routing their logs to `tracing`.

use std::collections::BTreeMap;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;

use crate::config::StreamsConfig;
use crate::{Result, StreamsError};

/// Routes librdkafka's log lines and global errors to `tracing`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingContext;

pub(crate) fn log_line(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac} {message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac} {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "{fac} {message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac} {message}"),
    }
}

pub(crate) fn global_error(error: KafkaError, reason: &str) {
    tracing::warn!(target: "librdkafka", %error, "{reason}");
}

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_line(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        global_error(error, reason);
    }
}

/// A [`TracingContext`] that also keeps the first connection failure no retry can fix (failed
/// SASL authentication, a failed TLS handshake), so the first contact with the cluster can fail
/// fast with the cause instead of timing out.
#[derive(Debug, Default)]
pub(crate) struct ConnectContext {
    fatal: std::sync::Mutex<Option<ConnectFailure>>,
}

/// Why the cluster cannot be reached with the given settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// SASL authentication was refused.
    Authentication(String),
    /// The TLS handshake failed (often: the broker's certificate is not trusted).
    Tls(String),
}

impl ConnectContext {
    /// The failure seen so far, if any.
    pub fn failure(&self) -> Option<ConnectFailure> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn classify(error: &KafkaError, reason: &str) -> Option<ConnectFailure> {
        use rdkafka::types::RDKafkaErrorCode as C;
        let r = reason.to_string();
        match error.rdkafka_error_code() {
            Some(C::Authentication | C::SaslAuthenticationFailed) => {
                Some(ConnectFailure::Authentication(r))
            }
            Some(C::SSL) => Some(ConnectFailure::Tls(r)),
            _ if reason.contains("SSL handshake failed") => Some(ConnectFailure::Tls(r)),
            _ if reason.contains("SASL authentication error")
                || reason.contains("Authentication failed") =>
            {
                Some(ConnectFailure::Authentication(r))
            }
            _ => None,
        }
    }
}

impl ConnectContext {
    fn keep(&self, f: ConnectFailure) {
        let mut slot = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(f);
    }
}

impl ClientContext for ConnectContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // librdkafka reports a failed TLS handshake as a connection failure log line.
        if fac == "FAIL" && message.contains("SSL handshake failed") {
            self.keep(ConnectFailure::Tls(message.to_string()));
        }
        log_line(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(f) = Self::classify(&error, reason) {
            self.keep(f);
        }
        global_error(error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for ConnectContext {}

impl ConnectFailure {
    /// The error for users: the cause and the settings that fix it. librdkafka's reasons name
    /// the broker and mechanism, never the password.
    pub fn into_error(self, bootstrap: &str) -> StreamsError {
        match self {
            ConnectFailure::Authentication(reason) => StreamsError::Config(format!(
                "cannot connect to `{bootstrap}`: SASL authentication failed ({reason}); check sasl.mechanism, sasl.username and sasl.password"
            )),
            ConnectFailure::Tls(reason) => StreamsError::Config(format!(
                "cannot connect to `{bootstrap}`: the TLS handshake failed ({reason}); if the broker's certificate is signed by a private CA, set ssl.ca.location to that CA's PEM file"
            )),
        }
    }
}

/// Which client a configuration is for; picks the `consumer.` / `producer.` / `admin.` /
/// `restore.consumer.` overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// The main consumer of a stream thread.
    Consumer,
    /// The restore consumer of a stream thread (no group).
    RestoreConsumer,
    /// The global thread's consumer (no group), reading global store topics.
    GlobalConsumer,
    /// A producer.
    Producer,
    /// The admin client.
    Admin,
}

impl ClientKind {
    fn role(self) -> &'static str {
        match self {
            ClientKind::Consumer => "consumer",
            ClientKind::RestoreConsumer => "restore consumer",
            ClientKind::GlobalConsumer => "global consumer",
            ClientKind::Producer => "producer",
            ClientKind::Admin => "admin client",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            ClientKind::Consumer => "consumer.",
            ClientKind::RestoreConsumer => "restore.consumer.",
            ClientKind::GlobalConsumer => "global.consumer.",
            ClientKind::Producer => "producer.",
            ClientKind::Admin => "admin.",
        }
    }
}

/// A librdkafka configuration for `kind`: the runtime's defaults, then the user's settings (common
/// ones, then the prefixed ones), then the settings the runtime cannot work without.
///
/// `required` wins over user settings; a user value that disagrees with it is logged and replaced.
pub fn client_config(
    config: &StreamsConfig,
    kind: ClientKind,
    defaults: &[(&str, &str)],
    required: &[(&str, &str)],
) -> Result<ClientConfig> {
    let bootstrap = config.bootstrap_servers.as_deref().ok_or_else(|| {
        StreamsError::Config(
            "`bootstrap.servers` is not set; give the host:port list of the Kafka cluster".into(),
        )
    })?;
    let mut settings: BTreeMap<String, String> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    settings.insert("bootstrap.servers".into(), bootstrap.to_string());
    settings.extend(config.client_settings(kind.prefix()));
    for (k, v) in required {
        if let Some(user) = settings.get(*k) {
            if user != v {
                tracing::warn!(
                    key = k,
                    "the {}{k} setting is managed by the streams runtime; using its value instead of the configured one",
                    kind.prefix()
                );
            }
        }
        settings.insert(k.to_string(), v.to_string());
    }
    // librdkafka's own `debug` setting asks for its debug lines; without it, warnings only.
    let level = if settings.contains_key("debug") {
        RDKafkaLogLevel::Debug
    } else {
        RDKafkaLogLevel::Warning
    };
    let mut cc = ClientConfig::new();
    for (k, v) in settings {
        cc.set(k, v);
    }
    cc.set_log_level(level);
    Ok(cc)
}

/// A consumer outside any group that reads partitions it is assigned from the beginning, with the
/// isolation level of the processing guarantee (restore and global consumers).
pub(crate) fn unjoined_consumer(
    config: &StreamsConfig,
    kind: ClientKind,
    client_id: &str,
    defaults: &[(&str, &str)],
) -> Result<rdkafka::consumer::BaseConsumer<TracingContext>> {
    let isolation = if config.processing_guarantee.is_exactly_once() {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    client_config(
        config,
        kind,
        defaults,
        &[
            ("client.id", client_id),
            // Never joins or commits; librdkafka only wants a group id to accept assign().
            ("group.id", &format!("{client_id}-no-commits")),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", isolation),
            ("enable.partition.eof", "false"),
        ],
    )?
    .create_with_context(TracingContext)
    .map_err(|e| creation_error(&format!("{} ({client_id})", kind.role()), e))
}

/// Wraps a client creation failure with the client's role, keeping secrets out of the message
/// (librdkafka names keys, never values, in its configuration errors).
pub(crate) fn creation_error(role: &str, e: KafkaError) -> StreamsError {
    StreamsError::kafka(format!("creating the {role}"), e)
}

impl rdkafka::consumer::ConsumerContext for TracingContext {}

/// Delivery reports are not needed where this context produces (flushes check the outcome).
impl rdkafka::producer::ProducerContext for TracingContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// A partition's `[low, high)` offsets. After a failure the client's metadata of `topic` is
/// refreshed before the error is returned: librdkafka asks the leader its metadata cache names
/// and does not refresh that cache on a failed offset query, so after a leader moved or a broker
/// came back every retry would fail the same way until the periodic refresh
/// (`topic.metadata.refresh.interval.ms`, 5 minutes).
pub(crate) fn fetch_watermarks_fresh<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    topic: &str,
    partition: i32,
    timeout: std::time::Duration,
) -> rdkafka::error::KafkaResult<(i64, i64)> {
    use rdkafka::consumer::Consumer;
    // Short: the caller retries anyway, and its thread should not stay away from its poll loop.
    const REFRESH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
    consumer
        .fetch_watermarks(topic, partition, timeout)
        .inspect_err(|_| {
            let _ = consumer.fetch_metadata(Some(topic), REFRESH_TIMEOUT.min(timeout));
        })
}
