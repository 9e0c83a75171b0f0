//! The pipeline between capture and the alert sinks: decode, route, detect.
//!
//! Every capture worker runs one [`Pipeline`] (it is the worker's [`FrameSink`]). With N workers
//! there are N detector shards, one per worker: an address belongs to shard `hash(addr) % N`
//! (one process-wide seed). A worker decodes each frame, then hands it to the shard of its source
//! when a source-keyed family wants it, and to the shard of its destination when a
//! destination-keyed one does (`Family::wants`: most packets of a conversation go nowhere):
//! directly when that shard is its own, otherwise through a bounded single-producer,
//! single-consumer ring (`rtrb`) from this worker to that shard's worker. Each worker drains its
//! inbound rings after every block and whenever it waits. So every detector sees every relevant
//! packet, whichever worker fanout chose, without a lock; a full ring drops the observation and
//! counts it (`route_overflow`). A flood's packet for a victim another worker's shard owns, that
//! no other family wants there, does not cross once that victim has had a few this block: the
//! worker tallies it (`flood::Tallies`: counts, bytes, the sources' vote and bitmap, a fixed
//! number of victims a block) and hands each victim's tally to its shard at the block's end,
//! which merges it into the victim's window (a dropped tally is counted the same way).
//!
//! Alerts leave through a bounded ring per worker to the alert thread; a full ring drops the
//! alert and counts it (`alerts_dropped`). `scramd replay` runs the very same code with one shard.
//!
//! Never: allocate, lock or make a system call per packet. Counters are plain fields published
//! to atomics once per block.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::alert::stage::AlertBell;
use crate::capture::{Batch, FrameMeta, FrameSink, BATCH};
use crate::decode::{self, Addr, Fragment, Ip, Layer, Net, Packet, Transport};
use crate::detect::flood::{Part, Tallies};
use crate::detect::table::{SeededState, Table};
use crate::detect::{AddrKey, Alert, Roles, Seen, Settings, Shard};
use crate::flow::{Attempt, Flows, Outcome, Prepared};

/// First fragments remembered per worker; one lives for the moments a datagram takes.
const FRAGMENT_ENTRIES: usize = 1024;

/// Victims a worker follows within a block for the floods' tallies ([`Tallies`]), for victims
/// other workers' shards own: a slot each, the first victim to reach a slot keeps it for the
/// block (the packets of one that finds its slot taken cross as before).
const TALLY_SLOTS: usize = 256;

/// Parts per worker-to-shard ring: four blocks' worth of full tallies.
const PART_RING: usize = 4 * TALLY_SLOTS;

/// A decoded packet on its way to a shard.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// Packet time, ns.
    pub ts_ns: u64,
    /// Interface slot.
    pub iface: u16,
    /// The packet.
    pub packet: Packet,
    /// Which detector roles the receiving shard plays.
    pub roles: Roles,
}

/// What crosses from one worker to another shard: a packet, or an attempt its flow showed ended.
#[derive(Debug, Clone, Copy)]
pub enum Routed {
    /// A decoded packet.
    Packet(Observation),
    /// An attempt refused, unanswered or answered: for the initiator's shard (source role) and the
    /// target's (destination role).
    Attempt(Attempt, Roles),
}

/// How a frame's bytes are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet (live capture, pcap DLT_EN10MB).
    Ethernet,
    /// Raw IPv4/IPv6 (pcap DLT_RAW and friends).
    RawIp,
    /// Linux cooked capture v1 (`tcpdump -i any`).
    LinuxSll,
    /// Linux cooked capture v2.
    LinuxSll2,
    /// BSD loopback (NULL or LOOP: a 4-byte address family).
    Null,
}

/// Decodes a frame of a link type other than Ethernet (capture files only).
#[cold]
#[inline(never)]
fn decode_other(link: LinkType, frame: &[u8]) -> Result<Packet, decode::DecodeError> {
    match link {
        LinkType::Ethernet => decode::decode_ethernet(frame, None),
        LinkType::RawIp => decode::decode_raw_ip(frame),
        LinkType::LinuxSll => decode::decode_sll(frame),
        LinkType::LinuxSll2 => decode::decode_sll2(frame),
        LinkType::Null => decode::decode_null(frame),
    }
}

/// Counters of one pipeline, published once per block.
#[derive(Debug, Default)]
pub struct PipelineCounters {
    /// Frames decoded.
    pub decoded: AtomicU64,
    /// Decode errors per layer ([`Layer::ALL`] order).
    pub decode_errors: [AtomicU64; Layer::ALL.len()],
    /// Observations dropped because a shard's inbound ring was full.
    pub route_overflow: AtomicU64,
    /// Alerts emitted by this pipeline's shard.
    pub alerts: AtomicU64,
    /// Alerts dropped because the alert ring was full.
    pub alerts_dropped: AtomicU64,
    /// Repeats held back by suppression.
    pub suppressed: AtomicU64,
    /// Detector state entries evicted.
    pub evictions: AtomicU64,
    /// Flows evicted from the flow table to make room.
    pub flow_evictions: AtomicU64,
    /// First fragments too short for their transport header (decoded, counted apart).
    pub tiny_fragments: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Local {
    decoded: u64,
    tiny_fragments: u64,
    decode_errors: [u64; Layer::ALL.len()],
    route_overflow: u64,
    alerts_dropped: u64,
}

/// Detector settings shared with the workers for reload: a pipeline looks at `generation` once
/// per block and takes the lock only when it changed, so the packet path never locks.
#[derive(Debug)]
pub struct SettingsCell {
    generation: AtomicU64,
    value: std::sync::Mutex<Arc<Settings>>,
}

impl SettingsCell {
    /// A cell holding `settings`.
    pub fn new(settings: Arc<Settings>) -> Arc<Self> {
        Arc::new(SettingsCell {
            generation: AtomicU64::new(0),
            value: std::sync::Mutex::new(settings),
        })
    }

    /// Publishes new settings; every pipeline picks them up at its next block or idle wake-up.
    pub fn replace(&self, settings: Arc<Settings>) {
        if let Ok(mut v) = self.value.lock() {
            *v = settings;
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn load(&self) -> Option<Arc<Settings>> {
        self.value.lock().ok().map(|v| Arc::clone(&v))
    }
}

/// Interface facts the detectors need.
#[derive(Debug, Clone, Default)]
pub struct Interfaces {
    /// Per interface slot: is it a loopback device (where 127.0.0.1 is normal)?
    pub loopback: Vec<bool>,
    /// Capture files: judge a packet as captured on a loopback device when the capture shows
    /// it (loopback addresses on both ends, or Ethernet addresses both zero, as Linux's `lo`
    /// writes them). Live capture knows its interfaces and leaves this off.
    pub loopback_by_packet: bool,
}

impl Interfaces {
    /// Can any packet be judged captured on a loopback device (a loopback interface, or a
    /// capture file's word)? When not, only a cooked capture's own flag can say so.
    fn any_loopback(&self) -> bool {
        self.loopback_by_packet || self.loopback.contains(&true)
    }

    /// `n` interfaces, none a loopback device, as live capture knows them.
    pub fn plain(n: usize) -> Arc<Interfaces> {
        Arc::new(Interfaces {
            loopback: vec![false; n],
            loopback_by_packet: false,
        })
    }

    /// Was `packet` captured on a loopback device, by the interface it came from or, for
    /// capture files, by its addresses? (The link layer's own word, `Packet::on_loopback`, is
    /// the caller's to ask first.)
    fn judged_loopback(&self, iface: u16, packet: &Packet) -> bool {
        if self
            .loopback
            .get(usize::from(iface))
            .copied()
            .unwrap_or(false)
        {
            return true;
        }
        if !self.loopback_by_packet {
            return false;
        }
        match &packet.net {
            Net::Ip(ip) => {
                (ip.src.is_loopback() && ip.dst.is_loopback())
                    || (packet.src_mac == [0; 6] && packet.dst_mac == [0; 6])
            }
            _ => false,
        }
    }
}

/// One worker's stage: decode, route, detect its shard.
#[derive(Debug)]
pub struct Pipeline {
    index: usize,
    shards: usize,
    route_hasher: SeededState,
    shard: Shard,
    outboxes: Vec<Option<rtrb::Producer<Routed>>>,
    inboxes: Vec<rtrb::Consumer<Routed>>,
    /// The floods' packets for victims other shards own, tallied this block.
    tallies: Tallies,
    /// Where the tallies go at the block's end, and where other workers' come in.
    part_out: Vec<Option<rtrb::Producer<Part>>>,
    part_in: Vec<rtrb::Consumer<Part>>,
    alerts: rtrb::Producer<Alert>,
    /// Wakes the alert thread when a block left alerts in `alerts`.
    bell: AlertBell,
    link: LinkType,
    /// The frames being read now come from a loopback device (replay, by the file's word).
    link_loopback: bool,
    /// First fragments' ports, so a later fragment names its datagram's flow as peers do.
    fragments: Table<(AddrKey, AddrKey, u16, u8), (u16, u16)>,
    /// The flows this worker sees (both directions: fanout hashes them to one worker).
    flows: Flows,
    /// The newest packet time seen, ns: the detectors' clock between packets.
    latest_ns: u64,
    interfaces: Arc<Interfaces>,
    /// [`Interfaces::any_loopback`], asked once.
    any_loopback: bool,
    local: Local,
    counters: Arc<PipelineCounters>,
    settings_cell: Option<(Arc<SettingsCell>, u64)>,
}

/// Everything `PipelineSet::build` makes: the pipelines, the alert rings' consumer ends, the
/// counters.
#[derive(Debug)]
pub struct PipelineSet {
    /// One pipeline per worker, in worker order.
    pub pipelines: Vec<Pipeline>,
    /// The alert thread's ends of the alert rings.
    pub alert_rx: Vec<rtrb::Consumer<Alert>>,
    /// What the pipelines ring when they queued alerts (`AlertStage::spawn` hangs it).
    pub alert_bell: AlertBell,
    /// Counters of each pipeline.
    pub counters: Vec<Arc<PipelineCounters>>,
}

/// Sizes fixed at start: the rings and the detector tables.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Observations per worker-to-shard ring.
    pub route: usize,
    /// Alerts per worker-to-alert-thread ring.
    pub alerts: usize,
    /// Entries per detector state table per shard (`detect.table_capacity`).
    pub tables: usize,
    /// Flows each worker follows (`detect.flow_capacity`).
    pub flows: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            route: 16_384,
            alerts: 4_096,
            tables: 16_384,
            flows: 65_536,
        }
    }
}

impl PipelineSet {
    /// `n` pipelines over one Ethernet interface, with default settings and sizes (benches,
    /// examples and tests that drive the pipeline directly).
    pub fn with_defaults(n: usize) -> PipelineSet {
        PipelineSet::build(
            n,
            Arc::new(Settings::default()),
            LinkType::Ethernet,
            Interfaces::plain(1),
            Sizes::default(),
        )
    }

    /// Builds `n` pipelines wired to each other, all rings and tables allocated here, once.
    pub fn build(
        n: usize,
        settings: Arc<Settings>,
        link: LinkType,
        interfaces: Arc<Interfaces>,
        sizes: Sizes,
    ) -> PipelineSet {
        let n = n.max(1);
        let hasher = SeededState::random();
        let (producers, consumers) = mesh::<Routed>(n, sizes.route);
        let mut parts = {
            let (out, into) = mesh::<Part>(n, PART_RING);
            out.into_iter().zip(into)
        };
        let mut pipelines = Vec::with_capacity(n);
        let mut alert_rx = Vec::with_capacity(n);
        let mut counters = Vec::with_capacity(n);
        let alert_bell = AlertBell::default();
        for (index, (outboxes, inboxes)) in producers.into_iter().zip(consumers).enumerate() {
            let (atx, arx) = rtrb::RingBuffer::new(sizes.alerts);
            let (part_out, part_in) = parts.next().unwrap_or_default();
            let c = Arc::new(PipelineCounters::default());
            alert_rx.push(arx);
            counters.push(Arc::clone(&c));
            pipelines.push(Pipeline {
                index,
                shards: n,
                route_hasher: hasher,
                shard: Shard::new(Arc::clone(&settings), sizes.tables, SeededState::random()),
                outboxes,
                inboxes,
                tallies: Tallies::new(if n > 1 { TALLY_SLOTS } else { 1 }),
                part_out,
                part_in,
                alerts: atx,
                bell: alert_bell.clone(),
                link,
                link_loopback: false,
                fragments: Table::new(FRAGMENT_ENTRIES, SeededState::random()),
                flows: Flows::new(sizes.flows, SeededState::random()),
                latest_ns: 0,
                interfaces: Arc::clone(&interfaces),
                any_loopback: interfaces.any_loopback(),
                local: Local::default(),
                counters: c,
                settings_cell: None,
            });
        }
        PipelineSet {
            pipelines,
            alert_rx,
            alert_bell,
            counters,
        }
    }
}

/// A ring of `capacity` from every one of `n` workers to every other: per worker, its producer
/// ends by destination (none to itself) and its consumer ends.
#[allow(
    clippy::type_complexity,
    reason = "the two ends of a mesh of rings, as built"
)]
fn mesh<T>(
    n: usize,
    capacity: usize,
) -> (
    Vec<Vec<Option<rtrb::Producer<T>>>>,
    Vec<Vec<rtrb::Consumer<T>>>,
) {
    // rings[from][to]
    let mut producers: Vec<Vec<Option<rtrb::Producer<T>>>> =
        (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut consumers: Vec<Vec<rtrb::Consumer<T>>> = (0..n).map(|_| Vec::new()).collect();
    for (from, row) in producers.iter_mut().enumerate() {
        for (to, slot) in row.iter_mut().enumerate() {
            if from != to {
                let (p, c) = rtrb::RingBuffer::new(capacity);
                *slot = Some(p);
                consumers[to].push(c);
            }
        }
    }
    (producers, consumers)
}

/// How a judged packet's flow is found, and whether it moves the flows' clock hand.
enum Hand {
    /// One frame at a time (replay, a sink without batches): looked up now, and the hand moves
    /// a slot a packet.
    Step,
    /// In a batch: worked out ahead (if it was), and the hand is left to the block's end
    /// ([`Pipeline::sweep_flows`]), which moves it by time rather than by packet.
    Prepared(Option<Prepared>),
}

impl Pipeline {
    /// The shard that owns address `a`: judges its packets as a source, and as a destination
    /// for the destination-keyed families.
    pub fn shard_of(&self, a: impl Into<Addr>) -> usize {
        let a = a.into();
        if self.shards == 1 {
            return 0;
        }
        // The shard by multiplying (the hash's high bits pick it), not by a remainder: a 64-bit
        // division takes tens of cycles, on every packet routed.
        let h = std::hash::BuildHasher::hash_one(&self.route_hasher, a.key());
        ((u128::from(h) * self.shards as u128) >> 64) as usize
    }

    /// Decodes one frame and runs or routes it. The core of the packet path.
    #[inline]
    pub fn process(
        &mut self,
        frame: &[u8],
        ts_ns: u64,
        iface: u16,
        ring_tag: Option<crate::capture::VlanTag>,
    ) {
        let mut packet = Packet::EMPTY;
        if self.decode(frame, ring_tag, &mut packet)
            && self.judge(&mut packet, frame, ts_ns, iface, Hand::Step)
        {
            let loopback = self.loopback(iface, &packet);
            self.observe_packet(ts_ns, iface, loopback, &packet, Roles::BOTH);
        }
    }

    /// Decodes `frame` into `packet`; false (the error counted) when it cannot be decoded.
    #[inline(always)]
    fn decode(
        &mut self,
        frame: &[u8],
        ring_tag: Option<crate::capture::VlanTag>,
        packet: &mut Packet,
    ) -> bool {
        // Live capture is always Ethernet: the other link types (capture files) stay off its path.
        let decoded = if self.link == LinkType::Ethernet {
            decode::decode_ethernet_into(frame, ring_tag, packet)
        } else {
            decode_other(self.link, frame).map(|p| *packet = p)
        };
        match decoded {
            Ok(()) => true,
            Err(e) => {
                self.local.decode_errors[e.layer as usize] += 1;
                false
            }
        }
    }

    /// Judges a decoded packet's flow and routes it to the shards whose families judge it
    /// (`frame` is what it was decoded from). True when this pipeline is the one shard and its
    /// families are still to see the packet: the caller runs them, on the packet alone or on
    /// its batch.
    #[inline(always)]
    fn judge(
        &mut self,
        packet: &mut Packet,
        frame: &[u8],
        ts_ns: u64,
        iface: u16,
        hand: Hand,
    ) -> bool {
        self.local.decoded += 1;
        self.latest_ns = ts_ns;
        if let Net::Ip(ip) = &mut packet.net {
            if ip.fragment != Fragment::No {
                self.fragment(ip, ts_ns);
            }
        }
        if self.shard.settings().ignores(packet) {
            return false;
        }
        // The MAC by reference: it is read only when a flow opens.
        let Packet { src_mac, net, .. } = packet;
        match net {
            Net::Ip(ip) => {
                let flow = match &hand {
                    Hand::Prepared(flow) => flow.as_ref(),
                    Hand::Step => None,
                };
                if let Some(f) = self.flows.observe(ip, src_mac, frame, ts_ns, iface, flow) {
                    self.attempted(f);
                }
            }
            Net::Arp(arp) => self.flows.observe_arp(arp, ts_ns, iface),
            Net::Other(_) => {}
        }
        if let Hand::Step = hand {
            if let Some(f) = self.flows.step(ts_ns) {
                self.attempted(f);
            }
        }
        if self.shards == 1 {
            // One shard plays every role: the destination-keyed families judge the packet
            // themselves, so there is nothing to route.
            return !matches!(packet.net, Net::Other(_));
        }
        self.route(packet, ts_ns, iface);
        false
    }

    /// Sends a packet to the shards where some family wants it (more than one shard): a
    /// flood's packets to the victim's shard alone (tallied, when that is another worker's and
    /// the victim has more this block), and most packets of a conversation nowhere. Out of
    /// line: one worker's batch loop stays as small as it was.
    #[inline(never)]
    fn route(&mut self, packet: &Packet, ts_ns: u64, iface: u16) {
        let (src, dst) = match &packet.net {
            Net::Ip(ip) => (ip.src, ip.dst),
            // The claimed address's shard judges the claim; the asked-for address's learns
            // which MAC claims what (a decoy scan's link-layer evidence).
            Net::Arp(arp) => (
                Addr::v4(arp.sender_ip.octets()),
                Addr::v4(arp.target_ip.octets()),
            ),
            Net::Other(_) => return,
        };
        // Only to the shards where some family wants it: a flood's packets go to the victim's
        // shard alone, and most packets of a conversation nowhere.
        let (wanted, tallied) = Roles::wanted_tallied(packet, self.shard.settings());
        if wanted == Roles::default() {
            return;
        }
        let src_shard = wanted.src.then(|| self.shard_of(src));
        let mut dst_shard = wanted.dst.then(|| self.shard_of(dst));
        if let Some(d) = dst_shard {
            if d != self.index && tallied && self.tally(d, ts_ns, iface, packet) {
                // A flood's packet, for another worker's victim with more this block: counted
                // here, and the count handed over at the block's end.
                dst_shard = None;
            }
        }
        match (src_shard, dst_shard) {
            (Some(s), Some(d)) if s == d => self.deliver(s, ts_ns, iface, packet, Roles::BOTH),
            (s, d) => {
                if let Some(s) = s {
                    self.deliver(s, ts_ns, iface, packet, Roles::SOURCE);
                }
                if let Some(d) = d {
                    self.deliver(d, ts_ns, iface, packet, Roles::DESTINATION);
                }
            }
        }
    }

    /// Counts a flood's packet for the victim's shard `shard` (another worker's) in this
    /// block's tallies, if its victim is one they follow (false: it is to cross as before).
    #[inline]
    fn tally(&mut self, shard: usize, ts_ns: u64, iface: u16, packet: &Packet) -> bool {
        match &packet.net {
            Net::Ip(ip) => {
                self.tallies
                    .add(shard, (ts_ns, iface), ip, &self.shard.settings().floods)
            }
            _ => false,
        }
    }

    /// Fragment bookkeeping, off the common path (live capture defragments in the kernel, so
    /// fragments come from capture files): counts tiny first fragments, remembers first
    /// fragments' ports and gives them to the later fragments of the same datagram.
    #[cold]
    #[inline(never)]
    fn fragment(&mut self, ip: &mut Ip, ts_ns: u64) {
        let key = (ip.src.key(), ip.dst.key(), ip.frag_id, ip.proto);
        match (ip.fragment, ip.transport) {
            (Fragment::First, t) => {
                if let Transport::TinyFragment { .. } = t {
                    self.local.tiny_fragments += 1;
                }
                if let Some(p) = t.ports() {
                    *self.fragments.entry(key, ts_ns) = p;
                }
            }
            (Fragment::Later, Transport::None) => {
                if let Some(&(sport, dport)) = self.fragments.get(&key) {
                    ip.transport = Transport::LaterFragment { sport, dport };
                }
            }
            _ => {}
        }
    }

    /// Has `shard` play `roles` for `packet`: this pipeline's own shard at once, another
    /// worker's through its ring.
    fn deliver(&mut self, shard: usize, ts_ns: u64, iface: u16, packet: &Packet, roles: Roles) {
        if shard == self.index {
            let loopback = self.loopback(iface, packet);
            self.observe_packet(ts_ns, iface, loopback, packet, roles);
            return;
        }
        if let Some(Some(tx)) = self.outboxes.get_mut(shard) {
            let obs = Observation {
                ts_ns,
                iface,
                packet: *packet,
                roles,
            };
            if tx.push(Routed::Packet(obs)).is_err() {
                self.local.route_overflow += 1;
            }
        }
    }

    /// Hands every flood part tallied so far to its victim's shard (at a block's end); a full
    /// ring drops the part and counts it with the observations it stands for.
    fn hand_over_tallies(&mut self) {
        let (out, overflow) = (&mut self.part_out, &mut self.local.route_overflow);
        self.tallies.take(|p| {
            if let Some(Some(tx)) = out.get_mut(usize::from(p.shard)) {
                if tx.push(p).is_err() {
                    *overflow += 1;
                }
            }
        });
    }

    /// A failed attempt goes to the shard of its initiator (the scanner) and to the shard of its
    /// target (where scans from many sources meet); an answered one only to its initiator's
    /// (what a scan learned).
    #[cold]
    fn attempted(&mut self, f: Attempt) {
        if self.shard.settings().ignores_pair(f.initiator, f.target) {
            return;
        }
        let src = self.shard_of(f.initiator);
        if f.outcome == Outcome::Answered {
            return self.route_attempt(src, f, Roles::SOURCE);
        }
        let dst = self.shard_of(f.target);
        if src == dst {
            self.route_attempt(src, f, Roles::BOTH);
        } else {
            self.route_attempt(src, f, Roles::SOURCE);
            self.route_attempt(dst, f, Roles::DESTINATION);
        }
    }

    fn route_attempt(&mut self, shard: usize, f: Attempt, roles: Roles) {
        if shard == self.index {
            self.observe_attempt(&f, roles);
        } else if let Some(Some(tx)) = self.outboxes.get_mut(shard) {
            if tx.push(Routed::Attempt(f, roles)).is_err() {
                self.local.route_overflow += 1;
            }
        }
    }

    fn observe(&mut self, obs: &Observation) {
        let loopback = self.loopback(obs.iface, &obs.packet);
        self.observe_packet(obs.ts_ns, obs.iface, loopback, &obs.packet, obs.roles);
    }

    /// Was `packet` captured on a loopback device, where loopback addresses are normal?
    #[inline(always)]
    fn loopback(&self, iface: u16, packet: &Packet) -> bool {
        // Replay's one shard observes its own packets, so the file's word about the current
        // interface applies; live capture never sets it.
        self.link_loopback
            || packet.on_loopback
            || (self.any_loopback && self.interfaces.judged_loopback(iface, packet))
    }

    /// Runs this shard's families of `roles` on `packet` (the packets this pipeline judges
    /// itself, and those other workers routed to it; the one-shard path of a lone frame too).
    /// One body, so the families are inlined into it once.
    #[inline(never)]
    fn observe_packet(
        &mut self,
        ts_ns: u64,
        iface: u16,
        loopback: bool,
        packet: &Packet,
        roles: Roles,
    ) {
        let alerts = &mut self.alerts;
        let dropped = &mut self.local.alerts_dropped;
        self.shard
            .observe(ts_ns, iface, loopback, packet, roles, &mut |a| {
                if alerts.push(a).is_err() {
                    *dropped += 1;
                }
            });
    }

    fn observe_attempt(&mut self, f: &Attempt, roles: Roles) {
        let alerts = &mut self.alerts;
        let dropped = &mut self.local.alerts_dropped;
        self.shard.attempt(f, roles, &mut |a| {
            if alerts.push(a).is_err() {
                *dropped += 1;
            }
        });
    }

    /// Moves the detectors' clock to `now_ns` (`u64::MAX`: the end of a capture, or shutdown),
    /// closing the incidents gone quiet.
    pub fn tick(&mut self, now_ns: u64) {
        let alerts = &mut self.alerts;
        let dropped = &mut self.local.alerts_dropped;
        self.shard.tick(now_ns, &mut |a| {
            if alerts.push(a).is_err() {
                *dropped += 1;
            }
        });
    }

    /// Runs the observations other workers routed to this shard, and merges their floods'
    /// parts.
    pub fn drain(&mut self) {
        let alerts = &mut self.alerts;
        let dropped = &mut self.local.alerts_dropped;
        for rx in &mut self.part_in {
            while let Ok(p) = rx.pop() {
                self.shard.merge_part(&p, &mut |a| {
                    if alerts.push(a).is_err() {
                        *dropped += 1;
                    }
                });
            }
        }
        for i in 0..self.inboxes.len() {
            while let Ok(routed) = self.inboxes[i].pop() {
                match routed {
                    Routed::Packet(obs) => self.observe(&obs),
                    Routed::Attempt(f, roles) => self.observe_attempt(&f, roles),
                }
            }
        }
    }

    /// Moves the flows' clock hand over what keeps its pace at `now_ns` (at a wake-up, and at
    /// the end of a block: live capture's batches do not step it a slot a packet), for
    /// attempts gone unanswered.
    pub fn sweep_flows(&mut self, now_ns: u64) {
        let mut budget = self.flows.sweep_budget(now_ns);
        while let Some(f) = self.flows.next_unanswered(now_ns, &mut budget) {
            self.attempted(f);
        }
    }

    /// Reports every attempt still unanswered, in the order they were made, and hands over the
    /// floods' parts (the end of a capture file: once per file, never on the live packet
    /// path).
    pub fn flush_flows(&mut self) {
        self.hand_over_tallies();
        let mut budget = self.flows.capacity();
        let mut found = Vec::new();
        while let Some(f) = self.flows.next_at_end(self.latest_ns, &mut budget) {
            found.push(f);
        }
        found.sort_by_key(|f| f.ts_ns);
        for f in found {
            self.attempted(f);
        }
    }

    /// Wakes the alert thread if this pipeline's alert ring holds alerts (once a block).
    fn ring_bell(&self) {
        if self.alerts.slots() < self.alerts.buffer().capacity() {
            self.bell.ring();
        }
    }

    /// Publishes the counters (once per block, not per packet).
    pub fn publish(&self) {
        let c = &self.counters;
        let l = &self.local;
        c.decoded.store(l.decoded, Ordering::Relaxed);
        c.tiny_fragments.store(l.tiny_fragments, Ordering::Relaxed);
        for (a, v) in c.decode_errors.iter().zip(l.decode_errors) {
            a.store(v, Ordering::Relaxed);
        }
        c.route_overflow.store(l.route_overflow, Ordering::Relaxed);
        c.alerts_dropped.store(l.alerts_dropped, Ordering::Relaxed);
        let s = self.shard.counters();
        c.alerts.store(s.alerts, Ordering::Relaxed);
        c.suppressed.store(s.suppressed, Ordering::Relaxed);
        c.evictions.store(s.evictions, Ordering::Relaxed);
        c.flow_evictions
            .store(self.flows.evictions(), Ordering::Relaxed);
    }

    /// Follows `cell` for settings changes (checked once per block).
    pub fn follow_settings(&mut self, cell: Arc<SettingsCell>) {
        let generation = cell.generation.load(Ordering::Acquire);
        self.settings_cell = Some((cell, generation));
    }

    fn check_settings(&mut self) {
        let Some((cell, seen)) = &mut self.settings_cell else {
            return;
        };
        let now = cell.generation.load(Ordering::Acquire);
        if now != *seen {
            *seen = now;
            if let Some(s) = cell.load() {
                self.shard.set_settings(s);
            }
        }
    }

    /// Sets how the next frames are framed, and whether they were captured on a loopback
    /// device (replay: files and their interfaces differ).
    pub fn set_link(&mut self, link: LinkType, loopback: bool) {
        self.link = link;
        self.link_loopback = loopback;
    }

    /// Replaces the detector settings (reload).
    pub fn set_settings(&mut self, settings: Arc<Settings>) {
        self.shard.set_settings(settings);
    }

    /// Bytes the flow table holds (fixed at construction).
    pub fn flow_memory_bytes(&self) -> usize {
        self.flows.memory_bytes()
    }

    /// The shard (for summaries and memory figures).
    pub fn shard(&self) -> &Shard {
        &self.shard
    }
}

impl FrameSink for Pipeline {
    #[inline]
    fn frame(&mut self, frame: &[u8], meta: &FrameMeta) {
        self.process(frame, meta.ts_ns, meta.iface, meta.vlan);
    }

    /// Looks ahead over the batch: decodes every frame and asks for its flow's whole bucket
    /// (tags and slots), then judges the packets' flows in order; with one shard, its detector
    /// families then see the batch's packets in order, in one call. The flow table is the one
    /// structure every packet visits at a place of its own (a new source port is a new place),
    /// so without this each packet would wait for memory twice (the bucket's tags, then the
    /// slot they point to).
    fn frames(&mut self, batch: &Batch<'_>) {
        let n = batch.len();
        let mut packets = [Packet::EMPTY; BATCH];
        let mut decoded = [false; BATCH];
        let mut flows: [Option<Prepared>; BATCH] = [None; BATCH];
        for i in 0..n {
            let (frame, meta) = batch.get(i);
            decoded[i] = self.decode(frame, meta.vlan, &mut packets[i]);
            if let (true, Net::Ip(ip)) = (decoded[i], &packets[i].net) {
                flows[i] = self.flows.prepare(ip);
            }
        }
        // Whether the one shard's families are to see each packet, and if it came from a
        // loopback device.
        let mut families = [None; BATCH];
        for i in 0..n {
            if decoded[i] {
                let (frame, meta) = batch.get(i);
                if self.judge(
                    &mut packets[i],
                    frame,
                    meta.ts_ns,
                    meta.iface,
                    Hand::Prepared(flows[i]),
                ) {
                    families[i] = Some(self.loopback(meta.iface, &packets[i]));
                }
            }
        }
        if self.shards == 1 {
            // The families see the batch's packets in order, after its flows were judged.
            let alerts = &mut self.alerts;
            let dropped = &mut self.local.alerts_dropped;
            let seen = batch
                .metas()
                .iter()
                .zip(&families)
                .zip(&packets)
                .filter_map(|((meta, family), packet)| {
                    family.map(|loopback| Seen::new(meta.ts_ns, meta.iface, loopback, packet))
                });
            self.shard.observe_batch(seen, &mut |a| {
                if alerts.push(a).is_err() {
                    *dropped += 1;
                }
            });
        }
    }

    fn block_end(&mut self) {
        self.sweep_flows(self.latest_ns);
        self.hand_over_tallies();
        self.drain();
        self.tick(self.latest_ns);
        self.check_settings();
        self.publish();
        self.ring_bell();
    }

    fn idle(&mut self, now_ns: u64) {
        self.sweep_flows(now_ns);
        self.hand_over_tallies();
        self.drain();
        self.tick(now_ns);
        self.check_settings();
        self.publish();
        self.ring_bell();
    }
}

/// Totals over all pipelines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineTotals {
    /// Frames decoded.
    pub decoded: u64,
    /// Of those, first fragments too short for their transport header.
    pub tiny_fragments: u64,
    /// Decode errors per layer.
    pub decode_errors: [u64; Layer::ALL.len()],
    /// Observations dropped on full shard rings.
    pub route_overflow: u64,
    /// Alerts emitted.
    pub alerts: u64,
    /// Alerts dropped on full alert rings.
    pub alerts_dropped: u64,
    /// Repeats held back.
    pub suppressed: u64,
    /// State evictions.
    pub evictions: u64,
    /// Flow table evictions.
    pub flow_evictions: u64,
}

impl PipelineTotals {
    /// Sums the published counters.
    pub fn sum(counters: &[Arc<PipelineCounters>]) -> PipelineTotals {
        let mut t = PipelineTotals::default();
        for c in counters {
            t.decoded += c.decoded.load(Ordering::Relaxed);
            t.tiny_fragments += c.tiny_fragments.load(Ordering::Relaxed);
            for (i, e) in c.decode_errors.iter().enumerate() {
                t.decode_errors[i] += e.load(Ordering::Relaxed);
            }
            t.route_overflow += c.route_overflow.load(Ordering::Relaxed);
            t.alerts += c.alerts.load(Ordering::Relaxed);
            t.alerts_dropped += c.alerts_dropped.load(Ordering::Relaxed);
            t.suppressed += c.suppressed.load(Ordering::Relaxed);
            t.evictions += c.evictions.load(Ordering::Relaxed);
            t.flow_evictions += c.flow_evictions.load(Ordering::Relaxed);
        }
        t
    }

    /// All decode errors.
    pub fn decode_errors_total(&self) -> u64 {
        self.decode_errors.iter().sum()
    }

    /// `ipv4=3 tcp=1` for the layers with errors.
    pub fn decode_errors_by_layer(&self) -> String {
        let parts: Vec<String> = Layer::ALL
            .iter()
            .zip(self.decode_errors)
            .filter(|(_, n)| *n > 0)
            .map(|(l, n)| format!("{}={n}", l.name()))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::craft;
    use crate::decode::tcp_flags::SYN;
    use crate::detect::Detector;

    fn collect(set: &mut PipelineSet) -> Vec<Alert> {
        // Probes nobody answered are failed attempts once the capture is over.
        for p in &mut set.pipelines {
            p.flush_flows();
        }
        for p in &mut set.pipelines {
            p.drain();
            p.tick(u64::MAX);
        }
        let mut out = Vec::new();
        for rx in &mut set.alert_rx {
            while let Ok(a) = rx.pop() {
                out.push(a);
            }
        }
        out
    }

    #[test]
    fn a_batch_is_judged_as_its_frames_one_by_one() {
        // The look-ahead (decode all, ask for the flows' buckets and slots, then judge) must
        // change nothing: the same alerts at the same times, and the same counters, from the
        // mixed corpus (scans, sweeps, floods, ARP, IPv6, QinQ). (Tables big enough to evict
        // nothing: each pipeline hashes with its own random seed, so evictions differ by run.
        // Batches leave the flows' clock hand to the block's end, and no attempt falls due
        // within the corpus's time: the end of the capture finds them all, either way.)
        let corpus = craft::mixed_corpus(64);
        let run = |batched: bool| {
            let mut set = PipelineSet::build(
                1,
                Arc::new(Settings::default()),
                LinkType::Ethernet,
                Arc::new(Interfaces::default()),
                Sizes::default(),
            );
            let p = &mut set.pipelines[0];
            let mut batch = Batch::default();
            for (i, f) in corpus.iter().enumerate() {
                let meta = FrameMeta {
                    ts_ns: 1_000_000_000 + i as u64 * 1_000_000,
                    ..FrameMeta::EMPTY
                };
                if !batched {
                    p.frame(f, &meta);
                } else {
                    batch.feed(f, &meta, p);
                }
            }
            batch.flush(p);
            p.publish();
            let totals = PipelineTotals::sum(&set.counters);
            let mut alerts: Vec<_> = collect(&mut set)
                .into_iter()
                .map(|a| (a.ts_ns, a.detector as u8, a.src, a.dst, a.count))
                .collect();
            // Records closed together at the end come in table order, which the seed decides.
            alerts.sort();
            (alerts, totals)
        };
        let (one_by_one, batched) = (run(false), run(true));
        assert!(one_by_one.0.len() > 3, "{:?}", one_by_one.0);
        assert_eq!(one_by_one.1.flow_evictions, 0, "{:?}", one_by_one.1);
        assert_eq!(one_by_one, batched);
    }

    #[test]
    fn a_silent_scan_in_batches_is_found_by_the_block_ends_within_its_time_and_pace() {
        // 40 SYNs nobody answers, in one batch; then a block of one unrelated datagram every
        // 100 ms. The batches never step the clock hand: the block ends move it by time, so
        // the attempts fall due 3 s after they were made and are found within a turn (1.6 s
        // with the default tables), not at the end of the capture.
        let mut set = PipelineSet::with_defaults(1);
        let p = &mut set.pipelines[0];
        let (scanner, target) = ("10.0.0.66".parse().unwrap(), "10.0.0.1".parse().unwrap());
        let t0 = 1_800_000_000_000_000_000u64;
        let mut batch = Batch::default();
        let syns: Vec<_> = (1..=40)
            .map(|port| craft::tcp_frame(scanner, target, 40000, port, SYN))
            .collect();
        for f in &syns {
            let meta = FrameMeta {
                ts_ns: t0,
                ..FrameMeta::EMPTY
            };
            batch.feed(f, &meta, p);
        }
        batch.flush(p);
        p.block_end();
        let other = craft::udp_frame(
            "10.0.0.7".parse().unwrap(),
            "10.0.0.8".parse().unwrap(),
            5000,
            5001,
            &[0; 8],
        );
        let mut found = None;
        for k in 1..=60u64 {
            let now = t0 + k * 100_000_000;
            let meta = FrameMeta {
                ts_ns: now,
                ..FrameMeta::EMPTY
            };
            batch.feed(&other, &meta, p);
            batch.flush(p);
            p.block_end();
            while let Ok(a) = set.alert_rx[0].pop() {
                if a.detector == Detector::Portscan && found.is_none() {
                    found = Some(now);
                }
            }
        }
        let found = found.expect("a portscan before the capture ends");
        let after = found - t0;
        assert!(
            (crate::flow::UNANSWERED_NS..=crate::flow::UNANSWERED_NS + 1_700_000_000)
                .contains(&after),
            "found {after} ns after the scan"
        );
    }

    #[test]
    fn detectors_see_every_packet_whichever_worker_got_it() {
        for workers in [2, 3, 4] {
            let mut set = PipelineSet::build(
                workers,
                Arc::new(Settings::default()),
                LinkType::Ethernet,
                Arc::new(Interfaces::default()),
                Sizes::default(),
            );
            let src = "192.0.2.7".parse().unwrap();
            let dst = "198.51.100.2".parse().unwrap();
            // A scan of 40 ports, each probe on another worker (as flow-hash fanout spreads them).
            for p in 0..40u16 {
                let f = craft::tcp_frame(src, dst, 40000, 1 + p, SYN);
                set.pipelines[usize::from(p) % workers].process(
                    &f,
                    1_000_000_000 + u64::from(p),
                    0,
                    None,
                );
            }
            // A SYN flood from 5000 spoofed sources, spread the same way.
            for i in 0..5000u32 {
                let s = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                let f = craft::tcp_frame(s, dst, 1024, 80, SYN);
                set.pipelines[i as usize % workers].process(
                    &f,
                    2_000_000_000 + u64::from(i) * 100_000,
                    0,
                    None,
                );
                if i % 256 == 255 {
                    // A block's end: the floods' parts are handed over.
                    for p in &mut set.pipelines {
                        p.block_end();
                    }
                }
            }
            let alerts = collect(&mut set);
            let scans: Vec<_> = alerts
                .iter()
                .filter(|a| a.detector == Detector::Portscan)
                .collect();
            let floods: Vec<_> = alerts
                .iter()
                .filter(|a| a.detector == Detector::SynFlood)
                .collect();
            assert_eq!(scans.len(), 1, "{workers} workers: {alerts:?}");
            assert_eq!(scans[0].count, 20);
            assert_eq!(floods.len(), 1, "{workers} workers: {alerts:?}");
            // Another worker's packets count when its block ends, its part all at once.
            assert!(
                (3001..3001 + 256).contains(&floods[0].count),
                "{workers} workers: {alerts:?}"
            );
            for p in &set.pipelines {
                p.publish();
            }
            assert_eq!(PipelineTotals::sum(&set.counters).route_overflow, 0);
        }
    }

    #[test]
    fn a_full_shard_ring_drops_and_counts() {
        let sizes = Sizes {
            route: 16,
            alerts: 16,
            tables: 1024,
            flows: 1024,
        };
        let mut set = PipelineSet::build(
            2,
            Arc::new(Settings::default()),
            LinkType::Ethernet,
            Arc::new(Interfaces::default()),
            sizes,
        );
        // Illegal flag combinations the first worker sees, from a source the second worker's
        // shard owns: each crosses.
        fn owned(set: &PipelineSet, base: u32) -> impl Iterator<Item = std::net::IpAddr> + '_ {
            (0..)
                .map(move |i| std::net::IpAddr::V4(std::net::Ipv4Addr::from(base + i)))
                .filter(move |&a| set.pipelines[0].shard_of(a) == 1)
        }
        let src = owned(&set, 0x0a00_0000).next().unwrap();
        let dst = "198.51.100.2".parse().unwrap();
        for i in 0..100u16 {
            set.pipelines[0].process(
                &craft::tcp_frame(src, dst, 1024 + i, 80, SYN | crate::decode::tcp_flags::FIN),
                1_000_000_000 + u64::from(i),
                0,
                None,
            );
        }
        set.pipelines[0].publish();
        let t = PipelineTotals::sum(&set.counters);
        assert_eq!(t.route_overflow, 100 - 16, "{t:?}");
        // Floods to 200 victims the second shard owns, block after block, while the second
        // worker never drains: their tallies fill the ring of parts, and the rest are counted
        // (a ring of observations large enough for the packets that still cross).
        let mut set = PipelineSet::build(
            2,
            Arc::new(Settings::default()),
            LinkType::Ethernet,
            Arc::new(Interfaces::default()),
            Sizes {
                route: 1 << 16,
                ..sizes
            },
        );
        let victims: Vec<_> = owned(&set, 0xc633_6400).take(200).collect();
        let packets = u64::from(crate::detect::flood::HEAVY) * 2;
        let mut ts = 2_000_000_000;
        for _ in 0..PART_RING / 50 {
            for &v in &victims {
                for _ in 0..packets {
                    ts += 1_000;
                    set.pipelines[0].process(&craft::udp_frame(src, v, 1024, 53, b""), ts, 0, None);
                }
            }
            set.pipelines[0].block_end();
        }
        let t = PipelineTotals::sum(&set.counters);
        assert!(t.route_overflow > 0, "{t:?}");
        // At most one part a victim a block: fewer dropped than victims' blocks.
        assert!(
            t.route_overflow < (PART_RING / 50 * victims.len()) as u64,
            "{t:?}"
        );
    }
}
