//! `scramd`: the scram daemon's command line.

use std::process::ExitCode;

use clap::Parser;
use scram::cli::{Cli, Command};
use scram::cmd::{self, run::RunOptions};
use scram::exit::Exit;

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
        Command::Parser { handoff } => {
            scram::logging::init();
            cmd::exit(cmd::run::parser(&handoff))
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
