//! Typed views for the broker. Values were validated at load, so these never fail; the
//! field names carry their units.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::registry::topic_def;
use crate::value::normalize;
use crate::{Config, ConfigError, Origin};

/// The fsync period under `log.flush.policy = "interval"` when `log.flush.interval.ms` is
/// unset (Kafka's unset means "never", which would make that policy equal to "never").
pub const FLUSH_INTERVAL_MS_WHEN_UNSET: u64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper-cased, e.g. `PLAINTEXT`.
    pub name: String,
    /// Without IPv6 brackets; an empty host in the input becomes `0.0.0.0`.
    pub host: String,
    /// 0 lets the OS pick; the broker must then advertise the port it actually bound.
    pub port: u16,
}

/// One voter of the metadata quorum (`controller.quorum.voters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    /// Without IPv6 brackets.
    pub host: String,
    pub port: u16,
}

impl Voter {
    /// Parses `id@host:port[,id@host:port...]`; `None` if malformed, empty, or an id repeats.
    pub fn parse_list(s: &str) -> Option<Vec<Voter>> {
        let mut out: Vec<Voter> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, addr) = part.split_once('@')?;
            let id = id.parse::<i32>().ok().filter(|id| *id >= 0)?;
            // The host and port rules are the listeners' ones.
            let listener = Listener::parse(&format!("V://{addr}"))?;
            if listener.host == "0.0.0.0" || listener.port == 0 || out.iter().any(|v| v.id == id) {
                return None;
            }
            out.push(Voter {
                id,
                host: listener.host,
                port: listener.port,
            });
        }
        (!out.is_empty()).then_some(out)
    }
}

pub(crate) fn join_voters(voters: &[Voter]) -> String {
    voters
        .iter()
        .map(|v| {
            if v.host.contains(':') {
                format!("{}@[{}]:{}", v.id, v.host, v.port)
            } else {
                format!("{}@{}:{}", v.id, v.host, v.port)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// This node's place in the metadata quorum, checked across keys at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    pub broker: bool,
    pub controller: bool,
    /// Empty: a single node, its own one-voter quorum.
    pub voters: Vec<Voter>,
}

impl Listener {
    /// Parses `NAME://host:port[,NAME://host:port...]`; `None` if malformed, empty, or a
    /// name repeats.
    pub fn parse_list(s: &str) -> Option<Vec<Listener>> {
        let mut out: Vec<Listener> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let listener = Listener::parse(part)?;
            if out.iter().any(|l| l.name == listener.name) {
                return None;
            }
            out.push(listener);
        }
        (!out.is_empty()).then_some(out)
    }

    fn parse(s: &str) -> Option<Listener> {
        let (name, addr) = s.split_once("://")?;
        let name_ok =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let (host, port) = match addr.strip_prefix('[') {
            Some(bracketed) => bracketed.split_once("]:")?,
            // An unbracketed IPv6 address would make the port ambiguous.
            None => addr
                .rsplit_once(':')
                .filter(|(host, _)| !host.contains(':'))?,
        };
        let host_ok = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c));
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|_| !port.starts_with('+'))?;
        (name_ok && host_ok).then(|| Listener {
            name: name.to_ascii_uppercase(),
            host: if host.is_empty() { "0.0.0.0" } else { host }.to_string(),
            port,
        })
    }

    pub(crate) fn is_wildcard(&self) -> bool {
        self.host == "0.0.0.0" || self.host == "::"
    }

    /// What clients are told when nothing is configured: a wildcard bind is reachable
    /// as localhost, anything else as itself.
    fn derived_advertised(&self) -> Listener {
        let host = if self.is_wildcard() {
            "localhost"
        } else {
            &self.host
        };
        Listener {
            host: host.to_string(),
            ..self.clone()
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    Always,
    Interval,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerSettings {
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    /// Same length and order as `listeners`: entry i is what clients are told for listener i.
    pub advertised_listeners: Vec<Listener>,
    pub log_dirs: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: usize,
    /// `socket.request.timeout.ms`: a started frame must arrive whole within it.
    pub socket_request_timeout_ms: u64,
    /// `queued.max.request.bytes`; `None` = no limit.
    pub queued_max_request_bytes: Option<usize>,
    /// `fetch.max.bytes`, and `replica.fetch.response.max.bytes` for follower fetches.
    pub fetch_max_bytes: u64,
    /// `max.topics`, and `max.partitions` (`None` = sized from the open-file limit).
    pub max_topics: usize,
    pub max_partitions: Option<usize>,
    pub replica_fetch_response_max_bytes: u64,
    pub flush_policy: FlushPolicy,
    pub flush_interval_ms: u64,
    pub connections_max_idle_ms: u64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub queued_max_requests_per_connection: usize,
    /// `max.request.partition.size.limit`: partitions per DescribeTopicPartitions response.
    pub max_request_partition_size_limit: i32,
    pub log_format: LogFormat,
    pub shutdown_timeout_ms: u64,
    /// `metrics.enabled`: request-path counters and histograms are recorded.
    pub metrics_enabled: bool,
    /// `request.slow.log.ms`: requests at least this slow are logged and counted.
    pub request_slow_log_ms: u64,
    pub producer_id_expiration_ms: i64,
    pub log_retention_check_interval_ms: u64,
    /// `metrics.partition.labels`: per-partition series (else per topic).
    pub metrics_partition_labels: bool,
}

/// A topic's effective configuration: override, else broker synonym, else default.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    pub cleanup_policy_compact: bool,
    pub cleanup_policy_delete: bool,
    /// -1: keep forever.
    pub retention_ms: i64,
    /// -1: no size limit.
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    pub segment_ms: u64,
    pub segment_index_bytes: u64,
    pub max_message_bytes: usize,
    pub message_timestamp_type: TimestampType,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
    pub index_interval_bytes: u64,
    pub min_insync_replicas: i32,
    pub compression_type: String,
    pub delete_retention_ms: u64,
    pub min_compaction_lag_ms: u64,
    pub max_compaction_lag_ms: u64,
    pub min_cleanable_dirty_ratio: f64,
    pub file_delete_delay_ms: u64,
    pub flush_ms: u64,
    pub flush_messages: u64,
    /// The broker's `message.max.decompressed.bytes` (dynamic): what one records section
    /// may inflate to, in Produce checks and in the cleaner.
    pub max_decompressed_bytes: usize,
}

/// The consumer-group coordinator's keys (`group.*`, `offsets.*`), typed.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSettings {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i64,
    pub max_size: usize,
    pub max_count: usize,
    pub member_metadata_max_bytes: usize,
    pub metadata_max_bytes: usize,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    pub offset_metadata_max_bytes: usize,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_segment_bytes: u64,
}

/// The transaction coordinator's keys (`transaction.*`, `transactional.*`), typed.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnSettings {
    pub max_timeout_ms: i32,
    pub id_expiration_ms: i64,
    pub abort_check_interval_ms: i64,
    pub expiry_check_interval_ms: i64,
    pub state_log_num_partitions: i32,
    pub state_log_segment_bytes: u64,
}

/// The log cleaner's broker keys (`log.cleaner.*`; the per-topic ones are in
/// [`TopicSettings`]), typed. `backoff_ms`, `dedupe_buffer_bytes` and
/// `io_max_bytes_per_second` are dynamic: read them from the config in force.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerSettings {
    pub enable: bool,
    pub backoff_ms: u64,
    pub dedupe_buffer_bytes: u64,
    pub io_max_bytes_per_second: f64,
}

/// Checks a topic-level value (CreateTopics, AlterConfigs) and returns its normalized form,
/// which is what should be stored.
pub fn validate_topic_config(key: &str, value: &str) -> Result<String, ConfigError> {
    let def = topic_def(key).ok_or_else(|| ConfigError::UnknownTopicConfig { key: key.into() })?;
    normalize(def.name, def.ty, def.validator, value).map_err(|expected| ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        origin: Origin::TopicConfig,
        expected,
    })
}

/// Parses a value that passed validation, so failure is a bug in this crate.
fn validated<T: FromStr>(key: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{key} = {value:?} bypassed validation"))
}

impl Config {
    pub fn broker(&self) -> BrokerSettings {
        let advertised = self.advertised_listeners();
        BrokerSettings {
            node_id: self.typed("node.id"),
            listeners: self.listeners(),
            advertised_listeners: advertised.expect("advertised.listeners is checked at load"),
            log_dirs: self.typed("log.dirs"),
            num_partitions: self.typed("num.partitions"),
            default_replication_factor: self.typed("default.replication.factor"),
            auto_create_topics_enable: self.typed("auto.create.topics.enable"),
            delete_topic_enable: self.typed("delete.topic.enable"),
            socket_request_max_bytes: self.typed("socket.request.max.bytes"),
            socket_request_timeout_ms: self.typed("socket.request.timeout.ms"),
            queued_max_request_bytes: match self.typed::<i64>("queued.max.request.bytes") {
                -1 => None,
                n => Some(n.max(1) as usize),
            },
            fetch_max_bytes: self.typed("fetch.max.bytes"),
            max_topics: self.typed("max.topics"),
            max_partitions: match self.typed::<i64>("max.partitions") {
                -1 => None,
                n => Some(n.max(0) as usize),
            },
            replica_fetch_response_max_bytes: self.typed("replica.fetch.response.max.bytes"),
            flush_policy: match self.get("log.flush.policy") {
                Some("interval") => FlushPolicy::Interval,
                Some("never") => FlushPolicy::Never,
                _ => FlushPolicy::Always,
            },
            flush_interval_ms: self
                .get("log.flush.interval.ms")
                .map_or(FLUSH_INTERVAL_MS_WHEN_UNSET, |v| {
                    validated("log.flush.interval.ms", v)
                }),
            connections_max_idle_ms: self.typed("connections.max.idle.ms"),
            max_connections: self.typed("max.connections"),
            max_connections_per_ip: self.typed("max.connections.per.ip"),
            queued_max_requests_per_connection: self.typed("queued.max.requests.per.connection"),
            max_request_partition_size_limit: self.typed("max.request.partition.size.limit"),
            log_format: match self.get("log.format") {
                Some("json") => LogFormat::Json,
                _ => LogFormat::Text,
            },
            shutdown_timeout_ms: self.typed("shutdown.timeout.ms"),
            metrics_enabled: self.typed("metrics.enabled"),
            request_slow_log_ms: self.typed("request.slow.log.ms"),
            producer_id_expiration_ms: self.typed("producer.id.expiration.ms"),
            log_retention_check_interval_ms: self.typed("log.retention.check.interval.ms"),
            metrics_partition_labels: self.typed("metrics.partition.labels"),
        }
    }

    /// `overrides` are the topic's stored configs; one that fails validation anyway (say,
    /// from an older version) is ignored rather than trusted.
    pub fn topic_settings(&self, overrides: &BTreeMap<String, String>) -> TopicSettings {
        let t = TopicView {
            config: self,
            overrides,
        };
        let policy: String = t.get("cleanup.policy");
        TopicSettings {
            cleanup_policy_compact: policy.split(',').any(|p| p == "compact"),
            cleanup_policy_delete: policy.split(',').any(|p| p == "delete"),
            retention_ms: t.get("retention.ms"),
            retention_bytes: t.get("retention.bytes"),
            segment_bytes: match t.get::<u64>("internal.segment.bytes") {
                0 => t.get("segment.bytes"),
                for_tests => for_tests,
            },
            segment_ms: t.get("segment.ms"),
            segment_index_bytes: t.get("segment.index.bytes"),
            max_message_bytes: t.get("max.message.bytes"),
            message_timestamp_type: match t.get::<String>("message.timestamp.type").as_str() {
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
            message_timestamp_before_max_ms: t.get("message.timestamp.before.max.ms"),
            message_timestamp_after_max_ms: t.get("message.timestamp.after.max.ms"),
            index_interval_bytes: t.get("index.interval.bytes"),
            min_insync_replicas: t.get("min.insync.replicas"),
            compression_type: t.get("compression.type"),
            delete_retention_ms: t.get("delete.retention.ms"),
            min_compaction_lag_ms: t.get("min.compaction.lag.ms"),
            max_compaction_lag_ms: t.get("max.compaction.lag.ms"),
            min_cleanable_dirty_ratio: t.get("min.cleanable.dirty.ratio"),
            file_delete_delay_ms: t.get("file.delete.delay.ms"),
            flush_ms: t.get("flush.ms"),
            flush_messages: t.get("flush.messages"),
            max_decompressed_bytes: self.typed("message.max.decompressed.bytes"),
        }
    }

    pub fn groups(&self) -> GroupSettings {
        GroupSettings {
            min_session_timeout_ms: self.typed("group.min.session.timeout.ms"),
            max_session_timeout_ms: self.typed("group.max.session.timeout.ms"),
            initial_rebalance_delay_ms: self.typed("group.initial.rebalance.delay.ms"),
            max_size: self.typed("group.max.size"),
            max_count: self.typed("group.max.count"),
            member_metadata_max_bytes: self.typed("group.member.metadata.max.bytes"),
            metadata_max_bytes: self.typed("group.metadata.max.bytes"),
            offsets_retention_ms: self
                .typed::<i64>("offsets.retention.minutes")
                .saturating_mul(60_000),
            offsets_retention_check_interval_ms: self.typed("offsets.retention.check.interval.ms"),
            offset_metadata_max_bytes: self.typed("offset.metadata.max.bytes"),
            offsets_topic_num_partitions: self.typed("offsets.topic.num.partitions"),
            offsets_topic_segment_bytes: self.typed("offsets.topic.segment.bytes"),
        }
    }

    pub fn txns(&self) -> TxnSettings {
        TxnSettings {
            max_timeout_ms: self.typed("transaction.max.timeout.ms"),
            id_expiration_ms: self.typed("transactional.id.expiration.ms"),
            abort_check_interval_ms: self
                .typed("transaction.abort.timed.out.transaction.cleanup.interval.ms"),
            expiry_check_interval_ms: self
                .typed("transaction.remove.expired.transaction.cleanup.interval.ms"),
            state_log_num_partitions: self.typed("transaction.state.log.num.partitions"),
            state_log_segment_bytes: self.typed("transaction.state.log.segment.bytes"),
        }
    }

    pub fn cleaner(&self) -> CleanerSettings {
        CleanerSettings {
            enable: self.typed("log.cleaner.enable"),
            backoff_ms: self.typed("log.cleaner.backoff.ms"),
            dedupe_buffer_bytes: self.typed("log.cleaner.dedupe.buffer.size"),
            io_max_bytes_per_second: self.typed("log.cleaner.io.max.bytes.per.second"),
        }
    }

    /// A broker key with a default, parsed into its typed form.
    fn typed<T: FromStr>(&self, key: &str) -> T {
        validated(key, self.get(key).unwrap_or_default())
    }

    /// This config with every port 0 (in `listeners`, and in `advertised.listeners` by
    /// listener name) replaced by the port the OS gave that listener, as Kafka advertises
    /// its bound port: clients must never be told to connect to port 0. `bound` is
    /// `(listener name, port)`.
    pub fn with_bound_ports(&self, bound: &[(String, u16)]) -> Config {
        let port_of = |name: &str| bound.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
        let resolve = |list: Vec<Listener>| -> String {
            list.into_iter()
                .map(|mut l| {
                    if l.port == 0 {
                        l.port = port_of(&l.name).unwrap_or(0);
                    }
                    l.to_string()
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut out = self.clone();
        for key in ["listeners", "advertised.listeners"] {
            let list = Listener::parse_list(self.get(key).unwrap_or_default()).unwrap_or_default();
            if list.iter().any(|l| l.port == 0) {
                let origin = self.origin(key);
                let value = resolve(list);
                out.set.insert(key, crate::load::Setting { value, origin });
            }
        }
        out
    }

    fn listeners(&self) -> Vec<Listener> {
        Listener::parse_list(self.get("listeners").unwrap_or_default()).unwrap_or_default()
    }

    /// This node's roles and the quorum's voters, checked against each other and node.id
    /// as Kafka checks them at start-up.
    pub fn quorum(&self) -> Result<Quorum, ConfigError> {
        let invalid = |key: &str, expected: String| ConfigError::Invalid {
            key: key.into(),
            value: self.get(key).unwrap_or_default().into(),
            origin: self.origin(key),
            expected,
        };
        let roles = self.get("process.roles").unwrap_or_default();
        let broker = roles.split(',').any(|r| r == "broker");
        let controller = roles.split(',').any(|r| r == "controller");
        let voters = Voter::parse_list(self.get("controller.quorum.voters").unwrap_or_default())
            .unwrap_or_default();
        let node_id: i32 = self.typed("node.id");
        if voters.is_empty() {
            if !(broker && controller) {
                return Err(invalid(
                    "process.roles",
                    "broker,controller while controller.quorum.voters is empty (a single node \
                     is its own quorum); a node with one role needs the quorum's voters"
                        .into(),
                ));
            }
        } else {
            let voter = voters.iter().any(|v| v.id == node_id);
            if controller && !voter {
                return Err(invalid(
                    "controller.quorum.voters",
                    format!("to include node.id {node_id}, since process.roles has controller"),
                ));
            }
            if !controller && voter {
                return Err(invalid(
                    "controller.quorum.voters",
                    format!(
                        "not to include node.id {node_id}: with process.roles = broker the \
                         node is not a voter"
                    ),
                ));
            }
            let names = self.get("controller.listener.names").unwrap_or_default();
            let first = names.split(',').map(str::trim).next().unwrap_or_default();
            let listeners = self.listeners();
            if controller && !listeners.iter().any(|l| l.name.eq_ignore_ascii_case(first)) {
                let defined: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
                return Err(invalid(
                    "controller.listener.names",
                    format!(
                        "a listener name defined in listeners ({}), for the quorum's voters to \
                         connect to",
                        defined.join(", ")
                    ),
                ));
            }
        }
        Ok(Quorum {
            broker,
            controller,
            voters,
        })
    }

    /// One advertised listener per listener, by name: the configured one, else derived.
    pub(crate) fn advertised_listeners(&self) -> Result<Vec<Listener>, ConfigError> {
        let listeners = self.listeners();
        let raw = self.get("advertised.listeners").unwrap_or_default();
        let explicit = Listener::parse_list(raw).unwrap_or_default();
        if explicit
            .iter()
            .any(|a| !listeners.iter().any(|l| l.name == a.name))
        {
            let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
            return Err(ConfigError::Invalid {
                key: "advertised.listeners".into(),
                value: raw.into(),
                origin: self.origin("advertised.listeners"),
                expected: format!(
                    "only listener names defined in listeners ({})",
                    names.join(", ")
                ),
            });
        }
        let advertised = listeners.iter().map(|l| {
            let configured = explicit.iter().find(|a| a.name == l.name);
            configured
                .cloned()
                .unwrap_or_else(|| l.derived_advertised())
        });
        Ok(advertised.collect())
    }
}

/// One topic's effective values, parsed.
struct TopicView<'a> {
    config: &'a Config,
    overrides: &'a BTreeMap<String, String>,
}

impl TopicView<'_> {
    fn get<T: FromStr>(&self, key: &str) -> T {
        validated(key, &self.config.topic_value(key, self.overrides))
    }
}
