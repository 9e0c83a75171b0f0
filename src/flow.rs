//! Flows: which conversations were opened, answered or refused, so the scan detectors count
//! failed attempts (refused with a RST, or unanswered) rather than packets, as Zeek's scan policy
//! does. An answered attempt (a SYN-ACK, a UDP reply, an echo reply) is an ordinary
//! conversation, whoever started it and however many there are: a poller, a browser, a DNS
//! server on a high port.
//!
//! Two tables per worker, IPv4 and IPv6, each fixed in size at start, evictions counted: fanout
//! hashes both directions of a flow to the same worker, and replay has one worker. An IPv4 flow
//! is keyed by 32-bit addresses, so its slot is 32 bytes rather than an IPv6 flow's 64: the
//! common table is half the memory to wait for. A clock hand visits the IPv4 table's slots and
//! then the IPv6 table's, at a pace a capture worker keeps at the end of each block and at each
//! wake-up ([`Flows::sweep_budget`]), and one slot a packet in replay ([`Flows::step`]), so
//! unanswered attempts are found without timers. A table's buckets are four slots of a flow's
//! key, last use and state, and nothing else (`flow/table.rs`), so the batch asks for few lines.
//!
//! Never: allocate, lock or make a system call per packet.

mod table;

use std::net::IpAddr;

use crate::decode::{proto, tcp_flags, Addr, Arp, Fragment, Ip, Quote, Transport};
use crate::detect::family::{chatter_destination, link_local};
use crate::detect::table::SeededState;
use crate::detect::{addr_key, key_addr, AddrKey};
use table::Place;

/// The protocol field of ARP "flows" in the table (no IP protocol has it: 255 is reserved).
pub const ARP: u8 = 255;

/// The protocol field of neighbour-discovery "flows" (254 is reserved for experiments, never
/// seen as a transport here).
pub const ND: u8 = 254;

/// The solicited-node multicast group of `a` (RFC 4291: ff02::1:ff00:0/104 plus its low 24
/// bits): where a neighbour solicitation for `a` is sent.
pub fn solicited_node(a: std::net::Ipv6Addr) -> std::net::Ipv6Addr {
    let low = u128::from(a) & 0x00ff_ffff;
    std::net::Ipv6Addr::from(0xff02_0000_0000_0000_0000_0001_ff00_0000u128 | low)
}

/// UDP services above 1024 that answer a small request with a large reply (reflection and
/// amplification): SSDP, WS-Discovery, mDNS, memcached, Ubiquiti discovery... (Those below 1024,
/// DNS, NTP, chargen, CLDAP, SNMP, answer from privileged ports, which the flow table treats as
/// answers already.)
pub const AMPLIFIERS_HIGH: [u16; 6] = [1900, 3283, 3702, 5353, 10001, 11211];

/// How long an opening may go unanswered before it counts as a failed attempt.
pub const UNANSWERED_NS: u64 = 3_000_000_000;

/// How many slots ahead of the clock hand its next slot is asked for.
const HAND_LOOKAHEAD: usize = 4;

/// Slots of each table the clock hand visits per [`IDLE_SWEEP_NS`] when packets do not move it
/// (the default tables' turn, 65,536 slots each, in 1.6 s of an idle link's 100 ms wake-ups).
const IDLE_SWEEP: usize = 4096;

/// See [`IDLE_SWEEP`].
const IDLE_SWEEP_NS: u64 = 100_000_000;

/// A clock stepped back further than this is a new count for the clock hand's pace (see
/// [`Flows::sweep_budget`]); less is a block's packets seen after the wake-up that found them.
const STEP_BACK_NS: u64 = 1_000_000_000;

/// What the first packet of a flow was: the probe, as a scan type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Probe {
    /// Not a flow of interest.
    #[default]
    None,
    /// TCP SYN (nmap -sS, -sT).
    Syn,
    /// TCP ACK (nmap -sA, -sW).
    Ack,
    /// TCP FIN (nmap -sF).
    Fin,
    /// TCP without flags (nmap -sN).
    Null,
    /// TCP FIN+PSH+URG (nmap -sX).
    Xmas,
    /// TCP FIN+ACK (nmap -sM).
    Maimon,
    /// Another TCP segment on a flow not seen opening.
    Tcp,
    /// A first fragment whose TCP flags are in a later fragment (nmap -f).
    Fragmented,
    /// UDP.
    Udp,
    /// SCTP (nmap -sY, -sZ).
    Sctp,
    /// ICMP or ICMPv6 echo request.
    Echo,
    /// Another IP protocol (nmap -sO).
    IpProto,
    /// An ARP request (host discovery on the local link: nmap -sn, arp-scan, netdiscover).
    Arp,
    /// An IPv6 neighbour solicitation (host discovery on the local link: nmap -6 -sn).
    Nd,
}

impl Probe {
    /// Every kind, in declaration order.
    pub const ALL: [Probe; 15] = [
        Probe::None,
        Probe::Syn,
        Probe::Ack,
        Probe::Fin,
        Probe::Null,
        Probe::Xmas,
        Probe::Maimon,
        Probe::Tcp,
        Probe::Fragmented,
        Probe::Udp,
        Probe::Sctp,
        Probe::Echo,
        Probe::IpProto,
        Probe::Arp,
        Probe::Nd,
    ];

    /// The scan type, as alerts name it.
    pub fn name(self) -> &'static str {
        match self {
            Probe::None => "-",
            Probe::Syn => "SYN",
            Probe::Ack => "ACK",
            Probe::Fin => "FIN",
            Probe::Null => "NULL",
            Probe::Xmas => "XMAS",
            Probe::Maimon => "Maimon",
            Probe::Tcp => "TCP",
            Probe::Fragmented => "fragmented TCP",
            Probe::Udp => "UDP",
            Probe::Sctp => "SCTP",
            Probe::Echo => "ICMP echo",
            Probe::IpProto => "IP protocol",
            Probe::Arp => "ARP",
            Probe::Nd => "neighbour solicitation",
        }
    }

    /// Does an opening of this kind count as failed when nothing answers? A SYN, a datagram, an
    /// INIT or an echo request expects an answer; a stray ACK or FIN does not (open ports and
    /// conversations older than the capture stay silent), so those count only when refused.
    fn fails_unanswered(self) -> bool {
        matches!(
            self,
            Probe::Syn
                | Probe::Fragmented
                | Probe::Udp
                | Probe::Sctp
                | Probe::Echo
                | Probe::IpProto
                | Probe::Arp
                | Probe::Nd
        )
    }

    fn of_tcp(flags: u8) -> Probe {
        use tcp_flags::*;
        match flags & (FIN | SYN | RST | PSH | ACK | URG) {
            f if f & SYN != 0 && f & ACK == 0 => Probe::Syn,
            0 => Probe::Null,
            f if f & (FIN | PSH | URG) == FIN | PSH | URG => Probe::Xmas,
            FIN => Probe::Fin,
            f if f == FIN | ACK => Probe::Maimon,
            ACK => Probe::Ack,
            _ => Probe::Tcp,
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Refused: a RST, or an ICMP unreachable from the target.
    Refused,
    /// Nothing answered within [`UNANSWERED_NS`].
    Unanswered,
    /// Answered: a SYN-ACK (a connection opened), or the first reply of a protocol without
    /// handshake (UDP, SCTP, IP protocol, echo): what a scanner learns, what a password guesser
    /// gets.
    Answered,
}

/// An attempt: who tried what, and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// When it ended (the refusal or answer, or the moment it was found unanswered), ns.
    pub ts_ns: u64,
    /// Interface slot of the opening.
    pub iface: u16,
    /// Who opened it.
    pub initiator: IpAddr,
    /// Whom.
    pub target: IpAddr,
    /// IP protocol.
    pub proto: u8,
    /// The initiator's port (0 without ports).
    pub sport: u16,
    /// The target's port, or the protocol number for an IP protocol probe.
    pub dport: u16,
    /// What the opening was.
    pub probe: Probe,
    /// How it ended.
    pub outcome: Outcome,
    /// When the attempt was made, ns (the failure is known later when unanswered).
    pub attempt_ns: u64,
    /// The MAC that sent the opening: the initiator's on the local link, a router's beyond it.
    pub mac: [u8; 6],
}

/// The attempt `s` ends with `ip`, sent by its target (`reply`) or its initiator.
#[inline]
fn ended(s: &State, ip: &Ip, ts_ns: u64, reply: bool, outcome: Outcome) -> Attempt {
    let (src_port, dst_port) = ip.transport.ports().unwrap_or_default();
    let ((initiator, sport), (target, mut dport)) = if reply {
        ((ip.dst, dst_port), (ip.src, src_port))
    } else {
        ((ip.src, src_port), (ip.dst, dst_port))
    };
    if s.probe == Probe::IpProto {
        // An IP protocol probe is counted by its protocol number.
        dport = u16::from(ip.proto);
    }
    Attempt {
        ts_ns,
        iface: s.iface,
        initiator: initiator.ip(),
        target: target.ip(),
        proto: ip.proto,
        sport,
        dport,
        probe: s.probe,
        outcome,
        attempt_ns: s.opened_ns(ts_ns),
        mac: s.mac,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Stage {
    /// An empty slot's (the table's default); no stored flow is ever in it.
    #[default]
    Free,
    Opening,
    Answered,
    Done,
}

/// One flow: 16 bytes, so a slot with its key fills one cache line (hence the open time in
/// 32 bits).
#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// The MAC that sent the opening (the initiator, or the router it came through).
    mac: [u8; 6],
    stage: Stage,
    probe: Probe,
    /// The initiator is the first endpoint of the key.
    initiator_first: bool,
    iface: u16,
    /// When it was opened, in µs modulo 2^32 (see [`State::age_ns`]).
    opened: u32,
}

/// `ns` in µs (the precision of alert timestamps), modulo 2^32.
#[inline]
fn micros(ns: u64) -> u32 {
    (ns / 1_000) as u32
}

impl State {
    /// An attempt opened at `ts_ns` by `mac`.
    #[inline]
    fn opening(probe: Probe, initiator_first: bool, iface: u16, ts_ns: u64, mac: [u8; 6]) -> State {
        State {
            mac,
            stage: Stage::Opening,
            probe,
            initiator_first,
            iface,
            opened: micros(ts_ns),
        }
    }

    /// An attempt that counts as failed now: still opening, of a kind that fails unanswered,
    /// and older than [`UNANSWERED_NS`] (or any age at the end of a capture).
    #[inline(always)]
    fn due(&self, now_ns: u64, end: bool) -> bool {
        self.stage == Stage::Opening
            && self.probe.fails_unanswered()
            && (end || self.age_ns(now_ns) >= UNANSWERED_NS)
    }

    /// Its age at `now_ns`, in ns to the µs: exact for flows younger than 71 minutes (the
    /// clock hand visits every flow far more often; one it missed that long is misjudged for
    /// a turn, never reported before its time is up).
    #[inline]
    fn age_ns(&self, now_ns: u64) -> u64 {
        u64::from(micros(now_ns).wrapping_sub(self.opened)) * 1_000
    }

    /// When it was opened, ns (to the µs), seen from `now_ns`.
    #[inline]
    fn opened_ns(&self, now_ns: u64) -> u64 {
        (now_ns / 1_000 * 1_000).saturating_sub(self.age_ns(now_ns))
    }
}

/// An address as a flow table keys it: 32 bits in the IPv4 table, 128 in the IPv6 one.
trait Width: Copy + Default + Eq + Ord + std::hash::Hash {
    /// `a` in this width (an IPv4 address's own 32 bits in the IPv4 table).
    fn of(a: Addr) -> Self;
    /// The address table key it stands for.
    fn key(self) -> AddrKey;
}

impl Width for u32 {
    #[inline(always)]
    fn of(a: Addr) -> u32 {
        a.key() as u32
    }

    fn key(self) -> AddrKey {
        Addr::v4(self.to_be_bytes()).key()
    }
}

impl Width for u128 {
    #[inline(always)]
    fn of(a: Addr) -> u128 {
        a.key()
    }

    fn key(self) -> AddrKey {
        self
    }
}

/// (first address, second address, first port, second port, protocol): both directions of a flow
/// have the same key.
type Key<W> = (W, W, u16, u16, u8);

/// A flow table of one address family.
type FlowTable<W> = table::FlowTable<W, State>;

/// The key of the flow between `src`:`sport` and `dst`:`dport` (the lower address and its port
/// first, so both directions share it), and whether `src` is the first.
#[inline(always)]
fn canonical<W: Width>(src: W, dst: W, sport: u16, dport: u16, proto: u8) -> (Key<W>, bool) {
    let src_first = (src, sport) <= (dst, dport);
    let key = if src_first {
        (src, dst, sport, dport, proto)
    } else {
        (dst, src, dport, sport, proto)
    };
    (key, src_first)
}

/// The IPv4 table's key of `ip`'s flow on ports `sport` and `dport`, and whether its source is
/// the key's first endpoint.
#[inline(always)]
fn key_v4(ip: &Ip, sport: u16, dport: u16) -> (Key<u32>, bool) {
    canonical(u32::of(ip.src), u32::of(ip.dst), sport, dport, ip.proto)
}

/// The same in the IPv6 table.
#[inline(always)]
fn key_v6(ip: &Ip, sport: u16, dport: u16) -> (Key<u128>, bool) {
    canonical(ip.src.key(), ip.dst.key(), sport, dport, ip.proto)
}

/// The ports [`Flows::observe`] keys the common packets on (TCP, UDP, SCTP, echo), for the
/// look-ahead; `None` for the rest, which it looks up rarely or not at all.
#[inline(always)]
fn lookup_ports(ip: &Ip) -> Option<(u16, u16)> {
    match ip.transport {
        Transport::Tcp { sport, dport, .. }
        | Transport::Udp { sport, dport }
        | Transport::Sctp { sport, dport } => Some((sport, dport)),
        Transport::Icmp { ty: 0 | 8, .. } | Transport::Icmpv6 { ty: 128 | 129, .. } => Some((0, 0)),
        _ => None,
    }
}

/// Where a packet's flow lives, worked out ahead of time ([`Flows::prepare`]), in the table of
/// the packet's IP version; its key is worked out again when the packet is judged (cheaper than
/// carrying it through the batch).
#[derive(Debug, Clone, Copy)]
pub struct Prepared {
    place: Place,
}

/// The flow tables of one worker.
#[derive(Debug)]
pub struct Flows {
    /// IPv4 flows and ARP requests.
    v4: FlowTable<u32>,
    /// IPv6 flows and neighbour solicitations (as many slots as `v4`).
    v6: FlowTable<u128>,
    /// The clock hand: the IPv4 table's slots, then the IPv6 table's.
    hand: usize,
    /// When [`Flows::sweep_budget`] was last asked (0: not yet), and where the hand was to be
    /// after that sweep: what packets since moved it is `hand` minus this.
    pace_ns: u64,
    pace_hand: usize,
    /// Time earned towards the next slot of the pace, in slot-ns (see [`Flows::sweep_budget`]).
    credit: u128,
}

/// What a packet means for its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// TCP with these flags.
    Tcp(u8),
    /// The first fragment of a TCP segment (flags in a later one).
    TcpFragment,
    /// A datagram or chunk of a protocol with ports.
    Datagram(Probe),
    /// An ICMP echo request (true) or reply (false).
    Echo(bool),
    /// A packet of another protocol.
    Other,
}

impl Flows {
    /// Tables of `capacity` IPv4 flows and `capacity` IPv6 flows.
    pub fn new(capacity: usize, hasher: SeededState) -> Self {
        Flows {
            v4: FlowTable::new(capacity, hasher),
            v6: FlowTable::new(capacity, hasher),
            hand: 0,
            pace_ns: 0,
            pace_hand: 0,
            credit: 0,
        }
    }

    /// Flows evicted to make room.
    pub fn evictions(&self) -> u64 {
        self.v4.evictions() + self.v6.evictions()
    }

    /// Bytes held (fixed at construction).
    pub fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes() + self.v6.memory_bytes()
    }

    /// Is slot `i` of the hand's turn in the IPv6 table? (Both tables have the same power of two
    /// of slots: the hand's turn is twice that.)
    #[inline(always)]
    fn hand_in_v6(&self, i: usize) -> bool {
        i & self.v4.capacity() != 0
    }

    /// Asks for slot `i` of the hand's turn.
    #[inline(always)]
    fn prefetch_hand(&self, i: usize) {
        if self.hand_in_v6(i) {
            self.v6.prefetch_index(i);
        } else {
            self.v4.prefetch_index(i);
        }
    }

    /// Slot `i` of the hand's turn, if in use: its flow's key (addresses as table keys) and
    /// state.
    #[inline(always)]
    fn hand_slot(&mut self, i: usize) -> Option<(Key<AddrKey>, &mut State)> {
        if self.hand_in_v6(i) {
            self.v6.slot_mut(i)
        } else {
            self.v4
                .slot_mut(i)
                .map(|((a, b, pa, pb, p), s)| ((a.key(), b.key(), pa, pb, p), s))
        }
    }

    /// Moves the clock hand over at most `*budget` slots (spending them) and returns the first
    /// attempt found unanswered at `now_ns`.
    #[inline]
    pub fn next_unanswered(&mut self, now_ns: u64, budget: &mut usize) -> Option<Attempt> {
        self.next_open(now_ns, budget, false)
    }

    /// Moves the clock hand one slot (what each packet judged on its own pays): the attempt
    /// found there unanswered at `now_ns`, if any. The common case, a slot with nothing due, is
    /// decided here; building the attempt is left to the cold path.
    #[inline(always)]
    pub fn step(&mut self, now_ns: u64) -> Option<Attempt> {
        let next = self.hand.wrapping_add(1);
        self.prefetch_hand(next.wrapping_add(HAND_LOOKAHEAD));
        let due = self
            .hand_slot(next)
            .is_some_and(|(_, s)| s.due(now_ns, false));
        if !due {
            self.hand = next;
            return None;
        }
        self.next_open(now_ns, &mut 1, false)
    }

    /// As [`Flows::next_unanswered`], but every attempt still open counts, as failed 3 s after
    /// it was made: the end of a capture file whose last packet came at `latest_ns`.
    pub fn next_at_end(&mut self, latest_ns: u64, budget: &mut usize) -> Option<Attempt> {
        self.next_open(latest_ns, budget, true)
    }

    #[cold]
    #[inline(never)]
    fn next_open(&mut self, now_ns: u64, budget: &mut usize, end: bool) -> Option<Attempt> {
        while *budget > 0 {
            *budget -= 1;
            self.hand = self.hand.wrapping_add(1);
            // The hand's next slots are a cache line each: ask for one a few steps ahead.
            self.prefetch_hand(self.hand.wrapping_add(HAND_LOOKAHEAD));
            let Some((key, s)) = self.hand_slot(self.hand) else {
                continue;
            };
            if !s.due(now_ns, end) {
                continue;
            }
            s.stage = Stage::Done;
            let (a, b, pa, pb, proto) = key;
            let ((initiator, sport), (target, dport)) = if s.initiator_first {
                ((a, pa), (b, pb))
            } else {
                ((b, pb), (a, pa))
            };
            let attempt_ns = s.opened_ns(now_ns);
            return Some(Attempt {
                ts_ns: if end {
                    attempt_ns.saturating_add(UNANSWERED_NS)
                } else {
                    now_ns
                },
                iface: s.iface,
                initiator: key_addr(initiator),
                target: key_addr(target),
                proto,
                sport,
                dport,
                probe: s.probe,
                outcome: Outcome::Unanswered,
                attempt_ns,
                mac: s.mac,
            });
        }
        None
    }

    /// The flow `ip` belongs to, worked out ahead of [`Flows::observe`] (for TCP, UDP, SCTP and
    /// echo; `None` for the rest, which `observe` works out itself), with its bucket asked for:
    /// a look-ahead over a batch of packets, so the lookup finds its lines in cache.
    #[inline(always)]
    pub fn prepare(&self, ip: &Ip) -> Option<Prepared> {
        let (sport, dport) = lookup_ports(ip)?;
        Some(if ip.v4 {
            let place = self.v4.place(&key_v4(ip, sport, dport).0);
            self.v4.prefetch_bucket(place);
            Prepared { place }
        } else {
            let place = self.v6.place(&key_v6(ip, sport, dport).0);
            self.v6.prefetch_bucket(place);
            Prepared { place }
        })
    }

    /// Follows one ARP packet: a request opens an attempt to reach the target address, whose
    /// reply (or any request from it) answers it. Probes from 0.0.0.0 and announcements (sender
    /// and target the same) ask nothing.
    #[inline]
    pub fn observe_arp(&mut self, arp: &Arp, ts_ns: u64, iface: u16) {
        let (sender, target) = (arp.sender_ip, arp.target_ip);
        if sender.is_unspecified() || target.is_unspecified() || sender == target {
            return;
        }
        let (key, sender_first) = canonical(u32::from(sender), u32::from(target), 0, 0, ARP);
        if let Some(state) = self.v4.get_mut(&key, ts_ns) {
            if state.initiator_first != sender_first && state.stage == Stage::Opening {
                state.stage = Stage::Answered;
            }
            return;
        }
        if arp.operation != 1 {
            return;
        }
        let opening = State::opening(Probe::Arp, sender_first, iface, ts_ns, arp.sender_mac);
        self.v4.insert(key, ts_ns, opening);
    }

    /// A neighbour solicitation asks for an address (keyed by its solicited-node group, which
    /// the solicitation is sent to); an advertisement from that address answers it. Duplicate
    /// address detection (from ::) asks nothing.
    #[cold]
    fn neighbour(&mut self, ip: &Ip, mac: [u8; 6], ts_ns: u64, iface: u16) {
        let (Some(src), Some(dst)) = (ip.src.to_ipv6(), ip.dst.to_ipv6()) else {
            return;
        };
        let solicitation = matches!(ip.transport, Transport::Icmpv6 { ty: 135, .. });
        let (asker, group) = if solicitation {
            if src.is_unspecified() {
                return;
            }
            let group = if dst.is_multicast() {
                dst
            } else {
                solicited_node(dst)
            };
            (src, group)
        } else {
            (dst, solicited_node(src))
        };
        if asker.is_multicast() {
            return;
        }
        let (a, g) = (u128::from(asker), u128::from(group));
        let key = (a, g, 0, 0, ND);
        if let Some(state) = self.v6.get_mut(&key, ts_ns) {
            if !solicitation && state.stage == Stage::Opening {
                state.stage = Stage::Answered;
            }
            return;
        }
        if solicitation {
            let opening = State::opening(Probe::Nd, true, iface, ts_ns, mac);
            self.v6.insert(key, ts_ns, opening);
        }
    }

    /// An ICMP destination-unreachable from `from` whose body starts at `body` in `frame`.
    #[cold]
    #[inline(never)]
    fn unreachable_in(
        &mut self,
        frame: &[u8],
        from: IpAddr,
        body: u16,
        ts_ns: u64,
    ) -> Option<Attempt> {
        let q = crate::decode::quoted(frame.get(usize::from(body)..)?)?;
        self.unreachable(from, &q, ts_ns)
    }

    /// An ICMP destination-unreachable from `from`, quoting `q`: the attempt it refuses, if the
    /// table follows it, it is still open, and the error comes from its target (a port or
    /// protocol unreachable: the target itself says no). A router's word about another host's
    /// attempt is left to the timeout, so a forged error cannot make a client look like a
    /// scanner faster than silence would.
    #[cold]
    #[inline(never)]
    pub fn unreachable(&mut self, from: IpAddr, q: &Quote, ts_ns: u64) -> Option<Attempt> {
        if from != q.dst || matches!(q.proto, proto::ICMP | proto::ICMPV6) {
            return None;
        }
        let (sport, dport) = match q.ports {
            Some(p) => p,
            None if matches!(q.proto, proto::TCP | proto::UDP | proto::SCTP) => return None,
            None => (0, u16::from(q.proto)),
        };
        let s = match (q.src, q.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => refuse(
                &mut self.v4,
                canonical(u32::from(src), u32::from(dst), sport, dport, q.proto),
                ts_ns,
            ),
            (src, dst) => refuse(
                &mut self.v6,
                canonical(addr_key(src), addr_key(dst), sport, dport, q.proto),
                ts_ns,
            ),
        }?;
        Some(Attempt {
            ts_ns,
            iface: s.iface,
            initiator: q.src,
            target: q.dst,
            proto: q.proto,
            sport,
            dport,
            probe: s.probe,
            outcome: Outcome::Refused,
            attempt_ns: s.opened_ns(ts_ns),
            mac: s.mac,
        })
    }

    /// Slots the clock hand is to visit at `now_ns` to keep its pace of [`IDLE_SWEEP`] slots
    /// of each table per 100 ms (a turn of the default tables in 1.6 s), less what packets
    /// stepped it over since the last call: asked at every wake-up and at the end of every
    /// block by a capture worker, whose packets do not step it. An idle link's wake-ups, 100 ms
    /// apart, each visit 8,192 slots; a busy link's blocks as many as the time they took calls
    /// for, whatever the packet rate (a slot a packet was about 50 instructions of each). What
    /// a call's time earned beyond whole slots is kept for the next; a whole turn at most,
    /// however long the sleep. The first call counts as 100 ms. A time before the last call's
    /// counts as none: a block's last packet comes a little before the wake-up that found the
    /// block (so the time in between is counted once), and a clock stepped back by more than
    /// [`STEP_BACK_NS`] starts the count again from there.
    pub fn sweep_budget(&mut self, now_ns: u64) -> usize {
        let (elapsed, since) = match self.pace_ns {
            0 => (IDLE_SWEEP_NS, now_ns),
            then if now_ns.saturating_add(STEP_BACK_NS) < then => (0, now_ns),
            then => (now_ns.saturating_sub(then), now_ns.max(then)),
        };
        let period = u128::from(IDLE_SWEEP_NS);
        let turn = self.capacity() as u128 * period;
        self.credit = (self.credit + u128::from(elapsed) * (2 * IDLE_SWEEP) as u128).min(turn);
        let due = self.credit / period;
        self.credit -= due * period;
        let budget = (due as usize).saturating_sub(self.hand.wrapping_sub(self.pace_hand));
        self.pace_ns = since.max(1);
        self.pace_hand = self.hand.wrapping_add(budget);
        budget
    }

    /// Slots that make a whole turn of the clock hand.
    pub fn capacity(&self) -> usize {
        self.v4.capacity() + self.v6.capacity()
    }

    /// Follows one IP packet (`frame`, where an ICMP error's quote is read); returns the
    /// attempt it shows refused or answered, if any. Then move the clock hand: [`Flows::step`]
    /// after each packet judged on its own, or by [`Flows::sweep_budget`] after a block.
    #[inline]
    pub fn observe(
        &mut self,
        ip: &mut Ip,
        mac: &[u8; 6],
        frame: &[u8],
        ts_ns: u64,
        iface: u16,
        prepared: Option<&Prepared>,
    ) -> Option<Attempt> {
        if let Transport::Icmpv6 { ty: 135 | 136, .. } = ip.transport {
            self.neighbour(ip, *mac, ts_ns, iface);
            return None;
        }
        let (part, sport, dport) = match ip.transport {
            Transport::Tcp {
                sport,
                dport,
                flags,
            } => (Part::Tcp(flags), sport, dport),
            Transport::TinyFragment {
                ports: Some((sport, dport)),
            } if ip.proto == proto::TCP => (Part::TcpFragment, sport, dport),
            Transport::Udp { sport, dport } => (Part::Datagram(Probe::Udp), sport, dport),
            Transport::Sctp { sport, dport } => (Part::Datagram(Probe::Sctp), sport, dport),
            Transport::Icmp { ty: 8, .. } | Transport::Icmpv6 { ty: 128, .. } => {
                (Part::Echo(true), 0, 0)
            }
            Transport::Icmp { ty: 0, .. } | Transport::Icmpv6 { ty: 129, .. } => {
                (Part::Echo(false), 0, 0)
            }
            Transport::Icmp { ty: 3, body, .. } | Transport::Icmpv6 { ty: 1, body, .. } => {
                return self.unreachable_in(frame, ip.src.ip(), body, ts_ns);
            }

            Transport::None
                if ip.fragment == Fragment::No
                    && !matches!(ip.proto, proto::ICMP | proto::ICMPV6) =>
            {
                (Part::Other, 0, u16::from(ip.proto))
            }
            _ => return None,
        };
        let at = |src_first| At {
            src_first,
            sport,
            dport,
            mac,
            ts_ns,
            iface,
        };
        if ip.v4 {
            let (key, src_first) = key_v4(ip, sport, dport);
            let place = prepared.map_or_else(|| self.v4.place(&key), |p| p.place);
            judge(&mut self.v4, place, key, part, ip, at(src_first))
        } else {
            let (key, src_first) = key_v6(ip, sport, dport);
            let place = prepared.map_or_else(|| self.v6.place(&key), |p| p.place);
            judge(&mut self.v6, place, key, part, ip, at(src_first))
        }
    }
}

/// The open attempt of the flow `(key, src_first)` started by its source, refused now.
#[inline]
fn refuse<W: Width>(
    table: &mut FlowTable<W>,
    (key, src_first): (Key<W>, bool),
    ts_ns: u64,
) -> Option<&mut State> {
    let s = table.get_mut(&key, ts_ns)?;
    if s.stage != Stage::Opening || s.initiator_first != src_first {
        return None;
    }
    s.stage = Stage::Done;
    Some(s)
}

/// Where and when a packet was seen, and which end of its flow sent it.
#[derive(Debug, Clone, Copy)]
struct At<'a> {
    /// The sender is the first endpoint of the flow's key.
    src_first: bool,
    /// The sender's port and the receiver's (0 where there are none).
    sport: u16,
    dport: u16,
    mac: &'a [u8; 6],
    ts_ns: u64,
    iface: u16,
}

/// What `part` of the flow `key` (at `place` in `table`) means: the attempt it ends, if any; a
/// new attempt opened; `ip` marked a reply or a stray.
#[inline(always)]
fn judge<W: Width>(
    table: &mut FlowTable<W>,
    place: Place,
    key: Key<W>,
    part: Part,
    ip: &mut Ip,
    at: At<'_>,
) -> Option<Attempt> {
    let At {
        src_first,
        sport,
        dport,
        mac,
        ts_ns,
        iface,
    } = at;
    let sender_is_initiator = |s: &State| s.initiator_first == src_first;
    if let Some(s) = table.get_mut_at(place, &key, ts_ns) {
        ip.reply = !sender_is_initiator(s);
        match part {
            // A new SYN after the conversation ended: a new attempt on the same ports.
            Part::Tcp(f)
                if f & tcp_flags::SYN != 0
                    && f & tcp_flags::ACK == 0
                    && s.stage != Stage::Opening =>
            {
                *s = State::opening(Probe::Syn, src_first, iface, ts_ns, *mac);
            }
            _ if sender_is_initiator(s) => {}
            Part::Tcp(f) if f & tcp_flags::RST != 0 && s.stage == Stage::Opening => {
                s.stage = Stage::Done;
                return Some(ended(s, ip, ts_ns, true, Outcome::Refused));
            }
            Part::Tcp(f) if f & tcp_flags::RST != 0 => {}
            // The SYN-ACK: a connection opened (a service answered; a scanner learned
            // an open port, a password guesser got one more try).
            Part::Tcp(f)
                if f & tcp_flags::SYN != 0
                    && s.stage == Stage::Opening
                    && s.probe == Probe::Syn =>
            {
                s.stage = Stage::Answered;
                return Some(ended(s, ip, ts_ns, true, Outcome::Answered));
            }
            Part::Tcp(_) => s.stage = Stage::Answered,
            // The first reply of a protocol without a handshake: what the probe
            // learned.
            _ if s.stage == Stage::Opening => {
                s.stage = Stage::Answered;
                return Some(ended(s, ip, ts_ns, true, Outcome::Answered));
            }
            _ => {}
        }
        return None;
    }
    // No flow yet: does this packet open one?
    let probe = match part {
        // A RST opens nothing; an answer never does.
        Part::Tcp(f) if f & tcp_flags::RST != 0 => {
            ip.stray = true;
            return None;
        }
        Part::Tcp(f) if f & tcp_flags::SYN != 0 && f & tcp_flags::ACK != 0 => return None,
        Part::Tcp(f) => {
            ip.stray = f & tcp_flags::SYN == 0;
            Probe::of_tcp(f)
        }
        Part::TcpFragment => Probe::Fragmented,
        // A datagram from a service port to an ephemeral one is an answer whose question
        // was not seen (DNS, NTP, QUIC replies fan out over client ports).
        Part::Datagram(_) if sport < 1024 && dport >= 1024 => {
            ip.stray = true;
            return None;
        }
        // The same from the amplifying services above 1024 (SSDP, memcached, ...).
        Part::Datagram(_) if sport != dport && AMPLIFIERS_HIGH.contains(&sport) => {
            ip.stray = true;
            return None;
        }
        Part::Datagram(p) => p,
        Part::Echo(true) => Probe::Echo,
        Part::Echo(false) => return None,
        Part::Other => Probe::IpProto,
    };
    if chatter_destination(ip.dst) || link_local(ip.dst) || ip.src.is_unspecified() {
        return None;
    }
    let opening = State::opening(probe, src_first, iface, ts_ns, *mac);
    table.insert_at(place, key, ts_ns, opening);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::craft::{icmp_frame, tcp_frame, udp_frame};
    use crate::decode::{decode_ethernet, Net};
    use tcp_flags::{ACK, RST, SYN};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Feeds frames at their times; every failure found, refusals and a full clock-hand turn
    /// at each packet (so timing, not the hand's position, decides).
    fn follow(flows: &mut Flows, frames: &[(u64, Vec<u8>)]) -> Vec<Attempt> {
        let mut all = follow_all(flows, frames);
        all.retain(|a| a.outcome != Outcome::Answered);
        all
    }

    /// As [`follow`], answered attempts included; ICMP unreachables are read as the pipeline
    /// reads them.
    fn follow_all(flows: &mut Flows, frames: &[(u64, Vec<u8>)]) -> Vec<Attempt> {
        let mut out = Vec::new();
        for (ts, f) in frames {
            let mut p = decode_ethernet(f, None).unwrap();
            let Net::Ip(ip) = &mut p.net else { continue };
            out.extend(flows.observe(ip, &[2, 0, 0, 0, 0, 1], f, *ts, 0, None));
            let mut budget = flows.capacity();
            while let Some(f) = flows.next_unanswered(*ts, &mut budget) {
                out.push(f);
            }
        }
        out
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_refused_syn_fails_at_once_and_an_answered_one_never() {
        let (a, v) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut flows = Flows::new(1024, SeededState::random());
        let failures = follow(
            &mut flows,
            &[
                (S, tcp_frame(a, v, 40000, 22, SYN)),
                (S + 1, tcp_frame(v, a, 22, 40000, SYN | ACK)),
                (S + 2, tcp_frame(a, v, 40001, 23, SYN)),
                (S + 3, tcp_frame(v, a, 23, 40001, RST | ACK)),
                (10 * S, tcp_frame(a, v, 40002, 80, ACK)),
            ],
        );
        assert_eq!(failures.len(), 1, "{failures:?}");
        let f = failures[0];
        assert_eq!((f.initiator, f.target, f.dport), (a, v, 23));
        assert_eq!(
            (f.probe, f.outcome, f.ts_ns),
            (Probe::Syn, Outcome::Refused, S + 3)
        );
    }

    #[test]
    fn unanswered_attempts_fail_after_three_seconds_and_answers_open_nothing() {
        let (a, v) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut flows = Flows::new(1024, SeededState::random());
        let failures = follow(
            &mut flows,
            &[
                (S, udp_frame(a, v, 5000, 161, b"")),
                (S, icmp_frame(a, v, 8, 0)),
                // A DNS server on a high port answering: the answer is part of the client's flow.
                (S, udp_frame(a, v, 40000, 8600, b"q")),
                (S + 1, udp_frame(v, a, 8600, 40000, b"a")),
                // An answer whose question was not seen opens nothing.
                (S + 2, udp_frame(v, a, 53, 40001, b"a")),
                (S + UNANSWERED_NS - 1, tcp_frame(a, v, 1, 1, ACK)),
                (S + UNANSWERED_NS, tcp_frame(a, v, 1, 1, ACK)),
            ],
        );
        let got: Vec<_> = failures
            .iter()
            .map(|f| (f.probe, f.dport, f.outcome == Outcome::Refused))
            .collect();
        assert_eq!(got.len(), 2, "{failures:?}");
        assert!(got.contains(&(Probe::Udp, 161, false)), "{got:?}");
        assert!(got.contains(&(Probe::Echo, 0, false)), "{got:?}");
    }

    #[test]
    fn ipv4_and_ipv6_flows_each_have_their_table_and_the_hand_visits_both() {
        // An IPv4 flow's slot is half an IPv6 flow's: two to a cache line.
        assert_eq!(std::mem::size_of::<(Key<u32>, State)>(), 32);
        assert_eq!(std::mem::size_of::<(Key<u128>, State)>(), 64);
        let mut flows = Flows::new(1024, SeededState::random());
        assert_eq!(flows.capacity(), 2048, "the hand's turn covers both tables");
        let (a4, v4) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let (a6, v6) = (ip("2001:db8::1"), ip("2001:db8::2"));
        // The same ports in both families, none answered; the IPv6 datagram refused by its
        // target's port unreachable.
        let failures = follow(
            &mut flows,
            &[
                (S, tcp_frame(a4, v4, 40000, 22, SYN)),
                (S, tcp_frame(a6, v6, 40000, 22, SYN)),
                (S, udp_frame(a6, v6, 40001, 161, b"q")),
                (
                    S + 1,
                    crate::craft::ip_frame(
                        v6,
                        a6,
                        proto::ICMPV6,
                        &crate::craft::icmp(
                            1,
                            4,
                            &crate::craft::udp_frame(a6, v6, 40001, 161, b"q")[14..14 + 48],
                        ),
                        &[],
                    ),
                ),
                (S + UNANSWERED_NS + 1, tcp_frame(a4, v4, 1, 1, ACK)),
            ],
        );
        let mut got: Vec<_> = failures
            .iter()
            .map(|f| (f.initiator, f.target, f.dport, f.outcome))
            .collect();
        got.sort_by_key(|g| (g.0, g.2));
        assert_eq!(
            got,
            [
                (a4, v4, 22, Outcome::Unanswered),
                (a6, v6, 22, Outcome::Unanswered),
                (a6, v6, 161, Outcome::Refused),
            ]
        );
    }

    #[test]
    fn an_idle_link_finds_an_unanswered_attempt_in_either_table_within_one_tables_turn() {
        // 65,536 slots a table: 16 wake-ups of an idle link make a turn over both.
        for (a, v) in [
            (ip("10.0.0.1"), ip("10.0.0.2")),
            (ip("2001:db8::1"), ip("2001:db8::2")),
        ] {
            let mut flows = Flows::new(65_536, SeededState::random());
            let frame = tcp_frame(a, v, 40000, 22, SYN);
            let mut p = decode_ethernet(&frame, None).unwrap();
            let Net::Ip(packet) = &mut p.net else {
                panic!()
            };
            assert!(flows
                .observe(packet, &[2, 0, 0, 0, 0, 1], &frame, S, 0, None)
                .is_none());
            let due = S + UNANSWERED_NS;
            let wakeups = (1..=64)
                .find(|&k| {
                    // An idle link's worker wakes every 100 ms.
                    let now = due + k * IDLE_SWEEP_NS;
                    let mut budget = flows.sweep_budget(now);
                    flows.next_unanswered(now, &mut budget).is_some()
                })
                .unwrap();
            assert!(wakeups <= 16, "{v}: found after {wakeups} wake-ups");
        }
    }

    #[test]
    fn a_wake_up_sweeps_only_what_the_packets_did_not() {
        let mut flows = Flows::new(65_536, SeededState::random());
        // A wake-up: the slots it visits.
        let wake = |flows: &mut Flows, now| {
            let mut budget = flows.sweep_budget(now);
            let visits = budget;
            while flows.next_unanswered(now, &mut budget).is_some() {}
            visits
        };
        // The first wake-up, and one 100 ms later on an idle link: 4,096 slots of each table.
        assert_eq!(wake(&mut flows, S), 8192);
        assert_eq!(wake(&mut flows, S + IDLE_SWEEP_NS), 8192);
        // A busy link: its worker waits at every block, 2 ms apart, and 10,000 packets stepped
        // the hand in between (5 million a second): the wake-ups add nothing.
        let mut now = S + IDLE_SWEEP_NS;
        for _ in 0..100 {
            for _ in 0..10_000 {
                assert!(flows.step(now).is_none());
            }
            now += 2_000_000;
            assert_eq!(wake(&mut flows, now), 0);
        }
        // A slow link: 1,000 packets in 100 ms; the wake-up makes up the pace.
        for _ in 0..1_000 {
            assert!(flows.step(now).is_none());
        }
        now += IDLE_SWEEP_NS;
        assert_eq!(wake(&mut flows, now), 8192 - 1_000);
        // After a long sleep, one whole turn at most; a clock stepped back, nothing, and the
        // pace from there.
        now += 3600 * S;
        assert_eq!(wake(&mut flows, now), flows.capacity());
        now -= 3600 * S;
        assert_eq!(wake(&mut flows, now), 0);
        assert_eq!(wake(&mut flows, now + IDLE_SWEEP_NS), 8192);
        // A block's end 5 ms before the wake-up that found it (its last packet's time): the
        // 5 ms are counted once, by the wake-up.
        now += IDLE_SWEEP_NS;
        assert_eq!(wake(&mut flows, now - 5_000_000), 0);
        assert_eq!(wake(&mut flows, now + IDLE_SWEEP_NS), 8192);
    }

    #[test]
    fn stray_segments_fail_only_when_refused() {
        let (a, v) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut flows = Flows::new(1024, SeededState::random());
        let failures = follow(
            &mut flows,
            &[
                // An ACK probe refused: the ACK scan's signature.
                (S, tcp_frame(a, v, 50000, 25, ACK)),
                (S + 1, tcp_frame(v, a, 25, 50000, RST)),
                // A FIN to an open port: silence, and no failure however long.
                (S, tcp_frame(a, v, 50001, 80, tcp_flags::FIN)),
                (20 * S, tcp_frame(a, v, 50002, 81, tcp_flags::FIN)),
                // A RST to nothing opens nothing.
                (21 * S, tcp_frame(v, a, 9, 9, RST)),
            ],
        );
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!((failures[0].probe, failures[0].dport), (Probe::Ack, 25));
    }

    #[test]
    fn the_table_is_bounded_and_counts_evictions() {
        let v = ip("10.0.0.2");
        let mut flows = Flows::new(1024, SeededState::random());
        let bytes = flows.memory_bytes();
        let frames: Vec<_> = (0..10_000u32)
            .map(|i| {
                let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
                (S + u64::from(i), tcp_frame(a, v, 1024, 80, SYN))
            })
            .collect();
        follow(&mut flows, &frames[..100]);
        for (ts, f) in &frames[100..] {
            let mut p = decode_ethernet(f, None).unwrap();
            let Net::Ip(ip) = &mut p.net else { continue };
            flows.observe(ip, &[2, 0, 0, 0, 0, 1], f, *ts, 0, None);
        }
        assert_eq!(flows.memory_bytes(), bytes);
        assert!(flows.evictions() >= 10_000 - 1024, "{}", flows.evictions());
    }

    #[test]
    fn what_a_scan_learns_is_reported_answered() {
        let (a, v) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut flows = Flows::new(1024, SeededState::random());
        let got = follow_all(
            &mut flows,
            &[
                // A half-open probe of an open port: SYN, SYN-ACK, the prober's RST.
                (S, tcp_frame(a, v, 40000, 22, SYN)),
                (S + 1, tcp_frame(v, a, 22, 40000, SYN | ACK)),
                (S + 2, tcp_frame(a, v, 40000, 22, RST)),
                // An ordinary conversation: opened, whoever closes it.
                (S + 3, tcp_frame(a, v, 40001, 80, SYN)),
                (S + 4, tcp_frame(v, a, 80, 40001, SYN | ACK)),
                (S + 5, tcp_frame(a, v, 40001, 80, ACK)),
                (S + 6, tcp_frame(v, a, 80, 40001, RST)),
                // A UDP service answering, once.
                (S + 7, udp_frame(a, v, 40002, 161, b"q")),
                (S + 8, udp_frame(v, a, 161, 40002, b"a")),
                (S + 9, udp_frame(v, a, 161, 40002, b"a")),
            ],
        );
        let got: Vec<_> = got
            .iter()
            .map(|f| (f.initiator, f.target, f.dport, f.probe, f.outcome))
            .collect();
        assert_eq!(
            got,
            [
                (a, v, 22, Probe::Syn, Outcome::Answered),
                (a, v, 80, Probe::Syn, Outcome::Answered),
                (a, v, 161, Probe::Udp, Outcome::Answered),
            ]
        );
    }

    #[test]
    fn answers_in_a_conversation_are_marked_replies_and_its_openings_are_not() {
        let (a, v) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut flows = Flows::new(1024, SeededState::random());
        let mut reply = |frame: Vec<u8>| {
            let mut p = decode_ethernet(&frame, None).unwrap();
            let Net::Ip(ip) = &mut p.net else { panic!() };
            let _ = flows.observe(ip, &[2, 0, 0, 0, 0, 1], &frame, S, 0, None);
            ip.reply
        };
        assert!(!reply(udp_frame(a, v, 40000, 443, b"q")));
        assert!(reply(udp_frame(v, a, 443, 40000, b"a")));
        assert!(!reply(udp_frame(a, v, 40000, 443, b"q")));
    }

    /// An ICMP port unreachable quoting `(src, dst, sport, dport)` UDP, sent by `from`.
    fn port_unreachable(from: IpAddr, src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Vec<u8> {
        let quoted = crate::craft::udp_frame(src, dst, sport, dport, b"");
        // The quoted IP header and 8 bytes of UDP: past the 14-byte Ethernet header.
        let body = &quoted[14..14 + 28];
        let icmp = crate::craft::icmp(3, 3, body);
        crate::craft::ip_frame(from, src, proto::ICMP, &icmp, &[])
    }

    #[test]
    fn a_port_unreachable_from_the_target_refuses_at_once_and_a_third_party_is_not_believed() {
        let (a, v, router) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.254"));
        let mut flows = Flows::new(1024, SeededState::random());
        let got = follow_all(
            &mut flows,
            &[
                (S, udp_frame(a, v, 40000, 7, b"")),
                (S + 1, port_unreachable(v, a, v, 40000, 7)),
                (S + 2, udp_frame(a, v, 40001, 9, b"")),
                (S + 3, port_unreachable(router, a, v, 40001, 9)),
                // An error about an attempt nobody made refuses nothing.
                (S + 4, port_unreachable(v, a, v, 40002, 11)),
            ],
        );
        let got: Vec<_> = got.iter().map(|f| (f.dport, f.outcome, f.ts_ns)).collect();
        assert_eq!(got, [(7, Outcome::Refused, S + 1)]);
    }
}

#[cfg(test)]
mod arp_tests {
    use super::*;
    use crate::craft::{arp_frame, MAC_A, MAC_B};
    use crate::decode::{decode_ethernet, Net};
    use std::net::Ipv4Addr;

    #[test]
    fn unanswered_arp_requests_fail_and_answered_ones_do_not() {
        let mut flows = Flows::new(1024, SeededState::random());
        let me = Ipv4Addr::new(10, 77, 0, 1);
        let mut frames = Vec::new();
        for i in 0..10u8 {
            frames.push(arp_frame(
                1,
                MAC_A,
                me,
                [0; 6],
                Ipv4Addr::new(10, 77, 0, 100 + i),
            ));
        }
        // 10.77.0.100 answers.
        frames.push(arp_frame(
            2,
            MAC_B,
            Ipv4Addr::new(10, 77, 0, 100),
            MAC_A,
            me,
        ));
        for f in &frames {
            let p = decode_ethernet(f, None).unwrap();
            let Net::Arp(arp) = &p.net else { panic!() };
            flows.observe_arp(arp, 1_000, 0);
        }
        let mut budget = flows.capacity();
        let mut failed = Vec::new();
        while let Some(f) = flows.next_unanswered(u64::MAX, &mut budget) {
            failed.push(f);
        }
        assert_eq!(failed.len(), 9, "{failed:?}");
        assert!(failed
            .iter()
            .all(|f| f.probe == Probe::Arp && f.initiator == IpAddr::V4(me)));
    }
}

#[cfg(test)]
mod nd_tests {
    use super::*;
    use crate::craft::icmp_frame;
    use crate::decode::{decode_ethernet, Net};
    use std::net::Ipv6Addr;

    #[test]
    fn unanswered_solicitations_fail_and_advertised_ones_do_not() {
        let me: Ipv6Addr = "fd09::2".parse().unwrap();
        let mut flows = Flows::new(1024, SeededState::random());
        let mut frames = Vec::new();
        for i in 0x10..0x20u16 {
            let target = Ipv6Addr::new(0xfd09, 0, 0, 0, 0, 0, 0, i);
            let group = solicited_node(target);
            frames.push(icmp_frame(me.into(), group.into(), 135, 0));
        }
        // fd09::10 advertises itself to the asker.
        frames.push(icmp_frame("fd09::10".parse().unwrap(), me.into(), 136, 0));
        // Duplicate address detection asks nothing.
        frames.push(icmp_frame(
            Ipv6Addr::UNSPECIFIED.into(),
            solicited_node(me).into(),
            135,
            0,
        ));
        for f in &frames {
            let mut p = decode_ethernet(f, None).unwrap();
            let Net::Ip(ip) = &mut p.net else { panic!() };
            assert!(flows
                .observe(ip, &[2, 0, 0, 0, 0, 1], f, 1_000, 0, None)
                .is_none());
        }
        let mut budget = flows.capacity();
        let mut failed = Vec::new();
        while let Some(f) = flows.next_unanswered(u64::MAX, &mut budget) {
            failed.push(f);
        }
        assert_eq!(failed.len(), 15, "{failed:?}");
        assert!(failed
            .iter()
            .all(|f| f.probe == Probe::Nd && f.initiator == IpAddr::V6(me)));
    }
}
