//! Log compaction (`cleanup.policy=compact`): keep the latest record of every key.
//!
//! One round for one partition has three steps, so the partition lock is held only briefly:
//!
//! 1. [`PartitionLog::plan_cleaning`] (under the lock): decides whether the log is due — the
//!    dirty section `[first_dirty, first_uncleanable)` is at least `min.cleanable.dirty.ratio`
//!    of the cleanable log, or its oldest record is past `max.compaction.lag.ms` — and takes a
//!    snapshot of the sealed segments (their memory maps, no copy).
//! 2. [`clean`] (no lock): builds an [`OffsetMap`] (key digest → latest offset) over the dirty
//!    section, bounded by `log.cleaner.dedupe.buffer.size`; when the map fills, this round
//!    cleans only up to the offset reached and the next round continues from there. Then it
//!    rewrites the sealed segments from the log start, in groups that fit `segment.bytes`,
//!    into `<base>.log.cleaned` files, which are fsync'd.
//! 3. [`PartitionLog::install_cleaned`] (under the lock): for each group, renames the cleaned
//!    file to `<base>.<end>.log.swap` and fsyncs the directory — the commit point — then
//!    deletes the old segments, renames the swap file to `<base>.log` and rebuilds its indexes.
//!
//! What is kept: offsets (gaps are fine, order is kept), every batch's base offset and last
//! offset delta, transaction markers until their transaction is gone (below), the last batch of every live
//! idempotent producer (empty if all its records went, so its sequence survives), and each
//! key's latest record. Tombstones are kept until `delete.retention.ms` after the first
//! cleaning that saw them: that cleaning stores the delete horizon in the batch's base
//! timestamp with attribute bit 6, as Kafka does (KIP-534). Keyless records are dropped, as
//! Kafka does. The active segment is never touched.
//!
//! Only data below the last stable offset is cleaned. Records of aborted transactions are
//! left out of the key map (so an aborted update never shadows the committed value) and
//! removed. A transaction marker goes, as in Kafka, once nothing of its transaction is left
//! (no batch of it kept, not even an emptied one) and it is not the last marker of a live
//! producer (which carries the epoch that fences zombies): the first cleaning that finds it
//! so stamps a delete horizon on it like a tombstone's, and the first one after the horizon
//! drops it — so a `read_committed` reader that fetched the data has `delete.retention.ms`
//! to fetch the marker too. A dropped ABORT marker's entry leaves the aborted-transaction
//! index with it (a stale entry would make readers skip a later transaction's data); the
//! index is rewritten to the new segment layout.
//!
//! Crash safety: a `.cleaned` file is garbage until renamed, so [`recover_leftovers`] deletes
//! it; a `.swap` file is complete, so recovery finishes its swap (deletes the segments whose
//! base offsets lie in `[base, end)`, renames it to `<base>.log`). A `.log` without an index
//! is re-indexed on open. So a kill at any step leaves either the old or the new segments.

use crate::segment::{self, Segment};
use crate::{sync_dir, PartitionLog};
use bytes::Bytes;
use klamm_protocol::batch::{self, BatchHeader};
use klamm_protocol::rewrite::{self, RawRecord, Rebuild};
use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Bytes one [`OffsetMap`] slot takes: a 128-bit key digest and an offset (as Kafka's 16-byte
/// MD5 plus 8-byte offset).
pub const OFFSET_MAP_SLOT_BYTES: u64 = 24;
/// Fraction of slots filled before the map counts as full (Kafka's
/// `log.cleaner.io.buffer.load.factor` default).
const OFFSET_MAP_LOAD_FACTOR: f64 = 0.9;
/// File holding the first dirty offset (the end of the last cleaning) of a partition.
const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// The topic's and broker's settings a cleaning round needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerConfig {
    /// `delete.retention.ms`: how long a tombstone outlives its first cleaning.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: segments with a record younger than this stay dirty.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this forces a cleaning.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the offset map.
    pub dedupe_buffer_bytes: u64,
    /// `segment.bytes`: the most a group of cleaned segments may hold.
    pub segment_bytes: u64,
    /// `message.max.decompressed.bytes`: what one records section may inflate to.
    pub max_decompressed_bytes: usize,
}

/// Key digest → latest offset, in a fixed table of `capacity` slots (open addressing,
/// linear probing), so its memory is exactly `capacity * 24` bytes, whatever the keys.
pub struct OffsetMap {
    /// `(digest_hi, digest_lo, offset)`; offset -1 marks an empty slot.
    slots: Vec<(u64, u64, i64)>,
    entries: usize,
    max_entries: usize,
}

/// A 128-bit digest of a key: two SipHash-1-3 passes with different prefixes. Collisions
/// (which would drop a record) are as unlikely as with Kafka's MD5.
pub fn key_digest(key: &[u8]) -> (u64, u64) {
    let mut a = std::hash::DefaultHasher::new();
    key.hash(&mut a);
    let mut b = std::hash::DefaultHasher::new();
    0x006b_6c61_6d6d_u64.hash(&mut b);
    key.hash(&mut b);
    (a.finish(), b.finish())
}

impl OffsetMap {
    /// A map using at most `memory_bytes`, and no more slots than `max_keys` needs.
    pub fn new(memory_bytes: u64, max_keys: u64) -> OffsetMap {
        let by_memory = (memory_bytes / OFFSET_MAP_SLOT_BYTES).max(16);
        let by_keys = ((max_keys as f64 / OFFSET_MAP_LOAD_FACTOR) as u64)
            .saturating_add(1)
            .max(16);
        let capacity = by_memory.min(by_keys) as usize;
        OffsetMap {
            slots: vec![(0, 0, -1); capacity],
            entries: 0,
            max_entries: ((capacity as f64 * OFFSET_MAP_LOAD_FACTOR) as usize).max(1),
        }
    }

    fn slot(&self, digest: (u64, u64)) -> usize {
        let mut i = (digest.0 % self.slots.len() as u64) as usize;
        loop {
            let (hi, lo, offset) = self.slots[i];
            if offset < 0 || (hi, lo) == digest {
                return i;
            }
            i = (i + 1) % self.slots.len();
        }
    }

    /// Records `offset` as the latest for `digest`. The caller checks [`Self::has_room`].
    pub fn put(&mut self, digest: (u64, u64), offset: i64) {
        let i = self.slot(digest);
        if self.slots[i].2 < 0 {
            self.entries += 1;
        }
        self.slots[i] = (digest.0, digest.1, offset);
    }

    pub fn get(&self, digest: (u64, u64)) -> Option<i64> {
        let (_, _, offset) = self.slots[self.slot(digest)];
        (offset >= 0).then_some(offset)
    }

    /// Whether `more` new keys surely fit under the load factor.
    pub fn has_room(&self, more: usize) -> bool {
        self.entries + more <= self.max_entries
    }

    pub fn len(&self) -> usize {
        self.entries
    }
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
    pub fn memory_bytes(&self) -> u64 {
        self.slots.len() as u64 * OFFSET_MAP_SLOT_BYTES
    }
}

/// A sealed segment as the cleaner sees it: its bytes (a shared memory map) and where the
/// next segment starts.
#[derive(Clone)]
pub struct SegmentView {
    pub base_offset: i64,
    /// Base offset of the following segment: this segment's offsets lie below it.
    pub end_offset: i64,
    pub bytes: Bytes,
}

/// What [`PartitionLog::plan_cleaning`] decided to clean.
pub struct CleanPlan {
    pub first_dirty: i64,
    pub first_uncleanable: i64,
    pub dirty_ratio: f64,
    /// A tombstone's delete horizon has passed: rewrite the clean section even without new
    /// dirty data.
    pub tombstones_due: bool,
    /// Sealed segments from the log start up to the one holding `first_uncleanable - 1`.
    pub segments: Vec<SegmentView>,
    /// Last offset of each live idempotent producer: that batch is kept even when emptied.
    pub producer_last_offsets: HashMap<i64, i64>,
    /// Epoch of each live producer without a data batch (a marker of a newer epoch reset
    /// it): its markers of that epoch are kept, since they carry the epoch that fences.
    pub producer_epochs_without_data: HashMap<i64, i16>,
    /// Aborted transactions overlapping the plan: `(producer_id, first_offset, marker
    /// offset)`. Their records never enter the key map (an aborted update must not shadow
    /// the committed value it would have replaced) and are removed, as Kafka's cleaner does.
    pub aborted: Vec<(i64, i64, i64)>,
}

impl CleanPlan {
    fn is_aborted(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && self.aborted.iter().any(|&(pid, first, marker)| {
                pid == header.producer_id
                    && first <= header.base_offset
                    && header.base_offset < marker
            })
    }
}

/// One rewritten group of segments, not yet installed.
#[derive(Debug)]
pub struct CleanedGroup {
    pub base_offset: i64,
    /// Base of the segment after the group.
    pub end_offset: i64,
    /// `(base, size)` of the segments it replaces, to check nothing changed meanwhile.
    pub replaces: Vec<(i64, u64)>,
    /// The `.cleaned` file's name, relative to the log's directory: the log resolves it
    /// against its directory of the moment, which moves when the topic is deleted, so a
    /// path kept from planning could land in a recreated topic's directory.
    pub cleaned_name: String,
}

/// Figures from one round.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_kept: u64,
    pub tombstones_removed: u64,
    pub markers_removed: u64,
    pub offset_map_entries: u64,
    pub offset_map_memory_bytes: u64,
    /// Earliest delete horizon among the tombstones and markers kept.
    pub tombstone_horizon_ms: Option<i64>,
}

impl CleanStats {
    fn note_horizon(&mut self, horizon_ms: i64) {
        self.tombstone_horizon_ms = Some(
            self.tombstone_horizon_ms
                .map_or(horizon_ms, |m| m.min(horizon_ms)),
        );
    }
}

/// Per producer, whether its open transaction (since its last marker) has a batch kept in
/// the cleaned output: a marker may go only when it has none.
#[derive(Default)]
struct TxnsSeen {
    kept_data: HashMap<i64, bool>,
    /// Offsets of the ABORT markers dropped: their aborted-index entries go with them.
    dropped_aborts: Vec<i64>,
}

pub struct CleanResult {
    pub groups: Vec<CleanedGroup>,
    /// Offsets of the ABORT markers the groups no longer hold.
    pub dropped_aborts: Vec<i64>,
    /// The new first dirty offset: where the offset map stopped.
    pub cleaned_up_to: i64,
    pub stats: CleanStats,
}

/// The name of a cleaned segment being written.
fn cleaned_name(base: i64) -> String {
    format!("{}.log.cleaned", segment::file_stem(base))
}

/// The name of a complete cleaned segment awaiting its swap: base and end offsets.
fn swap_path(dir: &Path, base: i64, end: i64) -> PathBuf {
    dir.join(format!(
        "{}.{}.log.swap",
        segment::file_stem(base),
        segment::file_stem(end)
    ))
}

fn parse_swap_name(name: &str) -> Option<(i64, i64)> {
    let (base, end) = name.strip_suffix(".log.swap")?.split_once('.')?;
    Some((base.parse().ok()?, end.parse().ok()?))
}

pub(crate) fn remove_segment_files(dir: &Path, base: i64) -> io::Result<()> {
    let stem = dir.join(segment::file_stem(base));
    for ext in ["log", "index", "timeindex"] {
        match fs::remove_file(stem.with_extension(ext)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Finishes or undoes what a crash interrupted, before the segments are listed: `.cleaned`
/// files are deleted, `.swap` files replace the segments in their range.
pub fn recover_leftovers(dir: &Path) -> io::Result<()> {
    let mut changed = false;
    let mut swaps = Vec::new();
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".cleaned") {
            fs::remove_file(entry.path())?;
            changed = true;
        } else if let Some(range) = parse_swap_name(&name) {
            swaps.push((range, entry.path()));
        }
    }
    swaps.sort();
    for ((base, end), path) in swaps {
        for entry in fs::read_dir(dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(b) = name
                .strip_suffix(".log")
                .and_then(|s| s.parse::<i64>().ok())
            {
                if (base..end).contains(&b) {
                    remove_segment_files(dir, b)?;
                }
            }
        }
        // The swap file's own base may still have stale indexes from the old segment.
        remove_segment_files(dir, base)?;
        fs::rename(
            &path,
            dir.join(segment::file_stem(base)).with_extension("log"),
        )?;
        tracing::info!(dir = %dir.display(), base, end, "completed an interrupted compaction swap");
        changed = true;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The cleaner's progress in one partition, kept in `cleaner-offset-checkpoint` as two lines:
/// the first dirty offset, and the earliest delete horizon of a tombstone still on disk
/// (-1 for none), so that a log whose only work is expired tombstones is still cleaned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanerState {
    pub first_dirty_offset: i64,
    pub tombstone_horizon_ms: Option<i64>,
}

impl CleanerState {
    pub fn load(dir: &Path) -> CleanerState {
        let text = fs::read_to_string(dir.join(CHECKPOINT_FILE)).unwrap_or_default();
        let mut lines = text.lines().map(|l| l.trim().parse::<i64>().ok());
        CleanerState {
            first_dirty_offset: lines.next().flatten().unwrap_or(0),
            tombstone_horizon_ms: lines.next().flatten().filter(|h| *h >= 0),
        }
    }

    fn save(&self, dir: &Path) -> io::Result<()> {
        let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        let horizon = self.tombstone_horizon_ms.unwrap_or(-1);
        fs::write(&tmp, format!("{}\n{horizon}\n", self.first_dirty_offset))?;
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, dir.join(CHECKPOINT_FILE))
    }
}

impl PartitionLog {
    /// The first offset not yet cleaned.
    pub fn first_dirty_offset(&self) -> i64 {
        self.cleaner.first_dirty_offset.max(self.log_start_offset)
    }

    /// Rolls the active segment when its first batch is older than `age_ms`, so that an idle
    /// compacted partition's data becomes cleanable (`max.compaction.lag.ms`, `segment.ms`).
    pub fn roll_if_older_than(&mut self, now_ms: i64, age_ms: i64) -> io::Result<bool> {
        if self.is_retired() {
            return Ok(false);
        }
        let active = self.active();
        let old = active
            .first_batch_timestamp_ms()
            .is_some_and(|ts| ts < now_ms.saturating_sub(age_ms));
        if active.size_bytes() > 0 && old {
            self.roll()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Step 1: whether this log is due for compaction now, and what to clean. `upper_offset`
    /// is the high watermark (later, the last stable offset): nothing at or above it is
    /// cleaned.
    pub fn plan_cleaning(
        &self,
        now_ms: i64,
        config: &CleanerConfig,
        upper_offset: i64,
    ) -> Option<CleanPlan> {
        if self.is_retired() {
            return None;
        }
        let active_base = self.active().base_offset();
        let first_dirty = self.first_dirty_offset().min(active_base);
        let lag_bound = now_ms.saturating_sub(config.min_compaction_lag_ms);
        let sealed: Vec<&Segment> = self
            .segments
            .values()
            .filter(|s| s.base_offset() < active_base)
            .collect();
        // The first segment holding a record too young to clean bounds the cleanable range.
        let too_young = sealed
            .iter()
            .filter(|s| s.next_offset() > first_dirty)
            .find(|s| s.max_timestamp_ms() > lag_bound)
            .map_or(active_base, |s| s.base_offset());
        let first_uncleanable = active_base
            .min(too_young)
            .min(upper_offset)
            .max(first_dirty);
        let tombstones_due = self
            .cleaner
            .tombstone_horizon_ms
            .is_some_and(|h| h <= now_ms);
        if first_dirty >= first_uncleanable && !tombstones_due {
            return None;
        }
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        let mut oldest_dirty_ms = None;
        for s in &sealed {
            if s.base_offset() >= first_uncleanable {
                break;
            }
            let end = self
                .segments
                .range(s.base_offset() + 1..)
                .next()
                .map_or(active_base, |(b, _)| *b);
            if end <= first_dirty {
                clean_bytes += s.size_bytes();
            } else {
                dirty_bytes += s.size_bytes();
                oldest_dirty_ms.get_or_insert(s.first_batch_timestamp_ms().unwrap_or(i64::MAX));
            }
        }
        let total = clean_bytes + dirty_bytes;
        let dirty_ratio = if total == 0 {
            0.0
        } else {
            dirty_bytes as f64 / total as f64
        };
        let overdue = oldest_dirty_ms
            .is_some_and(|ts| ts < now_ms.saturating_sub(config.max_compaction_lag_ms));
        let due = dirty_bytes > 0 && (dirty_ratio >= config.min_cleanable_dirty_ratio || overdue);
        if !(due || tombstones_due) {
            return None;
        }
        let mut segments = Vec::new();
        for s in &sealed {
            if s.base_offset() >= first_uncleanable {
                break;
            }
            let end = self
                .segments
                .range(s.base_offset() + 1..)
                .next()
                .map_or(active_base, |(b, _)| *b);
            segments.push(SegmentView {
                base_offset: s.base_offset(),
                end_offset: end,
                bytes: s.all_bytes().ok()?,
            });
        }
        let producer_last_offsets = self
            .producers
            .producers()
            .filter_map(|(pid, e)| e.batches.back().map(|b| (*pid, b.last_offset)))
            .collect();
        let producer_epochs_without_data = self
            .producers
            .producers()
            .filter(|(_, e)| e.batches.is_empty())
            .map(|(pid, e)| (*pid, e.epoch))
            .collect();
        let aborted = self
            .aborted
            .iter()
            .filter(|a| a.first_offset < first_uncleanable)
            .map(|a| (a.producer_id, a.first_offset, a.last_offset))
            .collect();
        Some(CleanPlan {
            first_dirty,
            first_uncleanable,
            dirty_ratio,
            tombstones_due,
            segments,
            producer_last_offsets,
            producer_epochs_without_data,
            aborted,
        })
    }

    /// Creates (truncating) the `.cleaned` output file `name` in this log's directory, for
    /// [`clean`]; refused once the log is retired, so a deleted topic's cleaning cannot
    /// create files in a recreated topic's directory of the same name.
    pub fn create_cleaned(&self, name: &str) -> io::Result<File> {
        self.check_live()?;
        File::create(self.dir.join(name))
    }

    /// Step 3: swaps the cleaned groups in (see the module doc for the order of renames).
    /// A group whose segments changed meanwhile (retention, DeleteRecords) is discarded with
    /// every group after it, and then the checkpoint does not move: a later group may have
    /// dropped a transaction marker because the data before it was cleaned away, which is
    /// true only if the earlier groups are installed too. Returns the groups installed.
    pub fn install_cleaned(&mut self, result: CleanResult) -> io::Result<usize> {
        if self.is_retired() {
            // `self.dir` followed the directory aside, so these removals cannot reach a
            // recreated topic's files.
            for group in &result.groups {
                let _ = fs::remove_file(self.dir.join(&group.cleaned_name));
            }
            return Ok(0);
        }
        let mut installed = 0;
        let mut all = true;
        for group in result.groups {
            let unchanged = group.replaces.iter().all(|(base, size)| {
                self.segments
                    .get(base)
                    .is_some_and(|s| s.size_bytes() == *size)
            }) && group.end_offset <= self.active().base_offset();
            if !(all && unchanged) {
                all = false;
                let _ = fs::remove_file(self.dir.join(&group.cleaned_name));
                continue;
            }
            let swap = swap_path(&self.dir, group.base_offset, group.end_offset);
            fs::rename(self.dir.join(&group.cleaned_name), &swap)?;
            sync_dir(&self.dir)?; // commit point: recovery now finishes this swap
            for (base, _) in &group.replaces {
                self.segments.remove(base);
                remove_segment_files(&self.dir, *base)?;
            }
            let path = self
                .dir
                .join(segment::file_stem(group.base_offset))
                .with_extension("log");
            fs::rename(&swap, &path)?;
            sync_dir(&self.dir)?;
            let (seg, _) =
                Segment::open(&path, group.base_offset, self.config.limits(), false, true)?;
            self.segments.insert(group.base_offset, seg);
            let range = group.base_offset..group.end_offset;
            self.aborted.retain(|e| {
                !(range.contains(&e.last_offset) && result.dropped_aborts.contains(&e.last_offset))
            });
            installed += 1;
        }
        if installed > 0 {
            // Segments were merged: the aborted-transaction index follows the new layout.
            self.rewrite_txn_indexes()?;
        }
        if all {
            self.cleaner = CleanerState {
                first_dirty_offset: result.cleaned_up_to.max(self.cleaner.first_dirty_offset),
                tombstone_horizon_ms: result.stats.tombstone_horizon_ms,
            };
            self.cleaner.save(&self.dir)?;
        }
        Ok(installed)
    }
}

/// Step 2: builds the offset map over the dirty section and writes the cleaned groups
/// (fsync'd `.cleaned` files). `throttle(bytes)` is called as bytes are read and written;
/// the broker sleeps in it to honour `log.cleaner.io.max.bytes.per.second`.
/// `create(name)` opens each output file; the broker passes
/// [`PartitionLog::create_cleaned`] under the partition lock, so a file is created only
/// in a live log's directory and, once open, is written through its descriptor wherever
/// the directory moves.
pub fn clean(
    plan: &CleanPlan,
    config: &CleanerConfig,
    now_ms: i64,
    throttle: &mut dyn FnMut(u64),
    create: &mut dyn FnMut(&str) -> io::Result<File>,
) -> io::Result<CleanResult> {
    let mut stats = CleanStats::default();
    let max_keys = (plan.first_uncleanable - plan.first_dirty).max(0) as u64;
    let mut map = OffsetMap::new(config.dedupe_buffer_bytes, max_keys);
    let cleaned_up_to = build_offset_map(plan, &mut map, config.max_decompressed_bytes, throttle)?;
    stats.offset_map_entries = map.len() as u64;
    stats.offset_map_memory_bytes = map.memory_bytes();
    if cleaned_up_to <= plan.first_dirty && !plan.tombstones_due {
        return Ok(CleanResult {
            groups: Vec::new(),
            dropped_aborts: Vec::new(),
            cleaned_up_to: plan.first_dirty,
            stats,
        });
    }
    let candidates: Vec<&SegmentView> = plan
        .segments
        .iter()
        .filter(|s| s.base_offset < cleaned_up_to)
        .collect();
    let mut groups = Vec::new();
    let mut txns = TxnsSeen::default();
    for group in group_segments(&candidates, config.segment_bytes) {
        let base = group[0].base_offset;
        let end = group.last().expect("non-empty group").end_offset;
        let name = cleaned_name(base);
        let mut out = BufWriter::with_capacity(1 << 20, create(&name)?);
        for seg in &group {
            for (pos, header) in batch::headers(&seg.bytes) {
                let bytes = &seg.bytes[pos..pos + header.total_bytes()];
                throttle(bytes.len() as u64);
                stats.bytes_read += bytes.len() as u64;
                let filtered = if header.is_control() {
                    filter_marker(plan, &header, bytes, config, now_ms, &mut txns, &mut stats)?
                } else {
                    let filtered =
                        filter_batch(plan, &map, &header, bytes, config, now_ms, &mut stats)?;
                    if header.is_transactional() {
                        let kept = txns.kept_data.entry(header.producer_id).or_default();
                        *kept |= filtered.is_some();
                    }
                    filtered
                };
                if let Some(kept) = filtered {
                    let kept: &[u8] = kept.as_deref().unwrap_or(bytes);
                    out.write_all(kept)?;
                    throttle(kept.len() as u64);
                    stats.bytes_written += kept.len() as u64;
                }
            }
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        groups.push(CleanedGroup {
            base_offset: base,
            end_offset: end,
            replaces: group
                .iter()
                .map(|s| (s.base_offset, s.bytes.len() as u64))
                .collect(),
            cleaned_name: name,
        });
    }
    Ok(CleanResult {
        groups,
        dropped_aborts: txns.dropped_aborts,
        cleaned_up_to,
        stats,
    })
}

/// Fills the map from `[first_dirty, first_uncleanable)`, stopping before a batch that might
/// not fit. Returns the offset it got to: records from there on are not in the map.
fn build_offset_map(
    plan: &CleanPlan,
    map: &mut OffsetMap,
    max_decompressed_bytes: usize,
    throttle: &mut dyn FnMut(u64),
) -> io::Result<i64> {
    for seg in &plan.segments {
        if seg.end_offset <= plan.first_dirty {
            continue;
        }
        for (pos, header) in batch::headers(&seg.bytes) {
            if header.last_offset() < plan.first_dirty {
                continue;
            }
            if header.base_offset >= plan.first_uncleanable {
                return Ok(plan.first_uncleanable);
            }
            if header.last_offset() >= plan.first_uncleanable {
                // A batch straddling the bound (the high watermark): stop before it.
                return Ok(header.base_offset.max(plan.first_dirty));
            }
            if header.is_control() || plan.is_aborted(&header) {
                continue;
            }
            if !map.has_room(header.records_count.max(0) as usize) {
                return Ok(header.base_offset.max(plan.first_dirty));
            }
            let bytes = &seg.bytes[pos..pos + header.total_bytes()];
            throttle(bytes.len() as u64);
            let section = rewrite::records_section(&header, bytes, max_decompressed_bytes)
                .map_err(invalid)?;
            for r in rewrite::raw_records(&section, header.records_count).map_err(invalid)? {
                if let Some(key) = r.key {
                    map.put(key_digest(key), header.base_offset + r.offset_delta as i64);
                }
            }
        }
    }
    Ok(plan.first_uncleanable)
}

fn invalid(e: batch::BatchError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Consecutive segments whose total size fits `segment_bytes` and whose offsets fit a
/// segment's 32-bit relative offsets.
fn group_segments<'a>(
    segments: &[&'a SegmentView],
    segment_bytes: u64,
) -> Vec<Vec<&'a SegmentView>> {
    let mut groups: Vec<Vec<&SegmentView>> = Vec::new();
    let mut size = 0u64;
    for &seg in segments {
        let len = seg.bytes.len() as u64;
        let fits = groups.last().is_some_and(|g| {
            size + len <= segment_bytes.min(i32::MAX as u64)
                && seg.end_offset - g[0].base_offset <= i32::MAX as i64
        });
        if fits {
            groups.last_mut().expect("checked").push(seg);
            size += len;
        } else {
            groups.push(vec![seg]);
            size = len;
        }
    }
    groups
}

/// What to write for one control batch, as [`filter_batch`] answers (see the module doc for
/// when a marker goes).
fn filter_marker(
    plan: &CleanPlan,
    header: &BatchHeader,
    bytes: &[u8],
    config: &CleanerConfig,
    now_ms: i64,
    txns: &mut TxnsSeen,
    stats: &mut CleanStats,
) -> io::Result<Option<Option<Vec<u8>>>> {
    let Some(commit) = batch::marker_of(bytes) else {
        return Ok(Some(None)); // not a marker Klamm knows: keep it
    };
    let pid = header.producer_id;
    let had_data = txns.kept_data.remove(&pid).unwrap_or(false);
    // The marker after a live producer's last data carries its latest epoch.
    let latest_of_live = match plan.producer_last_offsets.get(&pid) {
        Some(&last_data) => header.base_offset > last_data,
        None => plan.producer_epochs_without_data.get(&pid) == Some(&header.producer_epoch),
    };
    if had_data || latest_of_live {
        return Ok(Some(None));
    }
    match rewrite::delete_horizon_ms(header) {
        Some(horizon) if now_ms >= horizon => {
            stats.markers_removed += 1;
            if !commit {
                txns.dropped_aborts.push(header.base_offset);
            }
            Ok(None)
        }
        Some(horizon) => {
            stats.note_horizon(horizon);
            Ok(Some(None))
        }
        None => {
            let horizon = now_ms.saturating_add(config.delete_retention_ms);
            stats.note_horizon(horizon);
            let section = rewrite::records_section(header, bytes, config.max_decompressed_bytes)
                .map_err(invalid)?;
            let records = rewrite::raw_records(&section, header.records_count).map_err(invalid)?;
            let how = Rebuild {
                codec: header.compression_codec(),
                delete_horizon_ms: Some(horizon),
            };
            rewrite::rebuild_batch(header, &records, how)
                .map(|b| Some(Some(b)))
                .map_err(invalid)
        }
    }
}

/// What to write for one batch: None drops it, Some(None) keeps its bytes as they are,
/// Some(Some(bytes)) writes a rebuilt batch.
fn filter_batch(
    plan: &CleanPlan,
    map: &OffsetMap,
    header: &BatchHeader,
    bytes: &[u8],
    config: &CleanerConfig,
    now_ms: i64,
    stats: &mut CleanStats,
) -> io::Result<Option<Option<Vec<u8>>>> {
    let section =
        rewrite::records_section(header, bytes, config.max_decompressed_bytes).map_err(invalid)?;
    let records = rewrite::raw_records(&section, header.records_count).map_err(invalid)?;
    let horizon = rewrite::delete_horizon_ms(header);
    let tombstones_expired = horizon.is_some_and(|h| now_ms >= h);
    let mut kept: Vec<RawRecord<'_>> = Vec::with_capacity(records.len());
    let mut kept_tombstone = false;
    let aborted = plan.is_aborted(header);
    for r in &records {
        stats.records_read += 1;
        if aborted {
            continue;
        }
        let Some(key) = r.key else {
            continue; // Kafka drops keyless records from compacted logs
        };
        let offset = header.base_offset + r.offset_delta as i64;
        let latest = map.get(key_digest(key)).is_none_or(|o| offset >= o);
        if !latest {
            continue;
        }
        if r.value.is_none() {
            if tombstones_expired {
                stats.tombstones_removed += 1;
                continue;
            }
            kept_tombstone = true;
        }
        kept.push(*r);
    }
    stats.records_kept += kept.len() as u64;
    let set_horizon = kept_tombstone && horizon.is_none();
    if kept_tombstone {
        stats.note_horizon(
            horizon.unwrap_or_else(|| now_ms.saturating_add(config.delete_retention_ms)),
        );
    }
    if kept.len() == records.len() && !set_horizon {
        return Ok(Some(None));
    }
    let producer_last = header.producer_id >= 0
        && plan.producer_last_offsets.get(&header.producer_id) == Some(&header.last_offset());
    if kept.is_empty() && !producer_last {
        return Ok(None);
    }
    let how = Rebuild {
        codec: header.compression_codec(),
        // None keeps the base timestamp and attributes, so an existing horizon stays.
        delete_horizon_ms: set_horizon.then(|| now_ms.saturating_add(config.delete_retention_ms)),
    };
    rewrite::rebuild_batch(header, &kept, how)
        .map(|b| Some(Some(b)))
        .map_err(invalid)
}

#[cfg(test)]
#[path = "cleaner_tests.rs"]
mod tests;
