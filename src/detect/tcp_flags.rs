//! `tcp-flags`: TCP segments whose flag combination no stack sends (NULL, FIN without ACK, XMAS,
//! SYN+FIN, SYN+RST): the probes of nmap's stealth scans and of fingerprinting. Keyed on the
//! source.

use super::family::{Entry, Family, Key, Out, Seen, SpanError};
use super::record::{Alert, Detail};
use super::table::SeededState;
use super::toggle::{RawToggle, Toggle};
use super::Detector;
use crate::alert::text::endpoint;
use crate::decode::{tcp_flags, Transport};

/// `tcp-flags`' catalogue entry.
pub const TCP_FLAGS: Entry = Entry {
    name: "tcp-flags",
    signature_id: 1_000_003,
    category: "Potentially Bad Traffic",
    severity: 2,
    message_id: "8c1b3e0e5b2a4f6f9d7e21f0a4c3b503",
    describe: |a, _| {
        let (combo, flags) = match a.detail {
            Detail::Flags(combo, flags) => (combo, flags),
            _ => ("?", 0),
        };
        format!(
            "tcp-flags: {} sent a TCP segment with illegal flags {combo} (0x{flags:02x}) to {}",
            endpoint(a.src, a.sport),
            endpoint(a.dst, a.dport)
        )
    },
};

/// What an illegal flag combination was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagCombo {
    /// No flag at all.
    Null,
    /// FIN without ACK.
    FinWithoutAck,
    /// FIN+PSH+URG.
    Xmas,
    /// SYN+FIN.
    SynFin,
    /// SYN+RST.
    SynRst,
}

impl FlagCombo {
    /// Classifies TCP flags; `None` for legal combinations.
    pub fn of(flags: u8) -> Option<FlagCombo> {
        use tcp_flags::*;
        let f = flags & (FIN | SYN | RST | PSH | ACK | URG);
        Some(if f == 0 {
            FlagCombo::Null
        } else if f & (FIN | PSH | URG) == FIN | PSH | URG {
            FlagCombo::Xmas
        } else if f & (SYN | FIN) == SYN | FIN {
            FlagCombo::SynFin
        } else if f & (SYN | RST) == SYN | RST {
            FlagCombo::SynRst
        } else if f & FIN != 0 && f & ACK == 0 {
            FlagCombo::FinWithoutAck
        } else {
            return None;
        })
    }

    /// Human name (`alert.context.scram.flags`).
    pub fn name(self) -> &'static str {
        match self {
            FlagCombo::Null => "NULL",
            FlagCombo::FinWithoutAck => "FIN without ACK",
            FlagCombo::Xmas => "XMAS (FIN+PSH+URG)",
            FlagCombo::SynFin => "SYN+FIN",
            FlagCombo::SynRst => "SYN+RST",
        }
    }
}

/// `[detect.tcp-flags]`: on or off.
pub type Settings = Toggle;

/// Stateless: every illegal segment is an alert (suppression keeps repeats down).
#[derive(Debug)]
pub struct TcpFlags;

impl Family for TcpFlags {
    type Settings = Settings;
    type Raw = (Option<RawToggle>,);
    const KEY: Key = Key::Source;

    /// TCP segments with an illegal combination of flags.
    #[inline]
    fn wants(packet: &crate::decode::Packet, s: &Settings) -> bool {
        s.enabled
            && matches!(&packet.net, crate::decode::Net::Ip(ip)
                if matches!(ip.transport, Transport::Tcp { flags, .. } if FlagCombo::of(flags).is_some()))
    }

    fn new(_capacity: usize, _hasher: SeededState) -> Self {
        TcpFlags
    }

    #[inline]
    fn observe(&mut self, seen: &Seen<'_>, s: &Settings, out: &mut Out<'_>) {
        if !s.enabled {
            return;
        }
        let Some(ip) = seen.ip() else { return };
        let Transport::Tcp { flags, .. } = ip.transport else {
            return;
        };
        if let Some(combo) = FlagCombo::of(flags) {
            out.send_with(Detector::TcpFlags, ip.pair(), seen.ts_ns, || Alert {
                detector: Detector::TcpFlags,
                detail: Detail::Flags(combo.name(), flags),
                ..seen.flow(ip)
            });
        }
    }

    fn configure(s: &mut Settings, (raw,): Self::Raw) -> Result<(), SpanError> {
        s.configure(raw);
        Ok(())
    }

    fn toml(s: &Settings) -> String {
        s.toml("tcp-flags")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_combinations() {
        use tcp_flags::*;
        assert_eq!(FlagCombo::of(0), Some(FlagCombo::Null));
        assert_eq!(FlagCombo::of(FIN | PSH | URG), Some(FlagCombo::Xmas));
        assert_eq!(FlagCombo::of(FIN | PSH | URG | ACK), Some(FlagCombo::Xmas));
        assert_eq!(FlagCombo::of(SYN | FIN), Some(FlagCombo::SynFin));
        assert_eq!(FlagCombo::of(SYN | RST), Some(FlagCombo::SynRst));
        assert_eq!(FlagCombo::of(FIN), Some(FlagCombo::FinWithoutAck));
        for legal in [
            SYN,
            SYN | ACK,
            ACK,
            FIN | ACK,
            RST,
            RST | ACK,
            PSH | ACK,
            0x40 | SYN,
            0x80 | SYN | ACK,
        ] {
            assert_eq!(FlagCombo::of(legal), None, "{legal:#x}");
        }
    }
}
