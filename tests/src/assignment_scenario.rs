//! The task-assignment scenario (`tests/tests/assignment_kafka.rs` asserts its invariants, the
//! bench's `assignment` rows report its numbers): word count under exactly_once_v2 on 6
//! partitions, every output update audited, through scale-out 2 -> 3 instances and scale-in 3 ->
//! 2 under steady load (and the same load without a change, the gaps' baseline), and a rolling
//! bounce without static membership. Per phase: changelog records restored by each instance,
//! seconds from the change until the group was balanced with the output complete, and the
//! longest output gap of counting tasks that did not move.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use streams_core::{KafkaStreams, StreamsConfig};
use streams_examples::word_count_topology;

use crate::kafka::{create_topics, produce, TopicReader};
use crate::wordcount::{assert_exact_updates, await_counts, expected_counts, test_config};

/// Partitions of the input and output topics.
pub const PARTITIONS: i32 = 6;
/// Word count's counting sub-topology, the stateful one.
pub const COUNTS: u32 = 1;
/// Settings that make the runtime's own assignor wait for warm-ups here: a round writes about
/// 150 changelog records per task.
pub const WARM_UPS: &[(&str, &str)] = &[
    ("acceptable.recovery.lag", "100"),
    ("probing.rebalance.interval.ms", "3000"),
];

/// Word count's settings under exactly_once_v2 with `group.membership` = `membership`.
pub fn config(app: &str, b: &str, membership: &str, dir: &Path) -> StreamsConfig {
    let mut c = test_config(app, b, "exactly_once_v2", 1, dir);
    c.set("group.membership", membership).unwrap();
    c
}

/// One instance with its own state directory, restartable on it.
pub struct Instance {
    /// The running instance, if any.
    pub streams: Option<KafkaStreams>,
    /// Its state directory, kept across restarts.
    pub dir: tempfile::TempDir,
}

/// What one phase cost: changelog records restored by each instance, the time from the
/// phase's change until the group was balanced with every count in the output, and (for the
/// phases under load) the longest time an output partition of a counting task that did not move
/// went without a committed update.
pub struct Phase {
    /// What changed.
    pub name: &'static str,
    /// Changelog records each instance restored.
    pub restored: Vec<u64>,
    /// From the change until balanced with the output complete.
    pub took: Duration,
    /// The longest output gap of counting tasks that did not move (phases under load).
    pub gap: Option<Duration>,
    /// Transactions the instances that ran through the phase aborted, counted by the producers
    /// they replaced (phases under load): a commit that met a join completing under it.
    pub aborted: u64,
}

/// Lines produced at a steady rate (100 a second) while a phase changes the group, and the
/// longest time each output partition went without a committed record meanwhile.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    producer: JoinHandle<Vec<String>>,
    watcher: JoinHandle<BTreeMap<i32, Duration>>,
}

impl Traffic {
    /// Starts producing lines to `input` and watching `output`.
    pub fn start(b: &str, input: &str, output: &str, round: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", b)
            .set("group.id", format!("{output}-watcher"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(output, p, Offset::End).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let watcher = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut last: BTreeMap<i32, Instant> =
                    (0..PARTITIONS).map(|p| (p, started)).collect();
                let mut longest: BTreeMap<i32, Duration> = BTreeMap::new();
                let mut note = |p: i32, now: Instant, last: &mut BTreeMap<i32, Instant>| {
                    let gap = now.saturating_duration_since(last[&p]);
                    let e = longest.entry(p).or_default();
                    *e = (*e).max(gap);
                    last.insert(p, now);
                };
                while !stop.load(Ordering::SeqCst) {
                    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                        note(m.partition(), Instant::now(), &mut last);
                    }
                }
                let now = Instant::now();
                for p in 0..PARTITIONS {
                    note(p, now, &mut last);
                }
                longest
            })
        };
        let producer = {
            let (b, input, stop) = (b.to_string(), input.to_string(), stop.clone());
            std::thread::spawn(move || {
                let p: BaseProducer = ClientConfig::new()
                    .set("bootstrap.servers", &b)
                    .set("linger.ms", "5")
                    .create()
                    .unwrap();
                let mut lines = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let line = format!("w{} g{} t{round}", lines.len() % 53, lines.len() % 7);
                    p.send(BaseRecord::<(), str>::to(&input).payload(&line))
                        .map_err(|(e, _)| e)
                        .unwrap();
                    p.poll(Duration::ZERO);
                    lines.push(line);
                    std::thread::sleep(Duration::from_millis(10));
                }
                p.flush(Duration::from_secs(30)).unwrap();
                lines
            })
        };
        Traffic {
            stop,
            producer,
            watcher,
        }
    }

    /// The lines produced, and each output partition's longest gap.
    pub fn stop(self) -> (Vec<String>, BTreeMap<i32, Duration>) {
        self.stop.store(true, Ordering::SeqCst);
        (self.producer.join().unwrap(), self.watcher.join().unwrap())
    }
}

/// Three word-count instances on one application, each on its own state directory, and every
/// line they were given, so the output can be audited.
pub struct Run<'a> {
    b: &'a str,
    app: String,
    membership: &'a str,
    settings: &'a [(&'a str, &'a str)],
    input: String,
    /// The instances.
    pub instances: Vec<Instance>,
    /// Reads the output, read_committed.
    pub reader: TopicReader,
    /// Every line produced.
    pub lines: Vec<String>,
    round: usize,
    /// What each phase cost.
    pub phases: Vec<Phase>,
}

impl Run<'_> {
    /// Starts instance `i` with the run's membership.
    pub fn start(&mut self, i: usize) {
        self.start_with(i, self.membership);
    }

    /// Starts instance `i` with `membership`.
    pub fn start_with(&mut self, i: usize, membership: &str) {
        let inst = &mut self.instances[i];
        let mut c = config(&self.app, self.b, membership, inst.dir.path());
        for (k, v) in self.settings {
            c.set(k, v).unwrap();
        }
        let mut s = KafkaStreams::new(
            word_count_topology(&self.input, &format!("{}-out", self.app)).unwrap(),
            c,
        )
        .unwrap();
        s.start().unwrap();
        inst.streams = Some(s);
    }

    /// Closes instance `i`.
    pub fn stop(&mut self, i: usize) {
        let mut s = self.instances[i].streams.take().unwrap();
        assert!(s.close(Duration::from_secs(60)));
    }

    /// Waits until the group is stable with one member per running instance, every instance
    /// runs, each runs its share of the stateful tasks, and that lasts longer than a heartbeat
    /// interval (a cooperative hand-over's second rebalance starts at the next heartbeat): what
    /// a phase restored is then all counted. Returns when that state began.
    pub fn settle(&self) -> Instant {
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
            let share = PARTITIONS as usize / running;
            let settled = g.state() == "Stable"
                && g.members().len() == running
                && self
                    .instances
                    .iter()
                    .filter_map(|i| i.streams.as_ref())
                    .all(|s| {
                        let counting = s
                            .active_tasks()
                            .iter()
                            .filter(|t| t.subtopology == COUNTS)
                            .count();
                        s.state() == streams_core::State::Running && counting >= share
                    });
            stable_since = if settled {
                stable_since.or(Some(Instant::now()))
            } else {
                None
            };
            if let Some(since) = stable_since.filter(|t| t.elapsed() > Duration::from_secs(4)) {
                return since;
            }
            assert!(Instant::now() < deadline, "the group never settled");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Changelog records each instance restored so far.
    pub fn restored(&self) -> Vec<u64> {
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
    pub fn round(&mut self, name: &'static str, changed_at: Instant, before: Vec<u64>) {
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
        let settled = self.settle();
        let after = self.restored();
        self.phases.push(Phase {
            name,
            restored: after
                .iter()
                .zip(before.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            took: settled.saturating_duration_since(changed_at),
            gap: None,
            aborted: 0,
        });
    }
}

impl Run<'_> {
    /// Which instance runs each counting task now.
    pub fn counting_owners(&self) -> BTreeMap<i32, usize> {
        self.instances
            .iter()
            .enumerate()
            .filter_map(|(i, inst)| inst.streams.as_ref().map(|s| (i, s)))
            .flat_map(|(i, s)| {
                s.active_tasks()
                    .into_iter()
                    .filter(|t| t.subtopology == COUNTS)
                    .map(move |t| (t.partition, i))
            })
            .collect()
    }

    /// Runs `change` (starting or stopping instances) under steady load, then a round; the
    /// phase records the longest output gap of the counting tasks that stayed where they were
    /// (a counting task writes the output partition of its number).
    pub fn change_under_load(&mut self, name: &'static str, change: impl FnOnce(&mut Self)) {
        let before = self.restored();
        let producers_before = self.producers_created();
        let owners = self.counting_owners();
        let output = format!("{}-out", self.app);
        let traffic = Traffic::start(self.b, &self.input, &output, self.round);
        std::thread::sleep(Duration::from_secs(1));
        let t = Instant::now();
        change(self);
        self.settle();
        let (lines, gaps) = traffic.stop();
        self.lines.extend(lines);
        let producers_after = self.producers_created();
        let aborted = producers_before
            .iter()
            .zip(&producers_after)
            .filter_map(|(b, a)| Some(a.as_ref()?.saturating_sub((*b)?)))
            .sum();
        let after = self.counting_owners();
        let gap = gaps
            .iter()
            .filter(|(p, _)| owners.contains_key(p) && owners.get(p) == after.get(p))
            .map(|(_, g)| *g)
            .max();
        self.round(name, t, before);
        if let Some(phase) = self.phases.last_mut() {
            phase.gap = gap;
            phase.aborted = aborted;
        }
    }

    /// Transactional producers each running instance created so far (`None`: not running).
    fn producers_created(&self) -> Vec<Option<u64>> {
        self.instances
            .iter()
            .map(|i| {
                i.streams.as_ref().map(|s| {
                    s.counters()
                        .transactional_producers_created
                        .load(Ordering::SeqCst) as u64
                })
            })
            .collect()
    }
}

/// A run of application `app` on `b` (its topics created), no instance started yet.
pub fn new_run<'a>(
    b: &'a str,
    app: String,
    membership: &'a str,
    settings: &'a [(&'a str, &'a str)],
) -> Run<'a> {
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
        settings,
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

/// Runs every phase with `membership` and `settings` and returns them.
pub fn phases(b: &str, app: &str, membership: &str, settings: &[(&str, &str)]) -> Vec<Phase> {
    let mut run = new_run(b, app.to_string(), membership, settings);
    run.start(0);
    run.start(1);
    run.round("start (2 instances)", Instant::now(), vec![0; 3]);
    // The same load with no change: the output gap every commit leaves anyway.
    run.change_under_load("steady", |_| {});

    run.change_under_load("scale-out 2 -> 3", |run| run.start(2));
    run.change_under_load("scale-in 3 -> 2", |run| run.stop(2));

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

/// The phase called `name`.
pub fn find<'a>(phases: &'a [Phase], name: &str) -> &'a Phase {
    phases.iter().find(|p| p.name == name).unwrap()
}

/// The phases of the runs side by side, a markdown table: restored records, seconds until
/// balanced and the longest gap of tasks that did not move, per run.
pub fn table(runs: &[(&str, &[Phase])]) -> String {
    let mut out = String::from("| phase |");
    for (name, _) in runs {
        out.push_str(&format!(" restored ({name}) | s | gap s |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|---|---|".repeat(runs.len()));
    out.push('\n');
    let Some((_, first)) = runs.first() else {
        return out;
    };
    for (i, phase) in first.iter().enumerate() {
        out.push_str(&format!("| {} |", phase.name));
        for (_, phases) in runs {
            if let Some(p) = phases.get(i) {
                let mut gap = p
                    .gap
                    .map_or("-".to_string(), |g| format!("{:.1}", g.as_secs_f64()));
                if p.aborted > 0 {
                    gap.push_str(&format!(" ({} aborted)", p.aborted));
                }
                out.push_str(&format!(
                    " {:?} | {:.1} | {gap} |",
                    p.restored,
                    p.took.as_secs_f64()
                ));
            }
        }
        out.push('\n');
    }
    out
}
