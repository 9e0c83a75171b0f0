//! `scramd self-check`: confine exactly as `scramd run` does, then try what an attacker with code
//! execution in the daemon would try, and show that each attempt is refused.
//!
//! Each attempt runs in its own forked child, because the seccomp filter answers a forbidden
//! call by killing the process: the parent sees the child's fate (an error code, or death by
//! SIGSYS) and reads the child's /proc status while it is confined. The parent never confines
//! itself.

use std::io::{BufRead, Read, Write};
use std::os::fd::OwnedFd;

use crate::sys::process::{fork_single_threaded, Forked};

use super::{confine, Plan};
use crate::exit::Exit;

/// One thing the check tries after confinement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// execve("/bin/sh").
    ExecShell,
    /// Open /etc/shadow for reading.
    ReadShadow,
    /// Create a file under /etc.
    WriteEtc,
    /// Open an AF_INET socket.
    InetSocket,
    /// ptrace-attach to the parent.
    Ptrace,
    /// setuid(0).
    SetuidRoot,
    /// Open an AF_PACKET socket: must still work (capture keeps CAP_NET_RAW).
    PacketSocket,
}

impl Attempt {
    /// Every attempt, attacks first.
    pub const ALL: [Attempt; 7] = [
        Attempt::ExecShell,
        Attempt::ReadShadow,
        Attempt::WriteEtc,
        Attempt::InetSocket,
        Attempt::Ptrace,
        Attempt::SetuidRoot,
        Attempt::PacketSocket,
    ];

    /// What is tried, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Attempt::ExecShell => "exec /bin/sh",
            Attempt::ReadShadow => "open /etc/shadow for reading",
            Attempt::WriteEtc => "create a file under /etc",
            Attempt::InetSocket => "open an AF_INET socket",
            Attempt::Ptrace => "ptrace the parent process",
            Attempt::SetuidRoot => "setuid(0)",
            Attempt::PacketSocket => "open an AF_PACKET socket (capture)",
        }
    }

    /// Whether the confined daemon must still be able to do it.
    pub fn must_work(self) -> bool {
        self == Attempt::PacketSocket
    }

    /// Tries it; `Ok` means it worked.
    fn try_it(self) -> std::io::Result<()> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        match self {
            Attempt::ExecShell => {
                let err = nix::unistd::execv(c"/bin/sh", &[c"sh", c"-c", c"true"]).unwrap_err();
                Err(err.into())
            }
            Attempt::ReadShadow => std::fs::File::open("/etc/shadow").map(drop),
            Attempt::WriteEtc => {
                let path = format!("/etc/scram-self-check-{}", std::process::id());
                let r = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map(drop);
                if r.is_ok() {
                    let _ = std::fs::remove_file(&path);
                }
                r
            }
            Attempt::InetSocket => socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map(drop)
            .map_err(Into::into),
            Attempt::Ptrace => nix::sys::ptrace::attach(nix::unistd::getppid()).map_err(Into::into),
            Attempt::SetuidRoot => {
                nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).map_err(Into::into)
            }
            Attempt::PacketSocket => crate::sys::packet::PacketSocket::open()
                .map(drop)
                .map_err(|e| e.source),
        }
    }
}

/// What happened to one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The call failed; the error.
    Refused(String),
    /// The process was killed by the seccomp filter.
    Killed,
    /// It worked.
    Worked,
    /// The child could not confine itself.
    ConfineFailed {
        /// Why.
        message: String,
        /// The exit `scramd run` would have taken.
        exit: Exit,
    },
}

impl Outcome {
    /// Whether this is the outcome `attempt` must have.
    pub fn as_expected(&self, attempt: Attempt) -> bool {
        match self {
            Outcome::Worked => attempt.must_work(),
            Outcome::Refused(_) | Outcome::Killed => !attempt.must_work(),
            Outcome::ConfineFailed { .. } => false,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Refused(e) => write!(f, "refused: {e}"),
            Outcome::Killed => f.write_str("refused: killed by seccomp (SIGSYS)"),
            Outcome::Worked => f.write_str("worked"),
            Outcome::ConfineFailed { message, .. } => write!(f, "confinement failed: {message}"),
        }
    }
}

/// One child's report.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was tried.
    pub attempt: Attempt,
    /// What happened.
    pub outcome: Outcome,
    /// The child's /proc status lines on identity and confinement, read while it was confined.
    pub status: Vec<String>,
}

/// Runs `attempt` in a confined child.
pub fn run(plan: &Plan, attempt: Attempt) -> std::io::Result<Report> {
    let (from_child, to_parent) = nix::unistd::pipe()?;
    let (from_parent, to_child) = nix::unistd::pipe()?;
    match fork_single_threaded()? {
        Forked::Child => {
            drop(from_child);
            drop(to_child);
            child(plan, attempt, to_parent, from_parent)
        }
        Forked::Parent(pid) => {
            drop(to_parent);
            drop(from_parent);
            parent(pid, attempt, from_child, to_child)
        }
    }
}

fn child(plan: &Plan, attempt: Attempt, to_parent: OwnedFd, from_parent: OwnedFd) -> ! {
    let mut out = std::fs::File::from(to_parent);
    let mut go = std::fs::File::from(from_parent);
    let confined = match confine(plan) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "E{e}");
            std::process::exit(crate::cmd::Error::Sandbox(e).exit() as i32);
        }
    };
    // Confined: let the parent read our status, wait for its go, then try.
    let _ = writeln!(
        out,
        "Rlandlock {}, seccomp {}",
        confined.landlock,
        if confined.seccomp { "on" } else { "off" }
    );
    let mut byte = [0u8; 1];
    let _ = go.read(&mut byte);
    match attempt.try_it() {
        Ok(()) => {
            let _ = out.write_all(b"W");
            std::process::exit(1)
        }
        Err(e) => {
            let _ = write!(out, "F{e}");
            std::process::exit(0)
        }
    }
}

fn parent(
    pid: i32,
    attempt: Attempt,
    from_child: OwnedFd,
    to_child: OwnedFd,
) -> std::io::Result<Report> {
    let mut input = std::io::BufReader::new(std::fs::File::from(from_child));
    let mut go = std::fs::File::from(to_child);
    let mut first = String::new();
    input.read_line(&mut first)?;
    let mut status = Vec::new();
    let text = if let Some(layers) = first.strip_prefix('R') {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status = confinement_lines(&s);
        status.push(layers.trim_end().to_owned());
        let _ = go.write_all(b"G");
        drop(go);
        let mut rest = String::new();
        let _ = input.read_to_string(&mut rest);
        rest
    } else {
        drop(go);
        first.trim_end().to_owned()
    };
    let wait = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)?;
    let outcome = match (wait, text.chars().next()) {
        (nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _), _) => {
            Outcome::Killed
        }
        (w, Some('E')) => Outcome::ConfineFailed {
            message: text[1..].to_owned(),
            exit: match w {
                nix::sys::wait::WaitStatus::Exited(_, code) => {
                    Exit::from_code(code).unwrap_or(Exit::Software)
                }
                _ => Exit::Software,
            },
        },
        (_, Some('F')) => Outcome::Refused(text[1..].to_owned()),
        (_, Some('W')) => Outcome::Worked,
        (w, _) => Outcome::ConfineFailed {
            message: format!("the child ended without a report ({w:?})"),
            exit: Exit::Software,
        },
    };
    Ok(Report {
        attempt,
        outcome,
        status,
    })
}

/// The /proc status lines that describe identity and confinement.
pub fn confinement_lines(status: &str) -> Vec<String> {
    const KEYS: [&str; 10] = [
        "Uid:",
        "Gid:",
        "Groups:",
        "CapInh:",
        "CapPrm:",
        "CapEff:",
        "CapBnd:",
        "CapAmb:",
        "NoNewPrivs:",
        "Seccomp:",
    ];
    status
        .lines()
        .filter(|l| KEYS.iter().any(|k| l.starts_with(k)))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}
