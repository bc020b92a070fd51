//! Where records go: `repartition()` with `Repartitioned`, sinks whose topic a function chooses
//! (Kafka Streams' `TopicNameExtractor`), through the TopologyTestDriver.
#![allow(clippy::unwrap_used)]

use streams_core::runtime::internal_topics::plan_layout;
use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{StreamsConfig, TopologyTestDriver};
use streams_dsl::{
    Consumed, Grouped, Materialized, Printed, Produced, Repartitioned, StreamsBuilder,
};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

#[test]
fn a_function_chooses_each_records_topic() {
    let b = StreamsBuilder::new();
    b.stream_with::<String, String>(&["in"], Consumed::with(s(), s()))
        .to_dynamic(
            "by-first-letter",
            |k: &String, _: &String| format!("out-{}", &k[..1]),
            Produced::with(s(), s()),
        );
    let t = b.build().unwrap();
    assert!(t
        .describe()
        .to_string()
        .contains("Sink: KSTREAM-SINK-0000000001 (extractor class: by-first-letter)"));
    let d = TopologyTestDriver::new(t, StreamsConfig::new("routing").unwrap()).unwrap();
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input("apple".into(), "1".into()).unwrap();
    input.pipe_input("berry".into(), "2".into()).unwrap();
    input.pipe_input("avocado".into(), "3".into()).unwrap();
    let a = d.create_output_topic("out-a", s(), s());
    let b = d.create_output_topic("out-b", s(), s());
    assert_eq!(
        a.read_key_values_to_list().unwrap(),
        vec![("apple".into(), "1".into()), ("avocado".into(), "3".into())]
    );
    assert_eq!(
        b.read_key_values_to_list().unwrap(),
        vec![("berry".into(), "2".into())]
    );
}

#[test]
fn repartition_names_its_topic_and_keeps_a_given_partition_count() {
    let b = StreamsBuilder::new();
    b.stream_with::<String, String>(&["in"], Consumed::with(s(), s()))
        .select_key(|_, v| v.clone())
        .repartition(Repartitioned::as_("by-value").with_number_of_partitions(5))
        .group_by_key(Grouped::with(s(), s()))
        .count(Materialized::as_("value-counts"))
        .to_stream()
        .to_with("out", Produced::with(s(), Serdes::nullable(Serdes::i64())));
    let t = b.build().unwrap();
    let text = t.describe().to_string();
    // Named: nodes after the topic; no second repartition before the count.
    assert!(text.contains("Sink: by-value-repartition-sink (topic: by-value-repartition)"));
    assert_eq!(text.matches("-repartition)").count(), 1, "{text}");
    let layout = plan_layout(
        &t,
        "app",
        &|topic: &str| (topic == "in").then_some(2),
        &|_| Vec::new(),
    )
    .unwrap();
    let repartition = layout
        .internal_topics
        .iter()
        .find(|t| t.name == "app-by-value-repartition")
        .unwrap();
    assert_eq!(repartition.partitions, 5);
    let changelog = layout
        .internal_topics
        .iter()
        .find(|t| t.name == "app-value-counts-changelog")
        .unwrap();
    assert_eq!(
        changelog.partitions, 5,
        "the counting tasks follow the repartition topic"
    );

    let d = TopologyTestDriver::new(t, StreamsConfig::new("routing").unwrap()).unwrap();
    let input = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic("out", s(), Serdes::nullable(Serdes::i64()));
    for (k, v) in [("1", "x"), ("2", "y"), ("3", "x")] {
        input.pipe_input(k.into(), v.into()).unwrap();
    }
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            ("x".to_string(), Some(1)),
            ("y".to_string(), Some(1)),
            ("x".to_string(), Some(2))
        ]
    );
}

#[test]
fn print_writes_labelled_lines_like_kafka_streams() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("printed.txt");
    let b = StreamsBuilder::new();
    let stream = b.stream_with::<String, String>(&["in"], Consumed::with(s(), s()));
    stream.print(Printed::to_file(&file).with_label("orders"));
    stream.print(Printed::to_file_with(
        dir.path().join("default.txt"),
        |k: &String, v: &String| format!("{k}={v}"),
    ));
    let t = b.build().unwrap();
    assert!(t
        .describe()
        .to_string()
        .contains("KSTREAM-PRINTER-0000000001"));
    let d = TopologyTestDriver::new(t, StreamsConfig::new("printing").unwrap()).unwrap();
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input("a".into(), "1".into()).unwrap();
    input.pipe_input("b".into(), "2".into()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "[orders]: a, 1\n[orders]: b, 2\n"
    );
    // Without a label, the printed stream's node names the lines.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("default.txt")).unwrap(),
        "[KSTREAM-SOURCE-0000000000]: a=1\n[KSTREAM-SOURCE-0000000000]: b=2\n"
    );
}
