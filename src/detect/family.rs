//! What every detector family is made of: the [`Family`] trait, the catalogue [`Entry`] of each
//! detector, the packet a family sees ([`Seen`]), and the suppressing outlet its alerts leave
//! through ([`Out`]).

use super::record::Alert;
use super::suppress::Suppressor;
use super::table::SeededState;
use super::Detector;
use crate::alert::community_id::FlowTuple;
use crate::decode::{proto, Addr, Ip, Net, Packet, Transport};
use crate::flow::Attempt;

/// Whose shard runs a family: with several workers, an address's state lives in one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// The shard of the packet's source (scans, per-source anomalies, ARP claims).
    Source,
    /// The shard of the packet's destination (floods: many sources, one victim).
    Destination,
}

/// A detector as operators see it: the contract's name and signature, the journal's message id,
/// and the one sentence its alerts say.
#[derive(Debug)]
pub struct Entry {
    /// The contract's name (`alert.context.scram.detector`, `SCRAM_DETECTOR`, config table).
    pub name: &'static str,
    /// EVE `signature_id`.
    pub signature_id: u32,
    /// Suricata-style classification.
    pub category: &'static str,
    /// 1 high, 2 medium, 3 low.
    pub severity: u8,
    /// The journal MESSAGE_ID (documented in the message catalog).
    pub message_id: &'static str,
    /// The human sentence for one of its alerts seen on interface `iface`: who, what, to whom,
    /// how many, over what time.
    pub describe: fn(alert: &Alert, iface: &str) -> String,
}

/// A detector family: its own file, its state, its settings, its keying, its catalogue entries.
/// Registered once, in the list in `detect/mod.rs`.
pub trait Family: Sized {
    /// What it is configured with (its `[detect.NAME]` tables).
    type Settings: std::fmt::Debug + Clone + PartialEq + Eq + Default;
    /// Its configuration tables as read from the file, in the order they are registered.
    type Raw;
    /// Whose shard runs it.
    const KEY: Key;

    /// Its state, every table sized `capacity` entries, fixed from now on.
    fn new(capacity: usize, hasher: SeededState) -> Self;

    /// Must this packet reach the shard the family keys on: can [`Family::observe`] change
    /// its state or raise an alert for it? Asked by the router for every packet when there is
    /// more than one shard (keep it to a few comparisons); a packet no family of a shard wants
    /// does not cross to that shard. True for every packet `observe` acts on, or a detector
    /// misses it with more than one worker.
    fn wants(packet: &Packet, settings: &Self::Settings) -> bool;

    /// Its packets for a destination another worker's shard owns are tallied where they were
    /// read and handed to that shard once a block, not sent one by one (the floods, whose
    /// counts add up: [`super::flood::Part`]). When such a family alone wants a packet there,
    /// the packet does not cross.
    const TALLIED: bool = false;

    /// Runs on one packet, in the shard the family keys on.
    fn observe(&mut self, seen: &Seen<'_>, settings: &Self::Settings, out: &mut Out<'_>);

    /// An attempt that was refused or went unanswered (see [`crate::flow`]): in the initiator's
    /// shard for a source-keyed family, in the target's for a destination-keyed one.
    fn failure(&mut self, _f: &Attempt, _settings: &Self::Settings, _out: &mut Out<'_>) {}

    /// An attempt that was answered (what a scan learned; see [`crate::flow::Outcome`]): in
    /// the initiator's shard, for source-keyed families only.
    fn answered(&mut self, _a: &Attempt, _settings: &Self::Settings, _out: &mut Out<'_>) {}

    /// The clock moved to `now_ns` (once per ring block, or an idle tick; `u64::MAX` at the end
    /// of a capture or at shutdown): incidents quiet since are closed and reported.
    fn tick(&mut self, _now_ns: u64, _settings: &Self::Settings, _out: &mut Out<'_>) {}

    /// Entries its tables evicted to make room.
    fn evictions(&self) -> u64 {
        0
    }

    /// Bytes its tables hold (fixed at construction).
    fn memory_bytes(&self) -> usize {
        0
    }

    /// Validates its tables into `settings`: errors carry the span of the offending value.
    fn configure(settings: &mut Self::Settings, raw: Self::Raw) -> Result<(), SpanError>;

    /// Its tables as TOML (what `check-config` prints).
    fn toml(settings: &Self::Settings) -> String;
}

/// A configuration error at a byte span of the file.
pub type SpanError = (std::ops::Range<usize>, String);

/// One packet, as a family sees it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// Packet time, ns since the epoch: the detectors' clock.
    pub ts_ns: u64,
    /// Interface slot.
    pub iface: u16,
    /// Captured on a loopback device (where 127.0.0.1 is normal).
    pub loopback: bool,
    /// The packet.
    pub packet: &'a Packet,
}

impl<'a> Seen<'a> {
    /// `packet` at `ts_ns` on interface `iface`.
    #[inline]
    pub fn new(ts_ns: u64, iface: u16, loopback: bool, packet: &'a Packet) -> Self {
        Seen {
            ts_ns,
            iface,
            loopback,
            packet,
        }
    }

    /// The IP layer, if it is an IP packet.
    #[inline]
    pub fn ip(&self) -> Option<&'a Ip> {
        match &self.packet.net {
            Net::Ip(ip) => Some(ip),
            _ => None,
        }
    }

    /// The alert about this packet's hosts (no ports shown; the trigger keeps its flow). Built
    /// only when a detector fires: an `Alert` is large, and most packets raise none.
    pub fn base(&self, ip: &Ip) -> Alert {
        base(self.ts_ns, self.iface, ip)
    }

    /// The alert about this packet's flow (its ports shown: a later fragment's are those of its
    /// first fragment, where the pipeline saw it).
    pub fn flow(&self, ip: &Ip) -> Alert {
        let ports = ip.transport.ports();
        Alert {
            sport: ports.map(|p| p.0),
            dport: ports.map(|p| p.1),
            ..self.base(ip)
        }
    }
}

/// The alert about the hosts of a packet seen at `ts_ns` on interface `iface` (no ports shown;
/// the trigger keeps its flow). Built only when a detector fires: an `Alert` is large, and most
/// packets raise none.
pub fn base(ts_ns: u64, iface: u16, ip: &Ip) -> Alert {
    let (icmp, trigger) = match ip.transport {
        Transport::Icmp { ty, code, .. } | Transport::Icmpv6 { ty, code, .. } => (
            Some((ty, code)),
            Some(FlowTuple::icmp(
                ip.src.ip(),
                ip.dst.ip(),
                ip.proto,
                ty,
                code,
            )),
        ),
        _ if has_ports(ip.proto) => (
            None,
            ip.transport
                .ports()
                .map(|p| FlowTuple::new(ip.src.ip(), ip.dst.ip(), ip.proto, Some(p))),
        ),
        _ => (
            None,
            Some(FlowTuple::new(ip.src.ip(), ip.dst.ip(), ip.proto, None)),
        ),
    };
    Alert {
        ts_ns,
        iface,
        src: Some(ip.src.ip()),
        dst: Some(ip.dst.ip()),
        proto: Some(ip.proto),
        icmp,
        trigger,
        count: 1,
        ..Alert::default()
    }
}

/// Protocols whose flows have ports (a Community ID without them would match no peer's).
fn has_ports(p: u8) -> bool {
    matches!(p, proto::TCP | proto::UDP | proto::SCTP)
}

/// Where a family's alerts go: through suppression to the shard's outlet.
pub struct Out<'a> {
    pub(super) suppressor: &'a mut Suppressor,
    pub(super) suppress_ms: u64,
    pub(super) emit: &'a mut dyn FnMut(Alert),
}

impl Out<'_> {
    /// Sends a record that is never a repeat (an incident's closing record), counted as an
    /// alert.
    pub fn report(&mut self, alert: Alert) {
        self.suppressor.alerts += 1;
        (self.emit)(alert);
    }

    /// Sends `alert` unless it repeats one sent within the suppression window (then counted,
    /// and reported with the next one that goes out).
    pub fn send(&mut self, alert: Alert) {
        if let Some(a) = self.suppressor.pass(alert, self.suppress_ms) {
            (self.emit)(a);
        }
    }

    /// Sends the alert `build` makes, of `detector` from `src` to `dst` at `ts_ns`, as
    /// [`Out::send`] would; a repeat within the suppression window is counted without being
    /// built. For detectors that can fire on every packet of a stream (a storm of them then
    /// costs a lookup a packet, not an alert record).
    #[cold]
    #[inline(never)]
    pub fn send_with(
        &mut self,
        detector: Detector,
        (src, dst): (Option<Addr>, Option<Addr>),
        ts_ns: u64,
        build: impl FnOnce() -> Alert,
    ) {
        let key = super::suppress::key(detector, src.map(Addr::key), dst.map(Addr::key));
        if self.suppressor.held(key, ts_ns, self.suppress_ms) {
            return;
        }
        let alert = build();
        debug_assert_eq!((key, alert.ts_ns), (super::suppress::key_of(&alert), ts_ns));
        self.send(alert);
    }
}

/// Is `a` a destination that scans, sweeps and floods ignore (link-layer chatter)?
#[inline]
pub fn chatter_destination(a: Addr) -> bool {
    match a.to_ipv4() {
        Some(v4) => {
            v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified() || v4.octets()[3] == 255
        }
        None => a.is_multicast() || a.is_unspecified(),
    }
}

/// A link-local address (169.254/16, fe80::/10).
#[inline]
pub fn link_local(a: Addr) -> bool {
    match a.ip() {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

/// Runs `f` with an outlet that collects what it sends (suppression as a shard has it, 60 s);
/// returns the alerts.
#[cfg(test)]
pub(crate) fn collecting(f: impl FnOnce(&mut Out<'_>)) -> Vec<Alert> {
    let mut suppressor = Suppressor::new(64, SeededState::random());
    let mut alerts = Vec::new();
    let mut emit = |a| alerts.push(a);
    f(&mut Out {
        suppressor: &mut suppressor,
        suppress_ms: 60_000,
        emit: &mut emit,
    });
    alerts
}

/// Runs `frames` (timestamp, Ethernet frame) through one family, suppression included; the
/// alerts that went out. For the families' own unit tests.
#[cfg(test)]
pub(crate) fn run<F: Family>(
    family: &mut F,
    settings: &F::Settings,
    frames: &[(u64, Vec<u8>)],
) -> Vec<Alert> {
    let mut suppressor = Suppressor::new(64, SeededState::random());
    let mut alerts = Vec::new();
    let mut emit = |a| alerts.push(a);
    for (ts, f) in frames {
        let p = crate::decode::decode_ethernet(f, None).expect("a valid frame");
        let mut out = Out {
            suppressor: &mut suppressor,
            suppress_ms: 60_000,
            emit: &mut emit,
        };
        family.observe(&Seen::new(*ts, 0, false, &p), settings, &mut out);
    }
    alerts
}

/// Runs failed attempts through one family, suppression included; the alerts that went out.
#[cfg(test)]
pub(crate) fn run_failures<F: Family>(
    family: &mut F,
    settings: &F::Settings,
    failures: &[Attempt],
) -> Vec<Alert> {
    let mut suppressor = Suppressor::new(64, SeededState::random());
    let mut alerts = Vec::new();
    let mut emit = |a| alerts.push(a);
    for f in failures {
        let mut out = Out {
            suppressor: &mut suppressor,
            suppress_ms: 60_000,
            emit: &mut emit,
        };
        family.failure(f, settings, &mut out);
    }
    alerts
}

/// Runs attempts (failed and answered) through one family as a shard does, moving its clock to
/// each attempt's time, then to `end` (`u64::MAX`: the end of a capture); the alerts and
/// records that went out.
#[cfg(test)]
pub(crate) fn run_attempts<F: Family>(
    family: &mut F,
    settings: &F::Settings,
    attempts: &[Attempt],
    end: u64,
) -> Vec<Alert> {
    let mut suppressor = Suppressor::new(64, SeededState::random());
    let mut alerts = Vec::new();
    let mut emit = |a| alerts.push(a);
    let mut out = Out {
        suppressor: &mut suppressor,
        suppress_ms: 60_000,
        emit: &mut emit,
    };
    for a in attempts {
        if a.outcome == crate::flow::Outcome::Answered {
            family.answered(a, settings, &mut out);
        } else {
            family.failure(a, settings, &mut out);
        }
        family.tick(a.ts_ns, settings, &mut out);
    }
    // Enough ticks for the clock hand to visit every slot.
    for _ in 0..64 {
        family.tick(end, settings, &mut out);
    }
    alerts
}
