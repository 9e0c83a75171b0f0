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
use std::process::Command;

use serde_json::Value;

use common::SCRAMD;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/recon");
const SCANNER: &str = "10.9.0.2";
const TARGET: &str = "10.9.0.10";

/// Every alert of `capture`, checked against the EVE schema's rules.
fn replay(capture: &str) -> Vec<Value> {
    let path = format!("{DIR}/{capture}.pcap");
    let out = Command::new(SCRAMD)
        .args(["replay", "--config", "/dev/null", &path])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{capture}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for a in &alerts {
        common::eve::assert_valid(a);
    }
    alerts
}

fn detector(a: &Value) -> &str {
    a["alert"]["context"]["scram"]["detector"].as_str().unwrap()
}

/// `capture` raises exactly the detectors `expected`, each naming the scanner and the target,
/// and its portscan names `scan_type`.
fn caught(capture: &str, expected: &[&str], scan_type: &str) {
    let alerts = replay(capture);
    let got: BTreeSet<&str> = alerts.iter().map(detector).collect();
    let want: BTreeSet<&str> = expected.iter().copied().collect();
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
    caught("nmap-fragments", &["portscan"], "fragmented TCP");
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
    assert_eq!(sources.len(), 4, "the first four named: {a}");
    assert!(
        a["alert"]["context"]["scram"]["message"]
            .as_str()
            .unwrap()
            .ends_with("and 1 more, none of them over the per-source threshold"),
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
