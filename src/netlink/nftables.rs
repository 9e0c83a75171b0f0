//! nf_tables over nfnetlink: the `inet scram` table, its ban sets and the chains that drop what
//! they hold, and adding offenders with a timeout. Every change is one atomic batch.
//!
//! The rules, in nft's words (`nft list table inet scram`):
//!
//! ```text
//! table inet scram {
//!     set ban4 { type ipv4_addr; flags timeout; }
//!     set ban6 { type ipv6_addr; flags timeout; }   # /64 prefixes when ipv6_prefix = 64
//!     chain input { type filter hook input priority filter - 10; policy accept;
//!         ip saddr @ban4 counter drop
//!         ip6 saddr & ffff:ffff:ffff:ffff:: @ban6 counter drop }
//!     chain forward { ... the same, when [response] forward = true }
//! }
//! ```

use std::net::IpAddr;

use nix::sys::socket::SockProtocol;

use super::{Message, NetlinkError, Socket, Until, F_ACK, F_APPEND, F_CREATE, F_REQUEST};

/// The table's name (family `inet`).
pub const TABLE: &str = "scram";
/// The IPv4 ban set.
pub const SET4: &str = "ban4";
/// The IPv6 ban set.
pub const SET6: &str = "ban6";
/// The chains' priority: ahead of the ordinary filter chains (priority 0).
pub const PRIORITY: i32 = -10;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;

// Attribute numbers from linux/netfilter/nf_tables.h.
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

const NFT_SET_TIMEOUT: u32 = 0x10;
/// nft's data type ids for the sets' keys (so `nft list` prints addresses).
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NF_INET_LOCAL_IN: u32 = 1;
const NF_INET_FORWARD: u32 = 2;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_META_NFPROTO: u32 = 15;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_CMP_EQ: u32 = 0;

/// A ban set entry: what is banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// The address (for IPv6 prefixes, the prefix's first address).
    pub addr: IpAddr,
}

/// The nf_tables side of active response.
#[derive(Debug)]
pub struct Nftables {
    sock: Socket,
    /// IPv6 offenders are banned by this prefix length (64 or 128).
    ipv6_prefix: u8,
}

/// Which chains to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hooks {
    /// Traffic to this host.
    pub input: bool,
    /// Traffic routed through it.
    pub forward: bool,
}

impl Nftables {
    /// Opens the nfnetlink socket.
    pub fn open(ipv6_prefix: u8) -> Result<Nftables, NetlinkError> {
        Ok(Nftables {
            sock: Socket::open(SockProtocol::NetlinkNetFilter)?,
            ipv6_prefix,
        })
    }

    /// Creates the table, the sets and the chains if missing, and (re)writes the chains' rules,
    /// in one batch. Existing bans are kept.
    pub fn install(&mut self, hooks: Hooks) -> Result<(), NetlinkError> {
        let mut batch = Batch::new(&mut self.sock);
        batch.push(NFT_MSG_NEWTABLE, NFPROTO_INET, |m| {
            m.attr_str(NFTA_TABLE_NAME, TABLE);
        });
        for (name, key_type, key_len, id) in
            [(SET4, TYPE_IPADDR, 4u32, 1u32), (SET6, TYPE_IP6ADDR, 16, 2)]
        {
            batch.push(NFT_MSG_NEWSET, NFPROTO_INET, |m| {
                m.attr_str(NFTA_SET_TABLE, TABLE)
                    .attr_str(NFTA_SET_NAME, name)
                    .attr_be32(NFTA_SET_FLAGS, NFT_SET_TIMEOUT)
                    .attr_be32(NFTA_SET_KEY_TYPE, key_type)
                    .attr_be32(NFTA_SET_KEY_LEN, key_len)
                    .attr_be32(NFTA_SET_ID, id);
            });
        }
        for (chain, hook, wanted) in [
            ("input", NF_INET_LOCAL_IN, hooks.input),
            ("forward", NF_INET_FORWARD, hooks.forward),
        ] {
            if !wanted {
                continue;
            }
            batch.push(NFT_MSG_NEWCHAIN, NFPROTO_INET, |m| {
                m.attr_str(NFTA_CHAIN_TABLE, TABLE)
                    .attr_str(NFTA_CHAIN_NAME, chain)
                    .begin_nest(NFTA_CHAIN_HOOK)
                    .attr_be32(NFTA_HOOK_HOOKNUM, hook)
                    .attr_be32(NFTA_HOOK_PRIORITY, PRIORITY as u32)
                    .end_nest()
                    .attr_be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
                    .attr_str(NFTA_CHAIN_TYPE, "filter");
            });
            // Flush the chain, then add its rules: a restart leaves exactly one copy.
            batch.push(NFT_MSG_DELRULE, NFPROTO_INET, |m| {
                m.attr_str(NFTA_RULE_TABLE, TABLE)
                    .attr_str(NFTA_RULE_CHAIN, chain);
            });
            let prefix = self.ipv6_prefix;
            batch.push(NFT_MSG_NEWRULE, NFPROTO_INET, |m| {
                drop_rule(m, chain, NFPROTO_IPV4, 12, 4, None, SET4);
            });
            batch.push(NFT_MSG_NEWRULE, NFPROTO_INET, |m| {
                let mask = (prefix < 128).then(|| prefix_mask(prefix));
                drop_rule(m, chain, NFPROTO_IPV6, 8, 16, mask, SET6);
            });
        }
        batch.send()
    }

    /// The set entry `addr` is banned as (IPv6 reduced to its prefix).
    pub fn ban_for(&self, addr: IpAddr) -> Ban {
        match addr {
            IpAddr::V4(_) => Ban { addr },
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let mask = !u128::MAX
                    .checked_shr(u32::from(self.ipv6_prefix))
                    .unwrap_or(0);
                Ban {
                    addr: IpAddr::V6((bits & mask).into()),
                }
            }
        }
    }

    /// Bans `ban` for `timeout_ms`, or refreshes its timeout when it is already banned: the
    /// batch adds it (a no-op if present), deletes it and adds it again with a fresh timeout.
    pub fn ban(&mut self, ban: Ban, timeout_ms: u64) -> Result<(), NetlinkError> {
        let (set, key): (&str, Vec<u8>) = match ban.addr {
            IpAddr::V4(a) => (SET4, a.octets().to_vec()),
            IpAddr::V6(a) => (SET6, a.octets().to_vec()),
        };
        let mut batch = Batch::new(&mut self.sock);
        for ty in [NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM] {
            batch.push(ty, NFPROTO_INET, |m| {
                m.attr_str(NFTA_SET_ELEM_LIST_TABLE, TABLE)
                    .attr_str(NFTA_SET_ELEM_LIST_SET, set)
                    .begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS)
                    .begin_nest(NFTA_LIST_ELEM)
                    .begin_nest(NFTA_SET_ELEM_KEY)
                    .attr(NFTA_DATA_VALUE, &key)
                    .end_nest();
                if ty == NFT_MSG_NEWSETELEM {
                    m.attr_be64(NFTA_SET_ELEM_TIMEOUT, timeout_ms);
                }
                m.end_nest().end_nest();
            });
        }
        batch.send()
    }

    /// Deletes the whole table (bans included).
    pub fn remove(&mut self) -> Result<(), NetlinkError> {
        let mut batch = Batch::new(&mut self.sock);
        batch.push(NFT_MSG_DELTABLE, NFPROTO_INET, |m| {
            m.attr_str(NFTA_TABLE_NAME, TABLE);
        });
        batch.send()
    }
}

/// `<proto> saddr [& mask] @set counter drop`.
fn drop_rule(
    m: &mut Message,
    chain: &str,
    proto: u8,
    offset: u32,
    len: u32,
    mask: Option<Vec<u8>>,
    set: &str,
) {
    m.attr_str(NFTA_RULE_TABLE, TABLE)
        .attr_str(NFTA_RULE_CHAIN, chain)
        .begin_nest(NFTA_RULE_EXPRESSIONS);
    // meta nfproto == proto
    expr(m, "meta", |m| {
        m.attr_be32(1, NFT_REG_1).attr_be32(2, NFT_META_NFPROTO);
    });
    expr(m, "cmp", |m| {
        m.attr_be32(1, NFT_REG_1)
            .attr_be32(2, NFT_CMP_EQ)
            .begin_nest(3)
            .attr(NFTA_DATA_VALUE, &[proto])
            .end_nest();
    });
    // the source address into register 1
    expr(m, "payload", |m| {
        m.attr_be32(1, NFT_REG_1)
            .attr_be32(2, NFT_PAYLOAD_NETWORK_HEADER)
            .attr_be32(3, offset)
            .attr_be32(4, len);
    });
    if let Some(mask) = mask {
        expr(m, "bitwise", |m| {
            m.attr_be32(1, NFT_REG_1)
                .attr_be32(2, NFT_REG_1)
                .attr_be32(3, len)
                .begin_nest(4)
                .attr(NFTA_DATA_VALUE, &mask)
                .end_nest()
                .begin_nest(5)
                .attr(NFTA_DATA_VALUE, &vec![0u8; mask.len()])
                .end_nest();
        });
    }
    expr(m, "lookup", |m| {
        m.attr_str(1, set).attr_be32(2, NFT_REG_1);
    });
    expr(m, "counter", |m| {
        m.attr_be64(1, 0).attr_be64(2, 0);
    });
    expr(m, "immediate", |m| {
        m.attr_be32(1, NFT_REG_VERDICT)
            .begin_nest(2)
            .begin_nest(NFTA_DATA_VERDICT)
            .attr_be32(NFTA_VERDICT_CODE, NF_DROP)
            .end_nest()
            .end_nest();
    });
    m.end_nest();
}

fn expr(m: &mut Message, name: &str, data: impl FnOnce(&mut Message)) {
    m.begin_nest(NFTA_LIST_ELEM)
        .attr_str(NFTA_EXPR_NAME, name)
        .begin_nest(NFTA_EXPR_DATA);
    data(m);
    m.end_nest().end_nest();
}

/// A /`prefix` mask of 16 bytes.
fn prefix_mask(prefix: u8) -> Vec<u8> {
    let bits = !u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    bits.to_be_bytes().to_vec()
}

/// One nfnetlink transaction: begin, messages (each acknowledged), end.
struct Batch<'a> {
    sock: &'a mut Socket,
    bytes: Vec<u8>,
    last: u32,
}

impl<'a> Batch<'a> {
    fn new(sock: &'a mut Socket) -> Batch<'a> {
        let seq = sock.next_seq();
        let bytes = Message::new(
            NFNL_MSG_BATCH_BEGIN,
            F_REQUEST,
            seq,
            &nfgenmsg(0, NFNL_SUBSYS_NFTABLES),
        )
        .finish();
        Batch {
            sock,
            bytes,
            last: seq,
        }
    }

    fn push(&mut self, ty: u16, family: u8, build: impl FnOnce(&mut Message)) {
        let seq = self.sock.next_seq();
        // Rules go after the ones already added (without APPEND the kernel prepends).
        let append = if ty == NFT_MSG_NEWRULE { F_APPEND } else { 0 };
        let mut m = Message::new(
            (NFNL_SUBSYS_NFTABLES << 8) | ty,
            F_REQUEST | F_CREATE | F_ACK | append,
            seq,
            &nfgenmsg(family, 0),
        );
        build(&mut m);
        self.bytes.extend_from_slice(&m.finish());
        self.last = seq;
    }

    fn send(mut self) -> Result<(), NetlinkError> {
        let seq = self.sock.next_seq();
        let end = Message::new(
            NFNL_MSG_BATCH_END,
            F_REQUEST,
            seq,
            &nfgenmsg(0, NFNL_SUBSYS_NFTABLES),
        )
        .finish();
        self.bytes.extend_from_slice(&end);
        let last = self.last;
        self.sock.transact(&self.bytes, Until::Ack(last), |_, _| {})
    }
}

/// `struct nfgenmsg`: family, version 0, resource id (big-endian).
fn nfgenmsg(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, 0, r[0], r[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_prefix_reduction() {
        assert_eq!(prefix_mask(64)[..8], [0xff; 8]);
        assert_eq!(prefix_mask(64)[8..], [0; 8]);
        assert_eq!(prefix_mask(128), vec![0xff; 16]);
        assert_eq!(prefix_mask(0), vec![0; 16]);
    }
}
