//! Address claims on the link. `arp-spoof`: an ARP packet claims an IPv4 address that is bound
//! to another MAC, learned from earlier claims or configured; a claim going back to the MAC that
//! held the address before is a "flip-flop" (arpwatch's word). `nd-spoof`: the same for IPv6,
//! from neighbour solicitations and advertisements (thc-ipv6 parasite6, fake_advertise6).
//! `new-station`: an address claimed for the first time (off by default: on a busy link it is
//! ordinary). Keyed on the claimed address (the "source" of an ARP or ND packet). Claims are
//! judged in the order they were sent (packet time), whatever order several workers' blocks
//! bring them to the address's shard in.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;
use toml::Spanned;

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::record::{Alert, Detail};
use super::table::{SeededState, Table};
use super::toggle::{RawToggle, Toggle};
use super::Detector;
use crate::alert::text::{addr, mac};
use crate::decode::{Addr, Arp, Ip, Net, Transport};

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
            flip_flop,
        } => format!(
            "arp-spoof: {} claims {}, which is bound to {}{}",
            mac(new),
            addr(a.src),
            mac(previous_mac),
            if flip_flop { " (flip-flop)" } else { "" }
        ),
        _ => format!("arp-spoof: {} claimed", addr(a.src)),
    },
};

/// `nd-spoof`'s catalogue entry.
pub const ND_SPOOF: Entry = Entry {
    name: "nd-spoof",
    signature_id: 1_000_018,
    category: "Attempted Administrator Privilege Gain",
    severity: 1,
    message_id: "3f6d2a9c71e84b05a2c4d8e6f1b3a718",
    describe: |a, iface| match a.detail {
        Detail::Macs {
            mac: new,
            previous_mac,
            flip_flop,
        } => format!(
            "nd-spoof: {} claims {} on {iface}, which is bound to {}{}",
            mac(new),
            addr(a.src),
            mac(previous_mac),
            if flip_flop { " (flip-flop)" } else { "" }
        ),
        _ => format!("nd-spoof: {} claimed", addr(a.src)),
    },
};

/// `new-station`'s catalogue entry.
pub const NEW_STATION: Entry = Entry {
    name: "new-station",
    signature_id: 1_000_019,
    category: "Not Suspicious Traffic",
    severity: 3,
    message_id: "3f6d2a9c71e84b05a2c4d8e6f1b3a719",
    describe: |a, iface| {
        let m = match a.detail {
            Detail::Mac(m) => mac(m),
            _ => "?".into(),
        };
        format!(
            "new-station: {} claims {} on {iface} for the first time",
            m,
            addr(a.src)
        )
    },
};

/// `[detect.arp-spoof]`, `[detect.nd-spoof]`, `[detect.new-station]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// arp-spoof on or off.
    pub enabled: bool,
    /// Configured IP -> MAC bindings, trusted over what is learned.
    pub bindings: Vec<(Ipv4Addr, [u8; 6])>,
    /// nd-spoof.
    pub nd: Toggle,
    /// new-station (off by default).
    pub new_station: Toggle,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            bindings: Vec::new(),
            nd: Toggle::default(),
            new_station: Toggle { enabled: false },
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

/// What an address's MAC is bound to, learned from the claims heard. `A`: what the claim that
/// bound it said besides (the address an ARP packet asked for; an ND packet's destination and
/// type), for an alert about it heard late.
#[derive(Debug, Clone, Copy, Default)]
struct Binding<A> {
    mac: [u8; 6],
    /// The MAC before the last change.
    previous: [u8; 6],
    /// When `mac` first claimed the address (packet time).
    since_ns: u64,
    /// What that claim said besides.
    said: A,
}

impl<A: Copy> Binding<A> {
    /// `mac` claims the address at `ts_ns`, saying `said` besides; what that did to the binding.
    /// A claim by another MAC made before the bound one's first (heard late: several workers
    /// hand a shard their packets a block at a time) came first: the bound MAC is the one that
    /// changed the binding, and stays bound.
    fn claim(&mut self, mac: [u8; 6], ts_ns: u64, said: A) -> Claim<A> {
        if self.mac == [0; 6] {
            *self = Binding {
                mac,
                previous: [0; 6],
                since_ns: ts_ns,
                said,
            };
            return Claim::New;
        }
        if self.mac == mac {
            if ts_ns < self.since_ns {
                // Its own earlier claim, heard late: that one is its first.
                (self.since_ns, self.said) = (ts_ns, said);
            }
            return Claim::Same;
        }
        if ts_ns < self.since_ns {
            self.previous = mac;
            return Claim::Overtaken {
                later: self.mac,
                at_ns: self.since_ns,
                said: self.said,
            };
        }
        let was = self.mac;
        let flip_flop = self.previous == mac;
        *self = Binding {
            mac,
            previous: was,
            since_ns: ts_ns,
            said,
        };
        Claim::Changed { was, flip_flop }
    }
}

/// What a claim did to a binding.
enum Claim<A> {
    /// The first claim of the address.
    New,
    /// The bound MAC again.
    Same,
    /// Another MAC.
    Changed { was: [u8; 6], flip_flop: bool },
    /// Another MAC, before the bound one (`later`) first claimed the address at `at_ns`, saying
    /// `said`: that claim is the change.
    Overtaken { later: [u8; 6], at_ns: u64, said: A },
}

/// Learned bindings, per IPv4 address and per (interface, IPv6 address).
#[derive(Debug)]
pub struct ArpSpoof {
    /// By address; the address an ARP packet asked for.
    table: Table<u32, Binding<u32>>,
    /// By interface and address; an ND packet's destination and ICMPv6 type.
    nd: Table<(u16, u128), Binding<(Addr, u8)>>,
}

impl Family for ArpSpoof {
    type Settings = Settings;
    type Raw = (Option<RawArp>, Option<RawToggle>, Option<RawToggle>);
    const KEY: Key = Key::Source;

    /// ARP, and neighbour solicitations and advertisements.
    #[inline]
    fn wants(packet: &crate::decode::Packet, _s: &Settings) -> bool {
        match &packet.net {
            Net::Arp(_) => true,
            Net::Ip(ip) => matches!(ip.transport, Transport::Icmpv6 { ty: 135 | 136, .. }),
            Net::Other(_) => false,
        }
    }

    fn new(capacity: usize, hasher: SeededState) -> Self {
        ArpSpoof {
            table: Table::new(capacity, hasher),
            nd: Table::new(capacity, hasher),
        }
    }

    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        if Self::wants(seen.packet, s) {
            self.claim(seen, s, out);
        }
    }

    fn evictions(&self) -> u64 {
        self.table.evictions() + self.nd.evictions()
    }

    fn memory_bytes(&self) -> usize {
        self.table.memory_bytes() + self.nd.memory_bytes()
    }

    fn configure(s: &mut Settings, (raw, nd, new_station): Self::Raw) -> Result<(), SpanError> {
        s.nd.configure(nd);
        s.new_station.configure(new_station);
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
        out + &s.nd.toml("nd-spoof") + &s.new_station.toml("new-station")
    }
}

impl ArpSpoof {
    /// An ARP or ND packet's claim. Out of line: the packet path's other packets only pass by.
    #[cold]
    #[inline(never)]
    fn claim(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        match &seen.packet.net {
            Net::Arp(arp) => self.arp(seen, arp, s, out),
            Net::Ip(ip) => self.neighbour(seen, ip, s, out),
            Net::Other(_) => {}
        }
    }

    /// An ARP packet claims its sender address for the sender MAC.
    #[inline]
    fn arp(&mut self, seen: &Seen<'_>, arp: &Arp, s: &Settings, out: &mut Out<'_>) {
        // Probes (RFC 5227) come from 0.0.0.0; a zero MAC claims nothing.
        if !s.enabled || arp.sender_ip.is_unspecified() || arp.sender_mac == [0; 6] {
            return;
        }
        let configured = s
            .bindings
            .iter()
            .find(|(ip, _)| *ip == arp.sender_ip)
            .map(|(_, m)| *m);
        let claim = match configured {
            Some(mac) if mac != arp.sender_mac => Claim::Changed {
                was: mac,
                flip_flop: false,
            },
            Some(_) => Claim::Same,
            None => self
                .table
                .entry(u32::from(arp.sender_ip), seen.ts_ns)
                .claim(arp.sender_mac, seen.ts_ns, u32::from(arp.target_ip)),
        };
        let base = || Alert {
            ts_ns: seen.ts_ns,
            iface: seen.iface,
            src: Some(IpAddr::V4(arp.sender_ip)),
            count: 1,
            ..Alert::default()
        };
        // The change: `mac` claims the address, bound to `previous`, at `ts_ns` in a packet that
        // asked for `asked`.
        let changed = |out: &mut Out<'_>, (mac, previous, flip_flop), ts_ns, asked: Ipv4Addr| {
            let dst = Some(IpAddr::V4(asked)).filter(|d| !d.is_unspecified());
            let src = Some(Addr::v4(arp.sender_ip.octets()));
            out.send_with(
                Detector::ArpSpoof,
                (src, dst.map(Addr::from)),
                ts_ns,
                || Alert {
                    detector: Detector::ArpSpoof,
                    ts_ns,
                    dst,
                    detail: Detail::Macs {
                        mac,
                        previous_mac: previous,
                        flip_flop,
                    },
                    ..base()
                },
            )
        };
        match claim {
            Claim::Changed { was, flip_flop } => changed(
                out,
                (arp.sender_mac, was, flip_flop),
                seen.ts_ns,
                arp.target_ip,
            ),
            Claim::Overtaken { later, at_ns, said } => changed(
                out,
                (later, arp.sender_mac, false),
                at_ns,
                Ipv4Addr::from(said),
            ),
            Claim::New if s.new_station.enabled => out.send(Alert {
                detector: Detector::NewStation,
                detail: Detail::Mac(arp.sender_mac),
                ..base()
            }),
            _ => {}
        }
    }

    /// A neighbour solicitation or advertisement claims its source address for the sending MAC
    /// (on its link: the same link-local address lives on every link).
    #[inline]
    fn neighbour(&mut self, seen: &Seen<'_>, ip: &Ip, s: &Settings, out: &mut Out<'_>) {
        let Some(a) = ip.src.to_ipv6() else { return };
        let m = seen.packet.src_mac;
        if !s.nd.enabled || a.is_unspecified() || a.is_multicast() || m == [0; 6] {
            return;
        }
        let ty = match ip.transport {
            Transport::Icmpv6 { ty, .. } => ty,
            _ => 0,
        };
        let claim = self
            .nd
            .entry((seen.iface, u128::from(a)), seen.ts_ns)
            .claim(m, seen.ts_ns, (ip.dst, ty));
        // The change: `mac` claims the address, bound to `previous`, in `ip` at `ts_ns`.
        let changed = |out: &mut Out<'_>, (mac, previous, flip_flop), ts_ns, ip: &Ip| {
            out.send_with(Detector::NdSpoof, ip.pair(), ts_ns, || Alert {
                detector: Detector::NdSpoof,
                dst: Some(ip.dst.ip()),
                detail: Detail::Macs {
                    mac,
                    previous_mac: previous,
                    flip_flop,
                },
                ..super::family::base(ts_ns, seen.iface, ip)
            })
        };
        match claim {
            Claim::Changed { was, flip_flop } => changed(out, (m, was, flip_flop), seen.ts_ns, ip),
            Claim::Overtaken {
                later,
                at_ns,
                said: (dst, ty),
            } => {
                // The later claim's packet, as far as it is remembered.
                let mut then = *ip;
                then.dst = dst;
                if let Transport::Icmpv6 { ty: t, .. } = &mut then.transport {
                    *t = ty;
                }
                changed(out, (later, m, false), at_ns, &then);
            }
            Claim::New if s.new_station.enabled => out.send(Alert {
                detector: Detector::NewStation,
                ts_ns: seen.ts_ns,
                iface: seen.iface,
                src: Some(ip.src.ip()),
                proto: Some(ip.proto),
                count: 1,
                detail: Detail::Mac(m),
                ..Alert::default()
            }),
            _ => {}
        }
    }
}

/// `02:00:5e:10:00:01` (or with `-`).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
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
    use std::net::Ipv6Addr;

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
                previous_mac: MAC_A,
                flip_flop: false,
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

    #[test]
    fn a_claim_heard_after_a_later_one_binds_the_address_and_the_later_claimant_is_named() {
        // Several workers: the host's reply (at 1 µs) reaches the shard after the spoofer's (at
        // 2 µs), which another worker's block handed over first.
        let gw = Ipv4Addr::new(192, 0, 2, 1);
        let host = Ipv4Addr::new(192, 0, 2, 9);
        let asked = Ipv4Addr::new(192, 0, 2, 7);
        let frames = [
            (2_000, arp_frame(2, MAC_X, gw, MAC_B, asked)),
            (1_000, arp_frame(2, MAC_A, gw, MAC_B, host)),
            // The spoofer again: bound to it already, as when the two were heard in order.
            (3_000, arp_frame(2, MAC_X, gw, MAC_B, asked)),
        ];
        let mut arp = ArpSpoof::new(64, SeededState::random());
        let alerts = run(&mut arp, &Settings::default(), &frames);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(
            (a.detector, a.ts_ns, a.src, a.dst),
            (
                Detector::ArpSpoof,
                2_000,
                Some(IpAddr::V4(gw)),
                Some(IpAddr::V4(asked))
            )
        );
        assert_eq!(
            a.detail,
            Detail::Macs {
                mac: MAC_X,
                previous_mac: MAC_A,
                flip_flop: false,
            }
        );
        // Heard in order, the same alert.
        let mut arp = ArpSpoof::new(64, SeededState::random());
        let in_order = run(
            &mut arp,
            &Settings::default(),
            &[frames[1].clone(), frames[0].clone(), frames[2].clone()],
        );
        assert_eq!(in_order, alerts);
        // The spoofer's own earlier claim heard late is its first: the alert is about that one.
        let first_asked = Ipv4Addr::new(192, 0, 2, 8);
        let mut arp = ArpSpoof::new(64, SeededState::random());
        let late = [
            (3_000, arp_frame(2, MAC_X, gw, MAC_B, asked)),
            (2_000, arp_frame(2, MAC_X, gw, MAC_B, first_asked)),
            (1_000, arp_frame(2, MAC_A, gw, MAC_B, host)),
        ];
        let alerts = run(&mut arp, &Settings::default(), &late);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(
            (alerts[0].ts_ns, alerts[0].dst),
            (2_000, Some(IpAddr::V4(first_asked)))
        );
    }

    #[test]
    fn an_nd_claim_heard_late_names_the_later_claimant_with_its_own_packet() {
        let claimed: Ipv6Addr = "fd09::10".parse().unwrap();
        let na = |mac, dst: Ipv6Addr| {
            let icmp = [136, 0, 0, 0, 0x20, 0, 0, 0];
            let mut body = icmp.to_vec();
            body.extend_from_slice(&claimed.octets());
            crate::craft::ethernet(
                mac,
                [0x33, 0x33, 0, 0, 0, 1],
                &[],
                crate::decode::ethertype::IPV6,
                &crate::craft::ipv6(claimed, dst, 58, &body),
            )
        };
        let all: Ipv6Addr = "ff02::1".parse().unwrap();
        let asker: Ipv6Addr = "fd09::2".parse().unwrap();
        let frames = [(2_000, na(MAC_X, all)), (1_000, na(MAC_A, asker))];
        let mut arp = ArpSpoof::new(64, SeededState::random());
        let alerts = run(&mut arp, &Settings::default(), &frames);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(
            (a.detector, a.ts_ns, a.dst),
            (Detector::NdSpoof, 2_000, Some(IpAddr::V6(all)))
        );
        assert!(matches!(
            a.detail,
            Detail::Macs {
                mac: MAC_X,
                previous_mac: MAC_A,
                ..
            }
        ));
    }

    #[test]
    fn an_address_going_back_to_its_earlier_mac_is_a_flip_flop_and_new_stations_are_opt_in() {
        let gw = Ipv4Addr::new(192, 0, 2, 1);
        let host = Ipv4Addr::new(192, 0, 2, 9);
        let frames = [
            (1_000, arp_frame(2, MAC_A, gw, MAC_B, host)),
            (2_000, arp_frame(2, MAC_X, gw, MAC_B, host)),
            // After the suppression window (a repeat within it is counted, not sent).
            (61_000_000_000, arp_frame(2, MAC_A, gw, MAC_B, host)),
        ];
        let mut arp = ArpSpoof::new(64, SeededState::random());
        let alerts = run(&mut arp, &Settings::default(), &frames);
        let flips: Vec<bool> = alerts
            .iter()
            .map(|a| {
                matches!(
                    a.detail,
                    Detail::Macs {
                        flip_flop: true,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(flips, [false, true], "{alerts:?}");
        assert!((ARP_SPOOF.describe)(&alerts[1], "eth0").ends_with("(flip-flop)"));
        // New stations: none by default, one per address when switched on.
        let on = Settings {
            new_station: Toggle { enabled: true },
            ..Settings::default()
        };
        let mut arp = ArpSpoof::new(64, SeededState::random());
        let alerts = run(&mut arp, &on, &frames[..1]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].detector, alerts[0].detail),
            (Detector::NewStation, Detail::Mac(MAC_A))
        );
    }
}
