// The benchmark suite's Java peer (tests/benches/suite.rs): its word count (that of
// examples/src/lib.rs) and stream-stream join written with Kafka Streams' own DSL, so both run on
// the same broker, input, cores and settings and the suite can report ours / theirs.
//
//   java -cp "$(tests/oracle/build.sh)" BenchPeer word-count BOOTSTRAP APP STATE_DIR GUARANTEE COMMIT_MS THREADS INPUT OUTPUT
//   java -cp "$(tests/oracle/build.sh)" BenchPeer join BOOTSTRAP APP STATE_DIR GUARANTEE COMMIT_MS THREADS LEFT RIGHT OUTPUT
//
// Prints RUNNING once the instance runs; reading "stop" on stdin closes it (CLOSED, exit 0).
import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;

import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.StreamJoined;

public final class BenchPeer {
    public static void main(String[] all) throws Exception {
        String mode = all[0];
        String[] args = Arrays.copyOfRange(all, 1, all.length);
        Properties p = new Properties();
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        p.put(StreamsConfig.STATE_DIR_CONFIG, args[2]);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, args[3]);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Integer.parseInt(args[4]));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(args[5]));
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        // Everything else at Kafka Streams' defaults, as the Rust side runs at its own.
        Serde<String> s = Serdes.String();
        StreamsBuilder b = new StreamsBuilder();
        if (mode.equals("join")) {
            // The suite's join: each left record meets the right record of its key within 100 ms
            // (300 s grace, as the Rust side).
            KStream<String, String> left = b.stream(args[6], Consumed.with(s, s));
            KStream<String, String> right = b.stream(args[7], Consumed.with(s, s));
            left.join(right, (l, r) -> l + "+" + r,
                    JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(100), Duration.ofSeconds(300)),
                    StreamJoined.with(s, s, s))
                .to(args[8], Produced.with(s, s));
        } else {
            b.stream(args[6], Consumed.with(Serdes.ByteArray(), s))
                .flatMapValues(line -> Arrays.stream(line.toLowerCase().split("[^\\p{L}\\p{N}]+"))
                    .filter(w -> !w.isEmpty())
                    .toList())
                .groupBy((k, w) -> w, Grouped.with(s, s))
                .count(Materialized.as("counts"))
                .toStream()
                .to(args[7], Produced.with(s, Serdes.Long()));
        }

        StdinControlled.run(new KafkaStreams(b.build(), p),
            CloseOptions.timeout(Duration.ofSeconds(60)));
    }
}
