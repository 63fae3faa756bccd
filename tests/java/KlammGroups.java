import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

import java.time.Duration;
import java.util.*;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;

/**
 * KafkaConsumer with classic consumer groups:
 * `KlammGroups BOOTSTRAP assignor CLASS | static | commits | seek`.
 */
public final class KlammGroups {
    public static void main(String[] args) {
        Map<String, Klamm.Body> cmds = new LinkedHashMap<>();
        cmds.put("assignor", KlammGroups::assignor);
        cmds.put("static", KlammGroups::staticMembership);
        cmds.put("commits", KlammGroups::commits);
        cmds.put("seek", KlammGroups::seek);
        Klamm.main("KlammGroups", args, cmds);
    }

    static void produce(String topic, int partitions, int perPartition, Long baseTs) throws Exception {
        try (KafkaProducer<byte[], byte[]> p = Klamm.producer()) {
            for (int part = 0; part < partitions; part++) {
                for (int i = 0; i < perPartition; i++) {
                    Long ts = baseTs == null ? null : baseTs + i * 1000L;
                    p.send(new ProducerRecord<>(topic, part, ts, Klamm.bytes("k" + i), Klamm.bytes("p" + part + "-" + i)));
                }
            }
            p.flush();
        }
    }

    /** One group member polling on its own thread. */
    static final class Member implements Runnable {
        final String name;
        final KafkaConsumer<byte[], byte[]> consumer;
        final String topic;
        final Thread thread;
        volatile Set<TopicPartition> assignment = Set.of();
        volatile int generation = -1;
        volatile boolean stop;
        volatile boolean closed;
        final AtomicReference<Throwable> error = new AtomicReference<>();
        final Set<String> values = ConcurrentHashMap.newKeySet();
        final List<String> events = new CopyOnWriteArrayList<>();
        final Set<TopicPartition> revoked = ConcurrentHashMap.newKeySet();
        final AtomicInteger assignedCalls = new AtomicInteger();

        Member(String name, String topic, Properties props) {
            this.name = name;
            this.topic = topic;
            this.consumer = new KafkaConsumer<>(props);
            this.thread = new Thread(this, name);
            thread.setDaemon(true);
            thread.start();
        }

        public void run() {
            try {
                consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    public void onPartitionsRevoked(Collection<TopicPartition> ps) {
                        revoked.addAll(ps);
                        events.add("revoked " + ps);
                    }
                    public void onPartitionsAssigned(Collection<TopicPartition> ps) {
                        assignedCalls.incrementAndGet();
                        events.add("assigned " + ps);
                    }
                    public void onPartitionsLost(Collection<TopicPartition> ps) {
                        events.add("lost " + ps);
                    }
                });
                while (!stop) {
                    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) values.add(Klamm.str(r.value()));
                    assignment = Set.copyOf(consumer.assignment());
                    generation = consumer.groupMetadata().generationId();
                }
            } catch (Throwable t) {
                error.set(t);
            } finally {
                try { consumer.close(Duration.ofSeconds(10)); } catch (Throwable t) { error.compareAndSet(null, t); }
                closed = true;
            }
        }

        void close() throws InterruptedException {
            stop = true;
            thread.join(20000);
            Klamm.check(closed, "%s did not close", name);
        }

        @Override public String toString() {
            return name + "(gen " + generation + ", " + assignment.stream().map(TopicPartition::partition).sorted().collect(Collectors.toList()) + ")";
        }
    }

    static void checkErrors(List<Member> ms) {
        for (Member m : ms) {
            Throwable t = m.error.get();
            if (t != null) throw new Klamm.CheckFailed(m.name + " failed: " + Klamm.describe(t) + "; events " + m.events);
        }
    }

    /** True once `ms` own every partition exactly once, `each` apiece, all in one generation. */
    static boolean balanced(List<Member> ms, int partitions, int each) {
        checkErrors(ms);
        Set<TopicPartition> union = new HashSet<>();
        int total = 0;
        Set<Integer> gens = new HashSet<>();
        for (Member m : ms) {
            Set<TopicPartition> a = m.assignment;
            if (a.size() != each) return false;
            union.addAll(a);
            total += a.size();
            gens.add(m.generation);
        }
        return total == partitions && union.size() == partitions && gens.size() == 1;
    }

    static void waitBalanced(List<Member> ms, int partitions, int each, String what) throws InterruptedException {
        long start = System.currentTimeMillis();
        try {
            Klamm.waitUntil(what, 40000, () -> balanced(ms, partitions, each));
        } catch (Klamm.CheckFailed e) {
            StringBuilder sb = new StringBuilder(e.getMessage()).append("; members:");
            for (Member m : ms) sb.append("\n  ").append(m).append(" events ").append(m.events);
            throw new Klamm.CheckFailed(sb.toString());
        }
        Klamm.log("%s after %d ms: %s", what, System.currentTimeMillis() - start, ms);
    }

    // ---------------------------------------------------------------------------------
    static void assignor() throws Exception {
        String cls = Klamm.args[0];
        String fqcn = cls.contains(".") ? cls : "org.apache.kafka.clients.consumer." + cls;
        boolean sticky = cls.contains("Sticky");
        boolean cooperative = cls.contains("Cooperative");
        String topic = Klamm.name("jasg"), group = Klamm.name("jasg-group");
        int partitions = 6;
        Klamm.createTopic(topic, partitions);
        produce(topic, partitions, 5, null);

        List<Member> ms = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            ms.add(new Member("m" + i, topic, Klamm.consumerProps(group,
                ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, fqcn,
                ConsumerConfig.CLIENT_ID_CONFIG, "m" + i)));
        }
        waitBalanced(ms, partitions, 2, "3 members with 2 partitions each");
        try (Admin a = Klamm.admin()) {
            ConsumerGroupDescription d = a.describeConsumerGroups(List.of(group)).describedGroups().get(group).get(20, TimeUnit.SECONDS);
            String expected = new HashMap<String, String>() {{
                put("RangeAssignor", "range"); put("RoundRobinAssignor", "roundrobin");
                put("StickyAssignor", "sticky"); put("CooperativeStickyAssignor", "cooperative-sticky");
            }}.get(cls);
            Klamm.checkEq(expected, d.partitionAssignor(), "the group's protocol");
            Klamm.checkEq(3, d.members().size(), "described members");
            for (MemberDescription md : d.members()) {
                Member m = ms.stream().filter(x -> x.name.equals(md.clientId())).findFirst().orElseThrow();
                Klamm.checkEq(m.assignment, md.assignment().topicPartitions(), "described assignment of " + m.name);
            }
        }

        // m2 leaves: its partitions move to the others.
        Map<String, Set<TopicPartition>> before = new HashMap<>();
        for (Member m : ms) {
            before.put(m.name, m.assignment);
            m.revoked.clear();
        }
        Member leaving = ms.remove(2);
        leaving.close();
        checkErrors(List.of(leaving));
        waitBalanced(ms, partitions, 3, "2 members with 3 partitions each after m2 left");
        for (Member m : ms) {
            if (sticky) {
                Klamm.check(m.assignment.containsAll(before.get(m.name)), "%s: sticky assignor moved partitions: had %s, now %s",
                    m.name, before.get(m.name), m.assignment);
            }
            if (cooperative) {
                Klamm.check(m.revoked.isEmpty(), "%s: cooperative rebalance revoked %s (events %s)", m.name, m.revoked, m.events);
            }
        }
        // Every record was consumed by someone.
        Set<String> expected = new HashSet<>();
        for (int p = 0; p < partitions; p++) for (int i = 0; i < 5; i++) expected.add("p" + p + "-" + i);
        Klamm.waitUntil("every record consumed", 20000, () -> {
            Set<String> seen = new HashSet<>(leaving.values);
            for (Member m : ms) seen.addAll(m.values);
            return seen.containsAll(expected);
        });
        for (Member m : ms) m.close();
        checkErrors(ms);
    }

    // ---------------------------------------------------------------------------------
    static Properties staticProps(String group, String instance) {
        return Klamm.consumerProps(group,
            ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instance,
            ConsumerConfig.CLIENT_ID_CONFIG, instance,
            ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, RangeAssignor.class.getName(),
            ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 8000);
    }

    static void staticMembership() throws Exception {
        String topic = Klamm.name("jstatic"), group = Klamm.name("jstatic-group");
        Klamm.createTopic(topic, 4);
        Member a = new Member("static-a", topic, staticProps(group, "static-a"));
        Klamm.waitUntil("static-a to own all 4 partitions", 30000, () -> balanced(List.of(a), 4, 4));
        Member b = new Member("static-b", topic, staticProps(group, "static-b"));
        List<Member> ms = new ArrayList<>(List.of(a, b));
        waitBalanced(ms, 4, 2, "2 static members with 2 partitions each");
        int gen = a.generation;
        Set<TopicPartition> bHad = b.assignment;
        try (Admin admin = Klamm.admin()) {
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get(20, TimeUnit.SECONDS);
            Set<String> instances = d.members().stream().map(m -> m.groupInstanceId().orElse("none")).collect(Collectors.toSet());
            Klamm.checkEq(Set.of("static-a", "static-b"), instances, "described group.instance.ids");
        }

        // static-b first rejoins with the same subscription bytes as its first join (no owned
        // partitions yet); the later restarts differ from the previous incarnation's JoinGroup
        // in ConsumerProtocolSubscription.ownedPartitions/generationId, which must not matter:
        // Kafka rebalances a Stable group only if the selected protocol would change.
        int bounceNo = 0;
        for (String bounce : List.of("static-b", "static-a", "static-b")) {
            bounceNo++;
            Member old = bounce.equals("static-b") ? ms.get(1) : ms.get(0);
            Klamm.log("restarting %s (restart %d)", bounce, bounceNo);
            Member other = bounce.equals("static-b") ? ms.get(0) : ms.get(1);
            Set<TopicPartition> had = old.assignment;
            int otherAssigned = other.assignedCalls.get();
            other.revoked.clear();
            // A static member's close sends no LeaveGroup; the same instance id rejoins at once.
            old.close();
            checkErrors(List.of(old));
            Member fresh = new Member(bounce, topic, staticProps(group, bounce));
            Klamm.waitUntil(bounce + " to get its partitions back", 20000, () -> {
                checkErrors(List.of(fresh, other));
                return fresh.assignment.equals(had);
            });
            Thread.sleep(2500);   // a rebalance, if one were triggered, would show by now
            Klamm.log("%s rejoined: %s, other %s", bounce, fresh, other);
            String role = " (restart " + bounceNo + ")";
            final int g = gen;
            Klamm.soft(() -> {
                Klamm.checkEq(g, fresh.generation, bounce + role + " rejoined in the same generation, without a rebalance");
                Klamm.checkEq(g, other.generation, "generation of the member that stayed while " + bounce + role + " rejoined");
                Klamm.check(other.revoked.isEmpty() && other.assignedCalls.get() == otherAssigned,
                    "%s%s rejoining rebalanced the member that stayed: events %s", bounce, role, other.events);
            });
            gen = fresh.generation;
            if (bounce.equals("static-b")) ms.set(1, fresh); else ms.set(0, fresh);
        }
        Klamm.waitUntil("a stable group again", 20000, () -> balanced(ms, 4, 2));

        // static-b goes away for longer than its session timeout: static-a gets everything.
        long t0 = System.currentTimeMillis();
        ms.get(1).close();
        Member stays = ms.get(0);
        Klamm.waitUntil("static-a to own all 4 partitions after static-b's session expired", 30000, () -> balanced(List.of(stays), 4, 4));
        long took = System.currentTimeMillis() - t0;
        Klamm.log("static-b expired after %d ms: %s", took, stays);
        Klamm.check(took >= 6000, "partitions moved after %d ms, before the 8000 ms session timeout", took);
        stays.close();
        checkErrors(ms);
    }

    // ---------------------------------------------------------------------------------
    static void commits() throws Exception {
        String topic = Klamm.name("jcommit"), group = Klamm.name("jcommit-group");
        Klamm.createTopic(topic, 2);
        produce(topic, 2, 10, null);
        TopicPartition p0 = new TopicPartition(topic, 0), p1 = new TopicPartition(topic, 1);
        Set<TopicPartition> both = Set.of(p0, p1);

        try (KafkaConsumer<byte[], byte[]> c = Klamm.consumer(group)) {
            c.subscribe(List.of(topic));
            int n = 0;
            long deadline = System.currentTimeMillis() + 30000;
            while (n < 20) {
                Klamm.check(System.currentTimeMillis() < deadline, "polled %d of 20", n);
                n += c.poll(Duration.ofMillis(200)).count();
            }
            Map<TopicPartition, OffsetAndMetadata> none = c.committed(both);
            Klamm.check(none.get(p0) == null && none.get(p1) == null, "committed offsets before any commit: %s", none);

            c.commitSync(Map.of(p0, new OffsetAndMetadata(4, "meta-p0")));
            AtomicReference<Object> async = new AtomicReference<>();
            c.commitAsync(Map.of(p1, new OffsetAndMetadata(7)), (offsets, e) -> async.set(e == null ? offsets : e));
            deadline = System.currentTimeMillis() + 20000;
            while (async.get() == null) {
                Klamm.check(System.currentTimeMillis() < deadline, "commitAsync callback never ran");
                c.poll(Duration.ofMillis(100));
            }
            Klamm.check(!(async.get() instanceof Exception), "commitAsync failed: %s", async.get());
            Map<TopicPartition, OffsetAndMetadata> got = c.committed(both);
            Klamm.checkEq(4L, got.get(p0).offset(), "committed offset of p0");
            Klamm.checkEq("meta-p0", got.get(p0).metadata(), "committed metadata of p0");
            Klamm.checkEq(7L, got.get(p1).offset(), "committed offset of p1");

            c.commitSync();   // the positions: 10 and 10
            got = c.committed(both);
            Klamm.checkEq(10L, got.get(p0).offset(), "p0 after commitSync()");
            Klamm.checkEq(10L, got.get(p1).offset(), "p1 after commitSync()");
            // commitSync() commits the positions with the leader epoch of the last record consumed.
            Klamm.checkEq(Optional.of(0), got.get(p0).leaderEpoch(), "leader epoch committed with p0's position");
            // Rewind p0 and commit asynchronously with no arguments.
            c.seek(p0, 2);
            async.set(null);
            c.commitAsync((offsets, e) -> async.set(e == null ? offsets : e));
            deadline = System.currentTimeMillis() + 20000;
            while (async.get() == null) {
                Klamm.check(System.currentTimeMillis() < deadline, "commitAsync() callback never ran");
                c.poll(Duration.ofMillis(100));
            }
            Klamm.check(!(async.get() instanceof Exception), "commitAsync() failed: %s", async.get());
            Klamm.log("commitAsync() committed %s", async.get());
            c.commitSync(Map.of(p0, new OffsetAndMetadata(3)));
        }
        // A new member of the group resumes at the committed offsets: 3 on p0, nothing on p1.
        try (KafkaConsumer<byte[], byte[]> c = Klamm.consumer(group)) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<byte[], byte[]>> rs = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 30000;
            while (rs.size() < 7) {
                Klamm.check(System.currentTimeMillis() < deadline, "resumed consumer polled %d of 7", rs.size());
                c.poll(Duration.ofMillis(200)).forEach(rs::add);
            }
            c.poll(Duration.ofMillis(500)).forEach(rs::add);
            Klamm.checkEq(List.of(3L, 4L, 5L, 6L, 7L, 8L, 9L), rs.stream().map(ConsumerRecord::offset).collect(Collectors.toList()), "offsets after resuming");
            Klamm.check(rs.stream().allMatch(r -> r.partition() == 0), "resumed records on p1: %s", rs);
        }
        // Auto-commit.
        String group2 = Klamm.name("jauto-group");
        try (KafkaConsumer<byte[], byte[]> c = Klamm.consumer(group2, ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, true,
                ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, 300)) {
            c.subscribe(List.of(topic));
            int n = 0;
            long deadline = System.currentTimeMillis() + 30000;
            while (n < 20) {
                Klamm.check(System.currentTimeMillis() < deadline, "auto-commit consumer polled %d of 20", n);
                n += c.poll(Duration.ofMillis(200)).count();
            }
            deadline = System.currentTimeMillis() + 10000;
            while (true) {
                c.poll(Duration.ofMillis(200));
                Map<TopicPartition, OffsetAndMetadata> got = c.committed(both);
                if (got.get(p0) != null && got.get(p1) != null && got.get(p0).offset() == 10 && got.get(p1).offset() == 10) break;
                Klamm.check(System.currentTimeMillis() < deadline, "auto-commit never committed 10/10: %s", got);
            }
        }
    }

    // ---------------------------------------------------------------------------------
    static void seek() throws Exception {
        String topic = Klamm.name("jseek");
        Klamm.createTopic(topic, 1);
        long base = System.currentTimeMillis() - 600_000;
        produce(topic, 1, 10, base);   // timestamps base, base+1000, ..., base+9000
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> c = Klamm.consumer(null)) {
            c.assign(List.of(tp));
            Map<TopicPartition, OffsetAndTimestamp> ot = c.offsetsForTimes(Map.of(tp, base + 2500));
            Klamm.checkEq(3L, ot.get(tp).offset(), "offsetsForTimes(base+2500) offset");
            Klamm.checkEq(base + 3000, ot.get(tp).timestamp(), "offsetsForTimes(base+2500) timestamp");
            Klamm.checkEq(0L, c.offsetsForTimes(Map.of(tp, 0L)).get(tp).offset(), "offsetsForTimes(0)");
            Klamm.checkEq(9L, c.offsetsForTimes(Map.of(tp, base + 9000)).get(tp).offset(), "offsetsForTimes(exact last timestamp)");
            Klamm.checkEq(null, c.offsetsForTimes(Map.of(tp, base + 9001)).get(tp), "offsetsForTimes past the last timestamp");

            Klamm.checkEq(0L, c.beginningOffsets(List.of(tp)).get(tp), "beginningOffsets");
            Klamm.checkEq(10L, c.endOffsets(List.of(tp)).get(tp), "endOffsets");
            c.seekToEnd(List.of(tp));
            Klamm.checkEq(10L, c.position(tp), "position after seekToEnd");
            c.seekToBeginning(List.of(tp));
            Klamm.checkEq(0L, c.position(tp), "position after seekToBeginning");
            c.seek(tp, ot.get(tp).offset());
            ConsumerRecords<byte[], byte[]> rs = ConsumerRecords.empty();
            long deadline = System.currentTimeMillis() + 20000;
            while (rs.isEmpty()) {
                Klamm.check(System.currentTimeMillis() < deadline, "nothing after seek(3)");
                rs = c.poll(Duration.ofMillis(200));
            }
            ConsumerRecord<byte[], byte[]> first = rs.iterator().next();
            Klamm.checkEq(3L, first.offset(), "first offset after seek(3)");
            Klamm.checkEq(base + 3000, first.timestamp(), "its timestamp");

            // Out of range with auto.offset.reset=earliest: the consumer resets to the log start.
            try (Admin a = Klamm.admin()) {
                a.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).all().get(20, TimeUnit.SECONDS);
            }
            c.seekToBeginning(List.of(tp));
            Klamm.checkEq(4L, c.position(tp), "position after seekToBeginning once records before 4 are deleted");
            c.seek(tp, 1);
            rs = ConsumerRecords.empty();
            deadline = System.currentTimeMillis() + 20000;
            while (rs.isEmpty()) {
                Klamm.check(System.currentTimeMillis() < deadline, "nothing after an out-of-range seek(1)");
                rs = c.poll(Duration.ofMillis(200));
            }
            Klamm.checkEq(4L, rs.iterator().next().offset(), "first offset after an out-of-range seek reset to earliest");
        }
        // A group without offsets, auto.offset.reset=latest and none.
        try (KafkaConsumer<byte[], byte[]> c = Klamm.consumer(Klamm.name("jseek-latest"), ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "latest")) {
            c.assign(List.of(tp));
            Klamm.checkEq(10L, c.position(tp), "position with auto.offset.reset=latest");
        }
        try (KafkaConsumer<byte[], byte[]> c = Klamm.consumer(Klamm.name("jseek-none"), ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none")) {
            c.assign(List.of(tp));
            Klamm.expectError(NoOffsetForPartitionException.class, "position with auto.offset.reset=none", () -> c.position(tp));
        }
    }
}
