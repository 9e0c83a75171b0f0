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

use crate::capture::{self, Capture, CaptureError, FrameMeta, FrameSink, InterfaceStats, Running};
use crate::config::{self, Config, ConfigError};
use crate::exit::Exit;

/// What `scramd run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--config`; when absent, /etc/scram/scram.toml if it exists, else built-in defaults.
    pub config: Option<PathBuf>,
    /// `--iface`, overriding `capture.interfaces`.
    pub interfaces: Vec<String>,
}

/// The stage after capture until the detection pipeline plugs in: frames are counted by the
/// workers themselves, so this sink has nothing left to do.
#[derive(Debug, Default)]
pub struct CountingSink;

impl FrameSink for CountingSink {
    fn frame(&mut self, _frame: &[u8], _meta: &FrameMeta) {}
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

    let capture = match Capture::open(&config.capture) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return exit_for(&e);
        }
    };
    let names = capture.interface_names();
    let stop = Arc::new(AtomicBool::new(false));
    let running = match capture.start(|_, _| CountingSink, Arc::clone(&stop)) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("starting capture workers: {e}");
            return Exit::Os;
        }
    };
    tracing::info!(
        "capturing on {} with {} worker(s) each, {} KiB ring per worker, block timeout {} ms",
        names.join(", "),
        config.capture.workers,
        config.capture.ring.bytes() / 1024,
        config.capture.ring.retire_timeout_ms
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
    runtime.block_on(control(running, config, config_path))
}

/// The control loop: signals, periodic counters, systemd status and watchdog.
async fn control(
    mut running: Running<CountingSink>,
    mut config: Config,
    config_path: Option<PathBuf>,
) -> Exit {
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("installing signal handlers failed");
            let _ = running.stop();
            return Exit::Os;
        }
    };
    notify(&[sd_notify::NotifyState::Ready]);

    let mut stats_tick = tokio::time::interval(config.stats_interval);
    stats_tick.tick().await;
    let mut status_tick = tokio::time::interval(Duration::from_secs(5));
    let watchdog = watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut last_progress = running.progress();

    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => reload(&mut config, config_path.as_deref()),
            _ = stats_tick.tick() => log_stats("counters", &running.stats()),
            _ = status_tick.tick() => {
                let status = status_line(&running.stats());
                notify(&[sd_notify::NotifyState::Status(&status)]);
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                // Only vouch for the workers while they make progress: a stuck worker lets
                // systemd's watchdog restart the service.
                let progress = running.progress();
                if running.workers_alive() && progress != last_progress {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                } else {
                    tracing::warn!("capture workers made no progress; withholding the watchdog ping");
                }
                last_progress = progress;
            }
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    let (stats, _) = running.stop();
    log_stats("final counters", &stats);
    Exit::Ok
}

fn reload(config: &mut Config, path: Option<&std::path::Path>) {
    let Some(path) = path else {
        tracing::info!("SIGHUP: no configuration file in use; nothing to re-read");
        return;
    };
    match Config::load(path) {
        Ok(new) => {
            if new.capture.interfaces != config.capture.interfaces
                || new.capture.workers != config.capture.workers
                || new.capture.ring != config.capture.ring
            {
                tracing::warn!(
                    "SIGHUP: capture settings changed; they take effect at the next restart"
                );
            }
            *config = new;
            tracing::info!("SIGHUP: configuration {} re-read", path.display());
        }
        Err(e) => tracing::error!("SIGHUP: keeping the running configuration: {e}"),
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

fn status_line(stats: &[InterfaceStats]) -> String {
    let frames: u64 = stats.iter().map(|s| s.frames).sum();
    let drops: u64 = stats.iter().map(|s| s.kernel_drops).sum();
    format!(
        "capturing on {}: {frames} frames, {drops} kernel drops",
        stats
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Logs one line per interface and, with several interfaces, a total.
pub fn log_stats(what: &str, stats: &[InterfaceStats]) {
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
