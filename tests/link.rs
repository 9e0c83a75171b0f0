//! Link-layer attacks as the real tools run them (thc-ipv6, recorded in namespaces by
//! `tests/data/recon/record.sh`, and live against `scramd run`): rogue router advertisements,
//! a router-advertisement flood, neighbour spoofing, gratuitous ARP and arpspoof.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use serde_json::Value;

use common::captures::{detector, replay, scram};
use common::live::Live;

#[test]
fn a_rogue_router_advertisement_names_the_router_and_the_one_learned() {
    // The link's router advertises first (scapy, from the victim), then fake_router6.
    let alerts = replay("rogue-ra");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(detector(a), "rogue-ra", "{a}");
    assert_eq!(a["dest_ip"], "ff02::1", "{a}");
    assert_eq!(scram(a)["kind"], "router learned", "{a}");
    assert_ne!(scram(a)["mac"], scram(a)["router_mac"], "{a}");
    assert!(
        scram(a)["message"]
            .as_str()
            .unwrap()
            .contains("learned as the first seen"),
        "{a}"
    );
}

#[test]
fn a_router_advertisement_flood_is_a_handful_of_records() {
    // flood_router26: 4,000 advertisements from random link-local sources and MACs.
    let alerts = replay("ra-flood");
    assert!(alerts.len() <= 5, "{alerts:#?}");
    assert!(
        alerts.iter().all(|a| detector(a) == "rogue-ra"),
        "{alerts:#?}"
    );
    let storm = alerts
        .iter()
        .find(|a| scram(a).get("sources_held").is_some())
        .unwrap();
    assert!(
        scram(storm)["sources_held"].as_u64().unwrap() > 3_000,
        "{storm}"
    );
}

#[test]
fn a_neighbour_advertisement_claiming_a_bound_address_is_nd_spoof() {
    // The victim answers for fd09::10, then fake_advertise6 claims it for the attacker's MAC.
    let alerts = replay("nd-spoof");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(detector(a), "nd-spoof", "{a}");
    assert_eq!(a["src_ip"], "fd09::10", "{a}");
    assert_ne!(scram(a)["mac"], scram(a)["previous_mac"], "{a}");
}

#[test]
fn gratuitous_arp_and_arpspoof_raise_arp_spoof_naming_the_claimant() {
    // arping -U and -A claiming 10.9.0.11, dsniff arpspoof claiming 10.9.0.12 to the whole link,
    // each after the victim answered for the address itself: one alert each, repeats held.
    for (capture, claimed) in [("arp-gratuitous", "10.9.0.11"), ("arpspoof", "10.9.0.12")] {
        let alerts = replay(capture);
        assert_eq!(alerts.len(), 1, "{capture}: {alerts:#?}");
        let a = &alerts[0];
        assert_eq!(detector(a), "arp-spoof", "{a}");
        assert_eq!(a["src_ip"], claimed, "{a}");
        assert!(a.get("proto").is_none(), "{a}");
        assert_ne!(scram(a)["mac"], scram(a)["previous_mac"], "{a}");
    }
}

#[test]
fn a_live_rogue_router_is_caught_against_the_configured_one() {
    if !common::privileged("live rogue RA") {
        return;
    }
    let live = Live::new(
        "rogue-ra",
        3,
        "[detect.rogue-ra]\nrouters = [\"fe80::1\"]\n",
    );
    // The tool runs until stopped: three seconds, ended by timeout (124).
    live.veth.a.exec(&[
        "sh",
        "-c",
        "timeout 3 atk6-fake_router6 va fd66::/64 >/dev/null; test $? -eq 124",
    ]);
    let alerts = live.wait_for("rogue-ra", 15);
    let a: &Value = alerts.iter().find(|a| detector(a) == "rogue-ra").unwrap();
    assert_eq!(scram(a)["kind"], "router configured", "{a}");
    assert_eq!(scram(a)["router"], "fe80::1", "{a}");
    let Live { scramd, .. } = live;
    assert_eq!(scramd.stop().0, 0);
}

#[test]
fn a_live_neighbour_spoof_is_caught_naming_the_claimant() {
    if !common::privileged("live ND spoof") {
        return;
    }
    let live = Live::new("nd-spoof", 4, "");
    // The attacker resolves the victim (which answers for itself), then claims its address.
    live.veth
        .a
        .exec(&["ping", "-6", "-c", "2", "-i", "0.2", "fd77:4::2"]);
    live.veth.a.exec(&[
        "sh",
        "-c",
        "timeout 3 atk6-fake_advertise6 va fd77:4::2 >/dev/null; test $? -eq 124",
    ]);
    let alerts = live.wait_for("nd-spoof", 15);
    let a = alerts.iter().find(|a| detector(a) == "nd-spoof").unwrap();
    assert_eq!(a["src_ip"], "fd77:4::2", "{a}");
    let Live { scramd, .. } = live;
    assert_eq!(scramd.stop().0, 0);
}
