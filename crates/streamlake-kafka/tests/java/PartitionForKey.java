import java.nio.charset.StandardCharsets;

import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

/**
 * Prints, one per line, the partition the Java producer's built-in partitioner picks for each
 * key (UTF-8) among PARTITIONS partitions: what Java clients, Kafka Connect and Kafka Streams
 * do with a keyed record.
 *
 * <p>Usage: java -cp 'KAFKA/libs/*' PartitionForKey.java PARTITIONS < keys (one per line)
 */
public class PartitionForKey {
    public static void main(String[] args) throws Exception {
        int partitions = Integer.parseInt(args[0]);
        var in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in, StandardCharsets.UTF_8));
        var out = new StringBuilder();
        String key;
        while ((key = in.readLine()) != null) {
            out.append(BuiltInPartitioner.partitionForKey(key.getBytes(StandardCharsets.UTF_8), partitions)).append('\n');
        }
        System.out.print(out);
    }
}
