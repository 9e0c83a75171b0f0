//! Capture files: a reader for pcap (micro- and nanosecond, either byte order) and pcapng
//! (sections, per-interface link types, timestamp resolutions and offsets, enhanced, simple and
//! obsolete packet blocks).
//!
//! Lenient where tcpdump and Wireshark are: a record's original length may exceed its captured
//! length or the file's snap length, its captured length may exceed the snap length, and a
//! microsecond field may be out of range; every record whose bytes are there is returned. Strict
//! where the bytes themselves are wrong: a length that cannot be a record ends the file with an
//! error naming the record, and a file that ends inside a record says so.
//!
//! Owns: framing only. Never decodes a packet, never allocates per record (one buffer, grown to
//! the largest record), never trusts a length before checking it against [`MAX_RECORD`].

use std::io::{self, Read};

/// The largest record accepted (bytes). Captures hold at most 256 KiB per packet (libpcap's
/// largest snap length); the bound stops a corrupt length from asking for gigabytes.
pub const MAX_RECORD: usize = 16 << 20;

/// Link-layer header types (the LINKTYPE_ values pcap and pcapng files carry).
pub mod linktype {
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    pub const NULL: u32 = 0;
    /// Ethernet.
    pub const ETHERNET: u32 = 1;
    /// Raw IP as DLT_RAW is numbered on most systems.
    pub const RAW_DLT12: u32 = 12;
    /// Raw IP as DLT_RAW is numbered on OpenBSD.
    pub const RAW_DLT14: u32 = 14;
    /// Raw IP (LINKTYPE_RAW).
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    pub const LOOP: u32 = 108;
    /// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2 (`tcpdump -i any` since libpcap 1.10).
    pub const LINUX_SLL2: u32 = 276;
}

/// One packet record, borrowed from the reader's buffer until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// 1-based number of the record (pcap) or block (pcapng) in the file.
    pub number: u64,
    /// Packet time, ns since the epoch.
    pub ts_ns: u64,
    /// The link type of the record's interface.
    pub link: u32,
    /// The interface, numbered across the file's sections (pcap files have one).
    pub interface: u32,
    /// Length of the packet on the wire (may exceed `data.len()`).
    pub original_len: u32,
    /// The interface is a loopback device by its name.
    pub loopback: bool,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// An interface described in a pcapng file (or the one of a pcap file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Link type.
    pub link: u32,
    /// `if_name`, when the file names it.
    pub name: Option<String>,
    /// Timestamp units per second.
    units_per_second: u64,
    /// `if_tsoffset`: seconds added to every timestamp.
    offset_seconds: i64,
}

impl Interface {
    /// Is this a loopback device by its name (`lo`, `lo0`, ...)?
    pub fn is_loopback(&self) -> bool {
        self.name.as_deref().is_some_and(|n| {
            n.strip_prefix("lo")
                .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
        })
    }
}

/// Why a file or a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading failed.
    #[error("{0}")]
    Io(#[source] io::Error),
    /// The first bytes are no pcap or pcapng magic number.
    #[error("not a pcap or pcapng file")]
    NotCapture,
    /// The file header is cut short.
    #[error("the file header is cut short")]
    HeaderCut,
    /// The file ends inside a record (or block).
    #[error("record {record} is cut short: the file ends {missing} byte(s) before its end")]
    RecordCut {
        /// 1-based record or block number.
        record: u64,
        /// Bytes missing (0 when the record's own header is cut).
        missing: usize,
    },
    /// A length field no record can have; nothing after it can be framed.
    #[error("record {record}: {what}")]
    Corrupt {
        /// 1-based record or block number.
        record: u64,
        /// What is wrong.
        what: String,
    },
}

/// A record that was framed correctly but cannot be used; the reader goes on after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based record or block number.
    pub record: u64,
    /// Why.
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Pcap {
        swapped: bool,
        nanos: bool,
        link: u32,
    },
    PcapNg {
        swapped: bool,
    },
}

/// Reads records from a pcap or pcapng stream.
#[derive(Debug)]
pub struct Reader<R> {
    input: R,
    format: Format,
    buffer: Vec<u8>,
    number: u64,
    /// Interfaces of all sections so far; `section_base` is where the current section's start.
    interfaces: Vec<Interface>,
    section_base: usize,
    skipped: Vec<Skipped>,
    skipped_total: u64,
    /// The first section header's type was read while telling the format.
    shb_type_read: bool,
}

/// Most skipped records remembered by number (the rest are counted).
const SKIPPED_KEPT: usize = 16;

const PCAP_MICRO: u32 = 0xa1b2_c3d4;
const PCAP_NANO: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER: u32 = 0x1a2b_3c4d;

fn u16_at(b: &[u8], at: usize, swapped: bool) -> u16 {
    let v = [b[at], b[at + 1]];
    if swapped {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

fn u32_at(b: &[u8], at: usize, swapped: bool) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if swapped {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

/// Fills `buf` completely, or says how many bytes were there before the end.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<(), (usize, Option<io::Error>)> {
    let mut have = 0;
    while have < buf.len() {
        match input.read(&mut buf[have..]) {
            Ok(0) => return Err((have, None)),
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((have, Some(e))),
        }
    }
    Ok(())
}

impl<R: Read> Reader<R> {
    /// Reads the file header. The byte order is the writer's (either is accepted).
    pub fn new(mut input: R) -> Result<Self, FileError> {
        let mut head = [0u8; 24];
        match read_full(&mut input, &mut head[..4]) {
            Ok(()) => {}
            Err((_, Some(e))) => return Err(FileError::Io(e)),
            Err((_, None)) => return Err(FileError::NotCapture),
        }
        let magic_le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let magic_be = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let mut reader = Reader {
            input,
            format: Format::PcapNg { swapped: false },
            buffer: Vec::new(),
            number: 0,
            interfaces: Vec::new(),
            section_base: 0,
            skipped: Vec::new(),
            skipped_total: 0,
            shb_type_read: false,
        };
        if magic_le == PCAPNG_SHB {
            // The section header's own byte order is read with the first block.
            reader.shb_type_read = true;
            return Ok(reader);
        }
        let (swapped, nanos) = match (magic_le, magic_be) {
            (PCAP_MICRO, _) => (false, false),
            (PCAP_NANO, _) => (false, true),
            (_, PCAP_MICRO) => (true, false),
            (_, PCAP_NANO) => (true, true),
            _ => return Err(FileError::NotCapture),
        };
        match read_full(&mut reader.input, &mut head[4..]) {
            Ok(()) => {}
            Err((_, Some(e))) => return Err(FileError::Io(e)),
            Err((_, None)) => return Err(FileError::HeaderCut),
        }
        // The link type's upper bits carry the FCS length (pcap's LINKTYPE_FCS flags).
        let link = u32_at(&head, 20, swapped) & 0x0fff_ffff;
        reader.format = Format::Pcap {
            swapped,
            nanos,
            link,
        };
        reader.interfaces.push(Interface {
            link,
            name: None,
            units_per_second: if nanos { 1_000_000_000 } else { 1_000_000 },
            offset_seconds: 0,
        });
        Ok(reader)
    }

    /// The interfaces described so far (numbered as [`Record::interface`]).
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Records framed correctly but unusable (by number, the first few), and how many in all.
    pub fn skipped(&self) -> (&[Skipped], u64) {
        (&self.skipped, self.skipped_total)
    }

    /// Records (or blocks) read so far.
    pub fn records(&self) -> u64 {
        self.number
    }

    fn skip(&mut self, why: String) {
        self.skipped_total += 1;
        if self.skipped.len() < SKIPPED_KEPT {
            self.skipped.push(Skipped {
                record: self.number,
                why,
            });
        }
    }

    /// The next packet record, `None` at a clean end of the file.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, FileError> {
        match self.format {
            Format::Pcap {
                swapped,
                nanos,
                link,
            } => self.next_pcap(swapped, nanos, link),
            Format::PcapNg { .. } => self.next_pcapng(),
        }
    }

    /// Reads `len` bytes of the current record into the buffer (after `keep` bytes already
    /// there).
    fn fill(&mut self, keep: usize, len: usize) -> Result<(), FileError> {
        self.buffer.resize(keep + len, 0);
        let record = self.number;
        read_full(&mut self.input, &mut self.buffer[keep..]).map_err(|(have, e)| match e {
            Some(e) => FileError::Io(e),
            None => FileError::RecordCut {
                record,
                missing: len - have,
            },
        })
    }

    fn next_pcap(
        &mut self,
        swapped: bool,
        nanos: bool,
        link: u32,
    ) -> Result<Option<Record<'_>>, FileError> {
        let mut head = [0u8; 16];
        self.number += 1;
        match read_full(&mut self.input, &mut head) {
            Ok(()) => {}
            Err((0, None)) => {
                self.number -= 1;
                return Ok(None);
            }
            Err((_, None)) => {
                return Err(FileError::RecordCut {
                    record: self.number,
                    missing: 0,
                })
            }
            Err((_, Some(e))) => return Err(FileError::Io(e)),
        }
        let secs = u64::from(u32_at(&head, 0, swapped));
        let frac = u64::from(u32_at(&head, 4, swapped));
        let caplen = u32_at(&head, 8, swapped) as usize;
        let original_len = u32_at(&head, 12, swapped);
        if caplen > MAX_RECORD {
            return Err(FileError::Corrupt {
                record: self.number,
                what: format!("captured length {caplen} is larger than any packet"),
            });
        }
        self.fill(0, caplen)?;
        // An out-of-range fraction carries into the seconds, as tcpdump prints it.
        let frac_ns = if nanos { frac } else { frac * 1_000 };
        Ok(Some(Record {
            number: self.number,
            ts_ns: secs * 1_000_000_000 + frac_ns,
            link,
            interface: 0,
            original_len,
            loopback: false,
            data: &self.buffer,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Record<'_>>, FileError> {
        loop {
            // The block header: type and total length (the first SHB's type is already read).
            let mut head = [0u8; 8];
            let pending = if std::mem::take(&mut self.shb_type_read) {
                head[..4].copy_from_slice(&PCAPNG_SHB.to_le_bytes());
                4
            } else {
                0
            };
            self.buffer.clear();
            self.number += 1;
            match read_full(&mut self.input, &mut head[pending..]) {
                Ok(()) => {}
                Err((0, None)) if pending == 0 => {
                    self.number -= 1;
                    return Ok(None);
                }
                Err((_, None)) => {
                    return Err(FileError::RecordCut {
                        record: self.number,
                        missing: 0,
                    })
                }
                Err((_, Some(e))) => return Err(FileError::Io(e)),
            }
            let Format::PcapNg { swapped } = self.format else {
                return Ok(None);
            };
            let block_type_le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let swapped = if block_type_le == PCAPNG_SHB {
                // A new section: its byte-order magic follows the length.
                let mut bom = [0u8; 4];
                read_full(&mut self.input, &mut bom).map_err(|(_, e)| match e {
                    Some(e) => FileError::Io(e),
                    None => FileError::RecordCut {
                        record: self.number,
                        missing: 0,
                    },
                })?;
                let swapped = if u32::from_le_bytes(bom) == PCAPNG_BYTE_ORDER {
                    false
                } else if u32::from_be_bytes(bom) == PCAPNG_BYTE_ORDER {
                    true
                } else {
                    return Err(FileError::Corrupt {
                        record: self.number,
                        what: "section header with an unknown byte-order magic".into(),
                    });
                };
                self.format = Format::PcapNg { swapped };
                self.section_base = self.interfaces.len();
                self.buffer.clear();
                self.buffer.extend_from_slice(&bom);
                swapped
            } else {
                swapped
            };
            let block_type = u32_at(&head, 0, swapped);
            let total = u32_at(&head, 4, swapped) as usize;
            if total < 12 || !total.is_multiple_of(4) || total > MAX_RECORD {
                return Err(FileError::Corrupt {
                    record: self.number,
                    what: format!("block length {total} is impossible"),
                });
            }
            // Body, then the trailing copy of the length.
            let keep = self.buffer.len();
            let body = total - 12;
            if body < keep {
                return Err(FileError::Corrupt {
                    record: self.number,
                    what: format!("section header block of {total} bytes is too short"),
                });
            }
            self.fill(keep, body - keep + 4)?;
            let body = &self.buffer[..body];
            match block_type {
                PCAPNG_SHB => {}
                // Interface description.
                1 => {
                    if body.len() < 8 {
                        return Err(FileError::Corrupt {
                            record: self.number,
                            what: "interface description block too short".into(),
                        });
                    }
                    let link = u32::from(u16_at(body, 0, swapped));
                    let mut iface = Interface {
                        link,
                        name: None,
                        units_per_second: 1_000_000,
                        offset_seconds: 0,
                    };
                    for (code, value) in Options::new(&body[8..], swapped) {
                        match (code, value.len()) {
                            (2, _) => {
                                let name = value.split(|&b| b == 0).next().unwrap_or_default();
                                iface.name = Some(String::from_utf8_lossy(name).into_owned());
                            }
                            (9, 1) => {
                                let r = value[0];
                                iface.units_per_second = if r & 0x80 != 0 {
                                    1u64.checked_shl(u32::from(r & 0x7f)).unwrap_or(0)
                                } else {
                                    10u64.checked_pow(u32::from(r)).unwrap_or(0)
                                };
                            }
                            (14, 8) => {
                                let mut v = [0u8; 8];
                                v.copy_from_slice(value);
                                iface.offset_seconds = if swapped {
                                    i64::from_be_bytes(v)
                                } else {
                                    i64::from_le_bytes(v)
                                };
                            }
                            _ => {}
                        }
                    }
                    self.interfaces.push(iface);
                }
                // Enhanced packet (6) and the obsolete packet block (2).
                6 | 2 => {
                    if body.len() < 20 {
                        self.skip(format!("packet block of {total} bytes is too short"));
                        continue;
                    }
                    let id = if block_type == 6 {
                        u32_at(body, 0, swapped)
                    } else {
                        u32::from(u16_at(body, 0, swapped))
                    };
                    let units = (u64::from(u32_at(body, 4, swapped)) << 32)
                        | u64::from(u32_at(body, 8, swapped));
                    let caplen = u32_at(body, 12, swapped) as usize;
                    let original_len = u32_at(body, 16, swapped);
                    let Some(index) = self.section_base.checked_add(id as usize) else {
                        continue;
                    };
                    let Some(iface) = self.interfaces.get(index) else {
                        self.skip(format!("packet of undescribed interface {id}"));
                        continue;
                    };
                    if caplen > body.len() - 20 {
                        self.skip(format!(
                            "captured length {caplen} exceeds the block's {} data bytes",
                            body.len() - 20
                        ));
                        continue;
                    }
                    let ts_ns = iface.nanos(units);
                    let link = iface.link;
                    let loopback = iface.is_loopback();
                    let data = &self.buffer[20..20 + caplen];
                    return Ok(Some(Record {
                        number: self.number,
                        ts_ns,
                        link,
                        interface: index as u32,
                        original_len,
                        loopback,
                        data,
                    }));
                }
                // Simple packet: interface 0 of the section, no timestamp.
                3 => {
                    let Some(iface) = self.interfaces.get(self.section_base) else {
                        self.skip("simple packet block before any interface".into());
                        continue;
                    };
                    if body.len() < 4 {
                        self.skip("simple packet block too short".into());
                        continue;
                    }
                    let original_len = u32_at(body, 0, swapped);
                    let caplen = (original_len as usize).min(body.len() - 4);
                    let link = iface.link;
                    let loopback = iface.is_loopback();
                    let interface = self.section_base as u32;
                    let data = &self.buffer[4..4 + caplen];
                    return Ok(Some(Record {
                        number: self.number,
                        ts_ns: 0,
                        link,
                        interface,
                        original_len,
                        loopback,
                        data,
                    }));
                }
                // Name resolution, statistics, custom, decryption secrets, ...: nothing to replay.
                _ => {}
            }
        }
    }
}

impl Interface {
    fn nanos(&self, units: u64) -> u64 {
        let ns = (u128::from(units) * 1_000_000_000)
            .checked_div(u128::from(self.units_per_second))
            .unwrap_or(0);
        let offset = i128::from(self.offset_seconds) * 1_000_000_000;
        u64::try_from((ns as i128 + offset).max(0)).unwrap_or(u64::MAX)
    }
}

/// pcapng options: (code, value) pairs up to `opt_endofopt` or the end of the bytes.
struct Options<'a> {
    bytes: &'a [u8],
    swapped: bool,
}

impl<'a> Options<'a> {
    fn new(bytes: &'a [u8], swapped: bool) -> Self {
        Options { bytes, swapped }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.bytes.len() < 4 {
            return None;
        }
        let code = u16_at(self.bytes, 0, self.swapped);
        let len = usize::from(u16_at(self.bytes, 2, self.swapped));
        if code == 0 || self.bytes.len() < 4 + len {
            return None;
        }
        let value = &self.bytes[4..4 + len];
        let padded = (4 + len).div_ceil(4) * 4;
        self.bytes = self.bytes.get(padded..).unwrap_or_default();
        Some((code, value))
    }
}
