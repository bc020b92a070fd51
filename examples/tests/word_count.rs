//! Word count through the TopologyTestDriver: exact counts, updates in order, store contents.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use streams_core::serdes::Serdes;
use streams_core::{StreamsConfig, TopologyTestDriver};
use streams_examples::{word_count_topology, SAMPLE_TEXT};

fn driver() -> TopologyTestDriver {
    TopologyTestDriver::new(
        word_count_topology("lines", "counts").unwrap(),
        StreamsConfig::new("wc").unwrap(),
    )
    .unwrap()
}

#[test]
fn exact_counts_for_repeated_words() {
    let d = driver();
    let input = d.create_input_topic(
        "lines",
        Serdes::nullable(Serdes::string()),
        Serdes::string(),
    );
    let output = d.create_output_topic("counts", Serdes::string(), Serdes::nullable(Serdes::i64()));
    input
        .pipe_input(None, "Hello Kafka Streams".into())
        .unwrap();
    input
        .pipe_input(
            Some("key-is-ignored".into()),
            "hello, streams; HELLO".into(),
        )
        .unwrap();
    input.pipe_input(None, "".into()).unwrap();
    let updates = output.read_key_values_to_list().unwrap();
    let expected: Vec<(String, Option<i64>)> = [
        ("hello", 1),
        ("kafka", 1),
        ("streams", 1),
        ("hello", 2),
        ("streams", 2),
        ("hello", 3),
    ]
    .into_iter()
    .map(|(w, c)| (w.to_string(), Some(c)))
    .collect();
    assert_eq!(updates, expected);
    assert_eq!(
        d.key_value_store_get::<String, i64>("counts", &"hello".to_string())
            .unwrap(),
        Some(3)
    );
}

#[test]
fn sample_text_counts() {
    let d = driver();
    let input = d.create_input_topic(
        "lines",
        Serdes::nullable(Serdes::string()),
        Serdes::string(),
    );
    let output = d.create_output_topic("counts", Serdes::string(), Serdes::nullable(Serdes::i64()));
    for line in SAMPLE_TEXT.lines() {
        input.pipe_input(None, line.to_string()).unwrap();
    }
    let counts: HashMap<String, Option<i64>> = output.read_key_values_to_map().unwrap();
    // Counted independently of the framework.
    let mut expected: HashMap<String, i64> = HashMap::new();
    for w in SAMPLE_TEXT
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *expected.entry(w.to_lowercase()).or_default() += 1;
    }
    assert_eq!(counts.len(), expected.len());
    for (w, n) in &expected {
        assert_eq!(counts[w], Some(*n), "count of `{w}`");
    }
    assert_eq!(counts["sea"], Some(5));
    assert_eq!(counts["the"], Some(7));
    let mut store = d.key_value_store_all::<String, i64>("counts").unwrap();
    store.sort();
    let mut exp: Vec<(String, i64)> = expected.into_iter().collect();
    exp.sort();
    assert_eq!(store, exp);
}
