//! `scramd`'s command line, defined once: the binary parses it, and the man page scramd(8) is
//! generated from it (`examples/man.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Network defense daemon: captures on AF_PACKET rings, detects attacks, reports to the journal.
///
/// scramd reads raw frames from AF_PACKET TPACKET_V3 rings, one per worker thread, follows which
/// conversations were opened, answered or refused, and detects reconnaissance, floods, link-layer
/// spoofing, password guessing and fragment tricks. Alerts go to the systemd journal (follow them
/// with `journalctl -u scramd -f`; `journalctl -x` explains each), and optionally to a file of
/// Suricata EVE records. With `[response] action = "nftables"` it bans the offenders of chosen
/// detectors. Installed as a package, it runs as the hardened service scramd.service: as the user
/// scram with only CAP_NET_RAW and CAP_NET_ADMIN, confined further by Landlock and seccomp.
#[derive(Debug, Parser)]
#[command(name = "scramd", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground.
    Run {
        /// Configuration file (default /etc/scram/scram.toml when it exists, else built-in
        /// defaults).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Interface to capture on (repeatable); overrides capture.interfaces. Default: the
        /// interface of the default route.
        #[arg(long = "iface", value_name = "NAME")]
        iface: Vec<String>,
        /// Also write alerts as JSON lines to PATH (`-` for stdout).
        #[arg(long = "alerts-json", value_name = "PATH|-")]
        alerts_json: Option<String>,
    },
    /// Run the detection pipeline over pcap/pcapng files (packet timestamps as the clock) and
    /// print alerts as JSON lines on stdout. Needs no privileges.
    Replay {
        /// Configuration file (default /etc/scram/scram.toml when it exists, else built-in
        /// defaults).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// pcap or pcapng files, replayed in order.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Confine this process exactly as `run` does (user, capabilities, no-new-privs, Landlock,
    /// seccomp), then try what an attacker with code execution would try, each in its own
    /// child, and report how each attempt was refused. Exits 0 when every attack is refused and
    /// capture still works, 70 otherwise.
    SelfCheck {
        /// Configuration file (default /etc/scram/scram.toml when it exists, else built-in
        /// defaults).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// The unprivileged parser of `run`: started by `run` itself with the rings it opened
    /// (privilege separation), never by hand.
    #[command(hide = true)]
    Parser {
        /// What `run` hands over, as JSON.
        #[arg(long)]
        handoff: String,
    },
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// The file to check.
        path: PathBuf,
    },
}
