//! The flow tables' own store: a bounded, set-associative table whose bucket is as few cache
//! lines as a flow's key and state allow.
//!
//! The detectors' [`Table`](crate::detect::table::Table) keeps a bucket's tags and last-use
//! stamps in a line of their own, beside eight slots. Every packet visits the flow table at a
//! place of its own (a new source port is a new place), and the batch asks for a flow's whole
//! bucket ahead of judging it; those requests, five lines a packet, were what the packet path
//! waited on most (`benches/HISTORY.md`, "Per-packet cost"). Here a bucket is four slots, each
//! holding its key, its last use and its state, and nothing else: two lines for IPv4 (32-byte
//! slots), four for IPv6 (64-byte ones). A lookup compares the keys themselves; there are no
//! tags to read first.
//!
//! Capacity is fixed at construction (rounded up to a power of two, at least one bucket) and the
//! buckets are allocated once. When a bucket is full, the flow idle longest is evicted and
//! counted. Keys are hashed with the per-process seeded hasher, as the detectors' tables are.

use std::hash::{BuildHasher, Hash};

use super::Key;
use crate::detect::table::SeededState;
use crate::sys::huge::HugeSlice;

/// Slots per bucket.
pub const WAYS: usize = 4;

/// One slot: a flow's key, spread over the fields below so that its last use fits beside it,
/// and the flow's state.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
struct Slot<W, V> {
    a: W,
    b: W,
    /// The first port in the high half, the second in the low.
    ports: u32,
    /// The protocol in the low byte; above it the last use, a [`stamp`] (0: the slot is empty).
    tail: u32,
    value: V,
}

impl<W: Copy + Eq, V> Slot<W, V> {
    #[inline(always)]
    fn holds(&self, (a, b, pa, pb, proto): &Key<W>) -> bool {
        self.a == *a
            && self.b == *b
            && self.ports == ports(*pa, *pb)
            && self.tail as u8 == *proto
            && self.used()
    }

    #[inline(always)]
    fn used(&self) -> bool {
        self.tail >> 8 != 0
    }

    #[inline(always)]
    fn key(&self) -> Key<W> {
        (
            self.a,
            self.b,
            (self.ports >> 16) as u16,
            self.ports as u16,
            self.tail as u8,
        )
    }

    #[inline(always)]
    fn touch(&mut self, stamp: u32) {
        self.tail = (self.tail & 0xff) | stamp << 8;
    }
}

#[inline(always)]
fn ports(first: u16, second: u16) -> u32 {
    u32::from(first) << 16 | u32::from(second)
}

/// A last-use stamp: the time in units of 2^20 ns (about a millisecond), 24 bits of it with the
/// lowest set, so never 0 (an empty slot's); it wraps every 4.9 hours. Only its age relative to
/// now matters (the flow idle longest is evicted first).
#[inline(always)]
fn stamp(now_ns: u64) -> u32 {
    ((now_ns >> 20) as u32 | 1) & 0x00ff_ffff
}

/// A bucket, starting on a cache line of its own.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Bucket<W, V> {
    ways: [Slot<W, V>; WAYS],
}

impl<W: Default + Copy, V: Default + Copy> Default for Bucket<W, V> {
    fn default() -> Self {
        Bucket {
            ways: [Slot::default(); WAYS],
        }
    }
}

/// Where a key lives in a [`FlowTable`]: its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Place {
    bucket: usize,
}

/// The bounded table.
#[derive(Debug, Clone)]
pub struct FlowTable<W, V> {
    buckets: HugeSlice<Bucket<W, V>>,
    mask: usize,
    hasher: SeededState,
    evictions: u64,
}

impl<W: Copy + Eq + Hash + Default, V: Copy + Default> FlowTable<W, V> {
    /// A table holding at most `capacity` flows (rounded up to a power of two, at least one
    /// bucket).
    pub fn new(capacity: usize, hasher: SeededState) -> Self {
        let n = (capacity.max(WAYS).next_power_of_two() / WAYS).max(1);
        FlowTable {
            buckets: HugeSlice::new(n, Bucket::default()),
            mask: n - 1,
            hasher,
            evictions: 0,
        }
    }

    /// Where `key` lives: computed once, it serves [`FlowTable::prefetch_bucket`],
    /// [`FlowTable::get_mut_at`] and [`FlowTable::insert_at`] without hashing again.
    #[inline(always)]
    pub fn place(&self, key: &Key<W>) -> Place {
        Place {
            bucket: self.hasher.hash_one(key) as usize & self.mask,
        }
    }

    /// Asks the processor to start loading the whole bucket of `place` (every line of it), for
    /// a lookup a little later.
    #[inline(always)]
    pub fn prefetch_bucket(&self, place: Place) {
        let first = std::ptr::from_ref(&self.buckets[place.bucket & self.mask]).cast::<u8>();
        for line in (0..std::mem::size_of::<Bucket<W, V>>()).step_by(64) {
            crate::sys::cpu::prefetch_ptr(first.wrapping_add(line));
        }
    }

    /// Asks the processor to start loading the line of slot `index` (modulo the capacity): for
    /// a sweep that will visit it soon.
    #[inline(always)]
    pub fn prefetch_index(&self, index: usize) {
        let i = index & (self.capacity() - 1);
        crate::sys::cpu::prefetch(&self.buckets[i / WAYS].ways[i % WAYS]);
    }

    /// The state of `key`, if present, counted as a use at `now` (`place` must be
    /// `self.place(key)`).
    #[inline(always)]
    pub fn get_mut_at(&mut self, place: Place, key: &Key<W>, now: u64) -> Option<&mut V> {
        let bucket = &mut self.buckets[place.bucket & self.mask];
        let slot = bucket.ways.iter_mut().find(|s| s.holds(key))?;
        slot.touch(stamp(now));
        Some(&mut slot.value)
    }

    /// [`FlowTable::get_mut_at`], hashing `key` here.
    #[inline]
    pub fn get_mut(&mut self, key: &Key<W>, now: u64) -> Option<&mut V> {
        self.get_mut_at(self.place(key), key, now)
    }

    /// Stores `value` under `key`, which the table does not hold (a [`FlowTable::get_mut_at`]
    /// at `place` just found nothing), in the bucket's first empty way or in place of its flow
    /// idle longest (counted); a use at `now` (`place` must be `self.place(&key)`). No search
    /// for the key: the lookup before it did that.
    #[inline]
    pub fn insert_at(&mut self, place: Place, key: Key<W>, now: u64, value: V) {
        let now = stamp(now);
        let bucket = &mut self.buckets[place.bucket & self.mask];
        debug_assert!(!bucket.ways.iter().any(|s| s.holds(&key)), "inserted twice");
        let way = victim(&bucket.ways, now);
        if bucket.ways[way].used() {
            self.evictions += 1;
        }
        let (a, b, pa, pb, proto) = key;
        bucket.ways[way] = Slot {
            a,
            b,
            ports: ports(pa, pb),
            tail: u32::from(proto) | now << 8,
            value,
        };
    }

    /// [`FlowTable::insert_at`], hashing `key` here.
    #[inline]
    pub fn insert(&mut self, key: Key<W>, now: u64, value: V) {
        self.insert_at(self.place(&key), key, now, value);
    }

    /// Slot `index` (modulo the capacity), if in use: its key and state. For a clock hand that
    /// visits a few slots at a time.
    #[inline]
    pub fn slot_mut(&mut self, index: usize) -> Option<(Key<W>, &mut V)> {
        let i = index & (self.capacity() - 1);
        let slot = &mut self.buckets[i / WAYS].ways[i % WAYS];
        if !slot.used() {
            return None;
        }
        Some((slot.key(), &mut slot.value))
    }

    /// Flows held (counted: for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets
            .iter()
            .flat_map(|b| &b.ways)
            .filter(|s| s.used())
            .count()
    }

    /// Slots allocated (the bound).
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// Flows evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets)
    }
}

/// The way of `ways` a new key takes at stamp `now`: the first empty one, or else the one idle
/// longest. A bucket fills from its first way on and a slot is replaced, never emptied, so a
/// bucket whose last way is used is full. The detectors' tables choose by the same rule over
/// their tags line (`detect::table::victim`); one function for both, over closures, changed how
/// the packet path was inlined (8 to 21 more instructions a packet under callgrind), so each
/// layout keeps its own.
#[inline(always)]
fn victim<W: Copy + Eq, V>(ways: &[Slot<W, V>; WAYS], now: u32) -> usize {
    if !ways[WAYS - 1].used() {
        return ways.iter().position(|s| !s.used()).unwrap_or(WAYS - 1);
    }
    let age = |s: &Slot<W, V>| now.wrapping_sub(s.tail >> 8) & 0x00ff_ffff;
    let mut pick = 0;
    let mut oldest = age(&ways[0]);
    for (w, s) in ways.iter().enumerate().skip(1) {
        let a = age(s);
        if a > oldest {
            (pick, oldest) = (w, a);
        }
    }
    pick
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<W: Copy + Eq + Hash + Default, V: Copy + Default> FlowTable<W, V> {
        /// The state of `key`, inserted (`V::default()`) if absent.
        fn entry(&mut self, key: Key<W>, now: u64) -> &mut V {
            let place = self.place(&key);
            if self.get_mut_at(place, &key, now).is_none() {
                self.insert_at(place, key, now, V::default());
            }
            self.get_mut_at(place, &key, now).expect("just inserted")
        }
    }

    #[derive(Debug, Clone, Copy, Default, PartialEq)]
    struct Flow {
        n: u32,
        rest: [u8; 12],
    }

    #[test]
    fn a_slot_is_a_half_line_for_ipv4_and_a_line_for_ipv6_and_a_bucket_starts_a_line() {
        // The state of a flow is 16 bytes (`flow::State`), as `Flow` here.
        assert_eq!(std::mem::size_of::<Slot<u32, Flow>>(), 32);
        assert_eq!(std::mem::size_of::<Slot<u128, Flow>>(), 64);
        assert_eq!(std::mem::size_of::<Bucket<u32, Flow>>(), 128);
        assert_eq!(std::mem::size_of::<Bucket<u128, Flow>>(), 256);
        let t: FlowTable<u32, Flow> = FlowTable::new(64, SeededState::random());
        assert_eq!(t.buckets.as_ptr() as usize % 64, 0);
        assert_eq!(t.memory_bytes(), 64 * 32);
        // The default size (2 MiB for IPv4) is a mapping of its own, in huge pages where the
        // kernel has them.
        let t: FlowTable<u32, Flow> = FlowTable::new(65_536, SeededState::random());
        assert!(t.buckets.mapped());
        assert_eq!(t.buckets.as_ptr() as usize % (2 << 20), 0);
    }

    #[test]
    fn finds_what_it_stored_under_the_whole_key() {
        let mut t: FlowTable<u32, Flow> = FlowTable::new(1024, SeededState::random());
        for p in 0..400u16 {
            t.entry((1, 2, p, 53, 17), 1).n = u32::from(p) + 1;
        }
        let found = (0..400u16)
            .filter(|&p| t.get_mut(&(1, 2, p, 53, 17), 2).map(|f| f.n) == Some(u32::from(p) + 1))
            .count();
        // A few buckets overflow at this load; every key is present or was counted as evicted.
        assert_eq!(found as u64 + t.evictions(), 400);
        assert!(found > 380, "{found}");
        // Any field of the key differing is another flow.
        for other in [
            (1, 2, 0, 53, 6),
            (1, 3, 0, 53, 17),
            (0, 2, 0, 53, 17),
            (1, 2, 0, 54, 17),
            (1, 2, 53, 0, 17),
        ] {
            assert!(t.get_mut(&other, 3).is_none(), "{other:?}");
        }
        assert_eq!(t.len() as u64 + t.evictions(), 400);
    }

    #[test]
    fn a_key_of_zeros_is_a_flow_like_any_other() {
        let mut t: FlowTable<u128, Flow> = FlowTable::new(16, SeededState::random());
        assert!(t.get_mut(&(0, 0, 0, 0, 0), 1).is_none());
        t.entry((0, 0, 0, 0, 0), 1).n = 7;
        assert_eq!(t.get_mut(&(0, 0, 0, 0, 0), 2).map(|f| f.n), Some(7));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_full_bucket_evicts_the_flow_idle_longest_and_counts_it() {
        let mut t: FlowTable<u32, Flow> = FlowTable::new(WAYS, SeededState::random());
        const MS: u64 = 1_000_000;
        for k in 0..WAYS as u32 {
            t.entry((k, 0, 0, 0, 6), (10 + 10 * u64::from(k)) * MS).n = 1;
        }
        // Key 0 used again, so key 1 is now the idle longest.
        assert!(t.get_mut(&(0, 0, 0, 0, 6), 100 * MS).is_some());
        t.entry((99, 0, 0, 0, 6), 101 * MS);
        assert!(t.get_mut(&(0, 0, 0, 0, 6), 102 * MS).is_some());
        assert!(t.get_mut(&(1, 0, 0, 0, 6), 102 * MS).is_none());
        assert_eq!((t.len(), t.evictions()), (WAYS, 1));
    }

    #[test]
    fn flows_cycling_through_a_table_at_half_load_mostly_stay() {
        // Every flow seen once a turn, in the same order: the worst case for evicting the one
        // idle longest. Random placement in buckets of four misses about 13% of packets at half
        // load (eight slots a bucket about 4.5%) and about 55% at full load (eight: 52%).
        fn missed(flows: u32, turns: u32) -> f64 {
            let mut t: FlowTable<u32, Flow> = FlowTable::new(65_536, SeededState::random());
            let mut missed = 0;
            let mut now = 0;
            for turn in 0..turns {
                for port in 0..flows {
                    now += 1_000;
                    let key = (1, 2, (port >> 16) as u16, port as u16, 17);
                    if t.get_mut(&key, now).is_none() {
                        t.entry(key, now);
                        missed += u32::from(turn == turns - 1);
                    }
                }
            }
            f64::from(missed) / f64::from(flows)
        }
        let half = missed(32_768, 3);
        assert!(half < 0.2, "{half}");
        let full = missed(65_536, 3);
        assert!((0.4..0.7).contains(&full), "{full}");
    }

    #[test]
    fn a_million_flows_stay_within_capacity_and_every_slot_is_visited() {
        let mut t: FlowTable<u32, Flow> = FlowTable::new(4096, SeededState::random());
        let before = t.memory_bytes();
        for k in 0..1_000_000u32 {
            t.entry((k, 1, 2, 3, 17), u64::from(k) << 20).n = k;
        }
        assert_eq!(
            (t.capacity(), t.len(), t.memory_bytes()),
            (4096, 4096, before)
        );
        assert_eq!(t.evictions(), 1_000_000 - 4096);
        let mut seen = 0;
        for i in 0..t.capacity() {
            t.prefetch_index(i);
            if let Some((key, flow)) = t.slot_mut(i) {
                assert_eq!(key.0, flow.n);
                seen += 1;
            }
        }
        assert_eq!(seen, 4096);
        for k in 0..10_000u32 {
            t.prefetch_bucket(t.place(&(k, 0, 0, 0, 0)));
        }
    }
}
