//! Scans from several addresses against one host, seen where they meet: in the target's shard.
//! `distributed-scan`: several sources, each below the per-source threshold, whose failed
//! attempts together cover many ports (Snort's distributed portscan). `decoy-scan`: several
//! sources that each scan the same host at the same moment (`nmap -D`): all but one are forged,
//! so the incident names them all and none is banned. Keyed on the target.

use serde::Deserialize;
use toml::Spanned;

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::record::{Alert, Detail, MAX_SOURCES};
use super::table::{SeededState, Table};
use super::window::{CountSettings, CountWindow, RawCount};
use super::{addr_key, key_addr, AddrKey, Detector};
use crate::alert::text::{addr, mac, secs};
use crate::decode::{Net, Packet};
use crate::flow::{Attempt, Probe};

/// Sources followed per target and window.
const SOURCES: usize = 8;

fn names(a: &Alert) -> String {
    let mut text = crate::alert::sources(a).unwrap_or_default().join(", ");
    if let Detail::Sources { total, .. } = a.detail {
        let shown = crate::alert::sources(a).map_or(0, |s| s.len());
        if usize::from(total) > shown {
            text.push_str(&format!(" and {} more", usize::from(total) - shown));
        }
    }
    text
}

/// `distributed-scan`'s catalogue entry.
pub const DISTRIBUTED_SCAN: Entry = Entry {
    name: "distributed-scan",
    signature_id: 1_000_012,
    category: "Attempted Information Leak",
    severity: 2,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b50c",
    describe: |a, _| {
        format!(
            "distributed-scan: {} ports of {} probed in {} from {}, none of them over the \
             per-source threshold",
            a.count,
            addr(a.dst),
            secs(a.window_ms),
            names(a)
        )
    },
};

/// `decoy-scan`'s catalogue entry.
pub const DECOY_SCAN: Entry = Entry {
    name: "decoy-scan",
    signature_id: 1_000_013,
    category: "Attempted Information Leak",
    severity: 2,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b50d",
    describe: |a, _| {
        let verdict = match a.detail {
            Detail::Sources { mac: m, owner, .. } if m != [0; 6] => {
                let owner_named = a.detail.sources().any(|k| k == owner);
                match owner {
                    0 => format!("all sent from one MAC, {}; all but one are forged", mac(m)),
                    o if owner_named => format!(
                        "all sent from {}, the MAC of {}: {} is the scanner, the others are forged",
                        mac(m),
                        key_addr(o),
                        key_addr(o)
                    ),
                    o => format!(
                        "all sent from {}, the MAC of {} (a router: the scanner is beyond it); \
                         all but one are forged",
                        mac(m),
                        key_addr(o)
                    ),
                }
            }
            _ => "all but one are forged".into(),
        };
        format!(
            "decoy-scan: {} sources scanned {} at once in {} ({}): {verdict}",
            a.count,
            addr(a.dst),
            secs(a.window_ms),
            names(a)
        )
    },
};

/// `[detect.distributed-scan]` and `[detect.decoy-scan]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Distinct ports of one target, over all its sources (`ports`), within `window_seconds`.
    pub distributed: CountSettings,
    /// Sources that each reach the threshold against one target (`sources`) within
    /// `window_seconds`, the threshold being the portscan default of 20 ports.
    pub decoy: CountSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            distributed: CountSettings::per_minute(20),
            decoy: CountSettings {
                threshold: 2,
                window_ms: 10_000,
                ..CountSettings::per_minute(2)
            },
        }
    }
}

/// `[detect.distributed-scan]` as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDistributed {
    enabled: Option<bool>,
    ports: Option<Spanned<i64>>,
    window_seconds: Option<Spanned<i64>>,
}

/// `[detect.decoy-scan]` as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecoy {
    enabled: Option<bool>,
    sources: Option<Spanned<i64>>,
    window_seconds: Option<Spanned<i64>>,
}

/// Ports one source failed on at a target, as a 64-bit set (port modulo 64): enough to tell a
/// source scanning tens of ports from one trying a few.
#[derive(Debug, Clone, Copy, Default)]
struct Source {
    key: AddrKey,
    /// The MAC its first failed attempt came from.
    mac: [u8; 6],
    ports: u64,
    /// When its first and latest failed attempts were made, ns.
    first_ns: u64,
    last_ns: u64,
}

/// One target within the window.
#[derive(Debug, Clone, Copy, Default)]
struct Target {
    start_ns: u64,
    ports: CountWindow<u16>,
    sources: [Source; SOURCES],
    len: u8,
    /// Sources beyond those followed.
    more: u8,
    distributed: bool,
    decoy: bool,
}

/// Per target, the sources failing against it; per MAC, the address it claims in ARP.
#[derive(Debug)]
pub struct Coordinated {
    table: Table<AddrKey, Target>,
    /// Sender MAC -> sender address, from the ARP packets that reach this shard (those whose
    /// target address is one of its hosts: a scanner on the link asks for its target's MAC,
    /// or answers when the target asks for its own).
    claims: Table<u64, Claim>,
}

/// The address a MAC claimed last (by packet time: several workers hand a shard their packets
/// a block at a time, so the claim heard last may have been sent earlier).
#[derive(Debug, Clone, Copy, Default)]
struct Claim {
    owner: AddrKey,
    ts_ns: u64,
}

/// MACs whose ARP claims a shard remembers: `capacity / CLAIM_SHARE`, at least a bucket.
const CLAIM_SHARE: usize = 16;

fn mac_key(m: [u8; 6]) -> u64 {
    let mut b = [0; 8];
    b[..6].copy_from_slice(&m);
    u64::from_le_bytes(b)
}

/// Ports at which one source counts as scanning by itself (the portscan default).
const ONE_SOURCE: u32 = 20;

/// Slack between the attempts of sources scanning together.
const OVERLAP_NS: u64 = 500_000_000;

/// The one MAC every source scanning `t` sent from (zero if several), and the address that MAC
/// claims in ARP (0 if unknown).
fn one_sender(t: &Target, claims: &Table<u64, Claim>) -> ([u8; 6], AddrKey) {
    let mut macs = t.sources[..usize::from(t.len)]
        .iter()
        .filter(|x| x.ports.count_ones() >= ONE_SOURCE)
        .map(|x| x.mac);
    let first = macs.next().unwrap_or_default();
    if first == [0; 6] || !macs.all(|m| m == first) {
        return ([0; 6], 0);
    }
    (first, claims.get(&mac_key(first)).map_or(0, |c| c.owner))
}

impl Family for Coordinated {
    type Settings = Settings;
    type Raw = (Option<RawDistributed>, Option<RawDecoy>);
    const KEY: Key = Key::Destination;

    fn new(capacity: usize, hasher: SeededState) -> Self {
        Coordinated {
            table: Table::new(capacity, hasher),
            claims: Table::new(capacity / CLAIM_SHARE, hasher),
        }
    }

    /// ARP packets reach the shard of the address they ask for (or answer to).
    #[inline]
    fn wants(packet: &Packet, _s: &Settings) -> bool {
        matches!(packet.net, Net::Arp(_))
    }

    /// Learns which address each MAC claims (ARP is rare: off the common path).
    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, _out: &mut Out<'_>) {
        if let Net::Arp(arp) = &seen.packet.net {
            self.claimed(seen.ts_ns, arp, s);
        }
    }

    fn failure(&mut self, f: &Attempt, s: &Settings, out: &mut Out<'_>) {
        if matches!(f.probe, Probe::Arp | Probe::Nd | Probe::Echo)
            || !(s.distributed.enabled || s.decoy.enabled)
        {
            return;
        }
        let ts = f.ts_ns;
        let window = s.distributed.window_ms.max(s.decoy.window_ms) * 1_000_000;
        let t = self.table.entry(addr_key(f.target), ts);
        if t.start_ns == 0 || ts.saturating_sub(t.start_ns) > window {
            *t = Target {
                start_ns: ts,
                ..Default::default()
            };
        }
        let key = addr_key(f.initiator);
        let n = usize::from(t.len);
        let mut joined = false;
        let slot = match t.sources[..n].iter().position(|x| x.key == key) {
            Some(i) => i,
            None if n < SOURCES => {
                t.sources[n].key = key;
                t.sources[n].mac = f.mac;
                t.len += 1;
                joined = true;
                n
            }
            None => {
                t.more = t.more.saturating_add(1);
                return;
            }
        };
        let src = &mut t.sources[slot];
        src.ports |= 1 << (f.dport % 64);
        if src.first_ns == 0 || f.attempt_ns < src.first_ns {
            src.first_ns = f.attempt_ns;
        }
        src.last_ns = src.last_ns.max(f.attempt_ns);
        let crossed = t.ports.count(f.dport, ts, &s.distributed);
        let elapsed = ts.saturating_sub(t.start_ns) / 1_000_000;
        let scanning = t.sources[..usize::from(t.len)]
            .iter()
            .filter(|x| x.ports.count_ones() >= ONE_SOURCE)
            .count();
        // Decoys are sent with the real probes, interleaved: their attempts overlap in time,
        // where two scanners one after the other do not.
        let (mut latest_first, mut earliest_last) = (0, u64::MAX);
        for x in t.sources[..usize::from(t.len)]
            .iter()
            .filter(|x| x.ports.count_ones() >= ONE_SOURCE)
        {
            latest_first = latest_first.max(x.first_ns);
            earliest_last = earliest_last.min(x.last_ns);
        }
        let together = latest_first <= earliest_last.saturating_add(OVERLAP_NS);
        // A source whose first failure reaches this shard after the decoy scan was recognised,
        // made while its scanners were at work: with several workers, each finding the
        // unanswered probes of its own flows in its own order, a decoy's attempts can arrive
        // after the others'. The incident's record again, naming it too (the alert stage
        // merges it into the first one while that one waits).
        let latest_last = t.sources[..usize::from(t.len)]
            .iter()
            .filter(|x| x.ports.count_ones() >= ONE_SOURCE)
            .map(|x| x.last_ns)
            .max()
            .unwrap_or(0);
        let amended = t.decoy
            && joined
            && s.decoy.enabled
            && f.attempt_ns <= latest_last.saturating_add(OVERLAP_NS);
        let alert = |t: &Target, detector: Detector, count: u64, (mac, owner)| {
            let mut keys = [0u128; MAX_SOURCES];
            for (k, src) in keys.iter_mut().zip(&t.sources[..usize::from(t.len)]) {
                *k = src.key;
            }
            Alert {
                ts_ns: ts,
                iface: f.iface,
                detector,
                dst: Some(f.target),
                proto: Some(f.proto),
                count,
                window_ms: elapsed,
                detail: Detail::Sources {
                    keys,
                    total: t.len.saturating_add(t.more),
                    mac,
                    owner,
                },
                ..Alert::default()
            }
        };
        if s.decoy.enabled
            && !t.decoy
            && scanning >= s.decoy.threshold
            && together
            && elapsed <= s.decoy.window_ms
        {
            t.decoy = true;
            let sources = u64::from(t.len) + u64::from(t.more);
            let evidence = one_sender(t, &self.claims);
            out.send(alert(t, Detector::DecoyScan, sources, evidence));
        } else if amended {
            let sources = u64::from(t.len) + u64::from(t.more);
            let evidence = one_sender(t, &self.claims);
            out.report(alert(t, Detector::DecoyScan, sources, evidence));
        }
        if s.distributed.enabled && !t.distributed && scanning == 0 && t.len >= 3 {
            if let Some(c) = crossed {
                t.distributed = true;
                out.send(alert(t, Detector::DistributedScan, c.count, ([0; 6], 0)));
            }
        }
    }

    fn evictions(&self) -> u64 {
        self.table.evictions() + self.claims.evictions()
    }

    fn memory_bytes(&self) -> usize {
        self.table.memory_bytes() + self.claims.memory_bytes()
    }

    fn configure(s: &mut Settings, (distributed, decoy): Self::Raw) -> Result<(), SpanError> {
        s.distributed.configure(
            "detect.distributed-scan",
            "ports",
            distributed.map(|r| RawCount {
                enabled: r.enabled,
                threshold: r.ports,
                window_seconds: r.window_seconds,
            }),
        )?;
        if let Some(v) = decoy.as_ref().and_then(|r| r.sources.as_ref()) {
            if !(2..=SOURCES as i64).contains(v.get_ref()) {
                return Err((
                    v.span(),
                    format!(
                        "detect.decoy-scan.sources = {} is out of range (2..={SOURCES})",
                        v.get_ref()
                    ),
                ));
            }
        }
        s.decoy.configure(
            "detect.decoy-scan",
            "sources",
            decoy.map(|r| RawCount {
                enabled: r.enabled,
                threshold: r.sources,
                window_seconds: r.window_seconds,
            }),
        )
    }

    fn toml(s: &Settings) -> String {
        s.distributed.toml("distributed-scan", "ports") + &s.decoy.toml("decoy-scan", "sources")
    }
}

impl Coordinated {
    /// Remembers the address an ARP packet sent at `ts_ns` claims for its sender MAC, unless the
    /// MAC's claim remembered was sent later (a new entry's time is 0).
    #[cold]
    #[inline(never)]
    fn claimed(&mut self, ts_ns: u64, arp: &crate::decode::Arp, s: &Settings) {
        if !s.decoy.enabled || arp.sender_ip.is_unspecified() {
            return;
        }
        let owner = addr_key(std::net::IpAddr::V4(arp.sender_ip));
        let c = self.claims.entry(mac_key(arp.sender_mac), ts_ns);
        if ts_ns >= c.ts_ns {
            *c = Claim { owner, ts_ns };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::detect::family::run_failures;

    fn failed(ts: u64, source: u8, port: u16) -> Attempt {
        Attempt {
            ts_ns: ts,
            iface: 0,
            initiator: IpAddr::V4(Ipv4Addr::new(192, 0, 2, source)),
            target: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
            proto: crate::decode::proto::TCP,
            sport: 40000,
            dport: port,
            probe: Probe::Syn,
            outcome: crate::flow::Outcome::Refused,
            attempt_ns: ts,
            mac: [2, 0, 0, 0, 0, 1],
        }
    }

    #[test]
    fn few_ports_from_many_sources_are_one_distributed_scan() {
        let mut c = Coordinated::new(64, SeededState::random());
        let failures: Vec<_> = (0..5u8)
            .flat_map(|s| {
                (0..8u16).map(move |p| failed(1_000 + u64::from(p), s, u16::from(s) * 8 + p))
            })
            .collect();
        let alerts = run_failures(&mut c, &Settings::default(), &failures);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].detector, Detector::DistributedScan);
        assert_eq!(alerts[0].count, 20);
        assert!(matches!(
            alerts[0].detail,
            Detail::Sources { total: 3.., .. }
        ));
    }

    #[test]
    fn sources_scanning_at_once_are_a_decoy_scan_and_one_scanner_is_not() {
        let mut c = Coordinated::new(64, SeededState::random());
        let one: Vec<_> = (1..=60u16)
            .map(|p| failed(1_000 + u64::from(p), 7, p))
            .collect();
        assert!(run_failures(&mut c, &Settings::default(), &one).is_empty());
        let mut c = Coordinated::new(64, SeededState::random());
        let decoys: Vec<_> = (1..=60u16)
            .flat_map(|p| [7u8, 101, 102].map(|s| failed(1_000 + u64::from(p), s, p)))
            .collect();
        let alerts = run_failures(&mut c, &Settings::default(), &decoys);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(
            (alerts[0].detector, alerts[0].count),
            (Detector::DecoyScan, 3)
        );
    }

    #[test]
    fn a_decoy_whose_failures_arrive_late_is_named_in_the_incident_record_again() {
        // Two sources' failures reach the target's shard first (one worker's flows), the
        // third's after the decoy scan was recognised (another worker's).
        let first: Vec<_> = (1..=60u16)
            .flat_map(|p| [7u8, 101].map(|s| failed(1_000 + u64::from(p), s, p)))
            .collect();
        let late: Vec<_> = (1..=60u16)
            .map(|p| failed(1_000 + u64::from(p), 102, p))
            .collect();
        let mut c = Coordinated::new(64, SeededState::random());
        let alerts = run_failures(&mut c, &Settings::default(), &[&first[..], &late].concat());
        let said: Vec<_> = alerts
            .iter()
            .map(|a| (a.detector, a.count, a.detail.sources().count()))
            .collect();
        assert_eq!(
            said,
            [(Detector::DecoyScan, 2, 2), (Detector::DecoyScan, 3, 3)],
            "{alerts:?}"
        );
        // A source that starts once the scanners have stopped is another scan, not a decoy.
        let mut c = Coordinated::new(64, SeededState::random());
        let after: Vec<_> = (1..=60u16)
            .map(|p| failed(2_000_000_000 + u64::from(p), 102, p))
            .collect();
        let alerts = run_failures(&mut c, &Settings::default(), &[first, after].concat());
        assert_eq!(alerts.len(), 1, "{alerts:?}");
    }

    #[test]
    fn a_decoy_scan_from_one_mac_names_the_address_that_mac_claims() {
        let scan = |macs: [[u8; 6]; 3]| -> Vec<Attempt> {
            (1..=60u16)
                .flat_map(|p| {
                    [7u8, 101, 102]
                        .into_iter()
                        .zip(macs)
                        .map(move |(s, mac)| Attempt {
                            mac,
                            ..failed(1_000 + u64::from(p), s, p)
                        })
                })
                .collect()
        };
        let scanner = [2, 0, 0, 0, 0, 7];
        // The scanner asked for its target's MAC first: ARP binds its MAC to 192.0.2.7.
        let mut c = Coordinated::new(64, SeededState::random());
        let ask = crate::craft::arp_frame(
            1,
            scanner,
            Ipv4Addr::new(192, 0, 2, 7),
            [0; 6],
            Ipv4Addr::new(198, 51, 100, 2),
        );
        // A claim of another address sent before it and heard after it (another worker's
        // block) does not replace it: the address claimed last by packet time counts.
        let earlier = crate::craft::arp_frame(
            1,
            scanner,
            Ipv4Addr::new(192, 0, 2, 9),
            [0; 6],
            Ipv4Addr::new(198, 51, 100, 2),
        );
        let _ =
            crate::detect::family::run(&mut c, &Settings::default(), &[(500, ask), (400, earlier)]);
        let alerts = run_failures(&mut c, &Settings::default(), &scan([scanner; 3]));
        let Detail::Sources { mac, owner, .. } = alerts[0].detail else {
            panic!("{alerts:?}")
        };
        assert_eq!((mac, owner), (scanner, addr_key(ip(7))));
        assert!((DECOY_SCAN.describe)(&alerts[0], "eth0")
            .ends_with("192.0.2.7 is the scanner, the others are forged"));
        // Frames from several MACs prove nothing.
        let mut c = Coordinated::new(64, SeededState::random());
        let alerts = run_failures(
            &mut c,
            &Settings::default(),
            &scan([scanner, [2, 0, 0, 0, 0, 8], scanner]),
        );
        let Detail::Sources { mac, owner, .. } = alerts[0].detail else {
            panic!("{alerts:?}")
        };
        assert_eq!((mac, owner), ([0; 6], 0));
        assert!((DECOY_SCAN.describe)(&alerts[0], "eth0").ends_with("all but one are forged"));
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }
}
