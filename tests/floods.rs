//! Floods, password guessing and fragment tricks as the real tools send them (hping3, recorded in namespaces by
//! `tests/data/recon/record.sh`) and the ordinary traffic that must not look like one, replayed
//! through `scramd replay`: each flood raises its detector naming the victim, and a storm of
//! forged sources stays a handful of records.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeMap;

use serde_json::Value;

use common::captures::{detector, replay, replay_with, scram};

const VICTIM: &str = "10.9.0.10";

/// How many records of each detector `alerts` holds.
fn tally(alerts: &[Value]) -> BTreeMap<&str, usize> {
    let mut t = BTreeMap::new();
    for a in alerts {
        *t.entry(detector(a)).or_default() += 1;
    }
    t
}

#[test]
fn a_spoofed_syn_flood_of_30000_packets_is_a_handful_of_records() {
    // hping3 -S --rand-source: 30,000 SYNs, each from a random address; one in sixteen is a
    // multicast address and one in 256 a loopback one, which martian reports.
    let alerts = replay("flood-syn-spoofed");
    assert!(alerts.len() <= 6, "{:#?}", tally(&alerts));
    let flood: Vec<&Value> = alerts
        .iter()
        .filter(|a| detector(a) == "syn-flood")
        .collect();
    assert_eq!(flood.len(), 1, "{alerts:#?}");
    assert_eq!(flood[0]["dest_ip"], VICTIM);
    assert!(
        flood[0].get("src_ip").is_none(),
        "no one source: {}",
        flood[0]
    );
    // 3,001 forged sources hashed into 256 bits (with a salt drawn per process) leave every bit
    // set almost always (255: "250 or more"); a bit or two left clear (about one run in 500)
    // reads as the estimate's cap, 250 ("about 250").
    let distinct = scram(flood[0])["distinct_sources"].as_u64().unwrap();
    assert!(distinct >= 250, "{}", flood[0]);
    let expected = if distinct == 255 {
        "from many sources (about 250 or more)"
    } else {
        "from many sources (about 250)"
    };
    assert!(
        scram(flood[0])["message"]
            .as_str()
            .unwrap()
            .contains(expected),
        "{}",
        flood[0]
    );
    // The martians: the first three sources, then one record of the storm with its count.
    let martians: Vec<&Value> = alerts.iter().filter(|a| detector(a) == "martian").collect();
    assert_eq!(martians.len(), 4, "{martians:#?}");
    let storm = martians
        .iter()
        .find(|a| scram(a).get("sources_held").is_some())
        .unwrap();
    assert_eq!(storm["dest_ip"], VICTIM);
    assert!(storm.get("src_ip").is_none(), "{storm}");
    let held = scram(storm)["sources_held"].as_u64().unwrap();
    assert!(held > 2_000, "{storm}");
    assert_eq!(
        scram(storm)["suppressed"].as_u64().unwrap(),
        held,
        "{storm}"
    );
}

#[test]
fn ack_and_rst_floods_are_told_from_the_conversations_they_do_not_belong_to() {
    for (capture, det) in [("flood-ack", "ack-flood"), ("flood-rst", "rst-flood")] {
        let alerts = replay(capture);
        assert_eq!(alerts.len(), 1, "{capture}: {alerts:#?}");
        let a = &alerts[0];
        assert_eq!(detector(a), det, "{a}");
        assert_eq!(a["dest_ip"], VICTIM, "{a}");
        assert_eq!(a["src_ip"], "10.9.0.2", "one source sent them all: {a}");
        assert_eq!(a["alert"]["severity"], 1, "{a}");
    }
}

#[test]
fn a_reflection_names_the_service_and_the_reflectors() {
    // hping3 -2 -s 53 -k -d 480 --rand-source: DNS-sized answers from port 53 of random
    // reflectors to a port the victim never asked on.
    let alerts = replay("reflection-dns");
    let refl: Vec<&Value> = alerts
        .iter()
        .filter(|a| detector(a) == "reflection")
        .collect();
    assert_eq!(refl.len(), 1, "{alerts:#?}");
    let r = refl[0];
    assert_eq!(r["dest_ip"], VICTIM, "{r}");
    assert_eq!(r["src_port"], 53, "the service: {r}");
    assert_eq!(scram(r)["sources"].as_array().unwrap().len(), 4, "{r}");
    assert!(
        scram(r)["message"]
            .as_str()
            .unwrap()
            .contains("DNS (UDP port 53) answers it never asked for"),
        "{r}"
    );
    // No udp-flood beside it, and the forged multicast reflectors are one storm.
    let t = tally(&alerts);
    assert_eq!(t.get("udp-flood"), None, "{t:?}");
    assert!(t.get("martian").copied().unwrap_or(0) <= 4, "{t:?}");
}

#[test]
fn a_busy_resolver_an_ntp_server_and_a_large_download_raise_nothing() {
    // Thousands of answers from port 53 a second, every one asked for; an NTP server answering
    // 2,000 queries a second, some from port 123; 8 MB at full-size segments, thousands of
    // ACK-bearing segments a second on one connection.
    for capture in ["benign-resolver", "benign-ntp", "benign-download"] {
        let alerts = replay(capture);
        assert!(alerts.is_empty(), "{capture}: {alerts:#?}");
    }
}

#[test]
fn password_guessing_is_a_brute_force_naming_the_service() {
    // 200 connections to ssh in 20 s, each exchanging a few bytes.
    let alerts = replay("brute-ssh");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(detector(a), "brute-force", "{a}");
    assert_eq!(
        (&a["src_ip"], &a["dest_ip"], &a["dest_port"]),
        (
            &Value::from("10.9.0.2"),
            &Value::from(VICTIM),
            &Value::from(22)
        ),
        "{a}"
    );
}

#[test]
fn overlapping_fragments_are_a_frag_overlap() {
    // Teardrop (scapy): ten datagrams whose second fragment starts inside the first.
    let alerts = replay("teardrop");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(detector(a), "frag-overlap", "{a}");
    assert_eq!(
        (&a["src_ip"], &a["dest_ip"], &a["proto"]),
        (
            &Value::from("10.9.0.2"),
            &Value::from(VICTIM),
            &Value::from("UDP")
        ),
        "{a}"
    );
}

#[test]
fn a_fragment_flood_is_a_frag_flood() {
    // hping3 -2 -f: each datagram in 8-byte fragments; 6,400 fragments in a fraction of a second,
    // judged against 2,000 a second (the default, 10,000, leaves room for NFS and large DNS).
    let alerts = replay_with("flood-frag", "[detect.frag-flood]\npps = 2000\n");
    let t = tally(&alerts);
    assert_eq!(t.get("frag-flood"), Some(&1), "{alerts:#?}");
    let a = alerts.iter().find(|a| detector(a) == "frag-flood").unwrap();
    assert_eq!(
        (&a["dest_ip"], &a["src_ip"]),
        (&Value::from(VICTIM), &Value::from("10.9.0.2"))
    );
    assert!(replay("flood-frag")
        .iter()
        .all(|a| detector(a) != "frag-flood"));
}
