//! The only module allowed `unsafe`: memory maps of segment and index files.
//!
//! Soundness rests on one rule the rest of the crate keeps: a mapped byte is read only below
//! the length the owning [`crate::Segment`] or index has written, and no file is truncated
//! below a length a live map has handed out. Other processes truncating our files are
//! outside the model (as with Kafka's own mmap'd indexes).
#![allow(unsafe_code)]

use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::File;
use std::io;

/// Maps `len_bytes` of `file` read-only. The mapping may extend past the current end of the
/// file so that an active segment can be read as it grows without remapping.
pub fn map_read(file: &File, len_bytes: usize) -> io::Result<Mmap> {
    // SAFETY: the file is owned by this process's log; readers only touch bytes below the
    // written length (see module docs), so no access can hit a page past EOF.
    unsafe { MmapOptions::new().len(len_bytes).map(file) }
}

/// Maps the whole (preallocated) `file` read-write, for an index being appended to.
pub fn map_write(file: &File) -> io::Result<MmapMut> {
    // SAFETY: index files are preallocated with set_len before mapping and only this process
    // writes them; entries are read only below the count written.
    unsafe { MmapMut::map_mut(file) }
}
