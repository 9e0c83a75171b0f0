//! Runs the pipeline over a corpus ROUNDS times (first argument, default 100): the workload
//! `benches/callgrind.sh` counts instructions of, under valgrind. Second argument: `mixed`
//! (`craft::mixed_corpus(256)`, default) or `udp64` (64-byte UDP frames from one host to another
//! with 4,096 source ports: every flow's slot stays in cache, so the count is the work alone) or
//! `udp64k` (65,536 source ports, as benches/veth.sh's 64-byte profile sends: a flow table larger
//! than the second-level cache, for timing what waiting for memory costs; as many flows as the
//! table has slots, so most packets open a flow and evict one) or `udp64v6` (the `udp64` flood
//! over IPv6, as benches/veth.sh's `v6` profile) or `spoofed` (a flood from 131,072 sources,
//! twice the flow table's slots: nearly every packet is a new source and a new flow, as
//! benches/veth.sh's `src100k` and `src1m` profiles send). Frames go in batches,
//! as a capture worker hands them over ([`FrameSink::frames`]), and a round of the corpus ends
//! as a block does ([`FrameSink::block_end`]).

use scram::capture::{Batch, FrameMeta, FrameSink};
use scram::craft;
use scram::pipeline::PipelineSet;

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let corpus = match std::env::args().nth(2).as_deref() {
        Some("udp64") => flood(4096, false),
        Some("udp64k") => flood(65536, false),
        Some("udp64v6") => flood(4096, true),
        Some("spoofed") => spoofed(131_072),
        _ => craft::mixed_corpus(256),
    };
    let mut set = PipelineSet::with_defaults(1);
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

/// 64-byte UDP frames from one host to another, one a source port, `ports` of them.
fn flood(ports: u32, v6: bool) -> Vec<Vec<u8>> {
    let (src, dst) = if v6 {
        ("2001:db8::1", "2001:db8::2")
    } else {
        ("198.18.0.1", "198.18.0.2")
    };
    (0..ports)
        .map(|i| {
            craft::udp_frame(
                src.parse().expect("literal"),
                dst.parse().expect("literal"),
                (1024 + i) as u16,
                53,
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
