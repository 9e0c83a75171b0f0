//! Active response: offenders banned in nftables over netlink, with expiry, allowlist and IPv6
//! prefixes. Root and namespaces; traffic only over veth pairs made here.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::net::IpAddr;

use common::{privileged, Netns, Scramd, Scratch, SCRAMD};
use scram::netlink::nftables::{Hooks, Nftables};

fn nft(ns: &Netns, args: &str) -> String {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "sh",
            "-c",
            &format!("nft {args}"),
        ])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_table_is_created_idempotently_and_bans_carry_a_timeout() {
    if !privileged("nftables over netlink") {
        return;
    }
    let ns = Netns::new();
    ns.run(|| {
        let mut n = Nftables::open(64).unwrap();
        let hooks = Hooks {
            input: true,
            forward: true,
        };
        n.install(hooks).unwrap();
        n.install(hooks).unwrap();
        let b = n.ban_for("192.0.2.7".parse().unwrap());
        n.ban(b, 60_000).unwrap();
        n.ban(b, 60_000).unwrap();
        let b6 = n.ban_for("2001:db8:1:2:3:4:5:6".parse().unwrap());
        n.ban(b6, 60_000).unwrap();
    });
    let table = nft(&ns, "list table inet scram");
    println!("{table}");
    assert!(table.contains("192.0.2.7 timeout 1m"), "{table}");
    assert!(table.contains("2001:db8:1:2:: timeout 1m"), "{table}");
    assert_eq!(
        table.matches("@ban4").count(),
        2,
        "one rule per chain: {table}"
    );
}

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{scram_user, Sender};
use scram::craft;
use scram::decode::tcp_flags::SYN;

/// attacker (va1) <-> victim (vb1) and bystander (va2) <-> victim (vb2); scramd watches vb1.
struct Topology {
    victim: Netns,
    attacker: Netns,
    bystander: Netns,
    dir: PathBuf,
    /// Removed on drop, after the processes are gone.
    _scratch: Scratch,
    /// The victim's listener.
    children: Vec<Child>,
    /// scramd, killed and reaped on drop.
    scramd: Option<Scramd>,
}

impl Topology {
    fn new(name: &str, ipv6: bool) -> Topology {
        let victim = Netns::new();
        let attacker = Netns::new();
        let bystander = Netns::new();
        for (peer, a, b, net) in [(&attacker, "va1", "vb1", 1), (&bystander, "va2", "vb2", 2)] {
            common::sh(&[
                "ip",
                "link",
                "add",
                a,
                "netns",
                &peer.name,
                "type",
                "veth",
                "peer",
                "name",
                b,
                "netns",
                &victim.name,
            ]);
            peer.exec(&["ip", "link", "set", a, "up"]);
            victim.exec(&["ip", "link", "set", b, "up"]);
            peer.exec(&["ip", "addr", "add", &format!("10.{net}.0.1/24"), "dev", a]);
            victim.exec(&["ip", "addr", "add", &format!("10.{net}.0.2/24"), "dev", b]);
            if ipv6 {
                for (ns, dev, host) in [(peer, a, "1"), (&victim, b, "2")] {
                    ns.exec(&[
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
                    ]);
                    ns.exec(&[
                        "ip",
                        "addr",
                        "add",
                        &format!("fd00:{net}::{host}/64"),
                        "dev",
                        dev,
                        "nodad",
                    ]);
                }
                peer.exec(&[
                    "ip",
                    "addr",
                    "add",
                    &format!("fd00:{net}::99/64"),
                    "dev",
                    a,
                    "nodad",
                ]);
            }
        }
        let scratch = Scratch::new(name);
        let dir = scratch.dir().to_owned();
        let mut t = Topology {
            victim,
            attacker,
            bystander,
            dir,
            _scratch: scratch,
            children: Vec::new(),
            scramd: None,
        };
        // A TCP listener on the victim, alive for at most 60 s.
        let listener = Command::new("ip")
            .args([
                "netns",
                "exec",
                &t.victim.name,
                "python3",
                "-c",
                "import socket,time\n\
                 s=socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
                 s.bind(('::',8080)); s.listen(64); s.settimeout(1); t=time.time()\n\
                 while time.time()-t<60:\n\
                 \ttry: s.accept()[0].close()\n\
                 \texcept OSError: pass\n",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        t.children.push(listener);
        std::thread::sleep(Duration::from_millis(300));
        t
    }

    /// Starts scramd on vb1 with `config` appended to the alert-file setting; waits for it.
    fn scramd(&mut self, config: &str) -> PathBuf {
        let alerts = self.dir.join("alerts.json");
        let cfg = self.dir.join("scram.toml");
        std::fs::write(
            &cfg,
            format!("[alerts]\njson = {:?}\n{config}", alerts.to_str().unwrap()),
        )
        .unwrap();
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.victim.name,
            SCRAMD,
            "run",
            "--iface",
            "vb1",
        ])
        .args(["--config", cfg.to_str().unwrap()]);
        let mut d = Scramd::spawn(c, self.dir.join("log"));
        d.wait_for_log("capturing on vb1", 10);
        self.scramd = Some(d);
        alerts
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Stops the last started scramd with SIGTERM and returns its exit code.
    fn stop_scramd(&mut self) -> i32 {
        self.scramd.take().unwrap().stop().0
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // scramd first (the guard kills and reaps it), before its namespace goes.
        drop(self.scramd.take());
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A crafted SYN scan of 30 ports from `src` to `dst`, sent from the attacker's va1.
fn scan(t: &Topology, src: &str, dst: &str) {
    let (src, dst) = (src.parse().unwrap(), dst.parse().unwrap());
    t.attacker.run(move || {
        let s = Sender::open("va1");
        for port in 1..=30u16 {
            s.send(&craft::tcp_frame(src, dst, 40000, port, SYN));
        }
    });
}

/// "open" when a TCP connection from `from` (bound to `src`) to `dst`:8080 is accepted,
/// "timeout" when its packets are dropped, or the error.
fn connect(ns: &Netns, src: &str, dst: &str) -> String {
    let script = "import socket,sys\n\
        fam = socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET\n\
        s = socket.socket(fam); s.settimeout(1.5); s.bind((sys.argv[1], 0))\n\
        try:\n\ts.connect((sys.argv[2], 8080)); print('open')\n\
        except socket.timeout:\n\tprint('timeout')\n\
        except OSError as e:\n\tprint(e)\n";
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", script, src, dst])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn ping(ns: &Netns, dst: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, "ping", "-c", "1", "-W", "1", dst])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn wait_for_alert(alerts: &PathBuf, what: &str) -> String {
    common::wait_until(
        &format!("an alert with {what}"),
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(alerts).unwrap_or_default();
            text.contains(what).then_some(text)
        },
        || std::fs::read_to_string(alerts).unwrap_or_default(),
    )
}

const RESPONSE: &str = "[response]\naction = \"nftables\"\nban_seconds = 4\n";

#[test]
fn a_scanner_is_banned_until_the_ban_expires_while_a_bystander_passes() {
    if !privileged("nftables response") {
        return;
    }
    scram_user();
    let mut t = Topology::new("v4", false);
    assert_eq!(connect(&t.attacker, "10.1.0.1", "10.1.0.2"), "open");
    let alerts = t.scramd(RESPONSE);
    scan(&t, "10.1.0.1", "10.1.0.2");
    let text = wait_for_alert(&alerts, "\"action\":\"blocked\"");
    assert!(text.contains("\"src_ip\":\"10.1.0.1\""), "{text}");

    assert!(!ping(&t.attacker, "10.1.0.2"), "the attacker's ping passed");
    assert_eq!(connect(&t.attacker, "10.1.0.1", "10.1.0.2"), "timeout");
    assert!(
        ping(&t.bystander, "10.2.0.2"),
        "the bystander's ping failed"
    );
    assert_eq!(connect(&t.bystander, "10.2.0.1", "10.2.0.2"), "open");
    let table = nft(&t.victim, "list table inet scram");
    assert!(table.contains("10.1.0.1 timeout 4s expires"), "{table}");

    // After the ban expires the attacker's traffic passes again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while connect(&t.attacker, "10.1.0.1", "10.1.0.2") != "open" {
        assert!(
            Instant::now() < deadline,
            "the ban never expired: {}",
            nft(&t.victim, "list table inet scram")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(ping(&t.attacker, "10.1.0.2"));

    // Stopping leaves the table (bans expire on their own) and reports what was done.
    assert_eq!(t.stop_scramd(), 0, "{}", t.log());
    assert!(t.log().contains("active response: 1 ban(s)"), "{}", t.log());
    assert!(nft(&t.victim, "list table inet scram").contains("set ban4"));
}

#[test]
fn an_allowlisted_scanner_is_never_banned() {
    if !privileged("nftables allowlist") {
        return;
    }
    scram_user();
    let mut t = Topology::new("allow", false);
    t.scramd(&format!(
        "{RESPONSE}[allowlist]\ncidrs = [\"10.1.0.0/24\"]\n"
    ));
    scan(&t, "10.1.0.1", "10.1.0.2");
    std::thread::sleep(Duration::from_millis(1500));
    let set = nft(&t.victim, "list set inet scram ban4");
    assert!(!set.contains("elements"), "{set}");
    assert_eq!(connect(&t.attacker, "10.1.0.1", "10.1.0.2"), "open");
    assert!(ping(&t.attacker, "10.1.0.2"));
}

#[test]
fn a_reload_changes_whom_response_bans_and_says_what_waits_for_a_restart() {
    if !privileged("nftables reload") {
        return;
    }
    scram_user();
    let mut t = Topology::new("reload", false);
    let alerts = t.scramd(&format!("{RESPONSE}detectors = [\"portsweep\"]\n"));
    scan(&t, "10.1.0.5", "10.1.0.2");
    let text = wait_for_alert(&alerts, "10.1.0.5");
    assert!(text.contains("\"action\":\"allowed\""), "{text}");
    let set = nft(&t.victim, "list set inet scram ban4");
    assert!(!set.contains("10.1.0.5"), "{set}");

    // portscan now bans; the ban lasts longer; the IPv6 prefix waits for a restart.
    let cfg = t.dir.join("scram.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "ban_seconds = 4\ndetectors = [\"portsweep\"]\n",
        "ban_seconds = 30\nipv6_prefix = 48\n",
    );
    std::fs::write(&cfg, text).unwrap();
    t.scramd
        .as_ref()
        .unwrap()
        .signal(nix::sys::signal::Signal::SIGHUP);
    common::wait_until(
        "the reload",
        Duration::from_secs(5),
        || {
            t.log()
                .contains("applied [response] detectors")
                .then_some(())
        },
        || t.log(),
    );
    assert!(
        t.log().contains(
            "changes to [response] action, ipv6_prefix, forward take effect at the next restart"
        ),
        "{}",
        t.log()
    );
    scan(&t, "10.1.0.6", "10.1.0.2");
    let text = wait_for_alert(&alerts, "\"src_ip\":\"10.1.0.6\"");
    assert!(text.contains("\"action\":\"blocked\""), "{text}");
    let set = nft(&t.victim, "list set inet scram ban4");
    assert!(set.contains("10.1.0.6 timeout 30s"), "{set}");
    assert_eq!(t.stop_scramd(), 0, "{}", t.log());
}

#[test]
fn a_decoy_scan_bans_none_of_its_sources() {
    if !privileged("nftables decoys") {
        return;
    }
    scram_user();
    let mut t = Topology::new("decoy", false);
    let alerts = t.scramd(RESPONSE);
    // The real scanner and two forged sources scan the victim together, their probes
    // interleaved, as nmap -D sends them.
    let sources: Vec<IpAddr> = ["10.1.0.1", "10.1.0.77", "10.1.0.78"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let victim: IpAddr = "10.1.0.2".parse().unwrap();
    t.attacker.run(move || {
        let s = Sender::open("va1");
        for port in 1..=30u16 {
            for &src in &sources {
                s.send(&craft::tcp_frame(src, victim, 40000, port, SYN));
            }
        }
    });
    let text = wait_for_alert(&alerts, "\"decoy-scan\"");
    assert!(!text.contains("\"action\":\"blocked\""), "{text}");
    // Every ban would have been placed by now.
    std::thread::sleep(Duration::from_secs(6));
    let set = nft(&t.victim, "list set inet scram ban4");
    assert!(!set.contains("elements"), "{set}");
    assert_eq!(connect(&t.attacker, "10.1.0.1", "10.1.0.2"), "open");
    assert_eq!(t.stop_scramd(), 0, "{}", t.log());
    assert!(t.log().contains("as possible decoys"), "{}", t.log());
}

#[test]
fn an_ipv6_scanner_is_banned_by_its_64() {
    if !privileged("nftables IPv6") {
        return;
    }
    scram_user();
    let mut t = Topology::new("v6", true);
    assert_eq!(connect(&t.attacker, "fd00:1::99", "fd00:1::2"), "open");
    let alerts = t.scramd(&format!("{RESPONSE}ipv6_prefix = 64\n"));
    scan(&t, "fd00:1::1", "fd00:1::2");
    wait_for_alert(&alerts, "\"action\":\"blocked\"");
    let table = nft(&t.victim, "list set inet scram ban6");
    assert!(table.contains("fd00:1:: timeout 4s"), "{table}");
    // Another address of the same /64 is dropped too; IPv4 from the same host still passes.
    assert_eq!(connect(&t.attacker, "fd00:1::99", "fd00:1::2"), "timeout");
    assert_eq!(connect(&t.attacker, "10.1.0.1", "10.1.0.2"), "open");
}

#[test]
fn a_link_local_ipv6_scanner_is_not_banned_by_its_64() {
    if !privileged("nftables IPv6 link-local") {
        return;
    }
    scram_user();
    let mut t = Topology::new("v6ll", true);
    let alerts = t.scramd(&format!("{RESPONSE}ipv6_prefix = 64\n"));
    // fe80::/64 is every neighbour's link-local address: a ban of it would cut the link off.
    scan(&t, "fe80::bad", "fd00:1::2");
    let text = wait_for_alert(&alerts, "\"src_ip\":\"fe80::bad\"");
    assert!(text.contains("\"action\":\"allowed\""), "{text}");
    std::thread::sleep(Duration::from_millis(1500));
    let set = nft(&t.victim, "list set inet scram ban6");
    assert!(!set.contains("elements"), "{set}");
    assert_eq!(connect(&t.attacker, "fd00:1::99", "fd00:1::2"), "open");
    assert_eq!(t.stop_scramd(), 0, "{}", t.log());
    assert!(
        t.log().contains("1 offender(s) spared as local"),
        "{}",
        t.log()
    );
}

/// Active response split as privilege separation splits it: the parser's responder asks over the
/// channel, the privileged side's server (gate, then nftables, in the victim's namespace)
/// answers. What a taken-over parser would ask for is refused there and counted.
#[test]
fn bans_asked_for_over_the_channel_are_judged_by_the_privileged_side() {
    use scram::detect::{Action, Alert, Detector};
    use scram::privsep::channel;
    use scram::response::{BanServer, Responder, ResponseConfig};

    if !privileged("nftables over the privsep channel") {
        return;
    }
    let ns = Netns::new();
    ns.exec(&[
        "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    ns.exec(&["ip", "addr", "add", "10.1.0.2/24", "dev", "d0"]);
    ns.exec(&["ip", "link", "set", "d0", "up"]);
    let config = ResponseConfig {
        nftables: true,
        ban_seconds: 60,
        ..ResponseConfig::default()
    };
    let (privileged_end, parser_end) = channel::pair().unwrap();
    let server_config = config.clone();
    // The privileged side: its netlink sockets open in the namespace; it serves until the
    // parser's end closes.
    let server = ns.spawn(move || {
        let allowlist =
            scram::detect::prefix::PrefixSet::new([("192.0.2.0".parse::<IpAddr>().unwrap(), 24)]);
        let mut server = BanServer::start(&server_config, allowlist)
            .unwrap()
            .unwrap();
        while let Ok(Some(m)) = privileged_end.recv(true) {
            assert!(server.answer(&privileged_end, m).unwrap(), "{m:?}");
        }
        server.gate_counters()
    });

    let mut responder = Responder::remote(&config, parser_end).unwrap();
    let mut act = |src: &str, detector: Detector| {
        let mut a = Alert {
            detector,
            src: Some(src.parse().unwrap()),
            dst: Some("10.1.0.2".parse().unwrap()),
            ..Alert::default()
        };
        responder.act(&mut a);
        a.action
    };
    assert_eq!(act("198.51.100.9", Detector::Portscan), Action::Blocked);
    // This host's address, an IPv6 link-local (its /64 is every neighbour), loopback, an
    // allowlisted source: refused by the privileged side.
    for src in ["10.1.0.2", "fe80::bad", "127.0.0.1", "192.0.2.7"] {
        assert_eq!(act(src, Detector::Portscan), Action::Allowed, "{src}");
    }
    // A detector that does not ban asks nothing.
    assert_eq!(act("198.51.100.10", Detector::SynFlood), Action::Allowed);
    let c = responder.counters();
    assert_eq!((c.bans, c.spared_local, c.spared_allowlisted), (1, 3, 1));
    drop(responder);

    let gate = server.join().unwrap();
    assert_eq!(
        (gate.passed, gate.local, gate.allowlisted),
        (1, 3, 1),
        "{gate:?}"
    );
    let set = nft(&ns, "list set inet scram ban4");
    assert!(set.contains("198.51.100.9"), "{set}");
    assert!(
        !set.contains("192.0.2.7") && !set.contains("10.1.0.2"),
        "{set}"
    );
}
