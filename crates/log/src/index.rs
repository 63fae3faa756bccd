//! Sparse, memory-mapped index files in Kafka's formats.
//!
//! `.index`: entries of `relative_offset:u32 · position:u32` (8 bytes).
//! `.timeindex`: entries of `timestamp:i64 · relative_offset:u32` (12 bytes).
//! The active segment's index grows in steps of [`GROWTH_STEP_BYTES`] up to
//! `segment.index.bytes` and is trimmed to its entries when the segment is sealed or the log
//! closed, so a file's length says how many entries it holds.
//!
//! Growth reserves disk blocks (`fallocate`) before the new range is mapped: a write into a
//! mapped page with no block behind it (a sparse file on a full disk) kills the process with
//! SIGBUS. With the blocks reserved, a full disk makes growth fail with ENOSPC instead, the
//! entry is skipped (the index is sparse anyway) and the segment rolls, which surfaces the
//! error to the producer as KAFKA_STORAGE_ERROR.

use crate::mmap;
use memmap2::MmapMut;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// One index file with fixed-size entries of `ENTRY_BYTES`.
pub struct IndexFile<const ENTRY_BYTES: usize> {
    path: PathBuf,
    /// Open while the index may change; a sealed, flushed index lives on its map alone
    /// ([`Self::release_file`]), so a sealed segment holds one descriptor (its log), as in
    /// Kafka. Reopened by path if a sealed index must change again (a rebuild).
    file: Option<File>,
    map: Option<MmapMut>,
    entries: usize,
    capacity_entries: usize,
    /// Bytes the file may grow to (`segment.index.bytes`); 0 for a sealed index.
    grow_to_bytes: u64,
    /// Changed since opened or last sealed: sealing has work to do.
    dirty: bool,
}

/// How much an active index grows at a time: small enough that a partition costs little
/// disk until it is written to, large enough that growth (an fallocate and a remap) is rare
/// (every 8,192 offset entries, i.e. every ~32 MiB of log at the default interval).
pub const GROWTH_STEP_BYTES: u64 = 64 * 1024;

pub type OffsetIndex = IndexFile<8>;
pub type TimeIndex = IndexFile<12>;

impl<const ENTRY_BYTES: usize> IndexFile<ENTRY_BYTES> {
    /// Opens (or creates) an index. `preallocate_bytes` > 0 makes it writable: the file
    /// grows to that size on the first append that needs room (not at open, so that opening
    /// and closing an untouched partition costs no writes); 0 opens it sealed.
    /// Entries are taken to be the file's length rounded down to whole entries; a caller that
    /// does not trust the file (after a crash) rebuilds it with [`Self::reset`].
    pub fn open(path: &Path, preallocate_bytes: u64) -> io::Result<Self> {
        let file = open_rw(path)?;
        let len_bytes = file.metadata()?.len() as usize;
        let entries = len_bytes / ENTRY_BYTES;
        let mut index = IndexFile {
            path: path.to_path_buf(),
            file: Some(file),
            map: None,
            entries,
            capacity_entries: entries,
            grow_to_bytes: preallocate_bytes,
            dirty: false,
        };
        let exact = (entries * ENTRY_BYTES) as u64;
        if len_bytes as u64 != exact {
            index.resize(exact)?;
        } else if exact > 0 {
            index.map = Some(mmap::map_write(index.file.as_ref().expect("opened above"))?);
        }
        Ok(index)
    }

    /// Closes the file of a sealed index whose entries are all flushed: reads go through
    /// the map, which outlives the descriptor.
    pub fn release_file(&mut self) {
        if !self.dirty {
            self.file = None;
        }
    }

    /// Whether the index holds its file open (for counting a log's descriptors).
    pub fn holds_file(&self) -> bool {
        self.file.is_some()
    }

    fn resize(&mut self, len_bytes: u64) -> io::Result<()> {
        let len_bytes = len_bytes - len_bytes % ENTRY_BYTES as u64;
        let old_len_bytes = (self.capacity_entries * ENTRY_BYTES) as u64;
        if self.file.is_none() {
            // Reopened only if it still exists: never created by path again (the
            // directory may have moved, see `PartitionLog::retire`).
            self.file = Some(OpenOptions::new().read(true).write(true).open(&self.path)?);
        }
        let file = self.file.as_ref().expect("opened above");
        if len_bytes > old_len_bytes {
            // Reserve the blocks first (see module docs); on failure keep the old mapping.
            rustix::fs::fallocate(
                file,
                rustix::fs::FallocateFlags::empty(),
                old_len_bytes,
                len_bytes - old_len_bytes,
            )?;
        }
        self.dirty = true;
        self.map = None;
        file.set_len(len_bytes)?;
        self.capacity_entries = len_bytes as usize / ENTRY_BYTES;
        if len_bytes > 0 {
            self.map = Some(mmap::map_write(file)?);
        }
        Ok(())
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    /// No room left, even after growing to `segment.index.bytes`: the segment must roll.
    pub fn is_full(&self) -> bool {
        self.entries
            >= self
                .capacity_entries
                .max(self.grow_to_bytes as usize / ENTRY_BYTES)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn entry(&self, i: usize) -> &[u8] {
        let map = self.map.as_ref().expect("an index with entries is mapped");
        &map[i * ENTRY_BYTES..(i + 1) * ENTRY_BYTES]
    }

    /// Appends one entry. Returns false (and writes nothing) when the index is full.
    fn push(&mut self, bytes: [u8; ENTRY_BYTES]) -> bool {
        if self.is_full() {
            return false;
        }
        if self.entries >= self.capacity_entries {
            let step = GROWTH_STEP_BYTES.max(ENTRY_BYTES as u64);
            let grow_to =
                (self.capacity_entries as u64 * ENTRY_BYTES as u64 + step).min(self.grow_to_bytes);
            if let Err(e) = self.resize(grow_to) {
                tracing::warn!(index = %self.path.display(), error = %e, "index cannot grow; entry skipped");
                return false;
            }
        }
        self.dirty = true;
        let at = self.entries * ENTRY_BYTES;
        let map = self.map.as_mut().expect("a non-full index is mapped");
        map[at..at + ENTRY_BYTES].copy_from_slice(&bytes);
        self.entries += 1;
        true
    }

    /// Drops all entries (for a rebuild); the file may grow to `preallocate_bytes` again.
    pub fn reset(&mut self, preallocate_bytes: u64) -> io::Result<()> {
        self.entries = 0;
        self.grow_to_bytes = preallocate_bytes;
        self.resize(0)
    }

    /// Trims the file to its entries without flushing it (a roll, under the partition lock):
    /// returns a second descriptor of the file for the caller to fsync later, outside the
    /// lock, or None when nothing changed. On Linux an fsync of the file also writes back
    /// the pages changed through the map (they are dirty in the same page cache), so no
    /// msync is needed. Until that fsync the entries may be lost in a crash, which recovery
    /// covers: it rebuilds the indexes of every segment above the recovery point.
    pub fn trim(&mut self) -> io::Result<Option<File>> {
        if !self.dirty {
            return Ok(None);
        }
        self.resize((self.entries * ENTRY_BYTES) as u64)?;
        let file = self.file.as_ref().expect("resize opened it").try_clone()?;
        self.dirty = false;
        Ok(Some(file))
    }

    /// Trims the file to its entries and flushes it: the segment is sealed or being closed.
    /// Nothing to do when nothing changed since it was opened or last sealed.
    pub fn seal(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(map) = &self.map {
            map.flush()?;
        }
        self.resize((self.entries * ENTRY_BYTES) as u64)?;
        if let Some(file) = &self.file {
            file.sync_all()?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Index of the last entry whose key is `<= key` (by `key_of`), if any. Entries are
    /// sorted by key because they are appended in offset and running-max-timestamp order.
    fn floor(&self, key: i64, key_of: impl Fn(&[u8]) -> i64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if key_of(self.entry(mid)) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

impl OffsetIndex {
    pub fn append(&mut self, relative_offset: u32, position: u32) -> bool {
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&relative_offset.to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.push(e)
    }

    /// `(relative_offset, position)` of the last entry at or before `relative_offset`.
    pub fn lookup(&self, relative_offset: u32) -> Option<(u32, u32)> {
        let i = self.floor(relative_offset as i64, |e| be_u32(e) as i64)?;
        let e = self.entry(i);
        Some((be_u32(e), be_u32(&e[4..])))
    }

    pub fn last(&self) -> Option<(u32, u32)> {
        let i = self.entries.checked_sub(1)?;
        let e = self.entry(i);
        Some((be_u32(e), be_u32(&e[4..])))
    }

    /// Entries strictly increasing in offset and position, all positions below
    /// `log_bytes`: what a lookup relies on. A damaged index fails this and is rebuilt.
    pub fn is_consistent(&self, log_bytes: u64) -> bool {
        let mut prev: Option<(u32, u32)> = None;
        for i in 0..self.entries {
            let e = self.entry(i);
            let (rel, pos) = (be_u32(e), be_u32(&e[4..]));
            if pos as u64 >= log_bytes || prev.is_some_and(|(r, p)| rel <= r || pos <= p) {
                return false;
            }
            prev = Some((rel, pos));
        }
        true
    }
}

impl TimeIndex {
    pub fn append(&mut self, timestamp_ms: i64, relative_offset: u32) -> bool {
        let mut e = [0u8; 12];
        e[..8].copy_from_slice(&timestamp_ms.to_be_bytes());
        e[8..].copy_from_slice(&relative_offset.to_be_bytes());
        self.push(e)
    }

    /// `(timestamp, relative_offset)` of the last entry with a timestamp strictly below
    /// `timestamp_ms`: every record before that entry's batch is older than `timestamp_ms`.
    pub fn lookup_before(&self, timestamp_ms: i64) -> Option<(i64, u32)> {
        let ts = |e: &[u8]| i64::from_be_bytes(e[..8].try_into().expect("8 bytes"));
        let i = self.floor(timestamp_ms.saturating_sub(1), ts)?;
        let e = self.entry(i);
        Some((ts(e), be_u32(&e[8..])))
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        let i = self.entries.checked_sub(1)?;
        let e = self.entry(i);
        Some((
            i64::from_be_bytes(e[..8].try_into().expect("8 bytes")),
            be_u32(&e[8..]),
        ))
    }

    /// Timestamps and offsets non-decreasing, offsets below `end_relative_offset`.
    pub fn is_consistent(&self, end_relative_offset: u32) -> bool {
        let mut prev: Option<(i64, u32)> = None;
        for i in 0..self.entries {
            let e = self.entry(i);
            let ts = i64::from_be_bytes(e[..8].try_into().expect("8 bytes"));
            let rel = be_u32(&e[8..]);
            if rel >= end_relative_offset || prev.is_some_and(|(t, r)| ts < t || rel < r) {
                return false;
            }
            prev = Some((ts, rel));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&path, 80).unwrap();
        assert_eq!(idx.lookup(5), None);
        for i in 0..10u32 {
            assert!(idx.append(i * 10, i * 1000));
        }
        assert!(!idx.append(100, 1));
        assert_eq!(idx.lookup(0), Some((0, 0)));
        assert_eq!(idx.lookup(25), Some((20, 2000)));
        assert_eq!(idx.lookup(1000), Some((90, 9000)));
        idx.seal().unwrap();
        drop(idx);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
        let idx = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!((idx.entries(), idx.lookup(35)), (10, Some((30, 3000))));
    }

    #[test]
    fn time_index_strictly_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::open(&dir.path().join("0.timeindex"), 120).unwrap();
        idx.append(100, 0);
        idx.append(200, 5);
        idx.append(300, 9);
        assert_eq!(idx.lookup_before(100), None);
        assert_eq!(idx.lookup_before(101), Some((100, 0)));
        assert_eq!(idx.lookup_before(300), Some((200, 5)));
        assert_eq!(idx.lookup_before(i64::MAX), Some((300, 9)));
        assert_eq!(idx.last(), Some((300, 9)));
    }

    #[test]
    fn growth_is_stepwise_and_reserves_the_blocks_it_maps() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&path, 10 << 20).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            0,
            "nothing before the first entry"
        );
        assert!(idx.append(0, 0));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            meta.len(),
            GROWTH_STEP_BYTES,
            "grows one step, not to segment.index.bytes"
        );
        // Every mapped byte has a block behind it: a sparse mapping would SIGBUS on a full disk.
        assert!(
            meta.blocks() * 512 >= GROWTH_STEP_BYTES,
            "{} blocks",
            meta.blocks()
        );
        let per_step = GROWTH_STEP_BYTES as u32 / 8;
        for i in 1..=per_step {
            assert!(idx.append(i, i));
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            2 * GROWTH_STEP_BYTES
        );
        assert_eq!(idx.lookup(per_step), Some((per_step, per_step)));
    }
}
