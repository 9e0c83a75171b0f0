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

/// journal-remote on `lab`, port 19532, plain HTTP between the lab's namespaces.
fn collector_http(lab: &Lab) {
    lab.ok(&format!(
        "mkdir -p /etc/systemd/system/systemd-journal-remote.service.d && \
         cp {FLEET}/journal/remote-http-lab.conf \
            /etc/systemd/system/systemd-journal-remote.service.d/scram.conf && \
         systemctl daemon-reload && systemctl start systemd-journal-remote.socket"
    ));
}

/// journal-upload on `lab` with the shipped drop-ins, sending to `collector` (HTTP: see above).
fn uploader(lab: &Lab, collector: &str) {
    lab.ok(&format!(
        "mkdir -p /etc/systemd/journal-upload.conf.d \
                  /etc/systemd/system/systemd-journal-upload.service.d && \
         sed 's|^URL=.*|URL=http://{collector}:19532|; /File=/d' \
           {FLEET}/journal/journal-upload.conf \
           > /etc/systemd/journal-upload.conf.d/scram.conf && \
         cp {FLEET}/journal/upload-restart.conf \
           /etc/systemd/system/systemd-journal-upload.service.d/scram.conf && \
         systemctl daemon-reload && systemctl start systemd-journal-upload"
    ));
}

#[test]
fn alerts_of_two_hosts_reach_the_collector_and_survive_its_outage() {
    if !privileged("fleet lab: journal upload and remote") {
        return;
    }
    let lan = Lan::new();
    let collector = Lab::boot();
    collector.join(&lan, COLLECTOR);
    collector_http(&collector);

    let hosts = [Lab::boot(), Lab::boot()];
    for (i, host) in hosts.iter().enumerate() {
        host.join(&lan, &format!("10.77.0.{}", i + 2));
        host.install();
        host.wait_active();
        uploader(host, COLLECTOR);
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

/// The CrowdSec LAN: not a private range, which CrowdSec's stock whitelist ignores.
const LAPI: &str = "198.51.100.1";
const HOST_A: &str = "198.51.100.2";
const HOST_B: &str = "198.51.100.3";
const SCANNER: &str = "198.51.100.9";
const BYSTANDER: &str = "198.51.100.8";
const ALLOWED: &str = "198.51.100.7";

/// Whether one ping from `from` reaches `to` (a banned source's is dropped).
fn ping(from: &common::Netns, to: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", &from.name, "ping", "-n", "-c", "1", "-W", "1", to,
        ])
        .output()
        .unwrap();
    out.status.success()
}

/// Polls `cond` every 200 ms for at most `secs` seconds; how long it took, if it came true.
fn within(secs: f64, mut cond: impl FnMut() -> bool) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed().as_secs_f64() > secs {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The bouncer's configuration: the lab's local API, polled every second.
fn bouncer(lab: &Lab, key: &str) {
    lab.ok(&format!(
        "printf 'mode: nftables\\napi_url: http://{LAPI}:8080/\\napi_key: {key}\\n\
         update_frequency: 1s\\n' > /etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml.local && \
         systemctl start crowdsec-firewall-bouncer"
    ));
}

/// crowdsec on `lab` as its own local API, listening on the LAN (cscli there uses it too), run
/// with `mode` (`-no-cs`: the API alone; `""`: API and agent).
fn local_api(lab: &Lab, mode: &str) {
    lab.ok(&format!(
        "printf 'db_config:\\n  use_wal: true\\napi:\\n  server:\\n    listen_uri: {LAPI}:8080\\n' \
           > /etc/crowdsec/config.yaml.local && \
         sed -i 's|^url: .*|url: http://{LAPI}:8080|' /etc/crowdsec/local_api_credentials.yaml"
    ));
    crowdsec_mode(lab, mode);
}

/// crowdsec.service on `lab` runs `crowdsec` with `mode` (`-no-api`, `-no-cs` or `""`).
fn crowdsec_mode(lab: &Lab, mode: &str) {
    lab.ok(&format!(
        "mkdir -p /etc/systemd/system/crowdsec.service.d && \
         printf '[Service]\\nExecStartPre=\\nExecStart=\\nExecStart=/usr/bin/crowdsec -c /etc/crowdsec/config.yaml {mode}\\n' \
           > /etc/systemd/system/crowdsec.service.d/scram-lab.conf && \
         systemctl daemon-reload"
    ));
}

/// scram's collection on `lab`, the allowlist naming [`ALLOWED`]; the acquisition's filter
/// replaced by `filter` when given (one JSON string list, as in acquis.d/scram.yaml's comment).
fn collection(lab: &Lab, filter: Option<&str>) {
    let acquis = match filter {
        Some(f) => format!(
            "sed '/^journalctl_filter:/,/^labels:/{{/^labels:/!d}}; s|^labels:|journalctl_filter: {f}\\nlabels:|' \
               {FLEET}/crowdsec/acquis.d/scram.yaml > /etc/crowdsec/acquis.d/scram.yaml"
        ),
        None => format!("cp {FLEET}/crowdsec/acquis.d/scram.yaml /etc/crowdsec/acquis.d/"),
    };
    lab.ok(&format!(
        "cp {FLEET}/crowdsec/parsers/s00-raw/*.yaml /etc/crowdsec/parsers/s00-raw/ && \
         cp {FLEET}/crowdsec/parsers/s01-parse/*.yaml /etc/crowdsec/parsers/s01-parse/ && \
         cp {FLEET}/crowdsec/scenarios/*.yaml /etc/crowdsec/scenarios/ && \
         cp {FLEET}/crowdsec/collections/*.yaml /etc/crowdsec/collections/ && \
         mkdir -p /etc/crowdsec/acquis.d && {acquis} && \
         sed 's/192.0.2.10/{ALLOWED}/' {FLEET}/crowdsec/parsers/s02-enrich/scram-allowlist.yaml \
           > /etc/crowdsec/parsers/s02-enrich/scram-allowlist.yaml"
    ));
}

/// A real nmap SYN scan of 100 ports of `target` from `from`.
fn nmap(from: &common::Netns, target: &str) {
    let out = from.exec(&[
        "nmap",
        "-sS",
        "-Pn",
        "-n",
        "-T4",
        "-p",
        "1-100",
        target,
        "-oN",
        "/dev/null",
    ]);
    assert!(out.status.success());
}

#[test]
fn a_scan_of_one_host_gets_the_scanner_banned_on_another_through_crowdsec() {
    if !privileged("fleet lab: CrowdSec") {
        return;
    }
    let lan = Lan::new();
    let scanner = lan.host(SCANNER);
    let bystander = lan.host(BYSTANDER);
    let allowed = lan.host(ALLOWED);

    // The local API alone (crowdsec -no-cs), listening on the LAN.
    let lapi = Lab::boot();
    lapi.join(&lan, LAPI);
    local_api(&lapi, "-no-cs");
    lapi.ok("systemctl start crowdsec");
    let agent_credentials = lapi.ok(&format!(
        "cscli machines add agent-a --password scram-lab-password -f - --url http://{LAPI}:8080 \
         2>/dev/null"
    ));
    assert!(
        agent_credentials.contains("login: agent-a"),
        "{agent_credentials}"
    );
    lapi.ok("cscli bouncers add bouncer-a -k scramlabbouncerkeyaaaaaaaaaaaaaaa >/dev/null");
    lapi.ok("cscli bouncers add bouncer-b -k scramlabbouncerkeybbbbbbbbbbbbbbb >/dev/null");

    // Host A: scramd watching the LAN with its own nftables response, a CrowdSec agent with
    // scram's collection (and an allowlist), and a bouncer.
    let a = Lab::boot();
    a.join(&lan, HOST_A);
    a.ok(
        "mkdir -p /etc/scram && printf '[capture]\\ninterfaces = [\"lan0\"]\\n\\n\
         [response]\\naction = \"nftables\"\\n' > /etc/scram/scram.toml",
    );
    a.install();
    a.wait_active();
    a.ok(&format!(
        "cat > /etc/crowdsec/local_api_credentials.yaml <<'EOF'\n{agent_credentials}EOF\n"
    ));
    collection(&a, None);
    crowdsec_mode(&a, "-no-api");
    a.ok("systemctl start crowdsec");
    bouncer(&a, "scramlabbouncerkeyaaaaaaaaaaaaaaa");

    // Host B: only a bouncer.
    let b = Lab::boot();
    b.join(&lan, HOST_B);
    bouncer(&b, "scramlabbouncerkeybbbbbbbbbbbbbbb");

    for who in [&scanner, &bystander, &allowed] {
        assert!(
            within(10.0, || ping(who, HOST_B)).is_some(),
            "no ping to B before"
        );
    }

    // nmap scans A: scramd alerts, the agent decides, B's bouncer drops the scanner within 5 s.
    nmap(&scanner, HOST_A);
    // When B first drops the scanner (the start of the first ping that fails).
    let mut blocked_at = None;
    within(30.0, || {
        let at = std::time::SystemTime::now();
        let dropped = !ping(&scanner, HOST_B);
        if dropped {
            blocked_at = Some(at);
        }
        dropped
    });
    let journal = a.ok("journalctl -u scramd -o cat --no-pager");
    let Some(blocked_at) = blocked_at else {
        panic!(
            "the scanner still reaches B;\ndecisions: {}\nscramd: {journal}\nagent: {}\nbouncer: {}",
            lapi.ok("cscli decisions list -o raw 2>&1 || true"),
            a.ok("grep -v Adding /var/log/crowdsec.log | tail -n 20"),
            b.ok("tail /var/log/crowdsec-firewall-bouncer.log; nft list ruleset")
        )
    };
    // From scramd's alert in A's journal (what the agent reads) to the drop on B. (scramd holds
    // an alert whose offender it bans itself 5 s first, for decoy scans: see README.)
    let alert: Value = serde_json::from_str(
        a.ok("journalctl -u scramd -o json SCRAM_DETECTOR=portscan | head -n 1")
            .trim(),
    )
    .unwrap();
    let alert_us: u64 = field(&alert, "__REALTIME_TIMESTAMP").parse().unwrap();
    let blocked_us = blocked_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let latency_ms = blocked_us.saturating_sub(alert_us) / 1000;
    println!("scanner dropped on B {latency_ms} ms after scramd's alert on A");
    assert!(
        latency_ms <= 5000,
        "banned on B {latency_ms} ms after the alert"
    );
    assert!(
        journal.contains(&format!("portscan: {SCANNER}")),
        "{journal}"
    );
    let decisions = lapi.ok("cscli decisions list -o raw");
    assert!(
        decisions.contains(SCANNER) && decisions.contains("scram/scram-ban"),
        "{decisions}"
    );
    assert!(ping(&bystander, HOST_B), "the bystander was blocked");

    // On A, scramd's own ban sits beside the bouncer's table, and holds the scanner off too.
    let tables = a.ok("nft list tables");
    assert!(
        tables.contains("table inet scram") && tables.contains("table ip crowdsec"),
        "{tables}"
    );
    assert!(a.ok("nft list table inet scram").contains(SCANNER));
    assert!(!ping(&scanner, HOST_A));

    // An allowlisted scanner: scramd alerts, CrowdSec never decides.
    nmap(&allowed, HOST_A);
    a.wait_for(
        "scramd's alert on the allowlisted scanner",
        10,
        "journalctl -u scramd -o cat --no-pager",
        |s| s.contains(&format!("portscan: {ALLOWED}")),
    );
    std::thread::sleep(std::time::Duration::from_secs(4));
    let decisions = lapi.ok("cscli decisions list -o raw");
    assert!(!decisions.contains(ALLOWED), "{decisions}");
    assert!(
        ping(&allowed, HOST_B),
        "the allowlisted scanner was blocked"
    );

    // Deleting the decision unbans the scanner on B; scramd's own ban on A stays.
    lapi.ok(&format!("cscli decisions delete -i {SCANNER}"));
    assert!(
        within(5.0, || ping(&scanner, HOST_B)).is_some(),
        "still banned on B after the decision was deleted"
    );
    assert!(a.ok("nft list table inet scram").contains(SCANNER));
}

/// The other topology: no agent on the hosts. They upload their journals; one agent on the
/// collector reads the uploaded files (the acquisition's `--directory` filter) and its local API
/// serves every host's bouncer.
#[test]
fn one_agent_reading_the_collected_journals_bans_fleet_wide() {
    if !privileged("fleet lab: CrowdSec on the collector") {
        return;
    }
    let lan = Lan::new();
    let scanner = lan.host(SCANNER);
    let collector = Lab::boot();
    collector.join(&lan, LAPI);
    collector_http(&collector);
    local_api(&collector, "");
    collection(
        &collector,
        Some(
            r#"["--directory=/var/log/journal/remote", "_SYSTEMD_UNIT=scramd.service", "--output=json"]"#,
        ),
    );
    collector.ok("cscli bouncers add bouncer-b -k scramlabbouncerkeybbbbbbbbbbbbbbb >/dev/null");

    // Host A: scramd alerting only, and the uploader; its first upload makes the file the
    // agent follows.
    let a = Lab::boot();
    a.join(&lan, HOST_A);
    a.ok("mkdir -p /etc/scram && printf '[capture]\\ninterfaces = [\"lan0\"]\\n' > /etc/scram/scram.toml");
    a.install();
    a.wait_active();
    uploader(&a, LAPI);
    collector.wait_for(
        "host A's journal on the collector",
        30,
        "journalctl -D /var/log/journal/remote -u scramd -o cat --no-pager 2>/dev/null || true",
        |s| s.contains("capturing on lan0"),
    );
    collector.ok("systemctl start crowdsec");

    let b = Lab::boot();
    b.join(&lan, HOST_B);
    bouncer(&b, "scramlabbouncerkeybbbbbbbbbbbbbbb");
    assert!(within(10.0, || ping(&scanner, HOST_B)).is_some());

    nmap(&scanner, HOST_A);
    let banned = within(20.0, || !ping(&scanner, HOST_B));
    assert!(
        banned.is_some(),
        "the scanner still reaches B;\ndecisions: {}\ncollector's agent: {}",
        collector.ok("cscli decisions list -o raw 2>&1 || true"),
        collector.ok("grep -v Adding /var/log/crowdsec.log | tail -n 20")
    );
    println!(
        "scanner dropped on B {:?} after nmap ended",
        banned.unwrap()
    );
    // The decision's alert names the host that saw the scan (the uploaded _HOSTNAME).
    let alerts = collector.ok("cscli alerts list -o json");
    assert!(
        alerts.contains("scram/scram-ban") && alerts.contains(&a.name),
        "{alerts}"
    );
}
