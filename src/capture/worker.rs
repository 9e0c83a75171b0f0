//! One capture worker: walks its ring's blocks in order, hands frames to the sink, gives each
//! block back, and waits in `poll` only when the next block is still the kernel's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::block::walk_block;
use super::{Batch, FrameSink, WorkerCounters};
use crate::sys::packet::{PacketSocket, Readiness};
use crate::sys::ring::Ring;

/// A fanout group that could not be formed at start because the link was down.
#[derive(Debug)]
pub(super) struct Group {
    ifindex: u32,
    kind: crate::sys::packet::FanoutKind,
    defrag: bool,
    promiscuous: bool,
    /// The group's id plus one once the first worker formed it; 0 before.
    id: std::sync::atomic::AtomicU32,
}

impl Group {
    pub fn new(
        ifindex: u32,
        kind: crate::sys::packet::FanoutKind,
        defrag: bool,
        promiscuous: bool,
    ) -> Self {
        Group {
            ifindex,
            kind,
            defrag,
            promiscuous,
            id: std::sync::atomic::AtomicU32::new(0),
        }
    }
}

/// What a worker still has to do about its interface's fanout group.
#[derive(Debug)]
pub(super) enum Deferred {
    /// Form the group (the first worker, bound from the start), once the link is up.
    Create(Arc<Group>),
    /// Bind and join it (the others), once the first worker has formed it.
    Join(Arc<Group>),
}

pub(super) struct Worker {
    pub iface_name: String,
    pub iface: u16,
    pub socket: Arc<PacketSocket>,
    pub ring: Ring,
    pub counters: Arc<WorkerCounters>,
    pub stop: Arc<AtomicBool>,
    pub poll_timeout: Duration,
    pub deferred: Option<Deferred>,
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
                batch.feed(frame, meta, sink);
            });
            batch.flush(sink);
            // The block goes back to the kernel as soon as its frames are processed.
            drop(block);
            sink.block_end();
            if self.deferred.is_some() {
                // The link is up (frames came): a busy worker may never wait, so here too.
                self.settle_fanout();
            }
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

    /// Forms or joins the interface's fanout group if that waits on the link: tried at every
    /// wait, so within a poll timeout of the link coming up.
    fn settle_fanout(&mut self) {
        let Some(deferred) = &self.deferred else {
            return;
        };
        let done = match deferred {
            Deferred::Create(g) => match self.socket.create_fanout(g.kind, g.defrag) {
                Ok(id) => {
                    g.id.store(u32::from(id) + 1, Ordering::Release);
                    tracing::info!(
                        iface = %self.iface_name,
                        "{} is up: its fanout group is formed, the other workers join it",
                        self.iface_name
                    );
                    true
                }
                // EINVAL: still down.
                Err(e) if e.errno() == Some(libc::EINVAL) => false,
                Err(e) => {
                    tracing::error!(iface = %self.iface_name, "forming the fanout group: {e}; one worker captures");
                    true
                }
            },
            Deferred::Join(g) => match g.id.load(Ordering::Acquire) {
                0 => false,
                id => {
                    let joined = self
                        .socket
                        .bind(g.ifindex)
                        .and_then(|()| match g.promiscuous {
                            true => self.socket.set_promiscuous(g.ifindex),
                            false => Ok(()),
                        })
                        .and_then(|()| self.socket.join_fanout((id - 1) as u16, g.kind, g.defrag));
                    if let Err(e) = joined {
                        tracing::error!(iface = %self.iface_name, "joining the fanout group: {e}; this worker stays idle");
                    }
                    true
                }
            },
        };
        if done {
            self.deferred = None;
        }
    }

    fn wait<S: FrameSink>(&mut self, down_since: &mut Option<Instant>, sink: &mut S) {
        self.settle_fanout();
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
