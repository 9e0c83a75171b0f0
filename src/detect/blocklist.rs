//! `blocklist`: traffic from or to a listed prefix (`[blocklist] files`, one CIDR a line).
//! Keyed on the source.

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::prefix::PrefixSet;
use super::record::{Alert, Detail};
use super::table::SeededState;
use super::toggle::{RawToggle, Toggle};
use super::Detector;
use crate::alert::text::{addr, endpoint, proto_name};

/// `blocklist`'s catalogue entry.
pub const BLOCKLIST: Entry = Entry {
    name: "blocklist",
    signature_id: 1_000_008,
    category: "Potentially Bad Traffic",
    severity: 2,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b508",
    describe: |a, _| {
        let listed = if a.detail == Detail::Kind(SOURCE) {
            addr(a.src)
        } else {
            addr(a.dst)
        };
        format!(
            "blocklist: {} traffic from {} to {} ({listed} is blocklisted)",
            a.proto.map(proto_name).unwrap_or_default(),
            endpoint(a.src, a.sport),
            endpoint(a.dst, a.dport)
        )
    },
};

/// `kind` when the source is listed.
pub const SOURCE: &str = "source";
/// `kind` when the destination is listed.
pub const DESTINATION: &str = "destination";

/// `[detect.blocklist]` and the prefixes `[blocklist] files` hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// On or off.
    pub switch: Toggle,
    /// The listed prefixes.
    pub prefixes: PrefixSet,
}

/// Stateless.
#[derive(Debug)]
pub struct Blocklist;

/// Which end of `ip` is listed ([`SOURCE`] first), if either is and the detector is on.
#[inline]
fn listed(ip: &crate::decode::Ip, s: &Settings) -> Option<&'static str> {
    if !s.switch.enabled || s.prefixes.is_empty() {
        None
    } else if s.prefixes.contains(ip.src) {
        Some(SOURCE)
    } else if s.prefixes.contains(ip.dst) {
        Some(DESTINATION)
    } else {
        None
    }
}

impl Family for Blocklist {
    type Settings = Settings;
    type Raw = (Option<RawToggle>,);
    const KEY: Key = Key::Source;

    /// Packets to or from a listed address.
    #[inline]
    fn wants(packet: &crate::decode::Packet, s: &Settings) -> bool {
        matches!(&packet.net, crate::decode::Net::Ip(ip) if listed(ip, s).is_some())
    }

    fn new(_capacity: usize, _hasher: SeededState) -> Self {
        Blocklist
    }

    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        let Some(ip) = seen.ip() else { return };
        if let Some(end) = listed(ip, s) {
            out.send_with(Detector::Blocklist, ip.pair(), seen.ts_ns, || Alert {
                detector: Detector::Blocklist,
                detail: Detail::Kind(end),
                ..seen.flow(ip)
            });
        }
    }

    fn configure(s: &mut Settings, (raw,): Self::Raw) -> Result<(), SpanError> {
        s.switch.configure(raw);
        Ok(())
    }

    fn toml(s: &Settings) -> String {
        s.switch.toml("blocklist")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::craft::udp_frame;
    use crate::detect::family::run;
    use crate::detect::prefix::parse_cidr;

    #[test]
    fn either_end_listed_is_an_alert_naming_which() {
        let s = Settings {
            switch: Toggle::default(),
            prefixes: PrefixSet::new([parse_cidr("203.0.113.0/24").unwrap()]),
        };
        let (bad, good) = (
            "203.0.113.5".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        );
        let frames = [
            (1, udp_frame(bad, good, 1, 53, b"")),
            (2, udp_frame(good, bad, 2, 53, b"")),
            (3, udp_frame(good, good, 3, 53, b"")),
        ];
        let alerts = run(&mut Blocklist, &s, &frames);
        let kinds: Vec<_> = alerts.iter().map(|a| a.detail).collect();
        assert_eq!(kinds, [Detail::Kind(SOURCE), Detail::Kind(DESTINATION)]);
        let off = Settings {
            switch: Toggle { enabled: false },
            ..s
        };
        assert!(run(&mut Blocklist, &off, &frames).is_empty());
    }
}
