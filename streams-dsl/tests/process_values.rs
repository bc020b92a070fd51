//! `KStream::process_values` with a `FixedKeyProcessor` (Kafka Streams 4's `processValues`):
//! values change, keys cannot, so grouping afterwards needs no repartition.
#![allow(clippy::unwrap_used)]

use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{
    FixedKeyContext, FixedKeyProcessor, FixedKeyRecord, Result, StoreBuilder, StreamsConfig,
    TopologyTestDriver,
};
use streams_dsl::{Consumed, Grouped, Materialized, Named, Produced, StreamsBuilder};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

/// Numbers each key's values: `v` becomes `v#n` for the key's n-th record (a store keeps n).
struct Numbering;

impl FixedKeyProcessor<String, String> for Numbering {
    fn process(
        &mut self,
        ctx: &mut FixedKeyContext<'_, '_, String>,
        record: FixedKeyRecord<String, String>,
    ) -> Result<()> {
        let n = {
            let mut seen = ctx.key_value_store::<String, i64>("seen")?;
            let n = seen.get(record.key())?.unwrap_or(0) + 1;
            seen.put(record.key(), &n)?;
            n
        };
        let value = format!("{}#{n}", record.value);
        ctx.forward(record.with_value(value))
    }
}

#[test]
fn values_are_processed_with_state_and_keys_stay_put() {
    let b = StreamsBuilder::new();
    b.add_state_store(StoreBuilder::key_value("seen", s(), Serdes::i64()));
    let numbered = b
        .stream_with::<String, String>(&["in"], Consumed::with(s(), s()))
        .process_values(|| Numbering, Named::default(), &["seen"]);
    numbered.to_with("numbered", Produced::with(s(), s()));
    numbered
        .group_by_key(Grouped::with(s(), s()))
        .count(Materialized::as_("counts"))
        .to_stream()
        .to_with(
            "counts",
            Produced::with(s(), Serdes::nullable(Serdes::i64())),
        );
    let t = b.build().unwrap();
    let text = t.describe().to_string();
    assert!(text.contains("Processor: KSTREAM-PROCESSVALUES-0000000001 (stores: [seen])"));
    assert_eq!(
        t.subtopologies().len(),
        1,
        "no repartition after process_values:\n{text}"
    );

    let d = TopologyTestDriver::new(t, StreamsConfig::new("process-values").unwrap()).unwrap();
    let input = d.create_input_topic("in", s(), s());
    for (k, v) in [("a", "x"), ("b", "y"), ("a", "z")] {
        input.pipe_input(k.into(), v.into()).unwrap();
    }
    let out = d.create_output_topic("numbered", s(), s());
    assert_eq!(
        out.read_key_values_to_list().unwrap(),
        vec![
            ("a".to_string(), "x#1".to_string()),
            ("b".to_string(), "y#1".to_string()),
            ("a".to_string(), "z#2".to_string())
        ]
    );
}
