//! `scramd`: the scram daemon's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scram::cmd::{self, run::RunOptions};
use scram::exit::Exit;

/// Network defense daemon: captures on AF_PACKET rings, detects attacks, reports to the journal.
#[derive(Debug, Parser)]
#[command(name = "scramd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// The file to check.
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            }
            .into();
        }
    };
    match cli.command {
        Command::Run {
            config,
            iface,
            alerts_json,
        } => {
            scram::logging::init();
            cmd::exit(cmd::run::run(RunOptions {
                config,
                interfaces: iface,
                alerts_json,
            }))
        }
        Command::Replay { config, files } => {
            scram::logging::init_stderr();
            cmd::exit(cmd::replay::replay(config.as_deref(), &files))
        }
        Command::SelfCheck { config } => {
            scram::logging::init_stderr();
            cmd::exit(cmd::self_check::self_check(config.as_deref()))
        }
        Command::CheckConfig { path } => match cmd::check_config::check_config(&path) {
            Ok(()) => Exit::Ok,
            Err(e) => {
                eprintln!("scramd: {e}");
                e.exit()
            }
        },
    }
    .into()
}
