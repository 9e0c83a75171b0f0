//! The channel's wire format: one message per datagram of a `SOCK_SEQPACKET` socketpair, a fixed
//! six-byte header and a fixed-size payload per kind, little-endian.
//!
//! ```text
//!  0      2        3      4          6
//!  +------+--------+------+----------+----------------------+
//!  | "SC" | version| kind | length   | payload (length B)   |
//!  +------+--------+------+----------+----------------------+
//! ```
//!
//! The parser's side is where attacker bytes are handled, so everything it sends is hostile to
//! the privileged side: [`ToPrivileged::decode`] checks magic, version, kind, the exact length of
//! each kind and every field's range, and returns a typed [`WireError`]; it never panics, never
//! allocates (the fuzz target `channel` holds it to that and to a round trip).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The first two bytes of every message.
pub const MAGIC: [u8; 2] = *b"SC";

/// The protocol version. Both ends are the same binary (the parser is forked, not executed), so
/// a mismatch means a corrupted or forged stream, and ends the channel.
pub const VERSION: u8 = 1;

/// Header bytes.
pub const HEADER: usize = 6;

/// The longest message of either direction: a receive buffer of this size always holds one.
pub const MAX_MESSAGE: usize = HEADER + 48;

/// Why bytes are not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than a header.
    #[error("{got} bytes, less than the {HEADER}-byte header")]
    Short {
        /// Bytes received.
        got: usize,
    },
    /// Not the protocol's magic.
    #[error("bad magic {0:02x?}")]
    Magic([u8; 2]),
    /// Another protocol version.
    #[error("version {got}, expected {VERSION}")]
    Version {
        /// The version in the header.
        got: u8,
    },
    /// A kind this direction does not have.
    #[error("unknown message kind {0}")]
    Kind(u8),
    /// The header's length is not the kind's, or the datagram's is not the header's.
    #[error("kind {kind}: {got} payload bytes, expected {expected}")]
    Length {
        /// The message kind.
        kind: u8,
        /// The kind's payload length.
        expected: usize,
        /// The length found.
        got: usize,
    },
    /// A field out of its range.
    #[error("kind {kind}: bad {field}")]
    Field {
        /// The message kind.
        kind: u8,
        /// Which field.
        field: &'static str,
    },
}

/// What the parser tells the privileged part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToPrivileged {
    /// Capture runs: the privileged part may tell systemd READY=1.
    Ready,
    /// The capture workers made progress; `generation` grows while they do. The privileged part
    /// pings systemd's watchdog only when it changed since the last ping.
    Progress {
        /// A counter of the workers' progress.
        generation: u64,
    },
    /// Counters for systemd's STATUS= line, which the privileged part formats itself (a string
    /// from the parser could carry a newline and a forged READY=1 or MAINPID=).
    Status {
        /// Frames captured.
        frames: u64,
        /// Frames the kernel dropped.
        kernel_drops: u64,
        /// Alerts raised.
        alerts: u64,
        /// Alerts suppressed.
        suppressed: u64,
        /// Frames that failed to decode.
        decode_errors: u64,
    },
    /// Ban `addr` for `seconds`, for an alert of the detector with `signature_id`; answered by
    /// [`ToParser::BanResult`] with the same `seq`.
    Ban {
        /// Matches the answer to the request.
        seq: u32,
        /// The offender.
        addr: IpAddr,
        /// How long.
        seconds: u32,
        /// The detector's signature id (1000001..).
        signature_id: u32,
    },
}

/// What the privileged part tells the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToParser {
    /// The answer to [`ToPrivileged::Ban`] `seq`.
    BanResult {
        /// The request's sequence.
        seq: u32,
        /// What became of it.
        outcome: Outcome,
    },
    /// Read the configuration anew (SIGHUP reached the privileged part).
    Reload,
    /// Stop (SIGTERM reached the privileged part).
    Stop,
}

/// What became of a ban request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    /// The ban is in place.
    Placed = 0,
    /// Refused: one of this host's addresses, loopback, unspecified, multicast, broadcast or
    /// link-local.
    Local = 1,
    /// Refused: allowlisted.
    Allowlisted = 2,
    /// Refused: more requests than the rate allows.
    TooFast = 3,
    /// Refused: a duration of 0 or beyond the longest ban.
    BadDuration = 4,
    /// The kernel refused the ban.
    Failed = 5,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::Placed,
        Outcome::Local,
        Outcome::Allowlisted,
        Outcome::TooFast,
        Outcome::BadDuration,
        Outcome::Failed,
    ];

    fn from_u8(v: u8) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| *o as u8 == v)
    }
}

const READY: u8 = 1;
const PROGRESS: u8 = 2;
const STATUS: u8 = 3;
const BAN: u8 = 4;
const BAN_RESULT: u8 = 129;
const RELOAD: u8 = 130;
const STOP: u8 = 131;

/// A message being built in a fixed buffer.
struct Out {
    buf: [u8; MAX_MESSAGE],
    len: usize,
}

impl Out {
    fn new(kind: u8) -> Out {
        let mut buf = [0; MAX_MESSAGE];
        buf[..2].copy_from_slice(&MAGIC);
        buf[2] = VERSION;
        buf[3] = kind;
        Out { buf, len: HEADER }
    }

    fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self
    }

    fn finish(mut self) -> ([u8; MAX_MESSAGE], usize) {
        let payload = (self.len - HEADER) as u16;
        self.buf[4..6].copy_from_slice(&payload.to_le_bytes());
        (self.buf, self.len)
    }
}

/// The payload of a message of `kind` after its header checks: exactly `expected` bytes.
fn payload(bytes: &[u8], kind_ok: impl Fn(u8) -> Option<usize>) -> Result<(u8, &[u8]), WireError> {
    let header = bytes
        .get(..HEADER)
        .ok_or(WireError::Short { got: bytes.len() })?;
    let magic = [header[0], header[1]];
    if magic != MAGIC {
        return Err(WireError::Magic(magic));
    }
    if header[2] != VERSION {
        return Err(WireError::Version { got: header[2] });
    }
    let kind = header[3];
    let expected = kind_ok(kind).ok_or(WireError::Kind(kind))?;
    let declared = usize::from(u16::from_le_bytes([header[4], header[5]]));
    let body = &bytes[HEADER..];
    if declared != expected || body.len() != expected {
        return Err(WireError::Length {
            kind,
            expected,
            got: if declared != expected {
                declared
            } else {
                body.len()
            },
        });
    }
    Ok((kind, body))
}

/// Reads fixed-size little-endian fields off a payload whose length was checked.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        // The payload's length was checked against the kind's, which is the sum of its fields.
        out.copy_from_slice(&self.0[..N]);
        self.0 = &self.0[N..];
        out
    }

    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

impl ToPrivileged {
    fn payload_len(kind: u8) -> Option<usize> {
        match kind {
            READY => Some(0),
            PROGRESS => Some(8),
            STATUS => Some(40),
            // seq, family, address (16), seconds, signature id
            BAN => Some(4 + 1 + 16 + 4 + 4),
            _ => None,
        }
    }

    /// Decodes one datagram from the parser.
    pub fn decode(bytes: &[u8]) -> Result<ToPrivileged, WireError> {
        let (kind, body) = payload(bytes, ToPrivileged::payload_len)?;
        let mut f = Fields(body);
        Ok(match kind {
            READY => ToPrivileged::Ready,
            PROGRESS => ToPrivileged::Progress {
                generation: f.u64(),
            },
            STATUS => ToPrivileged::Status {
                frames: f.u64(),
                kernel_drops: f.u64(),
                alerts: f.u64(),
                suppressed: f.u64(),
                decode_errors: f.u64(),
            },
            BAN => {
                let seq = f.u32();
                let family = f.u8();
                let raw: [u8; 16] = f.take();
                let addr = match family {
                    4 if raw[4..].iter().all(|b| *b == 0) => {
                        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
                    }
                    4 => {
                        return Err(WireError::Field {
                            kind,
                            field: "IPv4 address padding",
                        })
                    }
                    6 => IpAddr::V6(Ipv6Addr::from(raw)),
                    _ => {
                        return Err(WireError::Field {
                            kind,
                            field: "address family",
                        })
                    }
                };
                ToPrivileged::Ban {
                    seq,
                    addr,
                    seconds: f.u32(),
                    signature_id: f.u32(),
                }
            }
            _ => return Err(WireError::Kind(kind)),
        })
    }

    /// Encodes the message into a fixed buffer; the datagram is its first `len` bytes.
    pub fn encode(&self) -> ([u8; MAX_MESSAGE], usize) {
        match *self {
            ToPrivileged::Ready => Out::new(READY).finish(),
            ToPrivileged::Progress { generation } => {
                let mut o = Out::new(PROGRESS);
                o.put(&generation.to_le_bytes());
                o.finish()
            }
            ToPrivileged::Status {
                frames,
                kernel_drops,
                alerts,
                suppressed,
                decode_errors,
            } => {
                let mut o = Out::new(STATUS);
                for v in [frames, kernel_drops, alerts, suppressed, decode_errors] {
                    o.put(&v.to_le_bytes());
                }
                o.finish()
            }
            ToPrivileged::Ban {
                seq,
                addr,
                seconds,
                signature_id,
            } => {
                let mut raw = [0u8; 16];
                let family = match addr {
                    IpAddr::V4(a) => {
                        raw[..4].copy_from_slice(&a.octets());
                        4
                    }
                    IpAddr::V6(a) => {
                        raw = a.octets();
                        6
                    }
                };
                let mut o = Out::new(BAN);
                o.put(&seq.to_le_bytes())
                    .put(&[family])
                    .put(&raw)
                    .put(&seconds.to_le_bytes())
                    .put(&signature_id.to_le_bytes());
                o.finish()
            }
        }
    }
}

impl ToParser {
    fn payload_len(kind: u8) -> Option<usize> {
        match kind {
            BAN_RESULT => Some(5),
            RELOAD | STOP => Some(0),
            _ => None,
        }
    }

    /// Decodes one datagram from the privileged part.
    pub fn decode(bytes: &[u8]) -> Result<ToParser, WireError> {
        let (kind, body) = payload(bytes, ToParser::payload_len)?;
        let mut f = Fields(body);
        Ok(match kind {
            BAN_RESULT => {
                let seq = f.u32();
                let outcome = Outcome::from_u8(f.u8()).ok_or(WireError::Field {
                    kind,
                    field: "outcome",
                })?;
                ToParser::BanResult { seq, outcome }
            }
            RELOAD => ToParser::Reload,
            STOP => ToParser::Stop,
            _ => return Err(WireError::Kind(kind)),
        })
    }

    /// Encodes the message into a fixed buffer; the datagram is its first `len` bytes.
    pub fn encode(&self) -> ([u8; MAX_MESSAGE], usize) {
        match *self {
            ToParser::BanResult { seq, outcome } => {
                let mut o = Out::new(BAN_RESULT);
                o.put(&seq.to_le_bytes()).put(&[outcome as u8]);
                o.finish()
            }
            ToParser::Reload => Out::new(RELOAD).finish(),
            ToParser::Stop => Out::new(STOP).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_to_privileged() -> Vec<ToPrivileged> {
        vec![
            ToPrivileged::Ready,
            ToPrivileged::Progress { generation: 7 },
            ToPrivileged::Status {
                frames: 1,
                kernel_drops: 2,
                alerts: 3,
                suppressed: 4,
                decode_errors: u64::MAX,
            },
            ToPrivileged::Ban {
                seq: 9,
                addr: "198.51.100.9".parse().expect("literal"),
                seconds: 600,
                signature_id: 1_000_001,
            },
            ToPrivileged::Ban {
                seq: 10,
                addr: "2001:db8::9".parse().expect("literal"),
                seconds: 600,
                signature_id: 1_000_003,
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in all_to_privileged() {
            let (buf, len) = m.encode();
            assert_eq!(ToPrivileged::decode(&buf[..len]), Ok(m));
        }
        for m in [
            ToParser::BanResult {
                seq: 9,
                outcome: Outcome::Allowlisted,
            },
            ToParser::Reload,
            ToParser::Stop,
        ] {
            let (buf, len) = m.encode();
            assert_eq!(ToParser::decode(&buf[..len]), Ok(m));
        }
    }

    #[test]
    fn the_header_is_checked_field_by_field() {
        let (buf, len) = ToPrivileged::Ready.encode();
        let msg = &buf[..len];
        assert_eq!(
            ToPrivileged::decode(&msg[..3]),
            Err(WireError::Short { got: 3 })
        );
        let mut bad = msg.to_vec();
        bad[0] = b'X';
        assert_eq!(ToPrivileged::decode(&bad), Err(WireError::Magic(*b"XC")));
        let mut bad = msg.to_vec();
        bad[2] = 2;
        assert_eq!(
            ToPrivileged::decode(&bad),
            Err(WireError::Version { got: 2 })
        );
        let mut bad = msg.to_vec();
        bad[3] = 77;
        assert_eq!(ToPrivileged::decode(&bad), Err(WireError::Kind(77)));
        // A parser-bound kind is not a message to the privileged part.
        let (stop, n) = ToParser::Stop.encode();
        assert_eq!(ToPrivileged::decode(&stop[..n]), Err(WireError::Kind(STOP)));
    }

    #[test]
    fn lengths_must_be_exact() {
        let (buf, len) = ToPrivileged::Progress { generation: 1 }.encode();
        // One byte short, one byte long, and a header that lies about the length.
        assert!(matches!(
            ToPrivileged::decode(&buf[..len - 1]),
            Err(WireError::Length { .. })
        ));
        let mut long = buf[..len].to_vec();
        long.push(0);
        assert!(matches!(
            ToPrivileged::decode(&long),
            Err(WireError::Length { .. })
        ));
        let mut lying = buf[..len].to_vec();
        lying[4] = 9;
        assert!(matches!(
            ToPrivileged::decode(&lying),
            Err(WireError::Length { .. })
        ));
    }

    #[test]
    fn a_ban_with_a_bad_family_or_padding_is_refused() {
        let ban = ToPrivileged::Ban {
            seq: 1,
            addr: "198.51.100.9".parse().expect("literal"),
            seconds: 60,
            signature_id: 1_000_001,
        };
        let (buf, len) = ban.encode();
        let mut bad = buf[..len].to_vec();
        bad[HEADER + 4] = 5;
        assert_eq!(
            ToPrivileged::decode(&bad),
            Err(WireError::Field {
                kind: BAN,
                field: "address family"
            })
        );
        let mut bad = buf[..len].to_vec();
        bad[HEADER + 5 + 8] = 1;
        assert_eq!(
            ToPrivileged::decode(&bad),
            Err(WireError::Field {
                kind: BAN,
                field: "IPv4 address padding"
            })
        );
        let (res, n) = ToParser::BanResult {
            seq: 1,
            outcome: Outcome::Placed,
        }
        .encode();
        let mut bad = res[..n].to_vec();
        bad[HEADER + 4] = 99;
        assert!(matches!(
            ToParser::decode(&bad),
            Err(WireError::Field { .. })
        ));
    }

    #[test]
    fn the_fuzz_seeds_are_messages() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/channel");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("the seed directory") {
            let bytes = std::fs::read(e.expect("an entry").path()).expect("a seed");
            assert!(
                ToPrivileged::decode(&bytes).is_ok() || ToParser::decode(&bytes).is_ok(),
                "{bytes:02x?}"
            );
            n += 1;
        }
        assert_eq!(n, 8);
    }
}
