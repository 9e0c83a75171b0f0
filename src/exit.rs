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
    /// Every exit, in the order of their codes.
    pub const ALL: [Exit; 7] = [
        Exit::Ok,
        Exit::Usage,
        Exit::Input,
        Exit::Software,
        Exit::Os,
        Exit::NoPermission,
        Exit::Config,
    ];

    /// The exit for a process status code, if it is one of these.
    pub fn from_code(code: i32) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| *e as i32 == code)
    }

    /// What the code tells an operator (scramd(8)'s EXIT STATUS).
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "success; for self-check, every attack was refused and capture works",
            Exit::Usage => "command line usage error",
            Exit::Input => {
                "an input file could not be read or parsed (replay: after everything readable \
                 was replayed)"
            }
            Exit::Software => "internal error; for self-check, an attack was not refused",
            Exit::Os => "the operating system refused a resource (a socket, a ring, memory)",
            Exit::NoPermission => "a privilege is missing; the message names the capability",
            Exit::Config => {
                "configuration error; the message gives file:line:column and what is wrong"
            }
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}
