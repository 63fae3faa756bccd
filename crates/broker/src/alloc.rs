//! The global allocator: the system's, except that very large requests are reserved lazily.
//!
//! Why: the generated Kafka decoders size a `Vec` from an array count read off the wire
//! before checking that the bytes are there (`Vec::with_capacity(n)`). A 20-byte hostile
//! frame can declare two billion elements. The kernel refuses a mapping larger than memory
//! under its default overcommit heuristic, and Rust aborts the process on a refused
//! allocation. Mapping such requests with `MAP_NORESERVE` makes the kernel hand out address
//! space without committing memory: the decoder then fails on the missing bytes, the `Vec`
//! is dropped, and nothing was ever touched. Memory actually written is still limited by
//! `socket.request.max.bytes`. (Under `vm.overcommit_memory=2` the kernel ignores
//! `MAP_NORESERVE` and such a request still fails; run Klamm with the default heuristic.)
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Requests of at least this many bytes are mapped lazily. Nothing Klamm allocates on
/// purpose comes near it: the largest legitimate buffer is one request frame.
pub const LAZY_ALLOC_MIN_BYTES: usize = 1 << 30;
const PAGE_BYTES: usize = 4096;

pub struct GuardedAlloc;

fn is_lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_ALLOC_MIN_BYTES && layout.align() <= PAGE_BYTES
}

unsafe fn map_lazy(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no preconditions.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: small requests go to `System` unchanged. Large ones get fresh page-aligned
// anonymous mappings (alignment ≤ a page is checked), zero-filled by the kernel, released
// with `munmap` of the same size; `realloc` across the threshold copies the smaller length.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            // SAFETY: see the impl comment.
            unsafe { map_lazy(layout.size()) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            // SAFETY: anonymous mappings are zero-filled.
            unsafe { map_lazy(layout.size()) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_lazy(&layout) {
            // SAFETY: `ptr` came from `map_lazy` with this size (same layout rule).
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_lazy(&layout) && !is_lazy(&new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: allocate, copy the common prefix, free the old block: each call is made
        // with the layout its block was (or will be) allocated with.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservation_is_lazy_and_usable() {
        let a = GuardedAlloc;
        // 64 GiB: more than this machine has; must succeed without committing memory.
        let layout = Layout::from_size_align(64usize << 30, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            *p = 1;
            *p.add(layout.size() - 1) = 2;
            let q = a.realloc(p, layout, 4096);
            assert_eq!(*q, 1);
            a.dealloc(q, Layout::from_size_align(4096, 8).unwrap());
        }
    }
}
