//! Registering a privilege-separation channel end with the control loop's reactor, so the
//! privileged part sleeps until the parser writes.

use std::io;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::privsep::channel::PrivilegedEnd;

/// `end`, woken when a datagram waits on it. Must be called inside a tokio runtime.
pub fn readable(end: PrivilegedEnd) -> io::Result<AsyncFd<PrivilegedEnd>> {
    // SAFETY: the AsyncFd takes ownership of `end`, which owns its descriptor and always
    // reports that one: the descriptor stays open, and the same, for as long as it is
    // registered, and is closed only when the AsyncFd's drop has deregistered it.
    unsafe { AsyncFd::register_with_interest(end, Interest::READABLE) }.map_err(io::Error::from)
}
