// The Kafka Streams oracle: runs a catalogue of topologies in Kafka Streams' own
// TopologyTestDriver over input files and writes what they output, so that the Rust framework's
// results can be compared record for record (tests/tests/differential_kafka_streams.rs keeps the
// same catalogue on the Rust side).
//
//   java -cp "$(tests/oracle/build.sh)" Oracle CASE_DIR...
//
// CASE_DIR is named after a topology of the catalogue. The oracle writes the topology's
// describe() to CASE_DIR/describe.txt, then for every CASE_DIR/*.in writes *.out.
// Input lines:  R <tab> topic <tab> key <tab> value <tab> timestamp   (\N is null)
// Output lines: topic <tab> key <tab> value <tab> timestamp, output topics in name order.

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.TableJoined;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.GlobalKTable;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.test.TestRecord;

public final class Oracle {
    private static final Serde<String> S = Serdes.String();
    private static final Serde<Long> L = Serdes.Long();

    /** A topology of the catalogue, its input topics and its output topics with their value serdes. */
    private record Case(Topology topology, List<String> inputs, Map<String, Serde<?>> outputs) {}

    private static List<String> words(String line) {
        return Arrays.stream(line.toLowerCase().split(" ")).filter(w -> !w.isEmpty()).collect(Collectors.toList());
    }

    private static String windowed(Windowed<String> w) {
        return w.key() + "@" + w.window().start() + "-" + w.window().end();
    }

    private static String or(String v) {
        return v == null ? "null" : v;
    }

    private static Case build(String name) {
        StreamsBuilder b = new StreamsBuilder();
        Properties props = new Properties();
        Map<String, Serde<?>> out = new TreeMap<>();
        List<String> in;
        switch (name) {
            case "word-count" -> {
                b.stream("text", Consumed.with(S, S))
                    .flatMapValues(Oracle::words)
                    .groupBy((k, w) -> w, Grouped.with("words", S, S))
                    .count(Materialized.as("counts"))
                    .toStream()
                    .to("out", Produced.with(S, L));
                in = List.of("text");
                out.put("out", L);
            }
            case "stateless" -> {
                b.stream("in", Consumed.with(S, S))
                    .filter((k, v) -> !v.startsWith("x"))
                    .mapValues(v -> v.toUpperCase())
                    .flatMapValues(v -> List.of(v.split(" ")))
                    .split(Named.as("split-"))
                    .branch((k, v) -> v.startsWith("A"), Branched.withConsumer(s -> s.to("out-a", Produced.with(S, S))))
                    .defaultBranch(Branched.withConsumer(s -> s.map((k, v) -> KeyValue.pair(v, k)).to("out-rest", Produced.with(S, S))));
                in = List.of("in");
                out.put("out-a", S);
                out.put("out-rest", S);
            }
            case "repartition-count" -> {
                b.stream("in", Consumed.with(S, S))
                    .selectKey((k, v) -> v.substring(0, 1))
                    .groupByKey(Grouped.with("by-first", S, S))
                    .count(Materialized.as("first-counts"))
                    .toStream()
                    .to("out", Produced.with(S, L));
                in = List.of("in");
                out.put("out", L);
            }
            case "merge-repartitions" -> {
                props.put(StreamsConfig.TOPOLOGY_OPTIMIZATION_CONFIG, StreamsConfig.OPTIMIZE);
                KStream<String, String> s = b.stream("in", Consumed.with(S, S));
                KStream<String, String> keyed = s.selectKey((k, v) -> v.substring(0, 1));
                keyed.groupByKey(Grouped.with("by-initial", S, S))
                    .count(Materialized.as("initial-counts"))
                    .toStream()
                    .to("out-counts", Produced.with(S, L));
                keyed.filter((k, v) -> v.length() > 5)
                    .groupByKey(Grouped.with(S, S))
                    .reduce((a, v) -> a + "|" + v, Materialized.as("long-values"))
                    .toStream()
                    .to("out-long", Produced.with(S, S));
                keyed.mapValues(v -> v.toUpperCase())
                    .groupByKey(Grouped.with(S, S))
                    .count()
                    .toStream()
                    .to("out-upper", Produced.with(S, L));
                KStream<String, String> other = b.stream("other", Consumed.with(S, S));
                keyed.join(other, (l, r) -> l + "+" + r,
                        JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(5), Duration.ofMillis(2)),
                        StreamJoined.with(S, S, S))
                    .to("out-join", Produced.with(S, S));
                s.groupBy((k, v) -> v, Grouped.with(S, S)).count().toStream().to("out-values", Produced.with(S, L));
                s.flatMap((k, v) -> List.of(KeyValue.pair(v, k), KeyValue.pair(k, v)))
                    .merge(s.selectKey((k, v) -> v.substring(1)))
                    .groupByKey(Grouped.with(S, S))
                    .count()
                    .toStream()
                    .to("out-merged", Produced.with(S, L));
                in = List.of("in", "other");
                out.put("out-merged", L);
                out.put("out-counts", L);
                out.put("out-long", S);
                out.put("out-upper", L);
                out.put("out-join", S);
                out.put("out-values", L);
            }
            case "reduce-aggregate" -> {
                var grouped = b.stream("in", Consumed.with(S, S)).groupByKey(Grouped.with(S, S));
                grouped.reduce((a, v) -> a + "|" + v, Materialized.as("joined"))
                    .toStream()
                    .to("out-reduce", Produced.with(S, S));
                grouped.aggregate(() -> 0L, (k, v, agg) -> agg + v.length(),
                        Materialized.<String, Long, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("lengths").withValueSerde(L))
                    .toStream()
                    .to("out-aggregate", Produced.with(S, L));
                in = List.of("in");
                out.put("out-reduce", S);
                out.put("out-aggregate", L);
            }
            case "repartition" -> {
                KStream<String, String> stream = b.stream("in", Consumed.with(S, S));
                stream.selectKey((k, v) -> v.substring(0, 1))
                    .repartition(Repartitioned.with(S, S).withName("first").withNumberOfPartitions(2))
                    .groupByKey(Grouped.with(S, S))
                    .count(Materialized.as("first-letter-counts"))
                    .toStream()
                    .to("out", Produced.with(S, L));
                stream.mapValues(v -> v.toUpperCase())
                    .repartition(Repartitioned.with(S, S))
                    .to("out-upper", Produced.with(S, S));
                in = List.of("in");
                out.put("out", L);
                out.put("out-upper", S);
            }
            case "process-values" -> {
                b.stream("in", Consumed.with(S, S))
                    .processValues(() -> new org.apache.kafka.streams.processor.api.FixedKeyProcessor<String, String, String>() {
                        private org.apache.kafka.streams.processor.api.FixedKeyProcessorContext<String, String> ctx;
                        @Override
                        public void init(org.apache.kafka.streams.processor.api.FixedKeyProcessorContext<String, String> context) {
                            ctx = context;
                        }
                        @Override
                        public void process(org.apache.kafka.streams.processor.api.FixedKeyRecord<String, String> r) {
                            ctx.forward(r.withValue(r.value().toUpperCase()));
                        }
                    })
                    .groupByKey(Grouped.with(S, S))
                    .count(Materialized.as("upper-counts"))
                    .toStream()
                    .to("out", Produced.with(S, L));
                in = List.of("in");
                out.put("out", L);
            }
            case "cogroup" -> {
                var left = b.stream("a", Consumed.with(S, S)).groupByKey(Grouped.with(S, S));
                var right = b.stream("b", Consumed.with(S, S))
                    .selectKey((k, v) -> v.substring(0, 1))
                    .groupByKey(Grouped.with(S, S));
                left.<String>cogroup((k, v, agg) -> agg + "a:" + v + ";")
                    .cogroup(right, (k, v, agg) -> agg + "b:" + v + ";")
                    .aggregate(() -> "",
                        Materialized.<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("cogrouped").withValueSerde(S))
                    .toStream()
                    .to("out", Produced.with(S, S));
                in = List.of("a", "b");
                out.put("out", S);
            }
            case "cogroup-windowed" -> {
                var left = b.stream("a", Consumed.with(S, S)).groupByKey(Grouped.with(S, S));
                var right = b.stream("b", Consumed.with(S, S)).groupByKey(Grouped.with(S, S));
                left.<String>cogroup((k, v, agg) -> agg + "a:" + v + ";")
                    .cogroup(right, (k, v, agg) -> agg + "b:" + v + ";")
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(10), Duration.ofMillis(3)).advanceBy(Duration.ofMillis(5)))
                    .aggregate(() -> "",
                        Materialized.<String, String, org.apache.kafka.streams.state.WindowStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("cogrouped-windows").withValueSerde(S))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out", Produced.with(S, S));
                in = List.of("a", "b");
                out.put("out", S);
            }
            case "cogroup-session" -> {
                var left = b.stream("a", Consumed.with(S, S)).groupByKey(Grouped.with(S, S));
                var right = b.stream("b", Consumed.with(S, S)).groupByKey(Grouped.with(S, S));
                left.<String>cogroup((k, v, agg) -> agg + "a:" + v + ";")
                    .cogroup(right, (k, v, agg) -> agg + "b:" + v + ";")
                    .windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(5), Duration.ofMillis(3)))
                    .aggregate(() -> "", (k, x, y) -> x + "|" + y,
                        Materialized.<String, String, org.apache.kafka.streams.state.SessionStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("cogrouped-sessions").withValueSerde(S))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out", Produced.with(S, S));
                in = List.of("a", "b");
                out.put("out", S);
            }
            case "to-table" -> {
                KTable<String, String> latest = b.stream("in", Consumed.with(S, S))
                    .toTable(Materialized.<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("latest"));
                latest.filter((k, v) -> !v.startsWith("x"))
                    .toStream()
                    .to("out-filtered", Produced.with(S, S));
                latest.toStream()
                    .toTable(Materialized.<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("again"))
                    .mapValues(v -> v.toUpperCase())
                    .toStream()
                    .to("out-round-trip", Produced.with(S, S));
                in = List.of("in");
                out.put("out-filtered", S);
                out.put("out-round-trip", S);
            }
            case "unmaterialized-tables" -> {
                // Tables without a named store keep none until something needs one (a join,
                // groupBy); until then a filter has no old values and forwards a delete for
                // every row it filters out.
                KTable<String, String> t = b.table("t", Consumed.with(S, S));
                t.filter((k, v) -> v.startsWith("a")).toStream().to("out-filter", Produced.with(S, S));
                t.mapValues(v -> v.toUpperCase()).filterNot((k, v) -> v.startsWith("B"))
                    .toStream().to("out-mapped", Produced.with(S, S));
                KStream<String, String> input = b.stream("in", Consumed.with(S, S));
                KTable<String, String> latest = input.toTable();
                latest.filter((k, v) -> v.contains("e")).toStream().to("out-latest", Produced.with(S, S));
                b.stream("s", Consumed.with(S, S)).join(latest, (x, y) -> x + "+" + y)
                    .to("out-stream-join", Produced.with(S, S));
                KTable<String, String> other = input.toTable(Named.as("other-table"));
                other.filter((k, v) -> !v.startsWith("x")).groupBy((k, v) -> KeyValue.pair(v.substring(0, 1), v), Grouped.with(S, S))
                    .count().toStream().to("out-count", Produced.with(S, L));
                in = List.of("t", "in", "s");
                for (String o : List.of("out-filter", "out-mapped", "out-latest", "out-stream-join")) {
                    out.put(o, S);
                }
                out.put("out-count", L);
            }
            case "table-filter" -> {
                KTable<String, String> t = b.table("t", Consumed.with(S, S), Materialized.as("t-store"));
                t.filter((k, v) -> v.startsWith("a"), Named.as("starts-with-a"),
                        Materialized.<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("a-values"))
                    .toStream().to("out-materialized", Produced.with(S, S));
                t.filterNot((k, v) -> v.startsWith("a")).toStream().to("out-not", Produced.with(S, S));
                t.mapValues(v -> v.toUpperCase(), Named.as("upper"),
                        Materialized.<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("upper-values"))
                    .groupBy((k, v) -> KeyValue.pair(v.substring(0, 1), v), Grouped.with("by-initial", S, S))
                    .count(Materialized.as("initial-counts"))
                    .toStream().to("out-counts", Produced.with(S, L));
                in = List.of("t");
                out.put("out-materialized", S);
                out.put("out-not", S);
                out.put("out-counts", L);
            }
            case "table-transform-values" -> {
                b.addStateStore(org.apache.kafka.streams.state.Stores.keyValueStoreBuilder(
                    org.apache.kafka.streams.state.Stores.persistentKeyValueStore("calls"), S, L));
                KTable<String, String> t = b.table("t", Consumed.with(S, S), Materialized.as("t-store"));
                KTable<String, String> counted = t.transformValues(() -> new org.apache.kafka.streams.kstream.ValueTransformerWithKey<String, String, String>() {
                        org.apache.kafka.streams.state.KeyValueStore<String, Long> calls;
                        public void init(org.apache.kafka.streams.processor.ProcessorContext c) { calls = c.getStateStore("calls"); }
                        public String transform(String k, String v) {
                            Long n = calls.get(k);
                            n = n == null ? 1 : n + 1;
                            calls.put(k, n);
                            return v == null ? null : v + "#" + n;
                        }
                        public void close() {}
                    }, Materialized.<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("counted").withValueSerde(S), "calls");
                counted.toStream().to("out-counted", Produced.with(S, S));
                counted.groupBy((k, v) -> KeyValue.pair(v.substring(0, 1), v), Grouped.with("by-initial", S, S))
                    .count(Materialized.as("initial-counts"))
                    .toStream().to("out-counts", Produced.with(S, L));
                t.transformValues(() -> new org.apache.kafka.streams.kstream.ValueTransformerWithKey<String, String, String>() {
                        public void init(org.apache.kafka.streams.processor.ProcessorContext c) {}
                        public String transform(String k, String v) { return v == null ? null : k + ":" + v.toUpperCase(); }
                        public void close() {}
                    }, Named.as("keyed-upper"))
                    .toStream().to("out-plain", Produced.with(S, S));
                in = List.of("t");
                out.put("out-counted", S);
                out.put("out-counts", L);
                out.put("out-plain", S);
            }
            case "table-groupby" -> {
                b.table("t", Consumed.with(S, S))
                    .groupBy((k, v) -> KeyValue.pair(v, k), Grouped.with("by-value", S, S))
                    .count(Materialized.as("value-counts"))
                    .toStream()
                    .to("out", Produced.with(S, L));
                in = List.of("t");
                out.put("out", L);
            }
            case "tumbling" -> {
                b.stream("in", Consumed.with(S, S))
                    .groupByKey(Grouped.with(S, S))
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(10), Duration.ofMillis(5)))
                    .count(Materialized.as("tumbling-counts"))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out", Produced.with(S, L));
                in = List.of("in");
                out.put("out", L);
            }
            case "hopping" -> {
                b.stream("in", Consumed.with(S, S))
                    .groupByKey(Grouped.with(S, S))
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(10), Duration.ofMillis(2)).advanceBy(Duration.ofMillis(5)))
                    .count(Materialized.as("hopping-counts"))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out", Produced.with(S, L));
                in = List.of("in");
                out.put("out", L);
            }
            case "sliding" -> {
                b.stream("in", Consumed.with(S, S))
                    .groupByKey(Grouped.with(S, S))
                    .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(5), Duration.ofMillis(3)))
                    .count(Materialized.as("sliding-counts"))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out", Produced.with(S, L));
                in = List.of("in");
                out.put("out", L);
            }
            case "hopping-emit-final" -> {
                b.stream("in", Consumed.with(S, S))
                    .groupByKey(Grouped.with(S, S))
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(10), Duration.ofMillis(2)).advanceBy(Duration.ofMillis(5)))
                    .emitStrategy(EmitStrategy.onWindowClose())
                    .count(Materialized.as("hopping-final-counts"))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out", Produced.with(S, L));
                in = List.of("in");
                out.put("out", L);
            }
            case "sliding-emit-final" -> {
                b.stream("in", Consumed.with(S, S))
                    .groupByKey(Grouped.with(S, S))
                    .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(5), Duration.ofMillis(3)))
                    .emitStrategy(EmitStrategy.onWindowClose())
                    .count(Materialized.as("sliding-final-counts"))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out", Produced.with(S, L));
                in = List.of("in");
                out.put("out", L);
            }
            case "session-emit-final" -> {
                b.stream("in", Consumed.with(S, S))
                    .groupByKey(Grouped.with(S, S))
                    .windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(5), Duration.ofMillis(3)))
                    .emitStrategy(EmitStrategy.onWindowClose())
                    .count(Materialized.as("session-final-counts"))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out", Produced.with(S, L));
                in = List.of("in");
                out.put("out", L);
            }
            case "session" -> {
                b.stream("in", Consumed.with(S, S))
                    .groupByKey(Grouped.with(S, S))
                    .windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(5), Duration.ofMillis(3)))
                    .count(Materialized.as("session-counts"))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out", Produced.with(S, L));
                in = List.of("in");
                out.put("out", L);
            }
            case "store-suppliers" -> {
                var grouped = b.stream("in", Consumed.with(S, S)).groupByKey(Grouped.with(S, S));
                grouped.count(Materialized.<String, Long>as(Stores.lruMap("lru-counts", 3)))
                    .toStream()
                    .to("out-lru", Produced.with(S, L));
                grouped.windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(10), Duration.ofMillis(5)))
                    .count(Materialized.<String, Long>as(Stores.inMemoryWindowStore(
                        "memory-windows", Duration.ofMillis(40), Duration.ofMillis(10), false)))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out-windows", Produced.with(S, L));
                grouped.windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(5), Duration.ofMillis(3)))
                    .count(Materialized.<String, Long>as(Stores.inMemorySessionStore("memory-sessions", Duration.ofMillis(30))))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out-sessions", Produced.with(S, L));
                in = List.of("in");
                out.put("out-lru", L);
                out.put("out-windows", L);
                out.put("out-sessions", L);
            }
            case "suppress-window" -> {
                b.stream("in", Consumed.with(S, S))
                    .groupByKey(Grouped.with(S, S))
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(10), Duration.ofMillis(5)))
                    .count(Materialized.as("final-counts"))
                    .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                    .toStream()
                    .map((w, v) -> KeyValue.pair(windowed(w), v))
                    .to("out", Produced.with(S, L));
                in = List.of("in");
                out.put("out", L);
            }
            case "stream-stream-join" -> {
                KStream<String, String> left = b.stream("left", Consumed.with(S, S));
                KStream<String, String> right = b.stream("right", Consumed.with(S, S));
                JoinWindows w = JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(5), Duration.ofMillis(2));
                left.join(right, (l, r) -> l + "+" + r, w, StreamJoined.with(S, S, S).withName("inner").withStoreName("inner"))
                    .to("out-inner", Produced.with(S, S));
                left.leftJoin(right, (l, r) -> l + "+" + or(r), w, StreamJoined.with(S, S, S).withName("left").withStoreName("left"))
                    .to("out-left", Produced.with(S, S));
                left.outerJoin(right, (l, r) -> or(l) + "+" + or(r), w, StreamJoined.with(S, S, S).withName("outer").withStoreName("outer"))
                    .to("out-outer", Produced.with(S, S));
                in = List.of("left", "right");
                out.put("out-inner", S);
                out.put("out-left", S);
                out.put("out-outer", S);
            }
            case "stream-join-suppliers" -> {
                KStream<String, String> left = b.stream("left", Consumed.with(S, S));
                KStream<String, String> right = b.stream("right", Consumed.with(S, S));
                JoinWindows w = JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(5), Duration.ofMillis(3));
                left.leftJoin(right, (l, r) -> l + "+" + or(r), w, StreamJoined.with(S, S, S)
                        .withThisStoreSupplier(Stores.inMemoryWindowStore("left-side", Duration.ofMillis(13), Duration.ofMillis(10), true))
                        .withOtherStoreSupplier(Stores.persistentWindowStore("right-side", Duration.ofMillis(13), Duration.ofMillis(10), true))
                        .withLoggingDisabled())
                    .to("out-left", Produced.with(S, S));
                left.outerJoin(right, (l, r) -> or(l) + "+" + or(r), w, StreamJoined.with(S, S, S)
                        .withThisStoreSupplier(Stores.persistentWindowStore("outer-this", Duration.ofMillis(13), Duration.ofMillis(10), true))
                        .withLoggingEnabled(Map.of("min.insync.replicas", "1")))
                    .to("out-outer", Produced.with(S, S));
                in = List.of("left", "right");
                out.put("out-left", S);
                out.put("out-outer", S);
            }
            case "stream-table-join" -> {
                KStream<String, String> s = b.stream("in", Consumed.with(S, S));
                KTable<String, String> t = b.table("t", Consumed.with(S, S), Materialized.as("t-store"));
                s.join(t, (v, tv) -> v + "+" + tv).to("out-inner", Produced.with(S, S));
                s.leftJoin(t, (v, tv) -> v + "+" + or(tv)).to("out-left", Produced.with(S, S));
                in = List.of("in", "t");
                out.put("out-inner", S);
                out.put("out-left", S);
            }
            case "versioned-table-join" -> {
                KStream<String, String> s = b.stream("in", Consumed.with(S, S));
                KTable<String, String> t = b.table("t", Consumed.with(S, S),
                    Materialized.<String, String>as(Stores.persistentVersionedKeyValueStore("t-versions", Duration.ofMillis(10)))
                        .withKeySerde(S).withValueSerde(S));
                s.leftJoin(t, (v, tv) -> v + "+" + or(tv)).to("out-left", Produced.with(S, S));
                in = List.of("in", "t");
                out.put("out-left", S);
            }
            case "versioned-table-join-with-grace" -> {
                KStream<String, String> s = b.stream("in", Consumed.with(S, S));
                KTable<String, String> t = b.table("t", Consumed.with(S, S),
                    Materialized.<String, String>as(Stores.persistentVersionedKeyValueStore("t-versions", Duration.ofMillis(50)))
                        .withKeySerde(S).withValueSerde(S));
                s.join(t, (v, tv) -> v + "+" + tv, Joined.<String, String, String>with(S, S, S).withGracePeriod(Duration.ofMillis(4)))
                    .to("out-inner", Produced.with(S, S));
                s.leftJoin(t, (v, tv) -> v + "+" + or(tv), Joined.<String, String, String>with(S, S, S).withGracePeriod(Duration.ofMillis(4)))
                    .to("out-left", Produced.with(S, S));
                t.toStream().to("out-table", Produced.with(S, S));
                in = List.of("in", "t");
                out.put("out-inner", S);
                out.put("out-left", S);
                out.put("out-table", S);
            }
            case "versioned-table-semantics" -> {
                // Out-of-order updates of a versioned table (KIP-914): shown by toStream and a
                // filter, skipped by table-table joins (either side), foreign-key joins and groupBy.
                KTable<String, String> t = b.table("t", Consumed.with(S, S),
                    Materialized.<String, String>as(Stores.persistentVersionedKeyValueStore("t-versions", Duration.ofMillis(20)))
                        .withKeySerde(S).withValueSerde(S));
                KTable<String, String> u = b.table("u", Consumed.with(S, S), Materialized.as("u-store"));
                t.filterNot((k, v) -> v.startsWith("a")).toStream().to("out-filter", Produced.with(S, S));
                t.join(u, (x, y) -> x + "+" + y).toStream().to("out-join", Produced.with(S, S));
                u.leftJoin(t, (x, y) -> x + "+" + or(y)).toStream().to("out-left", Produced.with(S, S));
                t.groupBy((k, v) -> KeyValue.pair(v.substring(0, 1), v), Grouped.with("by-initial", S, S))
                    .count(Materialized.as("initial-counts"))
                    .toStream().to("out-count", Produced.with(S, L));
                t.join(u, v -> v.substring(0, 1).toLowerCase(), (x, y) -> x + "+" + y)
                    .toStream().to("out-fk-left", Produced.with(S, S));
                u.join(t, v -> v.substring(0, 1).toLowerCase(), (x, y) -> x + "+" + y)
                    .toStream().to("out-fk-right", Produced.with(S, S));
                in = List.of("t", "u");
                for (String o : List.of("out-filter", "out-join", "out-left", "out-fk-left", "out-fk-right")) {
                    out.put(o, S);
                }
                out.put("out-count", L);
            }
            case "table-join-named" -> {
                KTable<String, String> a = b.table("a", Consumed.with(S, S), Materialized.as("a-store"));
                KTable<String, String> c = b.table("b", Consumed.with(S, S), Materialized.as("b-store"));
                a.leftJoin(c, (x, y) -> x + "+" + or(y), Named.as("pair"),
                        Materialized.<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("pairs").withValueSerde(S))
                    .toStream(Named.as("pairs-out")).to("out-left", Produced.with(S, S));
                a.outerJoin(c, (x, y) -> or(x) + "+" + or(y), Named.as("either"))
                    .toStream().to("out-outer", Produced.with(S, S));
                in = List.of("a", "b");
                out.put("out-left", S);
                out.put("out-outer", S);
            }
            case "table-table-join" -> {
                KTable<String, String> a = b.table("a", Consumed.with(S, S), Materialized.as("a-store"));
                KTable<String, String> c = b.table("b", Consumed.with(S, S), Materialized.as("b-store"));
                a.join(c, (x, y) -> x + "+" + y).toStream().to("out-inner", Produced.with(S, S));
                a.leftJoin(c, (x, y) -> x + "+" + or(y)).toStream().to("out-left", Produced.with(S, S));
                a.outerJoin(c, (x, y) -> or(x) + "+" + or(y)).toStream().to("out-outer", Produced.with(S, S));
                in = List.of("a", "b");
                out.put("out-inner", S);
                out.put("out-left", S);
                out.put("out-outer", S);
            }
            case "suppress-time-limit" -> {
                b.stream("in", Consumed.with(S, S))
                    .groupByKey(Grouped.with(S, S))
                    .count(Materialized.as("limited-counts"))
                    .suppress(Suppressed.untilTimeLimit(Duration.ofMillis(5), Suppressed.BufferConfig.unbounded()))
                    .toStream()
                    .to("out", Produced.with(S, L));
                in = List.of("in");
                out.put("out", L);
            }
            case "joins-with-key" -> {
                KStream<String, String> left = b.stream("left", Consumed.with(S, S));
                KStream<String, String> right = b.stream("right", Consumed.with(S, S));
                KTable<String, String> t = b.table("t", Consumed.with(S, S), Materialized.as("t-store"));
                GlobalKTable<String, String> g = b.globalTable("g", Consumed.with(S, S), Materialized.as("g-store"));
                JoinWindows w = JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(5), Duration.ofMillis(2));
                left.join(right, (k, l, r) -> k + ":" + l + "+" + r, w, StreamJoined.with(S, S, S).withName("inner").withStoreName("inner"))
                    .to("out-inner", Produced.with(S, S));
                left.leftJoin(t, (k, v, tv) -> k + ":" + v + "+" + or(tv)).to("out-table", Produced.with(S, S));
                left.join(g, (k, v) -> v.substring(0, 1).toLowerCase(), (k, v, gv) -> k + ":" + v + "+" + gv).to("out-global", Produced.with(S, S));
                in = List.of("left", "right", "t", "g");
                out.put("out-inner", S);
                out.put("out-table", S);
                out.put("out-global", S);
            }
            case "global-table-join" -> {
                KStream<String, String> s = b.stream("in", Consumed.with(S, S));
                GlobalKTable<String, String> g = b.globalTable("g", Consumed.with(S, S), Materialized.as("g-store"));
                s.join(g, (k, v) -> k, (v, gv) -> v + "+" + gv).to("out-inner", Produced.with(S, S));
                s.leftJoin(g, (k, v) -> k, (v, gv) -> v + "+" + or(gv)).to("out-left", Produced.with(S, S));
                in = List.of("in", "g");
                out.put("out-inner", S);
                out.put("out-left", S);
            }
            case "foreign-key-join" -> {
                KTable<String, String> l = b.table("l", Consumed.with(S, S), Materialized.as("l-store"));
                KTable<String, String> r = b.table("r", Consumed.with(S, S), Materialized.as("r-store"));
                l.join(r, v -> v.substring(0, 1).toLowerCase(), (lv, rv) -> lv + "+" + rv)
                    .toStream()
                    .to("out-inner", Produced.with(S, S));
                l.leftJoin(r, v -> v.substring(0, 1).toLowerCase(), (lv, rv) -> lv + "+" + or(rv))
                    .toStream()
                    .to("out-left", Produced.with(S, S));
                in = List.of("l", "r");
                out.put("out-inner", S);
                out.put("out-left", S);
            }
            case "foreign-key-join-named" -> {
                KTable<String, String> l = b.table("l", Consumed.with(S, S), Materialized.as("l-store"));
                KTable<String, String> r = b.table("r", Consumed.with(S, S), Materialized.as("r-store"));
                l.join(r, v -> v.substring(0, 1).toLowerCase(), (lv, rv) -> lv + "+" + rv, TableJoined.as("by-initial"),
                        Materialized.<String, String, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>>as("joined").withValueSerde(S))
                    .toStream()
                    .to("out-inner", Produced.with(S, S));
                l.leftJoin(r, v -> v.substring(0, 1).toLowerCase(), (lv, rv) -> lv + "+" + or(rv), TableJoined.as("left-by-initial"))
                    .toStream()
                    .to("out-left", Produced.with(S, S));
                in = List.of("l", "r");
                out.put("out-inner", S);
                out.put("out-left", S);
            }
            default -> throw new IllegalArgumentException("no topology named " + name + " in the catalogue");
        }
        return new Case(b.build(props), in, out);
    }

    private static String show(Object o) {
        return o == null ? "\\N" : o.toString();
    }

    private static String field(String f) {
        return f.equals("\\N") ? null : f;
    }

    private static void run(String name, Case c, Path input, Path output) throws IOException {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, "oracle-" + name);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        // Kafka Streams emits unmatched left/outer join results at most once per wall-clock second
        // (an internal throttle); the driver's clock stands still, so without this only the first
        // batch would ever be emitted. The framework checks on every record, as with interval 0.
        p.put("__emit.interval.ms.kstreams.outer.join.spurious.results.fix__", 0L);
        // The same throttle for windowed aggregations emitting final results on window close.
        p.put("__emit.interval.ms.kstreams.windowed.aggregation__", 0L);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        try (TopologyTestDriver d = new TopologyTestDriver(c.topology(), p, Instant.ofEpochMilli(0))) {
            Map<String, TestInputTopic<String, String>> inputs = new TreeMap<>();
            for (String t : c.inputs()) {
                inputs.put(t, d.createInputTopic(t, S.serializer(), S.serializer()));
            }
            for (String line : Files.readAllLines(input, StandardCharsets.UTF_8)) {
                String[] f = line.split("\t", -1);
                if (f[0].equals("R")) {
                    TestInputTopic<String, String> t = inputs.get(f[1]);
                    if (t == null) {
                        throw new IllegalArgumentException(input + ": no input topic " + f[1]);
                    }
                    t.pipeInput(new TestRecord<>(field(f[2]), field(f[3]), null, Long.parseLong(f[4])));
                }
            }
            List<String> lines = new ArrayList<>();
            for (Map.Entry<String, Serde<?>> o : c.outputs().entrySet()) {
                TestOutputTopic<String, ?> t = d.createOutputTopic(o.getKey(), S.deserializer(), o.getValue().deserializer());
                for (TestRecord<String, ?> r : t.readRecordsToList()) {
                    lines.add(o.getKey() + "\t" + show(r.key()) + "\t" + show(r.value()) + "\t" + r.timestamp());
                }
            }
            Files.write(output, lines, StandardCharsets.UTF_8);
        }
    }

    public static void main(String[] args) throws IOException {
        for (String dir : args) {
            Path caseDir = Path.of(dir);
            String name = caseDir.getFileName().toString();
            Case c = build(name);
            Files.writeString(caseDir.resolve("describe.txt"), c.topology().describe().toString(), StandardCharsets.UTF_8);
            List<Path> inputs;
            try (Stream<Path> files = Files.list(caseDir)) {
                inputs = files.filter(f -> f.toString().endsWith(".in")).sorted().collect(Collectors.toList());
            }
            for (Path in : inputs) {
                String file = in.getFileName().toString();
                run(name, c, in, caseDir.resolve(file.substring(0, file.length() - 3) + ".out"));
            }
        }
    }
}
