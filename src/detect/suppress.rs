//! Suppression: the first alert of a (detector, source, target) goes out; repeats within the
//! window are counted and reported with the next one that goes out. A storm of packets never
//! becomes a storm of alerts.

use super::record::Alert;
use super::table::{SeededState, Table};
use super::{addr_key, AddrKey, Detector};

#[derive(Debug, Clone, Copy, Default)]
struct State {
    last_sent_ns: Option<u64>,
    held: u64,
}

/// The suppression table of one shard and its counters.
#[derive(Debug)]
pub struct Suppressor {
    table: Table<(u8, AddrKey, AddrKey), State>,
    pub(super) alerts: u64,
    pub(super) suppressed: u64,
}

impl Suppressor {
    /// A table of `capacity` alert keys.
    pub fn new(capacity: usize, hasher: SeededState) -> Self {
        Suppressor {
            table: Table::new(capacity, hasher),
            alerts: 0,
            suppressed: 0,
        }
    }

    /// `Some(alert)` (with the repeats held back since the last one) when it goes out.
    pub fn pass(&mut self, mut alert: Alert, window_ms: u64) -> Option<Alert> {
        let key = (
            alert.detector as u8,
            alert.src.map(addr_key).unwrap_or(0),
            alert.dst.map(addr_key).unwrap_or(0),
        );
        let e = self.table.entry(key, alert.ts_ns);
        if let Some(last) = e.last_sent_ns {
            if alert.ts_ns.saturating_sub(last) < window_ms * 1_000_000 {
                e.held += 1;
                self.suppressed += 1;
                return None;
            }
        }
        alert.suppressed = e.held;
        e.held = 0;
        e.last_sent_ns = Some(alert.ts_ns);
        self.alerts += 1;
        Some(alert)
    }

    /// Calls `f(detector, src, dst, held)` for every key with repeats held back and not yet
    /// reported.
    pub fn held_back(&self, mut f: impl FnMut(Detector, AddrKey, AddrKey, u64)) {
        self.table.for_each(|&(d, src, dst), v| {
            if v.held > 0 {
                f(Detector::ALL[usize::from(d)], src, dst, v.held);
            }
        });
    }

    /// Entries evicted.
    pub fn evictions(&self) -> u64 {
        self.table.evictions()
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }
}
