//! The global allocator of the oxserve binaries (`oxserve` and the `oxserve-bare` ceiling):
//! mimalloc.
//!
//! Every request allocates and frees a handful of short-lived buffers (headers, tensors,
//! the request's future, the encoded answer), which mimalloc serves with fewer instructions
//! than glibc's allocator. The `mimalloc` crate's allocator passes every layout to
//! mimalloc's *aligned* entry points, whose fast path only covers blocks up to 1 KiB: a
//! larger block, even one needing just the word alignment every mimalloc block has, goes
//! through its generic over-allocating path (about 300 instructions instead of 40). This
//! allocator calls the plain entry points whenever the alignment is one that every mimalloc
//! block already has, and the aligned ones otherwise.

#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment of every block mimalloc hands out: block sizes are whole words and pages
/// start their blocks on 16-byte boundaries.
const BLOCK_ALIGN: usize = core::mem::size_of::<usize>();

/// mimalloc as a Rust global allocator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

#[inline]
fn plain(align: usize) -> bool {
    align <= BLOCK_ALIGN
}

// SAFETY: every method returns memory from mimalloc that satisfies the layout (plain calls
// only for alignments every block has, aligned calls for the rest) or null on failure, and
// `dealloc`/`realloc` only get pointers this allocator returned, which `mi_free` and
// `mi_realloc*` accept whichever entry point allocated them.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation functions may be called with any size/alignment.
        unsafe {
            if plain(layout.align()) {
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
            if plain(layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract), so from mimalloc.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract); the
        // new block keeps the layout's alignment.
        unsafe {
            if plain(layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    /// Allocates, fills, grows and frees blocks of many sizes and alignments, checking
    /// each block's alignment and that its contents survive `realloc`.
    #[test]
    fn blocks_have_their_alignment_and_keep_their_contents() {
        let a = Allocator;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1usize, 7, 8, 15, 16, 24, 100, 1000, 1024, 1025, 1288, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; every pointer is freed once with its layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    for i in 0..size {
                        p.add(i).write(i as u8);
                    }
                    let grown = a.realloc(p, layout, size * 3);
                    assert!(!grown.is_null());
                    assert_eq!(grown as usize % align, 0, "grown: size {size} align {align}");
                    let kept: Vec<u8> = (0..size).map(|i| grown.add(i).read()).collect();
                    assert!(kept.iter().enumerate().all(|(i, &b)| b == i as u8));
                    a.dealloc(grown, Layout::from_size_align(size * 3, align).unwrap());

                    let z = a.alloc_zeroed(layout);
                    assert!(!z.is_null());
                    assert_eq!(z as usize % align, 0, "zeroed: size {size} align {align}");
                    assert!((0..size).all(|i| z.add(i).read() == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
