import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;

import java.util.*;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * KafkaProducer with its defaults (idempotent, acks=all) and one compression codec, then a
 * consumer reads everything back byte-exact: `KlammProduce BOOTSTRAP roundtrip CODEC`.
 */
public final class KlammProduce {
    public static void main(String[] args) {
        Klamm.main("KlammProduce", args, Map.of("roundtrip", KlammProduce::roundtrip));
    }

    static final class Sent {
        final ProducerRecord<byte[], byte[]> record;
        final Future<RecordMetadata> future;
        Sent(ProducerRecord<byte[], byte[]> record, Future<RecordMetadata> future) { this.record = record; this.future = future; }
    }

    static byte[] value(int i, Random rnd) {
        switch (i % 7) {
            case 0: return null;                       // tombstone
            case 1: return new byte[0];                // empty
            case 2: {                                   // every byte value
                byte[] b = new byte[256];
                for (int j = 0; j < 256; j++) b[j] = (byte) j;
                return b;
            }
            case 3: {                                   // random, incompressible
                byte[] b = new byte[1 + rnd.nextInt(3000)];
                rnd.nextBytes(b);
                return b;
            }
            default: {                                  // compressible text
                StringBuilder sb = new StringBuilder();
                int n = 1 + rnd.nextInt(200);
                for (int j = 0; j < n; j++) sb.append("record ").append(i).append(" line ").append(j).append(" héllo wörld ✓\n");
                return Klamm.bytes(sb.toString());
            }
        }
    }

    static void roundtrip() throws Exception {
        String codec = Klamm.args[0];
        String topic = Klamm.name("jprod-" + codec);
        int partitions = 3;
        Klamm.createTopic(topic, partitions);
        Random rnd = new Random(42);
        List<Sent> sent = new ArrayList<>();
        long now = System.currentTimeMillis();
        try (KafkaProducer<byte[], byte[]> p = Klamm.producer(
                ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                ProducerConfig.LINGER_MS_CONFIG, 20)) {
            for (int i = 0; i < 300; i++) {
                Integer partition = i % 4 == 3 ? null : i % partitions;    // some by the key's hash
                byte[] key = i % 11 == 5 ? null : Klamm.bytes("key-" + i);
                if (key == null && partition == null) partition = 0;
                Long ts = i % 3 == 0 ? null : now - 100_000 + i;          // some CreateTime from the producer
                List<Header> headers = new ArrayList<>();
                if (i % 2 == 0) {
                    headers.add(new RecordHeader("h", Klamm.bytes("first-" + i)));
                    headers.add(new RecordHeader("h", Klamm.bytes("second")));   // duplicate key
                    headers.add(new RecordHeader("null-value", (byte[]) null));
                    headers.add(new RecordHeader("empty", new byte[0]));
                    headers.add(new RecordHeader("ünïcødé", new byte[]{0, (byte) 0xff, 7}));
                }
                ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, partition, ts, key, value(i, rnd), headers);
                sent.add(new Sent(r, p.send(r)));
            }
            // One large compressible record (about 600 kB).
            byte[] big = new byte[600_000];
            for (int j = 0; j < big.length; j++) big[j] = (byte) ('a' + j % 23);
            ProducerRecord<byte[], byte[]> bigRec = new ProducerRecord<>(topic, 1, null, Klamm.bytes("big"), big);
            sent.add(new Sent(bigRec, p.send(bigRec)));
            p.flush();
        }
        Map<TopicPartition, List<Sent>> byTp = new HashMap<>();
        Map<TopicPartition, List<Long>> offsets = new HashMap<>();
        for (Sent s : sent) {
            RecordMetadata m = s.future.get(20, TimeUnit.SECONDS);
            TopicPartition tp = new TopicPartition(m.topic(), m.partition());
            byTp.computeIfAbsent(tp, k -> new ArrayList<>()).add(s);
            offsets.computeIfAbsent(tp, k -> new ArrayList<>()).add(m.offset());
        }
        for (Map.Entry<TopicPartition, List<Long>> e : offsets.entrySet()) {
            List<Long> o = e.getValue();
            for (int i = 0; i < o.size(); i++) Klamm.checkEq((long) i, o.get(i), "offset of record " + i + " acknowledged on " + e.getKey());
        }
        Klamm.log("produced %d records with %s: %s", sent.size(), codec, offsets.entrySet().stream()
            .map(e -> e.getKey() + "=" + e.getValue().size()).sorted().reduce((a, b) -> a + " " + b).orElse(""));

        // The producer was idempotent: the broker tracks its sequence per partition.
        try (Admin a = Klamm.admin()) {
            for (TopicPartition tp : byTp.keySet()) {
                List<ProducerState> ps = a.describeProducers(List.of(tp)).partitionResult(tp).get(20, TimeUnit.SECONDS).activeProducers();
                Klamm.checkEq(1, ps.size(), "producers on " + tp);
                Klamm.checkEq(byTp.get(tp).size() - 1, ps.get(0).lastSequence(), "last sequence on " + tp);
            }
        }

        List<TopicPartition> tps = Klamm.partitions(topic, partitions);
        List<ConsumerRecord<byte[], byte[]>> got = Klamm.readAll(tps, "read_uncommitted");
        Klamm.checkEq(sent.size(), got.size(), "records read back");
        Map<TopicPartition, Integer> idx = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> r : got) {
            TopicPartition tp = new TopicPartition(r.topic(), r.partition());
            int i = idx.merge(tp, 1, Integer::sum) - 1;
            Sent s = byTp.get(tp).get(i);
            RecordMetadata m = s.future.get();
            String where = tp + "@" + r.offset();
            Klamm.checkEq(m.offset(), r.offset(), "offset at " + where);
            Klamm.check(Klamm.same(s.record.key(), r.key()), "key at %s: sent %s got %s", where, Klamm.hex(s.record.key()), Klamm.hex(r.key()));
            Klamm.check(Klamm.same(s.record.value(), r.value()), "value at %s: sent %s got %s", where, Klamm.hex(s.record.value()), Klamm.hex(r.value()));
            Header[] hs = s.record.headers().toArray(), hr = r.headers().toArray();
            Klamm.checkEq(hs.length, hr.length, "header count at " + where);
            for (int h = 0; h < hs.length; h++) {
                Klamm.checkEq(hs[h].key(), hr[h].key(), "header " + h + " key at " + where);
                Klamm.check(Klamm.same(hs[h].value(), hr[h].value()), "header %d (%s) value at %s: sent %s got %s",
                    h, hs[h].key(), where, Klamm.hex(hs[h].value()), Klamm.hex(hr[h].value()));
            }
            Klamm.checkEq(TimestampType.CREATE_TIME, r.timestampType(), "timestamp type at " + where);
            long ts = s.record.timestamp() != null ? s.record.timestamp() : m.timestamp();
            Klamm.checkEq(ts, r.timestamp(), "timestamp at " + where);
            Klamm.checkEq(ts, m.timestamp(), "acknowledged timestamp at " + where);
        }
        Klamm.log("read back %d records byte-exact", got.size());
    }
}
