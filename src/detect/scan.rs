//! Scans: one source probing many ports of one host (`portscan`) or one port on many hosts
//! (`portsweep`, ICMP echo included). A probe is a TCP SYN, a UDP datagram that is not an answer
//! from a service port, or an echo request. Keyed on the source.

use serde::Deserialize;
use toml::Spanned;

use super::family::{chatter_destination, link_local, Entry, Family, Key, Out, Seen, SpanError};
use super::record::Alert;
use super::table::{SeededState, Table};
use super::window::{CountSettings, CountWindow, RawCount};
use super::{addr_key, AddrKey, Detector};
use crate::alert::text::{proto_name, secs};
use crate::decode::{proto, tcp_flags, Ip, Transport};

/// `portscan`'s catalogue entry.
pub const PORTSCAN: Entry = Entry {
    name: "portscan",
    signature_id: 1_000_001,
    category: "Attempted Information Leak",
    severity: 2,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b501",
    describe: |a, _| {
        format!(
            "portscan: {} probed {} ports of {} in {}",
            text_addr(a.src),
            a.count,
            text_addr(a.dst),
            secs(a.window_ms)
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
            "portsweep: {} probed {} hosts on {} port {port} in {}",
            text_addr(a.src),
            a.count,
            a.proto.map(proto_name).unwrap_or_default(),
            secs(a.window_ms)
        ),
        None => format!(
            "portsweep: {} pinged {} hosts in {}",
            text_addr(a.src),
            a.count,
            secs(a.window_ms)
        ),
    },
};

fn text_addr(a: Option<std::net::IpAddr>) -> String {
    a.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
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
            portscan: CountSettings::per_minute(20),
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

    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        let Some(ip) = seen.ip() else { return };
        let (protocol, dport) = match ip.transport {
            Transport::Tcp { flags, dport, .. }
                if flags & tcp_flags::SYN != 0
                    && flags & (tcp_flags::ACK | tcp_flags::RST | tcp_flags::FIN) == 0 =>
            {
                (proto::TCP, dport)
            }
            // A datagram from a service port to an ephemeral one is an answer (DNS, NTP, QUIC
            // replies fan out over client ports), not a probe.
            Transport::Udp { sport, dport } if !(sport < 1024 && dport >= 1024) => {
                (proto::UDP, dport)
            }
            Transport::Icmp { ty: 8, .. } | Transport::Icmpv6 { ty: 128, .. } => (ip.proto, 0),
            _ => return,
        };
        if chatter_destination(ip.dst) || link_local(ip.dst) || ip.src.is_unspecified() {
            return;
        }
        self.probe(seen, ip, protocol, dport, s, out);
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
    fn probe(
        &mut self,
        seen: &Seen<'_>,
        ip: &Ip,
        protocol: u8,
        dport: u16,
        s: &Settings,
        out: &mut Out<'_>,
    ) {
        let ts = seen.ts_ns;
        let src = addr_key(ip.src);
        let dst = addr_key(ip.dst);
        let icmp = protocol == proto::ICMP || protocol == proto::ICMPV6;
        if s.portscan.enabled && !icmp {
            if let Some(c) = self
                .scans
                .entry((src, dst), ts)
                .count(dport, ts, &s.portscan)
            {
                out.send(Alert {
                    detector: Detector::Portscan,
                    count: c.count,
                    window_ms: c.window_ms,
                    ..seen.base(ip)
                });
            }
        }
        if s.portsweep.enabled {
            let h = std::hash::BuildHasher::hash_one(&self.hasher, dst) as u32;
            if let Some(c) =
                self.sweeps
                    .entry((src, dport, protocol), ts)
                    .count(h, ts, &s.portsweep)
            {
                out.send(Alert {
                    detector: Detector::Portsweep,
                    dst: None,
                    dport: (!icmp).then_some(dport),
                    count: c.count,
                    window_ms: c.window_ms,
                    ..seen.base(ip)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::craft::{tcp_frame, udp_frame};
    use crate::detect::family::run;

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn twenty_ports_make_one_portscan_and_answers_are_no_probes() {
        let mut scans = Scans::new(64, SeededState::random());
        let (a, v) = (ip("192.0.2.7"), ip("198.51.100.2"));
        let probes: Vec<_> = (1..=40u16)
            .map(|p| {
                (
                    1_000_000_000 + u64::from(p),
                    tcp_frame(a, v, 40000, p, tcp_flags::SYN),
                )
            })
            .collect();
        let alerts = run(&mut scans, &Settings::default(), &probes);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(
            (alerts[0].detector, alerts[0].count),
            (Detector::Portscan, 20)
        );
        // DNS answers from port 53 to 40 client ports are not a scan of the client.
        let answers: Vec<_> = (0..40u16)
            .map(|p| {
                (
                    3_000_000_000 + u64::from(p),
                    udp_frame(v, a, 53, 40000 + p, b""),
                )
            })
            .collect();
        assert!(run(&mut scans, &Settings::default(), &answers).is_empty());
    }

    #[test]
    fn a_sweep_names_its_port_and_a_new_window_starts_over() {
        let mut scans = Scans::new(64, SeededState::random());
        let s = Settings::default();
        let a = ip("192.0.2.7");
        let sweep = |t0: u64, n: u32| -> Vec<(u64, Vec<u8>)> {
            (0..n)
                .map(|i| {
                    let v = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0xc633_6400 + i));
                    (
                        t0 + u64::from(i),
                        tcp_frame(a, v, 40000, 22, tcp_flags::SYN),
                    )
                })
                .collect()
        };
        let alerts = run(&mut scans, &s, &sweep(1_000_000_000, 19));
        assert!(alerts.is_empty(), "19 hosts: {alerts:?}");
        // Past the 60 s window, the count starts over.
        let alerts = run(&mut scans, &s, &sweep(70_000_000_000, 19));
        assert!(alerts.is_empty(), "{alerts:?}");
        let alerts = run(&mut scans, &s, &sweep(71_000_000_000, 25));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].detector, Detector::Portsweep);
        assert_eq!((alerts[0].dport, alerts[0].dst), (Some(22), None));
    }
}
