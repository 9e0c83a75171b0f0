//! rtnetlink: which interface the default route leaves by.

use nix::sys::socket::SockProtocol;

use super::{attrs, Message, NetlinkError, Socket, Until, F_ACK, F_DUMP, F_REQUEST};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RT_TABLE_MAIN: u32 = 254;
const RTN_UNICAST: u8 = 1;
const RTA_OIF: u16 = 4;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
const IFLA_IFNAME: u16 = 3;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

/// The interface of the default route in the main table (IPv4 first, then IPv6; lowest metric
/// wins), or `None` when there is none.
pub fn default_route_interface() -> Result<Option<String>, NetlinkError> {
    let mut sock = Socket::open(SockProtocol::NetlinkRoute)?;
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        if let Some(index) = default_route(&mut sock, family)? {
            if let Some(name) = interface_name(&mut sock, index)? {
                if name != "lo" {
                    return Ok(Some(name));
                }
            }
        }
    }
    Ok(None)
}

fn word(v: &[u8]) -> Option<u32> {
    v.get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// The outgoing interface index of `family`'s default route with the lowest metric.
fn default_route(sock: &mut Socket, family: u8) -> Result<Option<u32>, NetlinkError> {
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32).
    let mut fixed = [0u8; 12];
    fixed[0] = family;
    let seq = sock.next_seq();
    let request = Message::new(RTM_GETROUTE, F_REQUEST | F_DUMP, seq, &fixed).finish();
    let mut best: Option<(u32, u32)> = None;
    sock.transact(&request, Until::Done, |ty, payload| {
        if ty != RTM_NEWROUTE || payload.len() < 12 {
            return;
        }
        let (dst_len, mut table, rtype) = (payload[1], u32::from(payload[4]), payload[7]);
        let (mut oif, mut metric) = (None, 0u32);
        for (a, v) in attrs(&payload[12..]) {
            match (a, word(v)) {
                (RTA_OIF, Some(w)) => oif = Some(w),
                (RTA_PRIORITY, Some(w)) => metric = w,
                (RTA_TABLE, Some(w)) => table = w,
                _ => {}
            }
        }
        if dst_len == 0 && table == RT_TABLE_MAIN && rtype == RTN_UNICAST {
            if let Some(oif) = oif {
                if best.is_none_or(|(m, _)| metric < m) {
                    best = Some((metric, oif));
                }
            }
        }
    })?;
    Ok(best.map(|(_, oif)| oif))
}

/// The name of interface `index`.
fn interface_name(sock: &mut Socket, index: u32) -> Result<Option<String>, NetlinkError> {
    // struct ifinfomsg: family, pad, type (u16), index (i32), flags, change (u32).
    let mut fixed = [0u8; 16];
    fixed[4..8].copy_from_slice(&index.to_ne_bytes());
    let seq = sock.next_seq();
    let request = Message::new(RTM_GETLINK, F_REQUEST | F_ACK, seq, &fixed).finish();
    let mut name = None;
    let result = sock.transact(&request, Until::Ack(seq), |ty, payload| {
        if ty == RTM_NEWLINK && payload.len() >= 16 {
            for (a, v) in attrs(&payload[16..]) {
                if a == IFLA_IFNAME {
                    let v = v.split(|&b| b == 0).next().unwrap_or(v);
                    name = Some(String::from_utf8_lossy(v).into_owned());
                }
            }
        }
    });
    match result {
        Ok(()) => Ok(name),
        Err(NetlinkError::Refused(nix::Error::ENODEV)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every address configured on this host's interfaces (IPv4 and IPv6).
pub fn local_addresses() -> Result<Vec<std::net::IpAddr>, NetlinkError> {
    let mut sock = Socket::open(SockProtocol::NetlinkRoute)?;
    // struct ifaddrmsg: family, prefixlen, flags, scope, index (u32).
    let fixed = [0u8; 8];
    let seq = sock.next_seq();
    let request = Message::new(RTM_GETADDR, F_REQUEST | F_DUMP, seq, &fixed).finish();
    let mut out = Vec::new();
    sock.transact(&request, Until::Done, |ty, payload| {
        if ty != RTM_NEWADDR || payload.len() < 8 {
            return;
        }
        for (a, v) in attrs(&payload[8..]) {
            if a != IFA_ADDRESS && a != IFA_LOCAL {
                continue;
            }
            let addr = match v.len() {
                4 => std::net::IpAddr::from(<[u8; 4]>::try_from(v).unwrap_or_default()),
                16 => std::net::IpAddr::from(<[u8; 16]>::try_from(v).unwrap_or_default()),
                _ => continue,
            };
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    })?;
    Ok(out)
}
