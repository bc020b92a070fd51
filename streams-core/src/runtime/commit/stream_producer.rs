//! Sends what tasks produce (sink outputs and changelog writes) through a producer, tracks
//! delivery failures and changelog offsets, and drives Kafka transactions under exactly-once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};
use rdkafka::TopicPartitionList;

use crate::config::StreamsConfig;
use crate::runtime::clients::config::{
    client_config, creation_error, global_error, log_line, ClientKind,
};
use crate::runtime::commit::error::{classify, classify_txn_offsets, kafka, CollectorError};
use crate::runtime::commit::producer::RecordProducer;
use crate::runtime::group::{send_offsets_to_transaction, GenerationMetadata, TxnOffsetsError};
use crate::runtime::metrics::{self, Sensor, StreamsMetrics};
use crate::task::ProducedRecord;
use crate::{Result, StreamsError};

/// How long transactional calls may block before the thread treats the broker as unavailable.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);
const ABORT_TIMEOUT: Duration = Duration::from_secs(5);
/// The least time a transactional call is given, even at its deadline: librdkafka takes a zero
/// timeout as "do not wait", which would fail the first attempt of a call started late.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);
/// How long a thread waiting for acknowledgements sleeps between looks at its delivery reports:
/// short against a commit's wait (linger.ms plus a round trip, milliseconds), long against the
/// look itself (a few microseconds).
const REPORT_WAIT: Duration = Duration::from_micros(200);
/// Kafka Streams' default `transaction.timeout.ms` under exactly-once.
const DEFAULT_TRANSACTION_TIMEOUT_MS: u64 = 10_000;

/// Offsets being added to the open transaction by a helper thread (see
/// [`StreamProducer::start_send_offsets`]).
struct PendingOffsets {
    result: Receiver<std::result::Result<(), TxnOffsetsError>>,
    added: bool,
}

impl PendingOffsets {
    /// Whether the offsets are in the transaction, without waiting; the error if adding them
    /// failed.
    fn added(&mut self) -> Result<bool, CollectorError> {
        if !self.added {
            match self.result.try_recv() {
                Ok(r) => self.settle(r)?,
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return Err(helper_gone()),
            }
        }
        Ok(self.added)
    }

    /// Waits until the offsets are in the transaction, at most until `deadline`: past it the
    /// transaction coordinator aborts the transaction anyway, so the producer is given up as
    /// fenced, its replacement's InitProducerId fences it for good, and the blocked call ends
    /// with it whenever librdkafka returns.
    fn wait(&mut self, deadline: Instant, txn_timeout: Duration) -> Result<(), CollectorError> {
        if self.added {
            return Ok(());
        }
        match self
            .result
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(r) => self.settle(r),
            Err(RecvTimeoutError::Timeout) => Err(CollectorError::Fenced(StreamsError::IllegalState(format!(
                "librdkafka did not add the offsets to the transaction within transaction.timeout.ms ({txn_timeout:?}; librdkafka #5456/#5511 after a group coordinator failure): the producer is replaced"
            )))),
            Err(RecvTimeoutError::Disconnected) => Err(helper_gone()),
        }
    }

    fn settle(
        &mut self,
        r: std::result::Result<(), TxnOffsetsError>,
    ) -> Result<(), CollectorError> {
        r.map_err(|e| classify_txn_offsets("sending offsets to the transaction", e))?;
        self.added = true;
        Ok(())
    }
}

fn helper_gone() -> CollectorError {
    CollectorError::Fatal(StreamsError::IllegalState(
        "the thread sending offsets to the transaction ended without a result".into(),
    ))
}

/// What the delivery callback learned since it was last asked.
#[derive(Default)]
struct DeliveryState {
    first_error: Option<(String, KafkaError)>,
    /// Highest acknowledged offset per changelog partition.
    changelog_offsets: HashMap<String, HashMap<i32, i64>>,
}

/// Producer context: logs to `tracing`, records delivery failures and changelog offsets.
pub(crate) struct CollectorContext {
    state: Arc<Mutex<DeliveryState>>,
}

impl ClientContext for CollectorContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_line(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        global_error(error, reason);
    }
}

impl ProducerContext for CollectorContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(m) => {
                if let Some(parts) = s.changelog_offsets.get_mut(m.topic()) {
                    let e = parts.entry(m.partition()).or_insert(-1);
                    *e = (*e).max(m.offset());
                }
            }
            Err((e, m)) => {
                if s.first_error.is_none() {
                    s.first_error = Some((m.topic().to_string(), e.clone()));
                }
            }
        }
    }
}

/// The producer's transaction timings (`producer-metrics`, as the Java producer reports them).
struct TxnSensors {
    init: Arc<Sensor>,
    begin: Arc<Sensor>,
    send_offsets: Arc<Sensor>,
    commit: Arc<Sensor>,
    abort: Arc<Sensor>,
}

/// One producer: plain (at_least_once) or transactional (exactly-once).
pub(crate) struct StreamProducer {
    /// Shared with a helper thread while offsets are sent (see [`StreamProducer::send_offsets`]).
    producer: Arc<BaseProducer<CollectorContext>>,
    state: Arc<Mutex<DeliveryState>>,
    transactional_id: Option<String>,
    /// Whether a transaction is open.
    txn_open: bool,
    /// `transaction.timeout.ms`: past it the coordinator aborts an open transaction.
    txn_timeout: Duration,
    sensors: TxnSensors,
    /// `production.exception.handler=continue` (at_least_once): drop records that failed.
    continue_on_send_error: bool,
}

impl StreamProducer {
    /// Creates the producer; with a `transactional_id` it also initializes transactions, which
    /// fences any older producer with the same id.
    pub fn new(
        config: &StreamsConfig,
        client_id: &str,
        transactional_id: Option<String>,
        changelog_topics: &[String],
        metrics: &StreamsMetrics,
    ) -> Result<Self> {
        let mut defaults = vec![
            // Same partitioner as the Java client, so keys land where other Kafka apps put them.
            ("partitioner", "murmur2_random"),
            ("linger.ms", "5"),
            ("acks", "all"),
            // The Java producer's buffer.memory (32 MiB). librdkafka's default (1 GiB) lets a
            // fast task queue far ahead of the broker; a full queue makes `send` wait instead.
            ("queue.buffering.max.kbytes", "32768"),
        ];
        let txn_timeout_ms = transaction_timeout_ms(config).to_string();
        if transactional_id.is_some() {
            // Kafka Streams' default: a crashed instance's open transaction is aborted by the
            // broker within 10 s, so whoever takes over its tasks is not blocked for long.
            defaults.push(("transaction.timeout.ms", txn_timeout_ms.as_str()));
            // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
            defaults.push(("message.timeout.ms", txn_timeout_ms.as_str()));
        } else {
            defaults.push(("message.timeout.ms", "120000"));
        }
        let mut required = vec![("client.id", client_id)];
        if let Some(t) = &transactional_id {
            required.push(("transactional.id", t.as_str()));
            required.push(("enable.idempotence", "true"));
        }
        let state = Arc::new(Mutex::new(DeliveryState {
            changelog_offsets: changelog_topics
                .iter()
                .map(|t| (t.clone(), HashMap::new()))
                .collect(),
            ..DeliveryState::default()
        }));
        let producer: BaseProducer<CollectorContext> =
            client_config(config, ClientKind::Producer, &defaults, &required)?
                .create_with_context(CollectorContext {
                    state: state.clone(),
                })
                .map_err(|e| creation_error("producer", e))?;
        let sensors = TxnSensors {
            init: metrics.sensor(metrics::TXN_INIT, &[client_id]),
            begin: metrics.sensor(metrics::TXN_BEGIN, &[client_id]),
            send_offsets: metrics.sensor(metrics::TXN_SEND_OFFSETS, &[client_id]),
            commit: metrics.sensor(metrics::TXN_COMMIT, &[client_id]),
            abort: metrics.sensor(metrics::TXN_ABORT, &[client_id]),
        };
        if let Some(t) = &transactional_id {
            sensors
                .init
                .time(|| producer.init_transactions(TXN_TIMEOUT))
                .map_err(|e| kafka(format!("initializing transactions for `{t}`"), e))?;
            tracing::debug!(transactional_id = %t, "transactional producer ready");
        }
        Ok(StreamProducer {
            producer: Arc::new(producer),
            state,
            continue_on_send_error: config.on_production_error
                == crate::config::OnError::LogAndContinue,
            transactional_id,
            txn_open: false,
            txn_timeout: Duration::from_millis(transaction_timeout_ms(config)),
            sensors,
        })
    }

    fn begin_if_needed(&mut self) -> Result<(), CollectorError> {
        if self.is_transactional() && !self.txn_open {
            let producer = &self.producer;
            self.sensors
                .begin
                .time(|| producer.begin_transaction())
                .map_err(|e| classify("beginning a transaction", e))?;
            self.txn_open = true;
        }
        Ok(())
    }

    fn take_delivery_error(&self) -> Option<(String, KafkaError)> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first_error
            .take()
    }

    /// Like [`classify`], but a send refused because the producer hit a fatal error is sorted
    /// by that error's cause: fenced (a transaction the coordinator aborted on
    /// `transaction.timeout.ms` bumps the epoch, and librdkafka then reports every send as fatal)
    /// gives the tasks up as Kafka Streams' `TaskMigratedException` does; anything else fails.
    /// A send refused with `State` by a transactional producer means its transaction already
    /// failed with an abortable error (seen: `OUT_OF_ORDER_SEQUENCE_NUMBER, requires epoch bump`
    /// after a broker outage): abort and start over, as the commit would have to.
    fn classify_send(&self, context: &str, e: KafkaError) -> CollectorError {
        if self.transactional_id.is_some()
            && e.rdkafka_error_code() == Some(RDKafkaErrorCode::State)
        {
            return CollectorError::Aborted(kafka(context, e));
        }
        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            if let Some((code, reason)) = self.producer.client().fatal_error() {
                return classify(
                    &format!("{context} ({reason})"),
                    KafkaError::MessageProduction(code),
                );
            }
        }
        classify(context, e)
    }

    /// Waits until every sent record is acknowledged (or failed).
    fn await_acks(&self) -> Result<()> {
        self.wake_broker_threads();
        if !self.serve_until_answered(Instant::now() + TXN_TIMEOUT) {
            return Err(StreamsError::IllegalState(format!(
                "{} records still unacknowledged after {TXN_TIMEOUT:?}; is the cluster reachable?",
                self.producer.in_flight_count()
            )));
        }
        Ok(())
    }

    /// Has the broker threads send what lingers now, for a caller about to wait for it.
    ///
    /// A zero-timeout flush: they send it if they look before it returns (librdkafka lowers
    /// its flushing flag on return), else after linger.ms. Not rdkafka's `flush` with a
    /// timeout, which polls in fixed 100 ms slices.
    fn wake_broker_threads(&self) {
        let _ = self.producer.flush(Duration::ZERO);
    }

    /// Serves delivery reports until no record is in flight or `deadline` passed; whether every
    /// record was answered (acknowledged or failed).
    fn serve_until_answered(&self, deadline: Instant) -> bool {
        let Ok(answered) = self.serve_reports_until(deadline, || Ok::<_, Infallible>(()));
        answered
    }

    /// [`Self::serve_until_answered`], with `stop_early` run before each round: an error from
    /// it ends the wait (see [`Self::await_transaction_acks`]).
    fn serve_reports_until<E>(
        &self,
        deadline: Instant,
        mut stop_early: impl FnMut() -> std::result::Result<(), E>,
    ) -> std::result::Result<bool, E> {
        while self.producer.in_flight_count() > 0 {
            stop_early()?;
            if Instant::now() > deadline {
                return Ok(false);
            }
            self.serve_or_sleep();
        }
        Ok(true)
    }

    /// Serves the delivery reports that have arrived, or sleeps [`REPORT_WAIT`] when none had.
    ///
    /// Not rdkafka's `poll` with a timeout: that runs until its timeout is over whatever
    /// arrives, and spins through its last millisecond (the timeout reaches librdkafka in whole
    /// milliseconds, rounded down), so waiting in 1 ms polls was a busy wait. Profiled, that
    /// wait took 62% of a stream thread's CPU, from the broker and the other threads on the
    /// same cores (README, "Against Kafka Streams").
    fn serve_or_sleep(&self) {
        let in_flight = self.producer.in_flight_count();
        self.producer.poll(Duration::ZERO);
        if self.producer.in_flight_count() == in_flight {
            std::thread::sleep(REPORT_WAIT);
        }
    }

    /// Starts adding `offsets` to the open transaction on a helper thread; the receiver gets the
    /// result.
    ///
    /// A helper thread, because librdkafka's call can block for good once the group
    /// coordinator's broker died: it ignores its timeout (confluentinc/librdkafka#5456) and, when
    /// that broker has left the metadata, never looks the coordinator up again (#5511). The
    /// caller waits at most `transaction.timeout.ms` (see [`PendingOffsets::wait`]). It also lets
    /// the offsets' two round trips (AddOffsetsToTxn to the transaction coordinator,
    /// TxnOffsetCommit to the group coordinator) run while the thread waits for its records'
    /// acknowledgements, as the Java producer sends them.
    fn start_send_offsets(
        &self,
        offsets: &TopicPartitionList,
        group: &Arc<GenerationMetadata>,
    ) -> Result<PendingOffsets, CollectorError> {
        let (producer, offsets, group) = (self.producer.clone(), offsets.clone(), group.clone());
        let sensor = self.sensors.send_offsets.clone();
        let (done, result) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("send-offsets".into())
            .spawn(move || {
                let r = sensor.time(|| {
                    retry(
                        Instant::now() + TXN_TIMEOUT,
                        |e: &TxnOffsetsError| e.retriable,
                        |left| {
                            send_offsets_to_transaction(producer.client(), &offsets, &group, left)
                        },
                    )
                });
                let _ = done.send(r);
            })
            .map_err(|e| {
                CollectorError::Fatal(StreamsError::IllegalState(format!(
                    "cannot start a thread to send offsets: {e}"
                )))
            })?;
        Ok(PendingOffsets {
            result,
            added: false,
        })
    }

    /// Waits until every record of the open transaction is answered, while `offsets` (if
    /// any) are being added to it. An error adding the offsets ends the wait at once: it is
    /// how a transaction that failed with an abortable error shows (after
    /// OUT_OF_ORDER_SEQUENCE_NUMBER, say), and librdkafka then keeps the transaction's queued
    /// records without delivery reports, so waiting for them would only run out the clock.
    /// Records still unanswered at `deadline` (`transaction.timeout.ms` after the commit began,
    /// when the coordinator aborts the transaction anyway) abort it.
    fn await_transaction_acks(
        &self,
        mut offsets: Option<&mut PendingOffsets>,
        deadline: Instant,
    ) -> Result<(), CollectorError> {
        let answered = self.serve_reports_until(deadline, || match offsets.as_deref_mut() {
            Some(pending) => pending.added().map(|_| ()),
            None => Ok(()),
        })?;
        if !answered {
            return Err(CollectorError::Aborted(StreamsError::IllegalState(format!(
                "{} records of the transaction still unacknowledged after transaction.timeout.ms ({:?}): aborting it",
                self.producer.in_flight_count(),
                self.txn_timeout
            ))));
        }
        Ok(())
    }

    /// Drops what is still queued, waits for the records already sent, then ends the
    /// transaction with an abort.
    ///
    /// The records on the wire are waited for, never purged: a ProduceRequest already sent can
    /// still be appended after the abort marker, where it opens a transaction no coordinator
    /// knows of, which holds every read_committed consumer of that partition at its offset, or
    /// is committed by the producer's next marker there (brokers before KIP-890's verification,
    /// 3.6, do not refuse it). librdkafka's own abort waits for them for that reason; a
    /// polled producer serves their delivery reports only when polled, so this serves them.
    /// When they do not come within [`ABORT_TIMEOUT`] (a broker that stopped answering), no
    /// EndTxn is sent: the producer is replaced, and its replacement's InitProducerId bumps
    /// the epoch, which makes the coordinator abort the transaction and partitions refuse the
    /// late records.
    fn abort_open_transaction(&mut self) -> bool {
        self.producer.purge(PurgeConfig::default().queue());
        if !self.serve_until_answered(Instant::now() + ABORT_TIMEOUT) {
            tracing::warn!(
                in_flight = self.producer.in_flight_count(),
                "records of the aborted transaction still unanswered after {ABORT_TIMEOUT:?}: the producer is replaced instead of aborting"
            );
            return false;
        }
        let producer = &self.producer;
        match self
            .sensors
            .abort
            .time(|| producer.abort_transaction(ABORT_TIMEOUT))
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "aborting the transaction failed: the producer is replaced");
                false
            }
        }
    }
}

impl RecordProducer for StreamProducer {
    /// Whether this producer is transactional.
    fn is_transactional(&self) -> bool {
        self.transactional_id.is_some()
    }

    /// Starts tracking the acknowledged offsets of another changelog topic.
    fn track_changelog(&self, topic: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.changelog_offsets.entry(topic.to_string()).or_default();
    }

    /// Hands one record to the producer (asynchronous; failures surface at the next commit).
    fn send(&mut self, r: &ProducedRecord) -> Result<(), CollectorError> {
        self.begin_if_needed()?;
        let headers = (!r.headers.is_empty()).then(|| {
            r.headers
                .iter()
                .fold(OwnedHeaders::new(), |h, (key, value)| {
                    h.insert(Header { key, value })
                })
        });
        let mut record: BaseRecord<'_, [u8], [u8], ()> =
            BaseRecord::to(&r.topic).timestamp(r.timestamp.max(0));
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.serve_or_sleep();
                }
                Err((e, _)) => {
                    return Err(self.classify_send(&format!("sending to `{}`", r.topic), e));
                }
            }
        }
    }

    /// Serves delivery callbacks.
    fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// at_least_once: waits until everything sent is acknowledged.
    fn flush(&mut self) -> Result<(), CollectorError> {
        self.await_acks().map_err(CollectorError::Fatal)?;
        if let Some((topic, e)) = self.take_delivery_error() {
            if self.continue_on_send_error {
                tracing::warn!(topic, error = %e, "records could not be written and are dropped (production.exception.handler=continue)");
            } else {
                return Err(CollectorError::Fatal(kafka(
                    format!("producing to `{topic}`"),
                    e,
                )));
            }
        }
        Ok(())
    }

    /// exactly-once: adds the consumed `offsets` to the open transaction (starting one if nothing
    /// was produced) and commits it.
    fn commit_transaction(
        &mut self,
        offsets: &TopicPartitionList,
        group: &Arc<GenerationMetadata>,
    ) -> Result<(), CollectorError> {
        if offsets.count() == 0 && !self.txn_open {
            return Ok(());
        }
        self.begin_if_needed()?;
        // The offsets go out at once and the records' acknowledgements are waited for meanwhile,
        // as the Java producer and Kafka Streams do; EndTxn only once both are done. librdkafka's
        // own commit would wait for the acknowledgements too, but in the event mode rdkafka uses
        // it sleeps in 100 ms steps. The order does not matter to atomicity: records and offsets
        // commit or abort together at EndTxn. (Earlier builds sent the offsets after the
        // acknowledgements: with 200 output partitions the call had taken 113 ms with records
        // in flight against 1-2 ms after them, on a test broker whose transaction markers were
        // slow, since fixed. Measured again in this order: 1.41-1.62 s for the 1M-record
        // KIP-447 run at 200 partitions, against 1.36-1.58 s in the old order.)
        let in_flight = self.producer.in_flight_count();
        let started = Instant::now();
        let deadline = started + self.txn_timeout;
        self.wake_broker_threads();
        let mut pending = if offsets.count() > 0 {
            Some(self.start_send_offsets(offsets, group)?)
        } else {
            None
        };
        self.await_transaction_acks(pending.as_mut(), deadline)?;
        let acked = Instant::now();
        if let Some(pending) = &mut pending {
            pending.wait(deadline, self.txn_timeout)?;
        }
        let offsets_sent = Instant::now();
        // No client-side rule about the transaction's age: a coordinator that aborts a transaction
        // on `transaction.timeout.ms` also bumps the producer epoch, so every later request of
        // ours (offsets, EndTxn) fails as fenced and nothing of the transaction commits; the
        // thread then closes its tasks dirty and starts over from the committed offsets.
        // Retried within one TXN_TIMEOUT in all: librdkafka's commit times out again and again
        // while it cannot reach the coordinator (the broker restarting, or gone from the
        // metadata, as for the offsets above), and the thread must not stay blocked past
        // max.poll.interval.ms. The timeout is retriable, so it aborts: the transaction's fate
        // is the coordinator's (committed if EndTxn reached it, else aborted on
        // transaction.timeout.ms), and the tasks start over from what the group committed.
        let producer = &self.producer;
        self.sensors
            .commit
            .time(|| {
                retry(Instant::now() + TXN_TIMEOUT, kafka_retriable, |left| {
                    producer.commit_transaction(left)
                })
            })
            .map_err(|e| classify("committing the transaction", e))?;
        tracing::debug!(
            in_flight,
            acks_ms = (acked - started).as_millis() as u64,
            offsets_after_acks_ms = (offsets_sent - acked).as_millis() as u64,
            end_txn_ms = offsets_sent.elapsed().as_millis() as u64,
            "transaction committed"
        );
        self.txn_open = false;
        // A delivery error inside a committed transaction cannot happen (commit fails instead), but
        // do not let a stale one leak into the next transaction.
        self.take_delivery_error();
        Ok(())
    }

    /// Aborts the open transaction, if any; `false` when it could not be, and the caller must
    /// replace the producer. Errors are logged: the caller is already failing.
    fn abort_transaction(&mut self) -> bool {
        let mut aborted = true;
        if self.is_transactional() && self.txn_open {
            aborted = self.abort_open_transaction();
            self.txn_open = false;
        }
        self.take_delivery_error();
        aborted
    }

    /// Whether a transaction is open.
    fn in_transaction(&self) -> bool {
        self.txn_open
    }

    /// The highest acknowledged offset of each tracked changelog partition.
    fn changelog_offsets(&self) -> HashMap<(String, i32), i64> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.changelog_offsets
            .iter()
            .flat_map(|(t, parts)| parts.iter().map(move |(p, o)| ((t.clone(), *p), *o)))
            .collect()
    }
}

fn transaction_timeout_ms(config: &StreamsConfig) -> u64 {
    config
        .client_settings("producer.")
        .get("transaction.timeout.ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_TRANSACTION_TIMEOUT_MS)
}

/// Retries a transactional call while librdkafka says its error is retriable (up to 5 times,
/// backing off), each attempt given the time left until `deadline`, and none started past it.
/// `retriable` reads that from the call's error type: rust-rdkafka's for its own calls,
/// [`TxnOffsetsError`] for the offsets sent with the group's generation.
fn retry<E: std::fmt::Display>(
    deadline: Instant,
    retriable: impl Fn(&E) -> bool,
    mut f: impl FnMut(Duration) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut attempts = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match f(left.max(MIN_ATTEMPT)) {
            Err(e) if retriable(&e) && attempts < 5 && Instant::now() < deadline => {
                attempts += 1;
                tracing::debug!(error = %e, attempts, "retrying a transactional call");
                std::thread::sleep(Duration::from_millis(100 * attempts));
            }
            r => return r,
        }
    }
}

/// Whether librdkafka marks a transactional call's error retriable.
fn kafka_retriable(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_retriable())
}

impl Drop for StreamProducer {
    fn drop(&mut self) {
        // A producer that cannot abort is being dropped anyway; its successor fences it.
        let _ = self.abort_transaction();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pending() -> (
        std::sync::mpsc::SyncSender<std::result::Result<(), TxnOffsetsError>>,
        PendingOffsets,
    ) {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        let pending = PendingOffsets {
            result,
            added: false,
        };
        (done, pending)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(50)
    }

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[test]
    fn offsets_seen_while_polling_are_not_waited_for_again() {
        let (done, mut p) = pending();
        assert!(!p.added().unwrap());
        done.send(Ok(())).unwrap();
        assert!(p.added().unwrap());
        // The helper is gone and the channel empty: the result taken above still counts.
        drop(done);
        assert!(p.added().unwrap());
        p.wait(soon(), TIMEOUT).unwrap();
    }

    #[test]
    fn an_abortable_error_adding_offsets_aborts_while_polling() {
        let (done, mut p) = pending();
        done.send(Err(TxnOffsetsError {
            code: RDKafkaErrorCode::OutOfOrderSequenceNumber,
            message: "requires epoch bump".into(),
            fatal: false,
            requires_abort: true,
            retriable: false,
        }))
        .unwrap();
        assert!(matches!(p.added(), Err(CollectorError::Aborted(_))));
    }

    #[test]
    fn offsets_not_added_by_the_deadline_give_the_producer_up() {
        let (_done, mut p) = pending();
        assert!(matches!(
            p.wait(soon(), TIMEOUT),
            Err(CollectorError::Fenced(_))
        ));
    }

    #[test]
    fn a_helper_that_ended_without_a_result_fails_the_commit() {
        let (done, mut p) = pending();
        drop(done);
        assert!(matches!(p.added(), Err(CollectorError::Fatal(_))));
        assert!(matches!(
            p.wait(soon(), TIMEOUT),
            Err(CollectorError::Fatal(_))
        ));
    }

    #[test]
    fn a_transactional_call_is_not_retried_past_its_deadline() {
        let mut given = Vec::new();
        let r = retry(
            Instant::now(),
            |_: &String| true,
            |left| {
                given.push(left);
                Err("timed out (retriable)".to_string())
            },
        );
        assert!(r.is_err());
        assert_eq!(
            given,
            [MIN_ATTEMPT],
            "one attempt, with the least time a call gets"
        );
    }

    #[test]
    fn a_transactional_call_gets_the_time_left_until_its_deadline() {
        let mut given = Vec::new();
        let r = retry(
            Instant::now() + Duration::from_secs(30),
            |_: &String| true,
            |left| {
                given.push(left);
                Ok(())
            },
        );
        assert!(r.is_ok());
        assert_eq!(given.len(), 1);
        assert!(given[0] > Duration::from_secs(29) && given[0] <= Duration::from_secs(30));
    }
}
