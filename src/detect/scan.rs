//! Scans: one source probing many ports (or IP protocols) of one host (`portscan`) or one port on
//! many hosts (`portsweep`, ICMP echo included). What counts is a failed attempt, as the flow
//! table reports it (`crate::flow`): refused with a RST, or unanswered; an answered conversation
//! is never a probe, however many a poller or a browser opens. Keyed on the initiator.

use serde::Deserialize;
use toml::Spanned;

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::record::{Alert, Detail, Summary, MAX_ANSWERED};
use super::table::{SeededState, Table};
use super::window::{CountSettings, CountWindow, RawCount};
use super::{addr_key, key_addr, AddrKey, Detector};
use crate::alert::community_id::FlowTuple;
use crate::alert::text::{addr, proto_name, secs};
use crate::config::in_range;
use crate::decode::{proto, Addr};
use crate::flow::{Attempt, Probe};

/// `portscan`'s catalogue entry.
pub const PORTSCAN: Entry = Entry {
    name: "portscan",
    signature_id: 1_000_001,
    category: "Attempted Information Leak",
    severity: 2,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b501",
    describe: |a, _| {
        let what = if a.detail == Detail::Kind(Probe::IpProto.name()) {
            "IP protocols"
        } else {
            "ports"
        };
        format!(
            "portscan: {} probed {} {what} of {} in {}{}",
            addr(a.src),
            a.count,
            addr(a.dst),
            secs(a.window_ms),
            scan_type(a)
        )
    },
};

/// `portsweep`'s catalogue entry.
pub const PORTSWEEP: Entry = Entry {
    name: "portsweep",
    signature_id: 1_000_002,
    category: "Attempted Information Leak",
    severity: 2,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b502",
    describe: |a, _| match a.dport {
        Some(port) => format!(
            "portsweep: {} probed {} hosts on {} port {port} in {}{}",
            addr(a.src),
            a.count,
            a.proto.map(proto_name).unwrap_or_default(),
            secs(a.window_ms),
            scan_type(a)
        ),
        None if a.icmp.is_some() => format!(
            "portsweep: {} pinged {} hosts in {}",
            addr(a.src),
            a.count,
            secs(a.window_ms)
        ),
        None => format!(
            "portsweep: {} probed {} hosts with {} in {}",
            addr(a.src),
            a.count,
            a.proto.map(proto_name).unwrap_or_default(),
            secs(a.window_ms)
        ),
    },
};

/// ` (SYN scan)`: the scan type of the attempts counted.
fn scan_type(a: &Alert) -> String {
    match a.detail {
        Detail::Kind(kind) => format!(" ({kind} scan)"),
        _ => String::new(),
    }
}

/// `scan-summary`'s catalogue entry: a scan incident's closing record.
pub const SCAN_SUMMARY: Entry = Entry {
    name: "scan-summary",
    signature_id: 1_000_014,
    category: "Attempted Information Leak",
    severity: 3,
    message_id: "3f6d2a9c71e84b05a2c4d8e6f1b3a714",
    describe: |a, _| {
        let Detail::Summary(sum) = a.detail else {
            return format!("scan-summary: {} scan ended", addr(a.src));
        };
        let what = match (sum.scan, a.dst, a.dport) {
            (Some(Detector::Portsweep), _, Some(port)) => format!(
                "{} hosts on {} port {port}",
                a.count,
                a.proto.map(proto_name).unwrap_or_default()
            ),
            (Some(Detector::Portsweep), _, None) => format!("{} hosts", a.count),
            (_, dst, _) if sum.kinds & 1 << Probe::IpProto as u16 != 0 => {
                format!("{} IP protocols of {}", a.count, addr(dst))
            }
            (_, dst, _) => format!("{} ports of {}", a.count, addr(dst)),
        };
        let answered = answered_text(&sum);
        format!(
            "scan-summary: {} probed {what} over {} ({} scan, {} attempts); {answered}",
            addr(a.src),
            secs(a.window_ms),
            sum.kinds(),
            sum.attempts,
        )
    },
};

/// `answered: 22, 80 and 3 more`, or `nothing answered`.
fn answered_text(sum: &Summary) -> String {
    if sum.answered_total == 0 {
        return "nothing answered".into();
    }
    let listed = answered_items(sum);
    let more = (sum.answered_total as usize).saturating_sub(listed.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("answered: {}{tail}", listed.join(", "))
}

/// What answered, as text: ports (a portscan) or addresses (a portsweep).
pub fn answered_items(sum: &Summary) -> Vec<String> {
    sum.answered()
        .map(|k| match sum.scan {
            Some(Detector::Portsweep) => key_addr(k).to_string(),
            _ => k.to_string(),
        })
        .collect()
}

/// `[detect.portscan]`, `[detect.portsweep]` and `[detect.scan-summary]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// portscan.
    pub portscan: CountSettings,
    /// portsweep.
    pub portsweep: CountSettings,
    /// scan-summary: on or off.
    pub summary: bool,
    /// A scan with no attempt for this long has ended, ms.
    pub quiet_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            // Failed attempts are rare in ordinary traffic, so a scan's state is kept for an hour
            // (as psad keeps it): slow scans (nmap -T1, --scan-delay) cross the threshold too.
            portscan: CountSettings {
                window_ms: 3_600_000,
                ..CountSettings::per_minute(20)
            },
            portsweep: CountSettings::per_minute(20),
            summary: true,
            quiet_ms: 60_000,
        }
    }
}

/// `[detect.scan-summary]` as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSummary {
    enabled: Option<bool>,
    quiet_seconds: Option<Spanned<i64>>,
}

/// `[detect.portscan]` as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPortscan {
    enabled: Option<bool>,
    ports: Option<Spanned<i64>>,
    window_seconds: Option<Spanned<i64>>,
}

/// `[detect.portsweep]` as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPortsweep {
    enabled: Option<bool>,
    hosts: Option<Spanned<i64>>,
    window_seconds: Option<Spanned<i64>>,
}

/// Scan state: per (source, target) the ports probed; per (source, port, protocol) the hosts;
/// the incidents open (scans that crossed their threshold, until they go quiet); the last
/// answers seen from anyone not yet failing (the first open ports a scan finds come back as
/// fast as its first refusals).
#[derive(Debug)]
pub struct Scans {
    scans: Table<(AddrKey, AddrKey), Scan>,
    sweeps: Table<(AddrKey, u16, u8), Sweep>,
    incidents: Table<IncidentKey, Incident>,
    recent: Box<[Answer; RECENT]>,
    recent_next: usize,
    /// Incidents open, as far as closing them counts (an evicted one stays counted until a
    /// whole turn of the hand finds none).
    open: usize,
    /// Incidents seen open or opened since the hand last passed slot 0.
    open_this_turn: usize,
    hand: usize,
    hasher: SeededState,
}

/// One (source, target)'s ports, the first ports that answered it, and the slot of its
/// incident once open.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    window: CountWindow<u16>,
    early: Early,
    incident: usize,
}

/// One (source, port, protocol)'s hosts, the first hosts that answered it, and the slot of its
/// incident once open.
#[derive(Debug, Clone, Copy, Default)]
struct Sweep {
    window: CountWindow<u32>,
    early: Early,
    incident: usize,
}

/// Answers before an incident opened (ports, or host keys).
#[derive(Debug, Clone, Copy, Default)]
struct Early {
    items: [u128; EARLY],
    len: u8,
}

const EARLY: usize = 4;

impl Early {
    fn push(&mut self, item: u128) {
        let n = usize::from(self.len);
        if n < EARLY && !self.items[..n].contains(&item) {
            self.items[n] = item;
            self.len += 1;
        }
    }

    fn items(&self) -> &[u128] {
        &self.items[..usize::from(self.len)]
    }
}

/// An answer seen before its initiator had any scan state.
#[derive(Debug, Clone, Copy, Default)]
struct Answer {
    src: AddrKey,
    dst: AddrKey,
    port: u16,
    proto: u8,
    /// A port scan's answer (not an echo reply, which only a sweep counts).
    ported: bool,
}

/// Answers remembered from initiators not (yet) failing anywhere.
const RECENT: usize = 256;

/// Incident slots per shard: `capacity / INCIDENT_SHARE`, within [`INCIDENTS_MIN`, `INCIDENTS_MAX`].
const INCIDENT_SHARE: usize = 256;
const INCIDENTS_MIN: usize = 8;
const INCIDENTS_MAX: usize = 256;

/// Incident slots the clock hand visits per tick.
const TICK_BUDGET: usize = 16;

/// (scan or sweep, source, the target's key or `port << 8 | protocol`).
type IncidentKey = (bool, AddrKey, u128);

/// 65,536 bits: exact for ports, and for hosts by their address's low 16 bits.
#[derive(Debug, Clone, Copy)]
struct Bits([u64; 1024]);

impl Default for Bits {
    fn default() -> Self {
        Bits([0; 1024])
    }
}

impl Bits {
    /// Sets bit `i`; was it new?
    #[inline]
    fn insert(&mut self, i: u16) -> bool {
        let (w, b) = (usize::from(i >> 6), 1u64 << (i & 63));
        let new = self.0[w] & b == 0;
        self.0[w] |= b;
        new
    }
}

/// A scan from its alert until it goes quiet.
#[derive(Debug, Clone, Copy, Default)]
struct Incident {
    open: bool,
    first_ns: u64,
    last_ns: u64,
    iface: u16,
    proto: u8,
    /// Scan types seen (bit `1 << probe`).
    kinds: u16,
    attempts: u32,
    probed: Bits,
    probed_n: u32,
    answered: Bits,
    answered_n: u32,
    listed: [u128; MAX_ANSWERED],
}

impl Incident {
    fn probe(&mut self, index: u16, ts_ns: u64) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_ns = self.last_ns.max(ts_ns);
        if self.probed.insert(index) {
            self.probed_n += 1;
        }
    }

    fn answer(&mut self, index: u16, item: u128, ts_ns: u64) {
        self.probe(index, ts_ns);
        if self.answered.insert(index) {
            if let Some(slot) = self.listed.get_mut(self.answered_n as usize) {
                *slot = item;
            }
            self.answered_n += 1;
        }
    }
}

impl Family for Scans {
    type Settings = Settings;
    type Raw = (
        Option<RawPortscan>,
        Option<RawPortsweep>,
        Option<RawSummary>,
    );
    const KEY: Key = Key::Source;

    /// Scans are counted from attempts (their flows'), never from packets.
    #[inline]
    fn wants(_packet: &crate::decode::Packet, _s: &Settings) -> bool {
        false
    }

    fn new(capacity: usize, hasher: SeededState) -> Self {
        let incidents = (capacity / INCIDENT_SHARE).clamp(INCIDENTS_MIN, INCIDENTS_MAX);
        Scans {
            scans: Table::new(capacity, hasher),
            sweeps: Table::new(capacity, hasher),
            incidents: Table::new(incidents, hasher),
            recent: Box::new([Answer::default(); RECENT]),
            recent_next: 0,
            open: 0,
            open_this_turn: 0,
            hand: 0,
            hasher,
        }
    }

    /// Packets themselves are not counted: their flows are (see `failure`).
    #[inline]
    fn observe(&mut self, _seen: &Seen<'_>, _s: &Settings, _out: &mut Out<'_>) {}

    fn failure(&mut self, f: &Attempt, s: &Settings, out: &mut Out<'_>) {
        // Host discovery on the link is the link sweeps'.
        if !matches!(f.probe, Probe::Arp | Probe::Nd) {
            self.attempt(f, s, out);
        }
    }

    fn answered(&mut self, a: &Attempt, s: &Settings, _out: &mut Out<'_>) {
        if !matches!(a.probe, Probe::Arp | Probe::Nd | Probe::None) {
            self.answer(a, s);
        }
    }

    fn tick(&mut self, now_ns: u64, s: &Settings, out: &mut Out<'_>) {
        if self.open == 0 {
            return;
        }
        let quiet_ns = s.quiet_ms.saturating_mul(1_000_000);
        for _ in 0..self.incidents.tick_budget(now_ns, TICK_BUDGET) {
            self.hand = self.incidents.next_slot(self.hand);
            if self.hand == 0 {
                // A whole turn found none open and none was opened: any left in the count
                // were evicted.
                if std::mem::take(&mut self.open_this_turn) == 0 {
                    self.open = 0;
                }
            }
            let Some((&key, inc)) = self.incidents.slot_mut(self.hand) else {
                continue;
            };
            if !inc.open {
                continue;
            }
            if now_ns != u64::MAX && now_ns.saturating_sub(inc.last_ns) < quiet_ns {
                self.open_this_turn += 1;
                continue;
            }
            self.open_this_turn += 1;
            inc.open = false;
            self.open = self.open.saturating_sub(1);
            if s.summary {
                let ts = if now_ns == u64::MAX {
                    inc.last_ns
                } else {
                    now_ns
                };
                out.report(summary(key, inc, ts));
            }
        }
    }

    fn evictions(&self) -> u64 {
        self.scans.evictions() + self.sweeps.evictions() + self.incidents.evictions()
    }

    fn memory_bytes(&self) -> usize {
        self.scans.memory_bytes()
            + self.sweeps.memory_bytes()
            + self.incidents.memory_bytes()
            + std::mem::size_of::<[Answer; RECENT]>()
    }

    fn configure(s: &mut Settings, (scan, sweep, summary): Self::Raw) -> Result<(), SpanError> {
        if let Some(r) = summary {
            if let Some(e) = r.enabled {
                s.summary = e;
            }
            if let Some(v) = r.quiet_seconds {
                s.quiet_ms = in_range(&v, 1, 86_400, "detect.scan-summary.quiet_seconds")
                    .map_err(|m| (v.span(), m))? as u64
                    * 1000;
            }
        }
        s.portscan.configure(
            "detect.portscan",
            "ports",
            scan.map(|r| RawCount {
                enabled: r.enabled,
                threshold: r.ports,
                window_seconds: r.window_seconds,
            }),
        )?;
        s.portsweep.configure(
            "detect.portsweep",
            "hosts",
            sweep.map(|r| RawCount {
                enabled: r.enabled,
                threshold: r.hosts,
                window_seconds: r.window_seconds,
            }),
        )
    }

    fn toml(s: &Settings) -> String {
        s.portscan.toml("portscan", "ports")
            + &s.portsweep.toml("portsweep", "hosts")
            + &format!(
                "\n[detect.scan-summary]\nenabled = {}\nquiet_seconds = {}\n",
                s.summary,
                s.quiet_ms / 1000
            )
    }
}

impl Scans {
    /// A sweep's host as its window counts it, and the bit it takes in an incident's maps (the
    /// item's low half). The bit is the address's low 16 bits, so an incident counts every host
    /// of a sweep within a /16 (or any 65,536 consecutive IPv6 addresses) exactly, whatever the
    /// seed. The window's item is the whole IPv4 address, or for IPv6 the low 16 bits under 16
    /// bits of the seeded hash, which a scanner cannot aim at.
    fn host_index(&self, dst: AddrKey) -> (u32, u16) {
        let low = dst as u16;
        let item = if Addr::from_key(dst).is_ipv4() {
            dst as u32
        } else {
            let h = std::hash::BuildHasher::hash_one(&self.hasher, dst) as u32;
            h & 0xffff_0000 | u32::from(low)
        };
        (item, low)
    }

    /// A failed attempt for the scan and sweep counters, and the incidents they opened.
    fn attempt(&mut self, f: &Attempt, s: &Settings, out: &mut Out<'_>) {
        let ts = f.ts_ns;
        let src = addr_key(f.initiator);
        let dst = addr_key(f.target);
        let echo = f.probe == Probe::Echo;
        let base = || {
            let (icmp, trigger) = if echo {
                let ty = if f.proto == proto::ICMP { 8 } else { 128 };
                (
                    Some((ty, 0)),
                    FlowTuple::icmp(f.initiator, f.target, f.proto, ty, 0),
                )
            } else if f.probe == Probe::IpProto {
                (None, FlowTuple::new(f.initiator, f.target, f.proto, None))
            } else {
                (
                    None,
                    FlowTuple::new(f.initiator, f.target, f.proto, Some((f.sport, f.dport))),
                )
            };
            Alert {
                ts_ns: ts,
                iface: f.iface,
                src: Some(f.initiator),
                dst: Some(f.target),
                proto: Some(f.proto),
                icmp,
                trigger: Some(trigger),
                detail: Detail::Kind(f.probe.name()),
                ..Alert::default()
            }
        };
        if s.portscan.enabled && !echo {
            let scan = self.scans.entry((src, dst), ts);
            let crossed = scan.window.count(f.dport, ts, &s.portscan);
            if let Some(c) = crossed {
                out.send(Alert {
                    detector: Detector::Portscan,
                    count: c.count,
                    window_ms: c.window_ms,
                    ..base()
                });
            }
            if scan.window.fired() {
                let scan = *scan;
                let key = (false, src, dst);
                let slot = self.track(
                    key,
                    scan.incident,
                    f,
                    crossed.is_some(),
                    &scan.window,
                    |p| p,
                    &scan.early,
                    f.dport,
                );
                if slot != scan.incident {
                    self.scans.entry((src, dst), ts).incident = slot;
                }
            }
        }
        if s.portsweep.enabled {
            let (h, index) = self.host_index(dst);
            let sweep = self.sweeps.entry((src, f.dport, f.proto), ts);
            let crossed = sweep.window.count(h, ts, &s.portsweep);
            if let Some(c) = crossed {
                out.send(Alert {
                    detector: Detector::Portsweep,
                    dst: None,
                    dport: (!echo && f.probe != Probe::IpProto).then_some(f.dport),
                    count: c.count,
                    window_ms: c.window_ms,
                    ..base()
                });
            }
            if sweep.window.fired() {
                let sweep = *sweep;
                let key = (true, src, sweep_key(f.dport, f.proto));
                let slot = self.track(
                    key,
                    sweep.incident,
                    f,
                    crossed.is_some(),
                    &sweep.window,
                    |h| h as u16,
                    &sweep.early,
                    index,
                );
                if slot != sweep.incident {
                    self.sweeps.entry((src, f.dport, f.proto), ts).incident = slot;
                }
            }
        }
    }

    /// Counts attempt `f` (bit `bit` of its incident's maps) in the open incident of `key`,
    /// found by `hint` (the slot its scan state kept) or opened now; the incident's slot.
    #[allow(
        clippy::too_many_arguments,
        reason = "a scan and a sweep differ in their window's item type, its bit and the key"
    )]
    fn track<T: Copy + Default + PartialEq>(
        &mut self,
        key: IncidentKey,
        hint: usize,
        f: &Attempt,
        crossed: bool,
        window: &CountWindow<T>,
        index: impl Fn(T) -> u16,
        early: &Early,
        bit: u16,
    ) -> usize {
        let ts = f.ts_ns;
        if let Some(inc) = self.incidents.slot_used(hint, &key, ts).filter(|i| i.open) {
            inc.kinds |= 1 << f.probe as u16;
            inc.probe(bit, ts);
            return hint;
        }
        let slot = self.open_incident(key, f, crossed, window, index, early);
        if let Some(inc) = self.incidents.slot_used(slot, &key, ts) {
            inc.probe(bit, ts);
        }
        slot
    }

    /// Opens the incident of `key` (unless it is open) and returns its slot: from the window
    /// that just `crossed` (or, a scan resuming after it went quiet, from now), the answers its
    /// state kept and the recent answers.
    fn open_incident<T: Copy + Default + PartialEq>(
        &mut self,
        key: IncidentKey,
        f: &Attempt,
        crossed: bool,
        window: &CountWindow<T>,
        index: impl Fn(T) -> u16,
        early: &Early,
    ) -> usize {
        let ts = f.ts_ns;
        let (sweep, src, other) = key;
        let fresh = !self.incidents.get(&key).is_some_and(|i| i.open);
        if fresh {
            let mut inc = Incident {
                open: true,
                first_ns: ts,
                last_ns: ts,
                iface: f.iface,
                proto: f.proto,
                ..Incident::default()
            };
            if crossed {
                // The window that crossed is the incident's start; the attempt being counted
                // is added by the caller.
                inc.first_ns = window.start_ns();
                for &item in window.items() {
                    if inc.probed.insert(index(item)) {
                        inc.probed_n += 1;
                    }
                }
                inc.attempts = window.attempts().saturating_sub(1);
            }
            // A host's bit is its address's low 16 bits, as in `host_index`; a port is its own.
            let bit = |item: u128| item as u16;
            let recent = self.recent.iter().filter(|a| {
                a.src == src
                    && if sweep {
                        sweep_key(a.port, a.proto) == other
                    } else {
                        a.ported && a.dst == other
                    }
            });
            for a in recent {
                let item = if sweep { a.dst } else { u128::from(a.port) };
                inc.answer(bit(item), item, ts);
            }
            // The recent answers came before the scan's state existed, its own after.
            for &item in early.items() {
                inc.answer(bit(item), item, ts);
            }
            self.open += 1;
            self.open_this_turn += 1;
            *self.incidents.entry(key, ts) = inc;
        }
        let inc = self.incidents.entry(key, ts);
        inc.kinds |= 1 << f.probe as u16;
        inc.proto = f.proto;
        self.incidents.last_slot()
    }

    /// An answered attempt: into its incident, or the state of its scan and sweep, or the
    /// recent answers.
    fn answer(&mut self, a: &Attempt, s: &Settings) {
        let ts = a.ts_ns;
        let src = addr_key(a.initiator);
        let dst = addr_key(a.target);
        let mut kept = false;
        if s.portscan.enabled && a.probe != Probe::Echo {
            let key = (false, src, dst);
            let open = self.open > 0;
            if let Some(inc) = open
                .then(|| self.incidents.get_mut(&key, ts))
                .flatten()
                .filter(|i| i.open)
            {
                inc.kinds |= 1 << a.probe as u16;
                inc.answer(a.dport, u128::from(a.dport), ts);
                kept = true;
            } else if let Some(scan) = self.scans.get_mut(&(src, dst), ts) {
                scan.early.push(u128::from(a.dport));
                kept = true;
            }
        }
        if s.portsweep.enabled {
            let key = (true, src, sweep_key(a.dport, a.proto));
            let index = self.host_index(dst).1;
            let open = self.open > 0;
            if let Some(inc) = open
                .then(|| self.incidents.get_mut(&key, ts))
                .flatten()
                .filter(|i| i.open)
            {
                inc.kinds |= 1 << a.probe as u16;
                inc.answer(index, dst, ts);
                kept = true;
            } else if let Some(sweep) = self.sweeps.get_mut(&(src, a.dport, a.proto), ts) {
                sweep.early.push(dst);
                kept = true;
            }
        }
        if !kept {
            self.recent[self.recent_next] = Answer {
                src,
                dst,
                port: a.dport,
                proto: a.proto,
                ported: a.probe != Probe::Echo,
            };
            self.recent_next = (self.recent_next + 1) % RECENT;
        }
    }
}

/// A sweep's incident key part: its port and protocol.
fn sweep_key(port: u16, proto: u8) -> u128 {
    u128::from(port) << 8 | u128::from(proto)
}

/// The closing record of an incident, at `ts_ns`.
fn summary(key: IncidentKey, inc: &Incident, ts_ns: u64) -> Alert {
    let (sweep, src, other) = key;
    let (dst, dport, proto) = if sweep {
        let (port, proto) = ((other >> 8) as u16, other as u8);
        let ported = !matches!(proto, proto::ICMP | proto::ICMPV6)
            && inc.kinds & (1 << Probe::IpProto as u16) == 0;
        (None, ported.then_some(port), proto)
    } else {
        (Some(key_addr(other)), None, inc.proto)
    };
    let echo = matches!(proto, proto::ICMP | proto::ICMPV6) && sweep;
    Alert {
        ts_ns,
        detector: Detector::ScanSummary,
        iface: inc.iface,
        src: Some(key_addr(src)),
        dst,
        dport,
        proto: Some(proto),
        icmp: echo.then_some((if proto == proto::ICMP { 8 } else { 128 }, 0)),
        count: u64::from(inc.probed_n),
        window_ms: inc.last_ns.saturating_sub(inc.first_ns) / 1_000_000,
        detail: Detail::Summary(Summary {
            scan: Some(if sweep {
                Detector::Portsweep
            } else {
                Detector::Portscan
            }),
            kinds: inc.kinds,
            attempts: inc.attempts,
            answered: inc.listed,
            answered_total: inc.answered_n,
        }),
        ..Alert::default()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::detect::family::{run_attempts, run_failures};
    use crate::flow::Outcome;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn refused(ts: u64, a: IpAddr, v: IpAddr, port: u16, probe: Probe) -> Attempt {
        Attempt {
            ts_ns: ts,
            iface: 0,
            initiator: a,
            target: v,
            proto: proto::TCP,
            sport: 40000,
            dport: port,
            probe,
            outcome: crate::flow::Outcome::Refused,
            attempt_ns: 0,
            mac: [2, 0, 0, 0, 0, 1],
        }
    }

    #[test]
    fn twenty_failed_ports_make_one_portscan_naming_the_scan_type() {
        let mut scans = Scans::new(64, SeededState::random());
        let (a, v) = (ip("192.0.2.7"), ip("198.51.100.2"));
        let failures: Vec<_> = (1..=40u16)
            .map(|p| refused(1_000_000_000 + u64::from(p), a, v, p, Probe::Ack))
            .collect();
        let alerts = run_failures(&mut scans, &Settings::default(), &failures);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let alert = &alerts[0];
        assert_eq!((alert.detector, alert.count), (Detector::Portscan, 20));
        assert_eq!(alert.detail, Detail::Kind("ACK"));
        assert!((PORTSCAN.describe)(alert, "eth0").ends_with("(ACK scan)"));
    }

    #[test]
    fn a_sweep_names_its_port_and_a_new_window_starts_over() {
        let mut scans = Scans::new(64, SeededState::random());
        let s = Settings::default();
        let a = ip("192.0.2.7");
        let sweep = |t0: u64, n: u32| -> Vec<Attempt> {
            (0..n)
                .map(|i| {
                    let v = IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i));
                    refused(t0 + u64::from(i), a, v, 22, Probe::Syn)
                })
                .collect()
        };
        let alerts = run_failures(&mut scans, &s, &sweep(1_000_000_000, 19));
        assert!(alerts.is_empty(), "19 hosts: {alerts:?}");
        // Past the 60 s window, the count starts over.
        let alerts = run_failures(&mut scans, &s, &sweep(70_000_000_000, 19));
        assert!(alerts.is_empty(), "{alerts:?}");
        let alerts = run_failures(&mut scans, &s, &sweep(71_000_000_000, 25));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].detector, Detector::Portsweep);
        assert_eq!((alerts[0].dport, alerts[0].dst), (Some(22), None));
    }

    const S: u64 = 1_000_000_000;

    fn answered(ts: u64, a: IpAddr, v: IpAddr, port: u16) -> Attempt {
        Attempt {
            outcome: Outcome::Answered,
            ..refused(ts, a, v, port, Probe::Syn)
        }
    }

    fn summaries(alerts: &[Alert]) -> Vec<&Alert> {
        alerts
            .iter()
            .filter(|a| a.detector == Detector::ScanSummary)
            .collect()
    }

    #[test]
    fn a_scan_that_goes_quiet_is_closed_with_its_totals_and_what_answered() {
        let mut scans = Scans::new(1024, SeededState::random());
        let s = Settings::default();
        let (a, v) = (ip("192.0.2.7"), ip("198.51.100.2"));
        // Port 22 answers before anything fails (kept among the recent answers), 443 after
        // the first refusal (kept by the scan's state), 80 once the incident is open.
        let mut attempts = vec![answered(S, a, v, 22)];
        attempts.extend((1000..1030u16).map(|p| refused(S + u64::from(p), a, v, p, Probe::Syn)));
        attempts.insert(3, answered(S + 1002, a, v, 443));
        attempts.push(answered(S + 2000, a, v, 80));
        // A refused port probed twice counts once among ports, twice among attempts.
        attempts.push(refused(2 * S, a, v, 1000, Probe::Syn));
        let alerts = run_attempts(&mut scans, &s, &attempts, 2 * S + s.quiet_ms * 1_000_000);
        assert_eq!(alerts[0].detector, Detector::Portscan);
        let sums = summaries(&alerts);
        assert_eq!(sums.len(), 1, "{alerts:#?}");
        let sum = sums[0];
        assert_eq!((sum.src, sum.dst, sum.count), (Some(a), Some(v), 33));
        assert_eq!(sum.window_ms, 999);
        let Detail::Summary(d) = sum.detail else {
            panic!("{sum:?}")
        };
        assert_eq!(
            (d.attempts, d.answered_total, d.kinds()),
            (34, 3, "SYN".into())
        );
        let ports: Vec<u128> = d.answered().collect();
        assert_eq!(ports, [22, 443, 80]);
        let text = (SCAN_SUMMARY.describe)(sum, "eth0");
        assert_eq!(
            text,
            "scan-summary: 192.0.2.7 probed 33 ports of 198.51.100.2 over 1.0 s (SYN scan, \
             34 attempts); answered: 22, 443, 80"
        );
    }

    #[test]
    fn an_open_scan_stays_open_until_quiet_and_a_resumed_one_is_a_new_record() {
        let mut scans = Scans::new(1024, SeededState::random());
        let s = Settings::default();
        let (a, v) = (ip("192.0.2.7"), ip("198.51.100.2"));
        let burst = |t0: u64, ports: std::ops::Range<u16>| -> Vec<Attempt> {
            ports
                .map(|p| refused(t0 + u64::from(p), a, v, p, Probe::Syn))
                .collect()
        };
        // Quiet for less than quiet_seconds: still open, no record.
        let mut attempts = burst(S, 1..30);
        attempts.extend(burst(50 * S, 30..40));
        let alerts = run_attempts(&mut scans, &s, &attempts, 100 * S);
        assert!(summaries(&alerts).is_empty(), "{alerts:#?}");
        // Then quiet: one record for all 39 ports.
        let alerts = run_attempts(&mut scans, &s, &[], 111 * S);
        let sums = summaries(&alerts);
        assert_eq!((sums.len(), sums[0].count), (1, 39), "{alerts:#?}");
        assert_eq!(sums[0].ts_ns, 111 * S);
        // The scan resumes (its portscan alert already sent within the hour): a new incident,
        // closed at the end of the capture at its last attempt.
        let alerts = run_attempts(&mut scans, &s, &burst(200 * S, 40..45), u64::MAX);
        let sums = summaries(&alerts);
        assert_eq!(sums.len(), 1, "{alerts:#?}");
        assert_eq!((sums[0].count, sums[0].ts_ns), (5, 200 * S + 44));
    }

    #[test]
    fn a_sweep_summary_names_the_hosts_that_answered() {
        let mut scans = Scans::new(1024, SeededState::random());
        let s = Settings::default();
        let a = ip("192.0.2.7");
        let host = |i: u32| IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i));
        let mut attempts: Vec<Attempt> = (0..30)
            .map(|i| refused(S + u64::from(i), a, host(i), 22, Probe::Syn))
            .collect();
        attempts.push(answered(S + 100, a, host(200), 22));
        let alerts = run_attempts(&mut scans, &s, &attempts, u64::MAX);
        let sums = summaries(&alerts);
        assert_eq!(sums.len(), 1, "{alerts:#?}");
        let sum = sums[0];
        assert_eq!(
            (sum.dst, sum.dport, sum.count),
            (None, Some(22), 31),
            "{sum:?}"
        );
        let text = (SCAN_SUMMARY.describe)(sum, "eth0");
        assert!(
            text.contains(&format!("probed {} hosts on TCP port 22", sum.count))
                && text.ends_with("answered: 198.51.100.200"),
            "{text}"
        );
    }

    #[test]
    fn a_sweep_of_a_whole_slash_16_or_an_ipv6_range_is_counted_host_by_host() {
        let s = Settings::default();
        let a = ip("192.0.2.7");
        let v4 = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i));
        let v6 = |i: u32| IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)));
        for (host, n) in [(&v4 as &dyn Fn(u32) -> IpAddr, 65_536), (&v6, 4096)] {
            // Whatever the seed: each run hashes with another.
            for _ in 0..4 {
                let mut scans = Scans::new(1024, SeededState::random());
                let attempts: Vec<Attempt> = (0..n)
                    .map(|i| refused(S + u64::from(i) * 1000, a, host(i), 22, Probe::Syn))
                    .collect();
                let alerts = run_attempts(&mut scans, &s, &attempts, u64::MAX);
                let sums = summaries(&alerts);
                assert_eq!(sums.len(), 1, "{alerts:#?}");
                assert_eq!(sums[0].count, u64::from(n), "{:?}", sums[0]);
            }
        }
    }

    #[test]
    fn scan_summary_can_be_switched_off_and_its_quiet_time_set() {
        let mut scans = Scans::new(1024, SeededState::random());
        let (a, v) = (ip("192.0.2.7"), ip("198.51.100.2"));
        let attempts: Vec<_> = (1..30u16)
            .map(|p| refused(S + u64::from(p), a, v, p, Probe::Syn))
            .collect();
        let off = Settings {
            summary: false,
            ..Settings::default()
        };
        let alerts = run_attempts(&mut scans, &off, &attempts, u64::MAX);
        assert!(summaries(&alerts).is_empty(), "{alerts:#?}");
        let mut scans = Scans::new(1024, SeededState::random());
        let short = Settings {
            quiet_ms: 5_000,
            ..Settings::default()
        };
        let alerts = run_attempts(&mut scans, &short, &attempts, 7 * S);
        assert_eq!(summaries(&alerts).len(), 1, "{alerts:#?}");
    }
}
