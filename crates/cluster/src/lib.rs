//! Cluster metadata as a log of records, the way Kafka's KRaft mode keeps it.
//!
//! - [`records`]: the record kinds of the metadata log (brokers, topics, partitions with
//!   replicas/ISR/leader/epochs, configs, producer-id blocks, feature levels).
//! - [`image`]: the in-memory image every node builds by applying the records in log order;
//!   a record the image cannot apply is an error, never a silent divergence; a snapshot is
//!   the image written back as records.
//! - [`placement`]: where a new partition's replicas go (replication factor at most the
//!   live brokers, rack-aware, leaders spread).
//!
//! Architecture invariant: no I/O, no clock, no tasks. The Raft replication of the log
//! (openraft) and the broker's use of the image live above this crate; this crate only
//! decides what a record means.

pub mod image;
pub mod placement;
pub mod records;

pub use image::{ApplyError, BrokerRegistration, Image, PartitionRegistration, TopicImage};
pub use records::{ConfigResource, Endpoint, MetadataRecord};
