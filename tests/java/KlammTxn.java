import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;

import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/** Transactions with the Java producer: `KlammTxn BOOTSTRAP ctp|fencing|read-committed`. */
public final class KlammTxn {
    public static void main(String[] args) {
        Map<String, Klamm.Body> cmds = new LinkedHashMap<>();
        cmds.put("ctp", KlammTxn::consumeTransformProduce);
        cmds.put("fencing", KlammTxn::fencing);
        cmds.put("read-committed", KlammTxn::readCommitted);
        Klamm.main("KlammTxn", args, cmds);
    }

    static KafkaProducer<byte[], byte[]> txnProducer(String id) {
        KafkaProducer<byte[], byte[]> p = Klamm.producer(ProducerConfig.TRANSACTIONAL_ID_CONFIG, id,
            ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 30000);
        p.initTransactions();
        return p;
    }

    static List<String> values(List<ConsumerRecord<byte[], byte[]>> rs) {
        return rs.stream().map(r -> Klamm.str(r.value())).collect(Collectors.toList());
    }

    static void producePlain(String topic, int partitions, int n) throws Exception {
        try (KafkaProducer<byte[], byte[]> p = Klamm.producer()) {
            for (int i = 0; i < n; i++) p.send(new ProducerRecord<>(topic, i % partitions, Klamm.bytes("k" + i), Klamm.bytes("in-" + i))).get();
        }
    }

    /** Polls a subscribed consumer until `n` records arrived. */
    static List<ConsumerRecord<byte[], byte[]>> pollN(KafkaConsumer<byte[], byte[]> c, int n, long timeoutMs) {
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (out.size() < n) {
            Klamm.check(System.currentTimeMillis() < deadline, "polled %d of %d records", out.size(), n);
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) out.add(r);
        }
        return out;
    }

    // ---------------------------------------------------------------------------------
    static void consumeTransformProduce() throws Exception {
        String in = Klamm.name("jctp-in"), out = Klamm.name("jctp-out"), group = Klamm.name("jctp-group");
        Klamm.createTopic(in, 2);
        Klamm.createTopic(out, 2);
        producePlain(in, 2, 20);
        List<TopicPartition> inTps = Klamm.partitions(in, 2), outTps = Klamm.partitions(out, 2);

        KafkaConsumer<byte[], byte[]> c = Klamm.consumer(group, ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
            ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 5);
        c.subscribe(List.of(in));
        KafkaProducer<byte[], byte[]> p = txnProducer(Klamm.name("jctp-tx"));

        // Round 1 (committed): the first 5 records of each partition.
        // Round 2 (aborted): the rest; the group's offsets must stay at round 1's.
        Map<TopicPartition, List<ConsumerRecord<byte[], byte[]>>> byTp = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> r : pollN(c, 20, 30000)) byTp.computeIfAbsent(new TopicPartition(r.topic(), r.partition()), k -> new ArrayList<>()).add(r);
        Klamm.checkEq(Set.copyOf(inTps), byTp.keySet(), "partitions consumed");
        Set<String> committedValues = new TreeSet<>(), abortedValues = new TreeSet<>();
        for (int round = 0; round < 2; round++) {
            p.beginTransaction();
            Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
            for (TopicPartition tp : inTps) {
                List<ConsumerRecord<byte[], byte[]>> rs = byTp.get(tp);
                List<ConsumerRecord<byte[], byte[]>> part = round == 0 ? rs.subList(0, 5) : rs.subList(5, rs.size());
                for (ConsumerRecord<byte[], byte[]> r : part) {
                    String v = "out-" + Klamm.str(r.value()) + (round == 0 ? "" : "-aborted");
                    p.send(new ProducerRecord<>(out, r.partition(), r.key(), Klamm.bytes(v)));
                    (round == 0 ? committedValues : abortedValues).add(v);
                }
                offsets.put(tp, new OffsetAndMetadata(part.get(part.size() - 1).offset() + 1, "round-" + round));
            }
            // Written before the abort: abortTransaction drops batches not yet sent.
            p.flush();
            p.sendOffsetsToTransaction(offsets, c.groupMetadata());
            if (round == 0) {
                p.commitTransaction();
                Klamm.log("committed round 0, offsets %s", offsets);
            } else {
                p.abortTransaction();
                Klamm.log("aborted round 1, offsets %s", offsets);
            }
        }
        // The group's committed offsets are round 0's, seen by the consumer and by the admin.
        Map<TopicPartition, OffsetAndMetadata> committed = c.committed(Set.copyOf(inTps));
        for (TopicPartition tp : inTps) {
            OffsetAndMetadata om = committed.get(tp);
            Klamm.check(om != null, "no committed offset for %s", tp);
            Klamm.checkEq(byTp.get(tp).get(4).offset() + 1, om.offset(), "committed offset of " + tp);
            Klamm.checkEq("round-0", om.metadata(), "committed metadata of " + tp);
        }
        try (Admin a = Klamm.admin()) {
            Map<TopicPartition, OffsetAndMetadata> viaAdmin = a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(20, TimeUnit.SECONDS);
            Klamm.checkEq(committed, viaAdmin, "offsets via listConsumerGroupOffsets");
        }
        p.close();
        c.close();

        List<ConsumerRecord<byte[], byte[]>> rc = Klamm.readAll(outTps, "read_committed");
        Klamm.checkEq(committedValues, new TreeSet<>(values(rc)), "read_committed values of the output");
        Klamm.checkEq(committedValues.size(), rc.size(), "read_committed record count");
        List<ConsumerRecord<byte[], byte[]>> ru = Klamm.readAll(outTps, "read_uncommitted");
        Set<String> all = new TreeSet<>(committedValues);
        all.addAll(abortedValues);
        Klamm.checkEq(all, new TreeSet<>(values(ru)), "read_uncommitted values of the output");

        // A new member of the group resumes from round 0's offsets: it sees round 1's inputs again.
        try (KafkaConsumer<byte[], byte[]> c2 = Klamm.consumer(group)) {
            c2.subscribe(List.of(in));
            List<ConsumerRecord<byte[], byte[]>> again = pollN(c2, 10, 30000);
            Set<String> expected = new TreeSet<>();
            for (TopicPartition tp : inTps) for (ConsumerRecord<byte[], byte[]> r : byTp.get(tp).subList(5, 10)) expected.add(Klamm.str(r.value()));
            Klamm.checkEq(expected, new TreeSet<>(values(again)), "records after the committed offsets");
        }
    }

    // ---------------------------------------------------------------------------------
    static void fencing() throws Exception {
        String topic = Klamm.name("jfence");
        String id = Klamm.name("jfence-tx");
        Klamm.createTopic(topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);

        KafkaProducer<byte[], byte[]> a = txnProducer(id);
        a.beginTransaction();
        a.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("zombie-1"))).get(20, TimeUnit.SECONDS);

        // The same transactional.id: InitProducerId bumps the epoch and aborts a's transaction.
        KafkaProducer<byte[], byte[]> b = txnProducer(id);
        Klamm.log("second producer initialised");
        Klamm.expectError(ProducerFencedException.class, "commitTransaction of the fenced producer", a::commitTransaction);
        a.close(Duration.ofSeconds(5));

        b.beginTransaction();
        b.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("live-1"))).get(20, TimeUnit.SECONDS);
        b.commitTransaction();

        // A third instance fences b while b is idle; b's next send fails.
        KafkaProducer<byte[], byte[]> c = txnProducer(id);
        Klamm.expectError(ProducerFencedException.class, "beginTransaction+send of the fenced producer", () -> {
            b.beginTransaction();
            b.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("zombie-2"))).get(20, TimeUnit.SECONDS);
            b.commitTransaction();
        });
        b.close(Duration.ofSeconds(5));
        c.beginTransaction();
        c.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("live-2")));
        c.commitTransaction();
        c.close();

        List<String> seen = values(Klamm.readAll(List.of(tp), "read_committed"));
        Klamm.checkEq(List.of("live-1", "live-2"), seen, "read_committed values");
    }

    // ---------------------------------------------------------------------------------
    /** read_committed stops at the last stable offset while a transaction is open. */
    static void readCommitted() throws Exception {
        String topic = Klamm.name("jrc");
        Klamm.createTopic(topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        KafkaProducer<byte[], byte[]> p = txnProducer(Klamm.name("jrc-tx"));
        p.beginTransaction();
        p.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("c1")));
        p.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("c2")));
        p.commitTransaction();
        p.beginTransaction();
        p.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("a1"))).get();   // written, then aborted
        p.abortTransaction();
        try (KafkaProducer<byte[], byte[]> plain = Klamm.producer()) {
            plain.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("n1"))).get();
        }
        p.beginTransaction();
        p.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("open1"))).get();   // stays open for now

        try (KafkaConsumer<byte[], byte[]> rc = Klamm.consumer(Klamm.name("jrc-group"), ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
             KafkaConsumer<byte[], byte[]> ru = Klamm.consumer(null)) {
            rc.assign(List.of(tp));
            rc.seekToBeginning(List.of(tp));
            long lso = rc.endOffsets(List.of(tp)).get(tp);
            long hw = ru.endOffsets(List.of(tp)).get(tp);
            Klamm.log("read_committed end offset (LSO) %d, read_uncommitted end offset (HW) %d", lso, hw);
            // c1 c2 marker a1 marker n1 | open1
            Klamm.checkEq(6L, lso, "last stable offset with a transaction open at offset 6");
            Klamm.checkEq(7L, hw, "high watermark");
            List<String> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 20000;
            while (rc.position(tp) < lso) {
                Klamm.check(System.currentTimeMillis() < deadline, "read_committed position %d never reached the LSO %d", rc.position(tp), lso);
                for (ConsumerRecord<byte[], byte[]> r : rc.poll(Duration.ofMillis(200))) got.add(Klamm.str(r.value()));
            }
            for (ConsumerRecord<byte[], byte[]> r : rc.poll(Duration.ofMillis(1000))) got.add(Klamm.str(r.value()));
            Klamm.checkEq(List.of("c1", "c2", "n1"), got, "read_committed values while a transaction is open");
            p.commitTransaction();
            deadline = System.currentTimeMillis() + 20000;
            while (!got.contains("open1")) {
                Klamm.check(System.currentTimeMillis() < deadline, "read_committed never saw the committed open1 (position %d)", rc.position(tp));
                for (ConsumerRecord<byte[], byte[]> r : rc.poll(Duration.ofMillis(200))) got.add(Klamm.str(r.value()));
            }
            Klamm.checkEq(List.of("c1", "c2", "n1", "open1"), got, "read_committed values after the commit");
            Klamm.checkEq(8L, rc.endOffsets(List.of(tp)).get(tp), "LSO after the commit");
            // The commit marker at offset 7 is skipped: the position moves past it.
            deadline = System.currentTimeMillis() + 20000;
            while (rc.position(tp) < 8) {
                Klamm.check(System.currentTimeMillis() < deadline, "read_committed position %d never moved past the commit marker at 7", rc.position(tp));
                Klamm.checkEq(0, rc.poll(Duration.ofMillis(200)).count(), "records after open1");
            }
            rc.commitSync();
            Klamm.checkEq(8L, rc.committed(Set.of(tp)).get(tp).offset(), "read_committed consumer's committed offset");
        }
        p.close();
    }
}
