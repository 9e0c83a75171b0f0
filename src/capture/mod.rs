//! Capture: AF_PACKET sockets with TPACKET_V3 rings, one per worker per interface, joined in a
//! fanout group per interface.
//!
//! Owns: choosing and opening interfaces, sizing rings (shrinking on ENOMEM), the worker threads
//! that walk blocks in ring order and hand each frame to a [`FrameSink`], and the counters (ours
//! and the kernel's PACKET_STATISTICS).
//!
//! Never: allocate, lock or make a system call per frame. A worker makes one `poll` per empty
//! ring visit and none while blocks are ready; each block goes back to the kernel as soon as its
//! frames have been handed to the sink.

pub mod block;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use block::{Batch, Direction, FrameMeta, VlanTag, BATCH};
use worker::Worker;

pub use crate::sys::packet::FanoutKind;
use crate::sys::packet::{PacketSocket, RingGeometry, SocketStats};
use crate::sys::ring::Ring;
use crate::sys::SyscallError;

/// The next stage: receives every captured frame, borrowed from the ring.
///
/// Called on the worker thread, once per frame, in ring order. The slice is only valid for the
/// call; the block it lives in goes back to the kernel right after the last frame of the block.
pub trait FrameSink {
    /// One frame and what the ring says about it.
    fn frame(&mut self, frame: &[u8], meta: &FrameMeta);

    /// Up to [`BATCH`] frames of one block, in ring order. The default hands them to
    /// [`FrameSink::frame`] one by one; a sink may look ahead over the batch first.
    #[inline]
    fn frames(&mut self, batch: &Batch<'_>) {
        for i in 0..batch.len() {
            let (frame, meta) = batch.get(i);
            self.frame(frame, meta);
        }
    }

    /// Called after each block is handed back to the kernel: a place for per-block work
    /// (publishing counters, draining queues) that must not be done per frame.
    fn block_end(&mut self) {}

    /// Called when the worker has nothing to do (the ring was empty for a poll timeout) with the
    /// wall clock in ns, so time-based stages can make progress without traffic.
    fn idle(&mut self, _now_ns: u64) {}
}

/// How to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Interface names.
    pub interfaces: Vec<String>,
    /// Worker threads (one socket and ring each) per interface.
    pub workers: usize,
    /// How the fanout group spreads frames over the workers.
    pub fanout: FanoutKind,
    /// Reassemble IP fragments before fanout, so all fragments reach one worker.
    pub fanout_defrag: bool,
    /// Ring geometry per worker.
    pub ring: RingGeometry,
    /// Put interfaces in promiscuous mode.
    pub promiscuous: bool,
    /// How long a worker waits in `poll` before looking at the stop flag again.
    pub poll_timeout: Duration,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interfaces: Vec::new(),
            workers: 1,
            fanout: FanoutKind::Hash,
            fanout_defrag: true,
            ring: RingGeometry {
                block_size: 1 << 20,
                block_count: 32,
                frame_size: 2048,
                retire_timeout_ms: 10,
            },
            promiscuous: false,
            poll_timeout: Duration::from_millis(100),
        }
    }
}

/// `[capture]` as read from the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    interfaces: Option<Spanned<Vec<Spanned<String>>>>,
    workers: Option<Spanned<i64>>,
    fanout: Option<Spanned<String>>,
    fanout_defrag: Option<bool>,
    block_size: Option<Spanned<i64>>,
    block_count: Option<Spanned<i64>>,
    frame_size: Option<Spanned<i64>>,
    block_timeout_ms: Option<Spanned<i64>>,
    promiscuous: Option<bool>,
    stats_interval_seconds: Option<Spanned<i64>>,
}

impl CaptureConfig {
    /// Validates `[capture]`; returns `stats_interval_seconds` when set (the control loop's, not
    /// capture's). Errors carry the offending value's span.
    pub fn configure(
        &mut self,
        raw: RawCapture,
    ) -> Result<Option<Duration>, crate::detect::SpanError> {
        use crate::config::in_range;
        let c = raw;
        let capture = self;
        let mut stats_interval = None;

        if let Some(list) = c.interfaces {
            if list.get_ref().is_empty() {
                return Err((
                    list.span(),
                    "capture.interfaces is empty; leave it out to use the default-route interface"
                        .into(),
                ));
            }
            for name in list.get_ref() {
                let n = name.get_ref();
                if n.is_empty() || n.len() >= libc::IFNAMSIZ || n.contains(['/', ' ', '\0']) {
                    return Err((name.span(), format!("{n:?} is not a valid interface name")));
                }
                if capture.interfaces.contains(n) {
                    return Err((name.span(), format!("interface {n:?} is listed twice")));
                }
                capture.interfaces.push(n.clone());
            }
        }
        if let Some(v) = c.workers {
            capture.workers =
                in_range(&v, 1, 64, "capture.workers").map_err(|m| (v.span(), m))? as usize;
        }
        if let Some(v) = c.fanout {
            capture.fanout = match v.get_ref().as_str() {
                "hash" => FanoutKind::Hash,
                "cpu" => FanoutKind::Cpu,
                "lb" | "load-balance" => FanoutKind::LoadBalance,
                other => {
                    return Err((
                        v.span(),
                        format!("capture.fanout = {other:?}: expected \"hash\", \"cpu\" or \"lb\""),
                    ))
                }
            };
        }
        if let Some(v) = c.fanout_defrag {
            capture.fanout_defrag = v;
        }
        let mut ring: RingGeometry = capture.ring;
        if let Some(v) = &c.block_size {
            let n = in_range(v, 4096, 1 << 30, "capture.block_size").map_err(|m| (v.span(), m))?;
            if n % 4096 != 0 {
                return Err((
                    v.span(),
                    format!("capture.block_size = {n} is not a multiple of the 4096-byte page"),
                ));
            }
            ring.block_size = n as u32;
        }
        if let Some(v) = c.block_count {
            ring.block_count =
                in_range(&v, 1, 65536, "capture.block_count").map_err(|m| (v.span(), m))? as u32;
        }
        if let Some(v) = &c.frame_size {
            let n = in_range(v, 128, 1 << 20, "capture.frame_size").map_err(|m| (v.span(), m))?;
            if n % 16 != 0 {
                return Err((
                    v.span(),
                    format!("capture.frame_size = {n} is not a multiple of 16"),
                ));
            }
            ring.frame_size = n as u32;
        }
        if ring.frame_size > ring.block_size {
            let span = c
                .frame_size
                .as_ref()
                .or(c.block_size.as_ref())
                .map(|s| s.span())
                .unwrap_or(0..0);
            return Err((
                span,
                format!(
                    "capture.frame_size ({}) is larger than capture.block_size ({})",
                    ring.frame_size, ring.block_size
                ),
            ));
        }
        if let Some(v) = c.block_timeout_ms {
            ring.retire_timeout_ms = in_range(&v, 1, 60_000, "capture.block_timeout_ms")
                .map_err(|m| (v.span(), m))? as u32;
        }
        capture.ring = ring;
        if let Some(v) = c.promiscuous {
            capture.promiscuous = v;
        }
        if let Some(v) = c.stats_interval_seconds {
            let n = in_range(&v, 1, 86_400, "capture.stats_interval_seconds")
                .map_err(|m| (v.span(), m))?;
            stats_interval = Some(Duration::from_secs(n as u64));
        }
        Ok(stats_interval)
    }

    /// `[capture]` as TOML, with the control loop's `stats_interval`.
    pub fn toml(&self, stats_interval: Duration) -> String {
        let c = self;
        let fanout = match c.fanout {
            FanoutKind::Hash => "hash",
            FanoutKind::Cpu => "cpu",
            FanoutKind::LoadBalance => "lb",
        };
        let interfaces = if c.interfaces.is_empty() {
            "# interfaces: the default-route interface".to_owned()
        } else {
            format!(
                "interfaces = [{}]",
                c.interfaces
                    .iter()
                    .map(|i| format!("{i:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "[capture]\n{interfaces}\nworkers = {}\nfanout = \"{fanout}\"\nfanout_defrag = {}\n\
             block_size = {}\nblock_count = {}\nframe_size = {}\nblock_timeout_ms = {}\n\
             promiscuous = {}\nstats_interval_seconds = {}\n",
            c.workers,
            c.fanout_defrag,
            c.ring.block_size,
            c.ring.block_count,
            c.ring.frame_size,
            c.ring.retire_timeout_ms,
            c.promiscuous,
            stats_interval.as_secs()
        )
    }
}

/// Why capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The process may not open packet sockets.
    #[error("opening a packet socket needs {capability}: {source}")]
    Privilege {
        /// The missing capability.
        capability: &'static str,
        /// The refused call.
        source: SyscallError,
    },
    /// An interface does not exist.
    #[error("no interface named {name:?}; interfaces here: {}", available.join(", "))]
    UnknownInterface {
        /// The name asked for.
        name: String,
        /// The interfaces that exist.
        available: Vec<String>,
    },
    /// No interface to capture on.
    #[error("no interface given and no default route to pick one from")]
    NoInterface,
    /// The kernel refused the smallest ring we would accept.
    #[error("no receive ring could be allocated on {iface}: {source}")]
    Ring {
        /// Interface.
        iface: String,
        /// Last refusal.
        source: SyscallError,
    },
    /// Another socket set-up step failed.
    #[error("setting up capture on {iface}: {source}")]
    Socket {
        /// Interface.
        iface: String,
        /// The failed call.
        source: SyscallError,
    },
}

/// One ring of one interface, ready to be walked.
#[derive(Debug)]
struct RingSocket {
    socket: Arc<PacketSocket>,
    ring: Mapping,
    /// Set when the link was down at start: the interface's fanout group is formed once it
    /// comes up (see [`worker::Deferred`]).
    deferred: Option<worker::Deferred>,
}

/// A ring set up in the kernel: mapped into this process, or not (yet).
#[derive(Debug)]
enum Mapping {
    Mapped(Ring),
    /// Set up for another process to map (privilege separation's parser): a mapping here would
    /// only add the whole ring to this process's peak resident set.
    Unmapped {
        block_size: usize,
        block_count: usize,
    },
}

impl Mapping {
    fn geometry(&self) -> (usize, usize) {
        match self {
            Mapping::Mapped(r) => (r.block_size(), r.block_count()),
            Mapping::Unmapped {
                block_size,
                block_count,
            } => (*block_size, *block_count),
        }
    }

    /// The mapped ring of `socket`, mapped now if it was not.
    fn map(self, socket: &PacketSocket) -> Result<Ring, SyscallError> {
        match self {
            Mapping::Mapped(r) => Ok(r),
            Mapping::Unmapped {
                block_size,
                block_count,
            } => Ring::map(std::os::fd::AsFd::as_fd(socket), block_size, block_count),
        }
    }
}

/// An interface with its rings, opened but not yet read.
#[derive(Debug)]
struct OpenInterface {
    name: String,
    ifindex: u32,
    rings: Vec<RingSocket>,
}

/// Sockets and rings opened for every configured interface; nothing read yet. Opening needs
/// CAP_NET_RAW; running does not, so privileges can be dropped in between.
#[derive(Debug)]
pub struct Capture {
    interfaces: Vec<OpenInterface>,
    poll_timeout: Duration,
}

/// One ring as the privileged part hands it to the parser: its socket's descriptor (inherited
/// across `execve`), its interface, the geometry the kernel agreed to, and its fanout duty.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RingHandoff {
    /// Interface name.
    pub iface: String,
    /// Interface index.
    pub ifindex: u32,
    /// The socket's descriptor number.
    pub fd: i32,
    /// Block size, bytes.
    pub block_size: usize,
    /// Blocks.
    pub block_count: usize,
    /// What it still has to do about its interface's fanout group.
    pub fanout: FanoutDuty,
}

/// A handed-over ring's part in its interface's fanout group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FanoutDuty {
    /// In the group already (or alone on the interface).
    None,
    /// Forms the group once the link is up (the link was down at start).
    Create,
    /// Binds and joins the group once another ring has formed it.
    Join,
}

/// Smallest ring the shrink-and-retry loop will settle for.
const MIN_RING_BYTES: usize = 256 * 1024;

impl Capture {
    /// Opens sockets and rings for every interface of `config`, mapped here.
    pub fn open(config: &CaptureConfig) -> Result<Capture, CaptureError> {
        Self::open_with(config, true)
    }

    /// Opens sockets and sets their rings up in the kernel without mapping them: for
    /// [`Capture::handoff`] to another process, which maps them ([`Capture::adopt`]).
    pub fn open_for_handoff(config: &CaptureConfig) -> Result<Capture, CaptureError> {
        Self::open_with(config, false)
    }

    fn open_with(config: &CaptureConfig, map: bool) -> Result<Capture, CaptureError> {
        if config.interfaces.is_empty() {
            return Err(CaptureError::NoInterface);
        }
        let mut interfaces = Vec::with_capacity(config.interfaces.len());
        for name in &config.interfaces {
            interfaces.push(open_interface(name, config, map)?);
        }
        Ok(Capture {
            interfaces,
            poll_timeout: config.poll_timeout,
        })
    }

    /// What the parser needs to adopt these rings (the descriptors stay open here until this
    /// value is dropped).
    pub fn handoff(&self) -> Vec<RingHandoff> {
        use std::os::fd::{AsFd, AsRawFd};
        self.interfaces
            .iter()
            .flat_map(|i| {
                i.rings.iter().map(|r| {
                    let (block_size, block_count) = r.ring.geometry();
                    RingHandoff {
                        iface: i.name.clone(),
                        ifindex: i.ifindex,
                        fd: r.socket.as_fd().as_raw_fd(),
                        block_size,
                        block_count,
                        fanout: match r.deferred {
                            None => FanoutDuty::None,
                            Some(worker::Deferred::Create(_)) => FanoutDuty::Create,
                            Some(worker::Deferred::Join(_)) => FanoutDuty::Join,
                        },
                    }
                })
            })
            .collect()
    }

    /// Lets a program this process executes inherit every ring socket (privilege separation's
    /// parser).
    pub fn inherit_across_exec(&self) -> std::io::Result<()> {
        for r in self.interfaces.iter().flat_map(|i| &i.rings) {
            crate::sys::process::inherit_across_exec(std::os::fd::AsFd::as_fd(&*r.socket))?;
        }
        Ok(())
    }

    /// Takes over rings another process opened (privilege separation's parser, after
    /// `execve`): each descriptor of `rings` is a packet socket with its ring set up, mapped
    /// here anew. Needs no privilege.
    pub fn adopt(config: &CaptureConfig, rings: &[RingHandoff]) -> Result<Capture, CaptureError> {
        let mut interfaces: Vec<OpenInterface> = Vec::new();
        let mut groups: Vec<(u32, Arc<worker::Group>)> = Vec::new();
        for h in rings {
            let fd =
                crate::sys::process::inherited_fd(h.fd).map_err(|source| CaptureError::Socket {
                    iface: h.iface.clone(),
                    source: crate::sys::SyscallError {
                        call: "adopting an inherited ring socket",
                        source,
                    },
                })?;
            let socket = PacketSocket::from_owned(fd);
            let ring = Ring::map(
                std::os::fd::AsFd::as_fd(&socket),
                h.block_size,
                h.block_count,
            )
            .map_err(|source| CaptureError::Ring {
                iface: h.iface.clone(),
                source,
            })?;
            let group = |groups: &mut Vec<(u32, Arc<worker::Group>)>| {
                if let Some((_, g)) = groups.iter().find(|(i, _)| *i == h.ifindex) {
                    return Arc::clone(g);
                }
                let g = Arc::new(worker::Group::new(
                    h.ifindex,
                    config.fanout,
                    config.fanout_defrag,
                    config.promiscuous,
                ));
                groups.push((h.ifindex, Arc::clone(&g)));
                g
            };
            let deferred = match h.fanout {
                FanoutDuty::Create => Some(worker::Deferred::Create(group(&mut groups))),
                FanoutDuty::Join => Some(worker::Deferred::Join(group(&mut groups))),
                FanoutDuty::None => None,
            };
            let rs = RingSocket {
                socket: Arc::new(socket),
                ring: Mapping::Mapped(ring),
                deferred,
            };
            match interfaces.iter_mut().find(|i| i.ifindex == h.ifindex) {
                Some(i) => i.rings.push(rs),
                None => interfaces.push(OpenInterface {
                    name: h.iface.clone(),
                    ifindex: h.ifindex,
                    rings: vec![rs],
                }),
            }
        }
        Ok(Capture {
            interfaces,
            poll_timeout: config.poll_timeout,
        })
    }

    /// Whether a link was down at start, so some workers form their fanout group later (see
    /// [`crate::sandbox::Plan::fanout_later`]).
    pub fn fanout_deferred(&self) -> bool {
        self.interfaces
            .iter()
            .flat_map(|i| &i.rings)
            .any(|r| r.deferred.is_some())
    }

    /// Rings (= workers) over all interfaces.
    pub fn ring_count(&self) -> usize {
        self.interfaces.iter().map(|i| i.rings.len()).sum()
    }

    /// Interface names, in the order of [`FrameMeta::iface`].
    pub fn interface_names(&self) -> Vec<String> {
        self.interfaces.iter().map(|i| i.name.clone()).collect()
    }

    /// Starts one worker thread per ring, each with its sink from `sinks` (one per ring, in
    /// [`Capture::ring_count`] order: interface by interface, worker by worker). Workers run
    /// until `stop` is set.
    pub fn start<S>(self, sinks: Vec<S>, stop: Arc<AtomicBool>) -> std::io::Result<Running<S>>
    where
        S: FrameSink + Send + 'static,
    {
        if sinks.len() != self.ring_count() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{} sinks for {} capture rings",
                    sinks.len(),
                    self.ring_count()
                ),
            ));
        }
        let mut sinks = sinks.into_iter();
        let mut counters_all = Vec::new();
        let mut handles = Vec::new();
        let mut interfaces = Vec::new();
        for (slot, iface) in self.interfaces.into_iter().enumerate() {
            let slot = slot as u16;
            let mut sockets = Vec::new();
            for ((w, rs), mut sink) in iface.rings.into_iter().enumerate().zip(&mut sinks) {
                sockets.push(Arc::clone(&rs.socket));
                let ring = rs
                    .ring
                    .map(&rs.socket)
                    .map_err(|e| std::io::Error::new(e.source.kind(), e.to_string()))?;
                let counters = Arc::new(WorkerCounters::default());
                let worker = Worker {
                    iface_name: iface.name.clone(),
                    iface: slot,
                    socket: rs.socket,
                    ring,
                    counters: Arc::clone(&counters),
                    stop: Arc::clone(&stop),
                    poll_timeout: self.poll_timeout,
                    deferred: rs.deferred,
                };
                let handle = std::thread::Builder::new()
                    .name(format!("scram-{}-{w}", iface.name))
                    .spawn(move || {
                        worker.run(&mut sink);
                        sink
                    })?;
                handles.push(handle);
                counters_all.push((slot, counters));
            }
            interfaces.push(InterfaceState {
                name: iface.name,
                ifindex: iface.ifindex,
                sockets,
                kernel: SocketStats::default(),
            });
        }
        Ok(Running {
            counters: counters_all,
            handles,
            interfaces,
            stop,
        })
    }
}

fn open_interface(
    name: &str,
    config: &CaptureConfig,
    map: bool,
) -> Result<OpenInterface, CaptureError> {
    let ifindex =
        nix::net::if_::if_nametoindex(name).map_err(|_| CaptureError::UnknownInterface {
            name: name.to_owned(),
            available: interface_names(),
        })?;
    let socket_err = |source| CaptureError::Socket {
        iface: name.to_owned(),
        source,
    };
    let mut rings = Vec::with_capacity(config.workers.max(1));
    let mut fanout_id = None;
    // Set when the link is down: the kernel forms no fanout group on a down link, so the first
    // socket captures alone and the others wait, unbound, to join once it is up.
    let mut deferred: Option<Arc<worker::Group>> = None;
    for w in 0..config.workers.max(1) {
        let socket = PacketSocket::open().map_err(|source| match source.errno() {
            Some(libc::EPERM) | Some(libc::EACCES) => CaptureError::Privilege {
                capability: "CAP_NET_RAW",
                source,
            },
            _ => socket_err(source),
        })?;
        socket.set_tpacket_v3().map_err(socket_err)?;
        let geometry = set_up_ring(&socket, name, &config.ring)?;
        let mut ring = Mapping::Unmapped {
            block_size: geometry.block_size as usize,
            block_count: geometry.block_count as usize,
        };
        if map {
            let mapped = ring.map(&socket).map_err(|source| CaptureError::Ring {
                iface: name.to_owned(),
                source,
            })?;
            ring = Mapping::Mapped(mapped);
        }
        if let Some(group) = &deferred {
            // Unbound, it receives nothing until it joins the group.
            rings.push(RingSocket {
                socket: Arc::new(socket),
                ring,
                deferred: Some(worker::Deferred::Join(Arc::clone(group))),
            });
            continue;
        }
        socket.bind(ifindex).map_err(socket_err)?;
        if config.promiscuous {
            socket.set_promiscuous(ifindex).map_err(socket_err)?;
        }
        let mut first_deferred = None;
        if config.workers > 1 {
            match fanout_id {
                None => match socket.create_fanout(config.fanout, config.fanout_defrag) {
                    Ok(id) => fanout_id = Some(id),
                    Err(e) if e.errno() == Some(libc::EINVAL) && w == 0 => {
                        // The kernel only lets running sockets form a group: the link is down.
                        tracing::warn!(
                            iface = name,
                            "{name} is down, so its rings cannot form a fanout group yet; one \
                             worker captures on it, and the others join when it comes up"
                        );
                        let group = Arc::new(worker::Group::new(
                            ifindex,
                            config.fanout,
                            config.fanout_defrag,
                            config.promiscuous,
                        ));
                        first_deferred = Some(worker::Deferred::Create(Arc::clone(&group)));
                        deferred = Some(group);
                    }
                    Err(e) => return Err(socket_err(e)),
                },
                Some(id) => socket
                    .join_fanout(id, config.fanout, config.fanout_defrag)
                    .map_err(socket_err)?,
            }
        }
        rings.push(RingSocket {
            socket: Arc::new(socket),
            ring,
            deferred: first_deferred,
        });
    }
    Ok(OpenInterface {
        name: name.to_owned(),
        ifindex,
        rings,
    })
}

/// Sets `PACKET_RX_RING`, halving the block count (then the block size) on ENOMEM until the
/// kernel agrees or the ring would be smaller than [`MIN_RING_BYTES`]: the geometry it agreed to.
fn set_up_ring(
    socket: &PacketSocket,
    iface: &str,
    wanted: &RingGeometry,
) -> Result<RingGeometry, CaptureError> {
    let mut geometry = *wanted;
    loop {
        match socket.set_rx_ring(&geometry) {
            Ok(()) => break,
            Err(e) if e.errno() == Some(libc::ENOMEM) => {
                let smaller = shrink(&geometry).filter(|g| g.bytes() >= MIN_RING_BYTES);
                match smaller {
                    Some(g) => {
                        tracing::warn!(
                            iface,
                            "kernel refused a {} KiB ring ({} x {} KiB); retrying with {} x {} KiB",
                            geometry.bytes() / 1024,
                            geometry.block_count,
                            geometry.block_size / 1024,
                            g.block_count,
                            g.block_size / 1024
                        );
                        geometry = g;
                    }
                    None => {
                        return Err(CaptureError::Ring {
                            iface: iface.to_owned(),
                            source: e,
                        })
                    }
                }
            }
            Err(e) => {
                return Err(CaptureError::Socket {
                    iface: iface.to_owned(),
                    source: e,
                })
            }
        }
    }
    if geometry != *wanted {
        tracing::warn!(
            iface,
            "capture ring on {iface} is {} KiB ({} x {} KiB), smaller than the {} KiB configured",
            geometry.bytes() / 1024,
            geometry.block_count,
            geometry.block_size / 1024,
            wanted.bytes() / 1024
        );
    }
    Ok(geometry)
}

/// The next smaller geometry to try: fewer blocks first (keeps frames-per-block), then smaller
/// blocks (down to one page and no smaller than a frame).
fn shrink(g: &RingGeometry) -> Option<RingGeometry> {
    if g.block_count > 2 {
        return Some(RingGeometry {
            block_count: g.block_count / 2,
            ..*g
        });
    }
    let half = g.block_size / 2;
    (half >= 4096 && half >= g.frame_size).then_some(RingGeometry {
        block_size: half,
        ..*g
    })
}

/// Names of the interfaces of this network namespace (for error messages).
pub fn interface_names() -> Vec<String> {
    nix::net::if_::if_nameindex()
        .map(|list| {
            list.iter()
                .map(|i| i.name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The interface of the default route (IPv4, then IPv6; lowest metric), asked over rtnetlink.
pub fn default_route_interface() -> Option<String> {
    match crate::netlink::route::default_route_interface() {
        Ok(name) => name,
        Err(e) => {
            tracing::warn!("looking up the default route: {e}");
            None
        }
    }
}

/// Counters a worker publishes once per block (relaxed atomics: written by one thread, read by
/// the control thread, no ordering needed between them).
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Frames handed to the sink.
    pub frames: AtomicU64,
    /// Bytes on the wire of those frames.
    pub bytes: AtomicU64,
    /// Blocks walked and given back.
    pub blocks: AtomicU64,
    /// Blocks whose layout was malformed (walk stopped early).
    pub bad_blocks: AtomicU64,
    /// Times the worker found its ring empty and waited.
    pub waits: AtomicU64,
    /// Blocks handed back before the kernel's retire timeout fired (the block was full).
    pub full_blocks: AtomicU64,
}

/// Totals for one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    /// Interface name.
    pub name: String,
    /// Frames handed to sinks by all workers of this interface.
    pub frames: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
    /// Blocks walked.
    pub blocks: u64,
    /// Malformed blocks.
    pub bad_blocks: u64,
    /// Kernel: frames that reached the sockets, dropped ones included.
    pub kernel_packets: u64,
    /// Kernel: frames dropped because a ring was full.
    pub kernel_drops: u64,
    /// Kernel: queue freezes.
    pub kernel_freezes: u64,
}

#[derive(Debug)]
struct InterfaceState {
    name: String,
    #[allow(dead_code, reason = "kept for diagnostics in Debug output")]
    ifindex: u32,
    sockets: Vec<Arc<PacketSocket>>,
    /// Kernel counters accumulated over every read (the kernel resets them on read).
    kernel: SocketStats,
}

/// Capture in progress.
#[derive(Debug)]
pub struct Running<S> {
    /// (interface slot, counters) per worker, in start order.
    counters: Vec<(u16, Arc<WorkerCounters>)>,
    handles: Vec<JoinHandle<S>>,
    interfaces: Vec<InterfaceState>,
    stop: Arc<AtomicBool>,
}

impl<S> Running<S> {
    /// Reads the kernel's counters of every socket (resetting them in the kernel) into the running
    /// totals and returns the totals per interface.
    pub fn stats(&mut self) -> Vec<InterfaceStats> {
        for iface in &mut self.interfaces {
            for socket in &iface.sockets {
                match socket.take_stats() {
                    Ok(s) => {
                        iface.kernel.packets += s.packets;
                        iface.kernel.drops += s.drops;
                        iface.kernel.freezes += s.freezes;
                    }
                    Err(e) => tracing::warn!(iface = %iface.name, "reading kernel counters: {e}"),
                }
            }
        }
        self.interfaces
            .iter()
            .enumerate()
            .map(|(slot, iface)| {
                let mut s = InterfaceStats {
                    name: iface.name.clone(),
                    kernel_packets: iface.kernel.packets,
                    kernel_drops: iface.kernel.drops,
                    kernel_freezes: iface.kernel.freezes,
                    ..Default::default()
                };
                for (_, c) in self
                    .counters
                    .iter()
                    .filter(|(i, _)| usize::from(*i) == slot)
                {
                    s.frames += c.frames.load(Ordering::Relaxed);
                    s.bytes += c.bytes.load(Ordering::Relaxed);
                    s.blocks += c.blocks.load(Ordering::Relaxed);
                    s.bad_blocks += c.bad_blocks.load(Ordering::Relaxed);
                }
                s
            })
            .collect()
    }

    /// True while every worker thread is alive.
    pub fn workers_alive(&self) -> bool {
        self.handles.iter().all(|h| !h.is_finished())
    }

    /// Each worker's blocks walked plus waits: grows while that worker makes progress, even on
    /// an idle link (a wait returns at least every poll timeout).
    pub fn progress(&self) -> Vec<u64> {
        self.counters
            .iter()
            .map(|(_, c)| c.blocks.load(Ordering::Relaxed) + c.waits.load(Ordering::Relaxed))
            .collect()
    }

    /// Asks the workers to stop, waits for them, reads the kernel counters a last time, and
    /// returns the final totals with each worker's sink (in start order).
    pub fn stop(mut self) -> (Vec<InterfaceStats>, Vec<S>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut sinks = Vec::with_capacity(self.handles.len());
        for h in std::mem::take(&mut self.handles) {
            match h.join() {
                Ok(sink) => sinks.push(sink),
                Err(_) => tracing::error!("a capture worker panicked"),
            }
        }
        let stats = self.stats();
        (stats, sinks)
    }
}

#[cfg(test)]
mod tests {
    //! The set-up paths that answer the kernel's refusals, scripted through `sys::fake`: no
    //! root, no refusing kernel needed.

    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::sys::fake::{self, Call};

    fn config(workers: usize) -> CaptureConfig {
        CaptureConfig {
            interfaces: vec!["lo".into()],
            workers,
            ..CaptureConfig::default()
        }
    }

    /// Opens with `script`, returning what was opened and every call made.
    fn open(
        config: &CaptureConfig,
        mut script: impl FnMut(Call) -> fake::Answer + 'static,
    ) -> (Result<Capture, CaptureError>, Vec<Call>) {
        let calls = Rc::new(RefCell::new(Vec::new()));
        let log = Rc::clone(&calls);
        let result = fake::with(
            move |call| {
                log.borrow_mut().push(call);
                script(call)
            },
            || Capture::open(config),
        );
        let calls = calls.borrow().clone();
        (result, calls)
    }

    fn geometries(c: &Capture) -> Vec<(usize, usize)> {
        c.interfaces[0]
            .rings
            .iter()
            .map(|r| {
                let (size, count) = r.ring.geometry();
                (count, size)
            })
            .collect()
    }

    #[test]
    fn a_refused_ring_is_retried_smaller_until_the_kernel_agrees() {
        // The kernel finds at most 4 MiB: 32 x 1 MiB -> 16 -> 8 -> 4 x 1 MiB.
        let (c, calls) = open(&config(2), |call| match call {
            Call::RxRing(g) if g.bytes() > 4 << 20 => Err(libc::ENOMEM),
            Call::CreateFanout => Ok(7),
            _ => Ok(0),
        });
        let c = c.expect("opens with a smaller ring");
        assert_eq!(geometries(&c), [(4, 1 << 20), (4, 1 << 20)]);
        assert!(calls.contains(&Call::JoinFanout(7)), "{calls:?}");
        // The ring is set before bind, so no frame of another interface enters it.
        let rx = calls.iter().position(|c| matches!(c, Call::RxRing(_)));
        let bind = calls.iter().position(|c| matches!(c, Call::Bind(_)));
        assert!(rx < bind, "{calls:?}");
    }

    #[test]
    fn rings_opened_for_handoff_are_set_up_but_not_mapped_and_hand_over_their_geometry() {
        let calls = Rc::new(RefCell::new(Vec::new()));
        let log = Rc::clone(&calls);
        let c = fake::with(
            move |call| {
                log.borrow_mut().push(call);
                match call {
                    Call::RxRing(g) if g.bytes() > 8 << 20 => Err(libc::ENOMEM),
                    Call::CreateFanout => Ok(7),
                    _ => Ok(0),
                }
            },
            || Capture::open_for_handoff(&config(2)),
        )
        .expect("opens");
        let calls = calls.borrow().clone();
        // 32, 16 and 8 MiB asked for, for each of the two rings.
        assert_eq!(
            calls
                .iter()
                .filter(|c| matches!(c, Call::RxRing(_)))
                .count(),
            6
        );
        assert!(
            !calls.iter().any(|c| matches!(c, Call::Map { .. })),
            "{calls:?}"
        );
        let handed: Vec<_> = c
            .handoff()
            .iter()
            .map(|h| (h.block_count, h.block_size))
            .collect();
        assert_eq!(handed, [(8, 1 << 20), (8, 1 << 20)]);
        // Opened to be read here, the same rings are mapped.
        let (_, calls) = open(&config(2), |call| match call {
            Call::CreateFanout => Ok(7),
            _ => Ok(0),
        });
        assert_eq!(
            calls
                .iter()
                .filter(|c| matches!(c, Call::Map { .. }))
                .count(),
            2,
            "{calls:?}"
        );
    }

    #[test]
    fn blocks_shrink_once_the_count_is_down_to_two() {
        let (c, _) = open(&config(1), |call| match call {
            Call::RxRing(g) if g.bytes() > 512 << 10 => Err(libc::ENOMEM),
            _ => Ok(0),
        });
        assert_eq!(geometries(&c.expect("opens")), [(2, 256 << 10)]);
    }

    #[test]
    fn a_ring_below_the_floor_is_a_ring_error() {
        let (c, calls) = open(&config(1), |call| match call {
            Call::RxRing(_) => Err(libc::ENOMEM),
            _ => Ok(0),
        });
        match c {
            Err(CaptureError::Ring { iface, source }) => {
                assert_eq!(iface, "lo");
                assert_eq!(source.errno(), Some(libc::ENOMEM));
            }
            other => panic!("{other:?}"),
        }
        let last = calls.iter().rev().find_map(|c| match c {
            Call::RxRing(g) => Some(*g),
            _ => None,
        });
        assert_eq!(last.map(|g| g.bytes()), Some(MIN_RING_BYTES));
    }

    #[test]
    fn a_down_link_opens_every_ring_and_binds_only_the_first() {
        let (c, calls) = open(&config(4), |call| match call {
            Call::CreateFanout => Err(libc::EINVAL),
            _ => Ok(0),
        });
        let c = c.expect("opens");
        // Every worker's ring exists (their shards are there to be drained); only the first is
        // bound, the others bind and join the group when the link comes up.
        assert_eq!(c.ring_count(), 4);
        assert_eq!(
            calls.iter().filter(|c| **c == Call::Socket).count(),
            4,
            "{calls:?}"
        );
        assert_eq!(
            calls.iter().filter(|c| matches!(c, Call::Bind(_))).count(),
            1,
            "{calls:?}"
        );
    }

    #[test]
    fn other_refusals_are_typed_errors() {
        let (c, _) = open(&config(2), |call| match call {
            Call::JoinFanout(_) => Err(libc::EBUSY),
            Call::CreateFanout => Ok(3),
            _ => Ok(0),
        });
        assert!(
            matches!(c, Err(CaptureError::Socket { ref source, .. }) if source.errno() == Some(libc::EBUSY)),
            "{c:?}"
        );
        let (c, _) = open(&config(1), |call| match call {
            Call::Socket => Err(libc::EPERM),
            _ => Ok(0),
        });
        assert!(
            matches!(
                c,
                Err(CaptureError::Privilege {
                    capability: "CAP_NET_RAW",
                    ..
                })
            ),
            "{c:?}"
        );
        let (c, _) = open(&config(1), |call| match call {
            Call::Promiscuous(_) => Err(libc::EPERM),
            _ => Ok(0),
        });
        assert!(c.is_ok(), "promiscuous mode is off by default: {c:?}");
    }
}
