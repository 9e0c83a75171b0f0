//! The packet path allocates nothing in steady state, and detector memory is bounded.
//!
//! A counting global allocator counts allocations made on this test's thread while measuring.
//! Frames go the whole way a live frame goes: published into an anonymous TPACKET_V3 ring
//! layout, walked by the block walker, decoded, routed between two pipelines over their SPSC
//! rings, detected, and alerts queued.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]
#![allow(
    unsafe_code,
    reason = "a counting global allocator must implement the unsafe GlobalAlloc"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use scram::capture::block::{walk_block, BlockBuilder};
use scram::capture::{Batch, Direction, FrameMeta, FrameSink};
use scram::craft;
use scram::decode::tcp_flags::SYN;
use scram::detect::Settings;
use scram::pipeline::{Interfaces, LinkType, PipelineSet, PipelineTotals, Sizes};
use scram::sys::ring::Ring;

struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    /// Allocations made on this thread while measuring (tests run on parallel threads).
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// This thread's counter, behind the same interface as an atomic.
struct ThreadCount;

impl ThreadCount {
    fn fetch_add(&self, n: u64, _: Ordering) {
        COUNT.with(|c| c.set(c.get() + n));
    }
    fn store(&self, n: u64, _: Ordering) {
        COUNT.with(|c| c.set(n));
    }
    fn load(&self, _: Ordering) -> u64 {
        COUNT.with(Cell::get)
    }
}

static ALLOCATIONS: ThreadCount = ThreadCount;

// SAFETY: every call is forwarded unchanged to the system allocator; counting has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if MEASURING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours: `layout` has non-zero size, as GlobalAlloc requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (we only forward).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if MEASURING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; `ptr` came from `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

const BLOCK: usize = 1 << 20;

/// Block images holding `frames` in order (built before measuring: building allocates).
fn blocks(frames: &[Vec<u8>], start_ns: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = BlockBuilder::new(BLOCK, 0);
    for (i, f) in frames.iter().enumerate() {
        let meta = FrameMeta {
            ts_ns: start_ns + i as u64 * 1_000,
            wire_len: f.len() as u32,
            cap_len: f.len() as u32,
            vlan: None,
            ifindex: 1,
            iface: 0,
            direction: Direction::Host,
            rxhash: 0,
        };
        if !b.push(f, &meta) {
            out.push(
                std::mem::replace(&mut b, BlockBuilder::new(BLOCK, out.len() as u64 + 1)).finish(),
            );
            assert!(b.push(f, &meta));
        }
    }
    out.push(b.finish());
    out
}

#[test]
fn the_counter_counts() {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    let v = std::hint::black_box(vec![1u8; 10]);
    MEASURING.with(|m| m.set(false));
    drop(v);
    assert!(ALLOCATIONS.load(Ordering::Relaxed) >= 1);
}

#[test]
fn a_million_packets_through_ring_decode_route_detect_allocate_nothing() {
    let corpus = craft::mixed_corpus(64);
    let frames: Vec<Vec<u8>> = corpus
        .iter()
        .cycle()
        .take(corpus.len() * 8)
        .cloned()
        .collect();
    let images = blocks(&frames, 1_795_341_600_000_000_000);
    let mut set = PipelineSet::with_defaults(2);
    let mut ring = Ring::anonymous(BLOCK, 2).unwrap();
    let mut alerts = std::mem::take(&mut set.alert_rx);

    let mut run = |set: &mut PipelineSet, ring: &mut Ring, rounds: usize| {
        let mut packets = 0u64;
        for r in 0..rounds {
            for (i, image) in images.iter().enumerate() {
                let slot = (r * images.len() + i) % 2;
                assert!(ring.publish(slot, image));
                let block = ring.try_acquire(slot).expect("published");
                // Frames alternate between the two workers, as fanout would spread them, and
                // reach each in batches, as a capture worker hands them over.
                let (a, b) = set.pipelines.split_at_mut(1);
                let mut n = 0u32;
                let (mut batch_a, mut batch_b) = (Batch::default(), Batch::default());
                walk_block(&block, 0, |f, m| {
                    let (p, batch) = if n.is_multiple_of(2) {
                        (&mut a[0], &mut batch_a)
                    } else {
                        (&mut b[0], &mut batch_b)
                    };
                    batch.feed(f, m, p);
                    n += 1;
                })
                .expect("valid block");
                batch_a.flush(&mut a[0]);
                batch_b.flush(&mut b[0]);
                drop(block);
                packets += u64::from(n);
                a[0].block_end();
                b[0].block_end();
                // The alert thread's side: pop (popping does not allocate either).
                for rx in &mut alerts {
                    while rx.pop().is_ok() {}
                }
            }
        }
        packets
    };

    // Warm-up: tables fill, rings cycle.
    run(&mut set, &mut ring, 2);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    let mut packets = 0;
    while packets < 1_000_000 {
        packets += run(&mut set, &mut ring, 1);
    }
    MEASURING.with(|m| m.set(false));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let totals = PipelineTotals::sum(&set.counters);
    assert!(totals.alerts > 0, "the corpus raises alerts: {totals:?}");
    assert!(totals.decoded >= 1_000_000);
    assert_eq!(
        allocations, 0,
        "allocations on the packet path over {packets} packets"
    );
}

#[test]
fn a_million_spoofed_sources_stay_within_the_configured_bound() {
    let mut set = PipelineSet::build(
        1,
        Arc::new(Settings::default()),
        LinkType::Ethernet,
        Interfaces::plain(1),
        Sizes {
            tables: 4096,
            ..Sizes::default()
        },
    );
    let mut p = set.pipelines.remove(0);
    let bound = p.shard().memory_bytes();
    let flow_bound = p.flow_memory_bytes();
    let target = v4(0xc633_6402);
    let mut frame = craft::tcp_frame(v4(1), target, 1000, 80, SYN);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    for i in 0..1_000_000u32 {
        // Rewrite the source address in place (checksums are not verified by the decoder).
        frame[26..30].copy_from_slice(&(0x0b00_0000 + i).to_be_bytes());
        frame[36..38].copy_from_slice(&((i % 60000) as u16 + 1024).to_be_bytes());
        p.process(
            &frame,
            1_795_341_600_000_000_000 + u64::from(i) * 1_000,
            0,
            None,
        );
        while set.alert_rx[0].pop().is_ok() {}
    }
    MEASURING.with(|m| m.set(false));
    // Unanswered SYNs become failed attempts 3 s later: the last ones run through the scan
    // state too.
    p.flush_flows();
    while set.alert_rx[0].pop().is_ok() {}
    p.publish();
    let totals = PipelineTotals::sum(&set.counters);
    assert_eq!(p.shard().memory_bytes(), bound, "tables never grow");
    assert_eq!(
        p.flow_memory_bytes(),
        flow_bound,
        "the flow table never grows"
    );
    assert!(
        bound + flow_bound < 64 << 20,
        "bound {bound} + {flow_bound} bytes"
    );
    assert!(
        totals.flow_evictions > 900_000,
        "flow evictions are counted: {totals:?}"
    );
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0);
}
