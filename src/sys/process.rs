//! fork(2) for the sandbox self-check, which runs each attempt in a child it can lose.

use std::io;

/// Which side of a fork this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The original process; the child's pid.
    Parent(i32),
    /// The new process.
    Child,
}

/// Forks the process, which must have exactly one thread.
///
/// Refuses (with `EBUSY`) when the process has more than one thread: a child of a threaded
/// process may inherit locks held by threads that do not exist in it.
pub fn fork_single_threaded() -> io::Result<Forked> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    // SAFETY: the process has a single thread (checked just above; nothing in this function
    // starts one), so the child starts with every lock in a consistent state and may call any
    // function, not only async-signal-safe ones.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Sends SIGTERM to thread `pid` of process `pid` (a process's main thread) with tgkill(2), for
/// the self-check: the call a confined daemon may make, at itself only.
pub fn tgkill_main_thread(pid: i32) -> io::Result<()> {
    // SAFETY: tgkill takes three integers and reads no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, pid, libc::SIGTERM) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes ownership of descriptor `fd`, inherited across `execve` from the process that started
/// this one (privilege separation hands the parser its ring sockets and channel ends so). Fails
/// with `EBADF` when no such descriptor is open; sets close-on-exec on it.
pub fn inherited_fd(fd: i32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 3 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: fcntl(F_SETFD) takes integers and reads no memory of ours; it fails with EBADF
    // for a number that is not open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (F_SETFD just succeeded on it) and was inherited for this process
    // to own: the starting process handed it over and holds no copy in this process, and it is
    // taken once per handover.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Clears close-on-exec on `fd`, so a program this process executes inherits it.
pub fn inherit_across_exec(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map(|_| ())
    .map_err(io::Error::from)
}
