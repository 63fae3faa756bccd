//! Per-partition segment logs in Kafka's on-disk layout.
//!
//! A [`PartitionLog`] owns a directory `<topic>-<partition>/` of segments
//! (`00000000000000000000.log|.index|.timeindex`), appends validated batches with the
//! broker-assigned offsets stamped in place, serves reads of whole batches (from memory maps,
//! without copying record bytes), rolls segments on `segment.bytes` / `segment.ms`, and
//! recovers after a crash by scanning the last segment batch by batch and truncating at the
//! first torn or corrupt batch.
//!
//! Architecture invariant: no sockets, no tasks, no clock. Time comes in as `now_ms`; the
//! broker serialises access (one writer per partition) and decides when to fsync, using
//! [`PartitionLog::flush_target`] so that no lock is held during the fsync.

pub mod cleaner;
pub mod deferred_sync;
pub mod durability;
pub mod index;
mod mmap;
pub mod producer_state;
pub mod segment;
pub mod txn_index;
pub mod verify;

use bytes::Bytes;
use deferred_sync::{FlushTarget, PendingSync};
use klamm_protocol::batch::{self, BatchHeader};
use producer_state::{Check, ProducerError, ProducerState};
use segment::{ScanReport, Segment, SegmentLimits};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
pub use txn_index::AbortedTxn;

/// Per-partition settings (the topic's effective config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll before a segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll once the first batch of the active segment is this old.
    pub segment_ms: u64,
    /// `index.interval.bytes`: bytes of log between sparse index entries.
    pub index_interval_bytes: u64,
    /// `segment.index.bytes`: preallocated size of an active segment's index files.
    pub segment_index_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 << 20,
        }
    }
}

impl LogConfig {
    fn limits(&self) -> SegmentLimits {
        SegmentLimits {
            index_interval_bytes: self.index_interval_bytes,
            index_bytes_max: self.segment_index_bytes.max(24),
            segment_bytes_max: self.segment_bytes,
        }
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    /// Last offset written, inclusive.
    pub last_offset: i64,
    /// The broker time written into the batches, when the topic uses LogAppendTime.
    pub log_append_time_ms: Option<i64>,
    /// The batches were retries of ones already in the log: nothing was written, and the
    /// offsets are the original ones.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("{0}")]
    Producer(ProducerError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A read planned under the partition lock ([`PartitionLog::plan_read`]), to run without it.
pub struct PlannedRead {
    views: Vec<segment::SegmentView>,
    from_offset: i64,
    upper_offset: i64,
    max_bytes: u64,
    at_least_one: bool,
}

impl PlannedRead {
    /// Whole batches as [`PartitionLog::read`] returns them, from the segments as they were
    /// when the read was planned.
    pub fn run(&self) -> Result<Bytes, LogError> {
        let from = self.from_offset;
        for view in &self.views {
            let bytes = view.read(from, self.upper_offset, self.max_bytes, self.at_least_one)?;
            // Empty but with batches at or after `from_offset`: a limit stopped the read.
            if !bytes.is_empty() || (from < view.next_offset() && view.size_bytes() > 0) {
                return Ok(bytes);
            }
        }
        Ok(Bytes::new())
    }
}

/// What opening a partition's directory found.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    /// Batches scanned with CRC checks (the segments recovered after an unclean shutdown).
    pub batches_checked: u64,
    pub truncated_bytes: u64,
    pub reason: Option<String>,
    /// Offset ranges `[from, to)` that no segment holds between two segments: a segment
    /// file lost or cut short, or (on a compacted topic) records the cleaner removed.
    pub offset_gaps: Vec<(i64, i64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("{0}")]
    Io(#[from] io::Error),
}

pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Keyed by base offset; the last one is the active segment.
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    producers: ProducerState,
    /// Aborted transactions (from the `.txnindex` files), ordered by marker offset.
    aborted: Vec<AbortedTxn>,
    /// Segments rolled since this log was opened (for metrics).
    rolls: u64,
    /// Appended to, rolled or recovered since opened or last closed: closing has work to do.
    modified: bool,
    /// Crash tests only (see [`durability`]): told of every segment write and fsync.
    observer: Option<Arc<dyn durability::WriteObserver>>,
    /// What compaction has done so far (persisted).
    cleaner: cleaner::CleanerState,
    /// The topic was deleted and `dir` moved aside: every write is refused from now on, so
    /// a request still holding this log cannot create files in a recreated topic's
    /// directory of the same name (see [`PartitionLog::retire`]).
    retired: bool,
    /// Rolls whose fsync the flusher has not yet reported done, oldest first, numbered by
    /// `rolls`.
    pending: Vec<PendingSync>,
    /// Every segment ending at or below this offset is durable (see [`deferred_sync`]).
    recovery_point: i64,
    /// The recovery-point file as last written, until a flush fsyncs it.
    recovery_point_file: Option<Arc<File>>,
}

impl PartitionLog {
    /// Creates a new, empty partition directory with its first segment. Nothing is fsync'd:
    /// an empty log has nothing to lose, and [`PartitionLog::open`] recreates a first segment
    /// that a crash took away. (The topic itself is durable through the broker's metadata.)
    pub fn create(dir: &Path, config: LogConfig) -> io::Result<PartitionLog> {
        fs::create_dir_all(dir)?;
        let first = Segment::create(dir, 0, config.limits())?;
        let mut segments = BTreeMap::new();
        segments.insert(0, first);
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: 0,
            producers: ProducerState::default(),
            aborted: Vec::new(),
            rolls: 0,
            modified: true,
            observer: None,
            cleaner: cleaner::CleanerState::default(),
            retired: false,
            pending: Vec::new(),
            recovery_point: 0,
            recovery_point_file: None,
        })
    }

    /// Opens an existing partition directory. After an unclean shutdown (`clean == false`)
    /// every segment ending above the recovery point (the last one always) is recovered:
    /// every batch CRC-checked, the file truncated at the first bad or torn batch, its
    /// indexes rebuilt; a sealed segment cut this way ends the log (the segments after it
    /// are deleted, as Kafka does). Segments below the recovery point were fsync'd after
    /// they were rolled and are trusted unless their indexes look wrong.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean: bool,
    ) -> io::Result<(PartitionLog, RecoveryReport)> {
        cleaner::recover_leftovers(dir)?;
        let mut bases: Vec<i64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".log")?;
                stem.parse::<i64>().ok()
            })
            .collect();
        bases.sort_unstable();
        // A missing or unreadable file (a directory from before it existed, or one torn
        // in a crash) means nothing is known durable: every segment is recovered.
        let recovery_point = deferred_sync::read_recovery_point(dir).unwrap_or(0);
        let mut report = RecoveryReport::default();
        let mut segments = BTreeMap::new();
        for (i, &base) in bases.iter().enumerate() {
            let active = i + 1 == bases.len();
            let ends_at = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let recover = !clean && (active || ends_at > recovery_point);
            let path = dir.join(segment::file_stem(base)).with_extension("log");
            let (seg, scan) = Segment::open(&path, base, config.limits(), active, recover)?;
            merge_scan(&mut report, &scan, &path);
            segments.insert(base, seg);
            if !active && scan.truncated_bytes > 0 {
                // Bytes were lost inside the log: what follows was never acknowledged (an
                // acknowledgement waits for the fsync of every earlier segment) and would
                // sit behind a hole, so the log ends here.
                report.truncated_bytes += drop_segments_after(dir, &bases[i + 1..])?;
                report.reason = Some(format!(
                    "{}: {} (and the {} segment(s) after it deleted)",
                    path.display(),
                    scan.reason.as_deref().unwrap_or("truncated"),
                    bases.len() - i - 1
                ));
                reopen_last_as_active(dir, &mut segments, config.limits())?;
                break;
            }
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0, config.limits())?);
        }
        // Gaps below the cleaner's first dirty offset are compaction's doing; others mean
        // a segment file was lost or cut short.
        let cleaner = cleaner::CleanerState::load(dir);
        let mut prev_end: Option<i64> = None;
        for (&base, seg) in &segments {
            if let Some(end) = prev_end.filter(|&end| end < base) {
                if base > cleaner.first_dirty_offset {
                    report.offset_gaps.push((end, base));
                }
            }
            prev_end = Some(seg.next_offset());
        }
        report.segments = segments.len();
        let first_base = *segments.keys().next().expect("at least one segment");
        let active_base = *segments.keys().next_back().expect("at least one segment");
        let log_end = segments
            .values()
            .next_back()
            .expect("at least one segment")
            .next_offset();
        // DeleteRecords may have moved the start inside the first segment.
        let log_start_offset = read_log_start(dir)
            .unwrap_or(first_base)
            .clamp(first_base, log_end);
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            producers: ProducerState::default(),
            aborted: Vec::new(),
            rolls: 0,
            modified: !clean,
            observer: None,
            cleaner,
            retired: false,
            pending: Vec::new(),
            // Sealed segments are now durable: trusted ones were synced after their roll,
            // recovered ones by their recovery.
            recovery_point: active_base,
            recovery_point_file: None,
        };
        log.load_producer_state()?;
        Ok((log, report))
    }

    /// The newest producer-state snapshot, brought up to the log end by replaying the batch
    /// headers written after it.
    /// The aborted-transaction index is loaded with it: entries before the snapshot come
    /// from the `.txnindex` files, later ones from the replayed ABORT markers, and the files
    /// of the replayed segments are rewritten to match.
    fn load_producer_state(&mut self) -> io::Result<()> {
        let (from, state) = producer_state::load_snapshot(&self.dir, self.log_end_offset());
        self.producers = state;
        let files = txn_index::bases(&self.dir);
        let start = self.log_start_offset;
        self.aborted = files
            .iter()
            .flat_map(|base| txn_index::read(&self.dir, *base))
            .filter(|e| e.last_offset < from && e.last_offset >= start)
            .collect();
        self.aborted.sort_by_key(|e| e.last_offset);
        self.aborted.dedup();
        // An entry is kept only if its ABORT marker is in the log: a compaction that dropped
        // the marker and crashed before rewriting the index files leaves a stale entry, which
        // would make read_committed readers skip that producer's later, committed data.
        let loaded = std::mem::take(&mut self.aborted);
        let before = loaded.len();
        self.aborted = loaded
            .into_iter()
            .filter(|e| self.has_abort_marker(e))
            .collect();
        let stale = self.aborted.len() < before;
        // Segment by segment, so that only one segment's headers are held at a time.
        let replayed: Vec<i64> = self
            .segments
            .values()
            .filter(|seg| seg.next_offset() > from)
            .map(|seg| seg.base_offset())
            .collect();
        for base in &replayed {
            let mut headers = Vec::new();
            self.segments[base].scan_from(from.max(*base), |h, bytes| {
                if h.producer_id >= 0 && h.base_offset >= from {
                    let marker = if h.is_control() {
                        batch::marker_of(bytes)
                    } else {
                        None
                    };
                    headers.push((*h, marker));
                }
                true
            })?;
            for (h, marker) in headers {
                match (h.is_control(), marker) {
                    (false, _) => self.producers.update(&h, h.base_offset, h.last_offset()),
                    (true, Some(commit)) => {
                        self.apply_marker(&h, commit, false);
                    }
                    (true, None) => {}
                }
            }
        }
        let orphans = files.iter().any(|b| !self.segments.contains_key(b));
        if orphans || stale {
            self.rewrite_txn_indexes()?;
        } else {
            for base in replayed {
                self.rewrite_txn_index(base)?;
            }
        }
        // Replayed batches are in the log already: only new changes need a snapshot.
        self.producers.mark_clean();
        Ok(())
    }

    /// Whether the batch at `entry.last_offset` is an ABORT marker of its producer.
    fn has_abort_marker(&self, entry: &AbortedTxn) -> bool {
        let Some((_, seg)) = self.segments.range(..=entry.last_offset).next_back() else {
            return false;
        };
        let mut found = false;
        let scanned = seg.scan_from(entry.last_offset, |h, bytes| {
            found = h.base_offset == entry.last_offset
                && h.is_control()
                && h.producer_id == entry.producer_id
                && batch::marker_of(bytes) == Some(false);
            false
        });
        scanned.is_ok() && found
    }

    /// Rewrites the `.txnindex` of the segment at `base` from the in-memory index.
    fn rewrite_txn_index(&self, base: i64) -> io::Result<()> {
        let next = self
            .segments
            .range(base + 1..)
            .next()
            .map_or(i64::MAX, |(b, _)| *b);
        let entries: Vec<AbortedTxn> = self
            .aborted
            .iter()
            .filter(|e| (base..next).contains(&e.last_offset))
            .copied()
            .collect();
        txn_index::rewrite(&self.dir, base, &entries)
    }

    /// Rewrites every segment's `.txnindex` and deletes those of segments that no longer
    /// exist (after a compaction merged segments).
    pub(crate) fn rewrite_txn_indexes(&self) -> io::Result<()> {
        for base in txn_index::bases(&self.dir) {
            if !self.segments.contains_key(&base) {
                txn_index::rewrite(&self.dir, base, &[])?;
            }
        }
        for base in self.segments.keys() {
            self.rewrite_txn_index(*base)?;
        }
        Ok(())
    }

    /// Ends the producer's transaction for a marker batch already in the log; an ABORT of a
    /// transaction with data here is added to the aborted index (and its file, if `persist`).
    fn apply_marker(&mut self, h: &BatchHeader, commit: bool, persist: bool) -> Option<AbortedTxn> {
        let first =
            self.producers
                .complete_txn(h.producer_id, h.producer_epoch, h.max_timestamp)?;
        if commit {
            return None;
        }
        let entry = AbortedTxn {
            producer_id: h.producer_id,
            first_offset: first,
            last_offset: h.base_offset,
            last_stable_offset: self
                .producers
                .first_unstable_offset()
                .unwrap_or(h.base_offset + 1),
        };
        self.aborted.push(entry);
        if persist {
            let base = self.active().base_offset();
            if let Err(e) = txn_index::append(&self.dir, base, &entry) {
                // Recovery rebuilds the file from the marker; the in-memory index is right.
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot append to the transaction index");
            }
        }
        Some(entry)
    }

    /// Writes a COMMIT or ABORT marker (a control batch) for producer `(id, epoch)` at the
    /// log end, ending its transaction in this partition. Returns the marker's offset.
    pub fn append_marker(
        &mut self,
        producer: (i64, i16),
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
        leader_epoch: i32,
    ) -> io::Result<i64> {
        self.check_live()?;
        let bytes = batch::encode_marker_batch(producer, commit, coordinator_epoch, now_ms);
        let header = BatchHeader::parse(&bytes).expect("a freshly encoded batch parses");
        let offset = self.log_end_offset();
        self.modified = true;
        if self.active().should_roll(
            bytes.len() as u64,
            now_ms,
            self.config.segment_bytes,
            self.config.segment_ms,
        ) {
            self.roll()?;
        }
        let mut stamped = header;
        stamped.base_offset = offset;
        stamped.partition_leader_epoch = leader_epoch;
        let prefix = batch::stamped_prefix(&bytes, offset, leader_epoch);
        self.active_mut().append(&prefix, &bytes[16..], &stamped)?;
        self.active_mut().note_append(now_ms);
        self.apply_marker(&stamped, commit, true);
        Ok(offset)
    }

    /// The first offset of the oldest transaction still open in this partition.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers.first_unstable_offset()
    }

    /// Aborted transactions that overlap `[from_offset, upper_offset)`:
    /// `(producer_id, first_offset)`, for read_committed fetches.
    pub fn aborted_transactions(&self, from_offset: i64, upper_offset: i64) -> Vec<(i64, i64)> {
        // Entries are ordered by marker offset: skip those that ended before the range.
        let start = self
            .aborted
            .partition_point(|e| e.last_offset < from_offset);
        self.aborted[start..]
            .iter()
            .filter(|e| e.first_offset < upper_offset)
            .map(|e| (e.producer_id, e.first_offset))
            .collect()
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    /// Appends the producer's batches (already validated by
    /// [`klamm_protocol::batch::validate_produce`]) at the log end, stamping offsets and the
    /// leader epoch in place. With `log_append_time` the batches' timestamps are set to
    /// `now_ms` (the one case that rewrites CRC-covered bytes).
    pub fn append(
        &mut self,
        records: &[u8],
        batches: &[(BatchHeader, Range<usize>)],
        now_ms: i64,
        leader_epoch: i32,
        log_append_time: bool,
    ) -> Result<AppendInfo, AppendError> {
        self.check_live()?;
        let base_offset = self.log_end_offset();
        let mut next = base_offset;
        let mut first_duplicate = None;
        self.modified = true;
        for (header, range) in batches {
            if header.producer_id >= 0 {
                match self
                    .producers
                    .check(header)
                    .map_err(AppendError::Producer)?
                {
                    Check::Duplicate(original) => {
                        first_duplicate.get_or_insert(original);
                        continue;
                    }
                    Check::Append => {}
                }
            }
            let bytes = &records[range.clone()];
            let size = bytes.len() as u64;
            if self.active().should_roll(
                size,
                now_ms,
                self.config.segment_bytes,
                self.config.segment_ms,
            ) {
                self.roll()?;
            }
            let mut stamped = *header;
            stamped.base_offset = next;
            stamped.partition_leader_epoch = leader_epoch;
            if log_append_time {
                let mut copy = bytes.to_vec();
                batch::stamp_offset_and_epoch(&mut copy, next, leader_epoch);
                batch::set_log_append_time(&mut copy, now_ms);
                stamped.max_timestamp = now_ms;
                let prefix: [u8; 16] = copy[..16].try_into().expect("16 bytes");
                self.active_mut().append(&prefix, &copy[16..], &stamped)?;
            } else {
                let prefix = batch::stamped_prefix(bytes, next, leader_epoch);
                self.active_mut().append(&prefix, &bytes[16..], &stamped)?;
            }
            self.active_mut().note_append(now_ms);
            self.producers.update(&stamped, next, stamped.last_offset());
            next = stamped.last_offset() + 1;
        }
        if next == base_offset {
            if let Some(original) = first_duplicate {
                return Ok(AppendInfo {
                    base_offset: original.base_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: None,
                    duplicate: true,
                });
            }
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time_ms: log_append_time.then_some(now_ms),
            duplicate: false,
        })
    }

    /// Seals the active segment (trims its indexes) and starts a new one at the log end.
    /// Nothing is fsync'd here, under the caller's lock: the sealed segment's files, the
    /// producer-state snapshot and the directory wait in the next [`Self::flush_target`]
    /// ([`Self::has_pending_rolls`] says there is such work).
    pub fn roll(&mut self) -> io::Result<()> {
        self.check_live()?;
        let next = self.log_end_offset();
        let log_path = self.active().path().to_path_buf();
        let mut files = self.active_mut().seal_deferred()?;
        self.active_mut().release_index_files();
        let snapshot = producer_state::write_snapshot_unsynced(&self.dir, next, &self.producers)?;
        self.producers.mark_clean();
        files.push(Arc::new(snapshot));
        let mut seg = Segment::create(&self.dir, next, self.config.limits())?;
        seg.set_write_observer(self.observer.clone());
        files.push(Arc::new(File::open(&self.dir)?));
        self.segments.insert(next, seg);
        self.rolls += 1;
        self.pending.push(PendingSync {
            seq: self.rolls,
            end_offset: next,
            log_path,
            files,
        });
        Ok(())
    }

    /// Rolled segments wait for an fsync: the caller should have a flush run soon.
    pub fn has_pending_rolls(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Segments ending at or below this offset are durable: a crash recovers only the rest.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Whole batches from the one holding `from_offset`, ending before `upper_offset`
    /// (exclusive; the high watermark or last stable offset) and within `max_bytes`, except
    /// that with `at_least_one` the first batch is returned even when larger (KIP-74).
    /// Reads stop at a segment boundary; the next fetch continues in the next segment.
    pub fn read(
        &self,
        from_offset: i64,
        upper_offset: i64,
        max_bytes: u64,
        at_least_one: bool,
    ) -> Result<Bytes, LogError> {
        self.plan_read(from_offset, upper_offset, max_bytes, at_least_one)?
            .run()
    }

    /// [`Self::read`] in two steps: the plan is taken under the caller's lock (offset check,
    /// index lookup, the segments the read may touch), and [`PlannedRead::run`] does the
    /// reading (header walk, CRC checks, page faults on cold data) without it.
    pub fn plan_read(
        &self,
        from_offset: i64,
        upper_offset: i64,
        max_bytes: u64,
        at_least_one: bool,
    ) -> Result<PlannedRead, LogError> {
        self.check_offset(from_offset)?;
        // Compaction can leave segments with no batch at all: the read skips over them, up
        // to the first segment holding batches at or after `from_offset`, where it ends.
        let holding = self.segments.range(..=from_offset).next_back();
        let later = self.segments.range(from_offset + 1..);
        let mut views = Vec::new();
        for (_, seg) in holding.into_iter().chain(later) {
            views.push(seg.view(from_offset));
            if from_offset < seg.next_offset() && seg.size_bytes() > 0 {
                break;
            }
        }
        Ok(PlannedRead {
            views,
            from_offset,
            upper_offset,
            max_bytes,
            at_least_one,
        })
    }

    fn check_offset(&self, offset: i64) -> Result<(), LogError> {
        if offset < self.log_start_offset || offset > self.log_end_offset() {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        Ok(())
    }

    /// The first record whose timestamp is at or after `timestamp_ms`, below `upper_offset`:
    /// `(offset, timestamp)`, or None when every record is older (Kafka's ListOffsets rule).
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
        upper_offset: i64,
    ) -> io::Result<Option<(i64, i64)>> {
        for seg in self.segments.values() {
            if seg.max_timestamp_ms() < timestamp_ms {
                continue;
            }
            let start = seg.search_start_for_timestamp(timestamp_ms);
            let mut found = None;
            seg.scan_from(start, |header, bytes| {
                if header.base_offset >= upper_offset {
                    return false;
                }
                if header.max_timestamp < timestamp_ms {
                    return true;
                }
                found = first_record_at_or_after(header, bytes, timestamp_ms, upper_offset);
                found.is_none()
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp below `upper_offset` (the earliest such record
    /// on ties): `(offset, timestamp)`.
    pub fn max_timestamp_record(&self, upper_offset: i64) -> io::Result<Option<(i64, i64)>> {
        let mut best: Option<(i64, i64)> = None;
        for seg in self.segments.values() {
            seg.scan_from(seg.base_offset(), |header, bytes| {
                if header.base_offset >= upper_offset {
                    return false;
                }
                if best.is_none_or(|(_, ts)| header.max_timestamp > ts) {
                    let records = batch::record_timestamps(bytes).unwrap_or_default();
                    best = records.into_iter().filter(|&(o, _)| o < upper_offset).fold(
                        best,
                        |b, (o, ts)| match b {
                            Some((_, bts)) if bts >= ts => b,
                            _ => Some((o, ts)),
                        },
                    );
                }
                true
            })?;
        }
        Ok(best)
    }

    /// The active segment's file and the log end offset it covers right now. The broker
    /// fsyncs the file outside any lock; everything below the returned offset is then
    /// durable (rolled segments were fsync'd when sealed).
    /// Crash tests only: reports every later segment write and fsync to `observer`.
    pub fn set_write_observer(&mut self, observer: Arc<dyn durability::WriteObserver>) {
        for seg in self.segments.values_mut() {
            seg.set_write_observer(Some(observer.clone()));
        }
        self.observer = Some(observer);
    }

    /// Fsyncs the rolled segments still pending and the active one here, under the
    /// caller's lock (the broker uses [`Self::flush_target`] instead, to fsync without
    /// holding it). Returns the offset below which everything is durable.
    pub fn sync(&mut self) -> io::Result<i64> {
        let target = self.flush_target();
        target.sync()?;
        self.mark_synced(&target);
        Ok(target.covered)
    }

    /// What an fsync must cover to make everything appended so far durable: the pending
    /// rolls' files, then the active segment. The caller runs [`FlushTarget::sync`] without
    /// the lock, then reports with [`Self::mark_synced`].
    pub fn flush_target(&self) -> FlushTarget {
        let mut files: Vec<Arc<File>> = self
            .pending
            .iter()
            .flat_map(|p| p.files.iter().cloned())
            .collect();
        files.push(self.active().file());
        files.extend(self.recovery_point_file.clone());
        FlushTarget {
            files,
            active_path: self.active().path().to_path_buf(),
            rolls_upto_seq: self.pending.last().map_or(0, |p| p.seq),
            recovery_point_file: self.recovery_point_file.clone(),
            observed: self.observer.is_some(),
            covered: self.log_end_offset(),
        }
    }

    /// `target` was fsync'd: its rolls are done, and the recovery point moves to the end of
    /// the newest segment among them (persisted, unless the topic was deleted).
    pub fn mark_synced(&mut self, target: &FlushTarget) {
        let done = self
            .pending
            .partition_point(|p| p.seq <= target.rolls_upto_seq);
        let synced: Vec<PendingSync> = self.pending.drain(..done).collect();
        if let (Some(written), Some(synced)) =
            (&self.recovery_point_file, &target.recovery_point_file)
        {
            if Arc::ptr_eq(written, synced) {
                self.recovery_point_file = None;
            }
        }
        if let Some(o) = &self.observer {
            for p in &synced {
                o.synced(&p.log_path);
            }
            o.synced(&target.active_path);
        }
        let Some(end) = synced.last().map(|p| p.end_offset) else {
            return;
        };
        if end > self.recovery_point {
            self.recovery_point = end;
            if !self.retired {
                match deferred_sync::write_recovery_point(&self.dir, end) {
                    Ok(file) => self.recovery_point_file = Some(Arc::new(file)),
                    // Harmless: a stale recovery point only makes recovery check more.
                    Err(e) => {
                        tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the recovery point")
                    }
                }
            }
        }
    }

    /// Flushes and trims the active segment's indexes so a clean restart can trust them.
    /// Nothing is written for a log untouched since it was opened.
    pub fn close(&mut self) -> io::Result<()> {
        if !self.modified || self.retired {
            return Ok(());
        }
        self.sync()?;
        self.active_mut().seal()?;
        if self.producers.is_dirty() {
            producer_state::write_snapshot(&self.dir, self.log_end_offset(), &self.producers)?;
            self.producers.mark_clean();
        }
        self.modified = false;
        Ok(())
    }

    /// The idempotent producers known to this partition.
    pub fn producer_state(&self) -> &ProducerState {
        &self.producers
    }

    /// Forgets producers silent for `expiration_ms` (`producer.id.expiration.ms`).
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) {
        self.producers.expire(now_ms, expiration_ms);
    }

    /// Retention (`cleanup.policy=delete`): deletes whole sealed segments whose newest
    /// record is older than `retention_ms` (by its max timestamp, as Kafka), or that bring the
    /// log over `retention_bytes`; -1 disables either rule. The active segment is never
    /// deleted, so the log start only moves to a segment boundary. Returns the segments
    /// deleted. Readers holding bytes of a deleted segment keep their mapping until done.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> io::Result<usize> {
        if self.retired {
            return Ok(0);
        }
        // An active segment whose newest record has expired is rolled first (as Kafka does),
        // so that an idle topic's data does not outlive its retention.
        let active = self.active();
        let expired = |max_ts: i64| {
            retention_ms >= 0 && max_ts >= 0 && max_ts < now_ms.saturating_sub(retention_ms)
        };
        if active.size_bytes() > 0 && expired(active.max_timestamp_ms()) {
            self.roll()?;
        }
        let mut size = self.size_bytes() as i64;
        let mut doomed = Vec::new();
        let active_base = self.active().base_offset();
        for (base, seg) in &self.segments {
            if *base == active_base {
                break;
            }
            let too_old = expired(seg.max_timestamp_ms());
            let too_big = retention_bytes >= 0 && size > retention_bytes;
            if !(too_old || too_big) {
                break;
            }
            size -= seg.size_bytes() as i64;
            doomed.push(*base);
        }
        for base in &doomed {
            let seg = self.segments.remove(base).expect("listed above");
            remove_segment_files(&self.dir, *base)?;
            drop(seg);
        }
        if !doomed.is_empty() {
            let first = *self
                .segments
                .keys()
                .next()
                .expect("the active segment remains");
            self.log_start_offset = self.log_start_offset.max(first);
            self.prune_aborted();
            sync_dir(&self.dir)?;
        }
        Ok(doomed.len())
    }

    /// DeleteRecords: makes `offset` the log start (no-op if it is already further), deletes
    /// the sealed segments wholly below it, and persists the new start before returning, so
    /// deleted records never come back after a restart. The caller checks `offset` against
    /// the high watermark.
    pub fn delete_records_before(&mut self, offset: i64) -> io::Result<i64> {
        self.check_live()?;
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        let offset = offset.min(self.log_end_offset());
        write_log_start(&self.dir, offset)?;
        self.log_start_offset = offset;
        let active_base = self.active().base_offset();
        let doomed: Vec<i64> = self
            .segments
            .iter()
            .filter(|(base, seg)| **base != active_base && seg.next_offset() <= offset)
            .map(|(base, _)| *base)
            .collect();
        for base in doomed {
            self.segments.remove(&base);
            let _ = remove_segment_files(&self.dir, base);
        }
        self.prune_aborted();
        Ok(offset)
    }

    /// Forgets aborted transactions whose marker is below the log start.
    fn prune_aborted(&mut self) {
        let start = self.log_start_offset;
        self.aborted.retain(|e| e.last_offset >= start);
    }

    /// Applies a new config to future appends and rolls.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
        let interval = config.index_interval_bytes;
        self.active_mut().set_index_interval(interval);
    }

    pub fn config(&self) -> LogConfig {
        self.config
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The topic was deleted: its directory now lives at `moved_to` (or stayed put, if
    /// the move failed). The caller holds this log's lock while it moves the directory, so
    /// no write is in flight; afterwards every write (append, marker, roll, retention,
    /// DeleteRecords, compaction) is refused with [`PartitionLog::is_retired`] true, and
    /// reads keep working on the open files until the last holder lets go.
    pub fn retire(&mut self, moved_to: Option<PathBuf>) {
        if let Some(dir) = moved_to {
            self.dir = dir;
        }
        self.retired = true;
    }

    pub fn is_retired(&self) -> bool {
        self.retired
    }

    fn check_live(&self) -> io::Result<()> {
        if self.retired {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the partition's topic was deleted",
            ));
        }
        Ok(())
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// The offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size_bytes()).sum()
    }
    /// Segments rolled since the log was opened.
    pub fn rolls(&self) -> u64 {
        self.rolls
    }
    /// Descriptors the log's segments hold: one per sealed segment, three for the active.
    pub fn open_files(&self) -> usize {
        self.segments.values().map(Segment::open_files).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

fn first_record_at_or_after(
    header: &BatchHeader,
    bytes: &[u8],
    timestamp_ms: i64,
    upper_offset: i64,
) -> Option<(i64, i64)> {
    match batch::record_timestamps(bytes) {
        Ok(records) => records
            .into_iter()
            .find(|&(o, ts)| ts >= timestamp_ms && o < upper_offset),
        // Undecodable records (cannot happen for batches that passed their CRC, barring a
        // codec bug): fall back to the batch's first offset, which is never too late.
        Err(_) => Some((header.base_offset, header.max_timestamp)),
    }
}

fn merge_scan(report: &mut RecoveryReport, scan: &ScanReport, path: &Path) {
    report.batches_checked += scan.batches;
    report.truncated_bytes += scan.truncated_bytes;
    if let Some(reason) = &scan.reason {
        report.reason = Some(format!("{}: {reason}", path.display()));
    }
}

const LOG_START_FILE: &str = "log-start-offset";

/// Deletes a segment's files: log and indexes (as the cleaner does), and its
/// aborted-transaction index; missing ones are fine.
fn remove_segment_files(dir: &Path, base: i64) -> io::Result<()> {
    cleaner::remove_segment_files(dir, base)?;
    let txn_index = dir
        .join(segment::file_stem(base))
        .with_extension("txnindex");
    match fs::remove_file(txn_index) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Recovery dropped the segments after the last one in `segments`, which was opened as
/// sealed: opens it again as the active segment (recovered, writable indexes).
fn reopen_last_as_active(
    dir: &Path,
    segments: &mut BTreeMap<i64, Segment>,
    limits: SegmentLimits,
) -> io::Result<()> {
    let (&base, _) = segments.iter().next_back().expect("one segment is left");
    segments.remove(&base);
    let path = dir.join(segment::file_stem(base)).with_extension("log");
    let (seg, _) = Segment::open(&path, base, limits, true, true)?;
    segments.insert(base, seg);
    sync_dir(dir)
}

/// Recovery found a sealed segment cut short: deletes the segments at `bases` (all after
/// it). Returns the bytes of log deleted.
fn drop_segments_after(dir: &Path, bases: &[i64]) -> io::Result<u64> {
    let mut bytes = 0;
    for &base in bases {
        let path = dir.join(segment::file_stem(base)).with_extension("log");
        bytes += fs::metadata(&path).map_or(0, |m| m.len());
        remove_segment_files(dir, base)?;
    }
    Ok(bytes)
}

fn read_log_start(dir: &Path) -> Option<i64> {
    read_offset_file(&dir.join(LOG_START_FILE))
}

/// An offset kept as text in a file of its own (`log-start-offset`,
/// `recovery-point-offset`); None when the file is missing or not a number.
fn read_offset_file(path: &Path) -> Option<i64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Persists the log start offset (write a temp file, fsync, rename, fsync the directory).
fn write_log_start(dir: &Path, offset: i64) -> io::Result<()> {
    let tmp = dir.join(format!("{LOG_START_FILE}.tmp"));
    fs::write(&tmp, format!("{offset}\n"))?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, dir.join(LOG_START_FILE))?;
    sync_dir(dir)
}

/// fsyncs a directory so that file creations and renames in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
