//! `topology.optimization` merging repartition topics (Kafka Streams' `merge.repartition.topics`)
//! on Apache Kafka under exactly_once_v2: two aggregations below one key change share one
//! repartition topic, the other is never created, and both aggregations count every record once.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{KafkaStreams, Topology};
use streams_dsl::{Consumed, Grouped, Materialized, Produced, StreamsBuilder};
use streams_tests::kafka::{
    create_topics, init_tracing, long, produce, topic_names, ReadRecord, TopicReader,
};
use streams_tests::wordcount::test_config;
use streams_tests::TestBroker;

fn s() -> SerdeRef<String> {
    Serdes::string()
}

/// Counts per first letter, of all words and of long ones, below one key change.
fn topology(app: &str) -> Topology {
    let b = StreamsBuilder::new();
    let keyed = b
        .stream_with::<String, String>(&[&format!("{app}-in")], Consumed::with(s(), s()))
        .select_key(|_, v: &String| v[..1].to_string());
    let long_out = || Produced::with(s(), Serdes::nullable(Serdes::i64()));
    keyed
        .group_by_key(Grouped::as_("all-words").with_serdes(s(), s()))
        .count(Materialized::as_("all-counts"))
        .to_stream()
        .to_with(&format!("{app}-all"), long_out());
    keyed
        .filter(|_, v| v.len() > 4)
        .group_by_key(Grouped::as_("long-words").with_serdes(s(), s()))
        .count(Materialized::as_("long-counts"))
        .to_stream()
        .to_with(&format!("{app}-long"), long_out());
    b.build().unwrap()
}

/// The latest count per key, and whether every key's counts went up by one.
fn latest(records: &[ReadRecord]) -> (BTreeMap<String, i64>, bool) {
    let mut m = BTreeMap::new();
    let mut steps = true;
    for r in records {
        let n = r.value.as_deref().map(long).unwrap_or(0);
        let prev = m.insert(r.key_str(), n).unwrap_or(0);
        steps &= n == prev + 1;
    }
    (m, steps)
}

#[test]
fn two_aggregations_share_one_repartition_topic() {
    init_tracing();
    let broker = TestBroker::start();
    let b = broker.bootstrap_servers();
    let app = "merged-repartitions";
    let (input, all, long_words) = (
        format!("{app}-in"),
        format!("{app}-all"),
        format!("{app}-long"),
    );
    create_topics(b, &[(&input, 2), (&all, 1), (&long_words, 1)]);
    let words = ["apple", "ant", "banana", "bee", "avocado", "berry", "cat"];
    let values: Vec<&str> = (0..70).map(|i| words[i % words.len()]).collect();
    let recs: Vec<(Option<&str>, Option<&str>)> =
        values.iter().map(|v| (Some("k"), Some(*v))).collect();
    produce(b, &input, &recs);

    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(app, b, "exactly_once_v2", 1, dir.path());
    config
        .set("topology.optimization", "merge.repartition.topics")
        .unwrap();
    let mut streams = KafkaStreams::new(topology(app), config).unwrap();
    streams.start().unwrap();
    let mut all_reader = TopicReader::new(b, &all, true);
    let mut long_reader = TopicReader::new(b, &long_words, true);
    let want_all: BTreeMap<String, i64> = [("a", 30), ("b", 30), ("c", 10)]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    let want_long: BTreeMap<String, i64> = [("a", 20), ("b", 20)]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    let all_done = all_reader.poll_until(Duration::from_secs(60), |r| latest(r).0 == want_all);
    let long_done = long_reader.poll_until(Duration::from_secs(30), |r| latest(r).0 == want_long);
    all_reader.poll_for(Duration::from_millis(500));
    long_reader.poll_for(Duration::from_millis(500));
    assert!(streams.close(Duration::from_secs(30)));
    let (all_latest, all_steps) = latest(&all_reader.records);
    let (long_latest, long_steps) = latest(&long_reader.records);
    assert!(all_done, "all words: {all_latest:?}");
    assert!(long_done, "long words: {long_latest:?}");
    assert!(all_steps && long_steps, "each count once, in order");

    let internal: Vec<String> = topic_names(b)
        .into_iter()
        .filter(|t| t.starts_with(app) && t.ends_with("-repartition"))
        .collect();
    assert_eq!(internal, vec![format!("{app}-all-words-repartition")]);
}
