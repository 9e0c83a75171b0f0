//! Registering a privilege-separation channel end with a control loop's reactor, so the loop
//! sleeps until the other part writes.

use std::io;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::privsep::channel::Endpoint;

/// `end`, woken when a datagram waits on it. Must be called inside a tokio runtime.
pub fn readable<E: Endpoint>(end: E) -> io::Result<AsyncFd<E>> {
    // SAFETY: the AsyncFd takes ownership of `end`; an `Endpoint` (a sealed trait: only the two
    // channel ends) owns its descriptor and always reports that one, so the descriptor stays
    // open, and the same, for as long as it is registered, and is closed only when the
    // AsyncFd's drop has deregistered it.
    unsafe { AsyncFd::register_with_interest(end, Interest::READABLE) }.map_err(io::Error::from)
}
