//! Community ID v1 flow hashing (corelight/community-id-spec): a flow's id is the same from both
//! ends and across tools (Suricata, Zeek), so alerts can be joined with their logs.
//!
//! Computed per alert, never per packet.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::decode::proto;

/// ICMP types with a counterpart, and the counterpart (the spec's "port equivalents").
fn icmp_counterpart(ty: u8) -> Option<u8> {
    Some(match ty {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        10 => 9,
        9 => 10,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

fn icmpv6_counterpart(ty: u8) -> Option<u8> {
    Some(match ty {
        128 => 129,
        129 => 128,
        133 => 134,
        134 => 133,
        135 => 136,
        136 => 135,
        130 => 131,
        131 => 130,
        139 => 140,
        140 => 139,
        144 => 145,
        145 => 144,
        _ => return None,
    })
}

/// The flow tuple as the spec hashes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol.
    pub proto: u8,
    /// Ports, or ICMP port equivalents; `None` for protocols without ports.
    pub ports: Option<(u16, u16)>,
    /// ICMP messages without a counterpart are one-way: never reordered.
    pub one_way: bool,
}

impl FlowTuple {
    /// A tuple from real ports (TCP, UDP, SCTP) or none.
    pub fn new(src: IpAddr, dst: IpAddr, proto: u8, ports: Option<(u16, u16)>) -> Self {
        FlowTuple {
            src,
            dst,
            proto,
            ports,
            one_way: false,
        }
    }

    /// A tuple for an ICMP or ICMPv6 message of `ty`/`code`, mapped to port equivalents.
    pub fn icmp(src: IpAddr, dst: IpAddr, proto_num: u8, ty: u8, code: u8) -> Self {
        let counterpart = if proto_num == proto::ICMPV6 {
            icmpv6_counterpart(ty)
        } else {
            icmp_counterpart(ty)
        };
        FlowTuple {
            src,
            dst,
            proto: proto_num,
            ports: Some((u16::from(ty), u16::from(counterpart.unwrap_or(code)))),
            one_way: counterpart.is_none(),
        }
    }

    /// A tuple from table values where ICMP ports are already port equivalents (as in the spec's
    /// baselines): one-way when the "source port" has no counterpart.
    pub fn from_equivalents(
        src: IpAddr,
        dst: IpAddr,
        proto_num: u8,
        ports: Option<(u16, u16)>,
    ) -> Self {
        let one_way = match (proto_num, ports) {
            (proto::ICMP, Some((t, _))) => icmp_counterpart(t as u8).is_none(),
            (proto::ICMPV6, Some((t, _))) => icmpv6_counterpart(t as u8).is_none(),
            _ => false,
        };
        FlowTuple {
            src,
            dst,
            proto: proto_num,
            ports,
            one_way,
        }
    }

    /// The tuple of a decoded packet (IP only).
    pub fn of(packet: &crate::decode::Packet) -> Option<FlowTuple> {
        use crate::decode::{Net, Transport};
        let Net::Ip(ip) = packet.net else {
            return None;
        };
        Some(match ip.transport {
            Transport::Icmp { ty, code, .. } | Transport::Icmpv6 { ty, code, .. } => {
                FlowTuple::icmp(ip.src.ip(), ip.dst.ip(), ip.proto, ty, code)
            }
            t => FlowTuple::new(ip.src.ip(), ip.dst.ip(), ip.proto, t.ports()),
        })
    }

    fn digest(&self, seed: u16) -> [u8; 20] {
        let (sp, dp) = self.ports.unwrap_or((0, 0));
        let (a, b) = (octets(self.src), octets(self.dst));
        let (a, b): (&[u8], &[u8]) = (&a.0[..a.1], &b.0[..b.1]);
        let ordered = self.one_way || a < b || (a == b && sp <= dp);
        let (a, b, sp, dp) = if ordered {
            (a, b, sp, dp)
        } else {
            (b, a, dp, sp)
        };
        let mut h = Sha1::new();
        h.update(seed.to_be_bytes());
        h.update(a);
        h.update(b);
        h.update([self.proto, 0]);
        if self.ports.is_some() {
            h.update(sp.to_be_bytes());
            h.update(dp.to_be_bytes());
        }
        h.finalize().into()
    }

    /// `1:` and the base64 digest.
    pub fn community_id(&self, seed: u16) -> String {
        format!(
            "1:{}",
            base64::engine::general_purpose::STANDARD.encode(self.digest(seed))
        )
    }

    /// `1:` and the hex digest.
    pub fn community_id_hex(&self, seed: u16) -> String {
        let d = self.digest(seed);
        let mut s = String::with_capacity(42);
        s.push_str("1:");
        for b in d {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

fn octets(ip: IpAddr) -> ([u8; 16], usize) {
    let mut o = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            o[..4].copy_from_slice(&v4.octets());
            (o, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_known_answer() {
        let t = FlowTuple::new(
            "1.2.3.4".parse().unwrap(),
            "5.6.7.8".parse().unwrap(),
            6,
            Some((1122, 3344)),
        );
        assert_eq!(t.community_id(0), "1:wCb3OG7yAFWelaUydu0D+125CLM=");
        // Both directions of a flow share the id.
        let r = FlowTuple::new(
            "5.6.7.8".parse().unwrap(),
            "1.2.3.4".parse().unwrap(),
            6,
            Some((3344, 1122)),
        );
        assert_eq!(r.community_id(0), t.community_id(0));
    }
}
