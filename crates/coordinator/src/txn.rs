//! The transaction coordinator (KIP-98) as a pure state machine.
//!
//! One [`TxnMeta`] per transactional id: its producer id and epoch, timeout, status and the
//! partitions of the ongoing transaction. Every change is a `__transaction_state` record
//! (Kafka's schema, [`klamm_protocol::txn_records`]) returned in [`TxnEffects`]; replaying
//! the records rebuilds the state.
//!
//! Ending a transaction takes two steps, so that a crash never leaves half the partitions
//! committed: the call moves the transaction to PrepareCommit/PrepareAbort and returns that
//! record with the id in `complete`; once the record is durable the driver calls
//! [`TxnCoordinator::complete`], which returns the markers to write and the
//! CompleteCommit/CompleteAbort record. After a restart, transactions found in a Prepare
//! state are completed the same way; Ongoing ones are kept and time out.
//!
//! Architecture invariant: no I/O, no clock, no tasks.

use bytes::Bytes;
use klamm_protocol::txn_records::{self, TxnStatus, TxnValue};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::ErrorCode;

/// Settings (Kafka's names in the comments).
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an idle transactional id is forgotten after this.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub abort_check_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`
    pub expiry_check_interval_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            abort_check_interval_ms: 10_000,
            expiry_check_interval_ms: 3_600_000,
        }
    }
}

/// The state of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump by the coordinator (a fence), or -1: a producer that
    /// re-initialises with it is retrying, not a zombie (KIP-360).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    pub partitions: BTreeSet<(String, i32)>,
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnMeta {
    fn value(&self) -> TxnValue {
        let mut partitions: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &self.partitions {
            partitions.entry(t).or_default().push(*p);
        }
        TxnValue {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            status: self.status,
            partitions: partitions
                .into_iter()
                .map(|(t, p)| (t.to_string(), p))
                .collect(),
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
        }
    }
}

/// A `__transaction_state` record; the transactional id decides its partition.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// What a call asks the driver to do.
#[derive(Debug, Default)]
pub struct TxnEffects {
    pub records: Vec<TxnRecord>,
    /// Transactions now in PrepareCommit/PrepareAbort: once `records` are durable, call
    /// [`TxnCoordinator::complete`] for each.
    pub complete: Vec<String>,
}

impl TxnEffects {
    fn merge(&mut self, other: TxnEffects) {
        self.records.extend(other.records);
        self.complete.extend(other.complete);
    }
}

/// The markers that end a transaction: one control batch per partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markers {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

/// Why a partition's transactional write is refused (see [`TxnCoordinator::verify`]).
pub type VerifyError = ErrorCode;

#[derive(Default)]
pub struct TxnCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, TxnMeta>,
    last_abort_check_ms: i64,
    last_expiry_check_ms: i64,
}

fn record(id: &str, meta: Option<&TxnMeta>) -> TxnRecord {
    TxnRecord {
        transactional_id: id.to_string(),
        key: txn_records::encode_key(id),
        value: meta.map(|m| m.value().encode()),
    }
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig) -> TxnCoordinator {
        TxnCoordinator {
            config,
            ..Default::default()
        }
    }

    pub fn get(&self, id: &str) -> Option<&TxnMeta> {
        self.txns.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = (&String, &TxnMeta)> {
        self.txns.iter()
    }

    /// Changes `id`'s state and emits its record.
    fn write(&mut self, id: &str, meta: TxnMeta, effects: &mut TxnEffects) {
        effects.records.push(record(id, Some(&meta)));
        self.txns.insert(id.to_string(), meta);
    }

    /// InitProducerId with a transactional id. `expected` is the producer's current
    /// `(id, epoch)` when it re-initialises itself (KIP-360), else None. `allocate` hands out
    /// a new producer id (or an error code). Returns `(producer_id, epoch)` or an error.
    pub fn init_producer_id(
        &mut self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
        allocate: impl FnOnce() -> Result<i64, ErrorCode>,
    ) -> (Result<(i64, i16), ErrorCode>, TxnEffects) {
        let mut effects = TxnEffects::default();
        if id.is_empty() {
            return (Err(ErrorCode::InvalidRequest), effects);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return (Err(ErrorCode::InvalidTransactionTimeout), effects);
        }
        let Some(current) = self.txns.get(id).cloned() else {
            let producer_id = match allocate() {
                Ok(p) => p,
                Err(code) => return (Err(code), effects),
            };
            let meta = TxnMeta {
                producer_id,
                producer_epoch: 0,
                last_producer_epoch: -1,
                timeout_ms,
                status: TxnStatus::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
            };
            self.write(id, meta, &mut effects);
            return (Ok((producer_id, 0)), effects);
        };
        let mut retry = false;
        if let Some((pid, epoch)) = expected {
            let matches = pid == current.producer_id
                && (epoch == current.producer_epoch || epoch == current.last_producer_epoch);
            if !matches {
                return (Err(ErrorCode::ProducerFenced), effects);
            }
            retry = epoch == current.last_producer_epoch && epoch != current.producer_epoch;
        }
        match current.status {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence => {
                (Err(ErrorCode::ConcurrentTransactions), effects)
            }
            TxnStatus::Ongoing => {
                // A new instance of the producer: fence the old one and abort its
                // transaction; the producer retries once the abort is complete.
                effects.merge(self.fence_and_abort(id, now_ms));
                (Err(ErrorCode::ConcurrentTransactions), effects)
            }
            TxnStatus::Empty
            | TxnStatus::CompleteCommit
            | TxnStatus::CompleteAbort
            | TxnStatus::Dead => {
                let mut meta = current;
                if retry {
                    // The producer's earlier epoch was bumped by us (a fence after a
                    // timeout): it gets the current epoch without another bump.
                    meta.last_producer_epoch = -1;
                } else if meta.producer_epoch >= i16::MAX - 1 {
                    // Epochs exhausted: a new producer id starts again from zero.
                    match allocate() {
                        Ok(p) => {
                            meta.producer_id = p;
                            meta.producer_epoch = 0;
                        }
                        Err(code) => return (Err(code), effects),
                    }
                    meta.last_producer_epoch = -1;
                } else {
                    meta.last_producer_epoch = meta.producer_epoch;
                    meta.producer_epoch += 1;
                }
                meta.timeout_ms = timeout_ms;
                meta.status = TxnStatus::Empty;
                meta.partitions.clear();
                meta.start_ms = -1;
                meta.last_update_ms = now_ms;
                let answer = (meta.producer_id, meta.producer_epoch);
                self.write(id, meta, &mut effects);
                (Ok(answer), effects)
            }
        }
    }

    /// The checks every client call about an ongoing transaction makes.
    fn check_producer(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&TxnMeta, ErrorCode> {
        let meta = self
            .txns
            .get(id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the partitions join the transaction (starting
    /// it if none is ongoing). The caller has checked that the partitions exist.
    pub fn add_partitions(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> (ErrorCode, TxnEffects) {
        let mut effects = TxnEffects::default();
        let meta = match self.check_producer(id, producer_id, epoch) {
            Ok(m) => m,
            Err(code) => return (code, effects),
        };
        match meta.status {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence => {
                return (ErrorCode::ConcurrentTransactions, effects)
            }
            TxnStatus::Dead => return (ErrorCode::InvalidTxnState, effects),
            TxnStatus::Ongoing if partitions.iter().all(|p| meta.partitions.contains(p)) => {
                return (ErrorCode::None, effects);
            }
            _ => {}
        }
        let mut meta = meta.clone();
        if meta.status != TxnStatus::Ongoing {
            meta.status = TxnStatus::Ongoing;
            meta.partitions.clear();
            meta.start_ms = now_ms;
        }
        meta.partitions.extend(partitions.iter().cloned());
        meta.last_update_ms = now_ms;
        self.write(id, meta, &mut effects);
        (ErrorCode::None, effects)
    }

    /// Whether producer `(id, epoch)` may write transactional data to `partition` now: its
    /// transaction is ongoing and holds the partition (Kafka 3.6's produce verification).
    pub fn verify(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partition: (&str, i32),
    ) -> Result<(), VerifyError> {
        let meta = self
            .txns
            .get(id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if epoch != meta.producer_epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        let added = meta
            .partitions
            .contains(&(partition.0.to_string(), partition.1));
        if meta.status != TxnStatus::Ongoing || !added {
            return Err(ErrorCode::InvalidTxnState);
        }
        Ok(())
    }

    /// EndTxn: starts committing or aborting the ongoing transaction.
    pub fn end_txn(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> (ErrorCode, TxnEffects) {
        let mut effects = TxnEffects::default();
        let meta = match self.check_producer(id, producer_id, epoch) {
            Ok(m) => m,
            Err(code) => return (code, effects),
        };
        let code = match (meta.status, commit) {
            (TxnStatus::Ongoing, _) => {
                let mut meta = meta.clone();
                meta.status = if commit {
                    TxnStatus::PrepareCommit
                } else {
                    TxnStatus::PrepareAbort
                };
                meta.last_update_ms = now_ms;
                self.write(id, meta, &mut effects);
                effects.complete.push(id.to_string());
                ErrorCode::None
            }
            // A retry of an EndTxn that already completed.
            (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => {
                ErrorCode::None
            }
            (TxnStatus::PrepareCommit, true) | (TxnStatus::PrepareAbort, false) => {
                ErrorCode::ConcurrentTransactions
            }
            (TxnStatus::PrepareEpochFence, _) => ErrorCode::ConcurrentTransactions,
            // Nothing was added, or the other outcome is under way or done.
            _ => ErrorCode::InvalidTxnState,
        };
        (code, effects)
    }

    /// Bumps the epoch of `id`'s producer (fencing the current instance) and starts
    /// aborting its ongoing transaction with the new epoch.
    fn fence_and_abort(&mut self, id: &str, now_ms: i64) -> TxnEffects {
        let mut effects = TxnEffects::default();
        let Some(meta) = self.txns.get(id) else {
            return effects;
        };
        let mut meta = meta.clone();
        if meta.producer_epoch < i16::MAX {
            meta.last_producer_epoch = meta.producer_epoch;
            meta.producer_epoch += 1;
        }
        meta.status = TxnStatus::PrepareAbort;
        meta.last_update_ms = now_ms;
        self.write(id, meta, &mut effects);
        effects.complete.push(id.to_string());
        effects
    }

    /// Second step of ending a transaction, once its Prepare record is durable: the markers
    /// to write and the Complete record. None if `id` is not in a Prepare state.
    pub fn complete(&mut self, id: &str, now_ms: i64) -> Option<(Markers, TxnEffects)> {
        let meta = self.txns.get(id)?;
        let commit = match meta.status {
            TxnStatus::PrepareCommit => true,
            TxnStatus::PrepareAbort => false,
            _ => return None,
        };
        let markers = Markers {
            transactional_id: id.to_string(),
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            commit,
            partitions: meta.partitions.iter().cloned().collect(),
        };
        let mut meta = meta.clone();
        meta.status = if commit {
            TxnStatus::CompleteCommit
        } else {
            TxnStatus::CompleteAbort
        };
        meta.partitions.clear();
        meta.last_update_ms = now_ms;
        let mut effects = TxnEffects::default();
        self.write(id, meta, &mut effects);
        Some((markers, effects))
    }

    /// Transactions in a Prepare state (after a replay: to be completed).
    pub fn preparing(&self) -> Vec<String> {
        self.txns
            .iter()
            .filter(|(_, m)| matches!(m.status, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Aborts transactions older than their timeout and forgets ids idle for
    /// `transactional.id.expiration.ms`, each at its configured interval.
    pub fn tick(&mut self, now_ms: i64) -> TxnEffects {
        let mut effects = TxnEffects::default();
        if now_ms - self.last_abort_check_ms >= self.config.abort_check_interval_ms {
            self.last_abort_check_ms = now_ms;
            let timed_out: Vec<String> = self
                .txns
                .iter()
                .filter(|(_, m)| {
                    m.status == TxnStatus::Ongoing
                        && m.start_ms.saturating_add(m.timeout_ms as i64) < now_ms
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in timed_out {
                effects.merge(self.fence_and_abort(&id, now_ms));
            }
        }
        if now_ms - self.last_expiry_check_ms >= self.config.expiry_check_interval_ms {
            self.last_expiry_check_ms = now_ms;
            let expiration = self.config.id_expiration_ms;
            let expired: Vec<String> = self
                .txns
                .iter()
                .filter(|(_, m)| {
                    matches!(
                        m.status,
                        TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
                    ) && m.last_update_ms.saturating_add(expiration) <= now_ms
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                self.txns.remove(&id);
                effects.records.push(record(&id, None));
            }
        }
        effects
    }

    /// Applies one `__transaction_state` record at start-up.
    pub fn replay(&mut self, key: Bytes, value: Option<Bytes>) -> Result<(), String> {
        let id = txn_records::decode_key(key).map_err(|e| e.to_string())?;
        let Some(value) = value else {
            self.txns.remove(&id);
            return Ok(());
        };
        let v = TxnValue::decode(value).map_err(|e| e.to_string())?;
        let partitions = v
            .partitions
            .into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
            .collect();
        self.txns.insert(
            id,
            TxnMeta {
                producer_id: v.producer_id,
                producer_epoch: v.producer_epoch,
                last_producer_epoch: -1,
                timeout_ms: v.timeout_ms,
                status: v.status,
                partitions,
                start_ms: v.start_ms,
                last_update_ms: v.last_update_ms,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordinator() -> TxnCoordinator {
        TxnCoordinator::new(TxnConfig {
            abort_check_interval_ms: 0,
            ..TxnConfig::default()
        })
    }

    fn replayed(c: &TxnCoordinator, records: &[TxnRecord]) -> TxnCoordinator {
        let mut r = TxnCoordinator::new(c.config.clone());
        for rec in records {
            r.replay(rec.key.clone(), rec.value.clone()).unwrap();
        }
        r
    }

    fn tp(t: &str, p: i32) -> (String, i32) {
        (t.to_string(), p)
    }

    #[test]
    fn commit_flow_and_replay() {
        let mut c = coordinator();
        let mut log = Vec::new();
        let (r, e) = c.init_producer_id("tx", 60_000, None, 1, || Ok(7));
        assert_eq!(r, Ok((7, 0)));
        log.extend(e.records);
        let (code, e) = c.add_partitions("tx", 7, 0, &[tp("a", 0), tp("b", 1)], 2);
        assert_eq!(code, ErrorCode::None);
        log.extend(e.records);
        // Adding the same partition again writes nothing.
        let (code, e) = c.add_partitions("tx", 7, 0, &[tp("a", 0)], 3);
        assert_eq!((code, e.records.len()), (ErrorCode::None, 0));
        assert_eq!(c.verify("tx", 7, 0, ("a", 0)), Ok(()));
        assert_eq!(
            c.verify("tx", 7, 0, ("a", 1)),
            Err(ErrorCode::InvalidTxnState)
        );
        let (code, e) = c.end_txn("tx", 7, 0, true, 4);
        assert_eq!(
            (code, e.complete.clone()),
            (ErrorCode::None, vec!["tx".into()])
        );
        log.extend(e.records);
        // While preparing, the producer must wait.
        assert_eq!(
            c.add_partitions("tx", 7, 0, &[tp("a", 0)], 5).0,
            ErrorCode::ConcurrentTransactions
        );
        // A crash here: the replayed coordinator still has to complete the commit.
        assert_eq!(replayed(&c, &log).preparing(), vec!["tx".to_string()]);
        let (markers, e) = c.complete("tx", 6).unwrap();
        assert!(markers.commit);
        assert_eq!(markers.partitions, vec![tp("a", 0), tp("b", 1)]);
        log.extend(e.records);
        assert_eq!(c.get("tx").unwrap().status, TxnStatus::CompleteCommit);
        // A retried EndTxn is fine; the other outcome is not.
        assert_eq!(c.end_txn("tx", 7, 0, true, 7).0, ErrorCode::None);
        assert_eq!(
            c.end_txn("tx", 7, 0, false, 7).0,
            ErrorCode::InvalidTxnState
        );
        let r = replayed(&c, &log);
        assert_eq!(r.get("tx").unwrap().status, TxnStatus::CompleteCommit);
        assert!(r.preparing().is_empty());
    }

    #[test]
    fn end_without_partitions_and_bad_producers() {
        let mut c = coordinator();
        c.init_producer_id("tx", 1000, None, 0, || Ok(1)).0.unwrap();
        assert_eq!(c.end_txn("tx", 1, 0, true, 1).0, ErrorCode::InvalidTxnState);
        assert_eq!(
            c.end_txn("tx", 2, 0, true, 1).0,
            ErrorCode::InvalidProducerIdMapping
        );
        assert_eq!(
            c.end_txn("nope", 1, 0, true, 1).0,
            ErrorCode::InvalidProducerIdMapping
        );
        assert_eq!(
            c.init_producer_id("tx", 900_001, None, 0, || Ok(2)).0,
            Err(ErrorCode::InvalidTransactionTimeout)
        );
    }

    #[test]
    fn reinit_fences_the_zombie_and_aborts_its_transaction() {
        let mut c = coordinator();
        c.init_producer_id("tx", 1000, None, 0, || Ok(1)).0.unwrap();
        c.add_partitions("tx", 1, 0, &[tp("a", 0)], 1);
        let (r, e) = c.init_producer_id("tx", 1000, None, 2, || Ok(9));
        assert_eq!(r, Err(ErrorCode::ConcurrentTransactions));
        assert_eq!(e.complete, vec!["tx".to_string()]);
        let (markers, _) = c.complete("tx", 3).unwrap();
        assert!(!markers.commit);
        assert_eq!(markers.producer_epoch, 1);
        let (r, _) = c.init_producer_id("tx", 1000, None, 4, || Ok(9));
        assert_eq!(r, Ok((1, 2)));
        // The zombie (epoch 0) is fenced everywhere.
        assert_eq!(
            c.add_partitions("tx", 1, 0, &[tp("a", 0)], 5).0,
            ErrorCode::ProducerFenced
        );
        assert_eq!(c.end_txn("tx", 1, 0, false, 5).0, ErrorCode::ProducerFenced);
        assert_eq!(
            c.verify("tx", 1, 0, ("a", 0)),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            c.init_producer_id("tx", 1000, Some((1, 0)), 6, || Ok(9)).0,
            Err(ErrorCode::ProducerFenced)
        );
    }

    #[test]
    fn timeouts_abort_and_ids_expire() {
        let mut c = TxnCoordinator::new(TxnConfig {
            abort_check_interval_ms: 100,
            expiry_check_interval_ms: 100,
            id_expiration_ms: 10_000,
            ..TxnConfig::default()
        });
        c.init_producer_id("tx", 1000, None, 0, || Ok(1)).0.unwrap();
        c.add_partitions("tx", 1, 0, &[tp("a", 0)], 1000);
        assert!(c.tick(1500).complete.is_empty());
        let e = c.tick(2100);
        assert_eq!(e.complete, vec!["tx".to_string()]);
        let (markers, _) = c.complete("tx", 2100).unwrap();
        assert_eq!((markers.commit, markers.producer_epoch), (false, 1));
        // The timed-out producer re-initialises with its old epoch (KIP-360): accepted.
        assert_eq!(
            c.init_producer_id("tx", 1000, Some((1, 0)), 2200, || Ok(5))
                .0,
            Ok((1, 1))
        );
        let e = c.tick(2200 + 10_000);
        assert_eq!(e.records.len(), 1);
        assert!(e.records[0].value.is_none());
        assert!(c.get("tx").is_none());
    }
}
