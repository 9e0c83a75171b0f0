//! Fragment anomalies, as Snort's frag3 and Suricata's decoder report them. `frag-overlap`: a
//! fragment carrying bytes another fragment of the same datagram already carried (teardrop, and
//! overlap tricks that make a sensor and a host reassemble different data). `tiny-fragment`: a
//! first fragment too short for its transport header (RFC 1858; nmap -f), which hides the TCP
//! flags or ports from filters that look at first fragments only. Keyed on the source; the
//! datagram state is a few byte ranges, fixed in size, forgotten after a second (reassembly
//! takes milliseconds; an IP identification reused later is another datagram).

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::record::Alert;
use super::table::{SeededState, Table};
use super::toggle::{RawToggle, Toggle};
use super::{AddrKey, Detector};
use crate::alert::text::{addr, proto_name};
use crate::decode::{Fragment, Transport};

/// `frag-overlap`'s catalogue entry.
pub const FRAG_OVERLAP: Entry = Entry {
    name: "frag-overlap",
    signature_id: 1_000_022,
    category: "Potentially Bad Traffic",
    severity: 2,
    message_id: "3f6d2a9c71e84b05a2c4d8e6f1b3a722",
    describe: |a, _| {
        format!(
            "frag-overlap: {} sent {} fragments to {} whose data overlap (teardrop or an \
             evasion), {} bytes in all",
            addr(a.src),
            a.proto.map(proto_name).unwrap_or_default(),
            addr(a.dst),
            a.count
        )
    },
};

/// `tiny-fragment`'s catalogue entry.
pub const TINY_FRAGMENT: Entry = Entry {
    name: "tiny-fragment",
    signature_id: 1_000_023,
    category: "Potentially Bad Traffic",
    severity: 3,
    message_id: "3f6d2a9c71e84b05a2c4d8e6f1b3a723",
    describe: |a, _| {
        format!(
            "tiny-fragment: {} sent {} a first {} fragment too short for its header (its flags \
             and ports follow in later fragments: nmap -f and the like)",
            addr(a.src),
            addr(a.dst),
            a.proto.map(proto_name).unwrap_or_default()
        )
    },
};

/// `[detect.frag-overlap]` and `[detect.tiny-fragment]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// frag-overlap.
    pub overlap: Toggle,
    /// tiny-fragment.
    pub tiny: Toggle,
}

/// Byte ranges of one datagram's fragments seen so far.
#[derive(Debug, Clone, Copy, Default)]
struct Datagram {
    first_ns: u64,
    ranges: [(u16, u16); RANGES],
    len: u8,
    alerted: bool,
}

/// Fragments of one datagram followed (more are not compared).
const RANGES: usize = 8;

/// A datagram's fragments older than this belong to another datagram.
const DATAGRAM_NS: u64 = 1_000_000_000;

/// Per (source, destination, identification, protocol), the fragments seen.
#[derive(Debug)]
pub struct Fragments {
    table: Table<(AddrKey, AddrKey, u16, u8), Datagram>,
}

/// Datagrams followed per shard: `capacity / DATAGRAM_SHARE`.
const DATAGRAM_SHARE: usize = 4;

impl Family for Fragments {
    type Settings = Settings;
    type Raw = (Option<RawToggle>, Option<RawToggle>);
    const KEY: Key = Key::Source;

    /// Fragments.
    #[inline]
    fn wants(packet: &crate::decode::Packet, _s: &Settings) -> bool {
        matches!(&packet.net, crate::decode::Net::Ip(ip) if ip.fragment != Fragment::No)
    }

    fn new(capacity: usize, hasher: SeededState) -> Self {
        Fragments {
            table: Table::new(capacity / DATAGRAM_SHARE, hasher),
        }
    }

    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        let Some(ip) = seen.ip() else { return };
        if ip.fragment == Fragment::No {
            return;
        }
        self.fragment(seen, ip, s, out);
    }

    fn evictions(&self) -> u64 {
        self.table.evictions()
    }

    fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    fn configure(s: &mut Settings, (overlap, tiny): Self::Raw) -> Result<(), SpanError> {
        s.overlap.configure(overlap);
        s.tiny.configure(tiny);
        Ok(())
    }

    fn toml(s: &Settings) -> String {
        s.overlap.toml("frag-overlap") + &s.tiny.toml("tiny-fragment")
    }
}

impl Fragments {
    #[cold]
    fn fragment(
        &mut self,
        seen: &Seen<'_>,
        ip: &crate::decode::Ip,
        s: &Settings,
        out: &mut Out<'_>,
    ) {
        if s.tiny.enabled && matches!(ip.transport, Transport::TinyFragment { .. }) {
            out.send(Alert {
                detector: Detector::TinyFragment,
                ..seen.flow(ip)
            });
        }
        if !s.overlap.enabled {
            return;
        }
        let ts = seen.ts_ns;
        let key = (ip.src.key(), ip.dst.key(), ip.frag_id, ip.proto);
        let d = self.table.entry(key, ts);
        if d.first_ns == 0 || ts.saturating_sub(d.first_ns) > DATAGRAM_NS {
            *d = Datagram {
                first_ns: ts,
                ..Datagram::default()
            };
        }
        let (start, end) = (
            ip.frag_offset,
            ip.frag_offset.saturating_add(ip.payload_len),
        );
        let n = usize::from(d.len);
        // A retransmitted fragment (the same range) is not an overlap.
        let overlap = d.ranges[..n]
            .iter()
            .any(|&(a, b)| start < b && a < end && (a, b) != (start, end));
        if n < RANGES && !d.ranges[..n].contains(&(start, end)) {
            d.ranges[n] = (start, end);
            d.len += 1;
        }
        if overlap && !d.alerted {
            d.alerted = true;
            let bytes: u64 = d.ranges[..usize::from(d.len)]
                .iter()
                .map(|&(a, b)| u64::from(b - a))
                .sum();
            out.send(Alert {
                detector: Detector::FragOverlap,
                count: bytes,
                ..seen.base(ip)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::detect::family::run;

    /// An IPv4 UDP fragment of datagram `id`: `len` bytes at `offset` (a multiple of 8), more
    /// to follow when `more`.
    fn fragment(id: u16, offset: u16, len: usize, more: bool) -> Vec<u8> {
        let (a, b): (IpAddr, IpAddr) = ([192, 0, 2, 7].into(), [198, 51, 100, 2].into());
        let mut f = crate::craft::ip_frame(a, b, crate::decode::proto::UDP, &vec![0; len], &[]);
        let ip = &mut f[14..];
        ip[2..4].copy_from_slice(&(20 + len as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        let field = (offset / 8) | if more { 0x2000 } else { 0 };
        ip[6..8].copy_from_slice(&field.to_be_bytes());
        f
    }

    #[test]
    fn overlapping_fragments_alert_and_adjacent_or_repeated_ones_do_not() {
        let s = Settings::default();
        let adjacent = [
            (1_000, fragment(1, 0, 24, true)),
            (2_000, fragment(1, 24, 16, false)),
            // The same fragment again (a retransmission).
            (3_000, fragment(1, 24, 16, false)),
        ];
        let mut f = Fragments::new(1024, SeededState::random());
        assert!(run(&mut f, &s, &adjacent).is_empty());
        let teardrop = [
            (1_000, fragment(2, 0, 36, true)),
            (2_000, fragment(2, 24, 20, false)),
        ];
        let alerts = run(&mut f, &s, &teardrop);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(
            (alerts[0].detector, alerts[0].count),
            (Detector::FragOverlap, 56)
        );
        // The same identification two seconds later is another datagram.
        let later = [(3_000_000_000, fragment(1, 8, 24, false))];
        assert!(run(&mut f, &s, &later).is_empty());
    }
}
