//! `brute-force`: many connections from one source to one login service of one host within a
//! window (200 ssh connections in 20 s), as sshguard or fail2ban would see password guessing
//! without the logs. Counts the connections the flow table saw opened (a SYN-ACK answered the
//! SYN): no state of its own per flow. Keyed on the source.

use serde::Deserialize;
use toml::Spanned;

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::record::Alert;
use super::table::{SeededState, Table};
use super::{addr_key, AddrKey, Detector};
use crate::alert::community_id::FlowTuple;
use crate::alert::text::{addr, secs};
use crate::config::in_range;
use crate::decode::proto;
use crate::flow::{Attempt, Probe};

/// `brute-force`'s catalogue entry.
pub const BRUTE_FORCE: Entry = Entry {
    name: "brute-force",
    signature_id: 1_000_021,
    category: "Attempted User Privilege Gain",
    severity: 2,
    message_id: "3f6d2a9c71e84b05a2c4d8e6f1b3a721",
    describe: |a, _| {
        format!(
            "brute-force: {} opened {} connections to {} port {} in {}",
            addr(a.src),
            a.count,
            addr(a.dst),
            a.dport.unwrap_or_default(),
            secs(a.window_ms)
        )
    },
};

/// Login services watched by default: ftp, ssh, telnet, smtp, pop3, imap, ldap, smb, smtps,
/// submission, ldaps, imaps, pop3s, mssql, mysql, rdp, postgres, vnc, redis (in order of port, as
/// [`Settings::ports`] keeps them).
pub const LOGIN_PORTS: [u16; 19] = [
    21, 22, 23, 25, 110, 143, 389, 445, 465, 587, 636, 993, 995, 1433, 3306, 3389, 5432, 5900, 6379,
];

/// `[detect.brute-force]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// On or off.
    pub enabled: bool,
    /// Connections at which it fires.
    pub connections: u32,
    /// Window length in ms.
    pub window_ms: u64,
    /// The service ports watched, sorted, each once (every answered attempt looks its port up).
    pub ports: Vec<u16>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            connections: 60,
            window_ms: 60_000,
            ports: LOGIN_PORTS.to_vec(),
        }
    }
}

/// `[detect.brute-force]` as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBrute {
    enabled: Option<bool>,
    connections: Option<Spanned<i64>>,
    window_seconds: Option<Spanned<i64>>,
    ports: Option<Vec<Spanned<i64>>>,
}

/// One (source, target, port)'s connections in the window.
#[derive(Debug, Clone, Copy, Default)]
struct Tries {
    start_ns: u64,
    count: u32,
    fired: bool,
}

/// Per (source, target, port), the connections of the current window.
#[derive(Debug)]
pub struct Brute {
    table: Table<(AddrKey, AddrKey, u16), Tries>,
}

impl Family for Brute {
    type Settings = Settings;
    type Raw = (Option<RawBrute>,);
    const KEY: Key = Key::Source;

    /// Guesses are counted from answered attempts, never from packets.
    #[inline]
    fn wants(_packet: &crate::decode::Packet, _s: &Settings) -> bool {
        false
    }

    fn new(capacity: usize, hasher: SeededState) -> Self {
        Brute {
            table: Table::new(capacity, hasher),
        }
    }

    #[inline]
    fn observe(&mut self, _seen: &Seen<'_>, _s: &Settings, _out: &mut Out<'_>) {}

    fn answered(&mut self, a: &Attempt, s: &Settings, out: &mut Out<'_>) {
        if !s.enabled
            || a.probe != Probe::Syn
            || a.proto != proto::TCP
            || s.ports.binary_search(&a.dport).is_err()
        {
            return;
        }
        let ts = a.ts_ns;
        let t = self
            .table
            .entry((addr_key(a.initiator), addr_key(a.target), a.dport), ts);
        if t.start_ns == 0 || ts.saturating_sub(t.start_ns) > s.window_ms * 1_000_000 {
            *t = Tries {
                start_ns: ts,
                ..Tries::default()
            };
        }
        t.count += 1;
        if t.fired || t.count < s.connections {
            return;
        }
        t.fired = true;
        out.send(Alert {
            ts_ns: ts,
            iface: a.iface,
            detector: Detector::BruteForce,
            src: Some(a.initiator),
            dst: Some(a.target),
            dport: Some(a.dport),
            proto: Some(a.proto),
            trigger: Some(FlowTuple::new(
                a.initiator,
                a.target,
                a.proto,
                Some((a.sport, a.dport)),
            )),
            count: u64::from(t.count),
            window_ms: ts.saturating_sub(t.start_ns) / 1_000_000,
            ..Alert::default()
        });
    }

    fn evictions(&self) -> u64 {
        self.table.evictions()
    }

    fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    fn configure(s: &mut Settings, (raw,): Self::Raw) -> Result<(), SpanError> {
        let Some(raw) = raw else { return Ok(()) };
        if let Some(e) = raw.enabled {
            s.enabled = e;
        }
        if let Some(v) = raw.connections {
            s.connections = in_range(&v, 2, 1_000_000, "detect.brute-force.connections")
                .map_err(|m| (v.span(), m))? as u32;
        }
        if let Some(v) = raw.window_seconds {
            s.window_ms = in_range(&v, 1, 86_400, "detect.brute-force.window_seconds")
                .map_err(|m| (v.span(), m))? as u64
                * 1000;
        }
        if let Some(ports) = raw.ports {
            s.ports.clear();
            for p in ports {
                let port = in_range(&p, 1, 65_535, "detect.brute-force.ports")
                    .map_err(|m| (p.span(), m))? as u16;
                s.ports.push(port);
            }
            s.ports.sort_unstable();
            s.ports.dedup();
        }
        Ok(())
    }

    fn toml(s: &Settings) -> String {
        let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
        format!(
            "\n[detect.brute-force]\nenabled = {}\nconnections = {}\nwindow_seconds = {}\nports = [{}]\n",
            s.enabled,
            s.connections,
            s.window_ms / 1000,
            ports.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::detect::family::run_attempts;
    use crate::flow::Outcome;

    fn connected(ts: u64, port: u16) -> Attempt {
        Attempt {
            ts_ns: ts,
            iface: 0,
            initiator: IpAddr::from([192, 0, 2, 7]),
            target: IpAddr::from([198, 51, 100, 2]),
            proto: proto::TCP,
            sport: 40000,
            dport: port,
            probe: Probe::Syn,
            outcome: Outcome::Answered,
            attempt_ns: ts,
            mac: [2, 0, 0, 0, 0, 1],
        }
    }

    #[test]
    fn many_connections_to_a_login_service_fire_once_and_a_web_server_is_left_alone() {
        let s = Settings::default();
        let ssh: Vec<_> = (0..200u64)
            .map(|i| connected(1 + i * 100_000_000, 22))
            .collect();
        let alerts = run_attempts(&mut Brute::new(64, SeededState::random()), &s, &ssh, 0);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!((alerts[0].count, alerts[0].dport), (60, Some(22)));
        let web: Vec<_> = (0..200u64)
            .map(|i| connected(1 + i * 100_000_000, 443))
            .collect();
        assert!(run_attempts(&mut Brute::new(64, SeededState::random()), &s, &web, 0).is_empty());
        // A poller's check every 2 s stays below 60 a minute.
        let poll: Vec<_> = (0..100u64)
            .map(|i| connected(1 + i * 2_000_000_000, 22))
            .collect();
        assert!(run_attempts(&mut Brute::new(64, SeededState::random()), &s, &poll, 0).is_empty());
    }

    #[test]
    fn configured_ports_in_any_order_and_repeated_are_each_watched() {
        let c = crate::config::Config::parse(
            "[detect.brute-force]\nports = [8022, 22, 2222, 22]\n",
            std::path::Path::new("scram.toml"),
        )
        .expect("valid");
        let s = &c.detect.brute;
        assert_eq!(s.ports, [22, 2222, 8022]);
        assert!(Settings::default().ports.is_sorted());
        for port in [22, 2222, 8022] {
            let tries: Vec<_> = (0..100u64)
                .map(|i| connected(1 + i * 100_000_000, port))
                .collect();
            let alerts = run_attempts(&mut Brute::new(64, SeededState::random()), s, &tries, 0);
            assert_eq!(alerts.len(), 1, "port {port}: {alerts:?}");
        }
        let ftp: Vec<_> = (0..100u64)
            .map(|i| connected(1 + i * 100_000_000, 21))
            .collect();
        assert!(run_attempts(&mut Brute::new(64, SeededState::random()), s, &ftp, 0).is_empty());
    }
}
