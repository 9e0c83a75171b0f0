//! Host discovery on the local link: `arp-sweep` and `nd-sweep`. On Ethernet a sweep of the local
//! subnet is ARP on the wire (`nmap -sn`, `arp-scan --localnet`, `netdiscover`), and for IPv6
//! neighbour solicitations (`nmap -6 -sn`): one sender asking for many addresses that nobody
//! holds. What counts is a request left unanswered (the flow table's failed attempt): a router
//! resolving its neighbours gets its answers and stays silent. Keyed on the asking address; the
//! alert names the asking MAC, since the address may be forged.

use serde::Deserialize;
use toml::Spanned;

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::record::{Alert, Detail};
use super::table::{SeededState, Table};
use super::window::{CountSettings, CountWindow, RawCount};
use super::{addr_key, AddrKey, Detector};
use crate::alert::text::{addr, mac, secs};
use crate::decode::{Ip, Net, Transport};
use crate::flow::{Attempt, Probe};

/// `arp-sweep`'s catalogue entry.
pub const ARP_SWEEP: Entry = Entry {
    name: "arp-sweep",
    signature_id: 1_000_010,
    category: "Attempted Information Leak",
    severity: 2,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b50a",
    describe: |a, iface| {
        let from = match a.detail {
            Detail::Mac(m) => format!(" ({})", mac(m)),
            _ => String::new(),
        };
        format!(
            "arp-sweep: {}{from} asked on {iface} for {} addresses nobody answered for in {}",
            addr(a.src),
            a.count,
            secs(a.window_ms)
        )
    },
};

/// `nd-sweep`'s catalogue entry.
pub const ND_SWEEP: Entry = Entry {
    name: "nd-sweep",
    signature_id: 1_000_011,
    category: "Attempted Information Leak",
    severity: 2,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b50b",
    describe: |a, iface| {
        let from = match a.detail {
            Detail::Mac(m) | Detail::MacKind(m, _) => format!(" ({})", mac(m)),
            _ => String::new(),
        };
        if let Detail::MacKind(_, kind) = a.detail {
            return format!(
                "nd-sweep: {}{from} asked every node on {iface} to answer at once ({kind} with an \
                 option every node must answer, as thc-ipv6 alive6 sends)",
                addr(a.src)
            );
        }
        format!(
            "nd-sweep: {}{from} asked on {iface} for {} IPv6 neighbours nobody answered for in {}",
            addr(a.src),
            a.count,
            secs(a.window_ms)
        )
    },
};

/// `[detect.arp-sweep]` and `[detect.nd-sweep]`: `hosts` unanswered addresses within
/// `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// ARP.
    pub arp: CountSettings,
    /// Neighbour discovery.
    pub nd: CountSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            arp: CountSettings::per_minute(20),
            nd: CountSettings::per_minute(20),
        }
    }
}

/// `[detect.arp-sweep]` or `[detect.nd-sweep]` as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArpSweep {
    enabled: Option<bool>,
    hosts: Option<Spanned<i64>>,
    window_seconds: Option<Spanned<i64>>,
}

/// One asking address: the addresses it asked for in vain, and the MAC it asked from.
#[derive(Debug, Clone, Copy, Default)]
struct Asker {
    window: CountWindow<u32>,
    mac: [u8; 6],
}

/// Per asking address, the addresses asked for in vain.
#[derive(Debug)]
pub struct LinkSweeps {
    table: Table<AddrKey, Asker>,
}

impl Family for LinkSweeps {
    type Settings = Settings;
    type Raw = (Option<RawArpSweep>, Option<RawArpSweep>);
    const KEY: Key = Key::Source;

    /// ARP, neighbour solicitations and packets forcing an all-nodes answer.
    #[inline]
    fn wants(packet: &crate::decode::Packet, _s: &Settings) -> bool {
        match &packet.net {
            Net::Arp(_) => true,
            Net::Ip(ip) => {
                ip.forcing_option || matches!(ip.transport, Transport::Icmpv6 { ty: 135, .. })
            }
            Net::Other(_) => false,
        }
    }

    fn new(capacity: usize, hasher: SeededState) -> Self {
        LinkSweeps {
            table: Table::new(capacity, hasher),
        }
    }

    /// Remembers which MAC asks for each address (requests are rare: off the common path).
    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        let asker = match &seen.packet.net {
            Net::Arp(arp)
                if s.arp.enabled && arp.operation == 1 && !arp.sender_ip.is_unspecified() =>
            {
                crate::decode::Addr::v4(arp.sender_ip.octets())
            }
            Net::Ip(ip)
                if s.nd.enabled
                    && matches!(ip.transport, Transport::Icmpv6 { ty: 135, .. })
                    && !ip.src.is_unspecified() =>
            {
                ip.src
            }
            Net::Ip(ip) if ip.forcing_option && s.nd.enabled => {
                return all_nodes_probe(seen, ip, out);
            }
            _ => return,
        };
        self.table.entry(asker.key(), seen.ts_ns).mac = seen.packet.src_mac;
    }

    fn failure(&mut self, f: &Attempt, s: &Settings, out: &mut Out<'_>) {
        let (detector, settings, item) = match (f.probe, f.target) {
            (Probe::Arp, std::net::IpAddr::V4(t)) => (Detector::ArpSweep, &s.arp, u32::from(t)),
            // The solicited-node group: the low 24 bits of the address asked for.
            (Probe::Nd, std::net::IpAddr::V6(g)) => {
                (Detector::NdSweep, &s.nd, u128::from(g) as u32)
            }
            _ => return,
        };
        if !settings.enabled {
            return;
        }
        let ts = f.ts_ns;
        let asker = self.table.entry(addr_key(f.initiator), ts);
        if let Some(c) = asker.window.count(item, ts, settings) {
            out.send(Alert {
                ts_ns: ts,
                iface: f.iface,
                detector,
                src: Some(f.initiator),
                count: c.count,
                window_ms: c.window_ms,
                detail: Detail::Mac(asker.mac),
                ..Alert::default()
            });
        }
    }

    fn evictions(&self) -> u64 {
        self.table.evictions()
    }

    fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    fn configure(s: &mut Settings, (arp, nd): Self::Raw) -> Result<(), SpanError> {
        let count = |r: RawArpSweep| RawCount {
            enabled: r.enabled,
            threshold: r.hosts,
            window_seconds: r.window_seconds,
        };
        s.arp
            .configure("detect.arp-sweep", "hosts", arp.map(count))?;
        s.nd.configure("detect.nd-sweep", "hosts", nd.map(count))
    }

    fn toml(s: &Settings) -> String {
        s.arp.toml("arp-sweep", "hosts") + &s.nd.toml("nd-sweep", "hosts")
    }
}

/// A packet to a multicast group with an option every node must answer (thc-ipv6 alive6 sends
/// its echo request to all nodes so): IPv6 host discovery in one packet, however many answer.
#[cold]
fn all_nodes_probe(seen: &Seen<'_>, ip: &Ip, out: &mut Out<'_>) {
    if !ip.dst.is_multicast() || ip.src.is_unspecified() {
        return;
    }
    let what = match ip.transport {
        Transport::Icmpv6 { ty: 128, .. } => "multicast echo",
        _ => "multicast probe",
    };
    out.send(Alert {
        detector: Detector::NdSweep,
        detail: Detail::MacKind(seen.packet.src_mac, what),
        ..seen.base(ip)
    });
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::detect::family::run_failures;

    fn asked(ts: u64, target: u32) -> Attempt {
        Attempt {
            ts_ns: ts,
            iface: 0,
            initiator: IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2)),
            target: IpAddr::V4(Ipv4Addr::from(0x0a09_0000 + target)),
            proto: crate::flow::ARP,
            sport: 0,
            dport: 0,
            probe: Probe::Arp,
            outcome: crate::flow::Outcome::Unanswered,
            attempt_ns: 0,
            mac: [2, 0, 0, 0, 0, 1],
        }
    }

    #[test]
    fn twenty_unanswered_addresses_are_a_sweep_once() {
        let mut sweep = LinkSweeps::new(64, SeededState::random());
        let failures: Vec<_> = (1..=200).map(|t| asked(1_000 + u64::from(t), t)).collect();
        let alerts = run_failures(&mut sweep, &Settings::default(), &failures);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(
            (alerts[0].detector, alerts[0].count),
            (Detector::ArpSweep, 20)
        );
        assert!(alerts[0].dst.is_none() && alerts[0].proto.is_none());
        let off = Settings {
            arp: CountSettings {
                enabled: false,
                ..CountSettings::per_minute(20)
            },
            ..Settings::default()
        };
        assert!(run_failures(&mut sweep, &off, &failures).is_empty());
    }
}
