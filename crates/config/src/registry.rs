//! The one table of config keys. Everything else in the crate (loader, typed views,
//! DescribeConfigs rows, `print-default`) is driven from these two statics, so adding a
//! key here is the whole job of adding a key.

/// Kafka's `Long.MAX_VALUE`, which Kafka uses as "never" for many ms/count keys.
const LONG_MAX: &str = "9223372036854775807";

/// A broker-level key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Default in string form; `""` means unset (Kafka's `null`).
    pub default: &'static str,
    pub doc: &'static str,
    /// The topic-level key this broker key is a synonym (cluster default) of.
    pub topic_key: Option<&'static str>,
    /// Whether AlterConfigs may change it at runtime; static keys are read-only.
    pub dynamic: bool,
    pub validator: Validator,
}

/// A topic-level key. Its effective value is the topic override, else the first broker
/// synonym that is set, else its default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicConfigDef {
    pub name: &'static str,
    /// In Kafka's precedence order: most specific unit first.
    pub broker_synonyms: &'static [&'static str],
    pub ty: ConfigType,
    /// Default in topic units (ms, not hours), used when no broker synonym has one.
    pub default: &'static str,
    pub doc: &'static str,
    pub validator: Validator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Password,
}

impl ConfigType {
    /// The `config_type` code DescribeConfigs (v3+) reports.
    pub fn kafka_code(&self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Password => 9,
        }
    }
}

/// What a value must look like beyond its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    Any,
    AtLeast(i64),
    /// 0 (off), or at least this.
    ZeroOr(i64),
    /// Inclusive on both ends.
    Range {
        min: i64,
        max: i64,
    },
    /// A double in `[0, 1]`.
    Fraction,
    /// One of these (matched case-insensitively, stored in this spelling).
    OneOf(&'static [&'static str]),
    /// A non-empty comma-separated list of these.
    ListOf(&'static [&'static str]),
    /// `NAME://host:port,...` with unique names.
    Listeners,
    /// Like `Listeners`, but empty (derive from listeners) is allowed and wildcard hosts
    /// are not: clients cannot connect to 0.0.0.0.
    AdvertisedListeners,
    /// One directory: Klamm keeps all partitions under a single data dir.
    Dir,
    /// `host:port` (IPv6 in brackets), or empty to disable.
    HostPortOrEmpty,
    /// Comma-separated listener names (letters, digits, `_`), stored upper-cased.
    ListenerNames,
    /// `id@host:port,...` with unique ids (`controller.quorum.voters`), or empty.
    VotersOrEmpty,
    /// A file path (not ending in `/`), or empty for none.
    FileOrEmpty,
}

/// Other spellings accepted on input and rewritten to the registry name. Within one
/// source the registry name wins, as in Kafka (`log.dirs` overrides `log.dir`).
pub(crate) const ALIASES: &[(&str, &str)] = &[("log.dir", "log.dirs")];

/// Section titles for `print-default`: each starts at the named key, in registry order.
pub(crate) const SECTIONS: &[(&str, &str)] = &[
    ("Node and listeners", "node.id"),
    ("Storage and durability", "log.dirs"),
    ("Retention and compaction", "log.retention.ms"),
    ("Topics and messages", "num.partitions"),
    ("Connections and requests", "socket.request.max.bytes"),
    ("Consumer groups", "offsets.topic.num.partitions"),
    ("Transactions", "transaction.state.log.num.partitions"),
    ("Process", "log.format"),
];

const fn key(
    name: &'static str,
    ty: ConfigType,
    default: &'static str,
    validator: Validator,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        ty,
        default,
        doc,
        topic_key: None,
        dynamic: false,
        validator,
    }
}

impl ConfigDef {
    /// Marks this key as the cluster default of a topic key; those are dynamic in Kafka.
    const fn topic(self, topic_key: &'static str) -> ConfigDef {
        ConfigDef {
            topic_key: Some(topic_key),
            dynamic: true,
            ..self
        }
    }
    const fn dynamic(self) -> ConfigDef {
        ConfigDef {
            dynamic: true,
            ..self
        }
    }
    /// A topic key's broker default that only the operator may set (file, env, `--set`):
    /// a client that could set it would lift a limit meant to hold against clients.
    const fn static_only(self) -> ConfigDef {
        ConfigDef {
            dynamic: false,
            ..self
        }
    }
}

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};
use Validator::{AtLeast, Fraction, ListOf, OneOf, Range};

const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const CLEANUP_POLICIES: &[&str] = &["delete", "compact"];
const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
/// Kafka 4.0's smallest `segment.bytes` (KIP-1030): below it, every segment costs file
/// descriptors and maps out of all proportion to the data it holds.
pub const SEGMENT_BYTES_MIN: i64 = 1 << 20;
/// The smallest segment the internal test keys allow: one v0 record's overhead.
const INTERNAL_SEGMENT_BYTES_MIN: i64 = 14;

#[rustfmt::skip] // a table: one entry per key reads better than rustfmt's layout
pub static BROKER_CONFIGS: &[ConfigDef] = &[
    key("node.id", Int, "1", AtLeast(0), "This broker's id, reported in Metadata and FindCoordinator responses."),
    key("process.roles", List, "broker,controller", ListOf(&["broker", "controller"]),
        "The roles of this node: broker (serves clients), controller (a voter of the metadata \
         quorum), or both. With controller.quorum.voters empty a node is both: a single node is \
         its own quorum."),
    key("controller.quorum.voters", Str, "", Validator::VotersOrEmpty,
        "The metadata quorum's voters as id@host:port, comma-separated, the same on every node; \
         empty for a single node, which is its own one-voter quorum. Klamm serves one voter \
         only until cluster mode lands."),
    key("controller.listener.names", Str, "CONTROLLER", Validator::ListenerNames,
        "Names of the listeners the controllers speak the quorum protocol on; the first is the \
         one voters connect to. Needed only with controller.quorum.voters."),
    key("listeners", Str, "PLAINTEXT://0.0.0.0:9092", Validator::Listeners,
        "Comma-separated NAME://host:port addresses to accept Kafka clients on. \
         IPv6 hosts go in brackets; port 0 picks a free port."),
    key("advertised.listeners", Str, "", Validator::AdvertisedListeners,
        "Addresses given to clients in Metadata, matched to listeners by name. Unset (or a \
         listener missing here) advertises the bound address, with 0.0.0.0 or :: replaced by localhost."),
    key("log.dirs", Str, "./data", Validator::Dir,
        "Directory holding all partition logs and broker state. Kafka's log.dir is accepted as an alias."),
    key("log.flush.policy", Str, "always", OneOf(&["always", "interval", "never"]),
        "Klamm: when data is fsync'd. always: acks=all is acknowledged only after fsync and \
         consumers see only fsync'd data. interval: fsync every log.flush.interval.ms in the \
         background. never: leave it to the OS (development only)."),
    key("log.flush.interval.ms", Long, "", AtLeast(0),
        "Fsync period under log.flush.policy=interval (1000 when unset), and default of topic flush.ms.")
        .topic("flush.ms"),
    key("log.flush.interval.messages", Long, LONG_MAX, AtLeast(1),
        "Default of topic flush.messages: messages appended before a forced fsync.")
        .topic("flush.messages"),
    key("log.segment.bytes", Int, "1073741824", AtLeast(SEGMENT_BYTES_MIN),
        "Maximum size of one log segment file before a new one is rolled.")
        .topic("segment.bytes"),
    key("internal.log.segment.bytes", Int, "0", Validator::ZeroOr(INTERNAL_SEGMENT_BYTES_MIN),
        "Klamm, for tests only: when > 0, the segment size of every topic without its own \
         internal.segment.bytes, below log.segment.bytes's 1 MiB minimum (at least 14). \
         Small segments cost file descriptors and maps; never set this in production.")
        .topic("internal.segment.bytes")
        .static_only(),
    key("log.roll.ms", Long, "", AtLeast(1), "Roll a new segment after this age; overrides log.roll.hours.")
        .topic("segment.ms"),
    key("log.roll.hours", Int, "168", AtLeast(1), "Roll a new segment after this many hours.")
        .topic("segment.ms"),
    key("log.index.interval.bytes", Int, "4096", AtLeast(0), "Bytes of records between offset index entries.")
        .topic("index.interval.bytes"),
    key("log.index.size.max.bytes", Int, "10485760", AtLeast(4),
        "Maximum size of a segment's offset index; a full index rolls the segment.")
        .topic("segment.index.bytes"),
    key("log.segment.delete.delay.ms", Long, "60000", AtLeast(0),
        "How long a deleted segment's files linger so in-flight reads can finish.")
        .topic("file.delete.delay.ms"),
    key("log.retention.ms", Long, "", AtLeast(-1),
        "Delete segments older than this; -1 keeps them forever. Overrides minutes and hours.")
        .topic("retention.ms"),
    key("log.retention.minutes", Int, "", AtLeast(-1), "Retention in minutes; overrides log.retention.hours.")
        .topic("retention.ms"),
    key("log.retention.hours", Int, "168", AtLeast(-1), "Retention in hours.").topic("retention.ms"),
    key("log.retention.bytes", Long, "-1", AtLeast(-1),
        "Delete the oldest segments while a partition is larger than this; -1 means no size limit.")
        .topic("retention.bytes"),
    key("log.retention.check.interval.ms", Long, "300000", AtLeast(1),
        "How often retention is checked."),
    key("log.cleanup.policy", List, "delete", ListOf(CLEANUP_POLICIES),
        "delete: drop old segments by retention. compact: keep the latest record per key.")
        .topic("cleanup.policy"),
    key("log.cleaner.delete.retention.ms", Long, "86400000", AtLeast(0),
        "How long tombstones survive in compacted topics.")
        .topic("delete.retention.ms"),
    key("log.cleaner.min.compaction.lag.ms", Long, "0", AtLeast(0),
        "Minimum age of a record before it may be compacted.")
        .topic("min.compaction.lag.ms"),
    key("log.cleaner.max.compaction.lag.ms", Long, LONG_MAX, AtLeast(1),
        "Maximum age of a record before it must be eligible for compaction.")
        .topic("max.compaction.lag.ms"),
    key("log.cleaner.min.cleanable.ratio", Double, "0.5", Fraction,
        "Minimum dirty/total ratio before a log is compacted.")
        .topic("min.cleanable.dirty.ratio"),
    key("log.cleaner.enable", Boolean, "true", Validator::Any,
        "Run the log cleaner, which compacts topics with cleanup.policy=compact."),
    key("log.cleaner.backoff.ms", Long, "15000", AtLeast(0),
        "How long the cleaner waits between rounds over the compacted partitions.")
        .dynamic(),
    key("log.cleaner.dedupe.buffer.size", Long, "134217728", AtLeast(1024),
        "Memory for the cleaner's key map (24 bytes per key); when it fills, a round cleans \
         only as far as the keys it holds and the next round continues.")
        .dynamic(),
    key("log.cleaner.io.max.bytes.per.second", Double, "1.7976931348623157E308", Validator::Any,
        "The most bytes per second the cleaner reads plus writes.")
        .dynamic(),
    key("num.partitions", Int, "1", AtLeast(1), "Partitions of an auto-created topic."),
    key("default.replication.factor", Int, "1", Range { min: 1, max: i16::MAX as i64 },
        "Replication factor of an auto-created topic."),
    key("auto.create.topics.enable", Boolean, "true", Validator::Any,
        "Create a topic when a client asks for metadata of or produces to a missing one."),
    key("delete.topic.enable", Boolean, "true", Validator::Any, "Allow DeleteTopics."),
    key("min.insync.replicas", Int, "1", AtLeast(1),
        "Replicas that must have a write before acks=all succeeds.")
        .topic("min.insync.replicas"),
    key("compression.type", Str, "producer", OneOf(COMPRESSION_TYPES),
        "Codec batches are stored with; producer keeps the producer's codec.")
        .topic("compression.type"),
    key("message.max.decompressed.bytes", Int, "134217728", AtLeast(1024),
        "Klamm: the most bytes one compressed record batch may inflate to when the broker must read its records (keyless check on compacted topics, recompression, compaction). A larger one (a compression bomb) is refused with MESSAGE_TOO_LARGE.")
        .dynamic(),
    key("message.max.bytes", Int, "1048588", AtLeast(0), "Largest record batch the broker accepts.")
        .topic("max.message.bytes"),
    key("log.message.timestamp.type", Str, "CreateTime", OneOf(TIMESTAMP_TYPES),
        "CreateTime keeps the producer's timestamp; LogAppendTime stamps the broker's clock.")
        .topic("message.timestamp.type"),
    key("log.message.timestamp.before.max.ms", Long, LONG_MAX, AtLeast(0),
        "Reject CreateTime batches whose timestamp is further than this in the past.")
        .topic("message.timestamp.before.max.ms"),
    key("log.message.timestamp.after.max.ms", Long, LONG_MAX, AtLeast(0),
        "Reject CreateTime batches whose timestamp is further than this in the future.")
        .topic("message.timestamp.after.max.ms"),
    key("socket.request.max.bytes", Int, "104857600", AtLeast(1),
        "Largest request frame accepted; larger frames close the connection."),
    key("max.topics", Int, "20000", AtLeast(1),
        "Klamm: topics this broker holds (internal topics aside). A CreateTopics or auto-create \
         past it is refused with POLICY_VIOLATION."),
    key("max.partitions", Int, "-1", AtLeast(-1),
        "Klamm: partitions this broker holds, all topics together (internal topics aside); past \
         it CreateTopics and CreatePartitions get INVALID_PARTITIONS. -1: sized at start from \
         the open-file limit (three quarters of it, at 3 files per partition of one segment)."),
    key("socket.request.timeout.ms", Long, "30000", AtLeast(1),
        "Klamm: a request whose size prefix arrived must arrive whole within this long, or the \
         connection is closed (a half-sent frame holds no memory for long)."),
    key("queued.max.request.bytes", Long, "268435456", AtLeast(-1),
        "Bytes of request bodies being read or handled at once, all connections together; a \
         body waits (unread) until it fits. -1: no limit (Kafka's default; Klamm names one)."),
    key("fetch.max.bytes", Int, "57671680", AtLeast(1024),
        "Most record bytes one Fetch response carries, whatever the request asks (55 MiB); the \
         first batch is still sent whole so that consumers make progress."),
    key("replica.fetch.response.max.bytes", Int, "10485760", AtLeast(0),
        "Most record bytes one Fetch response to a follower broker carries."),
    key("connections.max.idle.ms", Long, "600000", AtLeast(0), "Close connections idle for this long."),
    key("max.connections", Int, "4096", AtLeast(1),
        "Connections accepted in total; one more is closed as soon as it is accepted. In a file \
         together with max.connections.per.ip, one of the two must be quoted.")
        .dynamic(),
    key("max.connections.per.ip", Int, "2147483647", AtLeast(1), "Connections accepted from one IP address.")
        .dynamic(),
    key("queued.max.requests.per.connection", Int, "128", AtLeast(1),
        "Klamm: requests in flight on one connection before the broker stops reading from it."),
    key("max.request.partition.size.limit", Int, "2000", AtLeast(1),
        "Partitions one DescribeTopicPartitions response holds at most; a client asking for more \
         gets a cursor to the rest."),
    key("offsets.topic.num.partitions", Int, "50", AtLeast(1),
        "Partitions of __consumer_offsets; fixed once the topic exists."),
    key("offsets.retention.minutes", Int, "10080", AtLeast(1),
        "Committed offsets of an empty group are kept this long."),
    key("group.initial.rebalance.delay.ms", Int, "3000", AtLeast(0),
        "How long a new group waits for more members before its first rebalance."),
    key("group.min.session.timeout.ms", Int, "6000", AtLeast(1),
        "The shortest session timeout a consumer may ask for."),
    key("group.max.session.timeout.ms", Int, "1800000", AtLeast(1),
        "The longest session timeout a consumer may ask for."),
    key("group.max.size", Int, "1000", AtLeast(1),
        "Members one consumer group may have (Kafka's default is unlimited; Klamm names a limit)."),
    key("group.max.count", Int, "100000", AtLeast(1),
        "Klamm: consumer groups the broker holds. A JoinGroup or OffsetCommit that would create \
         one more is refused with GROUP_MAX_SIZE_REACHED; empty groups go when their offsets expire."),
    key("group.member.metadata.max.bytes", Int, "1048576", AtLeast(1024),
        "Klamm: bytes of subscription metadata one member may send, and of the assignment the leader may give one member."),
    key("group.metadata.max.bytes", Long, "134217728", AtLeast(1024),
        "Klamm: bytes of subscription metadata and assignments all members of all groups hold \
         together. A JoinGroup past it is refused with GROUP_MAX_SIZE_REACHED."),
    key("offsets.retention.check.interval.ms", Long, "600000", AtLeast(1),
        "How often expired offsets are removed and empty groups without offsets forgotten."),
    key("producer.id.expiration.ms", Int, "86400000", AtLeast(1),
        "An idempotent producer silent this long is forgotten by every partition; its next batch must start a new sequence."),
    key("offset.metadata.max.bytes", Int, "4096", AtLeast(0),
        "The longest metadata string a committed offset may carry."),
    key("offsets.topic.segment.bytes", Int, "104857600", AtLeast(14),
        "segment.bytes of __consumer_offsets."),
    key("transaction.state.log.num.partitions", Int, "50", AtLeast(1),
        "Partitions of __transaction_state; fixed once the topic exists."),
    key("transaction.state.log.segment.bytes", Int, "104857600", AtLeast(14),
        "segment.bytes of __transaction_state."),
    key("transaction.max.timeout.ms", Int, "900000", AtLeast(1),
        "The longest transaction.timeout.ms a producer may ask for; longer gets INVALID_TRANSACTION_TIMEOUT."),
    key("transactional.id.expiration.ms", Int, "604800000", AtLeast(1),
        "A transactional id without a transaction for this long is forgotten."),
    key("transaction.abort.timed.out.transaction.cleanup.interval.ms", Int, "10000", AtLeast(1),
        "How often transactions past their timeout are looked for and aborted."),
    key("transaction.remove.expired.transaction.cleanup.interval.ms", Int, "3600000", AtLeast(1),
        "How often expired transactional ids are removed."),
    key("log.format", Str, "text", OneOf(&["text", "json"]), "Klamm: format of the broker's own log on stderr."),
    key("admin.listener", Str, "0.0.0.0:9644", Validator::HostPortOrEmpty,
        "Klamm: host:port of the admin HTTP listener (GET /metrics, /health, /ready); empty disables it."),
    key("metrics.enabled", Boolean, "true", Validator::Any,
        "Klamm: record request-path metrics (counters, latency histograms); false leaves only scrape-time gauges."),
    key("metrics.partition.labels", Boolean, "true", Validator::Any,
        "Klamm: label partition-level metrics and consumer lag by partition; false aggregates them per topic to bound cardinality."),
    key("request.slow.log.ms", Long, "1000", AtLeast(0),
        "Klamm: requests taking at least this long are logged at WARN (Fetch: excluding its long-poll wait)."),
    key("ready.file", Str, "", Validator::FileOrEmpty,
        "Klamm: once every listener accepts connections, write this file: a line `NAME host:port` per listener (the port bound, also when 0 was asked) and `ADMIN host:port`; empty writes none."),
    key("shutdown.timeout.ms", Long, "5000", AtLeast(0),
        "Klamm: on shutdown, how long to drain connections before aborting them."),
];

const fn topic(
    name: &'static str,
    broker_synonyms: &'static [&'static str],
    ty: ConfigType,
    default: &'static str,
    validator: Validator,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_synonyms,
        ty,
        default,
        doc,
        validator,
    }
}

#[rustfmt::skip]
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    topic("cleanup.policy", &["log.cleanup.policy"], List, "delete", ListOf(CLEANUP_POLICIES),
        "delete, compact, or both."),
    topic("retention.ms", &["log.retention.ms", "log.retention.minutes", "log.retention.hours"], Long,
        "604800000", AtLeast(-1), "Delete segments older than this; -1 keeps them forever."),
    topic("retention.bytes", &["log.retention.bytes"], Long, "-1", AtLeast(-1),
        "Delete old segments while the partition is larger; -1 means no limit."),
    topic("segment.bytes", &["log.segment.bytes"], Int, "1073741824", AtLeast(SEGMENT_BYTES_MIN),
        "Maximum segment file size."),
    topic("internal.segment.bytes", &["internal.log.segment.bytes"], Int, "0",
        Validator::ZeroOr(INTERNAL_SEGMENT_BYTES_MIN),
        "For tests only: when > 0, overrides segment.bytes below its 1 MiB minimum."),
    topic("segment.ms", &["log.roll.ms", "log.roll.hours"], Long, "604800000", AtLeast(1),
        "Roll a new segment after this age."),
    topic("segment.index.bytes", &["log.index.size.max.bytes"], Int, "10485760", AtLeast(4),
        "Maximum offset index size."),
    topic("max.message.bytes", &["message.max.bytes"], Int, "1048588", AtLeast(0),
        "Largest record batch accepted."),
    topic("message.timestamp.type", &["log.message.timestamp.type"], Str, "CreateTime",
        OneOf(TIMESTAMP_TYPES), "CreateTime or LogAppendTime."),
    topic("message.timestamp.before.max.ms", &["log.message.timestamp.before.max.ms"], Long, LONG_MAX,
        AtLeast(0), "Largest allowed age of a CreateTime timestamp."),
    topic("message.timestamp.after.max.ms", &["log.message.timestamp.after.max.ms"], Long, LONG_MAX,
        AtLeast(0), "Largest allowed lead of a CreateTime timestamp."),
    topic("min.insync.replicas", &["min.insync.replicas"], Int, "1", AtLeast(1),
        "Replicas needed for acks=all."),
    topic("compression.type", &["compression.type"], Str, "producer", OneOf(COMPRESSION_TYPES),
        "Codec batches are stored with."),
    topic("delete.retention.ms", &["log.cleaner.delete.retention.ms"], Long, "86400000", AtLeast(0),
        "How long tombstones survive compaction."),
    topic("min.compaction.lag.ms", &["log.cleaner.min.compaction.lag.ms"], Long, "0", AtLeast(0),
        "Minimum age before compaction."),
    topic("max.compaction.lag.ms", &["log.cleaner.max.compaction.lag.ms"], Long, LONG_MAX, AtLeast(1),
        "Maximum age before compaction."),
    topic("min.cleanable.dirty.ratio", &["log.cleaner.min.cleanable.ratio"], Double, "0.5", Fraction,
        "Dirty ratio that triggers compaction."),
    topic("file.delete.delay.ms", &["log.segment.delete.delay.ms"], Long, "60000", AtLeast(0),
        "Delay before a deleted segment's files are removed."),
    topic("index.interval.bytes", &["log.index.interval.bytes"], Int, "4096", AtLeast(0),
        "Bytes between offset index entries."),
    topic("flush.ms", &["log.flush.interval.ms"], Long, LONG_MAX, AtLeast(0),
        "Fsync at least this often."),
    topic("flush.messages", &["log.flush.interval.messages"], Long, LONG_MAX, AtLeast(1),
        "Fsync after this many messages."),
];

pub fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

pub fn topic_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Registry name for an input key, following [`ALIASES`]; `None` if unknown.
pub(crate) fn canonical(name: &str) -> Option<&'static ConfigDef> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, to)| to);
    broker_def(name)
}
