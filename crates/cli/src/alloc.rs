//! The tools' allocator: the system's for small blocks; large ones mapped for themselves on
//! 2 MiB boundaries and backed by 2 MiB pages.
//!
//! Volumes, masks and working boxes are megabytes to hundreds of megabytes, written soon after
//! they are allocated. With 4 KiB pages the first write of each page is a fault, and each fault
//! costs more in a virtual machine. Where transparent huge pages are on "madvise" (the common
//! default), a 2 MiB-aligned mapping advised for them takes one fault per 2 MiB. glibc's own
//! mappings start 16 bytes past a page, so up to 2 MiB at each end of every block stayed in
//! 4 KiB pages, and blocks under 16 MiB (lung-seg's boxes, its ball's window) were not advised
//! at all: lung-seg took 34,000 faults on the chest at 1 mm, 11,000 this way, and 12% less time.
//! The price: a huge page is backed whole once any of it is touched. vol-mesh's peak on the
//! chest at 1 mm rose from 140-146 to 150-164 MB with this alone: its stitch copies eight chunks
//! in parallel into the mesh's arrays, whose partly written huge pages count whole. (It now frees
//! its input before the stitch, and peaks at 137-142 MB.) Where huge pages are off or "always"
//! only the alignment changes.
//!
//! Large blocks are also given back to the kernel when freed, whatever their size: glibc keeps
//! blocks under 32 MiB resident once freed, which raised lung-seg's peak by its lung boxes.

use std::alloc::{GlobalAlloc, Layout, System};

/// A huge page.
const HUGE: usize = 2 << 20;
/// Blocks from this size on are mapped for themselves, and unmapped when freed.
const MAP_FROM: usize = 2 * HUGE;
/// The kernel's page.
const PAGE: usize = 4096;

pub struct HugePages;

/// Whether a block is one of ours: large, aligned to at most a page (a block `mremap` moves
/// keeps only page alignment).
fn mapped(layout: Layout) -> bool {
    layout.size() >= MAP_FROM && layout.align() <= PAGE
}

/// A new zeroed mapping of at least `size` bytes on a 2 MiB boundary, advised for huge pages;
/// null when the kernel refuses (as `alloc` must return).
fn map(size: usize) -> *mut u8 {
    let len = size.next_multiple_of(PAGE);
    // Map a huge page more than needed, then give back the ends outside the aligned block.
    let Some(span) = len.checked_add(HUGE) else { return std::ptr::null_mut() };
    // SAFETY: an anonymous private mapping at an address of the kernel's choice touches no
    // existing memory; the unmapped ends lie inside it and are never handed out.
    unsafe {
        let p = libc::mmap(std::ptr::null_mut(), span, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let base = p as usize;
        let start = base.next_multiple_of(HUGE);
        if start > base {
            libc::munmap(p, start - base);
        }
        let end = start + len;
        if base + span > end {
            libc::munmap(end as *mut libc::c_void, base + span - end);
        }
        // Advice only: a kernel without huge pages leaves ordinary ones.
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        start as *mut u8
    }
}

/// Give back a block from [`map`] (or moved by `mremap`) of `size` bytes.
///
/// # Safety
/// `p` is a live block of ours of that size.
unsafe fn unmap(p: *mut u8, size: usize) {
    // SAFETY: per the contract, the whole page-rounded block is one mapping of ours.
    unsafe { libc::munmap(p as *mut libc::c_void, size.next_multiple_of(PAGE)) };
}

// SAFETY: a block is ours exactly when its layout says `mapped`, from its allocation to its
// release (realloc moves it between the two kinds by size); everything else is `System`'s.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            return map(layout.size());
        }
        // SAFETY: our caller upholds `GlobalAlloc`'s contract, which is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            // Fresh anonymous pages read as zero: nothing to clear.
            return map(layout.size());
        }
        // SAFETY: our caller upholds `GlobalAlloc`'s contract, which is `System`'s.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout) {
            // SAFETY: a block of this layout came from `map` (or `mremap` below).
            return unsafe { unmap(ptr, layout.size()) };
        }
        // SAFETY: `ptr` came from `System` through this allocator, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: our caller guarantees a valid layout for `new_size` with the same alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (mapped(layout), mapped(new_layout)) {
            (false, false) => {
                // SAFETY: our caller upholds `GlobalAlloc`'s contract, which is `System`'s.
                unsafe { System.realloc(ptr, layout, new_size) }
            }
            (true, true) => {
                // The kernel moves the pages (no copy), as glibc does for its own mappings, and
                // the mapping keeps its huge-page advice, grown part included. A moved block may
                // lose the 2 MiB boundary: only its ends' pages are small.
                let (old_len, new_len) = (layout.size().next_multiple_of(PAGE), new_size.next_multiple_of(PAGE));
                // SAFETY: `ptr` is our mapping of `old_len` bytes; on failure it is left as it was.
                let q = unsafe { libc::mremap(ptr as *mut libc::c_void, old_len, new_len, libc::MREMAP_MAYMOVE) };
                if q == libc::MAP_FAILED {
                    return std::ptr::null_mut();
                }
                q as *mut u8
            }
            _ => {
                // Across the threshold: a block of the other kind, the common bytes copied.
                // SAFETY: `new_layout` is valid (above) and nonzero (one side is large).
                let q = unsafe { self.alloc(new_layout) };
                if !q.is_null() {
                    // SAFETY: both blocks are live and distinct, each at least this long.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                q
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path of the allocator, checked through its contents: small and large blocks,
    /// zeroed ones, growth and shrinking within and across the threshold.
    #[test]
    fn blocks_keep_their_contents_across_every_path() {
        let a = HugePages;
        for &(from, to) in
            &[(100, 5000), (MAP_FROM + 1, 3 * MAP_FROM), (3 * MAP_FROM, MAP_FROM), (1000, MAP_FROM + 7), (MAP_FROM + 7, 1000)]
        {
            let layout = Layout::from_size_align(from, 8).unwrap();
            // SAFETY: a valid nonzero layout; every block is used within its size and freed once.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert!(std::slice::from_raw_parts(p, from).iter().all(|&b| b == 0), "zeroed block of {from} bytes");
                if mapped(layout) {
                    assert_eq!(p as usize % HUGE, 0, "a large block starts on a huge page");
                }
                for i in 0..from {
                    *p.add(i) = (i % 251) as u8;
                }
                let q = a.realloc(p, layout, to);
                assert!(!q.is_null());
                let kept = from.min(to);
                assert!((0..kept).all(|i| *q.add(i) == (i % 251) as u8), "{from} -> {to} bytes kept the common part");
                for i in 0..to {
                    *q.add(i) = 7;
                }
                a.dealloc(q, Layout::from_size_align(to, 8).unwrap());
            }
        }
    }
}
