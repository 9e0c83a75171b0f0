//! `rogue-ra`: an IPv6 router advertisement from a router that is not the link's (thc-ipv6
//! fake_router6; flood_router26 sends thousands from random sources, which suppression makes one
//! storm record). The link's routers are configured (addresses and/or MACs) or, when none is,
//! the first to advertise on each interface (by packet time, whatever order several workers'
//! blocks bring the advertisements in) is learned, and the alert says which. Keyed on the
//! destination: advertisements go to all nodes (ff02::1), so one shard sees a link's.

use std::net::Ipv6Addr;

use serde::Deserialize;
use toml::Spanned;

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::record::{Alert, Detail};
use super::table::{SeededState, Table};
use super::Detector;
use crate::alert::text::{addr, mac};
use crate::decode::{Addr, Ip, Net, Packet, Transport};

/// `rogue-ra`'s catalogue entry.
pub const ROGUE_RA: Entry = Entry {
    name: "rogue-ra",
    signature_id: 1_000_020,
    category: "Attempted Administrator Privilege Gain",
    severity: 1,
    message_id: "3f6d2a9c71e84b05a2c4d8e6f1b3a720",
    describe: |a, iface| {
        let Detail::Router {
            mac: m,
            router,
            router_mac,
            learned,
        } = a.detail
        else {
            return format!("rogue-ra: {} advertises itself as a router", addr(a.src));
        };
        let legit = match (router, learned) {
            (0, _) => format!("the link's routers are {}", router_list_text(router_mac)),
            (r, true) => format!(
                "the link's router is {} ({}), learned as the first seen",
                Ipv6Addr::from(r),
                mac(router_mac)
            ),
            (r, false) => format!("the link's router is {} (configured)", Ipv6Addr::from(r)),
        };
        format!(
            "rogue-ra: {} ({}) advertises itself as a router on {iface}; {legit}",
            addr(a.src),
            mac(m)
        )
    },
};

fn router_list_text(m: [u8; 6]) -> String {
    if m == [0; 6] {
        "configured".into()
    } else {
        format!("configured ({})", mac(m))
    }
}

/// `[detect.rogue-ra]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// On or off.
    pub enabled: bool,
    /// The link's routers, by link-local address.
    pub addresses: Vec<Ipv6Addr>,
    /// The link's routers, by MAC.
    pub macs: Vec<[u8; 6]>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            addresses: Vec::new(),
            macs: Vec::new(),
        }
    }
}

/// `[detect.rogue-ra]` as read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    enabled: Option<bool>,
    routers: Option<Vec<Spanned<String>>>,
}

/// The router learned on one interface.
#[derive(Debug, Clone, Copy, Default)]
struct Learned {
    addr: u128,
    mac: [u8; 6],
    /// Its first advertisement heard: when it was sent (packet time), and to whom.
    since_ns: u64,
    dst: Addr,
}

/// Per interface, the router learned first.
#[derive(Debug)]
pub struct Routers {
    learned: Table<u16, Learned>,
}

/// Interfaces whose first router is remembered.
const INTERFACES: usize = 64;

impl Family for Routers {
    type Settings = Settings;
    type Raw = (Option<RawRouter>,);
    const KEY: Key = Key::Destination;

    fn new(_capacity: usize, hasher: SeededState) -> Self {
        Routers {
            learned: Table::new(INTERFACES, hasher),
        }
    }

    #[inline]
    fn wants(packet: &Packet, _s: &Settings) -> bool {
        matches!(&packet.net, Net::Ip(ip) if matches!(ip.transport, Transport::Icmpv6 { ty: 134, .. }))
    }

    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        if let Net::Ip(ip) = &seen.packet.net {
            if let Transport::Icmpv6 { ty: 134, .. } = ip.transport {
                self.advertisement(seen, ip, s, out);
            }
        }
    }

    fn evictions(&self) -> u64 {
        self.learned.evictions()
    }

    fn memory_bytes(&self) -> usize {
        self.learned.memory_bytes()
    }

    fn configure(s: &mut Settings, (raw,): Self::Raw) -> Result<(), SpanError> {
        let Some(raw) = raw else { return Ok(()) };
        if let Some(e) = raw.enabled {
            s.enabled = e;
        }
        for r in raw.routers.unwrap_or_default() {
            if let Ok(a) = r.get_ref().parse::<Ipv6Addr>() {
                s.addresses.push(a);
            } else if let Some(m) = super::arp_spoof::parse_mac(r.get_ref()) {
                s.macs.push(m);
            } else {
                return Err((
                    r.span(),
                    format!(
                        "detect.rogue-ra.routers: {:?} is neither an IPv6 address nor a MAC",
                        r.get_ref()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn toml(s: &Settings) -> String {
        let mut routers: Vec<String> = s.addresses.iter().map(|a| format!("\"{a}\"")).collect();
        routers.extend(s.macs.iter().map(|m| format!("\"{}\"", mac(*m))));
        format!(
            "\n[detect.rogue-ra]\nenabled = {}\nrouters = [{}]\n",
            s.enabled,
            routers.join(", ")
        )
    }
}

impl Routers {
    #[cold]
    fn advertisement(&mut self, seen: &Seen<'_>, ip: &Ip, s: &Settings, out: &mut Out<'_>) {
        let Some(src) = ip.src.to_ipv6() else { return };
        let m = seen.packet.src_mac;
        if !s.enabled {
            return;
        }
        let (router, router_mac, learned) = if s.addresses.is_empty() && s.macs.is_empty() {
            let l = self.learned.entry(seen.iface, seen.ts_ns);
            let this = Learned {
                addr: u128::from(src),
                mac: m,
                since_ns: seen.ts_ns,
                dst: ip.dst,
            };
            if l.addr == 0 {
                *l = this;
                return;
            }
            if l.addr == u128::from(src) && l.mac == m {
                if seen.ts_ns < l.since_ns {
                    // Its own earlier advertisement, heard late: that one is its first.
                    *l = this;
                }
                return;
            }
            if seen.ts_ns < l.since_ns {
                // Sent before the learned router's first advertisement, and heard after it
                // (several workers hand a shard their packets a block at a time): this router
                // came first, so it is the link's, and the one learned is the rogue.
                let rogue = std::mem::replace(l, this);
                let mut then = *ip;
                then.src = Addr::from_key(rogue.addr);
                then.dst = rogue.dst;
                let at = Seen {
                    ts_ns: rogue.since_ns,
                    ..*seen
                };
                return rogue_ra(&at, &then, (rogue.mac, this.addr, this.mac, true), out);
            }
            (l.addr, l.mac, true)
        } else {
            if s.addresses.contains(&src) || s.macs.contains(&m) {
                return;
            }
            let first = s.addresses.first().map_or(0, |a| u128::from(*a));
            (first, s.macs.first().copied().unwrap_or_default(), false)
        };
        rogue_ra(seen, ip, (m, router, router_mac, learned), out);
    }
}

/// The alert: the router `ip` came from, with MAC `mac`, is not the link's (`router` and
/// `router_mac`, `learned` or configured).
fn rogue_ra(
    seen: &Seen<'_>,
    ip: &Ip,
    (mac, router, router_mac, learned): ([u8; 6], u128, [u8; 6], bool),
    out: &mut Out<'_>,
) {
    out.send_with(Detector::RogueRa, ip.pair(), seen.ts_ns, || Alert {
        detector: Detector::RogueRa,
        detail: Detail::Router {
            mac,
            router,
            router_mac,
            learned,
        },
        ..seen.base(ip)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::craft::{ethernet, ipv6, MAC_A, MAC_B};
    use crate::decode::ethertype;
    use crate::detect::family::run;

    /// A router advertisement from `src` (MAC `mac`) to all nodes.
    fn ra(mac: [u8; 6], src: &str) -> Vec<u8> {
        let body = [134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        let src: Ipv6Addr = src.parse().unwrap();
        let all: Ipv6Addr = "ff02::1".parse().unwrap();
        ethernet(
            mac,
            [0x33, 0x33, 0, 0, 0, 1],
            &[],
            ethertype::IPV6,
            &ipv6(src, all, 58, &body),
        )
    }

    #[test]
    fn the_first_router_heard_is_the_links_and_one_sent_earlier_but_heard_later_takes_its_place() {
        let s = Settings::default();
        let (link, rogue) = ("fe80::1", "fe80::66");
        let expected = (
            2_000,
            Some(rogue.parse().unwrap()),
            Some("ff02::1".parse().unwrap()),
            Detail::Router {
                mac: MAC_B,
                router: u128::from(link.parse::<Ipv6Addr>().unwrap()),
                router_mac: MAC_A,
                learned: true,
            },
        );
        let orders = [
            // In order: the rogue is named against the router learned first.
            vec![(1_000, ra(MAC_A, link)), (2_000, ra(MAC_B, rogue))],
            // Heard the other way round (another worker's block reached the shard first): the
            // same alert, and the link's router stays learned.
            vec![
                (2_000, ra(MAC_B, rogue)),
                (1_000, ra(MAC_A, link)),
                (3_000, ra(MAC_A, link)),
            ],
            // The rogue's own earlier advertisement heard late is its first: the alert's time.
            vec![
                (3_000, ra(MAC_B, rogue)),
                (2_000, ra(MAC_B, rogue)),
                (1_000, ra(MAC_A, link)),
            ],
        ];
        for frames in orders {
            let mut routers = Routers::new(0, SeededState::random());
            let alerts = run(&mut routers, &s, &frames);
            assert_eq!(alerts.len(), 1, "{alerts:?}");
            let a = &alerts[0];
            assert_eq!((a.ts_ns, a.src, a.dst, a.detail), expected);
        }
    }
}
