//! A live test's set-up: a veth pair between two namespaces, scramd capturing on one side.

use serde_json::Value;

use super::captures::detector;
use super::{Scramd, Scratch, Veth};

/// A veth pair with `10.77.X.1` and `fd77:X::1` (the attacker's side) and `10.77.X.2` and
/// `fd77:X::2` (scramd's), a listener on the target's port 22, and scramd capturing on the
/// target's side with `detect` added to its configuration; the alerts file.
pub struct Live {
    // Dropped in this order: scramd before the namespaces it runs in.
    pub scramd: Scramd,
    _listener: std::net::TcpListener,
    pub veth: Veth,
    pub alerts: std::path::PathBuf,
    _scratch: Scratch,
}

impl Live {
    pub fn new(name: &str, net: u8, detect: &str) -> Live {
        let owner = super::scram_user();
        let veth = super::Veth::new();
        let (a, b) = (format!("10.77.{net}.1/24"), format!("10.77.{net}.2/24"));
        veth.a.exec(&["ip", "addr", "add", &a, "dev", super::VA]);
        veth.b.exec(&["ip", "addr", "add", &b, "dev", super::VB]);
        for (ns, addr, dev) in [(&veth.a, 1, super::VA), (&veth.b, 2, super::VB)] {
            // IPv6 on these two links only (the namespaces keep it off elsewhere).
            ns.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
            ]);
            let a6 = format!("fd77:{net}::{addr}/64");
            ns.exec(&["ip", "addr", "add", &a6, "dev", dev, "nodad"]);
        }
        let addr = format!("10.77.{net}.2:22");
        let listener = veth
            .b
            .run(move || std::net::TcpListener::bind(addr.as_str()).unwrap());
        let scratch = super::Scratch::owned_by(name, owner);
        let alerts = scratch.path("alerts.json");
        let config = scratch.write(
            "scram.toml",
            format!("[alerts]\njson = {:?}\n{detect}", alerts.to_str().unwrap()).as_bytes(),
        );
        let mut scramd = super::Scramd::run_in(
            &veth.b.name,
            &["--config", config.to_str().unwrap(), "--iface", super::VB],
            scratch.path("log"),
        );
        scramd.wait_for_log("capturing on vb", 10);
        Live {
            veth,
            scramd,
            alerts,
            _listener: listener,
            _scratch: scratch,
        }
    }

    /// Waits (at most `secs`) for an alert of `det`; every alert so far.
    pub fn wait_for(&self, det: &str, secs: u64) -> Vec<Value> {
        super::wait_until(
            det,
            std::time::Duration::from_secs(secs),
            || {
                let text = std::fs::read_to_string(&self.alerts).unwrap_or_default();
                let alerts: Vec<Value> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                alerts.iter().any(|a| detector(a) == det).then_some(alerts)
            },
            || self.scramd.log(),
        )
    }
}
