// How the test and benchmark Java applications (TakeoverApp, BenchPeer) run: started, they print
// RUNNING (or ERROR) as their state changes, run until stdin says "stop" (or closes), close with
// the given options and exit 0 once closed (printing CLOSED) or 1 if the close timed out.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

final class StdinControlled {
    private StdinControlled() {}

    static void run(KafkaStreams streams, CloseOptions close) throws Exception {
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                System.out.println("RUNNING");
            } else if (now == KafkaStreams.State.ERROR) {
                System.out.println("ERROR");
            }
            System.out.flush();
        });
        streams.setUncaughtExceptionHandler(e -> {
            e.printStackTrace();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null && !line.equals("stop")) {
            // wait
        }
        boolean closed = streams.close(close);
        System.out.println(closed ? "CLOSED" : "CLOSE TIMED OUT");
        System.out.flush();
        System.exit(closed ? 0 : 1);
    }
}
