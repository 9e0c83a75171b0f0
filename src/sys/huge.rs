//! Tables in huge pages.
//!
//! The flow tables are looked up at a random place for every packet, a few MiB of them per
//! worker: with 4 KiB pages nearly every lookup also misses the TLB, and the page walk (dear in a
//! virtual machine, where it is two walks) was the largest single stall of the packet path.
//! [`HugeSlice`] maps such a table on its own, aligned to 2 MiB, and asks the kernel to back it
//! with transparent huge pages (`MADV_HUGEPAGE`, which works under the THP settings `madvise` and
//! `always`), so one TLB entry covers 2 MiB of it. Where the kernel gives none (THP off, no huge
//! page free) the table is the same, in small pages.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A huge page.
const HUGE: usize = 2 << 20;

/// A slice of `T` filled at creation and fixed in length. Tables of at least [`HUGE`] bytes
/// live in a mapping of their own whose whole 2 MiB pages are advised for huge pages; smaller
/// ones on the heap (a huge page for less would only waste memory). Either way an access is a
/// slice's: the pointer and length, no branch on where they live.
pub struct HugeSlice<T> {
    /// The first element: of a mapping 2 MiB aligned, or of a leaked `Box<[T]>`.
    ptr: NonNull<T>,
    /// Elements, each written at creation.
    len: usize,
    /// Bytes mapped from `ptr`; 0 for a box.
    mapped: usize,
}

// SAFETY: a `HugeSlice` owns its elements as a `Box<[T]>` does; the mapping is private to it.
unsafe impl<T: Send> Send for HugeSlice<T> {}
// SAFETY: shared access only hands out `&[T]`.
unsafe impl<T: Sync> Sync for HugeSlice<T> {}

impl<T: Clone> HugeSlice<T> {
    /// `len` copies of `fill`.
    pub fn new(len: usize, fill: T) -> Self {
        let size = len.saturating_mul(std::mem::size_of::<T>());
        if size >= HUGE && std::mem::align_of::<T>() <= HUGE {
            if let Some((base, bytes)) = map_aligned(size) {
                let ptr = base.cast::<T>();
                for i in 0..len {
                    // SAFETY: the mapping holds `bytes >= len * size_of::<T>()` writable bytes
                    // from `ptr`, which is aligned for `T` (2 MiB, checked above), so element
                    // `i < len` is in it; nothing was there to drop.
                    unsafe { ptr.as_ptr().add(i).write(fill.clone()) };
                }
                return HugeSlice {
                    ptr,
                    len,
                    mapped: bytes,
                };
            }
        }
        HugeSlice::boxed(vec![fill; len].into_boxed_slice())
    }
}

impl<T> HugeSlice<T> {
    /// The elements of `b`, on the heap.
    fn boxed(b: Box<[T]>) -> Self {
        let len = b.len();
        let raw = Box::into_raw(b);
        HugeSlice {
            ptr: NonNull::new(raw.cast::<T>()).unwrap_or(NonNull::dangling()),
            len,
            mapped: 0,
        }
    }

    /// Whether its memory is a mapping of its own, advised for huge pages.
    pub fn mapped(&self) -> bool {
        self.mapped > 0
    }
}

impl<T: Clone> Clone for HugeSlice<T> {
    fn clone(&self) -> Self {
        match self.first() {
            Some(first) => {
                let mut copy = HugeSlice::new(self.len(), first.clone());
                copy.clone_from_slice(self);
                copy
            }
            None => HugeSlice::boxed(Box::new([])),
        }
    }
}

/// Maps at least `size` bytes, anonymous and private, at a 2 MiB boundary, and advises its whole
/// huge pages for transparent huge pages; `None` if the kernel maps nothing. The advice is a
/// hint: refused (THP compiled out), the mapping is used all the same.
fn map_aligned(size: usize) -> Option<(NonNull<u8>, usize)> {
    let bytes = size.checked_next_multiple_of(4096)?;
    let span = bytes.checked_add(HUGE)?;
    // SAFETY: a new anonymous private mapping; no existing memory is touched.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = start.next_multiple_of(HUGE);
    let head = aligned - start;
    let tail = span - head - bytes;
    // SAFETY: both ranges lie inside the mapping just made, page aligned (`start`, `aligned`
    // and `bytes` are page multiples), and nothing refers to them.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + bytes) as *mut libc::c_void, tail);
        }
        // The whole huge pages: a partial one at the end stays in small pages.
        let whole = bytes / HUGE * HUGE;
        libc::madvise(aligned as *mut libc::c_void, whole, libc::MADV_HUGEPAGE);
    }
    NonNull::new(aligned as *mut u8).map(|p| (p, bytes))
}

impl<T> Deref for HugeSlice<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `len` elements from `ptr` were written at creation (by `new` or the box) and
        // live as long as `self`, which owns them.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for HugeSlice<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        let elements = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        if self.mapped == 0 {
            // SAFETY: `ptr` and `len` are those of the box `boxed` leaked, given back once.
            drop(unsafe { Box::from_raw(elements) });
            return;
        }
        // SAFETY: the `len` elements were written at creation and are dropped once, here; then
        // the mapping made by `map_aligned` (`mapped` bytes from `ptr`) is unmapped, and nothing
        // refers to it any more.
        unsafe {
            std::ptr::drop_in_place(elements);
            libc::munmap(self.ptr.as_ptr().cast(), self.mapped);
        }
    }
}

impl<T> std::fmt::Debug for HugeSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeSlice")
            .field("len", &self.len())
            .field("mapped", &self.mapped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_table_is_mapped_at_a_huge_page_and_reads_back_what_was_written() {
        let mut t = HugeSlice::new(3 * HUGE / 8 + 5, 7u64);
        assert!(t.mapped());
        assert_eq!(t.as_ptr() as usize % HUGE, 0);
        assert!(t.iter().all(|&x| x == 7));
        let n = t.len();
        t[n - 1] = 9;
        assert_eq!(t[n - 1], 9);
        let small = HugeSlice::new(100, 1u8);
        assert!(!small.mapped());
        assert_eq!(&small[..], &[1u8; 100][..]);
    }

    #[test]
    fn elements_that_own_memory_are_dropped_with_the_table() {
        let shared = std::sync::Arc::new(());
        let t = HugeSlice::new(HUGE / 8, std::sync::Arc::clone(&shared));
        assert!(t.mapped());
        assert_eq!(std::sync::Arc::strong_count(&shared), HUGE / 8 + 1);
        drop(t);
        assert_eq!(std::sync::Arc::strong_count(&shared), 1);
    }
}
