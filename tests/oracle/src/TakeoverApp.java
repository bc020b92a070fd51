// A Kafka Streams application for the takeover tests (tests/tests/takeover_kafka_streams.rs): the
// same topologies as the Rust side, left unnamed as users write them, run on a real broker under
// exactly_once_v2 until stdin says "stop" (or closes); then it leaves the group and exits, so the
// Rust application with the same application.id can take over its offsets and changelogs.
//
//   java -cp "$(tests/oracle/build.sh)" TakeoverApp BOOTSTRAP APP_ID STATE_DIR DESCRIBE_FILE \
//        word-count TEXT COUNTS WINDOWED SESSIONS
//   java ... TakeoverApp BOOTSTRAP APP_ID STATE_DIR DESCRIBE_FILE enrich ORDERS CUSTOMERS OUT
//   java ... TakeoverApp BOOTSTRAP APP_ID STATE_DIR DESCRIBE_FILE fk ORDERS CUSTOMERS OUT
//   java ... TakeoverApp BOOTSTRAP APP_ID STATE_DIR DESCRIBE_FILE table-count USER_REGIONS COUNTS
//
// Prints RUNNING once the application runs and CLOSED once it has left the group.

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;
import java.util.stream.Collectors;

import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.WindowedSerdes;

public final class TakeoverApp {
    private static final Serde<String> S = Serdes.String();
    private static final Serde<Long> L = Serdes.Long();

    static Topology build(String kind, String[] topics) {
        StreamsBuilder b = new StreamsBuilder();
        switch (kind) {
            case "word-count" -> {
                KStream<String, String> words = b.stream(topics[0], Consumed.with(S, S))
                    .flatMapValues(line -> Arrays.stream(line.toLowerCase().split("[^a-z0-9]+"))
                        .filter(w -> !w.isEmpty())
                        .collect(Collectors.toList()));
                words.groupBy((k, w) -> w, Grouped.with(S, S))
                    .count()
                    .toStream()
                    .to(topics[1], Produced.with(S, L));
                words.groupBy((k, w) -> w, Grouped.with(S, S))
                    .windowedBy(TimeWindows.ofSizeWithNoGrace(Duration.ofSeconds(10)))
                    .count()
                    .toStream()
                    .to(topics[2], Produced.with(WindowedSerdes.timeWindowedSerdeFrom(String.class, 10_000L), L));
                words.groupBy((k, w) -> w, Grouped.with(S, S))
                    .windowedBy(SessionWindows.ofInactivityGapWithNoGrace(Duration.ofHours(1)))
                    .count()
                    .toStream()
                    .to(topics[3], Produced.with(WindowedSerdes.sessionWindowedSerdeFrom(String.class), L));
            }
            case "enrich" -> {
                KTable<String, String> customers = b.table(topics[1], Consumed.with(S, S));
                b.stream(topics[0], Consumed.with(S, S))
                    .join(customers, (order, customer) -> order + "|" + customer)
                    .to(topics[2], Produced.with(S, S));
            }
            case "fk" -> {
                KTable<String, String> customers = b.table(topics[1], Consumed.with(S, S));
                b.table(topics[0], Consumed.with(S, S))
                    .join(customers, order -> order.split("\\|")[0], (order, customer) -> order + "|" + customer)
                    .toStream()
                    .to(topics[2], Produced.with(S, S));
            }
            case "table-count" -> {
                b.table(topics[0], Consumed.with(S, S))
                    .groupBy((user, region) -> KeyValue.pair(region, user), Grouped.with(S, S))
                    .count()
                    .toStream()
                    .to(topics[1], Produced.with(S, L));
            }
            default -> throw new IllegalArgumentException("unknown topology " + kind);
        }
        return b.build();
    }

    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        p.put(StreamsConfig.STATE_DIR_CONFIG, args[2]);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 2);
        Topology topology = build(args[4], Arrays.copyOfRange(args, 5, args.length));
        Files.writeString(Path.of(args[3]), topology.describe().toString());

        StdinControlled.run(new KafkaStreams(topology, p), CloseOptions
            .groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
            .withTimeout(Duration.ofSeconds(60)));
    }
}
