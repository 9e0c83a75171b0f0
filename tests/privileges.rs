//! Privilege drop and confinement of the running daemon, observed from outside through
//! /proc/PID/task/*/status, and the self-check's attacks from inside.
//!
//! Root, namespaces and veth pairs: these tests own their namespaces and remove them on drop.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{privileged, scram_user, Netns, Scramd, Scratch, Sender, Veth, SCRAMD, VA, VB};
use scram::craft;
use scram::decode::tcp_flags::SYN;

/// CAP_NET_ADMIN | CAP_NET_RAW as /proc prints it.
const KEPT: &str = "0000000000003000";
const NONE: &str = "0000000000000000";

/// How `setpriv` starts scramd the way systemd does for `User=scram` with
/// `AmbientCapabilities=` and `CapabilityBoundingSet=` CAP_NET_RAW CAP_NET_ADMIN.
fn as_systemd_would(uid: u32, gid: u32) -> Vec<String> {
    vec![
        "setpriv".into(),
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
        "--clear-groups".into(),
        "--inh-caps=-all,+net_raw,+net_admin".into(),
        "--ambient-caps=-all,+net_raw,+net_admin".into(),
        "--bounding-set=-all,+net_raw,+net_admin".into(),
        "--".into(),
    ]
}

/// scramd running in the capturing namespace (see [`common::Scramd`]: killed on drop).
struct Daemon;

impl Daemon {
    /// Starts `PREFIX... scramd run --config CONFIG --iface vb` in the capturing namespace and
    /// waits until it captures.
    fn start(veth: &Veth, prefix: &[String], config: &Path, log: PathBuf) -> Scramd {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &veth.b.name]).args(prefix).args([
            SCRAMD,
            "run",
            "--config",
            config.to_str().unwrap(),
            "--iface",
            VB,
        ]);
        let mut d = Scramd::spawn(c, log);
        d.wait_for_log("capturing on vb", 10);
        d
    }
}

/// `/proc/PID/task/*/status` of every thread of process `pid`: (thread name, status text).
fn threads_of(pid: u32) -> Vec<(String, String)> {
    let task = format!("/proc/{pid}/task");
    std::fs::read_dir(&task)
        .unwrap()
        .map(|t| {
            let dir = t.unwrap().path();
            let status = std::fs::read_to_string(dir.join("status")).unwrap();
            let name = std::fs::read_to_string(dir.join("comm")).unwrap();
            (name.trim().to_owned(), status)
        })
        .collect()
}

/// The parser `scramd run` started (privilege separation): its one child.
fn parser_pid(d: &Scramd) -> u32 {
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", d.pid())).unwrap();
    let pids: Vec<u32> = children
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 1, "children of scramd run: {children:?}");
    pids[0]
}

fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

/// Both processes run as `uid`/`gid` with no-new-privs and a seccomp filter on every thread;
/// the privileged part holds exactly the kept capabilities, the parser (which has the capture
/// workers and the alert thread) none at all.
fn assert_confined(d: &Scramd, uid: u32, gid: u32) {
    let ids = |v: u32| format!("{v}\t{v}\t{v}\t{v}");
    let common = |what: &str, s: &str| {
        assert_eq!(field(s, "Uid:"), ids(uid), "{what}");
        assert_eq!(field(s, "Gid:"), ids(gid), "{what}");
        assert_eq!(field(s, "Groups:"), "", "{what}");
        assert_eq!(field(s, "CapInh:"), NONE, "{what}");
        assert_eq!(field(s, "CapAmb:"), NONE, "{what}");
        assert_eq!(field(s, "NoNewPrivs:"), "1", "{what}");
        assert_eq!(field(s, "Seccomp:"), "2", "{what}");
    };
    for (name, s) in threads_of(d.pid().as_raw() as u32) {
        let what = format!("privileged part, thread {name}: {s}");
        common(&what, &s);
        assert_eq!(field(&s, "CapEff:"), KEPT, "{what}");
        assert_eq!(field(&s, "CapPrm:"), KEPT, "{what}");
        assert_eq!(field(&s, "CapBnd:"), KEPT, "{what}");
    }
    let parser = threads_of(parser_pid(d));
    // main, one capture worker, the alert thread at least.
    assert!(parser.len() >= 3, "{parser:?}");
    for (name, s) in &parser {
        let what = format!("parser, thread {name}: {s}");
        common(&what, s);
        assert_eq!(field(s, "CapEff:"), NONE, "{what}");
        assert_eq!(field(s, "CapPrm:"), NONE, "{what}");
        let bounding = u64::from_str_radix(field(s, "CapBnd:"), 16).unwrap();
        assert_eq!(bounding & !0x3000, 0, "{what}");
    }
}

/// A 30-port SYN scan from `va`, and the portscan alert it must raise in `alerts`.
fn scan_and_expect_alert(veth: &Veth, alerts: &Path) {
    let attacker = "198.18.0.7".parse().unwrap();
    let victim = "198.18.0.2".parse().unwrap();
    veth.a.run(move || {
        let s = Sender::open(VA);
        for port in 1..=30u16 {
            s.send(&craft::tcp_frame(attacker, victim, 40000, port, SYN));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(alerts).unwrap_or_default();
        if text.contains("\"portscan\"") && text.contains("198.18.0.7") {
            return;
        }
        assert!(Instant::now() < deadline, "no portscan alert: {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_config(scratch: &Scratch, extra: &str) -> PathBuf {
    let cfg = scratch.path("scram.toml");
    std::fs::write(
        &cfg,
        format!(
            "[capture]\nworkers = 2\n\n[alerts]\njson = {:?}\n{extra}",
            scratch.path("alerts.json").to_str().unwrap()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn started_as_root_every_thread_runs_as_scram_with_two_capabilities_and_still_alerts() {
    if !privileged("privilege drop from root") {
        return;
    }
    let (uid, gid) = scram_user();
    let veth = Veth::new();
    let scratch = Scratch::owned_by("root", (0, 0));
    let cfg = write_config(&scratch, "");
    let d = Daemon::start(&veth, &[], &cfg, scratch.path("log"));
    assert_confined(&d, uid, gid);
    // The privileged part sets the two 32 MiB rings up and hands them over unmapped: its peak
    // resident set holds neither (the parser maps them).
    let peak = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        field(&status, "VmHWM:")
            .trim_end_matches(" kB")
            .parse()
            .unwrap()
    };
    let (privileged, parser) = (peak(d.pid().as_raw() as u32), peak(parser_pid(&d)));
    assert!(
        privileged < 32 << 10 && parser >= 64 << 10,
        "peak resident KiB: privileged part {privileged}, parser {parser}"
    );
    assert!(
        d.log().contains("running as scram")
            && d.log()
                .contains("CAP_NET_ADMIN, CAP_NET_RAW; no-new-privs set; landlock enforced"),
        "{}",
        d.log()
    );
    scan_and_expect_alert(&veth, &scratch.path("alerts.json"));
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
}

#[test]
fn started_by_systemd_with_ambient_capabilities_it_ends_in_the_same_state() {
    if !privileged("privilege drop from ambient capabilities") {
        return;
    }
    let (uid, gid) = scram_user();
    let veth = Veth::new();
    // Started unprivileged, scramd opens its alert file itself: the directory is the user's.
    let scratch = Scratch::owned_by("ambient", (uid, gid));
    let cfg = write_config(&scratch, "");
    let d = Daemon::start(
        &veth,
        &as_systemd_would(uid, gid),
        &cfg,
        scratch.path("log"),
    );
    assert_confined(&d, uid, gid);
    scan_and_expect_alert(&veth, &scratch.path("alerts.json"));
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
}

#[test]
fn a_reload_after_confinement_re_reads_the_config_and_refuses_a_bad_one() {
    if !privileged("reload under confinement") {
        return;
    }
    scram_user();
    let veth = Veth::new();
    let scratch = Scratch::owned_by("reload", (0, 0));
    let cfg = write_config(&scratch, "");
    let d = Daemon::start(&veth, &[], &cfg, scratch.path("log"));
    let hup = |d: &Scramd, expect: &str| {
        nix::sys::signal::kill(d.pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !d.log().contains(expect) {
            assert!(Instant::now() < deadline, "no {expect:?}: {}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Replaced by rename, as editors do: Landlock grants the directory, not the old inode.
    let next = scratch.path("scram.toml.new");
    std::fs::write(
        &next,
        std::fs::read_to_string(&cfg).unwrap()
            + "\n[allowlist]\ncidrs = [\"192.0.2.0/24\"]\n[detect]\ntable_capacity = 4096\n[detect.portscan]\nports = 5\n",
    )
    .unwrap();
    std::fs::rename(&next, &cfg).unwrap();
    hup(
        &d,
        "re-read; applied [allowlist] cidrs; [detect.*] (every detector's switch and thresholds)",
    );
    assert!(
        d.log().contains(
            "changes to [detect] table_capacity, flow_capacity take effect at the next restart"
        ),
        "{}",
        d.log()
    );
    std::fs::write(&cfg, "[detect.portscan]\nports = \"many\"\n").unwrap();
    hup(&d, "SIGHUP: keeping the running configuration");
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("scram.toml:2:9"), "{log}");
}

/// Runs `scramd self-check` (behind `prefix`) and returns (exit code, stdout, stderr).
fn self_check(prefix: &[String], config: Option<&Path>) -> (i32, String, String) {
    let mut cmd = if prefix.is_empty() {
        Command::new(SCRAMD)
    } else {
        let mut c = Command::new(&prefix[0]);
        c.args(&prefix[1..]).arg(SCRAMD);
        c
    };
    cmd.arg("self-check");
    if let Some(c) = config {
        cmd.args(["--config", c.to_str().unwrap()]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_every_attack_refused(out: &str) {
    for attack in [
        "exec /bin/sh",
        "open /etc/shadow for reading",
        "create a file under /etc",
        "open an AF_INET socket",
        "ptrace the parent process",
        "setuid(0)",
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(attack))
            .unwrap_or_else(|| panic!("no line for {attack}: {out}"));
        assert!(
            line.starts_with("ok ") && line.contains("refused"),
            "{attack} was not refused: {line}\n{out}"
        );
    }
    let packet = out.lines().find(|l| l.contains("AF_PACKET")).unwrap();
    assert!(
        packet.starts_with("ok ") && packet.ends_with("worked"),
        "{out}"
    );
    for (key, want) in [
        ("CapEff:", KEPT),
        ("CapPrm:", KEPT),
        ("CapBnd:", KEPT),
        ("CapInh:", NONE),
        ("CapAmb:", NONE),
        ("NoNewPrivs:", "1"),
        ("Seccomp:", "2"),
    ] {
        assert_eq!(field(out, &format!("  {key}")), want, "{out}");
    }
    assert!(out.contains("every attack was refused"), "{out}");
}

#[test]
fn the_self_check_sees_every_attack_refused_after_the_real_confinement() {
    if !privileged("self-check") {
        return;
    }
    let (uid, gid) = scram_user();
    let (code, out, err) = self_check(&[], None);
    assert_eq!(code, 0, "{out}{err}");
    assert_every_attack_refused(&out);
    assert!(
        out.contains(&format!("  Uid: {uid} {uid} {uid} {uid}")),
        "{out}"
    );
    // The kernel's seccomp filter, not only file permissions, stops exec and setuid; ptrace is
    // reached (the parent's pid was read before confinement) and killed there.
    for call in [
        "exec /bin/sh",
        "setuid(0)",
        "ptrace",
        "connect an open unix socket elsewhere",
        "signal a process of the same user",
        "tgkill a process of the same user",
    ] {
        let line = out.lines().find(|l| l.contains(call)).unwrap();
        assert!(
            line.starts_with("ok") && line.contains("killed by seccomp"),
            "{line}"
        );
    }
    // Files anyone may read or write are refused by Landlock itself (file permissions let
    // those through), and each row names the layer.
    for call in ["read /etc/hostname", "create a file in /tmp"] {
        let line = out.lines().find(|l| l.contains(call)).unwrap();
        assert!(
            line.starts_with("ok") && line.ends_with("(Landlock)"),
            "{line}"
        );
    }
    // No unix socket can be made after confinement, on any kernel: the journal's and the
    // service manager's were opened before.
    for call in [
        "connect to an abstract unix socket",
        "connect to another path unix socket",
    ] {
        let line = out.lines().find(|l| l.contains(call)).unwrap();
        assert!(
            line.starts_with("ok") && line.contains("seccomp socket family filter"),
            "{line}"
        );
    }

    let (code, out, err) = self_check(&as_systemd_would(uid, gid), None);
    assert_eq!(code, 0, "{out}{err}");
    assert_every_attack_refused(&out);
}

#[test]
fn with_seccomp_off_the_self_check_shows_what_is_left_and_fails() {
    if !privileged("self-check without seccomp") {
        return;
    }
    scram_user();
    let scratch = Scratch::owned_by("nosec", (0, 0));
    let cfg = scratch.path("scram.toml");
    std::fs::write(&cfg, "[sandbox]\nseccomp = false\n").unwrap();
    let (code, out, err) = self_check(&[], Some(&cfg));
    assert!(out.contains("Seccomp: 0"), "{out}");
    // Without seccomp, exec is still refused: Landlock grants no execute right anywhere.
    let exec = out.lines().find(|l| l.contains("exec /bin/sh")).unwrap();
    assert!(exec.contains("refused: Permission denied"), "{exec}");
    // But only the seccomp filter limits socket families: the check says so and fails.
    let inet = out.lines().find(|l| l.contains("AF_INET")).unwrap();
    assert!(
        inet.starts_with("FAIL") && inet.ends_with("worked"),
        "{out}"
    );
    assert_eq!(code, 70, "{out}{err}");
}

#[test]
fn an_unknown_user_exits_78_and_a_root_that_cannot_change_identity_exits_77() {
    if !privileged("privilege errors") {
        return;
    }
    let ns = Netns::new();
    let scratch = Scratch::owned_by("errors", (0, 0));
    let cfg = scratch.path("scram.toml");
    std::fs::write(&cfg, "[privileges]\nuser = \"scram-no-such-user\"\n").unwrap();
    let run = |prefix: &[&str], cfg: &Path| {
        let mut args = vec!["netns", "exec", &ns.name];
        args.extend_from_slice(prefix);
        args.extend([
            SCRAMD,
            "run",
            "--iface",
            "lo",
            "--config",
            cfg.to_str().unwrap(),
        ]);
        let out = Command::new("ip")
            .args(&args)
            .env("SCRAM_LOG_TARGET", "stderr")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[], &cfg);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("no user \"scram-no-such-user\""), "{err}");

    scram_user();
    let ok = scratch.path("ok.toml");
    std::fs::write(&ok, "").unwrap();
    // Root holding only the two kept capabilities cannot switch users: it must not go on as
    // root.
    let (code, err) = run(
        &["setpriv", "--bounding-set=-all,+net_raw,+net_admin", "--"],
        &ok,
    );
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("CAP_SETPCAP"), "{err}");

    // An unprivileged user without the capabilities cannot open capture at all.
    let (uid, gid) = scram_user();
    let (code, err) = run(
        &[
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--",
        ],
        &ok,
    );
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("CAP_NET_RAW"), "{err}");
}

#[test]
fn a_confined_daemon_survives_a_link_flap_and_a_reload_storm() {
    if !privileged("rare paths under seccomp") {
        return;
    }
    scram_user();
    let veth = Veth::new();
    let scratch = Scratch::owned_by("flap", (0, 0));
    let cfg = write_config(&scratch, "");
    let d = Daemon::start(&veth, &[], &cfg, scratch.path("log"));
    // The link goes down and up: the worker's error path (SO_ERROR, sleep, a warning) runs
    // under the filter.
    veth.b.exec(&["ip", "link", "set", VB, "down"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.log().contains("went down") {
        assert!(
            Instant::now() < deadline,
            "no link-down warning: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    veth.b.exec(&["ip", "link", "set", VB, "up"]);
    // Signals at odd times: several reloads in a row.
    for _ in 0..5 {
        nix::sys::signal::kill(d.pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    scan_and_expect_alert(&veth, &scratch.path("alerts.json"));
    let (code, log) = d.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("capture on vb resumed after a gap"), "{log}");
}

#[test]
fn replay_reads_its_hostile_input_with_no_capability_and_the_filter_on() {
    if !privileged("replay confinement") {
        return;
    }
    let scratch = Scratch::owned_by("replay", (0, 0));
    let fifo = scratch.path("capture.pcap");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Started as root, replay blocks opening the FIFO, after it confined itself.
    let child = Command::new(SCRAMD)
        .args(["replay", fifo.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let s = std::fs::read_to_string(&status_path).unwrap();
        if field(&s, "Seccomp:") == "2" {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "replay never confined itself: {s}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    for key in ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:", "CapBnd:"] {
        assert_eq!(field(&status, key), NONE, "{key} {status}");
    }
    assert_eq!(field(&status, "NoNewPrivs:"), "1");
    // An empty pcap (global header only) through the FIFO: replay ends normally.
    let mut header = Vec::new();
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&65535u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    std::fs::write(&fifo, &header).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
