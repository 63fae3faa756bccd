//! The seam between the log's segment writes and the disk's durability, for crash tests.
//!
//! Every write of segment data and every fsync of a segment file is reported to the log's
//! [`WriteObserver`], when one is set ([`crate::PartitionLog::set_write_observer`]). The
//! broker sets none. The power-loss test (`tests/power_loss.rs`) sets one that remembers,
//! per file, how many bytes were written and how many were made durable; at a simulated
//! power cut it drops the log without closing it, cuts every file back to its durable
//! length plus a torn random part of what was written after it, and reopens the log as
//! after a crash. Segment files are append-only between fsyncs, so their durable state
//! is a length: that is what makes this model exact for them.

use std::path::Path;

pub trait WriteObserver: Send + Sync {
    /// `len_bytes` were written at `position` of `path`; not durable yet.
    fn written(&self, path: &Path, position: u64, len_bytes: u64);
    /// `path` was cut to `len_bytes` (recovery truncating a torn tail).
    fn truncated(&self, path: &Path, len_bytes: u64);
    /// Everything written to `path` so far is durable.
    fn synced(&self, path: &Path);
}
