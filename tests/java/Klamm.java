import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/** Shared plumbing for the Klamm Java-client test programs (tests/java). */
final class Klamm {
    private Klamm() {}

    /** A failed expectation: the program prints it and exits 1. */
    static final class CheckFailed extends RuntimeException {
        CheckFailed(String msg) { super(msg); }
    }

    interface Body { void run() throws Exception; }

    /** Runs a program body: exit 0 when it returns, 1 with the failure on stderr otherwise. */
    static void main(String program, String[] args, Map<String, Body> commands) {
        if (args.length < 2 || !commands.containsKey(args[1])) {
            System.err.println("usage: " + program + " BOOTSTRAP COMMAND [ARGS]; commands: " + commands.keySet());
            System.exit(2);
        }
        bootstrap = args[0];
        Klamm.args = Arrays.copyOfRange(args, 2, args.length);
        long start = System.nanoTime();
        int code = 0;
        try {
            commands.get(args[1]).run();
            if (!softFailures.isEmpty()) {
                throw new CheckFailed(softFailures.size() + " check(s) failed: " + String.join(" | ", softFailures));
            }
            System.out.printf("OK %s %s (%.1f s)%n", program, args[1], (System.nanoTime() - start) / 1e9);
        } catch (Throwable t) {
            code = 1;
            System.out.flush();
            System.err.println("FAIL " + program + " " + args[1] + ": " + describe(t));
            t.printStackTrace(System.err);
        }
        System.out.flush();
        System.err.flush();
        // Client threads (heartbeats, senders) must not keep the JVM alive.
        Runtime.getRuntime().halt(code);
    }

    /** An exception and its causes, one line: what the client saw. */
    static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        Throwable cur = t;
        int depth = 0;
        while (cur != null && depth++ < 6) {
            if (sb.length() > 0) sb.append(" <- caused by ");
            sb.append(cur.getClass().getName()).append(": ").append(cur.getMessage());
            if (cur.getCause() == cur) break;
            cur = cur.getCause();
        }
        return sb.toString();
    }

    static String bootstrap;
    /** The arguments after the command. */
    static String[] args;

    static void log(String fmt, Object... args) {
        System.out.printf("[%tT.%<tL] %s%n", System.currentTimeMillis(), String.format(fmt, args));
        System.out.flush();
    }

    static void check(boolean ok, String fmt, Object... args) {
        if (!ok) throw new CheckFailed(String.format(fmt, args));
    }

    static void checkEq(Object expected, Object actual, String what) {
        if (isIntegral(expected) && isIntegral(actual)) {
            if (((Number) expected).longValue() == ((Number) actual).longValue()) return;
        } else if (expected == null ? actual == null : expected.equals(actual)) {
            return;
        }
        throw new CheckFailed(what + ": expected <" + expected + "> but got <" + actual + ">");
    }

    /** Failed checks that let the scenario go on; the program still exits 1 at the end. */
    static final List<String> softFailures = new java.util.concurrent.CopyOnWriteArrayList<>();

    /** Runs a check; a failure is recorded and reported at the end instead of stopping here. */
    static void soft(Body check) throws Exception {
        try {
            check.run();
        } catch (CheckFailed e) {
            softFailures.add(e.getMessage());
            log("CHECK FAILED (continuing): %s", e.getMessage());
        } catch (Throwable t) {
            softFailures.add(describe(t));
            log("CHECK FAILED (continuing): %s", describe(t));
            t.printStackTrace(System.out);
        }
    }

    private static boolean isIntegral(Object o) {
        return o instanceof Integer || o instanceof Long || o instanceof Short || o instanceof Byte;
    }

    static void waitUntil(String what, long timeoutMs, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (!cond.getAsBoolean()) {
            if (System.currentTimeMillis() > deadline) throw new CheckFailed("timed out after " + timeoutMs + " ms waiting for " + what);
            Thread.sleep(50);
        }
    }

    /** Unwraps the ExecutionException of a KafkaFuture.get(). */
    static Throwable cause(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof org.apache.kafka.common.KafkaException
                && t.getClass() == org.apache.kafka.common.KafkaException.class) && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    /** Expects `body` to fail with `type` (after unwrapping ExecutionException). */
    static <T extends Throwable> T expectError(Class<T> type, String what, Body body) throws Exception {
        try {
            body.run();
        } catch (Throwable t) {
            Throwable c = cause(t);
            if (type.isInstance(c)) {
                log("%s: got %s as expected (%s)", what, type.getSimpleName(), c.getMessage());
                return type.cast(c);
            }
            throw new CheckFailed(what + ": expected " + type.getName() + " but got " + describe(t));
        }
        throw new CheckFailed(what + ": expected " + type.getName() + " but it succeeded");
    }

    static String name(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    static Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "klamm-java-admin");
        return Admin.create(p);
    }

    static Properties producerProps(Object... kv) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 20000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 20000);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        for (int i = 0; i < kv.length; i += 2) p.put(kv[i], kv[i + 1]);
        return p;
    }

    static KafkaProducer<byte[], byte[]> producer(Object... kv) {
        return new KafkaProducer<>(producerProps(kv));
    }

    static Properties consumerProps(String group, Object... kv) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
            p.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, 15000);
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        }
        for (int i = 0; i < kv.length; i += 2) p.put(kv[i], kv[i + 1]);
        return p;
    }

    static KafkaConsumer<byte[], byte[]> consumer(String group, Object... kv) {
        return new KafkaConsumer<>(consumerProps(group, kv));
    }

    static void createTopic(Admin admin, String topic, int partitions, Map<String, String> configs) throws Exception {
        NewTopic t = new NewTopic(topic, partitions, (short) 1);
        if (configs != null) t.configs(configs);
        admin.createTopics(Collections.singletonList(t)).all().get(20, TimeUnit.SECONDS);
    }

    static void createTopic(String topic, int partitions) throws Exception {
        try (Admin a = admin()) {
            createTopic(a, topic, partitions, null);
        }
    }

    static List<TopicPartition> partitions(String topic, int n) {
        List<TopicPartition> out = new ArrayList<>();
        for (int i = 0; i < n; i++) out.add(new TopicPartition(topic, i));
        return out;
    }

    /**
     * Every record of the given partitions from the beginning up to their end offsets (read by
     * a consumer of `isolation` with manual assignment), in partition then offset order.
     */
    static List<ConsumerRecord<byte[], byte[]>> readAll(Collection<TopicPartition> tps, String isolation) throws Exception {
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = consumer(null, ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation)) {
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            long deadline = System.currentTimeMillis() + 20000;
            Map<TopicPartition, List<ConsumerRecord<byte[], byte[]>>> byTp = new HashMap<>();
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) if (c.position(tp) < end.get(tp)) done = false;
                if (done) break;
                check(System.currentTimeMillis() < deadline, "reading %s (%s) did not reach end offsets %s; positions %s",
                    tps, isolation, end, positions(c, tps));
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    byTp.computeIfAbsent(new TopicPartition(r.topic(), r.partition()), k -> new ArrayList<>()).add(r);
                }
            }
            for (TopicPartition tp : tps) out.addAll(byTp.getOrDefault(tp, Collections.emptyList()));
        }
        return out;
    }

    static Map<TopicPartition, Long> positions(KafkaConsumer<?, ?> c, Collection<TopicPartition> tps) {
        Map<TopicPartition, Long> m = new HashMap<>();
        for (TopicPartition tp : tps) m.put(tp, c.position(tp));
        return m;
    }

    static byte[] bytes(String s) {
        return s == null ? null : s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    static String str(byte[] b) {
        return b == null ? null : new String(b, java.nio.charset.StandardCharsets.UTF_8);
    }

    static String hex(byte[] b) {
        if (b == null) return "null";
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < Math.min(b.length, 32); i++) sb.append(String.format("%02x", b[i]));
        if (b.length > 32) sb.append("...(").append(b.length).append(" bytes)");
        return sb.toString();
    }

    static boolean same(byte[] a, byte[] b) {
        return Arrays.equals(a, b);
    }
}
