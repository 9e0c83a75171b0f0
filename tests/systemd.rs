//! scram under a real systemd: the shipped unit's exposure score, and deploy/install.sh in the
//! lab (systemd 252 booted in namespaces on an overlay, tests/lab): the service runs, reports
//! STATUS=, holds only its two capabilities, sends alerts to the journal with the catalog's text,
//! reloads, and is restarted by the watchdog when frozen.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;
mod lab;

use std::time::Duration;

use common::{package, privileged};
use lab::Lab;
use serde_json::Value;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/scramd.service");

/// The highest exposure the unit may score (systemd-analyze's 0-10 scale).
const MAX_EXPOSURE: f64 = 1.3;

fn exposure(report: &str) -> f64 {
    report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for scramd.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"))
}

#[test]
fn the_shipped_unit_scores_at_most_1_3_offline() {
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=13", UNIT])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let score = exposure(&report);
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} > {MAX_EXPOSURE}:\n{report}"
    );
}

/// A 3 s watchdog, so a watchdog test is quick (the shipped unit says 30 s); restarts scramd.
fn short_watchdog(lab: &Lab) {
    lab.ok("mkdir -p /etc/systemd/system/scramd.service.d && \
         printf '[Service]\\nWatchdogSec=3s\\nTimeoutAbortSec=2s\\n' \
           > /etc/systemd/system/scramd.service.d/watchdog.conf && \
         systemctl daemon-reload && systemctl restart scramd");
}

fn journal(lab: &Lab) -> Vec<Value> {
    lab.ok("journalctl -u scramd -o json --no-pager")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn field<'a>(e: &'a Value, k: &str) -> &'a str {
    e[k].as_str().unwrap_or("")
}

/// Every thread of scramd's main process holds the two capabilities and nothing else, has
/// no-new-privs and a seccomp filter, and runs as no uid 0.
fn assert_confined(lab: &Lab) {
    let pid = lab.main_pid();
    let parser = lab.parser_pid();
    // The privileged part: the two capabilities. The unit's ~@privileged filter refuses capset,
    // so the inheritable set systemd filled for the ambient capabilities keeps the same two
    // (inert without execve, which its seccomp filter refuses).
    let privileged = lab.ok(&format!("cat /proc/{pid}/task/*/status"));
    assert_threads(
        &privileged,
        1,
        &[
            ("CapEff:", "0000000000003000"),
            ("CapPrm:", "0000000000003000"),
            ("CapBnd:", "0000000000003000"),
            ("CapAmb:", "0000000000000000"),
            ("CapInh:", "0000000000003000"),
            ("NoNewPrivs:", "1"),
            ("Seccomp:", "2"),
        ],
    );
    // The parser, with the capture workers and the alert thread: no capability at all (the
    // inheritable two, as above, combine with nothing: no file capabilities, no execve).
    let parser = lab.ok(&format!("cat /proc/{parser}/task/*/status"));
    assert_threads(
        &parser,
        3,
        &[
            ("CapEff:", "0000000000000000"),
            ("CapPrm:", "0000000000000000"),
            ("CapBnd:", "0000000000003000"),
            ("CapAmb:", "0000000000000000"),
            ("CapInh:", "0000000000003000"),
            ("NoNewPrivs:", "1"),
            ("Seccomp:", "2"),
        ],
    );
}

/// Every thread in `status` (the concatenated status files of a process's threads, at least
/// `min` of them) has each field as wanted and runs as no uid 0.
fn assert_threads(status: &str, min: usize, want: &[(&str, &str)]) {
    let threads = status.matches("CapEff:").count();
    assert!(threads >= min, "{status}");
    for (key, want) in want {
        let values: Vec<&str> = status
            .lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .collect();
        assert_eq!(values.len(), threads, "{key}: {status}");
        assert!(values.iter().all(|v| v == want), "{key} {values:?}");
    }
    assert!(
        status
            .lines()
            .filter(|l| l.starts_with("Uid:"))
            .all(|l| !l.split_whitespace().skip(1).any(|u| u == "0")),
        "{status}"
    );
}

#[test]
fn installed_in_a_booted_systemd_it_runs_confined_and_its_alerts_reach_the_journal() {
    if !privileged("systemd lab") {
        return;
    }
    let lab = Lab::boot();
    let out = lab.install();
    assert!(out.contains("journalctl -u scramd -f"), "{out}");
    lab.wait_active();

    // STATUS= with live counters.
    lab.wait_for(
        "the STATUS line",
        15,
        "systemctl status scramd --no-pager",
        |s| s.contains("Status: \"") && s.contains("frames"),
    );

    // The analyzer in the lab, against the installed unit.
    let report = lab.ok("systemd-analyze security scramd.service --no-pager 2>&1");
    let score = exposure(&report);
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} in the lab:\n{report}"
    );

    assert_confined(&lab);

    // A crafted scan lands in the journal with the contract's fields and the catalog's text.
    lab.scan(1..=40);
    lab.wait_for(
        "the portscan alert",
        15,
        "journalctl -u scramd -o json --no-pager SCRAM_DETECTOR=portscan",
        |s| s.contains("portscan"),
    );
    let alerts: Vec<Value> = journal(&lab)
        .into_iter()
        .filter(|e| field(e, "SCRAM_DETECTOR") == "portscan")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(
        field(a, "MESSAGE_ID"),
        scram::detect::Detector::Portscan.message_id()
    );
    assert_eq!(field(a, "PRIORITY"), "4");
    assert_eq!(field(a, "SRC_IP"), lab::ATTACKER);
    assert_eq!(field(a, "DEST_IP"), lab::LAB);
    assert_eq!(field(a, "_SYSTEMD_UNIT"), "scramd.service");
    let explained = lab.ok("journalctl -x -u scramd --no-pager SCRAM_DETECTOR=portscan");
    assert!(
        explained.contains(&format!(
            "{} probed 20 distinct ports of {}",
            lab::ATTACKER,
            lab::LAB
        )) && explained.contains("What to do"),
        "{explained}"
    );
    let by_ip = lab.ok(&format!(
        "journalctl --no-pager -p warning -u scramd SRC_IP={}",
        lab::ATTACKER
    ));
    assert!(by_ip.contains("portscan:"), "{by_ip}");

    // Stopping drains and logs the final counters.
    lab.ok("systemctl stop scramd");
    let stopped = lab.ok("journalctl -u scramd --no-pager -o cat");
    assert!(stopped.contains("final counters vb"), "{stopped}");
}

#[test]
fn reload_applies_a_new_threshold_and_keeps_the_old_config_when_the_new_one_is_broken() {
    if !privileged("systemd lab reload") {
        return;
    }
    let lab = Lab::boot();
    lab.install();
    lab.wait_active();
    let pid = lab.main_pid();

    lab.ok("printf '[detect.portscan]\\nports = 5\\n' > /etc/scram/scram.toml");
    lab.ok("systemctl reload scramd");
    lab.wait_for(
        "the reload",
        10,
        "journalctl -u scramd --no-pager -o cat",
        |s| s.contains("re-read; applied [detect.*]"),
    );
    // Eight ports: an alert at all means the new threshold is in force (workers pick a reload up
    // at their next block, so the count at the crossing may be a little above 5).
    lab.scan(1..=8);
    let alert = lab.wait_for(
        "an alert at the new threshold",
        15,
        "journalctl -u scramd -o json --no-pager SCRAM_DETECTOR=portscan",
        |s| s.contains("portscan"),
    );
    assert!(alert.contains(lab::ATTACKER), "{alert}");

    lab.ok("printf '[detect.portscan]\\nports = \"many\"\\n' > /etc/scram/scram.toml");
    lab.ok("systemctl reload scramd");
    lab.wait_for(
        "the refusal",
        10,
        "journalctl -u scramd --no-pager -o cat",
        |s| s.contains("keeping the running configuration: /etc/scram/scram.toml:2:9"),
    );
    assert_eq!(lab.ok("systemctl is-active scramd").trim(), "active");
    assert_eq!(lab.main_pid(), pid, "reload must not restart the daemon");
}

#[test]
fn alerts_reach_the_journal_across_journald_restarts() {
    if !privileged("systemd lab journald restart") {
        return;
    }
    let lab = Lab::boot();
    lab.install();
    lab.wait_active();
    // journald's socket is systemd's (socket activation): while the daemon restarts, entries
    // wait in the socket's queue and are read when it is back.
    lab.ok("systemctl restart --no-block systemd-journald.service");
    lab.scan(1..=40);
    lab.wait_for(
        "the scan's alert",
        20,
        "journalctl -u scramd -o json --no-pager SCRAM_DETECTOR=portscan",
        |s| s.contains(lab::ATTACKER),
    );
    // Stopped for a while: an XMAS segment's alert is sent meanwhile.
    lab.ok("systemctl stop systemd-journald.service");
    lab.xmas();
    std::thread::sleep(Duration::from_secs(2));
    lab.ok("systemctl start systemd-journald.service");
    let alerts = lab.wait_for(
        "the alert sent while journald was stopped",
        20,
        "journalctl -u scramd -o json --no-pager SCRAM_DETECTOR=tcp-flags",
        |s| s.contains(lab::ATTACKER),
    );
    assert!(
        alerts.contains("XMAS") || alerts.contains("xmas"),
        "{alerts}"
    );
    // The socket itself gone for a while, then made anew (its unit stopped and started): the
    // alert raised meanwhile is held, and written to the new socket once it is there (the unit
    // binds journald's directory, not the old socket file), with a word on what was held.
    lab.ok(
        "systemctl stop systemd-journald.socket systemd-journald-dev-log.socket \
         systemd-journald.service",
    );
    lab.land();
    std::thread::sleep(Duration::from_secs(2));
    lab.ok(
        "systemctl start systemd-journald.socket systemd-journald-dev-log.socket \
         systemd-journald.service",
    );
    lab.wait_for(
        "the alert raised while journald's socket was gone",
        20,
        "journalctl -u scramd -o json --no-pager SCRAM_DETECTOR=martian",
        |s| s.contains("land"),
    );
    lab.wait_for(
        "the word on the alerts held",
        10,
        "journalctl -u scramd -o cat --no-pager",
        |s| s.contains("socket was gone for") && s.contains("1 alert(s) were held"),
    );
    assert_eq!(lab.ok("systemctl is-active scramd").trim(), "active");
}

#[test]
fn the_alert_file_survives_rotation_by_rename_and_by_copytruncate() {
    if !privileged("systemd lab alert file rotation") {
        return;
    }
    let lab = Lab::boot();
    lab.ok(
        "mkdir -p /etc/scram && printf '[alerts]\njson = \"/var/log/scram/alerts.json\"\n' \
         > /etc/scram/scram.toml",
    );
    lab.install();
    lab.wait_active();
    let lines = |file: &str| lab.ok(&format!("cat {file} 2>/dev/null || true"));
    lab.scan(1..=40);
    lab.wait_for(
        "the scan in the file",
        20,
        "cat /var/log/scram/alerts.json",
        |s| s.contains("\"portscan\""),
    );
    // Readable by log shippers through the adm group, by nobody else.
    assert_eq!(
        lab.ok("stat -c '%U:%G %a' /var/log/scram /var/log/scram/alerts.json"),
        "scram:adm 2750\nscram:adm 640\n"
    );
    lab.ok(
        "setpriv --reuid=nobody --regid=nogroup --groups=adm head -c1 /var/log/scram/alerts.json",
    );
    let other = lab.run(
        "setpriv --reuid=nobody --regid=nogroup --clear-groups cat /var/log/scram/alerts.json",
    );
    assert!(!other.status.success(), "read by a user outside adm");
    // logrotate's default: rename, then SIGHUP (its postrotate `systemctl reload`).
    lab.ok("mv /var/log/scram/alerts.json /var/log/scram/alerts.json.1");
    lab.ok("systemctl reload scramd");
    lab.wait_for(
        "the file opened anew",
        10,
        "journalctl -u scramd --no-pager -o cat",
        |s| s.contains("opened anew"),
    );
    lab.xmas();
    let new = lab.wait_for(
        "the next alert in the new file",
        20,
        "cat /var/log/scram/alerts.json 2>/dev/null || true",
        |s| s.contains("\"tcp-flags\""),
    );
    assert!(!new.contains("\"portscan\""), "{new}");
    let rotated = lines("/var/log/scram/alerts.json.1");
    assert!(
        rotated.contains("\"portscan\"") && !rotated.contains("\"tcp-flags\""),
        "{rotated}"
    );
    // copytruncate: the file is copied and cut to nothing under the daemon; its next line
    // starts the file (appending), with no hole of zeros before it.
    lab.ok("cp /var/log/scram/alerts.json /var/log/scram/alerts.json.2 && truncate -s 0 /var/log/scram/alerts.json");
    lab.land();
    let cut = lab.wait_for(
        "the next alert after copytruncate",
        20,
        "cat /var/log/scram/alerts.json 2>/dev/null || true",
        |s| s.contains("\"martian\""),
    );
    assert!(cut.starts_with('{') && cut.lines().count() == 1, "{cut:?}");
    assert_eq!(lab.ok("systemctl is-active scramd").trim(), "active");
}

#[test]
fn a_full_disk_under_the_alert_file_is_counted_and_capture_goes_on() {
    if !privileged("systemd lab full disk") {
        return;
    }
    let lab = Lab::boot();
    lab.ok(
        // install.sh's tmpfiles.d entry gives the mounted directory its owner and mode.
        "mkdir -p /etc/scram /var/log/scram && \
         mount -t tmpfs -o size=16k tmpfs /var/log/scram && \
         printf '[alerts]\njson = \"/var/log/scram/alerts.json\"\n' > /etc/scram/scram.toml",
    );
    lab.install();
    lab.wait_active();
    // Fill it up: dd stops at the end of the space.
    lab.ok("dd if=/dev/zero of=/var/log/scram/fill bs=1k count=64 2>/dev/null || true");
    lab.scan(1..=40);
    // The alert still reaches the journal, the failed write is logged, capture goes on.
    lab.wait_for(
        "the scan in the journal",
        20,
        "journalctl -u scramd -o json --no-pager SCRAM_DETECTOR=portscan",
        |s| s.contains(lab::ATTACKER),
    );
    lab.wait_for(
        "the failed write logged",
        20,
        "journalctl -u scramd --no-pager -o cat",
        |s| {
            s.contains("writing alerts to /var/log/scram/alerts.json")
                && s.contains("No space left")
        },
    );
    lab.xmas();
    lab.wait_for(
        "a later alert in the journal",
        20,
        "journalctl -u scramd -o json --no-pager SCRAM_DETECTOR=tcp-flags",
        |s| s.contains(lab::ATTACKER),
    );
    assert_eq!(lab.ok("systemctl is-active scramd").trim(), "active");
    // At stop the failed writes are counted.
    lab.ok("systemctl stop scramd");
    lab.wait_for(
        "the count at stop",
        20,
        "journalctl -u scramd --no-pager -o cat",
        |s| s.contains("alert writes failed"),
    );
}

#[test]
fn one_stuck_capture_worker_gets_the_service_restarted_by_the_watchdog() {
    if !privileged("systemd lab stuck worker") {
        return;
    }
    let lab = Lab::boot();
    lab.install();
    short_watchdog(&lab);
    lab.wait_active();
    let before = lab.main_pid();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.main_pid(), before, "a healthy daemon is not restarted");
    // One capture worker thread stopped alone (ptrace stops just the thread it seizes); the
    // process and its other threads go on.
    lab.ok("main=$(systemctl show -p MainPID --value scramd); \
         read pid < /proc/$main/task/$main/children; \
         tid=$(grep -lE '^scram-.+-[0-9]+$' /proc/$pid/task/*/comm | head -n 1 | cut -d/ -f5); \
         test -n \"$tid\" && \
         python3 -c 'import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
tid = int(sys.argv[1])
assert libc.ptrace(0x4206, tid, 0, 0) == 0  # PTRACE_SEIZE
assert libc.ptrace(0x4207, tid, 0, 0) == 0  # PTRACE_INTERRUPT: this thread stops
time.sleep(30)' \"$tid\" > /dev/null 2>&1 &");
    lab.wait_restarted("a restart by the watchdog", 40, &before);
    let log = lab.ok("journalctl -u scramd --no-pager -o cat");
    assert!(
        log.contains("made no progress; withholding the watchdog ping"),
        "{log}"
    );
    assert!(log.contains("Watchdog timeout"), "{log}");
}

#[test]
fn a_killed_parser_ends_the_service_and_systemd_starts_both_anew() {
    if !privileged("systemd lab parser killed") {
        return;
    }
    let lab = Lab::boot();
    lab.install();
    lab.wait_active();
    let main = lab.main_pid();
    let parser = lab.parser_pid();
    lab.ok(&format!("kill -KILL {parser}"));
    lab.wait_restarted("a restart after the parser died", 30, &main);
    let log = lab.ok("journalctl -u scramd --no-pager -o cat");
    assert!(log.contains("the parser was killed by signal 9"), "{log}");
    lab.wait_for(
        "a new parser",
        10,
        "systemctl show -p MainPID --value scramd",
        |s| !s.trim().is_empty() && s.trim() != "0",
    );
    assert_ne!(lab.parser_pid(), parser);
    assert_confined(&lab);
}

#[test]
fn a_frozen_daemon_is_restarted_by_the_watchdog() {
    if !privileged("systemd lab watchdog") {
        return;
    }
    let lab = Lab::boot();
    lab.install();
    short_watchdog(&lab);
    lab.wait_active();
    let frozen = lab.main_pid();
    // Still pinging while healthy: several watchdog periods pass without a restart.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.main_pid(), frozen);
    lab.ok("systemctl kill --kill-who=main --signal=SIGSTOP scramd");
    lab.wait_restarted("a restart by the watchdog", 40, &frozen);
    let log = lab.ok("journalctl -u scramd --no-pager -o cat");
    assert!(log.contains("Watchdog timeout"), "{log}");
}

#[test]
fn the_lab_leaves_nothing_behind_on_the_host() {
    if !privileged("systemd lab cleanup") {
        return;
    }
    let watched = [
        "/usr/sbin/scramd",
        "/usr/lib/systemd/system/scramd.service",
        "/usr/lib/systemd/catalog/scram.catalog",
        "/etc/scram",
        "/usr/lib/scram",
    ];
    let before: Vec<Option<std::time::SystemTime>> = watched
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect();
    let (cgroup, netns, name);
    {
        let lab = Lab::boot();
        lab.install();
        lab.wait_active();
        // uninstall.sh undoes install.sh, keeping the configuration unless asked.
        let dir = env!("CARGO_MANIFEST_DIR");
        lab.ok(&format!("{dir}/deploy/uninstall.sh"));
        let state = lab.run("systemctl show -p LoadState -p ActiveState scramd");
        let state = String::from_utf8_lossy(&state.stdout);
        assert!(
            state.contains("LoadState=not-found") && state.contains("ActiveState=inactive"),
            "{state}"
        );
        lab.ok("test ! -e /usr/sbin/scramd && test ! -e /usr/lib/systemd/system/scramd.service");
        lab.ok("test -e /etc/scram/scram.toml");
        lab.ok(&format!("{dir}/deploy/uninstall.sh --purge"));
        lab.ok("test ! -e /etc/scram");
        name = lab.name.clone();
        netns = lab.attacker.name.clone();
        cgroup = std::fs::read_dir("/sys/fs/cgroup/unified")
            .map(|_| format!("/sys/fs/cgroup/unified/{name}"))
            .unwrap_or_else(|_| format!("/sys/fs/cgroup/{name}"));
        assert!(std::path::Path::new(&cgroup).exists());
    }
    let after: Vec<Option<std::time::SystemTime>> = watched
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect();
    assert_eq!(
        before, after,
        "the lab's install reached the host: {watched:?}"
    );
    assert!(
        !std::path::Path::new(&cgroup).exists(),
        "{cgroup} left behind"
    );
    assert!(
        !std::path::Path::new(&format!("/run/netns/{netns}")).exists(),
        "namespace {netns} left behind"
    );
    let ps = common::sh(&["ps", "-eo", "args"]);
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(!ps.contains(&name), "a lab process survived: {ps}");
}

#[test]
fn under_the_installed_unit_a_scanner_is_banned_in_nftables() {
    if !privileged("systemd lab response") {
        return;
    }
    let lab = Lab::boot();
    let ping = |lab: &Lab| {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.attacker.name,
                "ping",
                "-c",
                "1",
                "-W",
                "1",
                lab::LAB,
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(ping(&lab), "the lab answers pings before any ban");
    lab.ok(
        "mkdir -p /etc/scram && printf '[response]\\naction = \"nftables\"\\nban_seconds = 60\\n' \
         > /etc/scram/scram.toml",
    );
    lab.install();
    lab.wait_active();
    lab.scan(1..=40);
    let set = lab.wait_for("the ban", 15, "nft list set inet scram ban4", |s| {
        s.contains(lab::ATTACKER)
    });
    assert!(set.contains("timeout 1m"), "{set}");
    assert!(!ping(&lab), "the banned attacker's ping passed");
    let alert = lab.ok("journalctl -u scramd -o json --no-pager SCRAM_DETECTOR=portscan");
    assert!(alert.contains("\"SCRAM_ACTION\":\"blocked\""), "{alert}");
}

#[test]
fn the_debian_package_installs_upgrades_removes_and_purges_like_a_debian_daemon() {
    if !privileged("systemd lab Debian package") {
        return;
    }
    let current = format!("{}-1", env!("CARGO_PKG_VERSION"));
    let old = package("0.0.9-1");
    let new = package(&current);
    let lab = Lab::boot();

    // Install: the user, the log directory, enabled and started, confined.
    let installed = lab.ok(&format!("dpkg -i {old} 2>&1"));
    lab.wait_active();
    // Every file as the package shipped it (md5sums).
    lab.ok("dpkg --verify scram");
    assert_eq!(lab.ok("systemctl is-enabled scramd").trim(), "enabled");
    assert_eq!(
        lab.ok("stat -c '%U:%G %a' /var/log/scram"),
        "scram:adm 2750\n"
    );
    // An operator's change to the conffile.
    lab.ok(
        "sed -i 's/^stats_interval_seconds = 60$/stats_interval_seconds = 30/' \
         /etc/scram/scram.toml",
    );
    lab.ok("systemctl restart scramd");
    lab.wait_active();
    let before = lab.main_pid();

    // Upgrade: the change kept, the service restarted with the new version, still confined.
    let upgraded = lab.ok(&format!("dpkg -i {new} 2>&1"));
    lab.wait_active();
    // As README shows it (`cargo test --test systemd the_debian_package -- --nocapture`).
    println!(
        "{installed}\n{upgraded}\n{}",
        lab.ok("systemctl status scramd --no-pager -n 0 2>&1 | head -n 6")
    );
    assert_eq!(
        lab.ok("dpkg-query -W -f '${Version}' scram"),
        current,
        "the upgrade did not land"
    );
    assert_ne!(lab.main_pid(), before, "not restarted on upgrade");
    lab.ok("grep -qx 'stats_interval_seconds = 30' /etc/scram/scram.toml");
    lab.ok("test ! -e /etc/scram/scram.toml.dpkg-dist");
    assert_confined(&lab);
    let report = lab.ok("systemd-analyze security scramd.service --no-pager 2>&1");
    assert!(exposure(&report) <= MAX_EXPOSURE, "{report}");

    // Documentation: the man pages, and the catalog indexed (systemd's dpkg trigger).
    lab.ok("zcat /usr/share/man/man8/scramd.8.gz | grep -q 'EXIT STATUS'");
    lab.ok("zcat /usr/share/man/man5/scram.toml.5.gz | grep -q 'flow_capacity'");
    let id = scram::detect::Detector::Portscan.message_id();
    lab.ok(&format!(
        "journalctl --list-catalog {id} | grep -q 'scram: '"
    ));

    // It works: a scan reaches the journal, explained by the catalog.
    lab.scan(1..=40);
    let explained = lab.wait_for(
        "the portscan alert",
        20,
        "journalctl -x -u scramd --no-pager SCRAM_DETECTOR=portscan",
        |s| s.contains("What to do"),
    );
    assert!(explained.contains(lab::ATTACKER), "{explained}");
    // As README shows it; and no message of the parser was refused at any start or stop.
    let journal = lab.ok("journalctl -u scramd --no-pager -o short");
    println!("{journal}");
    assert!(!journal.contains("refused a message"), "{journal}");

    // Remove: stopped, the program gone, the configuration kept.
    lab.ok("dpkg -r scram 2>&1");
    assert_ne!(lab.run("systemctl is-active scramd").status.code(), Some(0));
    lab.ok("test ! -e /usr/sbin/scramd && test ! -e /usr/lib/scram");
    lab.ok("grep -qx 'stats_interval_seconds = 30' /etc/scram/scram.toml");

    // Purge: the configuration, state and logs gone too.
    lab.ok("dpkg -P scram 2>&1");
    lab.ok("test ! -e /etc/scram && test ! -e /var/log/scram && test ! -e /var/lib/private/scram");
    let status = lab.run("dpkg-query -W -f '${Status}' scram");
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        !status.contains("installed") || status.contains("not-installed"),
        "{status}"
    );
    let units = lab.run("systemctl list-unit-files 'scramd*' --no-legend");
    assert_eq!(String::from_utf8_lossy(&units.stdout).trim(), "");
}
