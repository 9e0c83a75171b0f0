//! The memory-mapped TPACKET_V3 receive ring and the block hand-over protocol.
//!
//! The ring is `block_count` blocks of `block_size` bytes shared with the kernel. Each block starts
//! with a `tpacket_block_desc`; its `block_status` word (offset 8) says who owns the block: the
//! kernel fills blocks while the word is `TP_STATUS_KERNEL` (0) and hands one over by setting
//! `TP_STATUS_USER`. User space reads the word with `Acquire` (so the frames the kernel wrote are
//! visible), walks the block, and gives it back by storing `TP_STATUS_KERNEL` with `Release` (so
//! its reads are done before the kernel writes again). [`Block`] is that protocol as a type: it
//! exists only while user space owns the block and gives it back when dropped.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::slice;
use std::sync::atomic::{AtomicU32, Ordering};

use super::SyscallError;

/// Offset of `hdr.bh1.block_status` in `struct tpacket_block_desc`.
pub const BLOCK_STATUS_OFFSET: usize = 8;
/// `TP_STATUS_KERNEL`: the kernel owns the block.
pub const TP_STATUS_KERNEL: u32 = 0;
/// `TP_STATUS_USER`: user space owns the block.
pub const TP_STATUS_USER: u32 = 1;

/// A receive ring mapping: `block_count` blocks of `block_size` bytes.
#[derive(Debug)]
pub struct Ring {
    base: NonNull<u8>,
    block_size: usize,
    block_count: usize,
    /// Anonymous rings are not shared with a kernel socket; tests and benches play the kernel.
    #[cfg_attr(not(any(test, feature = "test-support")), allow(dead_code))]
    anonymous: bool,
}

// SAFETY: the mapping is owned by this value alone (no other Rust value points into it) and has
// no thread affinity; moving it to a worker thread moves sole ownership with it.
unsafe impl Send for Ring {}

impl Ring {
    /// Maps the receive ring of the packet socket `fd`, whose `PACKET_RX_RING` was set with the
    /// same geometry.
    pub fn map(
        fd: BorrowedFd<'_>,
        block_size: usize,
        block_count: usize,
    ) -> Result<Self, SyscallError> {
        let call = super::fake::Call::Map {
            block_size,
            block_count,
        };
        if let Some(answer) = super::fake::intercept(call, "mmap(ring)") {
            answer?;
            return Self::mmap(None, block_size, block_count);
        }
        Self::mmap(Some(fd), block_size, block_count)
    }

    /// Maps anonymous memory with the layout of a ring, all blocks owned by the "kernel". Used to
    /// test and benchmark the block walker on synthetic layouts without a socket.
    #[cfg(any(test, feature = "test-support"))]
    pub fn anonymous(block_size: usize, block_count: usize) -> Result<Self, SyscallError> {
        Self::mmap(None, block_size, block_count)
    }

    fn mmap(
        fd: Option<BorrowedFd<'_>>,
        block_size: usize,
        block_count: usize,
    ) -> Result<Self, SyscallError> {
        let len = block_size
            .checked_mul(block_count)
            .filter(|&len| len > 0 && block_size >= 4096 && block_size.is_multiple_of(4096))
            .ok_or(SyscallError {
                call: "mmap(ring)",
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            })?;
        let (flags, raw_fd) = match fd {
            Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd.as_raw_fd()),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping at an address of the kernel's choosing; it aliases no Rust
        // object. The result is checked for MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw_fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(SyscallError::last("mmap(ring)"));
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(SyscallError {
            call: "mmap(ring)",
            source: std::io::Error::from_raw_os_error(libc::EFAULT),
        })?;
        Ok(Ring {
            base,
            block_size,
            block_count,
            anonymous: fd.is_none(),
        })
    }

    /// Number of blocks.
    pub fn block_count(&self) -> usize {
        self.block_count
    }

    /// Bytes per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    fn status(&self, index: usize) -> &AtomicU32 {
        assert!(
            index < self.block_count,
            "block index {index} outside the ring"
        );
        // SAFETY: index < block_count, so the word lies inside the mapping; blocks are
        // page-aligned, so offset 8 is 4-byte aligned. The kernel accesses this word atomically
        // too, and every Rust access goes through this AtomicU32.
        unsafe {
            AtomicU32::from_ptr(
                self.base
                    .as_ptr()
                    .add(index * self.block_size + BLOCK_STATUS_OFFSET)
                    .cast::<u32>(),
            )
        }
    }

    /// Takes block `index` if the kernel has handed it to user space.
    pub fn try_acquire(&mut self, index: usize) -> Option<Block<'_>> {
        let status = self.status(index).load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        Some(Block { ring: self, index })
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Plays the kernel on an anonymous ring: copies `image` into block `index` and hands the
    /// block to user space. Returns false (and does nothing) on a kernel-backed ring, when the
    /// block is still owned by user space, or when `image` is larger than a block.
    pub fn publish(&mut self, index: usize, image: &[u8]) -> bool {
        if !self.anonymous || image.len() > self.block_size || index >= self.block_count {
            return false;
        }
        if self.status(index).load(Ordering::Acquire) != TP_STATUS_KERNEL {
            return false;
        }
        // SAFETY: the block lies inside the mapping (index < block_count, len <= block_size), is
        // owned by the "kernel" side (status checked above) so no `Block` borrows it, and `&mut
        // self` excludes any other access while we copy.
        unsafe {
            std::ptr::copy_nonoverlapping(
                image.as_ptr(),
                self.base.as_ptr().add(index * self.block_size),
                image.len(),
            );
        }
        let status = u32::from_ne_bytes(
            image
                .get(BLOCK_STATUS_OFFSET..BLOCK_STATUS_OFFSET + 4)
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0; 4]),
        );
        self.status(index)
            .store(status | TP_STATUS_USER, Ordering::Release);
        true
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `base` and the length are those of the mapping created in `mmap`, and no
        // `Block` can outlive `self` (it borrows it), so nothing points into the mapping any more.
        unsafe {
            libc::munmap(
                self.base.as_ptr().cast(),
                self.block_size * self.block_count,
            );
        }
    }
}

/// A block owned by user space. Dereferences to the block's bytes; dropping it gives the block
/// back to the kernel.
#[derive(Debug)]
pub struct Block<'a> {
    ring: &'a mut Ring,
    index: usize,
}

impl Block<'_> {
    /// Position of this block in the ring.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl std::ops::Deref for Block<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the block lies inside the mapping. User space owns it (TP_STATUS_USER was seen
        // with Acquire in `try_acquire`), so the kernel does not write it until `drop` below hands
        // it back, and `drop` cannot run while this borrow of `self` is alive.
        unsafe {
            slice::from_raw_parts(
                self.ring
                    .base
                    .as_ptr()
                    .add(self.index * self.ring.block_size),
                self.ring.block_size,
            )
        }
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        self.ring
            .status(self.index)
            .store(TP_STATUS_KERNEL, Ordering::Release);
    }
}
