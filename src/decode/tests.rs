use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::craft;

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn tcp_over_ipv4() {
    let f = craft::tcp_frame(
        v4("192.0.2.7"),
        v4("198.51.100.2"),
        40000,
        22,
        tcp_flags::SYN,
    );
    let p = decode_ethernet(&f, None).unwrap();
    assert_eq!(p.src_mac, craft::MAC_A);
    let Net::Ip(ip) = p.net else { panic!("{p:?}") };
    assert_eq!(
        (ip.src, ip.dst, ip.proto, ip.fragment),
        (
            v4("192.0.2.7").into(),
            v4("198.51.100.2").into(),
            6,
            Fragment::No
        )
    );
    assert_eq!(
        ip.transport,
        Transport::Tcp {
            sport: 40000,
            dport: 22,
            flags: tcp_flags::SYN
        }
    );
}

#[test]
fn ipv4_options_are_skipped() {
    let mut l3 = craft::ipv4(
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        17,
        (0, false),
        &[],
    );
    l3[0] = 0x46; // 24-byte header: one word of options
    l3.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL, inserted before the payload
    l3.extend_from_slice(&craft::udp(53, 5353, b"x"));
    let total = l3.len() as u16;
    l3[2..4].copy_from_slice(&total.to_be_bytes());
    let f = craft::ethernet(craft::MAC_A, craft::MAC_B, &[], ethertype::IPV4, &l3);
    let Net::Ip(ip) = decode_ethernet(&f, None).unwrap().net else {
        panic!()
    };
    assert_eq!(
        ip.transport,
        Transport::Udp {
            sport: 53,
            dport: 5353
        }
    );
}

#[test]
fn fragments_carry_ports_only_in_the_first() {
    let src = Ipv4Addr::new(192, 0, 2, 1);
    let dst = Ipv4Addr::new(192, 0, 2, 2);
    let first = craft::ethernet(
        craft::MAC_A,
        craft::MAC_B,
        &[],
        ethertype::IPV4,
        &craft::ipv4(src, dst, 17, (0, true), &craft::udp(1, 2, &[0; 16])),
    );
    let later = craft::ethernet(
        craft::MAC_A,
        craft::MAC_B,
        &[],
        ethertype::IPV4,
        &craft::ipv4(src, dst, 17, (3, false), &[0xff; 24]),
    );
    let Net::Ip(a) = decode_ethernet(&first, None).unwrap().net else {
        panic!()
    };
    let Net::Ip(b) = decode_ethernet(&later, None).unwrap().net else {
        panic!()
    };
    assert_eq!(
        (a.fragment, a.transport.ports()),
        (Fragment::First, Some((1, 2)))
    );
    assert_eq!(
        (b.fragment, b.transport),
        (Fragment::Later, Transport::None)
    );
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
    // Hop-by-hop (8 bytes) -> destination options (16 bytes) -> fragment (first) -> TCP.
    let mut payload = vec![60, 0, 1, 4, 0, 0, 0, 0];
    payload.extend_from_slice(&[44, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    payload.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 7]);
    payload.extend_from_slice(&craft::tcp(1234, 443, tcp_flags::SYN));
    let f = craft::ethernet(
        craft::MAC_A,
        craft::MAC_B,
        &[],
        ethertype::IPV6,
        &craft::ipv6(src, dst, 0, &payload),
    );
    let Net::Ip(ip) = decode_ethernet(&f, None).unwrap().net else {
        panic!()
    };
    assert_eq!((ip.proto, ip.fragment), (6, Fragment::First));
    assert_eq!(
        ip.transport,
        Transport::Tcp {
            sport: 1234,
            dport: 443,
            flags: tcp_flags::SYN
        }
    );

    // A later fragment has no transport header.
    let later = [17u8, 0, 0x01, 0x00, 0, 0, 0, 7, 0xde, 0xad];
    let f = craft::ethernet(
        craft::MAC_A,
        craft::MAC_B,
        &[],
        ethertype::IPV6,
        &craft::ipv6(src, dst, 44, &later),
    );
    let Net::Ip(ip) = decode_ethernet(&f, None).unwrap().net else {
        panic!()
    };
    assert_eq!(
        (ip.fragment, ip.transport),
        (Fragment::Later, Transport::None)
    );
}

#[test]
fn vlan_tags_in_frame_and_from_ring_header() {
    let f = craft::ip_frame(
        v4("192.0.2.1"),
        v4("192.0.2.2"),
        17,
        &craft::udp(1, 2, &[]),
        &[(0x88a8, 200), (0x8100, 300)],
    );
    let p = decode_ethernet(&f, None).unwrap();
    assert_eq!(p.vlans, [Some(200), Some(300)]);
    assert!(matches!(p.net, Net::Ip(_)));
    // The kernel moved the outer tag into the ring header; the inner is still in the frame.
    let f = craft::ip_frame(
        v4("192.0.2.1"),
        v4("192.0.2.2"),
        17,
        &craft::udp(1, 2, &[]),
        &[(0x8100, 300)],
    );
    let p = decode_ethernet(
        &f,
        Some(VlanTag {
            tci: 0x2000 | 200,
            tpid: 0x88a8,
        }),
    )
    .unwrap();
    assert_eq!(p.vlans, [Some(200), Some(300)]);
    // Three stacked tags (a carrier's QinQ over a customer tag) decode; the first two are kept.
    let f = craft::ip_frame(
        v4("192.0.2.1"),
        v4("192.0.2.2"),
        17,
        &craft::udp(1, 2, &[]),
        &[(0x88a8, 1), (0x8100, 2), (0x8100, 3)],
    );
    let p = decode_ethernet(&f, None).unwrap();
    assert_eq!(p.vlans, [Some(1), Some(2)]);
    assert!(matches!(p.net, Net::Ip(_)));
    // Up to the bound, the ring header's tag included; one more is an error.
    let tags: Vec<(u16, u16)> = (0..MAX_VLAN_TAGS as u16 - 1).map(|i| (0x8100, i)).collect();
    let ring = Some(VlanTag {
        tci: 7,
        tpid: 0x8100,
    });
    let f = craft::ip_frame(
        v4("192.0.2.1"),
        v4("192.0.2.2"),
        17,
        &craft::udp(1, 2, &[]),
        &tags,
    );
    assert!(decode_ethernet(&f, ring).is_ok());
    let tags: Vec<(u16, u16)> = (0..MAX_VLAN_TAGS as u16).map(|i| (0x8100, i)).collect();
    let f = craft::ip_frame(
        v4("192.0.2.1"),
        v4("192.0.2.2"),
        17,
        &craft::udp(1, 2, &[]),
        &tags,
    );
    assert_eq!(
        decode_ethernet(&f, ring).unwrap_err().problem,
        Problem::TooManyTags
    );
}

/// The IP packet of an untagged Ethernet frame.
fn ip_of(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

#[test]
fn cooked_captures_v1_and_v2() {
    let f = craft::tcp_frame(
        v4("192.0.2.7"),
        v4("198.51.100.2"),
        40000,
        22,
        tcp_flags::SYN,
    );
    let expect = decode_ethernet(&f, None).unwrap().net;
    // v1: outgoing (4), ARPHRD_ETHER, 6-byte address, protocol IPv4.
    let mut sll = vec![0, 4, 0, 1, 0, 6];
    sll.extend_from_slice(&craft::MAC_A);
    sll.extend_from_slice(&[0, 0, 0x08, 0x00]);
    sll.extend_from_slice(ip_of(&f));
    let p = decode_sll(&sll).unwrap();
    assert_eq!(
        (p.net, p.src_mac, p.on_loopback),
        (expect, craft::MAC_A, false)
    );
    // v2: protocol, reserved, ifindex, ARPHRD_LOOPBACK, packet type, address length, address.
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 0x03, 0x04, 0, 6];
    sll2.extend_from_slice(&[0; 8]);
    sll2.extend_from_slice(ip_of(&f));
    let p = decode_sll2(&sll2).unwrap();
    assert_eq!((p.net, p.on_loopback), (expect, true));
    // A VLAN tag inside a cooked capture is followed like Ethernet's.
    let tagged = craft::ip_frame(
        v4("192.0.2.7"),
        v4("198.51.100.2"),
        6,
        &craft::tcp(40000, 22, tcp_flags::SYN),
        &[(0x8100, 42)],
    );
    let mut sll = vec![0, 0, 0, 1, 0, 6];
    sll.extend_from_slice(&craft::MAC_A);
    sll.extend_from_slice(&[0, 0]);
    sll.extend_from_slice(&tagged[12..]);
    let p = decode_sll(&sll).unwrap();
    assert_eq!((p.net, p.vlans[0]), (expect, Some(42)));
    assert_eq!(decode_sll(&sll[..10]).unwrap_err().layer, Layer::Cooked);
    assert_eq!(decode_sll2(&sll2[..19]).unwrap_err().layer, Layer::Cooked);
}

#[test]
fn bsd_loopback_in_either_byte_order() {
    let f4 = craft::udp_frame(v4("127.0.0.1"), v4("127.0.0.1"), 5353, 53, b"q");
    let f6 = craft::ethernet(
        craft::MAC_A,
        craft::MAC_B,
        &[],
        ethertype::IPV6,
        &craft::ipv6(
            "::1".parse().unwrap(),
            "::1".parse().unwrap(),
            17,
            &craft::udp(1, 2, &[]),
        ),
    );
    for (family, frame) in [(2u32, &f4), (10, &f6), (24, &f6), (28, &f6), (30, &f6)] {
        for header in [family.to_le_bytes(), family.to_be_bytes()] {
            let mut bytes = header.to_vec();
            bytes.extend_from_slice(ip_of(frame));
            let p = decode_null(&bytes).unwrap();
            assert_eq!(
                p.net,
                decode_ethernet(frame, None).unwrap().net,
                "family {family}"
            );
        }
    }
    // Another family is another protocol, not an error.
    let mut bytes = 7u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(ip_of(&f4));
    assert_eq!(decode_null(&bytes).unwrap().net, Net::Other(0));
}

#[test]
fn segmentation_offload_leaves_a_total_length_of_zero() {
    let mut f = craft::tcp_frame(
        v4("192.0.2.7"),
        v4("198.51.100.2"),
        40000,
        443,
        tcp_flags::ACK,
    );
    f[16] = 0;
    f[17] = 0;
    let Net::Ip(ip) = decode_ethernet(&f, None).unwrap().net else {
        panic!()
    };
    assert_eq!(ip.transport.ports(), Some((40000, 443)));
}

#[test]
fn a_tiny_first_fragment_is_what_it_is() {
    let tcp = craft::tcp(40000, 22, tcp_flags::SYN);
    // nmap -f: the first fragment carries 8 bytes of the TCP header (ports and sequence).
    let ip = craft::ipv4(
        "192.0.2.7".parse().unwrap(),
        "198.51.100.2".parse().unwrap(),
        proto::TCP,
        (0, true),
        &tcp[..8],
    );
    let f = craft::ethernet(craft::MAC_A, craft::MAC_B, &[], ethertype::IPV4, &ip);
    let Net::Ip(ip) = decode_ethernet(&f, None).unwrap().net else {
        panic!()
    };
    assert_eq!(
        (ip.fragment, ip.transport),
        (
            Fragment::First,
            Transport::TinyFragment {
                ports: Some((40000, 22))
            }
        )
    );
    assert_eq!(ip.frag_id, 0x1234);
    // Two bytes: not even the ports.
    let ip = craft::ipv4(
        "192.0.2.7".parse().unwrap(),
        "198.51.100.2".parse().unwrap(),
        proto::TCP,
        (0, true),
        &tcp[..2],
    );
    let f = craft::ethernet(craft::MAC_A, craft::MAC_B, &[], ethertype::IPV4, &ip);
    let Net::Ip(ip) = decode_ethernet(&f, None).unwrap().net else {
        panic!()
    };
    assert_eq!(ip.transport, Transport::TinyFragment { ports: None });
    // An unfragmented packet cut the same way is still a decode error.
    let ip = craft::ipv4(
        "192.0.2.7".parse().unwrap(),
        "198.51.100.2".parse().unwrap(),
        proto::TCP,
        (0, false),
        &tcp[..8],
    );
    let f = craft::ethernet(craft::MAC_A, craft::MAC_B, &[], ethertype::IPV4, &ip);
    assert_eq!(decode_ethernet(&f, None).unwrap_err().layer, Layer::Tcp);
}

#[test]
fn arp_and_other_ethertypes() {
    let f = craft::arp_frame(
        1,
        craft::MAC_A,
        Ipv4Addr::new(192, 0, 2, 1),
        [0; 6],
        Ipv4Addr::new(192, 0, 2, 2),
    );
    let Net::Arp(a) = decode_ethernet(&f, None).unwrap().net else {
        panic!()
    };
    assert_eq!(
        (a.operation, a.sender_mac, a.sender_ip),
        (1, craft::MAC_A, Ipv4Addr::new(192, 0, 2, 1))
    );
    let f = craft::ethernet(craft::MAC_A, craft::MAC_B, &[], 0x88cc, &[0; 40]);
    assert_eq!(decode_ethernet(&f, None).unwrap().net, Net::Other(0x88cc));
}

#[test]
fn malformed_frames_are_typed_errors() {
    let good = craft::tcp_frame(v4("192.0.2.7"), v4("198.51.100.2"), 1, 2, 2);
    assert_eq!(
        decode_ethernet(&good[..10], None).unwrap_err().layer,
        Layer::Ethernet
    );
    assert_eq!(
        decode_ethernet(&good[..20], None).unwrap_err().layer,
        Layer::Ipv4
    );
    assert_eq!(
        decode_ethernet(&good[..40], None).unwrap_err().layer,
        Layer::Tcp
    );
    let mut bad = good.clone();
    bad[14] = 0x42; // IHL 2
    assert_eq!(
        decode_ethernet(&bad, None).unwrap_err().problem,
        Problem::HeaderLength(8)
    );
    let mut bad = good.clone();
    bad[14] = 0x65; // version 6 under EtherType IPv4
    assert_eq!(
        decode_ethernet(&bad, None).unwrap_err().problem,
        Problem::Version(6)
    );
    let mut bad = good;
    bad[14 + 20 + 12] = 0x20; // TCP data offset 2
    assert_eq!(
        decode_ethernet(&bad, None).unwrap_err().problem,
        Problem::HeaderLength(8)
    );
}

#[test]
fn every_truncation_and_byte_value_is_handled() {
    let frames = [
        craft::tcp_frame(v4("192.0.2.7"), v4("198.51.100.2"), 1, 2, 2),
        craft::tcp_frame(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            1,
            2,
            2,
        ),
        craft::icmp_frame(
            "2001:db8::1".parse().unwrap(),
            "ff02::1".parse().unwrap(),
            135,
            0,
        ),
        craft::arp_frame(
            2,
            craft::MAC_A,
            Ipv4Addr::new(1, 2, 3, 4),
            craft::MAC_B,
            Ipv4Addr::new(5, 6, 7, 8),
        ),
        craft::ip_frame(
            v4("192.0.2.1"),
            v4("192.0.2.2"),
            17,
            &craft::udp(1, 2, &[]),
            &[(0x88a8, 200), (0x8100, 300)],
        ),
    ];
    for f in &frames {
        for cut in 0..f.len() {
            let _ = decode_ethernet(&f[..cut], None);
        }
        for pos in 0..f.len() {
            for v in [0u8, 1, 0x0f, 0x45, 0x60, 0x81, 0xff] {
                let mut b = f.clone();
                b[pos] = v;
                let _ = decode_ethernet(&b, None);
                let _ = decode_raw_ip(&b[14..]);
            }
        }
    }
}

#[test]
fn an_option_every_node_must_answer_is_marked_and_ordinary_options_are_not() {
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let me: Ipv6Addr = "fe80::1".parse().unwrap();
    let echo = craft::icmp(128, 0, b"");
    let with = |header: u8, options: [u8; 6]| -> bool {
        let mut ext = vec![58, 0];
        ext.extend_from_slice(&options);
        ext.extend_from_slice(&echo);
        let frame = craft::ethernet(
            craft::MAC_A,
            craft::MAC_B,
            &[],
            ethertype::IPV6,
            &craft::ipv6(me, all_nodes, header, &ext),
        );
        let p = decode_ethernet(&frame, None).unwrap();
        let Net::Ip(ip) = p.net else { panic!("{p:?}") };
        assert!(
            matches!(ip.transport, Transport::Icmpv6 { ty: 128, .. }),
            "{ip:?}"
        );
        ip.forcing_option
    };
    // alive6's destination option: type 0x80 (discard, answer even to multicast), then Pad1s.
    assert!(with(60, [0x80, 1, 0, 0, 0, 0]));
    assert!(with(0, [0xde, 0, 1, 2, 0, 0]));
    // MLD's router alert (hop-by-hop 0x05), PadN, and the home address option: ordinary.
    assert!(!with(0, [0x05, 2, 0, 0, 1, 0]));
    assert!(!with(60, [1, 4, 0, 0, 0, 0]));
    assert!(!with(60, [0xc9, 4, 0, 0, 0, 0]));
}

#[test]
fn addresses_are_their_table_keys_and_answer_as_ip_addresses_do() {
    let cases = [
        "0.0.0.0",
        "127.0.0.1",
        "192.0.2.7",
        "224.0.0.251",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "ff02::1:ff00:1",
        "2001:db8::7",
        // Either side of the classes' edges, which are tested on the address's bits.
        "126.255.255.255",
        "127.255.255.255",
        "128.0.0.0",
        "223.255.255.255",
        "239.255.255.255",
        "240.0.0.0",
        "::2",
        "ff00::",
        "feff::1",
    ];
    // And every first byte of an IPv4 and an IPv6 address.
    let spread = (0..=255u8)
        .map(|b| IpAddr::from([b, 1, 2, 3]))
        .chain((0..=255u16).map(|b| IpAddr::from([b << 8, 0, 0, 0, 0, 0, 0, 1])));
    for ip in spread {
        let a = Addr::from(ip);
        assert_eq!(a.is_loopback(), ip.is_loopback(), "{ip}");
        assert_eq!(a.is_multicast(), ip.is_multicast(), "{ip}");
        assert_eq!(a.is_unspecified(), ip.is_unspecified(), "{ip}");
    }
    for s in cases {
        let ip: IpAddr = s.parse().unwrap();
        let a = Addr::from(ip);
        assert_eq!(a.ip(), ip, "{s}");
        assert_eq!(format!("{a:?}"), s);
        assert_eq!(a.is_ipv4(), ip.is_ipv4(), "{s}");
        assert_eq!(a.is_unspecified(), ip.is_unspecified(), "{s}");
        assert_eq!(a.is_loopback(), ip.is_loopback(), "{s}");
        assert_eq!(a.is_multicast(), ip.is_multicast(), "{s}");
        assert_eq!(
            a.to_ipv4().map(IpAddr::V4).or(a.to_ipv6().map(IpAddr::V6)),
            Some(ip)
        );
        assert_eq!(a.key(), crate::detect::addr_key(ip), "{s}");
    }
    // Decoded, an IPv4 header's addresses are the keys of the same addresses.
    let f = craft::udp_frame(v4("192.0.2.7"), v4("198.51.100.2"), 1, 2, b"");
    let p = decode_ethernet(&f, None).unwrap();
    let Net::Ip(ip) = p.net else { panic!("{p:?}") };
    assert_eq!(
        (ip.src.ip(), ip.dst.ip()),
        (v4("192.0.2.7"), v4("198.51.100.2"))
    );
    assert!(ip.src < ip.dst);
}

/// Every frame of `frames`, cut short at every length and with every byte of its network layer
/// set to values that matter to a header (versions, lengths, protocols), decodes as `general`
/// decodes it whether `inline` takes it or leaves it to `general`.
fn inline_decodes_as_the_general_path(
    frames: &[Vec<u8>],
    inline: fn(&[u8]) -> Option<Ip>,
    general: fn(&[u8], usize) -> Result<Ip, DecodeError>,
) {
    let same = |bytes: &[u8]| {
        assert_eq!(
            format!("{:?}", inline(bytes).map_or_else(|| general(bytes, 14), Ok)),
            format!("{:?}", general(bytes, 14)),
            "{bytes:02x?}"
        );
    };
    for f in frames {
        let ip = &f[14..];
        for cut in 0..=ip.len() {
            same(&ip[..cut]);
        }
        for pos in 0..ip.len() {
            for v in [
                0u8, 1, 5, 6, 17, 0x0f, 0x14, 0x1c, 0x20, 0x3f, 0x40, 0x44, 0x45, 0x46, 0x4f, 0x50,
                0x60, 0x81, 0xff,
            ] {
                let mut m = ip.to_vec();
                m[pos] = v;
                same(&m);
            }
        }
    }
}

/// UDP with and without payload, a TCP SYN, an echo request (`echo`: its ICMP type) and a
/// VLAN-tagged frame from `a` to `b`: what the inline paths take, and what they leave.
fn inline_cases(a: IpAddr, b: IpAddr, echo: u8) -> [Vec<u8>; 5] {
    [
        craft::udp_frame(a, b, 1024, 53, &[0; 18]),
        craft::udp_frame(a, b, 1024, 53, &[]),
        craft::tcp_frame(a, b, 40000, 22, tcp_flags::SYN),
        craft::icmp_frame(a, b, echo, 0),
        craft::ip_frame(a, b, 17, &craft::udp(1, 2, &[]), &[(0x8100, 7)]),
    ]
}

#[test]
fn ipv4_udp_and_tcp_decode_inline_as_the_general_path_does() {
    let frames = inline_cases(v4("192.0.2.7"), v4("198.51.100.2"), 8);
    inline_decodes_as_the_general_path(&frames, ipv4_udp_tcp, decode_ipv4);
}

#[test]
fn ipv6_udp_and_tcp_decode_inline_as_the_general_path_does() {
    let (a, b): (IpAddr, IpAddr) = (
        "2001:db8::1".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
    );
    let frames = inline_cases(a, b, 128);
    inline_decodes_as_the_general_path(&frames, ipv6_udp_tcp, decode_ipv6);
}

/// The packet path's layout: the network layer's kind is a byte of its own (each detector family
/// asks it with one comparison, not by decoding a niche), and addresses aligned to 8 bytes
/// rather than 16 keep that byte from growing the packet.
#[test]
fn a_packet_is_88_bytes_with_its_network_layers_kind_in_a_byte_of_its_own() {
    assert_eq!(std::mem::size_of::<Addr>(), 16);
    assert_eq!(std::mem::align_of::<Addr>(), 8);
    assert_eq!(std::mem::size_of::<Ip>(), 56);
    assert_eq!(std::mem::size_of::<Net>(), 64);
    assert_eq!(std::mem::size_of::<Packet>(), 88);
}
