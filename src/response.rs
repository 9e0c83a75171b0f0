//! Active response: the offender of an alert from a chosen detector is banned in nftables
//! (`inet scram`) for `ban_seconds`; a repeat offence restarts the ban. Runs on the alert
//! thread, never on the packet path; each ban is one netlink batch.
//!
//! Never banned (the [`BanGate`] decides, as the privileged part will for a separate parser):
//! this host's own addresses (re-read over rtnetlink at most every 10 s), loopback, IPv6 link-local,
//! multicast and broadcast addresses, and the allowlist; and no more than the gate's rate
//! (counted when refused). IPv6 offenders are banned by prefix (`ipv6_prefix`, /64 by default), since an
//! attacker owns the whole prefix and rotates through it for free.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Deserialize;
use toml::Spanned;

use crate::config::in_range;
use crate::detect::prefix::PrefixSet;
use crate::detect::SpanError;
use crate::detect::{Action, Alert, Detector};
use crate::netlink::nftables::{Hooks, Nftables};
use crate::netlink::route::local_addresses;
use crate::netlink::NetlinkError;
use crate::privsep::channel::{ChannelError, ParserEnd, PrivilegedEnd};
use crate::privsep::gate::BanGate;
use crate::privsep::wire::{Outcome, ToParser, ToPrivileged};

/// How long the list of local addresses is trusted before it is read again.
const LOCAL_REFRESH: Duration = Duration::from_secs(10);

/// What the responder did, for the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResponseCounters {
    /// Bans added or refreshed.
    pub bans: u64,
    /// Offenders left alone because a decoy scan named them (their address may be forged).
    pub spared_decoy: u64,
    /// Offenders left alone because they are this host's addresses.
    pub spared_local: u64,
    /// Offenders left alone because they are allowlisted.
    pub spared_allowlisted: u64,
    /// Bans refused because more came at once than the gate's rate allows.
    pub refused_rate: u64,
    /// Bans that failed: refused by the kernel, or unanswered by the privileged part (logged).
    pub errors: u64,
}

/// `[response]`: what the daemon does about an offender besides alerting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseConfig {
    /// `action = "nftables"`: ban offenders in the `inet scram` table; `"none"`: only alert.
    pub nftables: bool,
    /// How long a ban lasts; a repeat offence restarts it.
    pub ban_seconds: u64,
    /// Detectors whose offenders are banned.
    pub detectors: Vec<Detector>,
    /// IPv6 offenders are banned by this prefix length (64: the whole /64).
    pub ipv6_prefix: u8,
    /// Also drop offenders' traffic routed through this host (a forward-hook chain).
    pub forward: bool,
    /// Delete the table, bans included, when the daemon stops.
    pub remove_on_exit: bool,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            nftables: false,
            ban_seconds: 600,
            detectors: vec![
                Detector::Portscan,
                Detector::Portsweep,
                Detector::TcpFlags,
                Detector::Blocklist,
            ],
            ipv6_prefix: 64,
            forward: false,
            remove_on_exit: false,
        }
    }
}

/// `[response]` as read from the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResponse {
    action: Option<Spanned<String>>,
    ban_seconds: Option<Spanned<i64>>,
    detectors: Option<Vec<Spanned<String>>>,
    ipv6_prefix: Option<Spanned<i64>>,
    forward: Option<bool>,
    remove_on_exit: Option<bool>,
}

impl ResponseConfig {
    /// Validates `[response]` into these settings; errors carry the offending value's span.
    pub fn configure(&mut self, raw: RawResponse) -> Result<(), SpanError> {
        let r = raw;
        let response = self;
        if let Some(v) = r.action {
            response.nftables = match v.get_ref().as_str() {
                "none" => false,
                "nftables" => true,
                other => {
                    return Err((
                        v.span(),
                        format!("response.action = {other:?}: expected \"none\" or \"nftables\""),
                    ))
                }
            };
        }
        if let Some(v) = r.ban_seconds {
            response.ban_seconds = in_range(&v, 1, 365 * 86_400, "response.ban_seconds")
                .map_err(|m| (v.span(), m))? as u64;
        }
        if let Some(list) = r.detectors {
            response.detectors.clear();
            for name in list {
                let d = Detector::from_name(name.get_ref()).ok_or_else(|| {
                    (
                        name.span(),
                        format!("response.detectors: no detector {:?}", name.get_ref()),
                    )
                })?;
                if d == Detector::ScanSummary {
                    return Err((
                        name.span(),
                        "response.detectors: scan-summary closes a scan already alerted on; list \
                         portscan or portsweep"
                            .into(),
                    ));
                }
                if matches!(
                    d,
                    Detector::ArpSpoof
                        | Detector::NdSpoof
                        | Detector::NewStation
                        | Detector::RogueRa
                        | Detector::ArpSweep
                        | Detector::NdSweep
                        | Detector::DistributedScan
                        | Detector::DecoyScan
                ) {
                    return Err((
                        name.span(),
                        format!(
                            "response.detectors: {} names addresses that may be forged, which an \
                             IP ban must not trust",
                            d.name()
                        ),
                    ));
                }
                if !response.detectors.contains(&d) {
                    response.detectors.push(d);
                }
            }
        }
        if let Some(v) = r.ipv6_prefix {
            response.ipv6_prefix =
                in_range(&v, 32, 128, "response.ipv6_prefix").map_err(|m| (v.span(), m))? as u8;
        }
        response.forward = r.forward.unwrap_or(response.forward);
        response.remove_on_exit = r.remove_on_exit.unwrap_or(response.remove_on_exit);

        Ok(())
    }

    /// `[response]` as TOML (what `check-config` prints).
    pub fn toml(&self) -> String {
        let r = self;
        format!(
            "\n[response]\naction = \"{}\"\nban_seconds = {}\ndetectors = [{}]\nipv6_prefix = {}\n\
             forward = {}\nremove_on_exit = {}\n",
            if r.nftables { "nftables" } else { "none" },
            r.ban_seconds,
            r.detectors
                .iter()
                .map(|d| format!("{:?}", d.name()))
                .collect::<Vec<_>>()
                .join(", "),
            r.ipv6_prefix,
            r.forward,
            r.remove_on_exit
        )
    }
}

/// The gate's longest ban: the configured one, in the channel's width.
fn ban_limit(ban_seconds: u64) -> u32 {
    u32::try_from(ban_seconds).unwrap_or(u32::MAX)
}

/// How long the parser waits for the privileged part's answer to a ban request.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// The privileged half of active response: the nftables table, this host's addresses and the
/// [`BanGate`]. It takes an address and a duration, never an alert: whoever asks may be lying.
#[derive(Debug)]
pub struct BanServer {
    nft: Nftables,
    gate: BanGate,
    local: Vec<IpAddr>,
    local_read: Instant,
    remove_on_exit: bool,
    /// Bans the kernel refused (logged).
    errors: u64,
}

impl BanServer {
    /// Creates the table, sets and chains; `None` when `[response] action = "none"`.
    pub fn start(
        config: &ResponseConfig,
        allowlist: PrefixSet,
    ) -> Result<Option<BanServer>, NetlinkError> {
        if !config.nftables {
            return Ok(None);
        }
        let mut nft = Nftables::open(config.ipv6_prefix)?;
        nft.install(Hooks {
            input: true,
            forward: config.forward,
        })?;
        let local = local_addresses()?;
        Ok(Some(BanServer {
            nft,
            gate: BanGate::new(
                local.clone(),
                allowlist,
                ban_limit(config.ban_seconds),
                Instant::now(),
            ),
            local,
            local_read: Instant::now(),
            remove_on_exit: config.remove_on_exit,
            errors: 0,
        }))
    }

    /// Bans `addr` for `seconds` if the gate lets it; what became of the request.
    pub fn ban(&mut self, addr: IpAddr, seconds: u32) -> Outcome {
        let now = Instant::now();
        if now.duration_since(self.local_read) > LOCAL_REFRESH {
            if let Ok(l) = local_addresses() {
                self.gate.set_local(l.clone());
                self.local = l;
            }
            self.local_read = now;
        }
        if let Some(refused) = self.gate.judge(addr, seconds, now) {
            return refused;
        }
        let ban = self.nft.ban_for(addr);
        match self.nft.ban(ban, u64::from(seconds) * 1000) {
            Ok(()) => Outcome::Placed,
            Err(e) => {
                self.errors += 1;
                tracing::error!("banning {}: {e}", ban.addr);
                Outcome::Failed
            }
        }
    }

    /// Answers a ban request that came over the channel; other messages are not its business
    /// (`false`).
    pub fn answer(&mut self, end: &PrivilegedEnd, m: ToPrivileged) -> Result<bool, ChannelError> {
        let ToPrivileged::Ban {
            seq, addr, seconds, ..
        } = m
        else {
            return Ok(false);
        };
        let outcome = self.ban(addr, seconds);
        end.send(ToParser::BanResult { seq, outcome })?;
        Ok(true)
    }

    /// Applies reloaded settings: the allowlist, the longest ban, whether the table goes at exit.
    pub fn update(&mut self, config: &ResponseConfig, allowlist: PrefixSet) {
        self.remove_on_exit = config.remove_on_exit;
        self.gate.update(allowlist, ban_limit(config.ban_seconds));
    }

    /// What the gate judged so far.
    pub fn gate_counters(&self) -> crate::privsep::gate::GateCounters {
        self.gate.counters()
    }

    /// At exit: removes the table when the config asks, otherwise leaves the bans to expire.
    pub fn finish(mut self, placed: u64) {
        if self.remove_on_exit {
            match self.nft.remove() {
                Ok(()) => tracing::info!("removed nftables table inet scram and its bans"),
                Err(e) => tracing::error!("removing nftables table inet scram: {e}"),
            }
        } else if placed > 0 {
            tracing::info!("bans stay in nftables table inet scram until they expire");
        }
    }
}

/// Bans offenders, in the parser: decides which alerts ban and whom, and asks the privileged
/// part's [`BanServer`] for each ban over the channel.
#[derive(Debug)]
pub struct Responder {
    end: ParserEnd,
    /// The sequence of the last request.
    seq: u32,
    config: ResponseConfig,
    counters: ResponseCounters,
}

impl Responder {
    /// Asks the privileged part over `end` for each ban; `None` when
    /// `[response] action = "none"`.
    pub fn remote(config: &ResponseConfig, end: ParserEnd) -> Option<Responder> {
        config.nftables.then(|| Responder {
            end,
            seq: 0,
            config: config.clone(),
            counters: ResponseCounters::default(),
        })
    }

    /// Does `detector` ban its offenders?
    pub fn bans(&self, detector: Detector) -> bool {
        self.config.detectors.contains(&detector)
    }

    /// Counts an offender left alone because a decoy scan named it.
    pub fn spare_decoy(&mut self) {
        self.counters.spared_decoy += 1;
    }

    /// Bans the offender of `alert` if its detector is one that bans, and marks the alert
    /// `blocked` when the ban is in place. The offender is the source; for a blocklist hit, the
    /// side that is not this host (the source, or when that is local, the destination).
    pub fn act(&mut self, alert: &mut Alert) {
        if !self.config.detectors.contains(&alert.detector) {
            return;
        }
        let candidates = match alert.detector {
            Detector::Blocklist => [alert.src, alert.dst],
            _ => [alert.src, None],
        };
        let mut any = false;
        for addr in candidates.into_iter().flatten() {
            any = true;
            match self.request(addr, alert.detector.signature_id()) {
                Outcome::Placed => {
                    self.counters.bans += 1;
                    alert.action = Action::Blocked;
                    return;
                }
                Outcome::Local => continue,
                Outcome::Allowlisted => self.counters.spared_allowlisted += 1,
                Outcome::TooFast => self.counters.refused_rate += 1,
                Outcome::BadDuration | Outcome::Failed => self.counters.errors += 1,
            }
            return;
        }
        if any {
            self.counters.spared_local += 1;
        }
    }

    /// Asks for a ban of `addr` for the configured time, for an alert of `signature_id`; waits
    /// [`ANSWER_WAIT`] at most for the answer.
    fn request(&mut self, addr: IpAddr, signature_id: u32) -> Outcome {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let ask = ToPrivileged::Ban {
            seq,
            addr,
            seconds: ban_limit(self.config.ban_seconds),
            signature_id,
        };
        let end = &self.end;
        let answer = end.send(ask).and_then(|()| {
            let deadline = Instant::now() + ANSWER_WAIT;
            loop {
                match end.recv_until(deadline)? {
                    Some(ToParser::BanResult { seq: s, outcome }) if s == seq => {
                        return Ok(Some(outcome))
                    }
                    Some(_) => continue,
                    None => return Ok(None),
                }
            }
        });
        match answer {
            Ok(Some(outcome)) => outcome,
            Ok(None) => {
                tracing::error!("banning {addr}: no answer from the privileged part");
                Outcome::Failed
            }
            Err(e) => {
                tracing::error!("banning {addr}: {e}");
                Outcome::Failed
            }
        }
    }

    /// Applies reloaded settings: which detectors ban and for how long (the privileged part
    /// reloads the allowlist and the table's settings itself). `action`, `ipv6_prefix` and
    /// `forward` shape the table and take effect at the next start ([`crate::config::RELOAD`]
    /// says so to the operator).
    pub fn update(&mut self, config: &ResponseConfig) {
        self.config.detectors = config.detectors.clone();
        self.config.ban_seconds = config.ban_seconds;
    }

    /// What it did so far.
    pub fn counters(&self) -> ResponseCounters {
        self.counters
    }

    /// At exit: logs what it did (the privileged part removes the table if asked).
    pub fn finish(self) {
        let c = self.counters;
        tracing::info!(
            "active response: {} ban(s) placed or refreshed, {} offender(s) spared as local, {} as allowlisted, {} as possible decoys, {} refused as over the rate, {} failed",
            c.bans,
            c.spared_local,
            c.spared_allowlisted,
            c.spared_decoy,
            c.refused_rate,
            c.errors
        );
    }
}
