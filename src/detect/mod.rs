//! Detect: the detector families, their bounded state, suppression of repeats.
//!
//! A family is one file: its state tables, its settings and configuration tables, whether it
//! keys on the packet's source or its destination, its detectors' catalogue entries and its unit
//! tests. Adding one means adding its file and a line in the [`registry!`] below, which makes the
//! [`Detector`] list, the [`Settings`], the `[detect.*]` tables and a [`Shard`]'s state from it.
//!
//! A [`Shard`] owns the state for the addresses that hash to it (see `pipeline`): source-keyed
//! families run in the shard of the packet's source, destination-keyed ones in the shard of its
//! destination, so every family sees every relevant packet however fanout spread the flows.
//! Clock: the packet timestamps, so replay and live capture behave the same.
//!
//! Never: allocate after construction (every table is a fixed-size [`table::Table`]), block, or
//! lose an alert silently (suppressed repeats are counted and reported with the next alert).

pub mod arp_spoof;
pub mod arp_sweep;
pub mod blocklist;
pub mod brute;
pub mod coordinated;
pub mod family;
pub mod flood;
pub mod fragments;
pub mod martian;
pub mod prefix;
pub mod record;
pub mod router;
pub mod scan;
pub mod suppress;
pub mod table;
pub mod tcp_flags;
pub mod toggle;
pub mod window;

use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::decode::{Addr, Net, Packet};
use crate::flow::{Attempt, Outcome};
pub use family::{Entry, Family, Key, Out, Seen, SpanError};
use prefix::PrefixSet;
pub use record::{Action, Alert, Detail, Summary};
use suppress::Suppressor;
use table::SeededState;
pub use window::{CountSettings, MAX_DISTINCT};

/// The one list of detector families, in signature order. Each line: the family's field and
/// type, then per detector its variant, its configuration table (field, name, raw type) and
/// its catalogue entry.
macro_rules! registry {
    ($(
        $field:ident: $family:ty {
            $($det:ident: $table:ident = $tname:literal ($raw:ty) => $entry:expr),+ $(,)?
        }
    ),+ $(,)?) => {
        /// The detectors.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Detector {
            $($(
                #[doc = concat!("`", $tname, "`.")]
                $det,
            )+)+
        }

        impl Detector {
            /// Every detector, in signature order.
            pub const ALL: &'static [Detector] = &[$($(Detector::$det),+),+];

            /// Its catalogue entry.
            pub fn entry(self) -> &'static Entry {
                match self {
                    $($(Detector::$det => &$entry,)+)+
                }
            }
        }

        /// Everything the detectors are configured with, live (a reload replaces it).
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Settings {
            $(
                #[doc = concat!("`", stringify!($field), "`: ", $($tname, " "),+)]
                pub $field: <$family as Family>::Settings,
            )+
            /// Addresses never alerted on, as source or target.
            pub allowlist: PrefixSet,
            /// Repeats of an alert within this many ms are counted, not sent.
            pub suppress_ms: u64,
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings {
                    $($field: Default::default(),)+
                    allowlist: PrefixSet::default(),
                    suppress_ms: 60_000,
                }
            }
        }

        /// `[detect]` as read from the file.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawDetect {
            /// `table_capacity`.
            pub table_capacity: Option<Spanned<i64>>,
            /// `flow_capacity`.
            pub flow_capacity: Option<Spanned<i64>>,
            $($(
                #[serde(rename = $tname)]
                $table: Option<$raw>,
            )+)+
        }

        impl Settings {
            /// Takes `[detect.*]` into these settings, family by family.
            pub fn configure(&mut self, raw: RawDetect) -> Result<(), SpanError> {
                $(<$family as Family>::configure(&mut self.$field, ($(raw.$table,)+))?;)+
                Ok(())
            }

            /// `[detect.*]` as TOML.
            pub fn toml(&self) -> String {
                let mut out = String::new();
                $(out.push_str(&<$family as Family>::toml(&self.$field));)+
                out
            }
        }

        /// A shard's families.
        #[derive(Debug)]
        struct Families {
            $($field: $family,)+
        }

        impl Families {
            fn new(capacity: usize, hasher: SeededState) -> Self {
                Families {
                    $($field: <$family as Family>::new(capacity, hasher),)+
                }
            }

            #[inline]
            fn observe(&mut self, seen: &Seen<'_>, roles: Roles, s: &Settings, out: &mut Out<'_>) {
                if roles.src {
                    $(
                        if <$family as Family>::KEY == Key::Source {
                            self.$field.observe(seen, &s.$field, out);
                        }
                    )+
                }
                if roles.dst {
                    $(
                        if <$family as Family>::KEY == Key::Destination {
                            self.$field.observe(seen, &s.$field, out);
                        }
                    )+
                }
            }

            /// A failed attempt: the source-keyed families in the initiator's shard, the
            /// destination-keyed ones in the target's.
            fn failure(&mut self, f: &Attempt, roles: Roles, s: &Settings, out: &mut Out<'_>) {
                $(
                    let go = match <$family as Family>::KEY {
                        Key::Source => roles.src,
                        Key::Destination => roles.dst,
                    };
                    if go {
                        self.$field.failure(f, &s.$field, out);
                    }
                )+
            }

            /// An answered attempt: the source-keyed families in the initiator's shard.
            fn answered(&mut self, a: &Attempt, s: &Settings, out: &mut Out<'_>) {
                $(
                    if <$family as Family>::KEY == Key::Source {
                        self.$field.answered(a, &s.$field, out);
                    }
                )+
            }

            fn tick(&mut self, now_ns: u64, s: &Settings, out: &mut Out<'_>) {
                $(self.$field.tick(now_ns, &s.$field, out);)+
            }

            /// The roles a shard must play for `packet` (does a source-keyed family want it,
            /// does a destination-keyed one?), and whether only families whose packets are
            /// tallied ([`Family::TALLIED`]) want it at its destination's shard.
            #[inline]
            fn wanted_tallied(packet: &Packet, s: &Settings) -> (Roles, bool) {
                let src = false $(|| (<$family as Family>::KEY == Key::Source
                    && <$family as Family>::wants(packet, &s.$field)))+;
                let untallied = false $(|| (<$family as Family>::KEY == Key::Destination
                    && !<$family as Family>::TALLIED
                    && <$family as Family>::wants(packet, &s.$field)))+;
                let tallied = false $(|| (<$family as Family>::KEY == Key::Destination
                    && <$family as Family>::TALLIED
                    && <$family as Family>::wants(packet, &s.$field)))+;
                (
                    Roles {
                        src,
                        dst: untallied || tallied,
                    },
                    tallied && !untallied,
                )
            }

            fn evictions(&self) -> u64 {
                0 $(+ self.$field.evictions())+
            }

            fn memory_bytes(&self) -> usize {
                0 $(+ self.$field.memory_bytes())+
            }
        }
    };
}

registry! {
    scans: scan::Scans {
        Portscan: portscan = "portscan" (scan::RawPortscan) => scan::PORTSCAN,
        Portsweep: portsweep = "portsweep" (scan::RawPortsweep) => scan::PORTSWEEP,
        ScanSummary: scan_summary = "scan-summary" (scan::RawSummary) => scan::SCAN_SUMMARY,
    },
    tcp_flags: tcp_flags::TcpFlags {
        TcpFlags: tcp_flags = "tcp-flags" (toggle::RawToggle) => tcp_flags::TCP_FLAGS,
    },
    floods: flood::Floods {
        SynFlood: syn_flood = "syn-flood" (flood::RawFlood) => flood::SYN_FLOOD,
        UdpFlood: udp_flood = "udp-flood" (flood::RawFlood) => flood::UDP_FLOOD,
        IcmpFlood: icmp_flood = "icmp-flood" (flood::RawFlood) => flood::ICMP_FLOOD,
        AckFlood: ack_flood = "ack-flood" (flood::RawFlood) => flood::ACK_FLOOD,
        RstFlood: rst_flood = "rst-flood" (flood::RawFlood) => flood::RST_FLOOD,
        Reflection: reflection = "reflection" (flood::RawFlood) => flood::REFLECTION,
        FragFlood: frag_flood = "frag-flood" (flood::RawFlood) => flood::FRAG_FLOOD,
    },
    arp_spoof: arp_spoof::ArpSpoof {
        ArpSpoof: arp_spoof = "arp-spoof" (arp_spoof::RawArp) => arp_spoof::ARP_SPOOF,
        NdSpoof: nd_spoof = "nd-spoof" (toggle::RawToggle) => arp_spoof::ND_SPOOF,
        NewStation: new_station = "new-station" (toggle::RawToggle) => arp_spoof::NEW_STATION,
    },
    blocklist: blocklist::Blocklist {
        Blocklist: blocklist = "blocklist" (toggle::RawToggle) => blocklist::BLOCKLIST,
    },
    martian: martian::Martian {
        Martian: martian = "martian" (toggle::RawToggle) => martian::MARTIAN,
    },
    link_sweeps: arp_sweep::LinkSweeps {
        ArpSweep: arp_sweep = "arp-sweep" (arp_sweep::RawArpSweep) => arp_sweep::ARP_SWEEP,
        NdSweep: nd_sweep = "nd-sweep" (arp_sweep::RawArpSweep) => arp_sweep::ND_SWEEP,
    },
    fragments: fragments::Fragments {
        FragOverlap: frag_overlap = "frag-overlap" (toggle::RawToggle) => fragments::FRAG_OVERLAP,
        TinyFragment: tiny_fragment = "tiny-fragment" (toggle::RawToggle) => fragments::TINY_FRAGMENT,
    },
    brute: brute::Brute {
        BruteForce: brute_force = "brute-force" (brute::RawBrute) => brute::BRUTE_FORCE,
    },
    routers: router::Routers {
        RogueRa: rogue_ra = "rogue-ra" (router::RawRouter) => router::ROGUE_RA,
    },
    coordinated: coordinated::Coordinated {
        DistributedScan: distributed_scan = "distributed-scan" (coordinated::RawDistributed) => coordinated::DISTRIBUTED_SCAN,
        DecoyScan: decoy_scan = "decoy-scan" (coordinated::RawDecoy) => coordinated::DECOY_SCAN,
    },
}

impl Default for Detector {
    fn default() -> Self {
        Detector::ALL[0]
    }
}

impl Detector {
    /// The contract's name (`alert.context.scram.detector`, `SCRAM_DETECTOR`, config table).
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// Signature id.
    pub fn signature_id(self) -> u32 {
        self.entry().signature_id
    }

    /// Suricata-style classification.
    pub fn category(self) -> &'static str {
        self.entry().category
    }

    /// 1 high, 2 medium, 3 low.
    pub fn severity(self) -> u8 {
        self.entry().severity
    }

    /// The journal MESSAGE_ID (documented in the message catalog).
    pub fn message_id(self) -> &'static str {
        self.entry().message_id
    }

    /// Looks a detector up by its contract name.
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.iter().copied().find(|d| d.name() == name)
    }
}

impl Settings {
    /// Are alerts about this packet's hosts never to be raised (allowlisted source or
    /// destination; for ARP, the claimed address)?
    #[inline]
    pub fn ignores(&self, packet: &Packet) -> bool {
        match &packet.net {
            Net::Ip(ip) => self.ignores_pair(ip.src, ip.dst),
            Net::Arp(arp) => {
                let sender = IpAddr::V4(arp.sender_ip);
                self.ignores_pair(sender, sender)
            }
            Net::Other(_) => false,
        }
    }

    /// Is either address allowlisted?
    #[inline]
    pub fn ignores_pair(&self, a: impl Into<Addr>, b: impl Into<Addr>) -> bool {
        !self.allowlist.is_empty() && (self.allowlist.contains(a) || self.allowlist.contains(b))
    }
}

/// An address as a table key (IPv4 as IPv4-mapped IPv6).
pub type AddrKey = u128;

/// The key of an address.
#[inline]
pub fn addr_key(a: IpAddr) -> AddrKey {
    Addr::from(a).key()
}

/// The address of a key (the inverse of [`addr_key`]).
pub fn key_addr(k: AddrKey) -> IpAddr {
    Addr::from_key(k).ip()
}

/// Which roles a shard plays for one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    /// Run the source-keyed families.
    pub src: bool,
    /// Run the destination-keyed families.
    pub dst: bool,
}

impl Roles {
    /// Every role: a shard of its own, or a packet whose source and destination it owns.
    pub const BOTH: Roles = Roles {
        src: true,
        dst: true,
    };

    /// The source-keyed families only.
    pub const SOURCE: Roles = Roles {
        src: true,
        dst: false,
    };

    /// The destination-keyed families only.
    pub const DESTINATION: Roles = Roles {
        src: false,
        dst: true,
    };

    /// The roles some family wants `packet` judged in under `settings` (its source's shard
    /// for a source-keyed family, its destination's for a destination-keyed one), and whether
    /// only families whose packets are tallied want it at its destination's shard
    /// ([`Family::TALLIED`], the floods).
    #[inline]
    pub fn wanted_tallied(packet: &Packet, settings: &Settings) -> (Roles, bool) {
        Families::wanted_tallied(packet, settings)
    }
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
    families: Families,
    suppressor: Suppressor,
}

impl Shard {
    /// A shard whose every table holds `capacity` entries, fixed from now on.
    pub fn new(settings: Arc<Settings>, capacity: usize, hasher: SeededState) -> Self {
        Shard {
            settings,
            families: Families::new(capacity, hasher),
            suppressor: Suppressor::new(capacity, hasher),
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
            alerts: self.suppressor.alerts,
            suppressed: self.suppressor.suppressed,
            evictions: self.families.evictions() + self.suppressor.evictions(),
        }
    }

    /// Bytes held by the state tables (fixed at construction).
    pub fn memory_bytes(&self) -> usize {
        self.families.memory_bytes() + self.suppressor.memory_bytes()
    }

    /// Runs the families of `roles` on one packet; alerts that pass suppression go to `emit`.
    #[inline]
    pub fn observe(
        &mut self,
        ts_ns: u64,
        iface: u16,
        loopback: bool,
        packet: &Packet,
        roles: Roles,
        emit: &mut impl FnMut(Alert),
    ) {
        let seen = Seen::new(ts_ns, iface, loopback, packet);
        let s = &*self.settings;
        let mut out = Out {
            suppressor: &mut self.suppressor,
            suppress_ms: s.suppress_ms,
            emit,
        };
        self.families.observe(&seen, roles, s, &mut out);
    }

    /// Runs every family on each packet of a batch in turn, in both roles (one shard: the
    /// one-worker pipeline's, which judges the batch's flows first). One call a batch: the
    /// families' state and settings stay at hand from one packet to the next.
    #[inline(never)]
    pub fn observe_batch<'a>(
        &mut self,
        seen: impl Iterator<Item = Seen<'a>>,
        emit: &mut impl FnMut(Alert),
    ) {
        let s = &*self.settings;
        let mut out = Out {
            suppressor: &mut self.suppressor,
            suppress_ms: s.suppress_ms,
            emit,
        };
        for seen in seen {
            self.families.observe(&seen, Roles::BOTH, s, &mut out);
        }
    }

    /// Merges another worker's part of a flood to a victim this shard owns.
    pub fn merge_part(&mut self, part: &flood::Part, emit: &mut impl FnMut(Alert)) {
        let s = &*self.settings;
        let mut out = Out {
            suppressor: &mut self.suppressor,
            suppress_ms: s.suppress_ms,
            emit,
        };
        self.families.floods.merge(part, &s.floods, &mut out);
    }

    /// Runs the families of `roles` on an attempt that ended: failed, or answered.
    pub fn attempt(&mut self, a: &Attempt, roles: Roles, emit: &mut impl FnMut(Alert)) {
        let s = &*self.settings;
        let mut out = Out {
            suppressor: &mut self.suppressor,
            suppress_ms: s.suppress_ms,
            emit,
        };
        if a.outcome == Outcome::Answered {
            self.families.answered(a, s, &mut out);
        } else {
            self.families.failure(a, roles, s, &mut out);
        }
    }

    /// Moves the families' clock to `now_ns` (`u64::MAX`: the end of a capture, or shutdown):
    /// incidents gone quiet are closed and reported.
    pub fn tick(&mut self, now_ns: u64, emit: &mut impl FnMut(Alert)) {
        let s = &*self.settings;
        let mut out = Out {
            suppressor: &mut self.suppressor,
            suppress_ms: s.suppress_ms,
            emit,
        };
        self.families.tick(now_ns, s, &mut out);
        self.suppressor.tick(now_ns, s.suppress_ms, emit);
    }

    /// Calls `f(detector, src, dst, held)` for every alert key with repeats held back and not
    /// yet reported (for the summary at shutdown).
    pub fn held_back(&self, f: impl FnMut(Detector, AddrKey, AddrKey, u64)) {
        self.suppressor.held_back(f);
    }
}

#[cfg(test)]
mod tests;
