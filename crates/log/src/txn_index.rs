//! The aborted-transaction index: one `.txnindex` file per segment, in Kafka's format
//! (34-byte entries: `version:int16 (0), producer_id:int64, first_offset:int64,
//! last_offset:int64, last_stable_offset:int64`), listing the transactions aborted by a
//! marker in that segment. read_committed fetches return the entries that overlap the
//! fetched range so consumers can drop aborted records.
//!
//! The files are appended without fsync: recovery rewrites those of the segments it
//! replays, from the markers in the log.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const ENTRY_BYTES: usize = 34;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The last stable offset right after the marker.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut b = [0u8; ENTRY_BYTES];
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        if b.len() < ENTRY_BYTES || i16::from_be_bytes([b[0], b[1]]) != 0 {
            return None;
        }
        let at = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(AbortedTxn {
            producer_id: at(2),
            first_offset: at(10),
            last_offset: at(18),
            last_stable_offset: at(26),
        })
    }
}

pub fn path(dir: &Path, segment_base: i64) -> PathBuf {
    dir.join(crate::segment::file_stem(segment_base))
        .with_extension("txnindex")
}

/// The entries of a segment's index; a torn last entry is ignored.
pub fn read(dir: &Path, segment_base: i64) -> Vec<AbortedTxn> {
    match fs::read(path(dir, segment_base)) {
        Ok(bytes) => bytes
            .chunks(ENTRY_BYTES)
            .map_while(AbortedTxn::decode)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Base offsets of every `.txnindex` file in `dir` (a compaction may have left some whose
/// segment was merged into another).
pub fn bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .into_string()
                .ok()?
                .strip_suffix(".txnindex")?
                .parse()
                .ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

pub fn append(dir: &Path, segment_base: i64, entry: &AbortedTxn) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(dir, segment_base))?;
    f.write_all(&entry.encode())
}

/// Replaces a segment's index with `entries` (removes it when empty).
pub fn rewrite(dir: &Path, segment_base: i64, entries: &[AbortedTxn]) -> io::Result<()> {
    let p = path(dir, segment_base);
    if entries.is_empty() {
        return match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
    fs::write(p, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let e = AbortedTxn {
            producer_id: 7,
            first_offset: 3,
            last_offset: 9,
            last_stable_offset: 10,
        };
        append(dir.path(), 0, &e).unwrap();
        append(dir.path(), 0, &e).unwrap();
        let p = path(dir.path(), 0);
        let mut bytes = fs::read(&p).unwrap();
        bytes.truncate(ENTRY_BYTES + 5);
        fs::write(&p, bytes).unwrap();
        assert_eq!(read(dir.path(), 0), vec![e]);
        rewrite(dir.path(), 0, &[]).unwrap();
        assert!(!p.exists());
    }
}
