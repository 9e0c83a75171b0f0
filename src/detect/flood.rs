//! Floods: TCP SYNs (`syn-flood`), UDP (`udp-flood`) or ICMP/ICMPv6 (`icmp-flood`) to one host
//! above a rate within a window. Keyed on the destination: a spoofed flood is a source per
//! packet, one victim. The alert names the dominant source when one sent most of the window
//! (a majority vote, constant space), else says "many sources".

use serde::Deserialize;
use toml::Spanned;

use super::family::{chatter_destination, Entry, Family, Key, Out, Seen, SpanError};
use super::record::Alert;
use super::table::{SeededState, Table};
use super::{addr_key, AddrKey, Detector};
use crate::alert::text::{addr, secs};
use crate::config::in_range;
use crate::decode::{tcp_flags, Net, Packet, Transport};

fn describe(a: &Alert, what: &str) -> String {
    let from = match a.src {
        Some(s) => format!("mostly from {s}"),
        None => "from many sources".into(),
    };
    format!(
        "{}: {} received {} {what} in {}, {from}",
        a.detector.name(),
        addr(a.dst),
        a.count,
        secs(a.window_ms)
    )
}

/// `syn-flood`'s catalogue entry.
pub const SYN_FLOOD: Entry = Entry {
    name: "syn-flood",
    signature_id: 1_000_004,
    category: "Attempted Denial of Service",
    severity: 1,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b504",
    describe: |a, _| describe(a, "TCP SYNs"),
};

/// `udp-flood`'s catalogue entry.
pub const UDP_FLOOD: Entry = Entry {
    name: "udp-flood",
    signature_id: 1_000_005,
    category: "Attempted Denial of Service",
    severity: 1,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b505",
    describe: |a, _| describe(a, "UDP packets"),
};

/// `icmp-flood`'s catalogue entry.
pub const ICMP_FLOOD: Entry = Entry {
    name: "icmp-flood",
    signature_id: 1_000_006,
    category: "Attempted Denial of Service",
    severity: 2,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b506",
    describe: |a, _| describe(a, "ICMP packets"),
};

/// Settings of one rate detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodSettings {
    /// On or off.
    pub enabled: bool,
    /// Packets per second above which it fires.
    pub pps: u64,
    /// Window length in ms.
    pub window_ms: u64,
}

impl FloodSettings {
    const fn per_second(pps: u64) -> Self {
        FloodSettings {
            enabled: true,
            pps,
            window_ms: 1_000,
        }
    }

    fn configure(&mut self, name: &str, raw: Option<RawFlood>) -> Result<(), SpanError> {
        let Some(raw) = raw else { return Ok(()) };
        if let Some(e) = raw.enabled {
            self.enabled = e;
        }
        if let Some(v) = raw.pps {
            self.pps = in_range(&v, 1, 1 << 40, &format!("detect.{name}.pps"))
                .map_err(|m| (v.span(), m))? as u64;
        }
        if let Some(v) = raw.window_ms {
            self.window_ms = in_range(&v, 10, 60_000, &format!("detect.{name}.window_ms"))
                .map_err(|m| (v.span(), m))? as u64;
        }
        Ok(())
    }

    fn toml(&self, name: &str) -> String {
        format!(
            "\n[detect.{name}]\nenabled = {}\npps = {}\nwindow_ms = {}\n",
            self.enabled, self.pps, self.window_ms
        )
    }
}

/// `[detect.syn-flood]`, `[detect.udp-flood]`, `[detect.icmp-flood]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// syn-flood.
    pub syn: FloodSettings,
    /// udp-flood.
    pub udp: FloodSettings,
    /// icmp-flood.
    pub icmp: FloodSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            syn: FloodSettings::per_second(3_000),
            udp: FloodSettings::per_second(8_000),
            icmp: FloodSettings::per_second(2_000),
        }
    }
}

/// A flood table as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlood {
    enabled: Option<bool>,
    pps: Option<Spanned<i64>>,
    window_ms: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct FloodState {
    start_ns: u64,
    count: u64,
    fired: bool,
    /// Majority-vote candidate for the dominant source, with its vote and exact hits.
    candidate: AddrKey,
    candidate_src: Option<std::net::IpAddr>,
    votes: u64,
    hits: u64,
}

/// Per (victim, kind) the packets of the current window.
#[derive(Debug)]
pub struct Floods {
    table: Table<(AddrKey, u8), FloodState>,
}

/// Which flood a packet would count for.
#[inline]
fn kind(t: &Transport) -> Option<Detector> {
    match *t {
        Transport::Tcp { flags, .. }
            if flags & tcp_flags::SYN != 0 && flags & tcp_flags::ACK == 0 =>
        {
            Some(Detector::SynFlood)
        }
        Transport::Udp { .. } => Some(Detector::UdpFlood),
        Transport::Icmp { .. } | Transport::Icmpv6 { .. } => Some(Detector::IcmpFlood),
        _ => None,
    }
}

impl Family for Floods {
    type Settings = Settings;
    type Raw = (Option<RawFlood>, Option<RawFlood>, Option<RawFlood>);
    const KEY: Key = Key::Destination;

    fn new(capacity: usize, hasher: SeededState) -> Self {
        Floods {
            table: Table::new(capacity, hasher),
        }
    }

    #[inline]
    fn wants(packet: &Packet) -> bool {
        match &packet.net {
            Net::Ip(ip) => kind(&ip.transport).is_some(),
            _ => false,
        }
    }

    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        let Some(ip) = seen.ip() else { return };
        if chatter_destination(ip.dst) {
            return;
        }
        let Some(detector) = kind(&ip.transport) else {
            return;
        };
        let fs = match detector {
            Detector::SynFlood => s.syn,
            Detector::UdpFlood => s.udp,
            _ => s.icmp,
        };
        if !fs.enabled {
            return;
        }
        let ts = seen.ts_ns;
        let src = addr_key(ip.src);
        let e = self.table.entry((addr_key(ip.dst), detector as u8), ts);
        if e.start_ns == 0 || ts.saturating_sub(e.start_ns) >= fs.window_ms * 1_000_000 {
            *e = FloodState {
                start_ns: ts,
                ..Default::default()
            };
        }
        e.count += 1;
        if e.votes == 0 {
            e.candidate = src;
            e.candidate_src = Some(ip.src);
            e.votes = 1;
            e.hits = 1;
        } else if e.candidate == src {
            e.votes += 1;
            e.hits += 1;
        } else {
            e.votes -= 1;
        }
        let limit = fs.pps.saturating_mul(fs.window_ms) / 1_000;
        if !e.fired && e.count > limit {
            e.fired = true;
            let dominant = (e.hits * 2 > e.count).then_some(e.candidate_src).flatten();
            let alert = Alert {
                detector,
                src: dominant,
                count: e.count,
                window_ms: (ts.saturating_sub(e.start_ns) / 1_000_000).max(1),
                ..seen.base(ip)
            };
            out.send(alert);
        }
    }

    fn evictions(&self) -> u64 {
        self.table.evictions()
    }

    fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    fn configure(s: &mut Settings, (syn, udp, icmp): Self::Raw) -> Result<(), SpanError> {
        s.syn.configure("syn-flood", syn)?;
        s.udp.configure("udp-flood", udp)?;
        s.icmp.configure("icmp-flood", icmp)
    }

    fn toml(s: &Settings) -> String {
        s.syn.toml("syn-flood") + &s.udp.toml("udp-flood") + &s.icmp.toml("icmp-flood")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::craft::{tcp_frame, udp_frame};
    use crate::detect::family::run;

    fn v4(n: u32) -> std::net::IpAddr {
        std::net::IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn a_flood_fires_once_and_names_a_dominant_source_only_when_there_is_one() {
        let victim = v4(0xc633_6402);
        let s = Settings::default();
        // One source: it is named.
        let mut floods = Floods::new(64, SeededState::random());
        let one: Vec<_> = (0..9_000u64)
            .map(|i| {
                (
                    1_000_000_000 + i * 100_000,
                    udp_frame(v4(0x0a00_0001), victim, 1024, 53, b""),
                )
            })
            .collect();
        let alerts = run(&mut floods, &s, &one);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].detector, Detector::UdpFlood);
        assert_eq!(
            (alerts[0].src, alerts[0].count),
            (Some(v4(0x0a00_0001)), 8_001)
        );
        // Spoofed sources: "many sources".
        let mut floods = Floods::new(64, SeededState::random());
        let many: Vec<_> = (0..4_000u32)
            .map(|i| {
                let f = tcp_frame(v4(0x0b00_0000 + i), victim, 1024, 80, tcp_flags::SYN);
                (1_000_000_000 + u64::from(i) * 100_000, f)
            })
            .collect();
        let alerts = run(&mut floods, &s, &many);
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].detector, alerts[0].src),
            (Detector::SynFlood, None)
        );
    }

    #[test]
    fn the_router_sends_only_flood_candidates_to_the_victims_shard() {
        let (a, b) = (v4(0x0a00_0001), v4(0x0a00_0002));
        let wants = |f: Vec<u8>| Floods::wants(&crate::decode::decode_ethernet(&f, None).unwrap());
        assert!(wants(tcp_frame(a, b, 1, 80, tcp_flags::SYN)));
        assert!(!wants(tcp_frame(
            a,
            b,
            1,
            80,
            tcp_flags::SYN | tcp_flags::ACK
        )));
        assert!(!wants(tcp_frame(a, b, 1, 80, tcp_flags::ACK)));
        assert!(wants(udp_frame(a, b, 1, 53, b"")));
    }
}
