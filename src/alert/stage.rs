//! The alert stage: drains every worker's alert ring, passes each alert through active response
//! (which may ban its offender and mark it `blocked`), then writes it to the sinks. Runs on its
//! own thread, never on the packet path; response settings changed by a reload reach it over a
//! channel and apply between two drains.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::AlertWriter;
use crate::config::ResponseConfig;
use crate::detect::prefix::PrefixSet;
use crate::detect::{addr_key, AddrKey, Alert, Detector};
use crate::response::Responder;

/// How long the stage sleeps when every ring was empty.
const IDLE: Duration = Duration::from_millis(10);

/// How long an alert whose offender would be banned waits first: a decoy scan shows itself only
/// once several of its sources have crossed the threshold (a forged source shows only when its
/// probes go unanswered: 3 s, plus a turn of the flow table's clock hand), and none of them may
/// be banned then.
const HOLD: Duration = Duration::from_secs(5);

/// Alerts held at most; beyond, a ban is placed at once (and counted).
const HELD: usize = 256;

/// Response settings a reload hands to the stage.
#[derive(Debug, Clone)]
pub struct ResponseUpdate {
    /// The new `[response]` section.
    pub config: ResponseConfig,
    /// The new allowlist.
    pub allowlist: PrefixSet,
}

/// Alert rings in, sinks out, active response between.
pub struct AlertStage {
    rx: Vec<rtrb::Consumer<Alert>>,
    writer: AlertWriter,
    responder: Option<Responder>,
    /// Alerts waiting for their ban, with when they arrived and whether a decoy scan named
    /// their source since (allocated once, at most [`HELD`]).
    held: Vec<(Instant, Alert, bool)>,
    /// Alerts whose ban could not wait because the hold was full.
    hold_full: u64,
    /// Recent decoy scans (when, target, sources): later alerts about them are spared too.
    decoys: Vec<(Instant, Option<std::net::IpAddr>, Vec<AddrKey>)>,
}

impl AlertStage {
    /// A stage over the consumer ends of the alert rings.
    pub fn new(
        rx: Vec<rtrb::Consumer<Alert>>,
        writer: AlertWriter,
        responder: Option<Responder>,
    ) -> Self {
        AlertStage {
            rx,
            writer,
            responder,
            held: Vec::with_capacity(HELD),
            hold_full: 0,
            decoys: Vec::new(),
        }
    }

    /// Takes every queued alert through response and out to the sinks; returns how many.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        for i in 0..self.rx.len() {
            while let Ok(a) = self.rx[i].pop() {
                self.take(a, Instant::now());
                n += 1;
            }
        }
        n += self.release(Instant::now(), false);
        if n > 0 {
            self.writer.flush();
        }
        n
    }

    fn take(&mut self, mut a: Alert, now: Instant) {
        let Some(r) = &mut self.responder else {
            self.writer.write(&a);
            return;
        };
        if a.detector == Detector::DecoyScan {
            // Its sources may be forged: spare every ban waiting for one of them, and those of
            // alerts still to come about them.
            let named: Vec<AddrKey> = a.detail.sources().collect();
            for (_, held, spared) in &mut self.held {
                if held.dst == a.dst && held.src.is_some_and(|s| named.contains(&addr_key(s))) {
                    *spared = true;
                }
            }
            self.decoys
                .retain(|(since, _, _)| now.duration_since(*since) < 2 * HOLD);
            if self.decoys.len() < HELD {
                self.decoys.push((now, a.dst, named));
            }
        }
        if r.bans(a.detector) {
            let decoy = self.decoys.iter().any(|(_, dst, named)| {
                *dst == a.dst && a.src.is_some_and(|s| named.contains(&addr_key(s)))
            });
            if decoy {
                r.spare_decoy();
                self.writer.write(&a);
                return;
            }
            if self.held.len() < HELD {
                self.held.push((now, a, false));
                return;
            }
            self.hold_full += 1;
        }
        r.act(&mut a);
        self.writer.write(&a);
    }

    /// Places the bans whose wait is over (all of them when `all`) and writes their alerts.
    fn release(&mut self, now: Instant, all: bool) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.held.len() {
            let (since, mut a, spared) = self.held[i];
            if !all && now.duration_since(since) < HOLD {
                i += 1;
                continue;
            }
            self.held.swap_remove(i);
            if let Some(r) = &mut self.responder {
                if spared {
                    r.spare_decoy();
                } else {
                    r.act(&mut a);
                }
            }
            self.writer.write(&a);
            n += 1;
        }
        n
    }

    /// Applies reloaded response settings.
    pub fn update(&mut self, u: ResponseUpdate) {
        if let Some(r) = &mut self.responder {
            r.update(&u.config, u.allowlist);
        }
    }

    /// Runs the stage on its own thread until [`AlertThread::finish`].
    pub fn spawn(mut self) -> std::io::Result<AlertThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (tx, updates) = mpsc::channel::<ResponseUpdate>();
        let handle = std::thread::Builder::new()
            .name("scram-alerts".into())
            .spawn(move || loop {
                // Read the flag before draining, so nothing queued before the stop is missed.
                let stopping = flag.load(Ordering::Acquire);
                while let Ok(u) = updates.try_recv() {
                    self.update(u);
                }
                self.drain();
                if stopping {
                    return self;
                }
                std::thread::sleep(IDLE);
            })?;
        Ok(AlertThread {
            stop,
            updates: tx,
            handle,
        })
    }

    /// Ends the stage: held bans are placed, the responder removes its table if asked to;
    /// returns the writer.
    pub fn finish(mut self) -> AlertWriter {
        self.release(Instant::now(), true);
        self.writer.flush();
        if self.hold_full > 0 {
            tracing::warn!(
                "{} ban(s) placed without waiting for a decoy scan to show (hold full)",
                self.hold_full
            );
        }
        if let Some(r) = self.responder {
            r.finish();
        }
        self.writer
    }
}

/// The running alert stage.
pub struct AlertThread {
    stop: Arc<AtomicBool>,
    updates: mpsc::Sender<ResponseUpdate>,
    handle: std::thread::JoinHandle<AlertStage>,
}

impl AlertThread {
    /// Hands reloaded response settings to the stage (applied before its next drain).
    pub fn update(&self, u: ResponseUpdate) {
        // The receiver lives as long as the thread; a send fails only after it ended.
        let _ = self.updates.send(u);
    }

    /// Drains what is queued, stops the thread and returns the writer (`None` if it panicked).
    pub fn finish(self) -> Option<AlertWriter> {
        self.stop.store(true, Ordering::Release);
        self.handle.join().ok().map(AlertStage::finish)
    }
}
