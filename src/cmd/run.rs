//! `scramd run`: opens capture, gives up privilege, starts the workers and the alert stage, then
//! serves signals, timers and systemd notifications on a single-threaded tokio runtime until
//! SIGTERM or SIGINT.
//!
//! Never on the packet path: this module only starts, watches and stops the workers, and reads
//! their counters.

use crate::exit::Exit;
use crate::notify::notify;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::Error;
use crate::alert::stage::{AlertStage, AlertThread};
use crate::alert::AlertWriter;
use crate::capture::{self, Capture, CaptureError, Running};
use crate::config::Config;
use crate::pipeline::{
    Interfaces, LinkType, Pipeline, PipelineCounters, PipelineSet, PipelineTotals, SettingsCell,
    Sizes,
};
use crate::privsep::channel::{self, PrivilegedEnd};
use crate::privsep::wire::{ToParser, ToPrivileged};
use crate::response::{BanServer, Responder};
use crate::sandbox::Role;
use crate::stats;
use std::os::fd::{AsFd, AsRawFd};

/// How long a portscan alert waits for a decoy scan to fold it into: the decoy scan is found in
/// its target's shard, the portscan in its source's, and the two may be different workers. Well
/// within the 2 s an alert may take once its threshold is crossed.
const FOLD_WAIT: Duration = Duration::from_millis(1000);

/// What `scramd run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--config`; when absent, /etc/scram/scram.toml if it exists, else built-in defaults.
    pub config: Option<PathBuf>,
    /// `--iface`, overriding `capture.interfaces`.
    pub interfaces: Vec<String>,
    /// `--alerts-json`: an extra JSON-lines alert sink.
    pub alerts_json: Option<String>,
}

/// What `run` hands its parser across `execve` (as JSON in its argument list).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Handoff {
    /// The configuration file read (none: built-in defaults).
    config: Option<PathBuf>,
    /// The interfaces captured on, as resolved (configured, `--iface` or the default route's).
    interfaces: Vec<String>,
    /// `--iface`, which a re-read file does not override.
    cli_interfaces: Vec<String>,
    /// `--alerts-json`.
    alerts_json: Option<String>,
    /// The rings, opened and set up.
    rings: Vec<capture::RingHandoff>,
    /// The parser's end of the control channel.
    control_fd: i32,
    /// The parser's end of the ban channel.
    bans_fd: i32,
    /// systemd's watchdog interval, ms (the parser reports progress at half of it).
    watchdog_ms: Option<u64>,
}

/// Runs the daemon in the foreground until SIGTERM or SIGINT, as two processes: this one, the
/// privileged part, opens the rings and the nftables table, then starts the parser (`scramd
/// parser`, executed anew so that it starts with no capability) with the rings and two channel
/// ends, confines itself and serves the parser's requests; the parser does all the decoding,
/// detection and alerting.
pub fn run(opts: RunOptions) -> Result<(), Error> {
    let (mut config, config_path) = super::load_config(opts.config.as_deref())?;
    if !opts.interfaces.is_empty() {
        config.capture.interfaces = opts.interfaces.clone();
    }
    if config.capture.interfaces.is_empty() {
        let iface = capture::default_route_interface().ok_or(CaptureError::NoInterface)?;
        tracing::info!(
            "no interface configured; capturing on {iface}, the default-route interface"
        );
        config.capture.interfaces.push(iface);
    }
    let capture = Capture::open_for_handoff(&config.capture)?;

    // Active response sets its table up while CAP_NET_ADMIN is certainly held.
    let server = BanServer::start(&config.response, config.detect.allowlist.clone())
        .map_err(Error::Response)?;
    if server.is_some() {
        let r = &config.response;
        tracing::info!(
            "active response: offenders of {} banned for {} s in nftables table inet scram (IPv6 by /{}{})",
            r.detectors.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
            r.ban_seconds,
            r.ipv6_prefix,
            if r.forward { ", input and forward" } else { ", input" }
        );
    }

    let (control, control_child) = channel::pair()?;
    let (bans, bans_child) = channel::pair()?;
    let handoff = Handoff {
        config: config_path.clone(),
        interfaces: config.capture.interfaces.clone(),
        cli_interfaces: opts.interfaces.clone(),
        alerts_json: opts.alerts_json.clone(),
        rings: capture.handoff(),
        control_fd: control_child.as_raw_fd(),
        bans_fd: bans_child.as_raw_fd(),
        watchdog_ms: sd_notify::watchdog_enabled().map(|d| d.as_millis() as u64),
    };
    let mut child = spawn_parser(&capture, &[&control_child, &bans_child], &handoff)?;
    // The parser holds the rings and its channel ends now; this process keeps neither.
    drop(capture);
    drop(control_child);
    drop(bans_child);
    tracing::info!("parser started (pid {})", child.id());

    let confined = (|| {
        // Not dumpable: a process of the same user (the parser, were it taken over) may not
        // ptrace this one or read its memory through /proc, whatever its own filter allows.
        nix::sys::prctl::set_dumpable(false).map_err(|e| Error::Os {
            what: "PR_SET_DUMPABLE",
            source: e.into(),
        })?;
        let mut plan = super::sandbox_plan(&config, config_path.as_deref(), Vec::new());
        plan.write_dirs.clear();
        plan.role = Role::Privileged;
        // The service manager's socket: once confined, scramd creates no unix socket.
        crate::notify::open();
        let confined = crate::sandbox::confine(&plan)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Os {
                what: "starting the control runtime",
                source,
            })
            .map(|rt| (confined, rt))
    })();
    let (confined, runtime) = match confined {
        Ok(c) => c,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    log_confined("privileged part", &confined);
    let supervisor = Supervisor {
        child,
        server,
        config,
        config_path,
        refused: 0,
    };
    runtime.block_on(supervisor.run(control, bans))
}

/// Starts `scramd parser` with the ring sockets and `ends` inherited and no capability: the
/// ambient set is cleared first, so the new program, run by a user other than root without file
/// capabilities, starts with none (a unit's system call filter refuses `capset`, so dropping
/// them in a forked child is not possible).
fn spawn_parser(
    capture: &Capture,
    ends: &[&channel::ParserEnd],
    handoff: &Handoff,
) -> Result<std::process::Child, Error> {
    let os = |what| move |source| Error::Os { what, source };
    capture
        .inherit_across_exec()
        .map_err(os("handing the rings to the parser"))?;
    for end in ends {
        crate::sys::process::inherit_across_exec(end.as_fd())
            .map_err(os("handing the channel to the parser"))?;
    }
    crate::sandbox::clear_ambient().map_err(Error::Sandbox)?;
    let exe = std::env::current_exe().map_err(os("finding scramd's own executable"))?;
    let json = serde_json::to_string(handoff).map_err(|e| Error::Os {
        what: "writing the parser's hand-over",
        source: std::io::Error::other(e),
    })?;
    std::process::Command::new(exe)
        .args(["parser", "--handoff", &json])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(os("starting the parser"))
}

/// The parser: everything that reads packets, started by [`run`] with what it opened.
pub fn parser(handoff: &str) -> Result<(), Error> {
    let handoff: Handoff = serde_json::from_str(handoff).map_err(|e| Error::Os {
        what: "reading the hand-over from scramd run",
        source: std::io::Error::other(e),
    })?;
    let (mut config, config_path) = super::load_config(handoff.config.as_deref())?;
    config.capture.interfaces = handoff.interfaces.clone();
    let json_targets: Vec<&str> = [
        config.alerts.json.as_deref(),
        handoff.alerts_json.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let writer = alert_writer(&config, &json_targets)?;
    let json_files = json_targets
        .iter()
        .filter(|t| **t != "-")
        .map(PathBuf::from)
        .collect();

    let capture = Capture::adopt(&config.capture, &handoff.rings)?;
    let control = channel::ParserEnd::inherited(handoff.control_fd)?;
    let bans = channel::ParserEnd::inherited(handoff.bans_fd)?;
    let names = capture.interface_names();
    let set = PipelineSet::build(
        capture.ring_count(),
        Arc::new(config.detect.clone()),
        LinkType::Ethernet,
        Arc::new(Interfaces {
            loopback: names.iter().map(|n| is_loopback(n)).collect(),
            loopback_by_packet: false,
        }),
        Sizes {
            route: config.alerts.route_queue_capacity,
            alerts: config.alerts.queue_capacity,
            tables: config.table_capacity,
            flows: config.flow_capacity,
        },
    );
    let settings = SettingsCell::new(Arc::new(config.detect.clone()));
    let mut pipelines = set.pipelines;
    for p in &mut pipelines {
        p.follow_settings(Arc::clone(&settings));
    }
    let state_bytes: usize = pipelines.iter().map(|p| p.shard().memory_bytes()).sum();
    let responder = Responder::remote(&config.response, bans);

    // Every descriptor is open and no thread exists yet: confine now, so the workers, the
    // alert stage and the control loop all start confined.
    let mut plan = super::sandbox_plan(&config, config_path.as_deref(), json_files);
    plan.fanout_later = capture.fanout_deferred();
    plan.role = Role::Parser;
    plan.ring_fds = handoff.rings.iter().map(|r| r.fd).collect();
    log_confined("parser", &crate::sandbox::confine(&plan)?);

    let stop = Arc::new(AtomicBool::new(false));
    let running = capture
        .start(pipelines, Arc::clone(&stop))
        .map_err(|source| Error::Os {
            what: "starting capture workers",
            source,
        })?;
    let alerts = match AlertStage::new(set.alert_rx, writer, responder)
        .with_fold_wait(FOLD_WAIT)
        .spawn(&set.alert_bell)
    {
        Ok(a) => a,
        Err(source) => {
            let _ = running.stop();
            return Err(Error::Os {
                what: "starting the alert thread",
                source,
            });
        }
    };
    tracing::info!(
        "capturing on {} with {} worker(s) each, {} KiB ring per worker, block timeout {} ms; detector state {} MiB",
        names.join(", "),
        config.capture.workers,
        config.capture.ring.bytes() / 1024,
        config.capture.ring.retire_timeout_ms,
        state_bytes / (1024 * 1024)
    );

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(source) => {
            return Err(abandon(
                running,
                alerts,
                "starting the control runtime",
                source,
            ))
        }
    };
    runtime.block_on(async move {
        // Woken by the privileged part's requests, not by a timer.
        let control = match crate::sys::event::readable(control) {
            Ok(c) => c,
            Err(source) => {
                let what = "watching the channel to the privileged part";
                return Err(abandon(running, alerts, what, source));
            }
        };
        let daemon = Daemon {
            running,
            counters: set.counters,
            settings,
            alerts,
            config,
            config_path,
            cli_interfaces: handoff.cli_interfaces,
            control,
            watchdog: handoff.watchdog_ms.map(Duration::from_millis),
        };
        daemon.control().await
    })
}

/// A start that cannot go on once the workers and the alert thread run: stops both (what the
/// workers queued is still written) and says what failed.
fn abandon<S>(
    running: Running<S>,
    alerts: AlertThread,
    what: &'static str,
    source: std::io::Error,
) -> Error {
    let _ = running.stop();
    let _ = alerts.finish();
    Error::Os { what, source }
}

/// The alert sinks: the journal (or stdout without one) and every JSON target.
fn alert_writer(config: &Config, json_targets: &[&str]) -> Result<AlertWriter, Error> {
    let journal = crate::logging::to_journal();
    let mut writer = AlertWriter::new(config.capture.interfaces.clone())
        .with_sensor(config.alerts.sensor())
        .with_journal(journal);
    if !journal {
        writer.add_json_writer("stdout", Box::new(std::io::stdout()));
    }
    for &target in json_targets {
        if target == "-" && !journal {
            continue;
        }
        writer.add_json(target).map_err(|source| Error::AlertSink {
            target: target.to_owned(),
            source,
        })?;
    }
    Ok(writer)
}

fn log_confined(part: &str, c: &crate::sandbox::Confined) {
    let who = match &c.user {
        Some(name) => format!("{name} (uid {}, gid {})", c.uid, c.gid),
        None => format!("uid {}, gid {}", c.uid, c.gid),
    };
    let caps = if c.capabilities.is_empty() {
        "no capabilities".to_owned()
    } else {
        crate::sandbox::names(&c.capabilities)
    };
    tracing::info!(
        "{part}: running as {who} with {caps}; no-new-privs set; landlock {}; seccomp {}",
        c.landlock,
        if c.seccomp {
            "on"
        } else {
            "off (sandbox.seccomp = false)"
        }
    );
    if let crate::sandbox::fs::Enforcement::Full { abi }
    | crate::sandbox::fs::Enforcement::Partial { abi } = c.landlock
    {
        for (from, what, stand_in) in crate::sandbox::fs::not_enforced(abi) {
            if c.seccomp {
                tracing::warn!(
                    "Landlock ABI {abi} cannot enforce {what} (ABI {from} can); in its place: {stand_in}"
                );
            } else {
                tracing::warn!(
                    "Landlock ABI {abi} cannot enforce {what} (ABI {from} can), and nothing stands in: sandbox.seccomp = false"
                );
            }
        }
    }
    if !c.landlock.enforced() && c.landlock != crate::sandbox::fs::Enforcement::Disabled {
        tracing::warn!(
            "Landlock is not available on this kernel; file access is limited only by the user \
             and the unit (set sandbox.landlock_required = true to refuse to start instead)"
        );
    }
}

fn is_loopback(iface: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/type"))
        .map(|t| t.trim() == "772")
        .unwrap_or(iface == "lo")
}

/// SIGTERM, SIGINT and SIGHUP, as streams of the control loop's runtime.
fn signals() -> Result<(Signal, Signal, Signal), Error> {
    let one = |kind| {
        signal(kind).map_err(|source| Error::Os {
            what: "installing signal handlers",
            source,
        })
    };
    Ok((
        one(SignalKind::terminate())?,
        one(SignalKind::interrupt())?,
        one(SignalKind::hangup())?,
    ))
}

/// What the control loop watches and changes.
struct Daemon {
    running: Running<Pipeline>,
    counters: Vec<Arc<PipelineCounters>>,
    settings: Arc<SettingsCell>,
    alerts: AlertThread,
    config: Config,
    config_path: Option<PathBuf>,
    /// `--iface`, which a re-read file does not override.
    cli_interfaces: Vec<String>,
    /// The channel to the privileged part: readiness, counters, progress out; reload, stop in.
    control: tokio::io::unix::AsyncFd<channel::ParserEnd>,
    /// systemd's watchdog interval, when it watches.
    watchdog: Option<Duration>,
}

impl Daemon {
    /// Tells the privileged part; a channel that fails means it is gone, and stop follows.
    fn tell(&self, m: ToPrivileged) -> bool {
        match self.control.get_ref().send(m) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("parser: {e}; stopping");
                false
            }
        }
    }

    /// The control loop: signals, the privileged part's requests, periodic counters, status and
    /// watchdog progress for it to pass on to systemd.
    async fn control(mut self) -> Result<(), Error> {
        let (mut term, mut int, mut hup) = match signals() {
            Ok(s) => s,
            Err(e) => {
                let _ = self.running.stop();
                let _ = self.alerts.finish();
                return Err(e);
            }
        };
        self.tell(ToPrivileged::Ready);

        let mut stats_tick = tokio::time::interval(self.config.stats_interval);
        stats_tick.tick().await;
        let mut status_tick = tokio::time::interval(Duration::from_secs(5));
        let watchdog = self.watchdog.map(|d| d / 2);
        let mut generation = 0u64;
        let mut watchdog_tick =
            tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        // The first tick is immediate; progress is first judged one interval after start.
        watchdog_tick.tick().await;
        let mut last_progress = self.running.progress();

        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
                _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
                _ = hup.recv() => self.reload(),
                r = self.control.readable() => {
                    let Ok(mut guard) = r else { break };
                    let (mut reload, mut stop) = (false, false);
                    loop {
                        match guard.get_inner().recv(false) {
                            Ok(Some(ToParser::Reload)) => reload = true,
                            Ok(Some(ToParser::Stop)) => {
                                tracing::info!("stop asked by the privileged part");
                                stop = true;
                            }
                            Ok(Some(ToParser::BanResult { .. })) => {}
                            Ok(None) => break,
                            Err(e) => {
                                tracing::error!("parser: {e}; stopping");
                                stop = true;
                                break;
                            }
                        }
                    }
                    guard.clear_ready();
                    if stop {
                        break;
                    }
                    if reload {
                        self.reload();
                    }
                }
                _ = stats_tick.tick() => {
                    let s = self.running.stats();
                    stats::log("counters", &s, &PipelineTotals::sum(&self.counters));
                }
                _ = status_tick.tick() => {
                    let status = stats::status(&self.running.stats(), &PipelineTotals::sum(&self.counters));
                    if !self.tell(status) {
                        break;
                    }
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => {
                    // Only vouch for the workers while every one of them makes progress: one
                    // stuck worker lets systemd's watchdog restart the service.
                    let progress = self.running.progress();
                    let stuck = progress
                        .iter()
                        .zip(&last_progress)
                        .filter(|(now, before)| now == before)
                        .count();
                    if !self.running.workers_alive() {
                        tracing::error!("a capture worker has ended; withholding the watchdog ping");
                    } else if stuck > 0 {
                        tracing::warn!(
                            "{stuck} of {} capture worker(s) made no progress; withholding the watchdog ping",
                            progress.len()
                        );
                    } else {
                        generation += 1;
                        if !self.tell(ToPrivileged::Progress { generation }) {
                            break;
                        }
                    }
                    last_progress = progress;
                }
            }
        }
        let (capture_stats, mut pipelines) = self.running.stop();
        // Observations still queued between shards are processed before the final tally: a
        // second round takes what the first routed.
        for _ in 0..2 {
            for p in &mut pipelines {
                p.drain();
            }
        }
        // Scans still open are closed with what they came to so far.
        for p in &mut pipelines {
            p.tick(u64::MAX);
        }
        for p in &pipelines {
            p.publish();
        }
        stats::log_held_back(&pipelines);
        let writer = self.alerts.finish();
        stats::log(
            "final counters",
            &capture_stats,
            &PipelineTotals::sum(&self.counters),
        );
        if let Some(w) = writer {
            if w.write_errors() > 0 {
                tracing::error!("{} alert writes failed", w.write_errors());
            }
        }
        Ok(())
    }

    /// SIGHUP: re-reads the file; applies every live part that changed (detector settings to
    /// the workers, response settings to the alert stage) and names those that need a restart.
    fn reload(&mut self) {
        // Rotation by rename (logrotate's default): the alert files are opened anew.
        self.alerts.reopen();
        let Some(path) = self.config_path.as_deref() else {
            tracing::info!("SIGHUP: no configuration file in use; nothing to re-read");
            return;
        };
        let mut new = match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("SIGHUP: keeping the running configuration: {e}");
                return;
            }
        };
        // Interfaces chosen on the command line or by default route stay as they are.
        if new.capture.interfaces.is_empty() || !self.cli_interfaces.is_empty() {
            new.capture.interfaces = self.config.capture.interfaces.clone();
        }
        let done = self.config.reload_from(&new);
        if !done.pending.is_empty() {
            tracing::warn!(
                "SIGHUP: changes to {} take effect at the next restart",
                done.pending.join("; ")
            );
        }
        self.settings.replace(Arc::new(self.config.detect.clone()));
        self.alerts.update(self.config.response.clone());
        if done.applied.is_empty() {
            tracing::info!(
                "SIGHUP: configuration {} re-read; nothing to apply",
                path.display()
            );
        } else {
            tracing::info!(
                "SIGHUP: configuration {} re-read; applied {}",
                path.display(),
                done.applied.join("; ")
            );
        }
    }
}

/// The privileged part after the parser started: it passes the parser's readiness, counters
/// and progress on to systemd, places the bans it asks for (each judged by the gate first),
/// forwards reload and stop, and ends when the parser ends, with its exit status. A parser that
/// dies ends the service (exit 70), and systemd's `Restart=` starts both anew.
struct Supervisor {
    child: std::process::Child,
    server: Option<BanServer>,
    config: Config,
    config_path: Option<PathBuf>,
    /// Messages from the parser that were not messages (counted, logged).
    refused: u64,
}

impl Supervisor {
    async fn run(mut self, control: PrivilegedEnd, bans: PrivilegedEnd) -> Result<(), Error> {
        let (mut term, mut int, mut hup) = match signals() {
            Ok(s) => s,
            Err(e) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(e);
            }
        };
        let mut child = match signal(SignalKind::child()) {
            Ok(c) => c,
            Err(source) => {
                return Err(Error::Os {
                    what: "installing signal handlers",
                    source,
                })
            }
        };
        // Woken by the parser's messages, not by a timer: nothing runs here while it is quiet.
        let (bans, control) = match (
            crate::sys::event::readable(bans),
            crate::sys::event::readable(control),
        ) {
            (Ok(b), Ok(c)) => (b, c),
            (Err(source), _) | (_, Err(source)) => {
                return Err(Error::Os {
                    what: "watching the parser's channels",
                    source,
                })
            }
        };
        // A fallback for a SIGCHLD that came before the handler.
        let mut slow = tokio::time::interval(Duration::from_secs(1));
        // A closed channel stays readable: it is watched no more (the parser without active
        // response closes its ban channel at start).
        let (mut bans_open, mut control_open) = (true, true);
        let status = loop {
            tokio::select! {
                _ = term.recv() => Self::stop("SIGTERM", control.get_ref()),
                _ = int.recv() => Self::stop("SIGINT", control.get_ref()),
                _ = hup.recv() => self.reload(control.get_ref()),
                r = bans.readable(), if bans_open => {
                    if let Ok(mut guard) = r {
                        bans_open = self.serve_bans(bans.get_ref());
                        guard.clear_ready();
                    }
                }
                r = control.readable(), if control_open => {
                    if let Ok(mut guard) = r {
                        control_open = self.serve_control(control.get_ref());
                        guard.clear_ready();
                    }
                }
                _ = child.recv() => {}
                _ = slow.tick() => {}
            }
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Whatever it said last.
                    if bans_open {
                        self.serve_bans(bans.get_ref());
                    }
                    if control_open {
                        self.serve_control(control.get_ref());
                    }
                    break status;
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(Error::Os {
                        what: "waiting for the parser",
                        source,
                    })
                }
            }
        };
        notify("STOPPING=1");
        let gate = self.server.as_ref().map(|s| s.gate_counters());
        if let Some(g) = gate {
            tracing::info!(
                "privileged part: {} ban request(s) placed, {} refused as local, {} as allowlisted, {} over the rate, {} with a bad duration; {} malformed message(s) refused",
                g.passed,
                g.local,
                g.allowlisted,
                g.too_fast,
                g.bad_duration,
                self.refused
            );
        }
        if let Some(server) = self.server.take() {
            server.finish(gate.map_or(0, |g| g.passed));
        }
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(()),
            (Some(code), _) => Err(Error::Child {
                message: format!("the parser exited with status {code}"),
                exit: Exit::from_code(code).unwrap_or(Exit::Software),
            }),
            (None, signal) => Err(Error::Child {
                message: format!(
                    "the parser was killed by signal {}; ending so that systemd restarts scramd",
                    signal.unwrap_or(0)
                ),
                exit: Exit::Software,
            }),
        }
    }

    fn stop(why: &str, control: &PrivilegedEnd) {
        tracing::info!("{why}: stopping");
        if let Err(e) = control.send(ToParser::Stop) {
            tracing::warn!("telling the parser to stop: {e}");
        }
    }

    /// Every ban request waiting (the parser's alert thread waits for each answer); false once
    /// the channel is closed.
    fn serve_bans(&mut self, bans: &PrivilegedEnd) -> bool {
        loop {
            match bans.recv(false) {
                Ok(Some(m)) => {
                    let answered = match &mut self.server {
                        Some(server) => server.answer(bans, m),
                        None => Ok(false),
                    };
                    match answered {
                        Ok(true) => {}
                        Ok(false) => self.refuse(&format!("{m:?} on the ban channel")),
                        Err(e) => self.refuse(&e.to_string()),
                    }
                }
                Ok(None) => return true,
                Err(channel::ChannelError::Closed) => return false,
                Err(e) => self.refuse(&e.to_string()),
            }
        }
    }

    /// Every control message waiting: readiness, counters, progress; false once the channel is
    /// closed.
    fn serve_control(&mut self, control: &PrivilegedEnd) -> bool {
        loop {
            match control.recv(false) {
                Ok(Some(ToPrivileged::Ready)) => notify("READY=1"),
                Ok(Some(ToPrivileged::Progress { .. })) => notify("WATCHDOG=1"),
                Ok(Some(ToPrivileged::Status {
                    frames,
                    kernel_drops,
                    alerts,
                    suppressed,
                    decode_errors,
                })) => notify(&format!(
                    "STATUS={}",
                    stats::status_line(
                        &self.config.capture.interfaces,
                        frames,
                        kernel_drops,
                        alerts,
                        suppressed,
                        decode_errors
                    )
                )),
                Ok(Some(m @ ToPrivileged::Ban { .. })) => {
                    self.refuse(&format!("{m:?} on the control channel"))
                }
                Ok(None) => return true,
                Err(channel::ChannelError::Closed) => return false,
                Err(e) => self.refuse(&e.to_string()),
            }
        }
    }

    /// A message from the parser that was not one: hostile input, counted and logged (the
    /// first few).
    fn refuse(&mut self, what: &str) {
        self.refused += 1;
        if self.refused <= 10 {
            tracing::warn!("privileged part: refused a message from the parser: {what}");
        }
    }

    /// SIGHUP: the response settings here, everything else in the parser.
    fn reload(&mut self, control: &PrivilegedEnd) {
        if let (Some(server), Some(path)) = (&mut self.server, &self.config_path) {
            match Config::load(path) {
                Ok(new) => {
                    server.update(&new.response, new.detect.allowlist.clone());
                    self.config.response = new.response;
                }
                Err(e) => tracing::error!("SIGHUP: keeping the running response settings: {e}"),
            }
        }
        if let Err(e) = control.send(ToParser::Reload) {
            tracing::warn!("telling the parser to reload: {e}");
        }
    }
}
