//! The fsyncs a segment roll leaves to the broker's flusher, and the recovery point that
//! records how far they have got.
//!
//! A roll runs under the partition lock, so it does no fsync: it trims the sealed segment's
//! indexes, writes the producer-state snapshot, creates the next segment and queues the
//! files it touched here. The flusher takes a [`FlushTarget`] (under the lock, cheap),
//! fsyncs it outside the lock, and reports back with [`crate::PartitionLog::mark_synced`],
//! which moves the recovery point to the end of the newest sealed segment it made durable.
//! After an unclean shutdown, recovery CRC-checks every segment that ends above the
//! recovery point, not only the last one.
//!
//! The recovery point is kept in `recovery-point-offset`, written under the lock without an
//! fsync and fsync'd by the next flush: any value that reaches the disk was true when
//! written (the data below it was fsync'd first), and a lost or torn file reads as 0, which
//! only makes recovery check more segments.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset";

/// One roll's files, waiting for their fsync.
pub(crate) struct PendingSync {
    /// Rolls are numbered, so a flush marks exactly the ones it synced as done.
    pub seq: u64,
    /// The sealed segment's end (the new active segment's base).
    pub end_offset: i64,
    /// The sealed segment's log file (for the crash tests' write observer).
    pub log_path: PathBuf,
    /// Its log and index files, the producer-state snapshot, and the partition directory
    /// (for the new segment's and snapshot's directory entries). Descriptors, not paths:
    /// they stay right if the topic is deleted and its directory moved meanwhile.
    pub files: Vec<Arc<File>>,
}

/// What one flush must fsync: the pending rolls' files and the active segment.
pub struct FlushTarget {
    pub(crate) files: Vec<Arc<File>>,
    pub(crate) active_path: PathBuf,
    /// Pending rolls numbered up to this one are in `files`.
    pub(crate) rolls_upto_seq: u64,
    /// The recovery-point file written by the last report, when it is in `files`.
    pub(crate) recovery_point_file: Option<Arc<File>>,
    /// A write observer is set (crash tests): it is told of every sync.
    pub(crate) observed: bool,
    /// Everything below this offset is durable once [`FlushTarget::sync`] returns.
    pub covered: i64,
}

impl FlushTarget {
    /// Whether [`crate::PartitionLog::mark_synced`] has anything to record for this target
    /// (rolls done, a recovery-point file synced, a crash test's observer to tell); when not,
    /// the flusher skips taking the partition lock again.
    pub fn needs_report(&self) -> bool {
        self.rolls_upto_seq > 0 || self.recovery_point_file.is_some() || self.observed
    }

    /// fsyncs every file. Blocking: call it on a blocking thread, outside the partition lock.
    pub fn sync(&self) -> io::Result<()> {
        for file in &self.files {
            file.sync_data()?;
        }
        Ok(())
    }
}

pub(crate) fn read_recovery_point(dir: &Path) -> Option<i64> {
    crate::read_offset_file(&dir.join(RECOVERY_POINT_FILE))
}

/// Writes the recovery point (temp file and rename, no fsync: see the module docs).
/// Returns the file, for the next flush to fsync.
pub(crate) fn write_recovery_point(dir: &Path, offset: i64) -> io::Result<File> {
    let tmp = dir.join(format!("{RECOVERY_POINT_FILE}.tmp"));
    fs::write(&tmp, format!("{offset}\n"))?;
    let file = File::open(&tmp)?;
    fs::rename(&tmp, dir.join(RECOVERY_POINT_FILE))?;
    Ok(file)
}
