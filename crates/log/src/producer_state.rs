//! Idempotent-producer state of one partition (KIP-98): per producer id, its epoch and the
//! sequence ranges and offsets of its last five batches. A retried batch is recognised and
//! answered with its original offsets instead of being written twice; a gap in sequences is
//! refused.
//!
//! Transactional producers (KIP-98) also have an ongoing transaction here: the offset of its
//! first batch, until a COMMIT or ABORT marker ends it. The smallest such offset is the first
//! unstable offset, which bounds the last stable offset that read_committed consumers see.
//!
//! Persisted as `<offset>.snapshot` files (state after every batch below `<offset>`),
//! written when a segment rolls and at clean shutdown; recovery loads the newest snapshot
//! and replays the batch headers after it, so retries across a restart still do not
//! duplicate.

use klamm_protocol::batch::BatchHeader;
use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Batches remembered per producer: Kafka's producers keep at most five in flight.
pub const BATCHES_PER_PRODUCER: usize = 5;
const SNAPSHOT_MAGIC: &[u8; 8] = b"KLMMPS02";
/// The format before transactions: read, never written.
const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"KLMMPS01";
/// `base_sequence` of batches the broker writes for a producer (markers, TxnOffsetCommit).
pub const NO_SEQUENCE: i32 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRecord {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchRecord>,
    pub last_timestamp_ms: i64,
    /// First offset of the producer's ongoing transaction in this partition.
    pub current_txn_first_offset: Option<i64>,
}

/// Why a batch from an idempotent producer is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProducerError {
    /// An epoch older than the producer's current one: a zombie (INVALID_PRODUCER_EPOCH).
    StaleEpoch { current: i16, got: i16 },
    /// Not the next sequence (OUT_OF_ORDER_SEQUENCE_NUMBER).
    OutOfOrder { expected: i32, got: i32 },
    /// No state for this producer and a sequence that is not a fresh start
    /// (UNKNOWN_PRODUCER_ID: its state expired or was never here).
    UnknownProducer { producer_id: i64 },
}

impl std::fmt::Display for ProducerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProducerError::StaleEpoch { current, got } => write!(
                f,
                "producer epoch {got} is older than the current {current}"
            ),
            ProducerError::OutOfOrder { expected, got } => {
                write!(f, "expected sequence {expected}, got {got}")
            }
            ProducerError::UnknownProducer { producer_id } => {
                write!(f, "no state for producer {producer_id}")
            }
        }
    }
}

/// What to do with a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Append,
    /// A retry of a batch already in the log, at these offsets.
    Duplicate(BatchRecord),
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn last_seq(header: &BatchHeader) -> i32 {
    // Sequences wrap at i32::MAX like Kafka's.
    ((header.base_sequence as i64 + header.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerState {
    producers: BTreeMap<i64, ProducerEntry>,
    /// Changed since the last snapshot was written or loaded.
    dirty: bool,
}

impl ProducerState {
    /// Decides what to do with a batch from an idempotent producer (`producer_id >= 0`).
    pub fn check(&self, header: &BatchHeader) -> Result<Check, ProducerError> {
        let first = header.base_sequence;
        if first == NO_SEQUENCE && header.is_transactional() {
            // The broker's own transactional write (TxnOffsetCommit): only the epoch counts.
            return match self.producers.get(&header.producer_id) {
                Some(e) if header.producer_epoch < e.epoch => Err(ProducerError::StaleEpoch {
                    current: e.epoch,
                    got: header.producer_epoch,
                }),
                _ => Ok(Check::Append),
            };
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return if first == 0 {
                Ok(Check::Append)
            } else {
                Err(ProducerError::UnknownProducer {
                    producer_id: header.producer_id,
                })
            };
        };
        if header.producer_epoch < entry.epoch {
            return Err(ProducerError::StaleEpoch {
                current: entry.epoch,
                got: header.producer_epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            // A new epoch starts its sequences from zero.
            return if first == 0 {
                Ok(Check::Append)
            } else {
                Err(ProducerError::OutOfOrder {
                    expected: 0,
                    got: first,
                })
            };
        }
        let last = last_seq(header);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(Check::Duplicate(*dup));
        }
        let expected = entry.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if first != expected {
            return Err(ProducerError::OutOfOrder {
                expected,
                got: first,
            });
        }
        Ok(Check::Append)
    }

    /// Records a batch written at `[base_offset, last_offset]`.
    pub fn update(&mut self, header: &BatchHeader, base_offset: i64, last_offset: i64) {
        if header.producer_id < 0 {
            return;
        }
        self.dirty = true;
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if header.base_sequence != NO_SEQUENCE {
            entry.batches.push_back(BatchRecord {
                first_seq: header.base_sequence,
                last_seq: last_seq(header),
                base_offset,
                last_offset,
            });
            while entry.batches.len() > BATCHES_PER_PRODUCER {
                entry.batches.pop_front();
            }
        }
        if header.is_transactional() && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(base_offset);
        }
        entry.last_timestamp_ms = entry.last_timestamp_ms.max(header.max_timestamp);
    }

    /// Ends the producer's ongoing transaction with a marker of `epoch` written at
    /// `marker_offset`. Returns the transaction's first offset, if one was ongoing. A marker
    /// of a newer epoch (the coordinator fenced the producer) makes that epoch current.
    pub fn complete_txn(&mut self, producer_id: i64, epoch: i16, timestamp_ms: i64) -> Option<i64> {
        self.dirty = true;
        let entry = self.producers.entry(producer_id).or_default();
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_timestamp_ms = entry.last_timestamp_ms.max(timestamp_ms);
        entry.current_txn_first_offset.take()
    }

    /// The first offset of the oldest ongoing transaction: the last stable offset cannot pass it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.current_txn_first_offset)
            .min()
    }

    /// Forgets producers silent for longer than `expiration_ms` (`producer.id.expiration.ms`).
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            // A producer inside a transaction stays until the coordinator ends it.
            e.current_txn_first_offset.is_some()
                || e.last_timestamp_ms.saturating_add(expiration_ms) >= now_ms
        });
        self.dirty |= self.producers.len() != before;
    }

    /// Whether the state changed since the last snapshot.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn mark_clean(&mut self) {
        self.dirty = false;
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn producers(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.producers.len() * 64);
        b.extend_from_slice(SNAPSHOT_MAGIC);
        b.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (pid, e) in &self.producers {
            b.extend_from_slice(&pid.to_be_bytes());
            b.extend_from_slice(&e.epoch.to_be_bytes());
            b.extend_from_slice(&e.last_timestamp_ms.to_be_bytes());
            b.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
            b.push(e.batches.len() as u8);
            for r in &e.batches {
                b.extend_from_slice(&r.first_seq.to_be_bytes());
                b.extend_from_slice(&r.last_seq.to_be_bytes());
                b.extend_from_slice(&r.base_offset.to_be_bytes());
                b.extend_from_slice(&r.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// Parses a snapshot; `None` if it is damaged (the caller then rebuilds from the log).
    fn decode(bytes: &[u8]) -> Option<ProducerState> {
        let (body, crc) = bytes.split_at(bytes.len().checked_sub(4)?);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let with_txn = if body.starts_with(SNAPSHOT_MAGIC) {
            true
        } else if body.starts_with(SNAPSHOT_MAGIC_V1) {
            false
        } else {
            return None;
        };
        let mut r = &body[SNAPSHOT_MAGIC.len()..];
        let mut take = |n: usize| -> Option<&[u8]> {
            if r.len() < n {
                return None;
            }
            let (head, tail) = r.split_at(n);
            r = tail;
            Some(head)
        };
        let count = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut state = ProducerState::default();
        for _ in 0..count {
            let pid = i64::from_be_bytes(take(8)?.try_into().ok()?);
            let epoch = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let last_timestamp_ms = i64::from_be_bytes(take(8)?.try_into().ok()?);
            let current_txn_first_offset = if with_txn {
                Some(i64::from_be_bytes(take(8)?.try_into().ok()?)).filter(|o| *o >= 0)
            } else {
                None
            };
            let n = take(1)?[0] as usize;
            let mut batches = VecDeque::with_capacity(n.min(BATCHES_PER_PRODUCER));
            for _ in 0..n {
                batches.push_back(BatchRecord {
                    first_seq: i32::from_be_bytes(take(4)?.try_into().ok()?),
                    last_seq: i32::from_be_bytes(take(4)?.try_into().ok()?),
                    base_offset: i64::from_be_bytes(take(8)?.try_into().ok()?),
                    last_offset: i64::from_be_bytes(take(8)?.try_into().ok()?),
                });
            }
            state.producers.insert(
                pid,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp_ms,
                    current_txn_first_offset,
                },
            );
        }
        Some(state)
    }
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.snapshot"))
}

/// Snapshot offsets present in `dir`, ascending.
fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    let mut offsets: Vec<i64> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .into_string()
                .ok()?
                .strip_suffix(".snapshot")?
                .parse()
                .ok()
        })
        .collect();
    offsets.sort_unstable();
    offsets
}

/// Writes the state as of `offset` (write a temp file, fsync, rename) and keeps only the
/// two newest snapshots.
pub fn write_snapshot(dir: &Path, offset: i64, state: &ProducerState) -> io::Result<()> {
    write_snapshot_unsynced(dir, offset, state)?.sync_all()
}

/// Writes the state as of `offset` (a temp file, renamed) and keeps only the two newest
/// snapshots, leaving the fsync to the caller: returns the written file's descriptor. A
/// snapshot lost or torn in a crash is harmless: it carries a CRC, a damaged one is
/// ignored, and the state is rebuilt from an older one and the log.
pub fn write_snapshot_unsynced(
    dir: &Path,
    offset: i64,
    state: &ProducerState,
) -> io::Result<fs::File> {
    let tmp = dir.join(format!("{offset:020}.snapshot.tmp"));
    fs::write(&tmp, state.encode())?;
    let file = fs::File::open(&tmp)?;
    fs::rename(&tmp, snapshot_path(dir, offset))?;
    let offsets = snapshot_offsets(dir);
    for old in offsets.iter().take(offsets.len().saturating_sub(2)) {
        let _ = fs::remove_file(snapshot_path(dir, *old));
    }
    Ok(file)
}

/// The newest readable snapshot at or below `max_offset`: `(offset, state)`. Snapshots
/// above `max_offset` (the log was truncated below them) and damaged ones are deleted.
pub fn load_snapshot(dir: &Path, max_offset: i64) -> (i64, ProducerState) {
    for offset in snapshot_offsets(dir).into_iter().rev() {
        let path = snapshot_path(dir, offset);
        if offset > max_offset {
            let _ = fs::remove_file(&path);
            continue;
        }
        match fs::read(&path).ok().and_then(|b| ProducerState::decode(&b)) {
            Some(state) => return (offset, state),
            None => {
                tracing::warn!(path = %path.display(), "damaged producer-state snapshot ignored; rebuilding from the log");
                let _ = fs::remove_file(&path);
            }
        }
    }
    (0, ProducerState::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        let mut h =
            BatchHeader::parse(&klamm_protocol::batch::build_test_batch(records, 1, 0)).unwrap();
        h.producer_id = pid;
        h.producer_epoch = epoch;
        h.base_sequence = seq;
        h
    }

    #[test]
    fn sequences_duplicates_and_epochs() {
        let mut s = ProducerState::default();
        let b0 = header(7, 0, 0, 3);
        assert_eq!(s.check(&b0), Ok(Check::Append));
        s.update(&b0, 100, 102);
        assert_eq!(
            s.check(&b0),
            Ok(Check::Duplicate(BatchRecord {
                first_seq: 0,
                last_seq: 2,
                base_offset: 100,
                last_offset: 102
            }))
        );
        assert_eq!(
            s.check(&header(7, 0, 5, 1)),
            Err(ProducerError::OutOfOrder {
                expected: 3,
                got: 5
            })
        );
        let b1 = header(7, 0, 3, 1);
        assert_eq!(s.check(&b1), Ok(Check::Append));
        s.update(&b1, 103, 103);
        // A new epoch restarts at sequence 0; the old epoch is then fenced.
        assert_eq!(
            s.check(&header(7, 1, 4, 1)),
            Err(ProducerError::OutOfOrder {
                expected: 0,
                got: 4
            })
        );
        let e1 = header(7, 1, 0, 1);
        s.update(&e1, 104, 104);
        assert_eq!(
            s.check(&header(7, 0, 4, 1)),
            Err(ProducerError::StaleEpoch { current: 1, got: 0 })
        );
        assert_eq!(
            s.check(&header(9, 0, 3, 1)),
            Err(ProducerError::UnknownProducer { producer_id: 9 })
        );
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut s = ProducerState::default();
        for i in 0..7 {
            s.update(&header(1, 0, i, 1), i as i64, i as i64);
        }
        assert_eq!(
            s.check(&header(1, 0, 6, 1)),
            Ok(Check::Duplicate(BatchRecord {
                first_seq: 6,
                last_seq: 6,
                base_offset: 6,
                last_offset: 6
            }))
        );
        assert_eq!(
            s.check(&header(1, 0, 1, 1)),
            Err(ProducerError::OutOfOrder {
                expected: 7,
                got: 1
            })
        );
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::default();
        s.update(&header(1, 2, 0, 2), 0, 1);
        s.mark_clean(); // a loaded snapshot is clean
        write_snapshot(dir.path(), 2, &s).unwrap();
        write_snapshot(dir.path(), 5, &s).unwrap();
        write_snapshot(dir.path(), 9, &s).unwrap();
        assert_eq!(snapshot_offsets(dir.path()), vec![5, 9]);
        assert_eq!(load_snapshot(dir.path(), 100), (9, s.clone()));
        // A snapshot past the (truncated) log end is dropped.
        assert_eq!(load_snapshot(dir.path(), 6), (5, s.clone()));
        let path = snapshot_path(dir.path(), 5);
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert_eq!(
            load_snapshot(dir.path(), 100),
            (0, ProducerState::default())
        );
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::*;

    #[test]
    fn silent_producers_are_forgotten() {
        let mut b = klamm_protocol::batch::build_test_batch(1, 1, 1_000);
        b[43..51].copy_from_slice(&3i64.to_be_bytes());
        b[53..57].copy_from_slice(&0i32.to_be_bytes());
        let h = BatchHeader::parse(&b).unwrap();
        let mut s = ProducerState::default();
        s.update(&h, 0, 0);
        s.mark_clean();
        s.expire(1_000 + 500, 1_000);
        assert_eq!((s.len(), s.is_dirty()), (1, false));
        s.expire(1_000 + 1_001, 1_000);
        assert_eq!((s.len(), s.is_dirty()), (0, true));
    }
}
