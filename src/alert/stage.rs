//! The alert stage: drains every worker's alert ring, passes each alert through active response
//! (which may ban its offender and mark it `blocked`), then writes it to the sinks. Runs on its
//! own thread, never on the packet path; response settings changed by a reload reach it over a
//! channel and apply between two drains.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::AlertWriter;
use crate::config::ResponseConfig;
use crate::detect::prefix::PrefixSet;
use crate::detect::Alert;
use crate::response::Responder;

/// How long the stage sleeps when every ring was empty.
const IDLE: Duration = Duration::from_millis(10);

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
        }
    }

    /// Takes every queued alert through response and out to the sinks; returns how many.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        for c in &mut self.rx {
            while let Ok(mut a) = c.pop() {
                if let Some(r) = &mut self.responder {
                    r.act(&mut a);
                }
                self.writer.write(&a);
                n += 1;
            }
        }
        if n > 0 {
            self.writer.flush();
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

    /// Ends the stage: the responder removes its table if asked to; returns the writer.
    pub fn finish(self) -> AlertWriter {
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
