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
