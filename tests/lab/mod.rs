//! The systemd lab: systemd 252 booted as PID 1 in fresh namespaces (pid, mount, net, uts, ipc,
//! cgroup) on an overlay of the host's / whose writable layer is a tmpfs (see deploy/lab/boot.sh). A veth
//! pair joins the lab to a namespace of the test's own, the "attacker".
//!
//! Nothing outlives a `Lab`: dropping it powers systemd off, waits for it, kills what remains,
//! deletes the attacker namespace and removes the lab's cgroup. Never boots on the host's own /.

#![allow(dead_code, reason = "each test target uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use scram::craft;
use scram::decode::tcp_flags::{self, SYN};

use crate::common::{sh, Netns, Sender};

const BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/lab/boot.sh");

/// The address of the attacker's end and of the lab's end of the veth pair.
pub const ATTACKER: &str = "198.18.0.1";
pub const LAB: &str = "198.18.0.2";

pub struct Lab {
    pub name: String,
    unshare: Child,
    /// PID of the lab's systemd, in the host's pid namespace.
    pub pid: i32,
    cgroup: PathBuf,
    /// The attacker's namespace (its interface is `va`; the lab's is `vb`, the default route).
    pub attacker: Netns,
}

/// Where to make the lab's cgroup: the cgroup2 hierarchy, wherever the host mounts it.
fn cgroup2_root() -> PathBuf {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if unified.join("cgroup.procs").exists() {
        unified.to_owned()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// A LAN between labs: a bridge `br0` in a namespace of its own. Labs join it with
/// [`Lab::join`]; dropping it deletes the namespace, and with it every port.
pub struct Lan {
    pub ns: Netns,
    ports: std::cell::Cell<u32>,
}

impl Lan {
    pub fn new() -> Lan {
        let ns = Netns::new();
        ns.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
        ns.exec(&["ip", "link", "set", "br0", "up"]);
        Lan {
            ns,
            ports: std::cell::Cell::new(0),
        }
    }

    /// A new veth pair: one end a port of `br0`, up; the other named `ifname` in `target` (a
    /// namespace's name or a process's pid).
    fn attach(&self, target: &str, ifname: &str) {
        let n = self.ports.get();
        self.ports.set(n + 1);
        let port = format!("p{n}");
        sh(&[
            "ip",
            "link",
            "add",
            &port,
            "netns",
            &self.ns.name,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            target,
        ]);
        self.ns.exec(&["ip", "link", "set", &port, "master", "br0"]);
        self.ns.exec(&["ip", "link", "set", &port, "up"]);
    }

    /// A plain namespace on the LAN (a client, a scanner) as `addr`/24 on its `eth0`.
    pub fn host(&self, addr: &str) -> Netns {
        let host = Netns::new();
        self.attach(&host.name, "eth0");
        host.exec(&["ip", "link", "set", "eth0", "up"]);
        host.exec(&["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        host
    }
}

impl Lab {
    /// Boots a lab and waits until systemd reports the system running.
    pub fn boot() -> Lab {
        let attacker = Netns::new();
        let name = format!("{}-lab", attacker.name);
        let cgroup = cgroup2_root().join(&name);
        std::fs::create_dir(&cgroup).unwrap();
        let log = std::env::temp_dir().join(format!("{name}.log"));
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec unshare --cgroup --pid --fork --mount --uts \
             --ipc --net {BOOT} {name}",
            cgroup.display()
        );
        let unshare = Command::new("sh")
            .args(["-c", &script])
            .env("SCRAM_LAB_BINDS", env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lab = Lab {
            name,
            pid: 0,
            unshare,
            cgroup,
            attacker,
        };
        let _ = std::fs::remove_file(&log);
        let deadline = Instant::now() + Duration::from_secs(30);
        let children = format!("/proc/{0}/task/{0}/children", lab.unshare.id());
        while lab.pid == 0 {
            assert!(Instant::now() < deadline, "the lab's systemd did not start");
            assert!(
                lab.unshare.try_wait().unwrap().is_none(),
                "the lab's boot script failed"
            );
            lab.pid = std::fs::read_to_string(&children)
                .ok()
                .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
                .unwrap_or(0);
            std::thread::sleep(Duration::from_millis(20));
        }
        // `--wait` returns once boot is over: running, or degraded when some unit of the host's
        // image has no business in a container (the lab does not care).
        // Before systemd listens on its private socket the answer is "offline": ask again.
        let deadline = Instant::now() + Duration::from_secs(60);
        let state = loop {
            let out = lab.run("timeout 60 systemctl is-system-running --wait");
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if state == "running" || state == "degraded" || Instant::now() > deadline {
                break state;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            state == "running" || state == "degraded",
            "lab state {state:?}: {}",
            String::from_utf8_lossy(&lab.run("systemctl --failed --no-pager").stdout)
        );
        lab.connect();
        lab
    }

    /// The veth pair: `va` in the attacker's namespace, `vb` in the lab with the default route.
    fn connect(&self) {
        let pid = self.pid.to_string();
        sh(&[
            "ip",
            "link",
            "add",
            "va",
            "netns",
            &self.attacker.name,
            "type",
            "veth",
            "peer",
            "name",
            "vb",
            "netns",
            &pid,
        ]);
        self.attacker.exec(&["ip", "link", "set", "va", "up"]);
        self.attacker
            .exec(&["ip", "addr", "add", &format!("{ATTACKER}/24"), "dev", "va"]);
        self.ok(&format!(
            "ip link set lo up && ip link set vb up && ip addr add {LAB}/24 dev vb && \
             ip route add default via {ATTACKER}"
        ));
    }

    /// Puts the lab on `lan` as `addr`/24, on its interface `lan0`.
    pub fn join(&self, lan: &Lan, addr: &str) {
        lan.attach(&self.pid.to_string(), "lan0");
        self.ok(&format!(
            "ip link set lan0 up && ip addr add {addr}/24 dev lan0"
        ));
    }

    /// Runs a shell command in all of the lab's namespaces (as its root).
    pub fn run(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-a", "sh", "-c", script])
            .output()
            .unwrap()
    }

    /// Like [`Lab::run`], panicking with the output when it fails; returns stdout.
    pub fn ok(&self, script: &str) -> String {
        let out = self.run(script);
        if !out.status.success() {
            let journal = self.run("journalctl -u scramd -n 40 -o cat --no-pager");
            panic!(
                "in the lab: {script}\n{}{}\nscramd's journal:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&journal.stdout)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Installs scram with deploy/install.sh and the binary under test.
    pub fn install(&self) -> String {
        self.ok(&format!(
            "SCRAMD_BIN={} {}/deploy/install.sh 2>&1",
            env!("CARGO_BIN_EXE_scramd"),
            env!("CARGO_MANIFEST_DIR")
        ))
    }

    /// Sends a SYN to each of `ports` on the lab's address, from the attacker's namespace.
    pub fn scan(&self, ports: std::ops::RangeInclusive<u16>) {
        let attacker = ATTACKER.parse().expect("literal");
        let victim = LAB.parse().expect("literal");
        self.attacker.run(move || {
            let s = Sender::open("va");
            for port in ports {
                s.send(&craft::tcp_frame(attacker, victim, 40000, port, SYN));
            }
        });
    }

    /// One XMAS segment from the attacker (a tcp-flags alert).
    pub fn xmas(&self) {
        let attacker = ATTACKER.parse().expect("literal");
        let victim = LAB.parse().expect("literal");
        self.attacker.run(move || {
            Sender::open("va").send(&craft::tcp_frame(
                attacker,
                victim,
                40001,
                80,
                tcp_flags::FIN | tcp_flags::PSH | tcp_flags::URG,
            ));
        });
    }

    /// A land attack: the lab's own address as the source (a martian alert).
    pub fn land(&self) {
        let victim = LAB.parse().expect("literal");
        self.attacker.run(move || {
            Sender::open("va").send(&craft::tcp_frame(victim, victim, 80, 80, SYN));
        });
    }

    /// scramd's main PID, as systemd knows it.
    pub fn main_pid(&self) -> String {
        self.ok("systemctl show -p MainPID --value scramd")
            .trim()
            .to_owned()
    }

    /// The pid of scramd's parser: the privileged part's one child (waits for it to start).
    pub fn parser_pid(&self) -> String {
        let main = self.main_pid();
        self.wait_for(
            "scramd's parser",
            10,
            &format!("cat /proc/{main}/task/{main}/children 2>/dev/null"),
            |s| s.split_whitespace().count() == 1,
        )
        .trim()
        .to_owned()
    }

    /// Waits until systemd has restarted scramd once and it is active again under a main PID
    /// other than `before`.
    pub fn wait_restarted(&self, what: &str, secs: u64, before: &str) {
        self.wait_for(
            what,
            secs,
            "systemctl show -p NRestarts -p MainPID -p ActiveState scramd",
            |s| {
                s.contains("NRestarts=1")
                    && s.contains("ActiveState=active")
                    && !s.contains(&format!("MainPID={before}\n"))
            },
        );
    }

    /// Waits until scramd is active.
    pub fn wait_active(&self) {
        self.wait_for("scramd active", 30, "systemctl is-active scramd", |s| {
            s.trim() == "active"
        });
    }

    /// Polls `script` until its stdout satisfies `pred`, for at most `secs` seconds.
    pub fn wait_for(
        &self,
        what: &str,
        secs: u64,
        script: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = String::from_utf8_lossy(&self.run(script).stdout).into_owned();
            if pred(&out) {
                return out;
            }
            if Instant::now() >= deadline {
                let status = self.run(
                    "systemctl status scramd --no-pager -n 0 2>&1; \
                     journalctl -n 60 -o short-monotonic --no-pager 2>&1",
                );
                panic!(
                    "waited {secs} s for {what}; last: {out}\n{}",
                    String::from_utf8_lossy(&status.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.pid != 0 {
            let _ = self.run("systemctl poweroff --no-block");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.unshare.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever did not stop in time dies with the cgroup's processes.
        let _ = std::fs::write(self.cgroup.join("cgroup.kill"), "1");
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.cgroup.exists() && Instant::now() < deadline {
            remove_cgroup_tree(&self.cgroup);
            if self.cgroup.exists() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Removes a cgroup directory and its descendants, deepest first.
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
