//! The records of the metadata log. Their kinds and fields follow Kafka's KRaft records
//! (`RegisterBrokerRecord`, `TopicRecord`, `PartitionRecord`, `PartitionChangeRecord`,
//! `ConfigRecord`, `ProducerIdsRecord`, `FeatureLevelRecord`, …) so an operator reading
//! Kafka's documentation recognises them; their encoding is Klamm's own (serde), since no
//! Kafka tool reads a Klamm metadata log.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// "No leader" (Kafka's `-1`).
pub const NO_LEADER: i32 = -1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener's name, e.g. `PLAINTEXT`.
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// What a config record applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// A broker's own configs (`Broker(Some(id))`) or the cluster-wide default (`None`).
    Broker(Option<i32>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re)registers: a new incarnation gets a new epoch and starts fenced.
    RegisterBroker {
        broker_id: i32,
        incarnation_id: Uuid,
        broker_epoch: i64,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
        fenced: bool,
    },
    UnregisterBroker {
        broker_id: i32,
        broker_epoch: i64,
    },
    /// Fencing, unfencing and controlled shutdown of the registration of `broker_epoch`.
    BrokerRegistrationChange {
        broker_id: i32,
        broker_epoch: i64,
        fenced: Option<bool>,
        in_controlled_shutdown: Option<bool>,
    },
    Topic {
        name: String,
        topic_id: Uuid,
    },
    /// A partition and its assignment: a new one (epochs 0), or one written by a snapshot.
    Partition {
        topic_id: Uuid,
        partition_id: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A change of a partition's assignment. A new leader bumps the leader epoch; every
    /// change bumps the partition epoch.
    PartitionChange {
        topic_id: Uuid,
        partition_id: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
        replicas: Option<Vec<i32>>,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    /// Sets (or, with `value: None`, removes) one config key.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// A block of producer ids handed to `broker_id`: every id below `next_producer_id` is
    /// taken.
    ProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        next_producer_id: i64,
    },
    FeatureLevel {
        name: String,
        level: i16,
    },
}
