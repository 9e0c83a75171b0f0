//! Runs the pipeline over a corpus ROUNDS times (first argument, default 100): the workload
//! `benches/callgrind.sh` counts instructions of, under valgrind. Second argument: `mixed`
//! (`craft::mixed_corpus(256)`, default) or `udp64` (64-byte UDP frames from one host to another
//! with 4,096 source ports: every flow's slot stays in cache, so the count is the work alone) or
//! `udp64k` (65,536 source ports, as benches/veth.sh's 64-byte profile sends: a flow table larger
//! than the second-level cache, for timing what waiting for memory costs; as many flows as the
//! table has slots, so most packets open a flow and evict one) or `udp64v6` (the `udp64` flood
//! over IPv6, as benches/veth.sh's `v6` profile) or `spoofed` (a flood from 131,072 sources,
//! twice the flow table's slots: nearly every packet is a new source and a new flow, as
//! benches/veth.sh's `src100k` and `src1m` profiles send) or `victims` (64-byte UDP datagrams
//! from one host to 4,096 others, one each a round, as a busy host's queries to many peers:
//! with several workers, what the floods' tallies cost where they do not pay). Frames go in
//! batches,
//! as a capture worker hands them over ([`FrameSink::frames`]), and a round of the corpus ends
//! as a block does ([`FrameSink::block_end`]). Third argument: the number of workers (default
//! 1); with more, frames are spread by address pair and ports as a flow-hash fanout does, each
//! worker's block ends every 1,024 of its frames, and the floods' two hosts belong to different
//! shards.

use scram::capture::{Batch, FrameMeta, FrameSink};
use scram::craft;
use scram::pipeline::PipelineSet;

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let workers: usize = std::env::args()
        .nth(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let mut set = PipelineSet::with_defaults(workers);
    let corpus = match std::env::args().nth(2).as_deref() {
        Some("udp64") => flood(4096, false, &set),
        Some("udp64k") => flood(65536, false, &set),
        Some("udp64v6") => flood(4096, true, &set),
        Some("spoofed") => spoofed(131_072),
        Some("victims") => victims(4096),
        _ => craft::mixed_corpus(256),
    };
    if workers > 1 {
        workers_loop(&mut set, &corpus, rounds);
        println!("{}", rounds * corpus.len() as u64);
        return;
    }
    let mut rx = set.alert_rx.remove(0);
    let p = &mut set.pipelines[0];
    let mut ts = 1_795_341_600_000_000_000u64;
    for _ in 0..rounds {
        let mut batch = Batch::default();
        for f in &corpus {
            ts += 1_000;
            let meta = FrameMeta {
                ts_ns: ts,
                ..FrameMeta::EMPTY
            };
            batch.feed(f, &meta, p);
        }
        batch.flush(p);
        // The end of a block, as a capture worker has it: the flows' clock hand, the detectors'
        // clock, the counters.
        p.block_end();
        while rx.pop().is_ok() {}
    }
    println!("{}", rounds * corpus.len() as u64);
}

/// 64-byte UDP frames from one host to another, one a source port, `ports` of them. With more
/// than one worker in `set`, the two hosts belong to different shards (the costlier case: every
/// packet is judged by two).
fn flood(ports: u32, v6: bool, set: &PipelineSet) -> Vec<Vec<u8>> {
    let (src, mut dst): (std::net::IpAddr, std::net::IpAddr) = if v6 {
        (
            "2001:db8::1".parse().expect("literal"),
            "2001:db8::2".parse().expect("literal"),
        )
    } else {
        (
            "198.18.0.1".parse().expect("literal"),
            "198.18.0.2".parse().expect("literal"),
        )
    };
    let owner = |a| set.pipelines[0].shard_of(a);
    while set.pipelines.len() > 1 && owner(dst) == owner(src) {
        dst = match dst {
            std::net::IpAddr::V4(a) => std::net::Ipv4Addr::from_bits(a.to_bits() + 1).into(),
            std::net::IpAddr::V6(a) => std::net::Ipv6Addr::from_bits(a.to_bits() + 1).into(),
        };
    }
    (0..ports)
        .map(|i| craft::udp_frame(src, dst, (1024 + i) as u16, 53, &[0; 18]))
        .collect()
}

/// 64-byte UDP datagrams from one host to `hosts` others of 198.19/16 (each a flood candidate,
/// as a busy server's queries and QUIC to many peers are), in a scattered order.
fn victims(hosts: u32) -> Vec<Vec<u8>> {
    (0..hosts)
        .map(|i| {
            let host = i.wrapping_mul(0x9e37_79b9) >> 16;
            craft::udp_frame(
                "198.18.0.1".parse().expect("literal"),
                std::net::Ipv4Addr::from_bits(0xc613_0000 | host).into(),
                40_000,
                443,
                &[0; 18],
            )
        })
        .collect()
}

/// 64-byte UDP frames to one host from `sources` addresses of 10/8, in a scattered order, as a
/// random-source flood has them.
fn spoofed(sources: u32) -> Vec<Vec<u8>> {
    (0..sources)
        .map(|i| {
            let host = i.wrapping_mul(0x9e37_79b9) & 0x00ff_ffff;
            craft::udp_frame(
                std::net::Ipv4Addr::from_bits(0x0a00_0000 | host).into(),
                "198.18.0.2".parse().expect("literal"),
                40_000,
                53,
                &[0; 18],
            )
        })
        .collect()
}

/// The worker a kernel's symmetric flow-hash fanout gives `frame` (IPv4 over Ethernet: the
/// addresses and ports, either direction alike; anything else the first worker).
fn fanout(frame: &[u8], workers: usize) -> usize {
    if frame.len() < 38 || frame[12..14] != [0x08, 0x00] {
        return 0;
    }
    let word =
        |at: usize| u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
    let ports = u32::from(u16::from_be_bytes([frame[34], frame[35]]))
        ^ u32::from(u16::from_be_bytes([frame[36], frame[37]]));
    let h = (word(26) ^ word(30) ^ ports).wrapping_mul(0x9e37_79b9);
    (h >> 16) as usize % workers
}

/// The same rounds over `workers` pipelines, frames spread as a flow-hash fanout does and each
/// worker's block ending every 1,024 of its frames.
fn workers_loop(set: &mut PipelineSet, corpus: &[Vec<u8>], rounds: u64) {
    let workers = set.pipelines.len();
    let mut batches: Vec<Batch> = (0..workers).map(|_| Batch::default()).collect();
    let mut fed = vec![0usize; workers];
    // The kernel spreads the frames, not scramd: each frame's worker is worked out once.
    let to: Vec<usize> = corpus.iter().map(|f| fanout(f, workers)).collect();
    let mut ts = 1_795_341_600_000_000_000u64;
    for _ in 0..rounds {
        for (f, &w) in corpus.iter().zip(&to) {
            ts += 1_000;
            let meta = FrameMeta {
                ts_ns: ts,
                ..FrameMeta::EMPTY
            };
            batches[w].feed(f, &meta, &mut set.pipelines[w]);
            fed[w] += 1;
            if fed[w].is_multiple_of(1024) {
                batches[w].flush(&mut set.pipelines[w]);
                set.pipelines[w].block_end();
            }
        }
        for (w, b) in batches.iter_mut().enumerate() {
            b.flush(&mut set.pipelines[w]);
            set.pipelines[w].block_end();
        }
        for rx in &mut set.alert_rx {
            while rx.pop().is_ok() {}
        }
    }
}
