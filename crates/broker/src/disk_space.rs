//! Total and usable bytes of the filesystem holding a directory (`statvfs`), for
//! DescribeLogDirs (KIP-827).
//!
//! `unsafe`: the one libc call below, given a NUL-terminated path and a struct that both
//! outlive the call.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes of a filesystem: its size and what an unprivileged writer may still use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub total_bytes: u64,
    pub usable_bytes: u64,
}

/// The space of the filesystem `dir` is on, or the OS error that prevented reading it.
pub fn of(dir: &Path) -> std::io::Result<DiskSpace> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    // SAFETY: all-zero is a valid `statvfs` (plain integers), which the call overwrites.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs reads the NUL-terminated path and writes only `stats`; both outlive
    // the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fragment = stats.f_frsize as u64;
    Ok(DiskSpace {
        total_bytes: (stats.f_blocks as u64).saturating_mul(fragment),
        // f_bavail, not f_bfree: the blocks reserved for root are not usable by the broker.
        usable_bytes: (stats.f_bavail as u64).saturating_mul(fragment),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_directory_has_space_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let space = of(dir.path()).unwrap();
        assert!(space.total_bytes > 0);
        assert!(space.usable_bytes <= space.total_bytes);
        assert!(of(&dir.path().join("missing")).is_err());
    }
}
