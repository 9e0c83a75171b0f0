//! The veth benchmark still runs: one short round per tool, fastnetmon included (debug scramd, so
//! no timing is read into it), the IPv6 flood, a scaling profile and the idle link, the tables, a
//! parseable SUMMARY line and the plot, and its namespaces gone afterwards.
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
    let plot = std::env::temp_dir().join(format!("scram-bench-plot-{}.png", std::process::id()));
    // Debian's python3, where python3-matplotlib is installed (as benches/veth.sh runs it).
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/veth.py"))
        .args(["--scramd", env!("CARGO_BIN_EXE_scramd")])
        .args([
            "--rounds",
            "1",
            "--seconds",
            "1",
            "--profiles",
            "64B,src1k,v6,idle",
            "--cpus",
            "1",
            "--plot",
        ])
        .arg(&plot)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let tools = [
        "scramd",
        "scramd-1w",
        "tcpdump",
        "netsniff-ng",
        "fastnetmon",
    ];
    for profile in ["64B", "src1k", "v6"] {
        for tool in tools {
            assert!(
                stdout.contains(&format!("| {profile} | 1 core(s) | {tool} |")),
                "{stdout}"
            );
        }
    }
    let png = std::fs::read(&plot).unwrap();
    std::fs::remove_file(&plot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let summary = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SUMMARY "))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(summary).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 4 * tools.len(), "{summary}");
    for r in results.iter().filter(|r| r["profile"] == "idle") {
        assert!(r["idle_cpu_ms_per_s"].as_f64().is_some(), "{r}");
        assert!(r["wakeups_per_s"].as_f64().is_some(), "{r}");
        assert!(
            stdout.contains(&format!("| idle | 1 | {} |", r["tool"].as_str().unwrap())),
            "{stdout}"
        );
    }
    for r in results.iter().filter(|r| r["profile"] != "idle") {
        assert!(r["captured_pps"].as_u64().unwrap() > 0, "{r}");
        assert!(r["cpu_s_per_mpkt"].as_f64().unwrap() > 0.0, "{r}");
        if r["tool"] == "scramd" {
            assert!(r["cpu_vs_fastnetmon"].as_f64().unwrap() > 0.0, "{r}");
            // One round: its ratio to that round's tcpdump is the median.
            let by_round = r["cpu_vs_tcpdump_by_round"].as_array().unwrap();
            assert_eq!(by_round.len(), 1, "{r}");
            assert_eq!(by_round[0], r["cpu_vs_tcpdump_round_median"], "{r}");
            assert!(
                stdout.contains(&format!(
                    "- {}, trafgen x1, scramd: ",
                    r["profile"].as_str().unwrap()
                )),
                "{stdout}"
            );
        }
    }
    let scaling = results.iter().find(|r| r["profile"] == "src1k").unwrap();
    assert_eq!(scaling["distinct_sources"], 1000, "{scaling}");
    let netns = common::sh(&["ip", "netns", "list"]);
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains("scram-bench"),
        "namespaces left behind"
    );
}

/// The pipeline's own benchmarks still run: `benches/wall.sh` and `benches/callgrind.sh`, each
/// once with two small round counts on the debug build of `examples/pipeline_loop`, print a
/// line per corpus and a parseable SUMMARY. (No number is read: they time and count an
/// unoptimized build.)
#[test]
fn the_pipeline_benchmarks_run_and_print_their_summary() {
    let root = env!("CARGO_MANIFEST_DIR");
    let built = std::process::Command::new(env!("CARGO"))
        .args(["build", "--locked", "--quiet", "--example", "pipeline_loop"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(
        built.success(),
        "cargo build --example pipeline_loop failed"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(root).join("target"));
    let bin = target.join("debug/examples/pipeline_loop");
    struct Run {
        script: &'static str,
        args: &'static [&'static str],
        /// The two round counts.
        rounds: &'static str,
        /// The SUMMARY's key.
        key: &'static str,
        /// The corpora it reports.
        corpora: &'static [&'static str],
    }
    let runs = [
        Run {
            script: "wall.sh",
            args: &["mixed"],
            rounds: "1 3",
            key: "ns_per_packet",
            corpora: &["mixed"],
        },
        Run {
            script: "callgrind.sh",
            args: &[],
            rounds: "1 2",
            key: "instructions_per_packet",
            corpora: &[
                "mixed",
                "udp64",
                "udp64v6",
                "udp64k",
                "spoofed",
                "udp64-2w",
                "victims",
                "victims-2w",
            ],
        },
    ];
    for Run {
        script,
        args,
        rounds,
        key,
        corpora,
    } in runs
    {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(format!("{root}/benches/{script}"))
            .args(args)
            .env("SCRAM_BENCH_BIN", &bin)
            .env("SCRAM_BENCH_ROUNDS", rounds);
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{script}: {stdout}{stderr}");
        let summary = stdout
            .lines()
            .find_map(|l| l.strip_prefix("SUMMARY "))
            .unwrap_or_else(|| panic!("{script} printed no SUMMARY: {stdout}"));
        let v: serde_json::Value = serde_json::from_str(summary).unwrap();
        for corpus in corpora {
            assert!(v[key][corpus].is_number(), "{script}: {summary}");
            assert!(
                stdout.contains(&format!("{corpus}: ")),
                "{script}: {stdout}"
            );
        }
    }
}
