//! A small async Kafka protocol client: what the `klamm` CLI and its load generator need,
//! nothing more. Requests are the `kafka-protocol` crate's message types; this crate
//! negotiates versions, routes each request to the right broker (partition leader, group
//! coordinator, or any broker for admin requests) and turns failures into messages an
//! operator can act on.
//!
//! Architecture invariant: no retries and no background tasks — every call is one request
//! to one broker (or one per leader) and its error is returned to the caller as it came, so
//! the CLI can report exactly what the broker said per item.

pub mod conn;
pub mod error;
pub mod records;

pub use conn::{api_name, Connection};
pub use error::{ClientError, Result};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use std::collections::BTreeMap;
use std::time::Duration;

/// ListOffsets timestamp asking for the log end offset.
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets timestamp asking for the log start offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// `isolation_level` values of Fetch and ListOffsets.
pub const READ_UNCOMMITTED: i8 = 0;
pub const READ_COMMITTED: i8 = 1;

/// The versions this client knows how to fill, per API (`(min, max)`); the version used is
/// the highest one the broker also serves. Fetch stops at 12 because v13 names topics by id.
pub fn client_versions(api_key: i16) -> Option<(i16, i16)> {
    Some(match ApiKey::try_from(api_key) {
        Ok(ApiKey::Produce) => (3, 9),
        Ok(ApiKey::Fetch) => (4, 12),
        Ok(ApiKey::ListOffsets) => (1, 7),
        Ok(ApiKey::Metadata) => (1, 12),
        Ok(ApiKey::OffsetCommit) => (2, 8),
        Ok(ApiKey::OffsetFetch) => (1, 7),
        Ok(ApiKey::FindCoordinator) => (0, 6),
        Ok(ApiKey::ListGroups) => (0, 5),
        Ok(ApiKey::DescribeGroups) => (0, 5),
        Ok(ApiKey::DeleteGroups) => (0, 2),
        Ok(ApiKey::OffsetDelete) => (0, 0),
        Ok(ApiKey::CreateTopics) => (2, 7),
        Ok(ApiKey::DeleteTopics) => (1, 6),
        Ok(ApiKey::CreatePartitions) => (0, 3),
        Ok(ApiKey::DescribeConfigs) => (1, 4),
        Ok(ApiKey::IncrementalAlterConfigs) => (0, 1),
        Ok(ApiKey::DeleteRecords) => (0, 2),
        Ok(ApiKey::DescribeCluster) => (0, 1),
        _ => return None,
    })
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// `(topic, partition)`.
pub type TopicPartition = (String, i32);

/// Per partition: `Ok((offset, timestamp))` / `Ok((start, end))`, or a Kafka error code.
pub type PartitionOffsets = BTreeMap<TopicPartition, std::result::Result<(i64, i64), i16>>;

/// Which broker a request goes to.
#[derive(Debug, Clone)]
pub enum Target {
    /// The bootstrap broker (admin requests; a single-node cluster's only broker).
    Any,
    /// A broker by node id, at its advertised address.
    Node(i32),
    /// The coordinator of a consumer group.
    Coordinator(String),
}

pub struct Client {
    client_id: String,
    timeout: Duration,
    bootstrap_addr: String,
    /// Open connections by address; the bootstrap connection is one of them.
    conns: BTreeMap<String, Connection>,
    /// node id → advertised `host:port`, from the last Metadata.
    nodes: BTreeMap<i32, String>,
    /// (topic, partition) → leader node id, from the last Metadata.
    leaders: BTreeMap<(String, i32), i32>,
}

impl Client {
    /// Connects to the first reachable address of a comma-separated bootstrap list.
    pub async fn connect(bootstrap: &str, timeout: Duration) -> Result<Client> {
        let addrs: Vec<String> = bootstrap
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        if addrs.is_empty() {
            return Err(ClientError::Invalid(
                "no bootstrap server given (-b/--bootstrap-server or KLAMM_BROKERS)".into(),
            ));
        }
        let client_id = "klamm-cli".to_string();
        let mut failures = Vec::new();
        for addr in &addrs {
            match Connection::connect(addr, &client_id, timeout).await {
                Ok(conn) => {
                    let mut conns = BTreeMap::new();
                    conns.insert(addr.clone(), conn);
                    return Ok(Client {
                        client_id,
                        timeout,
                        bootstrap_addr: addr.clone(),
                        conns,
                        nodes: BTreeMap::new(),
                        leaders: BTreeMap::new(),
                    });
                }
                // Any failure (refused, timeout, not a Kafka broker): try the next address.
                Err(e) => failures.push((addr.clone(), e)),
            }
        }
        if failures.len() == 1 {
            return Err(failures.pop().expect("one failure").1);
        }
        let reasons: Vec<String> = failures
            .iter()
            .map(|(addr, e)| match e {
                ClientError::Unreachable { reason, .. } => format!("{addr}: {reason}"),
                other => format!("{addr}: {other}"),
            })
            .collect();
        Err(ClientError::Unreachable {
            tried: format!("any of {}", addrs.join(", ")),
            reason: reasons.join("; "),
            hint: error::BOOTSTRAP_HINT,
        })
    }

    pub fn bootstrap_addr(&self) -> &str {
        &self.bootstrap_addr
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The API versions the bootstrap broker serves.
    pub fn versions(&self) -> &BTreeMap<i16, (i16, i16)> {
        self.conns[&self.bootstrap_addr].versions()
    }

    /// A new, separate connection to a node (for pipelined load generation).
    pub async fn open_connection(&mut self, node: i32) -> Result<Connection> {
        let addr = self.node_addr(node).await?;
        Connection::connect(&addr, &self.client_id, self.timeout).await
    }

    async fn node_addr(&mut self, node: i32) -> Result<String> {
        if !self.nodes.contains_key(&node) {
            self.metadata(Some(&[])).await?;
        }
        self.nodes.get(&node).cloned().ok_or_else(|| {
            ClientError::Invalid(format!("broker {node} is not in the cluster metadata"))
        })
    }

    async fn resolve(&mut self, target: &Target) -> Result<String> {
        Ok(match target {
            Target::Any => self.bootstrap_addr.clone(),
            Target::Node(node) => self.node_addr(*node).await?,
            Target::Coordinator(group) => {
                let node = self.find_coordinator(group).await?;
                self.node_addr(node).await?
            }
        })
    }

    async fn connection(&mut self, addr: &str) -> Result<&mut Connection> {
        if !self.conns.contains_key(addr) {
            let conn = Connection::connect(addr, &self.client_id, self.timeout)
                .await
                .map_err(|e| match e {
                    ClientError::Unreachable { tried, reason, .. } => ClientError::Unreachable {
                        tried: format!(
                            "{tried} (advertised by the broker at {})",
                            self.bootstrap_addr
                        ),
                        reason,
                        hint: error::ADVERTISED_HINT,
                    },
                    other => other,
                })?;
            self.conns.insert(addr.to_string(), conn);
        }
        Ok(self.conns.get_mut(addr).expect("inserted above"))
    }

    /// Sends one request to `target`, built by `build` for the negotiated version.
    pub async fn call<R: Request>(
        &mut self,
        target: Target,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response> {
        let addr = self.resolve(&target).await?;
        self.call_addr(&addr, build).await
    }

    async fn call_addr<R: Request>(
        &mut self,
        addr: &str,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response> {
        let (min, max) = client_versions(R::KEY).unwrap_or((0, -1));
        let conn = self.connection(addr).await?;
        let version = conn.pick_version::<R>(min, max)?;
        let request = build(version);
        conn.call_at(version, &request).await
    }

    /// Metadata for `topics` (`None`: all topics). Never auto-creates. Remembers brokers and
    /// partition leaders for routing.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse> {
        let bootstrap = self.bootstrap_addr.clone();
        let response = self
            .call_addr(&bootstrap, |_| {
                MetadataRequest::default()
                    .with_topics(topics.map(|ts| {
                        ts.iter()
                            .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                            .collect()
                    }))
                    .with_allow_auto_topic_creation(false)
            })
            .await?;
        for b in &response.brokers {
            self.nodes
                .insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
        }
        for t in &response.topics {
            let Some(name) = &t.name else { continue };
            for p in &t.partitions {
                self.leaders
                    .insert((name.to_string(), p.partition_index), p.leader_id.0);
            }
        }
        Ok(response)
    }

    /// The leader of a partition, from cached metadata (refreshed once if unknown).
    pub async fn leader(&mut self, topic: &str, partition: i32) -> Result<i32> {
        let key = (topic.to_string(), partition);
        if !self.leaders.contains_key(&key) {
            let response = self.metadata(Some(&[topic.to_string()])).await?;
            if let Some(t) = response.topics.first() {
                if t.error_code != 0 {
                    return Err(ClientError::kafka(
                        "Metadata",
                        t.error_code,
                        Some(format!("topic {topic}")),
                    ));
                }
            }
        }
        self.leaders.get(&key).copied().ok_or_else(|| {
            ClientError::kafka(
                "Metadata",
                3,
                Some(format!("topic {topic} has no partition {partition}")),
            )
        })
    }

    /// Partition ids of a topic, sorted; an error naming the topic when it does not exist.
    pub async fn partitions(&mut self, topic: &str) -> Result<Vec<i32>> {
        let response = self.metadata(Some(&[topic.to_string()])).await?;
        let t = response
            .topics
            .first()
            .ok_or_else(|| ClientError::Invalid(format!("no metadata for topic {topic}")))?;
        if t.error_code != 0 {
            return Err(ClientError::kafka(
                "Metadata",
                t.error_code,
                Some(format!("topic {topic}")),
            ));
        }
        let mut ids: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn group_by_leader<T>(
        &mut self,
        items: Vec<(TopicPartition, T)>,
    ) -> Result<BTreeMap<i32, Vec<(TopicPartition, T)>>> {
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, T)>> = BTreeMap::new();
        for (tp, item) in items {
            let leader = self.leader(&tp.0, tp.1).await?;
            by_leader.entry(leader).or_default().push((tp, item));
        }
        Ok(by_leader)
    }

    /// ListOffsets for each `(topic, partition, timestamp)`, grouped per leader. Each result
    /// is `Ok((offset, timestamp))` or `Err(kafka error code)`; `offset` is -1 when no record
    /// has a timestamp at or after the one asked for.
    pub async fn list_offsets(
        &mut self,
        queries: &[(String, i32, i64)],
        isolation_level: i8,
    ) -> Result<PartitionOffsets> {
        let mut out = BTreeMap::new();
        // A partition whose topic is gone gets its own error instead of failing the rest.
        let mut known = Vec::new();
        for (t, p, ts) in queries {
            match self.leader(t, *p).await {
                Ok(_) => known.push(((t.clone(), *p), *ts)),
                Err(ClientError::Kafka { code, .. }) => {
                    out.insert((t.clone(), *p), Err(code));
                }
                Err(e) => return Err(e),
            }
        }
        let by_leader = self.group_by_leader(known).await?;
        for (leader, items) in by_leader {
            let mut topics: BTreeMap<String, Vec<ListOffsetsPartition>> = BTreeMap::new();
            for ((t, p), ts) in items {
                topics.entry(t).or_default().push(
                    ListOffsetsPartition::default()
                        .with_partition_index(p)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(ts),
                );
            }
            let response = self
                .call(Target::Node(leader), |v| {
                    ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_isolation_level(if v >= 2 { isolation_level } else { 0 })
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(t, ps)| {
                                    ListOffsetsTopic::default()
                                        .with_name(topic_name(&t))
                                        .with_partitions(ps)
                                })
                                .collect(),
                        )
                })
                .await?;
            for t in response.topics {
                for p in t.partitions {
                    let result = if p.error_code != 0 {
                        Err(p.error_code)
                    } else {
                        Ok((p.offset, p.timestamp))
                    };
                    out.insert((t.name.to_string(), p.partition_index), result);
                }
            }
        }
        Ok(out)
    }

    /// `(log start offset, log end offset)` of each partition.
    pub async fn watermarks(&mut self, parts: &[(String, i32)]) -> Result<PartitionOffsets> {
        let mut queries = Vec::new();
        for (t, p) in parts {
            queries.push((t.clone(), *p, EARLIEST_TIMESTAMP));
        }
        let starts = self.list_offsets(&queries, READ_UNCOMMITTED).await?;
        for q in &mut queries {
            q.2 = LATEST_TIMESTAMP;
        }
        let ends = self.list_offsets(&queries, READ_UNCOMMITTED).await?;
        Ok(parts
            .iter()
            .map(|tp| {
                let start = starts.get(tp).cloned().unwrap_or(Err(3));
                let end = ends.get(tp).cloned().unwrap_or(Err(3));
                let both = start.and_then(|(s, _)| end.map(|(e, _)| (s, e)));
                (tp.clone(), both)
            })
            .collect())
    }

    /// One Fetch per leader for `(topic, partition) → offset`. Returns each partition's data.
    pub async fn fetch(
        &mut self,
        positions: &BTreeMap<(String, i32), i64>,
        options: FetchOptions,
    ) -> Result<Vec<(String, PartitionData)>> {
        let by_leader = self
            .group_by_leader(positions.iter().map(|(tp, o)| (tp.clone(), *o)).collect())
            .await?;
        let mut out = Vec::new();
        for (leader, items) in by_leader {
            let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
            for ((t, p), offset) in items {
                topics.entry(t).or_default().push(
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(options.partition_max_bytes)
                        .with_current_leader_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_last_fetched_epoch(-1),
                );
            }
            let response = self
                .call(Target::Node(leader), |_| {
                    FetchRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_max_wait_ms(options.max_wait_ms)
                        .with_min_bytes(options.min_bytes)
                        .with_max_bytes(options.max_bytes)
                        .with_isolation_level(options.isolation_level)
                        .with_session_id(0)
                        .with_session_epoch(-1)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(t, ps)| {
                                    FetchTopic::default()
                                        .with_topic(topic_name(&t))
                                        .with_partitions(ps)
                                })
                                .collect(),
                        )
                })
                .await?;
            if response.error_code != 0 {
                return Err(ClientError::kafka("Fetch", response.error_code, None));
            }
            for t in response.responses {
                let name = t.topic.to_string();
                out.extend(t.partitions.into_iter().map(|p| (name.clone(), p)));
            }
        }
        Ok(out)
    }

    /// Produces one record set to a partition's leader.
    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: bytes::Bytes,
        acks: i16,
    ) -> Result<PartitionProduceResponse> {
        let leader = self.leader(topic, partition).await?;
        let request = produce_request(topic, partition, records, acks, self.timeout);
        if acks == 0 {
            // The broker sends no response to acks=0: write the request and move on.
            let addr = self.resolve(&Target::Node(leader)).await?;
            let (min, max) = client_versions(ProduceRequest::KEY).unwrap_or((3, 9));
            let conn = self.connection(&addr).await?;
            let version = conn.pick_version::<ProduceRequest>(min, max)?;
            conn.send(version, &request).await?;
            return Ok(PartitionProduceResponse::default()
                .with_index(partition)
                .with_base_offset(-1));
        }
        let response = self.call(Target::Node(leader), |_| request).await?;
        response
            .responses
            .into_iter()
            .flat_map(|t| t.partition_responses)
            .next()
            .ok_or_else(|| ClientError::Protocol {
                addr: self.bootstrap_addr.clone(),
                api: "Produce",
                reason: "no partition in the response".into(),
            })
    }

    /// The node id of a group's coordinator.
    pub async fn find_coordinator(&mut self, group: &str) -> Result<i32> {
        let bootstrap = self.bootstrap_addr.clone();
        let response = self
            .call_addr(&bootstrap, |v| {
                let request = FindCoordinatorRequest::default().with_key_type(0);
                if v >= 4 {
                    request.with_coordinator_keys(vec![str_bytes(group)])
                } else {
                    request.with_key(str_bytes(group))
                }
            })
            .await?;
        let (code, message, node, host, port) = match response.coordinators.first() {
            Some(c) => (
                c.error_code,
                c.error_message.clone(),
                c.node_id.0,
                c.host.clone(),
                c.port,
            ),
            None => (
                response.error_code,
                response.error_message.clone(),
                response.node_id.0,
                response.host.clone(),
                response.port,
            ),
        };
        if code != 0 {
            return Err(ClientError::kafka(
                "FindCoordinator",
                code,
                message.map(|m| m.to_string()),
            ));
        }
        self.nodes.insert(node, format!("{}:{port}", host.as_str()));
        Ok(node)
    }
}

/// Fetch limits.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
    pub isolation_level: i8,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 50 << 20,
            partition_max_bytes: 8 << 20,
            isolation_level: READ_UNCOMMITTED,
        }
    }
}

/// A Produce request for one partition.
pub fn produce_request(
    topic: &str,
    partition: i32,
    records: bytes::Bytes,
    acks: i16,
    timeout: Duration,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}
