//! The capture engine on real veth pairs between namespaces the tests create (needs root).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{parse_test_frame, privileged, udp_frame, Netns, Sender, Veth, VA, VB};
use scram::capture::{
    Capture, CaptureConfig, Direction, FrameMeta, FrameSink, InterfaceStats, Running, VlanTag,
};
use scram::sys::packet::RingGeometry;

/// One sink per ring, each made by `make`.
trait StartEach {
    fn start_each<S: FrameSink + Send + 'static>(
        self,
        make: impl FnMut() -> S,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Running<S>>;
}

impl StartEach for Capture {
    fn start_each<S: FrameSink + Send + 'static>(
        self,
        mut make: impl FnMut() -> S,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Running<S>> {
        let sinks = (0..self.ring_count()).map(|_| make()).collect();
        self.start(sinks, stop)
    }
}

/// Records test frames as (interface slot, flow, seq); counts everything else.
#[derive(Default)]
struct Collect {
    frames: Vec<(u16, u16, u64)>,
    others: u64,
    /// Busy time per frame, to make a slow consumer.
    spin: Duration,
}

impl FrameSink for Collect {
    fn frame(&mut self, frame: &[u8], meta: &FrameMeta) {
        match parse_test_frame(frame) {
            Some((flow, seq)) => self.frames.push((meta.iface, flow, seq)),
            None => self.others += 1,
        }
        if !self.spin.is_zero() {
            let t = Instant::now();
            while t.elapsed() < self.spin {}
        }
    }
}

fn config(ifaces: &[&str], workers: usize) -> CaptureConfig {
    CaptureConfig {
        interfaces: ifaces.iter().map(|s| s.to_string()).collect(),
        workers,
        ring: RingGeometry {
            block_size: 1 << 20,
            block_count: 8,
            frame_size: 2048,
            retire_timeout_ms: 10,
        },
        ..CaptureConfig::default()
    }
}

fn open_in(ns: &Netns, config: CaptureConfig) -> Capture {
    ns.run(move || Capture::open(&config))
        .expect("capture opens")
}

/// Sends `count` frames over `flows` flows from `iface` in `ns`, at most `pps` per second
/// (0: as fast as possible). Sequence numbers run per flow from `first_seq`.
fn send(
    ns: &Netns,
    iface: &'static str,
    flows: u16,
    flow_base: u16,
    count: u64,
    first_seq: u64,
    pps: u64,
) {
    ns.run(move || {
        let sender = Sender::open(iface);
        let start = Instant::now();
        for i in 0..count {
            let flow = flow_base + (i % u64::from(flows)) as u16;
            let seq = first_seq + i / u64::from(flows);
            sender.send(&udp_frame(flow, seq, &[]));
            if pps > 0 && i % 64 == 63 {
                let due = Duration::from_secs_f64((i + 1) as f64 / pps as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    })
}

/// Waits (bounded) until every frame the interface received is seen or counted as dropped.
fn settle<S>(
    running: &mut Running<S>,
    ns: &Netns,
    iface: &str,
    rx_before: u64,
) -> (u64, Vec<InterfaceStats>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rx = ns.rx_packets(iface) - rx_before;
        let stats = running.stats();
        let s = stats
            .iter()
            .find(|s| s.name == iface)
            .expect("interface in stats");
        if s.frames + s.kernel_drops >= rx || Instant::now() > deadline {
            return (rx, stats);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts sequence numbers only grow within each (worker, flow).
fn assert_in_order(sinks: &[Collect]) {
    for (w, sink) in sinks.iter().enumerate() {
        let mut last: HashMap<u16, u64> = HashMap::new();
        for &(_, flow, seq) in &sink.frames {
            if let Some(prev) = last.insert(flow, seq) {
                assert!(seq > prev, "worker {w} flow {flow}: seq {seq} after {prev}");
            }
        }
    }
}

#[test]
fn every_frame_at_full_rate_is_seen_or_counted_as_a_ring_drop() {
    if !privileged("full-rate accounting") {
        return;
    }
    let veth = Veth::new();
    // A small ring and a slow consumer, so the kernel has to drop.
    let mut cfg = config(&[VB], 1);
    cfg.ring.block_size = 64 * 1024;
    cfg.ring.block_count = 4;
    let capture = open_in(&veth.b, cfg);
    let rx_before = veth.b.rx_packets(VB);
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = capture
        .start_each(
            || Collect {
                frames: Vec::with_capacity(200_000),
                spin: Duration::from_micros(2),
                ..Default::default()
            },
            stop,
        )
        .expect("workers start");

    send(&veth.a, VA, 8, 0, 200_000, 0, 0);
    let (rx, _) = settle(&mut running, &veth.b, VB, rx_before);
    let (stats, sinks) = running.stop();
    let s = &stats[0];
    let seen: u64 = sinks.iter().map(|k| k.frames.len() as u64 + k.others).sum();
    eprintln!(
        "interface received {rx}, capture saw {seen}, ring dropped {}, freezes {}",
        s.kernel_drops, s.kernel_freezes
    );
    assert!(
        rx >= 200_000 * 9 / 10,
        "the interface received only {rx} of 200000 frames"
    );
    assert_eq!(seen, s.frames, "sink and worker counters agree");
    assert!(
        s.kernel_drops > 0,
        "the slow consumer was meant to overflow the ring"
    );
    assert_eq!(
        seen + s.kernel_drops,
        rx,
        "seen + ring drops == interface rx, exactly"
    );
    assert_eq!(
        s.kernel_packets, rx,
        "every received frame reached the socket (tp_packets)"
    );
    assert_eq!(sinks[0].others, 0, "no stray frames on the test link");
    assert_in_order(&sinks);
}

#[test]
fn paced_traffic_is_captured_without_loss_and_in_order() {
    if !privileged("paced capture") {
        return;
    }
    let veth = Veth::new();
    let capture = open_in(&veth.b, config(&[VB], 1));
    let rx_before = veth.b.rx_packets(VB);
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = capture
        .start_each(
            || Collect {
                frames: Vec::with_capacity(200_000),
                ..Default::default()
            },
            stop,
        )
        .expect("workers start");

    send(&veth.a, VA, 16, 0, 200_000, 0, 100_000);
    let (rx, _) = settle(&mut running, &veth.b, VB, rx_before);
    let (stats, sinks) = running.stop();
    let s = &stats[0];
    assert_eq!(rx, 200_000, "the interface received every frame");
    assert_eq!(s.kernel_drops, 0, "no ring drops at a paced rate");
    assert_eq!(sinks[0].frames.len(), 200_000, "every frame captured");
    let unique: HashSet<(u16, u64)> = sinks[0].frames.iter().map(|&(_, f, q)| (f, q)).collect();
    assert_eq!(unique.len(), 200_000, "no frame seen twice");
    assert_in_order(&sinks);
}

#[test]
fn two_workers_see_each_frame_once_and_keep_flows_together() {
    if !privileged("fanout") {
        return;
    }
    let veth = Veth::new();
    let capture = open_in(&veth.b, config(&[VB], 2));
    let rx_before = veth.b.rx_packets(VB);
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = capture
        .start_each(
            || Collect {
                frames: Vec::with_capacity(64_000),
                ..Default::default()
            },
            stop,
        )
        .expect("workers start");

    send(&veth.a, VA, 64, 0, 64_000, 0, 100_000);
    let (rx, _) = settle(&mut running, &veth.b, VB, rx_before);
    let (stats, sinks) = running.stop();
    assert_eq!(sinks.len(), 2);
    assert_eq!(rx, 64_000);
    assert_eq!(stats[0].kernel_drops, 0);
    let mut seen = HashSet::new();
    let mut owner: HashMap<u16, usize> = HashMap::new();
    for (w, sink) in sinks.iter().enumerate() {
        assert!(
            !sink.frames.is_empty(),
            "worker {w} got no frames: fanout is not spreading"
        );
        for &(_, flow, seq) in &sink.frames {
            assert!(seen.insert((flow, seq)), "flow {flow} seq {seq} seen twice");
            let o = *owner.entry(flow).or_insert(w);
            assert_eq!(o, w, "flow {flow} reached workers {o} and {w}");
        }
    }
    assert_eq!(seen.len(), 64_000, "every frame seen exactly once");
    assert_in_order(&sinks);
}

#[test]
fn two_interfaces_are_captured_at_once() {
    if !privileged("two interfaces") {
        return;
    }
    let veth = Veth::new();
    common::sh(&[
        "ip",
        "link",
        "add",
        "va2",
        "netns",
        &veth.a.name,
        "type",
        "veth",
        "peer",
        "name",
        "vb2",
        "netns",
        &veth.b.name,
    ]);
    veth.a.exec(&["ip", "link", "set", "va2", "up"]);
    veth.b.exec(&["ip", "link", "set", "vb2", "up"]);
    let capture = open_in(&veth.b, config(&[VB, "vb2"], 2));
    assert_eq!(capture.interface_names(), [VB, "vb2"]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = capture
        .start_each(Collect::default, stop)
        .expect("workers start");
    send(&veth.a, VA, 4, 0, 5_000, 0, 50_000);
    send(&veth.a, "va2", 4, 100, 7_000, 0, 50_000);
    settle(&mut running, &veth.b, VB, 0);
    settle(&mut running, &veth.b, "vb2", 0);
    let (stats, sinks) = running.stop();
    assert_eq!(stats.len(), 2);
    assert_eq!((stats[0].name.as_str(), stats[0].frames), (VB, 5_000));
    assert_eq!((stats[1].name.as_str(), stats[1].frames), ("vb2", 7_000));
    for &(iface, flow, _) in sinks.iter().flat_map(|s| &s.frames) {
        assert_eq!(
            iface,
            if flow >= 100 { 1 } else { 0 },
            "flow {flow} reported on the wrong interface"
        );
    }
}

/// Keeps the raw bytes and metadata of every frame.
#[derive(Default)]
struct Raw(Vec<(Vec<u8>, FrameMeta)>);

impl FrameSink for Raw {
    fn frame(&mut self, frame: &[u8], meta: &FrameMeta) {
        self.0.push((frame.to_vec(), *meta));
    }
}

#[test]
fn vlan_and_qinq_tags_come_out_of_the_frame_or_the_ring_header() {
    if !privileged("vlan") {
        return;
    }
    let veth = Veth::new();
    // The receiver's kernel moves the outer tag into the ring header; the sender's own capture of
    // its outgoing frames keeps the tags in the frame.
    let rx = open_in(&veth.b, config(&[VB], 1));
    let tx = open_in(&veth.a, config(&[VA], 1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut rx = rx
        .start_each(Raw::default, Arc::clone(&stop))
        .expect("start");
    let tx = tx
        .start_each(Raw::default, Arc::clone(&stop))
        .expect("start");

    let dot1q = udp_frame(1, 1, &[(0x8100, (3 << 13) | 100)]);
    let qinq = udp_frame(2, 1, &[(0x88a8, 200), (0x8100, 300)]);
    let (a, b) = (dot1q.clone(), qinq.clone());
    veth.a.run(move || {
        let s = Sender::open(VA);
        s.send(&a);
        s.send(&b);
    });
    settle(&mut rx, &veth.b, VB, 0);
    std::thread::sleep(Duration::from_millis(50));
    let (_, rx_sinks) = rx.stop();
    let (_, tx_sinks) = tx.stop();

    let received = &rx_sinks[0].0;
    assert_eq!(received.len(), 2);
    let (f, m) = &received[0];
    assert_eq!(
        m.vlan,
        Some(VlanTag {
            tci: (3 << 13) | 100,
            tpid: 0x8100
        })
    );
    assert_eq!(m.vlan.map(|t| t.vid()), Some(100));
    assert_eq!(
        &f[12..14],
        &[0x08, 0x00],
        "802.1Q tag moved out of the frame"
    );
    assert_eq!(m.wire_len as usize, dot1q.len() - 4);
    let (f, m) = &received[1];
    assert_eq!(
        m.vlan,
        Some(VlanTag {
            tci: 200,
            tpid: 0x88a8
        }),
        "outer QinQ tag in the ring header"
    );
    assert_eq!(
        &f[12..16],
        &[0x81, 0x00, 0x01, 0x2c],
        "inner tag (VID 300) still in the frame"
    );
    assert!(received
        .iter()
        .all(|(_, m)| m.direction == Direction::OtherHost));

    let sent: Vec<_> = tx_sinks[0]
        .0
        .iter()
        .filter(|(_, m)| m.direction == Direction::Outgoing)
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].0, dot1q,
        "outgoing frame keeps its 802.1Q tag in the frame"
    );
    assert_eq!(sent[0].1.vlan, None);
    assert_eq!(
        sent[1].0, qinq,
        "outgoing frame keeps both QinQ tags in the frame"
    );
}

/// Reports the arrival time of each test frame.
struct Arrivals(mpsc::Sender<Instant>);

impl FrameSink for Arrivals {
    fn frame(&mut self, frame: &[u8], _: &FrameMeta) {
        if parse_test_frame(frame).is_some() {
            let _ = self.0.send(Instant::now());
        }
    }
}

#[test]
fn a_lone_frame_arrives_within_the_block_timeout() {
    if !privileged("latency") {
        return;
    }
    let veth = Veth::new();
    let cfg = config(&[VB], 1);
    let limit = Duration::from_millis(u64::from(cfg.ring.retire_timeout_ms) + 50);
    let capture = open_in(&veth.b, cfg);
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let running = capture
        .start_each(|| Arrivals(tx.clone()), stop)
        .expect("start");
    let sender = veth.a.spawn(|| Sender::open(VA)).join().expect("sender");
    for seq in 0..5 {
        let sent = Instant::now();
        sender.send(&udp_frame(0, seq, &[]));
        let arrived = rx
            .recv_timeout(Duration::from_secs(2))
            .expect("frame delivered");
        let latency = arrived.duration_since(sent);
        assert!(
            latency <= limit,
            "frame {seq} took {latency:?} (limit {limit:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    running.stop();
}

#[test]
fn workers_opened_on_a_down_link_form_their_fanout_group_when_it_comes_up() {
    if !privileged("fanout on a link down at start") {
        return;
    }
    let veth = Veth::new();
    veth.b.exec(&["ip", "link", "set", VB, "down"]);
    let capture = open_in(&veth.b, config(&[VB], 2));
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = capture.start_each(Collect::default, stop).expect("start");
    veth.b.exec(&["ip", "link", "set", VB, "up"]);
    // The workers notice within a poll timeout (100 ms).
    std::thread::sleep(Duration::from_millis(500));
    let rx_before = veth.b.rx_packets(VB);
    send(&veth.a, VA, 64, 0, 20_000, 0, 100_000);
    settle(&mut running, &veth.b, VB, rx_before);
    let (_, sinks) = running.stop();
    let mut seen = HashSet::new();
    for (w, sink) in sinks.iter().enumerate() {
        assert!(
            !sink.frames.is_empty(),
            "worker {w} got no frames: the group was not formed"
        );
        for &(_, flow, seq) in &sink.frames {
            assert!(seen.insert((flow, seq)), "flow {flow} seq {seq} seen twice");
        }
    }
    assert_eq!(seen.len(), 20_000, "every frame seen exactly once");
}

#[test]
fn capture_resumes_after_the_interface_goes_down_and_up() {
    if !privileged("link flap") {
        return;
    }
    let veth = Veth::new();
    let capture = open_in(&veth.b, config(&[VB], 2));
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = capture.start_each(Collect::default, stop).expect("start");
    send(&veth.a, VA, 8, 0, 1_000, 0, 50_000);
    settle(&mut running, &veth.b, VB, 0);
    veth.b.exec(&["ip", "link", "set", VB, "down"]);
    std::thread::sleep(Duration::from_millis(300));
    veth.b.exec(&["ip", "link", "set", VB, "up"]);
    std::thread::sleep(Duration::from_millis(100));
    send(&veth.a, VA, 8, 0, 1_000, 1_000, 50_000);
    settle(&mut running, &veth.b, VB, 0);
    let (stats, sinks) = running.stop();
    let after: usize = sinks
        .iter()
        .flat_map(|s| &s.frames)
        .filter(|&&(_, _, seq)| seq >= 1_000)
        .count();
    assert_eq!(
        after, 1_000,
        "every frame sent after the link came back was captured"
    );
    assert_eq!(stats[0].frames, 2_000);
}
