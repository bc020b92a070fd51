//! The task manager against fake clients: what it asks of the consumer and the producer, and in
//! which order, under each processing guarantee, on failures and on revocation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::runtime::group::GenerationMetadata;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, Timestamp, TopicPartitionList};

use super::TaskManager;
use crate::config::StreamsConfig;
use crate::runtime::clients::seam::GroupConsumer;
use crate::runtime::commit::error::{classify, CollectorError};
use crate::runtime::commit::producer::{ProducerSupplier, RecordProducer};
use crate::runtime::metrics::{RuntimeCounters, StreamsMetrics};
use crate::runtime::tasks::active_task::CHECKPOINT_DELTA;
use crate::runtime::test_env::pass_through_env;
use crate::task::ProducedRecord;
use crate::StreamsError;

type Offsets = BTreeMap<(String, i32), i64>;

/// One call into a fake client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Pause(Vec<(String, i32)>),
    Resume(Vec<(String, i32)>),
    /// The stable-offsets query exactly-once makes before restoring a new task.
    CommittedOffsets(Vec<(String, i32)>),
    StartFetching(Vec<(String, i32)>),
    CommitOffsets(Offsets),
    ProducerCreated {
        transactional_id: Option<String>,
    },
    Send {
        topic: String,
        value: String,
    },
    Flush,
    CommitTransaction(Offsets),
    AbortTransaction,
}

/// What the next call of a kind does instead of succeeding.
#[derive(Default)]
struct Script {
    send: Option<fn() -> CollectorError>,
    commit_transaction: Option<fn() -> CollectorError>,
    commit_offsets: Option<RDKafkaErrorCode>,
    /// The next abort cannot end the transaction (records still unanswered).
    abort_fails: bool,
    assignment_lost: bool,
    /// The group completed a join since generation 1.
    generation_superseded: bool,
}

#[derive(Clone, Default)]
struct Clients {
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<Script>>,
}

impl Clients {
    fn record(&self, c: Call) {
        lock(&self.calls).push(c);
    }

    fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        lock(&self.script)
    }

    fn position(&self, want: impl Fn(&Call) -> bool) -> Option<usize> {
        self.calls().iter().position(want)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("a test's fake is never poisoned")
}

fn pairs(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

fn offsets(tpl: &TopicPartitionList) -> Offsets {
    tpl.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect()
}

/// A group member's consumer that records calls, in generation 1 of its group.
struct FakeConsumer {
    clients: Clients,
}

impl FakeConsumer {
    fn new(clients: &Clients) -> Self {
        FakeConsumer {
            clients: clients.clone(),
        }
    }
}

impl GroupConsumer for FakeConsumer {
    fn pause(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
        self.clients.record(Call::Pause(pairs(partitions)));
        Ok(())
    }

    fn resume(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
        self.clients.record(Call::Resume(pairs(partitions)));
        Ok(())
    }

    fn committed_offsets(
        &self,
        partitions: TopicPartitionList,
        _timeout: Duration,
    ) -> KafkaResult<TopicPartitionList> {
        self.clients
            .record(Call::CommittedOffsets(pairs(&partitions)));
        Ok(partitions)
    }

    fn start_fetching(&self, from: &TopicPartitionList) -> KafkaResult<()> {
        self.clients.record(Call::StartFetching(pairs(from)));
        Ok(())
    }

    fn commit_offsets(&self, offsets_to_commit: &TopicPartitionList) -> KafkaResult<()> {
        if let Some(code) = self.clients.script().commit_offsets.take() {
            return Err(KafkaError::ConsumerCommit(code));
        }
        self.clients
            .record(Call::CommitOffsets(offsets(offsets_to_commit)));
        Ok(())
    }

    fn group_metadata(&self) -> Option<GenerationMetadata> {
        GenerationMetadata::new("task-manager-test", 1, "member-1", None)
    }

    fn assignment_lost(&self) -> bool {
        self.clients.script().assignment_lost
    }

    fn generation_superseded(&self) -> bool {
        self.clients.script().generation_superseded
    }
}

struct FakeProducer {
    clients: Clients,
    transactional: bool,
    txn_open: bool,
}

impl RecordProducer for FakeProducer {
    fn is_transactional(&self) -> bool {
        self.transactional
    }

    fn track_changelog(&self, _topic: &str) {}

    fn send(&mut self, record: &ProducedRecord) -> Result<(), CollectorError> {
        if let Some(fail) = self.clients.script().send.take() {
            return Err(fail());
        }
        self.txn_open |= self.transactional;
        let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
        self.clients.record(Call::Send {
            topic: record.topic.to_string(),
            value: value.into_owned(),
        });
        Ok(())
    }

    fn poll(&self) {}

    fn flush(&mut self) -> Result<(), CollectorError> {
        self.clients.record(Call::Flush);
        Ok(())
    }

    fn commit_transaction(
        &mut self,
        offsets_to_commit: &TopicPartitionList,
        _group: &Arc<GenerationMetadata>,
    ) -> Result<(), CollectorError> {
        assert!(
            self.transactional,
            "a plain producer never commits a transaction"
        );
        if let Some(fail) = self.clients.script().commit_transaction.take() {
            return Err(fail());
        }
        self.clients
            .record(Call::CommitTransaction(offsets(offsets_to_commit)));
        self.txn_open = false;
        Ok(())
    }

    fn abort_transaction(&mut self) -> bool {
        if self.txn_open {
            self.clients.record(Call::AbortTransaction);
        }
        self.txn_open = false;
        !std::mem::take(&mut self.clients.script().abort_fails)
    }

    fn in_transaction(&self) -> bool {
        self.txn_open
    }

    fn changelog_offsets(&self) -> HashMap<(String, i32), i64> {
        HashMap::new()
    }
}

impl ProducerSupplier for Clients {
    fn producer(
        &self,
        _config: &StreamsConfig,
        _client_id: &str,
        transactional_id: Option<String>,
        _changelogs: &[String],
        _metrics: &StreamsMetrics,
    ) -> crate::Result<Box<dyn RecordProducer>> {
        let transactional = transactional_id.is_some();
        self.record(Call::ProducerCreated { transactional_id });
        Ok(Box::new(FakeProducer {
            clients: self.clone(),
            transactional,
            txn_open: false,
        }))
    }
}

/// A task manager of a pass-through topology (`in` -> `out`, two partitions) with fake clients.
struct Fixture {
    clients: Clients,
    consumer: FakeConsumer,
    tm: TaskManager,
    counters: Arc<RuntimeCounters>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new(guarantee: &str) -> Self {
        Self::with(guarantee, &[])
    }

    /// Under `guarantee`, with `settings` on top.
    fn with(guarantee: &str, settings: &[(&str, &str)]) -> Self {
        Self::thread(guarantee, settings, 1)
    }

    /// Stream thread `index` under `guarantee`, with `settings` on top.
    fn thread(guarantee: &str, settings: &[(&str, &str)], index: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let clients = Clients::default();
        let counters = Arc::new(RuntimeCounters::default());
        let mut env = pass_through_env(
            guarantee,
            dir.path(),
            Arc::new(clients.clone()),
            counters.clone(),
        );
        for (k, v) in settings {
            env.config.set(k, v).expect("setting");
        }
        let tm = TaskManager::new(Arc::new(env), index, format!("StreamThread-{index}"), None)
            .expect("task manager");
        Fixture {
            consumer: FakeConsumer::new(&clients),
            clients,
            tm,
            counters,
            _dir: dir,
        }
    }

    /// Assigns both partitions of `in` and runs the (empty) restoration.
    fn assign_and_start(&mut self) {
        self.tm
            .on_assign(&self.consumer, &inputs(&[0, 1]))
            .expect("assignment");
        let running = self
            .tm
            .restore(&self.consumer, Duration::from_millis(10))
            .expect("restore");
        assert!(running, "tasks without stores start right away");
    }

    fn input(&mut self, partition: i32, offset: i64, value: &str) {
        let m = OwnedMessage::new(
            Some(value.as_bytes().to_vec()),
            Some(b"k".to_vec()),
            "in".into(),
            Timestamp::CreateTime(1_000 + offset),
            partition,
            offset,
            None,
        );
        self.tm.buffer(&m);
    }

    /// Under `guarantee`, both tasks started and the four records of [`Self::process_four`]
    /// processed, nothing committed yet.
    fn with_four_processed(guarantee: &str) -> Self {
        let mut f = Self::new(guarantee);
        f.assign_and_start();
        f.process_four();
        f
    }

    /// Feeds three records to partition 0 and one to partition 1, and processes them.
    fn process_four(&mut self) {
        for (p, o, v) in [(0, 0, "a"), (0, 1, "b"), (0, 2, "c"), (1, 0, "d")] {
            self.input(p, o, v);
        }
        let n = self.tm.process(&|_, _, _| false).expect("processing");
        assert_eq!(n, 4);
    }

    fn checkpoint_of(&self, task: &str) -> std::path::PathBuf {
        self._dir
            .path()
            .join(crate::runtime::test_env::APP)
            .join(task)
            .join(crate::runtime::stores::task_dir::CHECKPOINT_FILE)
    }
}

/// Partitions of the input topic `in`.
fn inputs(partitions: &[i32]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition("in", *p);
    }
    tpl
}

fn committed(expected: &[((&str, i32), i64)]) -> Offsets {
    expected
        .iter()
        .map(|((t, p), o)| ((t.to_string(), *p), *o))
        .collect()
}

/// The offsets to commit after `Fixture::process_four`: the next of each input partition.
fn four_committed() -> Offsets {
    committed(&[(("in", 0), 3), (("in", 1), 1)])
}

fn count(calls: &[Call], want: impl Fn(&Call) -> bool) -> usize {
    calls.iter().filter(|c| want(c)).count()
}

#[test]
fn at_least_once_flushes_outputs_before_committing_offsets_then_checkpoints() {
    let mut f = Fixture::with_four_processed("at_least_once");
    f.tm.commit(&f.consumer).expect("commit");
    let calls = f.clients.calls();
    assert_eq!(
        calls[0],
        Call::ProducerCreated {
            transactional_id: None
        }
    );
    assert!(
        matches!(calls[1], Call::Pause(ref p) if p.len() == 2),
        "{calls:?}"
    );
    // The committed offsets' metadata (partition time, processor metadata) is read first.
    assert!(
        matches!(calls[2], Call::CommittedOffsets(ref p) if p.len() == 2),
        "{calls:?}"
    );
    // Fetching starts from them (the runtime's member never lets librdkafka's consumer ask the
    // group coordinator itself), and the input resumes once the (store-less) tasks run.
    assert!(
        matches!(calls[3], Call::StartFetching(ref p) if p.len() == 2),
        "{calls:?}"
    );
    assert!(
        matches!(calls[4], Call::Resume(ref p) if p.len() == 2),
        "{calls:?}"
    );
    let sent: Vec<&str> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Send { topic, value } if topic == "out" => Some(value.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(sent, ["a", "b", "c", "d"]);
    let flush = f.clients.position(|c| *c == Call::Flush).expect("a flush");
    let commit = f
        .clients
        .position(|c| matches!(c, Call::CommitOffsets(_)))
        .expect("an offset commit");
    assert!(
        flush < commit,
        "outputs are acknowledged before offsets commit: {calls:?}"
    );
    assert_eq!(calls[commit], Call::CommitOffsets(four_committed()));
    assert_eq!(
        count(&calls, |c| matches!(c, Call::CommitTransaction(_))),
        0
    );
    // No changelog moved: a checkpoint would vouch for nothing new (and cost a store flush).
    assert!(!f.checkpoint_of("0_0").exists() && !f.checkpoint_of("0_1").exists());
    assert_eq!(
        f.counters
            .commits
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // Nothing new processed: the next commit asks nothing of Kafka.
    f.tm.commit(&f.consumer).expect("empty commit");
    assert_eq!(f.clients.calls().len(), calls.len());
    f.tm.close_all(&f.consumer, true).expect("clean close");
    assert!(
        f.checkpoint_of("0_0").exists() && f.checkpoint_of("0_1").exists(),
        "a clean close checkpoints"
    );
}

#[test]
fn at_least_once_checkpoints_once_the_changelogs_moved_past_the_delta() {
    let mut f = Fixture::new("at_least_once");
    f.assign_and_start();
    let key = ("app-store-changelog".to_string(), 0);
    let t = f.tm.tasks.values_mut().next().expect("task 0_0");
    t.changelog_positions.insert(key.clone(), CHECKPOINT_DELTA);
    f.process_four();
    f.tm.commit(&f.consumer).expect("commit");
    assert!(
        !f.checkpoint_of("0_0").exists(),
        "{CHECKPOINT_DELTA} records are not past the delta"
    );
    let t = f.tm.tasks.values_mut().next().expect("task 0_0");
    t.changelog_positions
        .insert(key.clone(), CHECKPOINT_DELTA + 1);
    f.input(0, 3, "e");
    f.tm.process(&|_, _, _| false).expect("processing");
    f.tm.commit(&f.consumer).expect("commit");
    let written = state_stores::OffsetCheckpoint::new(f.checkpoint_of("0_0"))
        .read()
        .expect("readable")
        .expect("the checkpoint");
    assert_eq!(written.get(&key), Some(&(CHECKPOINT_DELTA + 1)));
    // Written again only after another CHECKPOINT_DELTA records.
    assert!(!f.tm.tasks.values().next().expect("a task").checkpoint_due());
}

#[test]
fn exactly_once_v2_waits_for_stable_offsets_and_commits_offsets_inside_the_transaction() {
    let mut f = Fixture::new("exactly_once_v2");
    f.assign_and_start();
    assert_eq!(
        f.counters
            .transactional_producers
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one transactional producer per thread"
    );
    f.process_four();
    f.tm.commit(&f.consumer).expect("commit");
    let calls = f.clients.calls();
    assert_eq!(
        calls[0],
        Call::ProducerCreated {
            transactional_id: Some(format!("tm-test-{}-1", uuid::Uuid::nil()))
        }
    );
    let stable = f
        .clients
        .position(|c| matches!(c, Call::CommittedOffsets(_)))
        .expect("a stable-offsets query");
    let resume = f
        .clients
        .position(|c| matches!(c, Call::Resume(_)))
        .expect("a resume");
    assert!(
        stable < resume,
        "input resumes only after offsets are stable: {calls:?}"
    );
    assert_eq!(
        calls.last(),
        Some(&Call::CommitTransaction(four_committed()))
    );
    assert_eq!(count(&calls, |c| matches!(c, Call::CommitOffsets(_))), 0);
    assert_eq!(count(&calls, |c| *c == Call::Flush), 0);
    assert!(
        !f.checkpoint_of("0_0").exists(),
        "no checkpoint vouches for state while tasks run under exactly-once"
    );
}

#[test]
fn an_aborted_transaction_loses_the_tasks_and_replaces_the_producer() {
    let mut f = Fixture::with_four_processed("exactly_once_v2");
    f.clients.script().commit_transaction =
        Some(|| CollectorError::Aborted(StreamsError::IllegalState("abortable error".into())));
    let err = f.tm.commit(&f.consumer).expect_err("the commit fails");
    assert!(matches!(err, CollectorError::Aborted(_)));
    f.tm.lose_all(&f.consumer).expect("losing the tasks");
    let calls = f.clients.calls();
    assert!(f.tm.task_ids().is_empty());
    assert_eq!(
        count(&calls, |c| *c == Call::AbortTransaction),
        1,
        "{calls:?}"
    );
    assert_eq!(
        count(&calls, |c| matches!(c, Call::CommitTransaction(_))),
        0
    );
    assert_eq!(
        count(&calls, |c| matches!(c, Call::ProducerCreated { .. })),
        2,
        "a new producer replaces the one whose transaction aborted"
    );
    assert_eq!(
        f.counters
            .transactional_producers
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert!(
        !f.checkpoint_of("0_0").exists(),
        "dirty close writes no checkpoint"
    );
}

#[test]
fn revocation_commits_before_closing_clean() {
    let mut f = Fixture::with_four_processed("exactly_once_v2");
    f.tm.on_revoke(&f.consumer, &inputs(&[0]), false);
    let calls = f.clients.calls();
    assert_eq!(
        calls.last(),
        Some(&Call::CommitTransaction(four_committed()))
    );
    assert_eq!(f.tm.task_ids().len(), 1, "only the revoked task closes");
    assert!(f.checkpoint_of("0_0").exists(), "a clean close checkpoints");
    assert!(!f.checkpoint_of("0_1").exists());
}

#[test]
fn a_commit_failing_during_revocation_closes_the_revoked_tasks_dirty() {
    let mut f = Fixture::with_four_processed("exactly_once_v2");
    f.clients.script().commit_transaction = Some(|| {
        classify(
            "committing",
            KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced),
        )
    });
    f.tm.on_revoke(&f.consumer, &inputs(&[0, 1]), false);
    let calls = f.clients.calls();
    assert!(f.tm.task_ids().is_empty());
    assert_eq!(
        count(&calls, |c| *c == Call::AbortTransaction),
        1,
        "{calls:?}"
    );
    assert!(!f.checkpoint_of("0_0").exists() && !f.checkpoint_of("0_1").exists());
}

#[test]
fn a_failed_revocation_commit_under_exactly_once_v2_gives_the_remaining_tasks_up_too() {
    let mut f = Fixture::with_four_processed("exactly_once_v2");
    f.clients.script().commit_transaction =
        Some(|| CollectorError::Aborted(StreamsError::IllegalState("abortable error".into())));
    f.tm.on_revoke(&f.consumer, &inputs(&[0]), false);
    // Task 0_1 stays, but its processed record was in the aborted transaction: it may not go on.
    assert_eq!(f.tm.task_ids().len(), 1);
    assert!(
        matches!(f.tm.pending_error, Some(CollectorError::Aborted(_))),
        "the thread's next step loses every task: {:?}",
        f.tm.pending_error
    );
    let calls = f.clients.calls();
    assert_eq!(
        count(&calls, |c| *c == Call::AbortTransaction),
        1,
        "{calls:?}"
    );
}

#[test]
fn a_lost_assignment_whose_abort_fails_replaces_the_producer() {
    let mut f = Fixture::with_four_processed("exactly_once_v2");
    f.clients.script().abort_fails = true;
    f.tm.on_revoke(&f.consumer, &inputs(&[0, 1]), true);
    assert!(f.tm.task_ids().is_empty());
    let err =
        f.tm.pending_error
            .take()
            .expect("the abort failure is reported");
    assert!(matches!(err, CollectorError::Aborted(_)), "{err:?}");
    f.tm.lose_all(&f.consumer).expect("losing the tasks");
    assert_eq!(
        count(&f.clients.calls(), |c| matches!(
            c,
            Call::ProducerCreated { .. }
        )),
        2,
        "a producer that could not abort is replaced (its successor fences the transaction)"
    );
}

#[test]
fn a_lost_assignment_aborted_cleanly_keeps_the_producer() {
    let mut f = Fixture::with_four_processed("exactly_once_v2");
    f.tm.on_revoke(&f.consumer, &inputs(&[0, 1]), true);
    assert!(f.tm.pending_error.is_none());
    assert_eq!(
        count(&f.clients.calls(), |c| *c == Call::AbortTransaction),
        1
    );
}

#[test]
fn lost_partitions_are_closed_without_a_commit() {
    let mut f = Fixture::with_four_processed("at_least_once");
    f.tm.on_revoke(&f.consumer, &inputs(&[0, 1]), true);
    let calls = f.clients.calls();
    assert_eq!(count(&calls, |c| matches!(c, Call::CommitOffsets(_))), 0);
    assert_eq!(count(&calls, |c| *c == Call::Flush), 0);
    assert!(f.tm.task_ids().is_empty());
    assert!(!f.checkpoint_of("0_0").exists());
}

#[test]
fn a_failed_offset_commit_keeps_the_offsets_for_the_next_commit() {
    let mut f = Fixture::with_four_processed("at_least_once");
    f.clients.script().commit_offsets = Some(RDKafkaErrorCode::RequestTimedOut);
    assert!(f.tm.commit(&f.consumer).is_err());
    f.tm.commit(&f.consumer).expect("the retry commits");
    assert_eq!(
        f.clients.calls().last(),
        Some(&Call::CommitOffsets(four_committed()))
    );
}

#[test]
fn past_max_poll_interval_the_tasks_are_given_up_without_committing() {
    for guarantee in ["at_least_once", "exactly_once_v2"] {
        let mut f = Fixture::with_four_processed(guarantee);
        let before = f.clients.calls().len();
        f.tm.last_poll = Instant::now() - Duration::from_millis(300_001);
        let err = f.tm.commit(&f.consumer).expect_err("the guard trips");
        assert!(matches!(err, CollectorError::Fenced(_)), "{guarantee}");
        assert_eq!(
            f.clients.calls().len(),
            before,
            "{guarantee}: neither flush nor commit reach Kafka"
        );
    }
}

#[test]
fn a_send_refused_as_fenced_gives_the_tasks_up_rather_than_failing_the_thread() {
    let mut f = Fixture::new("exactly_once_v2");
    f.assign_and_start();
    f.clients.script().send = Some(|| {
        classify(
            "sending",
            KafkaError::MessageProduction(RDKafkaErrorCode::Fenced),
        )
    });
    f.input(0, 0, "a");
    let err =
        f.tm.process(&|_, _, _| false)
            .expect_err("the send is refused");
    assert!(matches!(err, CollectorError::Fenced(_)), "{err:?}");
}

#[test]
fn a_lost_assignment_commits_nothing_under_any_guarantee() {
    for guarantee in ["at_least_once", "exactly_once_v2", "exactly_once"] {
        let mut f = Fixture::with_four_processed(guarantee);
        // librdkafka's group thread reset the membership; the lost callback has not run yet.
        f.clients.script().assignment_lost = true;
        let err = f.tm.commit(&f.consumer).expect_err("the guard trips");
        assert!(matches!(err, CollectorError::Fenced(_)), "{guarantee}");
        let calls = f.clients.calls();
        assert_eq!(
            count(&calls, |c| matches!(
                c,
                Call::CommitOffsets(_) | Call::CommitTransaction(_)
            )),
            0,
            "{guarantee}: no offsets committed: {calls:?}"
        );
    }
}

#[test]
fn a_periodic_commit_waits_for_the_groups_new_generation_with_everything_kept() {
    for guarantee in ["at_least_once", "exactly_once_v2"] {
        let mut f = Fixture::with_four_processed(guarantee);
        let commits = |calls: &[Call]| {
            count(calls, |c| {
                matches!(
                    c,
                    Call::CommitOffsets(_) | Call::CommitTransaction(_) | Call::AbortTransaction
                )
            })
        };
        // A join completed since the thread's generation: a commit with it would be refused.
        f.clients.script().generation_superseded = true;
        f.tm.last_commit = Instant::now() - Duration::from_secs(60);
        let committed_now = f.tm.maybe_commit(&f.consumer).expect("put off, not failed");
        assert!(!committed_now, "{guarantee}");
        assert_eq!(commits(&f.clients.calls()), 0, "{guarantee}");
        assert!(f.tm.commit_due(), "{guarantee}: a commit put off stays due");

        // The thread served the new generation: everything processed commits, in one go.
        f.clients.script().generation_superseded = false;
        assert!(
            f.tm.maybe_commit(&f.consumer).expect("commit"),
            "{guarantee}"
        );
        let expected = four_committed();
        let calls = f.clients.calls();
        assert_eq!(commits(&calls), 1, "{guarantee}: {calls:?}");
        assert!(
            calls.last() == Some(&Call::CommitOffsets(expected.clone()))
                || calls.last() == Some(&Call::CommitTransaction(expected)),
            "{guarantee}: {calls:?}"
        );
    }
}

#[test]
fn a_periodic_commit_waits_its_turn_while_another_thread_commits() {
    for guarantee in ["at_least_once", "exactly_once_v2"] {
        let mut f = Fixture::with_four_processed(guarantee);
        let commits = |calls: &[Call]| {
            count(calls, |c| {
                matches!(c, Call::CommitOffsets(_) | Call::CommitTransaction(_))
            })
        };
        f.tm.last_commit = Instant::now() - Duration::from_secs(60);
        let env = f.tm.env.clone();
        let other_thread = env.commit_turns.try_take().expect("nobody commits yet");
        let committed_now = f.tm.maybe_commit(&f.consumer).expect("put off, not failed");
        assert!(!committed_now, "{guarantee}");
        assert_eq!(commits(&f.clients.calls()), 0, "{guarantee}");
        assert!(f.tm.commit_due(), "{guarantee}: a commit put off stays due");

        drop(other_thread);
        assert!(
            f.tm.maybe_commit(&f.consumer).expect("commit"),
            "{guarantee}"
        );
        assert_eq!(commits(&f.clients.calls()), 1, "{guarantee}");
        assert!(
            env.commit_turns.try_take().is_some(),
            "{guarantee}: the turn is given back after the commit"
        );
    }
}

#[test]
fn a_revocation_commit_does_not_wait_for_a_turn() {
    let mut f = Fixture::with_four_processed("exactly_once_v2");
    let env = f.tm.env.clone();
    let _other_thread = env.commit_turns.try_take().expect("nobody commits yet");
    f.tm.commit(&f.consumer).expect("commit");
    assert_eq!(
        f.clients.calls().last(),
        Some(&Call::CommitTransaction(four_committed()))
    );
}

#[test]
fn the_second_of_two_threads_commits_half_an_interval_after_an_assignment() {
    let settings = [("num.stream.threads", "2"), ("commit.interval.ms", "10000")];
    let mut first = Fixture::thread("exactly_once_v2", &settings, 1);
    let mut second = Fixture::thread("exactly_once_v2", &settings, 2);
    first.assign_and_start();
    second.assign_and_start();
    let since = |f: &Fixture| f.tm.last_commit.elapsed();
    assert!(
        since(&first) < Duration::from_secs(4),
        "{:?}",
        since(&first)
    );
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(9)).contains(&since(&second)),
        "{:?}",
        since(&second)
    );
    assert!(!second.tm.commit_due());
}

#[test]
fn a_revocation_commit_is_never_put_off() {
    let mut f = Fixture::with_four_processed("exactly_once_v2");
    f.clients.script().generation_superseded = true;
    f.tm.commit(&f.consumer).expect("commit");
    assert_eq!(
        f.clients.calls().last(),
        Some(&Call::CommitTransaction(four_committed()))
    );
}

#[test]
fn an_offset_commit_refused_by_a_rebalance_keeps_the_tasks_and_the_offsets() {
    let mut f = Fixture::with_four_processed("at_least_once");
    f.clients.script().commit_offsets = Some(RDKafkaErrorCode::RebalanceInProgress);
    let committed_now = f.tm.maybe_commit(&f.consumer).expect("put off, not failed");
    assert!(!committed_now);
    assert_eq!(f.tm.task_ids().len(), 2);
    assert!(f.tm.maybe_commit(&f.consumer).expect("the next commit"));
    assert_eq!(
        f.clients.calls().last(),
        Some(&Call::CommitOffsets(four_committed()))
    );

    // A revocation's commit cannot wait: refused, it fails (its tasks close dirty).
    f.input(0, 3, "e");
    f.tm.process(&|_, _, _| false).expect("processing");
    f.clients.script().commit_offsets = Some(RDKafkaErrorCode::RebalanceInProgress);
    let err = f.tm.commit(&f.consumer).expect_err("refused");
    assert!(matches!(err, CollectorError::Fenced(_)), "{err:?}");
}

#[test]
fn an_input_holding_more_than_its_buffer_is_paused_until_its_task_drains_it() {
    let mut f = Fixture::with("at_least_once", &[("buffered.records.per.partition", "2")]);
    f.assign_and_start();
    for o in 0..3 {
        f.input(0, o, "x");
    }
    f.input(1, 0, "y");
    let before = f.clients.calls().len();
    f.tm.pause_full_inputs(&f.consumer).expect("pausing");
    assert_eq!(
        f.clients.calls()[before..],
        [Call::Pause(vec![("in".into(), 0)])],
        "three records buffered against two allowed; partition 1 holds one"
    );
    f.tm.pause_full_inputs(&f.consumer).expect("still full");
    assert_eq!(f.clients.calls().len(), before + 1, "paused once");

    // Resuming the instance resumes every input; one still over its buffer is paused again.
    f.tm.set_paused(&f.consumer, true).expect("instance paused");
    f.tm.set_paused(&f.consumer, false)
        .expect("instance resumed");
    assert_eq!(
        f.clients.calls().last(),
        Some(&Call::Resume(vec![("in".into(), 0), ("in".into(), 1)]))
    );
    f.tm.pause_full_inputs(&f.consumer).expect("full again");
    assert_eq!(
        f.clients.calls().last(),
        Some(&Call::Pause(vec![("in".into(), 0)])),
        "still over its buffer after the instance resumed"
    );

    assert_eq!(f.tm.process(&|_, _, _| false).expect("processing"), 4);
    f.tm.pause_full_inputs(&f.consumer).expect("resuming");
    assert_eq!(
        f.clients.calls().last(),
        Some(&Call::Resume(vec![("in".into(), 0)])),
        "a drained input is fetched again"
    );
    let calls = f.clients.calls().len();
    f.tm.pause_full_inputs(&f.consumer).expect("nothing to do");
    assert_eq!(f.clients.calls().len(), calls);
}
