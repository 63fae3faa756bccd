//! The driver of the consumer-group coordinator: runs the pure state machine of
//! `klamm-coordinator`, parks JoinGroup/SyncGroup requests until their answers exist,
//! appends its records to `__consumer_offsets`, ticks its timers, and replays the topic at
//! start-up.
//!
//! One mutex guards the state machine and the parked requests together, so a request is
//! parked before any effect that answers it is delivered. It is never held across an
//! `.await`.

use crate::partition::Partition;
use crate::state::{AdminError, State, Topic};
use bytes::Bytes;
use klamm_config::Config;
use klamm_coordinator::{Answer, Coordinator, Effects, GroupConfig, JoinOutcome, SyncOutcome};
use klamm_protocol::batch::{self, ProduceLimits};
use klamm_protocol::group_records::partition_for_group;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

pub use crate::internal::OFFSETS_TOPIC;

type Key = (String, String);

struct Inner {
    coordinator: Coordinator,
    joins: HashMap<Key, oneshot::Sender<JoinOutcome>>,
    syncs: HashMap<Key, oneshot::Sender<SyncOutcome>>,
}

pub struct GroupCoordinator {
    inner: Mutex<Inner>,
}

/// A JoinGroup/SyncGroup answer, now or once the rebalance produces it.
pub enum Pending<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

/// Where the records of a call went: the response waits until they are durable.
pub type Durable = Option<(Arc<Partition>, i64)>;

pub fn group_config(config: &Config) -> GroupConfig {
    let g = config.groups();
    GroupConfig {
        min_session_timeout_ms: g.min_session_timeout_ms,
        max_session_timeout_ms: g.max_session_timeout_ms,
        initial_rebalance_delay_ms: g.initial_rebalance_delay_ms,
        max_group_size: g.max_size,
        max_groups: g.max_count,
        offsets_retention_ms: g.offsets_retention_ms,
        offsets_retention_check_interval_ms: g.offsets_retention_check_interval_ms,
        offset_metadata_max_bytes: g.offset_metadata_max_bytes,
        metadata_max_bytes: g.metadata_max_bytes,
        member_metadata_max_bytes: g.member_metadata_max_bytes,
    }
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            inner: Mutex::new(Inner {
                coordinator: Coordinator::new(config),
                joins: HashMap::new(),
                syncs: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state machine, then applies its effects.
    pub fn with<R>(
        &self,
        broker: &State,
        f: impl FnOnce(&mut Coordinator) -> (R, Effects),
    ) -> (R, Durable) {
        let mut inner = self.lock();
        let (r, effects) = f(&mut inner.coordinator);
        let durable = apply(broker, &mut inner, effects);
        (r, durable)
    }

    /// Reads the state machine without changing it.
    pub fn read<R>(&self, f: impl FnOnce(&Coordinator) -> R) -> R {
        f(&self.lock().coordinator)
    }

    pub fn join(
        &self,
        broker: &State,
        group: &str,
        f: impl FnOnce(&mut Coordinator) -> (Answer<JoinOutcome>, Effects),
    ) -> Pending<JoinOutcome> {
        self.answer(broker, group, |inner| &mut inner.joins, f)
    }

    /// At shutdown: every parked JoinGroup/SyncGroup is answered NOT_COORDINATOR (as Kafka
    /// answers while a coordinator unloads), so its client looks for the coordinator again
    /// instead of holding the drain until its rebalance timeout.
    pub fn answer_parked_for_shutdown(&self) {
        let mut inner = self.lock();
        for ((_, member_id), tx) in inner.joins.drain() {
            let _ = tx.send(JoinOutcome::error(
                klamm_coordinator::errors::NOT_COORDINATOR,
                &member_id,
            ));
        }
        for (_, tx) in inner.syncs.drain() {
            let _ = tx.send(SyncOutcome::error(
                klamm_coordinator::errors::NOT_COORDINATOR,
            ));
        }
    }

    pub fn sync(
        &self,
        broker: &State,
        group: &str,
        f: impl FnOnce(&mut Coordinator) -> (Answer<SyncOutcome>, Effects),
    ) -> Pending<SyncOutcome> {
        self.answer(broker, group, |inner| &mut inner.syncs, f)
    }

    /// Runs a JoinGroup or SyncGroup: a parked answer is registered in `parked` before the
    /// call's effects are applied, since those effects may already carry it.
    fn answer<T>(
        &self,
        broker: &State,
        group: &str,
        parked: impl FnOnce(&mut Inner) -> &mut HashMap<Key, oneshot::Sender<T>>,
        f: impl FnOnce(&mut Coordinator) -> (Answer<T>, Effects),
    ) -> Pending<T> {
        let mut inner = self.lock();
        let (answer, effects) = f(&mut inner.coordinator);
        let pending = match answer {
            Answer::Now(o) => Pending::Now(o),
            Answer::Parked { member_id } => {
                let (tx, rx) = oneshot::channel();
                parked(&mut inner).insert((group.to_string(), member_id), tx);
                Pending::Wait(rx)
            }
        };
        apply(broker, &mut inner, effects);
        pending
    }

    /// Rebuilds the state from `__consumer_offsets`, if it exists. Called before listeners
    /// are bound, so no request sees a half-loaded coordinator.
    pub fn replay(&self, broker: &State) -> anyhow::Result<()> {
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else {
            return Ok(());
        };
        let now = broker.now_ms();
        let mut inner = self.lock();
        let (mut records, mut skipped) = (0u64, 0u64);
        for p in &topic.partitions {
            p.replay(|h, bytes| {
                if h.is_control() {
                    // A transaction's end: its offsets are committed or dropped.
                    if let Some(commit) = batch::marker_of(bytes) {
                        inner.coordinator.end_txn(h.producer_id, commit, now);
                    }
                    return Ok(());
                }
                for (key, value) in batch::decode_key_values(bytes)? {
                    let Some(key) = key else { continue };
                    records += 1;
                    let replayed = if h.is_transactional() {
                        inner.coordinator.replay_txn(h.producer_id, key, value)
                    } else {
                        inner.coordinator.replay(key, value, now)
                    };
                    if let Err(e) = replayed {
                        skipped += 1;
                        tracing::warn!(partition = p.index, error = %e, "skipping unreadable __consumer_offsets record");
                    }
                }
                Ok(())
            })?;
        }
        tracing::info!(
            records,
            skipped,
            groups = inner.coordinator.list().len(),
            "consumer groups loaded"
        );
        Ok(())
    }
}

/// The `__consumer_offsets` topic, created on first use (as Kafka does).
pub fn offsets_topic(broker: &State) -> Result<Arc<Topic>, AdminError> {
    broker.internal_topic(OFFSETS_TOPIC)
}

/// Delivers answers to parked requests and appends records, grouped per partition. Returns
/// the partition and last offset of the last append, for responses that must wait for it.
fn apply(broker: &State, inner: &mut Inner, effects: Effects) -> Durable {
    for (group, member, outcome) in effects.joins {
        if let Some(tx) = inner.joins.remove(&(group, member)) {
            let _ = tx.send(outcome);
        }
    }
    for (group, member, outcome) in effects.syncs {
        if let Some(tx) = inner.syncs.remove(&(group, member)) {
            let _ = tx.send(outcome);
        }
    }
    if effects.records.is_empty() && effects.txn_records.is_empty() {
        return None;
    }
    let topic = match offsets_topic(broker) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e.message, "cannot create __consumer_offsets; group state is not persisted");
            return None;
        }
    };
    // Keyed by partition and, for TxnOffsetCommit records, the producer writing them.
    type BatchKey = (i32, Option<(i64, i16)>);
    let mut by_partition: BTreeMap<BatchKey, Vec<(Bytes, Option<Bytes>)>> = BTreeMap::new();
    let count = topic.partitions.len() as i32;
    for r in effects.records {
        let p = partition_for_group(&r.group, count);
        by_partition
            .entry((p, None))
            .or_default()
            .push((r.key, r.value));
    }
    for (pid, epoch, r) in effects.txn_records {
        let p = partition_for_group(&r.group, count);
        by_partition
            .entry((p, Some((pid, epoch))))
            .or_default()
            .push((r.key, r.value));
    }
    let mut durable = None;
    for ((index, producer), records) in by_partition {
        let Some(partition) = topic.partition(index) else {
            continue;
        };
        let bytes = match producer {
            None => batch::encode_key_values(&records, broker.now_ms()),
            Some(producer) => batch::encode_txn_key_values(&records, broker.now_ms(), producer),
        };
        let limits = ProduceLimits {
            max_batch_bytes: usize::MAX,
            produce_version: i16::MAX,
        };
        let appended = batch::validate_produce(&bytes, limits)
            .map_err(|e| e.to_string())
            .and_then(|batches| {
                partition
                    .append(&bytes, &batches, broker.now_ms(), false)
                    .map_err(|e| e.to_string())
            });
        match appended {
            Ok(info) => durable = Some((partition.clone(), info.last_offset)),
            Err(e) => {
                tracing::error!(partition = index, error = %e, "cannot append to __consumer_offsets")
            }
        }
    }
    durable
}

impl GroupCoordinator {
    /// One tick at the state clock's now: session, rebalance and join timers fire.
    pub fn tick(&self, state: &State) {
        self.with(state, |c| ((), c.tick(state.now_ms())));
    }
}
