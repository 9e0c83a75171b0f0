//! One capture worker: walks its ring's blocks in order, hands frames to the sink, gives each
//! block back, and waits in `poll` only when the next block is still the kernel's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::block::walk_block;
use super::{Batch, FrameSink, WorkerCounters};
use crate::sys::packet::{PacketSocket, Readiness};
use crate::sys::ring::Ring;

pub(super) struct Worker {
    pub iface_name: String,
    pub iface: u16,
    pub socket: Arc<PacketSocket>,
    pub ring: Ring,
    pub counters: Arc<WorkerCounters>,
    pub stop: Arc<AtomicBool>,
    pub poll_timeout: Duration,
}

impl Worker {
    pub fn run<S: FrameSink>(mut self, sink: &mut S) {
        let blocks = self.ring.block_count();
        let mut next = 0usize;
        // Set when the interface went down; cleared (and the gap logged) when frames flow again.
        let mut down_since: Option<Instant> = None;
        let mut bad_logged = false;
        while !self.stop.load(Ordering::Relaxed) {
            let Some(block) = self.ring.try_acquire(next) else {
                self.wait(&mut down_since, sink);
                continue;
            };
            let mut bytes = 0u64;
            let mut batch = Batch::default();
            let result = walk_block(&block, self.iface, |frame, meta| {
                bytes += u64::from(meta.wire_len);
                if !batch.push(frame, meta) {
                    sink.frames(&batch);
                    batch.clear();
                    batch.push(frame, meta);
                }
            });
            sink.frames(&batch);
            // The block goes back to the kernel as soon as its frames are processed.
            drop(block);
            sink.block_end();
            next = (next + 1) % blocks;

            let c = &self.counters;
            c.blocks.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(bytes, Ordering::Relaxed);
            match result {
                Ok(n) => {
                    c.frames.fetch_add(u64::from(n), Ordering::Relaxed);
                }
                Err(e) => {
                    c.bad_blocks.fetch_add(1, Ordering::Relaxed);
                    if !bad_logged {
                        tracing::error!(iface = %self.iface_name, "malformed ring block (counted; further ones counted silently): {e}");
                        bad_logged = true;
                    }
                }
            }
            if let Some(since) = down_since.take() {
                tracing::info!(
                    iface = %self.iface_name,
                    "capture on {} resumed after a gap of {} ms",
                    self.iface_name,
                    since.elapsed().as_millis()
                );
            }
        }
    }

    fn wait<S: FrameSink>(&self, down_since: &mut Option<Instant>, sink: &mut S) {
        self.counters.waits.fetch_add(1, Ordering::Relaxed);
        match self.socket.wait(self.poll_timeout) {
            Ok(Readiness::Ready) => {}
            Ok(Readiness::Error(errno)) => {
                if errno == libc::ENETDOWN {
                    if down_since.is_none() {
                        tracing::warn!(
                            iface = %self.iface_name,
                            "{} went down; capture resumes when it comes back up",
                            self.iface_name
                        );
                        *down_since = Some(Instant::now());
                    }
                } else {
                    tracing::warn!(
                        iface = %self.iface_name,
                        "socket error on {}: {}",
                        self.iface_name,
                        std::io::Error::from_raw_os_error(errno)
                    );
                }
                // The error may be reported again at once; don't spin on it.
                std::thread::sleep(self.poll_timeout);
            }
            Err(e) => {
                tracing::error!(iface = %self.iface_name, "waiting for frames: {e}");
                std::thread::sleep(self.poll_timeout);
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        sink.idle(now);
    }
}
