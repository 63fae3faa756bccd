import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.ConsumerGroupState;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.TopicPartitionReplica;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.*;

import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;


/** AdminClient scenarios against a Klamm broker: `KlammAdmin BOOTSTRAP COMMAND`. */
public final class KlammAdmin {
    public static void main(String[] args) {
        Map<String, Klamm.Body> cmds = new LinkedHashMap<>();
        cmds.put("topics", KlammAdmin::topics);
        cmds.put("topics-by-id", KlammAdmin::topicsById);
        cmds.put("cluster", KlammAdmin::cluster);
        cmds.put("configs", KlammAdmin::configs);
        cmds.put("partitions-records", KlammAdmin::partitionsRecords);
        cmds.put("list-offsets", KlammAdmin::listOffsets);
        cmds.put("groups", KlammAdmin::groups);
        cmds.put("producers-transactions", KlammAdmin::producersTransactions);
        cmds.put("log-dirs", KlammAdmin::logDirs);
        cmds.put("replica-log-dirs", KlammAdmin::replicaLogDirs);
        cmds.put("elect-leaders", KlammAdmin::electLeaders);
        cmds.put("list-reassignments", KlammAdmin::listReassignments);
        cmds.put("alter-reassignments", KlammAdmin::alterReassignments);
        cmds.put("metadata-quorum", KlammAdmin::metadataQuorum);
        cmds.put("describe-topics-paged", KlammAdmin::describeTopicsPaged);
        cmds.put("abort-fence", KlammAdmin::abortAndFence);
        cmds.put("remove-members", KlammAdmin::removeMembers);
        Klamm.main("KlammAdmin", args, cmds);
    }

    static final long T = 20;

    static int nodeId(Admin a) throws Exception {
        Collection<Node> nodes = a.describeCluster().nodes().get(T, TimeUnit.SECONDS);
        Klamm.checkEq(1, nodes.size(), "describeCluster node count");
        return nodes.iterator().next().id();
    }

    static List<RecordMetadata> produce(String topic, int partition, int n, Long baseTs, long[] tsOffsets) throws Exception {
        List<RecordMetadata> out = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> p = Klamm.producer()) {
            for (int i = 0; i < n; i++) {
                Long ts = baseTs == null ? null : baseTs + (tsOffsets == null ? i : tsOffsets[i]);
                out.add(p.send(new ProducerRecord<>(topic, partition, ts, Klamm.bytes("k" + i), Klamm.bytes("value-" + i))).get(T, TimeUnit.SECONDS));
            }
        }
        return out;
    }

    // ---------------------------------------------------------------------------------
    static void topics() throws Exception {
        try (Admin a = Klamm.admin()) {
            int node = nodeId(a);
            String topic = Klamm.name("jadm");
            Map<String, String> cfg = new HashMap<>();
            cfg.put("retention.ms", "3600000");
            cfg.put("max.message.bytes", "200000");
            CreateTopicsResult cr = a.createTopics(List.of(new NewTopic(topic, 3, (short) 1).configs(cfg)));
            cr.all().get(T, TimeUnit.SECONDS);
            Klamm.checkEq(3, cr.numPartitions(topic).get(), "CreateTopics numPartitions");
            Klamm.checkEq(1, cr.replicationFactor(topic).get(), "CreateTopics replicationFactor");
            Uuid id = cr.topicId(topic).get();
            Klamm.check(id != null && !id.equals(Uuid.ZERO_UUID), "CreateTopics topicId is %s", id);
            Config created = cr.config(topic).get();
            Klamm.checkEq("3600000", created.get("retention.ms") == null ? null : created.get("retention.ms").value(), "CreateTopics returned config retention.ms");
            Klamm.log("created %s id=%s", topic, id);

            // validateOnly: accepted but not created.
            String dry = Klamm.name("jadm-dry");
            a.createTopics(List.of(new NewTopic(dry, 2, (short) 1).configs(Map.of("retention.ms", "1000"))),
                new CreateTopicsOptions().validateOnly(true)).all().get(T, TimeUnit.SECONDS);
            Klamm.expectError(TopicExistsException.class, "createTopics of an existing topic",
                () -> a.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(T, TimeUnit.SECONDS));
            Klamm.expectError(InvalidConfigurationException.class, "createTopics with an unknown config (validateOnly)",
                () -> a.createTopics(List.of(new NewTopic(Klamm.name("jadm-bad"), 1, (short) 1).configs(Map.of("no.such.config", "1"))),
                    new CreateTopicsOptions().validateOnly(true)).all().get(T, TimeUnit.SECONDS));
            Klamm.expectError(InvalidReplicationFactorException.class, "createTopics with replication factor 3 on one broker",
                () -> a.createTopics(List.of(new NewTopic(Klamm.name("jadm-rf"), 1, (short) 3))).all().get(T, TimeUnit.SECONDS));

            Set<String> names = a.listTopics().names().get(T, TimeUnit.SECONDS);
            Klamm.check(names.contains(topic), "listTopics %s lacks %s", names, topic);
            Klamm.check(!names.contains(dry), "validateOnly created %s", dry);
            Set<String> withInternal = a.listTopics(new ListTopicsOptions().listInternal(true)).names().get(T, TimeUnit.SECONDS);
            Klamm.check(withInternal.containsAll(names), "listInternal(true) %s is not a superset of %s", withInternal, names);

            TopicDescription d = a.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS).get(topic);
            Klamm.checkEq(topic, d.name(), "describeTopics name");
            Klamm.checkEq(false, d.isInternal(), "describeTopics isInternal");
            Klamm.checkEq(id, d.topicId(), "describeTopics topicId");
            Klamm.checkEq(3, d.partitions().size(), "describeTopics partition count");
            for (int i = 0; i < 3; i++) {
                TopicPartitionInfo pi = d.partitions().get(i);
                Klamm.checkEq(i, pi.partition(), "describeTopics partition index");
                Klamm.check(pi.leader() != null && pi.leader().id() == node, "partition %d leader %s, broker is %d", i, pi.leader(), node);
                Klamm.checkEq(List.of(node), pi.replicas().stream().map(Node::id).collect(Collectors.toList()), "replicas of partition " + i);
                Klamm.checkEq(List.of(node), pi.isr().stream().map(Node::id).collect(Collectors.toList()), "isr of partition " + i);
            }
            Klamm.expectError(UnknownTopicOrPartitionException.class, "describeTopics of a missing topic",
                () -> a.describeTopics(List.of(Klamm.name("missing"))).allTopicNames().get(T, TimeUnit.SECONDS));

            a.deleteTopics(List.of(topic)).all().get(T, TimeUnit.SECONDS);
            Klamm.waitUntil("the deleted topic to leave listTopics", 10000, () -> {
                try { return !a.listTopics().names().get(T, TimeUnit.SECONDS).contains(topic); }
                catch (Exception e) { throw new RuntimeException(e); }
            });
            Klamm.expectError(UnknownTopicOrPartitionException.class, "deleteTopics of a deleted topic",
                () -> a.deleteTopics(List.of(topic)).all().get(T, TimeUnit.SECONDS));
        }
    }

    /** describeTopics and deleteTopics by topic id (Metadata v10+ / DeleteTopics v6 with ids). */
    static void topicsById() throws Exception {
        try (Admin a = Klamm.admin()) {
            String topic = Klamm.name("jid");
            Klamm.createTopic(a, topic, 2, null);
            Uuid id = a.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS).get(topic).topicId();
            Klamm.check(!Uuid.ZERO_UUID.equals(id), "no topic id");
            Klamm.soft(() -> {
                TopicDescription byId = a.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds().get(T, TimeUnit.SECONDS).get(id);
                Klamm.checkEq(topic, byId.name(), "describeTopics by id: name");
                Klamm.checkEq(2, byId.partitions().size(), "describeTopics by id: partitions");
            });
            Uuid unknown = Uuid.randomUuid();
            Klamm.soft(() -> Klamm.expectError(UnknownTopicIdException.class, "describeTopics of an unknown id",
                () -> a.describeTopics(TopicCollection.ofTopicIds(List.of(unknown))).allTopicIds().get(T, TimeUnit.SECONDS)));
            a.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all().get(T, TimeUnit.SECONDS);
            Klamm.waitUntil("the topic deleted by id to leave listTopics", 10000, () -> {
                try { return !a.listTopics().names().get(T, TimeUnit.SECONDS).contains(topic); }
                catch (Exception e) { throw new RuntimeException(e); }
            });
            Klamm.expectError(UnknownTopicIdException.class, "deleteTopics of an unknown id",
                () -> a.deleteTopics(TopicCollection.ofTopicIds(List.of(unknown))).all().get(T, TimeUnit.SECONDS));
        }
    }

    // ---------------------------------------------------------------------------------
    static void cluster() throws Exception {
        try (Admin a = Klamm.admin()) {
            DescribeClusterResult r = a.describeCluster(new DescribeClusterOptions().includeAuthorizedOperations(true));
            String clusterId = r.clusterId().get(T, TimeUnit.SECONDS);
            Collection<Node> nodes = r.nodes().get(T, TimeUnit.SECONDS);
            Node controller = r.controller().get(T, TimeUnit.SECONDS);
            Klamm.log("describeCluster: id=%s nodes=%s controller=%s ops=%s", clusterId, nodes, controller, r.authorizedOperations().get());
            Klamm.check(clusterId != null && !clusterId.isEmpty(), "clusterId %s", clusterId);
            Klamm.checkEq(1, nodes.size(), "node count");
            Node n = nodes.iterator().next();
            Klamm.checkEq("127.0.0.1", n.host(), "node host");
            Klamm.checkEq(Integer.parseInt(Klamm.bootstrap.split(":")[1]), n.port(), "node port");
            Klamm.check(controller != null && controller.id() == n.id(), "controller %s is not node %s", controller, n);

            FeatureMetadata f = a.describeFeatures().featureMetadata().get(T, TimeUnit.SECONDS);
            Klamm.log("describeFeatures: finalized=%s supported=%s epoch=%s", f.finalizedFeatures(), f.supportedFeatures(), f.finalizedFeaturesEpoch());
            for (Map.Entry<String, FinalizedVersionRange> e : f.finalizedFeatures().entrySet()) {
                SupportedVersionRange s = f.supportedFeatures().get(e.getKey());
                Klamm.check(s != null, "finalized feature %s is not among the supported ones", e.getKey());
                Klamm.check(e.getValue().maxVersionLevel() <= s.maxVersion() && e.getValue().minVersionLevel() >= s.minVersion(),
                    "finalized %s %s outside supported %s", e.getKey(), e.getValue(), s);
            }
        }
    }

    // ---------------------------------------------------------------------------------
    static String value(Config c, String key) {
        ConfigEntry e = c.get(key);
        return e == null ? null : e.value();
    }

    static Config describe(Admin a, ConfigResource r) throws Exception {
        return a.describeConfigs(List.of(r), new DescribeConfigsOptions().includeSynonyms(true).includeDocumentation(true))
            .all().get(T, TimeUnit.SECONDS).get(r);
    }

    static void configs() throws Exception {
        try (Admin a = Klamm.admin()) {
            int node = nodeId(a);
            String topic = Klamm.name("jcfg");
            Klamm.createTopic(a, topic, 1, Map.of("retention.ms", "7200000"));
            ConfigResource tr = new ConfigResource(ConfigResource.Type.TOPIC, topic);

            Config c = describe(a, tr);
            ConfigEntry ret = c.get("retention.ms");
            Klamm.check(ret != null, "describeConfigs(topic) lacks retention.ms: %s", c);
            Klamm.checkEq("7200000", ret.value(), "retention.ms");
            Klamm.checkEq(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, ret.source(), "retention.ms source");
            Klamm.check(!ret.synonyms().isEmpty(), "retention.ms has no synonyms with includeSynonyms");
            ConfigEntry seg = c.get("segment.bytes");
            Klamm.check(seg != null, "describeConfigs(topic) lacks segment.bytes");
            Klamm.check(seg.source() == ConfigEntry.ConfigSource.DEFAULT_CONFIG || seg.source() == ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG,
                "segment.bytes source %s", seg.source());
            Klamm.check(c.get("cleanup.policy") != null && c.get("max.message.bytes") != null, "topic configs lack cleanup.policy/max.message.bytes");
            Klamm.log("topic %s: %d entries", topic, c.entries().size());

            // Broker resource.
            Config b = describe(a, new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(node)));
            Klamm.check(b.entries().size() > 5, "describeConfigs(broker %d) returned %d entries", node, b.entries().size());
            Klamm.check(b.get("num.partitions") != null, "broker configs lack num.partitions: %s",
                b.entries().stream().map(ConfigEntry::name).collect(Collectors.toList()));
            Klamm.log("broker %d: %d entries, num.partitions=%s", node, b.entries().size(), value(b, "num.partitions"));
            Klamm.expectError(UnknownTopicOrPartitionException.class, "describeConfigs of a missing topic",
                () -> a.describeConfigs(List.of(new ConfigResource(ConfigResource.Type.TOPIC, Klamm.name("missing")))).all().get(T, TimeUnit.SECONDS));

            // incrementalAlterConfigs: SET, validateOnly, DELETE, an invalid value.
            a.incrementalAlterConfigs(Map.of(tr, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "12345"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("max.message.bytes", "300000"), AlterConfigOp.OpType.SET)))).all().get(T, TimeUnit.SECONDS);
            c = describe(a, tr);
            Klamm.checkEq("12345", value(c, "retention.ms"), "retention.ms after SET");
            Klamm.checkEq("300000", value(c, "max.message.bytes"), "max.message.bytes after SET");
            a.incrementalAlterConfigs(Map.of(tr, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "99999"), AlterConfigOp.OpType.SET))),
                new AlterConfigsOptions().validateOnly(true)).all().get(T, TimeUnit.SECONDS);
            Klamm.checkEq("12345", value(describe(a, tr), "retention.ms"), "retention.ms after a validateOnly SET");
            a.incrementalAlterConfigs(Map.of(tr, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE)))).all().get(T, TimeUnit.SECONDS);
            c = describe(a, tr);
            Klamm.checkEq("604800000", value(c, "retention.ms"), "retention.ms after DELETE (the default)");
            Klamm.check(c.get("retention.ms").source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, "retention.ms still a topic override after DELETE");
            Klamm.expectError(InvalidConfigurationException.class, "incrementalAlterConfigs with a non-numeric retention.ms",
                () -> a.incrementalAlterConfigs(Map.of(tr, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET)))).all().get(T, TimeUnit.SECONDS));
            Klamm.expectError(InvalidConfigurationException.class, "incrementalAlterConfigs of an unknown key",
                () -> a.incrementalAlterConfigs(Map.of(tr, List.of(new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET)))).all().get(T, TimeUnit.SECONDS));

            // Legacy alterConfigs replaces the whole override set.
            @SuppressWarnings("deprecation")
            AlterConfigsResult ar = a.alterConfigs(Map.of(tr, new Config(List.of(new ConfigEntry("retention.ms", "555555")))));
            ar.all().get(T, TimeUnit.SECONDS);
            c = describe(a, tr);
            Klamm.checkEq("555555", value(c, "retention.ms"), "retention.ms after alterConfigs");
            Klamm.checkEq(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, c.get("retention.ms").source(), "retention.ms source after alterConfigs");
            Klamm.check(c.get("max.message.bytes").source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                "alterConfigs kept the max.message.bytes override (%s): it must replace the whole set", value(c, "max.message.bytes"));
            Klamm.log("configs ok");
        }
    }

    // ---------------------------------------------------------------------------------
    static void partitionsRecords() throws Exception {
        try (Admin a = Klamm.admin()) {
            String topic = Klamm.name("jparts");
            Klamm.createTopic(a, topic, 1, null);
            a.createPartitions(Map.of(topic, NewPartitions.increaseTo(5)), new CreatePartitionsOptions().validateOnly(true)).all().get(T, TimeUnit.SECONDS);
            Klamm.checkEq(1, a.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size(), "partitions after a validateOnly createPartitions");
            a.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all().get(T, TimeUnit.SECONDS);
            Klamm.waitUntil("3 partitions in describeTopics", 10000, () -> {
                try { return a.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size() == 3; }
                catch (Exception e) { throw new RuntimeException(e); }
            });
            Klamm.expectError(InvalidPartitionsException.class, "createPartitions decreasing the count",
                () -> a.createPartitions(Map.of(topic, NewPartitions.increaseTo(2))).all().get(T, TimeUnit.SECONDS));
            Klamm.expectError(UnknownTopicOrPartitionException.class, "createPartitions of a missing topic",
                () -> a.createPartitions(Map.of(Klamm.name("missing"), NewPartitions.increaseTo(2))).all().get(T, TimeUnit.SECONDS));
            // The new partition takes records.
            produce(topic, 2, 3, null, null);

            produce(topic, 0, 10, null, null);
            TopicPartition tp0 = new TopicPartition(topic, 0);
            DeletedRecords dr = a.deleteRecords(Map.of(tp0, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp0).get(T, TimeUnit.SECONDS);
            Klamm.checkEq(4L, dr.lowWatermark(), "deleteRecords low watermark");
            long earliest = a.listOffsets(Map.of(tp0, OffsetSpec.earliest())).partitionResult(tp0).get().offset();
            Klamm.checkEq(4L, earliest, "earliest offset after deleteRecords");
            // -1 means "up to the high watermark".
            dr = a.deleteRecords(Map.of(tp0, RecordsToDelete.beforeOffset(-1))).lowWatermarks().get(tp0).get(T, TimeUnit.SECONDS);
            Klamm.checkEq(10L, dr.lowWatermark(), "deleteRecords(-1) low watermark");
            Klamm.expectError(OffsetOutOfRangeException.class, "deleteRecords beyond the high watermark",
                () -> a.deleteRecords(Map.of(tp0, RecordsToDelete.beforeOffset(50))).all().get(T, TimeUnit.SECONDS));
            List<?> left = Klamm.readAll(List.of(tp0), "read_uncommitted");
            Klamm.checkEq(0, left.size(), "records left in partition 0");
        }
    }

    // ---------------------------------------------------------------------------------
    static void listOffsets() throws Exception {
        try (Admin a = Klamm.admin()) {
            String topic = Klamm.name("jlo");
            Klamm.createTopic(a, topic, 2, null);
            long base = System.currentTimeMillis() - 60_000;
            long[] ts = {5000, 1000, 9000, 3000};
            produce(topic, 0, 4, base, ts);
            TopicPartition tp0 = new TopicPartition(topic, 0), tp1 = new TopicPartition(topic, 1);

            ListOffsetsResult.ListOffsetsResultInfo e = a.listOffsets(Map.of(tp0, OffsetSpec.earliest())).partitionResult(tp0).get(T, TimeUnit.SECONDS);
            ListOffsetsResult.ListOffsetsResultInfo l = a.listOffsets(Map.of(tp0, OffsetSpec.latest())).partitionResult(tp0).get(T, TimeUnit.SECONDS);
            ListOffsetsResult.ListOffsetsResultInfo m = a.listOffsets(Map.of(tp0, OffsetSpec.maxTimestamp())).partitionResult(tp0).get(T, TimeUnit.SECONDS);
            ListOffsetsResult.ListOffsetsResultInfo f = a.listOffsets(Map.of(tp0, OffsetSpec.forTimestamp(base + 4000))).partitionResult(tp0).get(T, TimeUnit.SECONDS);
            ListOffsetsResult.ListOffsetsResultInfo none = a.listOffsets(Map.of(tp0, OffsetSpec.forTimestamp(base + 99000))).partitionResult(tp0).get(T, TimeUnit.SECONDS);
            Klamm.log("earliest=%s latest=%s max=%s forTs=%s none=%s", e, l, m, f, none);
            Klamm.checkEq(0L, e.offset(), "earliest offset");
            Klamm.checkEq(4L, l.offset(), "latest offset");
            Klamm.checkEq(2L, m.offset(), "maxTimestamp offset");
            Klamm.checkEq(base + 9000, m.timestamp(), "maxTimestamp timestamp");
            Klamm.checkEq(0L, f.offset(), "forTimestamp(base+4000) offset");
            Klamm.checkEq(base + 5000, f.timestamp(), "forTimestamp(base+4000) timestamp");
            Klamm.checkEq(-1L, none.offset(), "forTimestamp beyond the max offset");
            ListOffsetsResult.ListOffsetsResultInfo el = a.listOffsets(Map.of(tp0, OffsetSpec.earliestLocal())).partitionResult(tp0).get(T, TimeUnit.SECONDS);
            Klamm.checkEq(0L, el.offset(), "earliestLocal offset");
            // Several partitions at once, an empty one among them, read_committed.
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> all = a.listOffsets(
                Map.of(tp0, OffsetSpec.latest(), tp1, OffsetSpec.latest()), new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).all().get(T, TimeUnit.SECONDS);
            Klamm.checkEq(4L, all.get(tp0).offset(), "read_committed latest of partition 0");
            Klamm.checkEq(0L, all.get(tp1).offset(), "latest of the empty partition 1");
            ListOffsetsResult.ListOffsetsResultInfo m1 = a.listOffsets(Map.of(tp1, OffsetSpec.maxTimestamp())).partitionResult(tp1).get(T, TimeUnit.SECONDS);
            Klamm.checkEq(-1L, m1.offset(), "maxTimestamp of an empty partition");
        }
    }

    // ---------------------------------------------------------------------------------
    static ConsumerGroupDescription describeGroup(Admin a, String g) throws Exception {
        return a.describeConsumerGroups(List.of(g)).describedGroups().get(g).get(T, TimeUnit.SECONDS);
    }

    static void groups() throws Exception {
        try (Admin a = Klamm.admin()) {
            String topic = Klamm.name("jgrp");
            String group = Klamm.name("jgroup");
            Klamm.createTopic(a, topic, 2, null);
            produce(topic, 0, 5, null, null);
            produce(topic, 1, 5, null, null);
            TopicPartition tp0 = new TopicPartition(topic, 0), tp1 = new TopicPartition(topic, 1);

            KafkaConsumer<byte[], byte[]> c = Klamm.consumer(group);
            c.subscribe(List.of(topic));
            int seen = 0;
            long deadline = System.currentTimeMillis() + 30000;
            while (seen < 10) {
                Klamm.check(System.currentTimeMillis() < deadline, "consumed %d of 10 records", seen);
                seen += c.poll(Duration.ofMillis(200)).count();
            }
            c.commitSync();
            Klamm.log("consumed and committed");

            Collection<ConsumerGroupListing> listed = a.listConsumerGroups().all().get(T, TimeUnit.SECONDS);
            Klamm.log("listConsumerGroups: %s", listed);
            ConsumerGroupListing mine = listed.stream().filter(x -> x.groupId().equals(group)).findFirst().orElse(null);
            Klamm.check(mine != null, "listConsumerGroups %s lacks %s", listed, group);
            Klamm.checkEq(Optional.of(ConsumerGroupState.STABLE), mine.state(), "listed group state");
            Klamm.checkEq(false, mine.isSimpleConsumerGroup(), "isSimpleConsumerGroup");
            Collection<ConsumerGroupListing> stable = a.listConsumerGroups(new ListConsumerGroupsOptions().inStates(Set.of(ConsumerGroupState.STABLE))).all().get(T, TimeUnit.SECONDS);
            Klamm.check(stable.stream().anyMatch(x -> x.groupId().equals(group)), "listConsumerGroups(inStates STABLE) %s lacks %s", stable, group);
            Collection<ConsumerGroupListing> empty = a.listConsumerGroups(new ListConsumerGroupsOptions().inStates(Set.of(ConsumerGroupState.EMPTY))).all().get(T, TimeUnit.SECONDS);
            Klamm.check(empty.stream().noneMatch(x -> x.groupId().equals(group)), "listConsumerGroups(inStates EMPTY) %s has the stable %s", empty, group);

            ConsumerGroupDescription d = describeGroup(a, group);
            Klamm.log("describeConsumerGroups: %s", d);
            Klamm.checkEq(ConsumerGroupState.STABLE, d.state(), "described state");
            Klamm.checkEq("range", d.partitionAssignor(), "described partitionAssignor");
            Klamm.checkEq(1, d.members().size(), "described member count");
            MemberDescription md = d.members().iterator().next();
            Klamm.checkEq(Set.of(tp0, tp1), md.assignment().topicPartitions(), "described member assignment");
            Klamm.check(md.clientId().startsWith("consumer-"), "member clientId %s", md.clientId());
            Klamm.check(d.coordinator() != null, "no coordinator");

            Map<TopicPartition, OffsetAndMetadata> offs = a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
            Klamm.checkEq(Map.of(tp0, new OffsetAndMetadata(5), tp1, new OffsetAndMetadata(5)),
                offs.entrySet().stream().collect(Collectors.toMap(Map.Entry::getKey, x -> new OffsetAndMetadata(x.getValue().offset()))), "listConsumerGroupOffsets");

            Klamm.expectError(UnknownMemberIdException.class, "alterConsumerGroupOffsets of an active group",
                () -> a.alterConsumerGroupOffsets(group, Map.of(tp0, new OffsetAndMetadata(1))).all().get(T, TimeUnit.SECONDS));
            Klamm.expectError(GroupNotEmptyException.class, "deleteConsumerGroups of an active group",
                () -> a.deleteConsumerGroups(List.of(group)).all().get(T, TimeUnit.SECONDS));
            Klamm.expectError(GroupSubscribedToTopicException.class, "deleteConsumerGroupOffsets of a subscribed topic",
                () -> a.deleteConsumerGroupOffsets(group, Set.of(tp0)).all().get(T, TimeUnit.SECONDS));

            c.close(Duration.ofSeconds(10));
            Klamm.waitUntil("the group to be Empty after the member left", 15000, () -> {
                try { return describeGroup(a, group).state() == ConsumerGroupState.EMPTY; }
                catch (Exception e) { throw new RuntimeException(e); }
            });
            d = describeGroup(a, group);
            Klamm.checkEq(0, d.members().size(), "members of the empty group");

            a.alterConsumerGroupOffsets(group, Map.of(tp0, new OffsetAndMetadata(2, "meta-0"), tp1, new OffsetAndMetadata(3))).all().get(T, TimeUnit.SECONDS);
            offs = a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
            Klamm.checkEq(2L, offs.get(tp0).offset(), "altered offset of partition 0");
            Klamm.checkEq("meta-0", offs.get(tp0).metadata(), "altered metadata of partition 0");
            Klamm.checkEq(3L, offs.get(tp1).offset(), "altered offset of partition 1");
            // Only some partitions.
            Map<TopicPartition, OffsetAndMetadata> only1 = a.listConsumerGroupOffsets(Map.of(group,
                new ListConsumerGroupOffsetsSpec().topicPartitions(List.of(tp1)))).partitionsToOffsetAndMetadata(group).get(T, TimeUnit.SECONDS);
            Klamm.checkEq(Set.of(tp1), only1.keySet(), "listConsumerGroupOffsets for partition 1 only");

            a.deleteConsumerGroupOffsets(group, Set.of(tp0)).all().get(T, TimeUnit.SECONDS);
            offs = a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
            Klamm.checkEq(Set.of(tp1), offs.keySet(), "offsets left after deleteConsumerGroupOffsets(partition 0)");

            a.deleteConsumerGroups(List.of(group)).all().get(T, TimeUnit.SECONDS);
            listed = a.listConsumerGroups().all().get(T, TimeUnit.SECONDS);
            Klamm.check(listed.stream().noneMatch(x -> x.groupId().equals(group)), "deleted group still listed: %s", listed);
            try {
                ConsumerGroupDescription gone = describeGroup(a, group);
                Klamm.checkEq(ConsumerGroupState.DEAD, gone.state(), "state of a deleted group");
            } catch (Exception e) {
                Klamm.check(Klamm.cause(e) instanceof GroupIdNotFoundException, "describe of a deleted group: %s", Klamm.describe(e));
            }
            Klamm.expectError(GroupIdNotFoundException.class, "deleteConsumerGroups of a missing group",
                () -> a.deleteConsumerGroups(List.of(group)).all().get(T, TimeUnit.SECONDS));
            offs = a.listConsumerGroupOffsets(Klamm.name("nogroup")).partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
            Klamm.checkEq(0, offs.size(), "offsets of a group that never existed");
        }
    }

    // ---------------------------------------------------------------------------------
    static void producersTransactions() throws Exception {
        try (Admin a = Klamm.admin()) {
            int node = nodeId(a);
            String topic = Klamm.name("jtxa");
            String txnId = Klamm.name("jtx");
            Klamm.createTopic(a, topic, 2, null);
            TopicPartition tp0 = new TopicPartition(topic, 0), tp1 = new TopicPartition(topic, 1);

            // An idempotent producer on partition 1.
            try (KafkaProducer<byte[], byte[]> idem = Klamm.producer()) {
                for (int i = 0; i < 3; i++) idem.send(new ProducerRecord<>(topic, 1, null, Klamm.bytes("v" + i))).get();
            }
            KafkaProducer<byte[], byte[]> p = Klamm.producer(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId,
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 30000);
            p.initTransactions();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("t0"))).get();
            p.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("t1"))).get();

            Map<TopicPartition, DescribeProducersResult.PartitionProducerState> ps =
                a.describeProducers(List.of(tp0, tp1)).all().get(T, TimeUnit.SECONDS);
            Klamm.log("describeProducers: %s", ps);
            List<ProducerState> on0 = ps.get(tp0).activeProducers();
            Klamm.checkEq(1, on0.size(), "active producers on partition 0");
            ProducerState s0 = on0.get(0);
            Klamm.checkEq(1, s0.lastSequence(), "lastSequence on partition 0");
            Klamm.checkEq(OptionalLong.of(0), s0.currentTransactionStartOffset(), "currentTransactionStartOffset on partition 0");
            List<ProducerState> on1 = ps.get(tp1).activeProducers();
            Klamm.checkEq(1, on1.size(), "active producers on partition 1");
            Klamm.checkEq(2, on1.get(0).lastSequence(), "lastSequence of the idempotent producer");
            Klamm.checkEq(OptionalLong.empty(), on1.get(0).currentTransactionStartOffset(), "txn start offset of the idempotent producer");
            Klamm.check(on1.get(0).producerId() != s0.producerId(), "two producers share producer id %d", s0.producerId());
            // Explicit broker id.
            a.describeProducers(List.of(tp0), new DescribeProducersOptions().brokerId(node)).all().get(T, TimeUnit.SECONDS);

            Collection<TransactionListing> txns = a.listTransactions().all().get(T, TimeUnit.SECONDS);
            Klamm.log("listTransactions: %s", txns);
            TransactionListing tl = txns.stream().filter(t -> t.transactionalId().equals(txnId)).findFirst().orElse(null);
            Klamm.check(tl != null, "listTransactions %s lacks %s", txns, txnId);
            Klamm.checkEq(TransactionState.ONGOING, tl.state(), "listed transaction state");
            Klamm.checkEq(s0.producerId(), tl.producerId(), "listed producer id");
            Collection<TransactionListing> filtered = a.listTransactions(new ListTransactionsOptions()
                .filterStates(Set.of(TransactionState.COMPLETE_COMMIT))).all().get(T, TimeUnit.SECONDS);
            Klamm.check(filtered.stream().noneMatch(t -> t.transactionalId().equals(txnId)), "filterStates(COMPLETE_COMMIT) lists the ongoing %s", txnId);
            filtered = a.listTransactions(new ListTransactionsOptions().filterProducerIds(Set.of(s0.producerId()))).all().get(T, TimeUnit.SECONDS);
            Klamm.checkEq(1, filtered.size(), "listTransactions(filterProducerIds) count");

            TransactionDescription td = a.describeTransactions(List.of(txnId)).description(txnId).get(T, TimeUnit.SECONDS);
            Klamm.log("describeTransactions: %s", td);
            Klamm.checkEq(TransactionState.ONGOING, td.state(), "described state");
            Klamm.checkEq(s0.producerId(), td.producerId(), "described producer id");
            Klamm.checkEq(30000, td.transactionTimeoutMs(), "described timeout");
            Klamm.checkEq(Set.of(tp0), td.topicPartitions(), "described partitions");
            Klamm.check(td.transactionStartTimeMs().isPresent(), "no transaction start time");
            Klamm.checkEq(node, td.coordinatorId(), "coordinator id");

            p.commitTransaction();
            p.close();
            Klamm.waitUntil("the transaction to complete", 10000, () -> {
                try {
                    TransactionDescription x = a.describeTransactions(List.of(txnId)).description(txnId).get(T, TimeUnit.SECONDS);
                    return x.state() == TransactionState.COMPLETE_COMMIT;
                } catch (Exception e) { throw new RuntimeException(e); }
            });
            td = a.describeTransactions(List.of(txnId)).description(txnId).get(T, TimeUnit.SECONDS);
            Klamm.checkEq(Set.of(), td.topicPartitions(), "partitions of a completed transaction");
            ps = a.describeProducers(List.of(tp0)).all().get(T, TimeUnit.SECONDS);
            Klamm.checkEq(OptionalLong.empty(), ps.get(tp0).activeProducers().get(0).currentTransactionStartOffset(), "txn start offset after commit");
            Klamm.expectError(TransactionalIdNotFoundException.class, "describeTransactions of an unknown id",
                () -> a.describeTransactions(List.of(Klamm.name("nosuch"))).all().get(T, TimeUnit.SECONDS));
        }
    }

    // ---------------------------------------------------------------------------------
    // APIs Klamm may not have yet.
    static void logDirs() throws Exception {
        try (Admin a = Klamm.admin()) {
            int node = nodeId(a);
            String topic = Klamm.name("jld");
            Klamm.createTopic(a, topic, 1, null);
            produce(topic, 0, 5, null, null);
            Map<Integer, Map<String, LogDirDescription>> all = a.describeLogDirs(List.of(node)).allDescriptions().get(T, TimeUnit.SECONDS);
            Klamm.log("describeLogDirs: %s", all);
            Map<String, LogDirDescription> dirs = all.get(node);
            Klamm.check(dirs != null && !dirs.isEmpty(), "no log dirs for broker %d: %s", node, all);
            TopicPartition tp = new TopicPartition(topic, 0);
            boolean found = false;
            for (Map.Entry<String, LogDirDescription> e : dirs.entrySet()) {
                Klamm.check(e.getValue().error() == null, "log dir %s error %s", e.getKey(), e.getValue().error());
                ReplicaInfo ri = e.getValue().replicaInfos().get(tp);
                if (ri != null) {
                    found = true;
                    Klamm.check(ri.size() > 0, "replica %s size %d", tp, ri.size());
                    Klamm.check(!ri.isFuture(), "replica %s is a future replica", tp);
                }
                Klamm.log("dir %s total=%s usable=%s", e.getKey(), e.getValue().totalBytes(), e.getValue().usableBytes());
            }
            Klamm.check(found, "no log dir holds %s", tp);
        }
    }

    static void replicaLogDirs() throws Exception {
        try (Admin a = Klamm.admin()) {
            int node = nodeId(a);
            String topic = Klamm.name("jrld");
            Klamm.createTopic(a, topic, 1, null);
            produce(topic, 0, 3, null, null);
            TopicPartitionReplica r = new TopicPartitionReplica(topic, 0, node);
            Map<TopicPartitionReplica, DescribeReplicaLogDirsResult.ReplicaLogDirInfo> m = a.describeReplicaLogDirs(List.of(r)).all().get(T, TimeUnit.SECONDS);
            Klamm.log("describeReplicaLogDirs: %s", m);
            DescribeReplicaLogDirsResult.ReplicaLogDirInfo info = m.get(r);
            Klamm.check(info != null && info.getCurrentReplicaLogDir() != null, "no current log dir for %s: %s", r, info);
            Klamm.check(info.getCurrentReplicaOffsetLag() == 0, "offset lag %d", info.getCurrentReplicaOffsetLag());
            // AlterReplicaLogDirs: to the dir it is in succeeds; to a dir the broker lacks fails.
            a.alterReplicaLogDirs(Map.of(r, info.getCurrentReplicaLogDir())).all().get(T, TimeUnit.SECONDS);
            Klamm.expectError(LogDirNotFoundException.class, "moving a replica to a dir the broker lacks",
                () -> a.alterReplicaLogDirs(Map.of(r, "/nonexistent/klamm-dir")).all().get(T, TimeUnit.SECONDS));
        }
    }

    static void electLeaders() throws Exception {
        try (Admin a = Klamm.admin()) {
            String topic = Klamm.name("jel");
            Klamm.createTopic(a, topic, 2, null);
            Set<TopicPartition> tps = Set.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
            Map<TopicPartition, Optional<Throwable>> r = a.electLeaders(ElectionType.PREFERRED, tps).partitions().get(T, TimeUnit.SECONDS);
            Klamm.log("electLeaders(PREFERRED): %s", r);
            for (TopicPartition tp : tps) {
                Optional<Throwable> e = r.get(tp);
                Klamm.check(e != null, "no result for %s", tp);
                Klamm.check(e.isEmpty() || e.get() instanceof ElectionNotNeededException, "electLeaders(%s): %s", tp, e.map(Klamm::describe).orElse(""));
            }
            // All partitions (null): only those that need an election are reported.
            Map<TopicPartition, Optional<Throwable>> all = a.electLeaders(ElectionType.PREFERRED, null).partitions().get(T, TimeUnit.SECONDS);
            Klamm.log("electLeaders(PREFERRED, all): %s", all);
            Klamm.expectError(UnknownTopicOrPartitionException.class, "electLeaders of a missing partition",
                () -> a.electLeaders(ElectionType.PREFERRED, Set.of(new TopicPartition(topic, 9))).all().get(T, TimeUnit.SECONDS));
        }
    }

    static void listReassignments() throws Exception {
        try (Admin a = Klamm.admin()) {
            String topic = Klamm.name("jlr");
            Klamm.createTopic(a, topic, 1, null);
            Map<TopicPartition, PartitionReassignment> all = a.listPartitionReassignments().reassignments().get(T, TimeUnit.SECONDS);
            Klamm.checkEq(Map.of(), all, "listPartitionReassignments()");
            Map<TopicPartition, PartitionReassignment> one = a.listPartitionReassignments(Set.of(new TopicPartition(topic, 0))).reassignments().get(T, TimeUnit.SECONDS);
            Klamm.checkEq(Map.of(), one, "listPartitionReassignments(partition 0)");
        }
    }

    static void alterReassignments() throws Exception {
        try (Admin a = Klamm.admin()) {
            int node = nodeId(a);
            String topic = Klamm.name("jar");
            Klamm.createTopic(a, topic, 1, null);
            TopicPartition tp = new TopicPartition(topic, 0);
            // To the replica set it already has: completes at once.
            a.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(node))))).all().get(T, TimeUnit.SECONDS);
            Klamm.waitUntil("the reassignment to finish", 10000, () -> {
                try { return a.listPartitionReassignments().reassignments().get(T, TimeUnit.SECONDS).isEmpty(); }
                catch (Exception e) { throw new RuntimeException(e); }
            });
            Klamm.expectError(NoReassignmentInProgressException.class, "cancelling a reassignment that is not in progress",
                () -> a.alterPartitionReassignments(Map.of(tp, Optional.empty())).all().get(T, TimeUnit.SECONDS));
            Klamm.expectError(InvalidReplicaAssignmentException.class, "reassigning to a broker that does not exist",
                () -> a.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(node + 100))))).all().get(T, TimeUnit.SECONDS));
        }
    }

    static void metadataQuorum() throws Exception {
        try (Admin a = Klamm.admin()) {
            int node = nodeId(a);
            QuorumInfo q = a.describeMetadataQuorum().quorumInfo().get(T, TimeUnit.SECONDS);
            Klamm.log("describeMetadataQuorum: %s", q);
            Klamm.checkEq(node, q.leaderId(), "quorum leader");
            Klamm.check(q.voters().stream().anyMatch(v -> v.replicaId() == node), "voters %s lack node %d", q.voters(), node);
            Klamm.check(q.highWatermark() >= 0, "high watermark %d", q.highWatermark());
        }
    }

    static void describeTopicsPaged() throws Exception {
        try (Admin a = Klamm.admin()) {
            String t1 = Klamm.name("jpage-a"), t2 = Klamm.name("jpage-b");
            Klamm.createTopic(a, t1, 5, null);
            Klamm.createTopic(a, t2, 3, null);
            Map<String, TopicDescription> d = a.describeTopics(List.of(t1, t2),
                new DescribeTopicsOptions().partitionSizeLimitPerResponse(2)).allTopicNames().get(T, TimeUnit.SECONDS);
            Klamm.log("paged describeTopics: %s", d);
            Klamm.checkEq(List.of(0, 1, 2, 3, 4), d.get(t1).partitions().stream().map(TopicPartitionInfo::partition).collect(Collectors.toList()), "partitions of " + t1);
            Klamm.checkEq(List.of(0, 1, 2), d.get(t2).partitions().stream().map(TopicPartitionInfo::partition).collect(Collectors.toList()), "partitions of " + t2);
            Klamm.check(!d.get(t1).topicId().equals(Uuid.ZERO_UUID), "no topic id for %s", t1);
        }
    }

    static long committedEnd(Admin a, TopicPartition tp) throws Exception {
        return a.listOffsets(Map.of(tp, OffsetSpec.latest()), new ListOffsetsOptions(IsolationLevel.READ_COMMITTED))
            .partitionResult(tp).get(T, TimeUnit.SECONDS).offset();
    }

    /** abortTransaction (WriteTxnMarkers) ends a hanging transaction in its partition;
     *  fenceProducers then bumps the epoch, so the old producer can no longer commit. */
    static void abortAndFence() throws Exception {
        try (Admin a = Klamm.admin()) {
            String topic = Klamm.name("jabort");
            String txnId = Klamm.name("jhang");
            Klamm.createTopic(a, topic, 1, null);
            TopicPartition tp = new TopicPartition(topic, 0);
            KafkaProducer<byte[], byte[]> p = Klamm.producer(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId,
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 60000);
            p.initTransactions();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("hanging-0"))).get(T, TimeUnit.SECONDS);
            p.send(new ProducerRecord<>(topic, 0, null, Klamm.bytes("hanging-1"))).get(T, TimeUnit.SECONDS);
            Klamm.checkEq(0L, committedEnd(a, tp), "read_committed end while the transaction is open");

            ProducerState s = a.describeProducers(List.of(tp)).partitionResult(tp).get(T, TimeUnit.SECONDS).activeProducers().get(0);
            Klamm.log("hanging producer: %s", s);
            a.abortTransaction(new AbortTransactionSpec(tp, s.producerId(), (short) s.producerEpoch(),
                s.coordinatorEpoch().orElse(0))).all().get(T, TimeUnit.SECONDS);
            // Two records and the ABORT marker: all stable now.
            Klamm.checkEq(3L, committedEnd(a, tp), "read_committed end after abortTransaction");
            ProducerState after = a.describeProducers(List.of(tp)).partitionResult(tp).get(T, TimeUnit.SECONDS).activeProducers().get(0);
            Klamm.checkEq(OptionalLong.empty(), after.currentTransactionStartOffset(), "open transaction after abortTransaction");
            // A marker of an older epoch than the partition knows is refused.
            Klamm.expectError(InvalidProducerEpochException.class, "an abort with a stale producer epoch",
                () -> a.abortTransaction(new AbortTransactionSpec(tp, s.producerId(), (short) (s.producerEpoch() - 1), 0))
                    .all().get(T, TimeUnit.SECONDS));

            a.fenceProducers(List.of(txnId)).all().get(T, TimeUnit.SECONDS);
            try {
                p.commitTransaction();
                throw new Klamm.CheckFailed("a fenced producer committed");
            } catch (ProducerFencedException | InvalidProducerEpochException e) {
                Klamm.log("fenced producer's commit: %s as expected", e.getClass().getSimpleName());
            } finally {
                p.close(Duration.ZERO);
            }
            Klamm.checkEq(committedEnd(a, tp), a.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp)
                .get(T, TimeUnit.SECONDS).offset(), "read_committed end = log end once fenced");
        }
    }

    /** removeMembersFromConsumerGroup: a static member by instance id, then every member. */
    static void removeMembers() throws Exception {
        try (Admin a = Klamm.admin()) {
            String topic = Klamm.name("jrm");
            String group = Klamm.name("jrmgroup");
            Klamm.createTopic(a, topic, 2, null);
            KafkaConsumer<byte[], byte[]> stat = Klamm.consumer(group, ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "static-1");
            KafkaConsumer<byte[], byte[]> dyn = Klamm.consumer(group);
            stat.subscribe(List.of(topic));
            dyn.subscribe(List.of(topic));
            Klamm.waitUntil("both members to be assigned", 30000, () -> {
                stat.poll(Duration.ofMillis(100));
                dyn.poll(Duration.ofMillis(100));
                return stat.assignment().size() + dyn.assignment().size() == 2 && !stat.assignment().isEmpty();
            });
            a.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions(
                List.of(new MemberToRemove("static-1")))).all().get(T, TimeUnit.SECONDS);
            ConsumerGroupDescription d = a.describeConsumerGroups(List.of(group)).describedGroups().get(group).get(T, TimeUnit.SECONDS);
            Klamm.check(d.members().stream().noneMatch(m -> m.groupInstanceId().equals(Optional.of("static-1"))),
                "static-1 still in %s", d.members());
            Klamm.expectError(UnknownMemberIdException.class, "removing a static member that is not there",
                () -> a.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions(
                    List.of(new MemberToRemove("static-1")))).all().get(T, TimeUnit.SECONDS));
            // No members named: every member is removed.
            a.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions()).all().get(T, TimeUnit.SECONDS);
            d = a.describeConsumerGroups(List.of(group)).describedGroups().get(group).get(T, TimeUnit.SECONDS);
            Klamm.checkEq(List.of(), new ArrayList<>(d.members()), "members after removing all");
            stat.close(Duration.ZERO);
            dyn.close(Duration.ZERO);
        }
    }
}
