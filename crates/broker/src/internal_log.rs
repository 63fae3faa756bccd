//! The coordinators' records in their internal topics (`__consumer_offsets`,
//! `__transaction_state`), through one driver: appends route each record to its key's
//! partition (the same hash both coordinators use) and write one batch per partition and
//! transactional producer; replay walks every partition at start-up and hands each record
//! (or transaction marker) to the coordinator, skipping and counting what it cannot read.
//!
//! Invariant: the only code that appends to an internal topic; clients never can
//! (`internal.rs`).

use crate::partition::Partition;
use crate::state::State;
use bytes::Bytes;
use klamm_protocol::batch::{self, ProduceLimits};
use klamm_protocol::group_records::partition_for_group;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One record for an internal topic.
pub struct Record {
    /// Routes the record: the group id or transactional id its partition is hashed from.
    pub routing_key: String,
    /// A transactional producer's `(id, epoch)` (TxnOffsetCommit), else `None`.
    pub producer: Option<(i64, i16)>,
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// The partition and last offset of one append, to wait on for durability.
pub type Appended = (Arc<Partition>, i64);

/// Appends `records` to the internal topic `name` (created on first use), one batch per
/// partition and producer, in partition order. A failed append is logged and left out.
pub fn append(state: &State, name: &str, records: Vec<Record>) -> Vec<Appended> {
    if records.is_empty() {
        return Vec::new();
    }
    let topic = match state.internal_topic(name) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(topic = name, error = %e.message, "cannot create the internal topic; coordinator state is not persisted");
            return Vec::new();
        }
    };
    type BatchKey = (i32, Option<(i64, i16)>);
    let count = topic.partitions.len() as i32;
    let mut batches: BTreeMap<BatchKey, Vec<(Bytes, Option<Bytes>)>> = BTreeMap::new();
    for r in records {
        let p = partition_for_group(&r.routing_key, count);
        batches
            .entry((p, r.producer))
            .or_default()
            .push((r.key, r.value));
    }
    let mut appended = Vec::new();
    for ((index, producer), records) in batches {
        let Some(partition) = topic.partition(index) else {
            continue;
        };
        let now = state.now_ms();
        let bytes = match producer {
            None => batch::encode_key_values(&records, now),
            Some(producer) => batch::encode_txn_key_values(&records, now, producer),
        };
        let limits = ProduceLimits {
            max_batch_bytes: usize::MAX,
            produce_version: i16::MAX,
        };
        let result = batch::validate_produce(&bytes, limits)
            .map_err(|e| e.to_string())
            .and_then(|parsed| {
                partition
                    .append(&bytes, &parsed, now, false)
                    .map_err(|e| e.to_string())
            });
        match result {
            Ok(info) => appended.push((partition.clone(), info.last_offset)),
            Err(e) => {
                tracing::error!(topic = name, partition = index, error = %e, "cannot append to an internal topic")
            }
        }
    }
    appended
}

/// What replay hands to a coordinator.
pub enum Replayed {
    /// The end of a producer's transaction (a control batch).
    Marker { producer_id: i64, commit: bool },
    /// A keyed record; `producer_id` is set for a transactional batch's records.
    Record {
        producer_id: Option<i64>,
        key: Bytes,
        value: Option<Bytes>,
    },
}

/// Replay counts: records handed over, and those the coordinator could not read.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayCounts {
    pub records: u64,
    pub skipped: u64,
}

/// Hands every record of the internal topic `name` (if it exists) to `visit`, partition by
/// partition in offset order. A record `visit` refuses is logged and skipped: damage must
/// not keep the broker from starting.
pub fn replay(
    state: &State,
    name: &str,
    mut visit: impl FnMut(Replayed) -> Result<(), String>,
) -> anyhow::Result<ReplayCounts> {
    let mut counts = ReplayCounts::default();
    let Some(topic) = state.topic(name) else {
        return Ok(counts);
    };
    for p in &topic.partitions {
        p.replay(|h, bytes| {
            if h.is_control() {
                if let Some(commit) = batch::marker_of(bytes) {
                    let _ = visit(Replayed::Marker {
                        producer_id: h.producer_id,
                        commit,
                    });
                }
                return Ok(());
            }
            for (key, value) in batch::decode_key_values(bytes)? {
                let Some(key) = key else { continue };
                counts.records += 1;
                let producer_id = h.is_transactional().then_some(h.producer_id);
                if let Err(e) = visit(Replayed::Record {
                    producer_id,
                    key,
                    value,
                }) {
                    counts.skipped += 1;
                    tracing::warn!(topic = name, partition = p.index, error = %e, "skipping an unreadable internal-topic record");
                }
            }
            Ok(())
        })?;
    }
    Ok(counts)
}
