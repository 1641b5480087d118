//! The process's memory allocator: mimalloc, entered through its plain `mi_malloc` family
//! whenever a layout allows it.
//!
//! The `mimalloc` crate sends every allocation through `mi_malloc_aligned`, whose fast path
//! covers small blocks only; the futures and buffers a call allocates (1–16 KiB) took the
//! generic aligned path. Every mimalloc block is aligned to at least one machine word, so an
//! alignment up to that needs no aligned entry point.
//!
//! Owns: choosing the entry point per layout. Must never: return memory less aligned than the
//! layout asks (larger alignments keep the aligned entry points), or free through anything but
//! `mi_free`.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// Alignment every mimalloc block has (its smallest size class is one word, and blocks of a
/// class are laid out at multiples of it).
const WORD_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc, with the unaligned entry points for word-aligned layouts.
pub struct Mimalloc;

// SAFETY: every method forwards to mimalloc, which returns null on failure and otherwise a
// block of at least the requested size; layouts with alignment above one word use mimalloc's
// aligned entry points, the rest get blocks that are word-aligned by construction. Blocks are
// freed and resized only by mimalloc, which accepts blocks from any of its entry points.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation entry points take any size and a power-of-two alignment.
        unsafe {
            if layout.align() <= WORD_ALIGN {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if layout.align() <= WORD_ALIGN {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a block this allocator returned with `layout`; the new
        // block keeps that alignment by the same rule as `alloc`.
        unsafe {
            if layout.align() <= WORD_ALIGN {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_their_layout_asks() {
        let mut blocks = Vec::new();
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1usize, 3, 8, 24, 40, 100, 1000, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: the layout has a non-zero size; each block is freed below with it.
                let p = unsafe { Mimalloc.alloc(layout) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                // SAFETY: `p` holds `size` writable bytes.
                unsafe { p.write_bytes(0xA5, size) };
                // SAFETY: `p` came from `alloc` with `layout`; the block grows and keeps its
                // first bytes.
                let q = unsafe { Mimalloc.realloc(p, layout, size * 2) };
                assert!(!q.is_null());
                assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                // SAFETY: the first `size` bytes were copied from the old block.
                assert_eq!(unsafe { *q.add(size - 1) }, 0xA5);
                blocks.push((q, Layout::from_size_align(size * 2, align).expect("layout")));
            }
        }
        for (p, layout) in blocks {
            // SAFETY: each block came from this allocator with this layout.
            unsafe { Mimalloc.dealloc(p, layout) };
        }
        let layout = Layout::from_size_align(64, 8).expect("layout");
        // SAFETY: a zeroed block of 64 bytes, read and then freed with its layout.
        unsafe {
            let z = Mimalloc.alloc_zeroed(layout);
            assert!(!z.is_null());
            assert!(std::slice::from_raw_parts(z, 64).iter().all(|&b| b == 0));
            Mimalloc.dealloc(z, layout);
        }
    }
}
