//! The detectors, end to end: synthesized frames are written to a pcap and run through
//! `scramd replay`; the alerts come back as EVE JSON lines.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;

use scram::craft::{self, MAC_A, MAC_B};
use scram::decode::tcp_flags::{ACK, FIN, PSH, RST, SYN, URG};
use serde_json::Value;

mod common;

use common::pcap::{linktype, PcapNg};
use common::{Scratch, SCRAMD};

/// 2026-11-22T10:00:00Z
const T0: u64 = 1_795_341_600_000_000_000;
const MS: u64 = 1_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn write_pcap(path: &PathBuf, frames: &[(u64, Vec<u8>)]) {
    std::fs::write(path, common::pcap::pcap(linktype::ETHERNET, frames)).unwrap();
}

/// Replays `frames` with `config` (TOML) and returns the alerts; the closing records of scans
/// (`scan-summary`, tested in `recon.rs`) are left out.
fn replay_with(name: &str, config: &str, frames: &[(u64, Vec<u8>)]) -> Vec<Value> {
    let mut alerts = replay_all(name, config, frames);
    alerts.retain(|a| a["alert"]["context"]["scram"]["detector"] != "scan-summary");
    alerts
}

/// Replays `frames` with `config` (TOML) and returns every record.
fn replay_all(name: &str, config: &str, frames: &[(u64, Vec<u8>)]) -> Vec<Value> {
    let s = Scratch::new(name);
    let pcap = s.path("in.pcap");
    write_pcap(&pcap, frames);
    let cfg = s.path("scram.toml");
    std::fs::write(&cfg, config.replace("$DIR", s.dir().to_str().unwrap())).unwrap();
    let out = Command::new(SCRAMD)
        .args([
            "replay",
            "--config",
            cfg.to_str().unwrap(),
            pcap.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let alerts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    // Every alert the detector tests raise is a record Suricata's schema accepts.
    for a in &alerts {
        common::eve::assert_valid(a);
    }
    alerts
}

fn replay(name: &str, frames: &[(u64, Vec<u8>)]) -> Vec<Value> {
    replay_with(name, "", frames)
}

fn only(alerts: &[Value], detector: &str) -> Vec<Value> {
    alerts
        .iter()
        .filter(|a| a["alert"]["context"]["scram"]["detector"] == detector)
        .cloned()
        .collect()
}

fn syn_scan(src: &str, dst: &str, ports: u16, tags: &[(u16, u16)]) -> Vec<(u64, Vec<u8>)> {
    (0..ports)
        .map(|p| {
            let l4 = craft::tcp(40000, 1 + p, SYN);
            (
                T0 + u64::from(p) * 10 * MS,
                craft::ip_frame(ip(src), ip(dst), 6, &l4, tags),
            )
        })
        .collect()
}

#[test]
fn portscan_fires_once_at_the_threshold() {
    let alerts = replay("portscan", &syn_scan("192.0.2.7", "198.51.100.2", 100, &[]));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["event_type"], "alert");
    assert_eq!(a["alert"]["signature_id"], 1000001);
    assert_eq!(a["alert"]["signature"], "SCRAM portscan");
    assert_eq!(a["alert"]["severity"], 2);
    assert_eq!(a["src_ip"], "192.0.2.7");
    assert_eq!(a["dest_ip"], "198.51.100.2");
    assert_eq!(a["proto"], "TCP");
    assert_eq!(a["alert"]["context"]["scram"]["detector"], "portscan");
    assert_eq!(a["alert"]["context"]["scram"]["count"], 20);
    assert_eq!(a["alert"]["context"]["scram"]["window_ms"], 190);
    assert!(
        a.get("src_port").is_none() && a.get("dest_port").is_none(),
        "a scan names no ports"
    );
    // Nobody answered: the 20th probe counts as failed 3 s after it was sent.
    assert_eq!(a["timestamp"], "2026-11-22T10:00:03.190000+0000");
}

#[test]
fn portscan_below_threshold_or_outside_the_window_is_quiet() {
    assert!(replay(
        "portscan-19",
        &syn_scan("192.0.2.7", "198.51.100.2", 19, &[])
    )
    .is_empty());
    // 30 ports, but 4 s apart: with a 60 s window, never 20 within it; with the default hour
    // (a slow scan, nmap --scan-delay 4s), one alert.
    let slow: Vec<_> = syn_scan("192.0.2.7", "198.51.100.2", 30, &[])
        .into_iter()
        .enumerate()
        .map(|(i, (_, f))| (T0 + i as u64 * 4_000 * MS, f))
        .collect();
    let minute = "[detect.portscan]\nwindow_seconds = 60\n";
    assert!(replay_with("portscan-slow-60", minute, &slow).is_empty());
    let alerts = replay("portscan-slow", &slow);
    assert_eq!(only(&alerts, "portscan").len(), 1, "{alerts:#?}");
    // A server answering SYN+ACK from many ports is not scanning.
    let answers: Vec<_> = (0..50u16)
        .map(|p| {
            (
                T0 + u64::from(p) * MS,
                craft::tcp_frame(ip("198.51.100.2"), ip("192.0.2.7"), 1 + p, 40000, SYN | ACK),
            )
        })
        .collect();
    assert!(replay("portscan-synack", &answers).is_empty());
}

#[test]
fn portscan_over_ipv6_and_vlan() {
    let alerts = replay(
        "portscan-v6",
        &syn_scan("2001:db8::7", "2001:db8:1::2", 30, &[]),
    );
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["src_ip"], "2001:db8::7");
    assert_eq!(alerts[0]["dest_ip"], "2001:db8:1::2");
    let alerts = replay(
        "portscan-qinq",
        &syn_scan(
            "192.0.2.7",
            "198.51.100.2",
            30,
            &[(0x88a8, 100), (0x8100, 200)],
        ),
    );
    assert_eq!(only(&alerts, "portscan").len(), 1);
    // UDP probes count too.
    let udp: Vec<_> = (0..25u16)
        .map(|p| {
            (
                T0 + u64::from(p) * MS,
                craft::udp_frame(ip("192.0.2.7"), ip("198.51.100.2"), 5000, 1000 + p, b""),
            )
        })
        .collect();
    let alerts = replay("portscan-udp", &udp);
    assert_eq!(only(&alerts, "portscan").len(), 1);
    assert_eq!(alerts[0]["proto"], "UDP");
}

#[test]
fn portsweep_on_one_port_and_by_ping() {
    let sweep: Vec<_> = (0..30u8)
        .map(|h| {
            (
                T0 + u64::from(h) * MS,
                craft::tcp_frame(
                    ip("192.0.2.7"),
                    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10 + h)),
                    40000,
                    22,
                    SYN,
                ),
            )
        })
        .collect();
    let alerts = replay("sweep", &sweep);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["alert"]["signature_id"], 1000002);
    assert_eq!(a["src_ip"], "192.0.2.7");
    assert_eq!(a["dest_port"], 22);
    assert!(a.get("dest_ip").is_none(), "a sweep has many targets");
    assert_eq!(a["alert"]["context"]["scram"]["count"], 20);

    let pings: Vec<_> = (0..25u16)
        .map(|h| {
            (
                T0 + u64::from(h) * MS,
                craft::icmp_frame(
                    ip("2001:db8::7"),
                    format!("2001:db8:1::{h:x}").parse().unwrap(),
                    128,
                    0,
                ),
            )
        })
        .collect();
    let alerts = replay("sweep-ping6", &pings);
    assert_eq!(only(&alerts, "portsweep").len(), 1, "{alerts:#?}");
    assert!(alerts[0].get("dest_port").is_none());

    let few: Vec<_> = sweep.into_iter().take(19).collect();
    assert!(replay("sweep-19", &few).is_empty());
}

#[test]
fn illegal_tcp_flags() {
    let combos = [
        (0u8, "NULL"),
        (FIN | PSH | URG, "XMAS (FIN+PSH+URG)"),
        (SYN | FIN, "SYN+FIN"),
        (SYN | RST, "SYN+RST"),
        (FIN, "FIN without ACK"),
    ];
    let frames: Vec<_> = combos
        .iter()
        .enumerate()
        .map(|(i, (f, _))| {
            // One sender, a target each (several senders at one target would be a storm).
            (
                T0 + i as u64 * MS,
                craft::tcp_frame(
                    ip("192.0.2.10"),
                    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2 + i as u8)),
                    40000,
                    80,
                    *f,
                ),
            )
        })
        .collect();
    let alerts = replay("flags", &frames);
    assert_eq!(alerts.len(), combos.len(), "{alerts:#?}");
    for (a, (_, name)) in alerts.iter().zip(combos) {
        assert_eq!(a["alert"]["signature_id"], 1000003);
        assert_eq!(a["alert"]["context"]["scram"]["flags"], name);
        assert_eq!(a["src_port"], 40000);
        assert_eq!(a["dest_port"], 80);
        assert!(a["community_id"].as_str().unwrap().starts_with("1:"));
    }
    let legal: Vec<_> = [FIN | ACK, RST, RST | ACK, ACK, PSH | ACK, SYN, SYN | ACK]
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                T0 + i as u64 * MS,
                craft::tcp_frame(ip("192.0.2.7"), ip("198.51.100.2"), 40000, 80, *f),
            )
        })
        .collect();
    assert!(replay("flags-legal", &legal).is_empty());
}

fn flood(
    n: u64,
    over_ms: u64,
    spoofed: bool,
    make: impl Fn(IpAddr) -> Vec<u8>,
) -> Vec<(u64, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let src = if spoofed {
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 + i as u32 * 7919))
            } else {
                ip("192.0.2.66")
            };
            (T0 + i * over_ms * MS / n, make(src))
        })
        .collect()
}

#[test]
fn syn_flood_names_the_target_and_a_dominant_source() {
    let target = ip("198.51.100.2");
    let alerts = replay(
        "synflood",
        &flood(5_000, 900, false, |s| {
            craft::tcp_frame(s, target, 40000, 80, SYN)
        }),
    );
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["alert"]["signature_id"], 1000004);
    assert_eq!(a["alert"]["severity"], 1);
    assert_eq!(a["dest_ip"], "198.51.100.2");
    assert_eq!(a["src_ip"], "192.0.2.66");
    assert_eq!(a["alert"]["context"]["scram"]["count"], 3001);

    let alerts = replay(
        "synflood-spoofed",
        &flood(5_000, 900, true, |s| {
            craft::tcp_frame(s, target, 40000, 80, SYN)
        }),
    );
    let floods = only(&alerts, "syn-flood");
    assert_eq!(floods.len(), 1, "{alerts:#?}");
    assert!(
        floods[0].get("src_ip").is_none(),
        "no single source dominates a spoofed flood"
    );

    assert!(replay(
        "synflood-below",
        &flood(2_900, 990, false, |s| craft::tcp_frame(
            s, target, 40000, 80, SYN
        ))
    )
    .is_empty());
}

#[test]
fn udp_and_icmp_floods() {
    let target = ip("198.51.100.2");
    let alerts = replay(
        "udpflood",
        &flood(9_000, 900, false, |s| {
            craft::udp_frame(s, target, 5000, 53, b"x")
        }),
    );
    assert_eq!(only(&alerts, "udp-flood").len(), 1, "{alerts:#?}");
    assert_eq!(
        only(&alerts, "udp-flood")[0]["alert"]["signature_id"],
        1000005
    );
    assert!(replay(
        "udpflood-below",
        &flood(7_000, 990, false, |s| craft::udp_frame(
            s, target, 5000, 53, b"x"
        ))
    )
    .is_empty());

    let alerts = replay(
        "icmpflood",
        &flood(2_500, 900, false, |s| craft::icmp_frame(s, target, 8, 0)),
    );
    assert_eq!(only(&alerts, "icmp-flood").len(), 1, "{alerts:#?}");
    let target6 = ip("2001:db8::2");
    let alerts = replay(
        "icmpflood6",
        &flood(2_500, 900, false, |_| {
            craft::icmp_frame(ip("2001:db8::66"), target6, 128, 0)
        }),
    );
    let f = only(&alerts, "icmp-flood");
    assert_eq!(f.len(), 1, "{alerts:#?}");
    assert_eq!(f[0]["dest_ip"], "2001:db8::2");
    assert_eq!(f[0]["proto"], "IPv6-ICMP");
}

const MAC_X: [u8; 6] = [0x02, 0xba, 0xd0, 0, 0, 0x01];

#[test]
fn arp_spoof_against_learned_and_configured_bindings() {
    let gw = Ipv4Addr::new(192, 0, 2, 1);
    let host = Ipv4Addr::new(192, 0, 2, 50);
    let frames = vec![
        (T0, craft::arp_frame(2, MAC_A, gw, MAC_B, host)),
        (T0 + MS, craft::arp_frame(2, MAC_A, gw, MAC_B, host)),
        (T0 + 2 * MS, craft::arp_frame(1, MAC_B, host, [0; 6], gw)),
        (T0 + 3 * MS, craft::arp_frame(2, MAC_X, gw, MAC_B, host)),
    ];
    let alerts = replay("arp", &frames);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["alert"]["signature_id"], 1000007);
    assert_eq!(a["src_ip"], "192.0.2.1");
    assert_eq!(a["alert"]["context"]["scram"]["mac"], "02:ba:d0:00:00:01");
    assert_eq!(
        a["alert"]["context"]["scram"]["previous_mac"],
        "02:00:00:00:00:0a"
    );

    // A configured binding is trusted from the first packet.
    let cfg = "[detect.arp-spoof]\nbindings = { \"192.0.2.1\" = \"02:00:00:00:00:0a\" }\n";
    let alerts = replay_with(
        "arp-static",
        cfg,
        &[(T0, craft::arp_frame(2, MAC_X, gw, MAC_B, host))],
    );
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0]["alert"]["context"]["scram"]["previous_mac"],
        "02:00:00:00:00:0a"
    );

    // Probes from 0.0.0.0 (RFC 5227) claim nothing.
    let probes = vec![
        (T0, craft::arp_frame(2, MAC_A, gw, MAC_B, host)),
        (
            T0 + MS,
            craft::arp_frame(1, MAC_X, Ipv4Addr::UNSPECIFIED, [0; 6], gw),
        ),
    ];
    assert!(replay("arp-probe", &probes).is_empty());
}

#[test]
fn blocklisted_sources_and_destinations() {
    let lists = Scratch::new("blocklist-file");
    let list = lists.write(
        "block.txt",
        b"# test list\n203.0.113.0/24\n2001:db8:bad::/48\n",
    );
    let cfg = format!("[blocklist]\nfiles = [{:?}]\n", list.to_str().unwrap());
    let frames = vec![
        (
            T0,
            craft::tcp_frame(ip("203.0.113.5"), ip("198.51.100.2"), 40000, 22, SYN),
        ),
        (
            T0 + MS,
            craft::udp_frame(ip("198.51.100.2"), ip("203.0.113.9"), 5000, 53, b"q"),
        ),
        (
            T0 + 2 * MS,
            craft::tcp_frame(ip("2001:db8:bad::1"), ip("2001:db8::2"), 1, 443, SYN),
        ),
        (
            T0 + 3 * MS,
            craft::tcp_frame(ip("192.0.2.7"), ip("198.51.100.2"), 40000, 22, SYN),
        ),
    ];
    let alerts = replay_with("blocklist", &cfg, &frames);
    assert_eq!(alerts.len(), 3, "{alerts:#?}");
    assert!(alerts.iter().all(|a| a["alert"]["signature_id"] == 1000008));
    assert_eq!(alerts[0]["src_ip"], "203.0.113.5");
    assert_eq!(alerts[0]["alert"]["context"]["scram"]["kind"], "source");
    assert_eq!(alerts[1]["dest_ip"], "203.0.113.9");
    assert_eq!(
        alerts[1]["alert"]["context"]["scram"]["kind"],
        "destination"
    );
    assert_eq!(alerts[2]["src_ip"], "2001:db8:bad::1");
}

#[test]
fn martians_and_legitimate_link_layer_chatter() {
    let frames = vec![
        (
            T0,
            craft::tcp_frame(ip("198.51.100.2"), ip("198.51.100.2"), 80, 80, SYN),
        ),
        (
            T0 + MS,
            craft::udp_frame(ip("127.0.0.1"), ip("198.51.100.2"), 53, 53, b""),
        ),
        (
            T0 + 2 * MS,
            craft::udp_frame(ip("224.0.0.5"), ip("198.51.100.2"), 1, 2, b""),
        ),
        (
            T0 + 3 * MS,
            craft::udp_frame(ip("::1"), ip("2001:db8::2"), 1, 2, b""),
        ),
    ];
    let alerts = replay("martian", &frames);
    let kinds: Vec<_> = alerts
        .iter()
        .map(|a| {
            a["alert"]["context"]["scram"]["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "land",
            "loopback-source",
            "multicast-source",
            "loopback-source"
        ],
        "{alerts:#?}"
    );
    assert!(alerts.iter().all(|a| a["alert"]["signature_id"] == 1000009));
}

#[test]
fn ordinary_traffic_raises_nothing() {
    let client = ip("192.0.2.7");
    let web = ip("198.51.100.80");
    let dns = ip("198.51.100.53");
    let mut frames = Vec::new();
    let mut t = T0;
    let mut push = |f: Vec<u8>| {
        t += MS;
        frames.push((t, f));
    };
    // 30 web requests: handshake, data, close.
    for i in 0..30u16 {
        let sp = 50000 + i;
        push(craft::tcp_frame(client, web, sp, 443, SYN));
        push(craft::tcp_frame(web, client, 443, sp, SYN | ACK));
        push(craft::tcp_frame(client, web, sp, 443, ACK));
        push(craft::tcp_frame(client, web, sp, 443, PSH | ACK));
        push(craft::tcp_frame(web, client, 443, sp, PSH | ACK));
        push(craft::tcp_frame(client, web, sp, 443, FIN | ACK));
        push(craft::tcp_frame(web, client, 443, sp, FIN | ACK));
        push(craft::tcp_frame(client, web, sp, 443, ACK));
    }
    // DNS lookups from many source ports, and their answers (which reach many client ports).
    for i in 0..40u16 {
        push(craft::udp_frame(client, dns, 30000 + i, 53, b"query"));
        push(craft::udp_frame(dns, client, 53, 30000 + i, b"answer"));
    }
    // Pings.
    for _ in 0..10 {
        push(craft::icmp_frame(client, web, 8, 0));
        push(craft::icmp_frame(web, client, 0, 0));
    }
    // DHCP: discover from 0.0.0.0 to broadcast, offer back.
    push(craft::udp_frame(
        ip("0.0.0.0"),
        ip("255.255.255.255"),
        68,
        67,
        &[0; 240],
    ));
    push(craft::udp_frame(
        ip("192.0.2.1"),
        ip("255.255.255.255"),
        67,
        68,
        &[0; 240],
    ));
    // IPv6: DAD from ::, MLD reports from ::, neighbour and router discovery, to many groups;
    // each neighbour solicited answers.
    for i in 0x100..0x100 + 30u16 {
        let group: IpAddr = format!("ff02::1:ff00:{i:x}").parse().unwrap();
        let neighbour: IpAddr = format!("fe80::{i:x}").parse().unwrap();
        push(craft::icmp_frame(ip("::"), group, 135, 0));
        push(craft::icmp_frame(ip("::"), ip("ff02::16"), 143, 0));
        push(craft::icmp_frame(ip("fe80::1"), group, 135, 0));
        push(craft::icmp_frame(neighbour, ip("fe80::1"), 136, 0));
    }
    push(craft::icmp_frame(ip("fe80::1"), ip("ff02::2"), 133, 0));
    push(craft::icmp_frame(ip("fe80::2"), ip("ff02::1"), 134, 0));
    // mDNS / SSDP to multicast from one host on many ports.
    for i in 0..30u16 {
        push(craft::udp_frame(
            client,
            ip("224.0.0.251"),
            5353,
            5353 + i,
            b"m",
        ));
        push(craft::udp_frame(
            client,
            ip("239.255.255.250"),
            1900,
            1900 + i,
            b"s",
        ));
    }
    // ARP: requests and replies with stable bindings.
    for _ in 0..5 {
        push(craft::arp_frame(
            1,
            MAC_A,
            Ipv4Addr::new(192, 0, 2, 7),
            [0; 6],
            Ipv4Addr::new(192, 0, 2, 1),
        ));
        push(craft::arp_frame(
            2,
            MAC_B,
            Ipv4Addr::new(192, 0, 2, 1),
            MAC_A,
            Ipv4Addr::new(192, 0, 2, 7),
        ));
    }
    let alerts = replay("ordinary", &frames);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn allowlist_silences_scanner_and_target() {
    let scan = syn_scan("192.0.2.7", "198.51.100.2", 40, &[]);
    assert!(replay_with(
        "allow-src",
        "[allowlist]\ncidrs = [\"192.0.2.0/24\"]\n",
        &scan
    )
    .is_empty());
    assert!(replay_with(
        "allow-dst",
        "[allowlist]\ncidrs = [\"198.51.100.2\"]\n",
        &scan
    )
    .is_empty());
    assert_eq!(
        replay_with(
            "allow-other",
            "[allowlist]\ncidrs = [\"2001:db8::/32\"]\n",
            &scan
        )
        .len(),
        1
    );
}

#[test]
fn repeats_are_suppressed_and_counted() {
    let xmas = |t: u64| {
        (
            t,
            craft::tcp_frame(
                ip("192.0.2.7"),
                ip("198.51.100.2"),
                40000,
                80,
                FIN | PSH | URG,
            ),
        )
    };
    let mut frames: Vec<_> = (0..10).map(|i| xmas(T0 + i * 1_000 * MS)).collect();
    frames.push(xmas(T0 + 61_000 * MS));
    let alerts = replay("suppress", &frames);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert!(alerts[0]["alert"]["context"]["scram"]
        .get("suppressed")
        .is_none());
    assert_eq!(alerts[1]["alert"]["context"]["scram"]["suppressed"], 9);
    assert!(alerts[1]["alert"]["context"]["scram"]["message"]
        .as_str()
        .unwrap()
        .contains("9 repeats held back"));

    // A shorter window lets each through.
    let alerts = replay_with("suppress-off", "[alerts]\nsuppress_seconds = 0\n", &frames);
    assert_eq!(alerts.len(), 11);
}

#[test]
fn detectors_can_be_disabled_and_thresholds_changed() {
    let scan = syn_scan("192.0.2.7", "198.51.100.2", 10, &[]);
    assert!(replay("thr-default", &scan).is_empty());
    let alerts = replay_with("thr-5", "[detect.portscan]\nports = 5\n", &scan);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["alert"]["context"]["scram"]["count"], 5);
    let scan = syn_scan("192.0.2.7", "198.51.100.2", 40, &[]);
    assert!(replay_with("off", "[detect.portscan]\nenabled = false\n", &scan).is_empty());
}

/// xorshift64*: deterministic pseudo-random bytes for hostile inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn a_hundred_thousand_hostile_frames_are_counted_not_fatal() {
    let mut rng = Rng(0x5c4a_11ed);
    let seeds = [
        craft::tcp_frame(ip("192.0.2.7"), ip("198.51.100.2"), 1, 2, SYN),
        craft::tcp_frame(ip("2001:db8::1"), ip("2001:db8::2"), 1, 2, SYN),
        craft::icmp_frame(ip("2001:db8::1"), ip("ff02::1"), 135, 0),
        craft::ip_frame(
            ip("192.0.2.1"),
            ip("192.0.2.2"),
            17,
            &craft::udp(1, 2, b"x"),
            &[(0x88a8, 1), (0x8100, 2)],
        ),
        craft::arp_frame(
            2,
            MAC_A,
            Ipv4Addr::new(192, 0, 2, 1),
            MAC_B,
            Ipv4Addr::new(192, 0, 2, 2),
        ),
    ];
    let mut frames = Vec::with_capacity(100_000);
    for i in 0..100_000u64 {
        let f = match i % 3 {
            // Random bytes of random length, EtherType steered at IP half the time.
            0 => {
                let mut f: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
                if f.len() > 14 && i % 2 == 0 {
                    f[12..14].copy_from_slice(if i % 4 == 0 {
                        &[0x08, 0x00]
                    } else {
                        &[0x86, 0xdd]
                    });
                }
                f
            }
            // A real frame cut short.
            1 => {
                let s = &seeds[rng.below(seeds.len())];
                s[..rng.below(s.len())].to_vec()
            }
            // A real frame with bytes flipped.
            _ => {
                let mut f = seeds[rng.below(seeds.len())].clone();
                for _ in 0..4 {
                    let p = rng.below(f.len());
                    f[p] = rng.next() as u8;
                }
                f
            }
        };
        frames.push((T0 + i * 10_000, f));
    }
    let s = Scratch::new("hostile");
    let pcap = s.path("hostile.pcap");
    write_pcap(&pcap, &frames);
    let out = Command::new(SCRAMD)
        .args(["replay", "--config", "/dev/null", pcap.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("replayed 100000 packets"), "{stderr}");
    let field = |name: &str| -> u64 {
        let at = stderr
            .find(&format!("{name}="))
            .unwrap_or_else(|| panic!("{name} in {stderr}"));
        stderr[at + name.len() + 1..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (decoded, errors) = (field("decoded"), field("decode_errors"));
    assert!(errors > 30_000, "{stderr}");
    assert_eq!(
        decoded + errors,
        100_000,
        "every frame decoded or counted as an error: {stderr}"
    );
    // Whatever alerts came out are well-formed JSON.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
}

#[test]
fn unreadable_inputs_exit_65_after_replaying_what_is_readable() {
    let s = Scratch::new("badfiles");
    let junk = s.path("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file at all").unwrap();
    let good = s.path("scan.pcap");
    write_pcap(&good, &syn_scan("192.0.2.7", "198.51.100.2", 30, &[]));
    let cut = s.path("cut.pcap");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();

    let out = Command::new(SCRAMD)
        .args([
            "replay",
            "--config",
            "/dev/null",
            junk.to_str().unwrap(),
            good.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("not a pcap or pcapng file"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "the readable file was still replayed: its portscan and the scan's closing record"
    );

    let out = Command::new(SCRAMD)
        .args(["replay", "--config", "/dev/null", cut.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "packets before the cut were replayed, and the scan closed"
    );

    let out = Command::new(SCRAMD)
        .args(["replay", "/nonexistent.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    assert_eq!(
        Command::new(SCRAMD)
            .args(["replay"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(64),
        "no file is a usage error"
    );
}

#[test]
fn pcapng_replays_like_pcap() {
    let s = Scratch::new("pcapng");
    let path = s.path("scan.pcapng");
    let mut w = PcapNg::new();
    w.interface(1, "eth0", None);
    for (ts, f) in syn_scan("192.0.2.7", "198.51.100.2", 30, &[]) {
        // Default resolution: microseconds.
        w.packet(0, ts / 1_000, &f, 0);
    }
    std::fs::write(&path, &w.bytes).unwrap();
    let out = Command::new(SCRAMD)
        .args(["replay", "--config", "/dev/null", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The portscan, and the scan's closing record when the file ends.
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(
        alerts[0]["timestamp"], "2026-11-22T10:00:03.190000+0000",
        "pcapng timestamps honour the interface's resolution"
    );
}
