//! Task assignment through the runtime's own group membership against librdkafka's eager `range`
//! assignment, in the same run, on word count under exactly_once_v2 (every output update
//! audited): scale-out 2 -> 3 instances, scale-in 3 -> 2, and a rolling bounce of the instances
//! without static membership. What each phase restored (changelog records) and how long until
//! the output was complete is printed for both; the invariants of sticky, state-aware,
//! cooperative assignment are asserted for the runtime's own.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use streams_core::{KafkaStreams, StreamsConfig};
use streams_examples::word_count_topology;
use streams_tests::kafka::{create_topics, init_tracing, produce, TopicReader};
use streams_tests::wordcount::{assert_exact_updates, await_counts, expected_counts, test_config};
use streams_tests::TestBroker;

const PARTITIONS: i32 = 6;

fn config(app: &str, b: &str, membership: &str, dir: &Path) -> StreamsConfig {
    let mut c = test_config(app, b, "exactly_once_v2", 1, dir);
    c.set("group.membership", membership).unwrap();
    c
}

/// One instance with its own state directory, restartable on it.
struct Instance {
    streams: Option<KafkaStreams>,
    dir: tempfile::TempDir,
}

/// What one phase cost: changelog records restored by each instance, and the time from the
/// phase's change until every count was in the output.
struct Phase {
    name: &'static str,
    restored: Vec<u64>,
    took: Duration,
}

struct Run<'a> {
    b: &'a str,
    app: String,
    membership: &'a str,
    input: String,
    instances: Vec<Instance>,
    reader: TopicReader,
    lines: Vec<String>,
    round: usize,
    phases: Vec<Phase>,
}

impl Run<'_> {
    fn start(&mut self, i: usize) {
        self.start_with(i, self.membership);
    }

    fn start_with(&mut self, i: usize, membership: &str) {
        let inst = &mut self.instances[i];
        let mut s = KafkaStreams::new(
            word_count_topology(&self.input, &format!("{}-out", self.app)).unwrap(),
            config(&self.app, self.b, membership, inst.dir.path()),
        )
        .unwrap();
        s.start().unwrap();
        inst.streams = Some(s);
    }

    fn stop(&mut self, i: usize) {
        let mut s = self.instances[i].streams.take().unwrap();
        assert!(s.close(Duration::from_secs(60)));
    }

    /// Waits until the group is stable with one member per running instance, every instance
    /// runs, and that lasts longer than a heartbeat interval (a cooperative hand-over's second
    /// rebalance starts at the next heartbeat): what a phase restored is then all counted.
    fn settle(&self) {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let probe: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.b)
            .create()
            .unwrap();
        let running = self
            .instances
            .iter()
            .filter(|i| i.streams.is_some())
            .count();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut stable_since: Option<Instant> = None;
        loop {
            let groups = probe
                .fetch_group_list(Some(&self.app), Duration::from_secs(10))
                .unwrap();
            let g = &groups.groups()[0];
            let settled = g.state() == "Stable"
                && g.members().len() == running
                && self
                    .instances
                    .iter()
                    .filter_map(|i| i.streams.as_ref())
                    .all(|s| s.state() == streams_core::State::Running);
            stable_since = if settled {
                stable_since.or(Some(Instant::now()))
            } else {
                None
            };
            if stable_since.is_some_and(|t| t.elapsed() > Duration::from_secs(4)) {
                return;
            }
            assert!(Instant::now() < deadline, "the group never settled");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn restored(&self) -> Vec<u64> {
        self.instances
            .iter()
            .map(|i| {
                i.streams
                    .as_ref()
                    .map_or(0, |s| s.counters().restored.load(Ordering::SeqCst))
            })
            .collect()
    }

    /// Produces a round of lines and waits until every count is in the output; records what
    /// the instances restored since `before`.
    fn round(&mut self, name: &'static str, changed_at: Instant, before: Vec<u64>) {
        self.round += 1;
        tracing::info!(membership = self.membership, phase = name, "round");
        let lines: Vec<String> = (0..300)
            .map(|i| format!("w{} v{} r{}", i % 53, i % 11, self.round))
            .collect();
        let recs: Vec<(Option<&str>, Option<&str>)> =
            lines.iter().map(|l| (None, Some(l.as_str()))).collect();
        produce(self.b, &self.input, &recs);
        self.lines.extend(lines);
        let want = expected_counts(self.lines.iter().map(String::as_str));
        await_counts(&mut self.reader, &want, Duration::from_secs(120));
        self.settle();
        let after = self.restored();
        self.phases.push(Phase {
            name,
            restored: after
                .iter()
                .zip(before.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            took: changed_at.elapsed(),
        });
    }
}

fn new_run<'a>(b: &'a str, app: String, membership: &'a str) -> Run<'a> {
    let input = format!("{app}-in");
    create_topics(
        b,
        &[(&input, PARTITIONS), (&format!("{app}-out"), PARTITIONS)],
    );
    Run {
        b,
        reader: TopicReader::new(b, &format!("{app}-out"), true),
        app,
        membership,
        input,
        instances: (0..3)
            .map(|_| Instance {
                streams: None,
                dir: tempfile::tempdir().unwrap(),
            })
            .collect(),
        lines: Vec::new(),
        round: 0,
        phases: Vec::new(),
    }
}

/// Runs every phase with `membership` and returns them.
fn phases(b: &str, membership: &str) -> Vec<Phase> {
    let mut run = new_run(b, format!("assignment-{membership}"), membership);
    run.start(0);
    run.start(1);
    run.round("start (2 instances)", Instant::now(), vec![0; 3]);
    run.round("steady", Instant::now(), run.restored());

    let before = run.restored();
    let t = Instant::now();
    run.start(2);
    run.round("scale-out 2 -> 3", t, before);

    let before = run.restored();
    let t = Instant::now();
    run.stop(2);
    run.round("scale-in 3 -> 2", t, before);

    for i in 0..2 {
        let t = Instant::now();
        run.stop(i);
        run.round(
            if i == 0 {
                "bounce: instance 0 away"
            } else {
                "bounce: instance 1 away"
            },
            t,
            run.restored(),
        );
        let before = run.restored();
        let t = Instant::now();
        run.start(i);
        run.round(
            if i == 0 {
                "bounce: instance 0 back"
            } else {
                "bounce: instance 1 back"
            },
            t,
            before,
        );
    }
    let want = expected_counts(run.lines.iter().map(String::as_str));
    assert_exact_updates(&run.reader, &want);
    for i in 0..2 {
        run.stop(i);
    }
    run.phases
}

fn find<'a>(phases: &'a [Phase], name: &str) -> &'a Phase {
    phases.iter().find(|p| p.name == name).unwrap()
}

#[test]
fn own_assignment_moves_only_what_it_must_and_returns_tasks_to_their_state() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let ours = phases(b, "streams");
    let range = phases(b, "librdkafka");

    println!("\n| phase | restored (streams) | s | restored (librdkafka range) | s |");
    println!("|---|---|---|---|---|");
    for (o, r) in ours.iter().zip(&range) {
        println!(
            "| {} | {:?} | {:.1} | {:?} | {:.1} |",
            o.name,
            o.restored,
            o.took.as_secs_f64(),
            r.restored,
            r.took.as_secs_f64()
        );
    }

    // Scale-out: the two instances that stay keep their remaining tasks open; only the new
    // instance restores (the tasks it takes over).
    let out = find(&ours, "scale-out 2 -> 3");
    assert_eq!(&out.restored[..2], &[0, 0], "{:?}", out.restored);
    // A bounced instance gets back the tasks whose state it kept: it restores only what the
    // others wrote to their changelogs since it left (with the cache off, one update per word
    // occurrence of the round produced while it was away and of the one produced while it
    // rejoins: at most 2 x 900), not the tasks' whole history (every round's updates).
    for i in 0..2 {
        let back = find(
            &ours,
            if i == 0 {
                "bounce: instance 0 back"
            } else {
                "bounce: instance 1 back"
            },
        );
        assert!(
            back.restored[i] <= 1800,
            "instance {i} restored {} records on return",
            back.restored[i]
        );
    }
}

/// The protocol the group `app` agreed on, as the broker describes it once the group is stable
/// (a rebalancing group reports none).
fn group_protocol(b: &str, app: &str) -> String {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let probe: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", b)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let groups = probe
            .fetch_group_list(Some(app), Duration::from_secs(10))
            .unwrap();
        let g = &groups.groups()[0];
        if g.state() == "Stable" || Instant::now() > deadline {
            return g.protocol().to_string();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn instances_of_an_earlier_version_are_upgraded_one_at_a_time() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "assignment-upgrade".to_string();
    let mut run = new_run(b, app.clone(), "librdkafka");
    // The earlier version: threads joined through librdkafka's consumer (range).
    run.start_with(0, "librdkafka");
    run.start_with(1, "librdkafka");
    run.round("earlier version", Instant::now(), vec![0; 3]);
    assert_eq!(group_protocol(b, &app), "range");

    // One instance bounced onto the runtime's own membership: the group agrees on `range`, which
    // the new member also speaks (eagerly, as its peer).
    run.stop(0);
    run.start_with(0, "streams");
    run.round("one instance upgraded", Instant::now(), vec![0; 3]);
    assert_eq!(group_protocol(b, &app), "range");

    // The last one: the group moves to the runtime's own assignor.
    run.stop(1);
    run.start_with(1, "streams");
    run.round("both upgraded", Instant::now(), vec![0; 3]);
    assert_eq!(group_protocol(b, &app), "rstreams");

    let want = expected_counts(run.lines.iter().map(String::as_str));
    assert_exact_updates(&run.reader, &want);
    run.stop(0);
    run.stop(1);
}

#[test]
fn a_static_member_leaves_at_once_when_closed_with_leave_group() {
    use streams_core::runtime::{CloseOptions, GroupMembershipOperation};
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "assignment-close-leave";
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topics(b, &[(&input, 2), (&output, 2)]);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut instances: Vec<KafkaStreams> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let mut c = config(app, b, "streams", dir.path());
            c.set("group.instance.id", &format!("close-{i}")).unwrap();
            // Long enough that a member which stays is still counted when the check ends.
            c.set("consumer.session.timeout.ms", "60000").unwrap();
            let mut s =
                KafkaStreams::new(word_count_topology(&input, &output).unwrap(), c).unwrap();
            s.start().unwrap();
            s
        })
        .collect();
    for s in &instances {
        s.wait_until_running(Duration::from_secs(60)).unwrap();
    }
    let members = || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let probe: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", b)
            .create()
            .unwrap();
        probe
            .fetch_group_list(Some(app), Duration::from_secs(10))
            .unwrap()
            .groups()[0]
            .members()
            .len()
    };
    assert_eq!(members(), 2);
    let closed_at = Instant::now();
    assert!(instances[0].close_with(
        CloseOptions::default()
            .timeout(Duration::from_secs(30))
            .group_membership_operation(GroupMembershipOperation::LeaveGroup)
    ));
    // Without the leave, the static member would stay counted for its 60 s session.
    while members() != 1 {
        assert!(
            closed_at.elapsed() < Duration::from_secs(20),
            "the static member did not leave"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    instances[1].close(Duration::from_secs(30));
}
