//! AF_PACKET sockets for TPACKET_V3 capture.
//!
//! The socket is created with protocol 0, so it receives nothing until [`PacketSocket::bind`]
//! names both the interface and ETH_P_ALL: no frame from another interface can slip into the ring
//! between `socket()` and `bind()`.

use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::fake::{self, Call};
use super::SyscallError;

/// `TPACKET_V3` from `enum tpacket_versions`.
const TPACKET_V3: libc::c_int = 2;
/// `TP_FT_REQ_FILL_RXHASH`: ask the kernel to fill `tp_rxhash` in each frame header.
const TP_FT_REQ_FILL_RXHASH: u32 = 1;

/// How a fanout group spreads frames over its member sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutKind {
    /// By flow hash (both directions of a flow land on the same member).
    Hash,
    /// Round robin.
    LoadBalance,
    /// By the CPU that received the frame.
    Cpu,
}

impl FanoutKind {
    fn bits(self) -> u32 {
        match self {
            FanoutKind::Hash => libc::PACKET_FANOUT_HASH,
            FanoutKind::LoadBalance => libc::PACKET_FANOUT_LB,
            FanoutKind::Cpu => libc::PACKET_FANOUT_CPU,
        }
    }
}

/// Geometry of a TPACKET_V3 receive ring, as handed to `PACKET_RX_RING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingGeometry {
    /// Bytes per block; a multiple of the page size.
    pub block_size: u32,
    /// Number of blocks.
    pub block_count: u32,
    /// Nominal frame size (the kernel checks it; V3 packs frames of any size into blocks).
    pub frame_size: u32,
    /// Milliseconds after which the kernel retires a partly filled block to user space.
    pub retire_timeout_ms: u32,
}

impl RingGeometry {
    /// Total bytes of the mapping.
    pub fn bytes(&self) -> usize {
        self.block_size as usize * self.block_count as usize
    }
}

/// Kernel counters of one socket since the previous read (the kernel resets them on every read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Frames that reached the socket, including those dropped.
    pub packets: u64,
    /// Frames dropped because the ring had no free block.
    pub drops: u64,
    /// Times the queue froze because the ring was full.
    pub freezes: u64,
}

/// What a wait on the socket ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Something to read (or the timeout passed): look at the ring again.
    Ready,
    /// The socket reported a pending error, now cleared (ENETDOWN when the interface went down).
    Error(i32),
}

/// An AF_PACKET raw socket.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// A packet socket another process opened and handed over (privilege separation's parser
    /// adopts the rings the privileged part opened); `fd` must be one.
    pub fn from_owned(fd: OwnedFd) -> Self {
        PacketSocket { fd }
    }

    /// Opens a raw AF_PACKET socket that receives nothing until bound. Needs CAP_NET_RAW.
    pub fn open() -> Result<Self, SyscallError> {
        if let Some(answer) = fake::intercept(Call::Socket, "socket(AF_PACKET)") {
            // A scripted socket: a descriptor that is not a packet socket, never read.
            answer?;
            let null = std::fs::File::open("/dev/null").map_err(|source| SyscallError {
                call: "socket(AF_PACKET)",
                source,
            })?;
            return Ok(PacketSocket { fd: null.into() });
        }
        // SAFETY: socket(2) takes no pointers; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(SyscallError::last("socket(AF_PACKET)"));
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PacketSocket { fd })
    }

    fn set_option<T: Copy>(
        &self,
        name: libc::c_int,
        call: &'static str,
        value: &T,
    ) -> Result<(), SyscallError> {
        // SAFETY: `value` points to a live, initialised `T` of exactly `size_of::<T>()` bytes for
        // the duration of the call; the kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                name,
                (value as *const T).cast(),
                mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(SyscallError::last(call));
        }
        Ok(())
    }

    fn get_option<T: Copy + Default>(
        &self,
        name: libc::c_int,
        call: &'static str,
    ) -> Result<T, SyscallError> {
        let mut value = T::default();
        let mut len = mem::size_of::<T>() as libc::socklen_t;
        // SAFETY: `value` is a live `T` and `len` holds its size; the kernel writes at most `len`
        // bytes and updates `len`. `T` is plain old data, so any bytes written form a valid `T`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                name,
                (&mut value as *mut T).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(SyscallError::last(call));
        }
        Ok(value)
    }

    /// Selects TPACKET_V3 (block-based ring).
    pub fn set_tpacket_v3(&self) -> Result<(), SyscallError> {
        if let Some(r) = fake::intercept(Call::Version, "setsockopt(PACKET_VERSION)") {
            return r.map(drop);
        }
        self.set_option(
            libc::PACKET_VERSION,
            "setsockopt(PACKET_VERSION)",
            &TPACKET_V3,
        )
    }

    /// Asks the kernel for a receive ring of `geometry`. Fails with ENOMEM when the kernel cannot
    /// find that much contiguous memory; the caller may retry smaller.
    pub fn set_rx_ring(&self, geometry: &RingGeometry) -> Result<(), SyscallError> {
        if let Some(r) = fake::intercept(Call::RxRing(*geometry), "setsockopt(PACKET_RX_RING)") {
            return r.map(drop);
        }
        let frames_per_block = geometry.block_size / geometry.frame_size.max(1);
        let req = libc::tpacket_req3 {
            tp_block_size: geometry.block_size,
            tp_block_nr: geometry.block_count,
            tp_frame_size: geometry.frame_size,
            tp_frame_nr: frames_per_block * geometry.block_count,
            tp_retire_blk_tov: geometry.retire_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: TP_FT_REQ_FILL_RXHASH,
        };
        self.set_option(libc::PACKET_RX_RING, "setsockopt(PACKET_RX_RING)", &req)
    }

    /// Binds to `ifindex`, receiving every protocol (ETH_P_ALL).
    pub fn bind(&self, ifindex: u32) -> Result<(), SyscallError> {
        if let Some(r) = fake::intercept(Call::Bind(ifindex), "bind(AF_PACKET)") {
            return r.map(drop);
        }
        self.bind_protocol(ifindex, libc::ETH_P_ALL as u16)
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Binds to `ifindex` for sending only: with protocol 0 the socket receives nothing.
    pub fn bind_send_only(&self, ifindex: u32) -> Result<(), SyscallError> {
        self.bind_protocol(ifindex, 0)
    }

    fn bind_protocol(&self, ifindex: u32, protocol: u16) -> Result<(), SyscallError> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol.to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a live sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(SyscallError::last("bind(AF_PACKET)"));
        }
        Ok(())
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Sends one whole frame (Ethernet header included) on the bound interface. Used to inject
    /// traffic in tests and benchmarks; the daemon itself never sends.
    pub fn send(&self, frame: &[u8]) -> Result<usize, SyscallError> {
        // SAFETY: `frame` is a live slice; the kernel reads at most `frame.len()` bytes from it.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if rc < 0 {
            return Err(SyscallError::last("send(AF_PACKET)"));
        }
        Ok(rc as usize)
    }

    /// Creates a fanout group with a kernel-chosen unique id and joins it; returns the id for the
    /// other members. Needs the socket bound to an interface that is up.
    pub fn create_fanout(&self, kind: FanoutKind, defrag: bool) -> Result<u16, SyscallError> {
        if let Some(r) = fake::intercept(Call::CreateFanout, "setsockopt(PACKET_FANOUT)") {
            return r.map(|id| id as u16);
        }
        let flags = libc::PACKET_FANOUT_FLAG_UNIQUEID | defrag_flag(defrag);
        let arg = ((kind.bits() | flags) << 16) as libc::c_int;
        self.set_option(libc::PACKET_FANOUT, "setsockopt(PACKET_FANOUT)", &arg)?;
        let got: u32 = self.get_option(libc::PACKET_FANOUT, "getsockopt(PACKET_FANOUT)")?;
        Ok((got & 0xffff) as u16)
    }

    /// Joins the fanout group `id` created by [`PacketSocket::create_fanout`].
    pub fn join_fanout(&self, id: u16, kind: FanoutKind, defrag: bool) -> Result<(), SyscallError> {
        if let Some(r) = fake::intercept(Call::JoinFanout(id), "setsockopt(PACKET_FANOUT)") {
            return r.map(drop);
        }
        let arg = (u32::from(id) | ((kind.bits() | defrag_flag(defrag)) << 16)) as libc::c_int;
        self.set_option(libc::PACKET_FANOUT, "setsockopt(PACKET_FANOUT)", &arg)
    }

    /// Puts the interface in promiscuous mode for as long as this socket lives (the kernel counts
    /// memberships and undoes it when the last one closes).
    pub fn set_promiscuous(&self, ifindex: u32) -> Result<(), SyscallError> {
        if let Some(r) = fake::intercept(
            Call::Promiscuous(ifindex),
            "setsockopt(PACKET_ADD_MEMBERSHIP)",
        ) {
            return r.map(drop);
        }
        let mreq = libc::packet_mreq {
            mr_ifindex: ifindex as i32,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        self.set_option(
            libc::PACKET_ADD_MEMBERSHIP,
            "setsockopt(PACKET_ADD_MEMBERSHIP)",
            &mreq,
        )
    }

    /// Reads and resets the kernel's counters for this socket.
    pub fn take_stats(&self) -> Result<SocketStats, SyscallError> {
        let s: TpacketStatsV3 =
            self.get_option(libc::PACKET_STATISTICS, "getsockopt(PACKET_STATISTICS)")?;
        Ok(SocketStats {
            packets: u64::from(s.tp_packets),
            drops: u64::from(s.tp_drops),
            freezes: u64::from(s.tp_freeze_q_cnt),
        })
    }

    /// Waits up to `timeout` for the ring to have a block for user space, or for an error.
    pub fn wait(&self, timeout: Duration) -> Result<Readiness, SyscallError> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Readiness::Ready),
            Err(e) => {
                return Err(SyscallError {
                    call: "poll",
                    source: e.into(),
                })
            }
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if revents.contains(PollFlags::POLLERR) {
            let err =
                nix::sys::socket::getsockopt(&self.fd, nix::sys::socket::sockopt::SocketError)
                    .map_err(|e| SyscallError {
                        call: "getsockopt(SO_ERROR)",
                        source: e.into(),
                    })?;
            return Ok(Readiness::Error(err));
        }
        Ok(Readiness::Ready)
    }
}

impl From<PacketSocket> for OwnedFd {
    fn from(s: PacketSocket) -> OwnedFd {
        s.fd
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn defrag_flag(defrag: bool) -> u32 {
    if defrag {
        libc::PACKET_FANOUT_FLAG_DEFRAG
    } else {
        0
    }
}

/// `struct tpacket_stats_v3`, declared here so it can derive `Default` for [`get_option`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct TpacketStatsV3 {
    tp_packets: u32,
    tp_drops: u32,
    tp_freeze_q_cnt: u32,
}
