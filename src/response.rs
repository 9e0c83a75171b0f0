//! Active response: the offender of an alert from a chosen detector is banned in nftables
//! (`inet scram`) for `ban_seconds`; a repeat offence restarts the ban. Runs on the alert
//! thread, never on the packet path; each ban is one netlink batch.
//!
//! Never banned: this host's own addresses (re-read over rtnetlink at most every 10 s) and the
//! allowlist. IPv6 offenders are banned by prefix (`ipv6_prefix`, /64 by default), since an
//! attacker owns the whole prefix and rotates through it for free.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::ResponseConfig;
use crate::detect::prefix::PrefixSet;
use crate::detect::{Action, Alert, Detector};
use crate::netlink::nftables::{Hooks, Nftables};
use crate::netlink::route::local_addresses;
use crate::netlink::NetlinkError;

/// How long the list of local addresses is trusted before it is read again.
const LOCAL_REFRESH: Duration = Duration::from_secs(10);

/// What the responder did, for the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResponseCounters {
    /// Bans added or refreshed.
    pub bans: u64,
    /// Offenders left alone because they are this host's addresses.
    pub spared_local: u64,
    /// Offenders left alone because they are allowlisted.
    pub spared_allowlisted: u64,
    /// Bans the kernel refused (logged).
    pub errors: u64,
}

/// Bans offenders.
#[derive(Debug)]
pub struct Responder {
    nft: Nftables,
    config: ResponseConfig,
    allowlist: PrefixSet,
    local: Vec<IpAddr>,
    local_read: Instant,
    counters: ResponseCounters,
}

impl Responder {
    /// Creates the table, sets and chains; `None` when `[response] action = "none"`.
    pub fn start(
        config: &ResponseConfig,
        allowlist: PrefixSet,
    ) -> Result<Option<Responder>, NetlinkError> {
        if !config.nftables {
            return Ok(None);
        }
        let mut nft = Nftables::open(config.ipv6_prefix)?;
        nft.install(Hooks {
            input: true,
            forward: config.forward,
        })?;
        Ok(Some(Responder {
            nft,
            config: config.clone(),
            allowlist,
            local: local_addresses()?,
            local_read: Instant::now(),
            counters: ResponseCounters::default(),
        }))
    }

    /// Bans the offender of `alert` if its detector is one that bans, and marks the alert
    /// `blocked` when the ban is in place.
    pub fn act(&mut self, alert: &mut Alert) {
        if !self.config.detectors.contains(&alert.detector) {
            return;
        }
        if self.local_read.elapsed() > LOCAL_REFRESH {
            if let Ok(l) = local_addresses() {
                self.local = l;
            }
            self.local_read = Instant::now();
        }
        let Some(offender) = self.offender(alert) else {
            self.counters.spared_local += 1;
            return;
        };
        if self.allowlist.contains(offender) {
            self.counters.spared_allowlisted += 1;
            return;
        }
        let ban = self.nft.ban_for(offender);
        match self.nft.ban(ban, self.config.ban_seconds * 1000) {
            Ok(()) => {
                self.counters.bans += 1;
                alert.action = Action::Blocked;
            }
            Err(e) => {
                self.counters.errors += 1;
                tracing::error!("banning {}: {e}", ban.addr);
            }
        }
    }

    /// The address to ban: the source, or for a blocklist hit the side that is not this host.
    /// `None` when that is one of this host's own addresses.
    fn offender(&self, alert: &Alert) -> Option<IpAddr> {
        let local = |a: &IpAddr| self.local.contains(a) || a.is_loopback() || a.is_unspecified();
        let candidate = match alert.detector {
            Detector::Blocklist => [alert.src, alert.dst]
                .into_iter()
                .flatten()
                .find(|a| !local(a)),
            _ => alert.src.filter(|a| !local(a)),
        }?;
        Some(candidate)
    }

    /// Applies reloaded settings: which detectors ban, for how long, the allowlist, and whether
    /// the table goes at exit. `action`, `ipv6_prefix` and `forward` shape the table itself and
    /// take effect at the next start ([`crate::config::RELOAD`] says so to the operator).
    pub fn update(&mut self, config: &ResponseConfig, allowlist: PrefixSet) {
        self.config.detectors = config.detectors.clone();
        self.config.ban_seconds = config.ban_seconds;
        self.config.remove_on_exit = config.remove_on_exit;
        self.allowlist = allowlist;
    }

    /// What it did so far.
    pub fn counters(&self) -> ResponseCounters {
        self.counters
    }

    /// At exit: removes the table when the config asks, otherwise leaves the bans to expire.
    pub fn finish(mut self) {
        let c = self.counters;
        tracing::info!(
            "active response: {} ban(s) placed or refreshed, {} offender(s) spared as local, {} as allowlisted, {} refused by the kernel",
            c.bans,
            c.spared_local,
            c.spared_allowlisted,
            c.errors
        );
        if self.config.remove_on_exit {
            match self.nft.remove() {
                Ok(()) => tracing::info!("removed nftables table inet scram and its bans"),
                Err(e) => tracing::error!("removing nftables table inet scram: {e}"),
            }
        } else if c.bans > 0 {
            tracing::info!("bans stay in nftables table inet scram until they expire");
        }
    }
}
