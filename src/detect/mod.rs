//! Detect: the nine detectors of the contract, their bounded state, suppression of repeats.
//!
//! A [`Shard`] owns the state for the addresses that hash to it (see `pipeline`): the
//! source-keyed detectors (portscan, portsweep, tcp-flags, arp-spoof, blocklist, martian) run in
//! the shard of the packet's source, the destination-keyed ones (the floods) in the shard of its
//! destination, so every detector sees every relevant packet however fanout spread the flows.
//! Clock: the packet timestamps, so replay and live capture behave the same.
//!
//! Never: allocate after construction (every table is a fixed-size [`table::Table`]), block, or
//! lose an alert silently (suppressed repeats are counted and reported with the next alert).

pub mod prefix;
pub mod table;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::alert::community_id::FlowTuple;
use crate::decode::{proto, tcp_flags, Net, Packet, Transport};
use prefix::PrefixSet;
use table::{SeededState, Table};

/// The detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Detector {
    /// One source probes many ports of one host.
    #[default]
    Portscan,
    /// One source probes many hosts on one port (or with ICMP echo).
    Portsweep,
    /// Illegal TCP flag combinations.
    TcpFlags,
    /// SYNs to one host above a rate.
    SynFlood,
    /// UDP to one host above a rate.
    UdpFlood,
    /// ICMP/ICMPv6 to one host above a rate.
    IcmpFlood,
    /// An ARP packet claims an IP bound to another MAC.
    ArpSpoof,
    /// Traffic from or to a blocklisted prefix.
    Blocklist,
    /// Impossible source addresses.
    Martian,
}

impl Detector {
    /// Every detector, in signature order.
    pub const ALL: [Detector; 9] = [
        Detector::Portscan,
        Detector::Portsweep,
        Detector::TcpFlags,
        Detector::SynFlood,
        Detector::UdpFlood,
        Detector::IcmpFlood,
        Detector::ArpSpoof,
        Detector::Blocklist,
        Detector::Martian,
    ];

    /// The contract's name (`scram.detector`, `SCRAM_DETECTOR`, config table).
    pub fn name(self) -> &'static str {
        match self {
            Detector::Portscan => "portscan",
            Detector::Portsweep => "portsweep",
            Detector::TcpFlags => "tcp-flags",
            Detector::SynFlood => "syn-flood",
            Detector::UdpFlood => "udp-flood",
            Detector::IcmpFlood => "icmp-flood",
            Detector::ArpSpoof => "arp-spoof",
            Detector::Blocklist => "blocklist",
            Detector::Martian => "martian",
        }
    }

    /// Signature id.
    pub fn signature_id(self) -> u32 {
        1_000_001 + self as u32
    }

    /// Suricata-style classification.
    pub fn category(self) -> &'static str {
        match self {
            Detector::Portscan | Detector::Portsweep => "Attempted Information Leak",
            Detector::TcpFlags => "Potentially Bad Traffic",
            Detector::SynFlood | Detector::UdpFlood | Detector::IcmpFlood => {
                "Attempted Denial of Service"
            }
            Detector::ArpSpoof => "Attempted Administrator Privilege Gain",
            Detector::Blocklist => "Potentially Bad Traffic",
            Detector::Martian => "Misc Attack",
        }
    }

    /// 1 high, 2 medium, 3 low.
    pub fn severity(self) -> u8 {
        match self {
            Detector::SynFlood | Detector::UdpFlood | Detector::ArpSpoof => 1,
            Detector::IcmpFlood => 2,
            Detector::Portscan
            | Detector::Portsweep
            | Detector::TcpFlags
            | Detector::Blocklist
            | Detector::Martian => 2,
        }
    }

    /// The journal MESSAGE_ID (documented in the message catalog).
    pub fn message_id(self) -> &'static str {
        match self {
            Detector::Portscan => "8c1b3e0e5b2a4f6f9d7e21f0a4c3b501",
            Detector::Portsweep => "8c1b3e0e5b2a4f6f9d7e21f0a4c3b502",
            Detector::TcpFlags => "8c1b3e0e5b2a4f6f9d7e21f0a4c3b503",
            Detector::SynFlood => "8c1b3e0e5b2a4f6f9d7e21f0a4c3b504",
            Detector::UdpFlood => "8c1b3e0e5b2a4f6f9d7e21f0a4c3b505",
            Detector::IcmpFlood => "8c1b3e0e5b2a4f6f9d7e21f0a4c3b506",
            Detector::ArpSpoof => "8c1b3e0e5b2a4f6f9d7e21f0a4c3b507",
            Detector::Blocklist => "8c1b3e0e5b2a4f6f9d7e21f0a4c3b508",
            Detector::Martian => "8c1b3e0e5b2a4f6f9d7e21f0a4c3b509",
        }
    }

    /// Looks a detector up by its contract name.
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// What an illegal flag combination was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagCombo {
    /// No flag at all.
    Null,
    /// FIN without ACK.
    FinWithoutAck,
    /// FIN+PSH+URG.
    Xmas,
    /// SYN+FIN.
    SynFin,
    /// SYN+RST.
    SynRst,
}

impl FlagCombo {
    /// Classifies TCP flags; `None` for legal combinations.
    pub fn of(flags: u8) -> Option<FlagCombo> {
        use tcp_flags::*;
        let f = flags & (FIN | SYN | RST | PSH | ACK | URG);
        Some(if f == 0 {
            FlagCombo::Null
        } else if f & (FIN | PSH | URG) == FIN | PSH | URG {
            FlagCombo::Xmas
        } else if f & (SYN | FIN) == SYN | FIN {
            FlagCombo::SynFin
        } else if f & (SYN | RST) == SYN | RST {
            FlagCombo::SynRst
        } else if f & FIN != 0 && f & ACK == 0 {
            FlagCombo::FinWithoutAck
        } else {
            return None;
        })
    }

    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            FlagCombo::Null => "NULL",
            FlagCombo::FinWithoutAck => "FIN without ACK",
            FlagCombo::Xmas => "XMAS (FIN+PSH+URG)",
            FlagCombo::SynFin => "SYN+FIN",
            FlagCombo::SynRst => "SYN+RST",
        }
    }
}

/// Which impossible source a martian alert saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MartianKind {
    /// Source equals destination (land attack).
    Land,
    /// A loopback source on the wire.
    LoopbackSource,
    /// A multicast source.
    MulticastSource,
}

/// Extra facts an alert carries, by detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// Nothing more.
    #[default]
    None,
    /// tcp-flags: the combination and the raw flags.
    Flags(FlagCombo, u8),
    /// martian: what was impossible.
    Martian(MartianKind),
    /// blocklist: true when the source was listed (else the destination).
    Blocklisted {
        /// The source matched.
        source: bool,
    },
    /// arp-spoof: the new claimant and the MAC the address was bound to.
    Arp {
        /// The claimant.
        mac: [u8; 6],
        /// The earlier binding.
        previous_mac: [u8; 6],
    },
}

/// What active response did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Nothing blocked.
    #[default]
    Allowed,
    /// The offender was blocked.
    Blocked,
}

/// One alert. `Copy` and fixed-size, so it crosses the alert queue without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Alert {
    /// Packet time of the packet that raised it, ns since the epoch.
    pub ts_ns: u64,
    /// Which detector.
    pub detector: Detector,
    /// Interface slot.
    pub iface: u16,
    /// Source (the prober, the claimed address for ARP, the dominant flooder if any).
    pub src: Option<IpAddr>,
    /// Destination (the target).
    pub dst: Option<IpAddr>,
    /// Source port, where the alert is about one flow.
    pub sport: Option<u16>,
    /// Destination port, where the alert is about one flow.
    pub dport: Option<u16>,
    /// IP protocol of the triggering packet.
    pub proto: Option<u8>,
    /// ICMP type and code of the packet that raised it (ICMP and ICMPv6 alerts).
    pub icmp: Option<(u8, u8)>,
    /// The flow of the packet that raised it, for its Community ID; `None` where there is no
    /// IP packet (ARP) or its ports are not known (a later fragment whose first was not seen).
    pub trigger: Option<FlowTuple>,
    /// How many (ports, hosts, packets) the detector counted.
    pub count: u64,
    /// Over how long, in ms.
    pub window_ms: u64,
    /// Repeats of this alert held back since it was last sent.
    pub suppressed: u64,
    /// What active response did.
    pub action: Action,
    /// Detector-specific facts.
    pub detail: Detail,
}

/// Settings of a rate detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodSettings {
    /// On or off.
    pub enabled: bool,
    /// Packets per second above which it fires.
    pub pps: u64,
    /// Window length in ms.
    pub window_ms: u64,
}

/// Settings of a counting detector (distinct ports or hosts in a window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountSettings {
    /// On or off.
    pub enabled: bool,
    /// Distinct items at which it fires (at most [`MAX_DISTINCT`]).
    pub threshold: usize,
    /// Window length in ms.
    pub window_ms: u64,
}

/// Most distinct ports or hosts a scan entry tracks (the highest usable threshold).
pub const MAX_DISTINCT: usize = 64;

/// Everything the detectors are configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// portscan.
    pub portscan: CountSettings,
    /// portsweep.
    pub portsweep: CountSettings,
    /// tcp-flags.
    pub tcp_flags: bool,
    /// syn-flood.
    pub syn_flood: FloodSettings,
    /// udp-flood.
    pub udp_flood: FloodSettings,
    /// icmp-flood.
    pub icmp_flood: FloodSettings,
    /// arp-spoof.
    pub arp_spoof: bool,
    /// Configured IP -> MAC bindings arp-spoof trusts over what it learns.
    pub arp_bindings: Vec<(Ipv4Addr, [u8; 6])>,
    /// blocklist.
    pub blocklist: bool,
    /// The blocklisted prefixes.
    pub blocklisted: PrefixSet,
    /// martian.
    pub martian: bool,
    /// Addresses never alerted on, as source or target.
    pub allowlist: PrefixSet,
    /// Repeats of an alert within this many ms are counted, not sent.
    pub suppress_ms: u64,
    /// Entries per state table per shard.
    pub table_capacity: usize,
}

impl Default for Settings {
    fn default() -> Self {
        let count = |threshold| CountSettings {
            enabled: true,
            threshold,
            window_ms: 60_000,
        };
        let flood = |pps| FloodSettings {
            enabled: true,
            pps,
            window_ms: 1_000,
        };
        Settings {
            portscan: count(20),
            portsweep: count(20),
            tcp_flags: true,
            syn_flood: flood(3_000),
            udp_flood: flood(8_000),
            icmp_flood: flood(2_000),
            arp_spoof: true,
            arp_bindings: Vec::new(),
            blocklist: true,
            blocklisted: PrefixSet::default(),
            martian: true,
            allowlist: PrefixSet::default(),
            suppress_ms: 60_000,
            table_capacity: 16_384,
        }
    }
}

impl Settings {
    /// Is the detector on?
    pub fn enabled(&self, d: Detector) -> bool {
        match d {
            Detector::Portscan => self.portscan.enabled,
            Detector::Portsweep => self.portsweep.enabled,
            Detector::TcpFlags => self.tcp_flags,
            Detector::SynFlood => self.syn_flood.enabled,
            Detector::UdpFlood => self.udp_flood.enabled,
            Detector::IcmpFlood => self.icmp_flood.enabled,
            Detector::ArpSpoof => self.arp_spoof,
            Detector::Blocklist => self.blocklist,
            Detector::Martian => self.martian,
        }
    }
}

/// An address as a table key (IPv4 as IPv4-mapped IPv6).
pub type AddrKey = u128;

/// The key of an address.
#[inline]
pub fn addr_key(a: IpAddr) -> AddrKey {
    match a {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A small exact set of distinct values (ports, address hashes) for one window.
#[derive(Debug, Clone, Copy)]
struct Distinct<T: Copy + Default + PartialEq> {
    items: [T; MAX_DISTINCT],
    len: u8,
}

impl<T: Copy + Default + PartialEq> Default for Distinct<T> {
    fn default() -> Self {
        Distinct {
            items: [T::default(); MAX_DISTINCT],
            len: 0,
        }
    }
}

impl<T: Copy + Default + PartialEq> Distinct<T> {
    fn insert(&mut self, v: T) {
        let n = usize::from(self.len);
        if n < MAX_DISTINCT && !self.items[..n].contains(&v) {
            self.items[n] = v;
            self.len += 1;
        }
    }
    fn len(&self) -> usize {
        usize::from(self.len)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct CountState<T: Copy + Default + PartialEq> {
    start_ns: u64,
    seen: Distinct<T>,
    fired: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct FloodState {
    start_ns: u64,
    count: u64,
    fired: bool,
    /// Majority-vote candidate for the dominant source, with its vote and exact hits.
    candidate: AddrKey,
    candidate_src: Option<IpAddr>,
    votes: u64,
    hits: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct ArpBinding {
    mac: [u8; 6],
}

#[derive(Debug, Clone, Copy, Default)]
struct SuppressState {
    last_sent_ns: Option<u64>,
    held: u64,
}

/// Which detector roles a shard plays for one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    /// Run the source-keyed detectors.
    pub src: bool,
    /// Run the destination-keyed detectors.
    pub dst: bool,
}

/// Counters a shard keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardCounters {
    /// Alerts emitted.
    pub alerts: u64,
    /// Repeats held back by suppression.
    pub suppressed: u64,
    /// State entries evicted to make room.
    pub evictions: u64,
}

/// One shard of detector state.
#[derive(Debug)]
pub struct Shard {
    settings: Arc<Settings>,
    state: State,
}

/// A shard's tables and counters, apart from its settings so the settings can be borrowed (not
/// reference-counted: the `Arc` is shared by every worker) while the state is mutated.
#[derive(Debug)]
struct State {
    scans: Table<(AddrKey, AddrKey), CountState<u16>>,
    sweeps: Table<(AddrKey, u16, u8), CountState<u32>>,
    floods: Table<(AddrKey, u8), FloodState>,
    arp: Table<u32, ArpBinding>,
    suppress: Table<(u8, AddrKey, AddrKey), SuppressState>,
    hasher: SeededState,
    alerts: u64,
    suppressed: u64,
}

/// Is `a` a destination that scans, sweeps and floods ignore (link-layer chatter)?
fn chatter_destination(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => {
            v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified() || v4.octets()[3] == 255
        }
        IpAddr::V6(v6) => v6.is_multicast() || v6.is_unspecified(),
    }
}

fn link_local(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

impl Shard {
    /// A shard with empty tables sized by `settings.table_capacity`.
    pub fn new(settings: Arc<Settings>, hasher: SeededState) -> Self {
        let cap = settings.table_capacity;
        Shard {
            state: State {
                scans: Table::new(cap, hasher),
                sweeps: Table::new(cap, hasher),
                floods: Table::new(cap, hasher),
                arp: Table::new(cap, hasher),
                suppress: Table::new(cap, hasher),
                hasher,
                alerts: 0,
                suppressed: 0,
            },
            settings,
        }
    }

    /// Replaces the settings (on reload); state is kept.
    pub fn set_settings(&mut self, settings: Arc<Settings>) {
        self.settings = settings;
    }

    /// The settings in force.
    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    /// Counters so far.
    pub fn counters(&self) -> ShardCounters {
        ShardCounters {
            alerts: self.state.alerts,
            suppressed: self.state.suppressed,
            evictions: self.state.scans.evictions()
                + self.state.sweeps.evictions()
                + self.state.floods.evictions()
                + self.state.arp.evictions()
                + self.state.suppress.evictions(),
        }
    }

    /// Bytes held by the state tables (fixed at construction).
    pub fn memory_bytes(&self) -> usize {
        self.state.scans.memory_bytes()
            + self.state.sweeps.memory_bytes()
            + self.state.floods.memory_bytes()
            + self.state.arp.memory_bytes()
            + self.state.suppress.memory_bytes()
    }

    /// Runs the detectors of `roles` on one packet; alerts that pass suppression go to `emit`.
    pub fn observe(
        &mut self,
        ts_ns: u64,
        iface: u16,
        loopback: bool,
        packet: &Packet,
        roles: Roles,
        emit: &mut impl FnMut(Alert),
    ) {
        let s = &*self.settings;
        let state = &mut self.state;
        match &packet.net {
            Net::Arp(arp) => {
                if roles.src && s.arp_spoof {
                    state.arp(ts_ns, iface, arp, s, emit);
                }
            }
            Net::Ip(ip) => {
                let origin = Origin { ts_ns, iface, ip };
                if roles.src {
                    state.source_detectors(ip, loopback, origin, s, emit);
                }
                if roles.dst {
                    state.floods(ip, origin, s, emit);
                }
            }
            Net::Other(_) => {}
        }
    }

    /// Calls `f(detector, src, dst, held)` for every alert key with repeats held back and not
    /// yet reported (for the summary at shutdown).
    pub fn held_back(&self, mut f: impl FnMut(Detector, AddrKey, AddrKey, u64)) {
        self.state.suppress.for_each(|&(d, src, dst), v| {
            if v.held > 0 {
                f(Detector::ALL[usize::from(d)], src, dst, v.held);
            }
        });
    }
}

/// Protocols whose flows have ports (a Community ID without them would match no peer's).
fn has_ports(p: u8) -> bool {
    matches!(p, proto::TCP | proto::UDP | proto::SCTP)
}

/// Where an observation came from. The alert it may raise is only built when a detector fires:
/// an `Alert` is large, and most packets raise none.
#[derive(Clone, Copy)]
struct Origin<'a> {
    ts_ns: u64,
    iface: u16,
    ip: &'a crate::decode::Ip,
}

impl Origin<'_> {
    /// The alert about the packet's hosts (no ports shown; the trigger keeps its flow).
    fn base(&self) -> Alert {
        let ip = self.ip;
        let (icmp, trigger) = match ip.transport {
            Transport::Icmp { ty, code } | Transport::Icmpv6 { ty, code } => (
                Some((ty, code)),
                Some(FlowTuple::icmp(ip.src, ip.dst, ip.proto, ty, code)),
            ),
            _ if has_ports(ip.proto) => (
                None,
                ip.transport
                    .ports()
                    .map(|p| FlowTuple::new(ip.src, ip.dst, ip.proto, Some(p))),
            ),
            _ => (None, Some(FlowTuple::new(ip.src, ip.dst, ip.proto, None))),
        };
        Alert {
            ts_ns: self.ts_ns,
            iface: self.iface,
            src: Some(ip.src),
            dst: Some(ip.dst),
            proto: Some(ip.proto),
            icmp,
            trigger,
            count: 1,
            ..Alert::default()
        }
    }

    /// The alert about the packet's flow (its ports shown: a later fragment's are those of its
    /// first fragment, where the pipeline saw it).
    fn flow(&self) -> Alert {
        let ports = self.ip.transport.ports();
        Alert {
            sport: ports.map(|p| p.0),
            dport: ports.map(|p| p.1),
            ..self.base()
        }
    }
}

impl State {
    fn source_detectors(
        &mut self,
        ip: &crate::decode::Ip,
        loopback: bool,
        origin: Origin<'_>,
        s: &Settings,
        emit: &mut impl FnMut(Alert),
    ) {
        if s.martian && !loopback {
            let kind = if ip.src == ip.dst && !ip.src.is_unspecified() {
                Some(MartianKind::Land)
            } else if ip.src.is_loopback() {
                Some(MartianKind::LoopbackSource)
            } else if ip.src.is_multicast() {
                Some(MartianKind::MulticastSource)
            } else {
                None
            };
            if let Some(kind) = kind {
                self.send(
                    Alert {
                        detector: Detector::Martian,
                        detail: Detail::Martian(kind),
                        ..origin.flow()
                    },
                    s,
                    emit,
                );
            }
        }
        if s.blocklist && !s.blocklisted.is_empty() {
            let source = s.blocklisted.contains(ip.src);
            if source || s.blocklisted.contains(ip.dst) {
                self.send(
                    Alert {
                        detector: Detector::Blocklist,
                        detail: Detail::Blocklisted { source },
                        ..origin.flow()
                    },
                    s,
                    emit,
                );
            }
        }
        let Transport::Tcp { flags, .. } = ip.transport else {
            if let Transport::Udp { sport, dport } = ip.transport {
                // A datagram from a service port to an ephemeral one is an answer (DNS, NTP, QUIC
                // replies fan out over client ports), not a probe.
                if !(sport < 1024 && dport >= 1024) {
                    self.probe(ip, proto::UDP, dport, origin, s, emit);
                }
            }
            if let Transport::Icmp { ty: 8, .. } | Transport::Icmpv6 { ty: 128, .. } = ip.transport
            {
                self.probe(ip, ip.proto, 0, origin, s, emit);
            }
            return;
        };
        if s.tcp_flags {
            if let Some(combo) = FlagCombo::of(flags) {
                self.send(
                    Alert {
                        detector: Detector::TcpFlags,
                        detail: Detail::Flags(combo, flags),
                        ..origin.flow()
                    },
                    s,
                    emit,
                );
            }
        }
        if flags & tcp_flags::SYN != 0
            && flags & (tcp_flags::ACK | tcp_flags::RST | tcp_flags::FIN) == 0
        {
            if let Some((_, dport)) = ip.transport.ports() {
                self.probe(ip, proto::TCP, dport, origin, s, emit);
            }
        }
    }

    /// A probe (TCP SYN, UDP datagram, echo request) for the scan and sweep counters.
    fn probe(
        &mut self,
        ip: &crate::decode::Ip,
        protocol: u8,
        dport: u16,
        origin: Origin<'_>,
        s: &Settings,
        emit: &mut impl FnMut(Alert),
    ) {
        if chatter_destination(ip.dst) || link_local(ip.dst) || ip.src.is_unspecified() {
            return;
        }
        let ts = origin.ts_ns;
        let src = addr_key(ip.src);
        let dst = addr_key(ip.dst);
        if s.portscan.enabled && protocol != proto::ICMP && protocol != proto::ICMPV6 {
            let e = self.scans.entry((src, dst), ts);
            if ts.saturating_sub(e.start_ns) > s.portscan.window_ms * 1_000_000 || e.start_ns == 0 {
                *e = CountState {
                    start_ns: ts,
                    ..Default::default()
                };
            }
            e.seen.insert(dport);
            if !e.fired && e.seen.len() >= s.portscan.threshold {
                e.fired = true;
                let alert = Alert {
                    detector: Detector::Portscan,
                    count: e.seen.len() as u64,
                    window_ms: ts.saturating_sub(e.start_ns) / 1_000_000,
                    ..origin.base()
                };
                self.send(alert, s, emit);
            }
        }
        if s.portsweep.enabled {
            let h = std::hash::BuildHasher::hash_one(&self.hasher, dst) as u32;
            let e = self.sweeps.entry((src, dport, protocol), ts);
            if ts.saturating_sub(e.start_ns) > s.portsweep.window_ms * 1_000_000 || e.start_ns == 0
            {
                *e = CountState {
                    start_ns: ts,
                    ..Default::default()
                };
            }
            e.seen.insert(h);
            if !e.fired && e.seen.len() >= s.portsweep.threshold {
                e.fired = true;
                let icmp = protocol == proto::ICMP || protocol == proto::ICMPV6;
                let alert = Alert {
                    detector: Detector::Portsweep,
                    dst: None,
                    dport: (!icmp).then_some(dport),
                    count: e.seen.len() as u64,
                    window_ms: ts.saturating_sub(e.start_ns) / 1_000_000,
                    ..origin.base()
                };
                self.send(alert, s, emit);
            }
        }
    }

    fn floods(
        &mut self,
        ip: &crate::decode::Ip,
        origin: Origin<'_>,
        s: &Settings,
        emit: &mut impl FnMut(Alert),
    ) {
        if chatter_destination(ip.dst) {
            return;
        }
        let (detector, fs) = match ip.transport {
            Transport::Tcp { flags, .. }
                if flags & tcp_flags::SYN != 0 && flags & tcp_flags::ACK == 0 =>
            {
                (Detector::SynFlood, s.syn_flood)
            }
            Transport::Udp { .. } => (Detector::UdpFlood, s.udp_flood),
            Transport::Icmp { .. } | Transport::Icmpv6 { .. } => {
                (Detector::IcmpFlood, s.icmp_flood)
            }
            _ => return,
        };
        if !fs.enabled {
            return;
        }
        let ts = origin.ts_ns;
        let src = addr_key(ip.src);
        let e = self.floods.entry((addr_key(ip.dst), detector as u8), ts);
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
                ..origin.base()
            };
            self.send(alert, s, emit);
        }
    }

    fn arp(
        &mut self,
        ts: u64,
        iface: u16,
        arp: &crate::decode::Arp,
        s: &Settings,
        emit: &mut impl FnMut(Alert),
    ) {
        // Probes (RFC 5227) come from 0.0.0.0; a zero MAC claims nothing.
        if arp.sender_ip.is_unspecified() || arp.sender_mac == [0; 6] {
            return;
        }
        let configured = s
            .arp_bindings
            .iter()
            .find(|(ip, _)| *ip == arp.sender_ip)
            .map(|(_, m)| *m);
        let previous = match configured {
            Some(mac) => (mac != arp.sender_mac).then_some(mac),
            None => {
                let e = self.arp.entry(u32::from(arp.sender_ip), ts);
                let previous = (e.mac != [0; 6] && e.mac != arp.sender_mac).then_some(e.mac);
                e.mac = arp.sender_mac;
                previous
            }
        };
        if let Some(previous_mac) = previous {
            let alert = Alert {
                ts_ns: ts,
                iface,
                detector: Detector::ArpSpoof,
                src: Some(IpAddr::V4(arp.sender_ip)),
                dst: Some(IpAddr::V4(arp.target_ip)).filter(|d| !d.is_unspecified()),
                count: 1,
                detail: Detail::Arp {
                    mac: arp.sender_mac,
                    previous_mac,
                },
                ..Alert::default()
            };
            self.send(alert, s, emit);
        }
    }

    /// Suppression: the first alert of a (detector, source, target) goes out; repeats within the
    /// window are counted and reported with the next one that goes out.
    fn send(&mut self, mut alert: Alert, s: &Settings, emit: &mut impl FnMut(Alert)) {
        let key = (
            alert.detector as u8,
            alert.src.map(addr_key).unwrap_or(0),
            alert.dst.map(addr_key).unwrap_or(0),
        );
        let e = self.suppress.entry(key, alert.ts_ns);
        if let Some(last) = e.last_sent_ns {
            if alert.ts_ns.saturating_sub(last) < s.suppress_ms * 1_000_000 {
                e.held += 1;
                self.suppressed += 1;
                return;
            }
        }
        alert.suppressed = e.held;
        e.held = 0;
        e.last_sent_ns = Some(alert.ts_ns);
        self.alerts += 1;
        emit(alert);
    }
}

#[cfg(test)]
mod tests;
