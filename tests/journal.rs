//! Live: a scan crafted in one namespace, over a veth, into a namespace where scramd runs with a
//! real (standalone) systemd-journald; the alert is read back with `journalctl -o json`.
//!
//! journald and scramd share a private mount namespace in which a scratch directory is bound
//! over /run and another over /var/log/journal, so nothing reaches the host's journal (journald
//! also needs a cgroup2 mount, which `ip netns exec`'s fresh /sys lacks).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{privileged, Scratch, Sender, Veth, SCRAMD, VA, VB};
use scram::craft;
use scram::decode::tcp_flags::SYN;
use serde_json::Value;

/// scramd with its own journald; both are killed on drop.
struct Lab {
    dir: PathBuf,
    /// Removed on drop, after the processes are gone.
    _scratch: Scratch,
    scramd: Child,
}

impl Lab {
    fn start(veth: &Veth, config: &str) -> Lab {
        let scratch = Scratch::new("journal");
        let dir = scratch.dir().to_owned();
        for d in ["run/systemd/journal", "run/log/journal", "varlog"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("scram.toml"), config).unwrap();
        let script = format!(
            r#"set -e
mount --make-rprivate /
mount --bind {d}/run /run
mount --bind {d}/varlog /var/log/journal
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
/lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 & echo $! > {d}/journald.pid
for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
exec {scramd} run --config {d}/scram.toml --iface {iface}"#,
            d = dir.display(),
            scramd = SCRAMD,
            iface = VB
        );
        let scramd = Command::new("ip")
            .args([
                "netns",
                "exec",
                &veth.b.name,
                "unshare",
                "--mount",
                "--",
                "sh",
                "-c",
                &script,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Lab {
            dir,
            _scratch: scratch,
            scramd,
        }
    }

    fn journal(&self) -> Vec<Value> {
        let out = Command::new("journalctl")
            .args([
                "-D",
                self.dir.join("run/log/journal").to_str().unwrap(),
                "-o",
                "json",
                "--no-pager",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let entries = self.journal();
            if entries.iter().any(&pred) {
                return entries;
            }
            assert!(
                Instant::now() < deadline,
                "no journal entry for {what}; journal: {entries:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.scramd.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.scramd.wait();
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("journald.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn field<'a>(e: &'a Value, k: &str) -> &'a str {
    e[k].as_str().unwrap_or("")
}

#[test]
fn a_live_scan_over_veth_lands_in_the_journal_with_the_contract_fields() {
    if !privileged("journal") {
        return;
    }
    common::scram_user();
    let veth = Veth::new();
    let lab = Lab::start(&veth, "[capture]\nworkers = 2\n");
    lab.wait_for("startup", |e| {
        field(e, "MESSAGE").contains("capturing on vb")
    });

    let attacker = "198.18.0.7".parse().unwrap();
    let victim = "198.18.0.2".parse().unwrap();
    veth.a.run(move || {
        let s = Sender::open(VA);
        for port in 1..=100u16 {
            s.send(&craft::tcp_frame(attacker, victim, 40000, port, SYN));
        }
    });

    let entries = lab.wait_for("the portscan alert", |e| {
        field(e, "SCRAM_DETECTOR") == "portscan"
    });
    let alerts: Vec<&Value> = entries
        .iter()
        .filter(|e| !field(e, "SCRAM_DETECTOR").is_empty())
        .collect();
    assert_eq!(alerts.len(), 1, "one alert for one scan: {alerts:#?}");
    let a = alerts[0];
    assert_eq!(
        field(a, "MESSAGE_ID"),
        scram::detect::Detector::Portscan.message_id()
    );
    assert_eq!(field(a, "PRIORITY"), "4");
    assert_eq!(field(a, "SRC_IP"), "198.18.0.7");
    assert_eq!(field(a, "DEST_IP"), "198.18.0.2");
    assert_eq!(field(a, "PROTO"), "TCP");
    assert_eq!(field(a, "IFACE"), VB);
    assert_eq!(field(a, "SCRAM_SIGNATURE_ID"), "1000001");
    assert_eq!(field(a, "SCRAM_SEVERITY"), "2");
    assert_eq!(field(a, "SCRAM_COUNT"), "20");
    assert_eq!(field(a, "SCRAM_ACTION"), "allowed");
    assert_eq!(field(a, "SYSLOG_IDENTIFIER"), "scramd");
    assert!(field(a, "COMMUNITY_ID").starts_with("1:"));
    assert!(
        a.get("SRC_PORT").is_none() && a.get("DEST_PORT").is_none(),
        "a scan names no ports"
    );
    let message = field(a, "MESSAGE");
    assert!(
        message.starts_with("portscan: 198.18.0.7 probed 20 ports of 198.18.0.2 in ")
            && message.ends_with(" s (SYN scan)"),
        "{message}"
    );
    // Operational logs carry no SCRAM_DETECTOR and use ordinary priorities.
    let start = entries
        .iter()
        .find(|e| field(e, "MESSAGE").contains("capturing on vb"))
        .unwrap();
    assert_eq!(field(start, "PRIORITY"), "5");
}
