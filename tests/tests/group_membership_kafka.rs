//! The runtime's own consumer group membership against Apache Kafka: members join with an
//! assignor of their own, hand partitions over cooperatively (never two owners at once), keep
//! their place through heartbeats while their owner is busy, leave, and commit offsets, plain and
//! inside a transaction, only with the generation they are in (the last one until every member
//! has joined again).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use streams_core::runtime::group::{
    send_offsets_to_transaction, Assignment, Assignor, CommittedOffset, GenerationMetadata,
    GroupMember, MemberConfig, MemberEvent, MemberSubscription, OffsetClient, Partition,
    Subscription,
};
use streams_core::StreamsError;
use streams_tests::broker::KAFKA_3_VERSION;
use streams_tests::kafka::{create_topics, init_tracing};
use streams_tests::TestBroker;

/// Deals the partitions of one topic round-robin over the members sorted by id.
struct RoundRobin {
    topic: String,
    partitions: i32,
}

impl Assignor for RoundRobin {
    fn name(&self) -> String {
        "test-round-robin".into()
    }

    fn subscription(&self) -> Subscription {
        Subscription {
            topics: vec![self.topic.clone()],
            ..Subscription::default()
        }
    }

    fn assign(
        &self,
        _generation: i32,
        members: &[MemberSubscription],
        topics: &BTreeMap<String, i32>,
    ) -> Result<BTreeMap<String, Assignment>, String> {
        assert_eq!(
            topics.get(&self.topic),
            Some(&self.partitions),
            "{topics:?}"
        );
        let mut ids: Vec<&str> = members.iter().map(|m| m.member_id.as_str()).collect();
        ids.sort();
        let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
        for p in 0..self.partitions {
            let id = ids[p as usize % ids.len()];
            out.entry(id.to_string())
                .or_default()
                .partitions
                .insert((self.topic.clone(), p));
        }
        Ok(out)
    }
}

fn config(bootstrap: &str, group: &str, client: &str) -> MemberConfig {
    let mut c = MemberConfig::new(bootstrap, group, client);
    c.session_timeout = Duration::from_secs(6);
    c.heartbeat_interval = Duration::from_millis(500);
    c.rebalance_timeout = Duration::from_secs(20);
    c
}

fn start(bootstrap: &str, group: &str, client: &str, topic: &str, partitions: i32) -> GroupMember {
    let assignor = Arc::new(RoundRobin {
        topic: topic.into(),
        partitions,
    });
    GroupMember::start(config(bootstrap, group, client), assignor).unwrap()
}

/// What one owner holds, kept as an owner would: revocations are committed and reported.
#[derive(Default)]
struct Owner {
    owned: BTreeSet<Partition>,
    generation: i32,
    /// The generation each partition was last given up in.
    revoked_in: BTreeMap<Partition, i32>,
    /// The generation each partition was last received in.
    added_in: BTreeMap<Partition, i32>,
}

impl Owner {
    /// Serves the member's events; returns whether anything happened.
    fn serve(&mut self, member: &GroupMember, wait: Duration) -> bool {
        let events = member.poll_timeout(wait).unwrap();
        for e in &events {
            match e {
                MemberEvent::Assigned {
                    generation,
                    assignment,
                    added,
                    revoked,
                } => {
                    self.generation = generation.id;
                    for p in added {
                        self.owned.insert(p.clone());
                        self.added_in.insert(p.clone(), generation.id);
                    }
                    for p in revoked {
                        self.owned.remove(p);
                        self.revoked_in.insert(p.clone(), generation.id);
                    }
                    assert_eq!(self.owned, assignment.partitions);
                    if !revoked.is_empty() {
                        member.revoked(revoked);
                    }
                }
                MemberEvent::Lost { partitions, reason } => {
                    panic!("lost {partitions:?}: {reason}")
                }
                MemberEvent::Revoked { partitions } => {
                    panic!("eager revocation of {partitions:?} among members of one protocol")
                }
            }
        }
        !events.is_empty()
    }
}

fn all(topic: &str, n: i32) -> BTreeSet<Partition> {
    (0..n).map(|p| (topic.to_string(), p)).collect()
}

#[test]
fn members_hand_partitions_over_cooperatively_and_never_share_one() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let (topic, group, n) = ("membership-coop", "membership-coop-group", 6);
    create_topics(b, &[(topic, n)]);

    let a = start(b, group, "member-a", topic, n);
    let mut owner_a = Owner::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while owner_a.owned != all(topic, n) {
        assert!(
            Instant::now() < deadline,
            "a alone never got every partition"
        );
        owner_a.serve(&a, Duration::from_millis(200));
    }
    let first_generation = owner_a.generation;

    let bm = start(b, group, "member-b", topic, n);
    let mut owner_b = Owner::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        owner_b.serve(&bm, Duration::from_millis(50));
        owner_a.serve(&a, Duration::from_millis(50));
        let shared: Vec<_> = owner_a.owned.intersection(&owner_b.owned).collect();
        assert!(shared.is_empty(), "two owners at once of {shared:?}");
        if owner_a.owned.len() == 3 && owner_b.owned.len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no balance: a {:?}, b {:?}",
            owner_a.owned,
            owner_b.owned
        );
    }
    let union: BTreeSet<_> = owner_a.owned.union(&owner_b.owned).cloned().collect();
    assert_eq!(union, all(topic, n));
    // Cooperative: a gave up exactly what b got, and kept the rest throughout; b received each
    // partition in a later generation than the one a gave it up in.
    assert_eq!(
        owner_a.revoked_in.keys().cloned().collect::<BTreeSet<_>>(),
        owner_b.owned
    );
    for (p, received) in &owner_b.added_in {
        let given_up = owner_a.revoked_in[p];
        assert!(
            given_up > first_generation && given_up < *received,
            "{p:?} given up by a in generation {given_up}, received by b in {received}"
        );
    }

    // The broker sees one consumer group of two members speaking our assignor.
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .create()
        .unwrap();
    let groups = probe
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .unwrap();
    let described = &groups.groups()[0];
    assert_eq!(described.protocol_type(), "consumer");
    assert_eq!(described.protocol(), "test-round-robin");
    assert_eq!(described.members().len(), 2);

    // a leaves: b gets everything without waiting for a's session to time out.
    let left_at = Instant::now();
    a.close(true);
    while owner_b.owned != all(topic, n) {
        assert!(
            left_at.elapsed() < Duration::from_secs(5),
            "b did not get a's partitions within 5 s of a leaving (session timeout 6 s)"
        );
        owner_b.serve(&bm, Duration::from_millis(100));
    }
}

#[test]
fn heartbeats_keep_a_busy_owner_in_the_group_and_a_silent_one_is_taken_out() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let (topic, group, n) = ("membership-busy", "membership-busy-group", 2);
    create_topics(b, &[(topic, n)]);
    let mut c = config(b, group, "busy");
    c.rebalance_timeout = Duration::from_secs(12);
    let member = GroupMember::start(
        c,
        Arc::new(RoundRobin {
            topic: topic.into(),
            partitions: n,
        }),
    )
    .unwrap();
    let mut owner = Owner::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while owner.owned != all(topic, n) {
        assert!(Instant::now() < deadline, "never assigned");
        owner.serve(&member, Duration::from_millis(200));
    }
    let generation = member.generation().unwrap();
    // Busy for longer than the session timeout (6 s) but within max.poll.interval (12 s).
    std::thread::sleep(Duration::from_secs(9));
    assert!(member.poll().unwrap().is_empty());
    assert_eq!(member.generation().unwrap(), generation);

    // Silent past max.poll.interval: the member leaves, the owner learns it lost everything,
    // and the member joins again once the owner polls.
    std::thread::sleep(Duration::from_secs(14));
    let events = member.poll().unwrap();
    assert!(
        matches!(&events[..], [MemberEvent::Lost { partitions, .. }] if *partitions == all(topic, n)),
        "{events:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = member.poll_timeout(Duration::from_millis(200)).unwrap();
        if let Some(MemberEvent::Assigned {
            assignment,
            generation: g,
            ..
        }) = events.last()
        {
            assert_eq!(assignment.partitions, all(topic, n));
            assert!(g.id > generation.id);
            break;
        }
        assert!(Instant::now() < deadline, "did not join again");
    }
}

fn offsets(topic: &str, offset: i64) -> BTreeMap<Partition, CommittedOffset> {
    BTreeMap::from([(
        (topic.to_string(), 0),
        CommittedOffset {
            offset,
            metadata: Some("partition-time".into()),
        },
    )])
}

/// A transactional producer with its transactions initialized.
fn transactional_producer(b: &str, transactional_id: &str) -> BaseProducer {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("transactional.id", transactional_id)
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    producer
}

/// `offset` for partition 0 of `topic`, as a transaction's offsets.
fn partition_offset(topic: &str, offset: i64) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    tpl
}

#[test]
fn offsets_commit_only_with_the_generation_the_member_is_in() {
    init_tracing();
    let broker = TestBroker::start();
    offsets_and_fencing(broker.bootstrap_servers());
}

#[test]
fn offsets_commit_only_with_the_generation_the_member_is_in_on_kafka_3() {
    init_tracing();
    let broker = TestBroker::shared(KAFKA_3_VERSION);
    offsets_and_fencing(broker.bootstrap_servers());
}

fn offsets_and_fencing(b: &str) {
    let (topic, group) = ("membership-offsets", "membership-offsets-group");
    create_topics(b, &[(topic, 1)]);
    let member = start(b, group, "offsets", topic, 1);
    let mut owner = Owner::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while owner.owned.is_empty() {
        assert!(Instant::now() < deadline, "never assigned");
        owner.serve(&member, Duration::from_millis(200));
    }
    let generation = member.generation().unwrap();
    let mut client = OffsetClient::new(&config(b, group, "offsets"));
    let timeout = Duration::from_secs(30);
    let partitions = BTreeSet::from([(topic.to_string(), 0)]);
    assert!(client.fetch(&partitions, true, timeout).unwrap().is_empty());

    client
        .commit(&generation, &offsets(topic, 42), timeout)
        .unwrap();
    assert_eq!(
        client.fetch(&partitions, true, timeout).unwrap(),
        offsets(topic, 42)
    );

    // A zombie of an earlier generation is refused, and nothing changes.
    let mut stale = generation.clone();
    stale.id -= 1;
    match client.commit(&stale, &offsets(topic, 99), timeout) {
        Err(StreamsError::Group { fenced: true, .. }) => {}
        other => panic!("a stale generation committed: {other:?}"),
    }
    assert_eq!(
        client.fetch(&partitions, false, timeout).unwrap(),
        offsets(topic, 42)
    );

    // Inside a transaction (exactly_once_v2): the member's generation commits with the output,
    // an earlier one is fenced by the broker.
    let producer = transactional_producer(b, "membership-offsets-txn");
    let txn_offsets = |offset: i64| partition_offset(topic, offset);
    let current =
        GenerationMetadata::new(group, generation.id, &generation.member_id, None).unwrap();
    producer.begin_transaction().unwrap();
    producer
        .send(BaseRecord::to(topic).key("k").payload("v"))
        .map_err(|(e, _)| e)
        .unwrap();
    send_offsets_to_transaction(producer.client(), &txn_offsets(50), &current, timeout).unwrap();
    producer.commit_transaction(timeout).unwrap();
    assert_eq!(
        client.fetch(&partitions, true, timeout).unwrap()[&(topic.to_string(), 0)].offset,
        50
    );

    let zombie =
        GenerationMetadata::new(group, generation.id - 1, &generation.member_id, None).unwrap();
    producer.begin_transaction().unwrap();
    let refused =
        send_offsets_to_transaction(producer.client(), &txn_offsets(77), &zombie, timeout)
            .expect_err("an earlier generation added offsets to the transaction");
    assert_eq!(
        refused.code,
        RDKafkaErrorCode::IllegalGeneration,
        "{refused}"
    );
    assert!(refused.requires_abort, "{refused:?}");
    producer.abort_transaction(timeout).unwrap();
    assert_eq!(
        client.fetch(&partitions, true, timeout).unwrap()[&(topic.to_string(), 0)].offset,
        50
    );
}

#[test]
fn offsets_commit_with_the_last_generation_until_every_member_has_joined() {
    init_tracing();
    let broker = TestBroker::start();
    commits_through_a_join(broker.bootstrap_servers());
}

#[test]
fn offsets_commit_with_the_last_generation_until_every_member_has_joined_on_kafka_3() {
    init_tracing();
    let broker = TestBroker::shared(KAFKA_3_VERSION);
    commits_through_a_join(broker.bootstrap_servers());
}

/// What lets the stream threads commit through a rebalance (`GroupMember::hold`): while the
/// group waits for its members to join again it keeps the last generation, and both offset
/// commits, plain and transactional, are accepted with it; once the join completes they are
/// refused.
fn commits_through_a_join(b: &str) {
    let (topic, group) = ("membership-join-commits", "membership-join-commits-group");
    create_topics(b, &[(topic, 2)]);
    // Ready before the group forms: `fast`'s owner does not poll from the moment the group is
    // balanced until the join below completes, and must stay within its 20 s
    // max.poll.interval.ms; a cluster's first transactional producer (the transaction log is
    // created then) took seconds of that on a loaded machine, and `fast` left the group.
    let producer = transactional_producer(b, "membership-join-commits-txn");
    // `slow` learns of a rebalance only at its next heartbeat, 20 s after its last one: the group
    // waits for it meanwhile. The group waits as long as its longest rebalance timeout, so `slow`
    // must not be taken out for joining late: 20 s would race its own heartbeat when a rebalance
    // begins right after it heartbeated.
    let mut slow_config = config(b, group, "slow");
    slow_config.session_timeout = Duration::from_secs(60);
    slow_config.heartbeat_interval = Duration::from_secs(20);
    slow_config.rebalance_timeout = Duration::from_secs(60);
    let slow = GroupMember::start(
        slow_config,
        Arc::new(RoundRobin {
            topic: topic.into(),
            partitions: 2,
        }),
    )
    .unwrap();
    let fast = start(b, group, "fast", topic, 2);
    let (mut slow_owner, mut fast_owner) = (Owner::default(), Owner::default());
    let deadline = Instant::now() + Duration::from_secs(60);
    while slow_owner.owned.len() != 1 || fast_owner.owned.len() != 1 {
        assert!(Instant::now() < deadline, "never balanced");
        slow_owner.serve(&slow, Duration::from_millis(50));
        fast_owner.serve(&fast, Duration::from_millis(50));
    }
    let balanced = Instant::now();
    let generation = fast.generation().unwrap();

    // A third member makes the group rebalance; `fast` joins again within its 500 ms heartbeat
    // and waits there for `slow`.
    let third = start(b, group, "third", topic, 2);
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .create()
        .unwrap();
    let state = || {
        probe
            .fetch_group_list(Some(group), Duration::from_secs(10))
            .unwrap()
            .groups()[0]
            .state()
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while state() != "PreparingRebalance" {
        assert!(Instant::now() < deadline, "the group never rebalanced");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        balanced.elapsed() < Duration::from_secs(15),
        "too slow to test before `slow` heartbeats: {:?}",
        balanced.elapsed()
    );
    assert_eq!(state(), "PreparingRebalance");
    assert_eq!(fast.generation().unwrap().id, generation.id);
    // The stream threads' commits go ahead meanwhile; one refused now met the join completing.
    assert!(fast.rebalance_under_way());
    assert!(!fast.generation_superseded());
    assert!(fast.hold(Duration::ZERO).is_some());

    let mut client = OffsetClient::new(&config(b, group, "fast"));
    let timeout = Duration::from_secs(30);
    let partitions = BTreeSet::from([(topic.to_string(), 0)]);
    client
        .commit(&generation, &offsets(topic, 10), timeout)
        .unwrap();
    let txn_offsets = |offset: i64| partition_offset(topic, offset);
    let metadata =
        GenerationMetadata::new(group, generation.id, &generation.member_id, None).unwrap();
    producer.begin_transaction().unwrap();
    send_offsets_to_transaction(producer.client(), &txn_offsets(20), &metadata, timeout).unwrap();
    producer.commit_transaction(timeout).unwrap();
    assert_eq!(
        state(),
        "PreparingRebalance",
        "the commits outlasted the join"
    );
    assert_eq!(
        client.fetch(&partitions, true, timeout).unwrap()[&(topic.to_string(), 0)].offset,
        20
    );

    // `slow` joins: the group moves to the next generation and the last one is refused. From
    // the JoinGroup answer until `fast`'s owner serves the new assignment, its commits wait.
    slow.request_rejoin("the test lets the join complete");
    let mut third_owner = Owner::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fast.generation_superseded() {
        assert!(Instant::now() < deadline, "the join never completed");
        slow_owner.serve(&slow, Duration::from_millis(50));
        third_owner.serve(&third, Duration::from_millis(50));
    }
    assert!(fast.hold(Duration::ZERO).is_none());
    assert!(fast.rebalance_under_way());
    while fast_owner.generation == generation.id {
        assert!(Instant::now() < deadline, "no assignment after the join");
        fast_owner.serve(&fast, Duration::from_millis(50));
    }
    assert!(!fast.generation_superseded());
    assert!(!fast.rebalance_under_way());
    assert!(fast.hold(Duration::ZERO).is_some());
    match client.commit(&generation, &offsets(topic, 30), timeout) {
        Err(StreamsError::Group { fenced: true, .. }) => {}
        other => panic!("the last generation committed after the join: {other:?}"),
    }
    producer.begin_transaction().unwrap();
    let refused =
        send_offsets_to_transaction(producer.client(), &txn_offsets(40), &metadata, timeout)
            .expect_err("the last generation added offsets after the join");
    assert_eq!(
        refused.code,
        RDKafkaErrorCode::IllegalGeneration,
        "{refused}"
    );
    producer.abort_transaction(timeout).unwrap();
    assert_eq!(
        client.fetch(&partitions, true, timeout).unwrap()[&(topic.to_string(), 0)].offset,
        20
    );
}
