//! Processor hints.

/// Starts loading the cache line holding `at` into the first-level cache: a hint that changes
/// no result, for code that will read `at` a little later, after other work.
#[inline(always)]
pub fn prefetch<T: ?Sized>(at: &T) {
    prefetch_ptr(std::ptr::from_ref(at).cast::<u8>());
}

/// [`prefetch`] of a raw address, which need not point to anything: for a hint at a place
/// computed without a bounds check (a prefetch reads nothing and cannot fault).
#[inline(always)]
pub fn prefetch_ptr<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is part of SSE, which every x86_64 processor has (the target's
    // baseline); it reads nothing architecturally and cannot fault, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(at.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
