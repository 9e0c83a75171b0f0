//! The veth benchmark still runs: one short round per tool (debug scramd, so no timing is read
//! into it), a table and a parseable SUMMARY line, and its namespaces gone afterwards.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::privileged;

#[test]
fn the_veth_benchmark_runs_every_tool_and_cleans_up() {
    if !privileged("veth benchmark") {
        return;
    }
    common::scram_user();
    let out = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/veth.py"))
        .args(["--scramd", env!("CARGO_BIN_EXE_scramd")])
        .args([
            "--rounds",
            "1",
            "--seconds",
            "1",
            "--profiles",
            "64B",
            "--cpus",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    for tool in ["scramd", "tcpdump", "netsniff-ng"] {
        assert!(
            stdout.contains(&format!("| 64B | 1 core(s) | {tool} |")),
            "{stdout}"
        );
    }
    let summary = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SUMMARY "))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(summary).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{summary}");
    for r in results {
        assert!(r["captured_pps"].as_u64().unwrap() > 0, "{r}");
        assert!(r["cpu_s_per_mpkt"].as_f64().unwrap() > 0.0, "{r}");
    }
    let netns = common::sh(&["ip", "netns", "list"]);
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains("scram-bench"),
        "namespaces left behind"
    );
}
