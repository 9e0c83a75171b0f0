//! Runs the pipeline over a corpus ROUNDS times (first argument, default 100): the workload
//! `benches/callgrind.sh` counts instructions of, under valgrind. Second argument: `mixed`
//! (`craft::mixed_corpus(256)`, default) or `udp64` (64-byte UDP frames from one host to another
//! with changing source ports, like benches/veth.sh's 64-byte profile). Frames go in batches,
//! as a capture worker hands them over ([`FrameSink::frames`]).

use scram::capture::{Batch, FrameMeta};
use scram::craft;
use scram::pipeline::PipelineSet;

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let corpus = match std::env::args().nth(2).as_deref() {
        Some("udp64") => (0..4096u16)
            .map(|i| {
                craft::udp_frame(
                    "198.18.0.1".parse().expect("literal"),
                    "198.18.0.2".parse().expect("literal"),
                    1024 + i,
                    53,
                    &[0; 18],
                )
            })
            .collect(),
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
        while rx.pop().is_ok() {}
    }
    println!("{}", rounds * corpus.len() as u64);
}
