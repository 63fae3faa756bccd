//! Committed offsets per group, and their `__consumer_offsets` records.

use crate::group::Group;
use crate::{Effects, ErrorCode, GroupConfig, GroupRecord};
use klamm_protocol::group_records::{GroupKey, OffsetValue};
use std::collections::BTreeMap;

/// An OffsetCommit, validated against the group by [`crate::Coordinator::commit`].
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation: i32,
    /// `(topic, partition, offset, leader_epoch, metadata)`.
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
}

pub type CommittedOffset = OffsetValue;

#[derive(Default)]
pub struct OffsetStore {
    /// group → (topic, partition) → committed offset.
    groups: BTreeMap<String, BTreeMap<(String, i32), OffsetValue>>,
}

/// The `__consumer_offsets` record of one committed offset (`None`: its tombstone).
pub(crate) fn record(
    group: &str,
    topic: &str,
    partition: i32,
    value: Option<&OffsetValue>,
) -> GroupRecord {
    GroupRecord {
        group: group.to_string(),
        key: GroupKey::Offset {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        }
        .encode(),
        value: value.map(|v| v.encode()),
    }
}

/// Checks one `(topic, partition, offset, leader_epoch, metadata)` of a commit (plain or
/// transactional) and gives the value to store, or the partition's error.
pub(crate) fn checked_value(
    (topic, partition, offset, leader_epoch, metadata): &(String, i32, i64, i32, Option<String>),
    config: &GroupConfig,
    topic_exists: &impl Fn(&str, i32) -> bool,
    now_ms: i64,
) -> Result<OffsetValue, ErrorCode> {
    let metadata = metadata.clone().unwrap_or_default();
    if metadata.len() > config.offset_metadata_max_bytes {
        return Err(ErrorCode::OffsetMetadataTooLarge);
    }
    if !topic_exists(topic, *partition) {
        return Err(ErrorCode::UnknownTopicOrPartition);
    }
    Ok(OffsetValue {
        offset: *offset,
        leader_epoch: *leader_epoch,
        metadata,
        commit_timestamp_ms: now_ms,
    })
}

impl OffsetStore {
    pub fn commit(
        &mut self,
        req: &CommitRequest,
        config: &GroupConfig,
        topic_exists: impl Fn(&str, i32) -> bool,
        now_ms: i64,
    ) -> (Vec<ErrorCode>, Effects) {
        let mut effects = Effects::default();
        let mut errs = Vec::with_capacity(req.offsets.len());
        for entry in &req.offsets {
            let (topic, partition) = (&entry.0, entry.1);
            let value = match checked_value(entry, config, &topic_exists, now_ms) {
                Ok(value) => value,
                Err(code) => {
                    errs.push(code);
                    continue;
                }
            };
            effects
                .records
                .push(record(&req.group_id, topic, partition, Some(&value)));
            self.put(&req.group_id, topic, partition, value);
            errs.push(ErrorCode::None);
        }
        (errs, effects)
    }

    pub fn put(&mut self, group: &str, topic: &str, partition: i32, value: OffsetValue) {
        self.groups
            .entry(group.to_string())
            .or_default()
            .insert((topic.to_string(), partition), value);
    }

    pub fn remove(&mut self, group: &str, topic: &str, partition: i32) {
        if let Some(offsets) = self.groups.get_mut(group) {
            offsets.remove(&(topic.to_string(), partition));
            if offsets.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    pub fn fetch(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<(String, i32, Option<OffsetValue>)> {
        let offsets = self.groups.get(group);
        match partitions {
            Some(wanted) => wanted
                .iter()
                .map(|(t, p)| {
                    (
                        t.clone(),
                        *p,
                        offsets.and_then(|o| o.get(&(t.clone(), *p)).cloned()),
                    )
                })
                .collect(),
            None => offsets
                .into_iter()
                .flatten()
                .map(|((t, p), v)| (t.clone(), *p, Some(v.clone())))
                .collect(),
        }
    }

    pub fn delete(&mut self, group: &str, partitions: &[(String, i32)]) -> Effects {
        let mut effects = Effects::default();
        for (topic, partition) in partitions {
            let had = self
                .groups
                .get(group)
                .is_some_and(|o| o.contains_key(&(topic.clone(), *partition)));
            if had {
                self.remove(group, topic, *partition);
                effects.records.push(record(group, topic, *partition, None));
            }
        }
        effects
    }

    pub fn delete_group(&mut self, group: &str) -> Effects {
        let mut effects = Effects::default();
        for (topic, partition) in self
            .groups
            .remove(group)
            .into_iter()
            .flat_map(|o| o.into_keys())
        {
            effects.records.push(record(group, &topic, partition, None));
        }
        effects
    }

    /// Offsets of groups that have been empty for `retention_ms` (counted from the later of
    /// the commit and the moment the group became empty, as Kafka since KIP-211) are removed.
    pub fn expire(
        &mut self,
        empty_since: &BTreeMap<String, i64>,
        groups: &BTreeMap<String, Group>,
        retention_ms: i64,
        now_ms: i64,
    ) -> Effects {
        let mut expired = Vec::new();
        for (group, offsets) in &self.groups {
            let since = match (empty_since.get(group), groups.contains_key(group)) {
                (Some(&since), _) => since,
                (None, false) => i64::MIN,
                (None, true) => continue, // active group: its offsets never expire
            };
            for ((topic, partition), v) in offsets {
                if v.commit_timestamp_ms
                    .max(since)
                    .saturating_add(retention_ms)
                    < now_ms
                {
                    expired.push((group.clone(), topic.clone(), *partition));
                }
            }
        }
        let mut effects = Effects::default();
        for (group, topic, partition) in expired {
            self.remove(&group, &topic, partition);
            effects
                .records
                .push(record(&group, &topic, partition, None));
        }
        effects
    }
}
