//! Sets of CIDR prefixes (allowlist, blocklists) with an O(log n), allocation-free lookup:
//! prefixes are turned into sorted, merged address ranges per family and searched by bisection.

use std::net::IpAddr;

use crate::decode::Addr;

/// A set of IPv4 and IPv6 prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// Parses `a.b.c.d/len`, `x::/len`, or a bare address (a host prefix).
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an IP address or CIDR prefix"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|&l| l <= max)
            .ok_or_else(|| format!("{text:?}: prefix length must be 0..={max}"))?,
    };
    Ok((addr, len))
}

impl PrefixSet {
    /// Builds a set from prefixes.
    pub fn new(prefixes: impl IntoIterator<Item = (IpAddr, u8)>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (addr, len) in prefixes {
            match addr {
                IpAddr::V4(a) => {
                    let a = u32::from(a);
                    let host = if len >= 32 { 0 } else { u32::MAX >> len };
                    v4.push((a & !host, a | host));
                }
                IpAddr::V6(a) => {
                    let a = u128::from(a);
                    let host = if len >= 128 { 0 } else { u128::MAX >> len };
                    v6.push((a & !host, a | host));
                }
            }
        }
        PrefixSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// The set as the fewest CIDR prefixes that cover exactly its addresses (what
    /// `check-config` prints): overlapping and adjacent prefixes come out merged.
    pub fn cidrs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for &(lo, hi) in &self.v4 {
            cover(u128::from(lo), u128::from(hi), 32, &mut |a, len| {
                out.push(format!("{}/{len}", std::net::Ipv4Addr::from(a as u32)))
            });
        }
        for &(lo, hi) in &self.v6 {
            cover(lo, hi, 128, &mut |a, len| {
                out.push(format!("{}/{len}", std::net::Ipv6Addr::from(a)))
            });
        }
        out
    }

    /// Parses a blocklist file: one prefix a line, `#` starts a comment. Errors name the line
    /// and column.
    pub fn parse_file(text: &str) -> Result<Self, (usize, usize, String)> {
        let mut prefixes = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or("");
            let trimmed = content.trim();
            if trimmed.is_empty() {
                continue;
            }
            let column = content.len() - content.trim_start().len() + 1;
            prefixes.push(parse_cidr(trimmed).map_err(|e| (n + 1, column, e))?);
        }
        Ok(PrefixSet::new(prefixes))
    }

    /// Adds every prefix of `other`.
    pub fn extend(&mut self, other: &PrefixSet) {
        self.v4.extend_from_slice(&other.v4);
        self.v6.extend_from_slice(&other.v6);
        self.v4 = merge(std::mem::take(&mut self.v4));
        self.v6 = merge(std::mem::take(&mut self.v6));
    }

    /// True when `addr` is in one of the prefixes.
    #[inline]
    pub fn contains(&self, addr: impl Into<Addr>) -> bool {
        let addr = addr.into();
        match addr.to_ipv4() {
            Some(a) => find(&self.v4, u32::from(a)),
            None => find(&self.v6, addr.key()),
        }
    }

    /// True when the set has no prefix.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Number of merged ranges.
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

fn merge<T: Ord + Copy + num_like::Succ>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.succ() => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn find<T: Ord + Copy>(ranges: &[(T, T)], a: T) -> bool {
    let i = ranges.partition_point(|r| r.1 < a);
    ranges.get(i).is_some_and(|r| r.0 <= a)
}

mod num_like {
    pub trait Succ {
        fn succ(self) -> Self;
    }
    impl Succ for u32 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
}

/// Calls `f(start, len)` for the largest aligned blocks that tile `lo..=hi` in a `bits`-wide
/// address space.
fn cover(mut lo: u128, hi: u128, bits: u32, f: &mut impl FnMut(u128, u32)) {
    let mask = |size: u32| {
        if size >= 128 {
            u128::MAX
        } else {
            (1u128 << size) - 1
        }
    };
    loop {
        // The largest block aligned at `lo` that does not pass `hi`.
        let mut size = lo.trailing_zeros().min(bits);
        while mask(size) > hi - lo {
            size -= 1;
        }
        f(lo, bits - size);
        let last = lo + mask(size);
        if last >= hi {
            return;
        }
        lo = last + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_print_the_effective_set() {
        let set = PrefixSet::parse_file(
            "10.0.0.0/8\n10.1.0.0/16\n192.0.2.0/25\n192.0.2.128/25\n198.51.100.7\n2001:db8::/32\n::/0\n",
        )
        .unwrap();
        assert_eq!(
            set.cidrs(),
            ["10.0.0.0/8", "192.0.2.0/24", "198.51.100.7/32", "::/0"]
        );
        let odd = PrefixSet::new([(ip("192.0.2.1"), 32), (ip("192.0.2.2"), 31)]);
        assert_eq!(odd.cidrs(), ["192.0.2.1/32", "192.0.2.2/31"]);
        assert_eq!(PrefixSet::new([(ip("0.0.0.0"), 0)]).cidrs(), ["0.0.0.0/0"]);
        assert!(PrefixSet::default().cidrs().is_empty());
    }

    #[test]
    fn lookups() {
        let set = PrefixSet::parse_file(
            "# blocklist\n192.0.2.0/24\n  198.51.100.7 # one host\n2001:db8::/32\n10.0.0.0/8\n10.1.0.0/16\n0.0.0.0/0\n",
        )
        .unwrap();
        assert!(set.contains(ip("192.0.2.255")));
        assert!(set.contains(ip("8.8.8.8")), "0.0.0.0/0 covers all of IPv4");
        assert!(set.contains(ip("2001:db8:ffff::1")));
        assert!(!set.contains(ip("2001:db9::1")));
        assert_eq!(set.v4.len(), 1, "everything merged into 0.0.0.0/0");
        let small = PrefixSet::new([
            parse_cidr("192.0.2.0/25").unwrap(),
            parse_cidr("192.0.2.128/25").unwrap(),
        ]);
        assert_eq!(small.ranges(), 1, "adjacent prefixes merge");
        assert!(!small.contains(ip("192.0.3.0")));
        assert!(!small.contains(ip("192.0.1.255")));
    }

    #[test]
    fn bad_lines_name_their_position() {
        assert_eq!(
            PrefixSet::parse_file("192.0.2.0/24\n\n   300.1.1.1\n").unwrap_err(),
            (
                3,
                4,
                "\"300.1.1.1\" is not an IP address or CIDR prefix".into()
            )
        );
        assert!(PrefixSet::parse_file("10.0.0.0/33")
            .unwrap_err()
            .2
            .contains("0..=32"));
        assert!(PrefixSet::parse_file("::/129").is_err());
    }
}
