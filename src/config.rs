//! Configuration: `/etc/scram/scram.toml`, every key optional, unknown keys and sections refused.
//!
//! Owns: parsing, validation and the effective configuration. Every error names
//! `file:line:column` and what is wrong; a bad value is never replaced by a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::capture::{CaptureConfig, FanoutKind};
use crate::sys::packet::RingGeometry;

/// Where the daemon looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/scram/scram.toml";

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Capture settings. `interfaces` empty means "the default-route interface".
    pub capture: CaptureConfig,
    /// How often counters are logged.
    pub stats_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            capture: CaptureConfig {
                workers: default_workers(),
                ..CaptureConfig::default()
            },
            stats_interval: Duration::from_secs(60),
        }
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapture {
    interfaces: Option<Spanned<Vec<Spanned<String>>>>,
    workers: Option<Spanned<i64>>,
    fanout: Option<Spanned<String>>,
    fanout_defrag: Option<bool>,
    block_size: Option<Spanned<i64>>,
    block_count: Option<Spanned<i64>>,
    frame_size: Option<Spanned<i64>>,
    block_timeout_ms: Option<Spanned<i64>>,
    promiscuous: Option<bool>,
    stats_interval_seconds: Option<Spanned<i64>>,
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
        let c = raw.capture;
        let capture = &mut config.capture;

        if let Some(list) = c.interfaces {
            if list.get_ref().is_empty() {
                return Err(at(
                    list.span(),
                    "capture.interfaces is empty; leave it out to use the default-route interface"
                        .into(),
                ));
            }
            for name in list.get_ref() {
                let n = name.get_ref();
                if n.is_empty() || n.len() >= libc::IFNAMSIZ || n.contains(['/', ' ', '\0']) {
                    return Err(at(
                        name.span(),
                        format!("{n:?} is not a valid interface name"),
                    ));
                }
                if capture.interfaces.contains(n) {
                    return Err(at(name.span(), format!("interface {n:?} is listed twice")));
                }
                capture.interfaces.push(n.clone());
            }
        }
        if let Some(v) = c.workers {
            capture.workers =
                in_range(&v, 1, 64, "capture.workers").map_err(|m| at(v.span(), m))? as usize;
        }
        if let Some(v) = c.fanout {
            capture.fanout = match v.get_ref().as_str() {
                "hash" => FanoutKind::Hash,
                "cpu" => FanoutKind::Cpu,
                "lb" | "load-balance" => FanoutKind::LoadBalance,
                other => {
                    return Err(at(
                        v.span(),
                        format!("capture.fanout = {other:?}: expected \"hash\", \"cpu\" or \"lb\""),
                    ))
                }
            };
        }
        if let Some(v) = c.fanout_defrag {
            capture.fanout_defrag = v;
        }
        let mut ring: RingGeometry = capture.ring;
        if let Some(v) = &c.block_size {
            let n =
                in_range(v, 4096, 1 << 30, "capture.block_size").map_err(|m| at(v.span(), m))?;
            if n % 4096 != 0 {
                return Err(at(
                    v.span(),
                    format!("capture.block_size = {n} is not a multiple of the 4096-byte page"),
                ));
            }
            ring.block_size = n as u32;
        }
        if let Some(v) = c.block_count {
            ring.block_count =
                in_range(&v, 1, 65536, "capture.block_count").map_err(|m| at(v.span(), m))? as u32;
        }
        if let Some(v) = &c.frame_size {
            let n = in_range(v, 128, 1 << 20, "capture.frame_size").map_err(|m| at(v.span(), m))?;
            if n % 16 != 0 {
                return Err(at(
                    v.span(),
                    format!("capture.frame_size = {n} is not a multiple of 16"),
                ));
            }
            ring.frame_size = n as u32;
        }
        if ring.frame_size > ring.block_size {
            let span = c
                .frame_size
                .as_ref()
                .or(c.block_size.as_ref())
                .map(|s| s.span())
                .unwrap_or(0..0);
            return Err(at(
                span,
                format!(
                    "capture.frame_size ({}) is larger than capture.block_size ({})",
                    ring.frame_size, ring.block_size
                ),
            ));
        }
        if let Some(v) = c.block_timeout_ms {
            ring.retire_timeout_ms = in_range(&v, 1, 60_000, "capture.block_timeout_ms")
                .map_err(|m| at(v.span(), m))? as u32;
        }
        capture.ring = ring;
        if let Some(v) = c.promiscuous {
            capture.promiscuous = v;
        }
        if let Some(v) = c.stats_interval_seconds {
            let n = in_range(&v, 1, 86_400, "capture.stats_interval_seconds")
                .map_err(|m| at(v.span(), m))?;
            config.stats_interval = Duration::from_secs(n as u64);
        }
        Ok(config)
    }

    /// The effective configuration as TOML (what `check-config` prints).
    pub fn to_toml(&self) -> String {
        let c = &self.capture;
        let fanout = match c.fanout {
            FanoutKind::Hash => "hash",
            FanoutKind::Cpu => "cpu",
            FanoutKind::LoadBalance => "lb",
        };
        let interfaces = if c.interfaces.is_empty() {
            "# interfaces: the default-route interface".to_owned()
        } else {
            format!(
                "interfaces = [{}]",
                c.interfaces
                    .iter()
                    .map(|i| format!("{i:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "[capture]\n{interfaces}\nworkers = {}\nfanout = \"{fanout}\"\nfanout_defrag = {}\n\
             block_size = {}\nblock_count = {}\nframe_size = {}\nblock_timeout_ms = {}\n\
             promiscuous = {}\nstats_interval_seconds = {}\n",
            c.workers,
            c.fanout_defrag,
            c.ring.block_size,
            c.ring.block_count,
            c.ring.frame_size,
            c.ring.retire_timeout_ms,
            c.promiscuous,
            self.stats_interval.as_secs()
        )
    }
}

fn in_range(v: &Spanned<i64>, min: i64, max: i64, key: &str) -> Result<i64, String> {
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

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("scram.toml")).map_err(|e| e.to_string())
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
