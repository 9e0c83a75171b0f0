//! A seam under the packet-socket set-up calls, so the paths that answer the kernel's refusals
//! (a smaller ring after ENOMEM, one worker when a down link refuses a fanout group, a missing
//! privilege) are tested without root and without a kernel that refuses. A test installs a
//! script for its own thread with [`with`]; every set-up call then asks the script instead of
//! the kernel. Only test builds have scripts: in the daemon [`intercept`] is a constant `None`.
//! (aya's `sys::fake` is the model.)

use super::packet::RingGeometry;
use super::SyscallError;

/// A set-up call, as the script sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `socket(AF_PACKET)`.
    Socket,
    /// `setsockopt(PACKET_VERSION)`.
    Version,
    /// `setsockopt(PACKET_RX_RING)` with this geometry.
    RxRing(RingGeometry),
    /// `bind` to this interface index.
    Bind(u32),
    /// `setsockopt(PACKET_ADD_MEMBERSHIP)` for promiscuous mode on this interface index.
    Promiscuous(u32),
    /// `setsockopt(PACKET_FANOUT)` creating a group; the answer is the group id.
    CreateFanout,
    /// `setsockopt(PACKET_FANOUT)` joining group `id`.
    JoinFanout(u16),
    /// `mmap` of the ring (answered with anonymous memory when the script says yes).
    Map {
        /// Bytes per block.
        block_size: usize,
        /// Blocks.
        block_count: usize,
    },
}

/// The script's answer: a value (the fanout id; else ignored) or an errno.
pub type Answer = Result<u32, i32>;

#[cfg(test)]
type Script = Box<dyn FnMut(Call) -> Answer>;

#[cfg(test)]
thread_local! {
    static SCRIPT: std::cell::RefCell<Option<Script>> = const { std::cell::RefCell::new(None) };
}

/// Runs `body` with `script` answering this thread's set-up calls.
#[cfg(test)]
pub fn with<R>(script: impl FnMut(Call) -> Answer + 'static, body: impl FnOnce() -> R) -> R {
    struct Uninstall;
    impl Drop for Uninstall {
        fn drop(&mut self) {
            SCRIPT.with(|s| s.replace(None));
        }
    }
    SCRIPT.with(|s| s.replace(Some(Box::new(script))));
    let _uninstall = Uninstall;
    body()
}

/// The script's answer to `call` (named `name` in errors), or `None` to make the real call.
#[inline]
pub(crate) fn intercept(call: Call, name: &'static str) -> Option<Result<u32, SyscallError>> {
    #[cfg(test)]
    {
        SCRIPT.with(|s| {
            s.borrow_mut().as_mut().map(|f| {
                f(call).map_err(|errno| SyscallError {
                    call: name,
                    source: std::io::Error::from_raw_os_error(errno),
                })
            })
        })
    }
    #[cfg(not(test))]
    {
        let _ = (call, name);
        None
    }
}
