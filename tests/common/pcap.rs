//! Capture files written byte by byte, as tcpdump and Wireshark write them (and as they write
//! the odd records real captures hold), for the replay tests.

/// Link types used by the tests.
#[allow(unused_imports, reason = "each test target uses a different subset")]
pub use scram::replay::file::linktype;

const PCAP_MICRO: u32 = 0xa1b2_c3d4;
const PCAP_NANO: u32 = 0xa1b2_3c4d;

/// One pcap record: time, original length, captured bytes.
#[derive(Debug, Clone)]
pub struct Rec {
    /// Seconds part of the timestamp.
    pub secs: u32,
    /// Fraction (micro- or nanoseconds, as the file says; may be out of range).
    pub frac: u32,
    /// Length on the wire.
    pub orig_len: u32,
    /// Captured bytes.
    pub data: Vec<u8>,
}

impl Rec {
    /// A record of a whole frame at `ts_ns` (microsecond file).
    pub fn at(ts_ns: u64, data: &[u8]) -> Rec {
        Rec {
            secs: (ts_ns / 1_000_000_000) as u32,
            frac: ((ts_ns % 1_000_000_000) / 1_000) as u32,
            orig_len: data.len() as u32,
            data: data.to_vec(),
        }
    }
}

/// A pcap file: `swapped` writes big-endian (as a big-endian host does), `nanos` the
/// nanosecond variant.
pub fn pcap_file(link: u32, snaplen: u32, swapped: bool, nanos: bool, records: &[Rec]) -> Vec<u8> {
    let w32 = |v: u32| {
        if swapped {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if swapped {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend(w32(if nanos { PCAP_NANO } else { PCAP_MICRO }));
    out.extend(w16(2));
    out.extend(w16(4));
    out.extend(w32(0));
    out.extend(w32(0));
    out.extend(w32(snaplen));
    out.extend(w32(link));
    for r in records {
        out.extend(w32(r.secs));
        out.extend(w32(r.frac));
        out.extend(w32(r.data.len() as u32));
        out.extend(w32(r.orig_len));
        out.extend_from_slice(&r.data);
    }
    out
}

/// An ordinary microsecond pcap of whole frames at the given times.
pub fn pcap(link: u32, frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let recs: Vec<Rec> = frames.iter().map(|(t, f)| Rec::at(*t, f)).collect();
    pcap_file(link, 262_144, false, false, &recs)
}

/// A pcapng file built block by block (little-endian).
#[derive(Debug, Default, Clone)]
pub struct PcapNg {
    /// The bytes so far.
    pub bytes: Vec<u8>,
}

impl PcapNg {
    /// A file with its first section header.
    pub fn new() -> PcapNg {
        let mut f = PcapNg::default();
        f.section();
        f
    }

    /// Any block.
    pub fn block(&mut self, kind: u32, body: &[u8]) -> &mut Self {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let total = (body.len() + 12) as u32;
        self.bytes.extend(kind.to_le_bytes());
        self.bytes.extend(total.to_le_bytes());
        self.bytes.extend(body);
        self.bytes.extend(total.to_le_bytes());
        self
    }

    /// A new section (its interfaces are numbered from 0 again).
    pub fn section(&mut self) -> &mut Self {
        let mut body = Vec::new();
        body.extend(0x1a2b_3c4du32.to_le_bytes());
        body.extend(1u16.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend((-1i64).to_le_bytes());
        self.block(0x0a0d_0d0a, &body)
    }

    /// An interface description with a name and, optionally, `if_tsresol`.
    pub fn interface(&mut self, link: u16, name: &str, tsresol: Option<u8>) -> &mut Self {
        let mut body = Vec::new();
        body.extend(link.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend(262_144u32.to_le_bytes());
        let mut opt = |code: u16, value: &[u8]| {
            body.extend(code.to_le_bytes());
            body.extend((value.len() as u16).to_le_bytes());
            body.extend_from_slice(value);
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
        };
        opt(2, name.as_bytes());
        if let Some(r) = tsresol {
            opt(9, &[r]);
        }
        opt(0, &[]);
        self.block(1, &body)
    }

    /// An enhanced packet block: `units` in the interface's resolution; the original length is
    /// the captured length plus `cut`.
    pub fn packet(&mut self, iface: u32, units: u64, data: &[u8], cut: u32) -> &mut Self {
        let mut body = Vec::new();
        body.extend(iface.to_le_bytes());
        body.extend(((units >> 32) as u32).to_le_bytes());
        body.extend((units as u32).to_le_bytes());
        body.extend((data.len() as u32).to_le_bytes());
        body.extend((data.len() as u32 + cut).to_le_bytes());
        body.extend_from_slice(data);
        self.block(6, &body)
    }

    /// A simple packet block (interface 0, no timestamp).
    pub fn simple(&mut self, data: &[u8]) -> &mut Self {
        let mut body = Vec::new();
        body.extend((data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        self.block(3, &body)
    }
}
