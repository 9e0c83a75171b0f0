//! The seccomp allow-list: every system call the running daemon makes, and who makes it.
//!
//! Kept as data. A call not listed kills the process (SIGSYS, logged by the kernel's audit), so
//! a missing entry shows at once in tests instead of as a silent failure. `socket` is further
//! limited to the families the daemon opens after confinement (netlink for active response,
//! packet for capture) and `socketpair` to AF_UNIX (tokio's signal pipe); any other family fails
//! with EAFNOSUPPORT, as systemd's RestrictAddressFamilies= does. The journal's and the service
//! manager's sockets are opened before confinement, so no unix socket can be created or
//! connected afterwards (`connect` is not listed): an abstract or path socket of another process
//! is out of reach on every kernel, whatever Landlock scopes there.
//!
//! Start-up calls (opening sockets, mapping rings, changing identity, loading this filter) are
//! not listed: they all happen before the filter is installed.

use std::collections::BTreeMap;

use super::Role;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// `(name, number, who needs it)`, one row per allowed call.
pub const ALLOWED: &[(&str, libc::c_long, &str)] = &[
    // Memory: the allocator, thread stacks and guard pages.
    ("brk", libc::SYS_brk, "allocator"),
    ("mmap", libc::SYS_mmap, "allocator, thread stacks"),
    (
        "munmap",
        libc::SYS_munmap,
        "allocator, thread exit, ring unmap at stop",
    ),
    ("mremap", libc::SYS_mremap, "allocator (large realloc)"),
    ("mprotect", libc::SYS_mprotect, "thread stack guard pages"),
    ("madvise", libc::SYS_madvise, "allocator, thread exit"),
    // Threads: workers, the alert thread, and their exit.
    ("clone", libc::SYS_clone, "std::thread::spawn (older libc)"),
    ("clone3", libc::SYS_clone3, "std::thread::spawn"),
    (
        "set_robust_list",
        libc::SYS_set_robust_list,
        "new threads (libc)",
    ),
    ("rseq", libc::SYS_rseq, "new threads (libc)"),
    (
        "sigaltstack",
        libc::SYS_sigaltstack,
        "new threads (std's stack overflow guard)",
    ),
    (
        "sched_getaffinity",
        libc::SYS_sched_getaffinity,
        "new threads (std)",
    ),
    ("gettid", libc::SYS_gettid, "thread ids (std, tracing)"),
    (
        "futex",
        libc::SYS_futex,
        "joins, once-cells, channel wake-ups",
    ),
    ("sched_yield", libc::SYS_sched_yield, "spin loops in std"),
    ("exit", libc::SYS_exit, "thread exit"),
    ("exit_group", libc::SYS_exit_group, "process exit"),
    // Time: the packet clock and the control loop's timers (vDSO first, syscall as fallback).
    (
        "clock_gettime",
        libc::SYS_clock_gettime,
        "Instant/SystemTime without vDSO",
    ),
    (
        "clock_nanosleep",
        libc::SYS_clock_nanosleep,
        "thread::sleep (alert thread, link down)",
    ),
    (
        "nanosleep",
        libc::SYS_nanosleep,
        "thread::sleep (older libc)",
    ),
    // Signals: tokio's SIGTERM/SIGINT/SIGHUP handlers, abort on a fatal error.
    (
        "rt_sigaction",
        libc::SYS_rt_sigaction,
        "tokio signal handlers",
    ),
    (
        "rt_sigprocmask",
        libc::SYS_rt_sigprocmask,
        "thread spawn, abort",
    ),
    (
        "rt_sigreturn",
        libc::SYS_rt_sigreturn,
        "return from a signal handler",
    ),
    (
        "restart_syscall",
        libc::SYS_restart_syscall,
        "sleeps interrupted by a signal",
    ),
    ("getpid", libc::SYS_getpid, "abort"),
    (
        "tgkill",
        libc::SYS_tgkill,
        "abort (raise); only to this process (see allow_list)",
    ),
    // Capture: waiting on the ring, kernel counters, link state.
    ("poll", POLL, "capture workers wait for a block"),
    ("ppoll", libc::SYS_ppoll, "poll on aarch64"),
    (
        "getsockopt",
        libc::SYS_getsockopt,
        "PACKET_STATISTICS, SO_ERROR after a link error",
    ),
    (
        "bind",
        libc::SYS_bind,
        "netlink sockets (local addresses for active response)",
    ),
    // The control loop: tokio's epoll driver, its waker and its signal pipe.
    ("epoll_create1", libc::SYS_epoll_create1, "tokio runtime"),
    ("epoll_ctl", libc::SYS_epoll_ctl, "tokio runtime"),
    ("epoll_wait", EPOLL_WAIT, "tokio runtime"),
    (
        "epoll_pwait",
        libc::SYS_epoll_pwait,
        "tokio runtime (aarch64)",
    ),
    ("eventfd2", libc::SYS_eventfd2, "tokio waker"),
    (
        "socketpair",
        libc::SYS_socketpair,
        "tokio signal pipe (AF_UNIX only)",
    ),
    (
        "fcntl",
        libc::SYS_fcntl,
        "tokio (F_DUPFD_CLOEXEC), journal memfd seals",
    ),
    ("recvfrom", libc::SYS_recvfrom, "tokio signal pipe"),
    (
        "read",
        libc::SYS_read,
        "config and blocklist re-read, tokio pipes",
    ),
    (
        "write",
        libc::SYS_write,
        "logs on stderr, alerts on stdout and in files, tokio waker",
    ),
    ("writev", libc::SYS_writev, "buffered writers"),
    ("close", libc::SYS_close, "every fd"),
    // Reload: re-reading the configuration and blocklist files (Landlock limits which).
    ("openat", libc::SYS_openat, "config and blocklist re-read"),
    ("statx", libc::SYS_statx, "std::fs::read_to_string"),
    ("newfstatat", libc::SYS_newfstatat, "std::fs metadata"),
    ("fstat", libc::SYS_fstat, "std::fs metadata"),
    ("lseek", libc::SYS_lseek, "std::fs"),
    ("getrandom", libc::SYS_getrandom, "hash map seeds"),
    // Journal and service manager (their sockets opened before confinement), active response.
    (
        "socket",
        libc::SYS_socket,
        "netlink for active response (AF_NETLINK, AF_PACKET only)",
    ),
    (
        "sendto",
        libc::SYS_sendto,
        "journal entries, service manager notifications, netlink requests",
    ),
    (
        "sendmsg",
        libc::SYS_sendmsg,
        "large journal entries (memfd), netlink batches",
    ),
    ("recvmsg", libc::SYS_recvmsg, "netlink replies"),
    (
        "memfd_create",
        libc::SYS_memfd_create,
        "large journal entries",
    ),
    (
        "ftruncate",
        libc::SYS_ftruncate,
        "large journal entries (memfd)",
    ),
    ("getsockname", libc::SYS_getsockname, "netlink port id"),
];

/// `prctl` options allowed (any other option kills): thread names only.
pub const PRCTL_OPTIONS: &[(libc::c_int, &str)] = &[
    (libc::PR_SET_NAME, "std::thread::Builder::name"),
    (libc::PR_GET_NAME, "thread names (libc)"),
];

/// Calls that must never be on the list: changing identity or capabilities, executing,
/// tracing, loading code or filters, mounting. A unit test holds the list to this.
pub const NEVER: &[(&str, libc::c_long)] = &[
    ("execve", libc::SYS_execve),
    ("execveat", libc::SYS_execveat),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("setuid", libc::SYS_setuid),
    ("setresuid", libc::SYS_setresuid),
    ("setgid", libc::SYS_setgid),
    ("setresgid", libc::SYS_setresgid),
    ("setgroups", libc::SYS_setgroups),
    ("capset", libc::SYS_capset),
    ("seccomp", libc::SYS_seccomp),
    ("bpf", libc::SYS_bpf),
    ("mount", libc::SYS_mount),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("kexec_load", libc::SYS_kexec_load),
    ("init_module", libc::SYS_init_module),
    ("ioctl", libc::SYS_ioctl),
    ("kill", libc::SYS_kill),
    ("connect", libc::SYS_connect),
    ("mknodat", libc::SYS_mknodat),
    ("unlinkat", libc::SYS_unlinkat),
];

#[cfg(target_arch = "x86_64")]
const POLL: libc::c_long = libc::SYS_poll;
#[cfg(not(target_arch = "x86_64"))]
const POLL: libc::c_long = libc::SYS_ppoll;
#[cfg(target_arch = "x86_64")]
const EPOLL_WAIT: libc::c_long = libc::SYS_epoll_wait;
#[cfg(not(target_arch = "x86_64"))]
const EPOLL_WAIT: libc::c_long = libc::SYS_epoll_pwait;

/// The socket families the daemon opens with `socket` after confinement.
pub const FAMILIES: [i32; 2] = [libc::AF_NETLINK, libc::AF_PACKET];

/// The socket families of `socketpair` after confinement.
pub const PAIR_FAMILIES: [i32; 1] = [libc::AF_UNIX];

/// Errors building or loading the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The filter could not be built (an impossible rule, an unknown architecture).
    #[error("building the filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    /// The kernel refused it.
    #[error("loading the filter: {0}")]
    Load(#[from] seccompiler::Error),
}

fn arch() -> Result<TargetArch, SeccompError> {
    Ok(TargetArch::try_from(std::env::consts::ARCH)?)
}

/// The allow-list filter: listed calls pass, anything else kills the process. With
/// `fanout_later`, also the `setsockopt` calls that form a fanout group on a link that was down
/// at start.
///
/// By `role`: the privileged part may also wait for its parser (`wait4`); the parser may not
/// create any socket (its own are open before confinement) and may not write or send on
/// `ring_fds`, the capture sockets it reads.
pub fn allow_list(
    fanout_later: bool,
    role: Role,
    ring_fds: &[i32],
) -> Result<BpfProgram, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &(_, nr, _) in ALLOWED {
        rules.insert(nr, Vec::new());
    }
    match role {
        Role::Whole => {}
        Role::Privileged => {
            rules.insert(libc::SYS_wait4, Vec::new());
        }
        Role::Parser => {
            rules.remove(&libc::SYS_socket);
            if !ring_fds.is_empty() {
                let not_a_ring = ring_fds
                    .iter()
                    .map(|&fd| {
                        SeccompCondition::new(
                            0,
                            SeccompCmpArgLen::Dword,
                            SeccompCmpOp::Ne,
                            fd as u64,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                for nr in [
                    libc::SYS_write,
                    libc::SYS_writev,
                    libc::SYS_sendto,
                    libc::SYS_sendmsg,
                ] {
                    rules.insert(nr, vec![SeccompRule::new(not_a_ring.clone())?]);
                }
            }
        }
    }
    let prctl = PRCTL_OPTIONS
        .iter()
        .map(|&(option, _)| {
            let c =
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, option as u64)?;
            SeccompRule::new(vec![c])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_prctl, prctl);
    // setsockopt only to form or join a fanout group (and its promiscuous membership) on a link
    // that was down at start, and only then: a socket that may join any group could join
    // another capture tool's and take a share of its frames.
    let packet_option = |option: i32| -> Result<SeccompRule, SeccompError> {
        Ok(SeccompRule::new(vec![
            SeccompCondition::new(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                libc::SOL_PACKET as u64,
            )?,
            SeccompCondition::new(2, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, option as u64)?,
        ])?)
    };
    if fanout_later {
        rules.insert(
            libc::SYS_setsockopt,
            vec![
                packet_option(libc::PACKET_FANOUT)?,
                packet_option(libc::PACKET_ADD_MEMBERSHIP)?,
            ],
        );
    }
    // tgkill only at this process's own threads (abort raising SIGABRT): not at another
    // process of the same user, which only Landlock ABI 6 would otherwise scope.
    let own = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        u64::from(std::process::id()),
    )?;
    rules.insert(libc::SYS_tgkill, vec![SeccompRule::new(vec![own])?]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch()?,
    )?;
    Ok(filter.try_into()?)
}

/// The family filter: `socket` with a family outside [`FAMILIES`], and `socketpair` outside
/// [`PAIR_FAMILIES`], fail with EAFNOSUPPORT; everything else passes on to the allow-list.
pub fn families() -> Result<BpfProgram, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, families) in [
        (libc::SYS_socket, &FAMILIES[..]),
        (libc::SYS_socketpair, &PAIR_FAMILIES[..]),
    ] {
        // One rule matching "family is none of these": every condition must hold.
        let conditions = families
            .iter()
            .map(|&f| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, f as u64))
            .collect::<Result<Vec<_>, _>>()?;
        rules.insert(nr, vec![SeccompRule::new(conditions)?]);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EAFNOSUPPORT as u32),
        arch()?,
    )?;
    Ok(filter.try_into()?)
}

/// Installs both filters on every thread of the process (see [`allow_list`] for
/// `fanout_later`). Needs no-new-privs (or CAP_SYS_ADMIN).
pub fn install(fanout_later: bool, role: Role, ring_fds: &[i32]) -> Result<(), SeccompError> {
    // The kernel runs every filter and keeps the strictest answer: kill beats errno beats allow.
    let families = families()?;
    let allow = allow_list(fanout_later, role, ring_fds)?;
    seccompiler::apply_filter_all_threads(&families)?;
    seccompiler::apply_filter_all_threads(&allow)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_filters_build_for_this_architecture() {
        for role in [Role::Whole, Role::Privileged, Role::Parser] {
            assert!(!allow_list(false, role, &[]).unwrap().is_empty());
            assert!(!allow_list(true, role, &[5, 6]).unwrap().is_empty());
        }
        assert!(!families().unwrap().is_empty());
    }

    #[test]
    fn the_list_has_no_duplicates_and_nothing_that_must_never_be_allowed() {
        let mut seen = std::collections::BTreeSet::new();
        for &(name, nr, who) in ALLOWED {
            assert!(
                seen.insert(nr) || name == "poll" || name == "epoll_wait",
                "{name} twice"
            );
            assert!(!who.is_empty(), "{name} has no reason");
            assert!(
                NEVER.iter().all(|&(_, n)| n != nr),
                "{name} must never be allowed"
            );
        }
        assert!(ALLOWED.iter().all(|&(_, nr, _)| nr != libc::SYS_prctl));
    }
}
