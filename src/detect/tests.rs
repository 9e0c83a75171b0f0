use std::net::IpAddr;

use super::*;
use crate::craft;
use crate::decode::decode_ethernet;

fn run(shard: &mut Shard, frames: &[(u64, Vec<u8>)]) -> Vec<Alert> {
    let mut out = Vec::new();
    for (ts, f) in frames {
        let p = decode_ethernet(f, None).expect("valid frame");
        shard.observe(*ts, 0, false, &p, Roles::BOTH, &mut |a| out.push(a));
    }
    out
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

#[test]
fn time_going_backwards_is_survived() {
    let mut shard = Shard::new(Arc::new(Settings::default()), 16_384, SeededState::random());
    // Probes whose timestamps jump back and forth (out-of-order captures, cross-worker routing).
    let frames: Vec<_> = (0..60u16)
        .map(|p| {
            let ts = if p % 2 == 0 {
                10_000_000_000 + u64::from(p)
            } else {
                5_000_000_000 - u64::from(p)
            };
            (
                ts,
                craft::tcp_frame(
                    ip("192.0.2.7"),
                    ip("198.51.100.2"),
                    1,
                    1 + p,
                    crate::decode::tcp_flags::SYN,
                ),
            )
        })
        .collect();
    let alerts = run(&mut shard, &frames);
    assert!(alerts.iter().all(|a| a.window_ms < 60_000), "{alerts:?}");
    // Floods and sweeps too.
    let frames: Vec<_> = (0..5000u32)
        .map(|i| {
            let ts = if i % 2 == 0 {
                1_000_000_000
            } else {
                999_000_000
            };
            (
                ts,
                craft::udp_frame(
                    ip("192.0.2.7"),
                    IpAddr::V4(std::net::Ipv4Addr::from(0xc633_6400 + i % 50)),
                    1024,
                    53,
                    b"",
                ),
            )
        })
        .collect();
    let _ = run(&mut shard, &frames);
}

#[test]
fn detector_metadata_matches_the_contract() {
    let mut names: Vec<_> = Detector::ALL
        .iter()
        .map(|d| (d.name(), d.signature_id()))
        .collect();
    names.sort_by_key(|n| n.1);
    assert_eq!(
        names,
        [
            ("portscan", 1000001),
            ("portsweep", 1000002),
            ("tcp-flags", 1000003),
            ("syn-flood", 1000004),
            ("udp-flood", 1000005),
            ("icmp-flood", 1000006),
            ("arp-spoof", 1000007),
            ("blocklist", 1000008),
            ("martian", 1000009),
            ("arp-sweep", 1000010),
            ("nd-sweep", 1000011),
            ("distributed-scan", 1000012),
            ("decoy-scan", 1000013),
            ("scan-summary", 1000014),
            ("ack-flood", 1000015),
            ("rst-flood", 1000016),
            ("reflection", 1000017),
            ("nd-spoof", 1000018),
            ("new-station", 1000019),
            ("rogue-ra", 1000020),
            ("brute-force", 1000021),
            ("frag-overlap", 1000022),
            ("tiny-fragment", 1000023),
            ("frag-flood", 1000024),
        ]
    );
    let ids: std::collections::HashSet<_> = Detector::ALL.iter().map(|d| d.message_id()).collect();
    assert_eq!(ids.len(), Detector::ALL.len());
    assert!(ids
        .iter()
        .all(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())));
    assert_eq!(Detector::from_name("arp-spoof"), Some(Detector::ArpSpoof));
}
#[test]
fn martian_is_quiet_on_loopback_interfaces() {
    let mut shard = Shard::new(Arc::new(Settings::default()), 16_384, SeededState::random());
    let f = craft::udp_frame(ip("127.0.0.1"), ip("127.0.0.1"), 1, 2, b"");
    let p = decode_ethernet(&f, None).expect("valid");
    let mut n = 0;
    shard.observe(1, 0, true, &p, Roles::BOTH, &mut |_| n += 1);
    assert_eq!(n, 0);
    shard.observe(1, 0, false, &p, Roles::BOTH, &mut |_| n += 1);
    assert_eq!(n, 1);
}
