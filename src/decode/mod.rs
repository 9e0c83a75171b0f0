//! Decode: turns a frame (borrowed from the ring or a pcap file) into a [`Packet`], a small `Copy`
//! summary of what the detectors look at.
//!
//! Link layers: Ethernet, Linux cooked capture v1 and v2, BSD loopback (NULL and LOOP) and raw
//! IP. Then up to [`MAX_VLAN_TAGS`] 802.1Q/802.1ad tags (in the frame and from the ring header),
//! ARP, IPv4 (options skipped; a total length of 0, as TCP segmentation offload leaves it, means
//! "the captured length"; fragments: ports from first fragments only), IPv6 (extension headers
//! walked to the transport header), TCP, UDP, SCTP, ICMP, ICMPv6. A first fragment too short to
//! hold its transport header is a [`Transport::TinyFragment`], not an error. Each header is read
//! from a fixed-size array taken from the frame once its length is checked (so the reads need
//! no further checks, and a frame decodes in a few dozen instructions), and the packet path
//! decodes into a [`Packet`] it owns ([`decode_ethernet_into`]) rather than moving one out. Any
//! byte pattern yields a [`Packet`] or a [`DecodeError`] naming the layer, the offset and what was
//! wrong. Never allocates, never copies the frame, never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::capture::VlanTag;

/// EtherTypes scram understands.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ outer).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag.
    pub const QINQ_OLD: u16 = 0x9100;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol numbers.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
}

/// A decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Source MAC (zero for link types without one).
    pub src_mac: [u8; 6],
    /// Destination MAC (zero where the link layer does not carry it).
    pub dst_mac: [u8; 6],
    /// VLAN ids, outermost first (the first two of up to [`MAX_VLAN_TAGS`]).
    pub vlans: [Option<u16>; 2],
    /// The link layer says the frame was captured on a loopback device (a cooked capture's
    /// ARPHRD_LOOPBACK), where loopback addresses are normal.
    pub on_loopback: bool,
    /// What the frame carries.
    pub net: Net,
}

impl Packet {
    /// A packet of nothing: what decoding starts from.
    pub const EMPTY: Packet = Packet {
        src_mac: [0; 6],
        dst_mac: [0; 6],
        vlans: [None; 2],
        on_loopback: false,
        net: Net::Other(0),
    };

    fn new() -> Packet {
        Packet::EMPTY
    }
}

/// The network layer. Its kind is a byte of its own (`repr(u8)`), not a niche in [`Ip`]'s fields:
/// every detector family asks it of every packet, and a byte of its own is one comparison where
/// a niche took five or six instructions to decode (10-14 fewer a packet under callgrind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Net {
    /// An ARP packet (Ethernet/IPv4).
    Arp(Arp),
    /// An IPv4 or IPv6 packet.
    Ip(Ip),
    /// Anything else, by EtherType.
    Other(u16),
}

/// ARP for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub operation: u16,
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: [u8; 6],
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

/// Where a packet sits in a fragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragment {
    /// Not fragmented.
    No,
    /// First fragment (offset 0, more to come): carries the transport header.
    First,
    /// A later fragment: no transport header.
    Later,
}

/// An IP address as the packet path keeps it: 128 bits, an IPv4 address as its IPv4-mapped
/// IPv6 form (`::ffff:a.b.c.d`). Tables hash, compare and order it as it is, so the decoder
/// builds it once and nothing converts it again; [`Addr::ip`] gives the `IpAddr` for alerts.
/// (An IPv6 packet carrying a mapped address, which RFC 4291 keeps off the wire, reads as IPv4.)
/// Aligned to 8 bytes, not a `u128`'s 16: [`Net`]'s kind byte then costs 8 bytes of a packet,
/// not 16 (a packet is 88 bytes); the processor loads it as two words either way.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(C, packed(8))]
pub struct Addr(u128);

/// Bits 32..128 of an IPv4-mapped address.
const MAPPED: u128 = 0xffff << 32;

impl Addr {
    /// An IPv4 address from its four bytes.
    #[inline(always)]
    pub const fn v4(octets: [u8; 4]) -> Addr {
        Addr(MAPPED | u32::from_be_bytes(octets) as u128)
    }

    /// An IPv6 address from its sixteen bytes.
    #[inline(always)]
    pub const fn v6(octets: [u8; 16]) -> Addr {
        Addr(u128::from_be_bytes(octets))
    }

    /// Its 128 bits (the key tables use).
    #[inline(always)]
    pub const fn key(self) -> u128 {
        self.0
    }

    /// The address of a table key (the inverse of [`Addr::key`]).
    #[inline(always)]
    pub const fn from_key(key: u128) -> Addr {
        Addr(key)
    }

    /// Is it an IPv4 address?
    #[inline(always)]
    pub const fn is_ipv4(self) -> bool {
        self.0 >> 32 == 0xffff
    }

    /// The IPv4 address, if it is one.
    #[inline(always)]
    pub const fn to_ipv4(self) -> Option<Ipv4Addr> {
        if self.is_ipv4() {
            Some(Ipv4Addr::from_bits(self.0 as u32))
        } else {
            None
        }
    }

    /// The IPv6 address, if it is one (not an IPv4 address).
    #[inline(always)]
    pub const fn to_ipv6(self) -> Option<Ipv6Addr> {
        if self.is_ipv4() {
            None
        } else {
            Some(Ipv6Addr::from_bits(self.0))
        }
    }

    /// As the standard library's address.
    #[inline]
    pub const fn ip(self) -> IpAddr {
        match self.to_ipv4() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(self.0)),
        }
    }

    /// 0.0.0.0 or ::.
    #[inline(always)]
    pub const fn is_unspecified(self) -> bool {
        self.0 == MAPPED || self.0 == 0
    }

    /// 127/8 or ::1 (tested on the bits: `::ffff:127.0.0.0/104` or `::1`).
    #[inline(always)]
    pub const fn is_loopback(self) -> bool {
        self.0 >> 24 == (MAPPED | 0x7f00_0000) >> 24 || self.0 == 1
    }

    /// 224/4 or ff00::/8 (tested on the bits: `::ffff:224.0.0.0/100` or `ff00::/8`).
    #[inline(always)]
    pub const fn is_multicast(self) -> bool {
        self.0 >> 28 == (MAPPED | 0xe000_0000) >> 28 || self.0 >> 120 == 0xff
    }
}

impl From<IpAddr> for Addr {
    #[inline]
    fn from(a: IpAddr) -> Addr {
        match a {
            IpAddr::V4(v4) => Addr::v4(v4.octets()),
            IpAddr::V6(v6) => Addr::v6(v6.octets()),
        }
    }
}

/// As the address it is (`192.0.2.7`, `2001:db8::1`), in test failures and debug output.
impl std::fmt::Debug for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.ip().fmt(f)
    }
}

/// An IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Transport protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// Fragment position.
    pub fragment: Fragment,
    /// The datagram's identification (IPv4's, or the IPv6 fragment header's folded to 16 bits);
    /// with the addresses and protocol it joins a later fragment to the first one's ports.
    pub frag_id: u16,
    /// A fragment's offset in its datagram, bytes (0 for the first and for whole datagrams).
    pub frag_offset: u16,
    /// The payload length as the IP header says (a fragment's: its share), bytes.
    pub payload_len: u16,
    /// The transport header.
    pub transport: Transport,
    /// IPv6: an extension header carries an option no node knows and every node must answer
    /// with a parameter problem, multicast destination or not (action bits 10 or 11): how thc-ipv6
    /// alive6 makes every host on a link answer at once. Never set by ordinary traffic.
    pub forcing_option: bool,
    /// An IPv4 header, so both addresses are IPv4 ones (else IPv6, whatever its addresses look
    /// like).
    pub v4: bool,
    /// Set by the flow table: a TCP segment other than a SYN, or a datagram from a service port,
    /// that belongs to no conversation it follows (the stuff of ACK, RST and reflection floods).
    pub stray: bool,
    /// Set by the flow table: sent by the responder of a conversation the destination opened
    /// (an answer, however large or fast: a download is not a flood).
    pub reply: bool,
}

impl Ip {
    /// Its source and destination, as an alert about it names them.
    #[inline]
    pub fn pair(&self) -> (Option<Addr>, Option<Addr>) {
        (Some(self.src), Some(self.dst))
    }
}

/// The transport layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flag bits (FIN..CWR).
        flags: u8,
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// SCTP (common header only).
    Sctp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP.
    Icmp {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// Where the message body (an error's quoted packet) starts in the frame.
        body: u16,
    },
    /// ICMPv6.
    Icmpv6 {
        /// Type.
        ty: u8,
        /// Code.
        code: u8,
        /// Where the message body (an error's quoted packet) starts in the frame.
        body: u16,
    },
    /// A first fragment that ends inside its TCP, UDP or SCTP header (RFC 1858's tiny fragment:
    /// `nmap -f` cuts TCP after 8 bytes, so the flags travel in the second fragment). Carries
    /// the ports when the fragment holds them.
    TinyFragment {
        /// Source and destination port, when the first four bytes are there.
        ports: Option<(u16, u16)>,
    },
    /// A later fragment of a datagram whose first fragment was seen: no header of its own, but
    /// the datagram's ports (filled in by the pipeline, which remembers first fragments).
    LaterFragment {
        /// The datagram's source port.
        sport: u16,
        /// The datagram's destination port.
        dport: u16,
    },
    /// Another protocol, or a later fragment, or ESP: no header scram reads.
    None,
}

impl Transport {
    /// Source and destination ports, for TCP, UDP and SCTP (and a tiny first fragment of them
    /// that holds its ports).
    pub fn ports(&self) -> Option<(u16, u16)> {
        match *self {
            Transport::Tcp { sport, dport, .. }
            | Transport::Udp { sport, dport }
            | Transport::Sctp { sport, dport } => Some((sport, dport)),
            Transport::TinyFragment { ports } => ports,
            Transport::LaterFragment { sport, dport } => Some((sport, dport)),
            _ => None,
        }
    }
}

/// The layer a decode error occurred in; counters are kept per layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Layer {
    /// Ethernet header.
    Ethernet,
    /// A capture file's own link header (Linux cooked capture, BSD loopback).
    Cooked,
    /// VLAN tag.
    Vlan,
    /// ARP.
    Arp,
    /// IPv4 header.
    Ipv4,
    /// IPv6 header.
    Ipv6,
    /// IPv6 extension header.
    Ipv6Ext,
    /// TCP header.
    Tcp,
    /// UDP header.
    Udp,
    /// SCTP common header.
    Sctp,
    /// ICMP header.
    Icmp,
    /// ICMPv6 header.
    Icmpv6,
}

impl Layer {
    /// Every layer, in counter order.
    pub const ALL: [Layer; 12] = [
        Layer::Ethernet,
        Layer::Cooked,
        Layer::Vlan,
        Layer::Arp,
        Layer::Ipv4,
        Layer::Ipv6,
        Layer::Ipv6Ext,
        Layer::Tcp,
        Layer::Udp,
        Layer::Sctp,
        Layer::Icmp,
        Layer::Icmpv6,
    ];

    /// Lower-case name for logs and counters.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Ethernet => "ethernet",
            Layer::Cooked => "link-header",
            Layer::Vlan => "vlan",
            Layer::Arp => "arp",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Ipv6Ext => "ipv6-ext",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Sctp => "sctp",
            Layer::Icmp => "icmp",
            Layer::Icmpv6 => "icmpv6",
        }
    }
}

/// What was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Fewer bytes than the header needs.
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// IP version field does not match the EtherType.
    Version(u8),
    /// A header length field is impossible (too small, or larger than the packet).
    HeaderLength(usize),
    /// More VLAN tags than scram follows ([`MAX_VLAN_TAGS`], the ring header's included).
    TooManyTags,
    /// More IPv6 extension headers than scram walks.
    TooManyExtensions,
    /// ARP for something other than IPv4 over Ethernet.
    ArpFormat,
}

/// A frame that could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} at offset {offset}: {problem:?}", layer.name())]
pub struct DecodeError {
    /// The layer.
    pub layer: Layer,
    /// Offset of that layer's header in the frame.
    pub offset: usize,
    /// What was wrong.
    pub problem: Problem,
}

#[cold]
#[inline(never)]
fn err(layer: Layer, offset: usize, problem: Problem) -> DecodeError {
    DecodeError {
        layer,
        offset,
        problem,
    }
}

#[cold]
#[inline(never)]
fn truncated(layer: Layer, offset: usize, need: usize, have: usize) -> DecodeError {
    err(layer, offset, Problem::Truncated { need, have })
}

/// The first `N` bytes of `bytes` as an array (so reading them needs no further bounds checks),
/// or the error of a `layer` header at `offset` cut short.
#[inline(always)]
fn header<const N: usize>(
    layer: Layer,
    offset: usize,
    bytes: &[u8],
) -> Result<&[u8; N], DecodeError> {
    bytes
        .first_chunk::<N>()
        .ok_or_else(|| truncated(layer, offset, N, bytes.len()))
}

fn need(layer: Layer, offset: usize, bytes: &[u8], n: usize) -> Result<(), DecodeError> {
    if bytes.len() < n {
        return Err(truncated(layer, offset, n, bytes.len()));
    }
    Ok(())
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn mac_at(b: &[u8], at: usize) -> [u8; 6] {
    // Copied, not built a byte at a time: a word and a half-word.
    let mut mac = [0; 6];
    mac.copy_from_slice(&b[at..at + 6]);
    mac
}

/// Most IPv6 extension headers walked before giving up.
const MAX_EXTENSIONS: usize = 8;

/// Most VLAN tags followed (the ring header's included): QinQ carriers stack two or three;
/// more is a frame built to exhaust a parser.
pub const MAX_VLAN_TAGS: usize = 8;

/// Decodes an Ethernet frame; `ring_tag` is the outer tag the kernel moved into the ring header.
pub fn decode_ethernet(frame: &[u8], ring_tag: Option<VlanTag>) -> Result<Packet, DecodeError> {
    let mut packet = Packet::new();
    decode_ethernet_into(frame, ring_tag, &mut packet)?;
    Ok(packet)
}

/// [`decode_ethernet`] into a packet the caller owns (the packet path's: nothing is moved).
/// Every field of `packet` is written.
#[inline(always)]
pub fn decode_ethernet_into(
    frame: &[u8],
    ring_tag: Option<VlanTag>,
    packet: &mut Packet,
) -> Result<(), DecodeError> {
    let h = header::<14>(Layer::Ethernet, 0, frame)?;
    packet.dst_mac = mac_at(h, 0);
    packet.src_mac = mac_at(h, 6);
    packet.on_loopback = false;
    let ethertype = be16(h, 12);
    let tags = match ring_tag {
        Some(tag) => {
            packet.vlans = [Some(tag.vid()), None];
            1
        }
        None => {
            packet.vlans = [None; 2];
            0
        }
    };
    // The common frames (untagged, or with the tag the kernel took into the ring header),
    // decoded without the tag loop.
    match ethertype {
        ethertype::IPV4 => decode_ip_into(&frame[14..], 14, false, &mut packet.net),
        ethertype::IPV6 => decode_ip_into(&frame[14..], 14, true, &mut packet.net),
        _ => decode_ethertype(frame, 14, ethertype, tags, packet),
    }
}

/// Decodes an IPv4 or (`v6`) IPv6 packet at `offset` straight into `net`: UDP and TCP inline,
/// the rest through the general path (an untagged frame's, a tagged one's, a cooked capture's).
#[inline(always)]
fn decode_ip_into(bytes: &[u8], offset: usize, v6: bool, net: &mut Net) -> Result<(), DecodeError> {
    *net = Net::Ip(if v6 {
        match ipv6_udp_tcp(bytes) {
            Some(ip) => ip,
            None => decode_ipv6(bytes, offset)?,
        }
    } else {
        match ipv4_udp_tcp(bytes) {
            Some(ip) => ip,
            None => decode_ipv4(bytes, offset)?,
        }
    });
    Ok(())
}

/// Follows VLAN tags from `offset`, where a header of `ethertype` starts, then decodes the
/// network layer into `packet` (which already counts `tags` tags).
fn decode_ethertype(
    frame: &[u8],
    mut offset: usize,
    mut ethertype: u16,
    mut tags: usize,
    packet: &mut Packet,
) -> Result<(), DecodeError> {
    while matches!(
        ethertype,
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD
    ) {
        let tag = header::<4>(Layer::Vlan, offset, frame.get(offset..).unwrap_or_default())?;
        if tags == MAX_VLAN_TAGS {
            return Err(err(Layer::Vlan, offset, Problem::TooManyTags));
        }
        if let Some(slot) = packet.vlans.get_mut(tags) {
            *slot = Some(be16(tag, 0) & 0x0fff);
        }
        tags += 1;
        ethertype = be16(tag, 2);
        offset += 4;
    }
    let payload = frame.get(offset..).unwrap_or_default();
    match ethertype {
        ethertype::IPV4 => decode_ip_into(payload, offset, false, &mut packet.net),
        ethertype::IPV6 => decode_ip_into(payload, offset, true, &mut packet.net),
        ethertype::ARP => {
            packet.net = Net::Arp(decode_arp(payload, offset)?);
            Ok(())
        }
        other => {
            packet.net = Net::Other(other);
            Ok(())
        }
    }
}

/// ARPHRD_ETHER, ARPHRD_LOOPBACK: the device types of a cooked capture's header whose address is
/// a MAC, and which marks a loopback device.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

/// Decodes a Linux cooked capture v1 frame (LINKTYPE_LINUX_SLL, `tcpdump -i any`): packet type,
/// device type, address length, 8 address bytes, protocol (an EtherType for IP, ARP and VLAN).
pub fn decode_sll(frame: &[u8]) -> Result<Packet, DecodeError> {
    let h = header::<16>(Layer::Cooked, 0, frame)?;
    let mut packet = cooked_packet(be16(h, 2), be16(h, 4), &h[6..14]);
    decode_ethertype(frame, 16, be16(h, 14), 0, &mut packet)?;
    Ok(packet)
}

/// Decodes a Linux cooked capture v2 frame (LINKTYPE_LINUX_SLL2): protocol, reserved, interface
/// index, device type, packet type, address length, 8 address bytes.
pub fn decode_sll2(frame: &[u8]) -> Result<Packet, DecodeError> {
    let h = header::<20>(Layer::Cooked, 0, frame)?;
    let mut packet = cooked_packet(be16(h, 8), u16::from(h[11]), &h[12..20]);
    decode_ethertype(frame, 20, be16(h, 0), 0, &mut packet)?;
    Ok(packet)
}

fn cooked_packet(hatype: u16, addr_len: u16, addr: &[u8]) -> Packet {
    let mut packet = Packet::new();
    if hatype == ARPHRD_ETHER && addr_len == 6 {
        packet.src_mac = mac_at(addr, 0);
    }
    packet.on_loopback = hatype == ARPHRD_LOOPBACK;
    packet
}

/// Decodes a BSD loopback frame (LINKTYPE_NULL in the capturing host's byte order, LINKTYPE_LOOP
/// in network order): a 4-byte address family, then the IP packet. AF_INET is 2 everywhere;
/// AF_INET6 is 10 on Linux, 24, 28 or 30 on the BSDs and macOS.
pub fn decode_null(frame: &[u8]) -> Result<Packet, DecodeError> {
    let h = header::<4>(Layer::Cooked, 0, frame)?;
    let le = u32::from_le_bytes(*h);
    let family = if le & 0xffff_0000 != 0 {
        le.swap_bytes()
    } else {
        le
    };
    let ethertype = match family {
        2 => ethertype::IPV4,
        10 | 24 | 28 | 30 => ethertype::IPV6,
        // Not an IP family: counted as another protocol (no EtherType stands for it).
        _ => 0,
    };
    let mut packet = Packet::new();
    decode_ethertype(frame, 4, ethertype, 0, &mut packet)?;
    Ok(packet)
}

/// Decodes a raw IP packet (pcap link types RAW, IPV4, IPV6), choosing the version from its
/// first nibble.
pub fn decode_raw_ip(bytes: &[u8]) -> Result<Packet, DecodeError> {
    let net = match bytes.first().map(|b| b >> 4) {
        Some(6) => decode_ipv6(bytes, 0)?,
        _ => decode_ipv4(bytes, 0)?,
    };
    Ok(Packet {
        net: Net::Ip(net),
        ..Packet::new()
    })
}

fn decode_arp(bytes: &[u8], offset: usize) -> Result<Arp, DecodeError> {
    let h = header::<28>(Layer::Arp, offset, bytes)?;
    // Hardware type is not checked (any link whose addresses are 6 bytes), as before.
    if h[4] != 6 || h[5] != 4 || be16(h, 2) != ethertype::IPV4 {
        return Err(err(Layer::Arp, offset, Problem::ArpFormat));
    }
    Ok(Arp {
        operation: be16(h, 6),
        sender_mac: mac_at(h, 8),
        sender_ip: Ipv4Addr::new(h[14], h[15], h[16], h[17]),
        target_mac: mac_at(h, 18),
        target_ip: Ipv4Addr::new(h[24], h[25], h[26], h[27]),
    })
}

#[inline(always)]
fn decode_ipv4(bytes: &[u8], offset: usize) -> Result<Ip, DecodeError> {
    let h = header::<20>(Layer::Ipv4, offset, bytes)?;
    let version = h[0] >> 4;
    if version != 4 {
        return Err(err(Layer::Ipv4, offset, Problem::Version(version)));
    }
    let header_len = usize::from(h[0] & 0x0f) * 4;
    let total_len = match usize::from(be16(h, 2)) {
        // Segmentation offload hands the capture one large segment before the NIC cuts it up.
        0 => bytes.len(),
        n => n,
    };
    if header_len < 20 || header_len > bytes.len() || total_len < header_len {
        return Err(err(Layer::Ipv4, offset, Problem::HeaderLength(header_len)));
    }
    // Trailing Ethernet padding is not payload; a capture cut short keeps what it has.
    let end = total_len.min(bytes.len());
    let payload = &bytes[header_len..end];
    let flags_offset = be16(h, 6);
    let more_fragments = flags_offset & 0x2000 != 0;
    let frag_offset_field = flags_offset & 0x1fff;
    let fragment = match (frag_offset_field, more_fragments) {
        (0, false) => Fragment::No,
        (0, true) => Fragment::First,
        _ => Fragment::Later,
    };
    let proto = h[9];
    // UDP and TCP, whole and long enough, without the general path's error plumbing.
    let transport = match (fragment, proto, payload.first_chunk::<20>()) {
        (Fragment::No, proto::UDP, _) if payload.len() >= 8 => Transport::Udp {
            sport: be16(payload, 0),
            dport: be16(payload, 2),
        },
        (Fragment::No, proto::TCP, Some(t)) if t[12] >> 4 >= 5 => Transport::Tcp {
            sport: be16(t, 0),
            dport: be16(t, 2),
            flags: t[13],
        },
        _ => transport_of(fragment, proto, payload, offset + header_len)?,
    };
    Ok(Ip {
        src: Addr::v4([h[12], h[13], h[14], h[15]]),
        dst: Addr::v4([h[16], h[17], h[18], h[19]]),
        proto,
        fragment,
        frag_id: be16(h, 4),
        frag_offset: frag_offset_field.wrapping_mul(8),
        payload_len: u16::try_from(total_len - header_len).unwrap_or(u16::MAX),
        transport,
        forcing_option: false,
        v4: true,
        stray: false,
        reply: false,
    })
}

/// An IPv4 packet without options or fragmentation carrying UDP or TCP, decoded inline without
/// the general path's error plumbing; `None` for anything else, which [`decode_ipv4`] decodes
/// (and then the same as `decode_ipv4` would: `decode::tests` compares them). As
/// [`ipv6_udp_tcp`]: the packet path's common frames go straight into their packet.
#[inline(always)]
fn ipv4_udp_tcp(bytes: &[u8]) -> Option<Ip> {
    let h = bytes.first_chunk::<20>()?;
    // Version 4, a 20-byte header, no fragment (a zero offset and no more to come).
    if h[0] != 0x45 || be16(h, 6) & 0x3fff != 0 {
        return None;
    }
    let total_len = usize::from(be16(h, 2));
    if total_len < 20 {
        // Segmentation offload's 0, or a length shorter than the header: the general path.
        return None;
    }
    let end = total_len.min(bytes.len());
    let payload = &bytes[20..end];
    let transport = match (h[9], payload.first_chunk::<20>()) {
        (proto::UDP, _) if payload.len() >= 8 => Transport::Udp {
            sport: be16(payload, 0),
            dport: be16(payload, 2),
        },
        (proto::TCP, Some(t)) if t[12] >> 4 >= 5 => Transport::Tcp {
            sport: be16(t, 0),
            dport: be16(t, 2),
            flags: t[13],
        },
        _ => return None,
    };
    Some(Ip {
        src: Addr::v4([h[12], h[13], h[14], h[15]]),
        dst: Addr::v4([h[16], h[17], h[18], h[19]]),
        proto: h[9],
        fragment: Fragment::No,
        frag_id: be16(h, 4),
        frag_offset: 0,
        payload_len: (total_len - 20) as u16,
        transport,
        forcing_option: false,
        v4: true,
        stray: false,
        reply: false,
    })
}

/// An IPv6 packet carrying UDP or TCP right after its fixed header, decoded inline without the
/// extension-header walk and the general path's error plumbing; `None` for anything else, which
/// [`decode_ipv6`] decodes (and then the same as `decode_ipv6` would: `decode::tests` compares
/// them). An `Option`, not a `Result`: the packet path's common frames then go straight into
/// their packet, without a result built on the stack and copied.
#[inline(always)]
fn ipv6_udp_tcp(bytes: &[u8]) -> Option<Ip> {
    let h = bytes.first_chunk::<40>()?;
    let next = h[6];
    let end = (40 + usize::from(be16(h, 4))).min(bytes.len());
    let payload = &bytes[40..end];
    let transport = match (h[0] >> 4, next, payload.first_chunk::<20>()) {
        (6, proto::UDP, _) if payload.len() >= 8 => Transport::Udp {
            sport: be16(payload, 0),
            dport: be16(payload, 2),
        },
        (6, proto::TCP, Some(t)) if t[12] >> 4 >= 5 => Transport::Tcp {
            sport: be16(t, 0),
            dport: be16(t, 2),
            flags: t[13],
        },
        _ => return None,
    };
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&h[24..40]);
    Some(Ip {
        src: Addr::v6(src),
        dst: Addr::v6(dst),
        proto: next,
        fragment: Fragment::No,
        frag_id: 0,
        frag_offset: 0,
        payload_len: u16::try_from(end - 40).unwrap_or(u16::MAX),
        transport,
        forcing_option: false,
        v4: false,
        stray: false,
        reply: false,
    })
}

fn decode_ipv6(bytes: &[u8], offset: usize) -> Result<Ip, DecodeError> {
    let h = header::<40>(Layer::Ipv6, offset, bytes)?;
    let version = h[0] >> 4;
    if version != 6 {
        return Err(err(Layer::Ipv6, offset, Problem::Version(version)));
    }
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&h[24..40]);
    let end = (40 + usize::from(be16(h, 4))).min(bytes.len());
    let mut next = h[6];
    let mut at = 40;
    let mut fragment = Fragment::No;
    let mut frag_id = 0;
    let mut walked = 0;
    let mut forcing_option = false;
    let mut frag_offset = 0u16;
    loop {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6: (len + 1) * 8.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let h = bytes.get(at..end).unwrap_or_default();
                need(Layer::Ipv6Ext, offset + at, h, 8)?;
                let len = (usize::from(h[1]) + 1) * 8;
                need(Layer::Ipv6Ext, offset + at, h, len)?;
                if matches!(next, 0 | 60) {
                    forcing_option |= forces_answer(&h[2..len]);
                }
                next = h[0];
                at += len;
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let h = header::<8>(
                    Layer::Ipv6Ext,
                    offset + at,
                    bytes.get(at..end).unwrap_or_default(),
                )?;
                let frag_offset_field = be16(h, 2) >> 3;
                let more = h[3] & 1 != 0;
                frag_id = be16(h, 4) ^ be16(h, 6);
                frag_offset = frag_offset_field.wrapping_mul(8);
                fragment = match (frag_offset_field, more) {
                    (0, false) => Fragment::No,
                    (0, true) => Fragment::First,
                    _ => Fragment::Later,
                };
                next = h[0];
                at += 8;
            }
            // Authentication header: (len + 2) * 4.
            51 => {
                let h = bytes.get(at..end).unwrap_or_default();
                need(Layer::Ipv6Ext, offset + at, h, 8)?;
                let len = (usize::from(h[1]) + 2) * 4;
                need(Layer::Ipv6Ext, offset + at, h, len)?;
                next = h[0];
                at += len;
            }
            _ => break,
        }
        walked += 1;
        if walked > MAX_EXTENSIONS {
            return Err(err(Layer::Ipv6Ext, offset + at, Problem::TooManyExtensions));
        }
    }
    let payload = bytes.get(at..end).unwrap_or_default();
    let transport = transport_of(fragment, next, payload, offset + at)?;
    Ok(Ip {
        src: Addr::v6(src),
        dst: Addr::v6(dst),
        proto: next,
        fragment,
        frag_id,
        frag_offset,
        payload_len: u16::try_from(end.saturating_sub(at)).unwrap_or(u16::MAX),
        transport,
        forcing_option,
        v4: false,
        stray: false,
        reply: false,
    })
}

/// Do these hop-by-hop or destination options (RFC 8200 4.2) hold an unknown one whose action
/// bits tell every receiver to answer with a parameter problem? Known options of that kind
/// (jumbo payload 0xC2, home address 0xC9) are not counted.
fn forces_answer(options: &[u8]) -> bool {
    let mut at = 0;
    while let Some(&ty) = options.get(at) {
        if ty == 0 {
            at += 1;
            continue;
        }
        if ty & 0x80 != 0 && !matches!(ty, 0xC2 | 0xC9) {
            return true;
        }
        let Some(&len) = options.get(at + 1) else {
            return false;
        };
        at += 2 + usize::from(len);
    }
    false
}

/// The transport header of an IP payload: none in later fragments; a first fragment too short
/// for its header is a tiny fragment.
#[inline(always)]
fn transport_of(
    fragment: Fragment,
    proto: u8,
    payload: &[u8],
    offset: usize,
) -> Result<Transport, DecodeError> {
    match fragment {
        Fragment::No => decode_transport(proto, payload, offset),
        Fragment::Later => Ok(Transport::None),
        Fragment::First => first_fragment_transport(proto, payload, offset),
    }
}

#[cold]
fn first_fragment_transport(
    proto: u8,
    payload: &[u8],
    offset: usize,
) -> Result<Transport, DecodeError> {
    match decode_transport(proto, payload, offset) {
        Err(DecodeError {
            problem: Problem::Truncated { .. },
            ..
        }) if matches!(proto, proto::TCP | proto::UDP | proto::SCTP) => {
            Ok(Transport::TinyFragment {
                ports: (payload.len() >= 4).then(|| (be16(payload, 0), be16(payload, 2))),
            })
        }
        other => other,
    }
}

/// The packet an ICMP error quotes (RFC 792, RFC 4443: its IP header and at least the first 8
/// bytes of its payload): who sent what to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// The quoted packet's source (whoever the error goes back to).
    pub src: IpAddr,
    /// Its destination.
    pub dst: IpAddr,
    /// Its protocol.
    pub proto: u8,
    /// Its ports, for TCP, UDP and SCTP.
    pub ports: Option<(u16, u16)>,
}

/// Reads the packet quoted in an ICMP error's body; `None` when it is too short or not IP.
pub fn quoted(body: &[u8]) -> Option<Quote> {
    let version = body.first()? >> 4;
    let (src, dst, proto, rest) = match version {
        4 => {
            let ihl = usize::from(body[0] & 0x0f) * 4;
            let h = body.get(..ihl.max(20))?;
            let src: [u8; 4] = h[12..16].try_into().ok()?;
            let dst: [u8; 4] = h[16..20].try_into().ok()?;
            (
                IpAddr::from(src),
                IpAddr::from(dst),
                h[9],
                body.get(ihl.max(20)..).unwrap_or_default(),
            )
        }
        6 => {
            let h = body.get(..40)?;
            let src: [u8; 16] = h[8..24].try_into().ok()?;
            let dst: [u8; 16] = h[24..40].try_into().ok()?;
            (IpAddr::from(src), IpAddr::from(dst), h[6], &body[40..])
        }
        _ => return None,
    };
    let ports = match (proto, rest.get(..4)) {
        (proto::TCP | proto::UDP | proto::SCTP, Some(p)) => Some((
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        )),
        _ => None,
    };
    Some(Quote {
        src,
        dst,
        proto,
        ports,
    })
}

#[inline(always)]
fn decode_transport(proto: u8, bytes: &[u8], offset: usize) -> Result<Transport, DecodeError> {
    Ok(match proto {
        proto::UDP => {
            let h = header::<8>(Layer::Udp, offset, bytes)?;
            Transport::Udp {
                sport: be16(h, 0),
                dport: be16(h, 2),
            }
        }
        proto::TCP => {
            let h = header::<20>(Layer::Tcp, offset, bytes)?;
            let data_offset = usize::from(h[12] >> 4) * 4;
            if data_offset < 20 {
                return Err(err(Layer::Tcp, offset, Problem::HeaderLength(data_offset)));
            }
            Transport::Tcp {
                sport: be16(h, 0),
                dport: be16(h, 2),
                flags: h[13],
            }
        }
        proto::SCTP => {
            let h = header::<12>(Layer::Sctp, offset, bytes)?;
            Transport::Sctp {
                sport: be16(h, 0),
                dport: be16(h, 2),
            }
        }
        proto::ICMP => {
            let h = header::<4>(Layer::Icmp, offset, bytes)?;
            Transport::Icmp {
                ty: h[0],
                code: h[1],
                body: u16::try_from(offset + 8).unwrap_or(u16::MAX),
            }
        }
        proto::ICMPV6 => {
            let h = header::<4>(Layer::Icmpv6, offset, bytes)?;
            Transport::Icmpv6 {
                ty: h[0],
                code: h[1],
                body: u16::try_from(offset + 8).unwrap_or(u16::MAX),
            }
        }
        _ => Transport::None,
    })
}

#[cfg(test)]
mod tests;
