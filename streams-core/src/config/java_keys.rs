//! What keys of a Kafka Streams (Java) properties file mean here: unprefixed client keys and where
//! they go (with their librdkafka names), and the keys that mean nothing here, with the reason.

/// Where an unprefixed client key goes, as Kafka Streams passes it on: the client prefix it
/// stands for and its librdkafka name.
pub(super) fn unprefixed_client_key(key: &str) -> Option<(&'static str, &str)> {
    const CONSUMER: &str = "consumer.";
    const PRODUCER: &str = "producer.";
    const EVERY_CLIENT: &str = "";
    Some(match key {
        "auto.offset.reset"
        | "max.poll.interval.ms"
        | "session.timeout.ms"
        | "heartbeat.interval.ms"
        | "fetch.min.bytes"
        | "fetch.max.bytes"
        | "max.partition.fetch.bytes"
        | "partition.assignment.strategy"
        | "check.crcs"
        | "allow.auto.create.topics" => (CONSUMER, key),
        "fetch.max.wait.ms" => (CONSUMER, "fetch.wait.max.ms"),
        "linger.ms"
        | "batch.size"
        | "compression.type"
        | "retries"
        | "delivery.timeout.ms"
        | "max.in.flight.requests.per.connection"
        | "transaction.timeout.ms"
        | "request.timeout.ms" => (PRODUCER, key),
        "max.request.size" => (PRODUCER, "message.max.bytes"),
        "retry.backoff.ms"
        | "retry.backoff.max.ms"
        | "reconnect.backoff.ms"
        | "reconnect.backoff.max.ms"
        | "socket.connection.setup.timeout.ms"
        | "metadata.max.age.ms"
        | "connections.max.idle.ms"
        | "client.rack" => (EVERY_CLIENT, key),
        "receive.buffer.bytes" => (EVERY_CLIENT, "socket.receive.buffer.bytes"),
        "send.buffer.bytes" => (EVERY_CLIENT, "socket.send.buffer.bytes"),
        _ => return None,
    })
}

/// Why a Java key (of Kafka Streams or its clients) is ignored here, or `None` for keys this list
/// does not know (which are errors: most likely a typo).
pub(super) fn ignored_java_key(key: &str) -> Option<&'static str> {
    // The client part of a prefixed key decides for client keys.
    let client_key = [
        "main.consumer.",
        "consumer.",
        "restore.consumer.",
        "global.consumer.",
        "producer.",
        "admin.",
    ]
    .iter()
    .find_map(|p| key.strip_prefix(p))
    .unwrap_or(key);
    let reason = match client_key {
        "sasl.jaas.config" => {
            "librdkafka has no JAAS: give `sasl.mechanism` with `sasl.username` and `sasl.password` \
             (or `sasl.oauthbearer.*`) instead"
        }
        "ssl.truststore.location" | "ssl.truststore.password" | "ssl.truststore.type"
        | "ssl.truststore.certificates" => {
            "librdkafka reads PEM, not Java trust stores: give `ssl.ca.location` (a PEM file)"
        }
        "ssl.keystore.location" | "ssl.keystore.password" | "ssl.keystore.type"
        | "ssl.keystore.key" | "ssl.keystore.certificate.chain" => {
            "librdkafka reads PEM, not Java key stores: give `ssl.certificate.location` and \
             `ssl.key.location` (PEM files)"
        }
        "sasl.login.callback.handler.class" | "sasl.client.callback.handler.class"
        | "security.providers" | "ssl.engine.factory.class" => {
            "Java classes cannot be loaded; librdkafka's own settings cover the mechanisms"
        }
        "key.serializer" | "value.serializer" | "key.deserializer" | "value.deserializer" => {
            "serdes are given per topology node (or `default.key.serde`/`default.value.serde`)"
        }
        "partitioner.class" => "give a partitioner to the sink: `Produced::with_partitioner`",
        "interceptor.classes" | "metric.reporters" | "metrics.num.samples"
        | "metrics.sample.window.ms" | "auto.include.jmx.reporter" | "enable.metrics.push" => {
            "Java client plugins and metrics reporters have no equivalent; metrics are served \
             at `metrics.http.address`"
        }
        "buffer.memory" => "set `queue.buffering.max.kbytes` (librdkafka, in KiB) instead",
        "max.poll.records" => "librdkafka has no per-poll record limit; nothing to set",
        _ => return ignored_streams_key(key),
    };
    Some(reason)
}

/// Kafka Streams keys with no meaning here.
fn ignored_streams_key(key: &str) -> Option<&'static str> {
    Some(match key {
        "task.assignor.class"
        | "rack.aware.assignment.strategy"
        | "rack.aware.assignment.tags"
        | "rack.aware.assignment.traffic_cost"
        | "rack.aware.assignment.non_overlap_cost" => {
            "tasks are placed by the runtime's own sticky, state-aware assignor (see \
             `group.membership`), which has no rack awareness \
             yet"
        }
        "poll.ms"
        | "state.cleanup.delay.ms"
        | "repartition.purge.interval.ms"
        | "log.summary.interval.ms"
        | "built.in.metrics.version"
        | "windowed.inner.class.serde"
        | "window.size.ms"
        | "default.windowed.key.serde.inner"
        | "default.windowed.value.serde.inner"
        | "default.client.supplier"
        | "default.dsl.store"
        | "dsl.store.suppliers.class"
        | "rocksdb.config.setter"
        | "ensure.explicit.internal.resource.naming" => {
            "not configurable here (see the README's Kafka Streams API table)"
        }
        k if k.starts_with("client.tag.") => "client tags only steer Kafka Streams' assignor",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_go_where_kafka_streams_sends_them() {
        assert_eq!(
            unprefixed_client_key("auto.offset.reset"),
            Some(("consumer.", "auto.offset.reset"))
        );
        assert_eq!(
            unprefixed_client_key("fetch.max.wait.ms"),
            Some(("consumer.", "fetch.wait.max.ms"))
        );
        assert_eq!(
            unprefixed_client_key("linger.ms"),
            Some(("producer.", "linger.ms"))
        );
        assert_eq!(
            unprefixed_client_key("send.buffer.bytes"),
            Some(("", "socket.send.buffer.bytes"))
        );
        assert_eq!(unprefixed_client_key("no.such.key"), None);
        assert!(ignored_java_key("sasl.jaas.config").is_some_and(|r| r.contains("sasl.username")));
        assert!(ignored_java_key("producer.ssl.keystore.location").is_some());
        assert!(ignored_java_key("rack.aware.assignment.strategy").is_some());
        assert!(ignored_java_key("comit.interval.ms").is_none());
    }
}
