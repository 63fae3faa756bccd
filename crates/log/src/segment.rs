//! One segment: a `.log` file of whole batches plus its `.index` and `.timeindex`.
//!
//! A segment holds offsets `[base_offset, next_offset)`. Bytes `[0, size_bytes)` of the log
//! file are whole, CRC-checked batches (checked on append, and again by recovery after an
//! unclean shutdown); nothing past `size_bytes` is ever read.

use crate::durability::WriteObserver;
use crate::index::{OffsetIndex, TimeIndex};
use crate::mmap;
use bytes::Bytes;
use klamm_protocol::batch::{self, BatchHeader};
use memmap2::Mmap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Kafka's file name for a segment starting at `base_offset`: 20 zero-padded digits.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// What recovery found in a segment's log file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    pub batches: u64,
    /// Bytes cut from the end: a torn write or a batch failing its checks.
    pub truncated_bytes: u64,
    /// Why the cut was made, for the log.
    pub reason: Option<String>,
}

/// Settings a segment needs from its partition's config.
#[derive(Debug, Clone, Copy)]
pub struct SegmentLimits {
    /// Bytes of log between two index entries (`index.interval.bytes`).
    pub index_interval_bytes: u64,
    /// Preallocated size of an active segment's index files (`segment.index.bytes`).
    pub index_bytes_max: u64,
    /// Read-map length for an active segment (`segment.bytes`), so it can grow unmapped.
    pub segment_bytes_max: u64,
}

/// A map of the log file shared with the `Bytes` handed to readers, so a fetch response can
/// point into the page cache instead of copying record bytes.
struct MappedLog(Arc<Mmap>, std::ops::Range<usize>);

impl AsRef<[u8]> for MappedLog {
    fn as_ref(&self) -> &[u8] {
        &self.0[self.1.clone()]
    }
}

pub struct Segment {
    base_offset: i64,
    path: Arc<Path>,
    log: Arc<File>,
    read_map: Option<Arc<Mmap>>,
    size_bytes: u64,
    next_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index_entry: u64,
    index_interval_bytes: u64,
    /// Largest batch max-timestamp in the segment, -1 when empty.
    max_timestamp_ms: i64,
    /// Max timestamp of the first batch: `segment.ms` rolls are measured from it (as Kafka).
    first_batch_timestamp_ms: Option<i64>,
    /// When this process first appended here: the age of a segment whose first batch has no
    /// timestamp (-1: magic 0 data up-converted, or a producer's -1), as Kafka ages such a
    /// segment from its creation. None until the first append (an empty segment never rolls).
    first_append_ms: Option<i64>,
    /// Bytes from the start known to be whole, CRC-valid batches: checked by recovery,
    /// validated at append, or verified by a read. Bytes beyond it (written by an earlier
    /// run and not recovered, e.g. after a clean shutdown) are CRC-checked as they are first
    /// read, so on-disk damage is refused instead of served.
    verified_bytes: Arc<AtomicU64>,
    /// Corruption found by a read has been logged (once per segment and run).
    corruption_reported: Arc<AtomicBool>,
    /// Crash tests only (see [`crate::durability`]).
    observer: Option<Arc<dyn WriteObserver>>,
}

impl Segment {
    /// Creates an empty active segment in `dir`.
    pub fn create(dir: &Path, base_offset: i64, limits: SegmentLimits) -> io::Result<Segment> {
        let stem = dir.join(file_stem(base_offset));
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(stem.with_extension("log"))?;
        let mut seg = Segment::from_parts(stem, log, base_offset, limits, true)?;
        seg.offset_index.reset(limits.index_bytes_max)?;
        seg.time_index.reset(limits.index_bytes_max)?;
        Ok(seg)
    }

    fn from_parts(
        stem: PathBuf,
        log: File,
        base_offset: i64,
        limits: SegmentLimits,
        active: bool,
    ) -> io::Result<Segment> {
        let size_bytes = log.metadata()?.len();
        let prealloc = if active { limits.index_bytes_max } else { 0 };
        let mut seg = Segment {
            base_offset,
            path: stem.with_extension("log").into(),
            log: Arc::new(log),
            read_map: None,
            size_bytes,
            next_offset: base_offset,
            offset_index: OffsetIndex::open(&stem.with_extension("index"), prealloc)?,
            time_index: TimeIndex::open(&stem.with_extension("timeindex"), prealloc)?,
            bytes_since_index_entry: 0,
            index_interval_bytes: limits.index_interval_bytes,
            max_timestamp_ms: -1,
            first_batch_timestamp_ms: None,
            first_append_ms: None,
            verified_bytes: Arc::new(AtomicU64::new(0)),
            corruption_reported: Arc::new(AtomicBool::new(false)),
            observer: None,
        };
        let map_len = if active {
            limits.segment_bytes_max.max(size_bytes)
        } else {
            size_bytes
        };
        seg.remap(map_len)?;
        Ok(seg)
    }

    /// Opens an existing segment. A sealed segment (not the last) is trusted if its indexes
    /// look sane; the last one is recovered (scanned, CRC-checked, truncated at the first bad
    /// batch, indexes rebuilt) unless the broker shut down cleanly.
    pub fn open(
        log_path: &Path,
        base_offset: i64,
        limits: SegmentLimits,
        active: bool,
        recover: bool,
    ) -> io::Result<(Segment, ScanReport)> {
        let log = OpenOptions::new().read(true).write(true).open(log_path)?;
        let stem = log_path.with_extension("");
        let mut seg = Segment::from_parts(stem, log, base_offset, limits, active)?;
        let reindex = recover || !seg.indexes_look_sane();
        let mut report = seg.rebuild(limits, active, reindex)?;
        let time_index_overshoots = seg
            .time_index
            .last()
            .is_some_and(|(_, rel)| seg.base_offset + rel as i64 >= seg.next_offset);
        if !reindex && time_index_overshoots {
            report = seg.rebuild(limits, active, true)?;
        }
        if reindex {
            // Every batch was CRC-checked by the rebuild.
            seg.verified_bytes.store(seg.size_bytes, Ordering::Relaxed);
        }
        if recover {
            // What recovery kept may still be only in the page cache (a process crash, not
            // a power cut): make it durable before it is served and counted as recovered.
            seg.log.sync_data()?;
        }
        Ok((seg, report))
    }

    fn remap(&mut self, len_bytes: u64) -> io::Result<()> {
        self.read_map = if len_bytes == 0 {
            None
        } else {
            Some(Arc::new(mmap::map_read(&self.log, len_bytes as usize)?))
        };
        Ok(())
    }

    /// Structural check of the indexes against the log, before trusting them at open:
    /// entries ordered and inside the file, and the last offset entry pointing at the batch
    /// it names. A damaged index (bit rot, a torn write) fails it and is rebuilt from the log.
    fn indexes_look_sane(&self) -> bool {
        if !self.offset_index.is_consistent(self.size_bytes) {
            return false;
        }
        match self.offset_index.last() {
            // A log with batches always has a first index entry; an empty index next to
            // one (a crash right after a compaction swap) is rebuilt.
            None => return self.size_bytes == 0,
            Some((rel, pos)) => {
                let head = self
                    .read_bytes(pos as u64, (self.size_bytes - pos as u64).min(61))
                    .ok();
                match head.as_deref().and_then(BatchHeader::parse) {
                    Some(h) if h.magic == 2 && h.base_offset == self.base_offset + rel as i64 => {}
                    _ => return false,
                }
            }
        }
        // The upper bound on time entries' offsets is checked once the tail has been
        // walked and the segment's next offset is known (see `open`).
        self.time_index.is_consistent(u32::MAX)
    }

    /// Rebuilds in-memory state from the log file. With `reindex` (recovery) every batch from
    /// the start is CRC-checked, the file truncated at the first bad one and the indexes
    /// rebuilt; otherwise the indexes are trusted and only the tail after the last index
    /// entry is walked.
    fn rebuild(
        &mut self,
        limits: SegmentLimits,
        active: bool,
        reindex: bool,
    ) -> io::Result<ScanReport> {
        let mut report = ScanReport::default();
        let mut pos = 0usize;
        self.next_offset = self.base_offset;
        self.max_timestamp_ms = -1;
        self.first_batch_timestamp_ms = None;
        self.bytes_since_index_entry = 0;
        if reindex {
            self.offset_index.reset(limits.index_bytes_max)?;
            self.time_index.reset(limits.index_bytes_max)?;
        } else {
            if let Some(first) = BatchHeader::parse(&self.read_bytes(0, self.size_bytes.min(61))?) {
                self.first_batch_timestamp_ms = Some(first.max_timestamp);
            }
            if let Some((ts, _)) = self.time_index.last() {
                self.max_timestamp_ms = ts;
            }
            if let Some((rel, p)) = self.offset_index.last() {
                pos = p as usize;
                self.next_offset = self.base_offset + rel as i64;
            }
        }
        let data = self.read_bytes(0, self.size_bytes)?;
        while pos < data.len() {
            let header = if reindex {
                match batch::check_batch(&data[pos..]) {
                    Ok(h) if h.base_offset >= self.next_offset => h,
                    Ok(h) => {
                        report.reason = Some(format!(
                            "batch at position {pos} has base offset {} below {}",
                            h.base_offset, self.next_offset
                        ));
                        break;
                    }
                    Err(e) => {
                        report.reason = Some(format!("at position {pos}: {e}"));
                        break;
                    }
                }
            } else {
                match BatchHeader::parse(&data[pos..]) {
                    Some(h) if h.batch_length > 0 && pos + h.total_bytes() <= data.len() => h,
                    _ => break,
                }
            };
            self.track_batch(&header, pos as u64, reindex);
            pos += header.total_bytes();
            report.batches += 1;
        }
        if (pos as u64) < self.size_bytes {
            report.truncated_bytes = self.size_bytes - pos as u64;
            if report.reason.is_none() {
                report.reason = Some(format!("incomplete batch at position {pos}"));
            }
            self.log.set_len(pos as u64)?;
            self.log.sync_all()?;
            if let Some(o) = &self.observer {
                o.truncated(&self.path, pos as u64);
                o.synced(&self.path);
            }
            self.size_bytes = pos as u64;
        }
        if !active {
            self.offset_index.seal()?;
            self.time_index.seal()?;
            self.release_index_files();
            self.remap(self.size_bytes)?;
        }
        Ok(report)
    }

    /// Updates offsets, timestamps and (when `index`) the sparse indexes for a batch written
    /// at `position`.
    fn track_batch(&mut self, header: &BatchHeader, position: u64, index: bool) {
        let relative = (header.base_offset - self.base_offset) as u32;
        if index
            && (self.offset_index.entries() == 0
                || self.bytes_since_index_entry >= self.index_interval())
        {
            self.offset_index.append(relative, position as u32);
            if header.max_timestamp > self.max_timestamp_ms {
                self.time_index.append(header.max_timestamp, relative);
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.total_bytes() as u64;
        self.max_timestamp_ms = self.max_timestamp_ms.max(header.max_timestamp);
        self.first_batch_timestamp_ms
            .get_or_insert(header.max_timestamp);
        self.next_offset = header.last_offset() + 1;
    }

    fn index_interval(&self) -> u64 {
        self.index_interval_bytes
    }

    /// Changes `index.interval.bytes` for future appends.
    pub fn set_index_interval(&mut self, bytes: u64) {
        self.index_interval_bytes = bytes;
    }

    /// Appends one batch whose first 16 bytes are given separately (already stamped) so the
    /// producer's bytes need no copy. The caller checked the batch and that it fits.
    pub fn append(
        &mut self,
        prefix: &[u8; 16],
        rest: &[u8],
        header: &BatchHeader,
    ) -> io::Result<()> {
        let position = self.size_bytes;
        let written = self
            .log
            .write_all_at(prefix, position)
            .and_then(|()| self.log.write_all_at(rest, position + 16));
        if let Some(o) = &self.observer {
            // Reported even when the write failed part-way: some of it may be on disk.
            o.written(&self.path, position, (16 + rest.len()) as u64);
        }
        written?;
        self.size_bytes += (16 + rest.len()) as u64;
        // The batch was validated (CRC included) before it was written: if everything before
        // it was verified, so is the segment up to its new end.
        let _ = self.verified_bytes.compare_exchange(
            position,
            self.size_bytes,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.track_batch(header, position, true);
        Ok(())
    }

    /// Records that a batch was appended at `now_ms` (see `first_append_ms`).
    pub fn note_append(&mut self, now_ms: i64) {
        self.first_append_ms.get_or_insert(now_ms);
    }

    /// Whether appending `batch_bytes` more must first roll to a new segment.
    pub fn should_roll(
        &self,
        batch_bytes: u64,
        now_ms: i64,
        segment_bytes: u64,
        segment_ms: u64,
    ) -> bool {
        if self.size_bytes == 0 {
            return false;
        }
        let too_big = self.size_bytes + batch_bytes > segment_bytes;
        let aged_from = match self.first_batch_timestamp_ms {
            Some(first) if first >= 0 => Some(first),
            _ => self.first_append_ms,
        };
        let too_old = aged_from.is_some_and(|t| now_ms.saturating_sub(t) > segment_ms as i64);
        let position_overflow = self.size_bytes + batch_bytes > u32::MAX as u64;
        too_big
            || too_old
            || position_overflow
            || self.offset_index.is_full()
            || self.time_index.is_full()
    }

    /// A sealed segment's indexes are read through their maps alone: one descriptor (the
    /// log's) per sealed segment instead of three.
    pub fn release_index_files(&mut self) {
        self.offset_index.release_file();
        self.time_index.release_file();
    }

    /// Descriptors this segment holds open (1 when sealed, 3 while active).
    pub fn open_files(&self) -> usize {
        1 + self.offset_index.holds_file() as usize + self.time_index.holds_file() as usize
    }

    /// Trims the indexes without an fsync (a roll, under the partition lock): this segment
    /// becomes read-only. Returns the descriptors the caller must fsync before it counts
    /// the segment as durable (see [`crate::deferred_sync`]).
    pub fn seal_deferred(&mut self) -> io::Result<Vec<Arc<File>>> {
        let mut files = vec![self.log.clone()];
        files.extend(self.offset_index.trim()?.map(Arc::new));
        files.extend(self.time_index.trim()?.map(Arc::new));
        self.remap(self.size_bytes)?;
        Ok(files)
    }

    /// Flushes and trims everything: this segment becomes read-only.
    pub fn seal(&mut self) -> io::Result<()> {
        self.log.sync_all()?;
        if let Some(o) = &self.observer {
            o.synced(&self.path);
        }
        self.offset_index.seal()?;
        self.time_index.seal()?;
        self.remap(self.size_bytes)
    }

    /// `[start, start + len)` of the log file (see [`read_range`]).
    fn read_bytes(&self, start: u64, len: u64) -> io::Result<Bytes> {
        debug_assert!(start + len <= self.size_bytes);
        read_range(self.read_map.as_ref(), &self.log, start, len)
    }

    /// What a read from `from_offset` needs, for running it without the partition lock
    /// (see [`SegmentView`]).
    pub fn view(&self, from_offset: i64) -> SegmentView {
        let relative = (from_offset.max(self.base_offset) - self.base_offset) as u32;
        SegmentView {
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            size_bytes: self.size_bytes,
            map: self.read_map.clone(),
            log: self.log.clone(),
            path: self.path.clone(),
            index_entry: self.offset_index.lookup(relative),
            verified_bytes: self.verified_bytes.clone(),
            corruption_reported: self.corruption_reported.clone(),
        }
    }

    /// Calls `visit` on each batch header from the one holding `from_offset` on, with the
    /// batch's bytes, until it returns false.
    pub fn scan_from(
        &self,
        from_offset: i64,
        mut visit: impl FnMut(&BatchHeader, &[u8]) -> bool,
    ) -> io::Result<()> {
        let view = self.view(from_offset);
        let start_pos = view.start_position(from_offset);
        let tail = view.read_bytes(start_pos, self.size_bytes - start_pos)?;
        for (pos, header) in batch::headers(&tail) {
            if header.last_offset() < from_offset {
                continue;
            }
            if !visit(&header, &tail[pos..pos + header.total_bytes()]) {
                break;
            }
        }
        Ok(())
    }

    /// Offset to start a timestamp search from: every record before it is older than
    /// `timestamp_ms`.
    pub fn search_start_for_timestamp(&self, timestamp_ms: i64) -> i64 {
        self.time_index
            .lookup_before(timestamp_ms)
            .map_or(self.base_offset, |(_, rel)| self.base_offset + rel as i64)
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    /// The whole log file (a shared map of a sealed segment: no copy).
    pub fn all_bytes(&self) -> io::Result<Bytes> {
        self.read_bytes(0, self.size_bytes)
    }
    /// Max timestamp of the first batch (`segment.ms` and `max.compaction.lag.ms` age).
    pub fn first_batch_timestamp_ms(&self) -> Option<i64> {
        self.first_batch_timestamp_ms
    }
    pub fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The log file handle, for an fsync outside the partition lock.
    pub fn file(&self) -> Arc<File> {
        self.log.clone()
    }

    pub fn set_write_observer(&mut self, observer: Option<Arc<dyn WriteObserver>>) {
        self.observer = observer;
    }
}

/// One segment's bytes as they are at one instant, for reading without the partition lock.
/// Bytes `[0, size_bytes)` of a segment never change once written: appends go past them,
/// and a compaction, retention or topic deletion replaces or unlinks the file, while the
/// map and descriptor held here keep the old bytes readable. [`Segment::view`] takes one
/// under the lock (with the index lookup); the header walk, the CRC checks and the slicing
/// run on it after the lock is released. What a read verifies is recorded in the segment's
/// shared `verified_bytes`.
pub struct SegmentView {
    base_offset: i64,
    next_offset: i64,
    size_bytes: u64,
    map: Option<Arc<Mmap>>,
    log: Arc<File>,
    path: Arc<Path>,
    /// The offset index's entry at or before the read's first offset: `(relative, position)`.
    index_entry: Option<(u32, u32)>,
    verified_bytes: Arc<AtomicU64>,
    corruption_reported: Arc<AtomicBool>,
}

/// `[start, start + len)` of a log file, from `map` when it covers the range (no copy), else
/// read from the file.
fn read_range(map: Option<&Arc<Mmap>>, log: &File, start: u64, len: u64) -> io::Result<Bytes> {
    let end = start + len;
    if len == 0 {
        return Ok(Bytes::new());
    }
    if let Some(map) = map.filter(|m| end <= m.len() as u64) {
        return Ok(Bytes::from_owner(MappedLog(
            map.clone(),
            start as usize..end as usize,
        )));
    }
    let mut buf = vec![0u8; len as usize];
    log.read_exact_at(&mut buf, start)?;
    Ok(Bytes::from(buf))
}

impl SegmentView {
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn read_bytes(&self, start: u64, len: u64) -> io::Result<Bytes> {
        debug_assert!(start + len <= self.size_bytes);
        read_range(self.map.as_ref(), &self.log, start, len)
    }

    /// Whole batches starting with the one holding `from_offset`, ending before `upper_offset`
    /// (exclusive) and within `max_bytes` — except that the first batch is returned whole
    /// even when larger when `at_least_one` (KIP-74).
    pub fn read(
        &self,
        from_offset: i64,
        upper_offset: i64,
        max_bytes: u64,
        at_least_one: bool,
    ) -> io::Result<Bytes> {
        if from_offset >= self.next_offset || from_offset >= upper_offset {
            return Ok(Bytes::new());
        }
        let start_pos = self.start_position(from_offset);
        let tail = self.read_bytes(start_pos, self.size_bytes - start_pos)?;
        let mut first: Option<usize> = None;
        let mut end = 0usize;
        for (pos, header) in batch::headers(&tail) {
            if header.last_offset() < from_offset {
                continue;
            }
            if header.last_offset() >= upper_offset {
                break;
            }
            let batch_end = pos + header.total_bytes();
            let start = *first.get_or_insert(pos);
            let fits = (batch_end - start) as u64 <= max_bytes;
            let first_batch_forced = at_least_one && end == 0;
            if !(fits || first_batch_forced) {
                break;
            }
            end = batch_end;
        }
        Ok(match first {
            Some(start) if end > start => {
                let end = self.verify(&tail, start_pos, start, end)?;
                tail.slice(start..end)
            }
            _ => Bytes::new(),
        })
    }

    /// CRC-checks the batches in `tail[start..end)` (`tail` starts at file position
    /// `tail_pos`) that lie beyond the verified prefix. Returns the end of the servable
    /// part: all of it, or up to the first damaged batch. A damaged first batch is an error
    /// (the fetch gets KAFKA_STORAGE_ERROR): the broker never serves bytes that fail their
    /// CRC or break offset order, and it says where the damage is.
    fn verify(&self, tail: &[u8], tail_pos: u64, start: usize, end: usize) -> io::Result<usize> {
        let verified = self.verified_bytes.load(Ordering::Relaxed);
        if tail_pos + end as u64 <= verified {
            return Ok(end);
        }
        let mut pos = start;
        let mut prev_last_offset = self.base_offset - 1;
        while pos < end {
            let damage = match batch::check_batch(&tail[pos..end]) {
                Ok(h)
                    if h.base_offset <= prev_last_offset || h.last_offset() >= self.next_offset =>
                {
                    Some(format!(
                        "batch at position {} claims offsets {}..={} out of order",
                        tail_pos + pos as u64,
                        h.base_offset,
                        h.last_offset()
                    ))
                }
                Ok(h) => {
                    prev_last_offset = h.last_offset();
                    pos += h.total_bytes();
                    None
                }
                Err(e) => Some(format!("batch at position {}: {e}", tail_pos + pos as u64)),
            };
            if let Some(what) = damage {
                if !self.corruption_reported.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        segment = %self.path.display(),
                        damage = %what,
                        "corrupt data on disk: not served (restore the segment from a replica or \
                         backup, or move the log start past it with DeleteRecords)"
                    );
                }
                if pos == start {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("corrupt segment {}: {what}", self.path.display()),
                    ));
                }
                return Ok(pos);
            }
        }
        if tail_pos + start as u64 <= verified {
            self.verified_bytes
                .fetch_max(tail_pos + end as u64, Ordering::Relaxed);
        }
        Ok(end)
    }

    /// Where to start reading for `from_offset`: the offset index's entry at or before it,
    /// if that entry points at the batch it names; else the segment start. The check costs
    /// one batch's CRC and keeps a damaged entry (bit rot the open-time check cannot see
    /// without reading every batch) from sending reads into the middle of a batch. The view
    /// was taken for `from_offset`, so its index entry is the one for it.
    fn start_position(&self, from_offset: i64) -> u64 {
        debug_assert!(self.index_entry.is_none_or(|(rel, _)| {
            self.base_offset + rel as i64 <= from_offset.max(self.base_offset)
        }));
        let Some((rel, pos)) = self.index_entry else {
            return 0;
        };
        let pos = pos as u64;
        // A whole CRC-valid batch with the right base offset: a header check alone can be
        // fooled (2 bytes into a batch, the zero high bytes of the offset and length read
        // as base offset 0).
        let matches = pos < self.size_bytes
            && self
                .read_bytes(pos, self.size_bytes - pos)
                .ok()
                .and_then(|tail| batch::check_batch(&tail).ok())
                .is_some_and(|h| h.base_offset == self.base_offset + rel as i64);
        if matches {
            return pos;
        }
        if !self.corruption_reported.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                segment = %self.path.display(),
                index_entry = %format!("{rel} -> {pos}"),
                "corrupt data on disk: an offset index entry does not match the log; reading \
                 this segment from its start (delete the .index file to have it rebuilt)"
            );
        }
        0
    }
}
