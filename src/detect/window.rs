//! The counting window scans and sweeps share: distinct items (ports, hosts) seen from one key
//! within a window, firing once when they reach a threshold.

use toml::Spanned;

use super::family::SpanError;
use crate::config::in_range;

/// Most distinct ports or hosts a window tracks (the highest usable threshold).
pub const MAX_DISTINCT: usize = 64;

/// Settings of a counting detector (distinct ports or hosts in a window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountSettings {
    /// On or off.
    pub enabled: bool,
    /// Distinct items at which it fires (at most [`MAX_DISTINCT`]).
    pub threshold: usize,
    /// Window length in ms.
    pub window_ms: u64,
}

impl CountSettings {
    /// On, firing at `threshold` items within a minute.
    pub const fn per_minute(threshold: usize) -> Self {
        CountSettings {
            enabled: true,
            threshold,
            window_ms: 60_000,
        }
    }

    /// Applies `[detect.NAME]` with its threshold under `key` (`ports`, `hosts`).
    pub fn configure(
        &mut self,
        table: &str,
        key: &str,
        raw: Option<RawCount>,
    ) -> Result<(), SpanError> {
        let Some(raw) = raw else { return Ok(()) };
        if let Some(e) = raw.enabled {
            self.enabled = e;
        }
        if let Some(v) = raw.threshold {
            self.threshold = in_range(&v, 2, MAX_DISTINCT as i64, &format!("{table}.{key}"))
                .map_err(|m| (v.span(), m))? as usize;
        }
        if let Some(v) = raw.window_seconds {
            self.window_ms = in_range(&v, 1, 86_400, &format!("{table}.window_seconds"))
                .map_err(|m| (v.span(), m))? as u64
                * 1000;
        }
        Ok(())
    }

    /// `[detect.NAME]` as TOML.
    pub fn toml(&self, name: &str, key: &str) -> String {
        format!(
            "\n[detect.{name}]\nenabled = {}\n{key} = {}\nwindow_seconds = {}\n",
            self.enabled,
            self.threshold,
            self.window_ms / 1000
        )
    }
}

/// A counting detector's table as read: `enabled`, its threshold, `window_seconds`.
#[derive(Debug, Default)]
pub struct RawCount {
    /// `enabled`.
    pub enabled: Option<bool>,
    /// `ports` or `hosts`.
    pub threshold: Option<Spanned<i64>>,
    /// `window_seconds`.
    pub window_seconds: Option<Spanned<i64>>,
}

/// A small exact set of distinct values (ports, address hashes) for one window.
#[derive(Debug, Clone, Copy)]
struct Distinct<T: Copy + Default + PartialEq> {
    items: [T; MAX_DISTINCT],
    len: u8,
}

impl<T: Copy + Default + PartialEq> Default for Distinct<T> {
    fn default() -> Self {
        Distinct {
            items: [T::default(); MAX_DISTINCT],
            len: 0,
        }
    }
}

/// One key's window: the items it holds all lie within its length of each other, in whatever
/// order they come (an unanswered attempt found by the flow table's clock hand can be reported
/// before older ones found at the end of a capture file).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountWindow<T: Copy + Default + PartialEq> {
    /// The earliest item's time.
    start_ns: u64,
    /// The latest item's time.
    end_ns: u64,
    seen: Distinct<T>,
    /// Items counted, repeats included.
    attempts: u32,
    fired: bool,
}

/// A window that just reached its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossed {
    /// Distinct items counted.
    pub count: u64,
    /// Since the window opened, in ms.
    pub window_ms: u64,
}

impl<T: Copy + Default + PartialEq> CountWindow<T> {
    /// Counts `item` at `ts_ns` (a new window when the old one is over); `Some` once, when the
    /// distinct items reach the threshold.
    #[inline(always)]
    pub fn count(&mut self, item: T, ts_ns: u64, s: &CountSettings) -> Option<Crossed> {
        let (start, end) = (self.start_ns.min(ts_ns), self.end_ns.max(ts_ns));
        if self.start_ns == 0 || end - start > s.window_ms * 1_000_000 {
            *self = CountWindow {
                start_ns: ts_ns,
                end_ns: ts_ns,
                ..Default::default()
            };
        } else {
            (self.start_ns, self.end_ns) = (start, end);
        }
        self.attempts = self.attempts.saturating_add(1);
        let seen = &mut self.seen;
        let n = usize::from(seen.len);
        if n < MAX_DISTINCT && !seen.items[..n].contains(&item) {
            seen.items[n] = item;
            seen.len += 1;
        }
        if self.fired || usize::from(seen.len) < s.threshold {
            return None;
        }
        self.fired = true;
        Some(Crossed {
            count: u64::from(seen.len),
            window_ms: (self.end_ns - self.start_ns) / 1_000_000,
        })
    }
}

impl<T: Copy + Default + PartialEq> CountWindow<T> {
    /// Has this window reached its threshold?
    pub fn fired(&self) -> bool {
        self.fired
    }

    /// When it opened, ns.
    pub fn start_ns(&self) -> u64 {
        self.start_ns
    }

    /// Items counted in it, repeats included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The distinct items it holds (the first [`MAX_DISTINCT`]).
    pub fn items(&self) -> &[T] {
        &self.seen.items[..usize::from(self.seen.len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn items_out_of_order_never_stretch_a_window_beyond_its_length() {
        let s = CountSettings {
            enabled: true,
            threshold: 20,
            window_ms: 60_000,
        };
        // 30 ports 4 s apart (a slow scan): at most 16 in any 60 s. One is counted first,
        // out of its turn (found early), the rest in order after it.
        let mut w = CountWindow::default();
        let mut order: Vec<u64> = (0..30).collect();
        order.swap(0, 10);
        for i in order {
            assert_eq!(w.count(i as u16, S + i * 4 * S, &s), None, "port {i}");
        }
        // In order and fast, the 20th fires, once, with the window's real span.
        let mut w = CountWindow::default();
        let fired: Vec<_> = (0..25u64)
            .filter_map(|i| w.count(i as u16, S + i * S / 10, &s))
            .collect();
        assert_eq!(
            fired,
            vec![Crossed {
                count: 20,
                window_ms: 1_900
            }]
        );
    }
}
