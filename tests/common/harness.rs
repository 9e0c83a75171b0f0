//! What every integration target shares: the `scramd` binary, scratch directories removed on
//! drop, a `scramd` process guard that kills and reaps on drop, and one bounded wait loop.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The binary under test.
pub const SCRAMD: &str = env!("CARGO_BIN_EXE_scramd");

/// A scratch directory, unique per call, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh directory named after `name`.
    pub fn new(name: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("scram-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A fresh directory owned by `owner` (uid, gid), for a daemon that dropped to that user.
    pub fn owned_by(name: &str, owner: (u32, u32)) -> Scratch {
        let s = Scratch::new(name);
        std::os::unix::fs::chown(&s.0, Some(owner.0), Some(owner.1)).unwrap();
        s
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// `f` inside it.
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }

    /// Writes `bytes` to `f` inside it.
    pub fn write(&self, f: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(f);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits up to `timeout` for `ready` to return `Some`, polling every 20 ms; panics naming `what`
/// (and `context()`) when it does not.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = ready() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {}", context());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `scramd` (or a wrapper that execs it) whose stderr goes to a log file; killed and
/// reaped on drop if still running.
pub struct Scramd {
    /// The process.
    pub child: Child,
    log: PathBuf,
}

impl Scramd {
    /// Spawns `command` with logging to stderr, captured in `log`.
    pub fn spawn(mut command: Command, log: PathBuf) -> Scramd {
        let child = command
            .env("SCRAM_LOG_TARGET", "stderr")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("scramd starts");
        Scramd { child, log }
    }

    /// `scramd run ARGS...` inside network namespace `netns`.
    pub fn run_in(netns: &str, args: &[&str], log: PathBuf) -> Scramd {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", netns, SCRAMD, "run"]).args(args);
        Scramd::spawn(c, log)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Its process id.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Waits up to `secs` for `needle` in its log; fails early if it exits.
    pub fn wait_for_log(&mut self, needle: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {secs} s: {}",
                self.log()
            );
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "scramd exited before {needle:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).unwrap();
    }

    /// Waits up to `timeout` for it to exit; its exit code (-1 for a signal) and log.
    pub fn wait(mut self, timeout: Duration) -> (i32, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "scramd still running after {timeout:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        (status.code().unwrap_or(-1), self.log())
    }

    /// SIGTERM, then waits up to 5 s; exit code and log.
    pub fn stop(self) -> (i32, String) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait(Duration::from_secs(5))
    }
}

impl Drop for Scramd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
