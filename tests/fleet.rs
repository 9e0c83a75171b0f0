//! A fleet on engines operators already run (README, "Running a fleet"): two scram hosts send
//! their journals with systemd-journal-upload to a collector running systemd-journal-remote, with
//! the drop-ins of packaging/fleet/journal; three systemd labs on one LAN (tests/lab).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;
mod lab;

use std::collections::BTreeSet;

use common::privileged;
use lab::{Lab, Lan};
use serde_json::Value;

const FLEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/fleet");
const COLLECTOR: &str = "10.77.0.1";

/// The journal fields every alert carries (../shared/CONTRACT.md, "Alert in the journal"), less
/// the ports and Community ID, which a scan of many ports has none of.
const FIELDS: [&str; 11] = [
    "MESSAGE",
    "MESSAGE_ID",
    "PRIORITY",
    "SRC_IP",
    "DEST_IP",
    "PROTO",
    "IFACE",
    "SCRAM_DETECTOR",
    "SCRAM_SIGNATURE_ID",
    "SCRAM_SEVERITY",
    "SCRAM_ACTION",
];

fn entries(json: &str) -> Vec<Value> {
    json.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn field<'a>(e: &'a Value, k: &str) -> &'a str {
    e[k].as_str().unwrap_or("")
}

/// What identifies an entry across the upload: the sender, its timestamps and its text.
fn identity(e: &Value) -> (String, String, String, String) {
    (
        field(e, "_HOSTNAME").to_owned(),
        field(e, "__REALTIME_TIMESTAMP").to_owned(),
        field(e, "__MONOTONIC_TIMESTAMP").to_owned(),
        field(e, "MESSAGE").to_owned(),
    )
}

/// The collector's view of scram's alerts.
fn collected(collector: &Lab, filter: &str) -> Vec<Value> {
    entries(&collector.ok(&format!(
        "journalctl -D /var/log/journal/remote --no-pager -o json {filter} 2>/dev/null || true"
    )))
}

#[test]
fn alerts_of_two_hosts_reach_the_collector_and_survive_its_outage() {
    if !privileged("fleet lab: journal upload and remote") {
        return;
    }
    let lan = Lan::new();
    let collector = Lab::boot();
    collector.join(&lan, COLLECTOR);
    // The collector: journal-remote on port 19532, plain HTTP between the lab's namespaces.
    collector.ok(&format!(
        "mkdir -p /etc/systemd/system/systemd-journal-remote.service.d && \
         cp {FLEET}/journal/remote-http-lab.conf \
            /etc/systemd/system/systemd-journal-remote.service.d/scram.conf && \
         systemctl daemon-reload && systemctl start systemd-journal-remote.socket"
    ));

    let hosts = [Lab::boot(), Lab::boot()];
    for (i, host) in hosts.iter().enumerate() {
        host.join(&lan, &format!("10.77.0.{}", i + 2));
        host.install();
        host.wait_active();
        // The shipped upload drop-ins, with the lab's collector as URL (HTTP: see above).
        host.ok(&format!(
            "mkdir -p /etc/systemd/journal-upload.conf.d \
                      /etc/systemd/system/systemd-journal-upload.service.d && \
             sed 's|^URL=.*|URL=http://{COLLECTOR}:19532|; /File=/d' \
               {FLEET}/journal/journal-upload.conf \
               > /etc/systemd/journal-upload.conf.d/scram.conf && \
             cp {FLEET}/journal/upload-restart.conf \
               /etc/systemd/system/systemd-journal-upload.service.d/scram.conf && \
             systemctl daemon-reload && systemctl start systemd-journal-upload"
        ));
    }

    // A scan of each host appears on the collector, with the contract's fields and the host's
    // name.
    for host in &hosts {
        host.scan(1..=40);
    }
    let names: BTreeSet<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let scans = collector.wait_for(
        "both hosts' portscan on the collector",
        60,
        "journalctl -D /var/log/journal/remote --no-pager -o json \
         SCRAM_DETECTOR=portscan 2>/dev/null || true",
        |out| {
            let seen: BTreeSet<String> = entries(out)
                .iter()
                .map(|e| field(e, "_HOSTNAME").to_owned())
                .collect();
            names.is_subset(&seen)
        },
    );
    // As README shows it (`cargo test --test fleet -- --nocapture`).
    println!(
        "{}",
        collector.ok("journalctl -D /var/log/journal/remote --no-pager SCRAM_DETECTOR=portscan")
    );
    for e in entries(&scans) {
        for f in FIELDS {
            assert!(!field(&e, f).is_empty(), "no {f} in {e:#}");
        }
        assert_eq!(field(&e, "SRC_IP"), lab::ATTACKER, "{e:#}");
        assert_eq!(field(&e, "_SYSTEMD_UNIT"), "scramd.service", "{e:#}");
    }

    // The collector goes away for a few seconds; alerts raised meanwhile arrive once it is back.
    collector.ok("systemctl stop systemd-journal-remote.socket systemd-journal-remote.service");
    for host in &hosts {
        host.xmas();
    }
    for host in &hosts {
        host.wait_for(
            "the tcp-flags alert on the host",
            20,
            "journalctl -u scramd -o json --no-pager SCRAM_DETECTOR=tcp-flags",
            |s| s.contains("tcp-flags"),
        );
    }
    std::thread::sleep(std::time::Duration::from_secs(4));
    collector.ok("systemctl start systemd-journal-remote.socket");
    collector.wait_for(
        "both hosts' tcp-flags alerts after the outage",
        60,
        "journalctl -D /var/log/journal/remote --no-pager -o json \
         SCRAM_DETECTOR=tcp-flags 2>/dev/null || true",
        |out| {
            let seen: BTreeSet<String> = entries(out)
                .iter()
                .map(|e| field(e, "_HOSTNAME").to_owned())
                .collect();
            names.is_subset(&seen)
        },
    );

    // Nothing lost: every entry scramd wrote on each host (alerts and operational messages) is on
    // the collector; an uploader restart may send one twice, which the identity folds. Entries
    // written a moment ago may still be on their way: ask until none is missing.
    for host in &hosts {
        let local = entries(&host.ok("journalctl -u scramd -o json --no-pager"));
        assert!(local.len() > 5, "{local:#?}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let remote: BTreeSet<_> = collected(&collector, "-u scramd")
                .iter()
                .map(identity)
                .collect();
            let missing: Vec<_> = local
                .iter()
                .map(identity)
                .filter(|id| !remote.contains(id))
                .collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} lost: {missing:#?}",
                host.name
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        // The outage did stop the uploader (252 exits at a failed upload); the drop-in's
        // Restart= brought it back.
        assert_eq!(
            host.ok("systemctl is-active systemd-journal-upload").trim(),
            "active"
        );
        let restarts: u32 = host
            .ok("systemctl show -p NRestarts --value systemd-journal-upload")
            .trim()
            .parse()
            .unwrap();
        assert!(restarts >= 1, "{}: the uploader never failed", host.name);
    }
}
