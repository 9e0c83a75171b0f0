//! A bounded, allocation-free table for detector state.
//!
//! Capacity is fixed at construction (rounded up to a power of two) and the slots are allocated
//! once; lookups never allocate. The table is set-associative: a key hashes to a bucket of
//! [`WAYS`] slots and lives in one of them. When a bucket is full, the entry idle longest is
//! evicted and counted, so a million spoofed sources cost evictions, never memory. Keys are hashed
//! with a per-process random seed, so an attacker cannot aim many keys at one bucket offline.

use std::hash::{BuildHasher, Hash, Hasher};

/// Slots per bucket.
pub const WAYS: usize = 8;

/// A 64-bit folded-multiply hasher with a random seed (fast on the small keys detectors use).
#[derive(Debug, Clone, Copy)]
pub struct SeededState {
    seed: u64,
}

impl SeededState {
    /// A state seeded from the OS's per-process random `RandomState`.
    pub fn random() -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5c5a_u64);
        SeededState { seed }
    }
}

impl BuildHasher for SeededState {
    type Hasher = SeededHasher;
    #[inline(always)]
    fn build_hasher(&self) -> SeededHasher {
        SeededHasher {
            h: self.seed,
            word: 0,
            bits: 0,
        }
    }
}

/// See [`SeededState`]. Fields narrower than 64 bits are packed into a word before it is mixed
/// in, so a flow key (two IPv4 addresses, two ports, a protocol) costs two mixing rounds, not
/// five; with the key's type known where it is hashed, the packing compiles to shifts and ors.
#[derive(Debug, Clone, Copy)]
pub struct SeededHasher {
    h: u64,
    /// Bits written and not yet mixed in, from the lowest.
    word: u64,
    bits: u32,
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xc4ce_b9fe_1a85_ec53;

/// The 128-bit product of `a` and `b`, its halves xored: every bit of either input reaches the
/// low half (foldhash's and ahash's mixing step).
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl SeededHasher {
    /// Adds the `n` low bits of `x` (the rest zero) to the word being filled, mixing the word in
    /// first when they do not fit.
    #[inline(always)]
    fn push(&mut self, x: u64, n: u32) {
        if self.bits + n > 64 {
            self.mix();
        }
        // `bits` < 64 here: a full word was mixed in above.
        self.word |= x << self.bits;
        self.bits += n;
    }

    #[inline(always)]
    fn mix(&mut self) {
        self.h = folded_multiply(self.h ^ self.word, K);
        self.word = 0;
        self.bits = 0;
    }
}

impl Hasher for SeededHasher {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.push(u64::from_le_bytes(w), 8 * chunk.len() as u32);
        }
    }
    #[inline(always)]
    fn write_u8(&mut self, i: u8) {
        self.push(u64::from(i), 8);
    }
    #[inline(always)]
    fn write_u16(&mut self, i: u16) {
        self.push(u64::from(i), 16);
    }
    #[inline(always)]
    fn write_u32(&mut self, i: u32) {
        self.push(u64::from(i), 32);
    }
    #[inline(always)]
    fn write_u64(&mut self, i: u64) {
        self.push(i, 64);
    }
    #[inline(always)]
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    #[inline(always)]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    #[inline(always)]
    fn finish(&self) -> u64 {
        // The last word, and how many bits of it were written (a key that ends in zeros and a
        // shorter one differ), then a second multiply so that the high half, where the tables
        // take their tags, depends on every bit too.
        let h = folded_multiply(self.h ^ self.word, K ^ u64::from(self.bits));
        folded_multiply(h, K2)
    }
}

#[derive(Debug, Clone)]
struct Slot<K, V> {
    key: K,
    value: V,
}

/// A bucket's tags (32 bits of each key's hash, 0 for an empty slot) and last-use stamps, in one
/// cache line: a lookup reads this line and touches a slot only when its tag matches, and an
/// insertion picks its victim from the same line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Meta {
    tags: [u32; WAYS],
    stamps: [u32; WAYS],
}

/// A last-use stamp: the time in units of 2^16 ns (about 66 us), wrapping every 3.3 days.
/// Only its age relative to now matters (the least recently used entry is evicted first).
#[inline(always)]
fn stamp(now_ns: u64) -> u32 {
    (now_ns >> 16) as u32
}

/// The way of `meta`'s bucket a new key takes at stamp `now`: the first empty one, or else the
/// one idle longest. A bucket fills from its first way on and a slot is replaced, never emptied,
/// so a bucket whose last way is used is full, and the eviction a full bucket makes (every new
/// key once the table is at capacity) compares stamps alone.
#[inline(always)]
fn victim(meta: &Meta, now: u32) -> usize {
    if meta.tags[WAYS - 1] == 0 {
        return meta.tags.iter().position(|&t| t == 0).unwrap_or(WAYS - 1);
    }
    let mut pick = 0;
    let mut oldest = now.wrapping_sub(meta.stamps[0]);
    for w in 1..WAYS {
        let a = now.wrapping_sub(meta.stamps[w]);
        if a > oldest {
            (pick, oldest) = (w, a);
        }
    }
    pick
}

/// The bounded table.
///
/// Each bucket's tags and stamps live apart from its slots, in a cache line of their own
/// ([`Meta`]), so a lookup reads that line and then the one slot whose tag matches.
#[derive(Debug, Clone)]
pub struct Table<K, V> {
    slots: Box<[Slot<K, V>]>,
    meta: Box<[Meta]>,
    /// The slot of the last key looked up: consecutive packets of a flow (or a flood) ask for the
    /// same key, and then need neither the hash nor the bucket scan. Once the table holds an
    /// entry, it is a used slot (slots are replaced, never emptied).
    last: usize,
    /// When the last slot was last used: its stamp is written only when another slot becomes
    /// the last (before any eviction can read it), not at every use.
    last_ns: u64,
    mask: usize,
    hasher: SeededState,
    len: usize,
    evictions: u64,
}

impl<K: Copy + Eq + Hash + Default, V: Default> Table<K, V> {
    /// A table holding at most `capacity` entries (rounded up to a power of two, at least one
    /// bucket).
    pub fn new(capacity: usize, hasher: SeededState) -> Self {
        let slots_n = capacity.max(WAYS).next_power_of_two();
        let slots = (0..slots_n)
            .map(|_| Slot {
                key: K::default(),
                value: V::default(),
            })
            .collect();
        Table {
            slots,
            meta: vec![Meta::default(); slots_n / WAYS].into_boxed_slice(),
            last: 0,
            last_ns: 0,
            mask: slots_n / WAYS - 1,
            hasher,
            len: 0,
            evictions: 0,
        }
    }

    /// Bucket and tag of `key`.
    #[inline(always)]
    fn locate(&self, key: &K) -> (usize, u32) {
        let h = self.hasher.hash_one(key);
        (h as usize & self.mask, (h >> 32) as u32 | 1)
    }

    /// Is slot `i` in use?
    #[inline(always)]
    fn used(&self, i: usize) -> bool {
        self.meta[(i / WAYS) & self.mask].tags[i % WAYS] != 0
    }

    /// Marks slot `i` used at `now`.
    #[inline(always)]
    fn touch(&mut self, i: usize, now: u64) {
        if i == self.last {
            self.last_ns = now;
        } else {
            self.write_stamp(i, now);
        }
    }

    #[inline(always)]
    fn write_stamp(&mut self, i: usize, now: u64) {
        let mask = self.mask;
        self.meta[(i / WAYS) & mask].stamps[i % WAYS] = stamp(now);
    }

    /// Makes slot `i`, used at `now`, the last: the one before gets the stamp of its last use.
    #[inline(always)]
    fn make_last(&mut self, i: usize, now: u64) {
        self.write_stamp(self.last, self.last_ns);
        self.last = i;
        self.last_ns = now;
    }

    /// The last slot looked up, if it holds `key`.
    #[inline(always)]
    fn last_is(&self, key: &K) -> Option<usize> {
        let last = self.last;
        (self.len > 0 && self.slots[last].key == *key).then_some(last)
    }

    /// The slot of `key` in `bucket`, if present.
    #[inline(always)]
    fn find(&self, bucket: usize, tag: u32, key: &K) -> Option<usize> {
        let meta = &self.meta[bucket];
        (0..WAYS)
            .find(|&w| meta.tags[w] == tag && self.slots[bucket * WAYS + w].key == *key)
            .map(|w| bucket * WAYS + w)
    }

    /// The entry for `key`, created (with `V::default()`) if absent, evicting the bucket's
    /// least recently seen entry if the bucket is full. `now` is recorded as the entry's last
    /// use.
    #[inline]
    pub fn entry(&mut self, key: K, now: u64) -> &mut V {
        if let Some(last) = self.last_is(&key) {
            self.last_ns = now;
            return &mut self.slots[last].value;
        }
        // The last slot's stamp first: the insertion may pick a victim in its bucket.
        self.write_stamp(self.last, self.last_ns);
        let (bucket, tag) = self.locate(&key);
        let i = match self.find(bucket, tag, &key) {
            Some(i) => i,
            None => self.insert(bucket, tag, key, now),
        };
        self.last = i;
        self.last_ns = now;
        &mut self.slots[i].value
    }

    /// Adds `key`, known to be absent, at `now` (as [`Table::entry`] would), and makes it the
    /// last slot looked up. Out of line: for callers off the packet path, so that `entry`
    /// stays the packet path's own (a second caller changes how the compiler lays it out).
    #[inline(never)]
    pub fn insert_absent(&mut self, key: K, now: u64) {
        self.write_stamp(self.last, self.last_ns);
        let (bucket, tag) = self.locate(&key);
        let i = self.insert(bucket, tag, key, now);
        self.last = i;
        self.last_ns = now;
    }

    /// Puts `key` in `bucket`: in an empty slot, or else in place of the one idle longest.
    #[inline]
    fn insert(&mut self, bucket: usize, tag: u32, key: K, now: u64) -> usize {
        let meta = &mut self.meta[bucket];
        let pick = victim(meta, stamp(now));
        if meta.tags[pick] == 0 {
            self.len += 1;
        } else {
            self.evictions += 1;
        }
        meta.tags[pick] = tag;
        let i = bucket * WAYS + pick;
        self.slots[i] = Slot {
            key,
            value: V::default(),
        };
        i
    }

    /// The entry for `key`, if present (does not count as a use).
    pub fn get(&self, key: &K) -> Option<&V> {
        let (bucket, tag) = self.locate(key);
        self.find(bucket, tag, key).map(|i| &self.slots[i].value)
    }

    /// The entry for `key`, if present, for change (counts as a use at `now`).
    #[inline(always)]
    pub fn get_mut(&mut self, key: &K, now: u64) -> Option<&mut V> {
        let i = match self.last_is(key) {
            Some(last) => {
                self.last_ns = now;
                last
            }
            None => {
                let (bucket, tag) = self.locate(key);
                let i = self.find(bucket, tag, key)?;
                self.make_last(i, now);
                i
            }
        };
        Some(&mut self.slots[i].value)
    }

    /// The slot the last lookup or insertion found (for [`Table::slot_used`]).
    pub fn last_slot(&self) -> usize {
        self.last
    }

    /// The value in slot `index` if it still holds `key`, counted as a use at `now`: a lookup
    /// without hashing, for a caller that kept the slot of an entry it made.
    #[inline]
    pub fn slot_used(&mut self, index: usize, key: &K, now: u64) -> Option<&mut V> {
        let i = index & (self.slots.len() - 1);
        if !self.used(i) || self.slots[i].key != *key {
            return None;
        }
        self.touch(i, now);
        Some(&mut self.slots[i].value)
    }

    /// Slot `index` (modulo the capacity), if in use: its key and value. For sweeps that visit a
    /// few slots at a time.
    #[inline]
    pub fn slot_mut(&mut self, index: usize) -> Option<(&K, &mut V)> {
        let i = index & (self.slots.len() - 1);
        if !self.used(i) {
            return None;
        }
        let slot = &mut self.slots[i];
        Some((&slot.key, &mut slot.value))
    }

    /// How many slots a clock hand over this table visits in one tick: `per_tick`, or all of
    /// them when the clock has run out (`now_ns == u64::MAX`: the end of a capture, shutdown).
    pub fn tick_budget(&self, now_ns: u64, per_tick: usize) -> usize {
        if now_ns == u64::MAX {
            self.slots.len()
        } else {
            per_tick
        }
    }

    /// The slot after `index`, wrapping at the end (where a clock hand goes next).
    #[inline]
    pub fn next_slot(&self, index: usize) -> usize {
        index.wrapping_add(1) & (self.slots.len() - 1)
    }

    /// Visits every entry (for summaries at shutdown).
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for (i, s) in self.slots.iter().enumerate() {
            if self.used(i) {
                f(&s.key, &s.value);
            }
        }
    }

    /// Entries in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots allocated (the bound).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Entries evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Bytes held by the slots and their buckets' tags and stamps.
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot<K, V>>()
            + self.meta.len() * std::mem::size_of::<Meta>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_a_few_bits_apart_spread_over_the_buckets_as_random_ones_would() {
        // Half a table of keys that differ only in a port, an address's low bits or a byte:
        // with random placement, 8-way buckets at half load (4 keys a bucket on average, a
        // Poisson count) overflow for about 274 of 32,768 keys.
        fn evicted<K: Copy + Eq + Hash + Default>(seed: u64, keys: impl Iterator<Item = K>) -> u64 {
            let mut t: Table<K, u8> = Table::new(1 << 16, SeededState { seed });
            for k in keys {
                *t.entry(k, 1) = 1;
            }
            assert_eq!(t.len() as u64 + t.evictions(), 1 << 15);
            t.evictions()
        }
        let (a, b) = (0xc612_0001_u32, 0xc612_0002_u32);
        for seed in [0, 1, u64::MAX, SeededState::random().seed] {
            let ports = evicted(seed, (0..1u32 << 15).map(|p| (a, b, p as u16, 53u16, 17u8)));
            let sources = evicted(
                seed,
                (0..1u32 << 15).map(|i| (a + i, b, 1024u16, 53u16, 17u8)),
            );
            let wide = evicted(seed, (0..1u128 << 15).map(|i| ((0xffff << 32) | i, 3u8)));
            let both = evicted(seed, (0..1u32 << 15).map(|i| (i & 0xff, i >> 8)));
            for (what, n) in [
                ("ports", ports),
                ("sources", sources),
                ("wide", wide),
                ("both", both),
            ] {
                assert!(
                    n < 400,
                    "{what}: {n} of 32768 keys evicted at half load (seed {seed:#x})"
                );
            }
        }
    }

    #[test]
    fn finds_what_it_stored() {
        let mut t: Table<u32, u64> = Table::new(1024, SeededState::random());
        for k in 0..500u32 {
            *t.entry(k, 1) += u64::from(k);
        }
        let found = (0..500u32)
            .filter(|k| t.get(k) == Some(&u64::from(*k)))
            .count();
        // Some buckets overflow at half load; every key is present or was counted as evicted.
        assert_eq!(found as u64 + t.evictions(), 500);
        assert!(found > 450);
    }

    #[test]
    fn a_key_inserted_apart_is_found_as_an_entry_would_be() {
        let mut t: Table<u32, u64> = Table::new(64, SeededState::random());
        *t.entry(1, 1) = 10;
        assert!(t.get_mut(&2, 2).is_none());
        t.insert_absent(2, 2);
        *t.get_mut(&2, 2).unwrap() = 20;
        assert_eq!((t.get(&1), t.get(&2)), (Some(&10), Some(&20)));
        // Past capacity it evicts, and counts, as entry does.
        for k in 3..1_000u32 {
            t.insert_absent(k, u64::from(k));
        }
        assert_eq!(t.evictions(), 1_000 - 1 - t.len() as u64);
    }

    #[test]
    fn a_million_keys_stay_within_capacity() {
        let mut t: Table<u64, [u8; 32]> = Table::new(4096, SeededState::random());
        let before = t.memory_bytes();
        for k in 0..1_000_000u64 {
            t.entry(k, k + 1)[0] = 1;
        }
        assert_eq!(t.capacity(), 4096);
        assert!(t.len() <= 4096);
        assert_eq!(t.memory_bytes(), before);
        assert_eq!(t.evictions(), 1_000_000 - t.len() as u64);
    }

    #[test]
    fn evicts_the_least_recently_seen() {
        let mut t: Table<u32, u8> = Table::new(WAYS, SeededState::random());
        const MS: u64 = 1_000_000;
        for k in 0..WAYS as u32 {
            *t.entry(k, (10 + u64::from(k)) * MS) = 1;
        }
        // Touch key 0 so key 1 is now the oldest.
        t.entry(0, 100 * MS);
        t.entry(99, 101 * MS);
        assert!(t.get(&0).is_some());
        assert!(t.get(&1).is_none());
        assert_eq!(t.evictions(), 1);
    }

    #[test]
    fn the_key_used_last_and_often_is_not_taken_for_idle() {
        // A flood's window is the last key looked up packet after packet: its stamp is written
        // when another key is looked up, before that key can evict anything.
        let mut t: Table<u32, u8> = Table::new(WAYS, SeededState::random());
        const MS: u64 = 1_000_000;
        for k in 0..WAYS as u32 {
            *t.entry(k, (10 + u64::from(k)) * MS) = 1;
        }
        // Key 0, the oldest, is used at every millisecond from then on.
        for ms in 20..=100 {
            *t.entry(0, ms * MS) += 1;
        }
        assert_eq!(t.get_mut(&0, 101 * MS).copied(), Some(82));
        t.entry(99, 200 * MS);
        assert!(t.get(&0).is_some());
        assert!(t.get(&1).is_none(), "the key idle longest is evicted");
        assert_eq!(t.evictions(), 1);
    }
}
