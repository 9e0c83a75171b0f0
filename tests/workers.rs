//! Every capture of the real tools in `tests/data/recon`, read by one worker and by two and
//! three: the same alerts. With more than one worker a packet crosses only to the shards whose
//! families want it (`Family::wants`); a family that acts on a packet it did not ask for would
//! miss it here.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use scram::capture::{Batch, FrameMeta, FrameSink};
use scram::decode::{decode_ethernet, Net};
use scram::detect::{key_addr, Alert, Detail, Detector, Settings};
use scram::pipeline::{Interfaces, LinkType, PipelineSet, Sizes};
use scram::replay::file::Reader;

/// The worker a symmetric fanout gives `frame`: by its address pair, either direction alike (so
/// a flow, and the ICMP errors about it, stay on one worker, as its flow table needs).
fn worker(frame: &[u8], workers: usize) -> usize {
    let (a, b): (IpAddr, IpAddr) = match decode_ethernet(frame, None).map(|p| p.net) {
        Ok(Net::Ip(ip)) => (ip.src.ip(), ip.dst.ip()),
        Ok(Net::Arp(arp)) => (arp.sender_ip.into(), arp.target_ip.into()),
        _ => return 0,
    };
    let mut h = DefaultHasher::new();
    (a.min(b), a.max(b)).hash(&mut h);
    (h.finish() % workers as u64) as usize
}

/// Of one detector's alerts about one victim: the packets or attempts counted in all, the
/// sources named, and whether some record names no single source (a storm summed up, a
/// distributed scan, a flood without a dominant source). A decoy scan's records: the most
/// sources one counts, and every source they name.
type Said = (u64, BTreeSet<IpAddr>, bool);

/// Which MAC a claim on the link names as the claimant and which as the bound one (or the
/// link's router), and which MAC a decoy scan came from and the address it claims: what an
/// operator acts on, so it must not follow which worker read what.
fn claimants(detail: &Detail) -> String {
    match detail {
        Detail::Macs {
            mac, previous_mac, ..
        } => format!(" ({mac:02x?} over {previous_mac:02x?})"),
        Detail::Router {
            mac,
            router,
            router_mac,
            ..
        } => format!(" ({mac:02x?}, the link's {router:x} {router_mac:02x?})"),
        Detail::Sources { mac, owner, .. } if *mac != [0; 6] => {
            format!(" (all from {mac:02x?}, which claims {owner:x})")
        }
        _ => String::new(),
    }
}

/// What the alerts of `capture` read by `workers` workers say, per detector and victim: how
/// many packets or attempts they count in all, and the actors they name. Not when: each
/// worker's flows find their unanswered attempts at their own pace, so a sweep's window may
/// close a little later with more workers, and a decoy scan be recognised after another
/// number of its sources (its record is then sent again naming the later ones, and the alert
/// stage keeps the last). Nor which few sources a storm names before it is summed up in one
/// record: each shard that sees the storm sums up its own part, nor which claimants those
/// first records name.
fn alerts(capture: &Path, workers: usize, block: usize) -> Vec<String> {
    let raised = raised(capture, workers, block);
    // Storms: which claimants their first records name is not compared either.
    let storms: BTreeSet<_> = raised
        .iter()
        .filter(|a| a.src.is_none())
        .map(|a| (a.detector.name(), a.dst))
        .collect();
    let mut by_victim: BTreeMap<(&str, Option<IpAddr>, String), Said> = BTreeMap::new();
    for a in raised {
        let claimants = match storms.contains(&(a.detector.name(), a.dst)) {
            true => String::new(),
            false => claimants(&a.detail),
        };
        let (count, sources, summed) = by_victim
            .entry((a.detector.name(), a.dst, claimants))
            .or_default();
        if a.detector == Detector::DecoyScan {
            *count = (*count).max(a.count);
            sources.extend(a.detail.sources().map(key_addr));
            continue;
        }
        // A flood another worker read part of is counted when that worker's block ends: its
        // alert may pass the threshold by up to a block's packets.
        if !(block > 1 && a.detector.entry().category == "Attempted Denial of Service") {
            *count += a.count;
        }
        match a.src {
            Some(s) => {
                sources.insert(s);
            }
            None => *summed = true,
        }
    }
    by_victim
        .into_iter()
        .map(|((detector, dst, claimants), (count, sources, summed))| {
            let named = if summed {
                "sources not all named".to_owned()
            } else {
                format!("{sources:?}")
            };
            format!("{detector} -> {dst:?}: {count} from {named}{claimants}")
        })
        .collect()
}

/// The alerts `capture` raises read by `workers` workers, each worker's ring block ending after
/// `block` of its frames.
fn raised(capture: &Path, workers: usize, block: usize) -> Vec<Alert> {
    let mut set = PipelineSet::build(
        workers,
        Arc::new(Settings::default()),
        LinkType::Ethernet,
        Arc::new(Interfaces {
            loopback: vec![false],
            loopback_by_packet: true,
        }),
        Sizes::default(),
    );
    let mut reader = Reader::new(std::fs::File::open(capture).unwrap()).unwrap();
    let mut frames = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        frames.push((record.ts_ns, record.data.to_vec()));
    }
    let mut out = Vec::new();
    let collect = |set: &mut PipelineSet, out: &mut Vec<Alert>| {
        for rx in &mut set.alert_rx {
            while let Ok(a) = rx.pop() {
                out.push(a);
            }
        }
    };
    let mut batches: Vec<Batch> = (0..workers).map(|_| Batch::default()).collect();
    let mut fed = vec![0usize; workers];
    for (ts_ns, data) in &frames {
        // As live capture has it: the worker fanout chose gets the frame in a batch of its
        // block; when its block ends, the others wake up idle at that time.
        let w = worker(data, workers);
        let meta = FrameMeta {
            ts_ns: *ts_ns,
            ..FrameMeta::EMPTY
        };
        batches[w].feed(data, &meta, &mut set.pipelines[w]);
        fed[w] += 1;
        if !fed[w].is_multiple_of(block) {
            continue;
        }
        batches[w].flush(&mut set.pipelines[w]);
        for (i, p) in set.pipelines.iter_mut().enumerate() {
            if i == w {
                p.block_end();
            } else {
                p.idle(*ts_ns);
            }
        }
        collect(&mut set, &mut out);
    }
    for (b, p) in batches.iter_mut().zip(&mut set.pipelines) {
        b.flush(p);
        p.block_end();
    }
    for p in &mut set.pipelines {
        p.flush_flows();
    }
    for p in &mut set.pipelines {
        p.drain();
        p.tick(u64::MAX);
    }
    collect(&mut set, &mut out);
    out
}

/// Every capture of `tests/data/recon`, in name order.
fn captures() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/recon");
    let mut captures: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    captures.sort();
    captures
}

#[test]
fn every_capture_raises_the_same_alerts_with_one_two_or_three_workers() {
    let captures = captures();
    assert!(captures.len() >= 40, "{captures:?}");
    let mut raised = 0;
    for capture in &captures {
        let one = alerts(capture, 1, 1);
        raised += one.len();
        for workers in [2, 3] {
            assert_eq!(
                alerts(capture, workers, 1),
                one,
                "{} with {workers} workers",
                capture.display()
            );
        }
    }
    // The captures do raise alerts: the comparison is not between empty lists.
    assert!(raised >= 40, "{raised}");
}

#[test]
fn captures_read_in_blocks_by_several_workers_raise_the_same_alerts_as_one() {
    // Blocks of 256 frames a worker, as live capture reads them: a shard hears what the other
    // workers read once their block ends. A flood's packets read by the worker that does not
    // own its victim are tallied there and merged once a block (its count may pass its
    // threshold by a block's packets, so floods' counts are not compared). Two claims on the
    // link made close together (a host's ARP reply and arpspoof's, a router's advertisement
    // and fake_router6's) reach the claimed address's shard in the order the blocks end, not
    // the order they were sent: the earlier claim still binds the address, and the alert names
    // the later claimant, as one worker's does.
    let mut raised = 0;
    let mut claims = 0;
    for capture in captures() {
        let one = alerts(&capture, 1, 256);
        raised += one.len();
        claims += one
            .iter()
            .filter(|a| a.contains(" over ") || a.contains("the link's"))
            .count();
        for workers in [2, 3] {
            assert_eq!(
                alerts(&capture, workers, 256),
                one,
                "{} with {workers} workers",
                capture.display()
            );
        }
    }
    assert!(raised >= 40, "{raised}");
    // arpspoof, nd-spoof, rogue-ra at least.
    assert!(claims >= 3, "{claims}");
}
