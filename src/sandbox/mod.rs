//! Giving up privilege: after the sockets and rings are open and before any thread exists, the
//! daemon becomes its unprivileged user with only CAP_NET_RAW and CAP_NET_ADMIN, sets
//! no-new-privs, and confines itself with Landlock and seccomp.
//!
//! [`confine`] is one straight function, one step per comment, in the only order that works
//! (each step needs a privilege the next one gives up). Every failure is an error variant that
//! names the step; the daemon exits on any of them and never goes on with more than it should.
//!
//! Owns: the order of the steps and the verification of the end state. Not here: the Landlock
//! rules ([`fs`]) and the system call allow-list ([`syscalls`]), which are data.

pub mod fs;
pub mod selfcheck;
pub mod syscalls;

use std::collections::HashSet;
use std::path::PathBuf;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};

use serde::Deserialize;
use toml::Spanned;

use crate::detect::SpanError;

/// The two capabilities the running daemon keeps: CAP_NET_RAW for AF_PACKET, CAP_NET_ADMIN for
/// promiscuous mode and nftables.
pub const KEPT: [Capability; 2] = [Capability::CAP_NET_RAW, Capability::CAP_NET_ADMIN];

/// `[privileges]`: who the daemon becomes when started as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivilegesConfig {
    /// The user (and its primary group) the daemon switches to after opening its sockets.
    pub user: String,
}

impl Default for PrivilegesConfig {
    fn default() -> Self {
        PrivilegesConfig {
            user: "scram".into(),
        }
    }
}

/// `[privileges]` as read from the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrivileges {
    user: Option<Spanned<String>>,
}

impl PrivilegesConfig {
    /// Validates `[privileges]`; errors carry the offending value's span.
    pub fn configure(&mut self, raw: RawPrivileges) -> Result<(), SpanError> {
        if let Some(u) = raw.user {
            let name = u.get_ref();
            let valid = !name.is_empty()
                && name.len() <= 32
                && !name.starts_with('-')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid {
                return Err((
                    u.span(),
                    format!("privileges.user = {name:?} is not a valid user name"),
                ));
            }
            if name == "root" {
                return Err((
                    u.span(),
                    "privileges.user = \"root\": the daemon never keeps running as root".into(),
                ));
            }
            self.user = name.clone();
        }
        Ok(())
    }

    /// `[privileges]` as TOML.
    pub fn toml(&self) -> String {
        format!("\n[privileges]\nuser = {:?}\n", self.user)
    }
}

/// `[sandbox]`: how the daemon confines itself once its sockets are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Restrict file access with Landlock.
    pub landlock: bool,
    /// Refuse to start when the kernel cannot enforce Landlock (otherwise a warning).
    pub landlock_required: bool,
    /// Restrict system calls with a seccomp allow-list.
    pub seccomp: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            landlock: true,
            landlock_required: false,
            seccomp: true,
        }
    }
}

/// `[sandbox]` as read from the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    landlock: Option<bool>,
    landlock_required: Option<bool>,
    seccomp: Option<bool>,
}

impl SandboxConfig {
    /// Takes `[sandbox]` (switches only: nothing to validate).
    pub fn configure(&mut self, raw: RawSandbox) {
        self.landlock = raw.landlock.unwrap_or(self.landlock);
        self.landlock_required = raw.landlock_required.unwrap_or(self.landlock_required);
        self.seccomp = raw.seccomp.unwrap_or(self.seccomp);
    }

    /// `[sandbox]` as TOML.
    pub fn toml(&self) -> String {
        format!(
            "\n[sandbox]\nlandlock = {}\nlandlock_required = {}\nseccomp = {}\n",
            self.landlock, self.landlock_required, self.seccomp
        )
    }
}

/// What to confine the process to.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The user to become when started as root.
    pub user: String,
    /// Which confinement layers to apply.
    pub sandbox: SandboxConfig,
    /// Files Landlock lets the daemon read again later (config, blocklists).
    pub read_files: Vec<PathBuf>,
    /// Files Landlock lets the daemon write (JSON alert files).
    pub write_files: Vec<PathBuf>,
    /// Directories Landlock lets the daemon write beneath (its state directory).
    pub write_dirs: Vec<PathBuf>,
    /// Files Landlock lets the process read, exactly these (replay's capture files).
    pub read_exact: Vec<PathBuf>,
    /// A link was down at start, so a fanout group is still to be formed: seccomp then lets
    /// the capture workers call `setsockopt(SOL_PACKET, PACKET_FANOUT or
    /// PACKET_ADD_MEMBERSHIP)`, which it refuses otherwise.
    pub fanout_later: bool,
    /// Which part of the daemon this process is.
    pub role: Role,
    /// The parser's ring sockets: seccomp refuses `write`, `writev`, `sendto` and `sendmsg` on
    /// them (a taken-over parser must not send frames on the capture sockets it reads).
    pub ring_fds: Vec<i32>,
}

/// Which part of the daemon a process is (privilege separation, see `crate::privsep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Capture, parsing and the privileged calls in one process (the self-check).
    Whole,
    /// The privileged part: keeps CAP_NET_RAW and CAP_NET_ADMIN, waits for its parser, reads
    /// no packet.
    Privileged,
    /// The parser: no capability at all, no socket of its own, nothing sent on a ring socket.
    Parser,
}

/// How far confinement got, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confined {
    /// The user the daemon now runs as.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// The capabilities it holds (effective = permitted).
    pub capabilities: CapsHashSet,
    /// The user's name, when it has one.
    pub user: Option<String>,
    /// What Landlock enforces.
    pub landlock: fs::Enforcement,
    /// Whether the seccomp filter is installed.
    pub seccomp: bool,
}

/// A confinement step that failed. The daemon exits on every one.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Confinement must happen before any thread exists, or some threads escape it.
    #[error("confinement must run single-threaded, but the process has {0} threads")]
    Threads(usize),
    /// The configured user does not exist.
    #[error(
        "privileges.user: no user {0:?} on this system (create it with systemd-sysusers or \
         `useradd --system {0}`, or name another user)"
    )]
    UnknownUser(String),
    /// The configured user is root under another name.
    #[error("privileges.user: {0:?} has uid 0; the daemon never keeps running as root")]
    RootUser(String),
    /// Reading the user database failed.
    #[error("looking up user {user:?}: {source}")]
    UserLookup {
        /// The user.
        user: String,
        /// Why.
        source: nix::Error,
    },
    /// A capability the step needs is not held.
    #[error("{step} needs {capability}, which this process does not hold")]
    Privilege {
        /// The step.
        step: &'static str,
        /// The capability, as `CAP_...`.
        capability: &'static str,
    },
    /// A needed capability was lost or an extra one survived: the end state is not the promised
    /// one.
    #[error("after dropping privileges: {0}")]
    Verify(String),
    /// A step's system call failed.
    #[error("{step}: {message}")]
    Step {
        /// The step.
        step: &'static str,
        /// The error.
        message: String,
    },
    /// The config requires Landlock and the kernel cannot enforce it.
    #[error(
        "sandbox.landlock_required = true, but this kernel does not enforce Landlock ({0}); \
         boot with lsm=...,landlock or set landlock_required = false"
    )]
    LandlockUnavailable(String),
}

fn step<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> SandboxError {
    move |e| SandboxError::Step {
        step,
        message: e.to_string(),
    }
}

/// Clears the ambient capability set (a prctl, always allowed): a program this process
/// executes then starts with no capability unless it is root or has file capabilities.
pub fn clear_ambient() -> Result<(), SandboxError> {
    caps::clear(None, CapSet::Ambient).map_err(step("PR_CAP_AMBIENT_CLEAR_ALL"))
}

/// Gives up every privilege but [`KEPT`] and confines the process, as `plan` says.
///
/// Call it after every socket and ring is open and before any thread is started: capabilities,
/// Landlock and seccomp are per thread, and threads started later inherit them.
pub fn confine(plan: &Plan) -> Result<Confined, SandboxError> {
    // Threads that already exist would keep everything this function gives up.
    let threads = thread_count();
    if threads != 1 {
        return Err(SandboxError::Threads(threads));
    }
    let kept: CapsHashSet = if plan.role == Role::Parser {
        CapsHashSet::default()
    } else {
        KEPT.into_iter().collect()
    };
    let name;
    let mut inheritable_kept = false;

    if Uid::effective().is_root() {
        // Started as root: find the user before giving up the right to read anything.
        let user = match User::from_name(&plan.user) {
            Ok(Some(u)) => u,
            Ok(None) => return Err(SandboxError::UnknownUser(plan.user.clone())),
            Err(source) => {
                return Err(SandboxError::UserLookup {
                    user: plan.user.clone(),
                    source,
                })
            }
        };
        if user.uid.is_root() {
            return Err(SandboxError::RootUser(plan.user.clone()));
        }
        name = Some(user.name.clone());
        // Root without the capabilities to change identity (a restricted container) must not
        // go on as root.
        for (cap, name) in [
            (Capability::CAP_SETPCAP, "CAP_SETPCAP"),
            (Capability::CAP_SETGID, "CAP_SETGID"),
            (Capability::CAP_SETUID, "CAP_SETUID"),
        ] {
            if !caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false) {
                return Err(SandboxError::Privilege {
                    step: "switching to the unprivileged user",
                    capability: name,
                });
            }
        }
        // 1. Trim the bounding set to the two kept capabilities. This needs CAP_SETPCAP, so it
        //    comes before the uid change takes it away.
        trim_bounding(&kept)?;
        // 2. Keep the permitted set across the uid change (without this, setresuid empties it).
        nix::sys::prctl::set_keepcaps(true).map_err(step("PR_SET_KEEPCAPS"))?;
        // 3. Drop root's supplementary groups while CAP_SETGID is still held.
        nix::unistd::setgroups(&[]).map_err(step("setgroups([])"))?;
        // 4. The group, then the user: after setresuid there is no way back.
        let gid = user.gid;
        nix::unistd::setresgid(gid, gid, gid).map_err(step("setresgid"))?;
        let uid = user.uid;
        nix::unistd::setresuid(uid, uid, uid).map_err(step("setresuid"))?;
        // 5. Permitted and effective become exactly the two kept capabilities; inheritable and
        //    ambient nothing, so nothing is handed to an executed program.
        caps::set(None, CapSet::Permitted, &kept).map_err(step("capset(permitted)"))?;
        caps::set(None, CapSet::Effective, &kept).map_err(step("capset(effective)"))?;
        caps::clear(None, CapSet::Inheritable).map_err(step("capset(inheritable)"))?;
        caps::clear(None, CapSet::Ambient).map_err(step("PR_CAP_AMBIENT_CLEAR_ALL"))?;
        nix::sys::prctl::set_keepcaps(false).map_err(step("PR_SET_KEEPCAPS"))?;
    } else {
        // Started unprivileged (systemd's User= or DynamicUser= with AmbientCapabilities=):
        // keep the kept capabilities this process holds, drop everything else it holds.
        name = User::from_uid(Uid::current())
            .ok()
            .flatten()
            .map(|u| u.name);
        let permitted = caps::read(None, CapSet::Permitted).map_err(step("capget"))?;
        let keep: CapsHashSet = permitted.intersection(&kept).copied().collect();
        // 1. The bounding set can only be trimmed while CAP_SETPCAP is held; without it the
        //    unit's CapabilityBoundingSet= is what limits it (and no-new-privs makes it moot).
        if permitted.contains(&Capability::CAP_SETPCAP) {
            caps::raise(None, CapSet::Effective, Capability::CAP_SETPCAP)
                .map_err(step("capset(effective)"))?;
            trim_bounding(&kept)?;
        }
        // 2. Ambient nothing (a prctl, always allowed).
        caps::clear(None, CapSet::Ambient).map_err(step("PR_CAP_AMBIENT_CLEAR_ALL"))?;
        // 3. Effective and permitted become what is kept. capset only when something changes:
        //    a hardened unit's system call filter (~@privileged) refuses it, and under such a
        //    unit they already are what is kept.
        let effective = caps::read(None, CapSet::Effective).map_err(step("capget"))?;
        if effective != keep || permitted != keep {
            caps::set(None, CapSet::Effective, &keep).map_err(step("capset(effective)"))?;
            caps::set(None, CapSet::Permitted, &keep).map_err(step("capset(permitted)"))?;
        }
        // 4. Inheritable nothing. systemd gives ambient capabilities through the inheritable
        //    set, and clearing it takes capset: where the unit refuses that, the kept two stay
        //    inheritable, which only matters across execve, and no-new-privs, Landlock and
        //    seccomp all rule execve out.
        let inheritable = caps::read(None, CapSet::Inheritable).map_err(step("capget"))?;
        if !inheritable.is_empty() {
            if let Err(e) = caps::clear(None, CapSet::Inheritable) {
                // The parser inherits systemd's inheritable two across its execve and holds
                // nothing they could combine with (no file capabilities, no execve).
                let tolerated = inheritable.is_subset(&kept)
                    || (plan.role == Role::Parser
                        && inheritable.is_subset(&KEPT.into_iter().collect()));
                if !tolerated {
                    return Err(step("capset(inheritable)")(e));
                }
                inheritable_kept = true;
                tracing::info!(
                    "the inheritable set keeps {} (capset refused: {e}); without execve it \
                     grants nothing",
                    names(&inheritable)
                );
            }
        }
        let bounding = caps::read(None, CapSet::Bounding).map_err(step("capget"))?;
        if !bounding.is_subset(&kept) {
            tracing::warn!(
                "the capability bounding set still holds {}; without CAP_SETPCAP it cannot be \
                 trimmed here (set CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN in the unit)",
                names(&bounding.difference(&kept).copied().collect())
            );
        }
    }

    // 6. No execve can ever grant privileges again (setuid binaries, file capabilities), and
    //    Landlock and seccomp may be applied without CAP_SYS_ADMIN.
    nix::sys::prctl::set_no_new_privs().map_err(step("PR_SET_NO_NEW_PRIVS"))?;

    // 7. Landlock: the file system shrinks to the few files the daemon re-reads or writes.
    let landlock = landlock(plan)?;

    // 8. Verify the end state while capget is still allowed.
    let capabilities = verify(&kept, inheritable_kept)?;

    let confined = Confined {
        uid: Uid::current().as_raw(),
        gid: Gid::current().as_raw(),
        capabilities,
        user: name,
        landlock,
        seccomp: plan.sandbox.seccomp,
    };

    // 9. seccomp last: it forbids most calls the steps above made.
    if plan.sandbox.seccomp {
        syscalls::install(plan.fanout_later, plan.role, &plan.ring_fds).map_err(step("seccomp"))?;
    }
    Ok(confined)
}

/// Confines a process that needs no privilege at all (`scramd replay`): every capability is
/// dropped (a root caller stays uid 0 but holds nothing), then no-new-privs, Landlock (read only
/// `plan.read_exact` and `plan.read_files`, write only `plan.write_files`) and seccomp, as in
/// [`confine`]. Like it, must run before any thread exists.
pub fn confine_unprivileged(plan: &Plan) -> Result<fs::Enforcement, SandboxError> {
    let threads = thread_count();
    if threads != 1 {
        return Err(SandboxError::Threads(threads));
    }
    // 1. Nothing to keep: the bounding set (when allowed), then every other set.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        trim_bounding(&CapsHashSet::new())?;
    }
    caps::clear(None, CapSet::Ambient).map_err(step("PR_CAP_AMBIENT_CLEAR_ALL"))?;
    if !caps::read(None, CapSet::Permitted)
        .map_err(step("capget"))?
        .is_empty()
    {
        caps::clear(None, CapSet::Effective).map_err(step("capset(effective)"))?;
        caps::clear(None, CapSet::Permitted).map_err(step("capset(permitted)"))?;
    }
    if !caps::read(None, CapSet::Inheritable)
        .map_err(step("capget"))?
        .is_empty()
    {
        caps::clear(None, CapSet::Inheritable).map_err(step("capset(inheritable)"))?;
    }
    // 2. No-new-privs, 3. Landlock, 4. seccomp last.
    nix::sys::prctl::set_no_new_privs().map_err(step("PR_SET_NO_NEW_PRIVS"))?;
    let landlock = landlock(plan)?;
    if plan.sandbox.seccomp {
        syscalls::install(false, Role::Whole, &[]).map_err(step("seccomp"))?;
    }
    Ok(landlock)
}

/// Applies `plan`'s Landlock rules if enabled; a kernel that cannot enforce them is an error only
/// when the config requires Landlock.
fn landlock(plan: &Plan) -> Result<fs::Enforcement, SandboxError> {
    if !plan.sandbox.landlock {
        return Ok(fs::Enforcement::Disabled);
    }
    let e = fs::restrict(plan).map_err(step("landlock"))?;
    if plan.sandbox.landlock_required && !e.enforced() {
        return Err(SandboxError::LandlockUnavailable(e.to_string()));
    }
    Ok(e)
}

fn trim_bounding(kept: &CapsHashSet) -> Result<(), SandboxError> {
    for cap in caps::read(None, CapSet::Bounding).map_err(step("capget"))? {
        if !kept.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(step("PR_CAPBSET_DROP"))?;
        }
    }
    Ok(())
}

/// Checks the promised end state: no capability outside [`KEPT`] in any set, nothing
/// inheritable (unless `inheritable_kept`: then nothing outside `kept`) or ambient, effective
/// equal to permitted, and not root. Returns what is held.
fn verify(kept: &CapsHashSet, inheritable_kept: bool) -> Result<CapsHashSet, SandboxError> {
    let read = |set| caps::read(None, set).map_err(step("capget"));
    let effective = read(CapSet::Effective)?;
    let permitted = read(CapSet::Permitted)?;
    if !permitted.is_subset(kept) || effective != permitted {
        return Err(SandboxError::Verify(format!(
            "effective {} / permitted {}, expected at most {}",
            names(&effective),
            names(&permitted),
            names(kept)
        )));
    }
    for (set, may_hold_kept) in [
        (CapSet::Inheritable, inheritable_kept),
        (CapSet::Ambient, false),
    ] {
        let held = read(set)?;
        // Inheritable capabilities capset could not clear: at most the two systemd passes.
        let tolerated = may_hold_kept && held.iter().all(|c| KEPT.contains(c));
        if !held.is_empty() && !tolerated {
            return Err(SandboxError::Verify(format!(
                "{set:?} holds {}",
                names(&held)
            )));
        }
    }
    if Uid::effective().is_root() || Uid::current().is_root() {
        return Err(SandboxError::Verify("still running as root".into()));
    }
    Ok(effective)
}

/// `CAP_A, CAP_B` (sorted), or `none`.
pub fn names(set: &HashSet<Capability>) -> String {
    let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    v.sort();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Threads of this process, from /proc/self/task (1 if it cannot be read: the check then
/// relies on the caller's ordering, which the daemon's start-up guarantees).
fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1)
}
