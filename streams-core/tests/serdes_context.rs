//! Serdes see the topic and the headers of the record they convert, as a Schema Registry serde
//! needs: sources read headers, sinks may add them, and both know the topic.

use std::sync::Arc;

use streams_core::serdes::{Nullable, Serde, SerdeError, Serdes};
use streams_core::{Headers, Record, StreamsConfig, Topology, TopologyTestDriver};

/// Writes a `schema.id` header naming the topic's schema and a magic byte before the payload;
/// reading requires both, as a wire-format serde would.
struct SchemaIdSerde;

const MAGIC: u8 = 0;

fn schema_id(topic: &str) -> Vec<u8> {
    format!("{topic}-value-v1").into_bytes()
}

impl Serde<String> for SchemaIdSerde {
    fn serialize(&self, _: &String) -> Result<Option<Vec<u8>>, SerdeError> {
        Err(SerdeError::Invalid {
            format: "schema-id",
            message: "needs the topic and headers".into(),
        })
    }

    fn deserialize(&self, _: Option<&[u8]>) -> Result<String, SerdeError> {
        Err(SerdeError::Invalid {
            format: "schema-id",
            message: "needs the topic and headers".into(),
        })
    }

    fn serialize_for(
        &self,
        topic: &str,
        headers: &mut Headers,
        value: &String,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        headers.add("schema.id", Some(schema_id(topic)));
        let mut out = vec![MAGIC];
        out.extend_from_slice(value.as_bytes());
        Ok(Some(out))
    }

    fn deserialize_from(
        &self,
        topic: &str,
        headers: &Headers,
        data: Option<&[u8]>,
    ) -> Result<String, SerdeError> {
        let invalid = |message: String| SerdeError::Invalid {
            format: "schema-id",
            message,
        };
        let id = headers
            .last("schema.id")
            .flatten()
            .ok_or_else(|| invalid("no schema.id header".into()))?;
        if id != schema_id(topic).as_slice() {
            return Err(invalid(format!(
                "schema {} is not the schema of `{topic}`",
                String::from_utf8_lossy(id)
            )));
        }
        match data {
            Some([MAGIC, rest @ ..]) => Ok(String::from_utf8_lossy(rest).into_owned()),
            _ => Err(invalid("no magic byte".into())),
        }
    }
}

fn pass_through() -> TopologyTestDriver {
    let mut t = Topology::new();
    t.add_source::<String, String>("in", &["orders"], Serdes::string(), Arc::new(SchemaIdSerde))
        .and_then(|t| {
            t.add_sink::<String, String>(
                "out",
                "orders-copy",
                Serdes::string(),
                Arc::new(SchemaIdSerde),
                &["in"],
            )
        })
        .expect("topology");
    TopologyTestDriver::new(t, StreamsConfig::new("serde-context").expect("config"))
        .expect("driver")
}

#[test]
fn sources_and_sinks_hand_the_topic_and_headers_to_serdes() {
    let driver = pass_through();
    let input = driver.create_input_topic("orders", Serdes::string(), Arc::new(SchemaIdSerde));
    let output =
        driver.create_output_topic("orders-copy", Serdes::string(), Arc::new(SchemaIdSerde));
    input
        .pipe_input("k".to_string(), "order-1".to_string())
        .expect("piped");
    let out = output.read_record().expect("readable").expect("one record");
    assert_eq!(out.value, "order-1");
    // The sink's serde wrote the header for its own topic, after the source's one.
    let ids: Vec<&[u8]> = out
        .headers
        .iter()
        .filter(|(k, _)| *k == "schema.id")
        .filter_map(|(_, v)| v)
        .collect();
    assert_eq!(
        ids,
        [
            schema_id("orders").as_slice(),
            schema_id("orders-copy").as_slice()
        ]
    );
}

#[test]
fn a_record_without_the_header_fails_to_deserialize_with_the_topic_named() {
    let driver = pass_through();
    // Bytes written without the schema header, as a producer outside the app might.
    let raw = driver.create_input_topic("orders", Serdes::string(), Serdes::bytes());
    let err = raw
        .pipe_record(Record::new("k".to_string(), b"\0x".to_vec(), 0))
        .expect_err("the source serde refuses it");
    let text = err.to_string();
    assert!(
        text.contains("orders") && text.contains("no schema.id header"),
        "{text}"
    );
}

#[test]
fn nullable_passes_topic_and_headers_through() {
    let serde = Nullable::new(SchemaIdSerde);
    let mut headers = Headers::new();
    let bytes = serde
        .serialize_for("t", &mut headers, &Some("v".to_string()))
        .expect("serialized");
    assert_eq!(
        headers.last("schema.id").flatten(),
        Some(schema_id("t").as_slice())
    );
    assert_eq!(
        serde
            .deserialize_from("t", &headers, bytes.as_deref())
            .expect("deserialized"),
        Some("v".to_string())
    );
    assert_eq!(
        serde
            .serialize_for("t", &mut Headers::new(), &None)
            .expect("null"),
        None
    );
}
