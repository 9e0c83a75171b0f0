//! Configuration: `/etc/scram/scram.toml`, every key optional, unknown keys and sections refused.
//!
//! Owns: the file as a whole (reading it, its sections, `file:line:column` positions), the
//! effective configuration and [`RELOAD`], what a reload applies. Each section's type, its
//! validation and its TOML live with the code that uses it (`capture`, `alert`, `detect` and its
//! families, `response`, `sandbox`); this module puts them together. Every error names
//! `file:line:column` and what is wrong; a bad value is never replaced by a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use crate::alert::AlertsConfig;
use crate::alert::RawAlerts;
use crate::capture::{CaptureConfig, RawCapture};
use crate::detect::prefix::{parse_cidr, PrefixSet};
use crate::detect::{RawDetect, Settings};
use crate::response::RawResponse;
pub use crate::response::ResponseConfig;
pub use crate::sandbox::{PrivilegesConfig, SandboxConfig};
use crate::sandbox::{RawPrivileges, RawSandbox};

/// Where the daemon looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/scram/scram.toml";

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Capture settings. `interfaces` empty means "the default-route interface".
    pub capture: CaptureConfig,
    /// How often counters are logged.
    pub stats_interval: Duration,
    /// Detector settings (allowlist and loaded blocklists included): live, a reload replaces
    /// them.
    pub detect: Settings,
    /// `[detect] table_capacity`: entries per state table per shard, fixed at start.
    pub table_capacity: usize,
    /// `[detect] flow_capacity`: flows each worker follows, fixed at start (this many IPv4 flows
    /// and as many IPv6 flows).
    pub flow_capacity: usize,
    /// Blocklist files the prefixes were read from (re-read on reload).
    pub blocklist_files: Vec<PathBuf>,
    /// Alert output.
    pub alerts: AlertsConfig,
    /// `[privileges]`.
    pub privileges: PrivilegesConfig,
    /// `[sandbox]`.
    pub sandbox: SandboxConfig,
    /// `[response]`.
    pub response: ResponseConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            capture: CaptureConfig {
                workers: default_workers(),
                ..CaptureConfig::default()
            },
            stats_interval: Duration::from_secs(60),
            detect: Settings::default(),
            table_capacity: 16_384,
            flow_capacity: 65_536,
            blocklist_files: Vec::new(),
            alerts: AlertsConfig::default(),
            privileges: PrivilegesConfig::default(),
            sandbox: SandboxConfig::default(),
            response: ResponseConfig::default(),
        }
    }
}

/// How a change to a part of the configuration takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Applied on SIGHUP (`systemctl reload scram`).
    Live,
    /// Read once at start: applied at the next restart.
    Restart,
}

/// One part of the configuration and how a change to it takes effect.
#[derive(Debug)]
pub struct Part {
    /// The keys, as the file spells them.
    pub keys: &'static str,
    /// Live or at restart.
    pub reload: Reload,
    /// Does `new` differ from `old` in this part?
    pub changed: fn(old: &Config, new: &Config) -> bool,
    /// Takes this part from `new` into the running configuration (live parts only).
    pub adopt: fn(running: &mut Config, new: &Config),
}

/// Every part of the configuration, with how a change to it takes effect: what SIGHUP applies
/// and reports, what `check-config` and the README say.
pub const RELOAD: &[Part] = &[
    Part {
        keys: "[capture] (all keys)",
        reload: Reload::Restart,
        changed: |o, n| o.capture != n.capture || o.stats_interval != n.stats_interval,
        adopt: |_, _| {},
    },
    Part {
        keys: "[alerts] json, queue_capacity, route_queue_capacity, sensor_name, community_id_seed",
        reload: Reload::Restart,
        changed: |o, n| o.alerts != n.alerts,
        adopt: |_, _| {},
    },
    Part {
        keys: "[alerts] suppress_seconds",
        reload: Reload::Live,
        changed: |o, n| o.detect.suppress_ms != n.detect.suppress_ms,
        adopt: |r, n| r.detect.suppress_ms = n.detect.suppress_ms,
    },
    Part {
        keys: "[allowlist] cidrs",
        reload: Reload::Live,
        changed: |o, n| o.detect.allowlist != n.detect.allowlist,
        adopt: |r, n| r.detect.allowlist = n.detect.allowlist.clone(),
    },
    Part {
        keys: "[blocklist] files (and the files' contents)",
        reload: Reload::Live,
        changed: |o, n| {
            o.blocklist_files != n.blocklist_files
                || o.detect.blocklist.prefixes != n.detect.blocklist.prefixes
        },
        adopt: |r, n| {
            r.blocklist_files = n.blocklist_files.clone();
            r.detect.blocklist.prefixes = n.detect.blocklist.prefixes.clone();
        },
    },
    Part {
        keys: "[detect] table_capacity, flow_capacity",
        reload: Reload::Restart,
        changed: |o, n| (o.table_capacity, o.flow_capacity) != (n.table_capacity, n.flow_capacity),
        adopt: |_, _| {},
    },
    Part {
        keys: "[detect.*] (every detector's switch and thresholds)",
        reload: Reload::Live,
        changed: |o, n| detectors_only(&o.detect) != detectors_only(&n.detect),
        adopt: |r, n| {
            let kept = r.detect.clone();
            r.detect = n.detect.clone();
            r.detect.suppress_ms = kept.suppress_ms;
            r.detect.allowlist = kept.allowlist;
            r.detect.blocklist.prefixes = kept.blocklist.prefixes;
        },
    },
    Part {
        keys: "[response] action, ipv6_prefix, forward",
        reload: Reload::Restart,
        changed: |o, n| {
            (
                o.response.nftables,
                o.response.ipv6_prefix,
                o.response.forward,
            ) != (
                n.response.nftables,
                n.response.ipv6_prefix,
                n.response.forward,
            )
        },
        adopt: |_, _| {},
    },
    Part {
        keys: "[response] detectors, ban_seconds, remove_on_exit",
        reload: Reload::Live,
        changed: |o, n| {
            (
                &o.response.detectors,
                o.response.ban_seconds,
                o.response.remove_on_exit,
            ) != (
                &n.response.detectors,
                n.response.ban_seconds,
                n.response.remove_on_exit,
            )
        },
        adopt: |r, n| {
            r.response.detectors = n.response.detectors.clone();
            r.response.ban_seconds = n.response.ban_seconds;
            r.response.remove_on_exit = n.response.remove_on_exit;
        },
    },
    Part {
        keys: "[privileges] user",
        reload: Reload::Restart,
        changed: |o, n| o.privileges != n.privileges,
        adopt: |_, _| {},
    },
    Part {
        keys: "[sandbox] (all keys)",
        reload: Reload::Restart,
        changed: |o, n| o.sandbox != n.sandbox,
        adopt: |_, _| {},
    },
];

/// The detector switches and thresholds alone (what `[detect.*]` holds).
fn detectors_only(s: &Settings) -> Settings {
    let mut only = s.clone();
    only.suppress_ms = 0;
    only.allowlist = PrefixSet::default();
    only.blocklist.prefixes = PrefixSet::default();
    only
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Live parts that changed and were taken into the running configuration.
    pub applied: Vec<&'static str>,
    /// Parts that changed but take effect at the next restart (the running value is kept).
    pub pending: Vec<&'static str>,
}

impl Config {
    /// Takes every live part that differs in `new` into `self`; restart-only parts keep their
    /// running values and are listed as pending.
    pub fn reload_from(&mut self, new: &Config) -> Reloaded {
        let mut r = Reloaded::default();
        for part in RELOAD {
            if !(part.changed)(self, new) {
                continue;
            }
            match part.reload {
                Reload::Live => {
                    (part.adopt)(self, new);
                    r.applied.push(part.keys);
                }
                Reload::Restart => r.pending.push(part.keys),
            }
        }
        r
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
}

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value is out of range.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    capture: RawCapture,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    allowlist: RawAllowlist,
    #[serde(default)]
    blocklist: RawBlocklist,
    #[serde(default)]
    detect: RawDetect,
    #[serde(default)]
    privileges: RawPrivileges,
    #[serde(default)]
    sandbox: RawSandbox,
    #[serde(default)]
    response: RawResponse,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllowlist {
    cidrs: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlocklist {
    files: Option<Vec<Spanned<String>>>,
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates `text`; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_column(text, span.start);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            at(
                e.span().unwrap_or(0..0),
                e.message().trim_end().replace('\n', " "),
            )
        })?;
        let mut config = Config::default();
        if let Some(interval) = config
            .capture
            .configure(raw.capture)
            .map_err(|(span, m)| at(span, m))?
        {
            config.stats_interval = interval;
        }

        config
            .privileges
            .configure(raw.privileges)
            .map_err(|(span, m)| at(span, m))?;
        config.sandbox.configure(raw.sandbox);

        config
            .response
            .configure(raw.response)
            .map_err(|(span, m)| at(span, m))?;

        if let Some(ms) = config
            .alerts
            .configure(raw.alerts)
            .map_err(|(span, m)| at(span, m))?
        {
            config.detect.suppress_ms = ms;
        }

        let mut allow = Vec::new();
        for c in raw.allowlist.cidrs.unwrap_or_default() {
            allow.push(
                parse_cidr(c.get_ref())
                    .map_err(|m| at(c.span(), format!("allowlist.cidrs: {m}")))?,
            );
        }
        config.detect.allowlist = PrefixSet::new(allow);

        let base = path.parent().unwrap_or(Path::new("."));
        for f in raw.blocklist.files.unwrap_or_default() {
            let file = base.join(f.get_ref());
            let set = load_blocklist(&file).map_err(|e| match e {
                ConfigError::Read { path, source } => at(
                    f.span(),
                    format!("blocklist file {}: {source}", path.display()),
                ),
                other => other,
            })?;
            config.detect.blocklist.prefixes.extend(&set);
            config.blocklist_files.push(file);
        }

        let mut d = raw.detect;
        if let Some(v) = d.table_capacity.take() {
            config.table_capacity = in_range(&v, 64, 1 << 24, "detect.table_capacity")
                .map_err(|m| at(v.span(), m))? as usize;
        }
        if let Some(v) = d.flow_capacity.take() {
            config.flow_capacity = in_range(&v, 1024, 1 << 24, "detect.flow_capacity")
                .map_err(|m| at(v.span(), m))? as usize;
        }
        config
            .detect
            .configure(d)
            .map_err(|(span, m)| at(span, m))?;
        Ok(config)
    }

    /// The effective configuration as TOML (what `check-config` prints).
    pub fn to_toml(&self) -> String {
        let mut head = String::from("# On SIGHUP (systemctl reload scram):\n");
        for part in RELOAD {
            head.push_str(&format!(
                "#   {:<8} {}\n",
                match part.reload {
                    Reload::Live => "applied",
                    Reload::Restart => "restart",
                },
                part.keys
            ));
        }
        head + "\n" + &self.sections_toml()
    }

    fn sections_toml(&self) -> String {
        self.capture.toml(self.stats_interval)
            + &self.response.toml()
            + &self.privileges.toml()
            + &self.sandbox.toml()
            + &self.detect_toml()
    }

    fn detect_toml(&self) -> String {
        let d = &self.detect;
        let mut out = String::new();
        out.push_str(&self.alerts.toml(d.suppress_ms));
        out.push_str(&format!(
            "\n[allowlist]\ncidrs = [{}]\n",
            d.allowlist
                .cidrs()
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.push_str(&format!(
            "\n[blocklist]\nfiles = [{}]\n# {} address range(s) loaded\n",
            self.blocklist_files
                .iter()
                .map(|f| format!("{:?}", f.display().to_string()))
                .collect::<Vec<_>>()
                .join(", "),
            d.blocklist.prefixes.ranges()
        ));
        out.push_str(&format!(
            "\n[detect]\ntable_capacity = {}\nflow_capacity = {}\n",
            self.table_capacity, self.flow_capacity
        ));
        out.push_str(&d.toml());
        out
    }
}

/// Reads a blocklist file (one CIDR a line, `#` comments).
pub fn load_blocklist(path: &Path) -> Result<PrefixSet, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    PrefixSet::parse_file(&text).map_err(|(line, column, message)| ConfigError::Invalid {
        path: path.to_owned(),
        line,
        column,
        message,
    })
}

/// `v` when it lies in `min..=max`, else a message naming `key`.
pub(crate) fn in_range(v: &Spanned<i64>, min: i64, max: i64, key: &str) -> Result<i64, String> {
    let n = *v.get_ref();
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{key} = {n} is out of range ({min}..={max})"))
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::FanoutKind;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("scram.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn reload_applies_live_parts_and_keeps_restart_parts() {
        let mut running = parse("[detect]\ntable_capacity = 1024\n").unwrap();
        let new = parse(
            "[detect]\ntable_capacity = 4096\n[detect.portscan]\nports = 5\n\
             [allowlist]\ncidrs = [\"192.0.2.0/24\"]\n\
             [response]\naction = \"nftables\"\nban_seconds = 60\n[sandbox]\nseccomp = false\n",
        )
        .unwrap();
        let done = running.reload_from(&new);
        assert_eq!(
            done.applied,
            [
                "[allowlist] cidrs",
                "[detect.*] (every detector's switch and thresholds)",
                "[response] detectors, ban_seconds, remove_on_exit",
            ]
        );
        assert_eq!(
            done.pending,
            [
                "[detect] table_capacity, flow_capacity",
                "[response] action, ipv6_prefix, forward",
                "[sandbox] (all keys)",
            ]
        );
        assert_eq!(running.table_capacity, 1024, "tables keep their size");
        assert_eq!(running.detect.scans.portscan.threshold, 5);
        assert!(running
            .detect
            .allowlist
            .contains("192.0.2.9".parse::<std::net::IpAddr>().unwrap()));
        assert_eq!(running.response.ban_seconds, 60);
        assert!(
            !running.response.nftables,
            "the table is set up at start only"
        );
        assert!(running.sandbox.seccomp);
        // Nothing changed the second time but what is still pending.
        let again = running.reload_from(&new);
        assert!(again.applied.is_empty());
        assert_eq!(again.pending.len(), 3);
    }

    #[test]
    fn every_part_is_documented_as_the_daemon_treats_it() {
        let readme = include_str!("../README.md");
        for part in RELOAD {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| {} |", part.keys)))
                .unwrap_or_else(|| panic!("README has no row for {}", part.keys));
            let word = match part.reload {
                Reload::Live => "| applied",
                Reload::Restart => "| restart",
            };
            assert!(row.contains(word), "{row}");
        }
        let shown = Config::default().to_toml();
        for part in RELOAD {
            assert!(shown.contains(part.keys), "{shown}");
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").expect("empty config is valid");
        assert_eq!(c, Config::default());
        assert_eq!(c.capture.ring.retire_timeout_ms, 10);
        assert_eq!(c.capture.fanout, FanoutKind::Hash);
    }

    #[test]
    fn every_capture_key_is_read() {
        let c = parse(
            "[capture]\ninterfaces = [\"eth0\", \"eth1\"]\nworkers = 3\nfanout = \"cpu\"\n\
             fanout_defrag = false\nblock_size = 262144\nblock_count = 8\nframe_size = 4096\n\
             block_timeout_ms = 25\npromiscuous = true\nstats_interval_seconds = 5\n",
        )
        .expect("valid config");
        assert_eq!(c.capture.interfaces, ["eth0", "eth1"]);
        assert_eq!(c.capture.workers, 3);
        assert_eq!(c.capture.fanout, FanoutKind::Cpu);
        assert!(!c.capture.fanout_defrag);
        assert_eq!(c.capture.ring.block_size, 262_144);
        assert_eq!(c.capture.ring.block_count, 8);
        assert_eq!(c.capture.ring.frame_size, 4096);
        assert_eq!(c.capture.ring.retire_timeout_ms, 25);
        assert!(c.capture.promiscuous);
        assert_eq!(c.stats_interval, Duration::from_secs(5));
        // The printed effective config reads back to the same thing.
        assert_eq!(parse(&c.to_toml()).expect("round trip"), c);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        assert_eq!(
            parse("[capture]\nworkers = 0\n").unwrap_err(),
            "scram.toml:2:11: capture.workers = 0 is out of range (1..=64)"
        );
        let e = parse("[capture]\nbogus = 1\n").unwrap_err();
        assert!(
            e.starts_with("scram.toml:2:1: unknown field `bogus`"),
            "{e}"
        );
        let e = parse("[nosuch]\n").unwrap_err();
        assert!(
            e.starts_with("scram.toml:1:2: unknown field `nosuch`"),
            "{e}"
        );
        let e = parse("[capture]\nfanout = \"random\"\n").unwrap_err();
        assert!(
            e.starts_with("scram.toml:2:10: capture.fanout = \"random\""),
            "{e}"
        );
        let e = parse("[capture]\nblock_size = 5000\n").unwrap_err();
        assert!(e.contains("not a multiple of the 4096-byte page"), "{e}");
        let e = parse("[capture]\nworkers = \"two\"\n").unwrap_err();
        assert!(e.starts_with("scram.toml:2:11: invalid type"), "{e}");
        let e = parse("[capture]\ninterfaces = [\"a\", \"a\"]\n").unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
        let e = parse("[capture\n").unwrap_err();
        assert!(e.starts_with("scram.toml:1:"), "{e}");
    }

    #[test]
    fn hostile_bytes_never_panic() {
        for text in [
            "\u{feff}[capture]",
            "a = \"\u{1f600}",
            "[[capture]]",
            "capture = 3",
            "[capture]\nworkers = 99999999999999999999",
        ] {
            let _ = parse(text);
        }
    }
}
