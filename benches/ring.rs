//! Cost of walking TPACKET_V3 blocks: the capture engine's per-frame overhead, without the kernel.
//!
//! Run: `cargo bench --bench ring`. Synthetic blocks (built with the kernel's layout) are
//! published into an anonymous ring and walked exactly as a worker walks a real one.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scram::capture::block::{walk_block, BlockBuilder};
use scram::capture::{Direction, FrameMeta};
use scram::sys::ring::Ring;

const BLOCK: usize = 1 << 20;

fn block_of(frames: usize, len: usize) -> Vec<u8> {
    let mut b = BlockBuilder::new(BLOCK, 0);
    let frame = vec![0xabu8; len];
    let meta = FrameMeta {
        ts_ns: 1,
        wire_len: len as u32,
        cap_len: len as u32,
        vlan: None,
        ifindex: 1,
        iface: 0,
        direction: Direction::Host,
        rxhash: 0,
    };
    for _ in 0..frames {
        assert!(b.push(&frame, &meta), "frame fits the block");
    }
    b.finish()
}

fn walk(c: &mut Criterion) {
    for (frames, len) in [(4096usize, 60usize), (700, 1400)] {
        let image = block_of(frames, len);
        let mut ring = Ring::anonymous(BLOCK, 1).expect("anonymous ring");
        let mut group = c.benchmark_group("ring");
        group.throughput(Throughput::Elements(frames as u64));
        group.bench_function(format!("acquire+walk+release {frames}x{len}B"), |b| {
            b.iter(|| {
                assert!(ring.publish(0, &image));
                let block = ring.try_acquire(0).expect("published");
                let mut bytes = 0u64;
                let n = walk_block(&block, 0, |f, _| bytes += f.len() as u64).expect("valid");
                std::hint::black_box((n, bytes))
            })
        });
        group.bench_function(format!("walk only {frames}x{len}B"), |b| {
            b.iter(|| {
                let mut bytes = 0u64;
                let n = walk_block(&image, 0, |f, _| bytes += f.len() as u64).expect("valid");
                std::hint::black_box((n, bytes))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, walk);
criterion_main!(benches);
