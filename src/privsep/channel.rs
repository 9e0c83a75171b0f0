//! The channel's transport: a `SOCK_SEQPACKET` socketpair, so each message is one datagram, never
//! split or merged, and a datagram longer than [`MAX_MESSAGE`] is seen as cut short (and refused)
//! rather than read as two.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

use super::wire::{ToParser, ToPrivileged, WireError, MAX_MESSAGE};

/// Why a message did not cross.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The system call failed.
    #[error("{call} on the privilege-separation channel: {source}")]
    Io {
        /// Which call.
        call: &'static str,
        /// Its error.
        source: nix::Error,
    },
    /// The other end closed it.
    #[error("the other end closed the channel")]
    Closed,
    /// A datagram longer than any message.
    #[error("a datagram longer than {MAX_MESSAGE} bytes")]
    Oversized,
    /// Bytes that are not a message.
    #[error("a malformed message: {0}")]
    Wire(#[from] WireError),
}

/// One end of the channel.
#[derive(Debug)]
pub struct End {
    fd: OwnedFd,
}

/// The privileged part's end.
#[derive(Debug)]
pub struct PrivilegedEnd(End);

/// The parser's end.
#[derive(Debug)]
pub struct ParserEnd(End);

/// A new channel: the privileged part keeps one end, the parser the other.
pub fn pair() -> Result<(PrivilegedEnd, ParserEnd), ChannelError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|source| ChannelError::Io {
        call: "socketpair",
        source,
    })?;
    Ok((PrivilegedEnd(End { fd: a }), ParserEnd(End { fd: b })))
}

impl End {
    fn send(&self, (buf, len): ([u8; MAX_MESSAGE], usize)) -> Result<(), ChannelError> {
        let n =
            send(self.fd.as_raw_fd(), &buf[..len], MsgFlags::MSG_NOSIGNAL).map_err(|source| {
                match source {
                    nix::Error::EPIPE | nix::Error::ECONNRESET => ChannelError::Closed,
                    source => ChannelError::Io {
                        call: "send",
                        source,
                    },
                }
            })?;
        debug_assert_eq!(n, len, "a SEQPACKET send is all or nothing");
        Ok(())
    }

    /// One datagram into `buf`; `None` when none waits and `wait` is false.
    fn recv<'b>(
        &self,
        buf: &'b mut [u8; MAX_MESSAGE + 1],
        wait: bool,
    ) -> Result<Option<&'b [u8]>, ChannelError> {
        let flags = if wait {
            MsgFlags::empty()
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        // One byte more than the longest message: a datagram that fills it was longer (the rest
        // of a SEQPACKET datagram is discarded, never read as the next one).
        match recv(self.fd.as_raw_fd(), buf, flags) {
            Ok(0) => Err(ChannelError::Closed),
            Ok(n) if n > MAX_MESSAGE => Err(ChannelError::Oversized),
            Ok(n) => Ok(Some(&buf[..n])),
            Err(nix::Error::EAGAIN) if !wait => Ok(None),
            // The other end exited with a datagram unread.
            Err(nix::Error::ECONNRESET) => Err(ChannelError::Closed),
            Err(source) => Err(ChannelError::Io {
                call: "recv",
                source,
            }),
        }
    }
}

impl End {
    /// The next datagram decoded by `decode`; `None` when none waits and `wait` is false.
    fn recv_as<M>(
        &self,
        wait: bool,
        decode: fn(&[u8]) -> Result<M, WireError>,
    ) -> Result<Option<M>, ChannelError> {
        let mut buf = [0; MAX_MESSAGE + 1];
        match self.recv(&mut buf, wait)? {
            Some(bytes) => Ok(Some(decode(bytes)?)),
            None => Ok(None),
        }
    }
}

/// A channel end: it owns its descriptor and always reports that one (what registering it
/// with a reactor relies on: `crate::sys::event`). Only the two ends here are endpoints.
pub trait Endpoint: AsRawFd + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::PrivilegedEnd {}
    impl Sealed for super::ParserEnd {}
}

impl Endpoint for PrivilegedEnd {}
impl Endpoint for ParserEnd {}

impl AsRawFd for PrivilegedEnd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.fd.as_raw_fd()
    }
}

impl std::os::fd::AsFd for ParserEnd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.fd.as_fd()
    }
}

impl ParserEnd {
    /// The end a privileged part handed over as descriptor `fd` (inherited across `execve`).
    pub fn inherited(fd: i32) -> Result<ParserEnd, ChannelError> {
        let fd = crate::sys::process::inherited_fd(fd).map_err(|e| ChannelError::Io {
            call: "adopting the channel",
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)),
        })?;
        Ok(ParserEnd(End { fd }))
    }
}

impl AsRawFd for ParserEnd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.fd.as_raw_fd()
    }
}

impl PrivilegedEnd {
    /// Sends `m` to the parser.
    pub fn send(&self, m: ToParser) -> Result<(), ChannelError> {
        self.0.send(m.encode())
    }

    /// The parser's next message, decoded as hostile input; `None` when none waits and `wait`
    /// is false.
    pub fn recv(&self, wait: bool) -> Result<Option<ToPrivileged>, ChannelError> {
        self.0.recv_as(wait, ToPrivileged::decode)
    }
}

impl ParserEnd {
    /// Sends `m` to the privileged part.
    pub fn send(&self, m: ToPrivileged) -> Result<(), ChannelError> {
        self.0.send(m.encode())
    }

    /// The privileged part's next message; `None` when none waits and `wait` is false.
    pub fn recv(&self, wait: bool) -> Result<Option<ToParser>, ChannelError> {
        self.0.recv_as(wait, ToParser::decode)
    }

    /// The privileged part's next message, waiting until `deadline` at most.
    pub fn recv_until(&self, deadline: Instant) -> Result<Option<ToParser>, ChannelError> {
        loop {
            if let Some(m) = self.recv(false)? {
                return Ok(Some(m));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let ms = u32::try_from(left.as_millis().max(1)).unwrap_or(u32::MAX);
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.0.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(source) => {
                    return Err(ChannelError::Io {
                        call: "poll",
                        source,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::Outcome;
    use super::*;

    #[test]
    fn messages_cross_one_datagram_each() {
        let (privileged, parser) = pair().expect("socketpair");
        assert!(privileged.recv(false).expect("recv").is_none());
        let ban = ToPrivileged::Ban {
            seq: 1,
            addr: "198.51.100.9".parse().expect("literal"),
            seconds: 600,
            signature_id: 1_000_001,
        };
        parser.send(ban).expect("send");
        parser.send(ToPrivileged::Ready).expect("send");
        assert_eq!(privileged.recv(true).expect("recv"), Some(ban));
        assert_eq!(
            privileged.recv(true).expect("recv"),
            Some(ToPrivileged::Ready)
        );
        let answer = ToParser::BanResult {
            seq: 1,
            outcome: Outcome::Placed,
        };
        privileged.send(answer).expect("send");
        assert_eq!(parser.recv(true).expect("recv"), Some(answer));
    }

    #[test]
    fn forged_datagrams_are_refused_not_misread() {
        let (privileged, parser) = pair().expect("socketpair");
        let raw = |bytes: &[u8]| {
            send(parser.as_raw_fd(), bytes, MsgFlags::empty()).expect("send");
        };
        raw(&[0x53; MAX_MESSAGE + 40]);
        assert!(matches!(
            privileged.recv(true),
            Err(ChannelError::Oversized)
        ));
        raw(b"SC\x01\x02\x08\x00short");
        assert!(matches!(
            privileged.recv(true),
            Err(ChannelError::Wire(WireError::Length { .. }))
        ));
        // The stream goes on: the next well-formed message is read whole.
        parser.send(ToPrivileged::Ready).expect("send");
        assert_eq!(
            privileged.recv(true).expect("recv"),
            Some(ToPrivileged::Ready)
        );
        drop(parser);
        assert!(matches!(privileged.recv(true), Err(ChannelError::Closed)));
    }

    #[test]
    fn an_unanswered_request_ends_at_its_deadline() {
        let (privileged, parser) = pair().expect("socketpair");
        let start = Instant::now();
        let deadline = start + std::time::Duration::from_millis(50);
        assert!(parser.recv_until(deadline).expect("recv").is_none());
        assert!(Instant::now() >= deadline);
        privileged.send(ToParser::Reload).expect("send");
        assert_eq!(
            parser.recv_until(Instant::now()).expect("recv"),
            Some(ToParser::Reload)
        );
    }
}
