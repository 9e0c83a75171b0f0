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

/// A 64-bit multiply-xor hasher with a random seed (fast on the small keys detectors use).
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
    fn build_hasher(&self) -> SeededHasher {
        SeededHasher { h: self.seed }
    }
}

/// See [`SeededState`].
#[derive(Debug, Clone, Copy)]
pub struct SeededHasher {
    h: u64,
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for SeededHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.h = (self.h ^ i).wrapping_mul(K).rotate_left(29);
    }
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        // murmur3's fmix64: every input bit affects every output bit.
        let mut h = self.h;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[derive(Debug, Clone)]
struct Slot<K, V> {
    key: K,
    value: V,
}

/// The bounded table.
///
/// Each bucket's tags (32 bits of the key's hash, 0 for an empty slot) and last-use stamps live
/// apart from the slots, so a lookup reads one or two cache lines of tags and touches a slot only
/// when its tag matches; the stamps are read only to pick a victim on a miss.
#[derive(Debug, Clone)]
pub struct Table<K, V> {
    slots: Box<[Slot<K, V>]>,
    tags: Box<[u32]>,
    stamps: Box<[u64]>,
    /// The slot of the last key looked up: consecutive packets of a flow (or a flood) ask for the
    /// same key, and then need neither the hash nor the bucket scan.
    last: usize,
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
            tags: vec![0; slots_n].into_boxed_slice(),
            stamps: vec![0; slots_n].into_boxed_slice(),
            last: 0,
            mask: slots_n / WAYS - 1,
            hasher,
            len: 0,
            evictions: 0,
        }
    }

    /// Bucket start and tag of `key`.
    #[inline]
    fn locate(&self, key: K) -> (usize, u32) {
        let h = self.hasher.hash_one(key);
        ((h as usize & self.mask) * WAYS, (h >> 32) as u32 | 1)
    }

    /// The entry for `key`, created (with `V::default()`) if absent, evicting the bucket's
    /// least recently seen entry if the bucket is full. `now` must be non-zero and is recorded
    /// as the entry's last use.
    #[inline]
    pub fn entry(&mut self, key: K, now: u64) -> &mut V {
        let now = now.max(1);
        let last = self.last;
        if self.stamps[last] != 0 && self.slots[last].key == key {
            self.stamps[last] = now;
            return &mut self.slots[last].value;
        }
        let (bucket, tag) = self.locate(key);
        let tags = &mut self.tags[bucket..bucket + WAYS];
        let slots = &mut self.slots[bucket..bucket + WAYS];
        let stamps = &mut self.stamps[bucket..bucket + WAYS];
        let found = (0..WAYS).find(|&i| tags[i] == tag && slots[i].key == key);
        let i = match found {
            Some(i) => i,
            None => {
                // An empty slot (stamp 0) or else the one idle longest.
                let mut pick = 0;
                for i in 1..WAYS {
                    if stamps[i] < stamps[pick] {
                        pick = i;
                    }
                }
                if stamps[pick] == 0 {
                    self.len += 1;
                } else {
                    self.evictions += 1;
                }
                tags[pick] = tag;
                slots[pick] = Slot {
                    key,
                    value: V::default(),
                };
                pick
            }
        };
        stamps[i] = now;
        self.last = bucket + i;
        &mut slots[i].value
    }

    /// The entry for `key`, if present (does not count as a use).
    pub fn get(&self, key: &K) -> Option<&V> {
        let (bucket, tag) = self.locate(*key);
        (bucket..bucket + WAYS)
            .find(|&i| self.tags[i] == tag && self.slots[i].key == *key)
            .map(|i| &self.slots[i].value)
    }

    /// The entry for `key`, if present, for change (counts as a use at `now`).
    #[inline(always)]
    pub fn get_mut(&mut self, key: &K, now: u64) -> Option<&mut V> {
        let last = self.last;
        if self.stamps[last] != 0 && self.slots[last].key == *key {
            self.stamps[last] = now.max(1);
            return Some(&mut self.slots[last].value);
        }
        let (bucket, tag) = self.locate(*key);
        let i =
            (bucket..bucket + WAYS).find(|&i| self.tags[i] == tag && self.slots[i].key == *key)?;
        self.stamps[i] = now.max(1);
        self.last = i;
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
        if self.stamps[i] == 0 || self.slots[i].key != *key {
            return None;
        }
        self.stamps[i] = now.max(1);
        Some(&mut self.slots[i].value)
    }

    /// Slot `index` (modulo the capacity), if in use: its key and value. For sweeps that visit a
    /// few slots at a time.
    #[inline]
    pub fn slot_mut(&mut self, index: usize) -> Option<(&K, &mut V)> {
        let i = index & (self.slots.len() - 1);
        if self.stamps[i] == 0 {
            return None;
        }
        let slot = &mut self.slots[i];
        Some((&slot.key, &mut slot.value))
    }

    /// Visits every entry (for summaries at shutdown).
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for (s, _) in self
            .slots
            .iter()
            .zip(self.tags.iter())
            .filter(|(_, &t)| t != 0)
        {
            f(&s.key, &s.value);
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

    /// Bytes held by the slots.
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * (std::mem::size_of::<Slot<K, V>>() + 4 + 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for k in 0..WAYS as u32 {
            *t.entry(k, 10 + u64::from(k)) = 1;
        }
        // Touch key 0 so key 1 is now the oldest.
        t.entry(0, 100);
        t.entry(99, 101);
        assert!(t.get(&0).is_some());
        assert!(t.get(&1).is_none());
        assert_eq!(t.evictions(), 1);
    }
}
