//! On a stock Debian 12 (its own 6.1 kernel, Landlock ABI 2, systemd 252, AppArmor on), booted
//! under qemu: `deploy/install.sh` installs and starts the service, and there the unit's exposure
//! score, every thread's capabilities, no-new-privs and seccomp, the start line's Landlock level
//! and the warnings for what that kernel cannot enforce, `scramd self-check`, an nmap scan
//! reaching the journal as an alert and the attacker banned in nftables, two workers on a link
//! down at start forming their fanout group when it comes up, and a reload that keeps the PID. The image is built once with debootstrap and cached (tests/vm/image.sh); the guest
//! has no network device (the scan runs between namespaces inside it).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{package, privileged};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// The guest's `SCRAM-VM key value` lines: (key, value) in order.
fn lines(serial: &str) -> Vec<(String, String)> {
    serial
        .lines()
        .filter_map(|l| l.strip_prefix("SCRAM-VM "))
        .map(|l| match l.split_once(' ') {
            Some((k, v)) => (k.to_owned(), v.trim_end().to_owned()),
            None => (l.trim_end().to_owned(), String::new()),
        })
        .collect()
}

#[test]
fn on_a_stock_debian_12_it_installs_confines_alerts_bans_and_reloads() {
    if !privileged("Debian 12 VM") {
        return;
    }
    let input = std::env::temp_dir().join(format!("scram-vm-in-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&input);
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(
        Path::new(MANIFEST).join("tests/vm/check.sh"),
        input.join("check.sh"),
    )
    .unwrap();
    // Installed as users install it: the Debian package of this tree.
    let deb = package(&format!("{}-1", env!("CARGO_PKG_VERSION")));
    std::fs::copy(deb, input.join("scram.deb")).unwrap();

    let out = Command::new("bash")
        .arg(Path::new(MANIFEST).join("tests/vm/boot.sh"))
        .arg(&input)
        .arg("900")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&input).unwrap();
    let serial = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let got = lines(&serial);
    let all = || {
        got.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        got.iter().any(|(k, _)| k == "done"),
        "the checks did not finish:\n{}\n{stderr}\n{serial}",
        all()
    );
    let one = |key: &str| -> &str {
        got.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} line:\n{}", all()))
    };
    let many = |key: &str| -> Vec<&str> {
        got.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };

    // The distribution's own kernel and systemd.
    assert!(one("kernel").starts_with("6.1."), "{}", all());
    assert!(one("systemd").starts_with("systemd 252"), "{}", all());
    // Installed and running, as confined as on a current kernel.
    assert_eq!(one("install"), "ok", "{}", all());
    assert_eq!(
        one("package"),
        format!("{}-1 install ok installed", env!("CARGO_PKG_VERSION")),
        "{}",
        all()
    );
    assert_eq!(one("enabled"), "enabled", "{}", all());
    assert_eq!(one("active"), "active", "{}", all());
    let score: f64 = one("security")
        .split("scramd.service: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score:\n{}", all()));
    assert!(score <= 1.3, "exposure {score}:\n{}", all());
    // The privileged part holds the two capabilities; the parser, with the capture workers and
    // the alert thread, none. Every thread of both: no-new-privs and seccomp.
    for (key, min, caps) in [
        ("thread", 1, "CapEff: 0000000000003000"),
        ("parser-thread", 3, "CapEff: 0000000000000000"),
    ] {
        let threads = many(key);
        assert!(threads.len() >= min, "{key}:\n{}", all());
        for t in threads {
            assert!(
                t.contains(caps) && t.contains("NoNewPrivs: 1") && t.contains("Seccomp: 2"),
                "{key} {t}:\n{}",
                all()
            );
        }
    }
    // Landlock ABI 2: named at start, and each protection it cannot enforce named at WARNING
    // with what stands in.
    let landlock = many("landlock").join("\n");
    assert!(
        landlock.contains("landlock enforced with the rights of kernel ABI 2"),
        "{landlock}"
    );
    for missing in [
        "truncating files",
        "binding and connecting TCP ports",
        "ioctl on devices",
        "abstract unix sockets and signals to other processes",
    ] {
        assert!(
            landlock.contains(&format!("cannot enforce {missing}")),
            "{missing}:\n{landlock}"
        );
    }
    // Every attack refused there too (the unix-socket and signal rows by seccomp, which on this
    // kernel is the only layer that can).
    assert_eq!(one("self-check"), "ok", "{}", all());
    for row in many("self-check-row") {
        assert!(row.starts_with("ok "), "{row}:\n{}", all());
    }
    // A scan is an alert in the journal, and its source is banned.
    assert_eq!(one("ping-before"), "passed", "{}", all());
    let alerts: u32 = one("portscan-alerts").parse().unwrap();
    assert!(alerts >= 1, "{}", all());
    let alert = one("alert");
    assert!(alert.contains("\"SRC_IP\":\"10.99.0.2\""), "{alert}");
    assert_eq!(one("ban"), "1", "{}", all());
    assert_eq!(one("ping-after"), "blocked", "{}", all());
    // Two workers started on a link that is down (6.1 forms no fanout group there): the group
    // forms, under the seccomp filter, once the link comes up.
    assert_eq!(one("fanout-down"), "1", "{}", all());
    assert_eq!(one("fanout-formed"), "1", "{}", all());
    assert!(many("fanout-error").is_empty(), "{}", all());
    // Reload keeps the process.
    let reload: Vec<&str> = one("reload").split_whitespace().collect();
    assert_eq!(reload.len(), 3, "{}", all());
    assert_eq!(reload[0], reload[1], "reload changed the PID:\n{}", all());
    assert_eq!(reload[2], "active", "{}", all());
}
