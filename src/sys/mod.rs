//! The fence around `unsafe`: every system call scram makes that the safe crates (`nix`) do not
//! cover lives here, behind a safe API.
//!
//! - [`packet`]: AF_PACKET sockets and their options (TPACKET_V3 ring set-up, fanout, promiscuous
//!   membership, PACKET_STATISTICS).
//! - [`ring`]: the memory-mapped receive ring and the hand-over of blocks between kernel and user
//!   space through each block's status word, with acquire/release atomics.
//! - [`process`]: fork, for the sandbox self-check; descriptors inherited across `execve`.
//! - [`event`]: a privilege-separation channel end registered with the control loop's reactor.
//! - [`cpu`]: the cache prefetch hint the detector tables give ahead of a lookup.
//! - [`huge`]: tables of their own mapping, advised for transparent huge pages.
//! - [`fake`]: the seam tests use to answer the set-up calls in place of the kernel.
//!
//! Never here: policy. This module opens, maps and asks; what to open and what to do with the
//! answers is decided by the layers above.
#![allow(unsafe_code)]

pub mod cpu;
pub mod event;
pub mod fake;
pub mod huge;
pub mod packet;
pub mod process;
pub mod ring;

use std::io;

/// A failed system call: which call, and the error the kernel gave.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct SyscallError {
    /// The call (and, for socket options, the option) that failed.
    pub call: &'static str,
    /// The kernel's answer.
    #[source]
    pub source: io::Error,
}

impl SyscallError {
    /// Captures `errno` right after `call` failed.
    pub(crate) fn last(call: &'static str) -> Self {
        SyscallError {
            call,
            source: io::Error::last_os_error(),
        }
    }

    /// The raw errno, for callers that turn specific errors into their own variants.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}
