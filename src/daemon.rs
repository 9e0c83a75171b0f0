//! `scramd run`: opens capture, starts the workers, then serves signals, timers and systemd
//! notifications on a single-threaded tokio runtime until SIGTERM or SIGINT.
//!
//! Never on the packet path: this module only starts, watches and stops the workers, and reads
//! their counters.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::alert::AlertWriter;
use crate::capture::{self, Capture, CaptureError, InterfaceStats, Running};
use crate::config::{self, Config, ConfigError};
use crate::exit::Exit;
use crate::pipeline::{
    Interfaces, LinkType, Pipeline, PipelineCounters, PipelineSet, PipelineTotals, QueueSizes,
    SettingsCell,
};

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

/// Loads the configuration `run` and `reload` use.
pub fn load_config(
    path: Option<&std::path::Path>,
) -> Result<(Config, Option<PathBuf>), ConfigError> {
    match path {
        Some(p) => Ok((Config::load(p)?, Some(p.to_owned()))),
        None => {
            let default = std::path::Path::new(config::DEFAULT_PATH);
            if default.exists() {
                Ok((Config::load(default)?, Some(default.to_owned())))
            } else {
                Ok((Config::default(), None))
            }
        }
    }
}

fn exit_for(e: &CaptureError) -> Exit {
    match e {
        CaptureError::Privilege { .. } => Exit::NoPermission,
        CaptureError::UnknownInterface { .. } | CaptureError::NoInterface => Exit::Config,
        CaptureError::Ring { .. } | CaptureError::Socket { .. } => Exit::Os,
    }
}

/// `scramd replay`: returns how the process should exit.
pub fn replay(config_path: Option<&std::path::Path>, files: &[PathBuf]) -> Exit {
    let (config, _) = match load_config(config_path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return Exit::Config;
        }
    };
    let names = files
        .iter()
        .map(|f| {
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let mut writer = AlertWriter::new(names).with_sensor(config.alerts.sensor());
    writer.add_json_writer("stdout", Box::new(std::io::stdout()));
    if let Some(j) = &config.alerts.json {
        if j != "-" {
            if let Err(e) = writer.add_json(j) {
                tracing::error!("alerts.json {j}: {e}");
                return Exit::Config;
            }
        }
    }
    // The capture files are hostile input: read them with no capability, no way to execute or
    // open anything else, and the daemon's system call filter.
    let mut plan = sandbox_plan(&config, None, Vec::new());
    plan.read_exact = files.to_vec();
    plan.write_files = config
        .alerts
        .json
        .iter()
        .filter(|j| *j != "-")
        .map(PathBuf::from)
        .collect();
    plan.write_dirs.clear();
    match crate::sandbox::confine_unprivileged(&plan) {
        Ok(e) if !e.enforced() && e != crate::sandbox::fs::Enforcement::Disabled => {
            tracing::warn!("Landlock is not available on this kernel: replay reads unconfined")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!("{e}");
            return e.exit();
        }
    }
    let report = crate::replay::replay(files, Arc::new(config.detect), &mut writer);
    for f in &report.files {
        if f.complete() && f.skipped == 0 && f.unsupported.is_empty() {
            tracing::info!("{}", f.summary());
        } else if f.complete() {
            tracing::warn!("{}", f.summary());
        } else {
            tracing::error!("{}", f.summary());
        }
    }
    let t = &report.totals;
    tracing::info!(
        packets = report.packets(),
        decoded = t.decoded,
        decode_errors = t.decode_errors_total(),
        alerts = report.alerts,
        suppressed = t.suppressed,
        "replayed {} packets from {} file(s): {} decoded ({} tiny first fragments), {} decode errors ({}), {} of unsupported link types, {} alerts, {} repeats suppressed",
        report.packets(),
        files.len(),
        t.decoded,
        t.tiny_fragments,
        t.decode_errors_total(),
        t.decode_errors_by_layer(),
        report.unsupported(),
        report.alerts,
        t.suppressed
    );
    if report.complete() {
        Exit::Ok
    } else {
        Exit::Input
    }
}

/// `scramd self-check`: prints the confined state and each attempt's outcome.
pub fn self_check(config_path: Option<&std::path::Path>) -> Exit {
    use crate::sandbox::selfcheck::{self, Attempt};
    let (config, config_path) = match load_config(config_path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return Exit::Config;
        }
    };
    let plan = sandbox_plan(&config, config_path.as_deref(), Vec::new());
    use std::io::Write;
    // A closed stdout (`| head`) must not turn the report into a panic.
    let mut out = std::io::stdout().lock();
    let mut all_as_expected = true;
    let mut shown_status = false;
    for attempt in Attempt::ALL {
        let report = match selfcheck::run(&plan, attempt) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("self-check: {}: {e}", attempt.describe());
                return Exit::Os;
            }
        };
        if let selfcheck::Outcome::ConfineFailed { message, exit } = &report.outcome {
            tracing::error!("{message}");
            return *exit;
        }
        if !shown_status {
            let _ = writeln!(
                out,
                "confined state (/proc/PID/status of a confined child):"
            );
            for line in &report.status {
                let _ = writeln!(out, "  {line}");
            }
            shown_status = true;
        }
        let ok = report.outcome.as_expected(attempt);
        all_as_expected &= ok;
        let _ = writeln!(
            out,
            "{:<4} {:<36} {}",
            if ok { "ok" } else { "FAIL" },
            attempt.describe(),
            report.outcome
        );
    }
    if all_as_expected {
        let _ = writeln!(out, "every attack was refused; capture still works");
        Exit::Ok
    } else {
        let _ = writeln!(
            out,
            "some attempts did not end as they must (FAIL lines above)"
        );
        Exit::Software
    }
}

/// Runs the daemon in the foreground; returns how the process should exit.
pub fn run(opts: RunOptions) -> Exit {
    let (mut config, config_path) = match load_config(opts.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return Exit::Config;
        }
    };
    if !opts.interfaces.is_empty() {
        config.capture.interfaces = opts.interfaces.clone();
    }
    if config.capture.interfaces.is_empty() {
        match capture::default_route_interface() {
            Some(iface) => {
                tracing::info!(
                    "no interface configured; capturing on {iface}, the default-route interface"
                );
                config.capture.interfaces.push(iface);
            }
            None => {
                tracing::error!("{}", CaptureError::NoInterface);
                return Exit::Config;
            }
        }
    }

    let mut writer = AlertWriter::new(config.capture.interfaces.clone())
        .with_sensor(config.alerts.sensor())
        .with_journal(crate::logging::to_journal());
    if !crate::logging::to_journal() {
        writer.add_json_writer("stdout", Box::new(std::io::stdout()));
    }
    for target in [config.alerts.json.as_deref(), opts.alerts_json.as_deref()]
        .into_iter()
        .flatten()
    {
        if target == "-" && !crate::logging::to_journal() {
            continue;
        }
        if let Err(e) = writer.add_json(target) {
            tracing::error!("alert sink {target}: {e}");
            return Exit::Config;
        }
    }

    let capture = match Capture::open(&config.capture) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return exit_for(&e);
        }
    };
    let names = capture.interface_names();
    let settings = SettingsCell::new(Arc::new(config.detect.clone()));
    let interfaces = Arc::new(Interfaces {
        loopback: names.iter().map(|n| is_loopback(n)).collect(),
        loopback_by_packet: false,
    });
    let set = PipelineSet::build(
        capture.ring_count(),
        Arc::new(config.detect.clone()),
        LinkType::Ethernet,
        interfaces,
        QueueSizes {
            route: config.alerts.route_queue_capacity,
            alerts: config.alerts.queue_capacity,
        },
    );
    let PipelineSet {
        pipelines,
        alert_rx,
        counters,
    } = set;
    let mut pipelines: std::collections::VecDeque<Pipeline> = pipelines.into();
    for p in &mut pipelines {
        p.follow_settings(Arc::clone(&settings));
    }
    let state_bytes: usize = pipelines.iter().map(|p| p.shard().memory_bytes()).sum();

    // Active response sets its table up while CAP_NET_ADMIN is certainly held.
    let responder = match crate::response::Responder::start(
        &config.response,
        config.detect.allowlist.clone(),
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("[response] action = \"nftables\": setting up table inet scram: {e}");
            return match e {
                crate::netlink::NetlinkError::Refused(nix::Error::EPERM)
                | crate::netlink::NetlinkError::Io {
                    source: nix::Error::EPERM,
                    ..
                } => {
                    tracing::error!("nftables needs CAP_NET_ADMIN");
                    Exit::NoPermission
                }
                _ => Exit::Os,
            };
        }
    };
    if responder.is_some() {
        let r = &config.response;
        tracing::info!(
            "active response: offenders of {} banned for {} s in nftables table inet scram (IPv6 by /{}{})",
            r.detectors.iter().map(|d| d.name()).collect::<Vec<_>>().join(", "),
            r.ban_seconds,
            r.ipv6_prefix,
            if r.forward { ", input and forward" } else { ", input" }
        );
    }

    // Every socket and ring is open and no thread exists yet: give up privilege now, so the
    // workers, the alert thread and the control loop all start confined.
    let json_files = [config.alerts.json.as_deref(), opts.alerts_json.as_deref()]
        .into_iter()
        .flatten()
        .filter(|t| *t != "-")
        .map(PathBuf::from)
        .collect();
    let plan = sandbox_plan(&config, config_path.as_deref(), json_files);
    match crate::sandbox::confine(&plan) {
        Ok(c) => log_confined(&c),
        Err(e) => {
            tracing::error!("{e}");
            return e.exit();
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let running = match capture.start(
        |_, _| {
            pipelines
                .pop_front()
                .expect("one pipeline was built per ring")
        },
        Arc::clone(&stop),
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("starting capture workers: {e}");
            return Exit::Os;
        }
    };
    let alerts = match AlertThread::start(alert_rx, writer, responder) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("starting the alert thread: {e}");
            let _ = running.stop();
            return Exit::Os;
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
        Err(e) => {
            tracing::error!("starting the control runtime: {e}");
            let _ = running.stop();
            return Exit::Os;
        }
    };
    let daemon = Daemon {
        running,
        counters,
        settings,
        config,
        config_path,
        cli_interfaces: opts.interfaces,
    };
    runtime.block_on(daemon.control(alerts))
}

/// What the daemon confines itself to: `config`'s user and sandbox settings, re-read access to
/// the config and blocklist files, write access to `json_files` and the state directory.
pub fn sandbox_plan(
    config: &Config,
    config_path: Option<&std::path::Path>,
    json_files: Vec<PathBuf>,
) -> crate::sandbox::Plan {
    let state_dirs: Vec<PathBuf> = match std::env::var_os("STATE_DIRECTORY") {
        Some(v) => std::env::split_paths(&v).collect(),
        None => vec![PathBuf::from("/var/lib/scram")],
    };
    crate::sandbox::Plan {
        user: config.privileges.user.clone(),
        sandbox: config.sandbox,
        read_files: config_path
            .into_iter()
            .map(ToOwned::to_owned)
            .chain(config.blocklist_files.iter().cloned())
            .collect(),
        write_files: json_files,
        write_dirs: state_dirs.into_iter().filter(|d| d.is_dir()).collect(),
        read_exact: Vec::new(),
    }
}

fn log_confined(c: &crate::sandbox::Confined) {
    let who = match &c.user {
        Some(name) => format!("{name} (uid {}, gid {})", c.uid, c.gid),
        None => format!("uid {}, gid {}", c.uid, c.gid),
    };
    tracing::info!(
        "running as {who} with {}; no-new-privs set; landlock {}; seccomp {}",
        crate::sandbox::names(&c.capabilities),
        c.landlock,
        if c.seccomp {
            "on"
        } else {
            "off (sandbox.seccomp = false)"
        }
    );
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

/// Drains the alert rings into the sinks, off the packet path.
struct AlertThread {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(AlertWriter, Option<crate::response::Responder>)>,
}

impl AlertThread {
    fn start(
        mut rx: Vec<rtrb::Consumer<crate::detect::Alert>>,
        mut writer: AlertWriter,
        mut responder: Option<crate::response::Responder>,
    ) -> std::io::Result<AlertThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("scram-alerts".into())
            .spawn(move || {
                loop {
                    // Read the flag before draining, so nothing queued before the stop is missed.
                    let stopping = flag.load(std::sync::atomic::Ordering::Acquire);
                    let mut n = 0;
                    for c in &mut rx {
                        while let Ok(mut a) = c.pop() {
                            if let Some(r) = &mut responder {
                                r.act(&mut a);
                            }
                            writer.write(&a);
                            n += 1;
                        }
                    }
                    if n > 0 {
                        writer.flush();
                    }
                    if stopping {
                        return (writer, responder);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })?;
        Ok(AlertThread { stop, handle })
    }

    fn finish(self) -> Option<AlertWriter> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let (writer, responder) = self.handle.join().ok()?;
        if let Some(r) = responder {
            r.finish();
        }
        Some(writer)
    }
}

struct Daemon {
    running: Running<Pipeline>,
    counters: Vec<Arc<PipelineCounters>>,
    settings: Arc<SettingsCell>,
    config: Config,
    config_path: Option<PathBuf>,
    /// `--iface`, which a re-read file does not override.
    cli_interfaces: Vec<String>,
}

impl Daemon {
    /// The control loop: signals, periodic counters, systemd status and watchdog.
    async fn control(mut self, alerts: AlertThread) -> Exit {
        let (mut term, mut int, mut hup) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(t), Ok(i), Ok(h)) => (t, i, h),
            _ => {
                tracing::error!("installing signal handlers failed");
                let _ = self.running.stop();
                let _ = alerts.finish();
                return Exit::Os;
            }
        };
        notify(&[sd_notify::NotifyState::Ready]);

        let mut stats_tick = tokio::time::interval(self.config.stats_interval);
        stats_tick.tick().await;
        let mut status_tick = tokio::time::interval(Duration::from_secs(5));
        let watchdog = watchdog_interval();
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
                _ = stats_tick.tick() => {
                    let stats = self.running.stats();
                    log_stats("counters", &stats, &PipelineTotals::sum(&self.counters));
                }
                _ = status_tick.tick() => {
                    let status = status_line(&self.running.stats(), &PipelineTotals::sum(&self.counters));
                    notify(&[sd_notify::NotifyState::Status(&status)]);
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => {
                    // Only vouch for the workers while they make progress: a stuck worker lets
                    // systemd's watchdog restart the service.
                    // Every worker must have moved: one stuck worker is enough to withhold it.
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
                        notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                    last_progress = progress;
                }
            }
        }
        notify(&[sd_notify::NotifyState::Stopping]);
        let (stats, mut pipelines) = self.running.stop();
        // Observations still queued between shards are processed before the final tally.
        for p in &mut pipelines {
            p.drain();
        }
        for p in &mut pipelines {
            p.drain();
            p.publish();
            p.shard().held_back(|d, src, dst, held| {
                tracing::info!(
                    "{}: {held} repeat(s) of the alert {} -> {} held back since it was last reported",
                    d.name(),
                    key_addr(src),
                    key_addr(dst)
                );
            });
        }
        let writer = alerts.finish();
        let totals = PipelineTotals::sum(&self.counters);
        log_stats("final counters", &stats, &totals);
        if let Some(w) = writer {
            if w.write_errors() > 0 {
                tracing::error!("{} alert writes failed", w.write_errors());
            }
        }
        Exit::Ok
    }

    fn reload(&mut self) {
        let Some(path) = self.config_path.as_deref() else {
            tracing::info!("SIGHUP: no configuration file in use; nothing to re-read");
            return;
        };
        match Config::load(path) {
            Ok(mut new) => {
                // Interfaces chosen on the command line or by default route stay as they are.
                if new.capture.interfaces.is_empty() || !self.cli_interfaces.is_empty() {
                    new.capture.interfaces = self.config.capture.interfaces.clone();
                }
                let old = &self.config;
                let restart_only: Vec<&str> = [
                    ("capture", new.capture != old.capture),
                    (
                        "stats_interval_seconds",
                        new.stats_interval != old.stats_interval,
                    ),
                    ("alerts (sinks and queues)", new.alerts != old.alerts),
                    ("privileges", new.privileges != old.privileges),
                    ("sandbox", new.sandbox != old.sandbox),
                ]
                .into_iter()
                .filter_map(|(name, changed)| changed.then_some(name))
                .collect();
                if !restart_only.is_empty() {
                    tracing::warn!(
                        "SIGHUP: changes to {} take effect at the next restart",
                        restart_only.join(", ")
                    );
                }
                self.settings.replace(Arc::new(new.detect.clone()));
                self.config.detect = new.detect;
                self.config.blocklist_files = new.blocklist_files;
                tracing::info!(
                    "SIGHUP: configuration {} re-read; detector settings applied",
                    path.display()
                );
            }
            Err(e) => tracing::error!("SIGHUP: keeping the running configuration: {e}"),
        }
    }
}

fn key_addr(k: crate::detect::AddrKey) -> String {
    if k == 0 {
        return "-".into();
    }
    let v6 = std::net::Ipv6Addr::from(k);
    match v6.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => v6.to_string(),
    }
}

fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("sd_notify: {e}");
    }
}

fn status_line(stats: &[InterfaceStats], t: &PipelineTotals) -> String {
    let frames: u64 = stats.iter().map(|s| s.frames).sum();
    let drops: u64 = stats.iter().map(|s| s.kernel_drops).sum();
    let names: Vec<&str> = stats.iter().map(|s| s.name.as_str()).collect();
    format!(
        "capturing on {}: {frames} frames, {drops} kernel drops, {} alerts, {} suppressed, {} decode errors",
        names.join(", "),
        t.alerts,
        t.suppressed,
        t.decode_errors_total()
    )
}

/// Logs one line per interface (with several interfaces, a total) and the pipeline's counters.
pub fn log_stats(what: &str, stats: &[InterfaceStats], t: &PipelineTotals) {
    log_capture_stats(what, stats);
    tracing::info!(
        decoded = t.decoded,
        decode_errors = t.decode_errors_total(),
        alerts = t.alerts,
        alerts_suppressed = t.suppressed,
        alerts_dropped = t.alerts_dropped,
        route_overflow = t.route_overflow,
        state_evictions = t.evictions,
        "{what} pipeline: {} decoded, {} decode errors ({}), {} alerts, {} suppressed, {} dropped (alert queue full), {} observations dropped (shard queue full), {} state evictions",
        t.decoded,
        t.decode_errors_total(),
        t.decode_errors_by_layer(),
        t.alerts,
        t.suppressed,
        t.alerts_dropped,
        t.route_overflow,
        t.evictions
    );
}

fn log_capture_stats(what: &str, stats: &[InterfaceStats]) {
    let mut total = InterfaceStats {
        name: "total".into(),
        ..Default::default()
    };
    for s in stats {
        log_one(what, s);
        total.frames += s.frames;
        total.bytes += s.bytes;
        total.blocks += s.blocks;
        total.bad_blocks += s.bad_blocks;
        total.kernel_packets += s.kernel_packets;
        total.kernel_drops += s.kernel_drops;
        total.kernel_freezes += s.kernel_freezes;
    }
    if stats.len() > 1 {
        log_one(what, &total);
    }
}

fn log_one(what: &str, s: &InterfaceStats) {
    tracing::info!(
        iface = %s.name,
        frames = s.frames,
        bytes = s.bytes,
        blocks = s.blocks,
        bad_blocks = s.bad_blocks,
        kernel_packets = s.kernel_packets,
        kernel_drops = s.kernel_drops,
        kernel_freezes = s.kernel_freezes,
        "{what} {}: {} frames, {} bytes, {} kernel drops, {} queue freezes, {} malformed blocks",
        s.name,
        s.frames,
        s.bytes,
        s.kernel_drops,
        s.kernel_freezes,
        s.bad_blocks
    );
}
