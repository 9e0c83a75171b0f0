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
    /// Read a file anyone may read, outside what Landlock grants (/etc/hostname).
    ReadOutsideGrants,
    /// Create a file under /etc.
    WriteEtc,
    /// Create a file where anyone may (/tmp), outside what Landlock grants.
    WriteOutsideGrants,
    /// Open an AF_INET socket.
    InetSocket,
    /// ptrace-attach to the parent.
    Ptrace,
    /// Connect to an abstract unix socket another process listens on.
    AbstractUnix,
    /// Connect to a path unix socket other than the journal's (writable by anyone).
    PathUnix,
    /// Connect a unix socket opened before confinement (as the journal's is) to another one.
    ConnectOpenUnix,
    /// Send a signal to another process of the same user.
    SignalSameUser,
    /// The same with tgkill (which the daemon may call, at itself only).
    TgkillSameUser,
    /// setuid(0).
    SetuidRoot,
    /// Open an AF_PACKET socket: must still work (capture keeps CAP_NET_RAW).
    PacketSocket,
    /// From inside the parser: open a netlink socket (the privileged part's kind).
    ParserNetlink,
    /// From inside the parser: open a unix socket.
    ParserUnix,
    /// From inside the parser: use CAP_NET_ADMIN (set SO_MARK on a socket it holds).
    ParserNetAdmin,
    /// From inside the parser: send a frame on a ring socket it reads.
    ParserWriteRing,
    /// From inside the parser: signal the privileged part.
    ParserSignal,
    /// From inside the parser: ptrace the privileged part.
    ParserPtrace,
}

impl Attempt {
    /// Every attempt, attacks first.
    pub const ALL: [Attempt; 20] = [
        Attempt::ExecShell,
        Attempt::ReadShadow,
        Attempt::ReadOutsideGrants,
        Attempt::WriteEtc,
        Attempt::WriteOutsideGrants,
        Attempt::InetSocket,
        Attempt::Ptrace,
        Attempt::AbstractUnix,
        Attempt::PathUnix,
        Attempt::ConnectOpenUnix,
        Attempt::SignalSameUser,
        Attempt::TgkillSameUser,
        Attempt::SetuidRoot,
        Attempt::PacketSocket,
        Attempt::ParserNetlink,
        Attempt::ParserUnix,
        Attempt::ParserNetAdmin,
        Attempt::ParserWriteRing,
        Attempt::ParserSignal,
        Attempt::ParserPtrace,
    ];

    /// Whether it is tried from inside the parser (confined as `scramd run`'s parser is, holding
    /// a ring socket) rather than the privileged part.
    pub fn in_parser(self) -> bool {
        matches!(
            self,
            Attempt::ParserNetlink
                | Attempt::ParserUnix
                | Attempt::ParserNetAdmin
                | Attempt::ParserWriteRing
                | Attempt::ParserSignal
                | Attempt::ParserPtrace
        )
    }

    /// What is tried, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Attempt::ExecShell => "exec /bin/sh",
            Attempt::ReadShadow => "open /etc/shadow for reading",
            Attempt::ReadOutsideGrants => "read /etc/hostname (anyone may)",
            Attempt::WriteEtc => "create a file under /etc",
            Attempt::WriteOutsideGrants => "create a file in /tmp (anyone may)",
            Attempt::InetSocket => "open an AF_INET socket",
            Attempt::Ptrace => "ptrace the parent process",
            Attempt::AbstractUnix => "connect to an abstract unix socket",
            Attempt::PathUnix => "connect to another path unix socket",
            Attempt::ConnectOpenUnix => "connect an open unix socket elsewhere",
            Attempt::SignalSameUser => "signal a process of the same user",
            Attempt::TgkillSameUser => "tgkill a process of the same user",
            Attempt::SetuidRoot => "setuid(0)",
            Attempt::PacketSocket => "open an AF_PACKET socket (capture)",
            Attempt::ParserNetlink => "parser: open a netlink socket",
            Attempt::ParserUnix => "parser: open a unix socket",
            Attempt::ParserNetAdmin => "parser: use CAP_NET_ADMIN (SO_MARK)",
            Attempt::ParserWriteRing => "parser: send a frame on its ring socket",
            Attempt::ParserSignal => "parser: signal the privileged part",
            Attempt::ParserPtrace => "parser: ptrace the privileged part",
        }
    }

    /// The layer that refuses it when the call fails with EACCES or EPERM: file permissions
    /// come first where they forbid it; the rows on files anyone may use reach Landlock.
    pub fn refused_by(self) -> &'static str {
        match self {
            Attempt::ReadShadow | Attempt::WriteEtc => "file permissions; Landlock behind them",
            Attempt::ReadOutsideGrants | Attempt::WriteOutsideGrants => "Landlock",
            Attempt::ExecShell => "Landlock (no execute right anywhere)",
            Attempt::Ptrace | Attempt::SetuidRoot => "capabilities",
            Attempt::AbstractUnix
            | Attempt::ConnectOpenUnix
            | Attempt::SignalSameUser
            | Attempt::TgkillSameUser => "Landlock scoping",
            Attempt::PathUnix => "Landlock",
            Attempt::InetSocket | Attempt::PacketSocket => "the kernel",
            Attempt::ParserNetAdmin => "capabilities: the parser holds none",
            Attempt::ParserNetlink
            | Attempt::ParserUnix
            | Attempt::ParserWriteRing
            | Attempt::ParserSignal
            | Attempt::ParserPtrace => "seccomp",
        }
    }

    /// Whether the confined daemon must still be able to do it.
    pub fn must_work(self) -> bool {
        self == Attempt::PacketSocket
    }

    /// Tries it against `targets`; `Ok` means it worked.
    fn try_it(self, targets: &Targets) -> std::io::Result<()> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let abstract_addr = || SocketAddr::from_abstract_name(targets.abstract_name.as_bytes());
        match self {
            Attempt::ExecShell => {
                let err = nix::unistd::execv(c"/bin/sh", &[c"sh", c"-c", c"true"]).unwrap_err();
                Err(err.into())
            }
            Attempt::ReadShadow => std::fs::File::open("/etc/shadow").map(drop),
            Attempt::ReadOutsideGrants => std::fs::File::open("/etc/hostname").map(drop),
            Attempt::WriteOutsideGrants => create_in("/tmp"),
            Attempt::WriteEtc => create_in("/etc"),
            Attempt::InetSocket => socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map(drop)
            .map_err(Into::into),
            // The parent's pid was read before confinement: the attempt reaches ptrace itself.
            Attempt::Ptrace => nix::sys::ptrace::attach(nix::unistd::Pid::from_raw(targets.parent))
                .map_err(Into::into),
            Attempt::AbstractUnix => {
                UnixDatagram::unbound().and_then(|s| s.connect_addr(&abstract_addr()?))
            }
            Attempt::PathUnix => UnixDatagram::unbound().and_then(|s| s.connect(&targets.path)),
            Attempt::ConnectOpenUnix => match &targets.open_unix {
                Some(s) => s.connect_addr(&abstract_addr()?),
                None => Err(std::io::Error::other(
                    "no socket was opened before confinement",
                )),
            },
            Attempt::SignalSameUser => nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(targets.same_user),
                nix::sys::signal::Signal::SIGTERM,
            )
            .map_err(Into::into),
            Attempt::TgkillSameUser => crate::sys::process::tgkill_main_thread(targets.same_user),
            Attempt::SetuidRoot => {
                nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).map_err(Into::into)
            }
            Attempt::PacketSocket => crate::sys::packet::PacketSocket::open()
                .map(drop)
                .map_err(|e| e.source),
            Attempt::ParserNetlink => socket(
                AddressFamily::Netlink,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                nix::sys::socket::SockProtocol::NetlinkRoute,
            )
            .map(drop)
            .map_err(Into::into),
            Attempt::ParserUnix => UnixDatagram::unbound().map(drop),
            Attempt::ParserNetAdmin => match &targets.ring {
                Some(fd) => nix::sys::socket::setsockopt(fd, nix::sys::socket::sockopt::Mark, &1)
                    .map_err(Into::into),
                None => Err(std::io::Error::other("no ring socket was opened")),
            },
            Attempt::ParserWriteRing => match &targets.ring {
                Some(fd) => nix::sys::socket::send(
                    std::os::fd::AsRawFd::as_raw_fd(fd),
                    &[0u8; 60],
                    nix::sys::socket::MsgFlags::empty(),
                )
                .map(drop)
                .map_err(Into::into),
                None => Err(std::io::Error::other("no ring socket was opened")),
            },
            Attempt::ParserSignal => nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(targets.parent),
                nix::sys::signal::Signal::SIGTERM,
            )
            .map_err(Into::into),
            Attempt::ParserPtrace => {
                nix::sys::ptrace::attach(nix::unistd::Pid::from_raw(targets.parent))
                    .map_err(Into::into)
            }
        }
    }
}

/// Creates a file in `dir` (and removes it again if that worked).
fn create_in(dir: &str) -> std::io::Result<()> {
    let path = format!("{dir}/scram-self-check-{}", std::process::id());
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
            // EAFNOSUPPORT can only come from the filter here: every family tried exists.
            Outcome::Refused(e) if e.contains("Address family not supported") => {
                write!(f, "refused: {e} (seccomp socket family filter)")
            }
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

/// What the attempts aim at, set up by the parent before the child is forked: sockets that
/// listen (writable by anyone, so only the sandbox can refuse), and a process of the user the
/// child becomes.
struct Targets {
    /// The parent's pid (read before confinement).
    parent: i32,
    /// An abstract socket the parent listens on.
    abstract_name: String,
    /// A path socket the parent listens on.
    path: std::path::PathBuf,
    /// A unix socket the child opens before confinement, as the journal's is.
    open_unix: Option<std::os::unix::net::UnixDatagram>,
    /// A process running as the user the child becomes.
    same_user: i32,
    /// A packet socket the parser-role child opens before confinement, as its rings are.
    ring: Option<OwnedFd>,
}

/// The listeners and the process the targets name; gone on drop.
struct Fixtures {
    _abstract: std::os::unix::net::UnixDatagram,
    _path: std::os::unix::net::UnixDatagram,
    dir: std::path::PathBuf,
    same_user: std::process::Child,
}

impl Drop for Fixtures {
    fn drop(&mut self) {
        let _ = self.same_user.kill();
        let _ = self.same_user.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The user the child runs as once confined: `plan.user` when started as root, else this one.
fn confined_ids(plan: &Plan) -> (u32, u32) {
    if nix::unistd::geteuid().is_root() {
        if let Ok(Some(u)) = nix::unistd::User::from_name(&plan.user) {
            return (u.uid.as_raw(), u.gid.as_raw());
        }
    }
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

fn fixtures(plan: &Plan) -> std::io::Result<(Fixtures, Targets)> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    use std::os::unix::process::CommandExt;
    let me = std::process::id();
    let abstract_name = format!("scram-self-check-{me}");
    let abstract_socket =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(abstract_name.as_bytes())?)?;
    let dir = std::env::temp_dir().join(format!("scram-self-check-{me}"));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let path = dir.join("socket");
    let _ = std::fs::remove_file(&path);
    let path_socket = UnixDatagram::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))?;
    let (uid, gid) = confined_ids(plan);
    let same_user = std::process::Command::new("sleep")
        .arg("60")
        .uid(uid)
        .gid(gid)
        .stdin(std::process::Stdio::null())
        .spawn()?;
    let targets = Targets {
        parent: me as i32,
        abstract_name,
        path: path.clone(),
        open_unix: None,
        same_user: same_user.id() as i32,
        ring: None,
    };
    Ok((
        Fixtures {
            _abstract: abstract_socket,
            _path: path_socket,
            dir,
            same_user,
        },
        targets,
    ))
}

/// Runs `attempt` in a confined child.
pub fn run(plan: &Plan, attempt: Attempt) -> std::io::Result<Report> {
    let (fixtures, mut targets) = fixtures(plan)?;
    let (from_child, to_parent) = nix::unistd::pipe()?;
    let (from_parent, to_child) = nix::unistd::pipe()?;
    let report = match fork_single_threaded()? {
        Forked::Child => {
            drop(from_child);
            drop(to_child);
            targets.open_unix = std::os::unix::net::UnixDatagram::unbound().ok();
            let mut plan = plan.clone();
            if attempt.in_parser() {
                // The parser's confinement, holding a packet socket as it holds its rings.
                targets.ring = crate::sys::packet::PacketSocket::open()
                    .ok()
                    .map(OwnedFd::from);
                plan.role = super::Role::Parser;
                plan.ring_fds = targets
                    .ring
                    .iter()
                    .map(std::os::fd::AsRawFd::as_raw_fd)
                    .collect();
            }
            child(&plan, attempt, &targets, to_parent, from_parent)
        }
        Forked::Parent(pid) => {
            drop(to_parent);
            drop(from_parent);
            parent(pid, attempt, from_child, to_child)
        }
    };
    drop(fixtures);
    report
}

fn child(
    plan: &Plan,
    attempt: Attempt,
    targets: &Targets,
    to_parent: OwnedFd,
    from_parent: OwnedFd,
) -> ! {
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
    match attempt.try_it(targets) {
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
