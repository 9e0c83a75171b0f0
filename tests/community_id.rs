//! Community ID v1 against the specification's own known answers (tests/data/community-id, from
//! corelight/community-id-spec): every row of the baselines, and the spec's pcaps run through
//! scram's decoder.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::IpAddr;

use scram::alert::community_id::FlowTuple;
use scram::decode::decode_ethernet;
use scram::replay::file::Reader;
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/community-id");

struct Row {
    tuple: FlowTuple,
    id: String,
}

fn rows(file: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(format!("{DATA}/{file}")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let ip = |k: &str| r[k].as_str().unwrap().parse::<IpAddr>().unwrap();
            let port = |k: &str| r[k].as_u64().map(|p| p as u16);
            let ports = port("sport").zip(port("dport"));
            Row {
                tuple: FlowTuple::from_equivalents(
                    ip("saddr"),
                    ip("daddr"),
                    r["proto"].as_u64().unwrap() as u8,
                    ports,
                ),
                id: r["communityid"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_row_of_the_seed_0_baseline() {
    let rows = rows("baseline_deflt.json");
    assert_eq!(rows.len(), 23);
    for r in &rows {
        assert_eq!(r.tuple.community_id(0), r.id, "{:?}", r.tuple);
    }
}

#[test]
fn every_row_of_the_seed_1_baseline() {
    for r in &rows("baseline_seed1.json") {
        assert_eq!(r.tuple.community_id(1), r.id, "{:?}", r.tuple);
    }
}

#[test]
fn every_row_of_the_unencoded_baseline() {
    for r in &rows("baseline_nob64.json") {
        assert_eq!(r.tuple.community_id_hex(0), r.id, "{:?}", r.tuple);
    }
}

#[test]
fn the_spec_pcaps_through_the_decoder_give_the_baseline_ids() {
    let baseline = rows("baseline_deflt.json");
    let mut matched = vec![false; baseline.len()];
    let mut decoded = 0;
    for name in ["icmp", "icmp6", "ipv6", "rsvp", "sctp", "tcp", "udp", "arp"] {
        let file = std::fs::File::open(format!("{DATA}/pcaps/{name}.pcap")).unwrap();
        let mut reader = Reader::new(file).unwrap();
        while let Some(packet) = reader.next_record().unwrap() {
            let p = decode_ethernet(packet.data, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            decoded += 1;
            let Some(tuple) = FlowTuple::of(&p) else {
                continue;
            };
            let id = tuple.community_id(0);
            // The baseline lists each flow tuple; every packet of a listed tuple must agree.
            for (i, row) in baseline.iter().enumerate() {
                if row.tuple.src == tuple.src
                    && row.tuple.dst == tuple.dst
                    && row.tuple.proto == tuple.proto
                    && row.tuple.ports == tuple.ports
                {
                    assert_eq!(id, row.id, "{name}: {tuple:?}");
                    matched[i] = true;
                }
            }
        }
    }
    assert!(decoded > 50);
    let unmatched: Vec<_> = baseline
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(r, _)| r.tuple)
        .collect();
    assert!(
        unmatched.is_empty(),
        "baseline rows no packet produced: {unmatched:?}"
    );
}
