//! Floods: TCP SYNs (`syn-flood`), UDP (`udp-flood`) or ICMP/ICMPv6 (`icmp-flood`) to one host
//! above a rate within a window; ACKs and RSTs that belong to no conversation the flow table
//! follows (`ack-flood`, `rst-flood`); answers from amplifying UDP services (DNS, NTP, SSDP,
//! memcached, ...) that the host never asked for (`reflection`, which names the reflectors and
//! the service); IP fragments (`frag-flood`). Keyed on the destination: a spoofed flood is a source per packet, one victim.
//! The alert names the dominant source when one sent most of the window (a majority vote,
//! constant space), else says "many sources" and about how many (a 256-bit linear count).

use serde::Deserialize;
use toml::Spanned;

use super::family::{base, chatter_destination, Entry, Family, Key, Out, Seen, SpanError};
use super::prefix::{parse_cidr, PrefixSet};
use super::record::{Alert, Detail, MAX_SOURCES};
use super::table::{SeededState, Table};
use super::{AddrKey, Detector};
use crate::alert::text::{addr, secs};
use crate::config::in_range;
use crate::decode::{tcp_flags, Fragment, Ip, Net, Packet, Transport};

/// ` (12.5 Mbit/s)`: a flood's bit rate over its window.
fn rate(a: &Alert) -> String {
    if a.bytes == 0 || a.window_ms == 0 {
        return String::new();
    }
    let mbps = a.bytes as f64 * 8.0 / (a.window_ms as f64 * 1_000.0);
    format!(" ({mbps:.1} Mbit/s)")
}

fn describe(a: &Alert, what: &str) -> String {
    let from = match (a.src, a.detail) {
        (Some(s), _) => format!("mostly from {s}"),
        (None, Detail::Sources { total, .. }) if total > 0 => {
            format!("from many sources (about {})", sources_text(total))
        }
        _ => "from many sources".into(),
    };
    format!(
        "{}: {} received {} {what}{} in {}, {from}",
        a.detector.name(),
        addr(a.dst),
        a.count,
        rate(a),
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

/// `ack-flood`'s catalogue entry.
pub const ACK_FLOOD: Entry = Entry {
    name: "ack-flood",
    signature_id: 1_000_015,
    category: "Attempted Denial of Service",
    severity: 1,
    message_id: "3f6d2a9c71e84b05a2c4d8e6f1b3a715",
    describe: |a, _| describe(a, "TCP ACKs belonging to no connection"),
};

/// `rst-flood`'s catalogue entry.
pub const RST_FLOOD: Entry = Entry {
    name: "rst-flood",
    signature_id: 1_000_016,
    category: "Attempted Denial of Service",
    severity: 1,
    message_id: "3f6d2a9c71e84b05a2c4d8e6f1b3a716",
    describe: |a, _| describe(a, "TCP RSTs belonging to no connection"),
};

/// `reflection`'s catalogue entry.
pub const REFLECTION: Entry = Entry {
    name: "reflection",
    signature_id: 1_000_017,
    category: "Attempted Denial of Service",
    severity: 1,
    message_id: "3f6d2a9c71e84b05a2c4d8e6f1b3a717",
    describe: |a, _| {
        let service = a.sport.map(service_name).unwrap_or_default();
        let reflectors = crate::alert::sources(a).unwrap_or_default();
        let total = match a.detail {
            Detail::Sources { total, .. } => total,
            _ => 0,
        };
        let more = usize::from(total).saturating_sub(reflectors.len());
        let tail = match total {
            u8::MAX => " and 250 or more others".into(),
            _ if more > 0 => format!(" and about {more} more"),
            _ => String::new(),
        };
        format!(
            "reflection: {} received {} {service} answers it never asked for{} in {}, from {}{tail}",
            addr(a.dst),
            a.count,
            rate(a),
            secs(a.window_ms),
            reflectors.join(", ")
        )
    },
};

/// `frag-flood`'s catalogue entry.
pub const FRAG_FLOOD: Entry = Entry {
    name: "frag-flood",
    signature_id: 1_000_024,
    category: "Attempted Denial of Service",
    severity: 1,
    message_id: "3f6d2a9c71e84b05a2c4d8e6f1b3a724",
    describe: |a, _| describe(a, "IP fragments"),
};

/// `255` means "the count saturated".
fn sources_text(n: u8) -> String {
    if n == u8::MAX {
        "250 or more".into()
    } else {
        n.to_string()
    }
}

/// The service behind a reflected answer's source port.
fn service_name(port: u16) -> String {
    let name = match port {
        7 => "echo",
        17 => "qotd",
        19 => "chargen",
        53 => "DNS",
        69 => "TFTP",
        111 => "portmap",
        123 => "NTP",
        137 => "NetBIOS",
        161 => "SNMP",
        389 => "CLDAP",
        1900 => "SSDP",
        3283 => "ARD",
        3702 => "WS-Discovery",
        5353 => "mDNS",
        10001 => "Ubiquiti discovery",
        11211 => "memcached",
        _ => return format!("UDP port {port}"),
    };
    format!("{name} (UDP port {port})")
}

/// Thresholds of a group of hosts that legitimately receive more (fastnetmon's hostgroups):
/// `{ cidrs = [...], pps = N, mbps = M }` in a flood's `hostgroups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGroup {
    /// The hosts.
    pub hosts: PrefixSet,
    /// Their packet rate.
    pub pps: u64,
    /// Their bit rate (0: packets only).
    pub mbps: u64,
}

/// A host group as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHostGroup {
    cidrs: Vec<Spanned<String>>,
    pps: Spanned<i64>,
    mbps: Option<Spanned<i64>>,
}

/// Settings of one rate detector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodSettings {
    /// On or off.
    pub enabled: bool,
    /// Packets per second above which it fires.
    pub pps: u64,
    /// Megabits per second (IP bytes) above which it fires too; 0: packets only.
    pub mbps: u64,
    /// Window length in ms.
    pub window_ms: u64,
    /// Hosts with their own thresholds (the first group holding a host applies).
    pub groups: Vec<HostGroup>,
}

impl FloodSettings {
    const fn per_second(pps: u64) -> Self {
        FloodSettings {
            enabled: true,
            pps,
            mbps: 0,
            window_ms: 1_000,
            groups: Vec::new(),
        }
    }

    /// The packet and byte limits of one window for `host`.
    fn limits(&self, host: crate::decode::Addr) -> (u64, u64) {
        let (pps, mbps) = self
            .groups
            .iter()
            .find(|g| g.hosts.contains(host))
            .map_or((self.pps, self.mbps), |g| (g.pps, g.mbps));
        self.window_limits(pps, mbps)
    }

    /// The packet and byte limits of one window, for hosts in no group.
    fn base_limits(&self) -> (u64, u64) {
        self.window_limits(self.pps, self.mbps)
    }

    fn window_limits(&self, pps: u64, mbps: u64) -> (u64, u64) {
        // Megabits a second to bytes a window: mbps * 10^6 / 8 * window_ms / 1000.
        let bytes = if mbps == 0 {
            u64::MAX
        } else {
            mbps.saturating_mul(125).saturating_mul(self.window_ms)
        };
        (pps.saturating_mul(self.window_ms) / 1_000, bytes)
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
        if let Some(v) = raw.mbps {
            self.mbps = in_range(&v, 0, 1 << 30, &format!("detect.{name}.mbps"))
                .map_err(|m| (v.span(), m))? as u64;
        }
        if let Some(v) = raw.window_ms {
            self.window_ms = in_range(&v, 10, 60_000, &format!("detect.{name}.window_ms"))
                .map_err(|m| (v.span(), m))? as u64;
        }
        for g in raw.hostgroups.unwrap_or_default() {
            let mut prefixes = Vec::new();
            for c in &g.cidrs {
                prefixes.push(
                    parse_cidr(c.get_ref())
                        .map_err(|e| (c.span(), format!("detect.{name}.hostgroups: {e}")))?,
                );
            }
            let pps = in_range(&g.pps, 1, 1 << 40, &format!("detect.{name}.hostgroups.pps"))
                .map_err(|m| (g.pps.span(), m))? as u64;
            let mbps = match &g.mbps {
                Some(v) => in_range(v, 0, 1 << 30, &format!("detect.{name}.hostgroups.mbps"))
                    .map_err(|m| (v.span(), m))? as u64,
                None => 0,
            };
            self.groups.push(HostGroup {
                hosts: PrefixSet::new(prefixes),
                pps,
                mbps,
            });
        }
        Ok(())
    }

    fn groups_toml(&self) -> String {
        if self.groups.is_empty() {
            return String::new();
        }
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| {
                let cidrs: Vec<String> =
                    g.hosts.cidrs().iter().map(|c| format!("\"{c}\"")).collect();
                format!(
                    "{{ cidrs = [{}], pps = {}, mbps = {} }}",
                    cidrs.join(", "),
                    g.pps,
                    g.mbps
                )
            })
            .collect();
        format!("hostgroups = [{}]\n", groups.join(", "))
    }

    fn toml(&self, name: &str) -> String {
        format!(
            "\n[detect.{name}]\nenabled = {}\npps = {}\nmbps = {}\nwindow_ms = {}\n{}",
            self.enabled,
            self.pps,
            self.mbps,
            self.window_ms,
            self.groups_toml()
        )
    }
}

/// `[detect.syn-flood]`, `[detect.udp-flood]`, `[detect.icmp-flood]`, `[detect.ack-flood]`,
/// `[detect.rst-flood]`, `[detect.reflection]`, `[detect.frag-flood]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// syn-flood.
    pub syn: FloodSettings,
    /// udp-flood.
    pub udp: FloodSettings,
    /// icmp-flood.
    pub icmp: FloodSettings,
    /// ack-flood.
    pub ack: FloodSettings,
    /// rst-flood.
    pub rst: FloodSettings,
    /// reflection.
    pub reflection: FloodSettings,
    /// frag-flood.
    pub frag: FloodSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            syn: FloodSettings::per_second(3_000),
            udp: FloodSettings::per_second(8_000),
            icmp: FloodSettings::per_second(2_000),
            ack: FloodSettings::per_second(3_000),
            rst: FloodSettings::per_second(3_000),
            reflection: FloodSettings::per_second(2_000),
            frag: FloodSettings::per_second(10_000),
        }
    }
}

/// A flood table as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlood {
    enabled: Option<bool>,
    pps: Option<Spanned<i64>>,
    mbps: Option<Spanned<i64>>,
    window_ms: Option<Spanned<i64>>,
    hostgroups: Option<Vec<RawHostGroup>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct FloodState {
    start_ns: u64,
    /// The destination is link-layer chatter: the window counts nothing.
    chatter: bool,
    /// When the window closes (0: never opened).
    end_ns: u64,
    fired: bool,
    /// The window's packet and byte limits (set when it opens; a host group's once the base
    /// ones are passed).
    limits: (u64, u64),
    /// The host groups were looked up for this window.
    grouped: bool,
    tally: Tally,
}

impl FloodState {
    /// A window opening at `ts` for `victim`.
    #[inline]
    fn open(ts: u64, fs: &FloodSettings, victim: crate::decode::Addr) -> Self {
        FloodState {
            start_ns: ts,
            end_ns: ts
                .saturating_add(fs.window_ms.saturating_mul(1_000_000))
                .max(1),
            limits: fs.base_limits(),
            // Link-layer chatter (broadcast, multicast) is no flood: asked once a window, as
            // the destination is the entry's key.
            chatter: chatter_destination(victim),
            ..Default::default()
        }
    }
}

/// What a window counted, or what one worker counted of a victim's packets within a block
/// ([`Part`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    count: u64,
    bytes: u64,
    /// Majority-vote candidate for the dominant source, with its vote and exact hits.
    candidate: AddrKey,
    candidate_src: Option<std::net::IpAddr>,
    votes: u64,
    hits: u64,
    /// Sources seen, hashed into 256 bits (a linear count of distinct sources).
    seen: [u64; 4],
    /// The first distinct sources (reflectors are named).
    first: [AddrKey; LISTED],
}

/// Sources a flood alert lists.
const LISTED: usize = 4;

/// The distinct-source count's salt: one a process, so that the counts of one victim made by
/// several workers add up.
fn salt() -> u64 {
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| {
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0x5a17u64)
    })
}

impl Tally {
    /// Counts one packet.
    #[inline(always)]
    fn add(&mut self, ip: &Ip, salt: u64) {
        let src = ip.src.key();
        self.count += 1;
        let header = if ip.v4 { 20 } else { 40 };
        self.bytes += u64::from(ip.payload_len) + header;
        if self.candidate == src && self.votes > 0 {
            // The dominant source again (a one-source flood's every packet): counted already.
            self.votes += 1;
            self.hits += 1;
        } else {
            // A multiply-fold, not the table's hasher: two instructions a packet, and a forged
            // address can at worst miscount itself.
            let h = ((src as u64) ^ ((src >> 64) as u64) ^ salt)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                >> 56;
            let bit = 1u64 << (h & 63);
            let word = &mut self.seen[((h >> 6) & 3) as usize];
            if *word & bit == 0 {
                *word |= bit;
                if let Some(slot) = self.first.iter_mut().find(|k| **k == 0 || **k == src) {
                    *slot = src;
                }
            }
            if self.votes == 0 {
                self.candidate = src;
                self.candidate_src = Some(ip.src.ip());
                self.votes = 1;
                self.hits = 1;
            } else {
                self.votes -= 1;
            }
        }
    }

    /// Adds what another worker counted of the same window. The votes merge as two majority
    /// votes do: a source that sent most of the window's packets is the candidate after.
    fn merge(&mut self, o: &Tally) {
        self.count += o.count;
        self.bytes += o.bytes;
        if o.votes > 0 {
            if self.candidate == o.candidate && self.votes > 0 {
                self.votes += o.votes;
                self.hits += o.hits;
            } else if self.votes >= o.votes {
                self.votes -= o.votes;
            } else {
                self.votes = o.votes - self.votes;
                self.candidate = o.candidate;
                self.candidate_src = o.candidate_src;
                self.hits = o.hits;
            }
        }
        for (w, o) in self.seen.iter_mut().zip(o.seen) {
            *w |= o;
        }
        for src in o.first.into_iter().filter(|k| *k != 0) {
            if let Some(slot) = self.first.iter_mut().find(|k| **k == 0 || **k == src) {
                *slot = src;
            }
        }
    }

    /// About how many distinct sources it saw (255: 250 or more).
    fn distinct(&self) -> u8 {
        let zeros: u32 = self.seen.iter().map(|w| w.count_zeros()).sum();
        if zeros == 0 {
            return u8::MAX;
        }
        // Linear counting: n = -m ln(zeros / m), m = 256.
        let n = -256.0 * (f64::from(zeros) / 256.0).ln();
        (n.round() as u64).min(250) as u8
    }
}

/// Per (victim, kind) the packets of the current window.
#[derive(Debug)]
pub struct Floods {
    table: Table<(AddrKey, u8), FloodState>,
    /// The distinct-source count's salt ([`salt`]).
    salt: u64,
}

/// One worker's packets of a flood to a victim another worker's shard owns, within one block
/// (its [`HEAVY`]th packet of the block on): tallied where they were read and merged into the
/// victim's window once a block, so that a flood's packets do not each cross to the other
/// worker.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    /// The victim's shard.
    pub shard: u16,
    detector: Detector,
    iface: u16,
    /// The victim is link-layer chatter: nothing is counted, nothing handed over.
    chatter: bool,
    first_ns: u64,
    last_ns: u64,
    /// The first packet's IP layer (the victim, and the fields of an alert).
    ip: Ip,
    tally: Tally,
}

/// A worker's parts of this block (see [`Part`]): a fixed number of slots, a victim's by a
/// salted hash of it and the flood. A slot follows the first victim that reaches it in the
/// block; once that victim has had [`HEAVY`] packets, the rest are tallied. Every other packet
/// (a victim's first few, and those of victims whose slot is taken) is left to cross as before:
/// traffic to many hosts, each a few packets, costs a slot's check, not a part each.
#[derive(Debug)]
pub struct Tallies {
    slots: Box<[Slot]>,
    /// This block's number: a slot of another block's is free.
    block: u32,
    /// The parts of the block's heavy victims (at most one a slot).
    parts: Vec<Part>,
    /// The slots' salt.
    salt: u64,
    /// The distinct-source count's ([`salt`]).
    count_salt: u64,
}

/// The packet of a victim in a block from which on its packets are tallied rather than sent
/// (the ones before cross: a victim of a few packets is not worth a tally).
pub const HEAVY: u16 = 4;

/// One slot of [`Tallies`]: the victim it follows this block, its packets so far, its part.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    victim: AddrKey,
    /// The block it was taken in.
    block: u32,
    iface: u16,
    detector: u8,
    /// Packets of the victim this block.
    seen: u16,
    /// Its part's place in `parts`, plus one (0: none yet).
    part: u16,
}

impl Tallies {
    /// Room for `slots` victims a block (rounded up to a power of two, at most 32,768: a
    /// slot's part is numbered in 16 bits, from 1).
    pub fn new(slots: usize) -> Self {
        let n = slots.clamp(1, 1 << 15).next_power_of_two();
        Tallies {
            slots: vec![Slot::default(); n].into_boxed_slice(),
            block: 1,
            parts: Vec::with_capacity(n),
            salt: salt().rotate_left(17),
            count_salt: salt(),
        }
    }

    /// Counts a packet for the victim's shard `shard`, if a flood under `s` counts it and its
    /// victim is one of the block's heavy ones; false when the packet is to cross as before.
    #[inline]
    pub fn add(&mut self, shard: usize, (ts, iface): (u64, u16), ip: &Ip, s: &Settings) -> bool {
        let Some((detector, _)) = counted_as(ip, s) else {
            return false;
        };
        let victim = ip.dst.key();
        let h = ((victim as u64) ^ ((victim >> 64) as u64) ^ self.salt ^ detector as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let i = (h >> 48) as usize & (self.slots.len() - 1);
        let slot = &mut self.slots[i];
        if slot.block != self.block {
            *slot = Slot {
                victim,
                block: self.block,
                iface,
                detector: detector as u8,
                seen: 1,
                part: 0,
            };
            return false;
        }
        if slot.victim != victim || slot.detector != detector as u8 || slot.iface != iface {
            return false;
        }
        if slot.part > 0 {
            let p = &mut self.parts[usize::from(slot.part) - 1];
            if !p.chatter {
                p.last_ns = ts;
                p.tally.add(ip, self.count_salt);
            }
            return true;
        }
        slot.seen += 1;
        if slot.seen < HEAVY {
            return false;
        }
        self.parts
            .push(Part::new(shard, detector, (ts, iface), ip, self.count_salt));
        slot.part = self.parts.len() as u16;
        true
    }

    /// Takes every part (at the end of a block), calling `f` on each but the chatter's, and
    /// frees the slots.
    pub fn take(&mut self, mut f: impl FnMut(Part)) {
        for p in self.parts.drain(..).filter(|p| !p.chatter) {
            f(p);
        }
        self.block = self.block.wrapping_add(1);
        if self.block == 0 {
            // Once in four billion blocks: no slot may look taken in the new one.
            self.slots.fill(Slot::default());
            self.block = 1;
        }
    }
}

impl Part {
    /// A part that begins with this packet.
    #[cold]
    #[inline(never)]
    fn new(shard: usize, detector: Detector, (ts, iface): (u64, u16), ip: &Ip, salt: u64) -> Self {
        let chatter = chatter_destination(ip.dst);
        let mut tally = Tally::default();
        if !chatter {
            tally.add(ip, salt);
        }
        Part {
            shard: shard as u16,
            detector,
            iface,
            chatter,
            first_ns: ts,
            last_ns: ts,
            ip: *ip,
            tally,
        }
    }
}

/// Which flood a packet would count for.
#[inline]
fn kind(ip: &Ip) -> Option<Detector> {
    if ip.fragment != Fragment::No {
        return Some(Detector::FragFlood);
    }
    match ip.transport {
        Transport::Tcp { flags, .. }
            if flags & tcp_flags::SYN != 0 && flags & tcp_flags::ACK == 0 =>
        {
            Some(Detector::SynFlood)
        }
        Transport::Tcp { flags, .. } if ip.stray && flags & tcp_flags::RST != 0 => {
            Some(Detector::RstFlood)
        }
        Transport::Tcp { flags, .. } if ip.stray && flags & tcp_flags::ACK != 0 => {
            Some(Detector::AckFlood)
        }
        // Answers in the destination's own conversations are no flood, however fast (a
        // QUIC download, a busy resolver's answers, echo replies to its own pings).
        _ if ip.reply => None,
        Transport::Udp { .. } if ip.stray => Some(Detector::Reflection),
        Transport::Udp { .. } => Some(Detector::UdpFlood),
        Transport::Icmp { .. } | Transport::Icmpv6 { .. } => Some(Detector::IcmpFlood),
        _ => None,
    }
}

/// Which flood a packet counts for under `s`, and that flood's settings (none when it is off).
#[inline(always)]
fn counted_as<'s>(ip: &Ip, s: &'s Settings) -> Option<(Detector, &'s FloodSettings)> {
    let mut detector = kind(ip)?;
    let mut fs = settings_of(detector, s);
    if detector == Detector::Reflection && !fs.enabled {
        // Unasked answers are UDP all the same.
        (detector, fs) = (Detector::UdpFlood, &s.udp);
    }
    fs.enabled.then_some((detector, fs))
}

/// The settings of `flood`.
#[inline]
fn settings_of(flood: Detector, s: &Settings) -> &FloodSettings {
    match flood {
        Detector::SynFlood => &s.syn,
        Detector::UdpFlood => &s.udp,
        Detector::AckFlood => &s.ack,
        Detector::RstFlood => &s.rst,
        Detector::Reflection => &s.reflection,
        Detector::FragFlood => &s.frag,
        _ => &s.icmp,
    }
}

/// A window past its base limits: fires unless the victim's host group allows more. `at`:
/// the time, interface and IP layer of the packet (or the latest of the part) that took it
/// past them.
#[cold]
#[inline(never)]
fn over(
    e: &mut FloodState,
    fs: &FloodSettings,
    detector: Detector,
    (ts, iface, ip): (u64, u16, &Ip),
    out: &mut Out<'_>,
) {
    let t = &e.tally;
    if !e.grouped && !fs.groups.is_empty() {
        // A host of a group has its own limits, looked up once a window.
        e.grouped = true;
        e.limits = fs.limits(ip.dst);
        if t.count <= e.limits.0 && t.bytes <= e.limits.1 {
            return;
        }
    }
    e.fired = true;
    let dominant = (t.hits * 2 > t.count).then_some(t.candidate_src).flatten();
    let mut keys = [0; MAX_SOURCES];
    keys[..LISTED].copy_from_slice(&t.first);
    let reflection = detector == Detector::Reflection;
    let alert = Alert {
        detector,
        src: dominant,
        // A reflection names its service; other floods show no ports.
        sport: reflection
            .then(|| ip.transport.ports().map(|p| p.0))
            .flatten(),
        count: t.count,
        bytes: t.bytes,
        window_ms: (ts.saturating_sub(e.start_ns) / 1_000_000).max(1),
        detail: if reflection || dominant.is_none() {
            Detail::Sources {
                keys: if reflection { keys } else { [0; MAX_SOURCES] },
                total: t.distinct(),
                mac: [0; 6],
                owner: 0,
            }
        } else {
            Detail::None
        },
        ..base(ts, iface, ip)
    };
    out.send(alert);
}

impl Floods {
    /// Merges another worker's part of a flood into the victim's window (this shard owns the
    /// victim), firing as a packet would.
    #[inline(never)]
    pub fn merge(&mut self, part: &Part, s: &Settings, out: &mut Out<'_>) {
        let detector = part.detector;
        let fs = settings_of(detector, s);
        if !fs.enabled {
            return;
        }
        let key = (part.ip.dst.key(), detector as u8);
        if self.table.get_mut(&key, part.last_ns).is_none() {
            self.table.insert_absent(key, part.last_ns);
        }
        let Some(e) = self.table.get_mut(&key, part.last_ns) else {
            return;
        };
        if part.first_ns >= e.end_ns {
            *e = FloodState::open(part.first_ns, fs, part.ip.dst);
        }
        if e.chatter || e.fired {
            return;
        }
        e.tally.merge(&part.tally);
        if e.tally.count <= e.limits.0 && e.tally.bytes <= e.limits.1 {
            return;
        }
        over(e, fs, detector, (part.last_ns, part.iface, &part.ip), out);
    }
}

impl Family for Floods {
    type Settings = Settings;
    type Raw = (
        Option<RawFlood>,
        Option<RawFlood>,
        Option<RawFlood>,
        Option<RawFlood>,
        Option<RawFlood>,
        Option<RawFlood>,
        Option<RawFlood>,
    );
    const KEY: Key = Key::Destination;
    const TALLIED: bool = true;

    fn new(capacity: usize, hasher: SeededState) -> Self {
        Floods {
            table: Table::new(capacity, hasher),
            salt: salt(),
        }
    }

    #[inline]
    fn wants(packet: &Packet, _s: &Settings) -> bool {
        match &packet.net {
            Net::Ip(ip) => kind(ip).is_some(),
            _ => false,
        }
    }

    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        let Some(ip) = seen.ip() else { return };
        let Some((detector, fs)) = counted_as(ip, s) else {
            return;
        };
        let ts = seen.ts_ns;
        let e = self.table.entry((ip.dst.key(), detector as u8), ts);
        if ts >= e.end_ns {
            *e = FloodState::open(ts, fs, ip.dst);
        }
        // Chatter counts nothing; a window that fired has said what it had to (its alert
        // carries the counts that took it over), so the rest of a flood's packets in it are
        // not counted either: under attack each costs the lookup alone.
        if e.chatter || e.fired {
            return;
        }
        e.tally.add(ip, self.salt);
        if e.tally.count <= e.limits.0 && e.tally.bytes <= e.limits.1 {
            return;
        }
        over(e, fs, detector, (ts, seen.iface, ip), out);
    }

    fn evictions(&self) -> u64 {
        self.table.evictions()
    }

    fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    fn configure(
        s: &mut Settings,
        (syn, udp, icmp, ack, rst, reflection, frag): Self::Raw,
    ) -> Result<(), SpanError> {
        s.syn.configure("syn-flood", syn)?;
        s.udp.configure("udp-flood", udp)?;
        s.icmp.configure("icmp-flood", icmp)?;
        s.ack.configure("ack-flood", ack)?;
        s.rst.configure("rst-flood", rst)?;
        s.reflection.configure("reflection", reflection)?;
        s.frag.configure("frag-flood", frag)
    }

    fn toml(s: &Settings) -> String {
        s.syn.toml("syn-flood")
            + &s.udp.toml("udp-flood")
            + &s.icmp.toml("icmp-flood")
            + &s.ack.toml("ack-flood")
            + &s.rst.toml("rst-flood")
            + &s.reflection.toml("reflection")
            + &s.frag.toml("frag-flood")
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

    /// `frames` as two workers see them: the even ones by the victim's shard's own worker,
    /// the odd ones by the other, which tallies them and hands its parts over every `block`
    /// frames.
    fn run_split(s: &Settings, frames: &[(u64, Vec<u8>)], block: usize) -> Vec<Alert> {
        let mut floods = Floods::new(64, SeededState::random());
        let mut tallies = Tallies::new(16);
        let mut parts = Vec::new();
        crate::detect::family::collecting(|out| {
            for (i, (ts, f)) in frames.iter().enumerate() {
                let p = crate::decode::decode_ethernet(f, None).expect("a valid frame");
                let Net::Ip(ip) = &p.net else { panic!("{p:?}") };
                // The other worker's packets it does not tally cross, and are judged as they
                // come.
                if i % 2 == 0 || !tallies.add(1, (*ts, 0), ip, s) {
                    floods.observe(&Seen::new(*ts, 0, false, &p), s, out);
                }
                if i % block == block - 1 {
                    tallies.take(|p| parts.push(p));
                    for p in parts.drain(..) {
                        assert_eq!(p.shard, 1);
                        floods.merge(&p, s, out);
                    }
                }
            }
        })
    }

    #[test]
    fn a_flood_read_by_two_workers_adds_up_in_the_victims_shard() {
        let victim = v4(0xc633_6402);
        let s = Settings::default();
        // One source, 10,000 packets a second: named, counted when a block ends.
        let one: Vec<_> = (0..9_000u64)
            .map(|i| {
                (
                    1_000_000_000 + i * 100_000,
                    udp_frame(v4(0x0a00_0001), victim, 1024, 53, b""),
                )
            })
            .collect();
        let alerts = run_split(&s, &one, 512);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].src, Some(v4(0x0a00_0001)));
        assert!(
            (8_001..8_001 + 256).contains(&alerts[0].count),
            "{alerts:?}"
        );
        // A dominant source among spoofed ones, most of each worker's share: the votes merge.
        let mixed: Vec<_> = (0..9_000u32)
            .map(|i| {
                let src = if i % 3 == 2 {
                    0x0b00_0000 + i
                } else {
                    0x0a00_0001
                };
                let f = udp_frame(v4(src), victim, 1024, 53, b"");
                (1_000_000_000 + u64::from(i) * 100_000, f)
            })
            .collect();
        let alerts = run_split(&s, &mixed, 512);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].src, Some(v4(0x0a00_0001)), "{alerts:?}");
        // Spoofed sources: many, about as many as one shard counts (the salt is the process's).
        let many: Vec<_> = (0..4_000u32)
            .map(|i| {
                let f = tcp_frame(v4(0x0b00_0000 + i), victim, 1024, 80, tcp_flags::SYN);
                (1_000_000_000 + u64::from(i) * 100_000, f)
            })
            .collect();
        let split = run_split(&s, &many, 512);
        let whole = run(&mut Floods::new(64, SeededState::random()), &s, &many);
        assert_eq!(split.len(), 1, "{split:?}");
        assert_eq!(split[0].src, None);
        let total = |a: &Alert| match a.detail {
            Detail::Sources { total, .. } => total,
            _ => 0,
        };
        assert_eq!(total(&split[0]), total(&whole[0]), "{split:?} {whole:?}");
        assert_eq!(total(&split[0]), u8::MAX, "{split:?}");
    }

    #[test]
    fn majority_votes_merge_as_one_vote() {
        // Two tallies whose own candidates differ: the source with most of both wins.
        let ip = |src: u32| {
            let f = udp_frame(v4(src), v4(0xc633_6402), 1024, 53, b"");
            match crate::decode::decode_ethernet(&f, None).map(|p| p.net) {
                Ok(Net::Ip(ip)) => ip,
                other => panic!("{other:?}"),
            }
        };
        let (a, b) = (ip(1), ip(2));
        let mut x = Tally::default();
        for _ in 0..6 {
            x.add(&a, 0);
        }
        for _ in 0..4 {
            x.add(&b, 0);
        }
        let mut y = Tally::default();
        for _ in 0..5 {
            y.add(&b, 0);
        }
        for _ in 0..3 {
            y.add(&a, 0);
        }
        // a: 9 of 18, b: 9 of 18; one more a makes it a's.
        y.add(&a, 0);
        x.merge(&y);
        assert_eq!((x.count, x.candidate), (19, a.src.key()));
    }

    #[test]
    fn broadcast_and_multicast_chatter_is_no_flood_however_fast() {
        let s = Settings::default();
        let mut floods = Floods::new(64, SeededState::random());
        let chatter: Vec<_> = (0..30_000u64)
            .map(|i| {
                let dst = match i % 3 {
                    0 => v4(0xffff_ffff),
                    1 => v4(0x0a00_00ff),
                    _ => v4(0xe000_00fb),
                };
                let f = udp_frame(v4(0x0a00_0001), dst, 5353, 5353, b"");
                (1_000_000_000 + i * 10_000, f)
            })
            .collect();
        assert_eq!(run(&mut floods, &s, &chatter), vec![]);
        // The same rate to a unicast host is one.
        let unicast: Vec<_> = (0..30_000u64)
            .map(|i| {
                let f = udp_frame(v4(0x0a00_0001), v4(0x0a00_0002), 5353, 5353, b"");
                (2_000_000_000 + i * 10_000, f)
            })
            .collect();
        assert_eq!(run(&mut floods, &s, &unicast).len(), 1);
    }

    #[test]
    fn a_byte_rate_fires_where_the_packet_rate_does_not() {
        let victim = v4(0xc633_6402);
        // 500 datagrams of 1,400 bytes in a second: 5.7 Mbit/s, far below 8,000 packets.
        let big: Vec<_> = (0..500u64)
            .map(|i| {
                (
                    1_000_000_000 + i * 2_000_000,
                    udp_frame(v4(0x0a00_0001), victim, 1024, 9, &[0; 1400]),
                )
            })
            .collect();
        let mut floods = Floods::new(64, SeededState::random());
        assert!(run(&mut floods, &Settings::default(), &big).is_empty());
        let s = Settings {
            udp: FloodSettings {
                mbps: 5,
                ..Settings::default().udp
            },
            ..Settings::default()
        };
        let mut floods = Floods::new(64, SeededState::random());
        let alerts = run(&mut floods, &s, &big);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(alerts[0].bytes > 625_000, "{alerts:?}");
        assert!((UDP_FLOOD.describe)(&alerts[0], "eth0").contains("Mbit/s"));
    }

    #[test]
    fn a_host_group_has_its_own_thresholds() {
        let config = crate::config::Config::parse(
            "[detect.udp-flood]\nhostgroups = [{ cidrs = [\"198.51.100.0/24\"], pps = 20000 }]\n",
            std::path::Path::new("scram.toml"),
        )
        .unwrap();
        let s = config.detect.floods;
        assert_eq!(s.udp.groups.len(), 1);
        let flood = |victim| -> Vec<(u64, Vec<u8>)> {
            (0..9_000u64)
                .map(|i| {
                    (
                        1_000_000_000 + i * 100_000,
                        udp_frame(v4(0x0a00_0001), victim, 1024, 9, b""),
                    )
                })
                .collect()
        };
        // 9,000 a second: above the default 8,000, below the group's 20,000.
        let mut floods = Floods::new(64, SeededState::random());
        assert!(run(&mut floods, &s, &flood(v4(0xc633_6402))).is_empty());
        let alerts = run(&mut floods, &s, &flood(v4(0xcb00_7102)));
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        // check-config prints the group back.
        assert!(Floods::toml(&s)
            .contains("hostgroups = [{ cidrs = [\"198.51.100.0/24\"], pps = 20000, mbps = 0 }]"));
    }

    #[test]
    fn the_router_sends_only_flood_candidates_to_the_victims_shard() {
        let (a, b) = (v4(0x0a00_0001), v4(0x0a00_0002));
        let wants = |f: Vec<u8>| {
            Floods::wants(
                &crate::decode::decode_ethernet(&f, None).unwrap(),
                &Settings::default(),
            )
        };
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
