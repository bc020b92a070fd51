// Test tooling: lists the transactions a test cluster left hanging. Run as a single-file program
// on the cluster's own classpath (`java -cp '<kafka libs>/*' HangingTransactions.java <bootstrap>`).
//
// A partition holds a transaction open from its first record until the coordinator writes the
// transaction's marker there; read_committed readers stop at it. It hangs when the coordinator
// no longer counts that partition in an ongoing transaction of that producer (it completed the
// transaction, or moved on to a later one), so no marker will come. Output: one line per hanging
// partition, nothing when none hangs; exit status 2 when the cluster could not be asked.
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.common.TopicPartition;

public class HangingTransactions {
    public static void main(String[] args) {
        try (Admin admin = Admin.create(Map.of(
                "bootstrap.servers", args[0],
                "default.api.timeout.ms", "20000",
                "request.timeout.ms", "10000"))) {
            List<TopicPartition> partitions = new ArrayList<>();
            Set<String> topics = admin.listTopics().names().get();
            for (var topic : admin.describeTopics(topics).allTopicNames().get().values()) {
                for (var p : topic.partitions()) {
                    partitions.add(new TopicPartition(topic.name(), p.partition()));
                }
            }
            // Open in two looks two seconds apart from the same offset: a live producer's
            // transaction completes between the looks (or between a look and the coordinator's
            // answer below), a hanging one stays.
            Map<Open, ProducerState> first = openTransactions(admin, partitions);
            Thread.sleep(2000);
            Map<Open, ProducerState> second = openTransactions(admin, partitions);
            Map<Long, String> transactionalIds = new HashMap<>();
            for (TransactionListing t : admin.listTransactions().all().get()) {
                transactionalIds.put(t.producerId(), t.transactionalId());
            }
            for (var entry : second.entrySet()) {
                ProducerState producer = entry.getValue();
                ProducerState before = first.get(entry.getKey());
                if (before == null || !before.currentTransactionStartOffset()
                        .equals(producer.currentTransactionStartOffset())) {
                    continue;
                }
                TopicPartition partition = entry.getKey().partition();
                String id = transactionalIds.get(producer.producerId());
                String coordinator = "no transactional id known for the producer";
                boolean hanging = true;
                if (id != null) {
                    TransactionDescription d =
                            admin.describeTransactions(List.of(id)).description(id).get();
                    boolean open = d.state() == TransactionState.ONGOING
                            || d.state() == TransactionState.PREPARE_COMMIT
                            || d.state() == TransactionState.PREPARE_ABORT;
                    hanging = !open || !d.topicPartitions().contains(partition);
                    coordinator = String.format(
                            "the coordinator has %s in %s (epoch %d, partitions %s)",
                            id, d.state(), d.producerEpoch(), d.topicPartitions());
                }
                if (hanging) {
                    System.out.printf(
                            "%s: producer %d epoch %d holds a transaction open from offset %d; %s%n",
                            partition, producer.producerId(), producer.producerEpoch(),
                            producer.currentTransactionStartOffset().getAsLong(), coordinator);
                }
            }
        } catch (Exception e) {
            System.err.println("asking the cluster for hanging transactions: " + e);
            System.exit(2);
        }
    }

    /** A producer's transaction open on a partition. */
    record Open(TopicPartition partition, long producerId) {}

    /** Every producer with a transaction open, by partition and producer. */
    static Map<Open, ProducerState> openTransactions(Admin admin, List<TopicPartition> partitions)
            throws Exception {
        Map<Open, ProducerState> open = new HashMap<>();
        for (var entry : admin.describeProducers(partitions).all().get().entrySet()) {
            for (ProducerState producer : entry.getValue().activeProducers()) {
                if (producer.currentTransactionStartOffset().isPresent()) {
                    open.put(new Open(entry.getKey(), producer.producerId()), producer);
                }
            }
        }
        return open;
    }
}
