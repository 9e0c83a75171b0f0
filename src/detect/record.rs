//! The alert record: `Copy` and fixed-size, so it crosses the alert queue without allocation.

use std::net::IpAddr;

use super::Detector;
use crate::alert::community_id::FlowTuple;
use crate::flow::Probe;

/// Extra facts an alert carries, for its sentence and `alert.context.scram`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// Nothing more.
    #[default]
    None,
    /// Which variety of the detector's finding (`kind`: a martian's `land`, a blocklist hit's
    /// `source`).
    Kind(&'static str),
    /// An illegal TCP flag combination by name (`flags`), and the raw flags.
    Flags(&'static str, u8),
    /// The sender's MAC (`mac`): the machine behind an address that may be forged.
    Mac([u8; 6]),
    /// The sender's MAC (`mac`) and which variety of the finding (`kind`).
    MacKind([u8; 6], &'static str),
    /// A link-layer claim: the claimant's MAC (`mac`) and the one the address was bound to
    /// (`previous_mac`).
    Macs {
        /// The claimant.
        mac: [u8; 6],
        /// The earlier binding.
        previous_mac: [u8; 6],
        /// The claimant held the address before (`kind` "flip-flop", as arpwatch says): the
        /// address goes back and forth between two machines.
        flip_flop: bool,
    },
    /// The sources of a scan from several addresses (`sources`), the first [`MAX_SOURCES`] of
    /// them as table keys (0 for none), and how many there were in all.
    Sources {
        /// The first sources seen.
        keys: [u128; MAX_SOURCES],
        /// How many sources in all.
        total: u8,
        /// The one MAC every source's frames came from (`mac`), zero if they came from several.
        mac: [u8; 6],
        /// The address that MAC claims in ARP (`mac_owner`), 0 if none was seen: one of the
        /// sources (the real scanner) or another address (a router the scan came through).
        owner: u128,
    },
    /// The closing record of a scan incident (`scan-summary`).
    Summary(Summary),
    /// A router advertisement from a router that is not the link's: its MAC (`mac`), and the
    /// link's router (`router`, `router_mac`), configured or learned as the first seen
    /// (`kind`).
    Router {
        /// The advertiser's MAC.
        mac: [u8; 6],
        /// The link's router (0 when only MACs are configured).
        router: u128,
        /// Its MAC (zero when unknown).
        router_mac: [u8; 6],
        /// Learned as the first seen rather than configured.
        learned: bool,
    },
    /// A storm's record: a target's alerts of one detector from more sources than suppression
    /// lets through, held (`suppressed`), and from how many sources (`sources_held`).
    Storm {
        /// Distinct sources of the alerts held.
        sources: u64,
    },
}

/// What a scan incident came to, reported when it goes quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// The scan it closes: portscan (ports of one host) or portsweep (hosts on one port).
    pub scan: Option<Detector>,
    /// The scan types seen (bit `1 << probe` for each [`Probe`]).
    pub kinds: u16,
    /// Attempts in all, failed and answered.
    pub attempts: u32,
    /// What answered (what the scanner learned): ports of a portscan, host keys of a
    /// portsweep; the first [`MAX_ANSWERED`], 0 for none.
    pub answered: [u128; MAX_ANSWERED],
    /// How many distinct ports or hosts answered in all.
    pub answered_total: u32,
}

/// Answers a scan's closing record lists.
pub const MAX_ANSWERED: usize = 8;

impl Summary {
    /// The scan types, as alerts name them (`SYN`, `SYN+UDP`).
    pub fn kinds(&self) -> String {
        Probe::ALL
            .iter()
            .filter(|p| self.kinds & (1 << **p as u16) != 0)
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The answers listed (ports, or host keys).
    pub fn answered(&self) -> impl Iterator<Item = u128> + '_ {
        let n = (self.answered_total as usize).min(MAX_ANSWERED);
        self.answered[..n].iter().copied()
    }
}

/// Sources an alert about a scan from several addresses names.
pub const MAX_SOURCES: usize = 8;

impl Detail {
    /// The sources a scan from several addresses names (none for other details).
    pub fn sources(&self) -> impl Iterator<Item = u128> + '_ {
        let keys: &[u128] = match self {
            Detail::Sources { keys, .. } => keys,
            _ => &[],
        };
        keys.iter().copied().filter(|k| *k != 0)
    }
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

/// One alert.
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
    /// IP bytes of the packets counted (floods).
    pub bytes: u64,
    /// Over how long, in ms.
    pub window_ms: u64,
    /// Repeats of this alert held back since it was last sent.
    pub suppressed: u64,
    /// What active response did.
    pub action: Action,
    /// Detector-specific facts.
    pub detail: Detail,
}
