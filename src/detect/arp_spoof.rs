//! `arp-spoof`: an ARP packet claims an IPv4 address that is bound to another MAC, learned from
//! earlier claims or configured. Keyed on the claimed address (the "source" of an ARP packet).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;
use toml::Spanned;

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::record::{Alert, Detail};
use super::table::{SeededState, Table};
use super::Detector;
use crate::alert::text::{addr, mac};
use crate::decode::Net;

/// `arp-spoof`'s catalogue entry.
pub const ARP_SPOOF: Entry = Entry {
    name: "arp-spoof",
    signature_id: 1_000_007,
    category: "Attempted Administrator Privilege Gain",
    severity: 1,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b507",
    describe: |a, _| match a.detail {
        Detail::Macs {
            mac: new,
            previous_mac,
        } => format!(
            "arp-spoof: {} claims {}, which is bound to {}",
            mac(new),
            addr(a.src),
            mac(previous_mac)
        ),
        _ => format!("arp-spoof: {} claimed", addr(a.src)),
    },
};

/// `[detect.arp-spoof]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// On or off.
    pub enabled: bool,
    /// Configured IP -> MAC bindings, trusted over what is learned.
    pub bindings: Vec<(Ipv4Addr, [u8; 6])>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            bindings: Vec::new(),
        }
    }
}

/// `[detect.arp-spoof]` as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArp {
    enabled: Option<bool>,
    bindings: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Binding {
    mac: [u8; 6],
}

/// Learned bindings, per IPv4 address.
#[derive(Debug)]
pub struct ArpSpoof {
    table: Table<u32, Binding>,
}

impl Family for ArpSpoof {
    type Settings = Settings;
    type Raw = (Option<RawArp>,);
    const KEY: Key = Key::Source;

    fn new(capacity: usize, hasher: SeededState) -> Self {
        ArpSpoof {
            table: Table::new(capacity, hasher),
        }
    }

    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        let Net::Arp(arp) = &seen.packet.net else {
            return;
        };
        // Probes (RFC 5227) come from 0.0.0.0; a zero MAC claims nothing.
        if !s.enabled || arp.sender_ip.is_unspecified() || arp.sender_mac == [0; 6] {
            return;
        }
        let configured = s
            .bindings
            .iter()
            .find(|(ip, _)| *ip == arp.sender_ip)
            .map(|(_, m)| *m);
        let previous = match configured {
            Some(mac) => (mac != arp.sender_mac).then_some(mac),
            None => {
                let e = self.table.entry(u32::from(arp.sender_ip), seen.ts_ns);
                let previous = (e.mac != [0; 6] && e.mac != arp.sender_mac).then_some(e.mac);
                e.mac = arp.sender_mac;
                previous
            }
        };
        if let Some(previous_mac) = previous {
            out.send(Alert {
                ts_ns: seen.ts_ns,
                iface: seen.iface,
                detector: Detector::ArpSpoof,
                src: Some(IpAddr::V4(arp.sender_ip)),
                dst: Some(IpAddr::V4(arp.target_ip)).filter(|d| !d.is_unspecified()),
                count: 1,
                detail: Detail::Macs {
                    mac: arp.sender_mac,
                    previous_mac,
                },
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

    fn configure(s: &mut Settings, (raw,): Self::Raw) -> Result<(), SpanError> {
        let Some(raw) = raw else { return Ok(()) };
        if let Some(e) = raw.enabled {
            s.enabled = e;
        }
        for (ip, m) in raw.bindings.unwrap_or_default() {
            let addr: Ipv4Addr = ip.parse().map_err(|_| {
                (
                    m.span(),
                    format!("detect.arp-spoof.bindings: {ip:?} is not an IPv4 address"),
                )
            })?;
            let parsed = parse_mac(m.get_ref()).ok_or_else(|| {
                (
                    m.span(),
                    format!(
                        "detect.arp-spoof.bindings: {:?} is not a MAC address",
                        m.get_ref()
                    ),
                )
            })?;
            s.bindings.push((addr, parsed));
        }
        Ok(())
    }

    fn toml(s: &Settings) -> String {
        let mut out = format!("\n[detect.arp-spoof]\nenabled = {}\n", s.enabled);
        if !s.bindings.is_empty() {
            let b: Vec<String> = s
                .bindings
                .iter()
                .map(|(ip, m)| format!("\"{ip}\" = \"{}\"", mac(*m)))
                .collect();
            out.push_str(&format!("bindings = {{ {} }}\n", b.join(", ")));
        }
        out
    }
}

/// `02:00:5e:10:00:01` (or with `-`).
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::craft::{arp_frame, MAC_A, MAC_B};
    use crate::detect::family::run;

    const MAC_X: [u8; 6] = [0x02, 0, 0, 0, 0, 0x66];

    #[test]
    fn a_second_claimant_is_named_against_the_learned_or_configured_binding() {
        let gw = Ipv4Addr::new(192, 0, 2, 1);
        let host = Ipv4Addr::new(192, 0, 2, 9);
        let mut arp = ArpSpoof::new(64, SeededState::random());
        let frames = [
            (1_000, arp_frame(2, MAC_A, gw, MAC_B, host)),
            (2_000, arp_frame(2, MAC_A, gw, MAC_B, host)),
            (3_000, arp_frame(2, MAC_X, gw, MAC_B, host)),
        ];
        let alerts = run(&mut arp, &Settings::default(), &frames);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(
            alerts[0].detail,
            Detail::Macs {
                mac: MAC_X,
                previous_mac: MAC_A
            }
        );
        // A configured binding wins over the first claim seen.
        let s = Settings {
            bindings: vec![(gw, MAC_X)],
            ..Settings::default()
        };
        let mut arp = ArpSpoof::new(64, SeededState::random());
        let alerts = run(&mut arp, &s, &frames[..1]);
        assert_eq!(alerts.len(), 1);
        // Probes claim nothing.
        let probe = [(
            4_000,
            arp_frame(1, MAC_X, Ipv4Addr::UNSPECIFIED, [0; 6], gw),
        )];
        assert!(run(&mut arp, &Settings::default(), &probe).is_empty());
    }
}
