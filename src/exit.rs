//! Exit codes (sysexits.h), the contract with operators and with the unit's
//! `RestartPreventExitStatus=`.

use std::process::ExitCode;

/// Why the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// Command line usage error (EX_USAGE).
    Usage = 64,
    /// An input file could not be read (EX_DATAERR).
    Input = 65,
    /// The operating system refused a resource (EX_OSERR).
    Os = 71,
    /// Internal error (EX_SOFTWARE).
    Software = 70,
    /// A privilege is missing (EX_NOPERM).
    NoPermission = 77,
    /// Configuration error (EX_CONFIG).
    Config = 78,
}

impl Exit {
    /// The exit for a process status code, if it is one of these.
    pub fn from_code(code: i32) -> Option<Exit> {
        [
            Exit::Ok,
            Exit::Usage,
            Exit::Input,
            Exit::Os,
            Exit::Software,
            Exit::NoPermission,
            Exit::Config,
        ]
        .into_iter()
        .find(|e| *e as i32 == code)
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}
