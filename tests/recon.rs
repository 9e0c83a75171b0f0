//! Reconnaissance as the real tools run it, and ordinary traffic that must stay silent: captures
//! recorded with the tools themselves in network namespaces (`tests/data/recon/record.sh`),
//! replayed through `scramd replay`. Each attack capture must raise the expected detectors
//! naming the scanner, and nothing else; each benign capture must raise nothing.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeSet;

use serde_json::Value;

use common::captures::{detector, replay};
use common::live::Live;

const SCANNER: &str = "10.9.0.2";
const TARGET: &str = "10.9.0.10";

/// `capture` raises exactly the detectors `expected` and the portscan's closing record, each
/// naming the scanner and the target; the portscan names `scan_type`, and so does its closing
/// record, with its totals.
fn caught(capture: &str, expected: &[&str], scan_type: &str) -> Value {
    let alerts = replay(capture);
    let got: BTreeSet<&str> = alerts.iter().map(detector).collect();
    let mut want: BTreeSet<&str> = expected.iter().copied().collect();
    want.insert("scan-summary");
    assert_eq!(got, want, "{capture}: {alerts:#?}");
    for a in &alerts {
        assert_eq!(a["src_ip"], SCANNER, "{capture}: {a}");
        assert_eq!(a["dest_ip"], TARGET, "{capture}: {a}");
    }
    let scan = alerts.iter().find(|a| detector(a) == "portscan").unwrap();
    assert_eq!(
        scan["alert"]["context"]["scram"]["kind"], scan_type,
        "{capture}: {scan}"
    );
    assert_eq!(
        alerts.iter().filter(|a| detector(a) == "portscan").count(),
        1,
        "one incident, repeats suppressed: {capture}"
    );
    let closing: Vec<&Value> = alerts
        .iter()
        .filter(|a| detector(a) == "scan-summary")
        .collect();
    assert_eq!(closing.len(), 1, "one closing record: {capture}");
    let sum = closing[0].clone();
    let ctx = &sum["alert"]["context"]["scram"];
    assert_eq!(ctx["scan"], "portscan", "{capture}: {sum}");
    assert!(
        ctx["kind"].as_str().unwrap().contains(scan_type),
        "{capture}: {sum}"
    );
    assert!(
        ctx["count"].as_u64().unwrap() >= 20
            && ctx["attempts"].as_u64().unwrap() >= ctx["count"].as_u64().unwrap(),
        "{capture}: {sum}"
    );
    assert_eq!(sum["alert"]["severity"], 3, "{capture}: {sum}");
    sum
}

/// The ports a closing record says answered.
fn answered(sum: &Value) -> BTreeSet<u64> {
    sum["alert"]["context"]["scram"]["answered_ports"]
        .as_array()
        .map(|a| a.iter().map(|p| p.as_u64().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn a_scan_closes_with_what_the_scanner_learned() {
    // The target offers ssh and http: what SYN, connect and masscan scans find open.
    for capture in ["nmap-syn", "nmap-connect", "masscan"] {
        let sum = caught(capture, &["portscan"], "SYN");
        assert_eq!(answered(&sum), [22, 80].into(), "{capture}: {sum}");
        assert_eq!(sum["alert"]["context"]["scram"]["answered"], 2, "{sum}");
    }
    // The slow scan's 30 ports include ssh's.
    let sum = caught("nmap-slow", &["portscan"], "SYN");
    assert_eq!(answered(&sum), [22].into(), "{sum}");
    // Nothing answers an ACK or a FIN scan, or UDP on ports nobody serves.
    for (capture, also, kind) in [
        ("nmap-ack", None, "ACK"),
        ("nmap-fin", Some("tcp-flags"), "FIN"),
        ("nmap-udp", None, "UDP"),
    ] {
        let expected: Vec<&str> = ["portscan"].into_iter().chain(also).collect();
        let sum = caught(capture, &expected, kind);
        assert_eq!(sum["alert"]["context"]["scram"]["answered"], 0, "{sum}");
        assert!(
            sum["alert"]["context"]["scram"]["message"]
                .as_str()
                .unwrap()
                .ends_with("nothing answered"),
            "{sum}"
        );
    }
}

#[test]
fn every_nmap_tcp_scan_type_is_caught_and_named() {
    caught("nmap-syn", &["portscan"], "SYN");
    caught("nmap-connect", &["portscan"], "SYN");
    caught("nmap-ack", &["portscan"], "ACK");
    caught("nmap-window", &["portscan"], "ACK");
    caught("nmap-maimon", &["portscan"], "Maimon");
    caught("nmap-fin", &["portscan", "tcp-flags"], "FIN");
    caught("nmap-null", &["portscan", "tcp-flags"], "NULL");
    caught("nmap-xmas", &["portscan", "tcp-flags"], "XMAS");
}

#[test]
fn udp_sctp_and_ip_protocol_scans_are_caught() {
    caught("nmap-udp", &["portscan"], "UDP");
    caught("nmap-ipproto", &["portscan"], "IP protocol");
    caught("nmap-sctp-init", &["portscan"], "SCTP");
    caught("nmap-sctp-cookie", &["portscan"], "SCTP");
}

#[test]
fn masscan_and_fragmented_scans_are_caught() {
    caught("masscan", &["portscan"], "SYN");
    // nmap -f: 8-byte fragments, the TCP flags in the second one.
    caught(
        "nmap-fragments",
        &["portscan", "tiny-fragment"],
        "fragmented TCP",
    );
}

#[test]
fn host_discovery_on_the_link_is_an_arp_sweep_naming_the_machine() {
    // On Ethernet nmap -sn of the local /24 sends only ARP; arp-scan and netdiscover likewise.
    // netdiscover forges its sender address (x.x.x.67): the MAC names the machine.
    let mut macs = BTreeSet::new();
    for (capture, sender) in [
        ("nmap-ping-sweep-lan", SCANNER),
        ("arp-scan", SCANNER),
        ("netdiscover", "10.9.0.67"),
    ] {
        let alerts = replay(capture);
        assert_eq!(alerts.len(), 1, "{capture}: {alerts:#?}");
        let a = &alerts[0];
        assert_eq!(detector(a), "arp-sweep", "{capture}: {a}");
        assert_eq!(a["src_ip"], sender, "{capture}: {a}");
        assert_eq!(
            a["alert"]["context"]["scram"]["count"], 20,
            "{capture}: {a}"
        );
        macs.insert(
            a["alert"]["context"]["scram"]["mac"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(macs.len(), 1, "one machine behind all three: {macs:?}");
}

#[test]
fn ipv6_host_discovery_is_an_nd_sweep() {
    // nmap -6 -sn over 48 addresses of which 24 exist: neighbour solicitations to
    // solicited-node groups, half of them answered.
    let alerts = replay("nmap6-ping-sweep");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(detector(a), "nd-sweep", "{a}");
    assert_eq!(a["src_ip"], "fd09::2", "{a}");
    assert!(a["alert"]["context"]["scram"]["mac"].is_string(), "{a}");
}

#[test]
fn alive6_is_an_nd_sweep_from_its_first_packet() {
    // atk6-alive6: an echo request to ff02::1, then the same with a destination option every
    // node must answer with a parameter problem.
    let alerts = replay("alive6");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(detector(a), "nd-sweep", "{a}");
    assert_eq!(a["src_ip"], "fe80::fc88:afff:fec7:d27b", "{a}");
    assert_eq!(
        a["alert"]["context"]["scram"]["kind"], "multicast echo",
        "{a}"
    );
    assert_eq!(
        a["alert"]["context"]["scram"]["mac"], "fe:88:af:c7:d2:7b",
        "{a}"
    );
}

#[test]
fn a_decoy_scan_is_one_incident_naming_every_source() {
    // nmap -D 10.9.0.101,10.9.0.102,ME,10.9.0.103: four sources scan at the same moment.
    let alerts = replay("nmap-decoy");
    let decoys: Vec<_> = alerts
        .iter()
        .filter(|a| detector(a) == "decoy-scan")
        .collect();
    assert_eq!(decoys.len(), 1, "{alerts:#?}");
    let d = decoys[0];
    assert_eq!(d["dest_ip"], TARGET, "{d}");
    assert!(d.get("src_ip").is_none(), "no one source is the actor: {d}");
    let sources: BTreeSet<&str> = d["alert"]["context"]["scram"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = ["10.9.0.2", "10.9.0.101", "10.9.0.102", "10.9.0.103"].into();
    assert_eq!(sources, want, "{d}");
    assert_eq!(d["alert"]["context"]["scram"]["count"], 4, "{d}");
    // The link layer: every probe came from the scanner's MAC, the one 10.9.0.2 claims in ARP.
    assert_eq!(
        d["alert"]["context"]["scram"]["mac"], "fe:88:af:c7:d2:7b",
        "{d}"
    );
    assert_eq!(d["alert"]["context"]["scram"]["mac_owner"], SCANNER, "{d}");
    assert!(
        d["alert"]["context"]["scram"]["message"]
            .as_str()
            .unwrap()
            .ends_with("10.9.0.2 is the scanner, the others are forged"),
        "{d}"
    );
    // One incident: the decoys' portscans, and their closing records that learned nothing,
    // fold into it. What stays: the scanner's portscan (refused at once, it came first) and
    // its closing record, where the answers went.
    let rest: Vec<(&str, &Value)> = alerts
        .iter()
        .filter(|a| detector(a) != "decoy-scan")
        .map(|a| (detector(a), &a["src_ip"]))
        .collect();
    let scanner = Value::from(SCANNER);
    assert_eq!(
        rest,
        [("portscan", &scanner), ("scan-summary", &scanner)],
        "{alerts:#?}"
    );
}

#[test]
fn a_distributed_scan_names_the_target_and_its_sources() {
    // Five forged sources, eight ports each (scapy): no source over the per-source threshold.
    let alerts = replay("distributed");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(detector(a), "distributed-scan", "{a}");
    assert_eq!(a["dest_ip"], TARGET, "{a}");
    assert_eq!(a["alert"]["context"]["scram"]["count"], 20, "{a}");
    let sources = a["alert"]["context"]["scram"]["sources"]
        .as_array()
        .unwrap();
    assert_eq!(sources.len(), 5, "all five named: {a}");
    assert!(
        a["alert"]["context"]["scram"]["message"]
            .as_str()
            .unwrap()
            .ends_with("none of them over the per-source threshold"),
        "{a}"
    );
}

#[test]
fn a_slow_scan_is_caught() {
    // nmap --scan-delay 4s over 30 ports: two minutes, never 20 ports in one.
    caught("nmap-slow", &["portscan"], "SYN");
}

#[test]
fn ordinary_traffic_raises_nothing() {
    for capture in [
        "benign-poller",
        "benign-dns-high-port",
        "benign-browser",
        "benign-chatter",
        "benign-neighbours",
        "benign-nat",
        "benign-server",
    ] {
        let alerts = replay(capture);
        assert!(alerts.is_empty(), "{capture}: {alerts:#?}");
    }
}

#[test]
fn a_live_arp_sweep_is_caught_naming_the_sender() {
    if !common::privileged("live ARP sweep") {
        return;
    }
    let owner = common::scram_user();
    let veth = common::Veth::new();
    veth.a
        .exec(&["ip", "addr", "add", "10.77.0.1/24", "dev", common::VA]);
    veth.b
        .exec(&["ip", "addr", "add", "10.77.0.2/24", "dev", common::VB]);
    let scratch = common::Scratch::owned_by("arp-sweep", owner);
    let alerts = scratch.path("alerts.json");
    let config = scratch.write(
        "scram.toml",
        format!("[alerts]\njson = {:?}\n", alerts.to_str().unwrap()).as_bytes(),
    );
    let mut d = common::Scramd::run_in(
        &veth.b.name,
        &["--config", config.to_str().unwrap(), "--iface", common::VB],
        scratch.path("log"),
    );
    d.wait_for_log("capturing on vb", 10);
    // The real tool, from the neighbour's namespace: the whole /24, once.
    let out = veth.a.exec(&[
        "timeout",
        "30",
        "arp-scan",
        "--interface",
        common::VA,
        "--retry",
        "1",
        "10.77.0.0/24",
    ]);
    assert!(
        out.status.success(),
        "arp-scan: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = common::wait_until(
        "an arp-sweep alert",
        std::time::Duration::from_secs(15),
        || {
            let t = std::fs::read_to_string(&alerts).unwrap_or_default();
            t.contains("\"arp-sweep\"").then_some(t)
        },
        || d.log(),
    );
    let sweep: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|a| detector(a) == "arp-sweep")
        .unwrap();
    assert_eq!(sweep["src_ip"], "10.77.0.1", "{sweep}");
    assert!(sweep.get("proto").is_none(), "{sweep}");
    assert_eq!(d.stop().0, 0);
}

#[test]
fn a_live_slow_scan_is_caught_while_it_runs_and_closed_with_what_it_found() {
    if !common::privileged("live slow scan") {
        return;
    }
    // nmap -T1 waits 15 s between probes and a portscan window is an hour; here, on the same
    // scale, one probe a second over 12 ports against a threshold of 6 ports in 4 minutes, and
    // the scan ends after 3 quiet seconds.
    let live = Live::new(
        "slow-scan",
        1,
        "[detect.portscan]\nports = 6\nwindow_seconds = 240\n\
         [detect.scan-summary]\nquiet_seconds = 3\n",
    );
    let scanner = live.veth.a.spawn(|| {
        common::sh(&[
            "timeout",
            "60",
            "nmap",
            "-n",
            "-Pn",
            "-sS",
            "--max-retries",
            "0",
            "--scan-delay",
            "1s",
            "-p",
            "20-31",
            "10.77.1.2",
        ])
    });
    let alerts = live.wait_for("portscan", 30);
    assert!(
        !scanner.is_finished(),
        "the portscan alert comes while the scan runs: {alerts:#?}"
    );
    let scan = alerts.iter().find(|a| detector(a) == "portscan").unwrap();
    assert_eq!(scan["src_ip"], "10.77.1.1", "{scan}");
    assert_eq!(scan["alert"]["context"]["scram"]["kind"], "SYN", "{scan}");
    let out = scanner.join().unwrap();
    assert!(
        out.status.success(),
        "nmap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = live.wait_for("scan-summary", 15);
    let sum = alerts
        .iter()
        .find(|a| detector(a) == "scan-summary")
        .unwrap();
    assert_eq!(
        (&sum["src_ip"], &sum["dest_ip"]),
        (&Value::from("10.77.1.1"), &Value::from("10.77.1.2")),
        "{sum}"
    );
    let ctx = &sum["alert"]["context"]["scram"];
    assert_eq!(ctx["count"], 12, "{sum}");
    assert_eq!(answered(sum), [22].into(), "{sum}");
    assert!(ctx["window_ms"].as_u64().unwrap() >= 5_000, "{sum}");
    let Live { scramd, .. } = live;
    assert_eq!(scramd.stop().0, 0);
}

#[test]
fn a_live_decoy_scan_is_one_incident_naming_every_source() {
    if !common::privileged("live decoy scan") {
        return;
    }
    let live = Live::new("decoy-scan", 2, "");
    let out = live.veth.a.run(|| {
        common::sh(&[
            "timeout",
            "60",
            "nmap",
            "-n",
            "-Pn",
            "-sS",
            "--max-retries",
            "0",
            "-D",
            "10.77.2.101,10.77.2.102,ME,10.77.2.103",
            "-p",
            "1-40",
            "10.77.2.2",
        ])
    });
    assert!(
        out.status.success(),
        "nmap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = live.wait_for("decoy-scan", 20);
    let decoy = alerts.iter().find(|a| detector(a) == "decoy-scan").unwrap();
    assert_eq!(decoy["dest_ip"], "10.77.2.2", "{decoy}");
    let sources: BTreeSet<&str> = decoy["alert"]["context"]["scram"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = ["10.77.2.1", "10.77.2.101", "10.77.2.102", "10.77.2.103"].into();
    assert_eq!(sources, want, "{decoy}");
    assert_eq!(
        decoy["alert"]["context"]["scram"]["mac_owner"], "10.77.2.1",
        "the scanner's MAC sent every probe: {decoy}"
    );
    let Live {
        scramd, alerts: f, ..
    } = live;
    assert_eq!(scramd.stop().0, 0);
    // No decoy has a portscan of its own.
    let text = std::fs::read_to_string(f).unwrap();
    let scans: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|a| detector(a) == "portscan")
        .collect();
    assert!(
        scans.iter().all(|a| a["src_ip"] == "10.77.2.1"),
        "{scans:#?}"
    );
}

#[test]
fn a_live_fragmented_scan_is_seen_as_the_scan_it_is() {
    if !common::privileged("live fragmented scan") {
        return;
    }
    // nmap -f cuts every probe into 8-byte fragments; the capture's fanout group reassembles
    // them (PACKET_FANOUT_FLAG_DEFRAG), so scramd judges the whole SYNs.
    let live = Live::new("frag-scan", 5, "");
    live.veth.a.exec(&[
        "timeout",
        "60",
        "nmap",
        "-n",
        "-Pn",
        "-sS",
        "-f",
        "--max-retries",
        "0",
        "-p",
        "1-40",
        "10.77.5.2",
    ]);
    let alerts = live.wait_for("portscan", 20);
    let scan = alerts.iter().find(|a| detector(a) == "portscan").unwrap();
    assert_eq!(scan["src_ip"], "10.77.5.1", "{scan}");
    assert_eq!(scan["dest_ip"], "10.77.5.2", "{scan}");
    let Live { scramd, .. } = live;
    assert_eq!(scramd.stop().0, 0);
}
