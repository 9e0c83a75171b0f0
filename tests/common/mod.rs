//! The integration tests' one harness: network namespaces and veth pairs torn down on drop,
//! running code inside a namespace, sending frames ([`harness`]: scratch directories, the
//! `scramd` process guard, waiting; [`pcap`]: capture files; [`eve`]: the EVE schema's rules).
//!
//! Traffic only ever crosses veth pairs between namespaces a test created itself.
#![allow(dead_code, reason = "each test target uses a different subset")]

use std::fs::File;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use nix::sched::{setns, CloneFlags};
use std::net::{IpAddr, Ipv4Addr};

use scram::craft;
use scram::sys::packet::PacketSocket;

/// True when the test may run. Without root it fails under `CI=true` and skips otherwise.
pub fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs root (network namespaces, AF_PACKET); CI runs as root"
    );
    eprintln!("skipping {test}: needs root");
    false
}

/// The `scram` user that `scramd run` becomes when started as root, created from the shipped
/// sysusers entry when missing (as installing the package would); returns its uid and gid.
pub fn scram_user() -> (u32, u32) {
    if nix::unistd::User::from_name("scram").unwrap().is_none() {
        sh(&[
            "systemd-sysusers",
            concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/scram.sysusers"),
        ]);
    }
    let u = nix::unistd::User::from_name("scram").unwrap().unwrap();
    (u.uid.as_raw(), u.gid.as_raw())
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace named after the test process, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = format!(
            "scram-t{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        // No IPv6 chatter (router solicitations, MLD) on links created here: tests count frames.
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// The receive counter of `iface` (what the interface delivered to the stack and taps).
    pub fn rx_packets(&self, iface: &str) -> u64 {
        let path = format!("/sys/class/net/{iface}/statistics/rx_packets");
        let out = self.exec(&["cat", &path]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("rx_packets is a number")
    }

    /// Runs `f` on a thread that lives in this namespace (sockets it opens stay bound to it).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f).join().expect("namespace thread panicked")
    }

    /// Like [`Netns::run`] without waiting.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth pair `a` (in namespace `a`) <-> `b` (in namespace `b`), both up, no addresses.
pub struct Veth {
    pub a: Netns,
    pub b: Netns,
}

/// Name of the sending end.
pub const VA: &str = "va";
/// Name of the capturing end.
pub const VB: &str = "vb";

impl Veth {
    pub fn new() -> Veth {
        let a = Netns::new();
        let b = Netns::new();
        sh(&[
            "ip", "link", "add", VA, "netns", &a.name, "type", "veth", "peer", "name", VB, "netns",
            &b.name,
        ]);
        a.exec(&["ip", "link", "set", VA, "up"]);
        b.exec(&["ip", "link", "set", VB, "up"]);
        Veth { a, b }
    }
}

/// Sends frames from inside a namespace.
pub struct Sender {
    socket: PacketSocket,
}

impl Sender {
    /// Must be called on a thread inside the namespace of `iface`.
    pub fn open(iface: &str) -> Sender {
        let ifindex = nix::net::if_::if_nametoindex(iface).expect("sender interface exists");
        let socket = PacketSocket::open().expect("AF_PACKET socket");
        socket.bind_send_only(ifindex).expect("bind sender");
        Sender { socket }
    }

    /// Sends one frame, retrying while the device queue is full.
    pub fn send(&self, frame: &[u8]) {
        loop {
            match self.socket.send(frame) {
                Ok(_) => return,
                Err(e) if e.errno() == Some(libc::ENOBUFS) || e.errno() == Some(libc::EAGAIN) => {
                    std::thread::yield_now()
                }
                Err(e) => panic!("send: {e}"),
            }
        }
    }
}

/// Marks test payloads.
pub const MAGIC: &[u8; 4] = b"SCRM";
/// Offset of the payload in an untagged IPv4/UDP frame.
const PAYLOAD: usize = 14 + 20 + 8;

/// An Ethernet/IPv4/UDP frame of flow `flow` carrying `seq`, preceded by `tags` (TPID, TCI).
/// Addresses are in 198.18.0.0/15 (RFC 2544 benchmarking).
pub fn udp_frame(flow: u16, seq: u64, tags: &[(u16, u16)]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(18);
    payload.extend_from_slice(MAGIC);
    payload.extend_from_slice(&flow.to_be_bytes());
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.extend_from_slice(&[0; 4]);
    let src = IpAddr::V4(Ipv4Addr::new(198, 18, (flow >> 8) as u8, flow as u8));
    let dst = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1));
    craft::ip_frame(src, dst, 17, &craft::udp(10_000 + flow, 9, &payload), tags)
}

/// The (flow, seq) of an untagged test frame.
pub fn parse_test_frame(frame: &[u8]) -> Option<(u16, u64)> {
    let p = frame.get(PAYLOAD..PAYLOAD + 14)?;
    if &p[..4] != MAGIC {
        return None;
    }
    Some((
        u16::from_be_bytes([p[4], p[5]]),
        u64::from_be_bytes(p[6..14].try_into().ok()?),
    ))
}
pub mod captures;
pub mod eve;
pub mod harness;
pub mod live;
pub mod pcap;

#[allow(unused_imports, reason = "each test target uses a different subset")]
pub use harness::{wait_until, Scramd, Scratch, SCRAMD};

/// The Debian package of this tree at `version` (deploy/dev.sh deb, lintian included), built once
/// per version and test run.
pub fn package(version: &str) -> String {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let manifest = env!("CARGO_MANIFEST_DIR");
    let path = format!("{manifest}/target/packages/scram_{version}_amd64.deb");
    if !built.iter().any(|v| v == version) {
        let out = std::process::Command::new("bash")
            .args([&format!("{manifest}/deploy/dev.sh"), "deb", version])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "deploy/dev.sh deb {version}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        built.push(version.to_owned());
    }
    path
}
