//! The driver of the consumer-group coordinator: runs the pure state machine of
//! `klamm-coordinator`, parks JoinGroup/SyncGroup requests until their answers exist,
//! appends its records to `__consumer_offsets`, ticks its timers, and replays the topic at
//! start-up.
//!
//! One mutex guards the state machine and the parked requests together, so a request is
//! parked before any effect that answers it is delivered. It is never held across an
//! `.await`.

use crate::internal::OFFSETS_TOPIC;
use crate::internal_log::{self, Record, Replayed};
use crate::state::State;
use klamm_config::Config;
use klamm_coordinator::{
    Answer, Coordinator, Effects, ErrorCode, GroupConfig, JoinOutcome, SyncOutcome,
};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::oneshot;

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
pub type Durable = Option<internal_log::Appended>;

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
            let _ = tx.send(JoinOutcome::error(ErrorCode::NotCoordinator, &member_id));
        }
        for (_, tx) in inner.syncs.drain() {
            let _ = tx.send(SyncOutcome::error(ErrorCode::NotCoordinator));
        }
    }

    /// One tick at the state clock's now: session, rebalance and join timers fire.
    pub fn tick(&self, state: &State) {
        self.with(state, |c| ((), c.tick(state.now_ms())));
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
        let now = broker.now_ms();
        let mut inner = self.lock();
        let counts = internal_log::replay(broker, OFFSETS_TOPIC, |replayed| match replayed {
            // A transaction's end: its offsets are committed or dropped.
            Replayed::Marker {
                producer_id,
                commit,
            } => {
                inner.coordinator.end_txn(producer_id, commit, now);
                Ok(())
            }
            Replayed::Record {
                producer_id: Some(pid),
                key,
                value,
            } => inner.coordinator.replay_txn(pid, key, value),
            Replayed::Record {
                producer_id: None,
                key,
                value,
            } => inner.coordinator.replay(key, value, now),
        })?;
        tracing::info!(
            records = counts.records,
            skipped = counts.skipped,
            groups = inner.coordinator.list().len(),
            "consumer groups loaded"
        );
        Ok(())
    }
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
    let plain = effects.records.into_iter().map(|r| Record {
        routing_key: r.group,
        producer: None,
        key: r.key,
        value: r.value,
    });
    let transactional = effects
        .txn_records
        .into_iter()
        .map(|(pid, epoch, r)| Record {
            routing_key: r.group,
            producer: Some((pid, epoch)),
            key: r.key,
            value: r.value,
        });
    internal_log::append(broker, OFFSETS_TOPIC, plain.chain(transactional).collect()).pop()
}
