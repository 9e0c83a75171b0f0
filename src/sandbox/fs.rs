//! The Landlock rules: what the confined daemon may still touch on the file system.
//!
//! Read: the configuration and blocklist files it re-reads on SIGHUP. Write: its JSON alert
//! files and its state directory. Connect: the journal and service-manager sockets under
//! /run/systemd. Nothing else: no other file, no execution, no TCP or UDP port, no signal or
//! abstract socket outside the process.
//!
//! Editors and package managers replace a file by renaming a new one over it, and a Landlock
//! rule follows the inode it was given, not the name. So a re-read file is allowed through its
//! directory (`/etc/scram`, not `/etc/scram/scram.toml`), unless that directory is `/` or
//! `/etc`, where the file alone is allowed.

use std::fmt;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use super::Plan;

/// The newest Landlock ABI whose access rights this module handles: every right it names is
/// denied unless a rule below grants it. Older kernels enforce the subset they know.
const ABI_HANDLED: ABI = ABI::V10;

/// Where journald and the service manager listen (pathname sockets, which Landlock ABI 9+
/// mediates).
const SYSTEMD_RUN: &str = "/run/systemd";

/// What Landlock enforces after [`restrict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforcement {
    /// `[sandbox] landlock = false`.
    Disabled,
    /// The kernel has no Landlock (not built, or not in `lsm=`).
    Unsupported,
    /// Every handled right is enforced.
    Full {
        /// The kernel's ABI version.
        abi: i32,
    },
    /// The kernel enforces an older subset of the handled rights.
    Partial {
        /// The kernel's ABI version.
        abi: i32,
    },
}

impl Enforcement {
    /// Whether any Landlock restriction is in force.
    pub fn enforced(&self) -> bool {
        matches!(self, Enforcement::Full { .. } | Enforcement::Partial { .. })
    }
}

impl fmt::Display for Enforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Enforcement::Disabled => f.write_str("off (sandbox.landlock = false)"),
            Enforcement::Unsupported => f.write_str("not supported by this kernel"),
            Enforcement::Full { abi } => write!(f, "enforced (ABI {abi})"),
            Enforcement::Partial { abi } => {
                write!(f, "enforced with the rights of kernel ABI {abi}")
            }
        }
    }
}

/// What Landlock enforces only from a kernel ABI on, and which layer stands in below it:
/// `(abi, protection, stand-in)`. Below ABI 3 a file could be truncated, below 4 a TCP port
/// bound or connected, below 5 a device's ioctl called, below 6 an abstract unix socket reached
/// or another process of the same user signalled.
pub const BY_ABI: &[(i32, &str, &str)] = &[
    (
        3,
        "truncating files",
        "seccomp allows no truncate(2), and ftruncate only on descriptors Landlock let it open",
    ),
    (
        4,
        "binding and connecting TCP ports",
        "seccomp lets no AF_INET or AF_INET6 socket be created; the unit has IPAddressDeny=any",
    ),
    (5, "ioctl on devices", "seccomp allows no ioctl at all"),
    (
        6,
        "abstract unix sockets and signals to other processes",
        "seccomp lets no unix socket be created or connected, allows no kill, and tgkill only \
         at the daemon itself",
    ),
];

/// The protections of [`BY_ABI`] a kernel of Landlock ABI `abi` cannot enforce.
pub fn not_enforced(abi: i32) -> impl Iterator<Item = &'static (i32, &'static str, &'static str)> {
    BY_ABI.iter().filter(move |(from, _, _)| abi < *from)
}

/// A grant: a path and what may be done beneath it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// A file or directory.
    pub path: PathBuf,
    /// The rights.
    pub access: BitFlags<AccessFs>,
}

/// The grants `plan` asks for, paths that do not exist left out.
pub fn grants(plan: &Plan) -> Vec<Grant> {
    let mut out: Vec<Grant> = Vec::new();
    let mut add = |path: PathBuf, access: BitFlags<AccessFs>| {
        if !path.exists() {
            return;
        }
        match out.iter_mut().find(|g| g.path == path) {
            Some(g) => g.access |= access,
            None => out.push(Grant { path, access }),
        }
    };
    for f in &plan.read_files {
        let scope = reread_scope(f);
        let access = if scope.is_dir() {
            AccessFs::ReadFile | AccessFs::ReadDir
        } else {
            AccessFs::ReadFile.into()
        };
        add(scope, access);
    }
    for f in &plan.read_exact {
        add(f.clone(), AccessFs::ReadFile.into());
    }
    for f in &plan.write_files {
        add(f.clone(), AccessFs::WriteFile.into());
        // Rotation by rename: SIGHUP makes the file anew, in its own directory when that is
        // scramd's (its name says scram, as /var/log/scram is); never in a shared one.
        if let Some(dir) = rotation_scope(f) {
            add(dir, AccessFs::MakeReg | AccessFs::WriteFile);
        }
    }
    for d in &plan.write_dirs {
        add(
            d.clone(),
            AccessFs::from_all(ABI_HANDLED) & !AccessFs::Execute,
        );
    }
    add(PathBuf::from(SYSTEMD_RUN), AccessFs::ResolveUnix.into());
    // A service manager's notify socket somewhere else (a pathname, not an abstract one).
    if let Some(dir) = std::env::var_os("NOTIFY_SOCKET")
        .filter(|s| s.as_encoded_bytes().first() == Some(&b'/'))
        .and_then(|s| PathBuf::from(s).parent().map(ToOwned::to_owned))
    {
        add(dir, AccessFs::ResolveUnix.into());
    }
    out
}

/// The directory an alert file may be made anew in (after rotation by rename): its own, when
/// that directory is scramd's (named for it, as the unit's `/var/log/scram` is).
pub fn rotation_scope(file: &Path) -> Option<PathBuf> {
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let dir = file.parent()?;
    dir.file_name()
        .is_some_and(|n| n.to_string_lossy().contains("scram"))
        .then(|| dir.to_owned())
}

/// The directory of `file`, or the file itself when its directory is too broad to grant.
fn reread_scope(file: &Path) -> PathBuf {
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    match file.parent() {
        Some(dir) if dir != Path::new("/") && dir != Path::new("/etc") => dir.to_owned(),
        _ => file,
    }
}

/// Applies the rules to the calling thread (and the threads it starts later).
pub fn restrict(plan: &Plan) -> Result<Enforcement, landlock::RulesetError> {
    // A notify socket in the abstract namespace would be refused by the abstract-socket scope.
    let abstract_notify = std::env::var_os("NOTIFY_SOCKET")
        .is_some_and(|s| s.as_encoded_bytes().first() == Some(&b'@'));
    let mut scopes = Scope::from_all(ABI_HANDLED);
    if abstract_notify {
        scopes.remove(Scope::AbstractUnixSocket);
    }
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_HANDLED))?
        .handle_access(AccessNet::from_all(ABI_HANDLED))?
        .scope(scopes)?
        .create()?;
    for g in grants(plan) {
        // A path that vanished since `grants` looked is left out, not fatal: the daemon then
        // simply cannot reach it.
        if let Ok(fd) = PathFd::new(&g.path) {
            ruleset = ruleset.add_rule(PathBeneath::new(fd, g.access))?;
        }
    }
    let status = ruleset.restrict_self()?;
    let abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.unwrap_or(effective_abi as i32),
        _ => 0,
    };
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforcement::Full { abi },
        RulesetStatus::PartiallyEnforced => Enforcement::Partial { abi },
        RulesetStatus::NotEnforced => Enforcement::Unsupported,
    })
}

#[cfg(test)]
mod abi_tests {
    use super::*;

    #[test]
    fn older_kernels_name_what_they_cannot_enforce() {
        let names = |abi| not_enforced(abi).map(|p| p.1).collect::<Vec<_>>();
        // Debian 12's 6.1 kernel: ABI 2.
        assert_eq!(names(2).len(), 4);
        assert!(names(5).contains(&"abstract unix sockets and signals to other processes"));
        assert!(names(6).is_empty());
        assert!(names(7).is_empty());
    }

    #[test]
    fn alert_files_are_made_anew_only_in_a_directory_of_their_own() {
        assert_eq!(
            rotation_scope(Path::new("/var/log/scram/eve.json")),
            Some(PathBuf::from("/var/log/scram"))
        );
        assert_eq!(rotation_scope(Path::new("/var/log/eve.json")), None);
        assert_eq!(rotation_scope(Path::new("/eve.json")), None);
    }
}
