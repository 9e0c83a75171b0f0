//! `scramd replay`: pcap and pcapng files through the same decode, route and detect code as live
//! capture (a [`Pipeline`] with one shard), with packet timestamps as the clock.
//!
//! Every record whose bytes are in the file is replayed ([`file`] reads what tcpdump reads). What
//! cannot be used is counted per file and named by record number: a link type scram does not
//! decode, a block that cannot be framed, a file that ends inside a record. One file's trouble
//! never stops the next file.

pub mod file;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::alert::stage::AlertStage;
use crate::alert::AlertWriter;
use crate::detect::Settings;
use crate::pipeline::{Interfaces, LinkType, PipelineSet, PipelineTotals, Sizes};
use file::{linktype, FileError, Reader};

/// The pipeline's framing for a file's link type; `None` for types scram does not decode.
pub fn link_type(link: u32) -> Option<LinkType> {
    Some(match link {
        linktype::ETHERNET => LinkType::Ethernet,
        linktype::RAW_DLT12
        | linktype::RAW_DLT14
        | linktype::RAW
        | linktype::IPV4
        | linktype::IPV6 => LinkType::RawIp,
        linktype::LINUX_SLL => LinkType::LinuxSll,
        linktype::LINUX_SLL2 => LinkType::LinuxSll2,
        linktype::NULL | linktype::LOOP => LinkType::Null,
        _ => return None,
    })
}

/// How reading one file ended.
#[derive(Debug, Default)]
pub enum Ending {
    /// Read to its end.
    #[default]
    Complete,
    /// Could not be opened, or is no capture file: nothing was replayed.
    Unreadable(String),
    /// Replayed up to a record that is cut short or cannot be framed.
    Stopped(String),
}

/// What replaying one file saw.
#[derive(Debug, Default)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Packet records read.
    pub packets: u64,
    /// Records of link types scram does not decode, by link type.
    pub unsupported: BTreeMap<u32, u64>,
    /// Records framed correctly but unusable (e.g. of an undescribed interface).
    pub skipped: u64,
    /// The first few of those: (record number, why).
    pub skipped_records: Vec<(u64, String)>,
    /// How reading ended.
    pub ending: Ending,
}

impl FileReport {
    /// Was the whole file read?
    pub fn complete(&self) -> bool {
        matches!(self.ending, Ending::Complete)
    }

    /// One line: what was read and what was lost.
    pub fn summary(&self) -> String {
        let mut s = format!("{}: {} packet(s)", self.path.display(), self.packets);
        if !self.unsupported.is_empty() {
            let types: Vec<String> = self
                .unsupported
                .iter()
                .map(|(t, n)| format!("{n} of link type {t}"))
                .collect();
            let _ = write!(s, ", not decoded: {}", types.join(", "));
        }
        if self.skipped > 0 {
            let named: Vec<String> = self
                .skipped_records
                .iter()
                .map(|(n, why)| format!("record {n}: {why}"))
                .collect();
            let _ = write!(
                s,
                ", {} record(s) skipped ({})",
                self.skipped,
                named.join("; ")
            );
        }
        match &self.ending {
            Ending::Complete => s.push_str(", read to its end"),
            Ending::Unreadable(why) => {
                let _ = write!(s, ", unreadable: {why}");
            }
            Ending::Stopped(why) => {
                let _ = write!(s, ", stopped: {why}; the rest of the file is lost");
            }
        }
        s
    }
}

/// What a replay saw.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Per file, in order.
    pub files: Vec<FileReport>,
    /// Pipeline counters.
    pub totals: PipelineTotals,
    /// Alerts written.
    pub alerts: u64,
}

impl ReplayReport {
    /// Packet records read from all files.
    pub fn packets(&self) -> u64 {
        self.files.iter().map(|f| f.packets).sum()
    }

    /// Records of link types scram does not decode, in all files.
    pub fn unsupported(&self) -> u64 {
        self.files.iter().flat_map(|f| f.unsupported.values()).sum()
    }

    /// Were all files read to their end?
    pub fn complete(&self) -> bool {
        self.files.iter().all(FileReport::complete)
    }
}

/// Replays `files` in order; alerts go through the alert stage (as live capture's do, without
/// active response) to `writer`, which is handed back. A file that cannot be read is reported in
/// the result (and the caller exits 65) after everything readable was processed.
pub fn replay(
    files: &[PathBuf],
    settings: Arc<Settings>,
    writer: AlertWriter,
) -> (ReplayReport, AlertWriter) {
    let interfaces = Arc::new(Interfaces {
        loopback: vec![false; files.len().max(1)],
        loopback_by_packet: true,
    });
    let mut set = PipelineSet::build(
        1,
        settings,
        LinkType::Ethernet,
        interfaces,
        Sizes::default(),
    );
    let mut pipeline = set.pipelines.remove(0);
    let mut stage = AlertStage::new(vec![set.alert_rx.remove(0)], writer, None);
    let mut report = ReplayReport::default();
    for (slot, path) in files.iter().enumerate() {
        let slot = u16::try_from(slot).unwrap_or(u16::MAX);
        let mut file_report = FileReport {
            path: path.clone(),
            ..FileReport::default()
        };
        let mut reader = match open(path) {
            Ok(r) => r,
            Err(e) => {
                file_report.ending = Ending::Unreadable(e);
                report.files.push(file_report);
                continue;
            }
        };
        loop {
            let record = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    file_report.ending = Ending::Stopped(e.to_string());
                    break;
                }
            };
            file_report.packets += 1;
            let Some(link) = link_type(record.link) else {
                *file_report.unsupported.entry(record.link).or_default() += 1;
                continue;
            };
            pipeline.set_link(link, record.loopback);
            pipeline.process(record.data, record.ts_ns, slot, None);
            pipeline.tick(record.ts_ns);
            stage.drain();
        }
        // The capture ends: attempts still unanswered are reported as such, and the scans
        // still open are closed with what they came to.
        pipeline.flush_flows();
        pipeline.tick(u64::MAX);
        stage.drain();
        let (named, total) = reader.skipped();
        file_report.skipped = total;
        file_report.skipped_records = named.iter().map(|s| (s.record, s.why.clone())).collect();
        report.files.push(file_report);
    }
    pipeline.publish();
    report.totals = PipelineTotals::sum(&set.counters);
    let writer = stage.finish();
    report.alerts = writer.written();
    (report, writer)
}

fn open(path: &Path) -> Result<Reader<BufReader<std::fs::File>>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    Reader::new(BufReader::with_capacity(1 << 16, file)).map_err(|e| match e {
        FileError::Io(e) => e.to_string(),
        other => other.to_string(),
    })
}
