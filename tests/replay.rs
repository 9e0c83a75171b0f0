//! `scramd replay` reads every capture a user has: the odd records of real captures, every link
//! type a Linux user's captures come in, pcapng files mixing interfaces, captures of loopback
//! traffic; it says per file what was lost, and exits 65 only where a file could not be read to
//! its end. Captures are written byte by byte here, and recorded with the real tcpdump in
//! namespaces.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scram::alert::community_id::FlowTuple;
use scram::craft;
use scram::decode::tcp_flags::{ACK, SYN};
use scram::replay::file::{FileError, Reader};
use serde_json::Value;

mod common;

use common::pcap::{linktype, pcap, pcap_file, PcapNg, Rec};
use common::{Scratch, SCRAMD};

/// 2026-11-22T10:00:00Z
const T0: u64 = 1_795_341_600_000_000_000;
const MS: u64 = 1_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What one `scramd replay` run gave.
struct Replayed {
    code: Option<i32>,
    /// Its alerts, scans' closing records left out.
    alerts: Vec<Value>,
    stderr: String,
}

impl Replayed {
    fn detectors(&self) -> Vec<String> {
        self.alerts
            .iter()
            .map(|a| {
                a["alert"]["context"]["scram"]["detector"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    /// A number from the summary line (`replayed N packets ... N decoded ...`).
    fn total(&self, what: &str) -> u64 {
        let line = self
            .stderr
            .lines()
            .find(|l| l.contains("replayed "))
            .unwrap_or_else(|| panic!("no summary: {}", self.stderr));
        let key = format!(" {what}=");
        let at = line
            .find(&key)
            .unwrap_or_else(|| panic!("{what} not in {line}"));
        line[at + key.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

fn replay_files(config: &str, files: &[&Path]) -> Replayed {
    let dir = Scratch::new("cfg");
    let cfg = dir.write("scram.toml", config.as_bytes());
    let mut args = vec![
        "replay".to_owned(),
        "--config".into(),
        cfg.to_str().unwrap().into(),
    ];
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_owned()));
    let out = Command::new(SCRAMD).args(&args).output().unwrap();
    let alerts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for a in &alerts {
        common::eve::assert_valid(a);
    }
    // Scans' closing records (`scan-summary`) are tested in `recon.rs`.
    let alerts = alerts
        .into_iter()
        .filter(|a| a["alert"]["context"]["scram"]["detector"] != "scan-summary")
        .collect();
    Replayed {
        code: out.status.code(),
        alerts,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A SYN scan of `ports` ports, 10 ms apart, as Ethernet frames.
fn syn_scan(src: &str, dst: &str, ports: u16) -> Vec<(u64, Vec<u8>)> {
    (0..ports)
        .map(|p| {
            (
                T0 + u64::from(p) * 10 * MS,
                craft::tcp_frame(ip(src), ip(dst), 40000, 1 + p, SYN),
            )
        })
        .collect()
}

// ---- the schema check itself ---

#[test]
fn the_checker_rejects_what_the_schema_rejects() {
    let ok: Value = serde_json::from_str(
        r#"{"timestamp":"2026-11-22T10:00:00.123456+0000","event_type":"alert","host":"h",
            "in_iface":"eth0","src_ip":"192.0.2.7","proto":"TCP","community_id":"1:x",
            "alert":{"action":"allowed","gid":1,"signature_id":1,"rev":1,"signature":"s",
            "category":"c","severity":2,"context":{"scram":{"anything":[1,{"a":null}]}}}}"#,
    )
    .unwrap();
    assert!(
        common::eve::violations(&ok).is_empty(),
        "{:?}",
        common::eve::violations(&ok)
    );
    for bad in [
        r#"{"timestamp":"2026-11-22T10:00:00.1+0000","event_type":"alert","scram":{}}"#,
        r#"{"timestamp":"2026-11-22T10:00:00.1+0000","event_type":"alert","alert":{"scram":{}}}"#,
        r#"{"timestamp":"2026-11-22T10:00:00.1+0000","event_type":"alert","src_port":"22"}"#,
        r#"{"timestamp":"2026-11-22 10:00:00","event_type":"alert"}"#,
        r#"{"event_type":"alert"}"#,
    ] {
        let v: Value = serde_json::from_str(bad).unwrap();
        assert!(!common::eve::violations(&v).is_empty(), "{bad}");
    }
}

// ---- the reader ----------------------------------------------------------------------------

/// (timestamp ns, original length, captured length) of a record.
type Seen = (u64, u32, usize);

fn read_all(bytes: &[u8]) -> (Vec<Seen>, Result<(), FileError>) {
    let mut r = match Reader::new(bytes) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Err(e)),
    };
    let mut out = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => out.push((rec.ts_ns, rec.original_len, rec.data.len())),
            Ok(None) => return (out, Ok(())),
            Err(e) => return (out, Err(e)),
        }
    }
}

#[test]
fn snap_length_records_and_odd_fields_are_read_in_either_byte_order() {
    let big = vec![7u8; 300];
    for swapped in [false, true] {
        let recs = [
            // Original length above the captured length (tcpdump -s 256).
            Rec {
                secs: 10,
                frac: 5,
                orig_len: 1500,
                data: big[..256].to_vec(),
            },
            // Captured length above the file's snap length.
            Rec {
                secs: 11,
                frac: 0,
                orig_len: 300,
                data: big.clone(),
            },
            // Microseconds out of range carry into the seconds, as tcpdump prints them.
            Rec {
                secs: 12,
                frac: 1_500_000,
                orig_len: 60,
                data: big[..60].to_vec(),
            },
        ];
        let (got, end) = read_all(&pcap_file(linktype::ETHERNET, 256, swapped, false, &recs));
        end.unwrap();
        assert_eq!(
            got,
            vec![
                (10_000_005_000, 1500, 256),
                (11_000_000_000, 300, 300),
                (13_500_000_000, 60, 60)
            ]
        );
    }
    let nanos = pcap_file(
        linktype::ETHERNET,
        65535,
        false,
        true,
        &[Rec {
            secs: 1,
            frac: 42,
            orig_len: 60,
            data: big[..60].to_vec(),
        }],
    );
    assert_eq!(read_all(&nanos).0, vec![(1_000_000_042, 60, 60)]);
}

#[test]
fn a_cut_record_and_an_impossible_length_end_the_file_after_the_good_records() {
    let data = vec![1u8; 60];
    let two = [Rec::at(T0, &data), Rec::at(T0 + MS, &data)];
    let mut file = pcap_file(linktype::ETHERNET, 65535, false, false, &two);
    file.truncate(file.len() - 10);
    let (got, end) = read_all(&file);
    assert_eq!(got.len(), 1);
    assert!(
        matches!(
            end,
            Err(FileError::RecordCut {
                record: 2,
                missing: 10
            })
        ),
        "{end:?}"
    );

    let mut file = pcap_file(linktype::ETHERNET, 65535, false, false, &two[..1]);
    for v in [1u32, 0, u32::MAX, 60] {
        file.extend(v.to_le_bytes());
    }
    let (got, end) = read_all(&file);
    assert_eq!(got.len(), 1);
    assert!(
        matches!(end, Err(FileError::Corrupt { record: 2, .. })),
        "{end:?}"
    );

    assert!(matches!(read_all(b"junk").1, Err(FileError::NotCapture)));
    assert!(matches!(read_all(b"").1, Err(FileError::NotCapture)));
    assert!(matches!(
        read_all(&0xa1b2_c3d4u32.to_le_bytes()).1,
        Err(FileError::HeaderCut)
    ));
}

#[test]
fn pcapng_interfaces_keep_their_link_types_resolutions_names_and_sections() {
    let mut f = PcapNg::new();
    f.interface(1, "eth0", None)
        .interface(276, "any", Some(9))
        .block(0x0bad, b"a custom block")
        .packet(0, 2_000_000, &[1; 61], 100)
        .packet(1, 3_000_000_007, &[2; 40], 0)
        .packet(5, 1, &[3; 40], 0)
        // A second section numbers its interfaces anew.
        .section()
        .interface(0, "lo0", Some(0x80 | 10))
        .packet(0, 2048, &[4; 44], 0)
        .simple(&[5; 30]);
    let mut r = Reader::new(&f.bytes[..]).unwrap();
    let mut got = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        got.push((
            rec.interface,
            rec.link,
            rec.ts_ns,
            rec.data.len(),
            rec.original_len,
            rec.loopback,
        ));
    }
    assert_eq!(
        got,
        vec![
            (0, 1, 2_000_000_000, 61, 161, false),
            (1, 276, 3_000_000_007, 40, 40, false),
            (2, 0, 2_000_000_000, 44, 44, true),
            (2, 0, 0, 30, 30, true),
        ]
    );
    let (skipped, n) = r.skipped();
    assert_eq!(n, 1);
    assert_eq!(skipped[0].record, 7);
    assert!(skipped[0].why.contains("interface 5"), "{skipped:?}");
    assert_eq!(r.interfaces()[0].name.as_deref(), Some("eth0"));

    let mut cut = PcapNg::new();
    cut.interface(1, "eth0", None)
        .packet(0, 1, &[1; 60], 0)
        .packet(0, 2, &[1; 60], 0);
    let len = cut.bytes.len();
    let (got, end) = read_all(&cut.bytes[..len - 3]);
    assert_eq!(got.len(), 1);
    assert!(
        matches!(
            end,
            Err(FileError::RecordCut {
                record: 4,
                missing: 3
            })
        ),
        "{end:?}"
    );
}

// ---- scramd replay: files, link types, records ------------------------------------------------

#[test]
fn a_snap_length_capture_replays_every_record() {
    let s = Scratch::new("snaplen");
    // 1,109 records, each cut at 64 bytes of a longer packet: the scan in them is seen.
    let mut recs = Vec::new();
    for i in 0..1109u32 {
        let mut f = craft::tcp_frame(
            ip("192.0.2.7"),
            ip("198.51.100.2"),
            40000,
            1 + (i % 50) as u16,
            SYN,
        );
        f.resize(200, 0);
        recs.push(Rec {
            orig_len: 200,
            data: f[..64].to_vec(),
            ..Rec::at(T0 + u64::from(i) * MS, &[])
        });
    }
    let file = s.write(
        "s64.pcap",
        &pcap_file(linktype::ETHERNET, 64, false, false, &recs),
    );
    let r = replay_files("", &[&file]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.total("packets"), 1109, "{}", r.stderr);
    assert_eq!(r.total("decoded"), 1109, "{}", r.stderr);
    assert_eq!(r.detectors(), ["portscan"]);
    assert!(
        r.stderr.contains("1109 packet(s), read to its end"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_link_type_of_a_linux_users_captures() {
    let s = Scratch::new("links");
    let scan = syn_scan("192.0.2.7", "198.51.100.2", 25);
    let ip_only = |link: u32, prefix: &dyn Fn(&[u8]) -> Vec<u8>| -> Vec<u8> {
        let frames: Vec<(u64, Vec<u8>)> = scan
            .iter()
            .map(|(t, f)| {
                let mut out = prefix(&f[14..]);
                out.extend_from_slice(&f[14..]);
                (*t, out)
            })
            .collect();
        pcap(link, &frames)
    };
    let none = |_: &[u8]| Vec::new();
    let null_le = |_: &[u8]| 2u32.to_le_bytes().to_vec();
    let null_be = |_: &[u8]| 2u32.to_be_bytes().to_vec();
    let sll = |_: &[u8]| {
        let mut h = vec![0, 0, 0, 1, 0, 6];
        h.extend_from_slice(&craft::MAC_A);
        h.extend_from_slice(&[0, 0, 0x08, 0x00]);
        h
    };
    let sll2 = |_: &[u8]| {
        let mut h = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
        h.extend_from_slice(&craft::MAC_A);
        h.extend_from_slice(&[0, 0]);
        h
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ethernet", pcap(linktype::ETHERNET, &scan)),
        ("raw12", ip_only(linktype::RAW_DLT12, &none)),
        ("raw14", ip_only(linktype::RAW_DLT14, &none)),
        ("raw101", ip_only(linktype::RAW, &none)),
        ("ipv4", ip_only(linktype::IPV4, &none)),
        ("null-le", ip_only(linktype::NULL, &null_le)),
        ("null-be", ip_only(linktype::NULL, &null_be)),
        ("loop", ip_only(linktype::LOOP, &null_be)),
        ("sll", ip_only(linktype::LINUX_SLL, &sll)),
        ("sll2", ip_only(linktype::LINUX_SLL2, &sll2)),
    ];
    for (name, bytes) in &cases {
        let file = s.write(&format!("{name}.pcap"), bytes);
        let r = replay_files("", &[&file]);
        assert_eq!(r.code, Some(0), "{name}: {}", r.stderr);
        assert_eq!(r.total("decoded"), 25, "{name}: {}", r.stderr);
        assert_eq!(r.detectors(), ["portscan"], "{name}");
        assert_eq!(r.alerts[0]["src_ip"], "192.0.2.7", "{name}");
    }
    // A link type scram does not decode is counted by type; the file is still read to its end.
    let file = s.write("ppp.pcap", &pcap(9, &scan));
    let r = replay_files("", &[&file]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("not decoded: 25 of link type 9"),
        "{}",
        r.stderr
    );
    assert_eq!(r.total("decoded"), 0);
}

#[test]
fn a_pcapng_mixing_interfaces_of_different_types() {
    let s = Scratch::new("mixed");
    let scan = syn_scan("192.0.2.7", "198.51.100.2", 30);
    let mut f = PcapNg::new();
    f.interface(1, "eth0", None)
        .interface(101, "tun0", Some(9))
        .interface(113, "any", None);
    for (i, (t, frame)) in scan.iter().enumerate() {
        match i % 3 {
            0 => f.packet(0, t / 1_000, frame, 0),
            1 => f.packet(1, *t, &frame[14..], 0),
            _ => {
                let mut sll = vec![0, 0, 0, 1, 0, 6];
                sll.extend_from_slice(&craft::MAC_A);
                sll.extend_from_slice(&[0, 0, 0x08, 0x00]);
                sll.extend_from_slice(&frame[14..]);
                f.packet(2, t / 1_000, &sll, 0)
            }
        };
    }
    // A packet of an interface the file never described: skipped, named, the rest goes on.
    f.packet(9, 1, &scan[0].1, 0);
    let file = s.write("mixed.pcapng", &f.bytes);
    let r = replay_files("", &[&file]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.total("decoded"), 30, "{}", r.stderr);
    assert_eq!(r.detectors(), ["portscan"]);
    assert_eq!(
        r.alerts[0]["alert"]["context"]["scram"]["window_ms"], 190,
        "each interface's resolution honoured"
    );
    assert!(
        r.stderr
            .contains("1 record(s) skipped (record 35: packet of undescribed interface 9)"),
        "{}",
        r.stderr
    );
}

#[test]
fn real_network_shapes_decode() {
    let s = Scratch::new("shapes");
    let mut frames = Vec::new();
    // Three stacked VLAN tags.
    for (i, (t, _)) in syn_scan("192.0.2.7", "198.51.100.2", 20).iter().enumerate() {
        frames.push((
            *t,
            craft::ip_frame(
                ip("192.0.2.7"),
                ip("198.51.100.2"),
                6,
                &craft::tcp(40000, 1 + i as u16, SYN),
                &[(0x88a8, 10), (0x8100, 20), (0x8100, 30)],
            ),
        ));
    }
    // TCP segmentation offload: total length 0.
    let mut tso = craft::tcp_frame(ip("192.0.2.9"), ip("198.51.100.2"), 443, 50000, ACK);
    tso[16] = 0;
    tso[17] = 0;
    frames.push((T0 + 500 * MS, tso));
    // nmap -f: an 8-byte first fragment, then the rest.
    let tcp = craft::tcp(40001, 22, SYN);
    let first = craft::ipv4(
        "192.0.2.8".parse().unwrap(),
        "198.51.100.2".parse().unwrap(),
        6,
        (0, true),
        &tcp[..8],
    );
    let rest = craft::ipv4(
        "192.0.2.8".parse().unwrap(),
        "198.51.100.2".parse().unwrap(),
        6,
        (1, false),
        &tcp[8..],
    );
    for (i, p) in [first, rest].into_iter().enumerate() {
        frames.push((
            T0 + (600 + i as u64) * MS,
            craft::ethernet(craft::MAC_A, craft::MAC_B, &[], 0x0800, &p),
        ));
    }
    let file = s.write("shapes.pcap", &pcap(linktype::ETHERNET, &frames));
    let r = replay_files("", &[&file]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.total("decoded"), 23, "{}", r.stderr);
    assert_eq!(r.total("decode_errors"), 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("(1 tiny first fragments)"),
        "{}",
        r.stderr
    );
    // The nmap -f pair is a tiny first fragment as well as part of the scan.
    assert_eq!(r.detectors(), ["tiny-fragment", "portscan"]);
}

#[test]
fn exit_65_only_for_files_not_read_to_their_end_and_each_file_says_what_was_lost() {
    let s = Scratch::new("exit");
    let scan = syn_scan("192.0.2.7", "198.51.100.2", 30);
    let good = s.write("good.pcap", &pcap(linktype::ETHERNET, &scan));
    let junk = s.write("junk.pcap", b"this is not a capture file at all");
    let mut bytes = pcap(linktype::ETHERNET, &scan);
    bytes.truncate(bytes.len() - 7);
    let cut = s.write("cut.pcap", &bytes);
    let missing = s.path("missing.pcap");

    let r = replay_files("", &[&junk, &good, &cut, &missing]);
    assert_eq!(r.code, Some(65), "{}", r.stderr);
    assert!(r
        .stderr
        .contains("junk.pcap: 0 packet(s), unreadable: not a pcap or pcapng file"));
    assert!(r
        .stderr
        .contains("good.pcap: 30 packet(s), read to its end"));
    assert!(
        r.stderr.contains(
            "cut.pcap: 29 packet(s), stopped: record 30 is cut short: the file ends 7 byte(s) \
             before its end; the rest of the file is lost"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("missing.pcap: 0 packet(s), unreadable:"));
    // The good file and what came before the cut were both replayed (one alert each: their
    // scans share source and target, so the second is a held-back repeat).
    assert_eq!(r.total("packets"), 59);
    assert_eq!(r.detectors(), ["portscan"]);

    let r = replay_files("", &[&good]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn loopback_captures_are_judged_as_a_loopback_interface() {
    let s = Scratch::new("lo");
    let host = ip("192.0.2.10");
    let lo = ip("127.0.0.1");
    let zero = [0u8; 6];
    let dns = craft::udp(40000, 53, b"query");
    let lo_frames = vec![
        // `tcpdump -i lo`: Ethernet with both addresses zero.
        (
            T0,
            craft::ethernet(
                zero,
                zero,
                &[],
                0x0800,
                &craft::ipv4(
                    lo.to_string().parse().unwrap(),
                    "127.0.0.53".parse().unwrap(),
                    17,
                    (0, false),
                    &dns,
                ),
            ),
        ),
        // A host talking to its own address goes over lo too: src == dst is normal there.
        (
            T0 + MS,
            craft::ethernet(
                zero,
                zero,
                &[],
                0x0800,
                &craft::ipv4(
                    "192.0.2.10".parse().unwrap(),
                    "192.0.2.10".parse().unwrap(),
                    17,
                    (0, false),
                    &dns,
                ),
            ),
        ),
        // Loopback addresses on both ends, whatever the link layer shows.
        (
            T0 + 2 * MS,
            craft::udp_frame(lo, ip("127.0.0.2"), 40000, 53, b"q"),
        ),
    ];
    let file = s.write("lo.pcap", &pcap(linktype::ETHERNET, &lo_frames));
    let r = replay_files("", &[&file]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.alerts.is_empty(), "{:?}", r.alerts);

    // pcapng: the interface is named lo.
    let mut f = PcapNg::new();
    f.interface(1, "lo", None);
    let own = craft::udp_frame(host, host, 40000, 53, b"q");
    f.packet(0, T0 / 1_000, &own, 0);
    let file = s.write("lo.pcapng", &f.bytes);
    assert!(replay_files("", &[&file]).alerts.is_empty());

    // `tcpdump -i any`: the cooked header says ARPHRD_LOOPBACK.
    let mut sll = vec![0, 0, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&own[14..]);
    let file = s.write("any.pcap", &pcap(linktype::LINUX_SLL, &[(T0, sll)]));
    assert!(replay_files("", &[&file]).alerts.is_empty());

    // The same land packet between real stations on Ethernet is an attack.
    let file = s.write("eth.pcap", &pcap(linktype::ETHERNET, &[(T0, own)]));
    let r = replay_files("", &[&file]);
    assert_eq!(r.detectors(), ["martian"]);
    assert_eq!(r.alerts[0]["alert"]["context"]["scram"]["kind"], "land");
}

// ---- Community ID of alerts -------------------------------------------------------------------

#[test]
fn an_alerts_community_id_is_its_trigger_packets_flow() {
    let s = Scratch::new("cid");
    // The scan's 20th probe raises the alert: its flow, ports included, names it.
    let file = s.write(
        "scan.pcap",
        &pcap(
            linktype::ETHERNET,
            &syn_scan("192.0.2.7", "198.51.100.2", 20),
        ),
    );
    let trigger = FlowTuple::new(ip("192.0.2.7"), ip("198.51.100.2"), 6, Some((40000, 20)));
    for seed in [0u16, 1] {
        let r = replay_files(&format!("[alerts]\ncommunity_id_seed = {seed}\n"), &[&file]);
        assert_eq!(r.alerts.len(), 1);
        assert_eq!(r.alerts[0]["community_id"], trigger.community_id(seed));
        assert!(
            r.alerts[0].get("dest_port").is_none(),
            "a scan shows no port"
        );
    }

    // ICMP: a flood's id is that of its last echo request, type and code mapped.
    let flood: Vec<(u64, Vec<u8>)> = (0..2001u64)
        .map(|i| {
            (
                T0 + i * 100_000,
                craft::icmp_frame(ip("192.0.2.7"), ip("198.51.100.2"), 8, 0),
            )
        })
        .collect();
    let file = s.write("icmp.pcap", &pcap(linktype::ETHERNET, &flood));
    let r = replay_files("", &[&file]);
    assert_eq!(r.detectors(), ["icmp-flood"]);
    let a = &r.alerts[0];
    assert_eq!(
        (&a["proto"], &a["icmp_type"], &a["icmp_code"]),
        (&"ICMP".into(), &8.into(), &0.into())
    );
    assert_eq!(
        a["community_id"],
        FlowTuple::icmp(ip("192.0.2.7"), ip("198.51.100.2"), 1, 8, 0).community_id(0)
    );

    // Fragments: a later fragment's alert carries the first fragment's ports; without the first
    // fragment, no id at all (never a port-less id for TCP).
    let udp = craft::udp(5353, 9999, &[0; 40]);
    let (src, dst) = (
        "203.0.113.9".parse().unwrap(),
        "198.51.100.2".parse().unwrap(),
    );
    let first = craft::ipv4(src, dst, 17, (0, true), &udp[..24]);
    let later = craft::ipv4(src, dst, 17, (3, false), &udp[24..]);
    let eth = |p: &[u8]| craft::ethernet(craft::MAC_A, craft::MAC_B, &[], 0x0800, p);
    let bl = s.write("bl.txt", b"203.0.113.0/24\n");
    let config = format!(
        "[alerts]\nsuppress_seconds = 0\n[blocklist]\nfiles = [{:?}]\n",
        bl.to_str().unwrap()
    );
    let file = s.write(
        "frag.pcap",
        &pcap(
            linktype::ETHERNET,
            &[(T0, eth(&first)), (T0 + MS, eth(&later))],
        ),
    );
    let r = replay_files(&config, &[&file]);
    assert_eq!(r.detectors(), ["blocklist", "blocklist"], "{}", r.stderr);
    let id = FlowTuple::new(
        ip("203.0.113.9"),
        ip("198.51.100.2"),
        17,
        Some((5353, 9999)),
    )
    .community_id(0);
    assert_eq!(r.alerts[0]["community_id"], id);
    assert_eq!(r.alerts[1]["community_id"], id);
    let file = s.write(
        "later.pcap",
        &pcap(linktype::ETHERNET, &[(T0, eth(&later))]),
    );
    let r = replay_files(&config, &[&file]);
    assert_eq!(r.detectors(), ["blocklist"]);
    assert!(
        r.alerts[0].get("community_id").is_none(),
        "{:?}",
        r.alerts[0]
    );
}

#[test]
fn the_sensor_is_named_in_every_record() {
    let s = Scratch::new("host");
    let file = s.write(
        "scan.pcap",
        &pcap(
            linktype::ETHERNET,
            &syn_scan("192.0.2.7", "198.51.100.2", 20),
        ),
    );
    let r = replay_files("", &[&file]);
    assert_eq!(r.alerts[0]["host"], scram::alert::host_name());
    let r = replay_files("[alerts]\nsensor_name = \"edge-7\"\n", &[&file]);
    assert_eq!(r.alerts[0]["host"], "edge-7");
}

// ---- real tcpdump captures --------------------------------------------------------------------

/// A tcpdump writing a capture inside a namespace until stopped.
struct Tcpdump {
    child: std::process::Child,
    path: PathBuf,
}

impl Tcpdump {
    fn start(ns: &common::Netns, args: &[&str], path: PathBuf) -> Tcpdump {
        let mut full = vec!["netns", "exec", &ns.name, "tcpdump", "-n", "-U", "-w"];
        let p = path.to_str().unwrap().to_owned();
        full.push(&p);
        full.extend_from_slice(args);
        let child = Command::new("ip")
            .args(&full)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Tcpdump { child, path }
    }

    /// Stops it; returns how many packets it says it captured.
    fn stop(mut self) -> (PathBuf, u64) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let n = err
            .lines()
            .find(|l| l.ends_with("packets captured"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("tcpdump said: {err}"));
        (self.path.clone(), n)
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn real_tcpdump_captures_any_interface_cooked_v1_and_v2_and_snap_length() {
    if !common::privileged("real_tcpdump_captures") {
        return;
    }
    let s = Scratch::new("tcpdump");
    let net = common::Veth::new();
    net.a
        .exec(&["ip", "addr", "add", "10.77.0.1/24", "dev", common::VA]);
    net.b
        .exec(&["ip", "addr", "add", "10.77.0.2/24", "dev", common::VB]);
    let dumps = [
        Tcpdump::start(
            &net.b,
            &["-i", "any", "-y", "LINUX_SLL"],
            s.path("sll.pcap"),
        ),
        Tcpdump::start(
            &net.b,
            &["-i", "any", "-y", "LINUX_SLL2"],
            s.path("sll2.pcap"),
        ),
        Tcpdump::start(&net.b, &["-i", common::VB, "-s", "96"], s.path("snap.pcap")),
        Tcpdump::start(
            &net.b,
            &["-i", "any", "--time-stamp-precision=nano", "-s", "128"],
            s.path("nano.pcap"),
        ),
    ];
    // Wait until every tcpdump has opened its file (it writes the header once it listens).
    let deadline = Instant::now() + Duration::from_secs(10);
    while dumps.iter().any(|d| !d.path.exists()) {
        assert!(Instant::now() < deadline, "tcpdump did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    // A connect scan of 30 closed ports, large pings (longer than the snap length), and the
    // target's own loopback chatter.
    net.a.exec(&[
        "bash",
        "-c",
        "for p in $(seq 1 30); do (exec 3<>/dev/tcp/10.77.0.2/$p) 2>/dev/null; done; \
         ping -c 3 -i 0.2 -s 1000 -q 10.77.0.2",
    ]);
    net.b
        .exec(&["ping", "-c", "3", "-i", "0.2", "-q", "127.0.0.1"]);
    net.b
        .exec(&["ping", "-c", "2", "-i", "0.2", "-q", "10.77.0.2"]);
    std::thread::sleep(Duration::from_millis(300));
    for d in dumps {
        let (path, captured) = d.stop();
        let r = replay_files("", &[&path]);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(r.code, Some(0), "{name}: {}", r.stderr);
        assert!(captured >= 66, "{name}: tcpdump captured only {captured}");
        assert_eq!(r.total("packets"), captured, "{name}: {}", r.stderr);
        assert_eq!(r.total("decoded"), captured, "{name}: {}", r.stderr);
        assert_eq!(r.total("decode_errors"), 0, "{name}: {}", r.stderr);
        // The scan, from the scanner; never a martian for the loopback traffic.
        assert_eq!(r.detectors(), ["portscan"], "{name}: {:?}", r.alerts);
        assert_eq!(r.alerts[0]["src_ip"], "10.77.0.1", "{name}");
        assert_eq!(r.alerts[0]["dest_ip"], "10.77.0.2", "{name}");
    }
}
