//! The driver of the transaction coordinator: runs the pure state machine of
//! `klamm_coordinator::txn`, appends its records to `__transaction_state` (created on first
//! use with `transaction.state.log.num.partitions`), writes the COMMIT/ABORT markers to the
//! partitions of a transaction once its Prepare record is durable, ticks timeouts, and replays
//! the topic at start-up (completing transactions that were being prepared at a crash).
//!
//! Lock order: this driver's mutex, then the group coordinator's, then a partition's log.
//! The mutex is held while a transactional produce is verified and appended, so a marker can
//! never be written between the check and the append. Never held across an `.await`.

use crate::internal::TXN_TOPIC;
use crate::internal_log::{self, Record, Replayed};
use crate::state::State;
use klamm_coordinator::ErrorCode;
use klamm_coordinator::{Markers, TxnConfig, TxnCoordinator, TxnEffects};
use std::sync::{Arc, Mutex, MutexGuard};

/// Appends that a response (or the next step) must see durable: `(partition, last offset)`.
pub type Waits = Vec<internal_log::Appended>;

pub struct TxnDriver {
    inner: Mutex<TxnCoordinator>,
}

pub fn txn_config(broker_config: &klamm_config::Config) -> TxnConfig {
    let t = broker_config.txns();
    TxnConfig {
        max_timeout_ms: t.max_timeout_ms,
        id_expiration_ms: t.id_expiration_ms,
        abort_check_interval_ms: t.abort_check_interval_ms,
        expiry_check_interval_ms: t.expiry_check_interval_ms,
    }
}

/// PRODUCER_FENCED as clients older than `fenced_since` know it: INVALID_PRODUCER_EPOCH.
pub fn for_version(code: ErrorCode, version: i16, fenced_since: i16) -> i16 {
    if code == ErrorCode::ProducerFenced && version < fenced_since {
        ErrorCode::InvalidProducerEpoch.code()
    } else {
        code.code()
    }
}

impl TxnDriver {
    pub fn new(config: TxnConfig) -> TxnDriver {
        TxnDriver {
            inner: Mutex::new(TxnCoordinator::new(config)),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, TxnCoordinator> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state machine and appends its records. Returns the answer, the
    /// appends to wait for, and the transactions to complete once those are durable
    /// (hand both to [`finish`]).
    pub fn with<R>(
        &self,
        broker: &State,
        f: impl FnOnce(&mut TxnCoordinator) -> (R, TxnEffects),
    ) -> (R, Waits, Vec<String>) {
        let mut inner = self.lock();
        let (r, effects) = f(&mut inner);
        let waits = append_records(broker, effects.records);
        (r, waits, effects.complete)
    }

    /// Rebuilds the state from `__transaction_state`, if it exists. Called before the
    /// listeners bind; [`recover`] then completes what was being prepared.
    pub fn replay(&self, broker: &State) -> anyhow::Result<()> {
        let mut inner = self.lock();
        let counts = internal_log::replay(broker, TXN_TOPIC, |replayed| match replayed {
            Replayed::Record { key, value, .. } => inner.replay(key, value),
            Replayed::Marker { .. } => Ok(()), // no transaction writes to this topic
        })?;
        tracing::info!(
            records = counts.records,
            skipped = counts.skipped,
            transactional_ids = inner.all().count(),
            preparing = inner.preparing().len(),
            "transactions loaded"
        );
        Ok(())
    }

    /// Verifies a transactional produce to `(topic, partition)` and returns the guard to
    /// hold while appending it (see the module doc).
    pub fn verify_produce(
        &self,
        transactional_id: Option<&str>,
        producer: (i64, i16),
        partition: (&str, i32),
    ) -> Result<MutexGuard<'_, TxnCoordinator>, ErrorCode> {
        let Some(id) = transactional_id else {
            return Err(ErrorCode::InvalidTxnState);
        };
        let inner = self.lock();
        inner.verify(id, producer.0, producer.1, partition)?;
        Ok(inner)
    }
}

/// Appends `__transaction_state` records, each to its transactional id's partition.
fn append_records(broker: &State, records: Vec<klamm_coordinator::TxnRecord>) -> Waits {
    let records = records
        .into_iter()
        .map(|r| Record {
            routing_key: r.transactional_id,
            producer: None,
            key: r.key,
            value: r.value,
        })
        .collect();
    internal_log::append(broker, TXN_TOPIC, records)
}

/// Waits until every append is visible (durable under `log.flush.policy=always`).
pub async fn wait_all(waits: Waits) {
    for (partition, last) in waits {
        partition.wait_visible(last).await;
    }
}

/// What completing a transaction needs besides the state: this driver (its records) and
/// the group coordinator (a marker in `__consumer_offsets` settles pending offsets). The
/// broker implements it; taking it generically keeps this module from importing the one
/// that owns it.
pub trait Coordinators: std::ops::Deref<Target = State> + Send + Sync + 'static {
    fn txns(&self) -> &TxnDriver;
    fn groups(&self) -> &crate::groups::GroupCoordinator;
}

/// Once `waits` are durable, completes each transaction in `complete`: writes its markers
/// and its Complete record. Those become durable through the flusher like any append; not
/// waiting for them is safe because the durable Prepare record already decides the outcome
/// (a crash before they are durable completes the transaction again at start-up, as Kafka
/// does), and readers only see them once they are durable.
pub async fn finish<B: Coordinators>(broker: Arc<B>, waits: Waits, complete: Vec<String>) {
    wait_all(waits).await;
    for id in complete {
        complete_one(&*broker, &id);
    }
}

/// The second step of ending a transaction (its Prepare record is durable).
fn complete_one<B: Coordinators>(broker: &B, id: &str) {
    let mut inner = broker.txns().lock();
    let Some((markers, effects)) = inner.complete(id, broker.now_ms()) else {
        return;
    };
    write_markers(broker, &markers);
    append_records(broker, effects.records);
    tracing::debug!(
        transactional_id = id,
        commit = markers.commit,
        partitions = markers.partitions.len(),
        "transaction completed"
    );
}

/// One control batch per partition of the transaction. A marker that reaches
/// `__consumer_offsets` also settles the producer's pending offsets.
fn write_markers<B: Coordinators>(broker: &B, markers: &Markers) {
    let producer = (markers.producer_id, markers.producer_epoch);
    let now = broker.now_ms();
    for (topic_name, index) in &markers.partitions {
        let Some(partition) = broker
            .topic(topic_name)
            .and_then(|t| t.partition(*index).cloned())
        else {
            tracing::warn!(topic = %topic_name, partition = index, "transaction marker skipped: partition is gone");
            continue;
        };
        if let Err(e) = partition.append_marker(producer, markers.commit, now) {
            // The transaction stays unfinished in this partition (its LSO is held back)
            // until a restart replays the Prepare record and writes the marker again.
            tracing::error!(topic = %topic_name, partition = index, error = %e, "cannot write transaction marker");
        }
        marker_written(broker, topic_name, markers.producer_id, markers.commit, now);
    }
}

/// After a marker of `producer_id` reached `topic_name`: one reaching `__consumer_offsets`
/// settles the producer's pending offset commits (committed or dropped with it).
pub fn marker_written<B: Coordinators>(
    broker: &B,
    topic_name: &str,
    producer_id: i64,
    commit: bool,
    now_ms: i64,
) {
    if topic_name == crate::internal::OFFSETS_TOPIC {
        broker.groups().with(broker, |c| {
            c.end_txn(producer_id, commit, now_ms);
            ((), Default::default())
        });
    }
}

/// After a restart: completes the transactions whose Prepare record was durable. Returns
/// the work that writes their markers, if any.
pub fn recover<B: Coordinators>(
    broker: &Arc<B>,
) -> Option<impl std::future::Future<Output = ()> + Send> {
    let preparing = broker.txns().lock().preparing();
    if preparing.is_empty() {
        return None;
    }
    tracing::info!(
        transactions = preparing.len(),
        "completing transactions prepared before the restart"
    );
    Some(finish(broker.clone(), Vec::new(), preparing))
}

/// One tick at the broker clock's now: transactions past their timeout start aborting and
/// expired ids are forgotten. Returns the work that writes the aborts' markers, if any.
pub fn tick_once<B: Coordinators>(
    broker: &Arc<B>,
) -> Option<impl std::future::Future<Output = ()> + Send> {
    let (_, waits, complete) = broker
        .txns()
        .with(broker, |c| ((), c.tick(broker.now_ms())));
    if complete.is_empty() {
        return None;
    }
    tracing::info!(transactions = ?complete, "aborting timed-out transactions");
    Some(finish(broker.clone(), waits, complete))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::error::ResponseError;
    use klamm_coordinator::ErrorCode;

    #[test]
    fn every_coordinator_error_code_is_kafkas_code_of_that_name() {
        for e in ErrorCode::ALL {
            let name = format!("{e:?}");
            match ResponseError::try_from_code(e.code()) {
                None => assert_eq!(e, ErrorCode::None),
                Some(k) => assert_eq!(format!("{k:?}"), name, "code {}", e.code()),
            }
        }
    }

    #[test]
    fn producer_fenced_is_invalid_producer_epoch_for_older_clients() {
        assert_eq!(super::for_version(ErrorCode::ProducerFenced, 3, 4), 47);
        assert_eq!(super::for_version(ErrorCode::ProducerFenced, 4, 4), 90);
        assert_eq!(super::for_version(ErrorCode::InvalidTxnState, 0, 4), 48);
    }
}
