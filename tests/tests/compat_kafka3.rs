//! Compatibility with the last Kafka 3.x (3.9): word count under exactly_once_v2 and the
//! stream-table join example, on a single-node Kafka 3.9 cluster this binary shares.
#![allow(clippy::unwrap_used)]

use streams_tests::broker::KAFKA_3_VERSION;
use streams_tests::kafka::init_tracing;
use streams_tests::scenarios::{order_enrichment_end_to_end, word_count_end_to_end};
use streams_tests::TestBroker;

#[test]
fn word_count_exactly_once_v2_on_kafka_3_9() {
    init_tracing();
    let broker = TestBroker::shared(KAFKA_3_VERSION);
    assert_eq!(broker.cluster().unwrap().version(), "3.9.2");
    word_count_end_to_end(
        broker.bootstrap_servers(),
        "wc-kafka3",
        "exactly_once_v2",
        &[],
    );
}

#[test]
fn order_enrichment_on_kafka_3_9() {
    init_tracing();
    let broker = TestBroker::shared(KAFKA_3_VERSION);
    order_enrichment_end_to_end(broker.bootstrap_servers(), "enrich-kafka3");
}
