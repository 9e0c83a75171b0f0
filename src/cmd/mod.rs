//! The commands of `scramd`, one module each: [`run`], [`replay`], [`self_check`],
//! [`check_config`]. Each returns `Result<(), Error>`; [`Error::exit`] is the one place where a
//! failure becomes an exit code.
//!
//! Never on the packet path: commands set things up, watch and report.

pub mod check_config;
pub mod replay;
pub mod run;
pub mod self_check;

use std::path::{Path, PathBuf};

use crate::capture::CaptureError;
use crate::config::{self, Config, ConfigError};
use crate::exit::Exit;
use crate::netlink::NetlinkError;
use crate::sandbox::SandboxError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An alert sink could not be opened.
    #[error("alert sink {target}: {source}")]
    AlertSink {
        /// The path.
        target: String,
        /// Why.
        source: std::io::Error,
    },
    /// Capture could not be opened.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Active response could not set its table up.
    #[error("[response] action = \"nftables\": setting up table inet scram: {0}{hint}", hint = if needs_admin(.0) { " (nftables needs CAP_NET_ADMIN)" } else { "" })]
    Response(NetlinkError),
    /// Giving up privilege failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The operating system refused a thread, a runtime or a signal handler.
    #[error("{what}: {source}")]
    Os {
        /// What was being started.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// Capture files that could not be read to their end (each named in its summary line).
    #[error("{0} capture file(s) could not be read to their end")]
    Input(usize),
    /// The privilege-separation channel failed.
    #[error(transparent)]
    Channel(#[from] crate::privsep::channel::ChannelError),
    /// The self-check found an attempt that did not end as it must.
    #[error("some self-check attempts did not end as they must (FAIL lines above)")]
    SelfCheck,
    /// A confined child of the self-check failed to confine itself.
    #[error("{message}")]
    Child {
        /// Its message.
        message: String,
        /// Its exit status.
        exit: Exit,
    },
}

fn needs_admin(e: &NetlinkError) -> bool {
    matches!(
        e,
        NetlinkError::Refused(nix::Error::EPERM)
            | NetlinkError::Io {
                source: nix::Error::EPERM,
                ..
            }
    )
}

impl Error {
    /// How the process exits on this error (sysexits.h; see [`Exit`]).
    pub fn exit(&self) -> Exit {
        match self {
            Error::Config(_) | Error::AlertSink { .. } => Exit::Config,
            Error::Capture(e) => match e {
                CaptureError::Privilege { .. } => Exit::NoPermission,
                CaptureError::UnknownInterface { .. } | CaptureError::NoInterface => Exit::Config,
                CaptureError::Ring { .. } | CaptureError::Socket { .. } => Exit::Os,
            },
            Error::Response(e) if needs_admin(e) => Exit::NoPermission,
            Error::Response(_) | Error::Os { .. } | Error::Channel(_) => Exit::Os,
            Error::Sandbox(e) => match e {
                SandboxError::UnknownUser(_) | SandboxError::RootUser(_) => Exit::Config,
                SandboxError::Privilege { .. } => Exit::NoPermission,
                SandboxError::Threads(_) | SandboxError::Verify(_) => Exit::Software,
                SandboxError::UserLookup { .. }
                | SandboxError::Step { .. }
                | SandboxError::LandlockUnavailable(_) => Exit::Os,
            },
            Error::Input(_) => Exit::Input,
            Error::SelfCheck => Exit::Software,
            Error::Child { exit, .. } => *exit,
        }
    }
}

/// Logs a command's failure and gives the exit status.
pub fn exit(result: Result<(), Error>) -> Exit {
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            tracing::error!("{e}");
            e.exit()
        }
    }
}

/// Loads the configuration a command uses: `path`, else /etc/scram/scram.toml when it exists,
/// else built-in defaults. Returns the path actually read.
pub fn load_config(path: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
    match path {
        Some(p) => Ok((Config::load(p)?, Some(p.to_owned()))),
        None => {
            let default = Path::new(config::DEFAULT_PATH);
            if default.exists() {
                Ok((Config::load(default)?, Some(default.to_owned())))
            } else {
                Ok((Config::default(), None))
            }
        }
    }
}

/// What the daemon confines itself to: `config`'s user and sandbox settings, re-read access to
/// the config and blocklist files, write access to `json_files` and the state directory.
pub fn sandbox_plan(
    config: &Config,
    config_path: Option<&Path>,
    json_files: Vec<PathBuf>,
) -> crate::sandbox::Plan {
    let state_dirs: Vec<PathBuf> = match std::env::var_os("STATE_DIRECTORY") {
        Some(v) => std::env::split_paths(&v).collect(),
        None => vec![PathBuf::from("/var/lib/scram")],
    };
    crate::sandbox::Plan {
        user: config.privileges.user.clone(),
        sandbox: config.sandbox,
        read_files: config_path
            .into_iter()
            .map(ToOwned::to_owned)
            .chain(config.blocklist_files.iter().cloned())
            .collect(),
        write_files: json_files,
        write_dirs: state_dirs.into_iter().filter(|d| d.is_dir()).collect(),
        read_exact: Vec::new(),
        fanout_later: false,
        role: crate::sandbox::Role::Whole,
        ring_fds: Vec::new(),
    }
}
