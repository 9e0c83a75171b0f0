//! A small netlink client: one socket, requests built as bytes, replies walked with bounds
//! checks. Used to find the default-route interface (rtnetlink) and to drive nftables
//! (nfnetlink), in-process, without executing any tool.
//!
//! Owns: message framing (`nlmsghdr`, attributes, alignment), the request/acknowledge loop and
//! error mapping. Not here: what the messages mean ([`route`]).

pub mod nftables;
pub mod route;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`.
const NLMSG_DONE: u16 = 3;
/// `NLM_F_REQUEST`.
pub const F_REQUEST: u16 = 0x1;
/// `NLM_F_ACK`.
pub const F_ACK: u16 = 0x4;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const F_DUMP: u16 = 0x300;
/// `NLM_F_CREATE`.
pub const F_CREATE: u16 = 0x400;
/// `NLM_F_APPEND`.
pub const F_APPEND: u16 = 0x800;
/// `NLM_F_EXCL`.
pub const F_EXCL: u16 = 0x200;

/// Bytes of `struct nlmsghdr`.
const HEADER: usize = 16;

/// A netlink failure.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// A socket call failed.
    #[error("netlink {call}: {source}")]
    Io {
        /// Which call.
        call: &'static str,
        /// The error.
        source: nix::Error,
    },
    /// The kernel refused a request (its `NLMSG_ERROR` code).
    #[error("the kernel refused the request: {0}")]
    Refused(nix::Error),
    /// A reply did not parse.
    #[error("malformed netlink reply: {0}")]
    Malformed(&'static str),
}

/// How a request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// A dump: at `NLMSG_DONE`.
    Done,
    /// At the acknowledgement (`NLMSG_ERROR` with code 0) of the message with this sequence.
    Ack(u32),
}

/// A netlink socket of one protocol.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Socket {
    /// Opens and binds a socket of `protocol`.
    pub fn open(protocol: SockProtocol) -> Result<Socket, NetlinkError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            protocol,
        )
        .map_err(|source| NetlinkError::Io {
            call: "socket",
            source,
        })?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|source| NetlinkError::Io {
            call: "bind",
            source,
        })?;
        Ok(Socket {
            fd,
            seq: 1,
            buf: vec![0; 64 * 1024],
        })
    }

    /// The next sequence number.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `request` (one or more complete messages) and calls `each` with the type and
    /// payload of every reply message until `until`. The first error the kernel reports ends it.
    pub fn transact(
        &mut self,
        request: &[u8],
        until: Until,
        mut each: impl FnMut(u16, &[u8]),
    ) -> Result<(), NetlinkError> {
        send(self.fd.as_raw_fd(), request, MsgFlags::empty()).map_err(|source| {
            NetlinkError::Io {
                call: "send",
                source,
            }
        })?;
        loop {
            let n =
                recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty()).map_err(|source| {
                    NetlinkError::Io {
                        call: "recv",
                        source,
                    }
                })?;
            let mut rest = &self.buf[..n];
            while !rest.is_empty() {
                let (ty, seq, payload, next) = split_message(rest)?;
                rest = next;
                match ty {
                    NLMSG_DONE if until == Until::Done => return Ok(()),
                    NLMSG_DONE => {}
                    NLMSG_ERROR => {
                        let code = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .ok_or(NetlinkError::Malformed("short NLMSG_ERROR"))?;
                        if code != 0 {
                            return Err(NetlinkError::Refused(nix::Error::from_raw(-code)));
                        }
                        if until == Until::Ack(seq) {
                            return Ok(());
                        }
                    }
                    _ => each(ty, payload),
                }
            }
        }
    }
}

/// One message split off a buffer: type, sequence, payload, and the rest of the buffer.
type Split<'a> = (u16, u32, &'a [u8], &'a [u8]);

/// Splits the first message off `buf`.
fn split_message(buf: &[u8]) -> Result<Split<'_>, NetlinkError> {
    let h = buf
        .get(..HEADER)
        .ok_or(NetlinkError::Malformed("truncated header"))?;
    let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let ty = u16::from_ne_bytes([h[4], h[5]]);
    let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
    if len < HEADER || len > buf.len() {
        return Err(NetlinkError::Malformed("message length out of bounds"));
    }
    let next = align(len).min(buf.len());
    Ok((ty, seq, &buf[HEADER..len], &buf[next..]))
}

/// Rounds up to netlink's 4-byte alignment.
pub const fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds one netlink message: header, fixed part, attributes (nested ones too).
#[derive(Debug)]
pub struct Message {
    bytes: Vec<u8>,
    nests: Vec<usize>,
}

impl Message {
    /// A message of `ty` with `flags` and sequence `seq`, its fixed part `fixed`.
    pub fn new(ty: u16, flags: u16, seq: u32, fixed: &[u8]) -> Message {
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(&ty.to_ne_bytes());
        bytes.extend_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(&seq.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(fixed);
        pad(&mut bytes);
        Message {
            bytes,
            nests: Vec::new(),
        }
    }

    /// Appends attribute `ty` with `value`.
    pub fn attr(&mut self, ty: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.bytes.extend_from_slice(&(len as u16).to_ne_bytes());
        self.bytes.extend_from_slice(&ty.to_ne_bytes());
        self.bytes.extend_from_slice(value);
        pad(&mut self.bytes);
        self
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, ty: u16, value: &str) -> &mut Self {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.extend_from_slice(value.as_bytes());
        v.push(0);
        self.attr(ty, &v)
    }

    /// A big-endian u32 attribute (nfnetlink's convention).
    pub fn attr_be32(&mut self, ty: u16, value: u32) -> &mut Self {
        self.attr(ty, &value.to_be_bytes())
    }

    /// A big-endian u64 attribute.
    pub fn attr_be64(&mut self, ty: u16, value: u64) -> &mut Self {
        self.attr(ty, &value.to_be_bytes())
    }

    /// Opens a nested attribute (`NLA_F_NESTED` set); close it with [`Message::end_nest`].
    pub fn begin_nest(&mut self, ty: u16) -> &mut Self {
        self.nests.push(self.bytes.len());
        self.bytes.extend_from_slice(&0u16.to_ne_bytes());
        self.bytes.extend_from_slice(&(ty | 0x8000).to_ne_bytes());
        self
    }

    /// Closes the innermost nested attribute.
    pub fn end_nest(&mut self) -> &mut Self {
        if let Some(start) = self.nests.pop() {
            let len = (self.bytes.len() - start) as u16;
            self.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The finished message.
    pub fn finish(mut self) -> Vec<u8> {
        while !self.nests.is_empty() {
            self.end_nest();
        }
        let len = self.bytes.len() as u32;
        self.bytes[..4].copy_from_slice(&len.to_ne_bytes());
        self.bytes
    }
}

fn pad(bytes: &mut Vec<u8>) {
    bytes.resize(align(bytes.len()), 0);
}

/// Iterates over the attributes in `buf`: (type without flags, value).
pub fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

/// See [`attrs`].
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let h = self.rest.get(..4)?;
        let len = u16::from_ne_bytes([h[0], h[1]]) as usize;
        let ty = u16::from_ne_bytes([h[2], h[3]]) & 0x3fff;
        if len < 4 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let value = &self.rest[4..len];
        self.rest = &self.rest[align(len).min(self.rest.len())..];
        Some((ty, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_attributes_round_trip_with_alignment() {
        let mut m = Message::new(24, F_REQUEST, 7, &[1, 2, 3]);
        m.attr_str(1, "abc")
            .begin_nest(2)
            .attr_be32(3, 9)
            .end_nest();
        let bytes = m.finish();
        assert_eq!(bytes.len() % 4, 0);
        let (ty, seq, payload, rest) = split_message(&bytes).unwrap();
        assert_eq!((ty, seq, rest.len()), (24, 7, 0));
        let list: Vec<_> = attrs(&payload[4..]).collect();
        assert_eq!(list[0], (1, &b"abc\0"[..]));
        assert_eq!(list[1].0, 2);
        assert_eq!(attrs(list[1].1).next(), Some((3, &9u32.to_be_bytes()[..])));
    }

    #[test]
    fn hostile_lengths_end_the_walk_instead_of_panicking() {
        for bytes in [&[0xff, 0xff, 1, 0, 9][..], &[2, 0, 1, 0], &[]] {
            assert!(attrs(bytes).next().is_none());
        }
        assert!(split_message(&[16, 0, 0, 0, 0, 0]).is_err());
        let mut m = Message::new(1, 0, 1, &[]).finish();
        m[0] = 200;
        assert!(split_message(&m).is_err());
    }

    #[test]
    fn the_default_route_lookup_answers_in_this_namespace() {
        // Whatever the machine's routes, the lookup completes without error.
        route::default_route_interface().unwrap();
    }
}
