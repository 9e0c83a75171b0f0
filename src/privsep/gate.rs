//! The privileged part's judgement of a ban request from the parser. The parser may be taken
//! over, so a request is what an attacker would send to turn the host's own firewall against it:
//! ban the host itself, its gateway (allowlisted), everybody (link-local /64s, multicast), or
//! flood the kernel with bans. Each of those is refused and counted; only the rest reach nftables.

use std::net::IpAddr;
use std::time::Instant;

use super::wire::Outcome;
use crate::detect::prefix::PrefixSet;

/// Bans the parser may request at once.
pub const BURST: u32 = 200;

/// Bans a second it may request over time (a portscan storm raises one alert per scanner and
/// target, suppressed for a minute: far below this).
pub const PER_SECOND: u32 = 50;

/// How each request ended, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GateCounters {
    /// Passed on to nftables.
    pub passed: u64,
    /// Refused: local, loopback, unspecified, multicast, broadcast, link-local.
    pub local: u64,
    /// Refused: allowlisted.
    pub allowlisted: u64,
    /// Refused: over the rate.
    pub too_fast: u64,
    /// Refused: duration 0 or over the longest ban.
    pub bad_duration: u64,
}

/// Judges ban requests.
#[derive(Debug)]
pub struct BanGate {
    local: Vec<IpAddr>,
    allowlist: PrefixSet,
    max_seconds: u32,
    tokens: u32,
    refilled: Instant,
    counters: GateCounters,
}

impl BanGate {
    /// A gate for this host's `local` addresses and the `allowlist`; bans last at most
    /// `max_seconds` (the configured `ban_seconds`).
    pub fn new(local: Vec<IpAddr>, allowlist: PrefixSet, max_seconds: u32, now: Instant) -> Self {
        BanGate {
            local,
            allowlist,
            max_seconds,
            tokens: BURST,
            refilled: now,
            counters: GateCounters::default(),
        }
    }

    /// This host's addresses changed.
    pub fn set_local(&mut self, local: Vec<IpAddr>) {
        self.local = local;
    }

    /// Reloaded settings.
    pub fn update(&mut self, allowlist: PrefixSet, max_seconds: u32) {
        self.allowlist = allowlist;
        self.max_seconds = max_seconds;
    }

    /// `None` when the ban of `addr` for `seconds` may go to nftables, else why not.
    pub fn judge(&mut self, addr: IpAddr, seconds: u32, now: Instant) -> Option<Outcome> {
        if never_banned(addr) || self.local.contains(&addr) {
            self.counters.local += 1;
            Some(Outcome::Local)
        } else if self.allowlist.contains(addr) {
            self.counters.allowlisted += 1;
            Some(Outcome::Allowlisted)
        } else if seconds == 0 || seconds > self.max_seconds {
            self.counters.bad_duration += 1;
            Some(Outcome::BadDuration)
        } else if !self.take_token(now) {
            self.counters.too_fast += 1;
            Some(Outcome::TooFast)
        } else {
            self.counters.passed += 1;
            None
        }
    }

    fn take_token(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned = (elapsed.as_millis() * u128::from(PER_SECOND) / 1000) as u64;
        if earned > 0 {
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(BURST)) as u32;
            self.refilled = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// What it judged so far.
    pub fn counters(&self) -> GateCounters {
        self.counters
    }
}

/// Addresses no ban may name whatever the host's own are: banning them would cut the host off
/// from itself or its link (an IPv6 ban covers a /64: fe80::/64 is every link-local neighbour;
/// an IPv4 link-local address is one host, and may be banned).
fn never_banned(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast()
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (first & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped().is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gate(now: Instant) -> BanGate {
        BanGate::new(
            vec!["198.51.100.2".parse().expect("literal")],
            PrefixSet::new([("192.0.2.0".parse().expect("literal"), 24)]),
            600,
            now,
        )
    }

    #[test]
    fn what_a_taken_over_parser_would_ban_is_refused_and_counted() {
        let now = Instant::now();
        let mut g = gate(now);
        for a in [
            "198.51.100.2",
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "ff02::1",
            "fe80::1",
            "::ffff:198.51.100.9",
        ] {
            assert_eq!(
                g.judge(a.parse().expect("literal"), 60, now),
                Some(Outcome::Local),
                "{a}"
            );
        }
        assert_eq!(
            g.judge("192.0.2.77".parse().expect("literal"), 60, now),
            Some(Outcome::Allowlisted)
        );
        assert_eq!(
            g.judge("169.254.1.1".parse().expect("literal"), 60, now),
            None
        );
        let scanner: IpAddr = "198.51.100.9".parse().expect("literal");
        assert_eq!(g.judge(scanner, 0, now), Some(Outcome::BadDuration));
        assert_eq!(g.judge(scanner, 601, now), Some(Outcome::BadDuration));
        assert_eq!(g.judge(scanner, 600, now), None);
        assert_eq!(
            g.counters(),
            GateCounters {
                passed: 2,
                local: 10,
                allowlisted: 1,
                too_fast: 0,
                bad_duration: 2,
            }
        );
    }

    #[test]
    fn too_many_too_fast_is_refused_then_allowed_again_at_the_rate() {
        let now = Instant::now();
        let mut g = gate(now);
        let scanner: IpAddr = "198.51.100.9".parse().expect("literal");
        for _ in 0..BURST {
            assert_eq!(g.judge(scanner, 60, now), None);
        }
        assert_eq!(g.judge(scanner, 60, now), Some(Outcome::TooFast));
        // A tenth of a second earns PER_SECOND / 10 more.
        let later = now + Duration::from_millis(100);
        for _ in 0..PER_SECOND / 10 {
            assert_eq!(g.judge(scanner, 60, later), None);
        }
        assert_eq!(g.judge(scanner, 60, later), Some(Outcome::TooFast));
        assert_eq!(g.counters().too_fast, 2);
    }
}
