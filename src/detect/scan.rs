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
