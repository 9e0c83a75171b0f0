//! Scans: one source probing many ports (or IP protocols) of one host (`portscan`) or one port on
//! many hosts (`portsweep`, ICMP echo included). What counts is a failed attempt, as the flow
//! table reports it (`crate::flow`): refused with a RST, or unanswered; an answered conversation
//! is never a probe, however many a poller or a browser opens. Keyed on the initiator.

use serde::Deserialize;
use toml::Spanned;

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::record::{Alert, Detail};
use super::table::{SeededState, Table};
use super::window::{CountSettings, CountWindow, RawCount};
use super::{addr_key, AddrKey, Detector};
use crate::alert::community_id::FlowTuple;
use crate::alert::text::{addr, proto_name, secs};
use crate::decode::proto;
use crate::flow::{Failure, Probe};

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

/// `[detect.portscan]` and `[detect.portsweep]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// portscan.
    pub portscan: CountSettings,
    /// portsweep.
    pub portsweep: CountSettings,
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
        }
    }
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

/// Scan state: per (source, target) the ports probed; per (source, port, protocol) the hosts.
#[derive(Debug)]
pub struct Scans {
    scans: Table<(AddrKey, AddrKey), CountWindow<u16>>,
    sweeps: Table<(AddrKey, u16, u8), CountWindow<u32>>,
    hasher: SeededState,
}

impl Family for Scans {
    type Settings = Settings;
    type Raw = (Option<RawPortscan>, Option<RawPortsweep>);
    const KEY: Key = Key::Source;

    fn new(capacity: usize, hasher: SeededState) -> Self {
        Scans {
            scans: Table::new(capacity, hasher),
            sweeps: Table::new(capacity, hasher),
            hasher,
        }
    }

    /// Packets themselves are not counted: their flows are (see `failure`).
    #[inline]
    fn observe(&mut self, _seen: &Seen<'_>, _s: &Settings, _out: &mut Out<'_>) {}

    fn failure(&mut self, f: &Failure, s: &Settings, out: &mut Out<'_>) {
        // Host discovery on the link is the link sweeps'.
        if !matches!(f.probe, Probe::Arp | Probe::Nd) {
            self.attempt(f, s, out);
        }
    }

    fn evictions(&self) -> u64 {
        self.scans.evictions() + self.sweeps.evictions()
    }

    fn memory_bytes(&self) -> usize {
        self.scans.memory_bytes() + self.sweeps.memory_bytes()
    }

    fn configure(s: &mut Settings, (scan, sweep): Self::Raw) -> Result<(), SpanError> {
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
        s.portscan.toml("portscan", "ports") + &s.portsweep.toml("portsweep", "hosts")
    }
}

impl Scans {
    /// A failed attempt for the scan and sweep counters.
    fn attempt(&mut self, f: &Failure, s: &Settings, out: &mut Out<'_>) {
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
            if let Some(c) = self
                .scans
                .entry((src, dst), ts)
                .count(f.dport, ts, &s.portscan)
            {
                out.send(Alert {
                    detector: Detector::Portscan,
                    count: c.count,
                    window_ms: c.window_ms,
                    ..base()
                });
            }
        }
        if s.portsweep.enabled {
            let h = std::hash::BuildHasher::hash_one(&self.hasher, dst) as u32;
            if let Some(c) =
                self.sweeps
                    .entry((src, f.dport, f.proto), ts)
                    .count(h, ts, &s.portsweep)
            {
                out.send(Alert {
                    detector: Detector::Portsweep,
                    dst: None,
                    dport: (!echo && f.probe != Probe::IpProto).then_some(f.dport),
                    count: c.count,
                    window_ms: c.window_ms,
                    ..base()
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::detect::family::run_failures;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn refused(ts: u64, a: IpAddr, v: IpAddr, port: u16, probe: Probe) -> Failure {
        Failure {
            ts_ns: ts,
            iface: 0,
            initiator: a,
            target: v,
            proto: proto::TCP,
            sport: 40000,
            dport: port,
            probe,
            refused: true,
            attempt_ns: 0,
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
        let sweep = |t0: u64, n: u32| -> Vec<Failure> {
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
}
