//! `scramd` as operators run it: exit codes, messages, a capture run in a namespace.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{privileged, udp_frame, Scramd, Scratch, Sender, Veth, SCRAMD, VA, VB};

fn scramd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(SCRAMD)
        .args(args)
        .env("SCRAM_LOG_TARGET", "stderr")
        .output()
        .expect("scramd runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_version_exit_0_usage_errors_exit_64() {
    let (code, out, _) = scramd(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("run") && out.contains("check-config"), "{out}");
    let (code, out, _) = scramd(&["run", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--iface") && out.contains("--config"), "{out}");
    let (code, out, _) = scramd(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("scramd "), "{out}");
    assert_eq!(scramd(&[]).0, 64);
    assert_eq!(scramd(&["frobnicate"]).0, 64);
    assert_eq!(scramd(&["run", "--no-such-flag"]).0, 64);
}

#[test]
fn check_config_prints_the_effective_config_or_exits_78_with_a_position() {
    let scratch = Scratch::new("cfg");
    let dir = scratch.dir();
    let good = dir.join("good.toml");
    std::fs::write(&good, "[capture]\ninterfaces = [\"eth9\"]\nworkers = 2\n").unwrap();
    let (code, out, _) = scramd(&["check-config", good.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("interfaces = [\"eth9\"]") && out.contains("workers = 2"),
        "{out}"
    );
    assert!(
        out.contains("block_timeout_ms = 10"),
        "defaults shown: {out}"
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[capture]\nworkers = 2\nblock_count = -1\n").unwrap();
    let (code, _, err) = scramd(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, 78);
    assert!(
        err.contains(&format!(
            "{}:3:15: capture.block_count = -1 is out of range",
            bad.display()
        )),
        "{err}"
    );

    let sandbox = dir.join("sandbox.toml");
    std::fs::write(
        &sandbox,
        "[privileges]\nuser = \"scram-dev\"\n[sandbox]\nseccomp = false\n",
    )
    .unwrap();
    let (code, out, err) = scramd(&["check-config", sandbox.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("[privileges]\nuser = \"scram-dev\"")
            && out.contains("landlock = true\nlandlock_required = false\nseccomp = false"),
        "{out}"
    );
    let root = dir.join("root.toml");
    std::fs::write(&root, "[privileges]\nuser = \"root\"\n").unwrap();
    let (code, _, err) = scramd(&["check-config", root.to_str().unwrap()]);
    assert_eq!(code, 78);
    assert!(err.contains(":2:8: privileges.user = \"root\""), "{err}");

    // `run` refuses it the same way, before touching the network.
    let (code, _, err) = scramd(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 78);
    assert!(err.contains(":3:15:"), "{err}");

    let (code, _, err) = scramd(&["check-config", "/nonexistent/scram.toml"]);
    assert_eq!(code, 78);
    assert!(
        err.contains("/nonexistent/scram.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn unknown_interface_exits_78_and_lists_the_real_ones() {
    let (code, _, err) = scramd(&["run", "--iface", "nosuch0"]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("no interface named \"nosuch0\""), "{err}");
    assert!(err.contains("lo"), "lists existing interfaces: {err}");
}

#[test]
fn missing_cap_net_raw_exits_77_naming_it() {
    if !privileged("exit 77") {
        return;
    }
    // Root, but with CAP_NET_RAW gone from the bounding set, so the exec'd scramd lacks it.
    let out = Command::new("setpriv")
        .args([
            "--bounding-set=-net_raw",
            "--",
            SCRAMD,
            "run",
            "--iface",
            "lo",
        ])
        .env("SCRAM_LOG_TARGET", "stderr")
        .output()
        .expect("setpriv runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(err.contains("CAP_NET_RAW"), "{err}");
}

#[test]
fn scramd_captures_in_a_namespace_and_stops_within_a_second() {
    if !privileged("scramd run") {
        return;
    }
    common::scram_user();
    let veth = Veth::new();
    let scratch = Scratch::new("run");
    let mut d = Scramd::run_in(&veth.b.name, &["--iface", VB], scratch.path("log"));
    d.wait_for_log("capturing on vb", 10);
    veth.a.run(|| {
        let s = Sender::open(VA);
        for seq in 0..1_000 {
            s.send(&udp_frame((seq % 4) as u16, seq, &[]));
        }
    });
    std::thread::sleep(Duration::from_millis(200));

    let stopping = Instant::now();
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, text) = d.wait(Duration::from_secs(5));
    let took = stopping.elapsed();
    assert_eq!(code, 0, "{text}");
    assert!(
        took <= Duration::from_secs(1),
        "SIGTERM to exit took {took:?}"
    );
    assert!(text.contains("final counters vb: 1000 frames"), "{text}");
    assert!(text.contains("kernel_drops=0"), "{text}");
}

#[test]
fn the_shipped_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/scram.toml");
    let (code, out, err) = scramd(&["check-config", path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("block_timeout_ms = 10"), "{out}");
}

#[test]
fn the_catalog_explains_every_detector() {
    let catalog = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/scram.catalog"
    ))
    .unwrap();
    for d in scram::detect::Detector::ALL {
        let entry = catalog
            .split("\n-- ")
            .find(|e| e.starts_with(d.message_id()))
            .unwrap_or_else(|| panic!("no catalog entry for {}", d.name()));
        assert!(entry.contains("\nSubject: scram: "), "{entry}");
        assert!(entry.contains("\nDefined-By: scram\n"), "{entry}");
        assert!(entry.contains("What to do:"), "{entry}");
        assert!(entry.contains("@IFACE@"), "{entry}");
    }
}

/// scram.toml(5) is generated from the example configuration's comments (examples/man.rs), so
/// the example must document every key `check-config` knows: each one appears in the text of
/// its section (the flood sections share what `[detect.syn-flood]` says of every flood).
#[test]
fn the_example_config_documents_every_key() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/scram.toml");
    let example = std::fs::read_to_string(path).unwrap();
    let section_text = |name: &str| -> String {
        let head = format!("[{name}]\n");
        let start = example
            .find(&head)
            .unwrap_or_else(|| panic!("no {head} in the example"));
        let rest = &example[start + head.len()..];
        rest[..rest.find("\n[").unwrap_or(rest.len())].to_owned()
    };
    let (code, out, err) = scramd(&["check-config", path]);
    assert_eq!(code, 0, "{err}");
    let mut section = String::new();
    let mut checked = 0;
    for line in out.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let key = match line.strip_prefix("# ") {
            Some(c) => c.split(':').next().unwrap_or(""),
            None => line.split(" = ").next().unwrap_or(""),
        };
        if section.is_empty() || key.is_empty() || key.contains(' ') {
            continue;
        }
        let mut text = section_text(&section);
        if text.contains("\npps = ") || text.starts_with("enabled = true\npps") {
            text.push_str(&section_text("detect.syn-flood"));
        }
        assert!(
            text.contains(key),
            "[{section}] {key} is not documented in packaging/scram.toml"
        );
        checked += 1;
    }
    assert!(checked > 80, "only {checked} keys checked:\n{out}");
}
