//! `martian`: source addresses no packet on the wire may carry: the destination itself (land
//! attack), loopback, multicast. Quiet on loopback interfaces, where 127.0.0.1 is normal. Keyed
//! on the source.

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::record::{Alert, Detail};
use super::table::SeededState;
use super::toggle::{RawToggle, Toggle};
use super::Detector;
use crate::alert::text::{addr, proto_name};

/// `martian`'s catalogue entry.
pub const MARTIAN: Entry = Entry {
    name: "martian",
    signature_id: 1_000_009,
    category: "Misc Attack",
    severity: 2,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b509",
    describe: |a, iface| {
        let (src, dst) = (addr(a.src), addr(a.dst));
        match a.detail {
            Detail::Kind(LAND) => format!(
                "martian: land attack, {} packet from {src} to itself",
                a.proto.map(proto_name).unwrap_or_default()
            ),
            Detail::Kind(LOOPBACK_SOURCE) => {
                format!("martian: loopback source {src} on {iface}, to {dst}")
            }
            _ => format!("martian: multicast source {src} on {iface}, to {dst}"),
        }
    },
};

/// `kind` of a land attack (source equals destination).
pub const LAND: &str = "land";
/// `kind` of a loopback source on the wire.
pub const LOOPBACK_SOURCE: &str = "loopback-source";
/// `kind` of a multicast source.
pub const MULTICAST_SOURCE: &str = "multicast-source";

/// `[detect.martian]`: on or off.
pub type Settings = Toggle;

/// Stateless.
#[derive(Debug)]
pub struct Martian;

/// What makes `ip`'s source impossible, if anything.
#[inline]
fn kind(ip: &crate::decode::Ip) -> Option<&'static str> {
    if ip.src == ip.dst && !ip.src.is_unspecified() {
        Some(LAND)
    } else if ip.v4 {
        // An IPv4 header's source is an IPv4 address: its first byte says the rest.
        match (ip.src.key() >> 24) as u8 {
            127 => Some(LOOPBACK_SOURCE),
            224..=239 => Some(MULTICAST_SOURCE),
            _ => None,
        }
    } else if ip.src.is_loopback() {
        Some(LOOPBACK_SOURCE)
    } else if ip.src.is_multicast() {
        Some(MULTICAST_SOURCE)
    } else {
        None
    }
}

impl Family for Martian {
    type Settings = Settings;
    type Raw = (Option<RawToggle>,);
    const KEY: Key = Key::Source;

    /// Packets from an address no packet can come from (the loopback device's own are judged
    /// in the shard).
    #[inline]
    fn wants(packet: &crate::decode::Packet, s: &Settings) -> bool {
        s.enabled && matches!(&packet.net, crate::decode::Net::Ip(ip) if kind(ip).is_some())
    }

    fn new(_capacity: usize, _hasher: SeededState) -> Self {
        Martian
    }

    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        if !s.enabled || seen.loopback {
            return;
        }
        let Some(ip) = seen.ip() else { return };
        let Some(kind) = kind(ip) else { return };
        out.send_with(Detector::Martian, ip.pair(), seen.ts_ns, || Alert {
            detector: Detector::Martian,
            detail: Detail::Kind(kind),
            ..seen.flow(ip)
        });
    }

    fn configure(s: &mut Settings, (raw,): Self::Raw) -> Result<(), SpanError> {
        s.configure(raw);
        Ok(())
    }

    fn toml(s: &Settings) -> String {
        s.toml("martian")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::craft::udp_frame;
    use crate::detect::family::run;

    #[test]
    fn impossible_sources_by_kind() {
        let ip = |s: &str| s.parse().unwrap();
        let frames = [
            (
                1,
                udp_frame(ip("198.51.100.2"), ip("198.51.100.2"), 1, 2, b""),
            ),
            (2, udp_frame(ip("127.0.0.1"), ip("198.51.100.2"), 1, 2, b"")),
            (3, udp_frame(ip("224.0.0.9"), ip("198.51.100.2"), 1, 2, b"")),
            (4, udp_frame(ip("192.0.2.1"), ip("198.51.100.2"), 1, 2, b"")),
            // Either side of the classes' edges, IPv4 and IPv6.
            (
                5,
                udp_frame(ip("126.255.255.255"), ip("198.51.100.2"), 1, 2, b""),
            ),
            (6, udp_frame(ip("128.0.0.1"), ip("198.51.100.2"), 1, 2, b"")),
            (
                7,
                udp_frame(ip("223.255.255.255"), ip("198.51.100.2"), 1, 2, b""),
            ),
            (
                8,
                udp_frame(ip("239.255.255.255"), ip("198.51.100.3"), 1, 2, b""),
            ),
            (9, udp_frame(ip("240.0.0.1"), ip("198.51.100.2"), 1, 2, b"")),
            (10, udp_frame(ip("::1"), ip("2001:db8::2"), 1, 2, b"")),
            (11, udp_frame(ip("ff02::1"), ip("2001:db8::2"), 1, 2, b"")),
            (12, udp_frame(ip("::2"), ip("2001:db8::2"), 1, 2, b"")),
            (13, udp_frame(ip("fe80::1"), ip("2001:db8::2"), 1, 2, b"")),
        ];
        let alerts = run(&mut Martian, &Settings::default(), &frames);
        let kinds: Vec<_> = alerts.iter().map(|a| (a.ts_ns, a.detail)).collect();
        assert_eq!(
            kinds,
            [
                (1, Detail::Kind(LAND)),
                (2, Detail::Kind(LOOPBACK_SOURCE)),
                (3, Detail::Kind(MULTICAST_SOURCE)),
                (8, Detail::Kind(MULTICAST_SOURCE)),
                (10, Detail::Kind(LOOPBACK_SOURCE)),
                (11, Detail::Kind(MULTICAST_SOURCE)),
            ]
        );
    }
}
