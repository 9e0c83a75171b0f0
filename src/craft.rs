//! Frame crafting for tests, benchmarks and fuzz seeds: well-formed Ethernet frames with IPv4 or
//! IPv6, TCP, UDP, ICMP, ICMPv6 or ARP, optionally VLAN-tagged. Not used by the daemon itself.

use std::net::{IpAddr, Ipv4Addr};

use crate::decode::{ethertype, proto};

/// Default MACs: locally administered unicast.
pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
/// Second default MAC.
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// An Ethernet frame with `tags` (TPID, TCI) before `ethertype`, padded to 60 bytes.
pub fn ethernet(
    src: [u8; 6],
    dst: [u8; 6],
    tags: &[(u16, u16)],
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + 4 * tags.len() + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (checksummed) followed by `payload`; `frag` is (offset in 8-byte units, more).
pub fn ipv4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    frag: (u16, bool),
    payload: &[u8],
) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    let ff = (frag.0 & 0x1fff) | if frag.1 { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&ff.to_be_bytes());
    h[8] = 64;
    h[9] = protocol;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An IPv6 header followed by `payload` (which starts with the header `next` names).
pub fn ipv6(src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    h[6] = next;
    h[7] = 64;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

/// A 20-byte TCP header.
pub fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    h[14..16].copy_from_slice(&1024u16.to_be_bytes());
    h
}

/// A UDP header and payload.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 8];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An ICMP or ICMPv6 header (type, code, checksum, 4 bytes rest) and payload.
pub fn icmp(ty: u8, code: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![ty, code, 0, 0, 0, 1, 0, 1];
    h.extend_from_slice(payload);
    h
}

/// An ARP packet for IPv4 over Ethernet.
pub fn arp(
    op: u16,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sender_mac);
    a.extend_from_slice(&sender_ip.octets());
    a.extend_from_slice(&target_mac);
    a.extend_from_slice(&target_ip.octets());
    a
}

/// An IP packet of either version carrying `l4` of protocol `protocol`, in an Ethernet frame.
pub fn ip_frame(src: IpAddr, dst: IpAddr, protocol: u8, l4: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ethernet(
            MAC_A,
            MAC_B,
            tags,
            ethertype::IPV4,
            &ipv4(s, d, protocol, (0, false), l4),
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => ethernet(
            MAC_A,
            MAC_B,
            tags,
            ethertype::IPV6,
            &ipv6(s, d, protocol, l4),
        ),
        (s, d) => panic!("address families differ: {s} -> {d}"),
    }
}

/// A TCP segment in an Ethernet frame.
pub fn tcp_frame(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    ip_frame(src, dst, proto::TCP, &tcp(sport, dport, flags), &[])
}

/// A UDP datagram in an Ethernet frame.
pub fn udp_frame(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    ip_frame(src, dst, proto::UDP, &udp(sport, dport, payload), &[])
}

/// An ICMP (IPv4) or ICMPv6 (IPv6) message in an Ethernet frame.
pub fn icmp_frame(src: IpAddr, dst: IpAddr, ty: u8, code: u8) -> Vec<u8> {
    let p = if src.is_ipv4() {
        proto::ICMP
    } else {
        proto::ICMPV6
    };
    ip_frame(src, dst, p, &icmp(ty, code, &[0; 16]), &[])
}

/// An ARP packet in an Ethernet frame from `sender_mac` (broadcast for requests).
pub fn arp_frame(
    op: u16,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let dst = if op == 1 { [0xff; 6] } else { target_mac };
    ethernet(
        sender_mac,
        dst,
        &[],
        ethertype::ARP,
        &arp(op, sender_mac, sender_ip, target_mac, target_ip),
    )
}

/// A mixed corpus for benchmarks and tests: `rounds` x 14 frames of web (handshake and data),
/// DNS, pings, a SYN scan, a sweep, XMAS segments, IPv6 SYNs, neighbour solicitations, QinQ,
/// ARP replies flipping a binding, and a SYN flood from spoofed sources.
pub fn mixed_corpus(rounds: u32) -> Vec<Vec<u8>> {
    use crate::decode::tcp_flags::{ACK, FIN, PSH, SYN, URG};
    let v4 = |n: u32| IpAddr::V4(Ipv4Addr::from(n));
    let v6 = |s: &str| IpAddr::V6(s.parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST));
    let client = v4(0xc000_0207);
    let server = v4(0xc633_6402);
    let mut c = Vec::with_capacity(rounds as usize * 14);
    for i in 0..rounds {
        let p = i as u16;
        c.push(tcp_frame(client, server, 50000 + p, 443, SYN));
        c.push(tcp_frame(server, client, 443, 50000 + p, SYN | ACK));
        c.push(tcp_frame(client, server, 50000 + p, 443, PSH | ACK));
        c.push(udp_frame(client, server, 30000 + p, 53, b"query"));
        c.push(icmp_frame(client, server, 8, 0));
        c.push(tcp_frame(client, server, 40000, 1 + p, SYN));
        c.push(tcp_frame(client, v4(0xc633_6400 + i), 40000, 22, SYN));
        c.push(tcp_frame(client, server, 40000, 80, FIN | PSH | URG));
        c.push(tcp_frame(
            v6("2001:db8::7"),
            v6("2001:db8::2"),
            40000,
            1 + p,
            SYN,
        ));
        c.push(icmp_frame(v6("fe80::1"), v6("ff02::1:ff00:1"), 135, 0));
        c.push(ip_frame(
            client,
            server,
            proto::UDP,
            &udp(1, 2, b""),
            &[(0x88a8, 10), (0x8100, 20)],
        ));
        let mac = if i % 2 == 0 { MAC_A } else { MAC_B };
        c.push(arp_frame(
            2,
            mac,
            Ipv4Addr::new(192, 0, 2, 1),
            MAC_B,
            Ipv4Addr::new(192, 0, 2, 7),
        ));
        c.push(tcp_frame(
            v4(0x0a00_0000 + i.wrapping_mul(7919)),
            server,
            1000 + p,
            80,
            SYN,
        ));
        c.push(tcp_frame(server, client, 80, 1000 + p, ACK));
    }
    c
}
