//! Suppression: the first alert of a (detector, source, target) goes out; repeats within the
//! window are counted and reported with the next one that goes out. A storm of packets never
//! becomes a storm of alerts, and neither does a storm of forged sources: once a target's alerts
//! of one detector came from [`STORM_SOURCES`] sources within the window, those from further
//! sources are held, and one record reports them (how many, from how many sources) when the
//! window ends.

use super::record::{Alert, Detail};
use super::table::{SeededState, Table};
use super::{addr_key, AddrKey, Detector};

/// Storm entries per shard: `capacity / STORM_SHARE`.
const STORM_SHARE: usize = 16;

/// Storm slots the clock hand visits per tick.
const TICK_BUDGET: usize = 16;

#[derive(Debug, Clone, Copy, Default)]
struct State {
    last_sent_ns: Option<u64>,
    held: u64,
}

/// Sources whose alerts about one target go out within a window before the rest are held, for
/// the detectors one forged packet can trigger (martian, tcp-flags, blocklist, rogue-ra).
pub const STORM_SOURCES: u32 = 3;

/// The same for detectors a source must work for (a scan is tens of attempts from each): real
/// scanners of one host each get their alert, up to this many.
pub const STORM_SOURCES_WORKED: u32 = 20;

/// How many sources' alerts about one target go out before a storm is held.
pub fn storm_allowance(d: Detector) -> u32 {
    match d {
        Detector::Martian | Detector::TcpFlags | Detector::Blocklist | Detector::RogueRa => {
            STORM_SOURCES
        }
        _ => STORM_SOURCES_WORKED,
    }
}

/// One target's alerts of one detector within the window: from how many sources they went out,
/// and what was held beyond.
#[derive(Debug, Clone, Copy, Default)]
struct Storm {
    start_ns: u64,
    last_ns: u64,
    sent: u32,
    held: u64,
    sources: u64,
    /// The first held alert (its interface, protocol and time), for the record.
    first: Option<Alert>,
}

/// What suppression tells alerts apart by: the detector, the source's key and the target's (0
/// where there is none).
pub type Key = (u8, AddrKey, AddrKey);

/// The suppression key of an alert of `detector` from `src` to `dst` (address keys).
pub fn key(detector: Detector, src: Option<AddrKey>, dst: Option<AddrKey>) -> Key {
    (detector as u8, src.unwrap_or(0), dst.unwrap_or(0))
}

/// The suppression key of `alert`.
pub fn key_of(alert: &Alert) -> Key {
    key(
        alert.detector,
        alert.src.map(addr_key),
        alert.dst.map(addr_key),
    )
}

/// The suppression table of one shard and its counters.
#[derive(Debug)]
pub struct Suppressor {
    table: Table<Key, State>,
    storms: Table<(u8, AddrKey), Storm>,
    /// Storms holding alerts (a hint for [`Suppressor::tick`]).
    storming: usize,
    hand: usize,
    pub(super) alerts: u64,
    pub(super) suppressed: u64,
}

impl Suppressor {
    /// A table of `capacity` alert keys.
    pub fn new(capacity: usize, hasher: SeededState) -> Self {
        Suppressor {
            table: Table::new(capacity, hasher),
            storms: Table::new(capacity / STORM_SHARE, hasher),
            storming: 0,
            hand: 0,
            alerts: 0,
            suppressed: 0,
        }
    }

    /// `Some(alert)` (with the repeats held back since the last one) when it goes out.
    pub fn pass(&mut self, mut alert: Alert, window_ms: u64) -> Option<Alert> {
        let key = key_of(&alert);
        if self.held(key, alert.ts_ns, window_ms) {
            return None;
        }
        let e = self.table.entry(key, alert.ts_ns);
        e.last_sent_ns = Some(alert.ts_ns);
        let held = std::mem::take(&mut e.held);
        if let (Some(_), Some(dst)) = (alert.src, alert.dst) {
            // A new source for this target: within the storm's allowance, or held.
            let storm = self
                .storms
                .entry((alert.detector as u8, addr_key(dst)), alert.ts_ns);
            if storm.start_ns == 0
                || alert.ts_ns.saturating_sub(storm.start_ns) >= window_ms * 1_000_000
            {
                if storm.held > 0 {
                    // The last window's record is still to go out (the tick reports it).
                } else {
                    *storm = Storm {
                        start_ns: alert.ts_ns,
                        ..Storm::default()
                    };
                }
            }
            if storm.sent >= storm_allowance(alert.detector) {
                if storm.held == 0 {
                    storm.first = Some(alert);
                    self.storming += 1;
                }
                storm.held += 1 + held;
                storm.sources += 1;
                storm.last_ns = alert.ts_ns;
                self.suppressed += 1;
                return None;
            }
            storm.sent += 1;
        }
        alert.suppressed = held;
        self.alerts += 1;
        Some(alert)
    }

    /// Holds back an alert of `key` at `ts_ns` if one went out within the window (true; it is
    /// counted with the repeats); false if it is to go through [`Suppressor::pass`]. Asked
    /// before an alert is built, it spares a storm of repeats the building.
    #[inline]
    pub fn held(&mut self, key: Key, ts_ns: u64, window_ms: u64) -> bool {
        let e = self.table.entry(key, ts_ns);
        match e.last_sent_ns {
            Some(last) if ts_ns.saturating_sub(last) < window_ms * 1_000_000 => {
                e.held += 1;
                self.suppressed += 1;
                true
            }
            _ => false,
        }
    }

    /// Reports the storms whose window is over at `now_ns` (every one at `u64::MAX`: the end of
    /// a capture, or shutdown) as one record each: the first alert held, with no source, the
    /// alerts held as `suppressed` and their sources in a [`Detail::Storm`].
    pub fn tick(&mut self, now_ns: u64, window_ms: u64, emit: &mut dyn FnMut(Alert)) {
        if self.storming == 0 {
            return;
        }
        for _ in 0..self.storms.tick_budget(now_ns, TICK_BUDGET) {
            self.hand = self.storms.next_slot(self.hand);
            let Some((_, storm)) = self.storms.slot_mut(self.hand) else {
                continue;
            };
            if storm.held == 0
                || (now_ns != u64::MAX
                    && now_ns.saturating_sub(storm.start_ns) < window_ms * 1_000_000)
            {
                continue;
            }
            let Some(first) = storm.first else { continue };
            let record = Alert {
                ts_ns: if now_ns == u64::MAX {
                    storm.last_ns
                } else {
                    now_ns
                },
                src: None,
                sport: None,
                suppressed: storm.held,
                count: storm.held,
                window_ms: storm.last_ns.saturating_sub(storm.start_ns) / 1_000_000,
                detail: Detail::Storm {
                    sources: storm.sources,
                },
                ..first
            };
            *storm = Storm::default();
            self.storming = self.storming.saturating_sub(1);
            self.alerts += 1;
            emit(record);
        }
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
        self.table.evictions() + self.storms.evictions()
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes() + self.storms.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::decode::Addr;
    use crate::detect::Out;

    fn alert(detector: Detector, src: u32, ts_ns: u64) -> Alert {
        Alert {
            ts_ns,
            detector,
            src: Some(IpAddr::V4(Ipv4Addr::from(src))),
            dst: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2))),
            ..Alert::default()
        }
    }

    #[test]
    fn a_storm_of_forged_sources_is_three_alerts_and_one_record() {
        let mut s = Suppressor::new(4096, SeededState::random());
        let sent = (0..1000u32)
            .filter_map(|i| {
                s.pass(
                    alert(Detector::Martian, 0xe000_0000 + i, 1 + u64::from(i)),
                    60_000,
                )
            })
            .count();
        assert_eq!(sent, 3);
        let mut records = Vec::new();
        s.tick(u64::MAX, 60_000, &mut |a| records.push(a));
        assert_eq!(records.len(), 1, "{records:?}");
        let r = records[0];
        assert_eq!((r.src, r.suppressed), (None, 997));
        assert_eq!(r.detail, Detail::Storm { sources: 997 });
        // Nothing is left to report.
        s.tick(u64::MAX, 60_000, &mut |a| records.push(a));
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn an_alert_asked_about_before_it_is_built_is_suppressed_as_one_sent() {
        // The same alerts through `Out::send` and through `Out::send_with`: the same alerts and
        // records go out with the same counts, and `send_with` builds only those that are no
        // repeat.
        let alerts: Vec<Alert> = (0..600u64)
            .map(|i| {
                let detector = if i % 3 == 0 {
                    Detector::TcpFlags
                } else {
                    Detector::Martian
                };
                alert(detector, 0xe000_0000 + (i % 5) as u32, 1 + i * 500_000_000)
            })
            .collect();
        let run = |lazy: bool| {
            let mut s = Suppressor::new(4096, SeededState::random());
            let mut out_alerts = Vec::new();
            let mut built = 0;
            {
                let mut emit = |a| out_alerts.push(a);
                let mut out = Out {
                    suppressor: &mut s,
                    suppress_ms: 60_000,
                    emit: &mut emit,
                };
                for a in &alerts {
                    if lazy {
                        let pair = (a.src.map(Addr::from), a.dst.map(Addr::from));
                        out.send_with(a.detector, pair, a.ts_ns, || {
                            built += 1;
                            *a
                        });
                    } else {
                        out.send(*a);
                    }
                }
            }
            s.tick(u64::MAX, 60_000, &mut |a| out_alerts.push(a));
            // The closing records come in table order, which the random seed decides.
            out_alerts.sort_by_key(|a| (a.ts_ns, a.detector as u8));
            (out_alerts, s.alerts, s.suppressed, built)
        };
        let (sent, lazy) = (run(false), run(true));
        assert_eq!((&sent.0, sent.1, sent.2), (&lazy.0, lazy.1, lazy.2));
        assert!(sent.2 > 500, "{} suppressed", sent.2);
        // Built: what went out, and what a storm held (passed the repeat test, held as a
        // source beyond the allowance).
        assert!(lazy.3 < 100, "{} built", lazy.3);
    }

    #[test]
    fn scanners_of_one_host_each_get_their_alert_and_a_storm_ends_with_its_window() {
        let mut s = Suppressor::new(4096, SeededState::random());
        let sent = (0..10u32)
            .filter_map(|i| {
                s.pass(
                    alert(Detector::Portscan, 0x0a00_0000 + i, 1 + u64::from(i)),
                    60_000,
                )
            })
            .count();
        assert_eq!(sent, 10);
        // A martian storm's record goes out once its window is over, found by the clock hand.
        for i in 0..10u32 {
            let _ = s.pass(
                alert(Detector::Martian, 0xe000_0000 + i, 1 + u64::from(i)),
                60_000,
            );
        }
        let mut records = Vec::new();
        s.tick(30_000_000_000, 60_000, &mut |a| records.push(a));
        assert!(records.is_empty());
        for _ in 0..1024 {
            s.tick(61_000_000_000, 60_000, &mut |a| records.push(a));
        }
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].detail, Detail::Storm { sources: 7 });
    }
}
