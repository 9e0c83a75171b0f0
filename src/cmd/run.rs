//! `scramd run`: opens capture, gives up privilege, starts the workers and the alert stage, then
//! serves signals, timers and systemd notifications on a single-threaded tokio runtime until
//! SIGTERM or SIGINT.
//!
//! Never on the packet path: this module only starts, watches and stops the workers, and reads
//! their counters.

use crate::notify::notify;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use super::Error;
use crate::alert::stage::{AlertStage, AlertThread, ResponseUpdate};
use crate::alert::AlertWriter;
use crate::capture::{self, Capture, CaptureError, Running};
use crate::config::Config;
use crate::pipeline::{
    Interfaces, LinkType, Pipeline, PipelineCounters, PipelineSet, PipelineTotals, SettingsCell,
    Sizes,
};
use crate::response::Responder;
use crate::stats;

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

/// Runs the daemon in the foreground until SIGTERM or SIGINT.
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
    let json_targets: Vec<&str> = [config.alerts.json.as_deref(), opts.alerts_json.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let writer = alert_writer(&config, &json_targets)?;
    let json_files = json_targets
        .iter()
        .filter(|t| **t != "-")
        .map(PathBuf::from)
        .collect();

    let capture = Capture::open(&config.capture)?;
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

    // Active response sets its table up while CAP_NET_ADMIN is certainly held.
    let responder = Responder::start(&config.response, config.detect.allowlist.clone())
        .map_err(Error::Response)?;
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
    // workers, the alert stage and the control loop all start confined.
    let mut plan = super::sandbox_plan(&config, config_path.as_deref(), json_files);
    plan.fanout_later = capture.fanout_deferred();
    // The service manager's socket too: once confined, scramd creates no unix socket.
    crate::notify::open();
    log_confined(&crate::sandbox::confine(&plan)?);

    let stop = Arc::new(AtomicBool::new(false));
    let running = capture
        .start(pipelines, Arc::clone(&stop))
        .map_err(|source| Error::Os {
            what: "starting capture workers",
            source,
        })?;
    let alerts = match AlertStage::new(set.alert_rx, writer, responder)
        .with_fold_wait(FOLD_WAIT)
        .spawn()
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
            let _ = running.stop();
            let _ = alerts.finish();
            return Err(Error::Os {
                what: "starting the control runtime",
                source,
            });
        }
    };
    let daemon = Daemon {
        running,
        counters: set.counters,
        settings,
        alerts,
        config,
        config_path,
        cli_interfaces: opts.interfaces,
    };
    runtime.block_on(daemon.control())
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
}

impl Daemon {
    /// The control loop: signals, periodic counters, systemd status and watchdog.
    async fn control(mut self) -> Result<(), Error> {
        let signals = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        );
        let (mut term, mut int, mut hup) = match signals {
            (Ok(t), Ok(i), Ok(h)) => (t, i, h),
            (Err(source), _, _) | (_, Err(source), _) | (_, _, Err(source)) => {
                let _ = self.running.stop();
                let _ = self.alerts.finish();
                return Err(Error::Os {
                    what: "installing signal handlers",
                    source,
                });
            }
        };
        notify("READY=1");

        let mut stats_tick = tokio::time::interval(self.config.stats_interval);
        stats_tick.tick().await;
        let mut status_tick = tokio::time::interval(Duration::from_secs(5));
        let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
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
                    let s = self.running.stats();
                    stats::log("counters", &s, &PipelineTotals::sum(&self.counters));
                }
                _ = status_tick.tick() => {
                    let status = stats::status_line(&self.running.stats(), &PipelineTotals::sum(&self.counters));
                    notify(&format!("STATUS={status}"));
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
                        notify("WATCHDOG=1");
                    }
                    last_progress = progress;
                }
            }
        }
        notify("STOPPING=1");
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
        self.alerts.update(ResponseUpdate {
            config: self.config.response.clone(),
            allowlist: self.config.detect.allowlist.clone(),
        });
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
