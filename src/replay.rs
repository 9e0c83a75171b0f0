//! `scramd replay`: pcap and pcapng files through the same decode, route and detect code as live
//! capture (a [`Pipeline`] with one shard), with packet timestamps as the clock.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

use crate::alert::AlertWriter;
use crate::detect::Settings;
use crate::pipeline::{Interfaces, LinkType, Pipeline, PipelineSet, PipelineTotals, QueueSizes};

/// A file that could not be read (exit 65).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Opening or reading failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a pcap or pcapng file, or corrupt.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// What a replay saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Packet records read.
    pub packets: u64,
    /// Packets of link types scram does not decode.
    pub unsupported_link: u64,
    /// Pipeline counters.
    pub totals: PipelineTotals,
    /// Alerts written.
    pub alerts: u64,
    /// Files that could not be read completely.
    pub errors: Vec<String>,
}

fn link_type(dl: DataLink) -> Option<LinkType> {
    match dl {
        DataLink::ETHERNET => Some(LinkType::Ethernet),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => Some(LinkType::RawIp),
        _ => None,
    }
}

/// Replays `files` in order; alerts go to `writer`. Unreadable files are reported in the result
/// (and the caller exits 65) after the readable ones were processed.
pub fn replay(
    files: &[PathBuf],
    settings: Arc<Settings>,
    writer: &mut AlertWriter,
) -> ReplayReport {
    let interfaces = Arc::new(Interfaces {
        loopback: vec![false; files.len().max(1)],
    });
    let mut set = PipelineSet::build(
        1,
        settings,
        LinkType::Ethernet,
        interfaces,
        QueueSizes::default(),
    );
    let mut pipeline = set.pipelines.remove(0);
    let mut alerts = set.alert_rx.remove(0);
    let mut report = ReplayReport::default();
    for (slot, path) in files.iter().enumerate() {
        let slot = u16::try_from(slot).unwrap_or(u16::MAX);
        let mut run = |pipeline: &mut Pipeline, link: Option<LinkType>, data: &[u8], ts_ns: u64| {
            report.packets += 1;
            match link {
                Some(l) => {
                    pipeline.set_link(l);
                    pipeline.process(data, ts_ns, slot, None);
                }
                None => report.unsupported_link += 1,
            }
            while let Ok(a) = alerts.pop() {
                writer.write(&a);
            }
        };
        if let Err(e) = replay_file(path, &mut pipeline, &mut run) {
            report.errors.push(e.to_string());
        }
    }
    pipeline.publish();
    report.totals = PipelineTotals::sum(&set.counters);
    report.alerts = writer.written();
    writer.flush();
    report
}

type Run<'a> = dyn FnMut(&mut Pipeline, Option<LinkType>, &[u8], u64) + 'a;

fn replay_file(path: &Path, pipeline: &mut Pipeline, run: &mut Run<'_>) -> Result<(), ReplayError> {
    let io = |source| ReplayError::Io {
        path: path.to_owned(),
        source,
    };
    let format = |message: String| ReplayError::Format {
        path: path.to_owned(),
        message,
    };
    let mut file = BufReader::new(std::fs::File::open(path).map_err(io)?);
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .map_err(|_| format("too short for a pcap or pcapng header".into()))?;
    let chained = std::io::Cursor::new(magic).chain(file);
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => {
            let mut reader =
                PcapNgReader::new(chained).map_err(|e| format(format!("pcapng: {e}")))?;
            // (link type, timestamp units per second) of each interface of the current section.
            let mut interfaces: Vec<(Option<LinkType>, u64)> = Vec::new();
            let mut n = 0u64;
            while let Some(block) = reader.next_block() {
                let block = block.map_err(|e| format(format!("pcapng block {n}: {e}")))?;
                n += 1;
                match block {
                    Block::SectionHeader(_) => interfaces.clear(),
                    Block::InterfaceDescription(idb) => {
                        let resol = idb
                            .options
                            .iter()
                            .find_map(|o| match o {
                                InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                                _ => None,
                            })
                            .unwrap_or(6);
                        let per_second = if resol & 0x80 != 0 {
                            1u64.checked_shl(u32::from(resol & 0x7f)).unwrap_or(0)
                        } else {
                            10u64.checked_pow(u32::from(resol)).unwrap_or(0)
                        };
                        interfaces.push((link_type(idb.linktype), per_second));
                    }
                    Block::EnhancedPacket(epb) => {
                        let (link, per_second) = interfaces
                            .get(epb.interface_id as usize)
                            .copied()
                            .unwrap_or((None, 0));
                        // pcap-file hands over the raw timestamp units as if they were ns.
                        let units = epb.timestamp.as_nanos();
                        let ts_ns = if per_second == 0 {
                            0
                        } else {
                            (units * 1_000_000_000 / u128::from(per_second)) as u64
                        };
                        run(pipeline, link, &epb.data, ts_ns);
                    }
                    Block::SimplePacket(spb) => {
                        let link = interfaces.first().and_then(|i| i.0);
                        run(pipeline, link, &spb.data, 0);
                    }
                    _ => {}
                }
            }
        }
        [0xa1, 0xb2, 0xc3, 0xd4]
        | [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        | [0x4d, 0x3c, 0xb2, 0xa1] => {
            let mut reader = PcapReader::new(chained).map_err(|e| format(format!("pcap: {e}")))?;
            let link = link_type(reader.header().datalink);
            let mut n = 0u64;
            while let Some(packet) = reader.next_packet() {
                let packet = packet.map_err(|e| format(format!("pcap record {n}: {e}")))?;
                n += 1;
                run(
                    pipeline,
                    link,
                    &packet.data,
                    packet.timestamp.as_nanos() as u64,
                );
            }
        }
        _ => return Err(format("not a pcap or pcapng file".into())),
    }
    Ok(())
}
