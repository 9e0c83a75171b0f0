//! Walking the frames of one TPACKET_V3 block.
//!
//! A block is `struct tpacket_block_desc` followed by `num_pkts` frames, each a `tpacket3_hdr`
//! (then a `sockaddr_ll`) and the frame bytes at `tp_mac`, chained by `tp_next_offset`. The walker
//! reads the block as plain bytes: every offset and length is checked against the block before it
//! is used, so a corrupt block (or a synthetic one in a test) yields a [`BlockError`] naming what
//! was wrong and where, never a panic or an out-of-bounds read. It never allocates.

/// `struct tpacket_block_desc` with its `tpacket_hdr_v1`, as laid out by the kernel.
mod bd {
    pub const NUM_PKTS: usize = 12;
    pub const OFFSET_TO_FIRST_PKT: usize = 16;
    #[cfg_attr(not(any(test, feature = "test-support")), allow(dead_code))]
    pub const BLK_LEN: usize = 20;
    pub const SEQ_NUM: usize = 24;
    /// Size of the descriptor; the first frame starts at or after it.
    pub const LEN: usize = 48;
}

/// `struct tpacket3_hdr` followed by `struct sockaddr_ll`.
mod ph {
    pub const NEXT_OFFSET: usize = 0;
    pub const SEC: usize = 4;
    pub const NSEC: usize = 8;
    pub const SNAPLEN: usize = 12;
    pub const LEN: usize = 16;
    pub const STATUS: usize = 20;
    pub const MAC: usize = 24;
    pub const RXHASH: usize = 28;
    pub const VLAN_TCI: usize = 32;
    pub const VLAN_TPID: usize = 36;
    /// `sockaddr_ll` starts at TPACKET_ALIGN(sizeof(tpacket3_hdr)).
    pub const SLL: usize = 48;
    pub const SLL_IFINDEX: usize = SLL + 4;
    pub const SLL_PKTTYPE: usize = SLL + 10;
    /// Bytes of header the walker reads (through `sll_pkttype`).
    pub const MIN: usize = SLL + 12;
}

/// `TP_STATUS_VLAN_VALID`: `tp_vlan_tci` holds a tag the kernel stripped from the frame.
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// `TP_STATUS_VLAN_TPID_VALID`: `tp_vlan_tpid` holds that tag's TPID.
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// An 802.1Q/802.1ad tag the kernel removed from the frame and reported in the ring header.
///
/// Aligned to 4 bytes, so that `Option<VlanTag>` is 8 and the packet path reads a frame's
/// tag, or that it has none, in one load rather than assembling it from two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(align(4))]
pub struct VlanTag {
    /// Tag control information: priority (3 bits), DEI (1 bit), VLAN id (12 bits).
    pub tci: u16,
    /// Tag protocol identifier: 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    pub tpid: u16,
}

impl VlanTag {
    /// The 12-bit VLAN id.
    pub fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }
}

/// Where a frame came from relative to this host (`sll_pkttype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Addressed to this host.
    Host,
    /// Broadcast.
    Broadcast,
    /// Multicast.
    Multicast,
    /// Addressed to another host (seen in promiscuous mode).
    OtherHost,
    /// Sent by this host.
    Outgoing,
    /// Anything else the kernel reports.
    Other(u8),
}

impl Direction {
    fn from_pkttype(t: u8) -> Self {
        match t {
            0 => Direction::Host,
            1 => Direction::Broadcast,
            2 => Direction::Multicast,
            3 => Direction::OtherHost,
            4 => Direction::Outgoing,
            other => Direction::Other(other),
        }
    }
}

/// What the ring says about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Receive time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Length on the wire.
    pub wire_len: u32,
    /// Bytes captured (the slice handed over).
    pub cap_len: u32,
    /// Outer tag moved into the ring header by the kernel, if any.
    pub vlan: Option<VlanTag>,
    /// Kernel interface index.
    pub ifindex: u32,
    /// Position of the interface in the capture's interface list.
    pub iface: u16,
    /// Direction relative to this host.
    pub direction: Direction,
    /// The kernel's flow hash (0 when it computed none).
    pub rxhash: u32,
}

impl FrameMeta {
    /// A frame of nothing (fills the unused places of a [`Batch`]).
    pub const EMPTY: FrameMeta = FrameMeta {
        ts_ns: 0,
        wire_len: 0,
        cap_len: 0,
        vlan: None,
        ifindex: 0,
        iface: 0,
        direction: Direction::Other(0),
        rxhash: 0,
    };
}

/// Frames handed to a sink together: up to this many of one block.
pub const BATCH: usize = 16;

/// Up to [`BATCH`] frames of one block, in ring order, borrowed from the block: what lets a sink
/// look ahead (start loading the state of every frame, then process them one by one) instead of
/// waiting for memory at each frame. Fixed in size, on the worker's stack.
#[derive(Debug)]
pub struct Batch<'b> {
    frames: [&'b [u8]; BATCH],
    metas: [FrameMeta; BATCH],
    len: usize,
}

impl Default for Batch<'_> {
    fn default() -> Self {
        Batch {
            frames: [&[]; BATCH],
            metas: [FrameMeta::EMPTY; BATCH],
            len: 0,
        }
    }
}

impl<'b> Batch<'b> {
    /// Adds a frame; false (and nothing added) when the batch is full.
    #[inline]
    pub fn push(&mut self, frame: &'b [u8], meta: &FrameMeta) -> bool {
        if self.len == BATCH {
            return false;
        }
        self.frames[self.len] = frame;
        self.metas[self.len] = *meta;
        self.len += 1;
        true
    }

    /// Adds a frame, first handing the batch to `sink` when it is full.
    #[inline]
    pub fn feed<S: super::FrameSink + ?Sized>(
        &mut self,
        frame: &'b [u8],
        meta: &FrameMeta,
        sink: &mut S,
    ) {
        if self.is_full() {
            self.flush(sink);
        }
        let added = self.push(frame, meta);
        debug_assert!(added, "a flushed batch has room");
    }

    /// Hands what it holds to `sink` and empties it.
    #[inline]
    pub fn flush<S: super::FrameSink + ?Sized>(&mut self, sink: &mut S) {
        if !self.is_empty() {
            sink.frames(self);
        }
        self.clear();
    }

    /// Frames held, never more than [`BATCH`] (said here, so that a sink's loops over arrays of
    /// `BATCH` index them without bounds checks).
    #[inline]
    pub fn len(&self) -> usize {
        self.len.min(BATCH)
    }

    /// True when it holds no frame.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when it holds [`BATCH`] frames.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == BATCH
    }

    /// Empties it.
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Frame `i` and its ring metadata (`i < len()`).
    #[inline]
    pub fn get(&self, i: usize) -> (&'b [u8], &FrameMeta) {
        (self.frames[i], &self.metas[i])
    }

    /// The frames' metadata, in order.
    #[inline]
    pub fn metas(&self) -> &[FrameMeta] {
        &self.metas[..self.len()]
    }
}

/// What was wrong with a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The block is shorter than its descriptor.
    #[error("block of {len} bytes is shorter than its {}-byte descriptor", bd::LEN)]
    Short {
        /// Block length.
        len: usize,
    },
    /// A frame header lies (partly) outside the block.
    #[error("frame {frame} header at offset {offset} runs past the block end ({len})")]
    HeaderOutside {
        /// Index of the frame in the block.
        frame: u32,
        /// Offset of its header.
        offset: usize,
        /// Block length.
        len: usize,
    },
    /// A frame's bytes lie (partly) outside the block.
    #[error("frame {frame} data at offset {offset}+{snaplen} runs past the block end ({len})")]
    DataOutside {
        /// Index of the frame in the block.
        frame: u32,
        /// Offset of its data.
        offset: usize,
        /// Captured length.
        snaplen: usize,
        /// Block length.
        len: usize,
    },
    /// A frame that is not the last has no successor.
    #[error("frame {frame} of {num_pkts} has next offset 0")]
    ChainBroken {
        /// Index of the frame in the block.
        frame: u32,
        /// Frames the descriptor announced.
        num_pkts: u32,
    },
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// The kernel's sequence number of a block (increments by one per block handed over).
pub fn block_seq(block: &[u8]) -> Option<u64> {
    u64_at(block, bd::SEQ_NUM)
}

/// How far ahead of the frame it is at [`walk_block`] has asked for the block's bytes.
///
/// The kernel wrote the block on another core, so each line's first read waits for it, and
/// the processor's own prefetcher stops at every 4 KiB page: with the mix of veth.sh's
/// profile (8 frames a page), the first read of each frame's header was most of the walk's
/// time. Asking for every line of the next 4 KiB as the walk goes, whatever the frames' sizes,
/// has them here when the walk and the sink's decoder get there: a page is 8 frames of the mix
/// and 25 of 64-byte frames, more work than a line takes to come.
const AHEAD_BYTES: usize = 4096;

/// A cache line.
const LINE: usize = 64;

/// Calls `on_frame` for every frame of `block`, in order, and returns how many there were.
///
/// Frames before a malformation are delivered; the error says where the walk stopped.
pub fn walk_block<'b, F>(block: &'b [u8], iface: u16, mut on_frame: F) -> Result<u32, BlockError>
where
    F: FnMut(&'b [u8], &FrameMeta),
{
    let len = block.len();
    let short = BlockError::Short { len };
    let num_pkts = u32_at(block, bd::NUM_PKTS).ok_or(short)?;
    let mut offset = u32_at(block, bd::OFFSET_TO_FIRST_PKT).ok_or(short)? as usize;
    // The block's bytes asked for so far (the line holding each offset below it).
    let mut asked = offset;
    for frame in 0..num_pkts {
        let header_outside = BlockError::HeaderOutside { frame, offset, len };
        if offset < bd::LEN {
            return Err(header_outside);
        }
        let hdr = block
            .get(offset..offset.saturating_add(ph::MIN))
            .ok_or(header_outside)?;
        // The header slice is ph::MIN bytes long, so every read below is in bounds; `?` on
        // `header_outside` only documents that.
        let next = u32_at(hdr, ph::NEXT_OFFSET).ok_or(header_outside)? as usize;
        let sec = u32_at(hdr, ph::SEC).ok_or(header_outside)?;
        let nsec = u32_at(hdr, ph::NSEC).ok_or(header_outside)?;
        let snaplen = u32_at(hdr, ph::SNAPLEN).ok_or(header_outside)?;
        let wire_len = u32_at(hdr, ph::LEN).ok_or(header_outside)?;
        let status = u32_at(hdr, ph::STATUS).ok_or(header_outside)?;
        let mac = u16_at(hdr, ph::MAC).ok_or(header_outside)? as usize;
        let rxhash = u32_at(hdr, ph::RXHASH).ok_or(header_outside)?;
        let tci = u32_at(hdr, ph::VLAN_TCI).ok_or(header_outside)?;
        let tpid = u16_at(hdr, ph::VLAN_TPID).ok_or(header_outside)?;
        let ifindex = u32_at(hdr, ph::SLL_IFINDEX).ok_or(header_outside)?;
        let pkttype = *hdr.get(ph::SLL_PKTTYPE).ok_or(header_outside)?;

        let until = offset.saturating_add(AHEAD_BYTES).min(len);
        while asked < until {
            crate::sys::cpu::prefetch_ptr(block.as_ptr().wrapping_add(asked));
            asked += LINE;
        }
        let data_start = offset.saturating_add(mac);
        let data = block
            .get(data_start..data_start.saturating_add(snaplen as usize))
            .ok_or(BlockError::DataOutside {
                frame,
                offset: data_start,
                snaplen: snaplen as usize,
                len,
            })?;
        let vlan = (status & TP_STATUS_VLAN_VALID != 0).then_some(VlanTag {
            tci: tci as u16,
            tpid: if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                tpid
            } else {
                0x8100
            },
        });
        let meta = FrameMeta {
            ts_ns: u64::from(sec) * 1_000_000_000 + u64::from(nsec),
            wire_len,
            cap_len: snaplen,
            vlan,
            ifindex,
            iface,
            direction: Direction::from_pkttype(pkttype),
            rxhash,
        };
        on_frame(data, &meta);

        if frame + 1 < num_pkts {
            if next == 0 {
                return Err(BlockError::ChainBroken { frame, num_pkts });
            }
            offset = offset.saturating_add(next);
        }
    }
    Ok(num_pkts)
}

/// Test and benchmark support: block images with the kernel's layout.
#[cfg(any(test, feature = "test-support"))]
mod builder {
    use super::*;

    /// Builds block images with the kernel's layout, for tests and benchmarks that drive the walker
    /// and the ring without a socket (see [`crate::sys::ring::Ring::publish`]).
    #[derive(Debug)]
    pub struct BlockBuilder {
        image: Vec<u8>,
        num_pkts: u32,
        last_header: Option<usize>,
        block_size: usize,
    }

    /// Alignment of frames within a block (`TPACKET_ALIGNMENT`).
    const ALIGN: usize = 16;
    /// Where the frame bytes start relative to the frame header, as the kernel lays it out for an
    /// Ethernet device (header, sockaddr_ll, padding so the network header is 16-byte aligned).
    pub(super) const MAC_OFFSET: usize = 82;

    impl BlockBuilder {
        /// An empty block of `block_size` bytes with sequence number `seq`.
        pub fn new(block_size: usize, seq: u64) -> Self {
            let mut image = vec![0; bd::LEN];
            image[0..4].copy_from_slice(&1u32.to_ne_bytes()); // TPACKET_V3's block version
            image[bd::OFFSET_TO_FIRST_PKT..bd::OFFSET_TO_FIRST_PKT + 4]
                .copy_from_slice(&(bd::LEN as u32).to_ne_bytes());
            image[bd::SEQ_NUM..bd::SEQ_NUM + 8].copy_from_slice(&seq.to_ne_bytes());
            BlockBuilder {
                image,
                num_pkts: 0,
                last_header: None,
                block_size,
            }
        }

        /// Appends a frame; returns false (block unchanged) when it does not fit.
        pub fn push(&mut self, frame: &[u8], meta: &FrameMeta) -> bool {
            let start = self.image.len().next_multiple_of(ALIGN);
            let end = start + MAC_OFFSET + frame.len();
            if end > self.block_size {
                return false;
            }
            self.image.resize(end, 0);
            let h = &mut self.image[start..];
            let mut put =
                |off: usize, bytes: &[u8]| h[off..off + bytes.len()].copy_from_slice(bytes);
            put(
                ph::SEC,
                &((meta.ts_ns / 1_000_000_000) as u32).to_ne_bytes(),
            );
            put(
                ph::NSEC,
                &((meta.ts_ns % 1_000_000_000) as u32).to_ne_bytes(),
            );
            put(ph::SNAPLEN, &(frame.len() as u32).to_ne_bytes());
            put(ph::LEN, &meta.wire_len.to_ne_bytes());
            let mut status = TP_STATUS_USER_FLAG;
            if let Some(tag) = meta.vlan {
                status |= TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID;
                put(ph::VLAN_TCI, &u32::from(tag.tci).to_ne_bytes());
                put(ph::VLAN_TPID, &tag.tpid.to_ne_bytes());
            }
            put(ph::STATUS, &status.to_ne_bytes());
            put(ph::MAC, &(MAC_OFFSET as u16).to_ne_bytes());
            put(ph::RXHASH, &meta.rxhash.to_ne_bytes());
            put(ph::SLL, &(libc::AF_PACKET as u16).to_ne_bytes());
            put(ph::SLL_IFINDEX, &meta.ifindex.to_ne_bytes());
            put(ph::SLL_PKTTYPE, &[pkttype(meta.direction)]);
            put(MAC_OFFSET, frame);
            if let Some(prev) = self.last_header {
                let next = (start - prev) as u32;
                self.image[prev..prev + 4].copy_from_slice(&next.to_ne_bytes());
            }
            self.last_header = Some(start);
            self.num_pkts += 1;
            true
        }

        /// Number of frames pushed.
        pub fn len(&self) -> u32 {
            self.num_pkts
        }

        /// True when no frame was pushed.
        pub fn is_empty(&self) -> bool {
            self.num_pkts == 0
        }

        /// The finished block image (descriptor counts filled in).
        pub fn finish(mut self) -> Vec<u8> {
            let n = self.num_pkts.to_ne_bytes();
            self.image[bd::NUM_PKTS..bd::NUM_PKTS + 4].copy_from_slice(&n);
            let blk_len = (self.image.len() as u32).to_ne_bytes();
            self.image[bd::BLK_LEN..bd::BLK_LEN + 4].copy_from_slice(&blk_len);
            self.image
        }
    }

    /// Frame status bit the kernel sets on each frame it hands over.
    const TP_STATUS_USER_FLAG: u32 = 1;

    fn pkttype(d: Direction) -> u8 {
        match d {
            Direction::Host => 0,
            Direction::Broadcast => 1,
            Direction::Multicast => 2,
            Direction::OtherHost => 3,
            Direction::Outgoing => 4,
            Direction::Other(t) => t,
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
pub use builder::BlockBuilder;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::ring::Ring;

    fn meta(i: u32) -> FrameMeta {
        FrameMeta {
            ts_ns: 1_700_000_000_000_000_000 + u64::from(i),
            wire_len: 60 + i,
            cap_len: 60 + i,
            vlan: i.is_multiple_of(3).then_some(VlanTag {
                tci: 100 + i as u16,
                tpid: 0x88a8,
            }),
            ifindex: 7,
            iface: 0,
            direction: if i.is_multiple_of(2) {
                Direction::Host
            } else {
                Direction::Outgoing
            },
            rxhash: i * 31,
        }
    }

    fn frame(i: u32) -> Vec<u8> {
        (0..60 + i).map(|b| (b as u8) ^ (i as u8)).collect()
    }

    #[test]
    fn walks_every_frame_with_its_metadata() {
        let mut b = BlockBuilder::new(1 << 16, 9);
        for i in 0..50 {
            assert!(b.push(&frame(i), &meta(i)));
        }
        let image = b.finish();
        let mut seen = Vec::new();
        let n = walk_block(&image, 0, |f, m| seen.push((f.to_vec(), *m))).expect("valid block");
        assert_eq!(n, 50);
        for (i, (f, m)) in seen.into_iter().enumerate() {
            assert_eq!(f, frame(i as u32));
            assert_eq!(m, meta(i as u32));
        }
        assert_eq!(block_seq(&image), Some(9));
    }

    #[test]
    fn empty_block_has_no_frames() {
        let image = BlockBuilder::new(4096, 0).finish();
        assert_eq!(
            walk_block(&image, 0, |_, _| panic!("no frame expected")),
            Ok(0)
        );
    }

    #[test]
    fn builder_refuses_frames_that_do_not_fit() {
        let mut b = BlockBuilder::new(4096, 0);
        let big = vec![0u8; 4000];
        assert!(!b.push(&big, &meta(1)));
        assert!(b.push(&big[..1000], &meta(1)));
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let mut b = BlockBuilder::new(4096, 0);
        b.push(&frame(0), &meta(0));
        b.push(&frame(1), &meta(1));
        let good = b.finish();

        // Too short to hold the descriptor.
        assert!(matches!(
            walk_block(&good[..10], 0, |_, _| {}),
            Err(BlockError::Short { .. })
        ));
        // More frames announced than chained.
        let mut bad = good.clone();
        bad[bd::NUM_PKTS..bd::NUM_PKTS + 4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(matches!(
            walk_block(&bad, 0, |_, _| {}),
            Err(BlockError::ChainBroken { frame: 1, .. })
        ));
        // First frame pointing outside the block.
        let mut bad = good.clone();
        bad[bd::OFFSET_TO_FIRST_PKT..bd::OFFSET_TO_FIRST_PKT + 4]
            .copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(matches!(
            walk_block(&bad, 0, |_, _| {}),
            Err(BlockError::HeaderOutside { .. })
        ));
        // First frame overlapping the descriptor.
        let mut bad = good.clone();
        bad[bd::OFFSET_TO_FIRST_PKT..bd::OFFSET_TO_FIRST_PKT + 4]
            .copy_from_slice(&4u32.to_ne_bytes());
        assert!(matches!(
            walk_block(&bad, 0, |_, _| {}),
            Err(BlockError::HeaderOutside { .. })
        ));
        // Snap length past the end: the first frame is delivered, the walk stops at the second.
        let mut bad = good.clone();
        let second = 48usize.next_multiple_of(16) + builder::MAC_OFFSET + 60;
        let second = second.next_multiple_of(16);
        bad[second + ph::SNAPLEN..second + ph::SNAPLEN + 4]
            .copy_from_slice(&100_000u32.to_ne_bytes());
        let mut delivered = 0;
        assert!(matches!(
            walk_block(&bad, 0, |_, _| delivered += 1),
            Err(BlockError::DataOutside { frame: 1, .. })
        ));
        assert_eq!(delivered, 1);
    }

    #[test]
    fn every_truncation_and_byte_flip_is_handled() {
        let mut b = BlockBuilder::new(4096, 0);
        for i in 0..5 {
            b.push(&frame(i), &meta(i));
        }
        let good = b.finish();
        for cut in 0..good.len() {
            let _ = walk_block(&good[..cut], 0, |_, _| {});
        }
        for pos in 0..good.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut bad = good.clone();
                bad[pos] = v;
                let _ = walk_block(&bad, 0, |f, m| assert_eq!(f.len(), m.cap_len as usize));
            }
        }
    }

    #[test]
    fn ring_hands_blocks_over_in_order_and_back() {
        let mut ring = Ring::anonymous(4096, 4).expect("anonymous mapping");
        assert!(
            ring.try_acquire(0).is_none(),
            "kernel owns every block at first"
        );
        for i in 0..4u32 {
            let mut b = BlockBuilder::new(4096, u64::from(i));
            b.push(&frame(i), &meta(i));
            assert!(ring.publish(i as usize, &b.finish()));
        }
        // A block still owned by user space cannot be published over.
        assert!(!ring.publish(0, &BlockBuilder::new(4096, 0).finish()));
        for i in 0..4usize {
            let block = ring.try_acquire(i).expect("published block is user-owned");
            assert_eq!(block_seq(&block), Some(i as u64));
            let mut n = 0;
            walk_block(&block, 0, |f, _| {
                assert_eq!(f, frame(i as u32).as_slice());
                n += 1;
            })
            .expect("valid block");
            assert_eq!(n, 1);
        }
        // Dropping each block gave it back.
        for i in 0..4usize {
            assert!(ring.try_acquire(i).is_none());
        }
    }
}
