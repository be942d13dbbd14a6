//! The tools' allocator: the system's, asking the kernel to back large blocks with 2 MiB pages.
//!
//! Volumes are tens to hundreds of megabytes, written once soon after they are allocated; with
//! 4 KiB pages the first write of each page is a fault (a tenth to a fifth of lung-seg's time
//! went there). Where transparent huge pages are on "madvise" (the common default) this makes
//! them one fault per 2 MiB; where they are off or "always" it changes nothing.

use std::alloc::{GlobalAlloc, Layout, System};

/// A huge page.
const HUGE: usize = 2 << 20;
/// Blocks from this size on are advised (smaller ones would round up too much).
const ADVISE_FROM: usize = 8 * HUGE;

pub struct HugePages;

/// Mark the whole huge pages inside `[p, p + len)` for huge-page backing. Advice only: a
/// failure (old kernel, THP compiled out) leaves ordinary pages.
fn advise(p: *mut u8, len: usize) {
    if p.is_null() || len < ADVISE_FROM {
        return;
    }
    let start = (p as usize).next_multiple_of(HUGE);
    let end = (p as usize + len) & !(HUGE - 1);
    if end > start {
        // SAFETY: the range lies inside a block the allocator just handed out; madvise only
        // changes how it is backed, never its contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

// SAFETY: every call goes to `System` unchanged; `advise` only adds a hint on the result.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc`'s contract, which is `System`'s.
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc`'s contract, which is `System`'s.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc`'s contract, which is `System`'s.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        advise(p, new_size);
        p
    }
}

/// Blocks from this size on are mapped for themselves and unmapped when freed.
const UNMAP_FROM: usize = 4 << 20;

/// Have the system allocator give blocks of `UNMAP_FROM` bytes and more back to the kernel when
/// they are freed. glibc raises its threshold for that (up to 32 MiB) each time such a block is
/// freed; blocks under it then come from its heap and stay resident once freed. lung-seg frees
/// volume-sized masks and then allocates and frees masks the size of each lung's box: that kept
/// about 13 MB more at its peak. Other tools allocate the same sizes again, where the heap's
/// reuse is faster.
pub fn unmap_freed_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter; it is called before any thread allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, UNMAP_FROM as libc::c_int);
    }
}
