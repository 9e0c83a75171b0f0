//! The alert stage: drains every worker's alert ring, folds the portscans of a decoy scan's
//! sources into it (and its later records, naming more of them, into one), passes each alert
//! through active response (which may ban its offender and mark it `blocked`), then writes it
//! to the sinks. `scramd run` runs it on its own thread, never
//! on the packet path (response settings changed by a reload reach it over a channel and apply
//! between two drains); `scramd replay` drains it after each packet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::AlertWriter;
use crate::config::ResponseConfig;
use crate::detect::record::MAX_SOURCES;
use crate::detect::{addr_key, AddrKey, Alert, Detector};
use crate::response::Responder;

/// How long the stage sleeps while alerts wait in it (for a decoy scan to fold them into, for
/// their ban, for the journal's socket to come back).
const IDLE: Duration = Duration::from_millis(10);

/// How long it sleeps when nothing waits in it: a bound, not a rhythm. A worker that queued
/// alerts rings the [`AlertBell`], and the control loop wakes it with its updates and the stop;
/// a thread woken every 10 ms for nothing costs a context switch each time, as much CPU as
/// reading some thousands of packets a second.
const QUIET: Duration = Duration::from_secs(1);

/// How the workers wake the alert thread: each rings it at the end of a block that left alerts
/// in its ring. That is a `futex` wake only when the thread sleeps, none when it is awake or
/// nothing was queued, and never more than one a block.
#[derive(Debug, Clone, Default)]
pub struct AlertBell(Arc<OnceLock<std::thread::Thread>>);

impl AlertBell {
    /// Wakes the alert thread (nothing before it started: its first drain takes what is
    /// queued).
    pub fn ring(&self) {
        if let Some(t) = self.0.get() {
            t.unpark();
        }
    }
}

/// How long an alert whose offender would be banned waits first: a decoy scan shows itself only
/// once several of its sources have crossed the threshold (a forged source shows only when its
/// probes go unanswered: 3 s, plus a turn of the flow table's clock hand), and none of them may
/// be banned then.
const HOLD: Duration = Duration::from_secs(5);

/// Alerts held at most; beyond, a ban is placed at once (and counted).
const HELD: usize = 256;

/// Alerts taken from the rings per drain (the rest wait for the next one).
const BATCH: usize = 1024;

/// How long a decoy scan folds the later portscans of its sources, in packet time.
const FOLD_NS: u64 = 600_000_000_000;

/// A decoy scan seen: when (packet time and here), its target, the sources it names.
#[derive(Debug, Clone, Copy)]
struct Decoy {
    seen: Instant,
    ts_ns: u64,
    target: Option<std::net::IpAddr>,
    sources: [AddrKey; MAX_SOURCES],
}

impl Decoy {
    /// Does it name `a`'s source, scanning its target?
    fn names(&self, a: &Alert) -> bool {
        self.target == a.dst && a.src.is_some_and(|s| self.sources.contains(&addr_key(s)))
    }
}

/// Takes out of `waiting` the first alert that has waited `wait` (the first of all, when `all`).
fn next_due(
    waiting: &mut Vec<(Instant, Alert)>,
    now: Instant,
    wait: Duration,
    all: bool,
) -> Option<Alert> {
    let i = waiting
        .iter()
        .position(|(since, _)| all || now.duration_since(*since) >= wait)?;
    Some(waiting.remove(i).1)
}

/// What the control loop hands the running stage.
#[derive(Debug)]
enum Update {
    /// Reloaded response settings.
    Response(ResponseConfig),
    /// Open the alert files anew (SIGHUP, after rotation).
    Reopen,
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
    /// Recent decoy scans: later alerts about their sources are folded into them or spared
    /// (allocated once, at most [`HELD`]).
    decoys: Vec<Decoy>,
    /// Alerts folded into the decoy scan that named their source: portscans, closing records
    /// of scans nothing answered, and a decoy scan's records replaced by a later one.
    folded: u64,
    /// One drain's alerts (allocated once, at most [`BATCH`]).
    batch: Vec<Alert>,
    /// How long a portscan alert waits for a decoy scan naming its source (its source's shard
    /// and its target's may be different workers, whose alerts arrive apart).
    fold_wait: Duration,
    /// Portscan alerts waiting, with when they arrived (allocated once, at most [`HELD`]).
    pending: Vec<(Instant, Alert)>,
    /// Decoy-scan alerts waiting as long, with when they arrived: a later record of the same
    /// incident naming more of its sources replaces the one waiting (allocated once, at most
    /// [`HELD`]).
    decoys_waiting: Vec<(Instant, Alert)>,
    /// How long the running stage sleeps when nothing waits in it ([`QUIET`]).
    quiet: Duration,
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
            decoys: Vec::with_capacity(HELD),
            folded: 0,
            batch: Vec::with_capacity(BATCH),
            fold_wait: Duration::ZERO,
            pending: Vec::with_capacity(HELD),
            decoys_waiting: Vec::with_capacity(HELD),
            quiet: QUIET,
        }
    }

    /// Holds portscan alerts `wait` for a decoy scan to fold them into (live capture, where
    /// the decoy scan's alert comes from another worker; replay's come in one batch).
    pub fn with_fold_wait(mut self, wait: Duration) -> Self {
        self.fold_wait = wait;
        self
    }

    /// Takes every queued alert through folding and response and out to the sinks; returns
    /// how many went out or were folded.
    pub fn drain(&mut self) -> usize {
        let mut batch = std::mem::take(&mut self.batch);
        for rx in &mut self.rx {
            while batch.len() < BATCH {
                match rx.pop() {
                    Ok(a) => batch.push(a),
                    Err(_) => break,
                }
            }
        }
        let now = Instant::now();
        // A decoy scan first: the portscans of its sources raised by the same attempts fold
        // into it rather than going out beside it.
        for a in batch.iter().filter(|a| a.detector == Detector::DecoyScan) {
            self.note_decoy(a, now);
            self.wait_decoy(*a, now);
        }
        let mut n = batch.len();
        n += self.release_decoys(now, false);
        for a in batch
            .drain(..)
            .filter(|a| a.detector != Detector::DecoyScan)
        {
            // A portscan waiting for its ban waits long enough already (and folds then).
            let held_for_ban = self.responder.as_ref().is_some_and(|r| r.bans(a.detector));
            if a.detector == Detector::Portscan
                && !self.fold_wait.is_zero()
                && !held_for_ban
                && self.pending.len() < HELD
            {
                self.pending.push((now, a));
            } else {
                self.take(a, now);
            }
        }
        self.batch = batch;
        n += self.release_pending(now, false);
        n += self.release(now, false);
        if n > 0 {
            self.writer.flush();
        }
        self.writer.retry_journal();
        n
    }

    /// Takes the portscan alerts whose wait is over (all of them when `all`).
    fn release_pending(&mut self, now: Instant, all: bool) -> usize {
        self.release_waiting(|s| &mut s.pending, now, all)
    }

    /// Takes the alerts of the queue `queue` picks whose `fold_wait` is over (all of them when
    /// `all`), in the order they came.
    fn release_waiting(
        &mut self,
        queue: fn(&mut Self) -> &mut Vec<(Instant, Alert)>,
        now: Instant,
        all: bool,
    ) -> usize {
        let (mut n, wait) = (0, self.fold_wait);
        while let Some(a) = next_due(queue(self), now, wait, all) {
            self.take(a, now);
            n += 1;
        }
        n
    }

    /// Has a decoy-scan alert wait `fold_wait` before it goes out. A record of the same incident
    /// waiting already (its target, every source it names named again) is replaced: a decoy
    /// whose attempts reached the target's shard late (another worker's flows found them) is
    /// named in the one record.
    fn wait_decoy(&mut self, a: Alert, now: Instant) {
        let same = self.decoys_waiting.iter_mut().find(|(_, w)| {
            w.dst == a.dst
                && w.iface == a.iface
                && w.detail
                    .sources()
                    .all(|k| a.detail.sources().any(|n| n == k))
        });
        if let Some((_, w)) = same {
            *w = Alert {
                ts_ns: w.ts_ns,
                ..a
            };
            self.folded += 1;
        } else if self.decoys_waiting.len() < HELD {
            self.decoys_waiting.push((now, a));
        } else {
            self.take(a, now);
        }
    }

    /// Writes the decoy-scan alerts whose wait is over (all of them when `all`), in the order
    /// they came.
    fn release_decoys(&mut self, now: Instant, all: bool) -> usize {
        self.release_waiting(|s| &mut s.decoys_waiting, now, all)
    }

    /// Remembers a decoy scan; every ban waiting for one of its sources is spared.
    fn note_decoy(&mut self, a: &Alert, now: Instant) {
        let mut sources = [0; MAX_SOURCES];
        for (k, s) in sources.iter_mut().zip(a.detail.sources()) {
            *k = s;
        }
        let decoy = Decoy {
            seen: now,
            ts_ns: a.ts_ns,
            target: a.dst,
            sources,
        };
        for (_, held, spared) in &mut self.held {
            if decoy.names(held) {
                *spared = true;
            }
        }
        self.decoys.retain(|d| {
            now.duration_since(d.seen) < 2 * HOLD || a.ts_ns.saturating_sub(d.ts_ns) < FOLD_NS
        });
        if self.decoys.len() < HELD {
            self.decoys.push(decoy);
        }
    }

    fn take(&mut self, mut a: Alert, now: Instant) {
        let decoy = self.decoys.iter().find(|d| d.names(&a)).copied();
        let learned_nothing =
            matches!(a.detail, crate::detect::Detail::Summary(s) if s.answered_total == 0);
        if (a.detector == Detector::Portscan || learned_nothing)
            && decoy.is_some_and(|d| a.ts_ns.saturating_sub(d.ts_ns) < FOLD_NS)
        {
            // One incident: the decoy scan names this source already (a closing record is
            // kept when answers reached its source: that is where the scanner is).
            self.folded += 1;
            if let Some(r) = &mut self.responder {
                if r.bans(a.detector) {
                    r.spare_decoy();
                }
            }
            return;
        }
        let Some(r) = &mut self.responder else {
            self.writer.write(&a);
            return;
        };
        if r.bans(a.detector) {
            if decoy.is_some() {
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
            n += 1;
            if spared && a.detector == Detector::Portscan {
                // A decoy scan named its source while it waited: one incident.
                self.folded += 1;
                continue;
            }
            self.writer.write(&a);
        }
        n
    }

    /// Applies reloaded response settings.
    pub fn update(&mut self, config: ResponseConfig) {
        if let Some(r) = &mut self.responder {
            r.update(&config);
        }
    }

    /// Does anything wait in the stage for its time to come?
    fn waiting(&self) -> bool {
        !(self.held.is_empty() && self.pending.is_empty() && self.decoys_waiting.is_empty())
            || self.writer.journal_held() != (0, 0)
    }

    /// Runs the stage on its own thread until [`AlertThread::finish`], woken by `bell` when a
    /// worker queued alerts.
    pub fn spawn(mut self, bell: &AlertBell) -> std::io::Result<AlertThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (tx, updates) = mpsc::channel::<Update>();
        let bell = bell.clone();
        let handle = std::thread::Builder::new()
            .name("scram-alerts".into())
            .spawn(move || {
                // Hung before the first drain: what is queued before it is taken by that drain.
                let _ = bell.0.set(std::thread::current());
                loop {
                    // Read the flag before draining, so nothing queued before the stop is
                    // missed.
                    let stopping = flag.load(Ordering::Acquire);
                    while let Ok(u) = updates.try_recv() {
                        match u {
                            Update::Response(u) => self.update(u),
                            Update::Reopen => self.writer.reopen(),
                        }
                    }
                    self.drain();
                    if stopping {
                        return self;
                    }
                    // A wake-up that came while draining is kept: this returns at once.
                    std::thread::park_timeout(if self.waiting() { IDLE } else { self.quiet });
                }
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
        self.release_decoys(Instant::now(), true);
        self.release_pending(Instant::now(), true);
        self.release(Instant::now(), true);
        self.writer.flush();
        self.writer.retry_journal();
        let (held, lost) = self.writer.journal_held();
        if held > 0 || lost > 0 {
            tracing::error!(
                "stopping with the journal's socket gone: {} alert(s) never reached the journal",
                held as u64 + lost
            );
        }
        if self.folded > 0 {
            tracing::info!(
                "{} alert(s) folded into the decoy scans that named their sources (portscans, \
                 closing records of scans nothing answered, and a decoy scan's record replaced \
                 by the one naming more of its sources)",
                self.folded
            );
        }
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
    updates: mpsc::Sender<Update>,
    handle: std::thread::JoinHandle<AlertStage>,
}

impl AlertThread {
    /// Hands reloaded response settings to the stage (applied before its next drain).
    pub fn update(&self, u: ResponseConfig) {
        // The receiver lives as long as the thread; a send fails only after it ended.
        let _ = self.updates.send(Update::Response(u));
        self.handle.thread().unpark();
    }

    /// Has the stage open its alert files anew (before its next drain).
    pub fn reopen(&self) {
        let _ = self.updates.send(Update::Reopen);
        self.handle.thread().unpark();
    }

    /// Drains what is queued, stops the thread and returns the writer (`None` if it panicked).
    pub fn finish(self) -> Option<AlertWriter> {
        self.stop.store(true, Ordering::Release);
        self.handle.thread().unpark();
        self.handle.join().ok().map(AlertStage::finish)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Mutex;

    use super::*;
    use crate::capture::{FrameMeta, FrameSink};
    use crate::detect::Detail;

    /// A sink the test reads back.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        /// Each record's detector and the sources it names.
        fn records(&self) -> Vec<(String, Vec<String>)> {
            let text = String::from_utf8(self.0.lock().map(|b| b.clone()).unwrap_or_default())
                .unwrap_or_default();
            text.lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                    let scram = &v["alert"]["context"]["scram"];
                    let sources = scram["sources"]
                        .as_array()
                        .map(|s| {
                            s.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    (scram["detector"].as_str().unwrap_or("").to_owned(), sources)
                })
                .collect()
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn decoy(target: u8, sources: &[u8]) -> Alert {
        let mut keys = [0; MAX_SOURCES];
        for (k, s) in keys.iter_mut().zip(sources) {
            *k = addr_key(ip(*s));
        }
        Alert {
            ts_ns: 1_000,
            detector: Detector::DecoyScan,
            dst: Some(ip(target)),
            count: sources.len() as u64,
            detail: Detail::Sources {
                keys,
                total: sources.len() as u8,
                mac: [0; 6],
                owner: 0,
            },
            ..Alert::default()
        }
    }

    fn stage(wait: Duration) -> (AlertStage, rtrb::Producer<Alert>, Lines) {
        let (tx, rx) = rtrb::RingBuffer::new(16);
        let lines = Lines::default();
        let mut writer = AlertWriter::new(vec!["eth0".into()]);
        writer.add_json_writer("test", Box::new(lines.clone()));
        (
            AlertStage::new(vec![rx], writer, None).with_fold_wait(wait),
            tx,
            lines,
        )
    }

    #[test]
    fn a_decoy_scan_named_again_with_more_sources_is_one_record() {
        // Live capture: the record waits, and the later one naming a decoy more replaces it.
        let (mut s, mut tx, lines) = stage(Duration::from_secs(3600));
        for a in [
            decoy(10, &[1, 2]),
            decoy(10, &[1, 2, 3]),
            decoy(20, &[1, 2]),
        ] {
            assert!(tx.push(a).is_ok());
            s.drain();
        }
        assert!(lines.records().is_empty(), "waiting");
        let _ = s.finish();
        let ips = |l: &[u8]| l.iter().map(|x| ip(*x).to_string()).collect::<Vec<_>>();
        let want = [
            ("decoy-scan".to_owned(), ips(&[1, 2, 3])),
            ("decoy-scan".to_owned(), ips(&[1, 2])),
        ];
        assert_eq!(lines.records(), want);
        // Replay: no wait, the records of one drain merge.
        let (mut s, mut tx, lines) = stage(Duration::ZERO);
        assert!(tx.push(decoy(10, &[1, 2])).is_ok());
        assert!(tx.push(decoy(10, &[1, 2, 3])).is_ok());
        s.drain();
        assert!(tx.push(decoy(20, &[1, 2])).is_ok());
        s.drain();
        assert_eq!(lines.records(), want);
        assert_eq!(s.folded, 1);
    }

    #[test]
    fn the_running_stage_sleeps_until_a_block_leaves_alerts_or_it_is_told_to_stop() {
        // With nothing waiting in it the stage sleeps (here an hour, not a second): the end of
        // a worker's block that left an alert in its ring wakes it, and so does the stop.
        let mut set = crate::pipeline::PipelineSet::with_defaults(1);
        let lines = Lines::default();
        let mut writer = AlertWriter::new(vec!["eth0".into()]);
        writer.add_json_writer("test", Box::new(lines.clone()));
        let mut s = AlertStage::new(std::mem::take(&mut set.alert_rx), writer, None);
        s.quiet = Duration::from_secs(3600);
        let running = s.spawn(&set.alert_bell).expect("the alert thread");
        // Asleep by now (were it not, its first drain would take the alert all the same).
        std::thread::sleep(Duration::from_millis(100));
        let land = crate::craft::udp_frame(ip(9), ip(9), 7, 7, &[0; 18]);
        let p = &mut set.pipelines[0];
        let meta = FrameMeta {
            ts_ns: 1_800_000_000_000_000_000,
            ..FrameMeta::EMPTY
        };
        p.frame(&land, &meta);
        p.block_end();
        let until = Instant::now() + Duration::from_secs(60);
        while lines.records().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(lines.records().len(), 1, "{:?}", lines.records());
        let (tx, done) = mpsc::channel();
        std::thread::spawn(move || tx.send(running.finish().is_some()));
        assert_eq!(done.recv_timeout(Duration::from_secs(60)), Ok(true));
    }
}
