//! The metadata image: what the records applied so far say the cluster is.
//!
//! Invariant: [`Image::apply`] either applies a record whole or refuses it with an
//! [`ApplyError`] and leaves the image as it was; a node whose image refuses a committed
//! record must stop (every node applies the same log, so a refusal is a bug, and carrying
//! on would let the nodes diverge). [`Image::to_records`] writes the image back as records
//! (a snapshot) that rebuild an equal image.

use crate::records::{ConfigResource, Endpoint, MetadataRecord, NO_LEADER};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// [`NO_LEADER`] when no replica may lead.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("broker {0} is not registered")]
    UnknownBroker(i32),
    #[error("broker {broker_id} is registered with epoch {current}, not {got}")]
    StaleBrokerEpoch {
        broker_id: i32,
        current: i64,
        got: i64,
    },
    #[error(
        "a new registration of broker {broker_id} must have an epoch above {current}, not {got}"
    )]
    BrokerEpochNotNewer {
        broker_id: i32,
        current: i64,
        got: i64,
    },
    #[error("topic {0} already exists")]
    TopicNameTaken(String),
    #[error("topic id {0} already exists")]
    TopicIdTaken(Uuid),
    #[error("no topic has id {0}")]
    UnknownTopicId(Uuid),
    #[error("no topic is named {0}")]
    UnknownTopicName(String),
    #[error("partition {partition_id} of topic {topic_id} already exists")]
    PartitionExists { topic_id: Uuid, partition_id: i32 },
    #[error("partition {partition_id} of topic {topic_id} does not exist")]
    UnknownPartition { topic_id: Uuid, partition_id: i32 },
    #[error(
        "partition {partition_id} of topic {topic_id} would not follow the last one ({expected})"
    )]
    PartitionGap {
        topic_id: Uuid,
        partition_id: i32,
        expected: i32,
    },
    #[error("invalid assignment for partition {partition_id} of topic {topic_id}: {why}")]
    InvalidAssignment {
        topic_id: Uuid,
        partition_id: i32,
        why: String,
    },
    #[error("producer ids would go back from {current} to {got}")]
    ProducerIdsBackwards { current: i64, got: i64 },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<Uuid, TopicImage>,
    topic_ids: BTreeMap<String, Uuid>,
    pub configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    /// Every producer id below this is taken.
    pub next_producer_id: i64,
    pub features: BTreeMap<String, i16>,
}

impl Image {
    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    /// Applies one record, or refuses it and changes nothing.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                broker_epoch,
                endpoints,
                rack,
                fenced,
            } => {
                if let Some(b) = self.brokers.get(broker_id) {
                    if *broker_epoch <= b.broker_epoch {
                        return Err(ApplyError::BrokerEpochNotNewer {
                            broker_id: *broker_id,
                            current: b.broker_epoch,
                            got: *broker_epoch,
                        });
                    }
                }
                self.brokers.insert(
                    *broker_id,
                    BrokerRegistration {
                        broker_id: *broker_id,
                        incarnation_id: *incarnation_id,
                        broker_epoch: *broker_epoch,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: *fenced,
                        in_controlled_shutdown: false,
                    },
                );
            }
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                self.broker_of_epoch(*broker_id, *broker_epoch)?;
                self.brokers.remove(broker_id);
            }
            MetadataRecord::BrokerRegistrationChange {
                broker_id,
                broker_epoch,
                fenced,
                in_controlled_shutdown,
            } => {
                self.broker_of_epoch(*broker_id, *broker_epoch)?;
                let b = self.brokers.get_mut(broker_id).expect("checked above");
                if let Some(f) = fenced {
                    b.fenced = *f;
                }
                if let Some(s) = in_controlled_shutdown {
                    b.in_controlled_shutdown = *s;
                }
            }
            MetadataRecord::Topic { name, topic_id } => {
                if self.topic_ids.contains_key(name) {
                    return Err(ApplyError::TopicNameTaken(name.clone()));
                }
                if self.topics.contains_key(topic_id) {
                    return Err(ApplyError::TopicIdTaken(*topic_id));
                }
                self.topic_ids.insert(name.clone(), *topic_id);
                self.topics.insert(
                    *topic_id,
                    TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition_id,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let topic = self
                    .topics
                    .get(topic_id)
                    .ok_or(ApplyError::UnknownTopicId(*topic_id))?;
                if topic.partitions.contains_key(partition_id) {
                    return Err(ApplyError::PartitionExists {
                        topic_id: *topic_id,
                        partition_id: *partition_id,
                    });
                }
                // Partitions are numbered 0..n: a new one is the next number.
                let expected = topic.partitions.len() as i32;
                if *partition_id != expected {
                    return Err(ApplyError::PartitionGap {
                        topic_id: *topic_id,
                        partition_id: *partition_id,
                        expected,
                    });
                }
                check_assignment(replicas, isr, *leader).map_err(|why| {
                    ApplyError::InvalidAssignment {
                        topic_id: *topic_id,
                        partition_id: *partition_id,
                        why,
                    }
                })?;
                let topic = self.topics.get_mut(topic_id).expect("checked above");
                topic.partitions.insert(
                    *partition_id,
                    PartitionRegistration {
                        replicas: replicas.clone(),
                        isr: isr.clone(),
                        leader: *leader,
                        leader_epoch: *leader_epoch,
                        partition_epoch: *partition_epoch,
                    },
                );
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition_id,
                leader,
                isr,
                replicas,
            } => {
                let unknown = ApplyError::UnknownPartition {
                    topic_id: *topic_id,
                    partition_id: *partition_id,
                };
                let current = self
                    .topics
                    .get(topic_id)
                    .ok_or(ApplyError::UnknownTopicId(*topic_id))?
                    .partitions
                    .get(partition_id)
                    .ok_or(unknown)?;
                let mut next = current.clone();
                if let Some(r) = replicas {
                    next.replicas = r.clone();
                }
                if let Some(i) = isr {
                    next.isr = i.clone();
                }
                if let Some(l) = leader {
                    if *l != current.leader {
                        next.leader = *l;
                        next.leader_epoch += 1;
                    }
                }
                check_assignment(&next.replicas, &next.isr, next.leader).map_err(|why| {
                    ApplyError::InvalidAssignment {
                        topic_id: *topic_id,
                        partition_id: *partition_id,
                        why,
                    }
                })?;
                next.partition_epoch += 1;
                let topic = self.topics.get_mut(topic_id).expect("checked above");
                topic.partitions.insert(*partition_id, next);
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let topic = self
                    .topics
                    .remove(topic_id)
                    .ok_or(ApplyError::UnknownTopicId(*topic_id))?;
                self.topic_ids.remove(&topic.name);
                self.configs.remove(&ConfigResource::Topic(topic.name));
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                if let ConfigResource::Topic(t) = resource {
                    if !self.topic_ids.contains_key(t) {
                        return Err(ApplyError::UnknownTopicName(t.clone()));
                    }
                }
                match value {
                    Some(v) => {
                        self.configs
                            .entry(resource.clone())
                            .or_default()
                            .insert(name.clone(), v.clone());
                    }
                    None => {
                        if let Some(values) = self.configs.get_mut(resource) {
                            values.remove(name);
                            if values.is_empty() {
                                self.configs.remove(resource);
                            }
                        }
                    }
                }
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                if *next_producer_id < self.next_producer_id {
                    return Err(ApplyError::ProducerIdsBackwards {
                        current: self.next_producer_id,
                        got: *next_producer_id,
                    });
                }
                self.next_producer_id = *next_producer_id;
            }
            MetadataRecord::FeatureLevel { name, level } => {
                self.features.insert(name.clone(), *level);
            }
        }
        Ok(())
    }

    fn broker_of_epoch(&self, broker_id: i32, epoch: i64) -> Result<(), ApplyError> {
        let b = self
            .brokers
            .get(&broker_id)
            .ok_or(ApplyError::UnknownBroker(broker_id))?;
        if b.broker_epoch != epoch {
            return Err(ApplyError::StaleBrokerEpoch {
                broker_id,
                current: b.broker_epoch,
                got: epoch,
            });
        }
        Ok(())
    }

    /// The image as records (a snapshot): applied in order to an empty image they rebuild
    /// this one.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for (name, level) in &self.features {
            out.push(MetadataRecord::FeatureLevel {
                name: name.clone(),
                level: *level,
            });
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker {
                broker_id: b.broker_id,
                incarnation_id: b.incarnation_id,
                broker_epoch: b.broker_epoch,
                endpoints: b.endpoints.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
            });
            if b.in_controlled_shutdown {
                out.push(MetadataRecord::BrokerRegistrationChange {
                    broker_id: b.broker_id,
                    broker_epoch: b.broker_epoch,
                    fenced: None,
                    in_controlled_shutdown: Some(true),
                });
            }
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.id,
            });
            for (&partition_id, p) in &t.partitions {
                out.push(MetadataRecord::Partition {
                    topic_id: t.id,
                    partition_id,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                });
            }
        }
        for (resource, values) in &self.configs {
            for (name, value) in values {
                out.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if self.next_producer_id > 0 {
            out.push(MetadataRecord::ProducerIds {
                broker_id: NO_LEADER,
                broker_epoch: -1,
                next_producer_id: self.next_producer_id,
            });
        }
        out
    }
}

/// Replicas distinct and non-empty; the ISR a subset of them; the leader in the ISR, or none.
fn check_assignment(replicas: &[i32], isr: &[i32], leader: i32) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("no replicas".into());
    }
    let set: BTreeSet<i32> = replicas.iter().copied().collect();
    if set.len() != replicas.len() {
        return Err(format!("a replica is named twice in {replicas:?}"));
    }
    let isr_set: BTreeSet<i32> = isr.iter().copied().collect();
    if isr_set.len() != isr.len() || !isr_set.is_subset(&set) {
        return Err(format!(
            "ISR {isr:?} is not a set of the replicas {replicas:?}"
        ));
    }
    if leader != NO_LEADER && !isr_set.contains(&leader) {
        return Err(format!("leader {leader} is not in the ISR {isr:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
