//! Decode + classify + detect per packet, over a mixed corpus (web, DNS, pings, ARP, IPv6, QinQ,
//! a scan, a sweep, illegal flags, a spoofed flood), through one pipeline with every detector on,
//! in batches of up to 16 frames as a capture worker hands them over.
//!
//! Run: `cargo bench --bench pipeline`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scram::capture::{Batch, FrameMeta};
use scram::craft;
use scram::pipeline::PipelineSet;

fn pipeline(c: &mut Criterion) {
    let corpus = craft::mixed_corpus(256);
    let mut set = PipelineSet::with_defaults(1);
    let mut rx = set.alert_rx.remove(0);
    let p = &mut set.pipelines[0];
    let mut ts = 1_795_341_600_000_000_000u64;
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(corpus.len() as u64));
    group.bench_function(
        format!("decode+route+detect, mixed corpus of {}", corpus.len()),
        |b| {
            b.iter(|| {
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
            })
        },
    );
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
